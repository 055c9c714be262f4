//! Subcommands of the `medgen` command that live in their own files.

pub mod batch;
pub mod check;
pub mod deid;
pub mod eval;
pub mod finetune;
pub mod privacy;
pub mod review;
pub mod serve;
pub mod task;
pub mod tokenizer;

use std::io::Read;
use std::path::{Path, PathBuf};

use medgen::{GenerationConfig, LoadOptions, MedgenError, Result};

/// The most bytes one input file or stdin may hold: far past any note, prompt or batch file,
/// and short of what an endless stream (`/dev/zero`, `yes`) would take before memory ran out.
const MAX_INPUT: u64 = 1 << 30;

/// The bytes of a file, or of stdin when `path` is None, with the name to report them by; with
/// `stop_at_nul`, reading stops after the first chunk that holds a NUL byte (the caller
/// refuses it as binary without reading the rest).
fn read_bytes(path: Option<&Path>, stop_at_nul: bool) -> Result<(PathBuf, Vec<u8>)> {
    let name = path.map_or_else(|| PathBuf::from("<stdin>"), Path::to_path_buf);
    let io = |e| MedgenError::Io { path: name.clone(), source: e };
    let mut reader: Box<dyn Read> = match path {
        Some(p) => Box::new(std::fs::File::open(p).map_err(io)?),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        bytes.extend_from_slice(&chunk[..n]);
        if stop_at_nul && chunk[..n].contains(&0) {
            break;
        }
        if bytes.len() as u64 > MAX_INPUT {
            let reason = format!("{} holds more than {} MiB", name.display(), MAX_INPUT >> 20);
            return Err(MedgenError::InvalidArgument { name: "input", reason });
        }
    }
    Ok((name, bytes))
}

/// Reads UTF-8 text from a file, or from stdin when `path` is None.
pub fn read_text(path: Option<&Path>) -> Result<String> {
    let (name, bytes) = read_bytes(path, false)?;
    let text = String::from_utf8(bytes).map_err(|e| MedgenError::InvalidArgument {
        name: "input",
        reason: format!("{} is not valid UTF-8 (at byte {})", name.display(), e.utf8_error().valid_up_to()),
    })?;
    Ok(without_bom(text))
}

/// The text without the byte-order mark that Windows editors write first: never content, and a
/// JSON-lines file starting with one would not read as JSON.
fn without_bom(mut text: String) -> String {
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    text
}

/// Reads a clinical note: UTF-8 text that is not empty, refusing binary files (a NUL byte)
/// with a message that says so rather than one about UTF-8.
pub fn read_note(path: Option<&Path>) -> Result<String> {
    let (name, bytes) = read_bytes(path, true)?;
    let invalid = |reason: String| MedgenError::InvalidArgument { name: "input", reason };
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(invalid(format!(
            "{} looks like a binary file (NUL byte at offset {at}), not a text note",
            name.display()
        )));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        invalid(format!("{} is not valid UTF-8 (at byte {})", name.display(), e.utf8_error().valid_up_to()))
    })?;
    let text = without_bom(text);
    if text.trim().is_empty() {
        return Err(invalid("the note is empty".into()));
    }
    Ok(text)
}

/// Where and how a model is loaded.
#[derive(clap::Args)]
pub struct LoadArgs {
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// CPU threads.
    #[arg(long)]
    threads: Option<usize>,
    /// A LoRA adapter folder to run with the model (as `medgen finetune --method lora` writes it).
    #[arg(long)]
    adapter: Option<std::path::PathBuf>,
    /// CPU decode steps multiply GGUF blocks (Q4_0 to Q8_0, Q2_K to Q6_K) by activations quantized to
    /// 8 bits, in integers, as llama.cpp does: faster; logits about as far from f32 as llama.cpp's.
    #[arg(long)]
    int8_activations: bool,
    /// Quantize the linear layers' weights to GGUF blocks at load (q8_0 or q4_0) for the CPU
    /// decode kernels: for HF models, and GGUF weights in blocks the kernels do not read.
    #[arg(long)]
    quantize: Option<String>,
}

impl LoadArgs {
    pub fn options(&self) -> Result<LoadOptions> {
        Ok(LoadOptions {
            device: self.device.parse()?,
            dtype: self.dtype.parse()?,
            threads: self.threads,
            adapter: self.adapter.clone(),
            int8_activations: self.int8_activations,
            quantize: self.quantize.as_deref().map(str::parse).transpose()?,
        })
    }
}

/// The decoding options `generate` and `task` share. Decoding is greedy unless a sampling
/// option is given (and `--greedy` is not).
#[derive(clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct DecodeArgs {
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
}

impl DecodeArgs {
    /// These options over the defaults.
    pub fn config(&self) -> GenerationConfig {
        let d = GenerationConfig::default();
        let sampling = self.temperature.is_some() || self.top_k.is_some() || self.top_p.is_some() || self.min_p.is_some();
        GenerationConfig {
            max_new_tokens: self.max_new_tokens,
            min_new_tokens: self.min_new_tokens,
            do_sample: sampling && !self.greedy,
            temperature: self.temperature.unwrap_or(d.temperature),
            top_k: self.top_k.unwrap_or(d.top_k),
            top_p: self.top_p.unwrap_or(d.top_p),
            min_p: self.min_p.unwrap_or(d.min_p),
            repetition_penalty: self.repetition_penalty,
            seed: self.seed,
            ..d
        }
    }
}
