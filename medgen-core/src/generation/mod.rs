//! Generation: options, the decode loop (logits → processors → sampler → stop check →
//! stream) and its typed result. Beam search (`num_beams > 1`) replaces the sampler with
//! the search in `beam.rs`.

mod beam;
mod sampling;
mod stopping;

use std::fmt;
use std::str::FromStr;

use std::ops::{ControlFlow, Deref};
use std::time::Instant;

use tch::Tensor;

use crate::error::{MedgenError, Result};
use crate::models::KvCache;
use crate::Model;
use sampling::Sampler;
use stopping::StopStrings;

/// Generation options. Defaults follow transformers' `GenerationConfig` except
/// `max_new_tokens` (transformers' default total length of 20 is too short for notes).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct GenerationConfig {
    /// Most tokens to generate (default: 256).
    pub max_new_tokens: usize,
    /// EOS is suppressed until this many tokens are generated (default: 0).
    pub min_new_tokens: usize,
    /// Sample instead of taking the most likely token (default: false, greedy).
    pub do_sample: bool,
    /// Divides the logits when sampling; 0 means greedy (default: 1.0).
    pub temperature: f32,
    /// Keep only the k most likely tokens when sampling; 0 disables (default: 50).
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
    /// Beams of beam search, as transformers; 1 disables it. Beam search is deterministic:
    /// `do_sample` must be false (default: 1).
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// The model produced an end-of-sequence token.
    Eos,
    /// A stop string appeared (it is not part of the text).
    Stop,
    /// `max_new_tokens` were generated.
    Length,
    /// The streaming callback asked to stop.
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
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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

/// A generation in progress: an iterator of text pieces, each safe to show (whole UTF-8
/// characters, never part of a stop string). [`Generator::finish`] gives the result.
///
/// `M` is how it holds the model: `&Model` from [`Model::generator`], or an
/// `Arc<Model>` from [`Generator::new`] for a generator that outlives the borrow (bindings).
pub struct Generator<M: Deref<Target = Model> = std::sync::Arc<Model>> {
    model: M,
    cfg: GenerationConfig,
    cache: KvCache,
    sampler: Sampler,
    stops: StopStrings,
    prompt: Vec<u32>,
    generated: Vec<u32>,
    /// Which token ids occur in prompt or output (for the repetition penalty).
    seen: Vec<bool>,
    /// Logits for the next token.
    logits: Vec<f32>,
    logprobs: Vec<f32>,
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

impl<M: Deref<Target = Model>> Generator<M> {
    /// Validates, checks the context length, and runs the prompt through the model.
    pub fn new(model: M, prompt: Vec<u32>, cfg: &GenerationConfig) -> Result<Self> {
        cfg.validate()?;
        if prompt.is_empty() {
            return Err(MedgenError::invalid("prompt", "the prompt is empty"));
        }
        let vocab = model.config().vocab_size;
        if let Some(bad) = prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(MedgenError::invalid("prompt", format!("token id {bad} is outside the vocabulary of {vocab}")));
        }
        let limit = model.config().context_length;
        if prompt.len() >= limit {
            return Err(MedgenError::ContextLength { needed: prompt.len() + 1, limit, what: "prompt" });
        }
        if prompt.len() + cfg.max_new_tokens > limit {
            return Err(MedgenError::ContextLength {
                needed: prompt.len() + cfg.max_new_tokens,
                limit,
                what: "prompt plus max_new_tokens",
            });
        }
        let seed = cfg.seed.unwrap_or_else(rand::random);
        let mut seen = vec![false; vocab];
        prompt.iter().for_each(|&t| seen[t as usize] = true);

        let start = Instant::now();
        let mut cache = model.network().new_cache(1, prompt.len() + cfg.max_new_tokens)?;
        let logits = forward(&model, &prompt, &mut cache)?;
        let prefill_s = start.elapsed().as_secs_f64();
        let load_s = model.load_seconds();
        Ok(Generator {
            model,
            cfg: cfg.clone(),
            cache,
            sampler: Sampler::new(cfg, seed),
            stops: StopStrings::new(&cfg.stop),
            generated: Vec::with_capacity(cfg.max_new_tokens),
            seen,
            logits,
            logprobs: Vec::new(),
            text: String::new(),
            prefix_offset: 0,
            read_offset: 0,
            shown: 0,
            finish: None,
            sequences: Vec::new(),
            seed,
            timings: Timings {
                load_s,
                prefill_s,
                prefill_tokens_per_s: prompt.len() as f64 / prefill_s.max(1e-9),
                ..Timings::default()
            },
            prompt,
            decode_start: Instant::now(),
        })
    }

    /// Generates one token; returns the text that became safe to show (maybe empty), or
    /// `None` once finished.
    pub fn step(&mut self) -> Result<Option<String>> {
        if self.finish.is_some() {
            return Ok(None);
        }
        if self.cfg.num_beams > 1 {
            return self.beam_search().map(Some);
        }
        let mut scores = self.logits.clone();
        let eos = self.model.tokenizer().eos_ids();
        sampling::process(&mut scores, &self.cfg, &self.seen, &self.prompt, &self.generated, eos);
        let token = self.sampler.pick(&scores);
        if self.cfg.logprobs {
            self.logprobs.push(sampling::log_prob(&self.logits, token));
        }
        self.generated.push(token);
        self.seen[token as usize] = true;

        if self.model.tokenizer().eos_ids().contains(&token) {
            self.advance_text(true)?;
            return Ok(Some(self.end(FinishReason::Eos)));
        }
        self.advance_text(false)?;
        if let Some(at) = self.stops.find(&self.text, self.shown) {
            self.text.truncate(at);
            return Ok(Some(self.end(FinishReason::Stop)));
        }
        if self.generated.len() == self.cfg.max_new_tokens {
            self.advance_text(true)?;
            return Ok(Some(self.end(FinishReason::Length)));
        }
        let safe = self.stops.safe_len(&self.text).max(self.shown);
        let piece = self.text.get(self.shown..safe).unwrap_or("").to_string();
        self.shown = safe;
        self.logits = forward(&self.model, &[token], &mut self.cache)?;
        Ok(Some(piece))
    }

    /// Runs beam search to its end and returns the best text at once: which sequence is best
    /// is known only then, so beam search cannot stream token by token.
    fn beam_search(&mut self) -> Result<String> {
        let logits = std::mem::take(&mut self.logits);
        let (model, cache) = (&*self.model, &mut self.cache);
        let eos = model.tokenizer().eos_ids();
        let found = beam::search(logits, &self.prompt, eos, &self.cfg, |sources, tokens| {
            beam::forward(model, sources, tokens, cache)
        })?;
        let mut best = None;
        for h in found.hypotheses {
            let (text, token_ids, stopped) = self.cut_at_stop(h.tokens)?;
            if best.is_none() {
                let eos = token_ids.last().is_some_and(|t| self.model.tokenizer().eos_ids().contains(t));
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
        let tokens = found.steps * self.cfg.num_beams;
        self.timings.decode_tokens_per_s = tokens as f64 / self.timings.decode_s.max(1e-9);
        Ok(rest)
    }

    /// A beam-search sequence's text cut before its first stop string, its tokens cut after
    /// the one that completes it, and whether it was cut. Stop strings only cut the found
    /// sequences; unlike transformers' `stop_strings`, they do not end beams during the search.
    fn cut_at_stop(&self, tokens: Vec<u32>) -> Result<(String, Vec<u32>, bool)> {
        let tok = self.model.tokenizer();
        let mut text = tok.decode(&tokens, true)?;
        let Some(at) = self.stops.find(&text, 0) else { return Ok((text, tokens, false)) };
        text.truncate(at);
        let mut end = tokens.len();
        for n in 1..tokens.len() {
            if self.stops.find(&tok.decode(&tokens[..n], true)?, 0).is_some() {
                end = n;
                break;
            }
        }
        let mut tokens = tokens;
        tokens.truncate(end);
        Ok((text, tokens, true))
    }

    /// The logits the next token will be picked from (before any processing).
    pub(crate) fn take_logits(&mut self) -> Vec<f32> {
        std::mem::take(&mut self.logits)
    }

    /// Appends the text of the tokens not decoded yet. Only a window is decoded: the tokens
    /// since the last text that appeared, after the ones before it for context (so that
    /// decoders which strip a leading space or merge bytes see what a full decode sees).
    /// Without `flush`, text that ends in an incomplete UTF-8 character waits for more tokens.
    fn advance_text(&mut self, flush: bool) -> Result<()> {
        let tok = self.model.tokenizer();
        let before = tok.decode(&self.generated[self.prefix_offset..self.read_offset], true)?;
        let after = tok.decode(&self.generated[self.prefix_offset..], true)?;
        if after.len() > before.len() && (flush || !after.ends_with('\u{FFFD}')) {
            match after.strip_prefix(before.as_str()) {
                Some(new) => self.text.push_str(new),
                None => self.text = tok.decode(&self.generated, true)?,
            }
            self.prefix_offset = self.read_offset;
            self.read_offset = self.generated.len();
        }
        Ok(())
    }

    /// Ends generation now, as cancelled.
    pub fn cancel(&mut self) {
        if self.finish.is_none() {
            // Text already decoded stays; a failure to decode the last tokens loses only them.
            let _ = self.advance_text(true);
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

    /// The result; a generation not yet finished counts as cancelled.
    pub fn finish(mut self) -> Generation {
        self.cancel();
        Generation {
            text: self.text,
            token_ids: self.generated,
            prompt_token_ids: self.prompt,
            finish_reason: self.finish.unwrap_or(FinishReason::Cancelled),
            logprobs: self.cfg.logprobs.then_some(self.logprobs),
            timings: self.timings,
            seed: self.seed,
            sequences: self.sequences,
        }
    }

    /// Runs to the end, passing each non-empty piece to `on_piece`; `Break` cancels.
    pub fn run(mut self, mut on_piece: impl FnMut(&str) -> ControlFlow<()>) -> Result<Generation> {
        while let Some(piece) = self.step()? {
            if !piece.is_empty() && on_piece(&piece).is_break() {
                self.cancel();
            }
        }
        Ok(self.finish())
    }
}

impl<M: Deref<Target = Model>> Iterator for Generator<M> {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.step() {
                Ok(Some(p)) if p.is_empty() => continue,
                Ok(Some(p)) => return Some(Ok(p)),
                Ok(None) => return None,
                Err(e) => {
                    self.finish = Some(FinishReason::Cancelled);
                    return Some(Err(e));
                }
            }
        }
    }
}

/// One forward pass of `ids` after the cached positions; the last position's logits.
fn forward(model: &Model, ids: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
    model.pool().install(|| tch::no_grad(|| {
        if let [token] = ids {
            if let Some(logits) = model.network().decode_cpu(*token, cache)? {
                return Ok(logits);
            }
        }
        let ids: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
        let input = Tensor::f_from_slice(&ids)?.f_to_device(model.device())?.f_unsqueeze(0)?;
        let logits = model.network().forward(&input, cache)?;
        Ok(Vec::<f32>::try_from(logits.f_squeeze_dim(0)?.f_to_device(tch::Device::Cpu)?)?)
    }))
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
