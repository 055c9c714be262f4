//! The linear layer every family uses: libtorch's GEMM for many rows, medgen's kernels
//! (on dense or GGUF-block weights) for a few.

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use super::{Loader, Lora, Weight};
use crate::error::Result;
use crate::formats::quants::GgmlType;
use crate::kernels;

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
    /// Whether `blocks` multiply 8-bit activations (see [`kernels::matmul`]).
    int8: bool,
    /// A LoRA adapter, whose output adds to the layer's.
    lora: Option<Lora>,
    /// Layers that [`Linear::fuse`] kept apart (trainable weights, adapters): this layer's
    /// output is theirs concatenated, and `weight` is empty.
    parts: Vec<Linear>,
}

impl Linear {
    /// `{name}.weight` and, if `bias`, `{name}.bias` (required) or, if not, any present.
    pub fn load(w: &Loader, name: &str, out: i64, inp: i64, bias: bool) -> Result<Self> {
        let weight = w.get(&format!("{name}.weight"), &[out, inp])?;
        let bias_name = format!("{name}.bias");
        let bias = if bias { Some(w.get(&bias_name, &[out])?) } else { w.get_opt(&bias_name, &[out])? };
        let blocks = w.blocks(&format!("{name}.weight"));
        let lora = w.adapter(name, out, inp)?;
        if let (Some(l), false) = (&lora, w.adapters.is_some_and(|s| s.trainable)) {
            // An adapter that only runs is folded into the weight, as PEFT's merge does: the
            // layer stays one product that medgen's kernels can read (dense, not in blocks).
            let merged = w.merge(&format!("{name}.weight"), &weight, l)?;
            return Linear { weight: merged, bias, blocks: None, int8: w.int8, lora: None, parts: Vec::new() }.quantized(w);
        }
        Linear { weight, bias, blocks, int8: w.int8, lora, parts: Vec::new() }.quantized(w)
    }

    /// This layer with its weight quantized to blocks at load ([`Loader::quantized`]), when
    /// the loader asks for it and the weight has no blocks the kernels read.
    pub fn quantized(mut self, w: &Loader) -> Result<Self> {
        if self.blocks.is_none() && self.lora.is_none() && self.parts.is_empty() {
            self.blocks = w.quantized(&self.weight)?;
            self.int8 = w.int8;
        }
        Ok(self)
    }

    /// Several layers that read the same input as one (q, k and v; gate and up): one
    /// product per step instead of several. Outputs are concatenated in order.
    /// Layers whose weights train or carry adapters stay apart, each its own product.
    pub fn fuse(parts: Vec<Linear>) -> Result<Self> {
        if parts.iter().any(|p| p.lora.is_some() || p.weight.requires_grad()) {
            let weight = Weight(Tensor::f_empty([0], (Kind::Float, parts[0].weight.device()))?);
            return Ok(Linear { weight, bias: None, blocks: None, int8: false, lora: None, parts });
        }
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
        Ok(Linear { weight, bias, blocks, int8: parts[0].int8, lora: None, parts: Vec::new() })
    }

    /// A layer of an already loaded weight (`[out, in]`): a head tied to the token
    /// embedding (shared, not copied), with an optional bias.
    pub fn from_weight(weight: &Weight, bias: Option<Weight>) -> Self {
        Linear { weight: Weight(weight.shallow_clone()), bias, blocks: None, int8: false, lora: None, parts: Vec::new() }
    }

    /// The output head: `output.weight`, or the token embedding itself (shared, not
    /// copied) when the head is tied.
    pub fn load_head(w: &Loader, embed: &Weight) -> Result<Self> {
        let (weight, blocks) = match w.get_opt("output.weight", &embed.size())? {
            Some(head) => (head, w.blocks("output.weight")),
            None => (Weight(embed.shallow_clone()), w.blocks("token_embd.weight")),
        };
        Linear { weight, bias: None, blocks, int8: w.int8, lora: None, parts: Vec::new() }.quantized(w)
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !self.parts.is_empty() {
            let outs = self.parts.iter().map(|p| p.forward(x)).collect::<Result<Vec<_>>>()?;
            return Ok(Tensor::f_cat(&outs, -1)?);
        }
        let y = self.forward_base(x)?;
        match &self.lora {
            Some(lora) => Ok(y.f_add(&lora.forward(x)?)?),
            None => Ok(y),
        }
    }

    /// The outputs of the layers fused into this one, sized `sizes`: each part's own product
    /// when they were kept apart (no concatenation to split again), else the split output.
    pub fn forward_parts(&self, x: &Tensor, sizes: &[i64]) -> Result<Vec<Tensor>> {
        if !self.parts.is_empty() {
            return self.parts.iter().map(|p| p.forward(x)).collect();
        }
        Ok(self.forward(x)?.f_split_with_sizes(sizes, -1)?)
    }

    /// The layer without its adapter. Where gradients flow (a trainable weight, or an input
    /// that carries an adapter's gradient back), libtorch's differentiable product.
    fn forward_base(&self, x: &Tensor) -> Result<Tensor> {
        if x.requires_grad() || self.weight.requires_grad() {
            let y = self.matmul(x, &self.weight)?;
            return Ok(match &self.bias {
                Some(b) => y.f_add(b)?,
                None => y,
            });
        }
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
            kernels::matmul(rows, xs, m, ys, self.int8);
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
        kernels::matmul(rows, x, m.max(1), y, self.int8);
        if let Some(b) = bias {
            y.chunks_exact_mut(b.len()).for_each(|y| y.iter_mut().zip(b).for_each(|(y, b)| *y += b));
        }
        true
    }

    /// The weight's data, when it is a contiguous f32 CPU tensor.
    pub fn weight_f32(&self) -> Option<&[f32]> {
        self.weight.f32_slice()
    }

    /// Whether [`Linear::matvec`] can run this layer.
    pub fn on_kernels(&self) -> bool {
        self.cpu_rows().is_some() && self.bias.as_ref().is_none_or(|b| b.f32_slice().is_some())
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        if self.parts.is_empty() {
            self.weight.size()[0] as usize
        } else {
            self.parts.iter().map(Linear::out_features).sum()
        }
    }

    /// The weight's GGUF blocks, or its data when it is a contiguous f32 or bf16 CPU tensor.
    fn cpu_rows(&self) -> Option<kernels::Rows<'_>> {
        if self.lora.is_some() || !self.parts.is_empty() {
            return None;
        }
        if let Some(rows) = self.blocks.as_ref().and_then(|(ty, b)| kernels::Rows::from_blocks(*ty, b)) {
            return Some(rows);
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
