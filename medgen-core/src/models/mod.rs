//! Model families: the decoder-only networks and what they share (weights, KV cache,
//! attention, rotary embeddings).

pub mod config;
pub mod gpt2;
pub mod llama;

use tch::{Device, Kind, Tensor};

pub use config::{Architecture, ModelConfig, RopeScaling};

use crate::error::{MedgenError, Result};
use crate::formats::WeightSource;

/// A weight tensor that several threads may read at once.
///
/// tch's `Tensor` is `Send` but not `Sync`, because in-place operations through a shared
/// reference would race. medgen never mutates a weight after loading: every operation on a
/// `Weight` reads it and allocates its output, which libtorch allows from many threads.
pub(crate) struct Weight(Tensor);

// SAFETY: see the type's documentation: weights are only ever read after construction.
unsafe impl Sync for Weight {}

impl std::ops::Deref for Weight {
    type Target = Tensor;
    fn deref(&self) -> &Tensor {
        &self.0
    }
}

/// Loads weights by logical (GGUF-style) name, checks their shapes, and converts them to
/// the model's dtype and device.
pub(crate) struct Loader<'a> {
    pub source: &'a dyn WeightSource,
    pub kind: Kind,
    pub device: Device,
}

impl Loader<'_> {
    pub fn get(&self, name: &str, shape: &[i64]) -> Result<Weight> {
        let t = self.source.tensor(name)?;
        if t.size() != shape {
            return Err(MedgenError::format(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                t.size()
            )));
        }
        Ok(Weight(t.f_to_kind(self.kind)?.f_to_device(self.device)?))
    }

    pub fn get_opt(&self, name: &str, shape: &[i64]) -> Result<Option<Weight>> {
        if self.source.contains(name) {
            self.get(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Per-layer keys and values of the positions seen so far, preallocated for the whole
/// generation: a decode step writes one position in place instead of concatenating.
pub struct KvCache {
    /// One (keys, values) pair per layer, each `[batch, kv_heads, capacity, head_dim]`.
    layers: Vec<(Tensor, Tensor)>,
    len: usize,
    capacity: usize,
}

impl KvCache {
    pub(crate) fn new(
        n_layers: usize,
        shape: [i64; 3],
        capacity: usize,
        kind: Kind,
        device: Device,
    ) -> Result<Self> {
        let [batch, heads, head_dim] = shape;
        let dims = [batch, heads, capacity as i64, head_dim];
        let mut layers = Vec::with_capacity(n_layers);
        for _ in 0..n_layers {
            layers.push((
                Tensor::f_zeros(dims, (kind, device))?,
                Tensor::f_zeros(dims, (kind, device))?,
            ));
        }
        Ok(KvCache {
            layers,
            len: 0,
            capacity,
        })
    }

    /// Number of positions already cached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `k`, `v` (`[batch, kv_heads, t, head_dim]`) to layer `i` at the current
    /// length and returns views of all cached positions. [`KvCache::advance`] moves the
    /// length once every layer has been written.
    fn update(&mut self, i: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = k.size()[2] as usize;
        let (start, end) = (self.len as i64, (self.len + t) as i64);
        if self.len + t > self.capacity {
            return Err(MedgenError::ContextLength {
                needed: self.len + t,
                limit: self.capacity,
                what: "KV cache capacity",
            });
        }
        let (kc, vc) = &mut self.layers[i];
        kc.f_narrow(2, start, t as i64)?.f_copy_(k)?;
        vc.f_narrow(2, start, t as i64)?.f_copy_(v)?;
        Ok((kc.f_narrow(2, 0, end)?, vc.f_narrow(2, 0, end)?))
    }

    fn advance(&mut self, t: usize) {
        self.len += t;
    }
}

/// A decoder-only network.
pub(crate) trait Network: Send + Sync {
    /// Runs `ids` (`[batch, t]`, int64) after the cached positions and returns the logits of
    /// the last position as `[batch, vocab]` f32.
    fn forward(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor>;

    /// An empty cache for `batch` sequences of up to `capacity` positions.
    fn new_cache(&self, batch: usize, capacity: usize) -> Result<KvCache>;
}

/// Scaled dot-product attention over `q` (`[b, heads, t, d]`) and all cached positions,
/// causal within the new positions.
pub(crate) fn attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let t = q.size()[2];
    let total = k.size()[2];
    let gqa = q.size()[1] != k.size()[1];
    let out = if t == 1 {
        Tensor::f_scaled_dot_product_attention::<Tensor>(q, k, v, None, 0.0, false, None, gqa)?
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
