//! Numbers with units: every one in the draft must occur in the source.
//!
//! A quantity is a number, a range ("5-10 mg", "5 to 10 mg") or a ratio ("120/80 mmHg",
//! "150 over 90"), followed by a unit ("81mg", "2.5 ng/mL", "38.5 °C", "88 次/分", "45%") or
//! preceded by a vital-sign label that implies one ("BP 120/80", "HR 88"). Values compare as numbers
//! ("2.50" = "2.5", "1,000" = "1000"), units by canonical name (mcg = µg = μg = 微克,
//! mL = ml = cc) and, for plain mass, volume, length and time, by scale (1 g = 1000 mg,
//! 1 week = 7 days). A number that the source writes without a unit supports the draft's
//! number with a lab or vital-sign unit ("troponin 0.04" supports "troponin 0.04 ng/mL"),
//! but not a dose or a duration, and the source may spell small numbers as words
//! ("two weeks", "两周"). Dates and times are not quantities.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;

use super::text::{finding, fold, Indexed};
use super::{Finding, FindingKind};

/// Unit spellings (lowercase; a space stands for optional whitespace), the canonical name, and
/// for units that convert, the base unit and the factor to it ("" and 1: no conversion).
const UNITS: &[(&[&str], &str, &str, f64)] = &[
    (&["mg", "mgs", "milligram", "milligrams", "毫克"], "mg", "mg", 1.0),
    (&["g", "gm", "gms", "gram", "grams", "克"], "g", "mg", 1e3),
    (&["mcg", "µg", "ug", "microgram", "micrograms", "微克"], "µg", "mg", 1e-3),
    (&["ng", "nanogram", "nanograms", "纳克"], "ng", "mg", 1e-6),
    (&["pg", "皮克"], "pg", "mg", 1e-9),
    (&["kg", "kgs", "kilogram", "kilograms", "公斤", "千克"], "kg", "mg", 1e6),
    (&["ml", "mls", "millilitre", "milliliter", "millilitres", "milliliters", "cc", "毫升"], "ml", "ml", 1.0),
    (&["l", "litre", "liter", "litres", "liters", "升"], "l", "ml", 1e3),
    (&["dl", "decilitre", "deciliter", "分升"], "dl", "ml", 1e2),
    (&["µl", "ul", "microlitre", "microliter", "微升"], "µl", "ml", 1e-3),
    (&["mm", "millimetre", "millimeter", "millimetres", "millimeters", "毫米"], "mm", "mm", 1.0),
    (&["cm", "centimetre", "centimeter", "centimetres", "centimeters", "厘米"], "cm", "mm", 10.0),
    (&["min", "mins", "minute", "minutes", "分钟"], "min", "min", 1.0),
    (&["h", "hr", "hrs", "hour", "hours", "小时"], "h", "min", 60.0),
    (&["d", "day", "days", "天", "日"], "day", "min", 1440.0),
    (&["wk", "wks", "week", "weeks", "周", "星期"], "week", "min", 10080.0),
    (&["mo", "mos", "month", "months", "月", "个月"], "month", "", 1.0),
    (
        &["yr", "yrs", "year", "years", "y/o", "y.o.", "yo", "year old", "years old", "year-old", "岁", "年"],
        "year",
        "",
        1.0,
    ),
    (&["mmol", "millimole", "millimoles", "毫摩尔"], "mmol", "", 1.0),
    (&["µmol", "umol", "微摩尔"], "µmol", "", 1.0),
    (&["nmol"], "nmol", "", 1.0),
    (&["mol", "摩尔"], "mol", "", 1.0),
    (&["meq", "milliequivalent", "milliequivalents"], "meq", "", 1.0),
    (&["iu", "u", "unit", "units", "international unit", "international units", "单位", "国际单位"], "u", "", 1.0),
    (&["miu", "mu"], "mu", "", 1.0),
    (&["mmhg", "mm hg", "mm of mercury", "millimeters of mercury", "毫米汞柱"], "mmhg", "", 1.0),
    (&["cmh2o", "cm h2o"], "cmh2o", "", 1.0),
    (&["kpa", "千帕"], "kpa", "", 1.0),
    (
        &["°c", "℃", "c", "deg c", "degc", "degree c", "degrees c", "degrees celsius", "celsius", "摄氏度", "度"],
        "°c",
        "",
        1.0,
    ),
    (&["°f", "℉", "f", "deg f", "degf", "degree f", "degrees f", "degrees fahrenheit", "fahrenheit"], "°f", "", 1.0),
    (&["degree", "degrees"], "°", "", 1.0),
    (&["%", "percent", "per cent", "pct"], "%", "", 1.0),
    (&["lb", "lbs", "pound", "pounds", "磅"], "lb", "", 1.0),
    (&["ft", "feet", "foot"], "ft", "", 1.0),
    (&["inch", "inches"], "inch", "", 1.0),
    (&["bpm", "beats/min", "次/分", "次/分钟"], "/min", "", 1.0),
    (&["beats", "breaths", "cells", "dose", "doses", "次"], "", "", 1.0),
    (&["m2", "m²"], "m2", "", 1.0),
    (&["mm3", "mm³"], "mm3", "", 1.0),
    (&["hpf"], "hpf", "", 1.0),
    (&["mosm"], "mosm", "", 1.0),
    (&["tab", "tabs", "tablet", "tablets", "片"], "tab", "", 1.0),
    (&["cap", "caps", "capsule", "capsules", "粒"], "cap", "", 1.0),
    (&["puff", "puffs", "喷"], "puff", "", 1.0),
    (&["drop", "drops", "gtt", "gtts", "滴"], "drop", "", 1.0),
    (&["支"], "支", "", 1.0),
    (&["袋"], "袋", "", 1.0),
    (&["分"], "分", "", 1.0),
];

/// Spellings that are a temperature unit only after a number in a plausible range, and which
/// one: a bare "C" after 120 is not Celsius, "3度" is a degree of heart block, "85 F" an age
/// and sex; "38.5 degrees" is Celsius and "101 degrees" Fahrenheit.
const GUARDED: &[(&str, f64, f64, &str)] = &[
    ("c", 30.0, 45.0, "°c"),
    ("f", 90.0, 110.0, "°f"),
    ("度", 30.0, 45.0, "°c"),
    ("degree", 30.0, 45.0, "°c"),
    ("degrees", 30.0, 45.0, "°c"),
    ("degree", 90.0, 110.0, "°f"),
    ("degrees", 90.0, 110.0, "°f"),
];

/// Spellings that are units only inside a compound ("beats/min", "每日3次" is not a quantity).
const ONLY_IN_COMPOUND: &[&str] = &["beats", "breaths", "cells", "dose", "doses", "次"];

/// A unit as compared: quantities agree when their `base`s agree and their values times
/// `scale` agree.
#[derive(Debug, Clone, PartialEq)]
struct Unit {
    /// Canonical name, e.g. "µg", "mg/dl", "10^9/l".
    name: String,
    /// Base unit for conversions (the name itself when it does not convert).
    base: String,
    scale: f64,
}

/// A number, range or ratio with its unit, at byte offsets of a folded text.
#[derive(Debug, Clone)]
struct Quantity {
    start: usize,
    end: usize,
    values: Vec<f64>,
    ratio: bool,
    unit: Option<Unit>,
}

fn spelling_table() -> &'static HashMap<String, usize> {
    static TABLE: OnceLock<HashMap<String, usize>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = HashMap::new();
        for (i, (spellings, ..)) in UNITS.iter().enumerate() {
            for s in *spellings {
                table.insert(s.replace(' ', ""), i);
            }
        }
        table
    })
}

/// The canonical unit of a unit as written, e.g. "mcg/kg/min" -> "µg/kg/min".
fn canonical_unit(written: &str) -> Unit {
    static PER: OnceLock<Option<Regex>> = OnceLock::new();
    static POWER: OnceLock<Option<Regex>> = OnceLock::new();
    let lower = written.to_lowercase();
    let lower = match PER.get_or_init(|| Regex::new(r"\s+per\s+").ok()) {
        Some(per) => per.replace_all(&lower, "/").into_owned(),
        None => lower,
    };
    let key: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
    let table = spelling_table();
    let simple = |key: &str| {
        let &i = table.get(key)?;
        let (_, name, base, scale) = UNITS[i];
        let base = if base.is_empty() { name } else { base };
        Some(Unit { name: name.into(), base: base.into(), scale })
    };
    if let Some(unit) = simple(&key) {
        return unit;
    }
    let mut pieces: Vec<&str> = key.split('/').collect();
    // "100mg/次" and "1 tab/dose" are per dose: the same unit as "100mg" and "1 tab".
    while pieces.len() > 1 && pieces.last().is_some_and(|p| table.get(*p).is_some_and(|&i| UNITS[i].1.is_empty())) {
        pieces.pop();
    }
    if let [one] = pieces[..] {
        if let Some(unit) = simple(one) {
            return unit;
        }
    }
    let power = POWER.get_or_init(|| Regex::new(r"^[x×*]?10(?:\^|\*\*|e)?([0-9⁰¹²³⁴⁵⁶⁷⁸⁹]+)$").ok());
    let name = pieces
        .iter()
        .map(|&piece| match (table.get(piece), power.as_ref().and_then(|p| p.captures(piece))) {
            (Some(&i), _) => UNITS[i].1.to_string(),
            (None, Some(c)) => format!("10^{}", superscripts_to_digits(&c[1])),
            (None, None) => piece.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/");
    Unit { base: name.clone(), name, scale: 1.0 }
}

fn superscripts_to_digits(s: &str) -> String {
    const SUPERSCRIPTS: &str = "⁰¹²³⁴⁵⁶⁷⁸⁹";
    s.chars()
        .map(|c| match SUPERSCRIPTS.chars().position(|s| s == c) {
            Some(d) => char::from(b'0' + d as u8),
            None => c,
        })
        .collect()
}

/// The regex of a unit as written: one or more pieces joined by "/" or "per".
fn unit_pattern() -> String {
    let mut pieces: Vec<String> = UNITS
        .iter()
        .flat_map(|(spellings, ..)| spellings.iter())
        // Bare C and F are units only in capitals ("38.5C"); see GUARDED for their range.
        .filter(|s| **s != "c" && **s != "f")
        .map(|s| regex::escape(s).replace(' ', r"[ \t]?"))
        .collect();
    pieces.sort_by_key(|p| std::cmp::Reverse(p.len()));
    pieces.push(r"(?-i:C|F)".into());
    let piece = format!(r"(?:[x×*][ \t]?10(?:\^|\*\*|e)[0-9]+|[x×*][ \t]?10[⁰¹²³⁴⁵⁶⁷⁸⁹]+|{})", pieces.join("|"));
    format!(r"(?:/[ \t]?)?{piece}(?:(?:[ \t]?/[ \t]?|[ \t]+per[ \t]+){piece}){{0,2}}")
}

/// A number: thousands may be grouped by commas or by no-break and thin spaces ("50 000"),
/// never by plain spaces ("2 500 mg tablets" is two numbers); a comma before one last digit, or
/// after a lone 0, is a decimal comma ("2,5 mg", "0,25 mg"; "5,10 mg" stays a list).
const NUMBER: &str = r"0,[0-9]{1,3}(?-u:\b)|(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]{1,3}(?:[\u{a0}\u{202f}\u{2009}][0-9]{3})+|[0-9]+,[0-9](?-u:\b)|[0-9]+)(?:\.[0-9]+)?|\.[0-9]+";

/// Space between a number and its unit or the other number of a range: any, the no-break and
/// thin spaces too ("325\u{a0}mg").
const SPACE: &str = r"[ \t\u{a0}\u{202f}\u{2009}]";

fn quantity_regex() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        let date = [
            r"[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}",
            r"[0-9]{1,2}/[0-9]{1,2}/[0-9]{2,4}",
            r"[0-9]{1,2}-[0-9]{1,2}-[0-9]{2,4}",
            r"[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{2,4}",
            r"[0-9]{4}[ \t]?年(?:[ \t]?[0-9]{1,2}[ \t]?月(?:[ \t]?[0-9]{1,2}[ \t]?[日号])?)?",
            r"[0-9]{1,2}[ \t]?月[ \t]?[0-9]{1,2}[ \t]?[日号]",
            r"[0-9]{1,2}:[0-9]{2}(?::[0-9]{2})?",
        ]
        .join("|");
        let pattern = format!(
            r"(?i)(?P<date>{date})|(?P<n1>{NUMBER})(?:(?P<sep>{SPACE}*(?:-|~|至|到){SPACE}*|{SPACE}+to{SPACE}+|{SPACE}*/{SPACE}*|{SPACE}+over{SPACE}+)(?P<n2>{NUMBER}))?(?:{SPACE}*-?{SPACE}*(?P<unit>{unit}))?",
            unit = unit_pattern()
        );
        Regex::new(&pattern).ok()
    })
    .as_ref()
}

/// Small numbers written as words, with a unit (only the source is searched for these).
fn word_number_regex() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        let words = [&["half an?"], &ONES[..], &TENS[..], &["a", "an", "half"]].concat().join("|");
        let pattern = format!(
            r"(?i)(?:(?-u:\b)(?P<en>{words})(?-u:\b)|(?P<zh>[零一二两三四五六七八九十百半]+))[ \t]*-?[ \t]*(?P<unit>{unit})",
            unit = unit_pattern()
        );
        Regex::new(&pattern).ok()
    })
    .as_ref()
}

/// English number words: ONES[i] is i, TENS[i] is 10 * (i + 2).
pub(crate) const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
pub(crate) const TENS: [&str; 8] = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];

/// The value of an English number word ("two weeks", "an hour", "half a tablet").
fn english_number(word: &str) -> Option<f64> {
    let word = word.to_lowercase();
    match word.as_str() {
        "a" | "an" => Some(1.0),
        "half" | "half a" | "half an" => Some(0.5),
        w => ONES
            .iter()
            .position(|o| *o == w)
            .map(|i| i as f64)
            .or_else(|| TENS.iter().position(|t| *t == w).map(|i| (i as f64 + 2.0) * 10.0)),
    }
}

/// A Chinese numeral up to the hundreds ("两" 2, "十二" 12, "一百二十" 120, "半" 0.5).
fn chinese_number(s: &str) -> Option<f64> {
    if s == "半" {
        return Some(0.5);
    }
    let (mut total, mut current) = (0.0, None::<f64>);
    for c in s.chars() {
        match "零一二三四五六七八九".chars().position(|d| d == c) {
            Some(d) => current = Some(d as f64),
            None if c == '两' => current = Some(2.0),
            None if c == '十' => total += current.take().unwrap_or(1.0) * 10.0,
            None if c == '百' => total += current.take()? * 100.0,
            None => return None,
        }
    }
    Some(total + current.unwrap_or(0.0))
}

/// A number as written ("1,000", "2.50", ".5") as a value.
pub(crate) fn parse_number(written: &str) -> Option<f64> {
    let decimal_comma = written.split_once(',').is_some_and(|(before, after)| (before == "0" || after.len() == 1) && !after.contains('.'));
    let written = if decimal_comma { written.replace(',', ".") } else { written.to_string() };
    written.replace([',', '\u{a0}', '\u{202f}', '\u{2009}'], "").parse().ok()
}

/// The unit that a vital-sign label just before a number implies ("BP 120/80", "HR: 88").
fn implied_unit(text: &str, start: usize, value: f64) -> Option<Unit> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let re = RE
        .get_or_init(|| {
            Regex::new(
                r"(?x)
                (?: (?P<bp> (?-u:\b)(?i:bp|b/p|nibp|sbp|dbp|blood\ pressure) | 血压 )
                  | (?P<rate> (?-u:\b)(?i:hr|heart\ rate|pulse(?:\ rate)?|rr|resp(?:iratory)?\ rate|resps?) | (?-u:\b)[PR] | 心率 | 脉搏 | 脉率 )
                  | (?P<temp> (?-u:\b)(?i:temp(?:erature)?|tmax) | (?-u:\b)T | 体温 )
                  | (?P<sat> (?-u:\b)(?i:spo2|sao2|o2\ sat(?:uration)?|sats?|saturation) | 血氧饱和度 )
                ) [\ \t]* (?: [:=] | (?-u:\b)(?i:of|was|is|at)(?-u:\b) )? [\ \t]* $",
            )
            .ok()
        })
        .as_ref()?;
    let mut from = start.saturating_sub(32);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let caps = re.captures(&text[from..start])?;
    let name = if caps.name("bp").is_some() {
        "mmhg"
    } else if caps.name("rate").is_some() {
        "/min"
    } else if caps.name("sat").is_some() {
        "%"
    } else if (30.0..=45.0).contains(&value) {
        "°c"
    } else if (90.0..=110.0).contains(&value) {
        "°f"
    } else {
        return None;
    };
    Some(Unit { name: name.into(), base: name.into(), scale: 1.0 })
}

/// The quantities of a folded text. With `bare`, numbers without a unit come too (unit
/// `None`), except list numbering; with `words`, numbers spelled as words.
fn quantities(text: &str, bare: bool, words: bool) -> Vec<Quantity> {
    let mut out = Vec::new();
    let Some(re) = quantity_regex() else { return out };
    for caps in re.captures_iter(text) {
        let (Some(n1), None) = (caps.name("n1"), caps.name("date")) else { continue };
        if !number_starts_word(text, n1.start()) {
            continue;
        }
        let mut values = vec![parse_number(n1.as_str())];
        if let Some(n2) = caps.name("n2") {
            values.push(parse_number(n2.as_str()));
        }
        let Some(values) = values.into_iter().collect::<Option<Vec<f64>>>() else { continue };
        // "120/80" and the spoken "120 over 80" are ratios; "5-10" and "5 to 10" are ranges.
        let ratio = caps.name("sep").is_some_and(|s| matches!(s.as_str().trim(), "/" | "over"));
        let mut end = caps.get(0).map_or(n1.end(), |m| m.end());
        let mut unit = caps.name("unit").and_then(|u| accept_unit(text, u.start(), u.end(), values[0]));
        if unit.is_none() {
            end = caps.name("n2").unwrap_or(n1).end();
            unit = implied_unit(text, n1.start(), values[0]);
        }
        if unit.is_none() && (!bare || is_list_number(text, n1.start(), end)) {
            continue;
        }
        // The span takes in the "q" of "q6h" and the "x" of "x3 days".
        let start = match text[..n1.start()].chars().next_back() {
            Some(c @ ('q' | 'Q' | 'x' | 'X')) => n1.start() - c.len_utf8(),
            _ => n1.start(),
        };
        out.push(Quantity { start, end, values, ratio, unit });
    }
    if words {
        if let Some(re) = word_number_regex() {
            for caps in re.captures_iter(text) {
                let value = match (caps.name("en"), caps.name("zh")) {
                    (Some(w), _) => english_number(w.as_str()),
                    (None, Some(z)) => chinese_number(z.as_str()),
                    _ => None,
                };
                let (Some(value), Some(all), Some(u)) = (value, caps.get(0), caps.name("unit")) else { continue };
                if let Some(unit) = accept_unit(text, u.start(), u.end(), value) {
                    out.push(Quantity {
                        start: all.start(),
                        end: all.end(),
                        values: vec![value],
                        ratio: false,
                        unit: Some(unit),
                    });
                }
            }
        }
    }
    out
}

/// Whether a number at `start` begins a token: "A1c", "SpO2", "T2DM" and "10^9" hold digits
/// that are not quantities, while "q6h" and "x3 days" are.
fn number_starts_word(text: &str, start: usize) -> bool {
    let mut before = text[..start].chars().rev();
    match before.next() {
        Some(c) if c.is_ascii_alphanumeric() || matches!(c, '.' | '^' | '_' | ',') => {
            matches!(c, 'q' | 'Q' | 'x' | 'X') && !before.next().is_some_and(|c| c.is_ascii_alphanumeric())
        }
        _ => true,
    }
}

/// The unit at `start..end` of `text`, unless it runs on into a word ("5 hepatic") or is a
/// guarded spelling out of its range.
fn accept_unit(text: &str, start: usize, end: usize, value: f64) -> Option<Unit> {
    let written = &text[start..end];
    // Only the end is checked: "81mg" starts right after its number.
    let runs_on = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if runs_on(written.chars().next_back()) && runs_on(text[end..].chars().next()) {
        return None;
    }
    let key: String = written.to_lowercase().chars().filter(|c| !c.is_whitespace()).collect();
    if ONLY_IN_COMPOUND.contains(&key.as_str()) {
        return None;
    }
    if GUARDED.iter().any(|(s, ..)| *s == key) {
        let (.., name) = GUARDED.iter().find(|(s, low, high, _)| *s == key && (*low..=*high).contains(&value))?;
        return Some(Unit { name: name.to_string(), base: name.to_string(), scale: 1.0 });
    }
    Some(canonical_unit(written))
}

/// "1." or "2)" at the start of a line: list numbering, not a quantity.
fn is_list_number(text: &str, start: usize, end: usize) -> bool {
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    text[line_start..start].trim().is_empty() && text[end..].starts_with(['.', ')', '、'])
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Units of doses, amounts and durations: a number that the source writes without a unit
/// ("stage 3", "2+ edema", "aspirin 81") does not support them, while it does support lab and
/// vital-sign units, which notes often leave out ("Cr 1.8", "HR 102").
const NEED_UNIT_IN_SOURCE: &[&str] = &[
    "mg", "ml", "min", "month", "year", "u", "mu", "mmol", "µmol", "nmol", "mol", "meq", "tab", "cap", "puff", "drop",
    "支", "袋",
];

/// Whether `unit` is one of a dose, an amount or a duration, which a number without a unit in
/// the source does not support: those of [`NEED_UNIT_IN_SOURCE`] and their rates per time or
/// per body weight or surface ("mcg/min", "units/kg/hr", "mg/day"), but not concentrations
/// ("mg/dL", "mmol/L"), which labs write without their unit.
fn needs_unit_in_source(unit: &Unit) -> bool {
    if !unit.name.contains('/') {
        return NEED_UNIT_IN_SOURCE.contains(&unit.base.as_str()) && unit.name != "kg";
    }
    // A rate of a dose: a mass (not kg: "kg/m2" is a BMI), units or a count first. Volumes per
    // time ("mL/min", "L/min", "mL/hr") are readings (eGFR, PEF, urine output).
    let mut pieces = unit.name.split('/').map(canonical_unit);
    let first = pieces.next().map(|u| (u.name, u.base)).unwrap_or_default();
    let dose = first.0 != "kg" && first.1 != "ml" && NEED_UNIT_IN_SOURCE.contains(&first.1.as_str());
    dose && pieces.all(|p| matches!(p.base.as_str(), "min" | "mg" | "m2"))
}

/// Whether source quantity `s` supports value `v` of an output quantity with unit `unit`.
fn supports_value(s: &Quantity, v: f64, unit: &Unit) -> bool {
    match &s.unit {
        None if needs_unit_in_source(unit) => false,
        None => s.values.iter().any(|&sv| close(sv, v)),
        Some(su) => su.base == unit.base && s.values.iter().any(|&sv| close(sv * su.scale, v * unit.scale)),
    }
}

/// Whether the two parts of source ratio `s` support the range `q`, end for end.
fn supported_range(s: &Quantity, q: &Quantity, unit: &Unit) -> bool {
    q.values.iter().zip(&s.values).all(|(&v, &sv)| supports_value(&Quantity { values: vec![sv], ratio: false, ..s.clone() }, v, unit))
}

/// A common fraction: "1/2", "3/4", "2/3" (not a combination's strengths, "5/325 mg").
fn is_fraction(values: &[f64]) -> bool {
    let whole = |v: f64| v.fract() == 0.0;
    matches!(values, &[n, d] if whole(n) && whole(d) && 0.0 < n && n < d && d <= 8.0)
}

/// The source's quantities by every number they could match an output's value with: each
/// value as written and scaled to its unit's base, and a fraction's quotient, sorted. An
/// output quantity is compared with those near its own numbers only, so that a long draft
/// against a long source is not every quantity against every other (quadratic: a 4.5 MB pair
/// ran for minutes).
struct Index<'a> {
    sources: &'a [Quantity],
    keys: Vec<(f64, usize)>,
}

impl<'a> Index<'a> {
    fn new(sources: &'a [Quantity]) -> Self {
        let mut keys = Vec::new();
        for (i, s) in sources.iter().enumerate() {
            let scale = s.unit.as_ref().map_or(1.0, |u| u.scale);
            let quotient = match s.values[..] {
                [a, b] if s.ratio => Some(a / b),
                _ => None,
            };
            for x in s.values.iter().copied().chain(quotient) {
                keys.extend([(x, i), (x * scale, i)].into_iter().filter(|k| k.0.is_finite()));
            }
        }
        keys.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        keys.dedup();
        Index { sources, keys }
    }

    /// The quantities with a number `close` to `v` or to `v` in its unit's base (maybe twice).
    fn near(&self, v: f64, unit: &Unit) -> impl Iterator<Item = &'a Quantity> + '_ {
        [v, v * unit.scale].into_iter().flat_map(move |x| {
            // `close` allows 1e-9 of the larger magnitude: twice that around x holds them all.
            let t = 2e-9 * x.abs().max(1.0);
            let lo = self.keys.partition_point(|k| k.0 < x - t);
            let hi = self.keys.partition_point(|k| k.0 <= x + t);
            self.keys[lo..hi.max(lo)].iter().map(|&(_, i)| &self.sources[i])
        })
    }
}

fn supported(index: &Index, q: &Quantity, unit: &Unit) -> bool {
    // A fraction of a dose ("1/2 tab") is its value: neither of its parts alone ("1 tab",
    // "2 tabs") and the same as the source's "half a tablet". A ratio of readings ("120/80")
    // supports each of its parts ("SBP 120 mmHg").
    let dose = needs_unit_in_source(unit);
    if q.ratio {
        (dose && is_fraction(&q.values))
            && index.near(q.values[0] / q.values[1], unit).any(|s| !s.ratio && supports_value(s, q.values[0] / q.values[1], unit))
            || index.near(q.values[0], unit).any(|s| {
                s.ratio
                    && s.values.len() == q.values.len()
                    && q.values.iter().zip(&s.values).all(|(&v, &sv)| {
                        let one = Quantity { values: vec![sv], ratio: false, ..s.clone() };
                        supports_value(&one, v, unit)
                    })
            })
    } else {
        // "1/2 tabs" may be the UK's "one to two": a range of its two parts is supported.
        let parts = |s: &Quantity| s.ratio && s.values.len() == 2 && q.values.len() == 2 && supported_range(s, q, unit);
        index.near(q.values[0], unit).any(parts) || q.values.iter().all(|&v| {
            index.near(v, unit).any(|s| match (dose, s.ratio && is_fraction(&s.values)) {
                (true, true) => supports_value(&Quantity { values: vec![s.values[0] / s.values[1]], ratio: false, ..s.clone() }, v, unit),
                _ => supports_value(s, v, unit),
            })
        })
    }
}

/// Unsupported numbers with units in `output`.
pub fn check(source: &str, output: &str) -> Vec<Finding> {
    let (source, folded) = (fold(source), fold(output));
    let sources = quantities(&source, true, true);
    let index = Index::new(&sources);
    let (original, indexed) = (Indexed::new(output), Indexed::new(&folded));
    let mut findings = Vec::new();
    for q in quantities(&folded, false, false) {
        let Some(unit) = &q.unit else { continue };
        if supported(&index, &q, unit) {
            continue;
        }
        let written = folded[q.start..q.end].trim();
        let mut detail = format!("{written} does not occur in the source");
        // The first such quantity of the source, in its order.
        let same = |s: &&Quantity| {
            s.unit.is_some() && s.values.len() == q.values.len() && q.values.iter().zip(&s.values).all(|(&v, &sv)| close(sv, v))
        };
        let plain = Unit { scale: 1.0, ..unit.clone() };
        if let Some(s) = index.near(q.values[0], &plain).filter(same).min_by_key(|s| s.start) {
            detail.push_str(&format!(" (the source has {})", source[s.start..s.end].trim()));
        }
        findings.push(finding(FindingKind::UnsupportedNumber, &original, &indexed, q.start, q.end, detail));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `supported` as it was, every source quantity against the output's: the reference
    /// for the index.
    fn supported_by_scan(sources: &[Quantity], q: &Quantity, unit: &Unit) -> bool {
        let dose = needs_unit_in_source(unit);
        if q.ratio {
            (dose && is_fraction(&q.values)) && sources.iter().any(|s| !s.ratio && supports_value(s, q.values[0] / q.values[1], unit))
                || sources.iter().any(|s| {
                    s.ratio
                        && s.values.len() == q.values.len()
                        && q.values.iter().zip(&s.values).all(|(&v, &sv)| supports_value(&Quantity { values: vec![sv], ratio: false, ..s.clone() }, v, unit))
                })
        } else {
            let parts = |s: &Quantity| s.ratio && s.values.len() == 2 && q.values.len() == 2 && supported_range(s, q, unit);
            sources.iter().any(parts)
                || q.values.iter().all(|&v| {
                    sources.iter().any(|s| match (dose, s.ratio && is_fraction(&s.values)) {
                        (true, true) => supports_value(&Quantity { values: vec![s.values[0] / s.values[1]], ratio: false, ..s.clone() }, v, unit),
                        _ => supports_value(s, v, unit),
                    })
                })
        }
    }

    #[test]
    fn the_index_finds_what_scanning_every_source_quantity_finds() {
        let mut seed = 11u64;
        let mut pick = |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let units = ["mg", "g", "mcg", "mL", "L", "mmHg", "bpm", "tab", "tabs", "%", "mmol/L", "days", "weeks", ""];
        let numbers = ["1", "2", "0.5", "1/2", "120/80", "80/120", "1000", "1,000", "2.50", "2.5", "7", "1-2", "5/325", "81", "0.001"];
        for _ in 0..300 {
            let mut text = || {
                (0..12).map(|_| format!("{} {}", numbers[pick(numbers.len() as u64) as usize], units[pick(units.len() as u64) as usize])).collect::<Vec<_>>().join(", ")
            };
            let (source, output) = (fold(&text()), fold(&text()));
            let sources = quantities(&source, true, true);
            let index = Index::new(&sources);
            for q in quantities(&output, false, false) {
                let Some(unit) = &q.unit else { continue };
                assert_eq!(supported(&index, &q, unit), supported_by_scan(&sources, &q, unit), "{source} | {output} | {}", &output[q.start..q.end]);
            }
        }
    }

    fn flagged(source: &str, output: &str) -> Vec<String> {
        check(source, output).into_iter().map(|f| f.text).collect()
    }

    #[test]
    fn spacing_case_and_unit_synonyms_are_normalized() {
        let source = "aspirin 81mg, B12 100 mcg, 5 mL, T 38.5 ℃, K 4.0 mmol/L";
        let output = "aspirin 81 MG, B12 100 μg, 5 ml, 38.5°C, 38.5 C, 4 mmol/l";
        assert!(flagged(source, output).is_empty(), "{:?}", check(source, output));
    }

    #[test]
    fn trailing_zeros_thousands_and_scales_are_normalized() {
        let source = "troponin 2.50 ng/mL; 1,000 mg; 1 week";
        assert!(flagged(source, "troponin 2.5 ng/mL; 1000 mg; 1 g; 7 days").is_empty());
    }

    #[test]
    fn a_changed_value_or_unit_is_flagged_with_its_span() {
        let findings = check("metoprolol 25 mg", "metoprolol 50 mg, then 25 mcg");
        let texts: Vec<_> = findings.iter().map(|f| (f.text.as_str(), f.start, f.end)).collect();
        assert_eq!(texts, [("50 mg", 11, 16), ("25 mcg", 23, 29)]);
        assert!(findings[1].detail.contains("the source has 25 mg"), "{}", findings[1].detail);
    }

    #[test]
    fn blood_pressure_must_match_as_a_pair() {
        assert!(flagged("BP 120/80", "BP 120/80 mmHg, HR 88 bpm").contains(&"88 bpm".to_string()));
        assert_eq!(flagged("BP 120/80 mmHg", "BP 80/120 mmHg"), ["80/120 mmHg"]);
        assert!(flagged("血压120/80mmHg，心率88次/分", "血压 120/80 mmHg，心率 88 bpm").is_empty());
    }

    #[test]
    fn dates_years_and_list_numbers_are_not_quantities() {
        let source = "Admitted 2023-05-12.";
        let output = "1. Admitted on 05/12/2023 at 10:30.\n2. Seen in 2019. 2023年5月12日出院。";
        assert!(flagged(source, output).is_empty());
    }

    #[test]
    fn a_list_number_in_the_source_does_not_support_a_dose() {
        assert_eq!(flagged("1. Aspirin\n2. Rest", "aspirin 2 mg"), ["2 mg"]);
    }

    #[test]
    fn labels_like_a1c_and_spo2_do_not_make_numbers() {
        assert!(flagged("HbA1c 7.2%, SpO2 95%", "HbA1c 7.2 %, SpO2 95 percent").is_empty());
        assert_eq!(flagged("HbA1c 7.2%", "HbA1c 8.1%"), ["8.1%"]);
    }

    #[test]
    fn numbers_in_words_in_the_source_support_digits() {
        assert!(flagged("follow up in two weeks; 疗程两周", "follow up in 2 weeks; 疗程2周").is_empty());
        assert!(flagged("for an hour, then forty minutes", "for 1 hour, then 40 min").is_empty());
        assert_eq!(english_number("Seventy"), Some(70.0));
    }

    #[test]
    fn ranges_and_ratios_of_powers_are_quantities() {
        assert!(flagged("5 to 10 mg; WBC 12.5 x10^9/L", "5-10 mg; WBC 12.5×10⁹/L").is_empty());
        assert_eq!(flagged("5 to 10 mg", "5-20 mg"), ["5-20 mg"]);
    }

    #[test]
    fn any_space_separates_a_number_from_its_unit_and_decimal_commas_are_decimals() {
        for space in ['\u{a0}', '\u{202f}', '\u{2009}'] {
            assert_eq!(flagged("Aspirin 81 mg", &format!("Aspirin 325{space}mg")), [format!("325{space}mg")]);
            assert!(flagged(&format!("Aspirin 81{space}mg"), "Aspirin 81 mg").is_empty());
        }
        assert_eq!(flagged("25 mg", "2,5 mg; 0,5 mg"), ["2,5 mg", "0,5 mg"]);
        assert!(flagged("2,5 mg and 1,000 mg, 0,25 mg", "2.5 mg and 1000 mg, 0.25 mg").is_empty());
        assert_eq!(flagged("Doses 5,10 mg tried", "5.1 mg"), ["5.1 mg"]);
    }

    #[test]
    fn a_fraction_of_a_dose_is_its_value_and_strengths_of_a_combination_are_not() {
        assert_eq!(flagged("Take 1/2 tab", "Take 1 tab, then 2 tabs"), ["1 tab", "2 tabs"]);
        assert!(flagged("half a tablet daily", "1/2 tablet daily").is_empty());
        assert!(flagged("Take 1/2 tab", "Take 1/2 tablet").is_empty());
        assert!(flagged("Norco 5/325 mg", "Norco 5/325 mg, 5 mg of hydrocodone").is_empty());
        assert!(flagged("BP 120/80", "SBP 120 mmHg").is_empty());
        assert!(flagged("Take 1/2 tabs prn", "Take 1-2 tabs prn").is_empty());
    }

    #[test]
    fn a_bare_number_supports_no_dose_rate_but_a_concentration() {
        assert_eq!(flagged("GCS 5", "norepinephrine 5 mcg/min"), ["5 mcg/min"]);
        assert_eq!(flagged("Room 10, score 18", "10 units/hr, 18 units/kg/hr"), ["10 units/hr", "18 units/kg/hr"]);
        assert_eq!(flagged("Bed 50", "50 mg/day"), ["50 mg/day"]);
        assert!(flagged("troponin 0.04, glucose 5.6", "troponin 0.04 ng/mL, glucose 5.6 mmol/L").is_empty());
        let readings = "BMI 32 kg/m2, CrCl 45 mL/min, PEF 400 L/min, UOP 30 mL/hr";
        assert!(flagged("BMI 32, CrCl 45, PEF 400, UOP 30", readings).is_empty());
    }

    #[test]
    fn a_long_draft_is_checked_with_offsets_right_to_its_end() {
        // 1.3 MB: each finding's offsets counted from the start made this take minutes.
        let draft = "aspirin 5 mg, no fever, 体温38℃. ".repeat(40_000);
        let findings = crate::checks::check("aspirin 81 mg, fever, 体温37℃", &draft);
        assert_eq!(findings.iter().filter(|f| f.kind == FindingKind::UnsupportedNumber).count(), 80_000);
        let last = findings.iter().filter(|f| f.kind == FindingKind::UnsupportedNumber).last().unwrap();
        assert_eq!((last.text.as_str(), last.start), ("38℃", draft.chars().count() - 5));
    }

    #[test]
    fn per_dose_units_and_spaced_thousands_are_normalized() {
        assert!(
            flagged("阿司匹林100mg/次; vitamin D 50\u{a0}000 IU", "阿司匹林 100 mg; vitamin D 50,000 IU").is_empty()
        );
        assert_eq!(canonical_unit("mg/次").name, "mg");
        assert_eq!(canonical_unit("g/次"), canonical_unit("g"));
    }

    #[test]
    fn chinese_numerals_parse() {
        assert_eq!(chinese_number("两"), Some(2.0));
        assert_eq!(chinese_number("十二"), Some(12.0));
        assert_eq!(chinese_number("二十"), Some(20.0));
        assert_eq!(chinese_number("一百二十"), Some(120.0));
        assert_eq!(chinese_number("一般"), None);
    }

    #[test]
    fn canonical_units_join_compound_pieces() {
        assert_eq!(canonical_unit("mcg/kg/min").name, "µg/kg/min");
        assert_eq!(canonical_unit("mg per day").name, "mg/day");
        assert_eq!(canonical_unit("beats per minute").name, "/min");
        assert_eq!(canonical_unit("毫摩尔/升").name, "mmol/l");
        assert_eq!(canonical_unit("x10^9/L").name, "10^9/l");
    }
}
