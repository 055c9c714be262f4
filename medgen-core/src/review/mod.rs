//! Clinician review of a draft: what supports each sentence ([`attribution`]), how sure the
//! model was of each token, a self-contained review page ([`html`]), and the reviewer's
//! decision appended to a hash-chained audit log ([`log`]).
//!
//! ```
//! use medgen::review;
//! let source = "Admitted with pneumonia. Treated with ceftriaxone 1 g IV daily. Denies chest pain.";
//! let draft = "Diagnoses:\n- Pneumonia\nHospital Course:\nCeftriaxone 1 g daily was given. Start aspirin.";
//! let units = review::attribute(source, draft)?;
//! assert!(units[0].supported && units[1].supported);
//! assert!(!units[2].supported); // aspirin: no support, and an unsupported medication
//! # Ok::<(), medgen::MedgenError>(())
//! ```

pub mod attribution;
pub mod html;
pub mod log;
pub mod network;

use std::collections::BTreeMap;

pub use attribution::{Attribution, Confidence, Flag, SourceSpan, TokenConfidence};
pub use network::NetworkSignal;

use crate::checks::Finding;
use crate::error::{MedgenError, Result};
use crate::pipeline::check_draft;
use crate::tasks::Task;
use crate::tokenizer::Tokenizer;
use crate::Model;

/// Attribution of every sentence of `draft` to `source`, with the safety checks' findings
/// marking the sentences they fall in.
///
/// Errors: `InvalidArgument` when the draft has no sentence (no letter or digit outside its
/// headings) or the source has none.
pub fn attribute(source: &str, draft: &str) -> Result<Vec<Attribution>> {
    attribute_with(source, draft, &check_draft(source, draft))
}

/// [`attribute`] with the draft's findings given (the checks already run, or none: `&[]`).
pub fn attribute_with(source: &str, draft: &str, findings: &[Finding]) -> Result<Vec<Attribution>> {
    if !source.chars().any(char::is_alphanumeric) {
        return Err(MedgenError::invalid("source", "the source has no sentence to attribute to"));
    }
    let units = attribution::attribute(source, draft, findings, &[], &[], None);
    if units.is_empty() {
        return Err(MedgenError::invalid("draft", "the draft has no sentence to attribute"));
    }
    Ok(units)
}

/// [`attribute_with`], adding the network's own signal: where `model` looks in the source
/// while it reads the draft after `task`'s prompt, and how much the source raises its
/// likelihood of each sentence ([`network::signal`]).
pub fn attribute_with_model(model: &Model, task: &Task, source: &str, draft: &str, findings: &[Finding]) -> Result<Vec<Attribution>> {
    attribute_signal(source, draft, findings, &network::signal(model, task, source, draft, None)?)
}

/// [`attribute_with`] with the network's signal given (computed once by [`network::signal`]).
///
/// The signal may cover only the first sentences (a draft cut at the model's context); those
/// past it are attributed without it.
///
/// Errors: as [`attribute`]'s, and `InvalidArgument` when the signal has more rows than the
/// draft has sentences, a gain without a row of shares (or the reverse), or a row without a
/// share per clause of the source.
pub fn attribute_signal(source: &str, draft: &str, findings: &[Finding], signal: &NetworkSignal) -> Result<Vec<Attribution>> {
    let units = attribute_with(source, draft, findings)?;
    let clauses = attribution::source_clauses(source).len();
    if signal.gains.len() != signal.shares.len() || signal.shares.len() > units.len() || signal.shares.iter().any(|r| r.len() != clauses) {
        let reason = format!("the signal has {} gains and {} rows of shares for {} sentences and {clauses} clauses", signal.gains.len(), signal.shares.len(), units.len());
        return Err(MedgenError::invalid("signal", reason));
    }
    Ok(attribution::attribute(source, draft, findings, &[], &[], Some(signal)))
}

/// Each generated token's character span in `text` and its probability, from the token ids
/// and (alternative) log-probabilities of a generation; `text` is the generation's text.
/// Tokens past the end of `text` (a stop string, EOS) are left out.
pub fn token_confidences(
    tok: &Tokenizer,
    ids: &[u32],
    logprobs: &[f32],
    alternatives: &[f32],
    text: &str,
) -> Result<Vec<TokenConfidence>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::with_capacity(ids.len());
    let mut before = 0;
    for i in 0..ids.len().min(logprobs.len()) {
        // The characters of the text this prefix of tokens has written for good: those it
        // shares with the whole text (a partial UTF-8 character decodes as U+FFFD until its
        // last byte arrives).
        let upto = tok.decode_generated(&ids[..=i], true)?;
        let after = before + upto.chars().skip(before).zip(&chars[before..]).take_while(|(a, b)| a == *b).count();
        if after > before {
            let alt = alternatives.get(i).copied().unwrap_or(f32::NEG_INFINITY);
            out.push(TokenConfidence { start: before, end: after, prob: logprobs[i].exp(), alternative_prob: alt.exp() });
            before = after;
        }
    }
    Ok(out)
}

/// A map from character offsets of `text` to those of `reidentify(text, mapping)`: each
/// replaced key moves what follows it by the difference of lengths.
pub(crate) fn reidentified_offsets(text: &str, mapping: &BTreeMap<String, String>) -> impl Fn(usize) -> usize {
    // (start, end, new length) of each replacement, in characters of `text`.
    let (mut moves, mut bytes, mut chars) = (Vec::new(), 0, 0);
    for (start, end, value) in crate::deid::operators::replacements(text, mapping) {
        chars += text[bytes..start].chars().count();
        let len = text[start..end].chars().count();
        moves.push((chars, chars + len, value.chars().count()));
        (bytes, chars) = (end, chars + len);
    }
    move |offset| {
        let mut shift: isize = 0;
        for &(start, end, new) in &moves {
            if offset >= end {
                shift += new as isize - (end - start) as isize;
            } else if offset > start {
                return (start as isize + shift) as usize + new;
            }
        }
        (offset as isize + shift).max(0) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_move_with_the_replacements() {
        let mapping = BTreeMap::from([("[NAME_1]".to_string(), "Jo".to_string())]);
        let text = "[NAME_1] has a cough. [NAME_1] rests.";
        let map = reidentified_offsets(text, &mapping);
        let re = crate::deid::reidentify(text, &mapping);
        assert_eq!(re, "Jo has a cough. Jo rests.");
        assert_eq!((map(0), map(8), map(9), map(22), map(30), map(37)), (0, 2, 3, 16, 18, 25));
    }

    #[test]
    fn offsets_move_however_large_the_mapping() {
        // Keys past the size a regular expression of them all may take.
        let mut mapping = BTreeMap::from([("[NAME_1]".to_string(), "Jo".to_string()), ("[DATE_1]".to_string(), "1 May".to_string())]);
        mapping.insert("x".repeat(1_000_000), "y".into());
        for i in 0..200 {
            mapping.insert(format!("{i:05}{}", "z".repeat(10_000)), "w".into());
        }
        let text = "é [NAME_1] on [DATE_1].";
        let map = reidentified_offsets(text, &mapping);
        assert_eq!(crate::deid::reidentify(text, &mapping), "é Jo on 1 May.");
        assert_eq!((map(2), map(10), map(14), map(22), map(23)), (2, 4, 8, 13, 14));
    }

    #[test]
    fn empty_drafts_and_sources_are_errors() {
        assert!(matches!(attribute("Cough.", "Plan:\n"), Err(MedgenError::InvalidArgument { name: "draft", .. })));
        assert!(matches!(attribute(" \n", "Cough."), Err(MedgenError::InvalidArgument { name: "source", .. })));
    }
}
