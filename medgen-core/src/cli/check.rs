//! `medgen check`: checks a generated draft against its source note.

use std::path::{Path, PathBuf};

use medgen::checks::{check, Finding};
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
    let text = super::read_text(Some(path))?;
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
    if args.json {
        #[derive(serde::Serialize)]
        struct Report<'a> {
            findings: &'a [Finding],
        }
        let json = serde_json::to_string_pretty(&Report { findings: &findings })
            .map_err(|e| MedgenError::Unsupported(format!("cannot write the findings as JSON: {e}")))?;
        println!("{json}");
    } else if findings.is_empty() {
        println!("no findings");
    } else {
        for f in &findings {
            println!("{}..{}\t{}\t{:?}\t{}", f.start, f.end, f.kind.as_str(), f.text, f.detail);
        }
    }
    Ok(())
}
