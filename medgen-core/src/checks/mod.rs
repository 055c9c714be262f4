//! Safety checks of a generated draft against its source note.
//!
//! Three checks, each with its own module:
//! - [`numbers`]: every number with a unit in the draft (doses, lab values, vital signs,
//!   percentages) must occur in the source, after normalizing spacing, unit spelling,
//!   trailing zeros, thousands separators and simple unit scales (1 g = 1000 mg).
//! - [`medications`]: every medication the draft names must be named in the source, by its
//!   generic name, a brand, or its Chinese name (a lexicon maps them to one generic).
//! - [`negation`]: a finding negated in the source but stated as present in the draft, or the
//!   reverse (NegEx-style trigger scopes).
//!
//! ```
//! use medgen::checks::{check, FindingKind};
//! let findings = check("Aspirin 81 mg daily. Denies chest pain.", "Aspirin 325mg daily. Chest pain.");
//! assert_eq!(findings[0].kind, FindingKind::UnsupportedNumber);
//! assert_eq!(findings[0].text, "325mg");
//! assert_eq!(findings[1].kind, FindingKind::NegationFlip);
//! ```

pub mod medications;
pub mod negation;
pub mod numbers;
mod text;

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A number with a unit that does not occur in the source.
    UnsupportedNumber,
    /// A medication name that does not occur in the source (under any of its names).
    UnsupportedMedication,
    /// A finding negated in the source and stated as present in the draft, or the reverse.
    NegationFlip,
    /// Protected health information in the draft.
    Phi,
    /// A placeholder (`[DATE_5]`) that the de-identified source does not have: the model
    /// made up a reference to an identifier.
    UnknownPlaceholder,
    /// A sentence that repeats an earlier one word for word (a repetition loop).
    Repetition,
}

impl FindingKind {
    /// The kind's name as it serializes: "unsupported_number", "unsupported_medication",
    /// "negation_flip", "phi", "unknown_placeholder" or "repetition".
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::UnsupportedNumber => "unsupported_number",
            FindingKind::UnsupportedMedication => "unsupported_medication",
            FindingKind::NegationFlip => "negation_flip",
            FindingKind::Phi => "phi",
            FindingKind::UnknownPlaceholder => "unknown_placeholder",
            FindingKind::Repetition => "repetition",
        }
    }
}

/// One problem in a draft, located by character offsets (not bytes) into the draft.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// What the finding is about.
    pub kind: FindingKind,
    /// Offset of the first character of the span.
    pub start: usize,
    /// Offset one past the last character of the span.
    pub end: usize,
    /// The span's text, as written in the draft.
    pub text: String,
    /// What is wrong, for a reader, e.g. "81 mg does not occur in the source".
    pub detail: String,
}

/// Checks `output` (a generated draft) against `source` (the note it was generated from):
/// unsupported numbers with units, unsupported medications, and negation flips, sorted by
/// their start in `output`.
pub fn check(source: &str, output: &str) -> Vec<Finding> {
    let mut findings = numbers::check(source, output);
    findings.extend(medications::check(source, output));
    findings.extend(negation::check(source, output));
    findings.sort_by_key(|f| (f.start, f.end));
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_in_snake_case_like_as_str() {
        for kind in [
            FindingKind::UnsupportedNumber,
            FindingKind::UnsupportedMedication,
            FindingKind::NegationFlip,
            FindingKind::Phi,
            FindingKind::UnknownPlaceholder,
            FindingKind::Repetition,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn findings_are_sorted_and_offsets_count_characters() {
        let output = "患者胸痛，予华法林3mg。";
        let findings = check("否认胸痛。", output);
        let spans: Vec<_> = findings.iter().map(|f| (f.kind, f.start, f.end)).collect();
        assert_eq!(
            spans,
            [
                (FindingKind::NegationFlip, 2, 4),
                (FindingKind::UnsupportedMedication, 6, 9),
                (FindingKind::UnsupportedNumber, 9, 12)
            ]
        );
        for f in &findings {
            let text: String = output.chars().skip(f.start).take(f.end - f.start).collect();
            assert_eq!(text, f.text);
        }
    }

    #[test]
    fn a_faithful_draft_has_no_findings() {
        let source = "72 yo man, BP 148/92, HR 102. Denies chest pain. Furosemide 40 mg PO BID. Follow up in 1 week.";
        let output =
            "72-year-old man; BP 148/92 mmHg, HR 102 bpm; no chest pain. Lasix 40mg twice daily; follow-up in 7 days.";
        assert_eq!(check(source, output), []);
    }
}
