//! What generation needs from a network: a crate-private interface that each kind of network
//! implements (`models::backends`), so that the decode loop never reaches into `Model`.

use std::sync::Arc;

use crate::error::Result;

/// The limits a prompt and its options are checked against.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub vocab_size: usize,
    /// The longest sequence: prompt plus new tokens for a decoder-only network; for an
    /// encoder-decoder, the longest input and the most new tokens.
    pub context_length: usize,
    /// Encoder-decoder networks only: the decoder's start.
    pub decoder: Option<DecoderStart>,
}

/// The token an encoder-decoder's decoder starts from, and the tokens forced first and last:
/// the sequence the logits processors see before the generated tokens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecoderStart {
    pub start: u32,
    pub forced_bos: Option<u32>,
    pub forced_eos: Option<u32>,
}

/// A network generation can run.
pub(crate) trait Backend: Send + Sync {
    fn limits(&self) -> &Limits;

    /// Runs `prompts` (one row each; at least one) and returns the session that generates up
    /// to `new_tokens` after them, with each row's logits for its first new token.
    fn prefill(self: Arc<Self>, prompts: &[Vec<u32>], new_tokens: usize) -> Result<(Box<dyn Session>, Vec<Vec<f32>>)>;
}

/// The network's state while it generates for a batch of rows (prompts, or their beams).
pub(crate) trait Session: Send {
    /// Runs one new token per row and returns each row's logits for the next, where row `i`
    /// continues the row that was at `sources[i]` (beam search reorders and repeats rows;
    /// finished prompts drop theirs).
    fn step(&mut self, sources: &[usize], tokens: &[u32]) -> Result<Vec<Vec<f32>>>;
}
