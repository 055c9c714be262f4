//! The linear layer every family uses: libtorch's GEMM for many rows, medgen's kernels
//! (on dense or GGUF-block weights) for a few.

use std::sync::Arc;

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use super::{Blocks, Embedding, Loader, Lora, Weight};
use crate::error::{MedgenError, Result};
use crate::kernels;

/// A linear layer `x @ weight.T + bias`, with `weight` as `[out, in]`.
/// Activation rows up to which a CPU linear layer runs in medgen's kernel rather than
/// libtorch's GEMM, which copies (packs) the whole weight on every call: for a handful of
/// rows that copy costs more than the product.
const KERNEL_ROWS: i64 = 16;

/// The most f32 values a thread dequantizes at once for a product over many rows of a layer
/// kept in blocks (4 MiB): the weight goes through the GEMM a panel of rows at a time.
const PANEL_VALUES: usize = 1 << 20;

thread_local! {
    /// Each thread's panel of dequantized weight rows (see [`Linear::product`]), kept for
    /// the next product: at most `PANEL_VALUES` f32s per thread of the pool.
    static PANEL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub(crate) struct Linear {
    /// The weight as a tensor; `None` for a frozen GGUF weight on the CPU, kept only in
    /// `blocks` (the file's bytes, no dense copy): products over many rows dequantize it a
    /// panel of rows at a time.
    weight: Option<Weight>,
    /// `[out, in]`.
    shape: [i64; 2],
    bias: Option<Weight>,
    /// The GGUF blocks of the weight, kept for CPU decode steps when the kernels read them.
    blocks: Option<Blocks>,
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
        let bias_name = format!("{name}.bias");
        let bias = if bias { Some(w.get(&bias_name, &[out])?) } else { w.get_opt(&bias_name, &[out])? };
        let blocks = w.blocks(&format!("{name}.weight"), [out, inp]);
        let lora = w.adapter(name, out, inp)?;
        let shape = [out, inp];
        if lora.is_none() && blocks.is_some() && w.blocks_alone() {
            return Ok(Linear { weight: None, shape, bias, blocks, int8: w.int8, lora, parts: Vec::new() });
        }
        let weight = w.get(&format!("{name}.weight"), &shape)?;
        if let (Some(l), false) = (&lora, w.adapters.is_some_and(|s| s.trainable)) {
            // An adapter that only runs is folded into the weight, as PEFT's merge does: the
            // layer stays one product that medgen's kernels can read (dense, not in blocks).
            let merged = w.merge(&format!("{name}.weight"), &weight, l)?;
            return Linear { weight: Some(merged), shape, bias, blocks: None, int8: w.int8, lora: None, parts: Vec::new() }.quantized(w);
        }
        Linear { weight: Some(weight), shape, bias, blocks, int8: w.int8, lora, parts: Vec::new() }.quantized(w)
    }

    /// This layer with its weight quantized to blocks at load ([`Loader::quantized`]), when
    /// the loader asks for it and the weight has no blocks the kernels read.
    pub fn quantized(mut self, w: &Loader) -> Result<Self> {
        if let (None, None, true, Some(weight)) = (&self.blocks, &self.lora, self.parts.is_empty(), &self.weight) {
            self.blocks = w.quantized(weight)?.map(|(ty, bytes)| Blocks {
                ty,
                bytes: Arc::new(bytes),
                rows: self.shape[0] as usize,
                cols: self.shape[1] as usize,
            });
            self.int8 = w.int8;
        }
        Ok(self)
    }

    /// The layers `(name, out)` (each as [`Linear::load`] loads it) fused into one
    /// ([`Linear::fuse`]); where they are kept in blocks alone, read into one buffer.
    pub fn load_fused(w: &Loader, parts: &[(String, i64)], inp: i64, bias: bool) -> Result<Self> {
        let blocks = if w.blocks_alone() { w.fused_blocks(parts, inp) } else { None };
        let Some(blocks) = blocks else {
            return Linear::fuse(parts.iter().map(|(name, out)| Linear::load(w, name, *out, inp, bias)).collect::<Result<_>>()?);
        };
        let mut biases = Vec::new();
        for (name, out) in parts {
            let name = format!("{name}.bias");
            biases.push((if bias { Some(w.get(&name, &[*out])?) } else { w.get_opt(&name, &[*out])? }, *out));
        }
        let shape = [blocks.rows as i64, inp];
        let bias = concat_biases(&biases, Device::Cpu)?;
        Ok(Linear { weight: None, shape, bias, blocks: Some(blocks), int8: w.int8, lora: None, parts: Vec::new() })
    }

    /// Several layers that read the same input as one (q, k and v; gate and up): one
    /// product per step instead of several. Outputs are concatenated in order.
    /// Layers whose weights train or carry adapters stay apart, each its own product, as do
    /// layers kept in blocks alone of different types (Gemma's q and k in Q5_0, v in Q8_0).
    pub fn fuse(parts: Vec<Linear>) -> Result<Self> {
        let device = parts[0].device();
        let shape = [parts.iter().map(|p| p.shape[0]).sum(), parts[0].shape[1]];
        let types = |p: &Linear| p.blocks.as_ref().map(|b| b.ty);
        let mixed_blocks = parts.iter().all(|p| p.weight.is_none()) && parts.iter().any(|p| types(p) != types(&parts[0]));
        if mixed_blocks || parts.iter().any(|p| p.lora.is_some() || p.weight.as_ref().is_some_and(|w| w.requires_grad())) {
            let weight = Weight(Tensor::f_empty([0], (Kind::Float, device))?);
            return Ok(Linear { weight: Some(weight), shape, bias: None, blocks: None, int8: false, lora: None, parts });
        }
        let biases: Vec<_> = parts.iter().map(|p| (p.bias.as_ref().map(|b| Weight(b.shallow_clone())), p.shape[0])).collect();
        let bias = concat_biases(&biases, device)?;
        // The parts' blocks' type, when they all have blocks of one type.
        let ty = parts[0].blocks.as_ref().map(|b| b.ty).filter(|&ty| parts.iter().all(|p| p.blocks.as_ref().is_some_and(|b| b.ty == ty)));
        // The fused weight stays in blocks alone when every part did; else the parts' tensors
        // (dequantized where a part had none) are concatenated.
        let weight = if ty.is_some() && parts.iter().all(|p| p.weight.is_none()) {
            None
        } else {
            let weights = parts.iter().map(Linear::dense).collect::<Result<Vec<_>>>()?;
            Some(Weight(Tensor::f_cat(&weights, 0)?))
        };
        let int8 = parts[0].int8;
        // Rows of blocks concatenate like rows of numbers, when every part has the same type.
        let blocks = ty.map(|ty| {
            let parts: Vec<_> = parts.iter().filter_map(|p| p.blocks.as_ref()).collect();
            let mut bytes = Vec::with_capacity(parts.iter().map(|b| b.bytes.len()).sum());
            parts.iter().for_each(|b| bytes.extend_from_slice(&b.bytes));
            Blocks { ty, bytes: Arc::new(bytes), rows: shape[0] as usize, cols: shape[1] as usize }
        });
        Ok(Linear { weight, shape, bias, blocks, int8, lora: None, parts: Vec::new() })
    }

    /// A layer of an already loaded weight (`[out, in]`): a head tied to the token
    /// embedding (shared, not copied), with an optional bias.
    pub fn from_weight(weight: &Weight, bias: Option<Weight>) -> Self {
        let size = weight.size();
        let shape = [size[0], size.get(1).copied().unwrap_or(0)];
        Linear { weight: Some(Weight(weight.shallow_clone())), shape, bias, blocks: None, int8: false, lora: None, parts: Vec::new() }
    }

    /// The output head: `output.weight`, or the token embedding itself (shared, not
    /// copied) when the head is tied.
    pub fn load_head(w: &Loader, embed: &Embedding, [v, h]: [i64; 2]) -> Result<Self> {
        let linear = |weight, blocks| Linear { weight, shape: [v, h], bias: None, blocks, int8: w.int8, lora: None, parts: Vec::new() };
        if w.source.contains("output.weight") {
            return match w.blocks("output.weight", [v, h]) {
                Some(blocks) if w.blocks_alone() => Ok(linear(None, Some(blocks))),
                blocks => linear(Some(w.get("output.weight", &[v, h])?), blocks).quantized(w),
            };
        }
        match embed {
            Embedding::Blocks(blocks) => Ok(linear(None, Some(blocks.clone()))),
            Embedding::Dense(e) => linear(Some(Weight(e.shallow_clone())), w.blocks("token_embd.weight", [v, h])).quantized(w),
        }
    }

    fn device(&self) -> Device {
        self.weight.as_ref().map_or(Device::Cpu, |w| w.device())
    }

    /// The weight as a tensor: its own, or its blocks dequantized (a new tensor).
    fn dense(&self) -> Result<Tensor> {
        match &self.weight {
            Some(w) => Ok(w.shallow_clone()),
            None => self.kept_blocks()?.dense(),
        }
    }

    /// The blocks of a layer without a weight tensor (which [`Linear::load`] keeps only so).
    fn kept_blocks(&self) -> Result<&Blocks> {
        self.blocks.as_ref().ok_or_else(|| MedgenError::Internal("a linear layer without a weight".into()))
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
        if x.requires_grad() || self.weight.as_ref().is_some_and(|w| w.requires_grad()) {
            let y = self.matmul(x, &self.dense()?)?;
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
        if x.device() == Device::Cpu && (rayon::current_num_threads() > 1 || self.weight.is_none()) {
            return self.forward_split(x);
        }
        let y = self.matmul(x, &self.dense()?)?;
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
        let out = self.shape[0];
        let threads = rayon::current_num_threads() as i64;
        let chunk = ((out + threads - 1) / threads).max(1);
        // Every part holds at least one row (5 rows on 4 threads: parts of 2, 2 and 1).
        let parts = (out + chunk - 1) / chunk;
        // A shallow clone per task: tensors may move between threads but not be shared.
        let inputs: Vec<Tensor> = (0..parts).map(|_| x.shallow_clone()).collect();
        let pieces: Vec<Result<Tensor>> = inputs
            .into_par_iter()
            .enumerate()
            .map(|(i, x)| {
                let start = i as i64 * chunk;
                let len = chunk.min(out - start);
                self.product(&x, start as usize, len as usize)
            })
            .collect();
        let pieces = pieces.into_iter().collect::<Result<Vec<_>>>()?;
        let y = Tensor::f_cat(&pieces, -1)?;
        Ok(match &self.bias {
            Some(b) => y.f_add(b)?,
            None => y,
        })
    }

    /// `x` times rows `start..start + len` of the weight: a view of its tensor or, for a
    /// layer kept in blocks, those rows dequantized a panel at a time into this thread's
    /// buffer, each panel through libtorch's GEMM.
    fn product(&self, x: &Tensor, start: usize, len: usize) -> Result<Tensor> {
        if let Some(w) = &self.weight {
            return self.matmul(x, &w.f_narrow(0, start as i64, len as i64)?);
        }
        let blocks = self.kept_blocks()?;
        let x32 = x.f_to_kind(Kind::Float)?;
        let panel = (PANEL_VALUES / blocks.cols.max(1)).max(1);
        let mut pieces = Vec::new();
        for first in (start..start + len).step_by(panel) {
            let n = panel.min(start + len - first);
            let y = PANEL.with_borrow_mut(|buffer| -> Result<Tensor> {
                buffer.resize(n * blocks.cols, 0.0);
                blocks.dequantize_rows(first, buffer)?;
                let size = [n as i64, blocks.cols as i64];
                // SAFETY: `buffer` holds `n * cols` initialised f32s and outlives `w`, which
                // the product only reads; the product's output is a new tensor.
                let w = unsafe { Tensor::f_from_blob(buffer.as_ptr() as *const u8, &size, &[], Kind::Float, Device::Cpu)? };
                Ok(x32.f_linear::<&Tensor>(&w, None)?)
            })?;
            pieces.push(y);
        }
        let y = if pieces.len() == 1 { pieces.swap_remove(0) } else { Tensor::f_cat(&pieces, -1)? };
        Ok(if x.kind() == Kind::Float { y } else { y.f_to_kind(x.kind())? })
    }

    /// A few activation rows (a decode step of one sequence, of its beams or of a small
    /// batch) through medgen's kernel, which reads the weight once for all of them.
    fn forward_rows(&self, x: &Tensor, rows: kernels::Rows, size: &[i64], m: usize) -> Result<Tensor> {
        let x32 = match x.kind() {
            Kind::Float => x.f_contiguous()?,
            _ => x.f_to_kind(Kind::Float)?.f_contiguous()?,
        };
        let out = self.shape[0];
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
        if !self.parts.is_empty() {
            return self.matvec_parts(x, y);
        }
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

    /// [`Linear::matvec`] of each part, into its columns of `y`.
    fn matvec_parts(&self, x: &[f32], y: &mut [f32]) -> bool {
        let out = self.out_features();
        let m = y.len() / out.max(1);
        let mut first = 0;
        for p in &self.parts {
            let n = p.out_features();
            // One row: the part's columns are a slice of `y`; several: interleaved.
            if m == 1 {
                if !p.matvec(x, &mut y[first..first + n]) {
                    return false;
                }
            } else {
                let mut yp = vec![0.0; m * n];
                if !p.matvec(x, &mut yp) {
                    return false;
                }
                for (y, yp) in y.chunks_exact_mut(out).zip(yp.chunks_exact(n)) {
                    y[first..first + n].copy_from_slice(yp);
                }
            }
            first += n;
        }
        true
    }

    /// The weight's data, when it is a contiguous f32 CPU tensor.
    pub fn weight_f32(&self) -> Option<&[f32]> {
        self.weight.as_ref()?.f32_slice()
    }

    /// Whether [`Linear::matvec`] can run this layer.
    pub fn on_kernels(&self) -> bool {
        if !self.parts.is_empty() {
            let frozen = |p: &Linear| p.weight.as_ref().is_none_or(|w| !w.requires_grad());
            return self.parts.iter().all(|p| frozen(p) && p.on_kernels());
        }
        self.cpu_rows().is_some() && self.bias.as_ref().is_none_or(|b| b.f32_slice().is_some())
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        if self.parts.is_empty() {
            self.shape[0] as usize
        } else {
            self.parts.iter().map(Linear::out_features).sum()
        }
    }

    /// The weight's GGUF blocks, or its data when it is a contiguous f32 or bf16 CPU tensor.
    fn cpu_rows(&self) -> Option<kernels::Rows<'_>> {
        if self.lora.is_some() || !self.parts.is_empty() {
            return None;
        }
        if let Some(rows) = self.blocks.as_ref().and_then(Blocks::rows) {
            return Some(rows);
        }
        let w = self.weight.as_ref()?;
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

/// The biases of fused layers (`(bias, out)` per part) as one: a part without a bias
/// contributes zeros, if any part has one.
fn concat_biases(parts: &[(Option<Weight>, i64)], device: Device) -> Result<Option<Weight>> {
    let Some(kind) = parts.iter().find_map(|(b, _)| b.as_ref().map(|b| b.kind())) else { return Ok(None) };
    let biases = parts
        .iter()
        .map(|(b, out)| match b {
            Some(b) => Ok(b.shallow_clone()),
            None => Tensor::f_zeros([*out], (kind, device)),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Some(Weight(Tensor::f_cat(&biases, 0)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::quants::{quantize, GgmlType};

    /// A `[rows, cols]` matrix of Q8_0 blocks from seeded values.
    fn blocks(rows: usize, cols: usize) -> Blocks {
        blocks_of(GgmlType::Q8_0, rows, cols)
    }

    fn blocks_of(ty: GgmlType, rows: usize, cols: usize) -> Blocks {
        let values: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.1).collect();
        Blocks { ty, bytes: Arc::new(quantize(ty, &values).unwrap()), rows, cols }
    }

    fn layer(blocks: &Blocks, dense: bool) -> Linear {
        let weight = dense.then(|| Weight(blocks.dense().unwrap()));
        let shape = [blocks.rows as i64, blocks.cols as i64];
        Linear { weight, shape, bias: None, blocks: Some(blocks.clone()), int8: false, lora: None, parts: Vec::new() }
    }

    fn input(rows: i64, cols: i64) -> Tensor {
        Tensor::arange(rows * cols, (Kind::Float, Device::Cpu)).sin().view([1, rows, cols])
    }

    /// A layer kept in blocks alone gives what the dense weight gives: for a few rows (the
    /// kernels), for many (panels through the GEMM, several panels for a large matrix), on
    /// one thread and on two.
    #[test]
    fn a_layer_in_blocks_alone_equals_its_dense_weight() {
        tch::no_grad(|| {
            for threads in [1, 2, 4] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                for (rows, cols) in [(96, 64), (5, 64), (PANEL_VALUES / 64 + 333, 64)] {
                    let b = blocks(rows, cols);
                    let (kept, dense) = (layer(&b, false), layer(&b, true));
                    for m in [3, 40] {
                        let err = pool.install(|| {
                            let x = input(m, cols as i64);
                            let y = kept.forward(&x).unwrap();
                            assert_eq!(y.size(), [1, m, rows as i64]);
                            (&y - dense.forward(&x).unwrap()).abs().max().double_value(&[])
                        });
                        assert!(err < 1e-4, "{threads} threads, {rows}x{cols}, {m} rows: {err}");
                    }
                }
            }
        });
    }

    /// Fusing layers kept in blocks keeps one matrix in blocks, rows in order.
    #[test]
    fn fused_layers_in_blocks_stay_in_blocks() {
        tch::no_grad(|| {
            let (a, b) = (blocks(32, 64), blocks(64, 64));
            let fused = Linear::fuse(vec![layer(&a, false), layer(&b, false)]).unwrap();
            assert!(fused.weight.is_none());
            assert_eq!(fused.out_features(), 96);
            let x = input(20, 64);
            let want = Tensor::cat(&[layer(&a, true).forward(&x).unwrap(), layer(&b, true).forward(&x).unwrap()], -1);
            let err = (fused.forward(&x).unwrap() - want).abs().max().double_value(&[]);
            assert!(err < 1e-4, "{err}");
        });
    }

    /// A source of Q8_0 blocks and plain tensors, as a GGUF file gives them.
    struct Source(std::collections::HashMap<String, Blocks>, std::collections::HashMap<String, Tensor>);

    impl crate::formats::WeightSource for Source {
        fn contains(&self, name: &str) -> bool {
            self.0.contains_key(name) || self.1.contains_key(name)
        }
        fn tensor(&self, name: &str) -> Result<Tensor> {
            match self.0.get(name) {
                Some(b) => b.dense(),
                None => Ok(self.1.get(name).ok_or_else(|| MedgenError::format(name.to_string()))?.shallow_clone()),
            }
        }
        fn quantized_into(&self, name: &str, out: &mut Vec<u8>) -> Option<GgmlType> {
            let b = self.0.get(name)?;
            out.extend_from_slice(&b.bytes);
            Some(b.ty)
        }
    }

    /// Layers loaded fused from blocks (one buffer) give what their dense weights give, with
    /// a bias where one part has it and zeros for the part without.
    #[test]
    fn layers_loaded_fused_from_blocks_equal_their_dense_weights_and_biases() {
        tch::no_grad(|| {
            let (q, k) = (blocks(32, 64), blocks(16, 64));
            let bias = Tensor::arange(32, (Kind::Float, Device::Cpu)).f_div_scalar(10.0).unwrap();
            let source = Source(
                [("q.weight".to_string(), q.clone()), ("k.weight".to_string(), k.clone())].into(),
                [("q.bias".to_string(), bias.shallow_clone())].into(),
            );
            let loader = Loader::new(&source, Kind::Float, Device::Cpu);
            let fused = Linear::load_fused(&loader, &[("q".to_string(), 32), ("k".to_string(), 16)], 64, false).unwrap();
            assert!(fused.weight.is_none() && fused.out_features() == 48);
            let want_bias = Tensor::cat(&[bias, Tensor::zeros([16], (Kind::Float, Device::Cpu))], 0);
            for m in [3, 20] {
                let x = input(m, 64);
                let want = Tensor::cat(&[layer(&q, true).forward(&x).unwrap(), layer(&k, true).forward(&x).unwrap()], -1) + &want_bias;
                let err = (fused.forward(&x).unwrap() - want).abs().max().double_value(&[]);
                assert!(err < 1e-4, "{m} rows: {err}");
            }
        });
    }

    /// Layers in blocks of different types (Gemma's q and k in Q5_0, v in Q8_0) stay apart,
    /// each in its own blocks, and give the dense weights' outputs: through the tensor path
    /// (few rows and many) and through the decode step's `matvec` on several rows.
    #[test]
    fn layers_in_blocks_of_different_types_stay_apart_in_their_blocks() {
        tch::no_grad(|| {
            let (q, v) = (blocks_of(GgmlType::Q4_0, 32, 64), blocks_of(GgmlType::Q8_0, 16, 64));
            let source = Source([("q.weight".to_string(), q.clone()), ("v.weight".to_string(), v.clone())].into(), [].into());
            let loader = Loader::new(&source, Kind::Float, Device::Cpu);
            let fused = Linear::load_fused(&loader, &[("q".to_string(), 32), ("v".to_string(), 16)], 64, false).unwrap();
            assert_eq!(fused.parts.len(), 2);
            assert!(fused.parts.iter().all(|p| p.weight.is_none() && p.blocks.is_some()) && fused.on_kernels());
            for m in [3, 20] {
                let x = input(m, 64);
                let want = Tensor::cat(&[layer(&q, true).forward(&x).unwrap(), layer(&v, true).forward(&x).unwrap()], -1);
                let err = (fused.forward(&x).unwrap() - &want).abs().max().double_value(&[]);
                assert!(err < 1e-4, "{m} rows: {err}");
                if m == 3 {
                    let xs = Vec::<f32>::try_from(x.flatten(0, -1)).unwrap();
                    let mut y = vec![0.0; 3 * 48];
                    assert!(fused.matvec(&xs, &mut y));
                    let err = (Tensor::from_slice(&y).view([1, 3, 48]) - &want).abs().max().double_value(&[]);
                    assert!(err < 1e-4, "matvec: {err}");
                }
            }
        });
    }

    /// An embedding in blocks looks up the rows the dense one holds, and refuses ids outside
    /// the vocabulary with a typed error.
    #[test]
    fn an_embedding_in_blocks_looks_up_the_dense_rows() {
        let b = blocks(50, 64);
        let (kept, dense) = (Embedding::Blocks(b.clone()), Embedding::Dense(Weight(b.dense().unwrap())));
        let ids = Tensor::from_slice(&[0i64, 49, 7, 7]).view([2, 2]);
        let y = kept.forward(&ids).unwrap();
        assert_eq!(y.size(), [2, 2, 64]);
        assert_eq!((&y - dense.forward(&ids).unwrap()).abs().max().double_value(&[]), 0.0);
        assert_eq!(kept.row(49), dense.row(49));
        for bad in [50i64, -1] {
            let err = kept.forward(&Tensor::from_slice(&[bad]).view([1, 1])).unwrap_err();
            assert!(matches!(err, MedgenError::InvalidArgument { .. }), "{err}");
        }
        assert_eq!(kept.row(50), None);
    }
}
