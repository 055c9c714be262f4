//! The clinical layer through the C ABI: de-identification, the safety checks, ROUGE and
//! BLEU, and the task pipeline. Structured results that vary in shape (entities, findings,
//! a task's result) come back as JSON in a `medgen_string`; scores come back as structs.

use std::collections::BTreeMap;
use std::ffi::c_char;

use engine::deid::{self, DeidConfig, Engine, Operator};
use engine::{metrics, privacy};
use engine::TaskOptions;

use crate::boundary::{arg, ffi_boundary, guard, init_params, null, read_params, slice_arg, str_arg, write_out, Failure, FfiResult, Params};
use crate::generate::medgen_generation_params;
use crate::medgen_status::{self, *};
use crate::model::medgen_model;

/// A string made by medgen (JSON results, re-identified text), NUL-terminated UTF-8.
/// Released by `medgen_string_free` (once). Immutable: safe to read from several threads.
pub struct medgen_string {
    /// The text followed by a NUL.
    bytes: Vec<u8>,
}

fn give_string(out: *mut *mut medgen_string, text: String) {
    let mut bytes = text.into_bytes();
    bytes.push(0);
    unsafe { write_out(out, Box::into_raw(Box::new(medgen_string { bytes }))) };
}

fn check_out<T>(out: *mut T) -> FfiResult<()> {
    if out.is_null() {
        return Err(null("out"));
    }
    Ok(())
}

fn json<T: serde::Serialize>(value: &T) -> FfiResult<String> {
    serde_json::to_string(value).map_err(|e| Failure(MEDGEN_ERR_INTERNAL, format!("JSON: {e}")))
}

/// `value` as JSON to add to, through its text: `serde_json::to_value` would widen an f32
/// confidence to its f64 digits (0.8500000238418579, where the text says 0.85).
fn to_value<T: serde::Serialize>(value: &T) -> FfiResult<serde_json::Value> {
    serde_json::from_str(&json(value)?).map_err(|e| Failure(MEDGEN_ERR_INTERNAL, format!("JSON: {e}")))
}

/// Adds `start_byte` and `end_byte`, UTF-8 byte offsets into `text`, beside the character
/// offsets `start` and `end` of every item of `items` (a JSON array): C indexes the
/// caller's buffer in bytes.
fn add_byte_offsets(items: &mut serde_json::Value, text: &str) -> FfiResult<()> {
    let bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).chain([text.len()]).collect();
    for item in items.as_array_mut().into_iter().flatten() {
        for (chars, out) in [("start", "start_byte"), ("end", "end_byte")] {
            let at = item[chars].as_u64().and_then(|c| bytes.get(c as usize)).ok_or_else(|| {
                Failure(MEDGEN_ERR_INTERNAL, format!("internal error (a bug in medgen): offset {} past the text", item[chars]))
            })?;
            item[out] = (*at).into();
        }
    }
    Ok(())
}

/// The string, NUL-terminated (NULL for NULL).
///
/// # Safety
/// `s` is NULL or a live string.
#[no_mangle]
pub unsafe extern "C" fn medgen_string_str(s: *const medgen_string) -> *const c_char {
    unsafe { s.as_ref() }.map_or(std::ptr::null(), |s| s.bytes.as_ptr().cast())
}

/// The string's length in bytes, without the NUL (0 for NULL).
///
/// # Safety
/// `s` is NULL or a live string.
#[no_mangle]
pub unsafe extern "C" fn medgen_string_len(s: *const medgen_string) -> usize {
    unsafe { s.as_ref() }.map_or(0, |s| s.bytes.len() - 1)
}

/// Releases a string. NULL does nothing; must not be freed twice.
///
/// # Safety
/// `s` is NULL or a string from this library not yet freed.
#[no_mangle]
pub unsafe extern "C" fn medgen_string_free(s: *mut medgen_string) {
    if !s.is_null() {
        guard((), || drop(unsafe { Box::from_raw(s) }));
    }
}

/// A de-identification operator: a MEDGEN_DEID_* value, for `medgen_deid_params.mode`
/// (also inside `medgen_task_params.deid`). Each enum-like type of this header has its own
/// range of values (100s here), so that a constant of another type is refused with
/// MEDGEN_ERR_INVALID_ARGUMENT, never read as one of these.
pub type medgen_deid_operator = i32;
/// `medgen_deid_operator`: numbered placeholders, `[NAME_1]`, reversible.
pub const MEDGEN_DEID_PLACEHOLDER: medgen_deid_operator = 100;
/// `medgen_deid_operator`: `[CATEGORY]`.
pub const MEDGEN_DEID_REDACT: medgen_deid_operator = 101;
/// `medgen_deid_operator`: letters and digits become `*`.
pub const MEDGEN_DEID_MASK: medgen_deid_operator = 102;
/// `medgen_deid_operator`: dates shifted by `shift_days` or a shift derived from
/// `shift_key`, other identifiers placeholders.
pub const MEDGEN_DEID_SHIFT_DATES: medgen_deid_operator = 103;
/// `medgen_deid_operator`, for `medgen_task_params.deid.mode` only: the model sees the note
/// as it is. `medgen_deidentify` refuses it.
pub const MEDGEN_DEID_NONE: medgen_deid_operator = 104;

/// Which detectors find the identifiers: a MEDGEN_DEID_ENGINE_* value, for
/// `medgen_deid_params.engine`.
pub type medgen_deid_engine = i32;
/// `medgen_deid_engine`: patterns, word lists and context cues only; the fastest.
pub const MEDGEN_DEID_ENGINE_RULES: medgen_deid_engine = 600;
/// `medgen_deid_engine`: the learned tagger only.
pub const MEDGEN_DEID_ENGINE_MODEL: medgen_deid_engine = 601;
/// `medgen_deid_engine`: the rules and the tagger, united (the default).
pub const MEDGEN_DEID_ENGINE_ENSEMBLE: medgen_deid_engine = 602;

/// How to de-identify. Start from `medgen_deid_params_default()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct medgen_deid_params {
    /// The struct's size as the caller's header declares it; `*_default()` sets it. Lets
    /// the struct grow at the end without breaking programs built against an older header.
    pub struct_size: usize,
    /// The operator for every category (default: MEDGEN_DEID_PLACEHOLDER).
    pub mode: medgen_deid_operator,
    /// Shift dates by `shift_days` (default: false).
    pub has_shift_days: bool,
    /// Days to shift dates by, at most 36,500 either way (default: 0).
    pub shift_days: i64,
    /// NUL-terminated key (a patient id, say) from which the shift is derived when
    /// `has_shift_days` is false; NULL for none (default: NULL).
    pub shift_key: *const c_char,
    /// Which detectors find the identifiers (default: MEDGEN_DEID_ENGINE_ENSEMBLE). Added after
    /// 0.1.0: a caller built against an older header gets the default.
    pub engine: medgen_deid_engine,
    /// NUL-terminated path of a tagger file (from `medgen deid train`) to use instead of the
    /// built-in one; NULL for the built-in one (default: NULL). Added after 0.1.0.
    pub tagger: *const c_char,
}

/// Fills `size` bytes at `p` with the default de-identification parameters (placeholders,
/// no date shift); what the header's inline `medgen_deid_params_default()` calls.
///
/// # Safety
/// `p` is NULL or writable for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn medgen_deid_params_init(p: *mut medgen_deid_params, size: usize) -> medgen_status {
    unsafe { init_params(p, size) }
}

// SAFETY: repr(C), `struct_size` first, plain C field types.
unsafe impl Params for medgen_deid_params {
    const MIN_SIZE: usize = std::mem::offset_of!(Self, engine);
    const BOOLS: &'static [(usize, &'static str)] = &[(std::mem::offset_of!(Self, has_shift_days), "has_shift_days")];
}

impl Default for medgen_deid_params {
    fn default() -> Self {
        medgen_deid_params {
        struct_size: std::mem::size_of::<Self>(),
        mode: MEDGEN_DEID_PLACEHOLDER,
        has_shift_days: false,
        shift_days: 0,
        shift_key: std::ptr::null(),
        engine: MEDGEN_DEID_ENGINE_ENSEMBLE,
        tagger: std::ptr::null(),
        }
    }
}

impl medgen_deid_params {
    /// The configuration these parameters ask for; `None` for MEDGEN_DEID_NONE.
    unsafe fn config(&self) -> FfiResult<Option<DeidConfig>> {
        let operator = match self.mode {
            MEDGEN_DEID_PLACEHOLDER => Operator::Placeholder,
            MEDGEN_DEID_REDACT => Operator::Redact,
            MEDGEN_DEID_MASK => Operator::Mask,
            MEDGEN_DEID_SHIFT_DATES => Operator::ShiftDates,
            MEDGEN_DEID_NONE => return Ok(None),
            o => {
                let reason = format!("mode {o} is not a medgen_deid_operator (MEDGEN_DEID_*, {MEDGEN_DEID_PLACEHOLDER} to {MEDGEN_DEID_NONE})");
                return Err(Failure(MEDGEN_ERR_INVALID_ARGUMENT, reason));
            }
        };
        let key = if self.shift_key.is_null() { None } else { Some(unsafe { str_arg(self.shift_key, "shift_key") }?.to_string()) };
        let engine = match self.engine {
            MEDGEN_DEID_ENGINE_RULES => Engine::Rules,
            MEDGEN_DEID_ENGINE_MODEL => Engine::Model,
            MEDGEN_DEID_ENGINE_ENSEMBLE => Engine::Ensemble,
            e => {
                let reason = format!("engine {e} is not a medgen_deid_engine (MEDGEN_DEID_ENGINE_*, {MEDGEN_DEID_ENGINE_RULES} to {MEDGEN_DEID_ENGINE_ENSEMBLE})");
                return Err(Failure(MEDGEN_ERR_INVALID_ARGUMENT, reason));
            }
        };
        let tagger = if self.tagger.is_null() { None } else { Some(unsafe { str_arg(self.tagger, "tagger") }?.into()) };
        Ok(Some(DeidConfig {
            operator,
            date_shift_days: self.has_shift_days.then_some(self.shift_days),
            date_shift_key: key,
            engine,
            tagger,
            ..Default::default()
        }))
    }
}

/// Finds protected health information in `text` and replaces it. On success `*out` holds
/// JSON: `{"text", "entities": [{"category", "start", "end", "start_byte", "end_byte", "text",
/// "confidence"}], "mapping": {replacement: original}}`: `start`/`end` count characters of
/// `text` (as Python does), `start_byte`/`end_byte` its UTF-8 bytes. The mapping is PHI:
/// medgen keeps no copy of it.
///
/// # Safety
/// `text` is a NUL-terminated string; `params` points to parameters; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn medgen_deidentify(
    text: *const c_char,
    params: *const medgen_deid_params,
    out: *mut *mut medgen_string,
) -> medgen_status {
    ffi_boundary(|| {
        let text = unsafe { str_arg(text, "text") }?;
        let config = unsafe { read_params(params, "params")?.config() }?.ok_or_else(|| {
            Failure(MEDGEN_ERR_INVALID_ARGUMENT, "mode MEDGEN_DEID_NONE is for medgen_task_params: it de-identifies nothing".into())
        })?;
        check_out(out)?;
        let mut result = to_value(&deid::deidentify(text, &config)?)?;
        add_byte_offsets(&mut result["entities"], text)?;
        give_string(out, json(&result)?);
        Ok(())
    })
}

/// Puts the originals back into `text` (say, a draft written from a de-identified note):
/// `mapping_json` is the "mapping" object `medgen_deidentify` returned.
///
/// # Safety
/// `text` and `mapping_json` are NUL-terminated strings; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn medgen_reidentify(
    text: *const c_char,
    mapping_json: *const c_char,
    out: *mut *mut medgen_string,
) -> medgen_status {
    ffi_boundary(|| {
        let text = unsafe { str_arg(text, "text") }?;
        let mapping = unsafe { str_arg(mapping_json, "mapping_json") }?;
        check_out(out)?;
        let mapping: BTreeMap<String, String> = serde_json::from_str(mapping).map_err(|e| {
            Failure(MEDGEN_ERR_INVALID_ARGUMENT, format!("mapping_json is not a JSON object of strings: {e}"))
        })?;
        give_string(out, deid::reidentify(text, &mapping));
        Ok(())
    })
}

/// Checks a draft against its source note: numbers with units and medications the source
/// lacks, negation flips, and PHI the source lacks. On success `*out` holds JSON:
/// `{"findings": [{"kind", "start", "end", "start_byte", "end_byte", "text", "detail"}]}`,
/// `start`/`end` in characters and `start_byte`/`end_byte` in UTF-8 bytes of
/// `output`.
///
/// # Safety
/// `source` and `output` are NUL-terminated strings; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn medgen_check(
    source: *const c_char,
    output: *const c_char,
    out: *mut *mut medgen_string,
) -> medgen_status {
    ffi_boundary(|| {
        let source = unsafe { str_arg(source, "source") }?;
        let output = unsafe { str_arg(output, "output") }?;
        check_out(out)?;
        let mut findings = to_value(&engine::pipeline::check_draft(source, output))?;
        add_byte_offsets(&mut findings, output)?;
        give_string(out, json(&serde_json::json!({ "findings": findings }))?);
        Ok(())
    })
}

/// Byte offsets beside the character offsets of attributions: each unit's into `draft`, its
/// spans' into `source`.
fn attribution_offsets(units: &mut serde_json::Value, draft: &str, source: &str) -> FfiResult<()> {
    add_byte_offsets(units, draft)?;
    for unit in units.as_array_mut().into_iter().flatten() {
        add_byte_offsets(&mut unit["spans"], source)?;
    }
    Ok(())
}

/// Links each sentence of `draft` to the spans of `source` that support it. On success
/// `*out` holds JSON: `{"attributions": [{"start", "end", "start_byte", "end_byte", "text",
/// "spans": [{"start", "end", "start_byte", "end_byte", "score"}], "score", "supported",
/// "flags"}]}`; a unit's offsets are into `draft`, its spans' into `source`. Flags:
/// "no_support", "unknown_placeholder", "repetition", "finding". A draft or a source with no
/// sentence is MEDGEN_ERR_INVALID_ARGUMENT.
///
/// # Safety
/// `source` and `draft` are NUL-terminated strings; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn medgen_attribute(source: *const c_char, draft: *const c_char, out: *mut *mut medgen_string) -> medgen_status {
    ffi_boundary(|| {
        let source = unsafe { str_arg(source, "source") }?;
        let draft = unsafe { str_arg(draft, "draft") }?;
        check_out(out)?;
        let mut units = to_value(&engine::review::attribute(source, draft)?)?;
        attribution_offsets(&mut units, draft, source)?;
        give_string(out, json(&serde_json::json!({ "attributions": units }))?);
        Ok(())
    })
}

/// `medgen_attribute` with `model`'s own signal added: the model reads `draft` after `task`'s
/// prompt with and without `source` (two forward passes); its attention on the source helps
/// choose the spans, and how much the source raised its likelihood of each sentence
/// ("note_gain", nats per token) rescues paraphrases and flags sentences the source does not
/// raise at all ("no_gain"). A draft longer than the context leaves after the prompt is read
/// as far as it goes (the sentences past it get no signal). An unknown task, a draft or source
/// with no sentence, or a prompt with the source longer than the model's context is
/// MEDGEN_ERR_INVALID_ARGUMENT.
///
/// # Safety
/// `model` is a live model; `task`, `source` and `draft` are NUL-terminated strings; `out`
/// is writable.
#[no_mangle]
pub unsafe extern "C" fn medgen_attribute_with_model(
    model: *const medgen_model,
    task: *const c_char,
    source: *const c_char,
    draft: *const c_char,
    out: *mut *mut medgen_string,
) -> medgen_status {
    ffi_boundary(|| {
        let model = &unsafe { arg(model, "model") }?.model;
        let task = engine::tasks::get(unsafe { str_arg(task, "task") }?)?;
        let source = unsafe { str_arg(source, "source") }?;
        let draft = unsafe { str_arg(draft, "draft") }?;
        check_out(out)?;
        let findings = engine::pipeline::check_draft(source, draft);
        let mut units = to_value(&engine::review::attribute_with_model(model, task, source, draft, &findings)?)?;
        attribution_offsets(&mut units, draft, source)?;
        give_string(out, json(&serde_json::json!({ "attributions": units }))?);
        Ok(())
    })
}

/// A reviewer's decision: a MEDGEN_REVIEW_* value, for `medgen_review_decide`.
pub type medgen_review_decision = i32;
/// `medgen_review_decision`: the draft is right as it is.
pub const MEDGEN_REVIEW_ACCEPT: medgen_review_decision = 700;
/// `medgen_review_decision`: the reviewer corrected the draft.
pub const MEDGEN_REVIEW_EDIT: medgen_review_decision = 701;
/// `medgen_review_decision`: the draft is not to be used.
pub const MEDGEN_REVIEW_REJECT: medgen_review_decision = 702;

/// Appends a reviewer's decision on draft `draft_id` to the review log `log`: `reviewer`'s
/// identifier (a staff id, not a name), the time, and the SHA-256 of `final_text` (the text as
/// accepted or edited: required for those, NULL for a rejection). On success `*out` holds the
/// logged entry as JSON. A log that is not there is MEDGEN_ERR_IO (no file is made, so a
/// mistyped path never becomes a new log); one that fails its hash chain is
/// MEDGEN_ERR_AUDIT_TAMPERED (nothing is appended); a draft id the log lacks, a bad decision or
/// reviewer is MEDGEN_ERR_INVALID_ARGUMENT. Callers in several threads or processes may write to one log
/// at once: the file is locked from the check to the write, so they take turns.
///
/// # Safety
/// `log`, `draft_id` and `reviewer` are NUL-terminated strings, `final_text` one or NULL; `out`
/// is writable.
#[no_mangle]
pub unsafe extern "C" fn medgen_review_decide(
    log: *const c_char,
    draft_id: *const c_char,
    decision: medgen_review_decision,
    reviewer: *const c_char,
    final_text: *const c_char,
    out: *mut *mut medgen_string,
) -> medgen_status {
    use engine::review::log::{append_review, Decision};
    ffi_boundary(|| {
        let log = unsafe { str_arg(log, "log") }?;
        let draft_id = unsafe { str_arg(draft_id, "draft_id") }?;
        let reviewer = unsafe { str_arg(reviewer, "reviewer") }?;
        let text = if final_text.is_null() { None } else { Some(unsafe { str_arg(final_text, "final_text") }?) };
        check_out(out)?;
        let decision = match decision {
            MEDGEN_REVIEW_ACCEPT => Decision::Accepted,
            MEDGEN_REVIEW_EDIT => Decision::Edited,
            MEDGEN_REVIEW_REJECT => Decision::Rejected,
            d => {
                let reason = format!("decision {d} is not a medgen_review_decision (MEDGEN_REVIEW_*, {MEDGEN_REVIEW_ACCEPT} to {MEDGEN_REVIEW_REJECT})");
                return Err(Failure(MEDGEN_ERR_INVALID_ARGUMENT, reason));
            }
        };
        let review = append_review(std::path::Path::new(log), draft_id, decision, reviewer, text)?;
        give_string(out, json(&to_value(&review)?)?);
        Ok(())
    })
}

/// Checks the review log `log`'s hash chain. On success `*out` holds JSON: `{"entries",
/// "drafts", "reviews", "head_sha256"}`; a log that fails is MEDGEN_ERR_AUDIT_TAMPERED, its
/// message naming the first altered line. A log file that does not exist is MEDGEN_ERR_IO
/// (a mistyped path must not pass as a clean log). The chain cannot show that a whole log was
/// replaced by an earlier copy or a new one, so keep its last `entries` and `head_sha256`
/// elsewhere and compare.
///
/// # Safety
/// `log` is a NUL-terminated string; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn medgen_review_verify(log: *const c_char, out: *mut *mut medgen_string) -> medgen_status {
    ffi_boundary(|| {
        let log = unsafe { str_arg(log, "log") }?;
        check_out(out)?;
        let summary = engine::review::log::verify(std::path::Path::new(log))?;
        give_string(out, json(&to_value(&summary)?)?);
        Ok(())
    })
}

/// Precision, recall and F-measure.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct medgen_score {
    pub precision: f64,
    pub recall: f64,
    pub fmeasure: f64,
}

/// ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum, as the Python package rouge-score 0.1.2 computes them.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct medgen_rouge_scores {
    pub rouge1: medgen_score,
    pub rouge2: medgen_score,
    pub rouge_l: medgen_score,
    pub rouge_lsum: medgen_score,
}

/// BLEU as sacrebleu 2.6 computes it (13a tokenizer, exp smoothing), 0..100.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct medgen_bleu {
    pub score: f64,
    /// Matching n-grams, n = 1..4.
    pub counts: [u64; 4],
    /// Candidate n-grams, n = 1..4.
    pub totals: [u64; 4],
    /// n-gram precisions in percent.
    pub precisions: [f64; 4],
    /// Brevity penalty.
    pub bp: f64,
    pub sys_len: u64,
    pub ref_len: u64,
}

impl From<metrics::Score> for medgen_score {
    fn from(s: metrics::Score) -> Self {
        medgen_score { precision: s.precision, recall: s.recall, fmeasure: s.fmeasure }
    }
}

impl From<metrics::Bleu> for medgen_bleu {
    fn from(b: metrics::Bleu) -> Self {
        medgen_bleu {
            score: b.score,
            counts: b.counts,
            totals: b.totals,
            precisions: b.precisions,
            bp: b.bp,
            sys_len: b.sys_len,
            ref_len: b.ref_len,
        }
    }
}

/// ROUGE of `prediction` against `reference`, with Porter stemming if `use_stemmer`.
///
/// # Safety
/// `prediction` and `reference` are NUL-terminated strings; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn medgen_rouge(
    prediction: *const c_char,
    reference: *const c_char,
    use_stemmer: bool,
    out: *mut medgen_rouge_scores,
) -> medgen_status {
    ffi_boundary(|| {
        let prediction = unsafe { str_arg(prediction, "prediction") }?;
        let reference = unsafe { str_arg(reference, "reference") }?;
        check_out(out)?;
        let r = metrics::rouge(prediction, reference, use_stemmer);
        let scores = medgen_rouge_scores {
            rouge1: r.rouge1.into(),
            rouge2: r.rouge2.into(),
            rouge_l: r.rouge_l.into(),
            rouge_lsum: r.rouge_lsum.into(),
        };
        unsafe { write_out(out, scores) };
        Ok(())
    })
}

/// Sentence BLEU of `prediction` against `reference`.
///
/// # Safety
/// `prediction` and `reference` are NUL-terminated strings; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn medgen_sentence_bleu(
    prediction: *const c_char,
    reference: *const c_char,
    out: *mut medgen_bleu,
) -> medgen_status {
    ffi_boundary(|| {
        let prediction = unsafe { str_arg(prediction, "prediction") }?;
        let reference = unsafe { str_arg(reference, "reference") }?;
        check_out(out)?;
        unsafe { write_out(out, metrics::sentence_bleu(prediction, reference).into()) };
        Ok(())
    })
}

/// Corpus BLEU of `n` predictions against `n` references (one reference each). An empty
/// corpus (`n` 0, the arrays then possibly NULL) scores 0 with zero counts, as in Rust and
/// Python.
///
/// # Safety
/// `predictions` and `references` are readable for `n` NUL-terminated strings; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn medgen_corpus_bleu(
    predictions: *const *const c_char,
    references: *const *const c_char,
    n: usize,
    out: *mut medgen_bleu,
) -> medgen_status {
    ffi_boundary(|| {
        let predictions = unsafe { str_array(predictions, n, "predictions") }?;
        let references = unsafe { str_array(references, n, "references") }?;
        check_out(out)?;
        unsafe { write_out(out, metrics::corpus_bleu(&predictions, &references)?.into()) };
        Ok(())
    })
}

unsafe fn str_array<'a>(items: *const *const c_char, n: usize, name: &str) -> FfiResult<Vec<&'a str>> {
    unsafe { slice_arg(items, n, name) }?.iter().map(|&s| unsafe { str_arg(s, name) }).collect()
}

/// How to run a clinical task. Start from `medgen_task_params_default()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct medgen_task_params {
    /// The struct's size as the caller's header declares it; `*_default()` sets it. Lets
    /// the struct grow at the end without breaking programs built against an older header.
    pub struct_size: usize,
    /// How the note is de-identified before the model sees it, as `medgen_deidentify` does
    /// it, with `mode` MEDGEN_DEID_NONE for the note as it is; NULL for the defaults,
    /// placeholders (default: NULL). Read during the call only.
    pub deid: *const medgen_deid_params,
    /// Put the original identifiers back into the draft (default: false).
    pub reidentify: bool,
    /// NUL-terminated path of a review log (hash-chained JSON lines) to append the draft's
    /// audit record to; its id in the log is the result's "draft_id". NULL: not logged
    /// (default: NULL). Added after 0.1.0, as are the fields after it.
    pub review_log: *const c_char,
    /// Enforce the task's sections while decoding: every required heading, in order, once
    /// (default: false).
    pub constrain_sections: bool,
    /// Put the review page (one self-contained HTML document) in the result's "html"
    /// (default: false).
    pub html: bool,
    /// Write the draft as JSON of the task's schema (one string per required section),
    /// decoding constrained to it; the result's "json" holds it parsed (default: false).
    pub json_output: bool,
    /// NUL-terminated JSON schema to write the draft as instead (the subset medgen reads:
    /// objects, arrays, strings, numbers, booleans, null, enums); NULL: none (default: NULL).
    pub json_schema: *const c_char,
    /// Add the model's own signal to the attribution: it reads its draft again with and
    /// without the note (its attention, and the note's gain in likelihood per sentence,
    /// "note_gain"; default: false).
    pub network_attribution: bool,
}

/// Fills `size` bytes at `p` with the default task parameters (placeholders, not
/// re-identified); what the header's inline `medgen_task_params_default()` calls.
///
/// # Safety
/// `p` is NULL or writable for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn medgen_task_params_init(p: *mut medgen_task_params, size: usize) -> medgen_status {
    unsafe { init_params(p, size) }
}

// SAFETY: repr(C), `struct_size` first, plain C field types. The first version ended after
// `reidentify` (its size, padding included, is the offset of `review_log`).
unsafe impl Params for medgen_task_params {
    const MIN_SIZE: usize = std::mem::offset_of!(Self, review_log);
    const BOOLS: &'static [(usize, &'static str)] = &[
        (std::mem::offset_of!(Self, reidentify), "reidentify"),
        (std::mem::offset_of!(Self, constrain_sections), "constrain_sections"),
        (std::mem::offset_of!(Self, html), "html"),
        (std::mem::offset_of!(Self, json_output), "json_output"),
        (std::mem::offset_of!(Self, network_attribution), "network_attribution"),
    ];
}

impl Default for medgen_task_params {
    fn default() -> Self {
        medgen_task_params {
            struct_size: std::mem::size_of::<Self>(),
            deid: std::ptr::null(),
            reidentify: false,
            review_log: std::ptr::null(),
            constrain_sections: false,
            html: false,
            json_output: false,
            json_schema: std::ptr::null(),
            network_attribution: false,
        }
    }
}

/// The name of task number `i` ("discharge_summary", ...), or NULL past the last one. Static.
#[no_mangle]
pub extern "C" fn medgen_task_name(i: usize) -> *const c_char {
    guard(std::ptr::null(), || {
        static NAMES: std::sync::OnceLock<Vec<std::ffi::CString>> = std::sync::OnceLock::new();
        let names = NAMES.get_or_init(|| {
            engine::tasks::all().iter().filter_map(|t| std::ffi::CString::new(t.name).ok()).collect()
        });
        names.get(i).map_or(std::ptr::null(), |n| n.as_ptr())
    })
}

/// Runs the clinical pipeline: de-identify `note`, prompt the model with task `task`,
/// generate, re-identify if asked, check, attribute, audit. On success `*out` holds JSON:
/// `{"text", "sections", "missing_sections", "findings", "attributions", "tokens", "notice",
/// "audit", "draft_id", "source", "mapping"}`, "html" when asked and "json" (the draft parsed)
/// with a JSON schema. Findings, attributions
/// and tokens have character offsets and UTF-8 byte offsets (`start_byte`, `end_byte`) into
/// "text"; each attribution's "spans" have them into "source" (the text the draft was checked
/// against: the de-identified note, or `note` itself when re-identified). "draft_id" is the
/// draft's id in `review_log`, or null. "mapping" (placeholder → original) and a
/// re-identified "source" are PHI for the caller only; the audit record holds none.
///
/// # Safety
/// `model` is a live model; `task` and `note` NUL-terminated strings; the parameter
/// pointers point to parameters; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn medgen_run_task(
    model: *const medgen_model,
    task: *const c_char,
    note: *const c_char,
    task_params: *const medgen_task_params,
    params: *const medgen_generation_params,
    out: *mut *mut medgen_string,
) -> medgen_status {
    ffi_boundary(|| {
        let model = &unsafe { arg(model, "model") }?.model;
        let task = engine::tasks::get(unsafe { str_arg(task, "task") }?)?;
        let note = unsafe { str_arg(note, "note") }?;
        let tp = unsafe { read_params(task_params, "task_params") }?;
        let generation = unsafe { read_params(params, "params")?.config() }?;
        check_out(out)?;
        let deid = match tp.deid.is_null() {
            true => Some(DeidConfig::default()),
            false => unsafe { read_params(tp.deid, "task_params.deid")?.config() }?,
        };
        let review_log = match tp.review_log.is_null() {
            true => None,
            false => Some(std::path::PathBuf::from(unsafe { str_arg(tp.review_log, "task_params.review_log") }?)),
        };
        let json_schema = match (tp.json_schema.is_null(), tp.json_output) {
            (false, _) => Some(unsafe { str_arg(tp.json_schema, "task_params.json_schema") }?.to_string()),
            (true, true) => Some(task.json_schema()),
            (true, false) => None,
        };
        let opts = TaskOptions {
            deid,
            reidentify: tp.reidentify,
            generation,
            constrain_sections: tp.constrain_sections,
            json_schema,
            network_attribution: tp.network_attribution,
        };
        if let Some(log) = review_log.as_deref() {
            engine::review::log::check_appendable(log)?;
        }
        let result = engine::run_task(model, task, note, &opts, |_| std::ops::ControlFlow::Continue(()))?;
        let draft_id = review_log.as_deref().map(|log| engine::review::log::append_draft(log, &result.audit)).transpose()?;
        let mut value = to_value(&result)?;
        add_byte_offsets(&mut value["findings"], &result.text)?;
        add_byte_offsets(&mut value["tokens"], &result.text)?;
        attribution_offsets(&mut value["attributions"], &result.text, &result.source)?;
        value["mapping"] = serde_json::json!(result.mapping);
        value["source"] = serde_json::json!(result.source);
        value["draft_id"] = serde_json::json!(draft_id);
        if tp.html {
            value["html"] = serde_json::json!(result.to_html(draft_id.as_deref()));
        }
        give_string(out, json(&value)?);
        Ok(())
    })
}

/// The ε that `steps` steps of DP-SGD spend at `delta`: Poisson sampling at `sample_rate`
/// (batch size / examples), Gaussian noise of `noise_multiplier` times the clipping norm
/// (Opacus's RDP accountant). `sample_rate` in [0, 1], `noise_multiplier` ≥ 0, `delta` in
/// (0, 1); no noise gives an infinite ε.
///
/// # Safety
/// `out_epsilon` is writable.
#[no_mangle]
pub unsafe extern "C" fn medgen_privacy_epsilon(
    sample_rate: f64,
    noise_multiplier: f64,
    steps: u64,
    delta: f64,
    out_epsilon: *mut f64,
) -> medgen_status {
    ffi_boundary(|| {
        check_out(out_epsilon)?;
        let eps = privacy::epsilon(sample_rate, noise_multiplier, steps, delta)?;
        unsafe { write_out(out_epsilon, eps) };
        Ok(())
    })
}

/// The noise multiplier that keeps `steps` steps at `sample_rate` within (`target_epsilon`,
/// `delta`), as Opacus's `get_noise_multiplier` finds it (within 0.01 below the target ε). A
/// target no multiplier up to 10^6 reaches is `MEDGEN_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `out_noise_multiplier` is writable.
#[no_mangle]
pub unsafe extern "C" fn medgen_privacy_noise_multiplier(
    target_epsilon: f64,
    delta: f64,
    sample_rate: f64,
    steps: u64,
    out_noise_multiplier: *mut f64,
) -> medgen_status {
    ffi_boundary(|| {
        check_out(out_noise_multiplier)?;
        let sigma = privacy::noise_multiplier(target_epsilon, delta, sample_rate, steps)?;
        unsafe { write_out(out_noise_multiplier, sigma) };
        Ok(())
    })
}
