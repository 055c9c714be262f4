//! ROUGE and BLEU, matching the Python packages that papers report: `rouge-score` 0.1.2
//! (with NLTK's Porter stemmer) and `sacrebleu` 2.6.0 (13a tokenizer, exp smoothing).
//! Scores agree with theirs to the last bits: the same tokenization, the same tie-breaking
//! in the LCS back-trace, and the same order of floating-point operations.
//!
//! ```
//! let r = medgen::metrics::rouge("Patient was hospitalized.", "The patient was hospitalized", true);
//! assert_eq!(r.rouge1.precision, 1.0);
//! let b = medgen::metrics::sentence_bleu("no acute distress", "no acute distress");
//! assert!((b.score - 100.0).abs() < 1e-9);
//! ```

mod bleu;
mod porter;
mod rouge;

pub use bleu::{corpus_bleu, corpus_bleu_multi, sentence_bleu, sentence_bleu_multi, Bleu};
pub use porter::stem;
pub use rouge::{rouge, Rouge, Score};

/// Python's `str.isspace()`: Unicode White_Space plus the four ASCII separators
/// U+001C..U+001F, which Python counts as whitespace and Rust does not. `str.split()`
/// and `str.rstrip()` in sacrebleu split on exactly these.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}
