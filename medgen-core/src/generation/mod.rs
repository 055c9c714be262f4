//! Generation: options, the decode loop (logits → processors → sampler → stop check →
//! stream) and its typed result. Beam search (`num_beams > 1`) replaces the sampler with
//! the search in `beam.rs`.

pub(crate) mod backend;
mod beam;
pub mod json;
mod sampling;
mod stopping;

use std::fmt;
use std::ops::ControlFlow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use crate::error::{MedgenError, Result};
use crate::tokenizer::Tokenizer;
use backend::{Backend, Limits, Session};
use beam::Beams;
use sampling::{Context, Sampler};
use stopping::StopStrings;

/// The most tokens any request may ask for (`max_new_tokens`, `min_new_tokens`,
/// `no_repeat_ngram_size`): more than any model's context, small enough that no sum of
/// lengths wraps. The model's context is the tighter bound, checked once the prompt is known.
pub const MAX_TOKENS: usize = 1 << 20;

/// The most beams of a beam search (`num_beams`, and so `num_return_sequences`): each beam is
/// a row of the KV cache and a vocabulary-wide score row per step.
pub const MAX_BEAMS: usize = 128;

/// Generation options. Defaults follow transformers' `GenerationConfig` except
/// `max_new_tokens` (transformers' default total length of 20 is too short for notes).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct GenerationConfig {
    /// Most tokens to generate, 1 to [`MAX_TOKENS`] and within the model's context with the
    /// prompt (default: 256).
    pub max_new_tokens: usize,
    /// EOS is suppressed until this many tokens are generated (default: 0).
    pub min_new_tokens: usize,
    /// Sample instead of taking the most likely token (default: false, greedy).
    pub do_sample: bool,
    /// Divides the logits when sampling; 0 means greedy (default: 1.0).
    pub temperature: f32,
    /// Keep only the k most likely tokens when sampling; 0, or any k at least the vocabulary
    /// size, disables (default: 50).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches top_p, in (0, 1] (default: 1.0).
    pub top_p: f32,
    /// Drop tokens less likely than min_p times the most likely one, in [0, 1]; 0 disables (default: 0.0).
    pub min_p: f32,
    /// Penalty on tokens already in the prompt or output, > 0; 1 disables (default: 1.0).
    pub repetition_penalty: f32,
    /// Seed of the sampler; the same seed and options give the same tokens (default: random, reported in the result).
    pub seed: Option<u64>,
    /// Generation ends before the first occurrence of any of these strings, which are never emitted (default: none).
    pub stop: Vec<String>,
    /// Report each generated token's log-probability under the model's raw distribution (default: false).
    pub logprobs: bool,
    /// Beams of beam search, as transformers, 1 to [`MAX_BEAMS`]; 1 disables it. Beam search
    /// is deterministic: `do_sample` must be false (default: 1).
    pub num_beams: usize,
    /// Beam search ranks finished sequences by their summed log-probabilities divided by
    /// `length ** length_penalty`; > 0 favours longer sequences, < 0 shorter ones (default: 1.0).
    pub length_penalty: f32,
    /// When beam search stops (default: false, as transformers).
    pub early_stopping: EarlyStopping,
    /// Sequences beam search returns, the best first; at most `num_beams` (default: 1).
    pub num_return_sequences: usize,
    /// No n-gram of this size occurs twice in prompt plus output (transformers'
    /// `NoRepeatNGramLogitsProcessor`), in every decoding mode; 0 disables (default: 0).
    pub no_repeat_ngram_size: usize,
}

/// A logits processor a caller adds to a generation ([`Generator::constrain`]), such as
/// [`crate::tasks::SectionConstraint`]. It runs after the built-in processors (before BART's
/// forced first and last tokens), for every row: the sampled one, or each beam.
pub trait LogitsConstraint: Send + Sync + fmt::Debug {
    /// Edits `scores`, the processed scores of the token after `generated` (the tokens this
    /// row has generated), with `max_new_tokens` tokens allowed in all.
    fn apply(&self, scores: &mut [f32], generated: &[u32], max_new_tokens: usize);
}

/// When beam search stops, as transformers' `early_stopping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EarlyStopping {
    /// As soon as `num_beams` sequences are finished.
    True,
    /// When the best running beam, scored at its current length, cannot beat the worst of
    /// `num_beams` finished sequences (a heuristic; transformers' default).
    #[default]
    False,
    /// When no running beam can beat the finished ones at any length up to
    /// `max_new_tokens` (the canonical beam search).
    Never,
}

impl FromStr for EarlyStopping {
    type Err = MedgenError;
    /// "true", "false" or "never".
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "true" => Ok(EarlyStopping::True),
            "false" => Ok(EarlyStopping::False),
            "never" => Ok(EarlyStopping::Never),
            _ => Err(MedgenError::invalid("early_stopping", format!("`{s}` is not true, false or never"))),
        }
    }
}

impl fmt::Display for EarlyStopping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EarlyStopping::True => "true",
            EarlyStopping::False => "false",
            EarlyStopping::Never => "never",
        })
    }
}

/// `true`, `false` or `"never"`, as in transformers' generation config files.
impl serde::Serialize for EarlyStopping {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            EarlyStopping::True => s.serialize_bool(true),
            EarlyStopping::False => s.serialize_bool(false),
            EarlyStopping::Never => s.serialize_str("never"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for EarlyStopping {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Bool(bool),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Bool(true) => Ok(EarlyStopping::True),
            Repr::Bool(false) => Ok(EarlyStopping::False),
            Repr::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            max_new_tokens: 256,
            min_new_tokens: 0,
            do_sample: false,
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            seed: None,
            stop: Vec::new(),
            logprobs: false,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::False,
            num_return_sequences: 1,
            no_repeat_ngram_size: 0,
        }
    }
}

impl GenerationConfig {
    /// Checks every option; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if self.max_new_tokens == 0 {
            return Err(MedgenError::invalid("max_new_tokens", "must be at least 1"));
        }
        for (field, n) in [("max_new_tokens", self.max_new_tokens), ("no_repeat_ngram_size", self.no_repeat_ngram_size)] {
            if n > MAX_TOKENS {
                return Err(MedgenError::invalid(field, format!("{n} exceeds the bound of {MAX_TOKENS} tokens")));
            }
        }
        if self.num_beams > MAX_BEAMS {
            return Err(MedgenError::invalid("num_beams", format!("{} exceeds the bound of {MAX_BEAMS} beams", self.num_beams)));
        }
        if self.min_new_tokens > self.max_new_tokens {
            return Err(MedgenError::invalid(
                "min_new_tokens",
                format!("{} exceeds max_new_tokens {}", self.min_new_tokens, self.max_new_tokens),
            ));
        }
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(MedgenError::invalid(
                "temperature",
                format!("{} is not a finite number >= 0", self.temperature),
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(MedgenError::invalid("top_p", format!("{} is outside (0, 1]", self.top_p)));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(MedgenError::invalid("min_p", format!("{} is outside [0, 1]", self.min_p)));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(MedgenError::invalid(
                "repetition_penalty",
                format!("{} is not a finite number > 0", self.repetition_penalty),
            ));
        }
        if self.stop.iter().any(String::is_empty) {
            return Err(MedgenError::invalid("stop", "stop strings must not be empty"));
        }
        if self.num_beams == 0 {
            return Err(MedgenError::invalid("num_beams", "must be at least 1"));
        }
        if self.num_beams > 1 && self.do_sample {
            return Err(MedgenError::invalid(
                "do_sample",
                "beam search does not sample: set do_sample to false with num_beams > 1",
            ));
        }
        if !self.length_penalty.is_finite() {
            return Err(MedgenError::invalid("length_penalty", format!("{} is not a finite number", self.length_penalty)));
        }
        if self.num_return_sequences == 0 {
            return Err(MedgenError::invalid("num_return_sequences", "must be at least 1"));
        }
        if self.num_return_sequences > self.num_beams {
            // Several samples without beams (transformers with do_sample) are not implemented.
            return Err(MedgenError::invalid(
                "num_return_sequences",
                format!(
                    "{} exceeds num_beams {}: only beam search returns several sequences",
                    self.num_return_sequences, self.num_beams
                ),
            ));
        }
        Ok(())
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// The model produced an end-of-sequence token.
    Eos,
    /// A stop string appeared (it is not part of the text).
    Stop,
    /// `max_new_tokens` were generated.
    Length,
    /// The streaming callback asked to stop.
    #[default]
    Cancelled,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Eos => "eos",
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// Where the time went.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Timings {
    /// Seconds to load the model.
    pub load_s: f64,
    /// Seconds to process the prompt (and pick the first token).
    pub prefill_s: f64,
    pub prefill_tokens_per_s: f64,
    /// Seconds for the remaining tokens, one forward step each.
    pub decode_s: f64,
    /// With beam search, every beam's token counts.
    pub decode_tokens_per_s: f64,
}

/// The result of one generation. With beam search, `text`, `token_ids`, `finish_reason`
/// and `logprobs` are those of the best sequence, and `sequences` holds the
/// `num_return_sequences` best.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Generation {
    /// The generated text, without special tokens and without the stop string.
    pub text: String,
    /// Generated token ids, including a final EOS or the token that completed a stop string.
    pub token_ids: Vec<u32>,
    pub prompt_token_ids: Vec<u32>,
    pub finish_reason: FinishReason,
    /// Log-probability of each generated token, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<f32>>,
    /// With `logprobs` and without beam search: the log-probability of the most likely token
    /// other than the one generated, at each step (how close the model came to writing
    /// something else).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternative_logprobs: Option<Vec<f32>>,
    pub timings: Timings,
    /// The sampler's seed (the given one, or the random one drawn).
    pub seed: u64,
    /// Beam search's sequences, the best first; empty (and left out of JSON) without beams.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sequences: Vec<Sequence>,
}

/// One sequence found by beam search.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Sequence {
    /// The text, without special tokens, cut before the first stop string.
    pub text: String,
    /// Token ids, including a final EOS; a stop string cuts them after the token that completes it.
    pub token_ids: Vec<u32>,
    /// Summed log-probabilities (after the logits processors) divided by
    /// `length ** length_penalty`: transformers' `sequences_scores`. A stop string does not change it.
    pub score: f32,
}

/// One prompt's decoding: picks its tokens from the logits of its rows (one, or one per
/// beam), keeps its text, and knows when it ends. The model's state lives outside, in a
/// [`Generator`] or a batch, so that several lanes can share one batch.
struct Lane {
    cfg: GenerationConfig,
    sampler: Sampler,
    stops: StopStrings,
    prompt: Vec<u32>,
    /// What the logits processors see before the generated tokens: the prompt, or the
    /// decoder start token of an encoder-decoder model.
    prefix: Vec<u32>,
    eos: Vec<u32>,
    forced_bos: Option<u32>,
    forced_eos: Option<u32>,
    generated: Vec<u32>,
    /// Which token ids occur in prefix or output (for the repetition penalty).
    seen: Vec<bool>,
    /// The beam search, with `num_beams > 1`.
    beams: Option<Beams>,
    constraint: Option<Arc<dyn LogitsConstraint>>,
    logprobs: Vec<f32>,
    alternative_logprobs: Vec<f32>,
    /// Text of the generated tokens up to `read_offset`.
    text: String,
    /// Window of `advance_text`: tokens from `prefix_offset` give context, tokens from
    /// `read_offset` are not in `text` yet.
    prefix_offset: usize,
    read_offset: usize,
    /// Bytes of `text` already streamed.
    shown: usize,
    finish: Option<FinishReason>,
    /// Beam search's sequences, the best first.
    sequences: Vec<Sequence>,
    seed: u64,
    timings: Timings,
    decode_start: Instant,
}

/// The next tokens of a lane's rows: (the row each continues, its token).
type Next = Option<(Vec<usize>, Vec<u32>)>;

impl Lane {
    /// Validates the options and the prompt against the network's limits.
    fn new(limits: &Limits, eos: &[u32], prompt: Vec<u32>, cfg: &GenerationConfig, seed: u64) -> Result<Self> {
        cfg.validate()?;
        if prompt.is_empty() {
            return Err(MedgenError::invalid("prompt", "the prompt is empty"));
        }
        let (vocab, limit) = (limits.vocab_size, limits.context_length);
        if let Some(bad) = prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(MedgenError::invalid("prompt", format!("token id {bad} is outside the vocabulary of {vocab}")));
        }
        let (prefix, forced_bos, forced_eos) = match limits.decoder {
            Some(d) => {
                if prompt.len() > limit {
                    return Err(MedgenError::context(prompt.len(), limit, "encoder input"));
                }
                if cfg.max_new_tokens > limit {
                    return Err(MedgenError::context(cfg.max_new_tokens, limit, "max_new_tokens"));
                }
                (vec![d.start], d.forced_bos, d.forced_eos)
            }
            None => {
                // The network reads the prompt and every new token but the last (which is never
                // fed back): a prompt may fill the context when one token is asked for.
                if prompt.len() > limit {
                    return Err(MedgenError::context(prompt.len(), limit, "prompt"));
                }
                // Both are bounded (the prompt by the context, max_new_tokens by MAX_TOKENS): no wrap.
                let positions = prompt.len() + cfg.max_new_tokens - 1;
                if positions > limit {
                    return Err(MedgenError::context(positions, limit, "prompt plus max_new_tokens, less the last token"));
                }
                (prompt.clone(), None, None)
            }
        };
        let mut seen = vec![false; vocab];
        prefix.iter().for_each(|&t| seen[t as usize] = true);
        Ok(Lane {
            cfg: cfg.clone(),
            sampler: Sampler::new(cfg, seed),
            stops: StopStrings::new(&cfg.stop),
            beams: (cfg.num_beams > 1).then(|| Beams::new(&prefix, vocab, cfg)),
            constraint: None,
            eos: eos.to_vec(),
            forced_bos,
            forced_eos,
            prefix,
            prompt,
            generated: Vec::with_capacity(cfg.max_new_tokens),
            seen,
            logprobs: Vec::new(),
            alternative_logprobs: Vec::new(),
            text: String::new(),
            prefix_offset: 0,
            read_offset: 0,
            shown: 0,
            finish: None,
            sequences: Vec::new(),
            seed,
            timings: Timings::default(),
            decode_start: Instant::now(),
        })
    }

    /// Counts the prompt's pass through the network (`prefill_s` seconds) and starts the
    /// clock of the decode steps.
    fn prefilled(&mut self, load_s: f64, prefill_s: f64) {
        let tokens = self.prompt.len() as f64;
        self.timings = Timings { load_s, prefill_s, prefill_tokens_per_s: tokens / prefill_s.max(1e-9), ..Timings::default() };
        self.decode_start = Instant::now();
    }

    /// Picks the next token of each row from the rows' `logits`: returns the text that
    /// became safe to show (maybe empty) and the rows to run next, `None` once finished.
    fn step(&mut self, tok: &Tokenizer, logits: &[Vec<f32>]) -> Result<(String, Next)> {
        if self.finish.is_some() {
            return Ok((String::new(), None));
        }
        let ctx = Context {
            cfg: &self.cfg,
            prompt: &self.prefix,
            eos: &self.eos,
            forced_bos: self.forced_bos,
            forced_eos: self.forced_eos,
            constraint: self.constraint.as_deref(),
        };
        if let Some(beams) = self.beams.as_mut() {
            if let Some(next) = beams.advance(logits, &ctx) {
                return Ok((String::new(), Some(next)));
            }
            return Ok((self.end_beams(tok)?, None));
        }
        let logits = logits.first().ok_or_else(|| MedgenError::internal("logits", "no row to pick a token from"))?;
        let mut scores = logits.clone();
        sampling::process(&mut scores, &ctx, &self.seen, &self.generated);
        let token = self.sampler.pick(&scores);
        if self.cfg.logprobs {
            let (chosen, other) = sampling::log_prob_and_alternative(logits, token);
            self.logprobs.push(chosen);
            self.alternative_logprobs.push(other);
        }
        self.generated.push(token);
        self.seen[token as usize] = true;

        if self.eos.contains(&token) {
            self.advance_text(tok, true)?;
            return Ok((self.end(FinishReason::Eos), None));
        }
        self.advance_text(tok, false)?;
        if let Some(at) = self.stops.find(&self.text, self.shown) {
            self.text.truncate(at);
            return Ok((self.end(FinishReason::Stop), None));
        }
        if self.generated.len() == self.cfg.max_new_tokens {
            self.advance_text(tok, true)?;
            return Ok((self.end(FinishReason::Length), None));
        }
        let safe = self.stops.safe_len(&self.text).max(self.shown);
        let piece = self.text.get(self.shown..safe).unwrap_or("").to_string();
        self.shown = safe;
        Ok((piece, Some((vec![0], vec![token]))))
    }

    /// Ends a finished beam search: its sequences, and the best one's text at once (which
    /// sequence is best is known only at the end, so beam search cannot stream).
    fn end_beams(&mut self, tok: &Tokenizer) -> Result<String> {
        let Some(beams) = self.beams.take() else { return Ok(String::new()) };
        let steps = beams.steps();
        let mut best = None;
        for h in beams.finish(&self.cfg) {
            let (text, token_ids, stopped) = self.cut_at_stop(tok, h.tokens)?;
            if best.is_none() {
                let eos = token_ids.last().is_some_and(|t| self.eos.contains(t));
                let reason = match (stopped, eos) {
                    (true, _) => FinishReason::Stop,
                    (false, true) => FinishReason::Eos,
                    (false, false) => FinishReason::Length,
                };
                best = Some((text.clone(), token_ids.clone(), h.logprobs, reason));
            }
            self.sequences.push(Sequence { text, token_ids, score: h.score });
        }
        let Some((text, token_ids, mut logprobs, reason)) = best else {
            return Ok(self.end(FinishReason::Length));
        };
        logprobs.truncate(token_ids.len());
        (self.text, self.generated, self.logprobs) = (text, token_ids, logprobs);
        let rest = self.end(reason);
        // Every step ran all beams.
        let tokens = steps * self.cfg.num_beams;
        self.timings.decode_tokens_per_s = tokens as f64 / self.timings.decode_s.max(1e-9);
        Ok(rest)
    }

    /// A beam-search sequence's text cut before its first stop string, its tokens cut after
    /// the one that completes it, and whether it was cut. Stop strings only cut the found
    /// sequences; unlike transformers' `stop_strings`, they do not end beams during the search.
    fn cut_at_stop(&self, tok: &Tokenizer, tokens: Vec<u32>) -> Result<(String, Vec<u32>, bool)> {
        let mut text = tok.decode_generated(&tokens, true)?;
        let Some(at) = self.stops.find(&text, 0) else { return Ok((text, tokens, false)) };
        text.truncate(at);
        let mut end = tokens.len();
        for n in 1..tokens.len() {
            if self.stops.find(&tok.decode_generated(&tokens[..n], true)?, 0).is_some() {
                end = n;
                break;
            }
        }
        let mut tokens = tokens;
        tokens.truncate(end);
        Ok((text, tokens, true))
    }

    /// Appends the text of the tokens not decoded yet. Only a window is decoded: the tokens
    /// since the last text that appeared, after the ones before it for context (so that
    /// decoders which strip a leading space or merge bytes see what a full decode sees).
    /// Without `flush`, text that ends in an incomplete UTF-8 character waits for more tokens.
    fn advance_text(&mut self, tok: &Tokenizer, flush: bool) -> Result<()> {
        let before = tok.decode_generated(&self.generated[self.prefix_offset..self.read_offset], true)?;
        let after = tok.decode_generated(&self.generated[self.prefix_offset..], true)?;
        if after.len() > before.len() && (flush || !after.ends_with('\u{FFFD}')) {
            match after.strip_prefix(before.as_str()) {
                Some(new) => self.text.push_str(new),
                None => self.text = tok.decode_generated(&self.generated, true)?,
            }
            self.prefix_offset = self.read_offset;
            self.read_offset = self.generated.len();
        }
        Ok(())
    }

    /// Ends generation now, as cancelled.
    fn cancel(&mut self, tok: &Tokenizer) {
        if self.finish.is_none() {
            // Text already decoded stays; a failure to decode the last tokens loses only them.
            let _ = self.advance_text(tok, true);
            self.end(FinishReason::Cancelled);
        }
    }

    /// Marks the end and returns the text not shown yet.
    fn end(&mut self, reason: FinishReason) -> String {
        self.finish = Some(reason);
        let decode_s = self.decode_start.elapsed().as_secs_f64();
        self.timings.decode_s = decode_s;
        let steps = self.generated.len().saturating_sub(1);
        self.timings.decode_tokens_per_s = if steps > 0 { steps as f64 / decode_s.max(1e-9) } else { 0.0 };
        let rest = self.text.get(self.shown..).unwrap_or("").to_string();
        self.shown = self.text.len();
        rest
    }

    /// The result; a lane not finished counts as cancelled.
    fn into_generation(mut self, tok: &Tokenizer) -> Generation {
        self.cancel(tok);
        Generation {
            text: self.text,
            token_ids: self.generated,
            prompt_token_ids: self.prompt,
            finish_reason: self.finish.unwrap_or(FinishReason::Cancelled),
            alternative_logprobs: (self.cfg.logprobs && self.cfg.num_beams == 1).then_some(self.alternative_logprobs),
            logprobs: self.cfg.logprobs.then_some(self.logprobs),
            timings: self.timings,
            seed: self.seed,
            sequences: self.sequences,
        }
    }
}

/// Prompts decoded together: one network session, one lane per prompt, each with its own
/// rows (its beams), which leave the batch when the prompt finishes. This is the one decode
/// loop: a [`Generator`] is a batch of one.
struct Batch {
    session: Box<dyn Session>,
    lanes: Vec<Lane>,
    /// Each lane's rows' logits for their next tokens.
    logits: Vec<Vec<Vec<f32>>>,
}

impl Batch {
    /// Runs the lanes' prompts through the network (padded and masked into one batch).
    fn start(backend: Arc<dyn Backend>, mut lanes: Vec<Lane>, load_s: f64) -> Result<Self> {
        if lanes.is_empty() {
            return Err(MedgenError::invalid("prompts", "the batch is empty"));
        }
        let start = Instant::now();
        let prompts: Vec<Vec<u32>> = lanes.iter().map(|l| l.prompt.clone()).collect();
        let new_tokens = lanes.iter().map(|l| l.cfg.max_new_tokens).max().unwrap_or(0);
        let (session, first) = backend.prefill(&prompts, new_tokens)?;
        let prefill_s = start.elapsed().as_secs_f64();
        lanes.iter_mut().for_each(|l| l.prefilled(load_s, prefill_s));
        Ok(Batch { session, lanes, logits: first.into_iter().map(|row| vec![row]).collect() })
    }

    fn done(&self) -> bool {
        self.lanes.iter().all(|l| l.finish.is_some())
    }

    /// Picks every unfinished lane's next tokens and runs them through the network: returns
    /// the text each lane made safe to show (maybe empty).
    fn step(&mut self, tok: &Tokenizer) -> Result<Vec<String>> {
        let (mut sources, mut tokens) = (Vec::new(), Vec::new());
        let (mut counts, mut pieces) = (Vec::with_capacity(self.lanes.len()), Vec::with_capacity(self.lanes.len()));
        let mut base = 0;
        for (lane, rows) in self.lanes.iter_mut().zip(&self.logits) {
            let (mut count, mut piece) = (0, String::new());
            if !rows.is_empty() {
                let (p, next) = lane.step(tok, rows)?;
                if let Some((src, toks)) = next {
                    sources.extend(src.iter().map(|s| base + s));
                    count = toks.len();
                    tokens.extend(toks);
                }
                piece = p;
            }
            counts.push(count);
            pieces.push(piece);
            base += rows.len();
        }
        let mut next = if tokens.is_empty() { Vec::new() } else { self.session.step(&sources, &tokens)? }.into_iter();
        for (rows, &n) in self.logits.iter_mut().zip(&counts) {
            *rows = next.by_ref().take(n).collect();
        }
        Ok(pieces)
    }

    /// Runs to the end; `on_step` runs before each step, and `Break` cancels every lane not
    /// finished.
    fn run(mut self, tok: &Tokenizer, mut on_step: impl FnMut() -> ControlFlow<()>) -> Result<Vec<Generation>> {
        while !self.done() && on_step().is_continue() {
            self.step(tok)?;
        }
        Ok(self.lanes.into_iter().map(|l| l.into_generation(tok)).collect())
    }
}

/// A generation in progress: an iterator of text pieces, each safe to show (whole UTF-8
/// characters, never part of a stop string). [`Generator::finish`] gives the result.
/// It holds the model's network and tokenizer by reference count, so it may outlive the
/// borrow of the [`crate::Model`] that made it.
pub struct Generator {
    batch: Batch,
    tokenizer: Arc<Tokenizer>,
}

impl Generator {
    /// Validates, checks the context length, and runs the prompt through the network.
    pub(crate) fn new(backend: Arc<dyn Backend>, tokenizer: Arc<Tokenizer>, load_s: f64, prompt: Vec<u32>, cfg: &GenerationConfig) -> Result<Self> {
        let lane = Lane::new(backend.limits(), tokenizer.eos_ids(), prompt, cfg, cfg.seed.unwrap_or_else(rand::random))?;
        Ok(Generator { batch: Batch::start(backend, vec![lane], load_s)?, tokenizer })
    }

    fn lane(&mut self) -> &mut Lane {
        &mut self.batch.lanes[0]
    }

    /// Generates one token (with beam search, runs one step of all beams); returns the text
    /// that became safe to show (maybe empty), or `None` once finished.
    pub fn step(&mut self) -> Result<Option<String>> {
        if self.batch.done() {
            return Ok(None);
        }
        Ok(self.batch.step(&self.tokenizer)?.pop())
    }

    /// Adds a logits processor to every step from the next one on (before the first step:
    /// to all of them).
    pub fn constrain(&mut self, constraint: Arc<dyn LogitsConstraint>) {
        self.lane().constraint = Some(constraint);
    }

    /// The logits the next token will be picked from (before any processing).
    pub(crate) fn take_logits(&mut self) -> Vec<f32> {
        self.batch.logits.first_mut().and_then(|rows| rows.drain(..).next()).unwrap_or_default()
    }

    /// Ends generation now, as cancelled.
    pub fn cancel(&mut self) {
        self.batch.lanes[0].cancel(&self.tokenizer);
    }

    /// The result; a generation not yet finished counts as cancelled.
    pub fn finish(self) -> Generation {
        let Generator { batch, tokenizer } = self;
        // A generator's batch always holds its one lane.
        batch.lanes.into_iter().next().map(|lane| lane.into_generation(&tokenizer)).unwrap_or_default()
    }

    /// Runs to the end, passing each non-empty piece to `on_piece`; `Break` cancels.
    pub fn run(self, mut on_piece: impl FnMut(&str) -> ControlFlow<()>) -> Result<Generation> {
        self.run_steps(|piece| if piece.is_empty() { ControlFlow::Continue(()) } else { on_piece(piece) })
    }

    /// Runs to the end, calling `on_step` after every step with its piece (maybe empty);
    /// `Break` cancels, also on the last piece: the result is then cancelled, whatever ended it.
    pub fn run_steps(mut self, mut on_step: impl FnMut(&str) -> ControlFlow<()>) -> Result<Generation> {
        let mut cancelled = false;
        while let Some(piece) = self.step()? {
            if on_step(&piece).is_break() {
                cancelled = true;
                self.cancel();
            }
        }
        let mut generation = self.finish();
        if cancelled {
            generation.finish_reason = FinishReason::Cancelled;
        }
        Ok(generation)
    }
}

impl Iterator for Generator {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.step() {
                Ok(Some(p)) if p.is_empty() => continue,
                Ok(Some(p)) => return Some(Ok(p)),
                Ok(None) => return None,
                Err(e) => {
                    self.lane().finish = Some(FinishReason::Cancelled);
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Generates for several prompts at once (see [`Batch`]). Each result equals the prompt's
/// result alone with the same options (the same seed when sampling). `on_step` runs before
/// each step; `Break` cancels every prompt not finished. A bad prompt's error names it; an
/// empty batch is an error ([`Batch::start`]).
pub(crate) fn generate_batch(
    backend: Arc<dyn Backend>,
    tokenizer: &Tokenizer,
    load_s: f64,
    prompts: Vec<Vec<u32>>,
    cfg: &GenerationConfig,
    on_step: impl FnMut() -> ControlFlow<()>,
) -> Result<Vec<Generation>> {
    let seed = cfg.seed.unwrap_or_else(rand::random);
    let lanes = prompts
        .into_iter()
        .enumerate()
        .map(|(i, p)| Lane::new(backend.limits(), tokenizer.eos_ids(), p, cfg, seed).map_err(|e| e.in_batch(i)))
        .collect::<Result<Vec<_>>>()?;
    Batch::start(backend, lanes, load_s)?.run(tokenizer, on_step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_stopping_reads_and_writes_as_in_transformers_configs() {
        let cfg: GenerationConfig = serde_json::from_str(r#"{"num_beams": 4, "early_stopping": "never"}"#).unwrap();
        assert_eq!((cfg.num_beams, cfg.early_stopping, cfg.max_new_tokens), (4, EarlyStopping::Never, 256));
        let cfg: GenerationConfig = serde_json::from_str(r#"{"early_stopping": true}"#).unwrap();
        assert_eq!(cfg.early_stopping, EarlyStopping::True);
        let json = serde_json::to_value(GenerationConfig::default()).unwrap();
        assert_eq!(json["early_stopping"], serde_json::json!(false));
        let json = serde_json::to_value(GenerationConfig { early_stopping: EarlyStopping::Never, ..Default::default() }).unwrap();
        assert_eq!(json["early_stopping"], serde_json::json!("never"));
        assert!(serde_json::from_str::<GenerationConfig>(r#"{"early_stopping": "sometimes"}"#).is_err());
        assert_eq!("True".parse::<EarlyStopping>().unwrap(), EarlyStopping::True);
    }

    #[test]
    fn bad_beam_options_name_their_field() {
        let cases = [
            ("num_beams", GenerationConfig { num_beams: 0, ..Default::default() }),
            ("num_return_sequences", GenerationConfig { num_beams: 2, num_return_sequences: 3, ..Default::default() }),
            ("num_return_sequences", GenerationConfig { num_return_sequences: 2, ..Default::default() }),
            ("num_return_sequences", GenerationConfig { num_beams: 2, num_return_sequences: 0, ..Default::default() }),
            ("do_sample", GenerationConfig { num_beams: 2, do_sample: true, ..Default::default() }),
            ("length_penalty", GenerationConfig { num_beams: 2, length_penalty: f32::INFINITY, ..Default::default() }),
        ];
        for (field, cfg) in cases {
            match cfg.validate() {
                Err(MedgenError::InvalidArgument { name, .. }) => assert_eq!(name, field),
                other => panic!("{field}: expected InvalidArgument, got {other:?}"),
            }
        }
        let ok = GenerationConfig { num_beams: 4, num_return_sequences: 4, no_repeat_ngram_size: 3, ..Default::default() };
        assert!(ok.validate().is_ok());
    }
}
