//! Chat templates: the model's Jinja template rendered with minijinja, configured the way
//! transformers renders it (`trim_blocks`, `lstrip_blocks`, Python string methods,
//! `raise_exception`), with a bound on its work. The rendering marks which parts of the
//! prompt came from messages, so that only the template's own markup makes control tokens.

use std::ops::Range;

use minijinja::{context, Environment, ErrorKind};

use crate::error::{MedgenError, Result};

/// Template instructions one rendering may run: a conversation of thousands of turns
/// takes well under a tenth of it; a template that loops without end fails past it.
pub const TEMPLATE_FUEL: u64 = 5_000_000;

/// The most a rendering may write: eight times the messages' text plus 1 MiB of markup. A
/// template that repeats text past it (`{{ content * 1000 }}` in a loop) fails with a
/// template error before it fills memory. (Strings a template builds without writing them,
/// doubling one with `~` in a chain of `set`s, are bounded only by the fuel.)
pub fn max_rendered_bytes(messages: &[ChatMessage]) -> usize {
    messages.iter().fold(1 << 20, |n: usize, m| n.saturating_add(m.content.len().saturating_mul(8)))
}

/// A `Write` into memory that fails past `limit` bytes.
struct Bounded {
    out: Vec<u8>,
    limit: usize,
    over: bool,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len().saturating_add(buf.len()) > self.limit {
            self.over = true;
            return Err(std::io::Error::from(std::io::ErrorKind::FileTooLarge));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Noncharacters, which Unicode keeps for a program's internal use: they mark where each
/// message's text starts and ends in a rendering. Messages may not contain them.
const OPEN: char = '\u{FDD0}';
const CLOSE: char = '\u{FDD1}';

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// "system", "user" or "assistant".
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A model's chat template (Jinja source).
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
}

impl ChatTemplate {
    pub fn new(source: String) -> Self {
        ChatTemplate { source }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders `messages`; `add_generation_prompt` opens the assistant's turn.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        bos_token: Option<&str>,
        eos_token: Option<&str>,
    ) -> Result<String> {
        Ok(self.render_marked(messages, add_generation_prompt, bos_token, eos_token)?.0)
    }

    /// Renders `messages` as [`ChatTemplate::render`] does, with the byte ranges of the text
    /// that came from the messages' contents (all else is the template's markup). Roles
    /// must be plain names (ASCII letters, digits, `_`, `-`; at most 32): the template
    /// compares and prints them as markup.
    pub fn render_marked(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        bos_token: Option<&str>,
        eos_token: Option<&str>,
    ) -> Result<(String, Vec<Range<usize>>)> {
        let marked = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let plain_name = |r: &str| r.len() <= 32 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if m.role.is_empty() || !plain_name(&m.role) {
                    let reason = format!("message {i}: role {:?} is not a plain name (ASCII letters, digits, `_`, `-`; at most 32)", m.role);
                    return Err(MedgenError::invalid("messages", reason));
                }
                if m.content.contains([OPEN, CLOSE]) {
                    let reason = format!("message {i} contains U+FDD0 or U+FDD1, noncharacters medgen keeps to mark message text");
                    return Err(MedgenError::invalid("messages", reason));
                }
                // Marks around the text without its outer whitespace, so a template's `trim`
                // still trims; the whitespace is left outside, where it makes no control token.
                let core = m.content.trim();
                let lead = &m.content[..m.content.len() - m.content.trim_start().len()];
                let trail = &m.content[lead.len() + core.len()..];
                Ok(ChatMessage::new(m.role.clone(), format!("{lead}{OPEN}{core}{CLOSE}{trail}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let rendered = self.render_raw(&marked, add_generation_prompt, bos_token, eos_token)?;
        let mut text = String::with_capacity(rendered.len());
        let (mut spans, mut open) = (Vec::new(), None);
        for c in rendered.chars() {
            match (c, open) {
                (OPEN, None) => open = Some(text.len()),
                (CLOSE, Some(start)) => {
                    spans.push(start..text.len());
                    open = None;
                }
                (OPEN | CLOSE, _) => return Err(cut_text()),
                _ => text.push(c),
            }
        }
        if open.is_some() {
            return Err(cut_text());
        }
        Ok((text, spans))
    }

    fn render_raw(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        bos_token: Option<&str>,
        eos_token: Option<&str>,
    ) -> Result<String> {
        let mut env = Environment::new();
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
        });
        let template = env.template_from_str(&self.source)?;
        let ctx = context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => bos_token.unwrap_or(""),
            eos_token => eos_token.unwrap_or(""),
        };
        let mut out = Bounded { out: Vec::new(), limit: max_rendered_bytes(messages), over: false };
        if let Err(e) = template.render_captured_to(ctx, &mut out) {
            if !out.over {
                return Err(e.into());
            }
            let msg = format!("the output passed {} bytes (eight times the messages plus 1 MiB)", out.limit);
            return Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg).into());
        }
        String::from_utf8(out.out).map_err(|e| MedgenError::internal("chat template", format!("minijinja wrote invalid UTF-8: {e}")))
    }
}

fn cut_text() -> MedgenError {
    MedgenError::Unsupported("the chat template cuts into message text, so medgen cannot tell its markup from the text".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, messages: &[ChatMessage]) -> Result<(String, Vec<Range<usize>>)> {
        ChatTemplate::new(source.into()).render_marked(messages, true, Some("<s>"), Some("</s>"))
    }

    #[test]
    fn marks_find_the_message_text_after_the_template_trims_it() {
        let src = "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content | trim }}|{{ m.content }}|{% endfor %}";
        let (text, spans) = render(src, &[ChatMessage::new("user", "  a <b>\n")]).unwrap();
        assert_eq!(text, "<s>[user]a <b>|  a <b>\n|");
        let pieces: Vec<&str> = spans.iter().map(|r| &text[r.clone()]).collect();
        assert_eq!(pieces, ["a <b>", "a <b>"]);
    }

    #[test]
    fn a_template_that_cuts_message_text_is_refused_not_misread() {
        let err = render("{{ messages[0].content[:3] }}", &[ChatMessage::new("user", "abcdef")]).unwrap_err();
        assert!(matches!(err, MedgenError::Unsupported(_)), "{err}");
    }

    #[test]
    fn roles_must_be_plain_names_and_text_may_not_hold_the_marks() {
        let src = "{% for m in messages %}{{ m.role }}{{ m.content }}{% endfor %}";
        for role in ["", "user\n", "<|im_start|>", "système", &"a".repeat(33)] {
            let err = render(src, &[ChatMessage::new(role, "x")]).unwrap_err();
            assert!(matches!(err, MedgenError::InvalidArgument { name: "messages", .. }), "{role:?}: {err}");
        }
        assert!(render(src, &[ChatMessage::new("tool_call-2", "x")]).is_ok());
        let err = render(src, &[ChatMessage::new("user", "a\u{FDD1}b")]).unwrap_err();
        assert!(err.to_string().contains("U+FDD0"), "{err}");
    }

    #[test]
    fn a_template_that_writes_without_end_is_stopped_by_its_output_bound() {
        let src = "{% for i in range(100000) %}{{ messages[0].content * 1000 }}{% endfor %}";
        let err = render(src, &[ChatMessage::new("user", "x".repeat(1000))]).unwrap_err();
        assert!(matches!(err, MedgenError::Template(_)), "{err:?}");
        assert!(err.to_string().contains("passed 1056624 bytes"), "{err}");
        // Eight copies of the text fit.
        let src = "{% for i in range(8) %}{{ messages[0].content }}{% endfor %}";
        assert!(render(src, &[ChatMessage::new("user", "x".repeat(1 << 20))]).is_ok());
    }

    #[test]
    fn a_template_that_never_ends_runs_out_of_fuel() {
        let src = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        let err = render(src, &[ChatMessage::new("user", "x")]).unwrap_err();
        assert!(matches!(err, MedgenError::Template(_)), "{err}");
        assert!(err.to_string().contains("fuel"), "{err}");
    }
}
