//! The C ABI of medgen: `libmedgen.so` / `libmedgen.a` with the header `include/medgen.h`
//! (generated from this crate by cbindgen).
//!
//! Conventions, for every function:
//! - Handles are opaque (`medgen_model`, `medgen_text`, `medgen_string`). Each is made by a function of this
//!   library and released by its `medgen_*_free`; freeing NULL does nothing; a handle must not
//!   be freed twice.
//! - A function that can fail returns `medgen_status`; `MEDGEN_OK` (0) is success. Outputs are
//!   written through pointers only on success. After a failure, `medgen_last_error_message()`
//!   describes it (per thread); `medgen_status_str()` names a status.
//! - Arguments come in the order handle, inputs, outputs; a buffer is followed by its length;
//!   a buffer capacity of 0 asks for the size.
//! - Strings in and out are UTF-8. `const char *` arguments are NUL-terminated unless a
//!   length follows them. Returned strings belong to the handle they come from.
//! - No Rust panic crosses into C: each function catches it and returns
//!   `MEDGEN_ERR_INTERNAL`.
//! - A `medgen_model` is safe to use from several threads at once. A `medgen_text` is
//!   immutable and may be read from several threads, but is freed by one.
//!
//! C11 needs `<stdbool.h>`, `<stddef.h>` and `<stdint.h>`, which the header includes.

#![allow(non_camel_case_types)]

mod boundary;
mod clinical;
mod finetune;
mod generate;
mod model;
mod text;

pub use boundary::{medgen_last_error_message, medgen_status, medgen_status_str, medgen_version, MEDGEN_MAX_ITEMS};
pub use clinical::{
    medgen_bleu, medgen_check, medgen_corpus_bleu, medgen_deid_params, medgen_deid_params_init,
    medgen_deidentify, medgen_reidentify, medgen_rouge, medgen_rouge_scores, medgen_run_task, medgen_score,
    medgen_sentence_bleu, medgen_string, medgen_string_free, medgen_string_len, medgen_string_str,
    medgen_task_name, medgen_task_params, medgen_task_params_init, medgen_deid_operator, MEDGEN_DEID_MASK,
    MEDGEN_DEID_NONE, MEDGEN_DEID_PLACEHOLDER, MEDGEN_DEID_REDACT, MEDGEN_DEID_SHIFT_DATES,
};
pub use finetune::{
    medgen_finetune, medgen_finetune_method, medgen_finetune_params, medgen_finetune_params_init, MEDGEN_METHOD_FULL, MEDGEN_METHOD_LORA,
    medgen_finetune_report, medgen_log_entry, medgen_merge, medgen_progress_callback,
};
pub use generate::{
    medgen_chat, medgen_chat_stream, medgen_generate, medgen_generate_stream, medgen_generation_params,
    medgen_generation_params_init, medgen_message, medgen_piece_callback, medgen_early_stopping, MEDGEN_EARLY_STOPPING_FALSE,
    MEDGEN_EARLY_STOPPING_NEVER, MEDGEN_EARLY_STOPPING_TRUE,
};
pub use model::{
    medgen_detokenize, medgen_model, medgen_model_free, medgen_model_load, medgen_model_params,
    medgen_model_params_init, medgen_tokenize, medgen_device, medgen_dtype, MEDGEN_DEVICE_CPU, MEDGEN_DEVICE_CUDA, MEDGEN_DTYPE_BF16,
    MEDGEN_DTYPE_F16, MEDGEN_DTYPE_F32,
};
pub use text::{
    medgen_finish_reason, medgen_text, medgen_text_finish_reason, medgen_text_free, medgen_text_json, medgen_text_logprobs, medgen_text_n_sequences, medgen_text_sequence,
    medgen_text_len, medgen_text_n_tokens, medgen_text_seed, medgen_text_str, medgen_text_tokens,
};
