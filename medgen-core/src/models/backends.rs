//! The two kinds of network as generation backends: a decoder-only network over a KV
//! cache ([`DecoderOnly`]), and an encoder-decoder network ([`Seq2SeqModel`]), each running
//! its batches of rows on the model's thread pool.

use std::sync::Arc;

use tch::{Device, Kind, Tensor};

use super::seq2seq::{Seq2Seq, Seq2SeqCache, Seq2SeqConfig};
use super::{KvCache, Network};
use crate::error::{MedgenError, Result};
use crate::generation::backend::{Backend, DecoderStart, Limits, Session};
use crate::runtime::Runtime;

/// A decoder-only network (the Llama family, GPT-2).
pub(crate) struct DecoderOnly {
    pub net: Box<dyn Network>,
    pub runtime: Runtime,
    pub limits: Limits,
}

struct DecoderSession {
    backend: Arc<DecoderOnly>,
    cache: KvCache,
}

impl DecoderOnly {
    /// One sequence's forward pass of `ids` after the cached positions: the last position's
    /// logits, through medgen's CPU kernels for a single token where the network allows.
    fn forward_one(&self, ids: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        if let [token] = ids {
            if let Some(logits) = self.net.decode_cpu(*token, cache)? {
                return Ok(logits);
            }
        }
        let ids: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
        let input = Tensor::f_from_slice(&ids)?.f_to_device(self.runtime.device)?.f_unsqueeze(0)?;
        let logits = self.net.forward(&input, cache)?;
        Ok(Vec::<f32>::try_from(logits.f_squeeze_dim(0)?.f_to_device(Device::Cpu)?)?)
    }
}

impl Backend for DecoderOnly {
    fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Prompts of different lengths are padded on the left; the cache's masks hide the padding.
    fn prefill(self: Arc<Self>, prompts: &[Vec<u32>], new_tokens: usize) -> Result<(Box<dyn Session>, Vec<Vec<f32>>)> {
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let (cache, logits) = self.runtime.run(|| {
            let mut cache = self.net.new_cache(prompts.len(), longest + new_tokens)?;
            if let [prompt] = prompts {
                let logits = self.forward_one(prompt, &mut cache)?;
                return Ok((cache, vec![logits]));
            }
            cache.set_left_padding(prompts.iter().map(|p| longest - p.len()).collect())?;
            let mut ids = Vec::with_capacity(prompts.len() * longest);
            for p in prompts {
                // The padding's id does not matter: nothing attends to it.
                ids.extend(std::iter::repeat_n(0, longest - p.len()).chain(p.iter().map(|&t| t as i64)));
            }
            let input = Tensor::f_from_slice(&ids)?.f_view([prompts.len() as i64, longest as i64])?.f_to_device(self.runtime.device)?;
            let logits = self.net.forward(&input, &mut cache)?;
            Ok((cache, rows(&logits)?))
        })?;
        Ok((Box::new(DecoderSession { backend: self, cache }), logits))
    }
}

impl Session for DecoderSession {
    fn step(&mut self, sources: &[usize], tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        let (b, cache) = (&self.backend, &mut self.cache);
        b.runtime.run(|| {
            cache.reorder(sources)?;
            if let [token] = tokens {
                return Ok(vec![b.forward_one(&[*token], cache)?]);
            }
            rows(&b.net.forward(&ids_column(tokens, b.runtime.device)?, cache)?)
        })
    }
}

/// The encoder-decoder network of a [`crate::Model`] (T5, BART), for running it step by
/// step: what the tests compare with transformers layer by layer. [`crate::Model::generate`]
/// does all of this itself.
///
/// ```no_run
/// # use medgen::{LoadOptions, Model, MedgenError};
/// let model = Model::load(Some("flan-t5-small".as_ref()), &LoadOptions::default())?;
/// let m = model.seq2seq().ok_or(MedgenError::Unsupported("not an encoder-decoder".into()))?;
/// let (ids, mask) = m.batch(&[model.tokenize("summarize: chest pain, no fever")?])?;
/// let enc = m.encode(&ids, &mask)?;
/// let mut cache = m.new_cache(1, 32)?;
/// let start = tch::Tensor::from_slice(&[m.config().decoder_start_token_id as i64]).view([1, 1]);
/// let logits = m.decode(&start, &enc, &mask, &mut cache)?; // [1, 1, vocab]
/// # Ok::<(), medgen::MedgenError>(())
/// ```
pub struct Seq2SeqModel {
    network: Box<dyn Seq2Seq>,
    config: Seq2SeqConfig,
    runtime: Runtime,
    limits: Limits,
}

struct Seq2SeqSession {
    backend: Arc<Seq2SeqModel>,
    cache: Seq2SeqCache,
    /// The encoder's output and mask, one row per decoder row.
    encoded: Tensor,
    mask: Tensor,
    /// The prompt whose encoder output each row reads.
    inputs: Vec<usize>,
}

impl Seq2SeqModel {
    pub(crate) fn new(network: Box<dyn Seq2Seq>, config: Seq2SeqConfig, runtime: Runtime) -> Self {
        let decoder = DecoderStart {
            start: config.decoder_start_token_id,
            forced_bos: config.forced_bos_token_id,
            forced_eos: config.forced_eos_token_id,
        };
        let limits = Limits { vocab_size: config.vocab_size, context_length: config.context_length, decoder: Some(decoder) };
        Seq2SeqModel { network, config, runtime, limits }
    }

    /// The network itself, for training's differentiable passes.
    pub(crate) fn network(&self) -> &dyn Seq2Seq {
        &*self.network
    }

    pub fn config(&self) -> &Seq2SeqConfig {
        &self.config
    }

    /// Runs `f` on the model's thread pool, gradients off.
    pub(crate) fn run<R: Send>(&self, f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
        self.runtime.run(f)
    }

    pub fn device(&self) -> Device {
        self.runtime.device
    }

    /// Token ids `[b, s]` (int64) and attention mask `[b, s]` (1 at tokens, 0 at padding)
    /// on the model's device, for sequences of different lengths padded on the right with
    /// the pad token, as transformers' tokenizers pad T5 and BART inputs.
    pub fn batch(&self, seqs: &[Vec<u32>]) -> Result<(Tensor, Tensor)> {
        let s = seqs.iter().map(Vec::len).max().unwrap_or(0);
        if s == 0 {
            return Err(MedgenError::invalid("input_ids", "no tokens to encode"));
        }
        let pad = self.config.pad_token_id.unwrap_or(0) as i64;
        let (mut ids, mut mask) = (Vec::with_capacity(seqs.len() * s), Vec::with_capacity(seqs.len() * s));
        for seq in seqs {
            ids.extend(seq.iter().map(|&t| t as i64).chain(std::iter::repeat(pad)).take(s));
            mask.extend((0..s).map(|i| i64::from(i < seq.len())));
        }
        let shape = [seqs.len() as i64, s as i64];
        let to = |v: &[i64]| -> Result<Tensor> { Ok(Tensor::f_from_slice(v)?.f_view(shape)?.f_to_device(self.runtime.device)?) };
        Ok((to(&ids)?, to(&mask)?))
    }

    /// The encoder output `[b, s, hidden]` of `ids` and `mask` (`[b, s]` each).
    pub fn encode(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        // Tensors are not `Sync`, so the pool's thread gets its own handles to the same data.
        let (ids, mask) = (ids.shallow_clone(), mask.shallow_clone());
        self.runtime.run(move || self.network.encode(&ids, &mask))
    }

    /// An empty decoder cache for `batch` sequences of up to `capacity` decoder tokens.
    pub fn new_cache(&self, batch: usize, capacity: usize) -> Result<Seq2SeqCache> {
        self.network.new_cache(batch, capacity)
    }

    /// The logits `[b, t, vocab]` (f32) of decoder `ids` (`[b, t]`) after the cached ones.
    /// Every call with one cache must pass the same `encoder_out` and `encoder_mask`.
    pub fn decode(&self, ids: &Tensor, encoder_out: &Tensor, encoder_mask: &Tensor, cache: &mut Seq2SeqCache) -> Result<Tensor> {
        let (ids, out, mask) = (ids.shallow_clone(), encoder_out.shallow_clone(), encoder_mask.shallow_clone());
        self.runtime.run(move || self.network.decode(&ids, &out, &mask, cache))
    }

    /// Each row's logits after its one new token, through the network's CPU step where it
    /// has one.
    fn decode_step(&self, tokens: &[u32], encoded: &Tensor, mask: &Tensor, cache: &mut Seq2SeqCache) -> Result<Vec<Vec<f32>>> {
        if let Some(logits) = self.network.decode_cpu(tokens, encoded, mask, cache)? {
            return Ok(logits.chunks(self.config.vocab_size).map(<[f32]>::to_vec).collect());
        }
        rows(&self.network.decode(&ids_column(tokens, self.runtime.device)?, encoded, mask, cache)?)
    }
}

impl Backend for Seq2SeqModel {
    fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Encoder inputs of different lengths are padded on the right and masked.
    fn prefill(self: Arc<Self>, prompts: &[Vec<u32>], new_tokens: usize) -> Result<(Box<dyn Session>, Vec<Vec<f32>>)> {
        let (cache, encoded, mask, logits) = self.runtime.run(|| {
            let (ids, mask) = self.batch(prompts)?;
            let encoded = self.network.encode(&ids, &mask)?;
            let mut cache = self.network.new_cache(prompts.len(), new_tokens + 1)?;
            let start = vec![self.config.decoder_start_token_id; prompts.len()];
            let logits = self.decode_step(&start, &encoded, &mask, &mut cache)?;
            Ok((cache, encoded, mask, logits))
        })?;
        let inputs = (0..prompts.len()).collect();
        Ok((Box::new(Seq2SeqSession { backend: self, cache, encoded, mask, inputs }), logits))
    }
}

impl Session for Seq2SeqSession {
    fn step(&mut self, sources: &[usize], tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        let Seq2SeqSession { backend, cache, encoded, mask, inputs } = self;
        if let Some(bad) = sources.iter().find(|&&r| r >= inputs.len()) {
            return Err(MedgenError::internal("rows", format!("row {bad} is outside the batch of {}", inputs.len())));
        }
        let moved: Vec<usize> = sources.iter().map(|&r| inputs[r]).collect();
        // Rows keep their encoder output unless prompts joined or left the batch.
        let cross = moved != *inputs;
        backend.runtime.run(|| {
            cache.reorder(sources, cross)?;
            if cross {
                let index: Vec<i64> = sources.iter().map(|&r| r as i64).collect();
                let index = Tensor::f_from_slice(&index)?.f_to_device(backend.runtime.device)?;
                *encoded = encoded.f_index_select(0, &index)?;
                *mask = mask.f_index_select(0, &index)?;
                *inputs = moved;
            }
            backend.decode_step(tokens, encoded, mask, cache)
        })
    }
}

/// Tokens as a `[n, 1]` int64 tensor on `device`.
fn ids_column(tokens: &[u32], device: Device) -> Result<Tensor> {
    let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
    Ok(Tensor::f_from_slice(&ids)?.f_view([tokens.len() as i64, 1])?.f_to_device(device)?)
}

/// The rows of `[n, vocab]` or `[n, 1, vocab]` logits (the last position), as f32 on the CPU.
fn rows(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    let size = logits.size();
    let vocab = size.last().copied().unwrap_or(0) as usize;
    if vocab == 0 || size.len() < 2 {
        return Err(MedgenError::format("the network returned no logits"));
    }
    let last = if size.len() == 3 { logits.f_select(1, size[1] - 1)? } else { logits.shallow_clone() };
    let flat = Vec::<f32>::try_from(last.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?.f_reshape([-1])?)?;
    Ok(flat.chunks(vocab).map(<[f32]>::to_vec).collect())
}
