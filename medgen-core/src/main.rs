//! The `medgen` command: generate text, describe a model, and dump tensors, logits and
//! token ids for checking medgen against other implementations.

mod cli;

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use medgen::formats::gguf::GgufFile;
use medgen::{ChatMessage, EarlyStopping, GenerationConfig, LoadOptions, MedgenError, Model, NetworkConfig, Result};

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
    /// Write the last position's logits for a prompt as a .npy file (f32).
    Logits {
        #[arg(long)]
        model: Option<PathBuf>,
        #[command(flatten)]
        input: InputArgs,
        #[command(flatten)]
        load: cli::LoadArgs,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write one GGUF tensor, dequantized to f32, as a .npy file.
    Tensor {
        #[arg(long)]
        model: Option<PathBuf>,
        /// Tensor name, for example blk.0.attn_q.weight.
        name: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Find and remove protected health information (PHI) in a note.
    Deid(cli::deid::Args),
    /// Check a draft against its source note: unsupported numbers and medications, negation flips.
    Check(cli::check::Args),
    /// Run a clinical task on a note: de-identify, prompt, generate, check, audit.
    Task(cli::task::Args),
    /// ROUGE-1/2/L/Lsum and BLEU of predictions against references.
    Eval(cli::eval::Args),
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
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    #[arg(long, default_value_t = 0)]
    min_new_tokens: usize,
    /// Always take the most likely token (the default unless a sampling option is given).
    #[arg(long, conflicts_with_all = ["temperature", "top_k", "top_p", "min_p"])]
    greedy: bool,
    /// Sample with this temperature.
    #[arg(long)]
    temperature: Option<f32>,
    /// Sample among the k most likely tokens (0: all).
    #[arg(long)]
    top_k: Option<usize>,
    /// Sample from the nucleus of this probability mass.
    #[arg(long)]
    top_p: Option<f32>,
    /// Drop tokens below this fraction of the most likely one's probability.
    #[arg(long)]
    min_p: Option<f32>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
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
    #[arg(long, default_value_t = 8, requires = "batch_file")]
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
            let text = read_prompt(&input)?;
            let ids = tok.encode(&text, !no_special)?;
            let decoded = tok.decode(&ids, false)?;
            println!("{}", serde_json::json!({ "ids": ids, "decoded": decoded }));
            Ok(())
        }
        Command::Logits { model, input, load, out } => {
            let m = Model::load(model.as_deref(), &load.options()?)?;
            let ids = prompt_ids(&m, &input)?;
            let logits = m.next_token_logits(&ids)?;
            write_npy(&out, &[logits.len()], &logits)?;
            println!("{}", serde_json::json!({ "prompt_token_ids": ids }));
            Ok(())
        }
        Command::Tensor { model, name, out } => {
            let file = GgufFile::open(resolve(model)?)?;
            let (values, info) = file.dequantize(&name)?;
            let shape: Vec<usize> = info.dims.iter().rev().copied().collect();
            write_npy(&out, &shape, &values)
        }
        Command::Deid(args) => cli::deid::run(args),
        Command::Check(args) => cli::check::run(args),
        Command::Eval(args) => cli::eval::run(args),
        Command::Task(args) => cli::task::run(args),
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

fn prompt_ids(m: &Model, input: &InputArgs) -> Result<Vec<u32>> {
    prompt_ids_of(m, input, read_prompt(input)?)
}

fn prompt_ids_of(m: &Model, input: &InputArgs, text: String) -> Result<Vec<u32>> {
    if text.trim().is_empty() {
        return Err(MedgenError::InvalidArgument { name: "prompt", reason: "the prompt is empty".into() });
    }
    if !input.chat {
        return m.tokenize(&text);
    }
    let mut messages = Vec::new();
    if let Some(s) = &input.system {
        messages.push(ChatMessage::new("system", s.clone()));
    }
    messages.push(ChatMessage::new("user", text));
    m.chat_ids(&messages)
}

fn generate(a: GenerateArgs) -> Result<()> {
    let sampling = a.temperature.is_some() || a.top_k.is_some() || a.top_p.is_some() || a.min_p.is_some();
    let defaults = GenerationConfig::default();
    let cfg = GenerationConfig {
        max_new_tokens: a.max_new_tokens,
        min_new_tokens: a.min_new_tokens,
        do_sample: sampling && !a.greedy,
        temperature: a.temperature.unwrap_or(defaults.temperature),
        top_k: a.top_k.unwrap_or(defaults.top_k),
        top_p: a.top_p.unwrap_or(defaults.top_p),
        min_p: a.min_p.unwrap_or(defaults.min_p),
        repetition_penalty: a.repetition_penalty,
        seed: a.seed,
        stop: a.stop.clone(),
        logprobs: a.logprobs,
        num_beams: a.num_beams,
        length_penalty: a.length_penalty,
        early_stopping: a.early_stopping,
        num_return_sequences: a.num_return_sequences,
        no_repeat_ngram_size: a.no_repeat_ngram_size,
    };
    cfg.validate()?;
    if let Some(file) = &a.batch_file {
        return generate_file(&a, file, &cfg);
    }
    let text = read_prompt(&a.input)?;
    let m = Model::load(a.model.as_deref(), &a.load.options()?)?;
    let ids = prompt_ids_of(&m, &a.input, text)?;
    let generator = m.generator(ids, &cfg)?;
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
    if a.batch_size == 0 {
        return Err(MedgenError::InvalidArgument { name: "batch-size", reason: "must be at least 1".into() });
    }
    let prompts = cli::batch::read(file)?;
    let m = Model::load(a.model.as_deref(), &a.load.options()?)?;
    let mut ids = Vec::with_capacity(prompts.len());
    for (line, prompt) in prompts {
        let tokens = match prompt {
            cli::batch::Prompt::Text(text) | cli::batch::Prompt::Object { prompt: text } => prompt_ids_of(&m, &a.input, text),
            cli::batch::Prompt::Chat { messages } => m.chat_ids(&messages),
        };
        ids.push(tokens.map_err(|e| MedgenError::InvalidArgument {
            name: "batch-file",
            reason: format!("{} line {line}: {e}", file.display()),
        })?);
    }
    let mut stdout = std::io::stdout().lock();
    for batch in ids.chunks(a.batch_size) {
        for out in m.generate_batch_ids(batch.to_vec(), cfg, || ControlFlow::Continue(()))? {
            let line = serde_json::to_string(&out).unwrap_or_default();
            match writeln!(stdout, "{line}") {
                // A closed stdout (for example `| head`) ends the run, as it ends streaming.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(MedgenError::Io { path: "<stdout>".into(), source: e }),
                Ok(()) => {}
            }
        }
    }
    Ok(())
}

/// Writes a little-endian f32 array in NumPy's .npy format (version 1.0).
fn write_npy(path: &Path, shape: &[usize], values: &[f32]) -> Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + values.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).map_err(|e| MedgenError::Io { path: path.to_path_buf(), source: e })
}
