//! Subcommands of the `medgen` command that live in their own files.

pub mod check;
pub mod deid;
pub mod eval;
pub mod task;

use std::io::Read;
use std::path::Path;

use medgen::{MedgenError, Result};

/// Reads UTF-8 text from a file, or from stdin when `path` is None.
pub fn read_text(path: Option<&Path>) -> Result<String> {
    let mut bytes = Vec::new();
    match path {
        Some(path) => bytes = std::fs::read(path).map_err(|e| MedgenError::Io { path: path.to_path_buf(), source: e })?,
        None => {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| MedgenError::Io { path: "<stdin>".into(), source: e })?;
        }
    }
    String::from_utf8(bytes).map_err(|e| MedgenError::InvalidArgument {
        name: "input",
        reason: format!("not valid UTF-8 (at byte {})", e.utf8_error().valid_up_to()),
    })
}
