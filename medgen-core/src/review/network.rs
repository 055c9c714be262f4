//! The network's own signal for attribution: where the model looks in the note while it
//! reads each sentence of the draft. The draft is read by teacher forcing after the task's
//! prompt ([`Model::forced`]); each draft token's attention on the note's tokens (self-
//! attention of a decoder-only network, cross-attention of an encoder-decoder), averaged over
//! heads and layers, is summed per source clause and averaged over the unit's tokens; and
//! the log-probability the note adds to each token (pointwise mutual information) is
//! averaged per unit.

use std::ops::Range;

use super::attribution::{draft_units, source_clauses, Piece};
use crate::error::{MedgenError, Result};
use crate::pipeline::{task_prompt, TaskPrompt};
use crate::tasks::Task;
use crate::Model;

/// What the network says about each unit of a draft (in [`super::attribute`]'s order), or
/// about its first units when the draft did not fit the model's context.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSignal {
    /// For each unit and each clause of the source, the share of the unit's attention on the
    /// source that fell on the clause (each row sums to 1, or is all zero for a unit without
    /// tokens).
    pub shares: Vec<Vec<f32>>,
    /// For each unit, how much the note raised the model's log-probability of the unit's
    /// tokens: the mean, over its tokens, of the log-probability after the task's prompt
    /// with the note less that after the prompt without it (in nats). Text drawn from the
    /// note gains; text the note does not state gains little or nothing.
    pub gains: Vec<f32>,
}

/// The network's signal on `draft`: `model` reads it by teacher forcing after `task`'s
/// prompt with `source` (the note as the task gave it to the model, de-identified), and
/// again after the prompt without the note. `json_schema` is the schema the task asked
/// for, if any.
///
/// A draft longer than the context leaves after the prompt is read up to the context: the
/// signal then covers only the units read (the last perhaps in part), and those past it have
/// none.
///
/// Errors: `InvalidArgument` when the source or the draft has no sentence, or the prompt
/// alone exceeds the model's context.
pub fn signal(model: &Model, task: &Task, source: &str, draft: &str, json_schema: Option<&str>) -> Result<NetworkSignal> {
    let (clauses, units) = (source_clauses(source), draft_units(draft));
    if clauses.is_empty() {
        return Err(MedgenError::invalid("source", "the source has no sentence to attribute to"));
    }
    if units.is_empty() {
        return Err(MedgenError::invalid("draft", "the draft has no sentence to attribute"));
    }
    let tok = model.tokenizer();
    // The note goes into the prompt trimmed: offsets of its tokens count from its first
    // non-space character.
    let note = source.trim();
    let lead = source[..source.len() - source.trim_start().len()].chars().count();
    let (prompt, note_offsets) = match task_prompt(model, task, note, json_schema) {
        TaskPrompt::Chat(messages) => {
            let content = messages.last().map_or("", |m| m.content.as_str());
            let at = content.rfind(note).ok_or_else(|| MedgenError::internal("attribution", "the note is not in the prompt"))?;
            tok.encode_chat_marked(&messages, at..at + note.len())?
        }
        TaskPrompt::Text(text) => {
            let at = text.rfind(note).ok_or_else(|| MedgenError::internal("attribution", "the note is not in the prompt"))?;
            tok.encode_marked(&text, at..at + note.len())?
        }
    };
    let (mut target, mut draft_offsets) = tok.encode_offsets(draft)?;
    if target.is_empty() {
        return Err(MedgenError::invalid("draft", "the draft has no tokens"));
    }
    // The same draft after the prompt without the note: how much the note raised each token.
    let bare = match task_prompt(model, task, "", json_schema) {
        TaskPrompt::Chat(messages) => model.chat_ids(&messages)?,
        TaskPrompt::Text(text) => tok.encode(&text, true)?,
    };
    // A draft that filled the context (read again, its tokens can outnumber those generated) is
    // read as far as the context goes; the units past that get no signal.
    let room = model.forced_room(prompt.len().max(bare.len()));
    if room == 0 {
        return Err(MedgenError::invalid("source", format!("the task's prompt with the note ({} tokens) exceeds the model's context", prompt.len())));
    }
    let cut = target.len() > room;
    if cut {
        target.truncate(room);
        draft_offsets.truncate(room);
    }
    let forced = model.forced(&prompt, &target)?;
    let without = model.forced(&bare, &target)?;

    // The clause each prompt token belongs to, and the unit each draft token.
    let clause_of: Vec<Option<usize>> =
        note_offsets.iter().map(|r| if r.is_empty() { None } else { piece_at(&clauses, r.start + lead..r.end + lead) }).collect();
    let mut shares = vec![vec![0.0f32; clauses.len()]; units.len()];
    let mut counts = vec![0usize; units.len()];
    let mut gains = vec![0.0f32; units.len()];
    let mut gain_counts = vec![0usize; units.len()];
    for ((a, b), offsets) in forced.logprobs.iter().zip(&without.logprobs).zip(&draft_offsets) {
        if let Some(u) = piece_at(&units, offsets.clone()) {
            gains[u] += a - b;
            gain_counts[u] += 1;
        }
    }
    gains.iter_mut().zip(&gain_counts).for_each(|(g, n)| *g /= (*n).max(1) as f32);
    for (row, offsets) in forced.attention.iter().zip(&draft_offsets) {
        let Some(u) = piece_at(&units, offsets.clone()) else { continue };
        let mut per_clause = vec![0.0f32; clauses.len()];
        let mut on_source = 0.0;
        for (w, c) in row.iter().zip(&clause_of) {
            if let Some(c) = c {
                per_clause[*c] += w;
                on_source += w;
            }
        }
        if on_source > 0.0 {
            shares[u].iter_mut().zip(&per_clause).for_each(|(s, w)| *s += w / on_source);
            counts[u] += 1;
        }
    }
    for (row, n) in shares.iter_mut().zip(counts) {
        row.iter_mut().for_each(|s| *s /= n.max(1) as f32);
    }
    if cut {
        // Only the units the model read (the last of them perhaps in part) have a signal.
        let read = gain_counts.iter().rposition(|&n| n > 0).map_or(0, |u| u + 1);
        shares.truncate(read);
        gains.truncate(read);
    }
    Ok(NetworkSignal { shares, gains })
}

/// The piece that overlaps the character range `r` most, if any.
fn piece_at(pieces: &[Piece], r: Range<usize>) -> Option<usize> {
    let i = pieces.partition_point(|p| p.end <= r.start);
    (i..pieces.len())
        .take_while(|&i| pieces[i].start < r.end.max(r.start + 1))
        .max_by_key(|&i| pieces[i].end.min(r.end) as isize - pieces[i].start.max(r.start) as isize)
}
