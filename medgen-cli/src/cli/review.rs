//! `medgen review`: attribution of a draft to its source, and the review log's decisions and
//! check.

use std::path::PathBuf;

use medgen::review::log::{self, Decision};
use medgen::{MedgenError, Result};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Link each sentence of a draft to the source spans that support it (JSON lines).
    Attribute {
        /// The source note.
        #[arg(long)]
        source: PathBuf,
        /// The draft.
        #[arg(long)]
        draft: PathBuf,
        /// Add the model's own signal: the task that wrote the draft (the model reads the
        /// draft after this task's prompt, with and without the source).
        #[arg(long)]
        task: Option<String>,
        /// The model for `--task` (default: the default model).
        #[arg(long, requires = "task")]
        model: Option<PathBuf>,
    },
    /// Log a reviewer's decision on a draft of a review log.
    Decide {
        /// The review log (`medgen task --review-log`).
        #[arg(long)]
        log: PathBuf,
        /// The draft's id in the log.
        #[arg(long)]
        draft_id: String,
        /// accept, edit or reject.
        #[arg(long)]
        decision: String,
        /// The reviewer's identifier (a staff id, not a name).
        #[arg(long)]
        reviewer: String,
        /// The final text, as accepted or edited (not with reject); only its SHA-256 is logged.
        #[arg(long)]
        text: Option<PathBuf>,
    },
    /// Serve a folder of review pages on 127.0.0.1; their buttons log the decisions.
    Serve {
        /// The folder of pages (`medgen task --html DIR/NAME.html --review-log LOG`).
        #[arg(long)]
        dir: PathBuf,
        /// The review log the pages' drafts are in.
        #[arg(long)]
        log: PathBuf,
        /// The port (0: any free one; the address is printed).
        #[arg(long, default_value_t = 8765)]
        port: u16,
    },
    /// Check a review log's hash chain; prints its drafts and decisions.
    Verify {
        #[arg(long)]
        log: PathBuf,
    },
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Attribute { source, draft, task, model } => {
            let (source, draft) = (super::read_text(Some(&source))?, super::read_text(Some(&draft))?);
            let units = match task {
                None => medgen::review::attribute(&source, &draft)?,
                Some(task) => {
                    let task = medgen::tasks::get(&task)?;
                    let model = medgen::Model::load(model.as_deref(), &Default::default())?;
                    let findings = medgen::pipeline::check_draft(&source, &draft);
                    medgen::review::attribute_with_model(&model, task, &source, &draft, &findings)?
                }
            };
            for unit in units {
                println!("{}", serde_json::to_string(&unit).unwrap_or_default());
            }
            Ok(())
        }
        Command::Decide { log, draft_id, decision, reviewer, text } => {
            let decision: Decision = decision.parse()?;
            let text = text.as_deref().map(|p| super::read_text(Some(p))).transpose()?;
            let review = log::append_review(&log, &draft_id, decision, &reviewer, text.as_deref())?;
            println!("{}", serde_json::to_string(&review).unwrap_or_default());
            Ok(())
        }
        Command::Serve { dir, log, port } => super::serve::serve(&dir, &log, port),
        Command::Verify { log } => {
            if !log.exists() {
                return Err(MedgenError::InvalidArgument { name: "log", reason: format!("{} does not exist", log.display()) });
            }
            let summary = log::verify(&log)?;
            println!("{}", serde_json::to_string(&summary).unwrap_or_default());
            Ok(())
        }
    }
}
