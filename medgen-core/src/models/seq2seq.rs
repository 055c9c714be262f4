//! What the encoder-decoder families (T5, BART) share: the network interface, the decoder's
//! cache, attention with an additive bias, and the masks.

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use super::{cpu_cached, KvCache, Linear, Loader};
use crate::kernels;
use crate::error::{MedgenError, Result};

pub use super::config::{Seq2SeqArchitecture, Seq2SeqConfig};
pub(crate) use super::config::StackShape;

/// An encoder-decoder network.
pub(crate) trait Seq2Seq: Send + Sync {
    /// The encoder's output `[b, s, hidden]` (activations' kind) for `ids` (`[b, s]`, int64)
    /// and `mask` (`[b, s]`, nonzero at tokens, zero at padding).
    fn encode(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor>;

    /// An empty decoder cache for `batch` sequences of up to `capacity` decoder positions.
    fn new_cache(&self, batch: usize, capacity: usize) -> Result<Seq2SeqCache>;

    /// Runs decoder `ids` (`[b, t]`, int64) after the cached positions, attending to
    /// `encoder_out` where `encoder_mask` is nonzero, and returns the logits of every new
    /// position as `[b, t, vocab]` f32. The cross-attention keys and values are computed
    /// from `encoder_out` on the first call and reused after: every call with one cache must
    /// pass the same encoder output.
    fn decode(&self, ids: &Tensor, encoder_out: &Tensor, encoder_mask: &Tensor, cache: &mut Seq2SeqCache) -> Result<Tensor>;

    /// [`Seq2Seq::decode`] of one token per row (`tokens`), on CPU slices with medgen's
    /// kernels: the logits `[rows, vocab]`, or `None` when the network, its weights or the
    /// cache are not f32 on the CPU (then `decode` serves).
    fn decode_cpu(&self, _tokens: &[u32], _encoder_out: &Tensor, _encoder_mask: &Tensor, _cache: &mut Seq2SeqCache) -> Result<Option<Vec<f32>>> {
        Ok(None)
    }
}

/// The decoder's state between steps: self-attention keys and values, written position by
/// position, and cross-attention keys and values, computed once from the encoder output.
pub struct Seq2SeqCache {
    self_attn: KvCache,
    /// Per decoder layer, `[b, heads, s, head_dim]` each; empty until the first decode.
    cross: Vec<(Tensor, Tensor)>,
    /// The row of `cross` each row reads: beams of one prompt share one. Empty when row `i`
    /// reads row `i`.
    cross_rows: Vec<usize>,
    /// A recurrent decoder's state (see [`super::rnn`]): tensors with their batch dimension.
    recurrent: Vec<(Tensor, i64)>,
}

impl Seq2SeqCache {
    pub(crate) fn new(layers: usize, shape: [i64; 3], capacity: usize, kind: Kind, device: Device) -> Result<Self> {
        Ok(Seq2SeqCache { self_attn: KvCache::new(layers, shape, capacity, kind, device)?, cross: Vec::new(), cross_rows: Vec::new(), recurrent: Vec::new() })
    }

    /// A cache that stores no self-attention positions: one pass over whole target
    /// sequences, as training makes.
    pub(crate) fn passthrough(device: Device) -> Self {
        Seq2SeqCache { self_attn: KvCache::passthrough(device), cross: Vec::new(), cross_rows: Vec::new(), recurrent: Vec::new() }
    }

    /// Decoder positions already cached.
    pub fn len(&self) -> usize {
        self.self_attn.len()
    }

    pub fn is_empty(&self) -> bool {
        self.self_attn.is_empty()
    }

    /// Counts `t` new positions once every decoder layer has written them.
    pub(crate) fn advance(&mut self, t: usize) {
        self.self_attn.advance(t);
    }

    /// Keeps the sequences at `rows` (indices into the batch, repeats allowed), in that
    /// order: what beam search does after each step. The batch size becomes `rows`'s length.
    /// With `cross` false the cross-attention rows stay as they are: right when each new
    /// row reads the same encoder output as the old row at its index. With `cross` true,
    /// rows are mapped to the cross-attention rows they read, which are not copied: they
    /// span the whole input, and beams of one prompt share one.
    pub fn reorder(&mut self, rows: &[usize], cross: bool) -> Result<()> {
        self.self_attn.reorder(rows)?;
        let same = self.recurrent.first().is_some_and(|(t, dim)| t.size()[*dim as usize] == rows.len() as i64) && rows.iter().enumerate().all(|(i, &r)| i == r);
        if let Some((first, _)) = self.recurrent.first().filter(|_| !same) {
            let index: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
            let index = Tensor::f_from_slice(&index)?.f_to_device(first.device())?;
            for (t, dim) in self.recurrent.iter_mut() {
                *t = t.f_index_select(*dim, &index)?;
            }
        }
        if cross && !self.cross.is_empty() {
            self.cross_rows = rows.iter().map(|&r| self.cross_row(r)).collect();
        }
        Ok(())
    }

    /// A recurrent decoder's state after the cached positions; `None` before the first step.
    pub(crate) fn recurrent_state(&self) -> Option<Vec<Tensor>> {
        (!self.recurrent.is_empty()).then(|| self.recurrent.iter().map(|(t, _)| t.shallow_clone()).collect())
    }

    /// Keeps a recurrent decoder's state: tensors with their batch dimension, which
    /// [`Seq2SeqCache::reorder`] selects rows along.
    pub(crate) fn set_recurrent_state(&mut self, state: Vec<(Tensor, i64)>) {
        self.recurrent = state;
    }

    /// The row of the cross-attention keys and values that row `r` reads.
    fn cross_row(&self, r: usize) -> usize {
        self.cross_rows.get(r).copied().unwrap_or(r)
    }

    /// Copies each row's cross-attention keys and values to its own row, for libtorch's
    /// attention, which reads row `i` for row `i`.
    fn materialize_cross(&mut self) -> Result<()> {
        if self.cross_rows.is_empty() || self.cross.is_empty() {
            return Ok(());
        }
        let index: Vec<i64> = self.cross_rows.iter().map(|&r| r as i64).collect();
        let index = Tensor::f_from_slice(&index)?.f_to_device(self.cross[0].0.device())?;
        for (k, v) in self.cross.iter_mut() {
            *k = k.f_index_select(0, &index)?;
            *v = v.f_index_select(0, &index)?;
        }
        self.cross_rows.clear();
        Ok(())
    }

    /// Whether a CPU decode step of `rows` rows can use this cache: f32 CPU buffers, with
    /// that many rows.
    pub(crate) fn on_kernels(&self, rows: usize) -> bool {
        let mapped = if self.cross_rows.is_empty() { self.cross.iter().all(|(k, _)| k.size()[0] == rows as i64) } else { self.cross_rows.len() == rows };
        self.self_attn.is_cpu_f32()
            && self.self_attn.batch() == rows
            && mapped
            && self.cross.iter().flat_map(|(k, v)| [k, v]).all(|t| cpu_cached(t).is_some())
    }

    /// Layer `i`'s cross-attention keys and values, row `r` for row `r`, projected from
    /// `encoder_out` by `kv` (keys and values fused) when the cache has none yet.
    fn cross(&mut self, i: usize, kv: &Linear, encoder_out: &Tensor, heads: i64, head_dim: i64) -> Result<(Tensor, Tensor)> {
        self.materialize_cross()?;
        self.project(i, kv, encoder_out, heads, head_dim)?;
        let (k, v) = self.cross.get(i).ok_or_else(|| MedgenError::invalid("cache", "decoder layers run out of order"))?;
        Ok((k.shallow_clone(), v.shallow_clone()))
    }

    /// Projects layer `i`'s cross-attention keys and values from `encoder_out` by `kv` when
    /// the cache has none yet.
    fn project(&mut self, i: usize, kv: &Linear, encoder_out: &Tensor, heads: i64, head_dim: i64) -> Result<()> {
        if i == self.cross.len() {
            let kv = kv.forward_parts(encoder_out, &[heads * head_dim; 2])?;
            // Contiguous heads: each step reads every head's keys and values from end to end.
            let k = super::split_heads(&kv[0], heads, head_dim)?.f_contiguous()?;
            let v = super::split_heads(&kv[1], heads, head_dim)?.f_contiguous()?;
            self.cross.push((k, v));
        }
        Ok(())
    }
}

/// What one decoder attention layer reads and writes in the cache.
pub(crate) enum CacheSlot<'a> {
    /// Self-attention of layer `i`: append the new keys and values, attend to all.
    SelfAttn(&'a mut Seq2SeqCache, usize),
    /// Cross-attention of layer `i` to the encoder output.
    Cross(&'a mut Seq2SeqCache, usize, &'a Tensor),
}

/// What an attention layer of a CPU decode step reads its keys and values from.
pub(crate) enum CpuSlot<'a> {
    /// Self-attention of layer `i`: write the new keys and values, attend to all positions.
    SelfAttn(&'a mut Seq2SeqCache, usize),
    /// Cross-attention of layer `i`, whose keys and values [`Attention::project_cross`] made.
    Cross(&'a Seq2SeqCache, usize),
}

/// Additive terms of a CPU decode step's attention scores: element `[row, head, key]` at
/// `row * row_stride + head * head_stride + key`; a stride of 0 repeats the terms. Empty
/// data adds nothing.
pub(crate) struct ScoreBias<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
    pub head_stride: usize,
}

impl<'a> ScoreBias<'a> {
    /// One term per key for each of `rows` rows, the same for every head: padding masks.
    pub fn per_row(data: &'a [f32], rows: usize) -> Self {
        ScoreBias { data, row_stride: data.len() / rows.max(1), head_stride: 0 }
    }
}

/// What a CPU decode step of `tokens` does before its layers: checks the tokens and the
/// encoder output, and projects every layer's cross-attention keys and values (`cross`, by
/// layer index) into `cache`. Returns the cross-attention's padding terms per row, or
/// `None` when the cache does not allow the step (then libtorch's decode serves).
pub(crate) fn start_cpu_step<'a>(
    tokens: &[u32],
    dims: [usize; 2],
    encoder: [&Tensor; 2],
    cache: &mut Seq2SeqCache,
    cross: impl IntoIterator<Item = (usize, &'a Attention)>,
) -> Result<Option<Vec<f32>>> {
    let ([vocab, hidden], [encoder_out, encoder_mask], m) = (dims, encoder, tokens.len());
    check_encoder_out(encoder_out, encoder_mask, m as i64, hidden)?;
    if let Some(bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
        return Err(MedgenError::invalid("decoder_input_ids", format!("token id {bad} is outside the vocabulary of {vocab}")));
    }
    for (i, attention) in cross {
        attention.project_cross(cache, i, encoder_out)?;
    }
    if !cache.on_kernels(m) {
        return Ok(None);
    }
    padding_bias_rows(encoder_mask).map(Some)
}

/// Multi-head attention with separate q, k/v projections and an output projection; the
/// families differ only in names, biases and the score scale.
pub(crate) struct Attention {
    q: Linear,
    /// Keys and values fused: outputs `[k, v]`.
    kv: Linear,
    o: Linear,
    heads: i64,
    head_dim: i64,
    /// Multiplies the scores: `head_dim^-0.5` for BART, 1 for T5 (folded into its init).
    scale: f64,
    /// On the attention probabilities while training.
    dropout: f64,
}

impl Attention {
    /// Loads `{prefix}.{q,k,v,o}` (the names given in `names`) with shapes from `hidden`,
    /// `heads` and `head_dim`.
    pub fn load(w: &Loader, prefix: &str, names: [&str; 4], dims: [i64; 3], bias: bool, scale: f64, dropout: f64) -> Result<Self> {
        let [hidden, heads, head_dim] = dims;
        let inner = heads * head_dim;
        let lin = |n: &str, out, inp| Linear::load(w, &format!("{prefix}.{n}"), out, inp, bias);
        Ok(Attention {
            q: lin(names[0], inner, hidden)?,
            kv: Linear::fuse(vec![lin(names[1], inner, hidden)?, lin(names[2], inner, hidden)?])?,
            o: lin(names[3], hidden, inner)?,
            heads,
            head_dim,
            scale,
            dropout,
        })
    }

    /// `x` (`[b, t, hidden]`) attending to itself (encoder: `cache` is `None`), to itself and
    /// the cached positions, or to the encoder output. `bias` is added to the scores
    /// (`[1 or b, 1 or heads, t, keys]`): masks and T5's position bias.
    pub fn forward(&self, x: &Tensor, bias: Option<&Tensor>, cache: Option<CacheSlot>) -> Result<Tensor> {
        let (heads, hd) = (self.heads, self.head_dim);
        let q = super::split_heads(&self.q.forward(x)?, heads, hd)?;
        let cross = matches!(cache, Some(CacheSlot::Cross(..)));
        let (k, v) = match cache {
            Some(CacheSlot::Cross(cache, i, enc)) => cache.cross(i, &self.kv, enc, heads, hd)?,
            other => {
                let kv = self.kv.forward_parts(x, &[heads * hd; 2])?;
                let (k, v) = (super::split_heads(&kv[0], heads, hd)?, super::split_heads(&kv[1], heads, hd)?);
                match other {
                    Some(CacheSlot::SelfAttn(cache, i)) => cache.self_attn.update(i, &k, &v)?,
                    _ => (k, v),
                }
            }
        };
        let p = if super::layers::training() { self.dropout } else { 0.0 };
        // A probe (see `Model::forced`) records where the decoder looks in the encoder's output.
        if cross && super::layers::probing() {
            super::layers::record_attention(&q, &k, self.scale, bias, None)?;
        }
        let out = attend(&q, &k, &v, bias, self.scale, p)?;
        self.o.forward(&super::merge_heads(&out)?)
    }
}

impl Attention {
    /// Whether [`Attention::step_cpu`] can run this layer.
    pub fn on_kernels(&self) -> bool {
        self.q.on_kernels() && self.kv.on_kernels() && self.o.on_kernels()
    }

    /// Projects layer `i`'s cross-attention keys and values from `encoder_out` into `cache`,
    /// unless it holds them already.
    pub fn project_cross(&self, cache: &mut Seq2SeqCache, i: usize, encoder_out: &Tensor) -> Result<()> {
        cache.project(i, &self.kv, encoder_out, self.heads, self.head_dim)
    }

    /// One decode step of `m` rows (`x`: `[m, hidden]`) on CPU f32 slices, for a layer that
    /// is [`Attention::on_kernels`]: the attention's output projection, `[m, hidden]`. Each
    /// row reads its own self-attention row of the cache, and the cross-attention row its
    /// prompt's encoder output made; heads are split across the threads.
    pub fn step_cpu(&self, x: &[f32], m: usize, slot: CpuSlot, bias: &ScoreBias) -> Result<Vec<f32>> {
        let (heads, hd) = (self.heads as usize, self.head_dim as usize);
        let inner = heads * hd;
        let mut q = vec![0.0; m * inner];
        let mut ok = self.q.matvec(x, &mut q);
        let mut kv_rows: Vec<usize> = (0..m).collect();
        let ((k, v), positions) = match slot {
            CpuSlot::SelfAttn(cache, i) => {
                let mut kv = vec![0.0; m * 2 * inner];
                ok &= self.kv.matvec(x, &mut kv);
                let (k, v): (Vec<f32>, Vec<f32>) = (
                    kv.chunks_exact(2 * inner).flat_map(|r| &r[..inner]).copied().collect(),
                    kv.chunks_exact(2 * inner).flat_map(|r| &r[inner..]).copied().collect(),
                );
                let positions = cache.len() + 1;
                (cache.self_attn.cpu_layer(i, &k, &v)?, positions)
            }
            CpuSlot::Cross(cache, i) => {
                kv_rows.iter_mut().for_each(|r| *r = cache.cross_row(*r));
                let (k, v) = cache.cross.get(i).ok_or_else(|| MedgenError::invalid("cache", "cross-attention keys not projected"))?;
                let (Some(kc), Some(vc)) = (cpu_cached(k), cpu_cached(v)) else {
                    return Err(MedgenError::invalid("cache", "cross-attention keys are not f32 CPU tensors"));
                };
                ((kc, vc), k.size()[2] as usize)
            }
        };
        if !ok {
            return Err(MedgenError::invalid("weights", "attention weights the CPU kernels cannot read"));
        }
        let scale = self.scale as f32;
        // Head by head, `[heads, m, hd]`; within a head, each run of rows that share keys
        // and values (a prompt's beams, in cross-attention) reads them once.
        let mut by_head = vec![0.0; m * inner];
        by_head.par_chunks_mut(m * hd).enumerate().for_each(|(h, outs)| {
            let mut r0 = 0;
            while r0 < m {
                let g = kv_rows[r0..].iter().take_while(|&&r| r == kv_rows[r0]).count();
                let rows = r0..r0 + g;
                let qs: Vec<f32> = rows.clone().flat_map(|r| &q[r * inner + h * hd..r * inner + (h + 1) * hd]).copied().collect();
                let terms: Vec<&[f32]> = rows
                    .map(|r| {
                        let start = r * bias.row_stride + h * bias.head_stride;
                        bias.data.get(start..start + positions).unwrap_or(&[])
                    })
                    .collect();
                let out = &mut outs[r0 * hd..(r0 + g) * hd];
                kernels::attend_head(&qs, [&k, &v], [kv_rows[r0], h], positions, scale, &terms, out);
                r0 += g;
            }
        });
        let mut attn = vec![0.0; m * inner];
        for (j, out) in by_head.chunks_exact(hd).enumerate() {
            let (h, r) = (j / m, j % m);
            attn[r * inner + h * hd..r * inner + (h + 1) * hd].copy_from_slice(out);
        }
        let mut out = vec![0.0; m * self.o.out_features()];
        self.o.matvec(&attn, &mut out);
        Ok(out)
    }
}

/// `softmax(q kᵀ · scale + bias) v` for `q` `[b, h, t, d]` and `k`, `v` `[b, h, s, d]`.
/// On the CPU, where libtorch runs single-threaded (see `LoadOptions::threads`), the rows
/// (or, for fewer rows than threads, the heads) are split across medgen's threads.
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>, scale: f64, dropout: f64) -> Result<Tensor> {
    let bias = bias.map(|b| b.f_to_kind(q.kind())).transpose()?;
    let (b, h) = (q.size()[0], q.size()[1]);
    let threads = rayon::current_num_threads() as i64;
    // Split the batch (dimension 0) or the heads (1), whichever gives every thread a part.
    let (dim, n) = if b >= threads { (0, b) } else { (1, h) };
    let parts = threads.min(n);
    // Training runs on libtorch's own threads (see `train::finetune_until`): one call, whose
    // backward libtorch also splits, rather than tasks on a pool that would oversubscribe them.
    let training = super::layers::training() || q.requires_grad();
    if let Some(bias) = bias.as_ref().filter(|b| b.requires_grad()) {
        // A bias that trains (T5's position bias) sends libtorch's fused attention down its
        // general path, which guards every row against being fully masked: spelled out, as
        // transformers does, the same arithmetic is cheaper. The bias stays finite (`MASKED`).
        // One `baddbmm` adds the bias as the product is written, rather than in a second pass
        // over the scores (the encoder's bias is already `[b, h, q, k]`).
        let (s, t, d) = (q.size()[2], k.size()[2], q.size()[3]);
        let bias = bias.f_expand([b, h, s, t], false)?.f_reshape([b * h, s, t])?;
        let keys_t = k.f_reshape([b * h, t, d])?.f_transpose(1, 2)?;
        let scores = bias.f_baddbmm(&q.f_reshape([b * h, s, d])?, &keys_t, 1.0, scale)?.f_view([b, h, s, t])?;
        let probs = super::layers::dropout(scores.f_softmax(-1, q.kind())?, dropout)?;
        return Ok(probs.f_matmul(v)?);
    }
    if q.device() != Device::Cpu || parts < 2 || dropout > 0.0 || training {
        return Ok(Tensor::f_scaled_dot_product_attention(q, k, v, bias.as_ref(), dropout, false, Some(scale), false)?);
    }
    let chunk = (n + parts - 1) / parts;
    // Each task gets its own handles (tensors may move between threads but not be shared).
    let part = |t: &Tensor, start: i64, len: i64| -> Result<Tensor> {
        Ok(if t.size()[dim] == n { t.f_narrow(dim as i64, start, len)? } else { t.shallow_clone() })
    };
    let mut jobs = Vec::with_capacity(parts as usize);
    for start in (0..n).step_by(chunk as usize) {
        let len = chunk.min(n - start);
        let bias = bias.as_ref().map(|t| part(t, start, len)).transpose()?;
        jobs.push((part(q, start, len)?, part(k, start, len)?, part(v, start, len)?, bias));
    }
    let outs: Vec<Result<Tensor>> = jobs
        .into_par_iter()
        .map(|(q, k, v, bias)| Ok(Tensor::f_scaled_dot_product_attention(&q, &k, &v, bias.as_ref(), 0.0, false, Some(scale), false)?))
        .collect();
    Ok(Tensor::f_cat(&outs.into_iter().collect::<Result<Vec<_>>>()?, dim as i64)?)
}

/// What a masked score becomes: transformers' `finfo(float32).min`, finite so that a row
/// with every key masked (an all-padding sequence) averages instead of making NaN.
const MASKED: f64 = f32::MIN as f64;

/// `[b, 1, 1, s]` f32: 0 where `mask` (`[b, s]`) is nonzero, [`MASKED`] where it is zero.
pub(crate) fn padding_bias(mask: &Tensor) -> Result<Tensor> {
    let pad = mask.f_eq(0)?.f_to_kind(Kind::Float)?;
    Ok(pad.f_mul_scalar(MASKED)?.f_unsqueeze(1)?.f_unsqueeze(1)?)
}

/// [`padding_bias`] of `mask` (`[b, s]`) as `b * s` f32 values, for the CPU decode step.
pub(crate) fn padding_bias_rows(mask: &Tensor) -> Result<Vec<f32>> {
    let mask = Vec::<i64>::try_from(mask.f_to_kind(Kind::Int64)?.f_to_device(Device::Cpu)?.f_contiguous()?.f_view([-1])?)?;
    Ok(mask.iter().map(|&m| if m == 0 { MASKED as f32 } else { 0.0 }).collect())
}

/// `[1, 1, t, past + t]` f32: new position `i` sees keys `0..=past + i`.
pub(crate) fn causal_bias(t: i64, past: i64, device: Device) -> Result<Tensor> {
    let rows = Tensor::f_arange_start(past, past + t, (Kind::Int64, device))?.f_unsqueeze(1)?;
    let cols = Tensor::f_arange(past + t, (Kind::Int64, device))?.f_unsqueeze(0)?;
    let future = cols.f_gt_tensor(&rows)?.f_to_kind(Kind::Float)?;
    Ok(future.f_mul_scalar(MASKED)?.f_unsqueeze(0)?.f_unsqueeze(0)?)
}

/// Checks that `ids` is `[b, t]` with `t > 0` and that `mask`, if given, has its shape.
pub(crate) fn check_ids(what: &'static str, ids: &Tensor, mask: Option<&Tensor>) -> Result<(i64, i64)> {
    let size = ids.size();
    let &[b, t] = size.as_slice() else {
        return Err(MedgenError::invalid(what, format!("token ids have shape {size:?}, expected [batch, length]")));
    };
    if b == 0 || t == 0 {
        return Err(MedgenError::invalid(what, format!("token ids have shape {size:?}: nothing to run")));
    }
    if let Some(m) = mask.filter(|m| m.size() != size) {
        return Err(MedgenError::invalid(what, format!("attention mask has shape {:?}, token ids {size:?}", m.size())));
    }
    Ok((b, t))
}

/// Checks that every id is below `vocab`, so that an embedding lookup cannot fail deep in
/// libtorch with an index error.
pub(crate) fn check_vocab(what: &'static str, ids: &Tensor, vocab: usize) -> Result<()> {
    let (lo, hi) = (ids.f_min()?.f_int64_value(&[])?, ids.f_max()?.f_int64_value(&[])?);
    if lo < 0 || hi >= vocab as i64 {
        return Err(MedgenError::invalid(what, format!("token id {} is outside the vocabulary of {vocab}", if lo < 0 { lo } else { hi })));
    }
    Ok(())
}

/// Checks that the encoder output is `[b, s, hidden]` and its mask `[b, s]`.
pub(crate) fn check_encoder_out(out: &Tensor, mask: &Tensor, b: i64, hidden: usize) -> Result<()> {
    let (os, ms) = (out.size(), mask.size());
    if os.len() != 3 || os[0] != b || os[2] != hidden as i64 || ms != os[..2] {
        return Err(MedgenError::invalid(
            "encoder_out",
            format!("encoder output {os:?} and mask {ms:?} do not fit a batch of {b} and width {hidden}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    #[test]
    fn padding_bias_masks_only_padded_keys() {
        let mask = Tensor::from_slice(&[1i64, 1, 0, 1, 1, 1]).view([2, 3]);
        let bias = padding_bias(&mask).unwrap();
        assert_eq!(bias.size(), [2, 1, 1, 3]);
        assert_eq!(values(&bias), [0.0, 0.0, f32::MIN, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn causal_bias_lets_new_positions_see_the_cached_ones_and_earlier_new_ones() {
        let bias = causal_bias(2, 1, Device::Cpu).unwrap();
        assert_eq!(bias.size(), [1, 1, 2, 3]);
        assert_eq!(values(&bias), [0.0, 0.0, f32::MIN, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn reorder_keeps_the_chosen_rows_of_self_and_cross_attention() {
        let mut cache = Seq2SeqCache::new(1, [2, 1, 1], 4, Kind::Float, Device::Cpu).unwrap();
        let k = Tensor::from_slice(&[10f32, 20.]).view([2, 1, 1, 1]);
        let _ = cache.self_attn.update(0, &k, &k).unwrap();
        cache.advance(1);
        cache.cross.push((k.shallow_clone(), k.shallow_clone()));
        cache.reorder(&[1, 1, 0], true).unwrap();
        cache.reorder(&[2, 0, 0], true).unwrap();
        assert_eq!(cache.len(), 1);
        let (kc, _) = &cache.self_attn.layers[0];
        assert_eq!(values(&kc.narrow(2, 0, 1)), [10.0, 20.0, 20.0]);
        // Cross-attention rows are mapped, not copied, until libtorch's attention reads them.
        assert_eq!(cache.cross_rows, [0, 1, 1]);
        assert_eq!(values(&cache.cross[0].0), [10.0, 20.0]);
        cache.materialize_cross().unwrap();
        assert_eq!(values(&cache.cross[0].0), [10.0, 20.0, 20.0]);
        assert!(cache.cross_rows.is_empty());
    }

    #[test]
    fn token_ids_outside_the_vocabulary_are_refused() {
        let ids = Tensor::from_slice(&[1i64, 7]).view([1, 2]);
        assert!(check_vocab("input_ids", &ids, 8).is_ok());
        let err = check_vocab("input_ids", &ids, 7).unwrap_err().to_string();
        assert!(err.contains("token id 7 is outside the vocabulary of 7"), "{err}");
    }
}
