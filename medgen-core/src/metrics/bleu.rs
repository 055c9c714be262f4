//! BLEU as sacrebleu 2.6.0 computes it with its defaults: the `13a` tokenizer (mteval-v13a,
//! as used by WMT), case kept, n-grams up to 4, `exp` smoothing (sacrebleu/metrics/bleu.py,
//! tokenizers/tokenizer_13a.py, tokenizer_re.py).

use std::collections::HashMap;

use serde::Serialize;

use super::is_py_space;
use crate::error::{MedgenError, Result};

const MAX_ORDER: usize = 4;

/// A BLEU score with its sufficient statistics, as sacrebleu's `BLEUScore`.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Bleu {
    /// BLEU, 0 to 100.
    pub score: f64,
    /// Predicted n-grams found in the references (clipped to the reference counts), n = 1..=4.
    pub counts: [u64; 4],
    /// Predicted n-grams, n = 1..=4.
    pub totals: [u64; 4],
    /// N-gram precisions in percent, after smoothing; 0 for orders left out.
    pub precisions: [f64; 4],
    /// Brevity penalty.
    pub bp: f64,
    /// Predicted tokens.
    pub sys_len: u64,
    /// Reference tokens (for each prediction, the reference length closest to it).
    pub ref_len: u64,
}

/// Corpus BLEU of `predictions` against one reference each, as
/// `sacrebleu.corpus_bleu(predictions, [references])`.
///
/// An empty corpus scores 0 (sacrebleu raises); lengths that differ are an error.
///
/// ```
/// let b = medgen::metrics::corpus_bleu(&["The patient is stable ."], &["The patient is stable."])?;
/// assert_eq!(b.counts, [5, 4, 3, 2]);
/// # Ok::<(), medgen::MedgenError>(())
/// ```
pub fn corpus_bleu(predictions: &[&str], references: &[&str]) -> Result<Bleu> {
    if predictions.len() != references.len() {
        return Err(MedgenError::invalid(
            "references",
            format!(
                "{} predictions but {} references",
                predictions.len(),
                references.len()
            ),
        ));
    }
    let refs: Vec<[&str; 1]> = references.iter().map(|r| [*r]).collect();
    let refs: Vec<&[&str]> = refs.iter().map(|r| r.as_slice()).collect();
    corpus_bleu_multi(predictions, &refs)
}

/// Corpus BLEU with several references per prediction: `references[i]` are the references of
/// `predictions[i]` (sacrebleu takes them transposed, one stream per reference).
pub fn corpus_bleu_multi(predictions: &[&str], references: &[&[&str]]) -> Result<Bleu> {
    if predictions.len() != references.len() {
        return Err(MedgenError::invalid(
            "references",
            format!(
                "{} predictions but {} reference lists",
                predictions.len(),
                references.len()
            ),
        ));
    }
    let mut total = Stats::default();
    for (i, (prediction, refs)) in predictions.iter().zip(references).enumerate() {
        if refs.is_empty() {
            return Err(MedgenError::invalid(
                "references",
                format!("prediction {i} has no reference"),
            ));
        }
        total.add(&segment_stats(prediction, refs));
    }
    Ok(compute_bleu(&total, false))
}

/// Sentence BLEU, as `sacrebleu.sentence_bleu(prediction, [reference])`: orders from the
/// first with no predicted n-grams on are left out ("effective order").
///
/// ```
/// let b = medgen::metrics::sentence_bleu("afebrile", "afebrile");
/// assert!((b.score - 100.0).abs() < 1e-9); // exp(ln 100), as in sacrebleu
/// ```
pub fn sentence_bleu(prediction: &str, reference: &str) -> Bleu {
    compute_bleu(&segment_stats(prediction, &[reference]), true)
}

/// Sentence BLEU against several references; an error if there are none.
pub fn sentence_bleu_multi(prediction: &str, references: &[&str]) -> Result<Bleu> {
    if references.is_empty() {
        return Err(MedgenError::invalid("references", "no reference"));
    }
    Ok(compute_bleu(&segment_stats(prediction, references), true))
}

/// What BLEU needs from each segment; corpus BLEU sums them.
#[derive(Default)]
struct Stats {
    sys_len: u64,
    ref_len: u64,
    correct: [u64; MAX_ORDER],
    total: [u64; MAX_ORDER],
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        self.sys_len += other.sys_len;
        self.ref_len += other.ref_len;
        for n in 0..MAX_ORDER {
            self.correct[n] += other.correct[n];
            self.total[n] += other.total[n];
        }
    }
}

/// Tokenizes as sacrebleu's `_preprocess_segment`: strip trailing whitespace, then 13a.
fn preprocess(text: &str) -> String {
    tokenize_13a(text.trim_end_matches(is_py_space))
}

/// sacrebleu's `Tokenizer13a`; the result's tokens are separated by single spaces.
fn tokenize_13a(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let line: Vec<char> = format!(" {line} ").chars().collect();
    // The four regex substitutions of sacrebleu's `TokenizerRegexp`, each a pass of
    // non-overlapping, leftmost matches like `re.sub`.
    // r'([\{-\~\[-\` -\&\(-\+\:-\@\/])' -> r' \1 '
    let mut spaced = Vec::with_capacity(line.len() * 2);
    for c in line {
        if matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/') {
            spaced.extend([' ', c, ' ']);
        } else {
            spaced.push(c);
        }
    }
    let period_or_comma = |c: char| c == '.' || c == ',';
    let digit = |c: char| c.is_ascii_digit();
    // r'([^0-9])([\.,])' -> r'\1 \2 ': period and comma unless preceded by a digit.
    let line = substitute_pairs(
        &spaced,
        |a, b| !digit(a) && period_or_comma(b),
        |a, b| [a, ' ', b, ' '],
    );
    // r'([\.,])([^0-9])' -> r' \1 \2': period and comma unless followed by a digit.
    let line = substitute_pairs(
        &line,
        |a, b| period_or_comma(a) && !digit(b),
        |a, b| [' ', a, ' ', b],
    );
    // r'([0-9])(-)' -> r'\1 \2 ': dash after a digit.
    let line = substitute_pairs(&line, |a, b| digit(a) && b == '-', |a, b| [a, ' ', b, ' ']);
    let line: String = line.into_iter().collect();
    line.split(is_py_space)
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `re.sub` of a two-character pattern: scanning left to right, each pair that matches is
/// replaced and scanning resumes after it.
fn substitute_pairs(
    s: &[char],
    matches: impl Fn(char, char) -> bool,
    replace: impl Fn(char, char) -> [char; 4],
) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len() + s.len() / 2);
    let mut i = 0;
    while i < s.len() {
        match s.get(i + 1) {
            Some(&next) if matches(s[i], next) => {
                out.extend(replace(s[i], next));
                i += 2;
            }
            _ => {
                out.push(s[i]);
                i += 1;
            }
        }
    }
    out
}

/// Counts of all n-grams of orders 1 to 4.
fn ngram_counts<'a>(tokens: &'a [&'a str]) -> HashMap<&'a [&'a str], u64> {
    let mut counts = HashMap::new();
    for n in 1..=MAX_ORDER {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

fn segment_stats(prediction: &str, references: &[&str]) -> Stats {
    let prediction = preprocess(prediction);
    let references: Vec<String> = references.iter().map(|r| preprocess(r)).collect();
    let ref_tokens: Vec<Vec<&str>> = references
        .iter()
        .map(|r| r.split(' ').filter(|t| !t.is_empty()).collect())
        .collect();
    // Each n-gram counts as often as it occurs in the reference that has it most.
    let mut ref_counts: HashMap<&[&str], u64> = HashMap::new();
    for tokens in &ref_tokens {
        for (gram, count) in ngram_counts(tokens) {
            let max = ref_counts.entry(gram).or_insert(0);
            *max = (*max).max(count);
        }
    }
    let tokens: Vec<&str> = prediction.split(' ').filter(|t| !t.is_empty()).collect();
    let mut stats = Stats {
        sys_len: tokens.len() as u64,
        ..Stats::default()
    };
    // The closest reference length, the shorter on a tie.
    let mut closest: Option<(u64, u64)> = None;
    for len in ref_tokens.iter().map(|t| t.len() as u64) {
        let diff = len.abs_diff(stats.sys_len);
        if closest.is_none_or(|(best_diff, best_len)| {
            diff < best_diff || (diff == best_diff && len < best_len)
        }) {
            closest = Some((diff, len));
        }
    }
    stats.ref_len = closest.map_or(0, |(_, len)| len);
    for (gram, count) in ngram_counts(&tokens) {
        stats.total[gram.len() - 1] += count;
        stats.correct[gram.len() - 1] += count.min(ref_counts.get(gram).copied().unwrap_or(0));
    }
    stats
}

/// sacrebleu's `BLEU.compute_bleu` with `smooth_method="exp"`: an order with no match gets
/// precision 100 / (2^k * total) for its k-th such order.
fn compute_bleu(stats: &Stats, effective_order: bool) -> Bleu {
    let (sys_len, ref_len) = (stats.sys_len, stats.ref_len);
    let bp = match (sys_len < ref_len, sys_len > 0) {
        (false, _) => 1.0,
        (true, true) => (1.0 - ref_len as f64 / sys_len as f64).exp(),
        (true, false) => 0.0,
    };
    let mut bleu = Bleu {
        score: 0.0,
        counts: stats.correct,
        totals: stats.total,
        precisions: [0.0; MAX_ORDER],
        bp,
        sys_len,
        ref_len,
    };
    if stats.correct.iter().all(|&c| c == 0) {
        return bleu;
    }
    let mut smooth = 1.0;
    let mut order = MAX_ORDER;
    for n in 0..MAX_ORDER {
        let (correct, total) = (stats.correct[n], stats.total[n]);
        if total == 0 {
            break;
        }
        if effective_order {
            order = n + 1;
        }
        bleu.precisions[n] = if correct == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total as f64)
        } else {
            100.0 * correct as f64 / total as f64
        };
    }
    // sacrebleu's `my_log` floors log(0) so that a missing order gives a score of 0, not NaN.
    let log_sum = bleu.precisions[..order].iter().fold(0.0, |sum, &p| {
        sum + if p == 0.0 { -9999999999.0 } else { p.ln() }
    });
    bleu.score = bp * (log_sum / order as f64).exp();
    bleu
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_13a_splits_punctuation_but_not_inside_numbers() {
        assert_eq!(
            tokenize_13a("BP 142/88, T 38.5 °C."),
            "BP 142 / 88 , T 38.5 °C ."
        );
        assert_eq!(tokenize_13a("1,000 mg 5-10 x-ray"), "1,000 mg 5 - 10 x-ray");
        assert_eq!(tokenize_13a("a &amp;lt; b-\nc (d)"), "a < bc ( d )");
        assert_eq!(tokenize_13a("e.g., it's"), "e . g . , it's");
    }

    #[test]
    fn sentence_bleu_uses_exp_smoothing_and_effective_order() {
        // "a b c" vs "a b d": 2/3 unigrams, 1/2 bigrams, 0/1 trigrams smoothed to 100/2,
        // no 4-grams, so the effective order is 3; no brevity penalty.
        let b = sentence_bleu("a b c", "a b d");
        assert_eq!(b.counts, [2, 1, 0, 0]);
        assert_eq!(b.totals, [3, 2, 1, 0]);
        let expected = ((200.0f64 / 3.0).ln() + 50f64.ln() + 50f64.ln()) / 3.0;
        assert!((b.score - expected.exp()).abs() < 1e-12);
    }

    #[test]
    fn corpus_bleu_sums_statistics_and_applies_the_brevity_penalty() {
        let b = corpus_bleu(&["a b", "c"], &["a b x", "c y"]).unwrap();
        assert_eq!((b.sys_len, b.ref_len), (3, 5));
        assert_eq!(b.counts, [3, 1, 0, 0]);
        assert!((b.bp - (1.0f64 - 5.0 / 3.0).exp()).abs() < 1e-15);
        // Without effective order the missing 3- and 4-grams give a score of 0.
        assert_eq!(b.score, 0.0);
        assert!(corpus_bleu(&["a"], &[]).is_err());
    }

    #[test]
    fn closest_reference_length_prefers_the_shorter_on_a_tie() {
        let b = sentence_bleu_multi("a b c", &["a b c d", "a b"]).unwrap();
        assert_eq!(b.ref_len, 2);
        assert_eq!(b.counts, [3, 2, 1, 0]);
    }
}
