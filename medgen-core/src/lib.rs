//! medgen: generation of clinical text with pretrained language models over libtorch.
//!
//! ```no_run
//! use medgen::{GenerationConfig, LoadOptions, Model};
//! let model = Model::load(None, &LoadOptions::default())?; // the packaged SmolLM2
//! let cfg = GenerationConfig { max_new_tokens: 64, ..Default::default() };
//! let out = model.generate("Discharge summary:", &cfg)?;
//! println!("{} ({:?})", out.text, out.finish_reason);
//! # Ok::<(), medgen::MedgenError>(())
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod audit;
pub mod chat;
pub mod checks;
pub mod deid;
pub mod error;
pub(crate) mod files;
pub(crate) mod formats;
#[doc(hidden)]
pub mod fuzz;
pub mod generation;
#[doc(hidden)]
pub mod inspect;
pub(crate) mod kernels;
pub mod metrics;
mod loader;
mod model;
pub(crate) mod models;
pub mod pipeline;
pub mod privacy;
pub mod prompt;
pub mod review;
mod runtime;
pub mod tasks;
pub mod tokenizer;
pub mod train;

pub use chat::ChatMessage;
pub use error::{MedgenError, Result};
pub use generation::{EarlyStopping, FinishReason, Generation, GenerationConfig, Generator, LogitsConstraint, Sequence, Timings, MAX_BEAMS, MAX_TOKENS};
pub use loader::{ModelInfo, NetworkConfig};
pub use model::{Forced, Model};
pub use models::config::{Activation, Architecture, Dropout, ModelConfig, RopeScaling, Seq2SeqArchitecture, Seq2SeqConfig};
pub use prompt::{Prompt, MAX_BATCH};
pub use runtime::{DType, DeviceSpec, LoadOptions, Quantization};
pub use pipeline::{deid_option, run_task, TaskOptions, TaskResult};
pub use tokenizer::Tokenizer;

/// medgen's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
