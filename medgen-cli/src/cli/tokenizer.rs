//! `medgen tokenizer train`: a vocabulary learned from the data, for a model trained from
//! scratch (`medgen finetune --from-scratch rnn --tokenizer FILE`).

use std::path::PathBuf;

use medgen::train::scratch::{self, VocabModel};
use medgen::{MedgenError, Result};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Learn a BPE or WordPiece tokenizer from text files or training data; write tokenizer.json.
    Train {
        /// Text files (one text a line) or training data (.jsonl, .csv: inputs and targets).
        #[arg(long, num_args = 1.., required = true)]
        input: Vec<PathBuf>,
        /// The most tokens, the special ones (<pad>, <s>, </s>, <unk>) included.
        #[arg(long, default_value_t = 8000)]
        vocab_size: usize,
        /// bpe (byte-level: any text encodes) or wordpiece.
        #[arg(long, default_value = "bpe")]
        model: String,
        #[arg(long)]
        output: PathBuf,
        /// Replace `--output` if it exists (refused otherwise).
        #[arg(long)]
        force: bool,
    },
}

pub fn run(command: Command) -> Result<()> {
    let Command::Train { input, vocab_size, model, output, force } = command;
    let model = match model.as_str() {
        "bpe" => VocabModel::Bpe,
        "wordpiece" => VocabModel::WordPiece,
        m => return Err(MedgenError::InvalidArgument { name: "model", reason: format!("`{m}` is not bpe or wordpiece") }),
    };
    let texts = scratch::texts(&input)?;
    scratch::train_tokenizer(&texts, vocab_size, model, &output, force)?;
    eprintln!("learned a vocabulary from {} texts; wrote {}", texts.len(), output.display());
    Ok(())
}
