//! Replacing what was found: redact, mask, numbered placeholders, date shifting; and the way back.

use std::collections::{BTreeMap, HashMap, HashSet};

use sha2::{Digest, Sha256};

use super::detect::Span;
use super::lexicon::is_han;
use super::{dates, Category, DeidConfig, Operator};
use crate::error::{MedgenError, Result};

const MAX_SHIFT_DAYS: i64 = 36_500;

/// The number of days dates move by, if any category is to be shifted: `date_shift_days`, or
/// one derived from `date_shift_key` (SHA-256, so the same key always gives the same shift).
pub(crate) fn date_shift(config: &DeidConfig) -> Result<Option<i64>> {
    let shifting =
        config.operator == Operator::ShiftDates || config.per_category.values().any(|&o| o == Operator::ShiftDates);
    if let Some(days) = config.date_shift_days {
        if days.unsigned_abs() > MAX_SHIFT_DAYS.unsigned_abs() {
            return Err(MedgenError::invalid(
                "date_shift_days",
                format!("{days} is more than {MAX_SHIFT_DAYS} days either way"),
            ));
        }
        return Ok(Some(days));
    }
    if let Some(key) = &config.date_shift_key {
        if key.is_empty() {
            return Err(MedgenError::invalid("date_shift_key", "the key is empty"));
        }
        let digest = Sha256::digest(key.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // 730 values: -365..=-1 and 1..=365, never 0.
        let k = (u64::from_le_bytes(first) % 730) as i64;
        return Ok(Some(if k < 365 { k - 365 } else { k - 364 }));
    }
    if shifting {
        return Err(MedgenError::invalid("date_shift_days", "shifting dates needs date_shift_days or date_shift_key"));
    }
    Ok(None)
}

/// Replaces every span in `text`; returns the new text and the mapping back.
pub(crate) fn apply(
    text: &str,
    spans: &[Span],
    config: &DeidConfig,
    shift: Option<i64>,
) -> (String, BTreeMap<String, String>) {
    let mut out = String::with_capacity(text.len());
    let mut mapping = BTreeMap::new();
    let mut numbering = Placeholders::new(text);
    let dates = DateContext::new(text, spans);
    let mut at = 0;
    for (i, s) in spans.iter().enumerate() {
        let original = &text[s.start..s.end];
        out.push_str(&text[at..s.start]);
        let op = config.per_category.get(&s.cat).copied().unwrap_or(config.operator);
        let replacement = match op {
            Operator::Redact => format!("[{}]", s.cat.as_str()),
            Operator::Mask => mask(original),
            Operator::ShiftDates if s.cat == Category::Date => match (shift, dates.parsed[i].as_ref()) {
                (Some(days), Some(p)) => {
                    let shifted = p.shifted(original, days, dates.year_near(s.start));
                    mapping.insert(shifted.clone(), original.to_string());
                    shifted
                }
                _ => numbering.placeholder(s.cat, original, &mut mapping),
            },
            Operator::Placeholder | Operator::ShiftDates => numbering.placeholder(s.cat, original, &mut mapping),
        };
        out.push_str(&replacement);
        at = s.end;
    }
    out.push_str(&text[at..]);
    (out, mapping)
}

/// Every letter, digit and Han character becomes `*`.
fn mask(s: &str) -> String {
    s.chars().map(|c| if c.is_alphanumeric() || is_han(c) { '*' } else { c }).collect()
}

/// Numbered placeholders, one number per distinct thing in a category.
#[derive(Default)]
struct Placeholders {
    /// Per category: the normalised words of each numbered thing (its fullest mention).
    things: HashMap<Category, Vec<Vec<String>>>,
    /// Per category: normalised mention → thing number.
    exact: HashMap<(Category, Vec<String>), usize>,
    /// Names only: word → the things that have it, to find "Smith" in "John Smith" quickly.
    by_word: HashMap<String, Vec<usize>>,
    /// Placeholders the note itself already holds ("Template field: [NAME_1]"): never given to
    /// a thing, or re-identification would turn that text into an identifier.
    taken: HashSet<String>,
    /// Per category and thing number, the number its placeholder shows (past the taken ones).
    shown: HashMap<(Category, usize), usize>,
}

impl Placeholders {
    fn new(text: &str) -> Placeholders {
        let mut taken = HashSet::new();
        for (at, _) in text.match_indices('[') {
            if let Some(len) = text.as_bytes()[at..].iter().take(40).position(|&b| b == b']') {
                taken.insert(text[at..=at + len].to_string());
            }
        }
        Placeholders { taken, ..Placeholders::default() }
    }

    /// The placeholder of thing `n` of `cat`: "[NAME_n]", or the next free number after the
    /// previous thing's where the note holds that text.
    fn label(&mut self, cat: Category, n: usize) -> String {
        if let Some(&k) = self.shown.get(&(cat, n)) {
            return format!("[{}_{k}]", cat.as_str());
        }
        let mut k = if n > 1 { self.shown.get(&(cat, n - 1)).copied().unwrap_or(n - 1) + 1 } else { 1 };
        while self.taken.contains(&format!("[{}_{k}]", cat.as_str())) {
            k += 1;
        }
        self.shown.insert((cat, n), k);
        format!("[{}_{k}]", cat.as_str())
    }

    fn placeholder(&mut self, cat: Category, original: &str, mapping: &mut BTreeMap<String, String>) -> String {
        let key = normalise(cat, original);
        let n = match self.exact.get(&(cat, key.clone())) {
            Some(&n) => n,
            None => {
                let n = self.same_person(cat, &key).unwrap_or_else(|| {
                    let things = self.things.entry(cat).or_default();
                    things.push(key.clone());
                    things.len()
                });
                if cat == Category::Name {
                    for w in &key {
                        let list = self.by_word.entry(w.clone()).or_default();
                        if !list.contains(&n) {
                            list.push(n);
                        }
                    }
                }
                self.exact.insert((cat, key), n);
                n
            }
        };
        let placeholder = self.label(cat, n);
        // The mapping restores the longest mention: "[NAME_1]" → "John Smith", not "Smith".
        let longer =
            mapping.get(&placeholder).is_none_or(|old: &String| original.chars().count() > old.chars().count());
        if longer {
            mapping.insert(placeholder.clone(), original.to_string());
        }
        placeholder
    }

    /// For a Latin-script name, the number of an earlier name it is part of or contains: "Smith"
    /// and "SMITH, JOHN" are "John Smith". A Chinese family name alone (刘) is not every 刘.
    fn same_person(&mut self, cat: Category, key: &[String]) -> Option<usize> {
        let latin = key.iter().all(|w| w.chars().all(|c| !is_han(c)));
        if cat != Category::Name || !latin || key.is_empty() {
            return None;
        }
        let things = self.things.get_mut(&cat)?;
        let candidates = self.by_word.get(&key[0])?;
        let generation = |words: &[String]| -> Vec<&str> {
            words.iter().filter_map(|w| GENERATIONS.iter().find(|(a, b)| w == a || w == b).map(|(a, _)| *a)).collect()
        };
        let n = *candidates.iter().find(|&&n| {
            let t = &things[n - 1];
            generation(t) == generation(key) && (key.iter().all(|w| t.contains(w)) || t.iter().all(|w| key.contains(w)))
        })?;
        if key.len() > things[n - 1].len() {
            things[n - 1] = key.to_vec();
        }
        Some(n)
    }
}

/// What makes two mentions of a category one thing: lower-case words, punctuation dropped
/// ("SMITH, John" → ["smith", "john"]; Han text is one word). Only names drop initials, and
/// only phone and fax numbers join their digit groups: anything else that differs in a letter
/// or in how its digits group (1/12/2021 and 11/2/2021, MRN A-1234567 and B-1234567) is two
/// things, each with its own placeholder.
fn normalise(cat: Category, s: &str) -> Vec<String> {
    let mut words: Vec<String> =
        s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    // Initials do not tell people apart from their full names ("A. Siddiqui", "Ahmed Siddiqui").
    if cat == Category::Name && words.iter().any(|w| w.chars().count() > 1) {
        words.retain(|w| w.chars().count() > 1);
    }
    let digits = words.iter().all(|w| w.chars().all(|c| c.is_ascii_digit()));
    if matches!(cat, Category::Phone | Category::Fax) && words.len() > 1 && digits {
        // 555-0142 and 555 0142 are one number.
        words = vec![words.concat()];
    }
    words
}

/// Words that tell a father from his son ("John Smith" and "John Smith Jr." are two people),
/// with their long forms ("Jr." and "Junior" are one).
const GENERATIONS: [(&str, &str); 5] = [("jr", "junior"), ("sr", "senior"), ("ii", "ii"), ("iii", "iii"), ("iv", "iv")];

/// What date shifting needs to know about the whole note: how ambiguous numeric dates read,
/// and the years that dates without one borrow.
struct DateContext {
    parsed: Vec<Option<dates::Parsed>>,
    /// (byte offset, year) of dates that state their year, in order.
    years: Vec<(usize, i32)>,
}

impl DateContext {
    fn new(text: &str, spans: &[Span]) -> DateContext {
        let date_text = |s: &Span| (s.cat == Category::Date).then(|| &text[s.start..s.end]);
        // A note that writes 21/07/1990 anywhere writes 12/03/2024 day first too.
        let prefer_dmy = spans.iter().filter_map(date_text).any(|t| {
            dates::parse(t, false).is_some_and(|p| {
                !p.is_ambiguous() && t.contains(['/', '.', '-']) && {
                    let first: u32 = t.split(['/', '.', '-']).next().and_then(|x| x.trim().parse().ok()).unwrap_or(0);
                    first > 12 && first <= 31
                }
            })
        });
        let parsed: Vec<Option<dates::Parsed>> =
            spans.iter().map(|s| date_text(s).and_then(|t| dates::parse(t, prefer_dmy))).collect();
        let years = spans
            .iter()
            .zip(&parsed)
            .filter_map(|(s, p)| p.as_ref().filter(|p| p.has_year()).and_then(|p| p.year).map(|y| (s.start, y)))
            .collect();
        DateContext { parsed, years }
    }

    /// The year of the nearest dated date before `pos` (else after it, else 2000).
    fn year_near(&self, pos: usize) -> i32 {
        let i = self.years.partition_point(|(at, _)| *at <= pos);
        if i > 0 {
            self.years[i - 1].1
        } else {
            self.years.first().map_or(2000, |(_, y)| *y)
        }
    }
}

/// Replaces every key of `mapping` in `text` by its value, longest keys first, in one pass.
pub(crate) fn reidentify(text: &str, mapping: &BTreeMap<String, String>) -> String {
    let (mut out, mut at) = (String::with_capacity(text.len()), 0);
    for (start, end, value) in replacements(text, mapping) {
        out.push_str(&text[at..start]);
        out.push_str(value);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// Where [`reidentify`] replaces: each key of `mapping` found in `text` as (start, end, value),
/// in bytes, in order. One pass, the longest key at each place: a restored value is never read
/// again as a key (date shifting maps 03/01 → 02/29 and 03/02 → 03/01), however large the
/// mapping.
pub(crate) fn replacements<'m>(text: &str, mapping: &'m BTreeMap<String, String>) -> Vec<(usize, usize, &'m str)> {
    let (keys, values): (Vec<&String>, Vec<&String>) = mapping.iter().filter(|(k, _)| !k.is_empty()).unzip();
    if keys.is_empty() {
        return Vec::new();
    }
    match aho_corasick::AhoCorasick::builder().match_kind(aho_corasick::MatchKind::LeftmostLongest).build(&keys) {
        Ok(ac) => ac.find_iter(text).map(|m| (m.start(), m.end(), values[m.pattern().as_usize()].as_str())).collect(),
        // A mapping past the automaton's size limits: the same pass, slower.
        Err(_) => replacements_scan(text, &keys, &values),
    }
}

fn replacements_scan<'m>(text: &str, keys: &[&String], values: &[&'m String]) -> Vec<(usize, usize, &'m str)> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(keys[i].len()));
    let (mut out, mut at) = (Vec::new(), 0);
    while let Some(c) = text[at..].chars().next() {
        match order.iter().find(|&&i| text[at..].starts_with(keys[i].as_str())) {
            Some(&i) => {
                out.push((at, at + keys[i].len(), values[i].as_str()));
                at += keys[i].len();
            }
            None => at += c.len_utf8(),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_from_a_key_is_stable_nonzero_and_within_a_year() {
        let cfg = |k: &str| DeidConfig {
            operator: Operator::ShiftDates,
            date_shift_key: Some(k.into()),
            ..Default::default()
        };
        let a = date_shift(&cfg("patient-42")).ok().flatten();
        assert_eq!(a, date_shift(&cfg("patient-42")).ok().flatten());
        for k in ["a", "b", "c", "patient-1", "patient-2"] {
            let d = date_shift(&cfg(k)).ok().flatten().unwrap_or(0);
            assert!(d != 0 && d.abs() <= 365);
        }
    }

    #[test]
    fn shifting_without_days_or_key_is_an_error() {
        let cfg = DeidConfig { operator: Operator::ShiftDates, ..Default::default() };
        assert!(matches!(date_shift(&cfg), Err(MedgenError::InvalidArgument { name: "date_shift_days", .. })));
        let cfg = DeidConfig { date_shift_days: Some(40_000), ..Default::default() };
        assert!(date_shift(&cfg).is_err());
    }

    #[test]
    fn masks_keep_separators() {
        assert_eq!(mask("(305) 555-2741"), "(***) ***-****");
        assert_eq!(mask("李建国"), "***");
    }

    #[test]
    fn reidentify_replaces_longest_keys_first() {
        let mut m = BTreeMap::new();
        m.insert("[NAME_1]".to_string(), "Ann".to_string());
        m.insert("[NAME_11]".to_string(), "Bob".to_string());
        assert_eq!(reidentify("[NAME_11] and [NAME_1]", &m), "Bob and Ann");
    }

    #[test]
    fn reidentify_never_reads_a_restored_value_as_a_key_however_large_the_mapping() {
        // Shifted dates back to the originals, which are themselves shifted forms of others.
        let mut m: BTreeMap<String, String> =
            [("02/29", "02/28"), ("03/01", "02/29"), ("03/02", "03/01")].map(|(k, v)| (k.to_string(), v.to_string())).into();
        assert_eq!(reidentify("02/29, 03/01, 03/02", &m), "02/28, 02/29, 03/01");
        m.insert("x".repeat(1_000_000), "y".into());
        for i in 0..200 {
            m.insert(format!("{i:05}{}", "z".repeat(10_000)), "w".into());
        }
        assert_eq!(reidentify("02/29, 03/01, 03/02", &m), "02/28, 02/29, 03/01");
        let (keys, values): (Vec<&String>, Vec<&String>) = m.iter().unzip();
        let text = format!("a 03/02 b {}x 00007{} é 02/29", "x".repeat(1_000_000), "z".repeat(10_000));
        assert_eq!(replacements_scan(&text, &keys, &values), replacements(&text, &m));
        assert_eq!(reidentify(&text, &m), "a 03/01 b yx w é 02/28");
    }
}
