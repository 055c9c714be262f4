//! Training the PHI tagger with medgen's training pieces ([`crate::train::optim`]: AdamW as
//! `torch.optim.AdamW`, the linear schedule, clipping by the global norm), then choosing each
//! category's threshold for the ensemble on a validation split.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use super::tagger::{features, mask_unknown, unknown_word, Tagger, TaggerConfig, Windows, FEATURES, LABELS};
use super::{detect, Category};
use crate::error::{MedgenError, Result};
use crate::train::optim::{clip_factor, grad_norm, linear_schedule, AdamW, Param};

/// A note and its identifiers, in character offsets (end exclusive).
#[derive(Debug, Clone, PartialEq)]
pub struct AnnotatedNote {
    pub text: String,
    pub entities: Vec<(usize, usize, Category)>,
}

impl AnnotatedNote {
    /// Why the entities cannot be trained on, if they cannot: each non-empty and inside the
    /// text, sorted by start, none overlapping.
    fn check(&self) -> std::result::Result<(), String> {
        let chars = self.text.chars().count();
        if let Some(&(s, e, _)) = self.entities.iter().find(|&&(s, e, _)| s >= e || e > chars) {
            return Err(format!("entity {s}..{e} is empty or past the text's {chars} characters"));
        }
        if self.entities.windows(2).any(|w| w[1].0 < w[0].1) {
            return Err("entities overlap or are not sorted by start".into());
        }
        Ok(())
    }
}

/// How the tagger is trained.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TaggerTraining {
    /// The network's sizes (default [`TaggerConfig::default`]).
    pub config: TaggerConfig,
    /// Passes over the training notes (default 3).
    pub epochs: usize,
    /// Stop after this many optimiser steps, if fewer than the epochs take (default None).
    pub max_steps: Option<u64>,
    /// Notes per optimiser step (default 16).
    pub batch_size: usize,
    /// Tokens per window while training (default 256; longer notes are cut into windows with
    /// context either side).
    pub window: usize,
    /// Peak learning rate (default 2e-3), after a linear warm-up over `warmup_ratio` of the steps,
    /// then linear decay to 0.
    pub lr: f64,
    pub warmup_ratio: f64,
    /// AdamW's decoupled weight decay, not on biases and norm weights (default 0).
    pub weight_decay: f64,
    /// Clip the gradients' global L2 norm to this (default 1.0; 0 turns clipping off).
    pub max_grad_norm: f64,
    /// Seeds the initial weights and the order of the notes (default 0).
    pub seed: u64,
    /// Shuffle the notes every epoch (default true).
    pub shuffle: bool,
    /// Start from this tagger file's weights instead of random ones (default None).
    pub init: Option<PathBuf>,
    /// Write the weights as f16, half the size (default true); false writes f32.
    pub half: bool,
    /// A word (its hash bucket) seen fewer times than this in training is read as the unknown
    /// word, in training and after (default 2). With `init`, that tagger's known words stay.
    pub min_word_count: usize,
    /// While training, read each token's word as unknown with this probability, so that the
    /// tagger learns to tag by shape and context too (default 0.2).
    pub word_dropout: f64,
}

impl Default for TaggerTraining {
    fn default() -> Self {
        TaggerTraining {
            config: TaggerConfig::default(),
            epochs: 3,
            max_steps: None,
            batch_size: 16,
            window: 256,
            lr: 2e-3,
            warmup_ratio: 0.05,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            seed: 0,
            shuffle: true,
            init: None,
            half: true,
            min_word_count: 2,
            word_dropout: 0.2,
        }
    }
}

/// Reads annotated notes from JSON lines: `{"text": ..., "entities": [{"start", "end",
/// "category"}]}` with character offsets; other keys are ignored.
pub fn read_annotated(path: &Path) -> Result<Vec<AnnotatedNote>> {
    #[derive(serde::Deserialize)]
    struct Line {
        text: String,
        #[serde(default)]
        entities: Vec<Ent>,
    }
    #[derive(serde::Deserialize)]
    struct Ent {
        start: usize,
        end: usize,
        category: String,
    }
    let lines = crate::files::Lines::open(path).map_err(|e| MedgenError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |m: String| MedgenError::invalid("data", format!("{} line {}: {m}", path.display(), i + 1));
        let l: Line = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        let mut entities = Vec::with_capacity(l.entities.len());
        for e in l.entities {
            let c: Category = e.category.parse().map_err(|e: MedgenError| bad(e.to_string()))?;
            entities.push((e.start, e.end, c));
        }
        entities.sort_unstable_by_key(|e| e.0);
        let note = AnnotatedNote { text: l.text, entities };
        note.check().map_err(bad)?;
        out.push(note);
    }
    Ok(out)
}

/// A note's feature ids and, per token, its label.
struct Encoded {
    ids: Vec<i64>,
    labels: Vec<i64>,
}

/// The label of every token: `B-` for the first token inside an entity, `I-` for the rest.
fn encode(note: &AnnotatedNote, buckets: usize) -> Encoded {
    let (tokens, ids) = features(&note.text, buckets);
    let byte_of: Vec<usize> = note.text.char_indices().map(|(b, _)| b).chain([note.text.len()]).collect();
    let spans: Vec<(usize, usize, usize)> = note
        .entities
        .iter()
        .map(|&(s, e, c)| (byte_of[s], byte_of[e], Category::ALL.iter().position(|x| *x == c).unwrap_or(0)))
        .collect();
    let mut labels = Vec::with_capacity(tokens.len());
    let mut prev: Option<usize> = None;
    for t in &tokens {
        // The entity holding the token's start, if any.
        let at = spans.partition_point(|s| s.1 <= t.start);
        let inside = spans.get(at).filter(|s| s.0 <= t.start);
        labels.push(match inside {
            Some(s) => {
                let c = s.2;
                if prev == Some(at) { 2 + 2 * c as i64 } else { 1 + 2 * c as i64 }
            }
            None => 0,
        });
        prev = inside.map(|_| at);
    }
    Encoded { ids, labels }
}

/// Initial weights, as PyTorch's defaults: embeddings N(0, 1), linear and convolution weights
/// and biases U(±1/√fan_in), layer norms 1 and 0; from ChaCha8 seeded by `seed`.
fn init(config: &TaggerConfig, seed: u64) -> Result<Vec<(String, Tensor)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (d, h) = (config.dim as f64, config.hidden as f64);
    config
        .shapes()
        .into_iter()
        .map(|(name, shape)| {
            let n: i64 = shape.iter().product();
            let values: Vec<f32> = if name == "embed.weight" {
                // Box–Muller pairs.
                (0..n)
                    .map(|_| {
                        let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
                        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
                    })
                    .collect()
            } else if name.ends_with("norm.weight") {
                vec![1.0; n as usize]
            } else if name.ends_with("norm.bias") {
                vec![0.0; n as usize]
            } else {
                let fan_in = if name.starts_with("input") { d } else if name.contains("conv") { h * 3.0 } else { h };
                let bound = 1.0 / fan_in.sqrt();
                (0..n).map(|_| rng.random_range(-bound..bound) as f32).collect()
            };
            Ok((name, Tensor::from_slice(&values).f_view(shape.as_slice())?))
        })
        .collect()
}

/// Trains a tagger on `train`, keeps the epoch whose weights tag `val` best (token F1), chooses
/// the thresholds on `val`, and writes it to `out`. `log` gets a JSON object every 50 steps and
/// after each epoch. Returns the run's summary.
pub fn train_tagger(
    train: &[AnnotatedNote],
    val: &[AnnotatedNote],
    opts: &TaggerTraining,
    out: &Path,
    overwrite: bool,
    mut log: impl FnMut(&serde_json::Value),
    mut stop: impl FnMut() -> bool,
) -> Result<serde_json::Value> {
    let started = std::time::Instant::now();
    opts.config.validate()?;
    if train.is_empty() {
        return Err(MedgenError::invalid("train", "no training notes"));
    }
    for (name, notes) in [("train", train), ("val", val)] {
        if let Some((i, why)) = notes.iter().enumerate().find_map(|(i, n)| n.check().err().map(|w| (i, w))) {
            return Err(MedgenError::invalid(name, format!("note {}: {why}", i + 1)));
        }
    }
    let positive = |name: &'static str, v: usize| if v == 0 { Err(MedgenError::invalid(name, "must be at least 1")) } else { Ok(()) };
    positive("epochs", opts.epochs)?;
    positive("batch_size", opts.batch_size)?;
    if opts.max_steps == Some(0) {
        return Err(MedgenError::invalid("max_steps", "must be at least 1"));
    }
    if !(16..=1 << 16).contains(&opts.window) {
        return Err(MedgenError::invalid("window", format!("{} is outside 16..=65536 tokens", opts.window)));
    }
    let (above_zero, at_least_zero) = (|x: f64| x.is_finite() && x > 0.0, |x: f64| x.is_finite() && x >= 0.0);
    if !above_zero(opts.lr) || !(0.0..1.0).contains(&opts.warmup_ratio) {
        return Err(MedgenError::invalid("lr", format!("lr {} must be > 0 and warmup_ratio {} in [0, 1)", opts.lr, opts.warmup_ratio)));
    }
    if !at_least_zero(opts.weight_decay) || !at_least_zero(opts.max_grad_norm) {
        return Err(MedgenError::invalid("weight_decay", "weight_decay and max_grad_norm must be finite and ≥ 0"));
    }
    if !overwrite && out.exists() {
        return Err(MedgenError::invalid("out", format!("{} exists: pass overwrite to replace it", out.display())));
    }
    let config = &opts.config;
    if !(0.0..1.0).contains(&opts.word_dropout) {
        return Err(MedgenError::invalid("word_dropout", format!("{} is outside [0, 1)", opts.word_dropout)));
    }
    let mut encoded: Vec<Encoded> = train.iter().map(|n| encode(n, config.buckets)).collect();
    let (tensors, known) = match &opts.init {
        Some(path) => {
            let t = Tagger::load(path)?;
            if t.config != *config {
                return Err(MedgenError::invalid("init", format!("{} has sizes {:?}, not {config:?}", path.display(), t.config)));
            }
            (t.tensors()?, t.known.clone())
        }
        None => {
            let mut counts = vec![0usize; config.buckets];
            encoded.iter().flat_map(|e| e.ids.iter().step_by(FEATURES)).for_each(|&w| counts[w as usize] += 1);
            (init(config, opts.seed)?, Some(counts.iter().map(|&c| c >= opts.min_word_count).collect()))
        }
    };
    if let Some(known) = &known {
        encoded.iter_mut().for_each(|e| mask_unknown(&mut e.ids, known, config.buckets));
    }
    let unk = unknown_word(config.buckets);
    let params: Vec<Param> = tensors
        .iter()
        .map(|(n, t)| {
            let decay = n.ends_with(".weight") && !n.contains("norm") && n != "embed.weight";
            Param { name: n.clone(), tensor: t.set_requires_grad(true), decay }
        })
        .collect();
    let per_epoch = train.len().div_ceil(opts.batch_size) as u64;
    let total = opts.max_steps.unwrap_or(u64::MAX).min(per_epoch * opts.epochs as u64);
    let warmup = (total as f64 * opts.warmup_ratio).ceil() as u64;
    let mut opt = AdamW::new(&params, opts.weight_decay)?;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x5EED);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let (mut step, mut best_f1, mut history) = (0u64, -1.0f64, Vec::new());
    let mut best: Vec<Tensor> = params.iter().map(|p| p.tensor.detach().copy()).collect();
    let mut recent = Vec::new();
    'epochs: for epoch in 0..opts.epochs {
        if opts.shuffle {
            order.shuffle(&mut rng);
        }
        for batch in order.chunks(opts.batch_size) {
            if step >= total {
                break 'epochs;
            }
            // Asked between steps (Python's Ctrl-C): nothing is written.
            if stop() {
                return Err(MedgenError::invalid("stop", format!("training stopped at step {step} of {total}; nothing was written")));
            }
            let dropped: Vec<Encoded> = batch
                .iter()
                .map(|&i| {
                    let mut e = Encoded { ids: encoded[i].ids.clone(), labels: encoded[i].labels.clone() };
                    if opts.word_dropout > 0.0 {
                        for w in e.ids.iter_mut().step_by(FEATURES) {
                            if rng.random::<f64>() < opts.word_dropout {
                                *w = unk;
                            }
                        }
                    }
                    e
                })
                .collect();
            let loss = batch_loss(dropped.iter(), opts.window, &params, config)?;
            loss.f_backward()?;
            let scale = clip_factor(grad_norm(&params)?, opts.max_grad_norm);
            let lr = linear_schedule(opts.lr, step, warmup, total);
            opt.step(&params, lr, scale, None)?;
            step += 1;
            recent.push(loss.f_double_value(&[])?);
            if step % 50 == 0 || step == total {
                let mean = recent.iter().sum::<f64>() / recent.len() as f64;
                log(&serde_json::json!({"step": step, "epoch": epoch, "loss": mean, "lr": lr}));
                recent.clear();
            }
        }
        let f1 = if val.is_empty() { epoch as f64 } else { token_f1(&tagger_of(config, known.clone(), &params), val)? };
        history.push(f1);
        log(&serde_json::json!({"step": step, "epoch": epoch + 1, "val_token_f1": f1}));
        if f1 > best_f1 {
            best_f1 = f1;
            best = params.iter().map(|p| p.tensor.detach().copy()).collect();
        }
    }
    let named: Vec<(String, Tensor)> = params.iter().map(|p| p.name.clone()).zip(best).collect();
    let mut tagger = Tagger::from_tensors(config.clone(), [0.5; Category::ALL.len()], known, &named);
    if !val.is_empty() {
        tagger.thresholds = choose_thresholds(&tagger, val)?;
    }
    tagger.save(out, !opts.half, overwrite)?;
    Ok(serde_json::json!({
        "steps": step,
        "train_notes": train.len(),
        "val_notes": val.len(),
        "val_token_f1": history,
        "thresholds": serde_json::from_str::<serde_json::Value>(&super::tagger::thresholds_json(&tagger.thresholds)).unwrap_or_default(),
        "seconds": started.elapsed().as_secs_f64(),
    }))
}

fn tagger_of(config: &TaggerConfig, known: Option<Vec<bool>>, params: &[Param]) -> Tagger {
    let named: Vec<(String, Tensor)> = params.iter().map(|p| (p.name.clone(), p.tensor.detach())).collect();
    Tagger::from_tensors(config.clone(), [0.5; Category::ALL.len()], known, &named)
}

/// The mean cross-entropy over every token of a batch of notes.
fn batch_loss<'a>(batch: impl Iterator<Item = &'a Encoded>, window: usize, params: &[Param], config: &TaggerConfig) -> Result<Tensor> {
    let notes: Vec<&Encoded> = batch.collect();
    let lens: Vec<usize> = notes.iter().map(|e| e.labels.len()).collect();
    let ids: Vec<&[i64]> = notes.iter().map(|e| e.ids.as_slice()).collect();
    let longest = lens.iter().copied().max().unwrap_or(0).max(1);
    let w = Windows::new(&ids, &lens, window.min(longest));
    let (mut at, mut labels) = (Vec::new(), Vec::new());
    for (i, e) in notes.iter().enumerate() {
        at.extend(w.centres(i));
        labels.extend_from_slice(&e.labels);
    }
    let named: Vec<(String, Tensor)> = params.iter().map(|p| (p.name.clone(), p.tensor.shallow_clone())).collect();
    let tagger = Tagger::from_tensors(config.clone(), [0.5; Category::ALL.len()], None, &named);
    let logits = tagger.forward(&w.ids()?, &w.mask()?)?.f_view([-1, LABELS as i64])?;
    let picked = logits.f_index_select(0, &Tensor::from_slice(&at))?;
    if labels.is_empty() {
        return Ok(picked.f_sum(Kind::Float)?);
    }
    Ok(picked.f_cross_entropy_loss::<Tensor>(&Tensor::from_slice(&labels), None, tch::Reduction::Mean, -100, 0.0)?)
}

/// Micro F1 of the entity tokens' labels (`O` excluded) on `notes`.
fn token_f1(tagger: &Tagger, notes: &[AnnotatedNote]) -> Result<f64> {
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    for chunk in notes.chunks(32) {
        let texts: Vec<&str> = chunk.iter().map(|n| n.text.as_str()).collect();
        for (note, (_, probs)) in chunk.iter().zip(tagger.probabilities(&texts)?) {
            let gold = encode(note, tagger.config.buckets).labels;
            let pred = Vec::<i64>::try_from(probs.f_argmax(-1, false)?)?;
            for (g, p) in gold.iter().zip(&pred) {
                match (*g, *p) {
                    (0, 0) => {}
                    (g, p) if g == p => tp += 1,
                    (0, _) => fp += 1,
                    (_, 0) => fn_ += 1,
                    _ => {
                        fp += 1;
                        fn_ += 1
                    }
                }
            }
        }
    }
    Ok(2.0 * tp as f64 / (2 * tp + fp + fn_).max(1) as f64)
}

/// Per category, the threshold on the tagger's confidence that maximises the ensemble's F2
/// (recall weighted four times precision) over the characters of that category in `val`;
/// 0.5 where `val` has none.
fn choose_thresholds(tagger: &Tagger, val: &[AnnotatedNote]) -> Result<[f32; Category::ALL.len()]> {
    const GRID: usize = 20;
    let n = Category::ALL.len();
    // Per category and threshold: true positive, false positive, false negative characters.
    let mut counts = vec![[0usize; 3]; n * GRID];
    let mut seen = vec![false; n];
    for chunk in val.chunks(32) {
        let texts: Vec<&str> = chunk.iter().map(|n| n.text.as_str()).collect();
        for (note, (tokens, probs)) in chunk.iter().zip(tagger.probabilities(&texts)?) {
            let model = tagger.decode(&tokens, &probs, false);
            let rules = detect::spans(&note.text);
            let byte_of: Vec<usize> = note.text.char_indices().map(|(b, _)| b).chain([note.text.len()]).collect();
            let char_of = |b: usize| byte_of.partition_point(|&x| x < b);
            for (ci, &c) in Category::ALL.iter().enumerate() {
                let len = byte_of.len();
                let mut gold = vec![false; len];
                for &(s, e, gc) in &note.entities {
                    if gc == c {
                        gold[s..e].iter_mut().for_each(|g| *g = true);
                        seen[ci] = true;
                    }
                }
                let mut ruled = vec![false; len];
                for s in rules.iter().filter(|s| s.cat == c) {
                    ruled[char_of(s.start)..char_of(s.end)].iter_mut().for_each(|g| *g = true);
                }
                for k in 0..GRID {
                    let tau = k as f32 / GRID as f32;
                    let mut pred = ruled.clone();
                    for s in model.iter().filter(|s| s.cat == c && s.conf >= tau) {
                        pred[char_of(s.start)..char_of(s.end)].iter_mut().for_each(|g| *g = true);
                    }
                    let cell = &mut counts[ci * GRID + k];
                    for (g, p) in gold.iter().zip(&pred) {
                        match (g, p) {
                            (true, true) => cell[0] += 1,
                            (false, true) => cell[1] += 1,
                            (true, false) => cell[2] += 1,
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    let mut out = [0.5f32; Category::ALL.len()];
    for ci in 0..n {
        if !seen[ci] {
            continue;
        }
        let f2 = |k: usize| {
            let [tp, fp, fn_] = counts[ci * GRID + k];
            5.0 * tp as f64 / (5 * tp + 4 * fn_ + fp).max(1) as f64
        };
        // The highest threshold among the best: fewer false positives for the same F2.
        let best = (0..GRID).fold(0, |b, k| if f2(k) >= f2(b) { k } else { b });
        out[ci] = best as f32 / GRID as f32;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_mark_the_first_token_of_an_entity_b_and_the_rest_i() {
        let note = AnnotatedNote { text: "Seen by Ann Lee on 3/14.".into(), entities: vec![(8, 15, Category::Name), (19, 23, Category::Date)] };
        let e = encode(&note, 1 << 10);
        let (name, date) = (1 + 2 * 0, 1 + 2 * 2);
        assert_eq!(e.labels, [0, 0, name, name + 1, 0, date, date + 1, date + 1, 0]);
        assert_eq!(e.ids.len(), 9 * FEATURES);
    }

    #[test]
    fn notes_with_bad_entities_are_refused_not_a_panic() {
        let bad = AnnotatedNote { text: "Ann".into(), entities: vec![(0, 9, Category::Name)] };
        let out = std::env::temp_dir().join("medgen-tagger-never-written.safetensors");
        let err = train_tagger(&[bad], &[], &TaggerTraining::default(), &out, true, |_| {}, || false).err();
        assert!(matches!(err, Some(MedgenError::InvalidArgument { name: "train", .. })), "{err:?}");
        assert!(!out.exists());
    }
}
