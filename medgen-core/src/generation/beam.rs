//! Beam search, step for step as transformers' `_beam_search` (generation/utils.py, v5.23),
//! so that it finds the same sequences with the same scores:
//!
//! - each beam's logits become log-probabilities, go through the logits processors and add
//!   to the beam's score;
//! - the best `max(2, 1 + EOS ids) * num_beams` continuations over all beams are kept, so
//!   that `num_beams` of them still run when the best ones end in EOS;
//! - a continuation ending in EOS, or reaching `max_new_tokens`, finishes if it ranks among
//!   the best `num_beams`: its score becomes `score / generated_len ** length_penalty` and
//!   it joins the `num_beams` best finished sequences;
//! - the `num_beams` best unfinished continuations are the next beams, and the rows of the
//!   KV cache follow the beams they extend;
//! - `early_stopping` decides when the finished sequences can no longer be beaten.

use super::sampling::{self, Context};
use super::{EarlyStopping, GenerationConfig};

/// transformers' score for "no beam here". A finite number, not -inf: comparisons against
/// it must come out as in transformers.
const NONE: f32 = -1.0e9;

/// A sequence being searched, or a finished one.
#[derive(Clone)]
pub(crate) struct Hypothesis {
    /// Generated tokens.
    pub tokens: Vec<u32>,
    /// Each token's log-probability under the raw distribution (for `logprobs`).
    pub logprobs: Vec<f32>,
    /// Summed processed log-probabilities; once finished, divided by
    /// `tokens.len() ** length_penalty`.
    pub score: f32,
}

/// Beam `beam` extended by `token`, with the accumulated score.
struct Candidate {
    score: f32,
    beam: usize,
    token: u32,
    logprob: f32,
}

/// A beam search in progress, one step at a time, so that one batch can run the searches
/// of several prompts together.
pub(crate) struct Beams {
    /// The running beams (all but the first score [`NONE`] before the first step).
    beams: Vec<Hypothesis>,
    /// The `num_beams` best finished sequences, the best first.
    finished: Vec<Hypothesis>,
    /// Which token ids the prompt holds (for the repetition penalty).
    prompt_seen: Vec<bool>,
    /// Forward passes of all beams after the prefill.
    steps: usize,
}

impl Beams {
    /// A search after `prompt` over a vocabulary of `vocab` tokens.
    pub fn new(prompt: &[u32], vocab: usize, cfg: &GenerationConfig) -> Self {
        // All beams start as the prompt. Only the first counts at the first step (the others
        // score NONE), or every beam would pick the same tokens.
        let beams = (0..cfg.num_beams)
            .map(|i| Hypothesis { tokens: Vec::new(), logprobs: Vec::new(), score: if i == 0 { 0.0 } else { NONE } })
            .collect();
        let mut prompt_seen = vec![false; vocab];
        for &t in prompt {
            if let Some(s) = prompt_seen.get_mut(t as usize) {
                *s = true;
            }
        }
        Beams { beams, finished: Vec::with_capacity(2 * cfg.num_beams), prompt_seen, steps: 0 }
    }

    /// One step from the logits of each running beam (one row, the prompt's, at the first
    /// step): the next beams as (the row each extends, its new token), or `None` once the
    /// search is over.
    pub fn advance(&mut self, logits: &[Vec<f32>], ctx: &Context) -> Option<(Vec<usize>, Vec<u32>)> {
        let (cfg, n) = (ctx.cfg, ctx.cfg.num_beams);
        let keep = 2.max(1 + ctx.eos.len()) * n;
        let first = logits.len() == 1;
        let candidates = best_continuations(&self.beams, logits, keep, &self.prompt_seen, ctx);
        // The generated length once this step's token is added (the same in every beam).
        let len = self.steps + 1;
        let at_max = len >= cfg.max_new_tokens;
        let ends = |c: &Candidate| at_max || ctx.eos.contains(&c.token);
        // Only the best `n` may finish (the rest are there to keep `n` beams running), and
        // with early_stopping true a full set of finished sequences takes no more.
        if !(cfg.early_stopping == EarlyStopping::True && self.finished.len() == n) {
            let norm = length_norm(len, cfg.length_penalty);
            for c in candidates.iter().take(n).filter(|c| ends(c)) {
                let mut h = extend(&self.beams[c.beam], c);
                h.score /= norm;
                self.finished.push(h);
            }
            // A stable sort: on equal scores the earlier sequence stays ahead.
            self.finished.sort_by(|a, b| b.score.total_cmp(&a.score));
            self.finished.truncate(n);
        }
        if at_max {
            return None;
        }
        // At most `n` candidates per EOS id end, so `n` of the `keep` go on.
        let next: Vec<&Candidate> = candidates.iter().filter(|c| !ends(c)).take(n).collect();
        self.beams = next.iter().map(|c| extend(&self.beams[c.beam], c)).collect();
        match self.beams.first() {
            Some(best) if !cannot_improve(best.score, &self.finished, len, cfg) => {}
            _ => return None,
        }
        self.steps += 1;
        // Before the first step every beam is the prompt, the one row there is.
        let sources = next.iter().map(|c| if first { 0 } else { c.beam }).collect();
        Some((sources, next.iter().map(|c| c.token).collect()))
    }

    /// Forward passes of all beams so far.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The `num_return_sequences` best finished sequences, the best first.
    pub fn finish(mut self, cfg: &GenerationConfig) -> Vec<Hypothesis> {
        self.finished.truncate(cfg.num_return_sequences);
        self.finished
    }
}

/// The `keep` best continuations of all beams, best first; ties go to the lower beam, then
/// the lower token id.
fn best_continuations(beams: &[Hypothesis], logits: &[Vec<f32>], keep: usize, prompt_seen: &[bool], ctx: &Context) -> Vec<Candidate> {
    let order = |a: &Candidate, b: &Candidate| b.score.total_cmp(&a.score).then(a.beam.cmp(&b.beam)).then(a.token.cmp(&b.token));
    let mut all = Vec::with_capacity(beams.len() * keep);
    for (i, beam) in beams.iter().enumerate() {
        // Before the first step, every beam reads the prompt's row.
        let logits = &logits[i.min(logits.len() - 1)];
        let (max, log_sum) = sampling::log_softmax_terms(logits);
        let mut scores: Vec<f32> = logits.iter().map(|&l| (l - max) - log_sum).collect();
        let mut seen = Vec::new();
        if ctx.cfg.repetition_penalty != 1.0 {
            seen = prompt_seen.to_vec();
            beam.tokens.iter().for_each(|&t| seen[t as usize] = true);
        }
        sampling::process(&mut scores, ctx, &seen, &beam.tokens);
        // The global best `keep` are among each beam's best `keep`, found in one pass: tokens
        // come in increasing order, so one that only ties the worst kept stays out.
        let mut row: Vec<Candidate> = Vec::with_capacity(keep + 1);
        for (t, &s) in scores.iter().enumerate() {
            let score = s + beam.score;
            if row.len() == keep && score.total_cmp(&row[keep - 1].score).is_le() {
                continue;
            }
            let at = row.partition_point(|c| c.score.total_cmp(&score).is_ge());
            let logprob = (logits[t] - max) - log_sum;
            row.insert(at, Candidate { score, beam: i, token: t as u32, logprob });
            row.truncate(keep);
        }
        all.extend(row);
    }
    all.sort_unstable_by(order);
    all.truncate(keep);
    all
}

/// `beam` with `c`'s token appended.
fn extend(beam: &Hypothesis, c: &Candidate) -> Hypothesis {
    let mut h = beam.clone();
    h.tokens.push(c.token);
    h.logprobs.push(c.logprob);
    h.score = c.score;
    h
}

/// `len ** length_penalty`, rounded to f32 as transformers' division of an f32 tensor by a
/// Python float rounds it.
fn length_norm(len: usize, length_penalty: f32) -> f32 {
    (len as f64).powf(length_penalty as f64) as f32
}

/// Whether the search ends after a step that left `len` tokens in each running beam, the
/// best of which scores `best`: transformers' `_check_early_stop_heuristic` and
/// `_beam_search_has_unfinished_sequences`.
fn cannot_improve(best: f32, finished: &[Hypothesis], len: usize, cfg: &GenerationConfig) -> bool {
    let full = finished.len() == cfg.num_beams;
    if full && cfg.early_stopping == EarlyStopping::True {
        return true;
    }
    // A positive length penalty lets longer sequences score higher: "never" bounds the best
    // running score at the longest length; the others assume the current one.
    let at = if cfg.early_stopping == EarlyStopping::Never && cfg.length_penalty > 0.0 { cfg.max_new_tokens } else { len };
    let worst = match finished.last() {
        Some(h) if full => h.score,
        _ => NONE,
    };
    best / length_norm(at, cfg.length_penalty) <= worst
}

#[cfg(test)]
mod tests {
    use super::*;
    use sampling::log_softmax;

    /// A model over tokens 0, 1 and 2 (EOS): the prompt's next-token logits are
    /// [2, 1, 0]; after any token they are [0, 1, 3], so EOS is likely after one token.
    /// The finished sequences, and the forward passes after the prompt's.
    fn run(cfg: &GenerationConfig) -> (Vec<Hypothesis>, usize) {
        let ctx = Context { cfg, prompt: &[0], eos: &[2], forced_bos: None, forced_eos: None, constraint: None };
        let mut beams = Beams::new(&[0], 3, cfg);
        let mut logits = vec![vec![2.0, 1.0, 0.0]];
        let mut calls = 0;
        while let Some((_, tokens)) = beams.advance(&logits, &ctx) {
            calls += 1;
            logits = tokens.iter().map(|_| vec![0.0, 1.0, 3.0]).collect();
        }
        assert_eq!(beams.steps(), calls);
        (beams.finish(cfg), calls)
    }

    fn config(length_penalty: f32, early_stopping: EarlyStopping) -> GenerationConfig {
        GenerationConfig {
            num_beams: 2,
            num_return_sequences: 2,
            max_new_tokens: 3,
            length_penalty,
            early_stopping,
            ..Default::default()
        }
    }

    fn tokens(found: &[Hypothesis]) -> Vec<Vec<u32>> {
        found.iter().map(|h| h.tokens.clone()).collect()
    }

    #[test]
    fn eos_below_the_best_num_beams_is_dropped_and_scores_divide_by_the_length() {
        // Step 1: EOS ranks third, so it neither finishes nor runs. Step 2: both beams end
        // in EOS, and the best running beam cannot beat them at length 2.
        let (found, calls) = run(&config(1.0, EarlyStopping::False));
        assert_eq!(tokens(&found), [vec![0, 2], vec![1, 2]]);
        assert_eq!(calls, 1);
        let (first, next) = (log_softmax(&[2.0, 1.0, 0.0]), log_softmax(&[0.0, 1.0, 3.0]));
        assert_eq!(found[0].score, (first[0] + next[2]) / 2.0);
        assert_eq!(found[1].score, (first[1] + next[2]) / 2.0);
        assert_eq!(found[0].logprobs, [first[0], next[2]]);
    }

    #[test]
    fn early_stopping_never_searches_on_while_a_longer_sequence_could_win() {
        // With length_penalty 2, [0, 1, 2] scores (-2.75 / 9) above [1, 2] (-1.58 / 4).
        // "false" bounds the running beam at its current length and stops after step 2;
        // "never" bounds it at max_new_tokens and finds the longer sequence.
        let (found, calls) = run(&config(2.0, EarlyStopping::False));
        assert_eq!((tokens(&found), calls), (vec![vec![0, 2], vec![1, 2]], 1));
        let (found, calls) = run(&config(2.0, EarlyStopping::Never));
        assert_eq!((tokens(&found), calls), (vec![vec![0, 2], vec![0, 1, 2]], 2));
    }

    #[test]
    fn max_new_tokens_finishes_the_best_beams() {
        let cfg = GenerationConfig { max_new_tokens: 1, ..config(1.0, EarlyStopping::False) };
        let (found, calls) = run(&cfg);
        assert_eq!((tokens(&found), calls), (vec![vec![0], vec![1]], 0));
    }

    #[test]
    fn min_new_tokens_keeps_beams_from_ending() {
        let cfg = GenerationConfig { min_new_tokens: 3, ..config(1.0, EarlyStopping::False) };
        let (found, _) = run(&cfg);
        assert!(found.iter().all(|h| h.tokens.len() == 3 && !h.tokens[..2].contains(&2)));
    }
}
