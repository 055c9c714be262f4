//! Training data: JSON lines (`{"input", "target"}` or `{"messages"}`) or CSV read into
//! examples, de-identified, tokenised with the loss on target tokens only, and padded into
//! batches.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use tch::{Device, Tensor};

use crate::chat::ChatMessage;
use crate::deid::{deidentify, DeidConfig};
use crate::error::{MedgenError, Result};
use crate::tokenizer::Tokenizer;

/// Labels that the loss ignores (prompt tokens and padding), as transformers marks them.
pub const IGNORE: i64 = -100;

/// One training example.
#[derive(Debug, Clone, PartialEq)]
pub enum Example {
    /// An input and the text the model should produce from it.
    Pair { input: String, target: String },
    /// A conversation; the loss covers the assistant's turns.
    Chat(Vec<ChatMessage>),
    /// A clinical task's note and the draft it should give: the model sees the prompt that
    /// `medgen task` renders (the task's chat messages, or its T5 prefix).
    Task { task: String, note: String, target: String },
}

/// A data file read into examples.
pub struct DataFile {
    pub path: PathBuf,
    pub sha256: String,
    pub examples: Vec<Example>,
}

/// Which CSV columns hold the input and the target.
#[derive(Debug, Clone)]
pub struct Columns {
    pub input: String,
    pub target: String,
}

fn bad(path: &Path, line: usize, reason: impl std::fmt::Display) -> MedgenError {
    MedgenError::invalid("train", format!("{}, line {line}: {reason}", path.display()))
}

/// Reads JSON lines, or CSV when the file name ends in `.csv`.
pub fn read(path: &Path, columns: &Columns) -> Result<DataFile> {
    let bytes = crate::files::read_bounded(path, crate::files::MAX_DATA_FILE)?;
    let sha256 = format!("{:x}", Sha256::digest(&bytes));
    let text = String::from_utf8(bytes).map_err(|e| MedgenError::invalid("train", format!("{} is not UTF-8: {e}", path.display())))?;
    let csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let examples = if csv { read_csv(path, &text, columns)? } else { read_jsonl(path, &text)? };
    if examples.is_empty() {
        return Err(MedgenError::invalid("train", format!("{} holds no examples", path.display())));
    }
    Ok(DataFile { path: path.to_path_buf(), sha256, examples })
}

fn read_jsonl(path: &Path, text: &str) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(path, n, format!("not JSON: {e}")))?;
        let field = |k: &str| -> Result<String> {
            match v.get(k) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(bad(path, n, format!("`{k}` is not a string"))),
                None => Err(bad(path, n, format!("missing field `{k}` (each line needs `input` and `target`, or `messages`)"))),
            }
        };
        let example = if v.get("task").is_some() {
            let (task, note, target) = (field("task")?, field("note")?, field("target")?);
            crate::tasks::get(&task).map_err(|e| bad(path, n, e))?;
            if target.trim().is_empty() {
                return Err(bad(path, n, "empty `target`"));
            }
            if note.trim().is_empty() {
                return Err(bad(path, n, "empty `note`"));
            }
            Example::Task { task, note, target }
        } else if let Some(m) = v.get("messages") {
            let messages: Vec<ChatMessage> =
                serde_json::from_value(m.clone()).map_err(|e| bad(path, n, format!("`messages` is not a list of {{role, content}}: {e}")))?;
            if !messages.iter().any(|m| m.role == "assistant" && !m.content.trim().is_empty()) {
                return Err(bad(path, n, "no assistant message to learn from"));
            }
            Example::Chat(messages)
        } else {
            let (input, target) = (field("input")?, field("target")?);
            if target.trim().is_empty() {
                return Err(bad(path, n, "empty `target`"));
            }
            Example::Pair { input, target }
        };
        out.push(example);
    }
    Ok(out)
}

fn read_csv(path: &Path, text: &str, columns: &Columns) -> Result<Vec<Example>> {
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| bad(path, 1, e))?.clone();
    let find = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            let have: Vec<&str> = headers.iter().collect();
            MedgenError::invalid("input_column", format!("{} has no column `{name}` (columns: {})", path.display(), have.join(", ")))
        })
    };
    let (ci, ct) = (find(&columns.input)?, find(&columns.target)?);
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let n = i + 2;
        let record = record.map_err(|e| bad(path, n, e))?;
        let (input, target) = (record.get(ci).unwrap_or_default(), record.get(ct).unwrap_or_default());
        if target.trim().is_empty() {
            return Err(bad(path, n, format!("empty `{}`", columns.target)));
        }
        out.push(Example::Pair { input: input.to_string(), target: target.to_string() });
    }
    Ok(out)
}

/// Replaces identifiers by placeholders in every text of `examples`.
pub fn deidentify_all(examples: &mut [Example]) -> Result<()> {
    let cfg = DeidConfig::default();
    let clean = |s: &mut String| -> Result<()> {
        *s = deidentify(s, &cfg)?.text;
        Ok(())
    };
    for e in examples {
        match e {
            Example::Pair { input, target } => {
                clean(input)?;
                clean(target)?;
            }
            Example::Chat(messages) => {
                for m in messages {
                    clean(&mut m.content)?;
                }
            }
            Example::Task { note, target, .. } => {
                clean(note)?;
                clean(target)?;
            }
        }
    }
    Ok(())
}

/// Splits off a seeded `fraction` of `examples` (at least one) for validation.
pub fn split(examples: Vec<Example>, fraction: f64, seed: u64) -> Result<(Vec<Example>, Vec<Example>)> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(MedgenError::invalid("validation_split", format!("{fraction} is not between 0 and 1")));
    }
    let n = examples.len();
    let k = ((n as f64 * fraction).round() as usize).max(1);
    if k >= n {
        return Err(MedgenError::invalid("validation_split", format!("{fraction} of {n} examples leaves none to train on")));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let held: std::collections::HashSet<usize> = order[..k].iter().copied().collect();
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, e) in examples.into_iter().enumerate() {
        if held.contains(&i) {
            val.push(e)
        } else {
            train.push(e)
        }
    }
    Ok((train, val))
}

/// One tokenised example: the ids the network reads and the labels of its loss.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Decoder-only: prompt and target; encoder-decoder: the encoder's input.
    pub input_ids: Vec<u32>,
    /// Per position of `input_ids` (decoder-only) or of the target (encoder-decoder):
    /// the token to predict, or [`IGNORE`].
    pub labels: Vec<i64>,
}

/// How examples become token ids.
pub struct Encoding<'a> {
    pub tokenizer: &'a Tokenizer,
    pub encoder_decoder: bool,
    /// Render inputs as the user's turn of the chat template (decoder-only models).
    pub chat: bool,
    pub max_source: usize,
    pub max_target: usize,
    pub eos: u32,
}

/// Truncates `ids` to `max`, keeping a final `eos` as the last token.
fn truncate(ids: &mut Vec<u32>, max: usize, eos: Option<u32>) -> bool {
    if ids.len() <= max {
        return false;
    }
    let ends = eos.is_some() && ids.last().copied() == eos;
    ids.truncate(max);
    if let (true, Some(e), Some(last)) = (ends, eos, ids.last_mut()) {
        *last = e;
    }
    true
}

impl Encoding<'_> {
    /// The example's ids and labels, and whether anything was truncated.
    pub fn encode(&self, e: &Example) -> Result<(Encoded, bool)> {
        match e {
            Example::Pair { input, target } => self.pair(input, target),
            Example::Chat(messages) => self.conversation(messages),
            Example::Task { task, note, target } => {
                let task = crate::tasks::get(task)?;
                if self.encoder_decoder {
                    return self.pair(&task.t5_prompt(note), target);
                }
                let mut messages = task.chat_messages(note);
                messages.push(ChatMessage::new("assistant", target.trim()));
                self.conversation(&messages)
            }
        }
    }

    fn target_ids(&self, target: &str, add_special: bool) -> Result<Vec<u32>> {
        let mut t = self.tokenizer.encode(target, add_special)?;
        if t.last() != Some(&self.eos) {
            t.push(self.eos);
        }
        Ok(t)
    }

    fn pair(&self, input: &str, target: &str) -> Result<(Encoded, bool)> {
        if self.encoder_decoder {
            let mut src = self.tokenizer.encode(input, true)?;
            let mut tgt = self.target_ids(target, true)?;
            let cut = truncate(&mut src, self.max_source, Some(self.eos)) | truncate(&mut tgt, self.max_target, Some(self.eos));
            if src.is_empty() {
                return Err(MedgenError::invalid("input", "an input of no tokens"));
            }
            let labels = tgt.iter().map(|&t| t as i64).collect();
            return Ok((Encoded { input_ids: src, labels }, cut));
        }
        let mut prompt = if self.chat {
            if self.tokenizer.chat_template().is_none() {
                return Err(MedgenError::Unsupported("the model has no chat template: pass --no-chat to train on plain text".into()));
            }
            self.tokenizer.encode_chat(&[ChatMessage::new("user", input)], true)?
        } else {
            self.tokenizer.encode(input, true)?
        };
        let mut tgt = self.target_ids(target, false)?;
        let cut = truncate(&mut prompt, self.max_source, None) | truncate(&mut tgt, self.max_target, Some(self.eos));
        let labels = prompt.iter().map(|_| IGNORE).chain(tgt.iter().map(|&t| t as i64)).collect();
        prompt.extend(tgt);
        Ok((Encoded { input_ids: prompt, labels }, cut))
    }

    /// A conversation rendered whole; labels on the tokens of the assistant's turns, found
    /// by rendering the conversation up to each turn.
    fn conversation(&self, messages: &[ChatMessage]) -> Result<(Encoded, bool)> {
        if self.encoder_decoder {
            return Err(MedgenError::Unsupported("chat messages for an encoder-decoder model: use input/target pairs".into()));
        }
        if self.tokenizer.chat_template().is_none() {
            return Err(MedgenError::Unsupported("`messages` need a model with a chat template".into()));
        }
        let tokens = |m: &[ChatMessage], open: bool| self.tokenizer.encode_chat(m, open);
        let mut ids = tokens(messages, false)?;
        let mut labels = vec![IGNORE; ids.len()];
        for (i, _) in messages.iter().enumerate().filter(|(_, m)| m.role == "assistant") {
            let (start, end) = (tokens(&messages[..i], true)?.len(), tokens(&messages[..=i], false)?.len());
            let end = end.min(ids.len());
            for j in start.min(end)..end {
                labels[j] = ids[j] as i64;
            }
        }
        let max = self.max_source + self.max_target;
        let cut = ids.len() > max;
        ids.truncate(max);
        labels.truncate(max);
        Ok((Encoded { input_ids: ids, labels }, cut))
    }
}

/// Tensors of one batch, right-padded.
pub struct Batch {
    /// `[b, t]` int64.
    pub input_ids: Tensor,
    /// `[b, t]` int64: 1 at tokens, 0 at padding.
    pub attention_mask: Tensor,
    /// `[b, t]` (decoder-only) or `[b, target]` (encoder-decoder), [`IGNORE`] where no loss.
    pub labels: Tensor,
    /// Encoder-decoder: the labels shifted right after the decoder's start token.
    pub decoder_input_ids: Option<Tensor>,
    /// Tokens the loss counts.
    pub label_tokens: i64,
}

/// Pads `examples` on the right into one batch: `pad` in the inputs, [`IGNORE`] in the
/// labels; for an encoder-decoder, `decoder_start` begins the decoder's inputs.
pub fn batch(examples: &[&Encoded], pad: u32, decoder_start: Option<u32>, device: Device) -> Result<Batch> {
    let b = examples.len() as i64;
    let t = examples.iter().map(|e| e.input_ids.len()).max().unwrap_or(0);
    let l = examples.iter().map(|e| e.labels.len()).max().unwrap_or(0);
    let (mut ids, mut mask) = (Vec::with_capacity(b as usize * t), Vec::with_capacity(b as usize * t));
    let mut labels = Vec::with_capacity(b as usize * l);
    for e in examples {
        let n = e.input_ids.len();
        ids.extend(e.input_ids.iter().map(|&i| i as i64).chain(std::iter::repeat_n(pad as i64, t - n)));
        mask.extend(std::iter::repeat_n(1i64, n).chain(std::iter::repeat_n(0, t - n)));
        labels.extend(e.labels.iter().copied().chain(std::iter::repeat_n(IGNORE, l - e.labels.len())));
    }
    let tensor = |v: &[i64], cols: usize| -> Result<Tensor> { Ok(Tensor::f_from_slice(v)?.f_view([b, cols as i64])?.f_to_device(device)?) };
    let decoder_input_ids = match decoder_start {
        Some(start) => {
            // transformers' shift_tokens_right: start token, then the labels with -100 as pad.
            let shifted: Vec<i64> = labels
                .chunks(l.max(1))
                .flat_map(|row| std::iter::once(start as i64).chain(row[..row.len().saturating_sub(1)].iter().map(|&x| if x == IGNORE { pad as i64 } else { x })))
                .collect();
            Some(tensor(&shifted, l)?)
        }
        None => None,
    };
    // Decoder-only labels are predicted one position later: the first label never counts.
    let label_tokens = if decoder_start.is_some() {
        labels.iter().filter(|&&x| x != IGNORE).count()
    } else {
        labels.chunks(t.max(1)).map(|row| row.iter().skip(1).filter(|&&x| x != IGNORE).count()).sum()
    } as i64;
    Ok(Batch { input_ids: tensor(&ids, t)?, attention_mask: tensor(&mask, t)?, labels: tensor(&labels, l)?, decoder_input_ids, label_tokens })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_labels_pad_right_and_count_from_the_second_position() {
        let a = Encoded { input_ids: vec![5, 6, 7], labels: vec![IGNORE, 6, 7] };
        let b = Encoded { input_ids: vec![5, 8], labels: vec![5, 8] };
        let batch = batch(&[&a, &b], 0, None, Device::Cpu).unwrap();
        assert_eq!(Vec::<i64>::try_from(batch.labels.flatten(0, -1)).unwrap(), [IGNORE, 6, 7, 5, 8, IGNORE]);
        assert_eq!(Vec::<i64>::try_from(batch.attention_mask.flatten(0, -1)).unwrap(), [1, 1, 1, 1, 1, 0]);
        assert_eq!(batch.label_tokens, 3);
    }

    #[test]
    fn decoder_inputs_are_the_labels_shifted_right_with_padding_for_ignored() {
        let a = Encoded { input_ids: vec![5], labels: vec![9, 1] };
        let b = Encoded { input_ids: vec![5, 6], labels: vec![7, 8, 1] };
        let batch = batch(&[&a, &b], 3, Some(0), Device::Cpu).unwrap();
        let dec = Vec::<i64>::try_from(batch.decoder_input_ids.unwrap().flatten(0, -1)).unwrap();
        assert_eq!(dec, [0, 9, 1, 0, 7, 8]);
        assert_eq!(batch.label_tokens, 5);
    }

    #[test]
    fn truncation_keeps_the_final_end_token() {
        let mut ids = vec![1, 2, 3, 4, 9];
        assert!(truncate(&mut ids, 3, Some(9)));
        assert_eq!(ids, [1, 2, 9]);
        assert!(!truncate(&mut ids, 3, Some(9)));
    }

    #[test]
    fn the_validation_split_is_seeded_and_leaves_training_data() {
        let ex: Vec<Example> = (0..10).map(|i| Example::Pair { input: i.to_string(), target: "t".into() }).collect();
        let (a, b) = split(ex.clone(), 0.2, 7).unwrap();
        assert_eq!((a.len(), b.len()), (8, 2));
        assert_eq!(split(ex.clone(), 0.2, 7).unwrap().1, b);
        assert!(split(ex, 1.0, 7).is_err());
    }
}
