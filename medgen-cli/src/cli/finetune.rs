//! `medgen finetune`, `medgen merge` and `medgen debug train-batch`: the options of
//! [`medgen::train::TrainingConfig`] as flags, a progress line, and Ctrl-C as a clean stop.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use medgen::train::{self, LoraConfig, Method, TrainingConfig};
use medgen::{MedgenError, Result};

use super::LoadArgs;

/// The options a training run and the gradient dump share.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// Base model: an HF folder or a GGUF file (default: the packaged SmolLM2-135M-Instruct).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Training data: JSON lines ({"input", "target"} or {"messages"}) or CSV.
    #[arg(long)]
    train: PathBuf,
    /// full or lora.
    #[arg(long, default_value = "full")]
    method: String,
    #[arg(long, default_value_t = 8)]
    lora_r: usize,
    #[arg(long, default_value_t = 16.0)]
    lora_alpha: f64,
    #[arg(long, default_value_t = 0.0)]
    lora_dropout: f64,
    /// Scale adapters by alpha/sqrt(r).
    #[arg(long)]
    use_rslora: bool,
    /// Comma-separated module names (default: PEFT's for the family).
    #[arg(long, value_delimiter = ',')]
    target_modules: Option<Vec<String>>,
    /// Start from this saved adapter instead of a fresh one.
    #[arg(long)]
    init_adapter: Option<PathBuf>,
    /// Train only LoRA's B matrices; A keeps its starting values (FFA-LoRA, for federations).
    #[arg(long)]
    lora_freeze_a: bool,
    #[arg(long, default_value_t = 512)]
    max_source_length: usize,
    #[arg(long, default_value_t = 128)]
    max_target_length: usize,
    /// Train decoder-only models on plain text instead of the chat template's user turn.
    #[arg(long)]
    no_chat: bool,
    /// Train on the data as it is, without de-identifying it first.
    #[arg(long)]
    no_deid: bool,
    #[arg(long, default_value = "input")]
    input_column: String,
    #[arg(long, default_value = "target")]
    target_column: String,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// DP-SGD: clip each example's gradient to this L2 norm, add Gaussian noise, sample batches
    /// by Poisson sampling (needs --dp-noise-multiplier or --dp-epsilon).
    #[arg(long)]
    dp_max_grad_norm: Option<f64>,
    /// DP-SGD's noise standard deviation over the clipping norm.
    #[arg(long)]
    dp_noise_multiplier: Option<f64>,
    /// The epsilon the run may spend: the noise is chosen for the planned steps.
    #[arg(long)]
    dp_epsilon: Option<f64>,
    /// Delta of the guarantee; below 1 / examples to mean anything.
    #[arg(long, default_value_t = 1e-5)]
    dp_delta: f64,
    /// Seed DP-SGD's noise (for tests: the default is a cryptographically secure generator).
    #[arg(long)]
    dp_noise_seed: Option<u64>,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    #[command(flatten)]
    common: TrainArgs,
    /// Where the model (or adapter), log.jsonl, run.json and the checkpoint go.
    #[arg(long)]
    output: PathBuf,
    #[arg(long)]
    validation: Option<PathBuf>,
    /// Hold out this fraction of the training data for validation.
    #[arg(long)]
    validation_split: Option<f64>,
    #[arg(long, default_value_t = 5e-5)]
    lr: f64,
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    #[arg(long)]
    warmup_steps: Option<u64>,
    #[arg(long, default_value_t = 0.0)]
    warmup_ratio: f64,
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f64,
    #[arg(long, default_value_t = 1)]
    gradient_accumulation_steps: usize,
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    #[arg(long)]
    max_steps: Option<u64>,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Keep the examples in file order.
    #[arg(long)]
    no_shuffle: bool,
    #[arg(long)]
    eval_steps: Option<u64>,
    #[arg(long)]
    save_steps: Option<u64>,
    #[arg(long, default_value_t = 10)]
    logging_steps: u64,
    /// loss or rougeL: what picks the best checkpoint.
    #[arg(long, default_value = "loss")]
    metric: String,
    #[arg(long)]
    early_stopping_patience: Option<usize>,
    /// Validation examples generated for ROUGE at each evaluation.
    #[arg(long, default_value_t = 16)]
    eval_generate: usize,
    #[arg(long, default_value_t = 64)]
    eval_max_new_tokens: usize,
    /// Continue the run whose checkpoint is in --output.
    #[arg(long)]
    resume: bool,
    /// Write into an --output folder that holds files.
    #[arg(long)]
    overwrite: bool,
    /// Stop cleanly after this step, with a checkpoint (as an interrupted run).
    #[arg(long, hide = true)]
    stop_after: Option<u64>,
    /// Federated fine-tuning: the server's round that --init-adapter came from; run.json
    /// records it with --site and the example count (the weight of this site's update).
    #[arg(long)]
    federated_round: Option<u64>,
    /// This site's name in the federation (no patient data).
    #[arg(long)]
    site: Option<String>,
    #[command(flatten)]
    scratch: ScratchArgs,
    /// Print the final report as JSON instead of progress lines.
    #[arg(long)]
    json: bool,
}

/// `--from-scratch rnn`: a recurrent encoder-decoder trained from nothing.
#[derive(clap::Args)]
struct ScratchArgs {
    /// Train a new model instead of fine-tuning one: rnn (an LSTM or GRU encoder-decoder
    /// with attention). Needs --tokenizer; not with --model.
    #[arg(long, conflicts_with = "model", requires = "tokenizer")]
    from_scratch: Option<String>,
    /// The new model's tokenizer.json (from `medgen tokenizer train`, or any other).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// lstm or gru.
    #[arg(long, default_value = "lstm")]
    cell: String,
    /// Recurrent layers of the encoder and of the decoder.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Hidden size (each direction's, with --bidirectional).
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// Token embedding size.
    #[arg(long, default_value_t = 128)]
    embedding: usize,
    /// A bidirectional encoder.
    #[arg(long)]
    bidirectional: bool,
    /// luong (general), dot or bahdanau (additive).
    #[arg(long, default_value = "luong")]
    attention: String,
    /// Without Luong's input feeding.
    #[arg(long)]
    no_input_feeding: bool,
    /// Tie the output projection to the decoder embedding (needs --embedding = --hidden).
    #[arg(long)]
    tie_embeddings: bool,
    /// Dropout between recurrent layers.
    #[arg(long, default_value_t = 0.2)]
    rnn_dropout: f64,
    /// The probability of feeding the target's token (else the model's prediction) while training.
    #[arg(long, default_value_t = 1.0)]
    teacher_forcing_ratio: f64,
    /// The longest input and the most new tokens.
    #[arg(long, default_value_t = 1024)]
    max_length: usize,
}

impl ScratchArgs {
    fn spec(&self) -> Result<Option<train::scratch::RnnSpec>> {
        let Some(kind) = &self.from_scratch else { return Ok(None) };
        if kind != "rnn" {
            return Err(MedgenError::InvalidArgument { name: "from_scratch", reason: format!("`{kind}` is not a model medgen trains from scratch (rnn)") });
        }
        let spec = serde_json::json!({
            "tokenizer": self.tokenizer, "cell": self.cell, "layers": self.layers, "hidden": self.hidden,
            "embedding": self.embedding, "bidirectional": self.bidirectional, "attention": self.attention,
            "input_feeding": !self.no_input_feeding, "tie_embeddings": self.tie_embeddings, "dropout": self.rnn_dropout,
            "teacher_forcing_ratio": self.teacher_forcing_ratio, "max_length": self.max_length,
        });
        serde_json::from_value(spec).map(Some).map_err(|e| MedgenError::InvalidArgument { name: "from_scratch", reason: e.to_string() })
    }
}

impl TrainArgs {
    fn config(&self) -> Result<TrainingConfig> {
        let method = match self.method.as_str() {
            "full" => Method::Full,
            "lora" => Method::Lora,
            m => return Err(MedgenError::InvalidArgument { name: "method", reason: format!("`{m}` is not full or lora") }),
        };
        let model = match &self.model {
            Some(m) => m.clone(),
            None => medgen::Model::default_model_path()?,
        };
        Ok(TrainingConfig {
            model,
            train: self.train.clone(),
            method,
            lora: LoraConfig {
                r: self.lora_r,
                alpha: self.lora_alpha,
                dropout: self.lora_dropout,
                use_rslora: self.use_rslora,
                target_modules: self.target_modules.clone(),
                init_adapter: self.init_adapter.clone(),
                freeze_a: self.lora_freeze_a,
            },
            max_source_length: self.max_source_length,
            max_target_length: self.max_target_length,
            chat: !self.no_chat,
            deid: !self.no_deid,
            input_column: self.input_column.clone(),
            target_column: self.target_column.clone(),
            seed: self.seed,
            dp_max_grad_norm: self.dp_max_grad_norm,
            dp_noise_multiplier: self.dp_noise_multiplier,
            dp_epsilon: self.dp_epsilon,
            dp_delta: self.dp_delta,
            dp_noise_seed: self.dp_noise_seed,
            load: self.load.options()?,
            ..Default::default()
        })
    }
}

/// Training allocates and frees the same large activations at every step. glibc returns
/// blocks above its mmap threshold to the system when they are freed, so every step would
/// pay the page faults of touching them again (about a tenth of a t5-small step on a
/// 2-core machine). The command keeps freed memory for reuse instead; the peak resident
/// size stays what the largest step needs. A library does not change its host's allocator,
/// so this lives in the command only.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before training starts
    // any thread of its own.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

pub fn run(a: Args) -> Result<()> {
    keep_freed_memory();
    let cfg = TrainingConfig {
        output: a.output.clone(),
        validation: a.validation.clone(),
        validation_split: a.validation_split,
        lr: a.lr,
        weight_decay: a.weight_decay,
        warmup_steps: a.warmup_steps,
        warmup_ratio: a.warmup_ratio,
        max_grad_norm: a.max_grad_norm,
        gradient_accumulation_steps: a.gradient_accumulation_steps,
        epochs: a.epochs,
        max_steps: a.max_steps,
        batch_size: a.batch_size,
        shuffle: !a.no_shuffle,
        eval_steps: a.eval_steps,
        save_steps: a.save_steps,
        logging_steps: a.logging_steps,
        metric: a.metric.clone(),
        early_stopping_patience: a.early_stopping_patience,
        eval_generate: a.eval_generate,
        eval_max_new_tokens: a.eval_max_new_tokens,
        resume: a.resume,
        overwrite: a.overwrite,
        stop_after: a.stop_after,
        federated_round: a.federated_round,
        site: a.site.clone(),
        from_scratch: a.scratch.spec()?,
        ..a.common.config()?
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    // Ctrl-C asks the run to stop at the next step, which writes a checkpoint first.
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    let on_log = &mut |e: &train::LogEntry| {
        if !a.json {
            let _ = writeln!(std::io::stderr().lock(), "{}", progress(e));
        }
        ControlFlow::Continue(())
    };
    let report = train::finetune_until(&cfg, on_log, &mut || interrupted.load(Ordering::SeqCst))?;
    if interrupted.load(Ordering::SeqCst) {
        eprintln!("interrupted: the checkpoint in {} resumes the run (--resume)", a.output.display());
    }
    if a.json {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("history");
        }
        println!("{v}");
    } else {
        eprintln!(
            "trained {} of {} steps in {:.1} s; train loss {}, eval loss {}; wrote {}",
            report.steps,
            report.total_steps,
            report.seconds,
            fmt(report.train_loss),
            fmt(report.eval_loss),
            report.output.display()
        );
        if let (Some(eps), Some(sigma)) = (report.epsilon, report.noise_multiplier) {
            eprintln!("DP-SGD: epsilon {eps:.4} spent at delta {} (noise multiplier {sigma:.4})", cfg.dp_delta);
        }
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.4}"))
}

/// One progress line: step, epoch, loss, learning rate, tokens/s and time left.
fn progress(e: &train::LogEntry) -> String {
    let left = if e.step > 0 { e.elapsed_seconds / e.step as f64 * (e.total_steps - e.step.min(e.total_steps)) as f64 } else { 0.0 };
    if let Some(l) = e.eval_loss {
        let rouge = match (e.eval_rouge1, e.eval_rouge2, e.eval_rouge_l) {
            (Some(r1), Some(r2), Some(rl)) => format!(" rouge1 {r1:.4} rouge2 {r2:.4} rougeL {rl:.4}"),
            _ => String::new(),
        };
        return format!("[eval {}/{}] loss {l:.4}{rouge}", e.step, e.total_steps);
    }
    const WIDTH: usize = 24;
    let done = (WIDTH as u64 * e.step / e.total_steps.max(1)) as usize;
    format!(
        "[{}{}] step {}/{} epoch {:.2} loss {} lr {:.3e} grad {:.3} {:.0} tok/s, {:.0} s left",
        "=".repeat(done.min(WIDTH)),
        " ".repeat(WIDTH - done.min(WIDTH)),
        e.step,
        e.total_steps,
        e.epoch,
        fmt(e.loss),
        e.learning_rate.unwrap_or(0.0),
        e.grad_norm.unwrap_or(0.0),
        e.tokens_per_second.unwrap_or(0.0),
        left
    )
}

/// `medgen merge`.
#[derive(clap::Args)]
pub struct MergeArgs {
    /// The base model the adapter was trained on (an HF folder).
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    adapter: PathBuf,
    #[arg(long)]
    output: PathBuf,
}

pub fn merge(a: MergeArgs) -> Result<()> {
    train::merge(&a.model, &a.adapter, &a.output, &medgen::LoadOptions::default())?;
    eprintln!("wrote {}", a.output.display());
    Ok(())
}

/// `medgen debug train-batch`.
#[derive(clap::Args)]
pub struct GradArgs {
    #[command(flatten)]
    common: TrainArgs,
    /// The safetensors file to write.
    #[arg(long)]
    output: PathBuf,
    /// With DP: at most this many examples in one batched pass.
    #[arg(long)]
    batch_size: Option<usize>,
}

pub fn gradients(a: GradArgs) -> Result<()> {
    let mut cfg = a.common.config()?;
    if let Some(n) = a.batch_size {
        cfg.batch_size = n;
    }
    let tensors = train::gradients(&cfg)?;
    train::write_tensors(&tensors, &a.output)
}
