//! The decoder-only networks' KV cache, with left padding for batches of prompts.

use tch::{Device, Kind, Tensor};

use crate::error::{MedgenError, Result};
use crate::kernels;

/// Per-layer keys and values of the positions seen so far, preallocated for the whole
/// generation: a decode step writes one position in place instead of concatenating.
///
/// Prompts of different lengths share one batch by left padding: row `r`'s first
/// `pads[r]` cache positions hold padding that no real position attends to, and its real
/// token `j` (at cache position `pads[r] + j`) gets position `j`, as transformers derives
/// `position_ids` from the attention mask.
pub struct KvCache {
    /// One (keys, values) pair per layer, each `[batch, kv_heads, capacity, head_dim]`.
    pub(crate) layers: Vec<(Tensor, Tensor)>,
    len: usize,
    capacity: usize,
    /// Each row's left padding (`[batch]`, int64, on the cache's device), or `None` when
    /// no row has any: then the networks take their plain causal paths.
    pads: Option<Tensor>,
    device: Device,
    /// Whether positions are stored; a pass-through cache (training) returns each layer's
    /// keys and values as they come, so that gradients flow without in-place copies.
    stores: bool,
}

impl KvCache {
    /// A cache that stores nothing: one pass over whole sequences, as training makes.
    pub(crate) fn passthrough(device: Device) -> Self {
        KvCache { layers: Vec::new(), len: 0, capacity: usize::MAX, pads: None, device, stores: false }
    }

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
        Ok(KvCache { layers, len: 0, capacity, pads: None, device, stores: true })
    }

    pub(crate) fn batch(&self) -> usize {
        self.layers.first().map_or(0, |(k, _)| k.size()[0] as usize)
    }

    /// Declares that row `r` starts with `pads[r]` padding tokens, for a batch of prompts
    /// padded on the left into one `[batch, s]` prefill. Call it on the empty cache, before
    /// the prefill.
    // Only tests call it until the batched generation engine (written elsewhere) lands.
    pub(crate) fn set_left_padding(&mut self, pads: Vec<usize>) -> Result<()> {
        let batch = self.batch();
        if pads.len() != batch {
            return Err(MedgenError::internal("pads", format!("{} paddings for a batch of {batch} rows", pads.len())));
        }
        if let Some(bad) = pads.iter().find(|&&p| p >= self.capacity) {
            return Err(MedgenError::internal("pads", format!("padding of {bad} fills the cache capacity of {}", self.capacity)));
        }
        if !self.is_empty() {
            return Err(MedgenError::internal("pads", "left padding set on a cache that already holds positions"));
        }
        self.pads = if pads.iter().all(|&p| p == 0) {
            None
        } else {
            let pads: Vec<i64> = pads.iter().map(|&p| p as i64).collect();
            Some(Tensor::f_from_slice(&pads)?.f_to_device(self.device)?)
        };
        Ok(())
    }

    /// The positions of `t` new tokens (int64, on the cache's device): `[t]`, shared by all
    /// rows, without padding; `[batch, t]` with it, where a real token counts from its row's
    /// first real token and a padding token gets 0 (any valid position would do: nothing
    /// real sees it).
    pub(crate) fn positions(&self, t: usize) -> Result<Tensor> {
        let (start, end) = (self.len as i64, (self.len + t) as i64);
        let pos = Tensor::f_arange_start(start, end, (Kind::Int64, self.device))?;
        match &self.pads {
            None => Ok(pos),
            Some(pads) => Ok(pos.f_unsqueeze(0)?.f_sub(&pads.f_unsqueeze(1)?)?.f_clamp_min(0)?),
        }
    }

    /// Which keys each of `t` new positions may see, `[batch, 1, t, len + t]` bool, or `None`
    /// without padding (then attention is plain causal). A real position sees the real
    /// positions of its row up to itself. A padding position sees only itself: a query with
    /// every key masked would give NaN, which its cached value would then carry into real
    /// rows (as 0 × NaN) in the next layer.
    pub(crate) fn attention_mask(&self, t: usize) -> Result<Option<Tensor>> {
        let Some(pads) = &self.pads else { return Ok(None) };
        let (start, total) = (self.len as i64, (self.len + t) as i64);
        let opts = (Kind::Int64, self.device);
        let query = Tensor::f_arange_start(start, total, opts)?.f_view([1, 1, -1, 1])?;
        let key = Tensor::f_arange(total, opts)?.f_view([1, 1, 1, -1])?;
        let real = key.f_ge_tensor(&pads.f_view([-1, 1, 1, 1])?)?;
        let causal = key.f_le_tensor(&query)?;
        let visible = causal.f_logical_and(&real.f_logical_or(&key.f_eq_tensor(&query)?)?)?;
        Ok(Some(visible))
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
    pub(crate) fn update(&mut self, i: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        if !self.stores {
            return Ok((k.shallow_clone(), v.shallow_clone()));
        }
        let t = k.size()[2] as usize;
        let (start, end) = (self.len as i64, (self.len + t) as i64);
        if self.len + t > self.capacity {
            return Err(MedgenError::context(self.len + t, self.capacity, "KV cache capacity"));
        }
        let (kc, vc) = &mut self.layers[i];
        kc.f_narrow(2, start, t as i64)?.f_copy_(k)?;
        vc.f_narrow(2, start, t as i64)?.f_copy_(v)?;
        Ok((kc.f_narrow(2, 0, end)?, vc.f_narrow(2, 0, end)?))
    }

    pub(crate) fn advance(&mut self, t: usize) {
        self.len += t;
    }

    /// Makes row `i` of every layer a copy of row `rows[i]`, for beam search, whose beams
    /// continue from the beams they extend. The batch becomes `rows.len()`: the first step
    /// widens the one prefilled sequence to all beams.
    pub(crate) fn reorder(&mut self, rows: &[usize]) -> Result<()> {
        let Some(batch) = self.layers.first().map(|(k, _)| k.size()[0] as usize) else { return Ok(()) };
        if rows.len() == batch && rows.iter().enumerate().all(|(i, &r)| i == r) {
            return Ok(());
        }
        if let Some(bad) = rows.iter().find(|&&r| r >= batch) {
            return Err(MedgenError::internal("rows", format!("cache row {bad} is outside the batch of {batch}")));
        }
        let index: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
        let index = Tensor::f_from_slice(&index)?.f_to_device(self.device)?;
        if let Some(pads) = &mut self.pads {
            *pads = pads.f_index_select(0, &index)?;
        }
        // Same batch: in place, only the rows that change (beams mostly keep theirs) and only
        // the filled positions (the rest of the capacity is unused).
        let changed: Vec<i64> = (0..rows.len()).filter(|&i| rows[i] != i).map(|i| i as i64).collect();
        let to_device = |v: &[i64]| -> Result<Tensor> { Ok(Tensor::f_from_slice(v)?.f_to_device(self.device)?) };
        let (targets, sources) = (to_device(&changed)?, to_device(&changed.iter().map(|&i| rows[i as usize] as i64).collect::<Vec<_>>())?);
        let len = self.len as i64;
        for t in self.layers.iter_mut().flat_map(|(k, v)| [k, v]) {
            if rows.len() == batch {
                let picked = t.f_narrow(2, 0, len)?.f_index_select(0, &sources)?;
                let _ = t.f_narrow(2, 0, len)?.f_index_copy_(0, &targets, &picked)?;
            } else {
                *t = t.f_index_select(0, &index)?;
            }
        }
        Ok(())
    }

    /// Whether [`KvCache::cpu_layer`] can be used: contiguous f32 CPU buffers, no padding.
    pub(crate) fn is_cpu_f32(&self) -> bool {
        self.pads.is_none()
            && self.layers.iter().all(|(k, v)| [k, v].iter().all(|t| t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous()))
    }

    /// Writes one position's keys and values of every row (`[batch, kv_heads * head_dim]`
    /// each) to layer `i` at the current length and returns all cached positions of that
    /// layer, for a cache that [`KvCache::is_cpu_f32`].
    pub(crate) fn cpu_layer(&mut self, i: usize, k: &[f32], v: &[f32]) -> Result<(kernels::Cached<'_>, kernels::Cached<'_>)> {
        if self.len >= self.capacity {
            return Err(MedgenError::context(self.len + 1, self.capacity, "KV cache capacity"));
        }
        let (kc, vc) = &self.layers[i];
        let size = kc.size();
        let (batch, heads, cap, d) = (size[0] as usize, size[1] as usize, size[2] as usize, size[3] as usize);
        if k.len() != batch * heads * d || v.len() != k.len() {
            return Err(MedgenError::internal("cache", format!("{} keys for a batch of {batch} rows of {heads} heads", k.len())));
        }
        let len = self.len;
        let view = |t: &Tensor, src: &[f32]| {
            // SAFETY: `t` is a contiguous f32 CPU buffer of batch * heads * cap * d elements,
            // owned by this cache and borrowed mutably through `self`; nothing else refers to it.
            let data = unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, batch * heads * cap * d) };
            for (rh, src) in src.chunks_exact(d).enumerate() {
                let at = rh * cap * d + len * d;
                data[at..at + d].copy_from_slice(src);
            }
            kernels::Cached { data: &*data, row_stride: heads * cap * d, head_stride: cap * d, pos_stride: d }
        };
        Ok((view(kc, k), view(vc, v)))
    }
}
