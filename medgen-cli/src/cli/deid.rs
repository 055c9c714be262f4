//! `medgen deid`: find and replace protected health information in a note.

use std::io::Write;
use std::path::PathBuf;

use medgen::deid::{self, Category, DeidConfig, Operator};
use medgen::{MedgenError, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Read the note from a file (default: stdin).
    #[arg(long)]
    input: Option<PathBuf>,
    /// How identifiers are replaced: placeholder ([NAME_1]), redact ([NAME]), mask (****) or
    /// shift-dates (dates move by --shift-days or a shift derived from --shift-key; the rest get
    /// placeholders).
    #[arg(long, default_value = "placeholder")]
    mode: String,
    /// The operator for one category, overriding --mode, e.g. DATE=shift-dates or NAME=redact
    /// (repeatable).
    #[arg(long = "category-mode", value_name = "CATEGORY=MODE")]
    category_mode: Vec<String>,
    /// Shift dates by this many days (negative: earlier).
    #[arg(long, allow_negative_numbers = true)]
    shift_days: Option<i64>,
    /// Derive the date shift from this key (a patient id, say): the same key, the same shift.
    #[arg(long)]
    shift_key: Option<String>,
    /// Print one JSON object: text, entities (character offsets into the input) and mapping.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let mut config = DeidConfig {
        operator: args.mode.parse()?,
        date_shift_days: args.shift_days,
        date_shift_key: args.shift_key,
        ..Default::default()
    };
    for pair in &args.category_mode {
        let (category, mode) = pair.split_once('=').ok_or_else(|| MedgenError::InvalidArgument {
            name: "category-mode",
            reason: format!("{pair:?} is not CATEGORY=MODE"),
        })?;
        config.per_category.insert(category.parse::<Category>()?, mode.parse::<Operator>()?);
    }
    let text = super::read_note(args.input.as_deref())?;
    let out = deid::deidentify(&text, &config)?;
    let mut stdout = std::io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer(&mut stdout, &out).map_err(std::io::Error::from).and_then(|()| writeln!(stdout))
    } else {
        stdout.write_all(out.text.as_bytes())
    };
    written.and_then(|()| stdout.flush()).map_err(|e| MedgenError::Io { path: "<stdout>".into(), source: e })
}
