//! Models trained from nothing: a tokenizer learned from the data, and the recurrent
//! baseline's folder (`config.json`, weights initialised as PyTorch initialises its modules,
//! the tokenizer), which a run then trains like any other model.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use super::data::{self, Columns, Example};
use super::network::{write_json, write_safetensors};
use crate::error::{MedgenError, Result};
use crate::models::rnn::{Cell, RnnConfig, Scoring, MODEL_TYPE};

/// The special tokens of a tokenizer medgen trains, in id order.
pub const SPECIALS: [&str; 4] = ["<pad>", "<s>", "</s>", "<unk>"];

/// The kind of tokenizer to learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VocabModel {
    /// Byte-level BPE: any text encodes, without an unknown token.
    Bpe,
    /// WordPiece over BERT's pre-tokenisation; characters never seen become `<unk>`.
    WordPiece,
}

/// The texts of `files` to learn a vocabulary from: each example's input and target (or
/// every message) of a JSON-lines or CSV data file (`.jsonl`, `.json`, `.csv`), each line of
/// any other file.
pub fn texts(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if ["jsonl", "json", "csv"].contains(&ext.as_str()) {
            for e in data::read(f, &Columns { input: "input".into(), target: "target".into() })?.examples {
                match e {
                    Example::Pair { input, target } => out.extend([input, target]),
                    Example::Task { note, target, .. } => out.extend([note, target]),
                    Example::Chat(messages) => out.extend(messages.into_iter().map(|m| m.content)),
                }
            }
        } else {
            let text = crate::files::read_text_bounded(f, crate::files::MAX_DATA_FILE)?;
            out.extend(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string));
        }
    }
    if out.is_empty() {
        return Err(MedgenError::invalid("input", "no text to learn a vocabulary from"));
    }
    Ok(out)
}

/// Learns a `model` tokenizer of up to `vocab_size` tokens from `texts` and writes it as
/// `tokenizer.json` to `output`: ids 0 to 3 are [`SPECIALS`], and encoding a text appends
/// `</s>`, as T5's tokenizers do. An existing `output` (the training data itself, say) is
/// refused unless `overwrite`; the file is written beside it and renamed into place.
pub fn train_tokenizer(texts: &[String], vocab_size: usize, model: VocabModel, output: &Path, overwrite: bool) -> Result<()> {
    if !overwrite && std::fs::symlink_metadata(output).is_ok() {
        return Err(MedgenError::invalid("output", format!("{} exists: choose another path, or overwrite it (--force, overwrite=True)", output.display())));
    }
    let specials: Vec<AddedToken> = SPECIALS.iter().map(|t| AddedToken::from(*t, true)).collect();
    // Byte-level BPE starts from all 256 bytes; WordPiece needs only its special tokens.
    let least = SPECIALS.len() + if model == VocabModel::Bpe { 256 } else { 1 };
    if vocab_size < least {
        return Err(MedgenError::invalid("vocab_size", format!("{vocab_size} cannot hold the special tokens and the base alphabet: give at least {least}")));
    }
    if vocab_size > crate::models::config::MAX_DIM {
        return Err(MedgenError::invalid("vocab_size", format!("{vocab_size} is over the largest vocabulary medgen builds ({})", crate::models::config::MAX_DIM)));
    }
    let fail = |e: Box<dyn std::error::Error + Send + Sync>| MedgenError::invalid("tokenizer", e.to_string());
    let mut tokenizer = match model {
        VocabModel::Bpe => {
            let mut t = Tokenizer::new(BPE::default());
            t.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
            t.with_decoder(Some(ByteLevel::default()));
            let mut trainer: TrainerWrapper = BpeTrainer::builder()
                .vocab_size(vocab_size)
                .special_tokens(specials)
                .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
                .show_progress(false)
                .build()
                .into();
            t.train(&mut trainer, texts.iter()).map_err(fail)?;
            t
        }
        VocabModel::WordPiece => {
            let mut t = Tokenizer::new(WordPiece::builder().unk_token("<unk>".into()).build().map_err(fail)?);
            t.with_pre_tokenizer(Some(BertPreTokenizer));
            t.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::default()));
            let mut trainer: TrainerWrapper = WordPieceTrainer::builder().vocab_size(vocab_size).special_tokens(specials).show_progress(false).build().into();
            t.train(&mut trainer, texts.iter()).map_err(fail)?;
            t
        }
    };
    let eos = tokenizer.token_to_id("</s>").ok_or_else(|| MedgenError::internal("tokenizer", "</s> missing after training"))?;
    let post = TemplateProcessing::builder()
        .try_single("$A </s>")
        .map_err(|e| MedgenError::internal("tokenizer", e))?
        .special_tokens(vec![("</s>".to_string(), eos)])
        .build()
        .map_err(|e| MedgenError::internal("tokenizer", e.to_string()))?;
    tokenizer.with_post_processor(Some(post));
    let mut partial = output.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    tokenizer.save(&partial, true).map_err(|e| MedgenError::invalid("output", format!("{}: {e}", output.display())))?;
    std::fs::rename(&partial, output).map_err(|e| MedgenError::io(output, e))
}

/// The recurrent baseline's shape: `medgen finetune --from-scratch rnn`'s options. The
/// vocabulary and special tokens come from `tokenizer`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RnnSpec {
    /// A `tokenizer.json` (from `medgen tokenizer train`, or any other).
    pub tokenizer: PathBuf,
    /// lstm or gru (default: lstm).
    #[serde(default = "default_cell")]
    pub cell: Cell,
    /// Recurrent layers of the encoder and of the decoder (default: 2).
    #[serde(default = "two")]
    pub layers: usize,
    /// Hidden size of each direction (default: 256).
    #[serde(default = "hidden")]
    pub hidden: usize,
    /// Token embedding size (default: 128).
    #[serde(default = "embedding")]
    pub embedding: usize,
    /// A bidirectional encoder (default: false).
    #[serde(default)]
    pub bidirectional: bool,
    /// luong, dot or bahdanau (default: luong).
    #[serde(default = "default_attention")]
    pub attention: Scoring,
    /// Luong's input feeding (default: true).
    #[serde(default = "yes")]
    pub input_feeding: bool,
    /// The output projection is the decoder embedding (needs embedding = hidden; default: false).
    #[serde(default)]
    pub tie_embeddings: bool,
    /// Between recurrent layers while training (default: 0.2).
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// Probability of feeding the target's token rather than the model's prediction while
    /// training (default: 1.0, always the target).
    #[serde(default = "one")]
    pub teacher_forcing_ratio: f64,
    /// The longest input and the most new tokens (default: 1024).
    #[serde(default = "max_length")]
    pub max_length: usize,
}

fn default_cell() -> Cell {
    Cell::Lstm
}
fn two() -> usize {
    2
}
fn hidden() -> usize {
    256
}
fn embedding() -> usize {
    128
}
fn yes() -> bool {
    true
}
fn default_attention() -> Scoring {
    Scoring::Luong
}
fn default_dropout() -> f64 {
    0.2
}
fn one() -> f64 {
    1.0
}
fn max_length() -> usize {
    1024
}

impl RnnSpec {
    /// A spec with the defaults and `tokenizer`.
    pub fn new(tokenizer: PathBuf) -> Self {
        serde_json::from_value(serde_json::json!({ "tokenizer": tokenizer })).unwrap_or_else(|_| unreachable!("every other field has a default"))
    }

    /// The model's configuration, with the vocabulary and special tokens of the tokenizer.
    pub fn config(&self) -> Result<RnnConfig> {
        let text = crate::formats::read_text(&self.tokenizer)?;
        let tok = Tokenizer::from_str(&text).map_err(|e| MedgenError::invalid("tokenizer", format!("{} does not parse as a tokenizer.json: {e}", self.tokenizer.display())))?;
        let find = |names: &[&str]| names.iter().find_map(|n| tok.token_to_id(n));
        let eos = find(&["</s>", "[SEP]", "<eos>", "<|endoftext|>"])
            .ok_or_else(|| MedgenError::invalid("tokenizer", "it has no end token (</s>, [SEP], <eos> or <|endoftext|>)"))?;
        let cfg = RnnConfig {
            cell: self.cell,
            vocab_size: tok.get_vocab_size(true),
            embedding_size: self.embedding,
            hidden_size: self.hidden,
            encoder_layers: self.layers,
            decoder_layers: self.layers,
            bidirectional: self.bidirectional,
            attention: self.attention,
            input_feeding: self.input_feeding,
            tie_embeddings: self.tie_embeddings,
            dropout: self.dropout,
            teacher_forcing_ratio: self.teacher_forcing_ratio,
            pad_token_id: find(&["<pad>", "[PAD]"]).unwrap_or(eos),
            decoder_start_token_id: find(&["<s>", "[CLS]", "<bos>"]).unwrap_or(eos),
            eos_token_id: eos,
            max_length: self.max_length,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Writes a new recurrent model into `dir`: `config.json`, `model.safetensors` initialised
/// as PyTorch initialises the modules (embeddings N(0, 1); LSTM and GRU weights and biases
/// U(±1/√hidden); linear weights and biases U(±1/√in), `nn.Linear`'s Kaiming-uniform),
/// drawn from libtorch's generator seeded by `seed`, and the tokenizer's files.
pub fn create_rnn(spec: &RnnSpec, dir: &Path, seed: u64) -> Result<RnnConfig> {
    let cfg = spec.config()?;
    std::fs::create_dir_all(dir).map_err(|e| MedgenError::io(dir, e))?;
    tch::manual_seed(seed as i64);
    let hidden_bound = 1.0 / (cfg.hidden_size as f64).sqrt();
    let mut tensors = Vec::new();
    let linears: Vec<(String, Vec<i64>)> = cfg.tensor_shapes();
    for (name, shape) in &linears {
        let t = if name.ends_with("embedding.weight") {
            Tensor::f_randn(shape.as_slice(), (Kind::Float, tch::Device::Cpu))?
        } else {
            let bound = if name.contains(".rnn.") {
                hidden_bound
            } else {
                // A linear layer's bias takes its weight's fan-in.
                let stem = name.trim_end_matches(".bias").trim_end_matches(".weight");
                let fan_in = linears.iter().find(|(n, _)| n == &format!("{stem}.weight")).map_or(1, |(_, s)| s[1]);
                1.0 / (fan_in as f64).sqrt()
            };
            Tensor::f_empty(shape.as_slice(), (Kind::Float, tch::Device::Cpu))?.f_uniform_(-bound, bound)?
        };
        tensors.push((name.clone(), t));
    }
    write_safetensors(&tensors, &dir.join("model.safetensors"))?;
    let mut json = serde_json::to_value(&cfg).map_err(|e| MedgenError::internal("config", e.to_string()))?;
    if let Some(o) = json.as_object_mut() {
        o.insert("model_type".into(), MODEL_TYPE.into());
    }
    write_json(&dir.join("config.json"), &json)?;
    std::fs::copy(&spec.tokenizer, dir.join("tokenizer.json")).map_err(|e| MedgenError::io(&spec.tokenizer, e))?;
    let tok = Tokenizer::from_file(&spec.tokenizer).map_err(|e| MedgenError::invalid("tokenizer", e.to_string()))?;
    let name = |id: u32| tok.id_to_token(id);
    write_json(
        &dir.join("tokenizer_config.json"),
        &serde_json::json!({"eos_token": name(cfg.eos_token_id), "pad_token": name(cfg.pad_token_id)}),
    )?;
    Ok(cfg)
}
