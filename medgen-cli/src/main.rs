//! The `medgen` command: generate text, describe a model, and dump tensors, logits and
//! token ids for checking medgen against other implementations.

mod cli;

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use medgen::{ChatMessage, EarlyStopping, GenerationConfig, LoadOptions, MedgenError, Model, NetworkConfig, Prompt, Result};

#[derive(Parser)]
#[command(name = "medgen", version, about = "Generate clinical text with pretrained language models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a prompt (streams to stdout unless --json).
    Generate(GenerateArgs),
    /// Describe a model: architecture, parameters, tensor types, context, chat template.
    Info {
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Token ids of a text, and the text decoded back, as JSON.
    Tokenize {
        #[arg(long)]
        model: Option<PathBuf>,
        #[command(flatten)]
        input: InputArgs,
        /// Leave out BOS/EOS.
        #[arg(long)]
        no_special: bool,
    },
    /// Dumps for checking medgen against other implementations: logits, tensors.
    #[command(subcommand)]
    Debug(Debug),
    /// Deprecated spelling of `debug logits`.
    #[command(hide = true)]
    Logits(LogitsArgs),
    /// Deprecated spelling of `debug tensor`.
    #[command(hide = true)]
    Tensor(TensorArgs),
    /// Find and remove protected health information (PHI) in a note.
    Deid(cli::deid::Args),
    /// Check a draft against its source note: unsupported numbers and medications, negation flips.
    Check(cli::check::Args),
    /// Run a clinical task on a note: de-identify, prompt, generate, check, audit.
    Task(cli::task::Args),
    /// ROUGE-1/2/L/Lsum and BLEU of predictions against references.
    Eval(cli::eval::Args),
    /// Fine-tune a model on your data, fully or with LoRA adapters.
    Finetune(cli::finetune::Args),
    /// Merge a LoRA adapter into its base model's weights (an HF folder).
    Merge(cli::finetune::MergeArgs),
    /// The DP-SGD privacy accountant: the epsilon a run spends, or the noise a target needs.
    #[command(subcommand)]
    Privacy(cli::privacy::Command),
    /// Tokenizers for models trained from scratch.
    #[command(subcommand)]
    Tokenizer(cli::tokenizer::Command),
    /// Review drafts: attribution to the source, reviewers' decisions, the review log's check.
    #[command(subcommand)]
    Review(cli::review::Command),
}

#[derive(Subcommand)]
enum Debug {
    /// Write the last position's logits for a prompt as a .npy file (f32).
    Logits(LogitsArgs),
    /// Write one GGUF tensor, dequantized to f32, as a .npy file.
    Tensor(TensorArgs),
    /// Run an encoder-decoder model (T5, BART) on token ids and write its encoder output and
    /// the logits of each greedy step and of the same tokens in one pass, as .npy files in
    /// OUT; prints {"generated": [[ids]], "text": [...]}.
    Seq2seq(Seq2seqArgs),
    /// One forward and backward pass over a training file as one batch: the loss, the
    /// batch and every trainable parameter's gradient, as safetensors.
    TrainBatch(cli::finetune::GradArgs),
}

#[derive(Args)]
struct Seq2seqArgs {
    /// An HF model folder.
    model: PathBuf,
    /// Input token ids: a JSON list of lists.
    #[arg(long)]
    ids: String,
    #[arg(long, default_value_t = 8)]
    max_new_tokens: usize,
    /// Where the .npy files go (each replaced whole if there).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    load: cli::LoadArgs,
}

#[derive(Args)]
struct LogitsArgs {
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    load: cli::LoadArgs,
    /// The .npy file to write (whole, or not at all).
    #[arg(long)]
    out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
    /// Run the prompt's last token as a decode step (as generation runs each new token:
    /// on the CPU, through medgen's decode kernels), not in the prompt's pass.
    #[arg(long)]
    decode_last: bool,
}

#[derive(Args)]
struct TensorArgs {
    #[arg(long)]
    model: Option<PathBuf>,
    /// Tensor name, for example blk.0.attn_q.weight.
    name: String,
    /// The .npy file to write (whole, or not at all).
    #[arg(long)]
    out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct InputArgs {
    /// Prompt text.
    #[arg(long, conflicts_with = "input")]
    prompt: Option<String>,
    /// Read the prompt from a file (default: stdin).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Wrap the prompt as a user message in the model's chat template.
    #[arg(long)]
    chat: bool,
    /// System message for --chat.
    #[arg(long, requires = "chat")]
    system: Option<String>,
}

#[derive(Args)]
#[command(allow_negative_numbers = true)]
struct GenerateArgs {
    /// GGUF file or HF model folder (default: the packaged SmolLM2-135M-Instruct).
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    load: cli::LoadArgs,
    #[command(flatten)]
    decode: cli::DecodeArgs,
    /// Stop before this string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Include per-token log-probabilities in --json output.
    #[arg(long)]
    logprobs: bool,
    /// Beam search with this many beams (1: none). The text appears once the search ends.
    #[arg(long, default_value_t = 1)]
    num_beams: usize,
    /// Beam search scores sequences by log-probability / length^F.
    #[arg(long, default_value_t = 1.0)]
    length_penalty: f32,
    /// When beam search stops: true, false or never.
    #[arg(long, default_value = "false")]
    early_stopping: EarlyStopping,
    /// Never repeat an n-gram of this size (0: off).
    #[arg(long, default_value_t = 0)]
    no_repeat_ngram_size: usize,
    /// Sequences beam search returns (in --json's `sequences`).
    #[arg(long, default_value_t = 1)]
    num_return_sequences: usize,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    json: bool,
    /// Generate for every prompt of this file of JSON lines (a string, {"prompt": ...} or
    /// {"messages": [...]} each), in batches; writes one JSON result per line, in order.
    #[arg(long, conflicts_with_all = ["prompt", "input"])]
    batch_file: Option<PathBuf>,
    /// Prompts per batch with --batch-file.
    #[arg(long, default_value_t = medgen::prompt::DEFAULT_BATCH_SIZE, requires = "batch_file")]
    batch_size: usize,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() => {
            let text = e.to_string();
            eprintln!("{}", text.lines().next().unwrap_or("invalid arguments"));
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.to_string().replace('\n', " "));
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate(args) => generate(args),
        Command::Info { model, json } => {
            let m = Model::load(model.as_deref(), &LoadOptions::default())?;
            let info = m.info();
            if json {
                println!("{}", serde_json::to_string_pretty(info).unwrap_or_default());
            } else {
                let c = &info.config;
                println!("path:          {}", info.path.display());
                println!("format:        {}", info.format);
                println!("architecture:  {}", info.architecture);
                println!("parameters:    {}", info.parameters);
                let types: Vec<String> = info.tensor_types.iter().map(|(t, n)| format!("{t} x{n}")).collect();
                println!("tensor types:  {}", types.join(", "));
                println!("context:       {}", info.context_length);
                println!("vocabulary:    {}", info.vocab_size);
                match c {
                    NetworkConfig::Decoder(c) => {
                        println!("layers:        {} (hidden {}, heads {}/{} kv)", c.n_layers, c.hidden_size, c.n_heads, c.n_kv_heads)
                    }
                    NetworkConfig::Seq2Seq(medgen::Seq2SeqConfig { rnn: Some(r), .. }) => println!(
                        "layers:        {} encoder{} + {} decoder {:?} (hidden {}, embedding {}, {:?} attention{})",
                        r.encoder_layers,
                        if r.bidirectional { " (bidirectional)" } else { "" },
                        r.decoder_layers,
                        r.cell,
                        r.hidden_size,
                        r.embedding_size,
                        r.attention,
                        if r.input_feeding { ", input feeding" } else { "" }
                    ),
                    NetworkConfig::Seq2Seq(c) => println!(
                        "layers:        {} encoder + {} decoder (hidden {}, heads {} + {}, feed-forward {} + {})",
                        c.encoder_layers, c.decoder_layers, c.hidden_size, c.encoder_heads, c.decoder_heads, c.encoder_ffn, c.decoder_ffn
                    ),
                }
                println!("chat template: {}", if info.has_chat_template { "yes" } else { "no" });
            }
            Ok(())
        }
        Command::Tokenize { model, input, no_special } => {
            let path = resolve(model)?;
            let tok = medgen::Tokenizer::load(&path)?;
            let ids = match prompt_of(&input, read_prompt(&input)?) {
                Prompt::Chat { messages } => tok.encode_chat(&messages, true)?,
                Prompt::Text(text) => tok.encode(&text, !no_special)?,
                Prompt::Ids(ids) => ids,
            };
            let decoded = tok.decode(&ids, false)?;
            println!("{}", serde_json::json!({ "ids": ids, "decoded": decoded }));
            Ok(())
        }
        Command::Debug(Debug::Logits(a)) | Command::Logits(a) => logits(a),
        Command::Debug(Debug::Tensor(a)) | Command::Tensor(a) => {
            let (shape, values) = medgen::inspect::gguf_tensor(&resolve(a.model)?, &a.name)?;
            medgen::inspect::write_npy(&a.out, &shape, &values, a.force)
        }
        Command::Debug(Debug::Seq2seq(a)) => {
            let seqs: Vec<Vec<u32>> =
                serde_json::from_str(&a.ids).map_err(|e| MedgenError::InvalidArgument { name: "ids", reason: e.to_string() })?;
            let m = Model::load(Some(&a.model), &a.load.options()?)?;
            println!("{}", medgen::inspect::seq2seq_dump(&m, &seqs, a.max_new_tokens, &a.out)?);
            Ok(())
        }
        Command::Deid(args) => cli::deid::run(args),
        Command::Check(args) => cli::check::run(args),
        Command::Eval(args) => cli::eval::run(args),
        Command::Task(args) => cli::task::run(args),
        Command::Finetune(args) => cli::finetune::run(args),
        Command::Merge(args) => cli::finetune::merge(args),
        Command::Privacy(command) => cli::privacy::run(command),
        Command::Tokenizer(command) => cli::tokenizer::run(command),
        Command::Review(command) => cli::review::run(command),
        Command::Debug(Debug::TrainBatch(args)) => cli::finetune::gradients(args),
    }
}

fn resolve(model: Option<PathBuf>) -> Result<PathBuf> {
    model.map_or_else(Model::default_model_path, Ok)
}

fn read_prompt(input: &InputArgs) -> Result<String> {
    if let Some(p) = &input.prompt {
        return Ok(p.clone());
    }
    cli::read_text(input.input.as_deref())
}

/// The prompt `text` as the input options ask: plain, or a user turn (after any system
/// message) of the chat template with `--chat`.
fn prompt_of(input: &InputArgs, text: String) -> Prompt {
    if !input.chat {
        return Prompt::Text(text);
    }
    let mut messages = Vec::new();
    if let Some(s) = &input.system {
        messages.push(ChatMessage::new("system", s.clone()));
    }
    messages.push(ChatMessage::new("user", text));
    Prompt::from(messages)
}

fn logits(a: LogitsArgs) -> Result<()> {
    let prompt = prompt_of(&a.input, read_prompt(&a.input)?);
    prompt.check()?;
    let m = Model::load(a.model.as_deref(), &a.load.options()?)?;
    let ids = m.prompt_ids(&prompt)?;
    let logits = if a.decode_last { m.decoded_logits(&ids)? } else { m.next_token_logits(&ids)? };
    medgen::inspect::write_npy(&a.out, &[logits.len()], &logits, a.force)?;
    println!("{}", serde_json::json!({ "prompt_token_ids": ids }));
    Ok(())
}

fn generate(a: GenerateArgs) -> Result<()> {
    let cfg = GenerationConfig {
        stop: a.stop.clone(),
        logprobs: a.logprobs,
        num_beams: a.num_beams,
        length_penalty: a.length_penalty,
        early_stopping: a.early_stopping,
        num_return_sequences: a.num_return_sequences,
        no_repeat_ngram_size: a.no_repeat_ngram_size,
        ..a.decode.config()
    };
    cfg.validate()?;
    if let Some(file) = &a.batch_file {
        return generate_file(&a, file, &cfg);
    }
    let prompt = prompt_of(&a.input, read_prompt(&a.input)?);
    // Before loading the model, so that an empty prompt fails at once.
    prompt.check()?;
    let m = Model::load(a.model.as_deref(), &a.load.options()?)?;
    let generator = m.generator(m.prompt_ids(&prompt)?, &cfg)?;
    if !a.json {
        eprintln!("loaded {} in {:.2} s", m.info().path.display(), m.load_seconds());
    }
    let out = if a.json {
        generator.run(|_| ControlFlow::Continue(()))?
    } else {
        let mut stdout = std::io::stdout().lock();
        let g = generator.run(|piece| {
            // A closed stdout (for example `| head`) ends generation instead of failing.
            match stdout.write_all(piece.as_bytes()).and_then(|_| stdout.flush()) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            }
        })?;
        let _ = writeln!(stdout);
        g
    };
    if a.json {
        println!("{}", serde_json::to_string(&out).unwrap_or_default());
    } else {
        let t = &out.timings;
        eprintln!(
            "[{} prompt tokens at {:.1} tok/s, {} new tokens at {:.1} tok/s, finish: {}, seed {}]",
            out.prompt_token_ids.len(),
            t.prefill_tokens_per_s,
            out.token_ids.len(),
            t.decode_tokens_per_s,
            out.finish_reason.as_str(),
            out.seed
        );
    }
    Ok(())
}

/// `generate --batch-file`: every prompt is read and tokenized before the first batch runs,
/// so that a bad line fails at once; results are written as each batch finishes.
fn generate_file(a: &GenerateArgs, file: &Path, cfg: &GenerationConfig) -> Result<()> {
    medgen::prompt::check_batch_size(a.batch_size)?;
    let (lines, prompts): (Vec<usize>, Vec<Prompt>) = cli::batch::read(file)?
        .into_iter()
        .map(|(line, p)| (line, if let Prompt::Text(t) = p { prompt_of(&a.input, t) } else { p }))
        .unzip();
    let m = Model::load(a.model.as_deref(), &a.load.options()?)?;
    // Every prompt is tokenized before the first batch runs; a failure names its line.
    let ids = lines.iter().zip(&prompts).map(|(line, p)| {
        m.prompt_ids(p).map(Prompt::Ids).map_err(|e| MedgenError::InvalidArgument {
            name: "batch-file",
            reason: format!("{} line {line}: {e}", file.display()),
        })
    });
    let ids = ids.collect::<Result<Vec<_>>>()?;
    let mut stdout = std::io::stdout().lock();
    let mut failure = None;
    m.generate_prompts(&ids, cfg, a.batch_size, || ControlFlow::Continue(()), |out| {
        let line = serde_json::to_string(&out).unwrap_or_default();
        match writeln!(stdout, "{line}") {
            // A closed stdout (for example `| head`) ends the run, as it ends streaming.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ControlFlow::Break(()),
            Err(e) => {
                failure = Some(MedgenError::Io { path: "<stdout>".into(), source: e });
                ControlFlow::Break(())
            }
            Ok(()) => ControlFlow::Continue(()),
        }
    })?;
    failure.map_or(Ok(()), Err)
}
