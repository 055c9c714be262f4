//! Tokenizers: from an HF `tokenizer.json`, or rebuilt from GGUF metadata with the
//! `tokenizers` crate, plus the special-token rules (BOS, EOS) and the chat template.

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde_json::Value as Json;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::Replace;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, DecoderWrapper, PreTokenizerWrapper, SplitDelimiterBehavior};

use crate::chat::{ChatMessage, ChatTemplate};
use crate::error::{MedgenError, Result};
use crate::formats::gguf::{GgufFile, Value};

/// A text tokenizer with the model's special-token rules. Text is tokenized literally: a
/// note that contains `<|im_start|>` gets the tokens of those characters, never the
/// control token. Only a chat template's own markup makes control tokens.
pub struct Tokenizer {
    /// Encodes special tokens' text as text.
    inner: tokenizers::Tokenizer,
    /// The same vocabulary, matching special tokens: for a chat template's markup. Made at
    /// the first chat, so that models used without one never copy the vocabulary.
    markup: OnceLock<tokenizers::Tokenizer>,
    special_ids: HashSet<u32>,
    /// Vocabulary size with added tokens, computed once: tokenizers builds the whole
    /// vocabulary map to count it.
    size: usize,
    /// Prepend BOS when encoding with special tokens (GGUF `add_bos_token`; for
    /// `tokenizer.json` the post-processor already does it).
    add_bos: bool,
    add_eos: bool,
    bos: Option<(u32, String)>,
    eos: Option<(u32, String)>,
    /// Every token id that ends generation.
    eos_ids: Vec<u32>,
    chat_template: Option<ChatTemplate>,
    /// Each token's text on its own, made at the first call of [`Tokenizer::token_texts`].
    texts: OnceLock<Arc<Vec<String>>>,
}

fn tok_err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> MedgenError {
    MedgenError::Tokenizer(e.into())
}

// Pre-tokenizer regexes of llama.cpp's `tokenizer.ggml.pre` families (llama-vocab.cpp).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GPT-2's byte-to-character table: printable bytes map to themselves, the others to
/// U+0100 onwards, so that every byte string is a printable string.
fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[b as usize] = if printable {
            b as char
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or('?')
        };
    }
    table
}

impl Tokenizer {
    /// The tokenizer of a GGUF file or an HF model folder, without loading the weights.
    pub fn load(path: &Path) -> Result<Self> {
        if path.is_dir() {
            let config = read_json_opt(&path.join("config.json"))?.unwrap_or(Json::Null);
            Self::from_hf_dir(path, &config)
        } else {
            Self::from_gguf(&GgufFile::open(path)?)
        }
    }

    /// Builds the tokenizer a GGUF file describes (`tokenizer.ggml.*`).
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let str_array = |key: &str| -> Result<Vec<String>> {
            let arr = g
                .get(key)
                .and_then(Value::as_array)
                .ok_or_else(|| MedgenError::format(format!("GGUF metadata lacks {key}")))?;
            arr.strings()
                .map(<[String]>::to_vec)
                .ok_or_else(|| MedgenError::format(format!("GGUF metadata {key} holds non-strings")))
        };
        let id = |key: &str| g.get(key).and_then(Value::as_u64).map(|v| v as u32);
        let flag = |key: &str| g.get(key).and_then(Value::as_bool);

        let kind = g.get("tokenizer.ggml.model").and_then(Value::as_str).unwrap_or("");
        let mut tokens = str_array("tokenizer.ggml.tokens")?;
        let mut types: Vec<i64> = match g.get("tokenizer.ggml.token_type").and_then(Value::as_array) {
            Some(a) => a.numbers().map_or_else(|| vec![1; a.len()], |v| v.into_iter().map(|t| t as i64).collect()),
            None => vec![1; tokens.len()],
        };
        let (mut inner, add_bos_default) = match kind {
            "gpt2" => {
                // Tokens outside the byte alphabet (written as plain text by some converters)
                // are spelled in it, as transformers does.
                let table = bytes_to_unicode();
                let alphabet: std::collections::HashSet<char> = table.iter().copied().collect();
                for t in tokens.iter_mut() {
                    if !t.chars().all(|c| alphabet.contains(&c)) {
                        *t = t.bytes().map(|b| table[b as usize]).collect();
                    }
                }
                let merges = str_array("tokenizer.ggml.merges")?
                    .into_iter()
                    .map(|m| {
                        m.split_once(' ')
                            .map(|(a, b)| (a.to_string(), b.to_string()))
                            .ok_or_else(|| MedgenError::format(format!("GGUF merge `{m}` lacks a space")))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let vocab: tokenizers::models::bpe::Vocab =
                    tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
                let bpe = BPE::builder()
                    .vocab_and_merges(vocab, merges)
                    .build()
                    .map_err(tok_err)?;
                let pre = g.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
                let mut tk = tokenizers::Tokenizer::new(bpe);
                tk.with_pre_tokenizer(Some(byte_level_pre_tokenizer(pre)?));
                tk.with_decoder(Some(ByteLevel::default()));
                (tk, false)
            }
            "llama" => {
                let mut scores: Vec<f64> = g
                    .get("tokenizer.ggml.scores")
                    .and_then(Value::as_array)
                    .map(|a| a.numbers().unwrap_or_else(|| vec![0.0; a.len()]))
                    .unwrap_or_else(|| vec![0.0; tokens.len()]);
                let arch = g.get("general.architecture").and_then(Value::as_str).unwrap_or("");
                if matches!(arch, "gemma" | "gemma2" | "gemma3") {
                    scores = gemma_vocabulary(&mut tokens, &mut types);
                }
                let unk = id("tokenizer.ggml.unknown_token_id").and_then(|i| tokens.get(i as usize).cloned());
                let prefix = flag("tokenizer.ggml.add_space_prefix").unwrap_or(true);
                (sentencepiece_bpe(&tokens, &scores, unk, prefix)?, true)
            }
            other => {
                return Err(MedgenError::Unsupported(format!(
                    "GGUF tokenizer model `{other}` (medgen builds gpt2 and llama tokenizers)"
                )))
            }
        };

        // Control tokens (type 3) are special; user-defined ones (type 4) are matched whole.
        let special: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, &t)| t == 3)
            .map(|(s, _)| AddedToken::from(s.clone(), true))
            .collect();
        let user: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, &t)| t == 4)
            .map(|(s, _)| AddedToken::from(s.clone(), false).normalized(false))
            .collect();
        inner.add_special_tokens(&special);
        inner.add_tokens(&user);

        let named = |key: &str| id(key).and_then(|i| tokens.get(i as usize).map(|t| (i, t.clone())));
        let bos = named("tokenizer.ggml.bos_token_id");
        let eos = named("tokenizer.ggml.eos_token_id");
        let mut eos_ids: Vec<u32> = eos.iter().map(|e| e.0).collect();
        for key in ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
            if let Some(i) = id(key) {
                if !eos_ids.contains(&i) {
                    eos_ids.push(i);
                }
            }
        }
        let chat_template = g
            .get("tokenizer.chat_template")
            .and_then(Value::as_str)
            .map(|s| ChatTemplate::new(s.to_string()));
        Ok(Tokenizer {
            add_bos: flag("tokenizer.ggml.add_bos_token").unwrap_or(add_bos_default),
            add_eos: flag("tokenizer.ggml.add_eos_token").unwrap_or(false),
            bos,
            eos,
            eos_ids,
            chat_template,
            ..Tokenizer::with_vocabulary(inner)
        })
    }

    /// Loads `tokenizer.json` from an HF model folder, with `tokenizer_config.json`
    /// (special tokens, chat template), `chat_template.jinja` and the EOS ids of
    /// `generation_config.json` or `config.json`.
    pub fn from_hf_dir(dir: &Path, config: &Json) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Err(MedgenError::io(
                &path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no tokenizer.json in the model folder"),
            ));
        }
        let inner = parse_tokenizer_json(&crate::formats::read_text(&path)?)?;
        let tcfg = read_json_opt(&dir.join("tokenizer_config.json"))?.unwrap_or(Json::Null);
        let gen = read_json_opt(&dir.join("generation_config.json"))?.unwrap_or(Json::Null);
        let template_file = dir.join("chat_template.jinja");
        let template_file = if template_file.exists() { Some(crate::formats::read_text(&template_file)?) } else { None };
        Self::from_hf_parts(inner, &tcfg, &gen, config, template_file)
    }

    /// [`Tokenizer::from_hf_dir`] once the folder's files are read: the parsed
    /// `tokenizer.json`, `tokenizer_config.json` and `generation_config.json` (`Null` when
    /// absent), `config.json`, and `chat_template.jinja`'s text if there is one.
    pub(crate) fn from_hf_parts(
        inner: tokenizers::Tokenizer,
        tcfg: &Json,
        gen: &Json,
        config: &Json,
        template_file: Option<String>,
    ) -> Result<Self> {
        let token_text = |v: Option<&Json>| -> Option<String> {
            match v? {
                Json::String(s) => Some(s.clone()),
                Json::Object(o) => o.get("content").and_then(Json::as_str).map(str::to_string),
                _ => None,
            }
        };
        let with_id = |name: Option<String>| name.and_then(|n| inner.token_to_id(&n).map(|i| (i, n)));
        let bos = with_id(token_text(tcfg.get("bos_token")));
        let eos = with_id(token_text(tcfg.get("eos_token")));
        let ids_of = |v: Option<&Json>| -> Vec<u32> {
            match v {
                Some(Json::Number(n)) => n.as_u64().map(|i| vec![i as u32]).unwrap_or_default(),
                Some(Json::Array(a)) => a.iter().filter_map(Json::as_u64).map(|i| i as u32).collect(),
                _ => vec![],
            }
        };
        let mut eos_ids = ids_of(gen.get("eos_token_id"));
        if eos_ids.is_empty() {
            eos_ids = ids_of(config.get("eos_token_id"));
        }
        if eos_ids.is_empty() {
            eos_ids.extend(eos.iter().map(|e| e.0));
        }

        let template = template_file.or_else(|| match tcfg.get("chat_template") {
            Some(Json::String(s)) => Some(s.clone()),
            // A list of named templates: take "default".
            Some(Json::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(Json::as_str) == Some("default"))
                .and_then(|t| t.get("template").and_then(Json::as_str))
                .map(str::to_string),
            _ => None,
        });
        Ok(Tokenizer {
            bos,
            eos,
            eos_ids,
            chat_template: template.map(ChatTemplate::new),
            ..Tokenizer::with_vocabulary(inner)
        })
    }

    /// Writes `tokenizer.json` and `tokenizer_config.json` into `dir`, as transformers reads
    /// them: BOS/EOS that a GGUF vocabulary adds become the post-processor's template.
    pub(crate) fn save_hf(&self, dir: &Path) -> Result<()> {
        let mut inner = self.inner.clone();
        if self.add_bos || self.add_eos {
            let bos = self.bos.as_ref().filter(|_| self.add_bos);
            let eos = self.eos.as_ref().filter(|_| self.add_eos);
            let pieces = |body: &str| -> String {
                [bos.map(|b| b.1.clone()), Some(body.to_string()), eos.map(|e| e.1.clone())].into_iter().flatten().collect::<Vec<_>>().join(" ")
            };
            let specials: Vec<(String, u32)> = bos.iter().chain(eos.iter()).map(|(id, t)| (t.clone(), *id)).collect();
            let template = tokenizers::processors::template::TemplateProcessing::builder()
                .try_single(pieces("$A"))
                .and_then(|b| b.try_pair(pieces("$A") + " " + &pieces("$B:1")))
                .map_err(tok_err)?
                .special_tokens(specials)
                .build()
                .map_err(tok_err)?;
            inner.with_post_processor(Some(template));
        }
        let path = dir.join("tokenizer.json");
        inner.save(&path, false).map_err(tok_err)?;
        let config = serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": self.bos_token(),
            "eos_token": self.eos_token(),
            "chat_template": self.chat_template.as_ref().map(|t| t.source()),
        });
        let path = dir.join("tokenizer_config.json");
        let text = serde_json::to_string_pretty(&config).map_err(|e| MedgenError::invalid("tokenizer", e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| MedgenError::io(&path, e))
    }

    /// A tokenizer of `markup`'s vocabulary, without BOS/EOS rules or chat template.
    fn with_vocabulary(markup: tokenizers::Tokenizer) -> Self {
        let mut inner = markup;
        inner.set_encode_special_tokens(true);
        let special_ids = inner.get_added_tokens_decoder().into_iter().filter(|(_, t)| t.special).map(|(id, _)| id).collect();
        Tokenizer {
            size: inner.get_vocab_size(true),
            inner,
            markup: OnceLock::new(),
            special_ids,
            add_bos: false,
            add_eos: false,
            bos: None,
            eos: None,
            eos_ids: vec![],
            chat_template: None,
            texts: OnceLock::new(),
        }
    }

    /// Token ids of the conversation through the chat template; `open` opens the
    /// assistant's turn. The messages' text is tokenized literally (see [`Tokenizer`]).
    pub fn encode_chat(&self, messages: &[ChatMessage], open: bool) -> Result<Vec<u32>> {
        let template = self.chat_template.as_ref().ok_or_else(|| MedgenError::Unsupported("the model has no chat template".into()))?;
        let (text, spans) = template.render_marked(messages, open, self.bos_token(), self.eos_token())?;
        self.encode_markup(&text, &spans)
    }

    /// Token ids of `text` in which only the bytes outside `literal` may make special
    /// tokens. Without a special token's text inside `literal` this is the tokenization of
    /// the whole text, as transformers makes it; otherwise the text between the markup's
    /// special tokens is tokenized literally, piece by piece.
    fn encode_markup(&self, text: &str, literal: &[Range<usize>]) -> Result<Vec<u32>> {
        let markup = self.markup.get_or_init(|| {
            let mut m = self.inner.clone();
            m.set_encode_special_tokens(false);
            m
        });
        let enc = markup.encode(text, false).map_err(tok_err)?;
        let tokens = || enc.get_ids().iter().zip(enc.get_offsets()).filter(|(id, _)| self.special_ids.contains(id));
        let inside = |&(s, e): &(usize, usize)| literal.iter().any(|r| s < r.end && r.start < e);
        if !tokens().any(|(_, o)| inside(o)) {
            return Ok(enc.get_ids().to_vec());
        }
        let mut ids = Vec::with_capacity(enc.len());
        let piece = |ids: &mut Vec<u32>, span: Range<usize>| -> Result<()> {
            let s = text.get(span.clone()).ok_or_else(|| MedgenError::Internal(format!("token offsets {span:?} off a character boundary")))?;
            ids.extend_from_slice(self.inner.encode_fast(s, false).map_err(tok_err)?.get_ids());
            Ok(())
        };
        let mut at = 0;
        for (&id, &(start, end)) in tokens().filter(|(_, o)| !inside(o)) {
            piece(&mut ids, at..start)?;
            ids.push(id);
            at = end;
        }
        piece(&mut ids, at..text.len())?;
        Ok(ids)
    }

    /// Token ids of `text`, tokenized literally, with each token's character range in `text`.
    pub fn encode_offsets(&self, text: &str) -> Result<(Vec<u32>, Vec<Range<usize>>)> {
        let enc = self.inner.encode_char_offsets(text, false).map_err(tok_err)?;
        Ok((enc.get_ids().to_vec(), enc.get_offsets().iter().map(|&(s, e)| s..e).collect()))
    }

    /// [`Tokenizer::encode`] (with special tokens) of `text` in which the byte range `part` is
    /// tokenized apart from what surrounds it: the ids, and for each token the character
    /// range of `part` it came from (empty for the tokens around it). Tokens never straddle
    /// the part's ends, so the ids may differ from the whole text's there.
    pub fn encode_marked(&self, text: &str, part: Range<usize>) -> Result<(Vec<u32>, Vec<Range<usize>>)> {
        let piece = text.get(part.clone()).ok_or_else(|| MedgenError::invalid("part", "not a range of the text"))?;
        // The special tokens the model adds (medgen's BOS/EOS rules or the tokenizer's
        // post-processor) are those around the plain tokens.
        let (with, plain) = (self.encode(text, true)?, self.encode(text, false)?);
        let lead = (0..=with.len().saturating_sub(plain.len())).find(|&k| with[k..].starts_with(&plain)).unwrap_or(0);
        let trail = with.get(lead + plain.len()..).unwrap_or_default();
        let before = [&with[..lead], &self.encode(&text[..part.start], false)?].concat();
        let after = [&self.encode(&text[part.end..], false)?, trail].concat();
        self.join_marked(before, piece, after)
    }

    /// [`Tokenizer::encode_marked`] for [`Tokenizer::encode_chat`] of `messages` (opened for
    /// the assistant), `part` a byte range of the last message's content.
    pub fn encode_chat_marked(&self, messages: &[ChatMessage], part: Range<usize>) -> Result<(Vec<u32>, Vec<Range<usize>>)> {
        let content = messages.last().map_or("", |m| m.content.as_str());
        let piece = content.get(part.clone()).ok_or_else(|| MedgenError::invalid("part", "not a range of the last message"))?;
        let template = self.chat_template.as_ref().ok_or_else(|| MedgenError::Unsupported("the model has no chat template".into()))?;
        let (rendered, spans) = template.render_marked(messages, true, self.bos_token(), self.eos_token())?;
        let last = spans.last().cloned().ok_or_else(|| MedgenError::invalid("messages", "no message"))?;
        // The rendered message is the content without its outer whitespace.
        let lead = content.len() - content.trim_start().len();
        let (start, end) = match (part.start.checked_sub(lead), part.end.checked_sub(lead)) {
            (Some(s), Some(e)) => (last.start + s, last.start + e),
            _ => return Err(MedgenError::invalid("part", "inside the message's leading whitespace")),
        };
        if end > last.end || rendered.get(start..end) != Some(piece) {
            return Err(MedgenError::invalid("part", "not found in the rendered conversation"));
        }
        let clip = |lo: usize, hi: usize| -> Vec<Range<usize>> {
            spans.iter().filter(|r| r.start.max(lo) < r.end.min(hi)).map(|r| r.start.max(lo) - lo..r.end.min(hi) - lo).collect()
        };
        let before = self.encode_markup(&rendered[..start], &clip(0, start))?;
        let after = self.encode_markup(&rendered[end..], &clip(end, rendered.len()))?;
        self.join_marked(before, piece, after)
    }

    fn join_marked(&self, before: Vec<u32>, piece: &str, after: Vec<u32>) -> Result<(Vec<u32>, Vec<Range<usize>>)> {
        let (inner, inner_offsets) = self.encode_offsets(piece)?;
        let mut offsets = vec![0..0; before.len()];
        offsets.extend(inner_offsets);
        offsets.extend(std::iter::repeat_n(0..0, after.len()));
        Ok(([before, inner, after].concat(), offsets))
    }

    /// Token ids of `text`, tokenized literally; with `add_special`, BOS/EOS as the model
    /// wants them.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self.inner.encode_fast(text, add_special).map_err(tok_err)?;
        let mut ids = Vec::with_capacity(enc.len() + 2);
        if add_special && self.add_bos {
            ids.extend(self.bos.as_ref().map(|b| b.0));
        }
        ids.extend_from_slice(enc.get_ids());
        if add_special && self.add_eos {
            ids.extend(self.eos.as_ref().map(|e| e.0));
        }
        Ok(ids)
    }

    /// Text of `ids`; `skip_special` leaves out special tokens such as EOS.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let size = self.size as u32;
        if let Some(bad) = ids.iter().find(|&&i| i >= size) {
            return Err(MedgenError::invalid("ids", format!("token id {bad} is outside the vocabulary of {size}")));
        }
        self.inner.decode(ids, skip_special).map_err(tok_err)
    }

    /// [`Tokenizer::decode`] of ids a model generated: those past the tokenizer's vocabulary
    /// (a model's embedding padded to a multiple, as t5-small's 32,128 rows for 32,100 pieces
    /// or Qwen2.5's) have no text and decode to nothing, as transformers decodes them.
    pub(crate) fn decode_generated(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let size = self.size as u32;
        if ids.iter().all(|&i| i < size) {
            return self.decode(ids, skip_special);
        }
        let known: Vec<u32> = ids.iter().copied().filter(|&i| i < size).collect();
        self.decode(&known, skip_special)
    }

    /// Each token's text decoded on its own (special tokens as ""), by id: what the logits
    /// processors that read text (the section constraint) look tokens up in. Made once.
    pub fn token_texts(&self) -> Arc<Vec<String>> {
        self.texts
            .get_or_init(|| {
                let texts = (0..self.size as u32).map(|id| self.inner.decode(&[id], true).unwrap_or_default()).collect();
                Arc::new(texts)
            })
            .clone()
    }

    /// The id of a token, by its text.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.size
    }

    /// The ids that end generation.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    pub fn bos_token(&self) -> Option<&str> {
        self.bos.as_ref().map(|b| b.1.as_str())
    }

    pub fn eos_token(&self) -> Option<&str> {
        self.eos.as_ref().map(|e| e.1.as_str())
    }

    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }
}

/// The tokenizer of a `tokenizer.json` text. It is read as JSON before tokenizers sees it:
/// tokenizers 0.22 panics on a syntax error inside a `decoder` (`expect("Helper")` in
/// `DecoderWrapper::deserialize`), which a parsed value cannot hold; and on templates that
/// [`check_templates`] refuses.
pub(crate) fn parse_tokenizer_json(text: &str) -> Result<tokenizers::Tokenizer> {
    let json: Json = serde_json::from_str(text).map_err(tok_err)?;
    if let Some(processor) = json.get("post_processor") {
        check_templates(processor)?;
    }
    if let Some(model) = json.get("model") {
        check_merges(model)?;
    }
    serde_json::from_value(json).map_err(tok_err)
}

/// Refuses a BPE model whose merges would panic when tokenizers builds it: it cuts the
/// `continuing_subword_prefix`'s length off the front of each merge's second token
/// (`&b[prefix_len..]` in models/bpe/model.rs), whatever that token's length.
fn check_merges(model: &Json) -> Result<()> {
    let Some(prefix) = model.get("continuing_subword_prefix").and_then(Json::as_str).filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    for merge in model.get("merges").and_then(Json::as_array).into_iter().flatten() {
        let second = match merge {
            Json::String(pair) => pair.split_once(' ').map(|(_, b)| b.to_string()),
            Json::Array(pair) => pair.get(1).and_then(Json::as_str).map(str::to_string),
            _ => None,
        };
        if let Some(b) = second.filter(|b| b.len() < prefix.len() || !b.is_char_boundary(prefix.len())) {
            return Err(MedgenError::format(format!(
                "tokenizer.json model: the merge {merge} has a second token `{b}` shorter than the continuing_subword_prefix `{prefix}`"
            )));
        }
    }
    Ok(())
}

/// Refuses the `TemplateProcessing` post-processors (at any depth of a `Sequence`) whose
/// single-sequence template would panic when text is encoded: tokenizers checks a template
/// when its builder makes one, not when it is deserialized, and then indexes sequence B and
/// the special tokens without looking (`apply_template` in processors/template.rs).
fn check_templates(processor: &Json) -> Result<()> {
    let bad = |reason: String| MedgenError::format(format!("tokenizer.json post_processor: {reason}"));
    match processor {
        Json::Array(items) => items.iter().try_for_each(check_templates),
        Json::Object(fields) => {
            // By its fields, not its "type": tokenizers reads an untyped object as a template too.
            if fields.contains_key("single") {
                let specials = fields.get("special_tokens").and_then(Json::as_object);
                for piece in fields.get("single").and_then(Json::as_array).into_iter().flatten() {
                    if let Some(seq) = piece.get("Sequence") {
                        if seq.get("id").and_then(Json::as_str) != Some("A") {
                            return Err(bad(format!("the single-sequence template uses {seq}, not sequence A")));
                        }
                    }
                    if let Some(id) = piece.get("SpecialToken").and_then(|t| t.get("id")) {
                        if !specials.is_some_and(|s| id.as_str().is_some_and(|id| s.contains_key(id))) {
                            return Err(bad(format!("the template names special token {id}, which special_tokens lacks")));
                        }
                    }
                }
            }
            fields.values().try_for_each(check_templates)
        }
        _ => Ok(()),
    }
}

/// Gemma's GGUF vocabulary as transformers rebuilds it (`gemma_tokenizer` in its gguf
/// integration). Runs of spaces are stored as spaces (user-defined tokens), where the
/// vocabulary spells them with "▁": they become ordinary pieces, reached by merges. And the
/// scores do not follow the merge order, which the tokens' order in the file does.
fn gemma_vocabulary(tokens: &mut [String], types: &mut [i64]) -> Vec<f64> {
    for (t, ty) in tokens.iter_mut().zip(types.iter_mut()) {
        if t.contains(' ') && t.trim().is_empty() {
            *t = "▁".repeat(t.chars().count());
            *ty = 1;
        }
    }
    (0..tokens.len()).map(|i| -(i as f64)).collect()
}

/// GPT-2 style byte-level pre-tokenization, split the way llama.cpp's `tokenizer.ggml.pre`
/// family says the merges were learned.
fn byte_level_pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper> {
    let regex_split = |re: &str| -> Result<PreTokenizerWrapper> {
        let split = Split::new(SplitPattern::Regex(re.to_string()), SplitDelimiterBehavior::Isolated, false)
            .map_err(tok_err)?;
        Ok(PreSequence::new(vec![split.into(), tokenizers::pre_tokenizers::byte_level::ByteLevel::new(false, true, false).into()]).into())
    };
    let gpt2 = tokenizers::pre_tokenizers::byte_level::ByteLevel::new(false, true, true);
    Ok(match pre {
        // Digits one by one, then GPT-2's split (SmolLM, StarCoder, ...).
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva" => {
            PreSequence::new(vec![Digits::new(true).into(), gpt2.into()]).into()
        }
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "smaug-bpe" | "dbrx" | "pixtral" => regex_split(LLAMA3_SPLIT)?,
        "qwen2" | "deepseek-r1-qwen" | "megrez" => regex_split(QWEN2_SPLIT)?,
        _ => gpt2.into(),
    })
}

/// A SentencePiece-style BPE (Llama's `tokenizer.ggml.model = llama`): merges recovered from
/// the vocabulary and its scores, byte fallback, "▁" for spaces.
fn sentencepiece_bpe(tokens: &[String], scores: &[f64], unk: Option<String>, add_prefix: bool) -> Result<tokenizers::Tokenizer> {
    // The merges are sorted by score: a NaN compares with nothing, and sorting panics.
    if let Some((t, _)) = tokens.iter().zip(scores).find(|(_, s)| s.is_nan()) {
        return Err(MedgenError::format(format!("GGUF tokenizer.ggml.scores: the score of token `{t}` is NaN")));
    }
    let vocab: tokenizers::models::bpe::Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    // Every split of a token into two tokens is a merge ranked by the merged token's score
    // (ties: longer pieces first), as transformers' `generate_merges` ranks them. Tokens are
    // split on all threads (a vocabulary of 262,144 pieces has half a million merges); the
    // merges stay in the vocabulary's order.
    use rayon::prelude::*;
    let mut merges: Vec<(f64, usize, usize, u32, u32, &str, &str)> = tokens
        .par_iter()
        .zip(scores)
        .flat_map_iter(|(t, score)| {
            let mut local = Vec::new();
            for (i, _) in t.char_indices().skip(1) {
                let (l, r) = t.split_at(i);
                if let (Some(&li), Some(&ri)) = (vocab.get(l), vocab.get(r)) {
                    local.push((-*score, l.chars().count(), r.chars().count(), li, ri, l, r));
                }
            }
            local.sort_by_key(|m| (m.3, m.4));
            local
        })
        .collect();
    // Stable sort, descending score, then descending lengths (Python's reverse=True sort).
    merges.par_sort_by(|a, b| {
        a.0.partial_cmp(&b.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.1.cmp(&a.1))
            .then(b.2.cmp(&a.2))
    });
    let merges = merges.into_iter().map(|m| (m.5.to_string(), m.6.to_string())).collect();
    let mut builder = BPE::builder().vocab_and_merges(vocab, merges).fuse_unk(true).byte_fallback(true);
    if let Some(u) = unk {
        builder = builder.unk_token(u);
    }
    let mut tk = tokenizers::Tokenizer::new(builder.build().map_err(tok_err)?);
    let scheme = if add_prefix { PrependScheme::First } else { PrependScheme::Never };
    tk.with_pre_tokenizer(Some(Metaspace::new('▁', scheme, false)));
    let mut steps: Vec<DecoderWrapper> = vec![
        Replace::new("▁", " ").map_err(tok_err)?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_prefix {
        steps.push(Strip::new(' ', 1, 0).into());
    }
    tk.with_decoder(Some(DecoderSequence::new(steps)));
    Ok(tk)
}

pub(crate) fn read_json_opt(path: &Path) -> Result<Option<Json>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = crate::formats::read_text(path)?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| MedgenError::format(format!("{}: {e}", path.display())))
}

pub(crate) fn read_json(path: &Path) -> Result<Json> {
    read_json_opt(path)?.ok_or_else(|| {
        MedgenError::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte-level BPE `tokenizer.json` of one merge, with `decoder` in place of its decoder.
    fn tokenizer_json(decoder: &str) -> String {
        let model = r#"{"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}"#;
        format!(r#"{{"version": "1.0", "added_tokens": [], "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": {decoder}, "model": {model}}}"#)
    }

    #[test]
    fn a_syntax_error_inside_the_decoder_is_an_error_not_a_panic() {
        let tok = parse_tokenizer_json(&tokenizer_json(r#"{"type": "Fuse"}"#)).unwrap();
        assert_eq!(tok.encode("ab", false).unwrap().get_ids(), [2]);
        // A raw control character in a string: tokenizers' own parser panics on it.
        let err = parse_tokenizer_json(&tokenizer_json("{\"type\": \"Fu\u{1}se\"}")).unwrap_err();
        assert!(matches!(err, MedgenError::Tokenizer(_)), "{err}");
        assert!(parse_tokenizer_json(&tokenizer_json(r#"{"type": "Fuse""#)).is_err());
    }

    #[test]
    fn a_nan_token_score_is_an_error_not_a_panic_when_sorting_merges() {
        let tokens: Vec<String> = ["a", "b", "c", "ab", "bc", "abc", "ca", "cab", "bca", "aa"].map(String::from).to_vec();
        let mut scores: Vec<f64> = (0..tokens.len()).map(|i| -(i as f64)).collect();
        assert!(sentencepiece_bpe(&tokens, &scores, None, true).is_ok());
        scores[4] = f64::NAN;
        let err = sentencepiece_bpe(&tokens, &scores, None, true).unwrap_err();
        assert!(err.to_string().contains("token `bc` is NaN"), "{err}");
    }

    #[test]
    fn a_template_that_would_panic_when_encoding_is_refused() {
        let with_template = |single: &str| {
            let specials = r#"{"<s>": {"id": "<s>", "ids": [0], "tokens": ["a"]}}"#;
            let processor = format!(r#"{{"type": "TemplateProcessing", "single": {single}, "pair": [], "special_tokens": {specials}}}"#);
            tokenizer_json("null").replace(r#""post_processor": null"#, &format!(r#""post_processor": {{"type": "Sequence", "processors": [{processor}]}}"#))
        };
        let bos = r#"{"SpecialToken": {"id": "<s>", "type_id": 0}}"#;
        let seq = |id: &str| format!(r#"{{"Sequence": {{"id": "{id}", "type_id": 0}}}}"#);
        let tok = parse_tokenizer_json(&with_template(&format!("[{bos}, {}]", seq("A")))).unwrap();
        assert_eq!(tok.encode("ab", true).unwrap().get_ids(), [0, 2]);
        for single in [format!(r#"[{{"SpecialToken": {{"id": "</s>", "type_id": 0}}}}, {}]"#, seq("A")), format!("[{}]", seq("B"))] {
            let err = parse_tokenizer_json(&with_template(&single)).unwrap_err();
            assert!(matches!(err, MedgenError::ModelFormat(_)), "{err}");
            let untyped = with_template(&single).replace(r#""type": "TemplateProcessing", "#, "");
            assert!(matches!(parse_tokenizer_json(&untyped), Err(MedgenError::ModelFormat(_))));
        }
    }

    #[test]
    fn merges_shorter_than_the_subword_prefix_are_refused_not_a_panic() {
        // The fuzzer's input: a BPE model whose prefix ("##") is longer than a merge's second token.
        let model = |merges: &str| {
            let model = format!(r###"{{"type": "BPE", "vocab": {{"a": 0, "b": 1, "ab": 2, "##b": 3, "a##b": 4}}, "continuing_subword_prefix": "##", "merges": {merges}}}"###);
            tokenizer_json("null").replace(r#"{"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}"#, &model)
        };
        assert!(parse_tokenizer_json(&model(r###"["a ##b"]"###)).is_ok());
        for merges in [r#"["a b"]"#, r#"[["a", "b"]]"#, r#"[["a", "aé"]]"#] {
            let err = parse_tokenizer_json(&model(merges)).unwrap_err();
            assert!(matches!(err, MedgenError::ModelFormat(_)) && err.to_string().contains("continuing_subword_prefix"), "{err}");
        }
    }
}
