//! ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum as rouge-score 0.1.2 computes them
//! (rouge_score/rouge_scorer.py, tokenize.py).

use std::collections::{BTreeSet, HashMap, HashSet};

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

/// The tokens of `a` and `b` as numbers, equal where the tokens are.
fn interned<'t>(a: &'t [String], b: &'t [String]) -> (Vec<u32>, Vec<u32>) {
    let mut ids: HashMap<&'t str, u32> = HashMap::new();
    let mut number = |tokens: &'t [String]| -> Vec<u32> {
        tokens
            .iter()
            .map(|t| {
                let next = ids.len() as u32;
                *ids.entry(t.as_str()).or_insert(next)
            })
            .collect()
    };
    let a = number(a);
    (a, number(b))
}

/// Row `i` of the LCS table of `a` and `b` (`row[j]`: LCS length of `a[..i]` and `b[..j]`)
/// from row `i - 1`.
fn next_row(prev: &[u32], x: u32, b: &[u32], row: &mut [u32]) {
    row[0] = 0;
    for j in 1..=b.len() {
        row[j] = if x == b[j - 1] { prev[j - 1] + 1 } else { prev[j].max(row[j - 1]) };
    }
}

/// LCS length, bit-parallel (Allison and Dix 1986; Crochemore et al. 2001): a row of the LCS
/// table over the shorter text is kept as bits, 1 where the row does not step up, and each
/// token of the longer text updates it with one add-with-carry over ⌈m/64⌉ words,
/// `V ← (V + (V & M)) | (V & !M)` for `M` the token's positions. Time O(n·m/64 + matching
/// pairs), memory O(m): two 30,000-token texts in milliseconds, 200,000 in seconds.
fn lcs_len(a: &[u32], b: &[u32]) -> usize {
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    let m = short.len();
    let mut positions: HashMap<u32, Vec<usize>> = HashMap::new();
    for (j, &t) in short.iter().enumerate() {
        positions.entry(t).or_default().push(j);
    }
    let words = m.div_ceil(64);
    let (mut v, mut mask) = (vec![u64::MAX; words], vec![0u64; words]);
    for x in long {
        let Some(at) = positions.get(x) else { continue };
        at.iter().for_each(|&j| mask[j / 64] |= 1 << (j % 64));
        let mut carry = false;
        for (v, &mk) in v.iter_mut().zip(&mask) {
            let (sum, c1) = v.overflowing_add(*v & mk);
            let (sum, c2) = sum.overflowing_add(carry as u64);
            carry = c1 | c2;
            *v = sum | (*v & !mk);
        }
        at.iter().for_each(|&j| mask[j / 64] = 0);
    }
    // Zeros among the first m bits: the steps up of the last row.
    let ones: usize = v.iter().enumerate().map(|(w, &x)| {
        let bits = (m - 64 * w).min(64);
        (if bits == 64 { x } else { x & ((1u64 << bits) - 1) }).count_ones() as usize
    }).sum();
    m - ones
}

fn score_lcs(target: &[String], pred: &[String]) -> Score {
    if target.is_empty() || pred.is_empty() {
        return ZERO;
    }
    let (t, p) = interned(target, pred);
    score(lcs_len(&t, &p), pred.len(), target.len())
}

/// Indices into `a` of one LCS of `a` and `b`. Which one matters for ROUGE-Lsum's union,
/// so ties break as rouge-score's `_backtrack_norec` does, walking back through the full
/// table. The table is not kept whole: every `k`-th row is (k ≈ √len(a)), and the rows of
/// one block at a time are computed again from its first as the walk reaches it, so that
/// two 30,000-token sentences need tens of megabytes, not gigabytes.
fn lcs_indices(a: &[u32], b: &[u32]) -> Vec<usize> {
    let (n, m) = (a.len(), b.len());
    let k = ((n as f64).sqrt() as usize).max(1);
    let mut checkpoints = vec![vec![0; m + 1]];
    let (mut prev, mut row) = (vec![0; m + 1], vec![0; m + 1]);
    for i in 1..=n {
        next_row(&prev, a[i - 1], b, &mut row);
        std::mem::swap(&mut prev, &mut row);
        if i % k == 0 {
            checkpoints.push(prev.clone());
        }
    }
    // block[r]: row base + r, for the block base..=base + k that holds rows i - 1 and i.
    let (mut block, mut base): (Vec<Vec<u32>>, Option<usize>) = (Vec::new(), None);
    let (mut i, mut j) = (n, m);
    let mut out = Vec::new();
    while i > 0 && j > 0 {
        let start = (i - 1) / k * k;
        if base != Some(start) {
            block.truncate(1);
            block.resize(1, Vec::new());
            block[0] = checkpoints[start / k].clone();
            for r in start + 1..=(start + k).min(n) {
                let mut next = vec![0; m + 1];
                next_row(&block[r - start - 1], a[r - 1], b, &mut next);
                block.push(next);
            }
            base = Some(start);
        }
        if a[i - 1] == b[j - 1] {
            out.push(i - 1);
            i -= 1;
            j -= 1;
        } else if block[i - start][j - 1] > block[i - 1 - start][j] {
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
    if let ([t], [p]) = (target, pred) {
        // One sentence each: the union is one LCS, whose tokens the counts always allow
        // (a common subsequence holds no token more often than either text).
        let (t, p) = interned(t, p);
        return score(lcs_len(&t, &p), n, m);
    }
    let (mut left_target, mut left_pred) = (token_counts(target), token_counts(pred));
    // Every sentence as numbers of one numbering; the prediction's distinct sentences (a
    // repeated one adds nothing to a union), each with its set of tokens.
    let (all_target, all_pred) = (target.concat(), pred.concat());
    let (all_target, all_pred) = interned(&all_target, &all_pred);
    let split = |all: &[u32], sentences: &[Vec<String>]| -> Vec<Vec<u32>> {
        let mut rest = all;
        sentences.iter().map(|s| {
            let (head, tail) = rest.split_at(s.len());
            rest = tail;
            head.to_vec()
        }).collect()
    };
    let (target_ids, mut pred_ids) = (split(&all_target, target), split(&all_pred, pred));
    let mut seen = HashSet::new();
    pred_ids.retain(|p| seen.insert(p.clone()));
    let pred_sets: Vec<HashSet<u32>> = pred_ids.iter().map(|p| p.iter().copied().collect()).collect();
    // token -> the distinct prediction sentences that hold it, in order.
    let mut holding: HashMap<u32, Vec<usize>> = HashMap::new();
    for (k, set) in pred_sets.iter().enumerate() {
        set.iter().for_each(|&t| holding.entry(t).or_default().push(k));
    }
    let mut unions: HashMap<&[u32], BTreeSet<usize>> = HashMap::new();
    let mut hits = 0;
    for (sentence, ids) in target.iter().zip(&target_ids) {
        // Only prediction sentences that share a token can add to the union (an LCS's
        // positions hold tokens of both); one whose shared tokens stand only at positions the
        // union already holds adds nothing, and once the union holds every position no
        // sentence can. So thousands of short lines are not thousands squared LCS tables,
        // unless many lines share tokens that their LCSs never reach (rouge-score computes
        // every pair).
        let union = unions.entry(ids).or_insert_with(|| {
            let mut sharing: Vec<usize> = ids.iter().filter_map(|t| holding.get(t)).flatten().copied().collect();
            sharing.sort_unstable();
            sharing.dedup();
            let mut union = BTreeSet::new();
            for k in sharing {
                if union.len() == ids.len() {
                    break;
                }
                if (0..ids.len()).any(|i| !union.contains(&i) && pred_sets[k].contains(&ids[i])) {
                    union.extend(lcs_indices(ids, &pred_ids[k]));
                }
            }
            union
        });
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

    /// The whole table, as rouge-score keeps it: the reference for the blockwise walk.
    fn lcs_indices_full_table(a: &[String], b: &[String]) -> Vec<usize> {
        let mut t = vec![vec![0; b.len() + 1]; a.len() + 1];
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                t[i][j] = if a[i - 1] == b[j - 1] { t[i - 1][j - 1] + 1 } else { t[i - 1][j].max(t[i][j - 1]) };
            }
        }
        let (mut i, mut j, mut out) = (a.len(), b.len(), Vec::new());
        while i > 0 && j > 0 {
            if a[i - 1] == b[j - 1] {
                out.push(i - 1);
                (i, j) = (i - 1, j - 1);
            } else if t[i][j - 1] > t[i - 1][j] {
                j -= 1;
            } else {
                i -= 1;
            }
        }
        out.reverse();
        out
    }

    #[test]
    fn the_blockwise_lcs_walk_picks_the_same_lcs_as_the_full_table() {
        let mut seed = 7u64;
        let mut words = |n: usize, vocab: u64| -> Vec<String> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((seed >> 33) % vocab).to_string()
                })
                .collect()
        };
        for (n, m, vocab) in [(1, 1, 2), (2, 9, 3), (17, 5, 4), (50, 60, 5), (101, 37, 3), (64, 64, 8), (200, 180, 12), (130, 129, 2), (300, 65, 1), (64, 128, 40), (500, 257, 6)] {
            let (a, b) = (words(n, vocab), words(m, vocab));
            let (x, y) = interned(&a, &b);
            assert_eq!(lcs_indices(&x, &y), lcs_indices_full_table(&a, &b), "{n}x{m}");
            assert_eq!(lcs_len(&x, &y), lcs_indices_full_table(&a, &b).len());
            assert_eq!(lcs_len(&y, &x), lcs_len(&x, &y));
        }
    }
}
