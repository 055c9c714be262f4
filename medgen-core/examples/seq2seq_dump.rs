//! Runs an encoder-decoder model (T5, BART) on token ids and writes what the tests compare
//! with transformers: the encoder output, the logits of each greedy step, and the logits of
//! the same decoder tokens run in one pass.
//!
//! ```text
//! cargo run --release --example seq2seq_dump -- MODEL_DIR --ids '[[5, 6, 1], [7, 1]]' \
//!     --max-new-tokens 8 --out DIR
//! ```
//! writes `DIR/encoder.npy` `[b, s, hidden]`, `DIR/step_logits.npy` and `DIR/full_logits.npy`
//! `[b, steps, vocab]`, and prints `{"generated": [[ids]], "text": [..]}`. Sequences are padded
//! on the right; greedy decoding stops at EOS (a finished sequence continues with the pad
//! token, as transformers' `generate` pads it) or after `--max-new-tokens`.

use std::path::{Path, PathBuf};

use clap::Parser;
use medgen::{LoadOptions, MedgenError, Model, Result};
use tch::{Kind, Tensor};

#[derive(Parser)]
struct Args {
    /// An HF model folder.
    model: PathBuf,
    /// Input token ids: a JSON list of lists.
    #[arg(long)]
    ids: String,
    #[arg(long, default_value_t = 8)]
    max_new_tokens: usize,
    /// Where the .npy files go.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, default_value = "f32")]
    dtype: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let opts = LoadOptions { device: args.device.parse()?, dtype: args.dtype.parse()?, threads: None };
    if args.max_new_tokens == 0 {
        return Err(MedgenError::InvalidArgument { name: "max_new_tokens", reason: "must be at least 1".into() });
    }
    let loaded = Model::load(Some(&args.model), &opts)?;
    let model = loaded
        .seq2seq()
        .ok_or_else(|| MedgenError::Unsupported(format!("{} is not an encoder-decoder model", args.model.display())))?;
    let seqs: Vec<Vec<u32>> =
        serde_json::from_str(&args.ids).map_err(|e| MedgenError::InvalidArgument { name: "ids", reason: e.to_string() })?;
    let (ids, mask) = model.batch(&seqs)?;
    let enc = model.encode(&ids, &mask)?;
    std::fs::create_dir_all(&args.out).map_err(|e| MedgenError::Io { path: args.out.clone(), source: e })?;
    write_npy(&args.out.join("encoder.npy"), &enc)?;

    let cfg = model.config();
    let (b, n) = (seqs.len(), args.max_new_tokens);
    let pad = cfg.pad_token_id.unwrap_or(0) as i64;
    let mut cache = model.new_cache(b, n)?;
    let mut tokens = vec![cfg.decoder_start_token_id as i64; b];
    let mut generated: Vec<Vec<i64>> = vec![Vec::new(); b];
    let mut finished = vec![false; b];
    let mut steps = Vec::new();
    while steps.len() < n && !finished.iter().all(|&f| f) {
        let input = Tensor::f_from_slice(&tokens)?.f_view([b as i64, 1])?.f_to_device(model.device())?;
        let logits = model.decode(&input, &enc, &mask, &mut cache)?;
        let next = Vec::<i64>::try_from(logits.f_argmax(-1, false)?.f_reshape([b as i64])?.f_to_device(tch::Device::Cpu)?)?;
        for i in 0..b {
            tokens[i] = if finished[i] { pad } else { next[i] };
            finished[i] |= cfg.eos_token_id.is_some_and(|e| e as i64 == tokens[i]);
            generated[i].push(tokens[i]);
        }
        steps.push(logits);
    }
    write_npy(&args.out.join("step_logits.npy"), &Tensor::f_cat(&steps, 1)?)?;

    // The same decoder inputs in one pass: the multi-position path (causal mask, relative
    // positions past the first) on a fresh cache.
    let mut inputs = Vec::with_capacity(b * steps.len());
    for g in &generated {
        inputs.push(cfg.decoder_start_token_id as i64);
        inputs.extend(&g[..g.len() - 1]);
    }
    let inputs = Tensor::f_from_slice(&inputs)?.f_view([b as i64, steps.len() as i64])?.f_to_device(model.device())?;
    let full = model.decode(&inputs, &enc, &mask, &mut model.new_cache(b, n)?)?;
    write_npy(&args.out.join("full_logits.npy"), &full)?;

    let text = generated
        .iter()
        .map(|g| loaded.tokenizer().decode(&g.iter().map(|&t| t as u32).collect::<Vec<_>>(), true))
        .collect::<Result<Vec<_>>>()?;
    println!("{}", serde_json::json!({ "generated": generated, "text": text }));
    Ok(())
}

/// A tensor as a little-endian f32 `.npy` file.
fn write_npy(path: &Path, t: &Tensor) -> Result<()> {
    let shape: Vec<String> = t.size().iter().map(|d| d.to_string()).collect();
    let values = Vec::<f32>::try_from(t.f_to_kind(Kind::Float)?.f_to_device(tch::Device::Cpu)?.f_flatten(0, -1)?)?;
    let shape = if shape.len() == 1 { format!("({},)", shape[0]) } else { format!("({})", shape.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    header.push_str(&" ".repeat((64 - (10 + header.len() + 1) % 64) % 64));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    values.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
    std::fs::write(path, bytes).map_err(|e| MedgenError::Io { path: path.to_path_buf(), source: e })
}
