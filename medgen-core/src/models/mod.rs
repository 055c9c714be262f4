//! Model families: the decoder-only networks and what they share (weights, KV cache,
//! attention, rotary embeddings); the encoder-decoder networks in [`seq2seq`], [`t5`], [`bart`].

pub mod bart;
pub mod config;
pub mod gemma3;
pub mod gpt2;
pub(crate) mod kernels;
pub mod llama;
pub mod seq2seq;
pub mod t5;

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

pub use config::{Architecture, ModelConfig, RopeScaling, Seq2SeqConfig};

use crate::error::{MedgenError, Result};
use crate::formats::quants::GgmlType;
use crate::formats::WeightSource;

/// A weight tensor that several threads may read at once.
///
/// tch's `Tensor` is `Send` but not `Sync`, because in-place operations through a shared
/// reference would race. medgen never mutates a weight after loading: every operation on a
/// `Weight` reads it and allocates its output, which libtorch allows from many threads.
pub(crate) struct Weight(Tensor);

// SAFETY: see the type's documentation: weights are only ever read after construction.
unsafe impl Sync for Weight {}

impl Weight {
    /// The data of a contiguous f32 CPU tensor.
    pub fn f32_slice(&self) -> Option<&[f32]> {
        let t = &self.0;
        if t.device() != Device::Cpu || t.kind() != Kind::Float || !t.is_contiguous() {
            return None;
        }
        // SAFETY: a contiguous f32 CPU tensor of `numel` elements starts at `data_ptr`; the
        // weight is never mutated and outlives the borrow of `self`.
        Some(unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel()) })
    }
}

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
    /// How matrices (linear weights, embeddings) are stored.
    pub kind: Kind,
    /// What activations are computed in: `kind` on a GPU, but f32 on the CPU, where bf16
    /// and f16 arithmetic is converted operation by operation (slower and less exact);
    /// there a reduced `kind` only halves the memory the matrices take and stream.
    pub act: Kind,
    pub device: Device,
}

impl Loader<'_> {
    pub fn new(source: &dyn WeightSource, kind: Kind, device: Device) -> Loader<'_> {
        let act = if device == Device::Cpu { Kind::Float } else { kind };
        Loader { source, kind, act, device }
    }

    /// A tensor of the given shape: matrices in `kind`, vectors (norms, biases) in `act`.
    pub fn get(&self, name: &str, shape: &[i64]) -> Result<Weight> {
        let t = self.source.tensor(name)?;
        if t.size() != shape {
            return Err(MedgenError::format(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                t.size()
            )));
        }
        let kind = if shape.len() >= 2 { self.kind } else { self.act };
        Ok(Weight(t.f_to_kind(kind)?.f_to_device(self.device)?))
    }

    /// The stored blocks of a weight that the CPU kernels can multiply directly.
    pub fn blocks(&self, name: &str) -> Option<(GgmlType, Vec<u8>)> {
        if self.device != Device::Cpu {
            return None;
        }
        self.source
            .quantized(name)
            .filter(|(ty, _)| matches!(ty, GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1))
    }

    pub fn get_opt(&self, name: &str, shape: &[i64]) -> Result<Option<Weight>> {
        if self.source.contains(name) {
            self.get(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// A linear layer `x @ weight.T + bias`, with `weight` as `[out, in]`.
/// Activation rows up to which a CPU linear layer runs in medgen's kernel rather than
/// libtorch's GEMM, which copies (packs) the whole weight on every call: for a handful of
/// rows that copy costs more than the product.
const KERNEL_ROWS: i64 = 16;

pub(crate) struct Linear {
    weight: Weight,
    bias: Option<Weight>,
    /// The GGUF blocks of the weight, kept for CPU decode steps when the kernels read them.
    blocks: Option<(GgmlType, Vec<u8>)>,
}

impl Linear {
    /// `{name}.weight` and, if `bias`, `{name}.bias` (required) or, if not, any present.
    pub fn load(w: &Loader, name: &str, out: i64, inp: i64, bias: bool) -> Result<Self> {
        let weight = w.get(&format!("{name}.weight"), &[out, inp])?;
        let bias_name = format!("{name}.bias");
        let bias = if bias { Some(w.get(&bias_name, &[out])?) } else { w.get_opt(&bias_name, &[out])? };
        let blocks = w.blocks(&format!("{name}.weight"));
        Ok(Linear { weight, bias, blocks })
    }

    /// Several layers that read the same input as one (q, k and v; gate and up): one
    /// product per step instead of several. Outputs are concatenated in order.
    pub fn fuse(parts: Vec<Linear>) -> Result<Self> {
        let weights: Vec<&Tensor> = parts.iter().map(|p| &*p.weight).collect();
        let weight = Weight(Tensor::f_cat(&weights, 0)?);
        // A part without a bias contributes zeros, if any part has one.
        let bias = if let Some(kind) = parts.iter().find_map(|p| p.bias.as_ref().map(|b| b.kind())) {
            let biases = parts
                .iter()
                .map(|p| match &p.bias {
                    Some(b) => Ok(b.shallow_clone()),
                    None => Tensor::f_zeros([p.weight.size()[0]], (kind, p.weight.device())),
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Some(Weight(Tensor::f_cat(&biases, 0)?))
        } else {
            None
        };
        // Rows of blocks concatenate like rows of numbers, when every part has the same type.
        let ty = parts[0].blocks.as_ref().map(|b| b.0);
        let blocks = match ty {
            Some(ty) if parts.iter().all(|p| p.blocks.as_ref().is_some_and(|b| b.0 == ty)) => {
                Some((ty, parts.iter().flat_map(|p| p.blocks.as_ref().map_or(&[][..], |b| &b.1[..])).copied().collect()))
            }
            _ => None,
        };
        Ok(Linear { weight, bias, blocks })
    }

    /// A layer of an already loaded weight (`[out, in]`): a head tied to the token
    /// embedding (shared, not copied), with an optional bias.
    pub fn from_weight(weight: &Weight, bias: Option<Weight>) -> Self {
        Linear { weight: Weight(weight.shallow_clone()), bias, blocks: None }
    }

    /// The output head: `output.weight`, or the token embedding itself (shared, not
    /// copied) when the head is tied.
    pub fn load_head(w: &Loader, embed: &Weight) -> Result<Self> {
        let (weight, blocks) = match w.get_opt("output.weight", &embed.size())? {
            Some(head) => (head, w.blocks("output.weight")),
            None => (Weight(embed.shallow_clone()), w.blocks("token_embd.weight")),
        };
        Ok(Linear { weight, bias: None, blocks })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let size = x.size();
        let inp = size.last().copied().unwrap_or(0);
        let m = if inp > 0 { x.numel() as i64 / inp } else { 0 };
        if x.device() == Device::Cpu && (1..=KERNEL_ROWS).contains(&m) {
            if let Some(rows) = self.cpu_rows() {
                return self.forward_rows(x, rows, &size, m as usize);
            }
        }
        if x.device() == Device::Cpu && rayon::current_num_threads() > 1 {
            return self.forward_split(x);
        }
        let y = self.matmul(x, &self.weight)?;
        Ok(match &self.bias {
            Some(b) => y.f_add(b)?,
            None => y,
        })
    }

    /// `x @ w.T` in the activations' kind. A weight stored in another kind (bf16 on the
    /// CPU) is widened for the product: CPU GEMM is far faster in f32 than in bf16.
    fn matmul(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        if x.kind() == w.kind() {
            return Ok(x.f_linear::<&Tensor>(w, None)?);
        }
        Ok(x.f_linear::<&Tensor>(&w.f_to_kind(x.kind())?, None)?)
    }

    /// Many rows on the CPU (a prefill): libtorch runs single-threaded there (see
    /// `Model::load`), so the output features are split across medgen's threads, each
    /// multiplying by its own slice of the weight's rows.
    fn forward_split(&self, x: &Tensor) -> Result<Tensor> {
        let out = self.weight.size()[0];
        let parts = rayon::current_num_threads() as i64;
        let chunk = (out + parts - 1) / parts;
        // A shallow clone per task: tensors may move between threads but not be shared.
        let inputs: Vec<Tensor> = (0..parts).map(|_| x.shallow_clone()).collect();
        let pieces: Vec<Result<Tensor>> = inputs
            .into_par_iter()
            .enumerate()
            .map(|(i, x)| {
                let start = i as i64 * chunk;
                let len = chunk.min(out - start);
                self.matmul(&x, &self.weight.f_narrow(0, start, len)?)
            })
            .collect();
        let pieces = pieces.into_iter().collect::<Result<Vec<_>>>()?;
        let y = Tensor::f_cat(&pieces, -1)?;
        Ok(match &self.bias {
            Some(b) => y.f_add(b)?,
            None => y,
        })
    }

    /// A few activation rows (a decode step of one sequence, of its beams or of a small
    /// batch) through medgen's kernel, which reads the weight once for all of them.
    fn forward_rows(&self, x: &Tensor, rows: kernels::Rows, size: &[i64], m: usize) -> Result<Tensor> {
        let x32 = match x.kind() {
            Kind::Float => x.f_contiguous()?,
            _ => x.f_to_kind(Kind::Float)?.f_contiguous()?,
        };
        let out = self.weight.size()[0];
        let mut shape = size.to_vec();
        if let Some(last) = shape.last_mut() {
            *last = out;
        }
        let y = Tensor::f_empty(shape.as_slice(), (Kind::Float, Device::Cpu))?;
        // SAFETY: `x32` is a contiguous f32 CPU tensor of `numel` elements that lives until
        // the end of this function; `y` was just allocated with `m * out` f32 elements and
        // nothing else refers to it yet.
        unsafe {
            let xs = std::slice::from_raw_parts(x32.data_ptr() as *const f32, x32.numel());
            let ys = std::slice::from_raw_parts_mut(y.data_ptr() as *mut f32, m * out as usize);
            kernels::matmul(rows, xs, m, ys);
        }
        let y = if x.kind() == Kind::Float { y } else { y.f_to_kind(x.kind())? };
        Ok(match &self.bias {
            Some(b) => y.f_add(b)?,
            None => y,
        })
    }

    /// `y = W x + b` on CPU slices, for each of the rows of `x` (`[m, in]`) into the rows of
    /// `y` (`[m, out]`), when the kernels can read the weight.
    pub fn matvec(&self, x: &[f32], y: &mut [f32]) -> bool {
        let Some(rows) = self.cpu_rows() else { return false };
        let bias = match &self.bias {
            Some(b) => match b.f32_slice() {
                Some(b) => Some(b),
                None => return false,
            },
            None => None,
        };
        let m = y.len() / self.out_features().max(1);
        kernels::matmul(rows, x, m.max(1), y);
        if let Some(b) = bias {
            y.chunks_exact_mut(b.len()).for_each(|y| y.iter_mut().zip(b).for_each(|(y, b)| *y += b));
        }
        true
    }

    /// Whether [`Linear::matvec`] can run this layer.
    pub fn on_kernels(&self) -> bool {
        self.cpu_rows().is_some() && self.bias.as_ref().is_none_or(|b| b.f32_slice().is_some())
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.weight.size()[0] as usize
    }

    /// The weight's GGUF blocks, or its data when it is a contiguous f32 or bf16 CPU tensor.
    fn cpu_rows(&self) -> Option<kernels::Rows<'_>> {
        match &self.blocks {
            Some((GgmlType::Q8_0, b)) => return Some(kernels::Rows::Q8_0(b)),
            Some((GgmlType::Q4_0, b)) => return Some(kernels::Rows::Q4_0(b)),
            Some((GgmlType::Q4_1, b)) => return Some(kernels::Rows::Q4_1(b)),
            _ => {}
        }
        let w = &self.weight;
        if w.device() != Device::Cpu || !w.is_contiguous() {
            return None;
        }
        let (ptr, n) = (w.data_ptr(), w.numel());
        // SAFETY: a contiguous CPU tensor of `n` elements of the matched kind starts at
        // `ptr`; the weight is never mutated and outlives the returned borrow of `self`.
        unsafe {
            match w.kind() {
                Kind::Float => Some(kernels::Rows::F32(std::slice::from_raw_parts(ptr as *const f32, n))),
                Kind::BFloat16 => Some(kernels::Rows::Bf16(std::slice::from_raw_parts(ptr as *const u16, n))),
                _ => None,
            }
        }
    }
}

/// Per-layer keys and values of the positions seen so far, preallocated for the whole
/// generation: a decode step writes one position in place instead of concatenating.
///
/// Prompts of different lengths share one batch by left padding: row `r`'s first
/// `pads[r]` cache positions hold padding that no real position attends to, and its real
/// token `j` (at cache position `pads[r] + j`) gets position `j`, as transformers derives
/// `position_ids` from the attention mask.
pub struct KvCache {
    /// One (keys, values) pair per layer, each `[batch, kv_heads, capacity, head_dim]`.
    layers: Vec<(Tensor, Tensor)>,
    len: usize,
    capacity: usize,
    /// Each row's left padding (`[batch]`, int64, on the cache's device), or `None` when
    /// no row has any: then the networks take their plain causal paths.
    pads: Option<Tensor>,
    device: Device,
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
        Ok(KvCache { layers, len: 0, capacity, pads: None, device })
    }

    fn batch(&self) -> usize {
        self.layers.first().map_or(0, |(k, _)| k.size()[0] as usize)
    }

    /// Declares that row `r` starts with `pads[r]` padding tokens, for a batch of prompts
    /// padded on the left into one `[batch, s]` prefill. Call it on the empty cache, before
    /// the prefill.
    // Only tests call it until the batched generation engine (written elsewhere) lands.
    pub(crate) fn set_left_padding(&mut self, pads: Vec<usize>) -> Result<()> {
        let batch = self.batch();
        if pads.len() != batch {
            return Err(MedgenError::invalid("pads", format!("{} paddings for a batch of {batch} rows", pads.len())));
        }
        if let Some(bad) = pads.iter().find(|&&p| p >= self.capacity) {
            return Err(MedgenError::invalid("pads", format!("padding of {bad} fills the cache capacity of {}", self.capacity)));
        }
        if !self.is_empty() {
            return Err(MedgenError::invalid("pads", "left padding set on a cache that already holds positions"));
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
    fn update(&mut self, i: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
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
            return Err(MedgenError::invalid("rows", format!("cache row {bad} is outside the batch of {batch}")));
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
            return Err(MedgenError::invalid("cache", format!("{} keys for a batch of {batch} rows of {heads} heads", k.len())));
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

/// A decoder-only network.
pub(crate) trait Network: Send + Sync {
    /// Runs `ids` (`[batch, t]`, int64) after the cached positions and returns the logits of
    /// the last position as `[batch, vocab]` f32.
    fn forward(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor>;

    /// An empty cache for `batch` sequences of up to `capacity` positions.
    fn new_cache(&self, batch: usize, capacity: usize) -> Result<KvCache>;

    /// One token of one sequence entirely on CPU slices, without libtorch calls: the logits,
    /// or `None` when this network or its weights do not allow it (then `forward` serves).
    fn decode_cpu(&self, _token: u32, _cache: &mut KvCache) -> Result<Option<Vec<f32>>> {
        Ok(None)
    }
}

/// Scaled dot-product attention over `q` (`[b, heads, t, d]`) and all cached positions:
/// where `mask` (from [`KvCache::attention_mask`]) allows, or causal within the new
/// positions when there is none.
pub(crate) fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let t = q.size()[2];
    let total = k.size()[2];
    let gqa = q.size()[1] != k.size()[1];
    let out = if t == 1 {
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
    if mask.is_none() && b == 1 && cpu_f32(k) && cpu_f32(v) && q.kind() == Kind::Float {
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
        return Err(MedgenError::invalid("cache", "keys and values are not f32 CPU tensors"));
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Tiny networks' weights, held in memory by logical name.
    impl WeightSource for HashMap<String, Tensor> {
        fn contains(&self, name: &str) -> bool {
            self.contains_key(name)
        }

        fn tensor(&self, name: &str) -> Result<Tensor> {
            self.get(name).map(Tensor::shallow_clone).ok_or_else(|| MedgenError::format(format!("no `{name}`")))
        }
    }

    fn config(architecture: Architecture, n_kv_heads: usize) -> ModelConfig {
        ModelConfig {
            architecture,
            vocab_size: 40,
            hidden_size: 32,
            intermediate_size: 48,
            n_layers: 2,
            n_heads: 4,
            n_kv_heads,
            head_dim: 8,
            context_length: 32,
            norm_eps: 1e-5,
            rope_theta: 10000.0,
            rope_scaling: None,
            gemma3: None,
        }
    }

    /// Random weights for per-layer tensors `layer` and the others `global`, by name and shape;
    /// norm weights near 1 so that every layer matters.
    fn random_weights(cfg: &ModelConfig, global: &[(&str, Vec<i64>)], layer: &[(&str, Vec<i64>)]) -> HashMap<String, Tensor> {
        let names = (0..cfg.n_layers).flat_map(|i| layer.iter().map(move |(n, s)| (format!("blk.{i}.{n}"), s)));
        let names = global.iter().map(|(n, s)| (n.to_string(), s)).chain(names);
        names
            .map(|(name, shape)| {
                let t = Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu)) * 0.3;
                let t = if name.ends_with("norm.weight") { t + 1.0 } else { t };
                (name, t)
            })
            .collect()
    }

    fn llama(cfg: &ModelConfig, device: Device) -> llama::Llama {
        let (h, ff, v) = (cfg.hidden_size as i64, cfg.intermediate_size as i64, cfg.vocab_size as i64);
        let (q, kv) = ((cfg.n_heads * cfg.head_dim) as i64, (cfg.n_kv_heads * cfg.head_dim) as i64);
        let mut layer = vec![
            ("attn_norm.weight", vec![h]),
            ("attn_q.weight", vec![q, h]),
            ("attn_k.weight", vec![kv, h]),
            ("attn_v.weight", vec![kv, h]),
            ("attn_output.weight", vec![h, q]),
            ("ffn_norm.weight", vec![h]),
            ("ffn_gate.weight", vec![ff, h]),
            ("ffn_up.weight", vec![ff, h]),
            ("ffn_down.weight", vec![h, ff]),
        ];
        if cfg.architecture == Architecture::Qwen2 {
            layer.extend([("attn_q.bias", vec![q]), ("attn_k.bias", vec![kv]), ("attn_v.bias", vec![kv])]);
        }
        let global = [("token_embd.weight", vec![v, h]), ("output_norm.weight", vec![h])];
        let w = random_weights(cfg, &global, &layer);
        llama::Llama::load(cfg, &Loader::new(&w, Kind::Float, device)).unwrap()
    }

    /// A Gemma 3 of `config`'s shape: a local layer with a window of 4 positions, then a
    /// global one; queries scaled by 12^-0.5 and logits softcapped at 3, to cover both.
    fn gemma3(device: Device) -> (gemma3::Gemma3, ModelConfig) {
        let mut cfg = config(Architecture::Gemma3, 2);
        cfg.gemma3 = Some(config::Gemma3Config {
            sliding_layers: vec![true, false],
            sliding_window: 4,
            rope_local_theta: 100.0,
            query_pre_attn_scalar: 12.0,
            final_logit_softcapping: Some(3.0),
        });
        let (h, ff, v, d) = (cfg.hidden_size as i64, cfg.intermediate_size as i64, cfg.vocab_size as i64, cfg.head_dim as i64);
        let (q, kv) = ((cfg.n_heads * cfg.head_dim) as i64, (cfg.n_kv_heads * cfg.head_dim) as i64);
        let layer = [
            ("attn_norm.weight", vec![h]),
            ("attn_q.weight", vec![q, h]),
            ("attn_k.weight", vec![kv, h]),
            ("attn_v.weight", vec![kv, h]),
            ("attn_q_norm.weight", vec![d]),
            ("attn_k_norm.weight", vec![d]),
            ("attn_output.weight", vec![h, q]),
            ("post_attention_norm.weight", vec![h]),
            ("ffn_norm.weight", vec![h]),
            ("ffn_gate.weight", vec![ff, h]),
            ("ffn_up.weight", vec![ff, h]),
            ("ffn_down.weight", vec![h, ff]),
            ("post_ffw_norm.weight", vec![h]),
        ];
        let global = [("token_embd.weight", vec![v, h]), ("output_norm.weight", vec![h])];
        let w = random_weights(&cfg, &global, &layer);
        (gemma3::Gemma3::load(&cfg, &Loader::new(&w, Kind::Float, device)).unwrap(), cfg)
    }

    fn gpt2(cfg: &ModelConfig, device: Device) -> gpt2::Gpt2 {
        let (h, ff, v) = (cfg.hidden_size as i64, cfg.intermediate_size as i64, cfg.vocab_size as i64);
        let mut layer = vec![];
        for (name, out, inp) in [("attn_qkv", 3 * h, h), ("attn_output", h, h), ("ffn_up", ff, h), ("ffn_down", h, ff)] {
            layer.extend([(format!("{name}.weight"), vec![out, inp]), (format!("{name}.bias"), vec![out])]);
        }
        for name in ["attn_norm", "ffn_norm"] {
            layer.extend([(format!("{name}.weight"), vec![h]), (format!("{name}.bias"), vec![h])]);
        }
        let layer: Vec<(&str, Vec<i64>)> = layer.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
        let global = [
            ("token_embd.weight", vec![v, h]),
            ("position_embd.weight", vec![cfg.context_length as i64, h]),
            ("output_norm.weight", vec![h]),
            ("output_norm.bias", vec![h]),
        ];
        let w = random_weights(cfg, &global, &layer);
        gpt2::Gpt2::load(cfg, &Loader::new(&w, Kind::Float, device)).unwrap()
    }

    fn devices() -> Vec<Device> {
        let mut devices = vec![Device::Cpu];
        if tch::Cuda::is_available() {
            devices.push(Device::Cuda(0));
        }
        devices
    }

    /// Runs three prompts of 5, 9 and 2 tokens as one left-padded batch (token 0 pads): a
    /// prefill, then four steps of one new token per row (two in one step), reordering the
    /// rows as beam search does before two of them; after each, every row's logits must
    /// equal those of its sequence run alone, unpadded.
    fn check_left_padded_batch(net: &dyn Network, vocab: usize, device: Device) {
        let token = |i: usize| (i % (vocab - 1) + 1) as i64;
        let mut seqs: Vec<Vec<i64>> = [5, 9, 2].iter().map(|&n| (0..n).map(|j| token(7 * j + n)).collect()).collect();
        let s = 9;
        let ids: Vec<i64> = seqs.iter().flat_map(|p| std::iter::repeat_n(0, s - p.len()).chain(p.clone())).collect();
        let mut cache = net.new_cache(3, s + 5).unwrap();
        cache.set_left_padding(seqs.iter().map(|p| s - p.len()).collect()).unwrap();
        let mut logits = net.forward(&Tensor::from_slice(&ids).view([3, s as i64]).to(device), &mut cache).unwrap();
        for step in 0..5 {
            for (row, seq) in seqs.iter().enumerate() {
                let mut alone = net.new_cache(1, seq.len()).unwrap();
                let want = net.forward(&Tensor::from_slice(&seq[..]).view([1, -1]).to(device), &mut alone).unwrap();
                let got = logits.get(row as i64).view([1, -1]);
                let err = f64::try_from((&got - &want).norm() / want.norm()).unwrap();
                assert!(err < 1e-4, "step {step}, row {row}: relative error {err}");
            }
            if step == 4 {
                break;
            }
            let rows: &[usize] = match step {
                1 => &[1, 2, 0],
                2 => &[2, 0, 0, 1],
                _ => &[],
            };
            if !rows.is_empty() {
                cache.reorder(rows).unwrap();
                seqs = rows.iter().map(|&r| seqs[r].clone()).collect();
            }
            let n = if step == 1 { 2 } else { 1 };
            let new: Vec<i64> = (0..seqs.len() * n).map(|i| token(3 * i + step)).collect();
            for (seq, chunk) in seqs.iter_mut().zip(new.chunks(n)) {
                seq.extend_from_slice(chunk);
            }
            let ids = Tensor::from_slice(&new).view([seqs.len() as i64, n as i64]).to(device);
            logits = net.forward(&ids, &mut cache).unwrap();
        }
    }

    #[test]
    fn llama_and_qwen2_left_padded_batches_match_each_sequence_alone() {
        // Grouped-query and multi-head attention, without and with q/k/v biases.
        for (arch, kv_heads) in [(Architecture::Llama, 2), (Architecture::Qwen2, 4), (Architecture::Qwen2, 1)] {
            let cfg = config(arch, kv_heads);
            for device in devices() {
                check_left_padded_batch(&llama(&cfg, device), cfg.vocab_size, device);
            }
        }
    }

    #[test]
    fn gpt2_left_padded_batches_match_each_sequence_alone() {
        let cfg = config(Architecture::Gpt2, 4);
        for device in devices() {
            check_left_padded_batch(&gpt2(&cfg, device), cfg.vocab_size, device);
        }
    }

    #[test]
    fn gemma3_left_padded_batches_match_each_sequence_alone() {
        // Sequences of up to 13 positions: the local layer's window of 4 applies, with padding.
        for device in devices() {
            let (net, cfg) = gemma3(device);
            check_left_padded_batch(&net, cfg.vocab_size, device);
        }
    }

    #[test]
    fn gemma3_decode_steps_past_the_window_match_one_prefill() {
        // Steps read only the window's latest keys in the local layer (no mask); a prefill masks.
        for device in devices() {
            let (net, _) = gemma3(device);
            let ids: Vec<i64> = (0..11).map(|i| (5 * i + 3) % 39 + 1).collect();
            let mut steps = net.new_cache(1, ids.len()).unwrap();
            let _ = net.forward(&Tensor::from_slice(&ids[..3]).view([1, -1]).to(device), &mut steps).unwrap();
            for n in 4..=ids.len() {
                let got = net.forward(&Tensor::from_slice(&ids[n - 1..n]).view([1, 1]).to(device), &mut steps).unwrap();
                let mut alone = net.new_cache(1, n).unwrap();
                let want = net.forward(&Tensor::from_slice(&ids[..n]).view([1, -1]).to(device), &mut alone).unwrap();
                let err = f64::try_from((&got - &want).norm() / want.norm()).unwrap();
                assert!(err < 1e-5, "{n} positions: relative error {err}");
            }
        }
    }

    #[test]
    fn left_padding_needs_one_pad_per_row_within_the_capacity() {
        let mut cache = KvCache::new(1, [3, 1, 2], 8, Kind::Float, Device::Cpu).unwrap();
        let wrong = cache.set_left_padding(vec![1, 2]);
        assert!(matches!(wrong, Err(MedgenError::InvalidArgument { name: "pads", .. })), "{wrong:?}");
        let too_long = cache.set_left_padding(vec![0, 8, 1]);
        assert!(matches!(too_long, Err(MedgenError::InvalidArgument { name: "pads", .. })), "{too_long:?}");
    }

    #[test]
    fn padding_positions_see_only_themselves_and_real_positions_skip_them() {
        let mut cache = KvCache::new(1, [2, 1, 2], 8, Kind::Float, Device::Cpu).unwrap();
        cache.set_left_padding(vec![2, 0]).unwrap();
        let mask = cache.attention_mask(3).unwrap().unwrap().to_kind(Kind::Int64).flatten(0, -1);
        #[rustfmt::skip]
        let want = [
            1, 0, 0,  0, 1, 0,  0, 0, 1, // two padding positions, then one real
            1, 0, 0,  1, 1, 0,  1, 1, 1, // no padding: causal
        ];
        assert_eq!(Vec::<i64>::try_from(mask).unwrap(), want);
        let positions = cache.positions(3).unwrap().flatten(0, -1);
        assert_eq!(Vec::<i64>::try_from(positions).unwrap(), [0, 0, 0, 0, 1, 2]);
    }

    #[test]
    fn a_single_sequence_keeps_the_cpu_fast_path_unless_padded() {
        let mut cache = KvCache::new(1, [1, 1, 2], 8, Kind::Float, Device::Cpu).unwrap();
        cache.set_left_padding(vec![0]).unwrap();
        assert!(cache.is_cpu_f32() && cache.attention_mask(1).unwrap().is_none());
        cache.set_left_padding(vec![3]).unwrap();
        assert!(!cache.is_cpu_f32());
    }
}
