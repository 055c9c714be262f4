//! `medgen generate --batch-file`: prompts as JSON lines in, results as JSON lines out.

use std::path::Path;

use medgen::{MedgenError, Prompt, Result};

/// Reads every prompt of a batch file (each line a [`Prompt`] as JSON) before anything runs,
/// so that a malformed or empty line fails the whole file at once, naming the line. Blank
/// lines are skipped; each prompt comes with its line number.
pub fn read(path: &Path) -> Result<Vec<(usize, Prompt)>> {
    let text = super::read_text(Some(path))?;
    let prompts = medgen::prompt::read_json_lines(&text).map_err(|(line, reason)| MedgenError::InvalidArgument {
        name: "batch-file",
        reason: format!("{} line {line}: {reason}", path.display()),
    })?;
    if prompts.is_empty() {
        return Err(MedgenError::InvalidArgument { name: "batch-file", reason: format!("{} holds no prompts", path.display()) });
    }
    Ok(prompts)
}
