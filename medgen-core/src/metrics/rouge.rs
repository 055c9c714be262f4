//! ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum as rouge-score 0.1.2 computes them
//! (rouge_score/rouge_scorer.py, tokenize.py).

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use super::porter;

/// Precision, recall and F1 of one ROUGE type; precision is relative to the prediction.
#[derive(Serialize, Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub precision: f64,
    pub recall: f64,
    pub fmeasure: f64,
}

/// The four ROUGE types of one prediction against one reference.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Rouge {
    pub rouge1: Score,
    pub rouge2: Score,
    #[serde(rename = "rougeL")]
    pub rouge_l: Score,
    /// Summary-level LCS over sentences separated by `\n`.
    #[serde(rename = "rougeLsum")]
    pub rouge_lsum: Score,
}

/// ROUGE of `prediction` against `reference`, as
/// `RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer).score(reference, prediction)`.
///
/// Text is lowercased and split on anything but `[a-z0-9]`, so other scripts score nothing;
/// with `use_stemmer`, tokens longer than three characters are Porter-stemmed.
///
/// ```
/// let r = medgen::metrics::rouge("chest pain resolved", "chest pain improved", false);
/// assert!((r.rouge1.fmeasure - 2.0 / 3.0).abs() < 1e-12);
/// assert_eq!(r.rouge2.precision, 0.5);
/// ```
pub fn rouge(prediction: &str, reference: &str, use_stemmer: bool) -> Rouge {
    let pred = tokenize(prediction, use_stemmer);
    let target = tokenize(reference, use_stemmer);
    let sentences = |text: &str| -> Vec<Vec<String>> {
        text.split('\n')
            .filter(|s| !s.is_empty())
            .map(|s| tokenize(s, use_stemmer))
            .collect()
    };
    Rouge {
        rouge1: score_ngrams(&target, &pred, 1),
        rouge2: score_ngrams(&target, &pred, 2),
        rouge_l: score_lcs(&target, &pred),
        rouge_lsum: summary_level_lcs(&sentences(reference), &sentences(prediction)),
    }
}

/// rouge-score's tokenizer: lowercase, non-`[a-z0-9]` runs to spaces, stem tokens longer
/// than 3 characters.
fn tokenize(text: &str, use_stemmer: bool) -> Vec<String> {
    // Python's `lower()` and Rust's agree on which characters become ASCII (`İ` -> `i̇`, `K` -> `k`).
    let cleaned: String = text
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                ' '
            }
        })
        .collect();
    cleaned
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(|t| {
            if use_stemmer && t.len() > 3 {
                porter::stem(t)
            } else {
                t.to_string()
            }
        })
        .filter(|t| !t.is_empty())
        .collect()
}

fn score(hits: usize, pred_len: usize, target_len: usize) -> Score {
    let precision = hits as f64 / pred_len as f64;
    let recall = hits as f64 / target_len as f64;
    Score {
        precision,
        recall,
        fmeasure: fmeasure(precision, recall),
    }
}

const ZERO: Score = Score {
    precision: 0.0,
    recall: 0.0,
    fmeasure: 0.0,
};

fn fmeasure(precision: f64, recall: f64) -> f64 {
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

fn ngram_counts(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    for gram in tokens.windows(n) {
        *counts.entry(gram).or_insert(0) += 1;
    }
    counts
}

fn score_ngrams(target: &[String], pred: &[String], n: usize) -> Score {
    let target_counts = ngram_counts(target, n);
    let pred_counts = ngram_counts(pred, n);
    let hits: usize = target_counts
        .iter()
        .map(|(gram, &c)| c.min(pred_counts.get(gram).copied().unwrap_or(0)))
        .sum();
    let total = |counts: &HashMap<&[String], usize>| counts.values().sum::<usize>().max(1);
    score(hits, total(&pred_counts), total(&target_counts))
}

/// `table[i][j]`: LCS length of `a[..i]` and `b[..j]`.
fn lcs_table(a: &[String], b: &[String]) -> Vec<Vec<usize>> {
    let mut table = vec![vec![0; b.len() + 1]; a.len() + 1];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            table[i][j] = if a[i - 1] == b[j - 1] {
                table[i - 1][j - 1] + 1
            } else {
                table[i - 1][j].max(table[i][j - 1])
            };
        }
    }
    table
}

fn score_lcs(target: &[String], pred: &[String]) -> Score {
    if target.is_empty() || pred.is_empty() {
        return ZERO;
    }
    score(
        lcs_table(target, pred)[target.len()][pred.len()],
        pred.len(),
        target.len(),
    )
}

/// Indices into `a` of one LCS of `a` and `b`. Which one matters for ROUGE-Lsum's union,
/// so ties break as rouge-score's `_backtrack_norec` does.
fn lcs_indices(a: &[String], b: &[String]) -> Vec<usize> {
    let table = lcs_table(a, b);
    let (mut i, mut j) = (a.len(), b.len());
    let mut out = Vec::new();
    while i > 0 && j > 0 {
        if a[i - 1] == b[j - 1] {
            out.push(i - 1);
            i -= 1;
            j -= 1;
        } else if table[i][j - 1] > table[i - 1][j] {
            j -= 1;
        } else {
            i -= 1;
        }
    }
    out.reverse();
    out
}

/// Summary-level LCS (ROUGE paper, section 3.2), counting each token at most as often as it
/// occurs in both texts, as ROUGE-1.5.5 and rouge-score do.
fn summary_level_lcs(target: &[Vec<String>], pred: &[Vec<String>]) -> Score {
    let m: usize = target.iter().map(Vec::len).sum();
    let n: usize = pred.iter().map(Vec::len).sum();
    if m == 0 || n == 0 {
        return ZERO;
    }
    let (mut left_target, mut left_pred) = (token_counts(target), token_counts(pred));
    let mut hits = 0;
    for sentence in target {
        let union: BTreeSet<usize> = pred.iter().flat_map(|p| lcs_indices(sentence, p)).collect();
        for token in union.iter().map(|&i| sentence[i].as_str()) {
            if let (Some(t @ 1..), Some(p @ 1..)) =
                (left_target.get_mut(token), left_pred.get_mut(token))
            {
                *t -= 1;
                *p -= 1;
                hits += 1;
            }
        }
    }
    score(hits, n, m)
}

fn token_counts(sentences: &[Vec<String>]) -> HashMap<&str, usize> {
    let mut counts = HashMap::new();
    for token in sentences.iter().flatten() {
        *counts.entry(token.as_str()).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Score, p: f64, r: f64) {
        assert!(
            (a.precision - p).abs() < 1e-12 && (a.recall - r).abs() < 1e-12,
            "{a:?} vs {p} {r}"
        );
    }

    #[test]
    fn tokenizer_lowercases_splits_on_non_alphanumerics_and_stems_long_tokens() {
        assert_eq!(
            tokenize("BP 142/88 mmHg, pt's", false),
            ["bp", "142", "88", "mmhg", "pt", "s"]
        );
        assert_eq!(
            tokenize("Ponies were hospitalized", true),
            ["poni", "were", "hospit"]
        );
        assert_eq!(tokenize("胸痛 ok", false), ["ok"]);
    }

    #[test]
    fn rouge_n_and_l_count_clipped_matches_and_the_lcs() {
        // Prediction "a b a c" against reference "a a b": unigrams hit a,a,b; bigrams hit (a b).
        let r = rouge("a b a c", "a a b", false);
        close(r.rouge1, 3.0 / 4.0, 3.0 / 3.0);
        close(r.rouge2, 1.0 / 3.0, 1.0 / 2.0);
        close(r.rouge_l, 2.0 / 4.0, 2.0 / 3.0);
    }

    #[test]
    fn empty_text_scores_zero() {
        assert_eq!(rouge("", "fever", false).rouge1, ZERO);
        assert_eq!(rouge("fever", "...", false).rouge_lsum, ZERO);
    }

    #[test]
    fn rouge_lsum_takes_the_union_of_lcs_over_prediction_sentences() {
        // The reference sentence "a b c d" shares "a b" with one predicted sentence and "c d"
        // with the other: 4 hits, where ROUGE-L over the joined text finds only 2.
        let r = rouge("c d\na b", "a b c d", false);
        close(r.rouge_lsum, 1.0, 1.0);
        close(r.rouge_l, 2.0 / 4.0, 2.0 / 4.0);
    }
}
