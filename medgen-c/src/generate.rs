//! Generation through the C ABI: parameters, plain, chat and streaming generation.

use std::ffi::{c_char, c_int, c_void};
use std::ops::ControlFlow;

use engine::{ChatMessage, EarlyStopping, Generation, GenerationConfig, Prompt};

use crate::boundary::{arg, ffi_boundary, init_params, null, read_params, slice_arg, str_arg, write_out, Failure, FfiResult, Params};
use crate::medgen_status::{self, *};
use crate::model::medgen_model;
use crate::text::medgen_text;

/// Generation options, one field per option of the Rust core with the same name and
/// default. Start from `medgen_generation_params_default()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct medgen_generation_params {
    /// The struct's size as the caller's header declares it; `*_default()` sets it. Lets
    /// the struct grow at the end without breaking programs built against an older header.
    pub struct_size: usize,
    /// Most tokens to generate, at least 1 (default: 256).
    pub max_new_tokens: usize,
    /// The end-of-sequence token is suppressed until this many tokens are made (default: 0).
    pub min_new_tokens: usize,
    /// Sample instead of taking the most likely token (default: false, greedy).
    pub do_sample: bool,
    /// Divides the logits when sampling; 0 means greedy (default: 1.0).
    pub temperature: f32,
    /// Keep only the k most likely tokens when sampling; 0 disables (default: 50).
    pub top_k: usize,
    /// Nucleus sampling mass, in (0, 1] (default: 1.0).
    pub top_p: f32,
    /// Drop tokens less likely than min_p times the most likely one, in [0, 1] (default: 0.0).
    pub min_p: f32,
    /// Penalty on tokens already seen, > 0; 1 disables (default: 1.0).
    pub repetition_penalty: f32,
    /// Use `seed` for the sampler; false picks a random seed, reported by
    /// `medgen_text_seed` (default: false).
    pub has_seed: bool,
    /// The sampler's seed when `has_seed` is true (default: 0).
    pub seed: u64,
    /// `n_stop` NUL-terminated strings; generation ends before the first occurrence of any,
    /// which is never emitted. The strings are read during the call only (default: NULL, 0).
    pub stop: *const *const c_char,
    /// The number of strings in `stop` (default: 0).
    pub n_stop: usize,
    /// Record each generated token's log-probability, read with `medgen_text_logprobs`
    /// (default: false).
    pub logprobs: bool,
    /// Beams of beam search, 1 to 128; 1 disables it (default: 1).
    pub num_beams: usize,
    /// Beam search ranks finished sequences by summed log-probabilities divided by
    /// length ** length_penalty (default: 1.0).
    pub length_penalty: f32,
    /// As transformers' early_stopping (default: MEDGEN_EARLY_STOPPING_FALSE).
    pub early_stopping: medgen_early_stopping,
    /// Sequences beam search returns, at most num_beams; read them with
    /// `medgen_text_sequence` (default: 1).
    pub num_return_sequences: usize,
    /// No n-gram of this size occurs twice; 0 disables (default: 0).
    pub no_repeat_ngram_size: usize,
}

/// When beam search stops: a MEDGEN_EARLY_STOPPING_* value, for
/// `medgen_generation_params.early_stopping` (values in the 200s).
pub type medgen_early_stopping = i32;
/// `medgen_early_stopping`: stop when the best running beam cannot beat the finished ones at
/// its current length (transformers' default).
pub const MEDGEN_EARLY_STOPPING_FALSE: medgen_early_stopping = 200;
/// `medgen_early_stopping`: stop as soon as num_beams sequences are finished.
pub const MEDGEN_EARLY_STOPPING_TRUE: medgen_early_stopping = 201;
/// `medgen_early_stopping`: stop only when no beam can improve at any length.
pub const MEDGEN_EARLY_STOPPING_NEVER: medgen_early_stopping = 202;

/// Fills `size` bytes at `p` with the default generation parameters (greedy, 256 new tokens
/// at most); what the header's inline `medgen_generation_params_default()` calls.
///
/// # Safety
/// `p` is NULL or writable for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn medgen_generation_params_init(p: *mut medgen_generation_params, size: usize) -> medgen_status {
    unsafe { init_params(p, size) }
}

// SAFETY: repr(C), `struct_size` first, plain C field types.
unsafe impl Params for medgen_generation_params {
    const MIN_SIZE: usize = std::mem::size_of::<Self>();
    const BOOLS: &'static [(usize, &'static str)] = &[
        (std::mem::offset_of!(Self, do_sample), "do_sample"),
        (std::mem::offset_of!(Self, has_seed), "has_seed"),
        (std::mem::offset_of!(Self, logprobs), "logprobs"),
    ];
}

impl Default for medgen_generation_params {
    fn default() -> Self {
    let d = GenerationConfig::default();
    medgen_generation_params {
        struct_size: std::mem::size_of::<Self>(),
        max_new_tokens: d.max_new_tokens,
        min_new_tokens: d.min_new_tokens,
        do_sample: d.do_sample,
        temperature: d.temperature,
        top_k: d.top_k,
        top_p: d.top_p,
        min_p: d.min_p,
        repetition_penalty: d.repetition_penalty,
        has_seed: d.seed.is_some(),
        seed: d.seed.unwrap_or(0),
        stop: std::ptr::null(),
        n_stop: 0,
        logprobs: d.logprobs,
        num_beams: d.num_beams,
        length_penalty: d.length_penalty,
        early_stopping: MEDGEN_EARLY_STOPPING_FALSE,
        num_return_sequences: d.num_return_sequences,
        no_repeat_ngram_size: d.no_repeat_ngram_size,
    }
    }
}

impl medgen_generation_params {
    /// # Safety
    /// `stop` is NULL or readable for `n_stop` pointers to NUL-terminated strings.
    pub(crate) unsafe fn config(&self) -> FfiResult<GenerationConfig> {
        let mut stop = Vec::with_capacity(self.n_stop.min(1024));
        for (i, &s) in unsafe { slice_arg(self.stop, self.n_stop, "params.stop") }?.iter().enumerate() {
            stop.push(unsafe { str_arg(s, &format!("params.stop[{i}]")) }?.to_string());
        }
        let cfg = GenerationConfig {
            max_new_tokens: self.max_new_tokens,
            min_new_tokens: self.min_new_tokens,
            do_sample: self.do_sample,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            seed: self.has_seed.then_some(self.seed),
            stop,
            logprobs: self.logprobs,
            num_beams: self.num_beams,
            length_penalty: self.length_penalty,
            early_stopping: match self.early_stopping {
                MEDGEN_EARLY_STOPPING_FALSE => EarlyStopping::False,
                MEDGEN_EARLY_STOPPING_TRUE => EarlyStopping::True,
                MEDGEN_EARLY_STOPPING_NEVER => EarlyStopping::Never,
                e => {
                    return Err(Failure(
                        MEDGEN_ERR_INVALID_ARGUMENT,
                        format!("early_stopping {e} is not a medgen_early_stopping (MEDGEN_EARLY_STOPPING_*, {MEDGEN_EARLY_STOPPING_FALSE} to {MEDGEN_EARLY_STOPPING_NEVER})"),
                    ))
                }
            },
            num_return_sequences: self.num_return_sequences,
            no_repeat_ngram_size: self.no_repeat_ngram_size,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// One chat message: `role` ("system", "user" or "assistant", or another plain name the
/// model's template takes, such as "tool"; one holding template markup is refused) and
/// `content`, both NUL-terminated UTF-8.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct medgen_message {
    pub role: *const c_char,
    pub content: *const c_char,
}

/// Receives each piece of text as it is generated: `piece` holds `len` bytes of UTF-8
/// followed by a NUL, valid during the call only (`len` 0 after each step of beam search, which
/// makes its text when it ends). A non-zero return cancels the generation.
/// The callback must not unwind (throw a C++ exception or longjmp) out of the call: that
/// would cross Rust frames, which is undefined behaviour (in practice the process aborts, or
/// leaks the generation's memory and locks). Catch everything inside it and return non-zero
/// to stop. It may call medgen functions, with the same model too; it must not free the
/// model that is generating. To cancel from another thread, set a flag this callback reads
/// and return non-zero when it is set.
pub type medgen_piece_callback =
    Option<unsafe extern "C" fn(piece: *const c_char, len: usize, user_data: *mut c_void) -> c_int>;

fn finish(out: *mut *mut medgen_text, generation: Generation) {
    let text = Box::into_raw(Box::new(medgen_text::new(generation)));
    unsafe { write_out(out, text) };
}

/// Checks the arguments every generation takes; the result is the model and the options.
///
/// # Safety
/// As for `medgen_generate`.
unsafe fn common<'a>(
    model: *const medgen_model,
    params: *const medgen_generation_params,
    out: *mut *mut medgen_text,
) -> FfiResult<(&'a engine::Model, GenerationConfig)> {
    let model = &unsafe { arg(model, "model") }?.model;
    let params = unsafe { read_params(params, "params") }?;
    if out.is_null() {
        return Err(null("out"));
    }
    Ok((model, unsafe { params.config() }?))
}

/// Generates a continuation of `prompt` (NUL-terminated). On success `*out` holds the text
/// and its metadata, to release with `medgen_text_free`.
///
/// # Safety
/// `model` is a live model; `prompt` a NUL-terminated string; `params` points to parameters
/// whose `stop` array is valid; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn medgen_generate(
    model: *const medgen_model,
    prompt: *const c_char,
    params: *const medgen_generation_params,
    out: *mut *mut medgen_text,
) -> medgen_status {
    ffi_boundary(|| {
        let (model, cfg) = unsafe { common(model, params, out) }?;
        let prompt = unsafe { str_arg(prompt, "prompt") }?;
        finish(out, model.generate(prompt, &cfg)?);
        Ok(())
    })
}

/// Generates a continuation of each of `prompts[0..n]`, all in one batch (one pass through
/// the network per step; each result equals the prompt generated alone with `params`). On
/// success `out[i]` holds prompt `i`'s text, each to release with `medgen_text_free`; on
/// failure nothing is written. An empty batch (`n` = 0), or one of more than 1024 prompts, is
/// `MEDGEN_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// As `medgen_generate`; `prompts` is readable for `n` NUL-terminated strings and `out` is
/// writable for `n` pointers.
#[no_mangle]
pub unsafe extern "C" fn medgen_generate_batch(
    model: *const medgen_model,
    prompts: *const *const c_char,
    n: usize,
    params: *const medgen_generation_params,
    out: *mut *mut medgen_text,
) -> medgen_status {
    ffi_boundary(|| {
        let (model, cfg) = unsafe { common(model, params, out) }?;
        // An empty batch is empty whatever `prompts` points to.
        if n == 0 {
            return Err(Failure(MEDGEN_ERR_INVALID_ARGUMENT, "`n` is 0: the batch is empty".into()));
        }
        // The bound before any pointer is read: a caller who passes too large an `n` may not
        // have that many.
        if n > engine::MAX_BATCH {
            return Err(Failure(MEDGEN_ERR_INVALID_ARGUMENT, format!("`n` is {n}: a batch holds 1 to {} prompts", engine::MAX_BATCH)));
        }
        if prompts.is_null() {
            return Err(null("prompts"));
        }
        let texts = unsafe { slice_arg(prompts, n, "prompts") }?
            .iter()
            .enumerate()
            .map(|(i, &p)| unsafe { str_arg(p, &format!("prompts[{i}]")) })
            .collect::<FfiResult<Vec<_>>>()?;
        let generations = model.generate_batch(&texts, &cfg)?;
        for (i, g) in generations.into_iter().enumerate() {
            finish(unsafe { out.add(i) }, g);
        }
        Ok(())
    })
}

/// The messages of a chat, checked.
///
/// # Safety
/// `messages` is NULL or readable for `n` messages.
unsafe fn chat_messages(messages: *const medgen_message, n: usize) -> FfiResult<Vec<ChatMessage>> {
    if messages.is_null() {
        return Err(null("messages"));
    }
    if n == 0 {
        return Err(Failure(MEDGEN_ERR_INVALID_ARGUMENT, "`n` is 0: a chat needs at least one message".into()));
    }
    unsafe { slice_arg(messages, n, "messages") }?
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let role = unsafe { str_arg(m.role, &format!("messages[{i}].role")) }?;
            let content = unsafe { str_arg(m.content, &format!("messages[{i}].content")) }?;
            Ok(ChatMessage::new(role, content))
        })
        .collect()
}

/// Runs a generation that streams its pieces to a C callback; a non-zero return cancels.
/// `run` passes every step's piece; an empty one reaches the callback only under beam search
/// (`empty_too`), whose steps make no text until it ends.
fn stream(
    on_piece: medgen_piece_callback,
    user_data: *mut c_void,
    out: *mut *mut medgen_text,
    empty_too: bool,
    run: impl FnOnce(&mut dyn FnMut(&str) -> ControlFlow<()>) -> engine::Result<Generation>,
) -> FfiResult<()> {
    let Some(on_piece) = on_piece else { return Err(null("on_piece")) };
    let mut buf = Vec::new();
    let generation = run(&mut |piece: &str| {
        if piece.is_empty() && !empty_too {
            return ControlFlow::Continue(());
        }
        buf.clear();
        buf.extend_from_slice(piece.as_bytes());
        buf.push(0);
        // SAFETY: the caller vouches for the callback and its user_data.
        match unsafe { on_piece(buf.as_ptr().cast(), piece.len(), user_data) } {
            0 => ControlFlow::Continue(()),
            _ => ControlFlow::Break(()),
        }
    })?;
    if generation.finish_reason == engine::FinishReason::Cancelled {
        return Err(Failure(MEDGEN_ERR_CANCELLED, "the callback cancelled the generation".into()));
    }
    finish(out, generation);
    Ok(())
}

/// Answers the conversation `messages[0..n]` through the model's chat template. On success
/// `*out` holds the reply, to release with `medgen_text_free`.
///
/// # Safety
/// As `medgen_generate`; `messages` is readable for `n` messages.
#[no_mangle]
pub unsafe extern "C" fn medgen_chat(
    model: *const medgen_model,
    messages: *const medgen_message,
    n: usize,
    params: *const medgen_generation_params,
    out: *mut *mut medgen_text,
) -> medgen_status {
    ffi_boundary(|| {
        let (model, cfg) = unsafe { common(model, params, out) }?;
        let messages = unsafe { chat_messages(messages, n) }?;
        finish(out, model.chat(&messages, &cfg)?);
        Ok(())
    })
}

/// Like `medgen_generate`, passing each piece of text to `on_piece` as it is made, on the
/// calling thread. If `on_piece` returns non-zero, generation stops and the function returns
/// MEDGEN_ERR_CANCELLED without writing `*out` (the pieces already delivered are the text).
/// With `num_beams` > 1 the text is known only when the search ends: `on_piece` then gets an
/// empty piece (`len` 0) after each step, so that it can cancel the search, and the best
/// sequence as the last piece.
///
/// # Safety
/// As `medgen_generate`; `on_piece` is a valid function and `user_data` whatever it expects.
#[no_mangle]
pub unsafe extern "C" fn medgen_generate_stream(
    model: *const medgen_model,
    prompt: *const c_char,
    params: *const medgen_generation_params,
    on_piece: medgen_piece_callback,
    user_data: *mut c_void,
    out: *mut *mut medgen_text,
) -> medgen_status {
    ffi_boundary(|| {
        let (model, cfg) = unsafe { common(model, params, out) }?;
        let prompt = unsafe { str_arg(prompt, "prompt") }?;
        stream(on_piece, user_data, out, cfg.num_beams > 1, |f| model.generate_prompt(&Prompt::from(prompt), &cfg, f))
    })
}

/// Like `medgen_chat`, streaming the reply to `on_piece` as `medgen_generate_stream` does.
///
/// # Safety
/// As `medgen_chat` and `medgen_generate_stream`.
#[no_mangle]
pub unsafe extern "C" fn medgen_chat_stream(
    model: *const medgen_model,
    messages: *const medgen_message,
    n: usize,
    params: *const medgen_generation_params,
    on_piece: medgen_piece_callback,
    user_data: *mut c_void,
    out: *mut *mut medgen_text,
) -> medgen_status {
    ffi_boundary(|| {
        let (model, cfg) = unsafe { common(model, params, out) }?;
        let messages = unsafe { chat_messages(messages, n) }?;
        stream(on_piece, user_data, out, cfg.num_beams > 1, |f| model.generate_prompt(&Prompt::from(messages), &cfg, f))
    })
}
