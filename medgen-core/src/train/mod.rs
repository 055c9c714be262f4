//! Fine-tuning the models medgen runs, full or with LoRA adapters, as transformers' Trainer
//! and PEFT do: the same loss, optimiser, schedule and files.
//!
//! The loop is a sequence of small steps (batch → forward → loss → backward → clip →
//! optimiser step → schedule → log, evaluate, checkpoint) over one serialisable
//! [`checkpoint::State`], which is what makes `resume` exact.
//!
//! ```no_run
//! use medgen::train::{finetune, Method, TrainingConfig};
//! let cfg = TrainingConfig {
//!     model: "base/".into(),
//!     train: "notes.jsonl".into(),
//!     output: "out/".into(),
//!     method: Method::Lora,
//!     ..Default::default()
//! };
//! let report = finetune(&cfg, &mut |entry| { println!("{entry:?}"); std::ops::ControlFlow::Continue(()) })?;
//! # Ok::<(), medgen::MedgenError>(())
//! ```

mod checkpoint;
pub mod data;
mod dp;
pub(crate) mod network;
pub mod scratch;

pub use network::merge;
pub mod optim;
mod plot;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::{MedgenError, Result};
use crate::generation::{self, GenerationConfig};
use crate::runtime::LoadOptions;
use checkpoint::State;
use data::{Columns, Encoded, Encoding, Example};
use network::{write_json, Trainable};
use optim::{clip_factor, grad_norm, linear_schedule, AdamW};

/// What trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Every weight.
    #[default]
    Full,
    /// LoRA adapters on the targeted layers; the base stays frozen.
    Lora,
}

/// LoRA adapters as PEFT's `LoraConfig` defines them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank (default: 8).
    pub r: usize,
    /// Scaling numerator: the adapter's output is multiplied by `alpha / r` (default: 16).
    pub alpha: f64,
    /// Dropout on the adapter's input, while training (default: 0.0).
    pub dropout: f64,
    /// Scale by `alpha / √r` (rsLoRA) instead (default: false).
    pub use_rslora: bool,
    /// Layers to adapt, as PEFT's `target_modules` (default: PEFT's per family: T5 q, v;
    /// BART and the Llama family q_proj, v_proj; GPT-2 c_attn).
    pub target_modules: Option<Vec<String>>,
    /// A saved adapter (PEFT's files) to start from instead of PEFT's initialisation (default: none).
    pub init_adapter: Option<PathBuf>,
    /// Train only the B matrices; A keeps its initial (or `init_adapter`'s) values (FFA-LoRA,
    /// Sun et al. 2024). Sites that share A then average B exactly: the mean of their B·A
    /// updates is (mean B)·A (default: false).
    #[serde(default)]
    pub freeze_a: bool,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig { r: 8, alpha: 16.0, dropout: 0.0, use_rslora: false, target_modules: None, init_adapter: None, freeze_a: false }
    }
}

/// A fine-tuning run. Defaults follow transformers' `TrainingArguments` where it has the option.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingConfig {
    /// The base model: an HF folder or a GGUF file.
    pub model: PathBuf,
    /// Training data: JSON lines or CSV (see [`data`]).
    pub train: PathBuf,
    /// Validation data (default: none).
    pub validation: Option<PathBuf>,
    /// Hold out this fraction of the training data for validation instead, split by `seed` (default: none).
    pub validation_split: Option<f64>,
    /// Where the model or adapter, the log, the run record and the checkpoint go.
    pub output: PathBuf,
    /// (default: full)
    pub method: Method,
    /// Used with [`Method::Lora`].
    pub lora: LoraConfig,
    /// Peak learning rate (default: 5e-5).
    pub lr: f64,
    /// AdamW's decoupled weight decay, not on biases and norms (default: 0.0).
    pub weight_decay: f64,
    /// Steps of linear warm-up (default: from `warmup_ratio`).
    pub warmup_steps: Option<u64>,
    /// Warm-up as a fraction of the total steps, rounded up (default: 0.0).
    pub warmup_ratio: f64,
    /// Clip the global gradient norm to this; 0 turns clipping off (default: 1.0).
    pub max_grad_norm: f64,
    /// Micro-batches per optimiser step (default: 1). The loss of a step is the sum over
    /// all its micro-batches' label tokens divided by their number, so that accumulating
    /// equals one large batch.
    pub gradient_accumulation_steps: usize,
    /// Passes over the data (default: 3).
    pub epochs: usize,
    /// Stop after this many optimiser steps instead (default: none).
    pub max_steps: Option<u64>,
    /// Examples per micro-batch (default: 8).
    pub batch_size: usize,
    /// Data order, the validation split, dropout and LoRA's initialisation (default: 42).
    pub seed: u64,
    /// Shuffle the examples every epoch (default: true).
    pub shuffle: bool,
    /// Longest input in tokens (default: 512).
    pub max_source_length: usize,
    /// Longest target in tokens, its end token included (default: 128).
    pub max_target_length: usize,
    /// Render decoder-only inputs as the user's turn of the chat template (default: true).
    pub chat: bool,
    /// De-identify the data first, replacing identifiers by placeholders (default: true).
    pub deid: bool,
    /// CSV columns (default: input, target).
    pub input_column: String,
    pub target_column: String,
    /// Evaluate every this many steps, and at the end (default: once per epoch).
    pub eval_steps: Option<u64>,
    /// Write a checkpoint every this many steps, and at the end (default: at evaluations).
    pub save_steps: Option<u64>,
    /// Log the training loss every this many steps (default: 10).
    pub logging_steps: u64,
    /// What picks the best checkpoint: "loss" (validation loss) or "rougeL" (default: loss).
    pub metric: String,
    /// Stop when the metric has not improved for this many evaluations (default: none).
    pub early_stopping_patience: Option<usize>,
    /// Validation examples generated for ROUGE at each evaluation (default: 16).
    pub eval_generate: usize,
    /// Tokens generated per validation example for ROUGE (default: 64).
    pub eval_max_new_tokens: usize,
    /// Continue from the checkpoint in `output` (default: false).
    pub resume: bool,
    /// Write into an `output` that holds files (default: false).
    pub overwrite: bool,
    /// Stop cleanly, with a checkpoint, after this step (default: none): an interrupted run.
    pub stop_after: Option<u64>,
    /// DP-SGD (see [`dp`]): clip each example's gradient to this L2 norm C, add Gaussian noise
    /// of `dp_noise_multiplier` · C, sample batches by Poisson sampling (default: none, no DP).
    #[serde(default)]
    pub dp_max_grad_norm: Option<f64>,
    /// DP-SGD's noise multiplier σ; or give `dp_epsilon` (default: none).
    #[serde(default)]
    pub dp_noise_multiplier: Option<f64>,
    /// The ε the whole run may spend at `dp_delta`: σ is chosen for the planned steps as
    /// Opacus's `get_noise_multiplier` chooses it (default: none).
    #[serde(default)]
    pub dp_epsilon: Option<f64>,
    /// δ of the privacy guarantee; below 1 / examples to mean anything (default: 1e-5).
    #[serde(default = "default_delta")]
    pub dp_delta: f64,
    /// Seed DP-SGD's noise, for tests only (default: none, a cryptographically secure generator
    /// seeded by the operating system).
    #[serde(default)]
    pub dp_noise_seed: Option<u64>,
    /// A site's round of federated fine-tuning (see `medgen.federated`): the round the run's
    /// starting adapter came from the server in, recorded with `site` and the example count
    /// in `run.json` (default: none).
    #[serde(default)]
    pub federated_round: Option<u64>,
    /// The site's name in the federation, for the records: no patient data (default: none).
    #[serde(default)]
    pub site: Option<String>,
    /// Train a new recurrent encoder-decoder of this shape instead of fine-tuning `model`
    /// (see [`scratch`]): it is written into `output/from-scratch/` and trained in full
    /// (default: none).
    #[serde(default)]
    pub from_scratch: Option<scratch::RnnSpec>,
    #[serde(skip)]
    pub load: LoadOptions,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            model: PathBuf::new(),
            train: PathBuf::new(),
            validation: None,
            validation_split: None,
            output: PathBuf::new(),
            method: Method::Full,
            lora: LoraConfig::default(),
            lr: 5e-5,
            weight_decay: 0.0,
            warmup_steps: None,
            warmup_ratio: 0.0,
            max_grad_norm: 1.0,
            gradient_accumulation_steps: 1,
            epochs: 3,
            max_steps: None,
            batch_size: 8,
            seed: 42,
            shuffle: true,
            max_source_length: 512,
            max_target_length: 128,
            chat: true,
            deid: true,
            input_column: "input".into(),
            target_column: "target".into(),
            eval_steps: None,
            save_steps: None,
            logging_steps: 10,
            metric: "loss".into(),
            early_stopping_patience: None,
            eval_generate: 16,
            eval_max_new_tokens: 64,
            resume: false,
            overwrite: false,
            stop_after: None,
            dp_max_grad_norm: None,
            dp_noise_multiplier: None,
            dp_epsilon: None,
            dp_delta: default_delta(),
            dp_noise_seed: None,
            federated_round: None,
            site: None,
            from_scratch: None,
            load: LoadOptions::default(),
        }
    }
}

fn default_delta() -> f64 {
    1e-5
}

impl TrainingConfig {
    /// Checks every option once, where the run starts.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(MedgenError::invalid(name, format!("{v} must be a finite number above 0")))
            }
        };
        positive("lr", self.lr)?;
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(MedgenError::invalid("weight_decay", format!("{} must be 0 or more", self.weight_decay)));
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm >= 0.0) {
            return Err(MedgenError::invalid("max_grad_norm", format!("{} must be 0 (off) or more", self.max_grad_norm)));
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return Err(MedgenError::invalid("warmup_ratio", format!("{} is not in [0, 1)", self.warmup_ratio)));
        }
        let count = |name: &'static str, v: usize| if v == 0 { Err(MedgenError::invalid(name, "must be at least 1")) } else { Ok(()) };
        count("batch_size", self.batch_size)?;
        count("gradient_accumulation_steps", self.gradient_accumulation_steps)?;
        count("max_source_length", self.max_source_length)?;
        count("max_target_length", self.max_target_length)?;
        count("epochs", self.epochs)?;
        if self.max_steps == Some(0) {
            return Err(MedgenError::invalid("max_steps", "must be at least 1"));
        }
        for (name, steps) in [("eval_steps", self.eval_steps), ("save_steps", self.save_steps), ("logging_steps", Some(self.logging_steps))] {
            if steps == Some(0) {
                return Err(MedgenError::invalid(name, "step intervals must be at least 1"));
            }
        }
        // Checked here rather than at the first evaluation, after steps the run would lose.
        if self.eval_max_new_tokens == 0 || self.eval_max_new_tokens > crate::MAX_TOKENS {
            return Err(MedgenError::invalid("eval_max_new_tokens", format!("{} is not in 1..={}", self.eval_max_new_tokens, crate::MAX_TOKENS)));
        }
        if !["loss", "rougeL"].contains(&self.metric.as_str()) {
            return Err(MedgenError::invalid("metric", format!("`{}` is not loss or rougeL", self.metric)));
        }
        // transformers refuses a metric_for_best_model its evaluation does not compute.
        if self.metric == "rougeL" && self.eval_generate == 0 {
            return Err(MedgenError::invalid("metric", "rougeL is computed on generated drafts: eval_generate must be at least 1"));
        }
        if self.method != Method::Lora && self.lora.init_adapter.is_some() {
            return Err(MedgenError::invalid("init_adapter", "an adapter to start from needs method lora (full fine-tuning would ignore it)"));
        }
        if self.method == Method::Lora {
            let l = &self.lora;
            if l.r == 0 || l.r > 4096 {
                return Err(MedgenError::invalid("lora_r", format!("{} is not in 1..=4096", l.r)));
            }
            positive("lora_alpha", l.alpha)?;
            if !(0.0..1.0).contains(&l.dropout) {
                return Err(MedgenError::invalid("lora_dropout", format!("{} is not in [0, 1)", l.dropout)));
            }
            if l.target_modules.as_ref().is_some_and(|t| t.is_empty() || t.iter().any(|m| m.trim().is_empty())) {
                return Err(MedgenError::invalid("target_modules", "an empty module name"));
            }
        }
        if let Some(site) = &self.site {
            if site.trim().is_empty() || site.chars().count() > 200 || site.chars().any(char::is_control) {
                return Err(MedgenError::invalid("site", "a site's name is 1 to 200 printable characters"));
            }
        }
        if self.lora.freeze_a && self.method == Method::Lora && self.lora.init_adapter.is_none() && self.federated_round.is_some() {
            // Each site would draw its own A: their B matrices would not average to anything.
            return Err(MedgenError::invalid("freeze_a", "a federated round with frozen A matrices must start from the server's adapter (init_adapter)"));
        }
        if self.from_scratch.is_some() && self.method != Method::Full {
            return Err(MedgenError::invalid("from_scratch", "a model trained from scratch trains every weight (method full)"));
        }
        if self.validation.is_some() && self.validation_split.is_some() {
            return Err(MedgenError::invalid("validation_split", "give a validation file or a split, not both"));
        }
        dp::check(self)
    }
}

/// One logged step or evaluation (the fields of transformers' `trainer_state.json` log).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LogEntry {
    pub step: u64,
    pub epoch: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_loss: Option<f64>,
    /// Mean ROUGE F1 (0 to 1, stemmed) of the validation generations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_rouge1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_rouge2: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "eval_rougeL")]
    pub eval_rouge_l: Option<f64>,
    /// DP-SGD: the ε spent so far (at `dp_delta`), at evaluations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    /// Target tokens per second since the last entry of the same kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_second: Option<f64>,
    /// Steps of the whole run, and seconds since it started.
    pub total_steps: u64,
    pub elapsed_seconds: f64,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub output: PathBuf,
    pub steps: u64,
    pub total_steps: u64,
    /// Mean training loss over the run's steps.
    pub train_loss: Option<f64>,
    pub eval_loss: Option<f64>,
    #[serde(rename = "eval_rougeL")]
    pub eval_rouge_l: Option<f64>,
    /// Stopped before the planned steps (by the callback, early stopping or `stop_after`).
    pub stopped_early: bool,
    pub train_examples: usize,
    pub validation_examples: usize,
    /// Examples cut to the maximum lengths.
    pub truncated_examples: usize,
    /// The step of the best evaluation by the run's metric: the weights the run wrote, unless
    /// it was interrupted.
    pub best_step: Option<u64>,
    /// DP-SGD: the ε spent, at δ = `dp_delta`, and the noise multiplier used.
    pub epsilon: Option<f64>,
    pub noise_multiplier: Option<f64>,
    /// What the run noticed and went on with (a δ of at least 1 / examples).
    pub warnings: Vec<String>,
    pub history: Vec<LogEntry>,
    pub seconds: f64,
}

/// The data of a run, tokenised.
struct Prepared {
    train: Vec<Encoded>,
    validation: Vec<Encoded>,
    /// Validation examples' targets, for ROUGE.
    references: Vec<String>,
    truncated: usize,
    files: Vec<serde_json::Value>,
}

fn prepare(cfg: &TrainingConfig, model: &Trainable) -> Result<Prepared> {
    let columns = Columns { input: cfg.input_column.clone(), target: cfg.target_column.clone() };
    let train_file = data::read(&cfg.train, &columns)?;
    let mut files = vec![serde_json::json!({"path": cfg.train, "sha256": train_file.sha256, "examples": train_file.examples.len()})];
    let (mut train, mut validation) = match (&cfg.validation, cfg.validation_split) {
        (Some(path), _) => {
            let v = data::read(path, &columns)?;
            files.push(serde_json::json!({"path": path, "sha256": v.sha256, "examples": v.examples.len()}));
            (train_file.examples, v.examples)
        }
        (None, Some(f)) => data::split(train_file.examples, f, cfg.seed)?,
        (None, None) => (train_file.examples, Vec::new()),
    };
    if cfg.deid {
        data::deidentify_all(&mut train)?;
        data::deidentify_all(&mut validation)?;
    }
    let encoding = encoding(cfg, model)?;
    let mut truncated = 0;
    let mut encode = |examples: &[Example]| -> Result<Vec<Encoded>> {
        examples
            .iter()
            .map(|e| {
                let (enc, cut) = encoding.encode(e)?;
                truncated += cut as usize;
                Ok(enc)
            })
            .collect()
    };
    let (train_enc, val_enc) = (encode(&train)?, encode(&validation)?);
    let references = validation
        .iter()
        .map(|e| match e {
            Example::Pair { target, .. } => target.clone(),
            Example::Chat(m) => m.iter().rev().find(|m| m.role == "assistant").map(|m| m.content.clone()).unwrap_or_default(),
            Example::Task { target, .. } => target.clone(),
        })
        .collect();
    Ok(Prepared { train: train_enc, validation: val_enc, references, truncated, files })
}

fn encoding<'a>(cfg: &TrainingConfig, model: &'a Trainable) -> Result<Encoding<'a>> {
    let eos = *model
        .tokenizer
        .eos_ids()
        .first()
        .ok_or_else(|| MedgenError::Unsupported("the tokenizer has no end-of-sequence token to end targets with".into()))?;
    Ok(Encoding {
        tokenizer: &model.tokenizer,
        encoder_decoder: model.info.encoder_decoder,
        chat: cfg.chat,
        max_source: cfg.max_source_length,
        max_target: cfg.max_target_length,
        eos,
    })
}

/// Padding and the decoder's start token of `model`'s family.
fn pad_and_start(model: &Trainable) -> (u32, Option<u32>) {
    let eos = model.tokenizer.eos_ids().first().copied().unwrap_or(0);
    match &model.info.config {
        crate::loader::NetworkConfig::Seq2Seq(c) => (c.pad_token_id.unwrap_or(eos), Some(c.decoder_start_token_id)),
        crate::loader::NetworkConfig::Decoder(_) => (eos, None),
    }
}

fn batch_of(model: &Trainable, examples: &[&Encoded]) -> Result<data::Batch> {
    let (pad, start) = pad_and_start(model);
    data::batch(examples, pad, start, model.device())
}

/// The micro-batches of one epoch, as example indices: shuffled by `(seed, epoch)`.
fn epoch_batches(n: usize, batch_size: usize, shuffle: bool, seed: u64, epoch: u64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle {
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    }
    order.chunks(batch_size).map(<[usize]>::to_vec).collect()
}

/// Optimiser steps per epoch: micro-batches in groups of `accumulation`, the last group shorter.
fn steps_per_epoch(n: usize, batch_size: usize, accumulation: usize) -> u64 {
    n.div_ceil(batch_size).div_ceil(accumulation) as u64
}

/// Trains as `cfg` says. `on_log` sees every logged step and evaluation; `Break` stops the
/// run cleanly after writing a checkpoint and the model so far.
pub fn finetune(cfg: &TrainingConfig, on_log: &mut dyn FnMut(&LogEntry) -> ControlFlow<()>) -> Result<Report> {
    finetune_until(cfg, on_log, &mut || false)
}

/// [`finetune`] that also asks `stop` after every optimiser step and every generated token of
/// an evaluation (a cheap check, such as a Ctrl-C flag): true stops the run as `Break` does.
pub fn finetune_until(cfg: &TrainingConfig, on_log: &mut dyn FnMut(&LogEntry) -> ControlFlow<()>, stop: &mut dyn FnMut() -> bool) -> Result<Report> {
    let (started, started_at) = (Instant::now(), SystemTime::now());
    cfg.validate()?;
    // Data that cannot be opened fails before the output folder is made: a run that cannot
    // start leaves none behind.
    for data in std::iter::once(&cfg.train).chain(&cfg.validation) {
        std::fs::File::open(data).map_err(|e| MedgenError::io(data, e))?;
    }
    // A model from scratch is made in the output folder, before its checksum is taken.
    let scratch_cfg;
    let cfg = match &cfg.from_scratch {
        Some(spec) => {
            prepare_output(cfg)?;
            let dir = cfg.output.join("from-scratch");
            if !(cfg.resume && dir.join("model.safetensors").exists()) {
                scratch::create_rnn(spec, &dir, cfg.seed)?;
            }
            scratch_cfg = TrainingConfig { model: dir, ..cfg.clone() };
            &scratch_cfg
        }
        None => cfg,
    };
    let base_sha256 = crate::audit::sha256_path(&cfg.model)?;
    if cfg.from_scratch.is_none() {
        prepare_output(cfg)?;
    }
    if cfg.resume {
        // Before any tensor of the checkpoint is read into a model it may not fit.
        let trained_on = checkpoint::base_sha256(&cfg.output)?;
        if trained_on != base_sha256 {
            return Err(MedgenError::invalid("resume", format!("the checkpoint in {} was trained from another base model (SHA-256 {trained_on}; {} is {base_sha256})", cfg.output.display(), cfg.model.display())));
        }
    }
    let lora = (cfg.method == Method::Lora).then_some(&cfg.lora);
    let model = Trainable::load(&cfg.model, &cfg.load, lora, cfg.seed)?;
    let data = prepare(cfg, &model)?;
    if data.train.is_empty() {
        return Err(MedgenError::invalid("train", "no training examples"));
    }
    check_eval_fits(&model, &data, cfg)?;
    let per_epoch = steps_per_epoch(data.train.len(), cfg.batch_size, cfg.gradient_accumulation_steps);
    let total = cfg.max_steps.unwrap_or(per_epoch.saturating_mul(cfg.epochs as u64));
    let warmup = cfg.warmup_steps.unwrap_or_else(|| (cfg.warmup_ratio * total as f64).ceil() as u64);
    let private = dp::Dp::of(cfg, data.train.len(), total)?;
    let mut warnings = Vec::new();
    if private.is_some() && cfg.dp_delta >= 1.0 / data.train.len() as f64 {
        warnings.push(format!("dp_delta {} is not below 1 / {} examples: the guarantee allows one example to leak", cfg.dp_delta, data.train.len()));
    }
    if private.as_ref().is_some_and(|d| d.noise_multiplier == 0.0) {
        warnings.push("dp_noise_multiplier 0 adds no noise: the gradients are clipped, but ε is infinite (no privacy)".to_string());
    }
    let mut opt = AdamW::new(&model.params, cfg.weight_decay)?;
    let mut state = State::new(base_sha256.clone());
    let dp_record = private.as_ref().map(|d| [d.noise_multiplier, d.max_grad_norm, d.sample_rate]);
    if cfg.resume {
        if let Some(s) = checkpoint::load(&cfg.output, &model, &mut opt)? {
            if s.dp != dp_record {
                let said = |r: Option<[f64; 3]>| r.map_or("without DP-SGD".to_string(), |[n, c, q]| format!("with DP-SGD (noise multiplier {n}, max grad norm {c}, sample rate {q})"));
                let reason = format!("the checkpoint's {} steps were taken {}; this run asks for {}: the privacy accountant cannot compose them", s.step, said(s.dp), said(dp_record));
                return Err(MedgenError::invalid("resume", reason));
            }
            state = s;
        }
    }
    state.dp = dp_record;
    let eval_every = cfg.eval_steps.unwrap_or(per_epoch);
    let threads = cfg.load.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let _threads = crate::runtime::ThreadsHere::set(threads as i32);
    let mut log_file = checkpoint::Log::open(&cfg.output.join("log.jsonl"), state.step)?;
    // `stopped`: the run ends before its last step; `patience_ran_out`: because evaluations
    // stopped improving (then the best weights are written, not the last).
    let (mut stopped, mut patience_ran_out) = (false, false);
    let (mut window_loss, mut window_steps, mut window_tokens, mut window_start) = (0.0, 0u64, 0i64, Instant::now());
    while state.step < total && !stopped {
        let batches = epoch_batches(data.train.len(), cfg.batch_size, cfg.shuffle, cfg.seed, state.epoch);
        let groups: Vec<&[Vec<usize>]> = batches.chunks(cfg.gradient_accumulation_steps).collect();
        while state.group < groups.len() && state.step < total {
            let group = groups[state.group];
            let (step_loss, tokens, norm, grad_scale) = match &private {
                Some(dp) => {
                    // A Poisson-sampled batch in place of the epoch's; the gradient is clipped
                    // per example, so the global clipping is off.
                    let (loss, tokens) = dp.gradient(&model, &data.train, state.step, cfg.seed).map_err(|e| match e {
                        MedgenError::InvalidArgument { name: "loss", reason } => MedgenError::invalid("loss", format!("{reason}: the run stops; the last checkpoint in {} is kept", cfg.output.display())),
                        other => other,
                    })?;
                    (loss, tokens, grad_norm(&model.params)?, 1.0)
                }
                None => {
                    let micro: Vec<data::Batch> = group
                        .iter()
                        .map(|idx| batch_of(&model, &idx.iter().map(|&i| &data.train[i]).collect::<Vec<_>>()))
                        .collect::<Result<_>>()?;
                    let tokens: i64 = micro.iter().map(|b| b.label_tokens).sum();
                    let mut step_loss = 0.0;
                    for (k, b) in micro.iter().enumerate() {
                        // Dropout's random numbers depend only on where the run is: resuming replays them.
                        tch::manual_seed((cfg.seed ^ (state.step << 16) ^ k as u64) as i64);
                        let loss = model.loss_sum(b, true)?.f_div_scalar(tokens.max(1) as f64)?;
                        let value = loss.f_double_value(&[])?;
                        if !value.is_finite() {
                            return Err(MedgenError::invalid("loss", format!("the loss became {value} at step {}: the run stops; the last checkpoint in {} is kept", state.step + 1, cfg.output.display())));
                        }
                        loss.f_backward()?;
                        step_loss += value;
                    }
                    let norm = grad_norm(&model.params)?;
                    (step_loss, tokens, norm, clip_factor(norm, cfg.max_grad_norm))
                }
            };
            // A finite loss can still have an overflowing gradient, which would make every
            // weight NaN: stop before the step, as for a non-finite loss.
            if !norm.is_finite() {
                return Err(MedgenError::invalid("loss", format!("the gradient norm became {norm} at step {}: the run stops; the last checkpoint in {} is kept", state.step + 1, cfg.output.display())));
            }
            let lr = linear_schedule(cfg.lr, state.step, warmup, total);
            opt.step(&model.params, lr, grad_scale, Some(&model.runtime.pool))?;
            state.step += 1;
            state.group += 1;
            state.train_loss_sum += step_loss;
            (window_loss, window_steps, window_tokens) = (window_loss + step_loss, window_steps + 1, window_tokens + tokens);
            let epoch = state.epoch as f64 + state.group as f64 / groups.len() as f64;
            let last = state.step == total;
            let mut entry = LogEntry { step: state.step, epoch, total_steps: total, ..Default::default() };
            let mut control = ControlFlow::Continue(());
            if state.step % cfg.logging_steps == 0 || last || state.step == 1 {
                entry.loss = Some(window_loss / window_steps as f64);
                entry.learning_rate = Some(lr);
                entry.grad_norm = Some(norm);
                entry.tokens_per_second = Some(window_tokens as f64 / window_start.elapsed().as_secs_f64().max(1e-9));
                entry.elapsed_seconds = started.elapsed().as_secs_f64();
                (window_loss, window_steps, window_tokens, window_start) = (0.0, 0, 0, Instant::now());
                log_file.write(&entry)?;
                state.history.push(entry.clone());
                control = on_log(&entry);
            }
            let evaluate = !data.validation.is_empty() && (state.step % eval_every == 0 || last);
            if evaluate {
                let mut e = LogEntry { step: state.step, epoch, total_steps: total, ..Default::default() };
                e.eval_loss = Some(eval_loss(&model, &data.validation, cfg.batch_size)?);
                e.epsilon = private.map(|dp| dp.epsilon(state.step)).transpose()?;
                if cfg.metric == "rougeL" || cfg.eval_generate > 0 {
                    if let Some([r1, r2, rl]) = eval_rouge(&model, &data, cfg, stop)? {
                        (e.eval_rouge1, e.eval_rouge2, e.eval_rouge_l) = (Some(r1), Some(r2), Some(rl));
                    }
                }
                e.elapsed_seconds = started.elapsed().as_secs_f64();
                log_file.write(&e)?;
                state.history.push(e.clone());
                if state.observe(&e, &cfg.metric) {
                    checkpoint::save_best(&cfg.output, &model)?;
                }
                if cfg.early_stopping_patience.is_some_and(|p| state.since_best >= p) {
                    (stopped, patience_ran_out) = (true, true);
                }
                if on_log(&e).is_break() {
                    control = ControlFlow::Break(());
                }
            }
            if control.is_break() || cfg.stop_after == Some(state.step) || stop() {
                stopped = true;
            }
            if stopped || last || evaluate || cfg.save_steps.is_some_and(|s| state.step % s == 0) {
                checkpoint::save(&cfg.output, &model, &opt, &state)?;
            }
            if stopped {
                break;
            }
        }
        if state.group >= groups.len() {
            state.epoch += 1;
            state.group = 0;
        }
    }
    // The best evaluated weights, when there were evaluations, unless the run was interrupted
    // (its checkpoint holds where it was, for --resume).
    if state.best.is_some() && (!stopped || patience_ran_out) {
        checkpoint::restore_best(&cfg.output, &model)?;
    }
    model.save(&cfg.output)?;
    plot::write_svg(&state.history, &cfg.output.join("curves.svg"))?;
    let last_eval = state.history.iter().rev().find(|e| e.eval_loss.is_some());
    let report = Report {
        output: cfg.output.clone(),
        steps: state.step,
        total_steps: total,
        train_loss: (state.step > 0).then(|| state.train_loss_sum / state.step as f64),
        eval_loss: last_eval.and_then(|e| e.eval_loss),
        eval_rouge_l: last_eval.and_then(|e| e.eval_rouge_l),
        stopped_early: state.step < total,
        train_examples: data.train.len(),
        validation_examples: data.validation.len(),
        truncated_examples: data.truncated,
        best_step: state.best.map(|(_, step)| step),
        epsilon: private.map(|dp| dp.epsilon(state.step)).transpose()?,
        noise_multiplier: private.map(|dp| dp.noise_multiplier),
        warnings,
        history: state.history.clone(),
        seconds: started.elapsed().as_secs_f64(),
    };
    write_record(cfg, &model, &data, &report, &base_sha256, started_at, private.as_ref())?;
    Ok(report)
}

/// Writes the adapter a LoRA run of `cfg` would start from (`init_adapter`, or PEFT's
/// initialisation seeded by `seed`) into `cfg.output`, without training: the adapter a
/// federation's server starts its first round from.
pub fn initial_adapter(cfg: &TrainingConfig) -> Result<()> {
    if cfg.method != Method::Lora {
        return Err(MedgenError::invalid("method", "an initial adapter is for method lora"));
    }
    cfg.validate()?;
    prepare_output(cfg)?;
    let model = Trainable::load(&cfg.model, &cfg.load, Some(&cfg.lora), cfg.seed)?;
    model.save(&cfg.output)
}

/// The validation loss of the weights a run of `cfg` would start from.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Mean cross-entropy per label token, as transformers' `eval_loss`.
    pub loss: f64,
    pub examples: usize,
    pub tokens: i64,
}

/// The loss on `cfg.validation` of the base model, with `cfg.lora.init_adapter` when the
/// method is LoRA (a federation's global adapter), prepared as a run of `cfg` prepares its
/// data (chat template, de-identification, lengths).
pub fn evaluate(cfg: &TrainingConfig) -> Result<Evaluation> {
    let Some(validation) = &cfg.validation else {
        return Err(MedgenError::invalid("validation", "give the data to evaluate on"));
    };
    cfg.validate()?;
    let lora = (cfg.method == Method::Lora).then_some(&cfg.lora);
    let model = Trainable::load(&cfg.model, &cfg.load, lora, cfg.seed)?;
    let data = prepare(&TrainingConfig { train: validation.clone(), validation: None, validation_split: None, ..cfg.clone() }, &model)?;
    if data.train.is_empty() {
        return Err(MedgenError::invalid("validation", "no examples"));
    }
    let _threads = crate::runtime::ThreadsHere::set(cfg.load.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())) as i32);
    let tokens = data.train.iter().map(|e| e.labels.iter().filter(|&&l| l != data::IGNORE).count() as i64).sum();
    Ok(Evaluation { loss: eval_loss(&model, &data.train, cfg.batch_size)?, examples: data.train.len(), tokens })
}

/// Refuses to write into a folder that holds files, unless resuming or overwriting.
fn prepare_output(cfg: &TrainingConfig) -> Result<()> {
    let out = &cfg.output;
    if out.as_os_str().is_empty() {
        return Err(MedgenError::invalid("output", "an output folder is needed"));
    }
    // The run never writes into what it reads: an output that is, or is inside, the base
    // model's folder (or its file) or an initial adapter's folder is refused, --overwrite too.
    // A path that does not exist yet is its nearest existing ancestor, resolved, with the rest
    // of its components after it ("missing/../base" is base).
    let canonical = |p: &Path| -> Option<PathBuf> {
        let absolute = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().ok()?.join(p) };
        let mut rest = Vec::new();
        let mut at = absolute.as_path();
        let mut resolved = loop {
            if let Ok(c) = std::fs::canonicalize(at) {
                break c;
            }
            rest.push(at.file_name().map(|n| n.to_os_string()));
            at = at.parent()?;
        };
        for part in rest.into_iter().rev() {
            match part {
                Some(name) => resolved.push(name),
                None => {
                    resolved.pop();
                }
            }
        }
        Some(resolved)
    };
    if let Some(o) = canonical(out) {
        let base = cfg.from_scratch.is_none().then_some(("model", &cfg.model));
        let inputs = base.into_iter().chain(cfg.lora.init_adapter.iter().map(|a| ("init_adapter", a)));
        for (name, input) in inputs {
            if canonical(input).is_some_and(|i| o == i || o.starts_with(&i)) {
                let reason = format!("{} is, or is inside, the {name} {}: the run would write over what it reads", out.display(), input.display());
                return Err(MedgenError::invalid("output", reason));
            }
        }
    }
    let nonempty = std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(false);
    if nonempty && !cfg.resume && !cfg.overwrite {
        return Err(MedgenError::invalid("output", format!("{} exists and is not empty (pass --resume to continue its run, or --overwrite)", out.display())));
    }
    if cfg.resume && !checkpoint::exists(out) {
        return Err(MedgenError::invalid("resume", format!("{} holds no checkpoint to resume from", out.display())));
    }
    std::fs::create_dir_all(out).map_err(|e| MedgenError::io(out, e))
}

/// Mean cross-entropy per label token over `examples`.
fn eval_loss(model: &Trainable, examples: &[Encoded], batch_size: usize) -> Result<f64> {
    let (mut sum, mut tokens) = (0.0, 0i64);
    for chunk in examples.chunks(batch_size) {
        let b = batch_of(model, &chunk.iter().collect::<Vec<_>>())?;
        sum += model.loss_sum(&b, false)?.f_double_value(&[])?;
        tokens += b.label_tokens;
    }
    Ok(sum / tokens.max(1) as f64)
}

/// Mean ROUGE-1, ROUGE-2 and ROUGE-L F1 of greedy generations for the first validation
/// examples; `None` when `stop` cut the generations short.
/// The prompts of the validation examples that each evaluation drafts for ROUGE.
fn eval_prompts(model: &Trainable, data: &Prepared, cfg: &TrainingConfig) -> Vec<Vec<u32>> {
    let n = cfg.eval_generate.min(data.validation.len());
    data.validation[..n]
        .iter()
        .map(|e| {
            if model.info.encoder_decoder {
                e.input_ids.clone()
            } else {
                e.input_ids.iter().zip(&e.labels).take_while(|(_, &l)| l == data::IGNORE).map(|(&t, _)| t).collect()
            }
        })
        .collect()
}

/// Whether each evaluation's drafts fit the model's context, checked before the first step:
/// found at the first evaluation, the error would cost the run the steps before it.
fn check_eval_fits(model: &Trainable, data: &Prepared, cfg: &TrainingConfig) -> Result<()> {
    if !(cfg.metric == "rougeL" || cfg.eval_generate > 0) {
        return Ok(());
    }
    let backend = model.net.backend();
    let limits = backend.limits();
    let max_new = cfg.eval_max_new_tokens;
    for (i, prompt) in eval_prompts(model, data, cfg).iter().enumerate() {
        let need = if limits.decoder.is_some() { prompt.len().max(max_new) } else { prompt.len() + max_new };
        if need > limits.context_length {
            let reason = format!(
                "validation example {} drafts from a prompt of {} tokens with eval_max_new_tokens {max_new}: {need} positions, and the model allows {}",
                i + 1,
                prompt.len(),
                limits.context_length
            );
            return Err(MedgenError::invalid("eval_max_new_tokens", reason));
        }
    }
    Ok(())
}

fn eval_rouge(model: &Trainable, data: &Prepared, cfg: &TrainingConfig, stop: &mut dyn FnMut() -> bool) -> Result<Option<[f64; 3]>> {
    let prompts = eval_prompts(model, data, cfg);
    let n = prompts.len();
    if n == 0 {
        return Ok(None);
    }
    let gen = GenerationConfig { max_new_tokens: cfg.eval_max_new_tokens, do_sample: false, ..Default::default() };
    let outs = generation::generate_batch(model.net.backend(), &model.tokenizer, 0.0, prompts, &gen, || {
        if stop() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    if outs.iter().any(|g| g.finish_reason == crate::FinishReason::Cancelled) {
        return Ok(None);
    }
    let mut sums = [0.0; 3];
    for (g, r) in outs.iter().zip(&data.references) {
        let s = crate::metrics::rouge(&g.text, r, true);
        for (sum, v) in sums.iter_mut().zip([s.rouge1.fmeasure, s.rouge2.fmeasure, s.rouge_l.fmeasure]) {
            *sum += v;
        }
    }
    Ok(Some(sums.map(|s| s / n as f64)))
}

/// `run.json`: what the run was, without any text of the data.
#[allow(clippy::too_many_arguments)]
fn write_record(cfg: &TrainingConfig, model: &Trainable, data: &Prepared, report: &Report, base_sha256: &str, started_at: SystemTime, dp: Option<&dp::Dp>) -> Result<()> {
    let unix = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let record = serde_json::json!({
        "medgen_version": crate::VERSION,
        "base_model": {"path": cfg.model, "sha256": base_sha256, "architecture": model.info.architecture},
        "data": data.files,
        "train_examples": data.train.len(),
        "validation_examples": data.validation.len(),
        "truncated_examples": data.truncated,
        "deidentified": cfg.deid,
        "options": cfg,
        "lora_target_modules": model.lora.as_ref().map(|(_, t)| t),
        "trainable_parameters": model.params.iter().map(|p| p.tensor.numel()).sum::<usize>(),
        "result": {
            "steps": report.steps, "total_steps": report.total_steps, "train_loss": report.train_loss,
            "eval_loss": report.eval_loss, "eval_rougeL": report.eval_rouge_l, "stopped_early": report.stopped_early,
            "best_step": report.best_step, "best_by": cfg.metric, "seconds": report.seconds,
        },
        "differential_privacy": dp.map(|d| serde_json::json!({
            "epsilon": report.epsilon, "delta": d.delta, "noise_multiplier": d.noise_multiplier,
            "max_grad_norm": d.max_grad_norm, "sample_rate": d.sample_rate, "steps": report.steps,
            "accountant": crate::privacy::ACCOUNTANT, "noise": if d.noise_seed.is_some() { "seeded (tests only)" } else { "ChaCha20 seeded by the operating system" },
        })),
        "federated": cfg.federated_round.map(|round| serde_json::json!({
            "site": cfg.site, "round": round, "examples": data.train.len(),
            "init_adapter": cfg.lora.init_adapter, "frozen_a": cfg.method == Method::Lora && cfg.lora.freeze_a,
        })),
        "warnings": report.warnings,
        "started_unix_seconds": unix(started_at),
        "finished_unix_seconds": unix(SystemTime::now()),
    });
    write_json(&cfg.output.join("run.json"), &record)
}

/// One forward and backward pass over every example of `cfg.train` as one batch, in file
/// order, without an optimiser step: the loss, the batch's tensors and each trainable
/// parameter's gradient (`grad.<name>`), for tests against transformers and PEFT.
#[doc(hidden)]
pub fn gradients(cfg: &TrainingConfig) -> Result<Vec<(String, Tensor)>> {
    // DP's options are checked below: the dump clips without noise, which a run may not.
    TrainingConfig { dp_max_grad_norm: None, dp_noise_multiplier: None, dp_epsilon: None, dp_noise_seed: None, ..cfg.clone() }.validate()?;
    let lora = (cfg.method == Method::Lora).then_some(&cfg.lora);
    let model = Trainable::load(&cfg.model, &cfg.load, lora, cfg.seed)?;
    let data = prepare(&TrainingConfig { validation: None, validation_split: None, ..cfg.clone() }, &model)?;
    let examples: Vec<&Encoded> = data.train.iter().collect();
    let b = batch_of(&model, &examples)?;
    // With dp_max_grad_norm: the per-example gradients clipped and summed (LoRA: in batched
    // passes of at most batch_size examples), and with dp_noise_multiplier the noise added (not
    // divided by the batch size).
    let clipped = match cfg.dp_max_grad_norm {
        Some(c) if c.is_finite() && c > 0.0 => {
            let sum = dp::clipped_sum(&model, &examples, c, cfg.batch_size, cfg.seed, 0)?.0;
            Some(match cfg.dp_noise_multiplier {
                Some(sigma) if sigma.is_finite() && sigma >= 0.0 => dp::with_noise(&sum, sigma * c, cfg.dp_noise_seed, 0)?,
                Some(sigma) => return Err(MedgenError::invalid("dp_noise_multiplier", format!("{sigma} must be a finite number of at least 0"))),
                None => sum,
            })
        }
        Some(c) => return Err(MedgenError::invalid("dp_max_grad_norm", format!("{c} must be a finite number above 0"))),
        None => None,
    };
    let loss = model.loss_sum(&b, true)?.f_div_scalar(b.label_tokens.max(1) as f64)?;
    if clipped.is_none() {
        loss.f_backward()?;
    }
    let mut out = vec![
        ("loss".to_string(), loss.f_detach()?),
        ("input_ids".to_string(), b.input_ids.shallow_clone()),
        ("attention_mask".to_string(), b.attention_mask.shallow_clone()),
        ("labels".to_string(), b.labels.shallow_clone()),
    ];
    if let Some(d) = &b.decoder_input_ids {
        out.push(("decoder_input_ids".to_string(), d.shallow_clone()));
    }
    for (i, p) in model.params.iter().enumerate() {
        let g = match &clipped {
            Some(sums) => sums[i].shallow_clone(),
            None => p.tensor.grad(),
        };
        let g = if g.defined() { g } else { Tensor::f_zeros_like(&p.tensor)? };
        // Stored as transformers stores the weight (GPT-2's Conv1D is [in, out]).
        let transposed = model.loaded.weights.iter().any(|w| w.hf == p.name && w.transposed);
        out.push((format!("grad.{}", p.name), if transposed { g.f_transpose(0, 1)?.f_contiguous()? } else { g }));
    }
    Ok(out)
}

/// Writes named tensors as safetensors (the `debug train-batch` dump).
#[doc(hidden)]
pub fn write_tensors(tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    network::write_safetensors(tensors, path)
}
