//! Fine-tuning through the C ABI: the options of the core's `TrainingConfig` as a C struct,
//! a progress callback per logged step (which can stop the run), and merging an adapter into
//! its base model. The training loop is the core's; this file only converts.

use std::ffi::{c_char, c_int, c_void};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use engine::train::{self, LogEntry, LoraConfig, Method, Report, TrainingConfig};
use engine::{LoadOptions, Model};

use crate::boundary::{ffi_boundary, init_params, read_params, str_arg, write_out, Failure, FfiResult, Params};
use crate::medgen_status::{self, *};
use crate::model::{load_options, medgen_device, medgen_dtype, MEDGEN_DEVICE_CPU, MEDGEN_DTYPE_F32};

/// What `medgen_finetune` trains: a MEDGEN_METHOD_* value, for
/// `medgen_finetune_params.method` (values in the 800s, which no other type's constants use).
pub type medgen_finetune_method = i32;
/// `medgen_finetune_method`: every weight; `output` receives the whole model, as a Hugging
/// Face folder.
pub const MEDGEN_METHOD_FULL: medgen_finetune_method = 800;
/// `medgen_finetune_method`: LoRA adapters on the targeted layers, the base frozen; `output`
/// receives the adapter as PEFT writes it (`adapter_config.json`, `adapter_model.safetensors`).
pub const MEDGEN_METHOD_LORA: medgen_finetune_method = 801;

/// A fine-tuning run: one field per option of the Rust core's `TrainingConfig`, with its
/// name (LoRA's prefixed `lora_` as the command's flags are) and its default. Start from
/// `medgen_finetune_params_default()` and set `train` and `output`. Strings are NUL-terminated UTF-8, read
/// during the call only. An optional count is -1 for none.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct medgen_finetune_params {
    /// The struct's size as the caller's header declares it; `*_default()` sets it. Lets
    /// the struct grow at the end without breaking programs built against an older header.
    pub struct_size: usize,
    /// The base model: a Hugging Face folder or a GGUF file; NULL for the packaged default
    /// model, as `medgen_model_load` (default: NULL).
    pub model: *const c_char,
    /// Training data: JSON lines (`{"input", "target"}` or `{"messages"}` per line) or CSV.
    /// Must be set (default: NULL).
    pub train: *const c_char,
    /// Validation data in the same formats; NULL for none (default: NULL).
    pub validation: *const c_char,
    /// Hold out this fraction of the training data for validation instead, split by `seed`,
    /// in (0, 1); NaN or 0 and below for none. Not with `validation` (default: NaN).
    pub validation_split: f64,
    /// The folder that receives the model or adapter, `log.jsonl`, `run.json` and the
    /// checkpoint; created if needed. Must be set (default: NULL).
    pub output: *const c_char,
    /// What trains (default: MEDGEN_METHOD_FULL).
    pub method: medgen_finetune_method,
    /// LoRA's rank, 1 to 4096 (default: 8).
    pub lora_r: usize,
    /// LoRA's scaling numerator: the adapter's output is multiplied by lora_alpha / lora_r,
    /// above 0 (default: 16.0).
    pub lora_alpha: f64,
    /// Dropout on the adapter's input while training, in [0, 1) (default: 0.0).
    pub lora_dropout: f64,
    /// Scale adapters by lora_alpha / sqrt(lora_r) (rsLoRA) instead (default: false).
    pub use_rslora: bool,
    /// The layers to adapt as a comma-separated list of module names, PEFT's
    /// `target_modules` (for example "q_proj,v_proj"); NULL for PEFT's default of the
    /// family: T5 q,v; BART and the Llama family q_proj,v_proj; GPT-2 c_attn (default: NULL).
    pub target_modules: *const c_char,
    /// A saved adapter folder (PEFT's files) to start from instead of PEFT's initialisation;
    /// NULL for none (default: NULL).
    pub init_adapter: *const c_char,
    /// Peak learning rate, above 0 (default: 5e-5).
    pub lr: f64,
    /// AdamW's decoupled weight decay, not applied to biases and norms, 0 or more (default: 0.0).
    pub weight_decay: f64,
    /// Steps of linear warm-up; -1 takes them from `warmup_ratio` (default: -1).
    pub warmup_steps: i64,
    /// Warm-up as a fraction of the total steps, rounded up, in [0, 1); used when
    /// `warmup_steps` is -1 (default: 0.0).
    pub warmup_ratio: f64,
    /// Clip the global gradient norm to this; 0 turns clipping off (default: 1.0).
    pub max_grad_norm: f64,
    /// Micro-batches per optimiser step, at least 1 (default: 1). A step's loss is the sum
    /// over all its micro-batches' label tokens divided by their number, so that
    /// accumulating equals one large batch.
    pub gradient_accumulation_steps: usize,
    /// Passes over the training data, at least 1 (default: 3).
    pub epochs: usize,
    /// Stop after this many optimiser steps instead of `epochs`; -1 for none (default: -1).
    pub max_steps: i64,
    /// Examples per micro-batch, at least 1 (default: 8).
    pub batch_size: usize,
    /// Seeds the data order, the validation split, dropout and LoRA's initialisation (default: 42).
    pub seed: u64,
    /// Shuffle the examples every epoch (default: true).
    pub shuffle: bool,
    /// Longest input in tokens; longer ones are cut (default: 512).
    pub max_source_length: usize,
    /// Longest target in tokens, its end token included; longer ones are cut (default: 128).
    pub max_target_length: usize,
    /// Render a decoder-only model's inputs as the user's turn of its chat template; false
    /// trains on the plain text (default: true).
    pub chat: bool,
    /// De-identify the data first, replacing identifiers by placeholders (default: true).
    pub deid: bool,
    /// The CSV column holding the inputs (default: "input").
    pub input_column: *const c_char,
    /// The CSV column holding the targets (default: "target").
    pub target_column: *const c_char,
    /// Evaluate every this many steps, and at the end; -1 for once per epoch (default: -1).
    pub eval_steps: i64,
    /// Write a checkpoint every this many steps, and at the end; -1 for at each evaluation
    /// (default: -1).
    pub save_steps: i64,
    /// Log the training loss (and call the callback) every this many steps, besides the
    /// first and the last, at least 1 (default: 10).
    pub logging_steps: u64,
    /// What picks the best checkpoint: "loss" (validation loss) or "rougeL" (default: "loss").
    pub metric: *const c_char,
    /// Stop when the metric has not improved for this many evaluations; -1 for never
    /// (default: -1).
    pub early_stopping_patience: i64,
    /// Validation examples generated for ROUGE at each evaluation (default: 16).
    pub eval_generate: usize,
    /// Tokens generated per validation example for ROUGE (default: 64).
    pub eval_max_new_tokens: usize,
    /// Continue the run whose checkpoint is in `output` (default: false).
    pub resume: bool,
    /// Write into an `output` folder that already holds files (default: false).
    pub overwrite: bool,
    /// As `medgen_model_params` (default: MEDGEN_DEVICE_CPU).
    pub device: medgen_device,
    /// The CUDA device's index (default: 0).
    pub device_index: i32,
    /// (default: MEDGEN_DTYPE_F32)
    pub dtype: medgen_dtype,
    /// CPU threads to compute with; 0 means one per CPU (default: 0).
    pub threads: i32,
    /// DP-SGD: each example's gradient is clipped to this L2 norm, Gaussian noise is added
    /// and batches are Poisson-sampled; 0 for no DP (default: 0). Needs `dp_noise_multiplier`
    /// or `dp_epsilon`. (Fields from here on came with version 0.2 of the struct: an older
    /// caller's struct ends before them and gets their defaults.)
    pub dp_max_grad_norm: f64,
    /// DP-SGD's noise standard deviation over the clipping norm; -1 for none, when
    /// `dp_epsilon` picks it (default: -1).
    pub dp_noise_multiplier: f64,
    /// The epsilon the whole run may spend at `dp_delta`; -1 for none (default: -1).
    pub dp_epsilon: f64,
    /// Delta of the guarantee; below 1 / examples to mean anything (default: 1e-5).
    pub dp_delta: f64,
    /// Seed of DP-SGD's noise, for tests; -1 for a cryptographically secure generator seeded
    /// by the operating system (default: -1).
    pub dp_noise_seed: i64,
    /// Train only LoRA's B matrices; A keeps its starting values (FFA-LoRA: sites that start
    /// from the same adapter then average exactly) (default: false).
    pub lora_freeze_a: bool,
    /// Federated fine-tuning: the server's round that `init_adapter` came from, recorded in
    /// `run.json` with `site` and the example count; -1 for none (default: -1).
    pub federated_round: i64,
    /// This site's name in the federation, for the records; NULL for none (default: NULL).
    pub site: *const c_char,
    /// Train a new recurrent encoder-decoder instead of fine-tuning `model`: its shape as a
    /// JSON object, `{"tokenizer": "tokenizer.json", "cell": "lstm", "layers": 2, "hidden":
    /// 256, "embedding": 128, "bidirectional": false, "attention": "luong", "input_feeding":
    /// true, "tie_embeddings": false, "dropout": 0.2, "teacher_forcing_ratio": 1.0,
    /// "max_length": 1024}` (only "tokenizer" required); NULL for none (default: NULL).
    pub from_scratch: *const c_char,
}

/// The default fine-tuning parameters, equal to the Rust core's `TrainingConfig` defaults:
/// full fine-tuning, 3 epochs of batches of 8 at a learning rate of 5e-5. `train` and
/// `output` are NULL and must be set.
///
/// # Safety
/// `p` is NULL or writable for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn medgen_finetune_params_init(p: *mut medgen_finetune_params, size: usize) -> medgen_status {
    unsafe { init_params(p, size) }
}

// SAFETY: repr(C), `struct_size` first, plain C field types.
unsafe impl Params for medgen_finetune_params {
    // A caller built against the header before DP-SGD passes a struct that ends there.
    const MIN_SIZE: usize = std::mem::offset_of!(Self, dp_max_grad_norm);
    const BOOLS: &'static [(usize, &'static str)] = &[
        (std::mem::offset_of!(Self, use_rslora), "use_rslora"),
        (std::mem::offset_of!(Self, shuffle), "shuffle"),
        (std::mem::offset_of!(Self, chat), "chat"),
        (std::mem::offset_of!(Self, deid), "deid"),
        (std::mem::offset_of!(Self, resume), "resume"),
        (std::mem::offset_of!(Self, overwrite), "overwrite"),
        (std::mem::offset_of!(Self, lora_freeze_a), "lora_freeze_a"),
    ];
}

impl Default for medgen_finetune_params {
    fn default() -> Self {
    let d = TrainingConfig::default();
    let none = |v: Option<u64>| v.map_or(-1, |v| v as i64);
    medgen_finetune_params {
        struct_size: std::mem::size_of::<Self>(),
        model: std::ptr::null(),
        train: std::ptr::null(),
        validation: std::ptr::null(),
        validation_split: d.validation_split.unwrap_or(f64::NAN),
        output: std::ptr::null(),
        method: match d.method {
            Method::Full => MEDGEN_METHOD_FULL,
            Method::Lora => MEDGEN_METHOD_LORA,
        },
        lora_r: d.lora.r,
        lora_alpha: d.lora.alpha,
        lora_dropout: d.lora.dropout,
        use_rslora: d.lora.use_rslora,
        target_modules: std::ptr::null(),
        init_adapter: std::ptr::null(),
        lr: d.lr,
        weight_decay: d.weight_decay,
        warmup_steps: none(d.warmup_steps),
        warmup_ratio: d.warmup_ratio,
        max_grad_norm: d.max_grad_norm,
        gradient_accumulation_steps: d.gradient_accumulation_steps,
        epochs: d.epochs,
        max_steps: none(d.max_steps),
        batch_size: d.batch_size,
        seed: d.seed,
        shuffle: d.shuffle,
        max_source_length: d.max_source_length,
        max_target_length: d.max_target_length,
        chat: d.chat,
        deid: d.deid,
        // The core's defaults as static strings (a unit test checks that they agree).
        input_column: c"input".as_ptr(),
        target_column: c"target".as_ptr(),
        eval_steps: none(d.eval_steps),
        save_steps: none(d.save_steps),
        logging_steps: d.logging_steps,
        metric: c"loss".as_ptr(),
        early_stopping_patience: none(d.early_stopping_patience.map(|p| p as u64)),
        eval_generate: d.eval_generate,
        eval_max_new_tokens: d.eval_max_new_tokens,
        resume: d.resume,
        overwrite: d.overwrite,
        device: MEDGEN_DEVICE_CPU,
        device_index: 0,
        dtype: MEDGEN_DTYPE_F32,
        threads: 0,
        dp_max_grad_norm: 0.0,
        dp_noise_multiplier: -1.0,
        dp_epsilon: -1.0,
        dp_delta: d.dp_delta,
        dp_noise_seed: -1,
        lora_freeze_a: false,
        federated_round: -1,
        site: std::ptr::null(),
        from_scratch: std::ptr::null(),
    }
    }
}

fn invalid(reason: String) -> Failure {
    Failure(MEDGEN_ERR_INVALID_ARGUMENT, reason)
}

/// -1 as none, a count as itself.
fn optional_count(v: i64, name: &str) -> FfiResult<Option<u64>> {
    match v {
        -1 => Ok(None),
        v if v >= 0 => Ok(Some(v as u64)),
        v => Err(invalid(format!("`{name}` is {v}: give a count, or -1 for none"))),
    }
}

/// A nullable string argument.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that lives for `'a`.
unsafe fn optional_str<'a>(p: *const c_char, name: &str) -> FfiResult<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        unsafe { str_arg(p, name) }.map(Some)
    }
}

/// The parameters behind `p`, with their method checked.
///
/// # Safety
/// `p` is NULL or points to a `medgen_finetune_params`, whose `method` may hold any int.
unsafe fn checked_method(p: *const medgen_finetune_params) -> FfiResult<(medgen_finetune_params, Method)> {
    let params = unsafe { read_params(p, "params") }?;
    let method = match params.method {
        MEDGEN_METHOD_FULL => Method::Full,
        MEDGEN_METHOD_LORA => Method::Lora,
        m => return Err(invalid(format!("`method` {m} is not a medgen_finetune_method (MEDGEN_METHOD_FULL {MEDGEN_METHOD_FULL} or MEDGEN_METHOD_LORA {MEDGEN_METHOD_LORA})"))),
    };
    Ok((params, method))
}

impl medgen_finetune_params {
    /// The core's configuration. Each pointer is checked before the default model is looked up.
    ///
    /// # Safety
    /// Every string field is NULL or a NUL-terminated string.
    unsafe fn config(&self, method: Method) -> FfiResult<TrainingConfig> {
        let required = |p: *const c_char, name: &str| unsafe { str_arg(p, name) }.map(PathBuf::from);
        let optional = |p: *const c_char, name: &str| unsafe { optional_str(p, name) }.map(|s| s.map(PathBuf::from));
        let string = |p: *const c_char, name: &str| unsafe { str_arg(p, name) }.map(str::to_string);
        let model = unsafe { optional_str(self.model, "params.model") }?;
        let train = required(self.train, "params.train")?;
        let validation = optional(self.validation, "params.validation")?;
        let output = required(self.output, "params.output")?;
        let target_modules = unsafe { optional_str(self.target_modules, "params.target_modules") }?
            .map(|t| t.split(',').map(|m| m.trim().to_string()).collect());
        let init_adapter = optional(self.init_adapter, "params.init_adapter")?;
        let site = unsafe { optional_str(self.site, "params.site") }?.map(str::to_string);
        let from_scratch = unsafe { optional_str(self.from_scratch, "params.from_scratch") }?
            .map(|json| serde_json::from_str(json).map_err(|e| invalid(format!("`from_scratch` is not a model shape: {e}"))))
            .transpose()?;
        let input_column = string(self.input_column, "params.input_column")?;
        let target_column = string(self.target_column, "params.target_column")?;
        let metric = string(self.metric, "params.metric")?;
        let early_stopping_patience = optional_count(self.early_stopping_patience, "early_stopping_patience")?
            .map(|p| usize::try_from(p).unwrap_or(usize::MAX));
        let cfg = TrainingConfig {
            model: match model {
                Some(m) => PathBuf::from(m),
                None => Model::default_model_path()?,
            },
            train,
            validation,
            // NaN and non-positive fractions mean none; the core checks the rest.
            validation_split: (self.validation_split > 0.0).then_some(self.validation_split),
            output,
            method,
            lora: LoraConfig {
                r: self.lora_r,
                alpha: self.lora_alpha,
                dropout: self.lora_dropout,
                use_rslora: self.use_rslora,
                target_modules,
                init_adapter,
                freeze_a: self.lora_freeze_a,
            },
            lr: self.lr,
            weight_decay: self.weight_decay,
            warmup_steps: optional_count(self.warmup_steps, "warmup_steps")?,
            warmup_ratio: self.warmup_ratio,
            max_grad_norm: self.max_grad_norm,
            gradient_accumulation_steps: self.gradient_accumulation_steps,
            epochs: self.epochs,
            max_steps: optional_count(self.max_steps, "max_steps")?,
            batch_size: self.batch_size,
            seed: self.seed,
            shuffle: self.shuffle,
            max_source_length: self.max_source_length,
            max_target_length: self.max_target_length,
            chat: self.chat,
            deid: self.deid,
            input_column,
            target_column,
            eval_steps: optional_count(self.eval_steps, "eval_steps")?,
            save_steps: optional_count(self.save_steps, "save_steps")?,
            logging_steps: self.logging_steps,
            metric,
            early_stopping_patience,
            eval_generate: self.eval_generate,
            eval_max_new_tokens: self.eval_max_new_tokens,
            resume: self.resume,
            overwrite: self.overwrite,
            stop_after: None,
            dp_max_grad_norm: (self.dp_max_grad_norm != 0.0).then_some(self.dp_max_grad_norm),
            dp_noise_multiplier: (self.dp_noise_multiplier != -1.0).then_some(self.dp_noise_multiplier),
            dp_epsilon: (self.dp_epsilon != -1.0).then_some(self.dp_epsilon),
            dp_delta: self.dp_delta,
            dp_noise_seed: match self.dp_noise_seed {
                -1 => None,
                s => Some(u64::try_from(s).map_err(|_| invalid(format!("params.dp_noise_seed {s} is not -1 or a seed of at least 0")))?),
            },
            federated_round: optional_count(self.federated_round, "federated_round")?,
            site,
            from_scratch,
            load: load_options(self.device, self.device_index, self.dtype, self.threads)?,
        };
        Ok(cfg)
    }
}

/// One logged training step or evaluation, as the callback of `medgen_finetune` sees it.
/// A value that the entry does not have is NaN: a training step has `loss`,
/// `learning_rate`, `grad_norm` and `tokens_per_second`; an evaluation has `eval_loss`
/// and, when it generated, `eval_rouge_l`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct medgen_log_entry {
    /// Optimiser steps done.
    pub step: u64,
    /// Optimiser steps the run plans.
    pub total_steps: u64,
    /// Epochs done, fractional.
    pub epoch: f64,
    /// Mean training loss per label token over the steps since the last logged one.
    pub loss: f64,
    /// The learning rate of this step.
    pub learning_rate: f64,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
    /// Mean validation loss per label token.
    pub eval_loss: f64,
    /// Mean ROUGE-L F1 of greedy generations for the first `eval_generate` validation examples.
    pub eval_rouge_l: f64,
    /// Target tokens per second since the last logged step.
    pub tokens_per_second: f64,
    /// Seconds since the run started.
    pub elapsed_seconds: f64,
    /// DP-SGD: the epsilon spent so far at `dp_delta`, at evaluations; NaN otherwise. (Added
    /// with version 0.2: a callback built against an older header reads the fields before it.)
    pub epsilon: f64,
}

impl From<&LogEntry> for medgen_log_entry {
    fn from(e: &LogEntry) -> Self {
        let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
        medgen_log_entry {
            step: e.step,
            total_steps: e.total_steps,
            epoch: e.epoch,
            loss: nan(e.loss),
            learning_rate: nan(e.learning_rate),
            grad_norm: nan(e.grad_norm),
            eval_loss: nan(e.eval_loss),
            eval_rouge_l: nan(e.eval_rouge_l),
            tokens_per_second: nan(e.tokens_per_second),
            elapsed_seconds: e.elapsed_seconds,
            epsilon: nan(e.epsilon),
        }
    }
}

/// What a run of `medgen_finetune` did. A value the run does not have is NaN.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct medgen_finetune_report {
    /// Optimiser steps done (in all, when the run resumed).
    pub steps: u64,
    /// Optimiser steps the run planned.
    pub total_steps: u64,
    /// Mean training loss over the run's steps.
    pub train_loss: f64,
    /// The last evaluation's validation loss (NaN without validation data).
    pub eval_loss: f64,
    /// The last evaluation's ROUGE-L F1 (NaN without one).
    pub eval_rouge_l: f64,
    /// The run ended before its planned steps: the callback returned non-zero, or early stopping.
    pub stopped_early: bool,
    /// Training examples.
    pub train_examples: usize,
    /// Validation examples.
    pub validation_examples: usize,
    /// Examples cut to `max_source_length` or `max_target_length`.
    pub truncated_examples: usize,
    /// Seconds the run took.
    pub seconds: f64,
}

impl From<&Report> for medgen_finetune_report {
    fn from(r: &Report) -> Self {
        let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
        medgen_finetune_report {
            steps: r.steps,
            total_steps: r.total_steps,
            train_loss: nan(r.train_loss),
            eval_loss: nan(r.eval_loss),
            eval_rouge_l: nan(r.eval_rouge_l),
            stopped_early: r.stopped_early,
            train_examples: r.train_examples,
            validation_examples: r.validation_examples,
            truncated_examples: r.truncated_examples,
            seconds: r.seconds,
        }
    }
}

/// Receives each logged training step and evaluation of `medgen_finetune`, on the thread
/// that called it: `entry` is valid during the call only. A non-zero return stops the run,
/// as it cancels a generation for `medgen_piece_callback`. The callback must not unwind
/// (throw a C++ exception or longjmp) out of the call: that would cross Rust frames, which is
/// undefined behaviour (in practice the process aborts, or leaks the run's memory and locks).
/// Catch everything inside it and return non-zero to stop.
pub type medgen_progress_callback =
    Option<unsafe extern "C" fn(entry: *const medgen_log_entry, user_data: *mut c_void) -> c_int>;

/// Fine-tunes a model as `params` say and writes the result into `params->output`: the
/// whole model (MEDGEN_METHOD_FULL) or the adapter (MEDGEN_METHOD_LORA, loadable with
/// `medgen_model_params.adapter`), with `log.jsonl`, `run.json` (the options, the data's
/// SHA-256, the result) and a checkpoint to resume from. Blocks until the run ends.
///
/// `callback`, unless NULL, is called with each logged training step (every
/// `logging_steps`, the first and the last) and each evaluation. When it returns non-zero
/// the run stops cleanly: the checkpoint and the weights so far are written, the function
/// returns MEDGEN_OK and the report says `stopped_early`. On success `*out_report`, unless
/// NULL, receives what the run did; on failure it is not written.
///
/// Invalid options give MEDGEN_ERR_INVALID_ARGUMENT naming the field; a missing file
/// MEDGEN_ERR_IO. Runs on different `output` folders may go on in several threads at once;
/// two runs must not share an `output`.
///
/// # Safety
/// `params` points to parameters whose strings are NULL or NUL-terminated; `callback` is
/// NULL or a valid function, and `user_data` whatever it expects; `out_report` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn medgen_finetune(
    params: *const medgen_finetune_params,
    callback: medgen_progress_callback,
    user_data: *mut c_void,
    out_report: *mut medgen_finetune_report,
) -> medgen_status {
    ffi_boundary(|| {
        let (params, method) = unsafe { checked_method(params) }?;
        let cfg = unsafe { params.config(method) }?;
        let report = train::finetune(&cfg, &mut |entry: &LogEntry| {
            let Some(callback) = callback else { return ControlFlow::Continue(()) };
            let entry = medgen_log_entry::from(entry);
            // SAFETY: the caller vouches for the callback and its user_data.
            if unsafe { callback(&entry, user_data) } == 0 {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        })?;
        if !out_report.is_null() {
            unsafe { write_out(out_report, medgen_finetune_report::from(&report)) };
        }
        Ok(())
    })
}

/// Folds the LoRA adapter in the folder `adapter` into the base model `base` (the Hugging
/// Face folder it was trained on) and writes the merged model as a Hugging Face folder to
/// `output` (created if needed), which `medgen_model_load` runs at full speed. All three are
/// NUL-terminated paths; there is no default base here (NULL for any is
/// MEDGEN_ERR_NULL_ARGUMENT). Works on the CPU in f32.
///
/// # Safety
/// `base`, `adapter` and `output` are NUL-terminated strings (or NULL, refused).
#[no_mangle]
pub unsafe extern "C" fn medgen_merge(
    base: *const c_char,
    adapter: *const c_char,
    output: *const c_char,
) -> medgen_status {
    ffi_boundary(|| {
        let base = unsafe { str_arg(base, "base") }?;
        let adapter = unsafe { str_arg(adapter, "adapter") }?;
        let output = unsafe { str_arg(output, "output") }?;
        train::merge(Path::new(base), Path::new(adapter), Path::new(output), &LoadOptions::default())?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    fn with_paths(p: &mut medgen_finetune_params) {
        p.model = c"base".as_ptr();
        p.train = c"train.jsonl".as_ptr();
        p.output = c"out".as_ptr();
    }

    #[test]
    fn default_params_are_the_cores_defaults() {
        let mut p = medgen_finetune_params::default();
        with_paths(&mut p);
        let got = unsafe { p.config(Method::Full) }.map_err(|f| f.1).unwrap();
        let want = TrainingConfig {
            model: "base".into(),
            train: "train.jsonl".into(),
            output: "out".into(),
            ..Default::default()
        };
        assert_eq!(serde_json::to_value(&got).unwrap(), serde_json::to_value(&want).unwrap());
        // `load` is not serialised; LoadOptions has Debug but not PartialEq.
        assert_eq!(format!("{:?}", got.load), format!("{:?}", want.load));
    }

    #[test]
    fn optional_fields_map_to_the_core_options() {
        let mut p = medgen_finetune_params::default();
        with_paths(&mut p);
        p.target_modules = c"q_proj, v_proj,o_proj".as_ptr();
        p.warmup_steps = 3;
        p.max_steps = 0;
        p.early_stopping_patience = 2;
        p.validation_split = 0.25;
        let cfg = unsafe { p.config(Method::Lora) }.map_err(|f| f.1).unwrap();
        assert_eq!(cfg.lora.target_modules.unwrap(), ["q_proj", "v_proj", "o_proj"]);
        assert_eq!((cfg.warmup_steps, cfg.max_steps, cfg.early_stopping_patience), (Some(3), Some(0), Some(2)));
        assert_eq!(cfg.validation_split, Some(0.25));
        p.validation_split = -1.0;
        assert_eq!(unsafe { p.config(Method::Lora) }.map_err(|f| f.1).unwrap().validation_split, None);
    }

    #[test]
    fn counts_below_minus_one_are_invalid_arguments_naming_the_field() {
        let mut p = medgen_finetune_params::default();
        with_paths(&mut p);
        p.eval_steps = -2;
        let status = unsafe { medgen_finetune(&p, None, std::ptr::null_mut(), std::ptr::null_mut()) };
        assert_eq!(status, MEDGEN_ERR_INVALID_ARGUMENT);
        let msg = unsafe { CStr::from_ptr(crate::medgen_last_error_message()) }.to_str().unwrap();
        assert!(msg.contains("eval_steps"), "{msg}");
    }

    #[test]
    fn an_undeclared_method_value_is_an_invalid_argument() {
        let p = medgen_finetune_params { method: 7, ..Default::default() };
        let status = unsafe { medgen_finetune(&p, None, std::ptr::null_mut(), std::ptr::null_mut()) };
        assert_eq!(status, MEDGEN_ERR_INVALID_ARGUMENT);
        let msg = unsafe { CStr::from_ptr(crate::medgen_last_error_message()) }.to_str().unwrap();
        assert!(msg.contains("method") && msg.contains('7'), "{msg}");
    }
}
