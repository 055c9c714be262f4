//! Logits processors and the token sampler, on the CPU copy of one position's logits.
//! The order follows transformers: repetition penalty, no-repeat n-gram, minimum length,
//! then temperature, top-k, top-p and min-p, then a draw (or argmax when greedy).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::GenerationConfig;

/// transformers' `RepetitionPenaltyLogitsProcessor`: each token already in the sequence has
/// its logit divided by `penalty` when positive, multiplied when negative.
pub(crate) fn repetition_penalty(logits: &mut [f32], seen: &[bool], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    for (l, _) in logits.iter_mut().zip(seen).filter(|(_, &s)| s) {
        *l = if *l < 0.0 { *l * penalty } else { *l / penalty };
    }
}

/// What the logits processors read besides the scores.
pub(crate) struct Context<'a> {
    pub cfg: &'a GenerationConfig,
    /// The sequence the generated tokens continue: the prompt of a decoder-only model, the
    /// decoder start token of an encoder-decoder one (as transformers' `input_ids`).
    pub prompt: &'a [u32],
    pub eos: &'a [u32],
    /// (BART) The only token allowed first: transformers' `ForcedBOSTokenLogitsProcessor`.
    pub forced_bos: Option<u32>,
    /// (BART) The only token allowed last, at `max_new_tokens`: `ForcedEOSTokenLogitsProcessor`.
    pub forced_eos: Option<u32>,
    /// The caller's processor, if any.
    pub constraint: Option<&'a dyn super::LogitsConstraint>,
}

/// The processors before sampling, in transformers' order, on the scores of the token after
/// `ctx.prompt` + `generated`; `seen` marks the token ids in either.
pub(crate) fn process(scores: &mut [f32], ctx: &Context, seen: &[bool], generated: &[u32]) {
    let cfg = ctx.cfg;
    repetition_penalty(scores, seen, cfg.repetition_penalty);
    if cfg.no_repeat_ngram_size > 0 {
        let seq: Vec<u32> = ctx.prompt.iter().chain(generated).copied().collect();
        no_repeat_ngram(scores, &seq, cfg.no_repeat_ngram_size);
    }
    if generated.len() < cfg.min_new_tokens {
        suppress(scores, ctx.eos);
    }
    if let Some(c) = ctx.constraint {
        c.apply(scores, generated, cfg.max_new_tokens);
    }
    // transformers forces BOS, then EOS: with max_new_tokens 1, EOS wins.
    let forced = match (ctx.forced_bos, ctx.forced_eos) {
        (_, Some(eos)) if generated.len() + 1 == cfg.max_new_tokens => Some(eos),
        (Some(bos), _) if generated.is_empty() => Some(bos),
        _ => None,
    };
    if let Some(token) = forced.filter(|&t| (t as usize) < scores.len()) {
        scores.iter_mut().for_each(|s| *s = f32::NEG_INFINITY);
        scores[token as usize] = 0.0;
    }
}

/// transformers' `NoRepeatNGramLogitsProcessor`: bans each token that would complete an
/// n-gram already in `seq` (prompt and output), that is, that follows an earlier
/// occurrence of `seq`'s last `n - 1` tokens.
pub(crate) fn no_repeat_ngram(scores: &mut [f32], seq: &[u32], n: usize) {
    if n == 0 || seq.len() < n {
        return;
    }
    let prefix = &seq[seq.len() + 1 - n..];
    for w in seq.windows(n) {
        if w[..n - 1] == *prefix {
            if let Some(s) = scores.get_mut(w[n - 1] as usize) {
                *s = f32::NEG_INFINITY;
            }
        }
    }
}

/// Sets the logits of `ids` to -inf (EOS before `min_new_tokens`).
pub(crate) fn suppress(logits: &mut [f32], ids: &[u32]) {
    for &i in ids {
        if let Some(l) = logits.get_mut(i as usize) {
            *l = f32::NEG_INFINITY;
        }
    }
}

/// Index of the largest logit; the first one on ties, as `torch.argmax`.
pub(crate) fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// log-softmax of all logits, as [`log_prob`] computes each.
#[cfg(test)]
pub(crate) fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let (max, log_sum) = log_softmax_terms(logits);
    logits.iter().map(|&l| (l - max) - log_sum).collect()
}

/// log-softmax of the raw logits at `token`.
#[cfg(test)]
pub(crate) fn log_prob(logits: &[f32], token: u32) -> f32 {
    let (max, log_sum) = log_softmax_terms(logits);
    (logits[token as usize] - max) - log_sum
}

/// The log-probability of `token`, and that of the most likely other token (-inf when the
/// vocabulary has one token).
pub(crate) fn log_prob_and_alternative(logits: &[f32], token: u32) -> (f32, f32) {
    let (max, log_sum) = log_softmax_terms(logits);
    let other = logits
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != token as usize)
        .map(|(_, &l)| l)
        .fold(f32::NEG_INFINITY, f32::max);
    ((logits[token as usize] - max) - log_sum, (other - max) - log_sum)
}

/// The maximum `m` of `logits` and `ln Σ exp(l - m)`: log-softmax at `l` is
/// `(l - m) - ln Σ`.
pub(crate) fn log_softmax_terms(logits: &[f32]) -> (f32, f32) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum = crate::kernels::sum_exp(logits, max);
    (max, sum.ln() as f32)
}

/// Picks tokens: greedily, or by seeded sampling.
pub(crate) struct Sampler {
    rng: ChaCha8Rng,
    greedy: bool,
    temperature: f32,
    top_k: usize,
    top_p: f32,
    min_p: f32,
}

impl Sampler {
    pub fn new(cfg: &GenerationConfig, seed: u64) -> Self {
        Sampler {
            rng: ChaCha8Rng::seed_from_u64(seed),
            greedy: !cfg.do_sample || cfg.temperature == 0.0,
            temperature: cfg.temperature,
            top_k: cfg.top_k,
            top_p: cfg.top_p,
            min_p: cfg.min_p,
        }
    }

    pub fn pick(&mut self, logits: &[f32]) -> u32 {
        if self.greedy {
            return argmax(logits);
        }
        // In f64: a temperature near f32's smallest (1e-38) would make l / t infinite in f32,
        // and the draw garbage; in f64 it tends to the greedy pick, as it should.
        let t = f64::from(self.temperature);
        let mut cand: Vec<(u32, f64)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, &l)| (i as u32, f64::from(l) / t))
            .collect();
        if cand.is_empty() {
            return argmax(logits);
        }
        let desc = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if self.top_k > 0 && self.top_k < cand.len() {
            cand.select_nth_unstable_by(self.top_k - 1, desc);
            // Ties with the k-th value stay, as transformers keeps every logit >= it.
            let kth = cand[self.top_k - 1].1;
            let (head, tail) = cand.split_at(self.top_k);
            let mut kept = head.to_vec();
            kept.extend(tail.iter().filter(|c| c.1 >= kth));
            cand = kept;
        }
        cand.sort_unstable_by(desc);
        let max = cand[0].1;
        let mut probs: Vec<f64> = cand.iter().map(|c| (c.1 - max).exp()).collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        let mut keep = probs.len();
        if self.top_p < 1.0 {
            // Keep the most probable tokens while the mass before each is below top_p.
            let mut before = 0.0;
            for (i, p) in probs.iter().enumerate() {
                if i > 0 && before >= self.top_p as f64 {
                    keep = i;
                    break;
                }
                before += p;
            }
        }
        if self.min_p > 0.0 {
            let threshold = self.min_p as f64 * probs[0];
            keep = keep.min(probs.iter().take_while(|&&p| p >= threshold).count().max(1));
        }
        let total: f64 = probs[..keep].iter().sum();
        let mut u = self.rng.random::<f64>() * total;
        for (c, p) in cand.iter().zip(&probs[..keep]) {
            if u < *p {
                return c.0;
            }
            u -= p;
        }
        cand[keep - 1].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(top_k: usize, top_p: f32, min_p: f32) -> GenerationConfig {
        GenerationConfig { do_sample: true, top_k, top_p, min_p, ..Default::default() }
    }

    #[test]
    fn top_k_one_equals_greedy() {
        let logits = [0.1, 3.0, 2.9, -1.0];
        let mut s = Sampler::new(&config(1, 1.0, 0.0), 7);
        for _ in 0..50 {
            assert_eq!(s.pick(&logits), 1);
        }
    }

    #[test]
    fn a_temperature_near_the_smallest_f32_picks_the_best_token_not_garbage() {
        let logits = [0.1, 3.0, 2.9, -1.0, 12.5, 12.4];
        for t in [1e-38f32, 1e-40, 1e-45, 1e-30] {
            let mut s = Sampler::new(&GenerationConfig { do_sample: true, temperature: t, ..Default::default() }, 1);
            assert!((0..20).all(|_| s.pick(&logits) == 4), "temperature {t}");
        }
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        // probabilities ~ 0.64, 0.24, 0.09, 0.03: top_p 0.7 keeps the first two.
        let logits = [3.0, 2.0, 1.0, 0.0];
        let mut s = Sampler::new(&config(0, 0.7, 0.0), 3);
        let picks: std::collections::HashSet<u32> = (0..500).map(|_| s.pick(&logits)).collect();
        assert_eq!(picks, [0, 1].into_iter().collect());
    }

    #[test]
    fn min_p_drops_tokens_below_a_fraction_of_the_best() {
        let logits = [3.0, 2.0, 1.0, 0.0];
        // exp(-1) = 0.37 of the best survives min_p 0.3; exp(-2) = 0.135 does not.
        let mut s = Sampler::new(&config(0, 1.0, 0.3), 5);
        let picks: std::collections::HashSet<u32> = (0..500).map(|_| s.pick(&logits)).collect();
        assert_eq!(picks, [0, 1].into_iter().collect());
    }

    #[test]
    fn no_repeat_ngram_bans_tokens_that_repeat_a_trigram() {
        // 5 6 7 ... 5 6: a third 7 would repeat "5 6 7"; 8 followed "6" only as a bigram.
        let mut scores = [0.0f32; 10];
        no_repeat_ngram(&mut scores, &[5, 6, 7, 6, 8, 5, 6], 3);
        let banned: Vec<usize> = (0..10).filter(|&i| scores[i] == f32::NEG_INFINITY).collect();
        assert_eq!(banned, [7]);
        // Bigrams: after "6", both 7 and 8 were seen.
        let mut scores = [0.0f32; 10];
        no_repeat_ngram(&mut scores, &[5, 6, 7, 6, 8, 5, 6], 2);
        let banned: Vec<usize> = (0..10).filter(|&i| scores[i] == f32::NEG_INFINITY).collect();
        assert_eq!(banned, [7, 8]);
    }

    #[test]
    fn no_repeat_ngram_waits_for_a_whole_ngram() {
        let mut scores = [0.0f32; 4];
        no_repeat_ngram(&mut scores, &[1, 1], 3);
        assert!(scores.iter().all(|s| *s == 0.0));
        // Unigrams ban every token already present.
        no_repeat_ngram(&mut scores, &[1, 3], 1);
        assert_eq!(scores, [0.0, f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY]);
    }

    #[test]
    fn log_softmax_sums_to_one() {
        let lp = log_softmax(&[1.0, 2.0, 3.0, -4.0]);
        let total: f64 = lp.iter().map(|&l| (l as f64).exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert_eq!(lp[2], log_prob(&[1.0, 2.0, 3.0, -4.0], 2));
    }

    #[test]
    fn repetition_penalty_follows_the_sign() {
        let mut logits = [2.0, -2.0, 1.0];
        repetition_penalty(&mut logits, &[true, true, false], 2.0);
        assert_eq!(logits, [1.0, -4.0, 1.0]);
    }
}
