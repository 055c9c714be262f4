//! The generated-text handle and its accessors.

use std::ffi::{c_char, CString};
use std::sync::OnceLock;

use engine::{FinishReason, Generation};

use crate::boundary::guard;

/// A generated text with its metadata. Made by the generation functions, released by
/// `medgen_text_free` (once). Immutable: safe to read from several threads at once.
pub struct medgen_text {
    generation: Generation,
    /// The text followed by a NUL.
    c_text: Vec<u8>,
    tokens: Vec<i32>,
    /// Beam search's sequences' texts, NUL-terminated.
    sequences: Vec<CString>,
    json: OnceLock<CString>,
}

impl medgen_text {
    pub(crate) fn new(generation: Generation) -> Self {
        let mut c_text = Vec::with_capacity(generation.text.len() + 1);
        c_text.extend_from_slice(generation.text.as_bytes());
        c_text.push(0);
        let tokens = generation.token_ids.iter().map(|&t| t as i32).collect();
        // A generated text holds no NUL in practice; one would cut the C string there.
        let sequences = generation
            .sequences
            .iter()
            .map(|s| CString::new(s.text.split('\0').next().unwrap_or_default()).unwrap_or_default())
            .collect();
        medgen_text { generation, c_text, tokens, sequences, json: OnceLock::new() }
    }
}

/// Why generation ended.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum medgen_finish_reason {
    /// The model produced its end-of-sequence token.
    MEDGEN_FINISH_EOS = 0,
    /// A stop string appeared (it is not part of the text).
    MEDGEN_FINISH_STOP = 1,
    /// `max_new_tokens` were generated.
    MEDGEN_FINISH_LENGTH = 2,
    /// The streaming callback cancelled.
    MEDGEN_FINISH_CANCELLED = 3,
    /// Returned for a NULL text.
    MEDGEN_FINISH_NONE = -1,
}

/// Reads a field of a text, or gives `fallback` for NULL.
fn read<T>(t: *const medgen_text, fallback: T, f: impl FnOnce(&medgen_text) -> T) -> T {
    // SAFETY: the caller passes NULL or a live text (the contract of every accessor).
    match unsafe { t.as_ref() } {
        Some(t) => guard(fallback, || f(t)),
        None => fallback,
    }
}

/// The generated text, NUL-terminated UTF-8, owned by `t` (NULL for NULL). The text itself
/// holds no NUL in practice; `medgen_text_len` gives its length in bytes either way.
///
/// # Safety
/// `t` is NULL or a live text.
#[no_mangle]
pub unsafe extern "C" fn medgen_text_str(t: *const medgen_text) -> *const c_char {
    read(t, std::ptr::null(), |t| t.c_text.as_ptr().cast())
}

/// The length of the text in bytes, without the NUL (0 for NULL).
///
/// # Safety
/// `t` is NULL or a live text.
#[no_mangle]
pub unsafe extern "C" fn medgen_text_len(t: *const medgen_text) -> usize {
    read(t, 0, |t| t.generation.text.len())
}

/// Why generation ended (MEDGEN_FINISH_NONE for NULL).
///
/// # Safety
/// `t` is NULL or a live text.
#[no_mangle]
pub unsafe extern "C" fn medgen_text_finish_reason(t: *const medgen_text) -> medgen_finish_reason {
    use medgen_finish_reason::*;
    read(t, MEDGEN_FINISH_NONE, |t| match t.generation.finish_reason {
        FinishReason::Eos => MEDGEN_FINISH_EOS,
        FinishReason::Stop => MEDGEN_FINISH_STOP,
        FinishReason::Length => MEDGEN_FINISH_LENGTH,
        FinishReason::Cancelled => MEDGEN_FINISH_CANCELLED,
    })
}

/// The number of generated tokens (0 for NULL).
///
/// # Safety
/// `t` is NULL or a live text.
#[no_mangle]
pub unsafe extern "C" fn medgen_text_n_tokens(t: *const medgen_text) -> usize {
    read(t, 0, |t| t.tokens.len())
}

/// The generated token ids, `medgen_text_n_tokens(t)` of them, owned by `t` (NULL for NULL).
///
/// # Safety
/// `t` is NULL or a live text.
#[no_mangle]
pub unsafe extern "C" fn medgen_text_tokens(t: *const medgen_text) -> *const i32 {
    read(t, std::ptr::null(), |t| t.tokens.as_ptr())
}

/// Each generated token's log-probability, `medgen_text_n_tokens(t)` of them, owned by `t`;
/// NULL unless the parameters asked for `logprobs` (and for NULL).
///
/// # Safety
/// `t` is NULL or a live text.
#[no_mangle]
pub unsafe extern "C" fn medgen_text_logprobs(t: *const medgen_text) -> *const f32 {
    read(t, std::ptr::null(), |t| t.generation.logprobs.as_ref().map_or(std::ptr::null(), |l| l.as_ptr()))
}

/// The sampler's seed: the one given, or the random one chosen (0 for NULL).
///
/// # Safety
/// `t` is NULL or a live text.
#[no_mangle]
pub unsafe extern "C" fn medgen_text_seed(t: *const medgen_text) -> u64 {
    read(t, 0, |t| t.generation.seed)
}

/// Everything about the generation as one JSON object, as `medgen generate --json` prints
/// it (text, token_ids, prompt_token_ids, finish_reason, logprobs, timings, seed);
/// NUL-terminated, owned by `t` (NULL for NULL).
///
/// # Safety
/// `t` is NULL or a live text.
#[no_mangle]
pub unsafe extern "C" fn medgen_text_json(t: *const medgen_text) -> *const c_char {
    read(t, std::ptr::null(), |t| {
        t.json
            .get_or_init(|| {
                // serde_json escapes control characters, so the JSON holds no NUL byte.
                let json = serde_json::to_string(&t.generation).unwrap_or_default();
                CString::new(json).unwrap_or_default()
            })
            .as_ptr()
    })
}

/// The number of sequences beam search returned (num_return_sequences), best first; 0
/// without beam search (and for NULL).
///
/// # Safety
/// `t` is NULL or a live text.
#[no_mangle]
pub unsafe extern "C" fn medgen_text_n_sequences(t: *const medgen_text) -> usize {
    read(t, 0, |t| t.sequences.len())
}

/// Beam search's sequence `i` (0 is the best, the same as `medgen_text_str`): its text,
/// NUL-terminated and owned by `t`, and its score (transformers' sequences_scores) written
/// to `*score_out` unless that is NULL. NULL when `i` is out of range (or `t` is NULL).
///
/// # Safety
/// `t` is NULL or a live text; `score_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn medgen_text_sequence(t: *const medgen_text, i: usize, score_out: *mut f32) -> *const c_char {
    read(t, std::ptr::null(), |t| match (t.sequences.get(i), t.generation.sequences.get(i)) {
        (Some(text), Some(seq)) => {
            if !score_out.is_null() {
                // SAFETY: the caller vouches that a non-NULL score_out is writable.
                unsafe { score_out.write(seq.score) };
            }
            text.as_ptr()
        }
        _ => std::ptr::null(),
    })
}

/// Releases a text. NULL does nothing; must not be freed twice.
///
/// # Safety
/// `t` is NULL or a text from this library not yet freed.
#[no_mangle]
pub unsafe extern "C" fn medgen_text_free(t: *mut medgen_text) {
    if !t.is_null() {
        guard((), || drop(unsafe { Box::from_raw(t) }));
    }
}
