//! Required sections enforced while decoding: a logits processor that makes a draft contain
//! each of its task's section headings, in order, once, and end when the last section does.
//!
//! The rules, read off the tokens generated so far (so the same processor serves greedy
//! decoding, sampling and every beam):
//! - The draft starts with the first heading ("Diagnoses:" and a line break; Chinese notes get
//!   the Chinese headings, "出院诊断：").
//! - In a section's body the model writes freely, except that it may not end (the end-of-text
//!   token's probability goes to a line break), nor complete a line that is the heading of a
//!   section other than the next one (the colon or line break after it is banned). A line the
//!   model writes as the next section's heading starts that section.
//! - A blank line after some text ends a section: the next heading follows, forced, or after
//!   the last section the end of the text.
//! - When the tokens left are only enough for the headings still missing, the next heading is
//!   forced at once. A budget too small for the headings is an error before decoding.
//!
//! The tokenizer must be able to write a line break (T5's SentencePiece vocabulary cannot: its
//! models get an error rather than a draft whose headings no reader can find).

use std::sync::Arc;

use super::sections::{heading, names};
use super::{is_chinese, Section, Task};
use crate::error::{MedgenError, Result};
use crate::generation::LogitsConstraint;
use crate::tokenizer::Tokenizer;

/// The constraint of one task's sections for one note's language and one tokenizer.
#[derive(Debug)]
pub struct SectionConstraint {
    sections: &'static [Section],
    /// `forced[j][t]`: the tokens of heading `j` after a text that ends in `t` line breaks
    /// (`2 - t` line breaks, the heading, a colon and a line break).
    forced: Vec<[Vec<u32>; 3]>,
    /// `reserve[j]`: the most tokens the headings from `j` on can take.
    reserve: Vec<usize>,
    /// The token of one line break and of two (one, if the vocabulary has no pair).
    newline: [u32; 2],
    /// Tokens that start with what completes a heading: a colon, a line break, bold's `*`.
    closers: Vec<u32>,
    eos: Vec<u32>,
    texts: Arc<Vec<String>>,
}

/// Where the draft stands, read off its tokens.
#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Writing the heading of `section` after `breaks` line breaks; `pos` tokens of it done.
    Heading { section: usize, breaks: usize, pos: usize },
    /// In the body of `section`: the line so far, whether the body has text yet, and the line
    /// breaks that end the text.
    Body { section: usize, line: String, text: bool, breaks: usize },
    /// After the last section.
    Done,
}

impl SectionConstraint {
    /// The constraint for `task`'s sections, in the language of `note`, for `tok`'s model and
    /// a budget of `max_new_tokens`.
    ///
    /// Errors: `InvalidArgument` when the budget cannot hold every heading and a token of
    /// each body, or when the tokenizer cannot write a line break or has no end-of-text token.
    pub fn new(task: &Task, note: &str, tok: &Tokenizer, max_new_tokens: usize) -> Result<Self> {
        let chinese = is_chinese(note);
        let encode = |text: &str| tok.encode(text, false);
        let nl = encode("\n")?;
        let nl2 = encode("\n\n")?;
        let newline = match (nl.as_slice(), nl2.as_slice()) {
            ([one], [two]) => [*one, *two],
            ([one], _) => [*one, *one],
            _ => {
                return Err(MedgenError::invalid(
                    "sections",
                    "this model's tokenizer cannot write a line break, so its drafts cannot have section headings on lines of their own",
                ))
            }
        };
        if tok.decode(&[newline[0]], false)? != "\n" {
            return Err(MedgenError::invalid("sections", "this model's tokenizer does not write a line break as one token"));
        }
        if tok.eos_ids().is_empty() {
            return Err(MedgenError::invalid("sections", "the model has no end-of-text token"));
        }
        let mut forced = Vec::new();
        for section in task.sections {
            let heading = if chinese { format!("{}：\n", section.chinese) } else { format!("{}:\n", section.name) };
            forced.push([encode(&format!("\n\n{heading}"))?, encode(&format!("\n{heading}"))?, encode(&heading)?]);
        }
        let mut reserve = vec![0; forced.len() + 1];
        for j in (0..forced.len()).rev() {
            reserve[j] = reserve[j + 1] + forced[j].iter().map(Vec::len).max().unwrap_or(0);
        }
        let need = forced[0][2].len() + reserve[1] + forced.len();
        if need > max_new_tokens {
            return Err(MedgenError::invalid(
                "max_new_tokens",
                format!(
                    "{max_new_tokens} is too few for the {} required sections of {}: their headings and a token of each body need {need}",
                    forced.len(),
                    task.name
                ),
            ));
        }
        let texts = tok.token_texts();
        let closers = (0..texts.len() as u32)
            .filter(|&t| texts[t as usize].trim_start_matches(' ').starts_with([':', '：', '\n', '*', '】']))
            .collect();
        Ok(SectionConstraint { sections: task.sections, forced, reserve, newline, closers, eos: tok.eos_ids().to_vec(), texts })
    }

    /// Where a draft of `generated` tokens stands, with `max_new_tokens` in all.
    fn state(&self, generated: &[u32], max_new_tokens: usize) -> State {
        let mut state = State::Heading { section: 0, breaks: 2, pos: 0 };
        for (p, &token) in generated.iter().enumerate() {
            state = self.budget(state, p, max_new_tokens);
            let text = self.texts.get(token as usize).map_or("", String::as_str);
            if !text.is_empty() {
                state = self.read(state, token, text);
            }
        }
        self.budget(state, generated.len(), max_new_tokens)
    }

    /// Forces the next heading when the tokens left after `p` are only enough for the
    /// headings still to come.
    fn budget(&self, state: State, p: usize, max_new_tokens: usize) -> State {
        match state {
            State::Body { section, breaks, .. }
                if section + 1 < self.forced.len() && max_new_tokens.saturating_sub(p) <= self.reserve[section + 1] =>
            {
                State::Heading { section: section + 1, breaks: breaks.min(2), pos: 0 }
            }
            state => state,
        }
    }

    /// The state after `token`, whose text is `text`.
    fn read(&self, state: State, token: u32, text: &str) -> State {
        match state {
            State::Heading { section, breaks, pos } => {
                let forced = &self.forced[section][breaks];
                let pos = if forced.get(pos) == Some(&token) { pos + 1 } else { pos };
                if pos < forced.len() {
                    State::Heading { section, breaks, pos }
                } else {
                    State::Body { section, line: String::new(), text: false, breaks: 1 }
                }
            }
            State::Body { mut section, mut line, text: mut has_text, mut breaks } => {
                for c in text.chars() {
                    if c != '\n' {
                        line.push(c);
                        if !c.is_whitespace() {
                            (has_text, breaks) = (true, 0);
                        }
                        continue;
                    }
                    // A line the model wrote as the next heading starts the next section.
                    let next = self.sections.get(section + 1);
                    if let (Some(next), Some(h)) = (next, heading(&line)) {
                        if names(next, &h) {
                            section += 1;
                            let after = line.split_once([':', '：']).map_or("", |(_, rest)| rest);
                            has_text = !after.trim().is_empty();
                        }
                    }
                    line.clear();
                    breaks += 1;
                    if has_text && breaks >= 2 {
                        return if section + 1 < self.sections.len() {
                            State::Heading { section: section + 1, breaks: 2, pos: 0 }
                        } else {
                            State::Done
                        };
                    }
                }
                State::Body { section, line, text: has_text, breaks }
            }
            State::Done => State::Done,
        }
    }
}

/// Sets every score to -inf but `token`'s.
fn force(scores: &mut [f32], token: u32) {
    let keep = scores.get(token as usize).copied().filter(|s| s.is_finite()).unwrap_or(0.0);
    scores.iter_mut().for_each(|s| *s = f32::NEG_INFINITY);
    if let Some(s) = scores.get_mut(token as usize) {
        *s = keep;
    }
}

/// ln(e^a + e^b), with -inf for none.
fn log_add(a: f32, b: f32) -> f32 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    if hi == f32::NEG_INFINITY {
        hi
    } else {
        hi + (lo - hi).exp().ln_1p()
    }
}

impl LogitsConstraint for SectionConstraint {
    fn apply(&self, scores: &mut [f32], generated: &[u32], max_new_tokens: usize) {
        match self.state(generated, max_new_tokens) {
            State::Heading { section, breaks, pos } => {
                if let Some(&token) = self.forced[section][breaks].get(pos) {
                    force(scores, token);
                }
            }
            State::Done => force(scores, self.eos[0]),
            State::Body { section, line, text, breaks } => {
                if section + 1 < self.sections.len() {
                    // Ending now would leave sections out: the end goes to a line break instead
                    // (which, after text, leads to the next heading).
                    let mut eos = f32::NEG_INFINITY;
                    for &e in &self.eos {
                        if let Some(s) = scores.get_mut(e as usize) {
                            eos = log_add(eos, *s);
                            *s = f32::NEG_INFINITY;
                        }
                    }
                    let nl = self.newline[usize::from(breaks == 0)];
                    if let (true, Some(s)) = (text, scores.get_mut(nl as usize)) {
                        *s = log_add(*s, eos);
                    }
                }
                // A heading other than the next one may not be completed.
                if let Some(h) = heading(&line) {
                    let other = self.sections.iter().enumerate().any(|(j, s)| j != section + 1 && names(s, &h));
                    if other && !line.contains([':', '：']) {
                        for &t in &self.closers {
                            if let Some(s) = scores.get_mut(t as usize) {
                                *s = f32::NEG_INFINITY;
                            }
                        }
                    }
                }
            }
        }
    }
}
