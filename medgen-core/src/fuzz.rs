//! Entry points for the fuzz targets in `fuzz/` (cargo fuzz): one function per target, each
//! taking the fuzzer's bytes through the code that production runs on a file's contents.
//! Errors are expected answers; a panic, an abort, a hang or a huge allocation is a bug.
//! Not a stable API.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapMut};
use serde_json::Value as Json;

use crate::chat::{ChatMessage, ChatTemplate};
use crate::deid::{self, DeidConfig, Operator};
use crate::formats::gguf::GgufFile;
use crate::formats::safetensors::Shard;
use crate::{metrics, ModelConfig, Seq2SeqConfig, Tokenizer};

/// The byte that splits one input into several fields (message texts, two documents):
/// it never occurs in UTF-8 text, so text fields keep every character they can hold.
const SEP: u8 = 0xFF;

/// The `SEP`-separated fields of `data`, as text (invalid UTF-8 replaced).
fn fields(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == SEP).map(|f| String::from_utf8_lossy(f).into_owned()).collect()
}

/// `data` in a read-only anonymous map: the memory the file readers parse, as `Mmap::map`
/// gives it to them for a file.
fn mapped(data: &[u8]) -> Option<Mmap> {
    let mut map = MmapMut::map_anon(data.len()).ok()?;
    map.copy_from_slice(data);
    map.make_read_only().ok()
}

/// A GGUF file's header, metadata and tensor infos; when they parse, the model config
/// and the tokenizer that loading builds from them, and a short text through the tokenizer.
pub fn gguf(data: &[u8]) {
    let Some(map) = mapped(data) else { return };
    let Ok(file) = GgufFile::parse(PathBuf::from("fuzz.gguf"), map) else { return };
    let _ = ModelConfig::from_gguf(&file);
    if let Ok(tok) = Tokenizer::from_gguf(&file) {
        round_trip(&tok, "Patient denies chest pain. 患者 ▁x\n");
    }
}

/// A safetensors file's header.
pub fn safetensors_header(data: &[u8]) {
    if let Some(map) = mapped(data) {
        let _ = Shard::parse(Path::new("fuzz.safetensors"), map);
    }
}

/// Fields: `tokenizer.json`, `tokenizer_config.json` (optional), a text to encode
/// (optional). The tokenizer an HF folder with those files gives, with the text encoded,
/// decoded, and sent through the chat template if there is one.
pub fn tokenizer_json(data: &[u8]) {
    let fields = fields(data);
    let Ok(inner) = crate::tokenizer::parse_tokenizer_json(&fields[0]) else { return };
    let tcfg = fields.get(1).and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Json::Null);
    let text = fields.get(2).map_or("Patient denies chest pain. 患者 <|im_start|>", String::as_str);
    if let Ok(tok) = Tokenizer::from_hf_parts(inner, &tcfg, &Json::Null, &Json::Null, None) {
        round_trip(&tok, text);
        let _ = tok.encode_chat(&[ChatMessage::new("user", text)], true);
    }
}

fn round_trip(tok: &Tokenizer, text: &str) {
    for add_special in [false, true] {
        if let Ok(ids) = tok.encode(text, add_special) {
            let _ = tok.decode(&ids, true);
            let _ = tok.decode(&ids, false);
        }
    }
}

/// Fields: a chat template, then the messages' contents, alternately the user's and the
/// assistant's. The conversation rendered with its message text marked.
pub fn chat_template(data: &[u8]) {
    let mut fields = fields(data).into_iter();
    let Some(source) = fields.next() else { return };
    let messages: Vec<ChatMessage> = fields
        .zip(["user", "assistant"].into_iter().cycle())
        .map(|(content, role)| ChatMessage::new(role, content))
        .collect();
    let template = ChatTemplate::new(source);
    let _ = template.render_marked(&messages, true, Some("<s>"), Some("</s>"));
}

/// A `config.json`, read as loading reads it: decoder-only or encoder-decoder by its
/// `model_type` (both readers are run, so each sees every input).
pub fn config_json(data: &[u8]) {
    let Ok(json) = serde_json::from_slice::<Json>(data) else { return };
    let _ = ModelConfig::from_hf(&json);
    let _ = Seq2SeqConfig::from_hf(&json);
}

/// Any text de-identified with each operator. Asserted:
/// - every entity lies in the text (`start <= end <=` its length in characters) and its
///   `text` is the text's characters `start..end` (offsets count characters, see
///   [`deid::Entity`]);
/// - with placeholders, [`deid::reidentify`] gives the text back exactly when each placeholder
///   stands for one spelling (as many distinct (category, text) entities as mapping entries;
///   "Mr. Smith" after "John Smith" shares its placeholder and comes back as "John Smith") and
///   no placeholder already occurs in the text (reidentify replaces every occurrence of a
///   key, as its documentation says).
pub fn deid(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let chars: Vec<char> = text.chars().collect();
    for operator in [Operator::Redact, Operator::Mask, Operator::Placeholder, Operator::ShiftDates] {
        let config = DeidConfig { operator, date_shift_days: Some(-400), ..Default::default() };
        let Ok(out) = deid::deidentify(text, &config) else { continue };
        for e in &out.entities {
            assert!(e.start <= e.end && e.end <= chars.len(), "entity {e:?} outside a text of {} characters", chars.len());
            assert_eq!(chars[e.start..e.end].iter().collect::<String>(), e.text, "entity {e:?}");
        }
        if operator == Operator::Placeholder {
            let spellings: BTreeSet<_> = out.entities.iter().map(|e| (e.category, e.text.as_str())).collect();
            let keys_in_text = out.mapping.keys().any(|k| text.contains(k.as_str()));
            if spellings.len() == out.mapping.len() && !keys_in_text {
                assert_eq!(deid::reidentify(&out.text, &out.mapping), text);
            }
        }
    }
}

/// Fields: a source note and a draft. The draft's findings lie in it: offsets in characters,
/// `text` its characters `start..end`.
pub fn checks(data: &[u8]) {
    let fields = fields(data);
    let (source, output) = (&fields[0], fields.get(1).unwrap_or(&fields[0]));
    let chars: Vec<char> = output.chars().collect();
    for f in crate::pipeline::check_draft(source, output) {
        assert!(f.start <= f.end && f.end <= chars.len(), "finding {f:?} outside a draft of {} characters", chars.len());
        assert_eq!(chars[f.start..f.end].iter().collect::<String>(), f.text, "finding {f:?}");
    }
}

/// Fields: a prediction and a reference. ROUGE (with and without stemming), sentence BLEU,
/// and corpus BLEU over their lines; every score a number in its range.
pub fn metrics(data: &[u8]) {
    let fields = fields(data);
    let (prediction, reference) = (&fields[0], fields.get(1).unwrap_or(&fields[0]));
    for stem in [false, true] {
        let r = metrics::rouge(prediction, reference, stem);
        for s in [r.rouge1, r.rouge2, r.rouge_l, r.rouge_lsum] {
            for v in [s.precision, s.recall, s.fmeasure] {
                assert!((0.0..=1.0).contains(&v), "ROUGE {s:?}");
            }
        }
    }
    let bleu_in_range = |b: &metrics::Bleu| assert!((0.0..=100.0 + 1e-9).contains(&b.score), "BLEU {b:?}");
    bleu_in_range(&metrics::sentence_bleu(prediction, reference));
    let (mut predictions, mut references): (Vec<&str>, Vec<&str>) = (prediction.lines().collect(), reference.lines().collect());
    let n = predictions.len().min(references.len());
    predictions.truncate(n);
    references.truncate(n);
    if let Ok(b) = metrics::corpus_bleu(&predictions, &references) {
        bleu_in_range(&b);
    }
}

/// A `--batch-file`: prompts as JSON lines.
pub fn batch_file(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::prompt::read_json_lines(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed corpus of a target (fuzz/corpus/<target>/), by file name.
    fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        files.into_iter().map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap())).collect()
    }

    #[test]
    fn every_seed_runs_through_its_target() {
        type Target = (&'static str, fn(&[u8]));
        let targets: [Target; 9] = [
            ("gguf", gguf),
            ("safetensors_header", safetensors_header),
            ("tokenizer_json", tokenizer_json),
            ("chat_template", chat_template),
            ("config_json", config_json),
            ("deid", deid),
            ("checks", checks),
            ("metrics", metrics),
            ("batch_file", batch_file),
        ];
        for (target, run) in targets {
            let seeds = seeds(target);
            assert!(!seeds.is_empty(), "{target} has no seeds");
            for (_, data) in seeds {
                run(&data);
            }
        }
    }

    /// Seeds that stop at the first check explore nothing past it: each parser's seeds parse.
    #[test]
    fn seeds_are_valid_inputs_of_the_parsers() {
        for (name, data) in seeds("gguf") {
            let file = GgufFile::parse(PathBuf::from(&name), mapped(&data).unwrap()).unwrap();
            ModelConfig::from_gguf(&file).unwrap();
            let tok = Tokenizer::from_gguf(&file).unwrap();
            assert!(tok.chat_template().is_some(), "{name}");
        }
        for (name, data) in seeds("safetensors_header") {
            Shard::parse(Path::new(&name), mapped(&data).unwrap()).unwrap();
        }
        for (name, data) in seeds("tokenizer_json") {
            let inner = crate::tokenizer::parse_tokenizer_json(&fields(&data)[0]).unwrap_or_else(|e| panic!("{name}: {e}"));
            let tok = Tokenizer::from_hf_parts(inner, &Json::Null, &Json::Null, &Json::Null, None).unwrap();
            assert!(!tok.encode("Patient", false).unwrap().is_empty(), "{name}");
        }
        for (name, data) in seeds("config_json") {
            let json: Json = serde_json::from_slice(&data).unwrap();
            let parsed = match json["model_type"].as_str() {
                Some("t5" | "bart") => Seq2SeqConfig::from_hf(&json).map(drop),
                _ => ModelConfig::from_hf(&json).map(drop),
            };
            parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (name, data) in seeds("chat_template") {
            let fields = fields(&data);
            let messages = [ChatMessage::new("user", "x")];
            ChatTemplate::new(fields[0].clone()).render_marked(&messages, true, None, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (name, data) in seeds("batch_file") {
            assert!(!crate::prompt::read_json_lines(std::str::from_utf8(&data).unwrap()).unwrap().is_empty(), "{name}");
        }
    }
}
