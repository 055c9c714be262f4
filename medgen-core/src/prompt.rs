//! The requests every surface (the command, Python, C) makes of a model: a [`Prompt`], the
//! one rule for empty prompts, and many prompts run in batches with a per-step hook.

use std::ops::ControlFlow;

use crate::chat::ChatMessage;
use crate::error::{MedgenError, Result};
use crate::generation::{Generation, GenerationConfig};
use crate::Model;

/// What a model is asked to continue. As JSON (a line of `--batch-file`): a string or
/// `{"prompt": "..."}`, a list of token ids, or `{"messages": [...]}`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(from = "PromptJson")]
pub enum Prompt {
    /// Text, tokenized with the model's BOS/EOS rules.
    Text(String),
    /// Token ids, as they are.
    Ids(Vec<u32>),
    /// A conversation, through the model's chat template.
    Chat { messages: Vec<ChatMessage> },
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum PromptJson {
    Text(String),
    Object { prompt: String },
    Ids(Vec<u32>),
    Chat { messages: Vec<ChatMessage> },
}

impl From<PromptJson> for Prompt {
    fn from(p: PromptJson) -> Self {
        match p {
            PromptJson::Text(t) | PromptJson::Object { prompt: t } => Prompt::Text(t),
            PromptJson::Ids(ids) => Prompt::Ids(ids),
            PromptJson::Chat { messages } => Prompt::Chat { messages },
        }
    }
}

impl From<&str> for Prompt {
    fn from(text: &str) -> Self {
        Prompt::Text(text.to_string())
    }
}

impl From<String> for Prompt {
    fn from(text: String) -> Self {
        Prompt::Text(text)
    }
}

impl From<Vec<ChatMessage>> for Prompt {
    fn from(messages: Vec<ChatMessage>) -> Self {
        Prompt::Chat { messages }
    }
}

impl Prompt {
    /// The one empty-prompt rule: text that is empty or only whitespace, no token ids, or no
    /// messages is an `InvalidArgument` named `prompt`. A prompt with nothing to read gives a
    /// model nothing to continue but its start token, which is never what a caller meant.
    pub fn check(&self) -> Result<()> {
        let empty = match self {
            Prompt::Text(t) => t.trim().is_empty(),
            Prompt::Ids(ids) => ids.is_empty(),
            Prompt::Chat { messages } => messages.is_empty(),
        };
        if empty {
            return Err(MedgenError::invalid("prompt", "the prompt is empty"));
        }
        Ok(())
    }
}

/// The prompts of a JSON-lines text (`--batch-file`), each line a [`Prompt`] as JSON, each
/// with its line number (from 1); blank lines are skipped. The first malformed or empty line
/// is the error: its number and what is wrong with it.
pub fn read_json_lines(text: &str) -> std::result::Result<Vec<(usize, Prompt)>, (usize, String)> {
    let mut prompts = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let prompt: Prompt = serde_json::from_str(line).map_err(|e| {
            (i + 1, format!("expected a JSON string, {{\"prompt\": ...}} or {{\"messages\": [...]}} ({e})"))
        })?;
        prompt.check().map_err(|e| (i + 1, e.to_string()))?;
        prompts.push((i + 1, prompt));
    }
    Ok(prompts)
}

/// Bytes per token of the context past which a text prompt is first tokenized by its head
/// alone (see [`Model::refuse_long_text_early`]): ten times what English or Chinese takes.
pub const PROBE_BYTES_PER_TOKEN: usize = 64;

/// Prompts per batch when a caller does not say (`--batch-size`, Python's `batch_size`).
pub const DEFAULT_BATCH_SIZE: usize = 8;

/// The most prompts one batch may hold: each row of a batch keeps a KV cache of its own.
pub const MAX_BATCH: usize = 1024;

/// The one rule for batch sizes: 1 to [`MAX_BATCH`].
pub fn check_batch_size(batch_size: usize) -> Result<()> {
    if batch_size == 0 || batch_size > MAX_BATCH {
        return Err(MedgenError::invalid("batch_size", format!("{batch_size} is outside 1..={MAX_BATCH}")));
    }
    Ok(())
}

impl Model {
    /// The token ids of `prompt`, after [`Prompt::check`].
    pub fn prompt_ids(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        prompt.check()?;
        match prompt {
            Prompt::Text(t) => {
                self.refuse_long_text_early(t)?;
                self.tokenize(t)
            }
            Prompt::Ids(ids) => Ok(ids.clone()),
            Prompt::Chat { messages } => {
                messages.iter().try_for_each(|m| self.refuse_long_text_early(&m.content))?;
                self.chat_ids(messages)
            }
        }
    }

    /// A `ContextLength` error for text far longer than the context, found by tokenizing only
    /// its head: [`PROBE_BYTES_PER_TOKEN`] bytes per token of the context, cut at whitespace.
    /// (A 20 MB prompt took 12 s and 0.9 GB to tokenize whole before the context refused
    /// it.) Text the head does not settle is left to the full check after tokenizing.
    pub(crate) fn refuse_long_text_early(&self, text: &str) -> Result<()> {
        self.refuse_text_past(text, 1)
    }

    /// [`Model::refuse_long_text_early`] for text that is still to shrink by less than
    /// `times` (a note before de-identification): refused when its head holds `times` contexts.
    pub(crate) fn refuse_text_past(&self, text: &str, times: usize) -> Result<()> {
        let limit = self.info().context_length.saturating_mul(times);
        let mut cut = limit.saturating_mul(PROBE_BYTES_PER_TOKEN);
        if text.len() <= cut {
            return Ok(());
        }
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let cut = text[..cut].rfind(char::is_whitespace).unwrap_or(cut);
        // The head's last token may differ from the whole text's there: one token of slack.
        let n = self.tokenizer().encode(&text[..cut], false)?.len();
        if n > limit + 1 {
            let kind = if self.info().encoder_decoder { "encoder input" } else { "prompt" };
            let what = format!("{kind}: at least, counted on its first {cut} of {} bytes", text.len());
            return Err(MedgenError::context(n, self.info().context_length, what));
        }
        Ok(())
    }

    /// Generates after `prompt`, calling `on_step` after every step with the text it made
    /// safe to show (often empty: special tokens, beam steps); `Break` cancels. A caller
    /// that must notice Ctrl-C checks for it here, on every step.
    pub fn generate_prompt(
        &self,
        prompt: &Prompt,
        cfg: &GenerationConfig,
        on_step: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        self.generator(self.prompt_ids(prompt)?, cfg)?.run_steps(on_step)
    }

    /// Generates for every prompt, `batch_size` prompts per batch, each batch one pass through
    /// the network per step (see [`Model::generate_batch_ids`]). Every prompt is turned into
    /// ids before the first batch runs, so a bad prompt fails the call at once; its error
    /// names it by index. `on_step` runs before each step (`Break` cancels the prompts of the
    /// running batch and ends the call); `on_result` gets each result, in prompt order, as its
    /// batch finishes (`Break` ends the call).
    pub fn generate_prompts(
        &self,
        prompts: &[Prompt],
        cfg: &GenerationConfig,
        batch_size: usize,
        mut on_step: impl FnMut() -> ControlFlow<()>,
        mut on_result: impl FnMut(Generation) -> ControlFlow<()>,
    ) -> Result<()> {
        check_batch_size(batch_size)?;
        if prompts.is_empty() {
            return Err(MedgenError::invalid("prompts", "the batch is empty"));
        }
        let ids = prompts.iter().enumerate().map(|(i, p)| self.prompt_ids(p).map_err(|e| e.in_batch(i)));
        let ids = ids.collect::<Result<Vec<_>>>()?;
        for batch in ids.chunks(batch_size) {
            let mut cancelled = false;
            let results = self.generate_batch_ids(batch.to_vec(), cfg, || {
                let flow = on_step();
                cancelled |= flow.is_break();
                flow
            })?;
            for g in results {
                if on_result(g).is_break() {
                    return Ok(());
                }
            }
            if cancelled {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_blank_prompts_of_every_kind_are_refused() {
        for p in [Prompt::from(""), Prompt::from(" \n\t"), Prompt::Ids(vec![]), Prompt::Chat { messages: vec![] }] {
            assert!(matches!(p.check(), Err(MedgenError::InvalidArgument { name: "prompt", .. })), "{p:?}");
        }
        assert!(Prompt::from(" x ").check().is_ok() && Prompt::Ids(vec![0]).check().is_ok());
    }

    #[test]
    fn batch_file_lines_read_as_prompts() {
        let p: Prompt = serde_json::from_str(r#""Impression:""#).unwrap();
        assert_eq!(p, Prompt::from("Impression:"));
        let p: Prompt = serde_json::from_str(r#"{"prompt": "Impression:"}"#).unwrap();
        assert_eq!(p, Prompt::from("Impression:"));
        let p: Prompt = serde_json::from_str(r#"{"messages": [{"role": "user", "content": "hi"}]}"#).unwrap();
        assert_eq!(p, Prompt::from(vec![ChatMessage::new("user", "hi")]));
        assert_eq!(serde_json::from_str::<Prompt>("[1, 2]").unwrap(), Prompt::Ids(vec![1, 2]));
    }
}
