//! The LoRA adapter medgen ships for its tasks on the default model: trained by
//! `make task-adapter` (synthetic note → draft pairs of `examples/finetune/make_task_data.py`,
//! `medgen finetune --method lora`), embedded in the library so that every surface has it.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::error::{MedgenError, Result};

const CONFIG: &[u8] = include_bytes!("../../adapters/smollm2-tasks/adapter_config.json");
const WEIGHTS: &[u8] = include_bytes!("../../adapters/smollm2-tasks/adapter_model.safetensors");

/// The folder of the tasks' adapter for the default model (SmolLM2-135M-Instruct), written
/// once into medgen's cache (`$MEDGEN_CACHE_DIR`, else `$XDG_CACHE_HOME/medgen`, else
/// `~/.cache/medgen`) from the copy inside the library. Pass it as `LoadOptions::adapter`
/// with the default model; it refuses any other base (its `adapter_config.json` records the
/// default model's SHA-256).
pub fn default_adapter_path() -> Result<PathBuf> {
    let hash = format!("{:x}", Sha256::digest(WEIGHTS));
    let dir = cache_dir().join("adapters").join(format!("smollm2-tasks-{}", &hash[..16]));
    let weights = dir.join("adapter_model.safetensors");
    if std::fs::metadata(&weights).is_ok_and(|m| m.len() == WEIGHTS.len() as u64) {
        return Ok(dir);
    }
    // Written beside, then renamed into place: another process may be doing the same.
    let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
    let io = |p: &PathBuf| { let p = p.clone(); move |e| MedgenError::io(p, e) };
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    std::fs::write(tmp.join("adapter_config.json"), CONFIG).map_err(io(&tmp))?;
    std::fs::write(tmp.join("adapter_model.safetensors"), WEIGHTS).map_err(io(&tmp))?;
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another process won the race: its copy is the same bytes.
        Err(_) if weights.exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(MedgenError::io(&dir, e)),
    }
}

fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MEDGEN_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("medgen");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache").join("medgen"),
        None => std::env::temp_dir().join("medgen-cache"),
    }
}
