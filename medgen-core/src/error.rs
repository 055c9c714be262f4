//! The one error type of medgen.

use std::path::PathBuf;

/// Everything that can go wrong in medgen. Messages say what was wrong and with what.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum MedgenError {
    /// A file could not be opened, read or written.
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A model file or folder is malformed (truncated, inconsistent, wrong shapes).
    #[error("invalid model: {0}")]
    ModelFormat(String),
    /// A well-formed input uses something medgen does not implement
    /// (an architecture, a tensor type, a tokenizer kind).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An argument is out of range or malformed; `name` is the field or option.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument { name: &'static str, reason: String },
    /// The prompt, or the prompt plus the tokens asked for, does not fit the model's context.
    #[error("context length exceeded: {needed} tokens needed, the model allows {limit} ({what})")]
    ContextLength {
        needed: usize,
        limit: usize,
        /// What is too long ("prompt", "encoder input", ...).
        what: String,
    },
    /// The requested device is not available.
    #[error("device error: {0}")]
    Device(String),
    /// The tokenizer failed to build, encode or decode.
    #[error("tokenizer error: {0}")]
    Tokenizer(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The chat template failed to parse or render.
    #[error("chat template error: {0}")]
    Template(#[from] minijinja::Error),
    /// An audit log fails its hash chain: a line was changed, removed, inserted or reordered
    /// after it was written.
    #[error("the audit log {path} has been altered: line {line}: {reason}")]
    AuditTampered { path: PathBuf, line: usize, reason: String },
    /// medgen broke one of its own rules: a bug, to be reported.
    #[error("internal error (a bug in medgen): {0}")]
    Internal(String),
    /// libtorch reported an error.
    #[error("torch error: {0}")]
    Torch(#[from] tch::TchError),
}

/// `Result` with [`MedgenError`].
pub type Result<T, E = MedgenError> = std::result::Result<T, E>;

impl MedgenError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        MedgenError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        MedgenError::InvalidArgument {
            name,
            reason: reason.into(),
        }
    }

    /// A broken invariant of medgen's own: a bug, never the caller's input.
    pub(crate) fn internal(what: &'static str, reason: impl Into<String>) -> Self {
        MedgenError::Internal(format!("{what}: {}", reason.into()))
    }

    pub(crate) fn format(reason: impl Into<String>) -> Self {
        MedgenError::ModelFormat(reason.into())
    }

    pub(crate) fn context(needed: usize, limit: usize, what: impl Into<String>) -> Self {
        MedgenError::ContextLength { needed, limit, what: what.into() }
    }

    /// The error of prompt `i` of a batch: says which prompt it was.
    pub(crate) fn in_batch(self, i: usize) -> Self {
        match self {
            MedgenError::InvalidArgument { name, reason } => {
                MedgenError::InvalidArgument { name, reason: format!("prompt {i} of the batch: {reason}") }
            }
            MedgenError::ContextLength { needed, limit, what } => {
                MedgenError::ContextLength { needed, limit, what: format!("{what} of prompt {i} of the batch") }
            }
            other => other,
        }
    }
}
