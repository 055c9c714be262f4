//! `medgen check`: checks a generated draft against its source note.

use std::io::Write;
use std::path::{Path, PathBuf};

use medgen::checks::Finding;
use medgen::pipeline::check_draft as check;
use medgen::{MedgenError, Result};

/// Arguments of `medgen check`.
#[derive(clap::Args)]
pub struct Args {
    /// The source note the draft was generated from (UTF-8 text).
    #[arg(long)]
    source: PathBuf,
    /// The generated draft to check (UTF-8 text).
    #[arg(long)]
    output: PathBuf,
    /// Print `{"findings": [{"kind", "start", "end", "text", "detail"}]}`; offsets count
    /// characters of the draft.
    #[arg(long)]
    json: bool,
}

/// Reads a file that must hold some text.
fn read_nonempty(path: &Path, name: &'static str) -> Result<String> {
    let text = super::read_text(Some(path)).map_err(|e| match e {
        MedgenError::InvalidArgument { reason, .. } => MedgenError::InvalidArgument { name, reason },
        other => other,
    })?;
    if text.trim().is_empty() {
        return Err(MedgenError::InvalidArgument { name, reason: format!("{} is empty", path.display()) });
    }
    Ok(text)
}

/// Prints the findings of the draft against its source, as JSON with `--json`, else one line
/// each (`start..end`, kind, text, detail). An empty file is an invalid argument.
pub fn run(args: Args) -> Result<()> {
    let source = read_nonempty(&args.source, "source")?;
    let output = read_nonempty(&args.output, "output")?;
    let findings = check(&source, &output);
    let mut text = String::new();
    if args.json {
        #[derive(serde::Serialize)]
        struct Report<'a> {
            findings: &'a [Finding],
        }
        text = serde_json::to_string_pretty(&Report { findings: &findings })
            .map_err(|e| MedgenError::Unsupported(format!("cannot write the findings as JSON: {e}")))?;
        text.push('\n');
    } else if findings.is_empty() {
        text.push_str("no findings\n");
    } else {
        for f in &findings {
            text.push_str(&format!("{}..{}\t{}\t{:?}\t{}\n", f.start, f.end, f.kind.as_str(), f.text, f.detail));
        }
    }
    // A reader that stops early (`| head`) is not an error.
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(MedgenError::Io { path: "<stdout>".into(), source: e })
        }
        _ => Ok(()),
    }
}
