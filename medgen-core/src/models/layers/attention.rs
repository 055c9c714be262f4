//! Causal self-attention over a KV cache, and the head reshapes the families share.

use std::cell::RefCell;

use tch::{Device, Kind, Tensor};

use crate::error::{MedgenError, Result};
use crate::kernels;

/// An attention probe (see [`probe_attention`]): the last `rows` query positions of each
/// recording layer, the sum of their probabilities so far and the number of layers summed.
struct Probe {
    rows: i64,
    sum: Option<Tensor>,
    layers: usize,
}

thread_local! {
    static PROBE: RefCell<Option<Probe>> = const { RefCell::new(None) };
}

/// Runs `f` (a forward pass on this thread) recording the attention of its last `rows` query
/// positions in every layer that records (decoder-only self-attention, encoder-decoder
/// cross-attention): the probabilities averaged over heads and layers, `[b, rows, keys]`;
/// `None` when no layer recorded.
pub(crate) fn probe_attention<R>(rows: usize, f: impl FnOnce() -> Result<R>) -> Result<(R, Option<Tensor>)> {
    PROBE.with(|p| *p.borrow_mut() = Some(Probe { rows: rows as i64, sum: None, layers: 0 }));
    let out = f();
    let probe = PROBE.with(|p| p.borrow_mut().take());
    let mean = match probe {
        Some(Probe { sum: Some(sum), layers, .. }) => Some(sum.f_div_scalar(layers as f64)?),
        _ => None,
    };
    Ok((out?, mean))
}

/// Whether this thread is inside [`probe_attention`].
pub(crate) fn probing() -> bool {
    PROBE.with(|p| p.borrow().is_some())
}

/// Adds the probabilities of `softmax(q kᵀ · scale + bias)` (where `allowed`, boolean, permits)
/// of the probe's last query rows, averaged over heads, to the probe. `q` is `[b, heads, t,
/// d]`, `k` `[b, kv heads, keys, d]` (grouped-query attention when fewer); `bias` and
/// `allowed` broadcast to `[b, heads, t, keys]`.
pub(crate) fn record_attention(q: &Tensor, k: &Tensor, scale: f64, bias: Option<&Tensor>, allowed: Option<&Tensor>) -> Result<()> {
    let Some(rows) = PROBE.with(|p| p.borrow().as_ref().map(|p| p.rows)) else { return Ok(()) };
    let t = q.size()[2];
    let rows = rows.min(t);
    // The last `rows` positions of a tensor whose query dimension (2) is `t` (not broadcast).
    let last = |x: &Tensor| -> Result<Tensor> { Ok(if x.size()[2] == t { x.f_narrow(2, t - rows, rows)? } else { x.shallow_clone() }) };
    let group = q.size()[1] / k.size()[1];
    let k = if group > 1 { k.f_repeat_interleave_self_int(group, 1, None)? } else { k.shallow_clone() };
    let keys_t = k.f_to_kind(Kind::Float)?.f_transpose(-1, -2)?;
    let (q, bias, allowed) = (last(q)?.f_to_kind(Kind::Float)?, bias.map(last).transpose()?, allowed.map(last).transpose()?);
    // A block of query rows at a time, so that the scores of every head (`[b, heads, block,
    // keys]` f32) never need more than a bounded share of memory however long the target.
    const BLOCK: i64 = 256;
    let mut means = Vec::new();
    for start in (0..rows).step_by(BLOCK as usize) {
        let len = BLOCK.min(rows - start);
        let block = |x: &Tensor| -> Result<Tensor> { Ok(if x.size()[2] == rows { x.f_narrow(2, start, len)? } else { x.shallow_clone() }) };
        let mut scores = block(&q)?.f_matmul(&keys_t)?.f_mul_scalar(scale)?;
        if let Some(bias) = &bias {
            scores = scores.f_add(&block(bias)?.f_to_kind(Kind::Float)?)?;
        }
        if let Some(allowed) = &allowed {
            scores = scores.f_masked_fill(&block(allowed)?.f_logical_not()?, f64::NEG_INFINITY)?;
        }
        means.push(scores.f_softmax(-1, Kind::Float)?.f_mean_dim(1, false, Kind::Float)?.f_detach()?);
    }
    let mean = Tensor::f_cat(&means, 1)?;
    PROBE.with(|p| -> Result<()> {
        if let Some(probe) = p.borrow_mut().as_mut() {
            probe.sum = Some(match probe.sum.take() {
                Some(s) => s.f_add(&mean)?,
                None => mean,
            });
            probe.layers += 1;
        }
        Ok(())
    })
}

/// The data of `t`, an f32 CPU tensor `[rows, heads, positions, head_dim]` whose last
/// dimension is contiguous, for medgen's attention kernels; `None` for any other tensor.
pub(crate) fn cpu_cached(t: &Tensor) -> Option<kernels::Cached<'_>> {
    let (size, st) = (t.size(), t.stride());
    if t.device() != Device::Cpu || t.kind() != Kind::Float || size.len() != 4 || st[3] != 1 || size.contains(&0) {
        return None;
    }
    let len = (0..4).map(|i| (size[i] - 1) * st[i]).sum::<i64>() + 1;
    // SAFETY: an f32 CPU view with these sizes and strides spans `len` elements from its data
    // pointer, inside its storage, which the borrow of `t` keeps alive and unchanged.
    let data = unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, len as usize) };
    Some(kernels::Cached { data, row_stride: st[0] as usize, head_stride: st[1] as usize, pos_stride: st[2] as usize })
}

/// Scaled dot-product attention over `q` (`[b, heads, t, d]`) and all cached positions:
/// where `mask` (from [`KvCache::attention_mask`]) allows, or causal within the new
/// positions when there is none. While training, probabilities are dropped with `dropout`.
pub(crate) fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, dropout: f64) -> Result<Tensor> {
    let t = q.size()[2];
    let total = k.size()[2];
    let gqa = q.size()[1] != k.size()[1];
    let p = if super::training() { dropout } else { 0.0 };
    if probing() {
        let past = total - t;
        let rows = Tensor::f_arange(t, (Kind::Int64, q.device()))?.f_unsqueeze(1)?;
        let cols = Tensor::f_arange(total, (Kind::Int64, q.device()))?.f_unsqueeze(0)?;
        let allowed = match mask {
            Some(mask) => mask.shallow_clone(),
            None => cols.f_le_tensor(&(rows + past))?.f_view([1, 1, t, total])?,
        };
        record_attention(q, k, 1.0 / (q.size()[3] as f64).sqrt(), None, Some(&allowed))?;
    }
    let out = if p > 0.0 && mask.is_none() && t == total {
        Tensor::f_scaled_dot_product_attention::<Tensor>(q, k, v, None, p, true, None, gqa)?
    } else if t == 1 {
        decode_attention(q, k, v, mask)?
    } else if let Some(mask) = mask {
        Tensor::f_scaled_dot_product_attention(q, k, v, Some(mask), 0.0, false, None, gqa)?
    } else if t == total {
        Tensor::f_scaled_dot_product_attention::<Tensor>(q, k, v, None, 0.0, true, None, gqa)?
    } else {
        // New positions after a cached prefix: position i may see keys 0..=past+i.
        let past = total - t;
        let rows = Tensor::f_arange(t, (Kind::Int64, q.device()))?.f_unsqueeze(1)?;
        let cols = Tensor::f_arange(total, (Kind::Int64, q.device()))?.f_unsqueeze(0)?;
        let mask = cols.f_le_tensor(&(rows + past))?;
        Tensor::f_scaled_dot_product_attention(q, k, v, Some(&mask), 0.0, false, None, gqa)?
    };
    Ok(out)
}

/// Attention of one new position, as two small matrix products. libtorch's fused CPU
/// kernel splits even this tiny problem across its OpenMP threads, and waking them for
/// every layer of every step costs more than the arithmetic. `mask` (`[b, 1, 1, keys]`)
/// must leave each row at least one key.
fn decode_attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let (qs, kv) = (q.size(), k.size()[1]);
    let (b, heads, d) = (qs[0], qs[1], qs[3]);
    let cpu_f32 = |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float && t.stride()[3] == 1;
    let grad = q.requires_grad() || k.requires_grad() || v.requires_grad();
    if mask.is_none() && b == 1 && !grad && cpu_f32(k) && cpu_f32(v) && q.kind() == Kind::Float {
        return cpu_attend_one(q, k, v);
    }
    // Query heads that share a key/value head are adjacent: [b, kv, heads/kv, d].
    let qg = q.f_reshape([b, kv, heads / kv, d])?;
    let scores = qg.f_matmul(&k.f_transpose(-1, -2)?)?.f_mul_scalar(1.0 / (d as f64).sqrt())?;
    let scores = match mask {
        Some(mask) => scores.f_masked_fill(&mask.f_logical_not()?, f64::NEG_INFINITY)?,
        None => scores,
    };
    let probs = scores.f_softmax(-1, Kind::Float)?.f_to_kind(q.kind())?;
    Ok(probs.f_matmul(v)?.f_reshape([b, heads, 1, d])?)
}

/// [`decode_attention`] for one f32 CPU sequence, in medgen's kernel: a handful of tiny
/// products per head, where each libtorch call would cost more than its arithmetic.
fn cpu_attend_one(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (qs, ks) = (q.size(), k.size());
    let shape = [qs[1] as usize, ks[1] as usize, qs[3] as usize];
    let positions = ks[2] as usize;
    let q = q.f_contiguous()?;
    let out = Tensor::f_empty(qs.as_slice(), (Kind::Float, Device::Cpu))?;
    let (Some(kc), Some(vc)) = (cpu_cached(k), cpu_cached(v)) else {
        return Err(MedgenError::internal("cache", "keys and values are not f32 CPU tensors"));
    };
    // SAFETY: `q` is contiguous f32 with `numel` elements; `out` was just allocated with the
    // same shape and nothing else refers to it.
    unsafe {
        let qd = std::slice::from_raw_parts(q.data_ptr() as *const f32, q.numel());
        let od = std::slice::from_raw_parts_mut(out.data_ptr() as *mut f32, q.numel());
        kernels::attend_one(qd, &kc, &vc, shape, positions, od);
    }
    Ok(out)
}

/// Splits the last dimension into heads: `[b, t, h*d]` → `[b, h, t, d]`.
pub(crate) fn split_heads(x: &Tensor, heads: i64, head_dim: i64) -> Result<Tensor> {
    let s = x.size();
    Ok(x.f_view([s[0], s[1], heads, head_dim])?.f_transpose(1, 2)?)
}

/// Merges heads back: `[b, h, t, d]` → `[b, t, h*d]`.
pub(crate) fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let s = x.size();
    Ok(x.f_transpose(1, 2)?.f_reshape([s[0], s[2], s[1] * s[3]])?)
}
