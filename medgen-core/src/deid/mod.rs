//! De-identification of protected health information (PHI) in English and Chinese clinical text.
//!
//! [`detect`] finds the HIPAA Safe Harbor kinds of identifier with patterns, dictionaries and
//! context cues (titles, labels such as `MRN:` or `姓名：`, relatives, credentials); no model.
//! [`deidentify`] replaces what it found, with an operator chosen per category, and returns the
//! mapping back, which [`reidentify`] applies to text generated from the de-identified note.
//! medgen never logs or writes the mapping; it goes to the caller only.
//!
//! ```
//! use medgen::deid::{deidentify, reidentify, DeidConfig};
//! let note = "Mr. John Smith (MRN 4418230) was seen on 03/14/2024. Mr. Smith is stable.";
//! let out = deidentify(note, &DeidConfig::default())?;
//! assert_eq!(out.text, "Mr. [NAME_1] (MRN [MRN_1]) was seen on [DATE_1]. Mr. [NAME_1] is stable.");
//! assert!(reidentify(&out.text, &out.mapping).contains("John Smith (MRN 4418230)"));
//! # Ok::<(), medgen::MedgenError>(())
//! ```

mod dates;
mod detect;
mod lexicon;
mod names;
mod names_zh;
pub(crate) mod operators;
mod patterns;
mod places;
mod spoken;
pub mod tagger;
mod tagger_cpu;
pub mod tagger_train;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{MedgenError, Result};

/// A kind of identifier: the HIPAA Safe Harbor list, plus Chinese resident ID numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// A person's name: patient, relative, clinician (`NAME`).
    Name,
    /// A place smaller than a state or province: street address, city, ZIP code, facility (`LOCATION`).
    Location,
    /// Any element of a date but the year alone (`DATE`).
    Date,
    /// An age over 89 (`AGE`).
    Age,
    /// A telephone number (`PHONE`).
    Phone,
    /// A fax number (`FAX`).
    Fax,
    /// An e-mail address (`EMAIL`).
    Email,
    /// A US social security number (`SSN`).
    Ssn,
    /// A medical record, hospital or admission number (`MRN`).
    MedicalRecord,
    /// A health plan beneficiary or insurance number (`HEALTH_PLAN`).
    HealthPlan,
    /// An account number (`ACCOUNT`).
    Account,
    /// A certificate or licence number, including clinicians' NPI/DEA numbers (`LICENSE`).
    License,
    /// A vehicle identifier: VIN, licence plate (`VEHICLE`).
    Vehicle,
    /// A device identifier or serial number (`DEVICE`).
    Device,
    /// A web address (`URL`).
    Url,
    /// An IPv4 or IPv6 address (`IP_ADDRESS`).
    IpAddress,
    /// A national identity number: Chinese resident ID (checksum-validated), passport (`ID_NUMBER`).
    IdNumber,
    /// Any other labelled unique identifier: accession, specimen, employee numbers (`ID`).
    Other,
}

impl Category {
    /// Every category, in declaration order.
    pub const ALL: [Category; 18] = [
        Category::Name,
        Category::Location,
        Category::Date,
        Category::Age,
        Category::Phone,
        Category::Fax,
        Category::Email,
        Category::Ssn,
        Category::MedicalRecord,
        Category::HealthPlan,
        Category::Account,
        Category::License,
        Category::Vehicle,
        Category::Device,
        Category::Url,
        Category::IpAddress,
        Category::IdNumber,
        Category::Other,
    ];

    /// The upper-case label used in output and placeholders, e.g. `"NAME"`, `"MRN"`, `"ID"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Name => "NAME",
            Category::Location => "LOCATION",
            Category::Date => "DATE",
            Category::Age => "AGE",
            Category::Phone => "PHONE",
            Category::Fax => "FAX",
            Category::Email => "EMAIL",
            Category::Ssn => "SSN",
            Category::MedicalRecord => "MRN",
            Category::HealthPlan => "HEALTH_PLAN",
            Category::Account => "ACCOUNT",
            Category::License => "LICENSE",
            Category::Vehicle => "VEHICLE",
            Category::Device => "DEVICE",
            Category::Url => "URL",
            Category::IpAddress => "IP_ADDRESS",
            Category::IdNumber => "ID_NUMBER",
            Category::Other => "ID",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Category {
    type Err = MedgenError;

    /// Parses a label as [`Category::as_str`] writes it, case-insensitively (`"mrn"`, `"Name"`).
    fn from_str(s: &str) -> Result<Self> {
        let upper = s.trim().to_ascii_uppercase();
        Category::ALL.into_iter().find(|c| c.as_str() == upper).ok_or_else(|| {
            let known: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
            MedgenError::invalid("category", format!("unknown category {s:?} (known: {})", known.join(", ")))
        })
    }
}

impl serde::Serialize for Category {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One identifier found in a text. Offsets count characters (Unicode scalar values), not bytes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Entity {
    /// What kind of identifier this is.
    pub category: Category,
    /// Offset of the first character.
    pub start: usize,
    /// Offset one past the last character.
    pub end: usize,
    /// The identifier as it appears in the text.
    pub text: String,
    /// How sure the rule that found it is, from 0 to 1 (a labelled MRN 0.95, a dictionary name 0.75).
    pub confidence: f32,
}

/// Which detectors find the identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum Engine {
    /// Patterns, word lists and context cues only: the fastest (over 1 MB/s a core).
    Rules,
    /// The learned tagger only ([`tagger`]).
    Model,
    /// Both, their entities united: where they agree on a span's category the rules' boundaries
    /// stand and its confidence is `1 - (1 - rules)(1 - model)`; where they disagree the surer
    /// one wins; names found spread to their other mentions in any case. The tagger's
    /// entities count from its per-category thresholds, chosen on a validation split.
    #[default]
    Ensemble,
}

impl Engine {
    /// The name `FromStr` reads: `rules`, `model`, `ensemble`.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Rules => "rules",
            Engine::Model => "model",
            Engine::Ensemble => "ensemble",
        }
    }
}

impl FromStr for Engine {
    type Err = MedgenError;

    /// `"rules"`, `"model"` or `"ensemble"` (case-insensitive).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rules" => Ok(Engine::Rules),
            "model" => Ok(Engine::Model),
            "ensemble" => Ok(Engine::Ensemble),
            _ => Err(MedgenError::invalid("engine", format!("unknown engine {s:?} (expected rules, model or ensemble)"))),
        }
    }
}

/// Finds the identifiers in `text` with the rules alone ([`Engine::Rules`]): sorted by
/// position, never overlapping. [`detect_with`] chooses the engine.
///
/// ```
/// use medgen::deid::{detect, Category};
/// let found = detect("患者李建国，男，68岁，电话13812345678。");
/// assert_eq!(found[0].category, Category::Name);
/// assert_eq!((found[0].start, found[0].end), (2, 5));
/// assert_eq!(found[1].category, Category::Phone);
/// ```
pub fn detect(text: &str) -> Vec<Entity> {
    detect::to_entities(text, &detect::whole_characters(text, detect::whole_codes(text, detect::spans(text))))
}

/// Finds the identifiers in each of `texts` with `engine`, the tagger from `tagger` (a file
/// written by `medgen deid train`) or the built-in one; the texts run one after another on
/// the calling thread.
///
/// Errors: `ModelFormat` or `Io` when the tagger cannot be read (the rules need none).
pub fn detect_with(texts: &[&str], engine: Engine, tagger: Option<&std::path::Path>) -> Result<Vec<Vec<Entity>>> {
    let spans = detect::spans_with(texts, engine, tagger)?;
    Ok(texts.iter().zip(spans).map(|(t, s)| detect::to_entities(t, &s)).collect())
}

/// How an identifier is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Operator {
    /// `[CATEGORY]`, e.g. `[NAME]`.
    Redact,
    /// Every letter and digit becomes `*`; spaces and punctuation stay (`(***) ***-****`).
    Mask,
    /// Numbered placeholders, `[NAME_1]`, the same for every mention of the same thing in a
    /// document ("John Smith" and later "Mr. Smith" share one); reversible with [`reidentify`].
    Placeholder,
    /// Dates move by a fixed number of days, each keeping its own format, so that intervals between
    /// dates stay the same; other categories get placeholders.
    ShiftDates,
}

impl Operator {
    /// The name `FromStr` reads: `redact`, `mask`, `placeholder`, `shift-dates`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Redact => "redact",
            Operator::Mask => "mask",
            Operator::Placeholder => "placeholder",
            Operator::ShiftDates => "shift-dates",
        }
    }
}

impl FromStr for Operator {
    type Err = MedgenError;

    /// `"redact"`, `"mask"`, `"placeholder"` or `"shift-dates"` (case-insensitive).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "redact" => Ok(Operator::Redact),
            "mask" => Ok(Operator::Mask),
            "placeholder" => Ok(Operator::Placeholder),
            "shift-dates" | "shift_dates" => Ok(Operator::ShiftDates),
            _ => Err(MedgenError::invalid(
                "mode",
                format!("unknown operator {s:?} (expected redact, mask, placeholder or shift-dates)"),
            )),
        }
    }
}

/// Which operator applies to which category, and how dates are shifted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeidConfig {
    /// The operator for every category without its own entry in `per_category` (default: Placeholder).
    pub operator: Operator,
    /// Operators for single categories, overriding `operator` (default: none).
    pub per_category: BTreeMap<Category, Operator>,
    /// Shift dates by this many days, positive or negative, at most 36,500 either way (default: None).
    pub date_shift_days: Option<i64>,
    /// Derive the shift from this key (a patient id, say) when `date_shift_days` is None: the same
    /// key always gives the same shift, between 1 and 365 days either way (default: None).
    pub date_shift_key: Option<String>,
    /// Which detectors find the identifiers (default: Ensemble).
    pub engine: Engine,
    /// A tagger file to use instead of the built-in one (default: None).
    pub tagger: Option<PathBuf>,
}

impl Default for DeidConfig {
    fn default() -> Self {
        DeidConfig {
            operator: Operator::Placeholder,
            per_category: BTreeMap::new(),
            date_shift_days: None,
            date_shift_key: None,
            engine: Engine::Ensemble,
            tagger: None,
        }
    }
}

/// A de-identified text, what was found in the original, and the way back.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Deidentified {
    /// The text with identifiers replaced.
    pub text: String,
    /// What was found; offsets are characters in the original text.
    pub entities: Vec<Entity>,
    /// Replacement → original: placeholders (`[NAME_1]` → `John Smith`) and shifted dates
    /// (`2024-05-02` → `2024-03-14`). Empty for redact and mask, which cannot be undone.
    pub mapping: BTreeMap<String, String>,
}

/// Finds the identifiers in `text` and replaces them as `config` says.
///
/// Errors: `InvalidArgument` when dates are to be shifted without `date_shift_days` or
/// `date_shift_key`, or by more than 36,500 days.
pub fn deidentify(text: &str, config: &DeidConfig) -> Result<Deidentified> {
    let shift = operators::date_shift(config)?;
    let spans = detect::spans_with(&[text], config.engine, config.tagger.as_deref())?.pop().unwrap_or_default();
    let (out, mapping) = operators::apply(text, &spans, config, shift);
    Ok(Deidentified { text: out, entities: detect::to_entities(text, &spans), mapping })
}

/// Puts the originals back: every key of `mapping` found in `text` becomes its value (longest
/// keys first, one pass, so a replacement is never replaced again).
pub fn reidentify(text: &str, mapping: &BTreeMap<String, String>) -> String {
    operators::reidentify(text, mapping)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_and_operator_names_parse_case_insensitively_and_reject_unknown_ones() {
        for c in Category::ALL {
            assert_eq!(c.as_str().to_lowercase().parse::<Category>().ok(), Some(c));
        }
        assert!(matches!("zip".parse::<Category>(), Err(MedgenError::InvalidArgument { name: "category", .. })));
        assert_eq!("Shift-Dates".parse::<Operator>().ok(), Some(Operator::ShiftDates));
        assert!(matches!("scramble".parse::<Operator>(), Err(MedgenError::InvalidArgument { name: "mode", .. })));
    }

    #[test]
    fn placeholders_are_shared_by_mentions_of_one_person_and_undone_by_reidentify() {
        let text = "SMITH, JOHN seen by Dr. Ann Lee. John Smith and Mr. Smith improved; Dr. Lee agreed.";
        let out = deidentify(text, &DeidConfig::default()).unwrap();
        assert_eq!(out.text, "[NAME_1] seen by Dr. [NAME_2]. [NAME_1] and Mr. [NAME_1] improved; Dr. [NAME_2] agreed.");
        assert_eq!(out.mapping["[NAME_2]"], "Ann Lee");
        assert!(reidentify(&out.text, &out.mapping).contains("seen by Dr. Ann Lee"));
    }

    #[test]
    fn placeholders_the_note_already_holds_are_never_given_out() {
        let text = "Seen by Dr. Alice Wong and Dr. Bo Chan. Template field: [NAME_1], [NAME_3].";
        for engine in [Engine::Rules, Engine::Ensemble] {
            let out = deidentify(text, &DeidConfig { engine, ..Default::default() }).unwrap();
            assert!(out.text.starts_with("Seen by Dr. [NAME_2] and Dr. [NAME_4]. ") && out.text.ends_with(": [NAME_1], [NAME_3]."));
            assert!(!out.mapping.contains_key("[NAME_1]") && !out.mapping.contains_key("[NAME_3]"), "{engine:?}");
            assert_eq!(reidentify(&out.text, &out.mapping), text, "{engine:?}");
        }
    }

    #[test]
    fn per_category_operators_override_the_default() {
        let mut per_category = BTreeMap::new();
        per_category.insert(Category::Date, Operator::ShiftDates);
        per_category.insert(Category::Phone, Operator::Mask);
        let cfg =
            DeidConfig { operator: Operator::Redact, per_category, date_shift_days: Some(-1), ..Default::default() };
        let out = deidentify("Dr. Smith, 2024-03-01, phone 617-555-0142.", &cfg).unwrap();
        assert_eq!(out.text, "Dr. [NAME], 2024-02-29, phone ***-***-****.");
        assert_eq!(out.mapping.len(), 1);
    }

    #[test]
    fn an_entity_takes_the_combining_marks_after_it() {
        let text = "Patient Jose\u{301} Garcia was seen by Dr. Rene\u{301}e Lee\u{301}.";
        for engine in [Engine::Rules, Engine::Ensemble] {
            let out = deidentify(text, &DeidConfig { engine, ..Default::default() }).unwrap();
            assert!(!out.text.contains('\u{301}') && !out.text.contains("Lee"), "{engine:?}: {}", out.text);
            assert_eq!(reidentify(&out.text, &out.mapping), text, "{engine:?}");
        }
        assert!(detect(text).iter().any(|e| e.text == "Jose\u{301} Garcia"));
    }

    #[test]
    fn empty_text_gives_nothing() {
        let out = deidentify("", &DeidConfig::default()).unwrap();
        assert!(out.text.is_empty() && out.entities.is_empty() && out.mapping.is_empty());
    }
}
