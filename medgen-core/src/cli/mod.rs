//! Subcommands of the `medgen` command that live in their own files.

pub mod batch;
pub mod check;
pub mod deid;
pub mod eval;
pub mod task;

use std::io::Read;
use std::path::{Path, PathBuf};

use medgen::{LoadOptions, MedgenError, Result};

/// The bytes of a file, or of stdin when `path` is None, with the name to report them by.
fn read_bytes(path: Option<&Path>) -> Result<(PathBuf, Vec<u8>)> {
    let mut bytes = Vec::new();
    let (name, read) = match path {
        Some(p) => (p.to_path_buf(), std::fs::read(p).map(|b| bytes = b)),
        None => (PathBuf::from("<stdin>"), std::io::stdin().read_to_end(&mut bytes).map(|_| ())),
    };
    read.map_err(|e| MedgenError::Io { path: name.clone(), source: e })?;
    Ok((name, bytes))
}

/// Reads UTF-8 text from a file, or from stdin when `path` is None.
pub fn read_text(path: Option<&Path>) -> Result<String> {
    let (_, bytes) = read_bytes(path)?;
    String::from_utf8(bytes).map_err(|e| MedgenError::InvalidArgument {
        name: "input",
        reason: format!("not valid UTF-8 (at byte {})", e.utf8_error().valid_up_to()),
    })
}

/// Reads a clinical note: UTF-8 text that is not empty, refusing binary files (a NUL byte)
/// with a message that says so rather than one about UTF-8.
pub fn read_note(path: Option<&Path>) -> Result<String> {
    let (name, bytes) = read_bytes(path)?;
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
}

impl LoadArgs {
    pub fn options(&self) -> Result<LoadOptions> {
        Ok(LoadOptions { device: self.device.parse()?, dtype: self.dtype.parse()?, threads: self.threads })
    }
}
