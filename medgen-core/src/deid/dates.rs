//! Dates: finding every date element but a lone year, and shifting a date by a number of days
//! while keeping its format (03/14/2024 stays mm/dd/yyyy, 14 Mar 2024 stays d Mon yyyy,
//! 2024年3月14日 stays Chinese, a missing year stays missing).

use std::ops::Range;

use regex::Captures;

use super::detect::Span;
use super::lexicon::{captures, regex, Pattern};
use super::patterns::chinese_number;
use super::Category;

const MONTHS: &str = r"(?i:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)";
const WEEKDAY: &str = r"(?:(?P<wd>(?i:monday|tuesday|wednesday|thursday|friday|saturday|sunday)),?[ \t\x{3000}]+)?";
const CN_DIGITS: &str = "〇零一二三四五六七八九十";

/// Month names in the other languages notes are written in, January to December: Spanish,
/// Tagalog, Portuguese, French, Italian, German, Malay, Indonesian, Dutch. A name several
/// languages share is read in the first that has it (and a shifted date written in it).
const FOREIGN_MONTHS: [[&str; 12]; 9] = [
    ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre"],
    ["enero", "pebrero", "marso", "abril", "mayo", "hunyo", "hulyo", "agosto", "setyembre", "oktubre", "nobyembre", "disyembre"],
    ["janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto", "setembro", "outubro", "novembro", "dezembro"],
    ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"],
    ["gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto", "settembre", "ottobre", "novembre", "dicembre"],
    ["januar", "februar", "märz", "april", "mai", "juni", "juli", "august", "september", "oktober", "november", "dezember"],
    ["januari", "februari", "mac", "april", "mei", "jun", "julai", "ogos", "september", "oktober", "november", "disember"],
    ["januari", "februari", "maret", "april", "mei", "juni", "juli", "agustus", "september", "oktober", "november", "desember"],
    ["januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober", "november", "december"],
];

/// Foreign month names that are also words elsewhere ("Mayo", "mars", "MAC", "MAI"): these
/// count only with a day, and in lower case only with the day before them ("15 mac").
const FOREIGN_AMBIGUOUS: [&str; 5] = ["mac", "mars", "mayo", "mai", "mei"];

/// The alternation of [`FOREIGN_MONTHS`] without the names English shares, which its own
/// shapes read (April, Jun), longest first.
fn foreign_months() -> String {
    let mut names: Vec<&str> = FOREIGN_MONTHS.iter().flatten().copied().collect();
    names.retain(|n| !MONTH_NAMES.iter().any(|m| m.eq_ignore_ascii_case(n) || m[..3].eq_ignore_ascii_case(n)));
    names.sort_by_key(|n| std::cmp::Reverse(n.chars().count()));
    names.dedup();
    format!("(?i:{})", names.join("|"))
}

/// The language and month (1 to 12) of a foreign month name.
fn foreign_month(name: &str) -> Option<(usize, u32)> {
    let lower = name.to_lowercase();
    FOREIGN_MONTHS.iter().enumerate().find_map(|(l, ms)| ms.iter().position(|m| *m == lower).map(|i| (l, i as u32 + 1)))
}

const SP: &str = r"[ \t\x{3000}]+";

// "15 Mac 2023", "el 4 de marzo de 2023", "4. März", "le 1er mars", "ika-5 ng Marso" (the
// article belongs to the date).
regex!(
    FOREIGN_DMY = format!(
        r"(?:\b(?i:el|le){SP})?(?:\b(?i:ika)-?)?\b(?P<d>\d{{1,2}})(?:er|º|°|\.)?{SP}(?:(?i:de|ng){SP})?(?P<fmon>{})\b(?:,?{SP}(?:(?i:de|del){SP})?(?P<y>\d{{4}})\b)?",
        foreign_months()
    )
);
// "Enero 20", "Marso 7, 2024".
regex!(FOREIGN_MDY = format!(r"\b(?P<fmon>{})\.?{SP}(?P<d>\d{{1,2}})\b(?:,?{SP}(?P<y>\d{{4}})\b)?", foreign_months()));
// "marzo de 2023", "Mac 2023".
regex!(FOREIGN_MY = format!(r"\b(?P<fmon>{}){SP}(?:(?i:de|del){SP})?(?P<y>\d{{4}})\b", foreign_months()));
// Taiwan's Minguo years (year 1 is 1912): 民國20年8月3日 (read simplified), 112.03.05.
regex!(ROC_YMD = r"民[国國][ \t\x{3000}]*(?P<roc>\d{1,3})[ \t\x{3000}]*年[ \t\x{3000}]*(?P<mnum>\d{1,2})[ \t\x{3000}]*月(?:[ \t\x{3000}]*(?P<d>\d{1,2})[ \t\x{3000}]*[日号])?");
regex!(ROC_DOTTED = r"\b(?P<roc>1[01]\d)\.(?P<mnum>\d{2})\.(?P<d>\d{2})\b");

regex!(
    TEXT_MDY = format!(
        r"\b{WEEKDAY}(?P<mon>{MONTHS})\.?[ \t\x{{3000}}]+(?P<d>\d{{1,2}})(?P<sfx>st|nd|rd|th)?(?:[ \t\x{{3000}}]*[-–][ \t\x{{3000}}]*(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?)?(?:,?[ \t\x{{3000}}]+(?P<y>\d{{4}}))?\b"
    )
);
regex!(
    TEXT_DMY = format!(
        r"\b{WEEKDAY}(?P<d>\d{{1,2}})(?P<sfx>st|nd|rd|th)?(?:[ \t\x{{3000}}]+(?:of[ \t\x{{3000}}]+)?(?P<mon>{MONTHS})\.?(?:,?[ \t\x{{3000}}]+(?P<y>\d{{4}}))?|-(?P<mon2>{MONTHS})-(?P<y2>\d{{4}}|\d{{2}}))\b"
    )
);
regex!(TEXT_MDY_DASHED = format!(r"\b(?P<mon>{MONTHS})-(?P<d>\d{{1,2}})-(?P<y>\d{{4}})\b"));
regex!(TEXT_MY = format!(r"\b(?P<mon>{MONTHS})\.?,?[ \t\x{{3000}}]+(?P<y>\d{{4}})\b"));
regex!(MONTH_ONLY = r"\b(?P<mon>January|February|March|April|June|July|August|September|October|November|December)\b");
regex!(NUM_SLASH = r"\b(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<y>\d{4}|\d{2})\b");
regex!(NUM_DASH = r"\b(?P<a>\d{1,2})-(?P<b>\d{1,2})-(?P<y>\d{4}|\d{2})\b");
regex!(NUM_DOT = r"\b(?P<a>\d{1,2})\.(?P<b>\d{1,2})\.(?P<y>\d{4})\b");
regex!(ISO = r"\b(?P<y>\d{4})[-/.](?P<mnum>\d{1,2})[-/.](?P<d>\d{1,2})\b");
regex!(SHORT = r"\b(?P<a>\d{1,2})/(?P<b>\d{1,2})\b");
regex!(NUM_MONTH_YEAR = r"\b(?P<mnum>0?[1-9]|1[0-2])/(?P<y>(?:19|20)\d{2})\b");
regex!(
    CN_YMD = format!(
        r"(?P<y>\d{{4}}|[{CN_DIGITS}]{{4}})[ \t\x{{3000}}]*年[ \t\x{{3000}}]*(?P<mnum>\d{{1,2}}|[{CN_DIGITS}]{{1,3}})[ \t\x{{3000}}]*月(?:[ \t\x{{3000}}]*(?P<d>\d{{1,2}}|[{CN_DIGITS}]{{1,3}})[ \t\x{{3000}}]*[日号])?"
    )
);
regex!(CN_MD = format!(r"(?P<mnum>\d{{1,2}}|[{CN_DIGITS}]{{1,3}})月(?P<d>\d{{1,2}}|[{CN_DIGITS}]{{1,3}})[日号]"));
// A month without its year or day, where the words around make it a month (3月中旬, 去年12月),
// not a duration (3个月, 3月余).
regex!(CN_MONTH_BARE = format!(r"(?P<mnum>\d{{1,2}}|[{CN_DIGITS}]{{1,3}})月"));
regex!(
    CN_MONTH = format!(
        r"(?:今年|去年|前年|明年|同年|当年)(?P<mnum>\d{{1,2}}|[{CN_DIGITS}]{{1,3}})月|(?P<mnum2>\d{{1,2}}|[{CN_DIGITS}]{{1,3}})月(?:上旬|中旬|下旬|初|底|末|份)"
    )
);
// Words before a bare m/d that make it a date ("on 3/12"), and after it that make it a dose.
regex!(
    SHORT_CUE_BEFORE = r"(?i)\b(?:on|since|from|until|till|by|for|dated|date|dob|before|after|through|thru|starting|beginning|ending|of|last|next|due|expires?|effective|seen|admitted|discharged|scheduled|planned|dose|adm|admission|orif|or|op|surgery|booked|review|appt|appointment|fall(?:[ \t]+at[ \t]+home)?|fell|signed|drawn|taken|collected|sent|received|reported|started|stopped|ceased|commenced|cxr|ct|mri|echo|ecg|ekg|xr|bloods|d/c)[ \t\x{3000}]*:?[ \t\x{3000}]*$"
);
// Words before a bare a/b that make it a measurement or a score (BP 9/15, strength 4/5).
regex!(
    SHORT_MEASURE_BEFORE = r"(?i)\b(?:bp|blood pressure|ratio|score|scored|grade|strength|power|pain|apgar|gcs|murmur|vision|acuity|va|mmse|moca|phq|gad|ecog|fio2|peep|vent|ventilator|ac|simv|ps|cpap|bipap|tidal|x|times|of)[ \t\x{3000}]*:?[ \t\x{3000}]*$"
);
regex!(
    SHORT_DOSE_AFTER = r"(?i)^[ \t\x{3000}]*(?:tab|tabs|tablet|tablets|pill|pills|dose|doses|strength|cup|cups|inch|inches|mg|ml|hour|hours|hr|hrs|of)\b"
);

/// The shapes, from most to least specific, with the confidence of a match.
fn shapes() -> [(&'static Pattern, f32); 19] {
    [
        (&ROC_YMD, 0.95),
        (&CN_YMD, 0.95),
        (&ISO, 0.95),
        (&TEXT_MDY, 0.95),
        (&TEXT_DMY, 0.95),
        (&TEXT_MDY_DASHED, 0.95),
        (&FOREIGN_DMY, 0.93),
        (&FOREIGN_MDY, 0.9),
        (&TEXT_MY, 0.9),
        (&FOREIGN_MY, 0.88),
        (&NUM_MONTH_YEAR, 0.85),
        (&NUM_SLASH, 0.95),
        (&NUM_DASH, 0.9),
        (&NUM_DOT, 0.9),
        (&ROC_DOTTED, 0.85),
        (&CN_MD, 0.93),
        (&CN_MONTH, 0.85),
        (&SHORT, 0.8),
        (&MONTH_ONLY, 0.6),
    ]
}

/// Adds every date in `text` to `out`.
pub(crate) fn find(text: &str, out: &mut Vec<Span>) {
    for (re, conf) in shapes() {
        let is_short = std::ptr::eq(re, &SHORT);
        for c in captures(re, text) {
            let Some(m) = c.get(0) else { continue };
            // Numeric shapes inside longer numbers (7.31/58/62) are not dates.
            let numeric = c.name("a").is_some()
                || std::ptr::eq(re, &ISO)
                || std::ptr::eq(re, &NUM_MONTH_YEAR)
                || std::ptr::eq(re, &ROC_DOTTED);
            if numeric && glued_to_number(text, m.range()) || parse_captures(&c, false).is_none() {
                continue;
            }
            if is_short && !short_date_has_cue(text, m.range()) {
                continue;
            }
            // 去年12月: "last year" is not a date element, the month is.
            let start =
                if std::ptr::eq(re, &CN_MONTH) { c.name("mnum").map_or(m.start(), |x| x.start()) } else { m.start() };
            out.push(Span::new(Category::Date, start, m.end(), conf));
        }
    }
}

/// A bare m/d is a date after a cue ("on 3/12"), or when its day cannot be a fraction's small
/// denominator (9/27) and no measurement word comes before it.
fn short_date_has_cue(text: &str, r: Range<usize>) -> bool {
    let line_start = text[..r.start].rfind('\n').map_or(0, |i| i + 1);
    let mut from = line_start.max(r.start.saturating_sub(40));
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let before = &text[from..r.start];
    let mut after_end = (r.end + 24).min(text.len());
    while !text.is_char_boundary(after_end) {
        after_end -= 1;
    }
    if SHORT_DOSE_AFTER.as_ref().is_some_and(|re| re.is_match(&text[r.end..after_end])) {
        return false;
    }
    let cued = SHORT_CUE_BEFORE.as_ref().is_some_and(|re| re.is_match(before));
    let number = |i: usize| -> u32 { text[r.clone()].split('/').nth(i).and_then(|d| d.parse().ok()).unwrap_or(0) };
    let (first, day) = (number(0), number(1));
    // The day first, as outside the US ("28/6"): a first number of 13 to 31 and a month.
    let day_first = (13..=31).contains(&first) && (1..=12).contains(&day);
    cued || (day >= 13 || day_first) && !SHORT_MEASURE_BEFORE.as_ref().is_some_and(|re| re.is_match(before))
}

/// Part of a longer number or ratio: 7.31/58/62, 1/2/3/4, 3.12.2024.5.
fn glued_to_number(text: &str, r: Range<usize>) -> bool {
    let before = text[..r.start].chars().rev().take(2).collect::<Vec<_>>();
    let after = text[r.end..].chars().take(2).collect::<Vec<_>>();
    let joins = |c: char| matches!(c, '.' | '/' | '-' | ':' | ',');
    let digit_before = before.first().is_some_and(|c| c.is_ascii_digit())
        || before.first().is_some_and(|&c| joins(c)) && before.get(1).is_some_and(|c| c.is_ascii_digit());
    let digit_after = after.first().is_some_and(|c| c.is_ascii_digit())
        || after.first().is_some_and(|&c| c == '/' || c == '.' || c == '-')
            && after.get(1).is_some_and(|c| c.is_ascii_digit());
    digit_before || digit_after
}

/// How one piece of a date is written, so that a shifted date is written the same way.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Piece {
    Year {
        digits: usize,
        chinese: bool,
    },
    MonthNumber {
        padded: bool,
        chinese: bool,
    },
    MonthName {
        full: bool,
        sept: bool,
        upper: bool,
    },
    Day {
        padded: bool,
        ordinal: bool,
        chinese: bool,
    },
    /// A month named in another language: [`FOREIGN_MONTHS`]`[lang]`, in lower case (0),
    /// capitalised (1) or capitals (2).
    ForeignMonth {
        lang: u8,
        case: u8,
    },
    /// A year of Taiwan's Minguo calendar (1912 is its year 1).
    RocYear,
    /// The end day of a range ("March 14-16").
    Day2,
    Weekday {
        upper: bool,
    },
}

/// A date as written: what it says and where each piece is, relative to the date's text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Parsed {
    pub year: Option<i32>,
    pub month: u32,
    pub day: Option<u32>,
    day2: Option<u32>,
    pieces: Vec<(Range<usize>, Piece)>,
    /// Was a numeric a/b read as day/month only because the note prefers it?
    ambiguous: bool,
}

/// Reads a date written in one of the shapes `find` finds; `prefer_dmy` settles 03/04/2024.
pub(crate) fn parse(s: &str, prefer_dmy: bool) -> Option<Parsed> {
    // CN_MONTH_BARE: the month that `find` cut out of 去年12月.
    shapes().into_iter().map(|(re, _)| re).chain([&CN_MONTH_BARE]).find_map(|re| {
        let c = re.as_ref()?.captures(s)?;
        let m = c.get(0)?;
        (m.start() == 0 && m.end() == s.len()).then(|| parse_captures(&c, prefer_dmy)).flatten()
    })
}

fn parse_captures(c: &Captures, prefer_dmy: bool) -> Option<Parsed> {
    let base = c.get(0)?.start();
    let rel = |m: regex::Match| m.start() - base..m.end() - base;
    let mut pieces = Vec::new();
    let mut year = None;
    if let Some(y) = c.name("y").or_else(|| c.name("y2")) {
        let s = y.as_str();
        let chinese = !s.starts_with(|ch: char| ch.is_ascii_digit());
        let value: i32 = if chinese {
            s.chars()
                .map(|ch| {
                    CN_DIGITS.chars().position(|d| d == ch).map(|d| {
                        if d == 0 {
                            '0'
                        } else {
                            char::from(b'0' + d as u8 - 1)
                        }
                    })
                })
                .collect::<Option<String>>()?
                .parse()
                .ok()?
        } else {
            s.parse().ok()?
        };
        let value = match s.len() {
            2 => value + if value < 50 { 2000 } else { 1900 },
            _ => value,
        };
        // 1800 to 2199, and the sentinels 0001 and 9999 of a system's "no date" (their month
        // and day must not stay behind in clear); not any four digits ("June 3, 1500 mL").
        let sentinel = s.len() == 4 && !chinese && (value == 1 || value == 9999);
        if !(1800..=2199).contains(&value) && !sentinel {
            return None;
        }
        year = Some(value);
        pieces.push((rel(y), Piece::Year { digits: if chinese { 4 } else { s.len() }, chinese }));
    }
    if let Some(r) = c.name("roc") {
        // Minguo 1 is 1912; there is no year 0.
        let value = r.as_str().parse::<i32>().ok().filter(|&y| y >= 1)? + 1911;
        year = Some(value);
        pieces.push((rel(r), Piece::RocYear));
    }
    let mut month = 0;
    let mut day = None;
    let mut ambiguous = false;
    if let Some(mon) = c.name("fmon") {
        let s = mon.as_str();
        let (lang, m) = foreign_month(s)?;
        let capital = s.starts_with(char::is_uppercase);
        let day_first = c.name("d").is_some_and(|d| d.start() < mon.start());
        if FOREIGN_AMBIGUOUS.contains(&s.to_lowercase().as_str()) && (!capital && !day_first || c.name("d").is_none()) {
            return None;
        }
        month = m;
        let case = if s.chars().count() > 1 && !s.chars().any(char::is_lowercase) { 2 } else { capital as u8 };
        pieces.push((rel(mon), Piece::ForeignMonth { lang: lang as u8, case }));
    }
    if let Some(mon) = c.name("mon").or_else(|| c.name("mon2")) {
        let s = mon.as_str();
        // Month names count only capitalised: "may" and "march" are verbs.
        if !s.starts_with(|ch: char| ch.is_uppercase()) {
            return None;
        }
        let lower = s.to_lowercase();
        let key: String = lower.chars().take(3).collect();
        month = MONTH_NAMES.iter().position(|n| n.to_lowercase().starts_with(&key))? as u32 + 1;
        let upper = s.len() > 1 && s.chars().all(|ch| ch.is_uppercase());
        pieces.push((
            rel(mon),
            Piece::MonthName {
                full: s.len() > 4 || lower == "june" || lower == "july" || lower == "may",
                sept: lower == "sept",
                upper,
            },
        ));
    }
    if let Some(m) = c.name("mnum").or_else(|| c.name("mnum2")) {
        let chinese = !m.as_str().starts_with(|ch: char| ch.is_ascii_digit());
        month = number(m.as_str())?;
        pieces.push((
            rel(m),
            Piece::MonthNumber { padded: m.as_str().len() == 2 && m.as_str().starts_with('0'), chinese },
        ));
    }
    if let Some(d) = c.name("d") {
        let chinese = !d.as_str().starts_with(|ch: char| ch.is_ascii_digit());
        day = Some(number(d.as_str())?);
        let (range, ordinal) = match c.name("sfx") {
            Some(sfx) => (d.start() - base..sfx.end() - base, true),
            None => (rel(d), false),
        };
        pieces.push((
            range,
            Piece::Day { padded: d.as_str().len() == 2 && d.as_str().starts_with('0'), ordinal, chinese },
        ));
    }
    if let (Some(a), Some(b)) = (c.name("a"), c.name("b")) {
        let (x, y): (u32, u32) = (a.as_str().parse().ok()?, b.as_str().parse().ok()?);
        let dot = c.get(0)?.as_str().contains('.');
        // 14/03: day first; 03/14: month first; 03/04: as the note prefers (dots: day first).
        let dmy = x > 12 || y <= 12 && (prefer_dmy || dot);
        ambiguous = x <= 12 && y <= 12;
        let (mr, dr, mv, dv) = if dmy { (rel(b), rel(a), y, x) } else { (rel(a), rel(b), x, y) };
        month = mv;
        day = Some(dv);
        pieces.push((
            mr.clone(),
            Piece::MonthNumber {
                padded: mr.len() == 2 && text_starts_zero(c, if dmy { "b" } else { "a" }),
                chinese: false,
            },
        ));
        pieces.push((
            dr.clone(),
            Piece::Day {
                padded: dr.len() == 2 && text_starts_zero(c, if dmy { "a" } else { "b" }),
                ordinal: false,
                chinese: false,
            },
        ));
    }
    let mut day2 = None;
    if let Some(d2) = c.name("d2") {
        day2 = Some(d2.as_str().parse().ok()?);
        pieces.push((rel(d2), Piece::Day2));
    }
    if let Some(wd) = c.name("wd") {
        pieces.push((rel(wd), Piece::Weekday { upper: wd.as_str().chars().all(|ch| ch.is_uppercase()) }));
    }
    if !(1..=12).contains(&month) {
        return None;
    }
    let max_day = days_in_month(year.unwrap_or(2000), month);
    if day.is_some_and(|d| d < 1 || d > max_day) || day2.is_some_and(|d2| day.is_none_or(|d| d2 <= d || d2 > max_day)) {
        return None;
    }
    // Two-digit numbers are written padded when both month and day have two digits (12/25,
    // 2023-12-25); "3/12" and 2024年12月5日 are not padded.
    let two_digits: Vec<bool> = pieces
        .iter()
        .filter(|(_, p)| {
            matches!(p, Piece::MonthNumber { chinese: false, .. } | Piece::Day { chinese: false, ordinal: false, .. })
        })
        .map(|(r, _)| r.len() == 2)
        .collect();
    let pad_all = two_digits.len() == 2
        && two_digits.iter().all(|&t| t)
        && c.name("mnum")
            .is_none_or(|m| !c.get(0).is_some_and(|a| a.as_str().contains('月')) || m.as_str().starts_with('0'));
    // 14-MAR-2024, Mar-14-2024: dashed dates with a month name write the day in two digits.
    let dashed =
        c.get(0).is_some_and(|a| a.as_str().contains('-')) && (c.name("mon").is_some() || c.name("mon2").is_some());
    for (r, p) in pieces.iter_mut() {
        if let (Piece::Day { padded, .. }, true) = (&mut *p, dashed) {
            *padded = *padded || r.len() == 2;
        }
        match p {
            Piece::MonthNumber { padded, chinese: false } | Piece::Day { padded, chinese: false, ordinal: false } => {
                *padded = *padded || pad_all && r.len() == 2;
            }
            _ => {}
        }
    }
    pieces.sort_by_key(|(r, _)| r.start);
    Some(Parsed { year, month, day, day2, pieces, ambiguous })
}

fn text_starts_zero(c: &Captures, name: &str) -> bool {
    c.name(name).is_some_and(|m| m.as_str().starts_with('0'))
}

fn number(s: &str) -> Option<u32> {
    s.parse().ok().or_else(|| chinese_number(s))
}

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
pub(crate) const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

impl Parsed {
    /// The date `days` later (earlier when negative), written like this one. A missing year is
    /// taken as `default_year` for the arithmetic and stays missing; a missing day is the 15th.
    pub(crate) fn shifted(&self, original: &str, days: i64, default_year: i32) -> String {
        let year = self.year.unwrap_or(default_year);
        let base = days_from_civil(year, self.month, self.day.unwrap_or(15));
        let (y, m, d) = civil_from_days(base + days);
        let d2 = self.day2.map(|d2| civil_from_days(days_from_civil(year, self.month, d2) + days).2);
        let mut out = String::with_capacity(original.len() + 4);
        let mut at = 0;
        for (range, piece) in &self.pieces {
            out.push_str(&original[at..range.start]);
            out.push_str(&render(*piece, y, m, d, d2.unwrap_or(d), &original[range.clone()]));
            at = range.end;
        }
        out.push_str(&original[at..]);
        out
    }

    /// Does this date say its year?
    pub(crate) fn has_year(&self) -> bool {
        self.year.is_some()
    }

    /// Is it a numeric date whose day and month could be either way round (03/04/2024)?
    pub(crate) fn is_ambiguous(&self) -> bool {
        self.ambiguous
    }
}

fn render(piece: Piece, y: i32, m: u32, d: u32, d2: u32, old: &str) -> String {
    let cn = |n: u32| {
        let digit = |k: u32| CN_DIGITS.chars().nth(if k == 0 { 0 } else { k as usize + 1 }).unwrap_or('〇');
        match n {
            0..=9 => digit(n).to_string(),
            10 => "十".into(),
            11..=19 => format!("十{}", digit(n - 10)),
            _ if n.is_multiple_of(10) => format!("{}十", digit(n / 10)),
            _ => format!("{}十{}", digit(n / 10), digit(n % 10)),
        }
    };
    match piece {
        Piece::Year { chinese: true, .. } => y
            .to_string()
            .chars()
            .map(|ch| CN_DIGITS.chars().nth(if ch == '0' { 0 } else { ch as usize - '0' as usize + 1 }).unwrap_or(ch))
            .collect(),
        Piece::Year { digits: 2, .. } => format!("{:02}", y.rem_euclid(100)),
        Piece::Year { .. } => format!("{y:04}"),
        Piece::MonthNumber { chinese: true, .. } => cn(m),
        Piece::MonthNumber { padded: true, .. } => format!("{m:02}"),
        Piece::MonthNumber { .. } => m.to_string(),
        Piece::MonthName { full, sept, upper } => {
            let name = MONTH_NAMES[(m - 1) as usize];
            let s = if full {
                name.to_string()
            } else if sept && m == 9 {
                "Sept".into()
            } else {
                name[..3].to_string()
            };
            if upper {
                s.to_uppercase()
            } else {
                s
            }
        }
        Piece::ForeignMonth { lang, case } => {
            let name = FOREIGN_MONTHS[lang as usize][(m - 1) as usize];
            match case {
                2 => name.to_uppercase(),
                1 => name.chars().take(1).flat_map(char::to_uppercase).chain(name.chars().skip(1)).collect(),
                _ => name.to_string(),
            }
        }
        Piece::RocYear => (y - 1911).to_string(),
        Piece::Day { chinese: true, .. } => cn(d),
        Piece::Day { ordinal: true, .. } => {
            let sfx = match (d % 10, d % 100) {
                (_, 11..=13) => "th",
                (1, _) => "st",
                (2, _) => "nd",
                (3, _) => "rd",
                _ => "th",
            };
            // Keep the case of the original suffix ("14TH").
            let sfx = if old.ends_with(|c: char| c.is_uppercase()) { sfx.to_uppercase() } else { sfx.to_string() };
            format!("{d}{sfx}")
        }
        Piece::Day { padded: true, .. } => format!("{d:02}"),
        Piece::Day { .. } => d.to_string(),
        Piece::Day2 => d2.to_string(),
        Piece::Weekday { upper } => {
            // 1970-01-01 was a Thursday.
            let wd = WEEKDAYS[(days_from_civil(y, m, d) + 3).rem_euclid(7) as usize];
            if upper {
                wd.to_uppercase()
            } else {
                wd.to_string()
            }
        }
    }
}

pub(crate) fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((yoe + era * 400 + i64::from(m <= 2)) as i32, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dates(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        find(&crate::deid::lexicon::simplified(text), &mut out);
        super::super::detect::resolve(out).into_iter().map(|s| text[s.start..s.end].to_string()).collect()
    }

    fn shift(s: &str, days: i64) -> String {
        parse(s, false).map(|p| p.shifted(s, days, 2023)).unwrap_or_default()
    }

    #[test]
    fn all_patterns_compile() {
        for (re, _) in shapes() {
            assert!(re.is_some());
        }
        assert!(CN_MONTH_BARE.is_some());
        assert!(FOREIGN_DMY.is_some() && FOREIGN_MDY.is_some() && FOREIGN_MY.is_some());
        assert!(SHORT_CUE_BEFORE.is_some() && SHORT_DOSE_AFTER.is_some() && SHORT_MEASURE_BEFORE.is_some());
    }

    #[test]
    fn a_systems_sentinel_dates_are_dates_whole() {
        assert_eq!(dates("Seen 9999-12-31 and 2020-01-15 and 0001-01-01 and 12/31/9999."), ["9999-12-31", "2020-01-15", "0001-01-01", "12/31/9999"]);
        // Other years past 2199 are doses, not years: "June 3, 1500 mL".
        let got = dates("On June 3, 1500 mL drained; Dec 30, 3000 units");
        assert!(got.iter().all(|d| !d.contains("1500") && !d.contains("3000")), "{got:?}");
    }

    #[test]
    fn finds_dates_in_many_formats_but_not_ratios_times_or_years() {
        let text = "Seen 03/14/2024, 14 Mar 2024, March 14th; 2024-03-14, on 3/12, 2024年3月14日, 4月23号, April 2024, 14-MAR-2024, 03/2023. \
                    BP 120/80, ABG 7.31/58/62, 1/2 tablet, at 14:30, in 2019, he may go, 6-8 weeks.";
        assert_eq!(
            dates(text),
            [
                "03/14/2024",
                "14 Mar 2024",
                "March 14th",
                "2024-03-14",
                "3/12",
                "2024年3月14日",
                "4月23号",
                "April 2024",
                "14-MAR-2024",
                "03/2023"
            ]
        );
        // Day and month, as hand-overs outside the US write them, after a cue or with a day
        // that cannot be a month; durations, scores and doses are none.
        let text = "B: adm 14/3 via ED. ORIF 15/03 under mr x. OR 3/6. fall at home 28/6, booked 2/7. \
                    abx x 3/7, GCS 13/15, pain 14/10, 1/2 tab, power 4/5";
        assert_eq!(dates(text), ["14/3", "15/03", "3/6", "28/6", "2/7"]);
        let text = "DNACPR (signed 10/03 Dr Rao). Bloods (drawn 2/5): NT-proBNP. CXR 6/9: RLL. Plan d/c 9/9 if stable. MMSE 2/5.";
        assert_eq!(dates(text), ["10/03", "2/5", "6/9", "9/9"]);
    }

    #[test]
    fn shifting_keeps_each_format() {
        assert_eq!(shift("03/14/2024", 30), "04/13/2024");
        assert_eq!(shift("3/12/24", -73), "12/30/23");
        assert_eq!(shift("14 Feb 2024", 16), "1 Mar 2024");
        assert_eq!(shift("Tuesday, March 5, 2024", 1), "Wednesday, March 6, 2024");
        assert_eq!(shift("January 10th", 12), "January 22nd");
        assert_eq!(shift("2024年3月14日", -14), "2024年2月29日");
        assert_eq!(shift("二〇二四年三月十四日", 1), "二〇二四年三月十五日");
        assert_eq!(shift("2023-12-25", 10), "2024-01-04");
        assert_eq!(shift("April 2024", 30), "May 2024");
        assert_eq!(shift("27.02.2024", 3), "01.03.2024");
        assert_eq!(shift("14-MAR-24", 20), "03-APR-24");
        assert_eq!(shift("03/2023", 31), "04/2023");
        assert_eq!(shift("12月", 20), "1月");
        assert_eq!(shift("3月中旬", -31), "2月中旬");
    }

    #[test]
    fn dates_with_months_named_in_other_languages_are_found_and_shifted_in_their_language() {
        let text = "Tarikh: 15 Mac 2023. LMP 3 Januari, EDD 10 Oktober 2023. Sí, el 4 de marzo. Marso 7, 2024; \
                    noong ika-5 ng Marso, since Enero 20. Vu le 1er mars 2023, am 4. März 2021, marzo de 2022.";
        assert_eq!(
            dates(text),
            [
                "15 Mac 2023",
                "3 Januari",
                "10 Oktober 2023",
                "el 4 de marzo",
                "Marso 7, 2024",
                "ika-5 ng Marso",
                "Enero 20",
                "le 1er mars 2023",
                "4. März 2021",
                "marzo de 2022"
            ]
        );
        // Words that are month names elsewhere need a day before them, or a capital.
        assert!(dates("Mayo Clinic; mac and cheese, 2 mayo packets? the mars rover 2020").iter().all(|d| d == "2 mayo"));
        assert_eq!(shift("15 Mac 2023", 20), "4 April 2023");
        assert_eq!(shift("29 Mac", 3), "1 April");
        assert_eq!(shift("Marso 7, 2024", 30), "Abril 6, 2024");
        assert_eq!(shift("4 de marzo de 2023", 31), "4 de abril de 2023");
        assert_eq!(shift("4. März 2021", -4), "28. Februar 2021");
        assert_eq!(shift("le 3 février", 30), "le 5 mars");
        assert_eq!(shift("15 MAC 2023", 31), "15 APRIL 2023");
        // Mycobacterium avium complex, a clinic: no dates without a day.
        assert!(dates("disseminated MAC 2019; MAI 2018; CABG at Mayo 2015").is_empty());
        // Taiwan's Minguo years, in either script.
        assert_eq!(dates("出生日期：民國20年8月3日；術後（112.03.05）"), ["民國20年8月3日", "112.03.05"]);
        assert_eq!(shift("民國20年8月3日", 30), "民國20年9月2日");
        assert_eq!(shift("112.03.05", -5), "112.02.28");
        assert_eq!(shift("112.02.28", 1), "112.03.01");
        assert!(parse("民國0年1月1日", false).is_none());
    }

    #[test]
    fn day_arithmetic_round_trips() {
        for z in [-800_000, -1, 0, 1, 19_000, 60_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }
}
