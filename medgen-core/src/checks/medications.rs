//! Medication names: every one in the draft must be named in the source.
//!
//! A lexicon (`lexicon/medications.txt`) maps generic names, brands, abbreviations and Chinese
//! names to one generic each, so that "Coumadin" in a draft is supported by "warfarin" in the
//! source, "Plavix" by "氯吡格雷", and the reverse. A combination product ("Percocet") needs
//! each of its parts in the source. Drugs the lexicon lacks are caught by the endings of
//! generic names (WHO INN stems: -pril, -sartan, -olol, -mab, -tinib …) and must then occur
//! in the source as written.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use regex::Regex;

use super::text::{ascii_bounded, finding, fold, Indexed};
use super::{Finding, FindingKind};

/// A drug of the lexicon.
#[derive(Debug, Clone)]
struct Drug {
    /// The generic name as the lexicon writes it ("amoxicillin+clavulanate").
    generic: String,
    /// The generics that must be in the source for a mention to be supported (the parts of a
    /// combination, else the generic itself).
    parts: Vec<String>,
    /// A broader name that this drug supports ("insulin" for "insulin glargine").
    parent: Option<String>,
}

struct Lexicon {
    drugs: Vec<Drug>,
    /// Lowercase name, whitespace collapsed -> index into `drugs`.
    names: HashMap<String, usize>,
    regex: Regex,
}

fn lexicon() -> Option<&'static Lexicon> {
    static LEXICON: OnceLock<Option<Lexicon>> = OnceLock::new();
    LEXICON.get_or_init(|| parse(include_str!("lexicon/medications.txt"))).as_ref()
}

fn key(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

fn parse(source: &str) -> Option<Lexicon> {
    let mut drugs = Vec::new();
    let mut names = HashMap::new();
    for line in source.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (head, aliases) = line.split_once('|').unwrap_or((line, ""));
        let (generic, parent) = match head.split_once('<') {
            Some((g, p)) => (g.trim(), Some(key(p))),
            None => (head.trim(), None),
        };
        let parts: Vec<String> = generic.split('+').map(key).collect();
        let index = drugs.len();
        if parts.len() == 1 {
            names.insert(key(generic), index);
        }
        for alias in aliases.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            names.insert(key(alias), index);
        }
        drugs.push(Drug { generic: generic.to_string(), parts, parent });
    }
    let mut patterns: Vec<&String> = names.keys().collect();
    patterns.sort_by_key(|n| std::cmp::Reverse(n.chars().count()));
    let alternation: Vec<String> = patterns.iter().map(|n| regex::escape(n).replace(' ', r"\s+")).collect();
    // A lazy DFA cache large enough for the alternation of every name: with the default
    // (2 MB) the search falls back to a slower engine and takes milliseconds per kilobyte.
    let regex = regex::RegexBuilder::new(&format!("(?i)(?:{})", alternation.join("|")))
        .dfa_size_limit(64 << 20)
        .build()
        .ok()?;
    Some(Lexicon { drugs, names, regex })
}

/// Endings of generic drug names (WHO INN stems) that ordinary words do not have.
#[rustfmt::skip]
const STEMS: &[&str] = &[
    "pril", "sartan", "olol", "alol", "dipine", "statin", "parin", "xaban", "gatran", "grel", "cillin", "penem",
    "floxacin", "oxacin", "mycin", "micin", "cycline", "azole", "fungin", "ciclovir", "navir", "buvir", "previr",
    "tegravir", "asvir", "vudine", "mab", "tinib", "ciclib", "platin", "rubicin", "taxel", "gliptin",
    "gliflozin", "glutide", "glinide", "prazole", "tidine", "setron", "triptan", "azepam", "zolam", "barbital",
    "curonium", "lukast", "profen", "oxetine", "triptyline", "pramine", "apine", "peridone", "semide",
    "thiazide", "dronate", "tropium", "afil", "atadine", "izine", "trexate", "tiazem", "arone", "olone",
];

/// Words that end like a drug but are not one.
const NOT_DRUGS: &[&str] = &["cholesterol"];

fn stem_regex() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| Regex::new(&format!(r"(?i)(?-u:\b)[a-z]{{3,}}(?:{})(?-u:\b)", STEMS.join("|"))).ok()).as_ref()
}

/// A medication named in a folded text: its byte span and its drug.
struct Mention<'a> {
    start: usize,
    end: usize,
    drug: Cow<'a, Drug>,
}

fn mentions<'a>(lexicon: &'a Lexicon, text: &str) -> Vec<Mention<'a>> {
    let mut found: Vec<Mention<'a>> = lexicon
        .regex
        .find_iter(text)
        .filter(|m| ascii_bounded(text, m.start(), m.end()))
        .filter(|m| !(m.as_str().eq_ignore_ascii_case("asa") && is_asa_class(text, m.end())))
        .filter_map(|m| {
            let &index = lexicon.names.get(&key(m.as_str()))?;
            Some(Mention { start: m.start(), end: m.end(), drug: Cow::Borrowed(&lexicon.drugs[index]) })
        })
        .collect();
    // A drug the lexicon lacks is its own generic.
    let unknown: Vec<Mention<'a>> = stem_regex()
        .into_iter()
        .flat_map(|re| re.find_iter(text))
        .filter(|m| !found.iter().any(|f| f.start < m.end() && m.start() < f.end))
        .filter(|m| !NOT_DRUGS.contains(&key(m.as_str()).as_str()))
        .map(|m| {
            let generic = key(m.as_str());
            let drug = Drug { generic: generic.clone(), parts: vec![generic], parent: None };
            Mention { start: m.start(), end: m.end(), drug: Cow::Owned(drug) }
        })
        .collect();
    found.extend(unknown);
    found.sort_by_key(|m| m.start);
    found
}

/// "ASA" is aspirin, except in the anesthesia risk class ("ASA II", "ASA class 3").
fn is_asa_class(text: &str, end: usize) -> bool {
    let rest = text[end..].trim_start_matches([' ', '-', ':']).to_lowercase();
    ["class", "grade", "physical", "score", "i", "ii", "iii", "iv", "v", "1", "2", "3", "4", "5"]
        .iter()
        .any(|w| rest.starts_with(w) && !rest[w.len()..].starts_with(|c: char| c.is_ascii_alphanumeric()))
}

/// The generics of `text` that support a draft: each named drug's parts and broader name.
fn named_generics(lexicon: &Lexicon, text: &str) -> HashSet<String> {
    let mut generics = HashSet::new();
    for m in mentions(lexicon, text) {
        generics.extend(m.drug.parts.iter().cloned());
        generics.extend(m.drug.parent.iter().cloned());
    }
    generics
}

/// The medications `text` names: each mention's character span and its generic name (brands
/// and Chinese names read as their generic), for attribution.
/// Is `name` (any case) a drug the lexicon knows: "Eliquis", "apixaban", "阿司匹林"?
pub(crate) fn is_known(name: &str) -> bool {
    lexicon().is_some_and(|l| l.names.contains_key(&key(name)))
}

pub(crate) fn generics(text: &str) -> Vec<(usize, usize, String)> {
    let Some(lexicon) = lexicon() else { return Vec::new() };
    let folded = fold(text);
    let offsets = Indexed::new(&folded);
    mentions(lexicon, &folded)
        .into_iter()
        .map(|m| (offsets.char_offset(m.start), offsets.char_offset(m.end), m.drug.generic.clone()))
        .collect()
}

/// Unsupported medication names in `output`.
pub fn check(source: &str, output: &str) -> Vec<Finding> {
    let Some(lexicon) = lexicon() else { return Vec::new() };
    let in_source = named_generics(lexicon, &fold(source));
    let folded = fold(output);
    let (original, indexed) = (Indexed::new(output), Indexed::new(&folded));
    let mut findings = Vec::new();
    for m in mentions(lexicon, &folded) {
        let missing: Vec<&str> = m.drug.parts.iter().filter(|p| !in_source.contains(*p)).map(String::as_str).collect();
        if missing.is_empty() {
            continue;
        }
        let written = &folded[m.start..m.end];
        let generic = m.drug.generic.replace('+', " + ");
        let detail = if key(written) == key(&generic) {
            format!("{written} does not occur in the source")
        } else if missing.len() == m.drug.parts.len() {
            format!("{written} ({generic}) does not occur in the source")
        } else {
            format!("{written} ({generic}): {} does not occur in the source", missing.join(", "))
        };
        findings.push(finding(FindingKind::UnsupportedMedication, &original, &indexed, m.start, m.end, detail));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flagged(source: &str, output: &str) -> Vec<String> {
        check(source, output).into_iter().map(|f| f.text).collect()
    }

    #[test]
    fn the_lexicon_parses_with_hundreds_of_drugs() {
        let lexicon = lexicon().unwrap();
        assert!(lexicon.drugs.len() > 400);
        assert_eq!(lexicon.drugs[lexicon.names["coumadin"]].generic, "warfarin");
        assert_eq!(lexicon.drugs[lexicon.names["阿司匹林"]].generic, "aspirin");
    }

    #[test]
    fn brands_and_generics_support_each_other_in_any_case() {
        assert!(flagged("Started on Plavix 75 mg.", "clopidogrel 75 mg").is_empty());
        assert!(flagged("WARFARIN 5 mg", "Coumadin 5 mg").is_empty());
        assert!(flagged("予氯吡格雷75mg口服", "Plavix 75 mg").is_empty());
        assert!(flagged("metoprolol succinate 50 mg", "Toprol XL 50 mg").is_empty());
    }

    #[test]
    fn a_drug_missing_from_the_source_is_flagged_with_its_span() {
        let findings = check("aspirin 81 mg", "aspirin 81 mg and Lipitor 40 mg");
        assert_eq!(findings.len(), 1);
        assert_eq!((findings[0].start, findings[0].end, findings[0].text.as_str()), (18, 25, "Lipitor"));
        assert_eq!(findings[0].detail, "Lipitor (atorvastatin) does not occur in the source");
    }

    #[test]
    fn chinese_names_match_inside_longer_words() {
        assert!(flagged("阿托伐他汀钙片20mg", "阿托伐他汀 20mg").is_empty());
        assert_eq!(flagged("阿司匹林肠溶片", "阿司匹林、二甲双胍"), ["二甲双胍"]);
    }

    #[test]
    fn a_drug_by_its_stem_is_found_glued_to_chinese() {
        assert_eq!(flagged("服用阿司匹林。", "服用landiolol。"), ["landiolol"]);
    }

    #[test]
    fn combinations_need_each_part() {
        assert!(flagged("amoxicillin-clavulanate 875 mg", "Augmentin").is_empty());
        assert_eq!(flagged("oxycodone 5 mg", "Percocet"), ["Percocet"]);
        assert!(flagged("Percocet", "oxycodone").is_empty());
    }

    #[test]
    fn a_specific_insulin_supports_insulin_but_not_the_reverse() {
        assert!(flagged("Lantus 20 units", "insulin 20 units").is_empty());
        assert_eq!(flagged("insulin 20 units", "insulin glargine 20 units"), ["insulin glargine"]);
    }

    #[test]
    fn the_asa_physical_status_class_is_not_aspirin() {
        assert!(flagged("", "ASA class II; ASA III; ASA 2").is_empty());
        assert_eq!(flagged("", "ASA 81 mg daily"), ["ASA"]);
    }

    #[test]
    fn drugs_outside_the_lexicon_are_caught_by_their_stems() {
        assert_eq!(flagged("azilsartan 40 mg", "azilsartan 40 mg, then fimasartan"), ["fimasartan"]);
        assert!(flagged("", "cholesterol; April").is_empty());
    }

    #[test]
    fn names_inside_other_words_are_not_drugs() {
        assert!(flagged("", "insulinoma; aspirinated").is_empty());
    }
}
