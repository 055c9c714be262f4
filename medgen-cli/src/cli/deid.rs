//! `medgen deid`: find and replace protected health information in a note.

use std::io::Write;
use std::path::PathBuf;

use medgen::deid::tagger::TaggerConfig;
use medgen::deid::tagger_train::{read_annotated, train_tagger, TaggerTraining};
use medgen::deid::{self, Category, DeidConfig, Operator};
use medgen::{MedgenError, Result};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
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
    /// rules (patterns, word lists, cues: fastest), model (the learned tagger) or ensemble
    /// (both, united).
    #[arg(long, default_value = "ensemble")]
    engine: String,
    /// A tagger file (from `medgen deid train`) instead of the built-in one.
    #[arg(long)]
    tagger: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Train the learned PHI tagger on annotated notes (JSON lines: text, entities with
    /// character offsets and categories); write one .safetensors file.
    Train(TrainArgs),
}

#[derive(clap::Args)]
struct TrainArgs {
    #[arg(long)]
    train: PathBuf,
    /// Notes to keep the best epoch and choose the ensemble's thresholds on.
    #[arg(long)]
    val: Option<PathBuf>,
    #[arg(long)]
    out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    #[arg(long)]
    max_steps: Option<u64>,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Hash buckets of the feature embedding.
    #[arg(long, default_value_t = 1 << 16)]
    buckets: usize,
    #[arg(long, default_value_t = 48)]
    dim: usize,
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// One convolutional block per dilation.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    dilations: Vec<usize>,
}

fn train(a: TrainArgs) -> Result<()> {
    let train = read_annotated(&a.train)?;
    let val = a.val.as_deref().map(read_annotated).transpose()?.unwrap_or_default();
    let opts = TaggerTraining {
        config: TaggerConfig { buckets: a.buckets, dim: a.dim, hidden: a.hidden, dilations: a.dilations },
        epochs: a.epochs,
        max_steps: a.max_steps,
        batch_size: a.batch_size,
        lr: a.lr,
        seed: a.seed,
        ..Default::default()
    };
    let summary = train_tagger(&train, &val, &opts, &a.out, a.force, |e| eprintln!("{e}"), || false)?;
    println!("{summary}");
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    if let Some(Command::Train(a)) = args.command {
        return train(a);
    }
    let mut config = DeidConfig {
        operator: args.mode.parse()?,
        date_shift_days: args.shift_days,
        date_shift_key: args.shift_key,
        engine: args.engine.parse()?,
        tagger: args.tagger,
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
