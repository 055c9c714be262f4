//! Dumps for checking medgen against other implementations (`medgen debug`): what the
//! tests compare with transformers. Not part of the documented API.

use std::path::Path;

use tch::{Kind, Tensor};

use crate::error::{MedgenError, Result};
use crate::formats::gguf::GgufFile;
use crate::Model;

pub use crate::models::backends::Seq2SeqModel;
pub use crate::models::seq2seq::Seq2SeqCache;

/// GGUF tensor `name` of the file at `path`, dequantized to f32, with its shape (outermost
/// dimension first, as NumPy orders it).
pub fn gguf_tensor(path: &Path, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    let file = GgufFile::open(path)?;
    let (values, info) = file.dequantize(name)?;
    Ok((info.dims.iter().rev().copied().collect(), values))
}

/// Writes `bytes` to `path` whole or not at all: into a temporary file beside it, synced,
/// then moved into place. An existing file is replaced only with `overwrite`; without it the
/// write is an `InvalidArgument` naming the file, and the file is untouched.
pub fn write_file(path: &Path, bytes: &[u8], overwrite: bool) -> Result<()> {
    use std::io::Write;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| MedgenError::io(p, e)
    };
    let exists = || MedgenError::invalid("out", format!("{} exists: pass --force (overwrite) to replace it", path.display()));
    if !overwrite && path.exists() {
        return Err(exists());
    }
    let name = path.file_name().ok_or_else(|| MedgenError::invalid("out", format!("{} names no file", path.display())))?;
    let tmp = path.with_file_name(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
    let placed = written.map_err(io(&tmp)).and_then(|()| {
        if overwrite {
            return std::fs::rename(&tmp, path).map_err(io(path));
        }
        // A hard link fails if the name exists: no other writer is clobbered between the
        // check above and here.
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists()),
            Err(e) => Err(io(path)(e)),
        }
    });
    let _ = std::fs::remove_file(&tmp);
    placed
}

/// Writes a little-endian f32 array in NumPy's .npy format (version 1.0), as [`write_file`].
pub fn write_npy(path: &Path, shape: &[usize], values: &[f32], overwrite: bool) -> Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    header.push_str(&" ".repeat((64 - (10 + header.len() + 1) % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + values.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    values.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
    write_file(path, &bytes, overwrite)
}

fn write_tensor(path: &Path, t: &Tensor) -> Result<()> {
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let values = Vec::<f32>::try_from(t.f_to_kind(Kind::Float)?.f_to_device(tch::Device::Cpu)?.f_flatten(0, -1)?)?;
    write_npy(path, &shape, &values, true)
}

/// Runs an encoder-decoder model on token-id sequences (padded on the right) and writes to
/// `out`: `encoder.npy` `[b, s, hidden]`, `step_logits.npy` (each greedy step) and
/// `full_logits.npy` (the same decoder tokens in one pass), `[b, steps, vocab]` each. Greedy
/// decoding stops at EOS (a finished sequence continues with the pad token, as transformers'
/// `generate` pads it) or after `max_new_tokens`. Returns the generated ids and their text.
pub fn seq2seq_dump(loaded: &Model, seqs: &[Vec<u32>], max_new_tokens: usize, out: &Path) -> Result<serde_json::Value> {
    if max_new_tokens == 0 {
        return Err(MedgenError::InvalidArgument { name: "max_new_tokens", reason: "must be at least 1".into() });
    }
    let model = loaded
        .seq2seq()
        .ok_or_else(|| MedgenError::Unsupported(format!("{} is not an encoder-decoder model", loaded.info().path.display())))?;
    let limit = model.config().context_length;
    if max_new_tokens > limit {
        // The decoder cache is allocated for every step up front: bound it as generation does.
        return Err(MedgenError::context(max_new_tokens, limit, "max_new_tokens"));
    }
    let (ids, mask) = model.batch(seqs)?;
    let enc = model.encode(&ids, &mask)?;
    std::fs::create_dir_all(out).map_err(|e| MedgenError::Io { path: out.to_path_buf(), source: e })?;
    write_tensor(&out.join("encoder.npy"), &enc)?;
    let cfg = model.config();
    let (b, n) = (seqs.len(), max_new_tokens);
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
    write_tensor(&out.join("step_logits.npy"), &Tensor::f_cat(&steps, 1)?)?;

    // The same decoder inputs in one pass: the multi-position path (causal mask, relative
    // positions past the first) on a fresh cache.
    let mut inputs = Vec::with_capacity(b * steps.len());
    for g in &generated {
        inputs.push(cfg.decoder_start_token_id as i64);
        inputs.extend(&g[..g.len() - 1]);
    }
    let inputs = Tensor::f_from_slice(&inputs)?.f_view([b as i64, steps.len() as i64])?.f_to_device(model.device())?;
    let full = model.decode(&inputs, &enc, &mask, &mut model.new_cache(b, n)?)?;
    write_tensor(&out.join("full_logits.npy"), &full)?;

    let text = generated
        .iter()
        .map(|g| loaded.tokenizer().decode_generated(&g.iter().map(|&t| t as u32).collect::<Vec<_>>(), true))
        .collect::<Result<Vec<_>>>()?;
    Ok(serde_json::json!({ "generated": generated, "text": text }))
}
