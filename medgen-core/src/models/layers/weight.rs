//! Weights: tensors shared read-only between threads, and the loader that names, checks
//! and converts them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use tch::{Device, Kind, Tensor};

use super::lora::Lora;
use crate::error::{MedgenError, Result};
use crate::formats::quants::GgmlType;
use crate::formats::{HfTensor, WeightSource};
use crate::kernels;

/// A weight tensor that several threads may read at once.
///
/// tch's `Tensor` is `Send` but not `Sync`, because in-place operations through a shared
/// reference would race. medgen never mutates a weight after loading: every operation on a
/// `Weight` reads it and allocates its output, which libtorch allows from many threads.
pub(crate) struct Weight(pub(crate) Tensor);

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

/// A `[rows, cols]` matrix in GGUF blocks, rows in PyTorch order, as the CPU kernels read
/// it; shared where two layers read one matrix (a head tied to the token embedding).
#[derive(Clone)]
pub(crate) struct Blocks {
    pub ty: GgmlType,
    pub bytes: Arc<Vec<u8>>,
    pub rows: usize,
    pub cols: usize,
}

impl Blocks {
    fn row_bytes(&self) -> usize {
        let (qk, size) = self.ty.block();
        self.cols / qk * size
    }

    /// Rows `start..` dequantized into `out`, as many as it holds (`out.len() / cols`).
    pub fn dequantize_rows(&self, start: usize, out: &mut [f32]) -> Result<()> {
        let n = out.len() / self.cols;
        let bytes = self.bytes.get(start * self.row_bytes()..(start + n) * self.row_bytes());
        let bytes = bytes.ok_or_else(|| MedgenError::Internal(format!("rows {start}..{} of {}", start + n, self.rows)))?;
        kernels::dequantize_blocks(self.ty, bytes, &mut out[..n * self.cols])
    }

    /// The whole matrix as a dense f32 tensor.
    pub fn dense(&self) -> Result<Tensor> {
        let values = crate::formats::quants::dequantize(self.ty, &self.bytes, self.rows * self.cols)?;
        Ok(Tensor::f_from_slice(&values)?.f_view([self.rows as i64, self.cols as i64])?)
    }

    pub fn rows(&self) -> Option<kernels::Rows<'_>> {
        kernels::Rows::from_blocks(self.ty, &self.bytes)
    }
}

impl std::ops::Deref for Weight {
    type Target = Tensor;
    fn deref(&self) -> &Tensor {
        &self.0
    }
}

/// Loads weights by logical (GGUF-style) name, checks their shapes, and converts them to
/// the model's dtype and device. For training it also records what it loaded (see
/// [`Loaded`]), makes the weights trainable, and attaches LoRA adapters.
pub(crate) struct Loader<'a> {
    pub source: &'a dyn WeightSource,
    /// How matrices (linear weights, embeddings) are stored.
    pub kind: Kind,
    /// What activations are computed in: `kind` on a GPU, but f32 on the CPU, where bf16
    /// and f16 arithmetic is converted operation by operation (slower and less exact);
    /// there a reduced `kind` only halves the memory the matrices take and stream.
    pub act: Kind,
    pub device: Device,
    /// How the family names a logical tensor in an HF checkpoint; `None` when the logical
    /// names are the HF names (T5, BART).
    pub naming: Option<fn(&str) -> HfTensor>,
    /// Every weight is trainable (full fine-tuning): no GGUF blocks are kept for the kernels,
    /// and layers that would be fused stay apart so that each weight stays a leaf.
    pub trainable: bool,
    /// Linear layers on GGUF blocks multiply 8-bit activations ([`crate::LoadOptions::int8_activations`]).
    pub int8: bool,
    /// Linear weights not in blocks the kernels read are quantized to these at load.
    pub quantize: Option<GgmlType>,
    /// LoRA adapters to attach to the linear layers that the spec targets.
    pub adapters: Option<&'a AdapterSpec>,
    /// What was loaded, shared with loaders derived from this one.
    pub loaded: Rc<RefCell<Loaded>>,
}

/// What a [`Loader`] loaded, in load order.
#[derive(Default)]
pub(crate) struct Loaded {
    /// Weights in load order (each tensor once: a tied head is not loaded again).
    pub weights: Vec<LoadedWeight>,
    /// Adapters by the HF path of the module they adapt: (module, A, B).
    pub adapters: Vec<(String, Tensor, Tensor)>,
    /// The HF path of every linear layer, for targets and their errors.
    pub modules: Vec<String>,
}

/// A weight as loaded, with where its checkpoint keeps it.
pub(crate) struct LoadedWeight {
    /// The family's (GGUF-style) name.
    pub logical: String,
    /// transformers' name, and how the stored tensor differs (see [`HfTensor`]).
    pub hf: String,
    pub transposed: bool,
    pub plus_one: bool,
    pub tensor: Tensor,
}

/// Which linear layers get LoRA adapters, and their starting values.
pub(crate) struct AdapterSpec {
    pub r: usize,
    pub alpha: f64,
    pub rslora: bool,
    pub dropout: f64,
    /// Module names as PEFT's `target_modules`: a layer is adapted when its HF path equals
    /// one or ends with `.` and one.
    pub targets: Vec<String>,
    /// A saved adapter's tensors by PEFT key (`base_model.model.<module>.lora_A.weight`);
    /// adapters it lacks start as PEFT initialises them.
    pub init: HashMap<String, Tensor>,
    /// Whether the adapters train (else they only run).
    pub trainable: bool,
    /// PEFT's `rank_pattern` and `alpha_pattern`: the rank and alpha of the modules whose
    /// path matches a key (`(.*\.)?(key)$`, the first key that does), in place of `r` and
    /// `alpha`.
    pub rank_pattern: Vec<(regex::Regex, usize)>,
    pub alpha_pattern: Vec<(regex::Regex, f64)>,
}

impl AdapterSpec {
    /// The rank of `module`'s adapter.
    pub fn rank(&self, module: &str) -> usize {
        self.rank_pattern.iter().find(|(key, _)| key.is_match(module)).map_or(self.r, |&(_, r)| r)
    }

    /// What `module`'s adapter output is multiplied by: alpha / r, or alpha / √r with rsLoRA.
    pub fn scaling(&self, module: &str) -> f64 {
        let alpha = self.alpha_pattern.iter().find(|(key, _)| key.is_match(module)).map_or(self.alpha, |&(_, a)| a);
        let r = self.rank(module) as f64;
        if self.rslora {
            alpha / r.sqrt()
        } else {
            alpha / r
        }
    }

    /// Whether `module` (an HF path) is one of the targets.
    pub fn targets(&self, module: &str) -> bool {
        self.targets.iter().any(|t| module == t || module.ends_with(&format!(".{t}")))
    }
}

/// PEFT's key of an adapter tensor: `part` is `lora_A` or `lora_B`.
pub(crate) fn peft_key(module: &str, part: &str) -> String {
    format!("base_model.model.{module}.{part}.weight")
}

impl Loader<'_> {
    pub fn new(source: &dyn WeightSource, kind: Kind, device: Device) -> Loader<'_> {
        let act = if device == Device::Cpu { Kind::Float } else { kind };
        Loader { source, kind, act, device, naming: None, trainable: false, int8: false, quantize: None, adapters: None, loaded: Rc::default() }
    }

    /// This loader with matrices stored as `kind` and activations in `act` (the same record).
    pub fn with_kinds(&self, kind: Kind, act: Kind) -> Loader<'_> {
        Loader { kind, act, loaded: self.loaded.clone(), ..*self }
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
        let t = t.f_to_kind(kind)?.f_to_device(self.device)?;
        let t = if self.trainable { t.f_detach()?.set_requires_grad(true) } else { t };
        let (transposed, plus_one) = self.naming.map_or((false, false), |n| {
            let how = n(name);
            (how.transposed, how.plus_one)
        });
        let record = LoadedWeight { logical: name.to_string(), hf: self.hf_name(name), transposed, plus_one, tensor: t.shallow_clone() };
        self.loaded.borrow_mut().weights.push(record);
        Ok(Weight(t))
    }

    /// `weight` (loaded as `name`) plus `lora`'s product, replacing it in the record.
    pub fn merge(&self, name: &str, weight: &Weight, lora: &Lora) -> Result<Weight> {
        let merged = weight.f_add(&lora.delta()?.f_to_kind(weight.kind())?)?;
        if let Some(w) = self.loaded.borrow_mut().weights.iter_mut().rev().find(|w| w.logical == name) {
            w.tensor = merged.shallow_clone();
        }
        Ok(Weight(merged))
    }

    /// The stored blocks of a `[out, in]` weight that the CPU kernels can multiply directly
    /// (none for trainable weights, whose values change, or where the stored size differs).
    pub fn blocks(&self, name: &str, [out, inp]: [i64; 2]) -> Option<Blocks> {
        self.fused_blocks(&[(name.to_string(), out)], inp)
    }

    /// The blocks of several `[out, in]` weights (`(name, out)`) of one type, rows concatenated
    /// in order, read into one buffer: layers fused for one product. `None` unless
    /// [`Loader::blocks`] would give each.
    pub fn fused_blocks(&self, parts: &[(String, i64)], inp: i64) -> Option<Blocks> {
        if self.device != Device::Cpu || self.trainable {
            return None;
        }
        let (mut bytes, mut ty) = (Vec::new(), None);
        for (name, _) in parts {
            let t = self.source.quantized_into(name, &mut bytes).filter(|t| kernels::reads_blocks(*t))?;
            if ty.is_some_and(|ty| ty != t) {
                return None;
            }
            ty = Some(t);
        }
        let (ty, cols) = (ty?, usize::try_from(inp).ok()?);
        let rows = parts.iter().try_fold(0usize, |n, (_, out)| n.checked_add(usize::try_from(*out).ok()?))?;
        let (qk, size) = ty.block();
        let fits = cols % qk == 0 && rows.checked_mul(cols / qk * size) == Some(bytes.len());
        fits.then(|| Blocks { ty, bytes: Arc::new(bytes), rows, cols })
    }

    /// Whether weights with [`Loader::blocks`] are kept in them alone, without a tensor: not
    /// where adapters load (training saves, and `merge` writes, every weight as a tensor).
    pub fn blocks_alone(&self) -> bool {
        self.adapters.is_none()
    }

    /// `weight` (`[out, in]`) quantized to the blocks of [`Loader::quantize`], where it is set,
    /// the weight is on the CPU and frozen, and `in` is a multiple of 32.
    pub fn quantized(&self, weight: &Tensor) -> Result<Option<(GgmlType, Vec<u8>)>> {
        let Some(ty) = self.quantize else { return Ok(None) };
        let size = weight.size();
        if self.device != Device::Cpu || self.trainable || size.len() != 2 || size[1] % 32 != 0 {
            return Ok(None);
        }
        let values = Vec::<f32>::try_from(weight.f_to_kind(Kind::Float)?.f_contiguous()?.f_flatten(0, -1)?)?;
        Ok(Some((ty, crate::formats::quants::quantize(ty, &values)?)))
    }

    pub fn get_opt(&self, name: &str, shape: &[i64]) -> Result<Option<Weight>> {
        if self.source.contains(name) {
            self.get(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The HF path of a logical tensor or module name (`blk.0.attn_q` →
    /// `model.layers.0.self_attn.q_proj`): the name the checkpoint holds, else the family's first.
    pub fn hf_name(&self, logical: &str) -> String {
        let Some(naming) = self.naming else { return logical.to_string() };
        let (stem, suffix) = match logical.rsplit_once('.') {
            Some((stem, s @ ("weight" | "bias"))) => (stem, s),
            _ => (logical, "weight"),
        };
        let names = naming(&format!("{stem}.{suffix}")).names;
        let found = names.iter().find(|n| self.source.contains_hf(n)).or(names.first());
        let name = found.cloned().unwrap_or_else(|| logical.to_string());
        if stem == logical {
            name.strip_suffix(".weight").map(str::to_string).unwrap_or(name)
        } else {
            name
        }
    }

    /// The adapter of linear layer `name` (`[out, in]`), when the spec targets it: from the
    /// spec's saved adapter, else A as PEFT draws it (Kaiming-uniform with a = √5, which is
    /// U(±1/√in)) from libtorch's generator and B zero.
    pub fn adapter(&self, name: &str, out: i64, inp: i64) -> Result<Option<Lora>> {
        let module = self.hf_name(name);
        self.loaded.borrow_mut().modules.push(module.clone());
        let Some(spec) = self.adapters.filter(|s| s.targets(&module)) else { return Ok(None) };
        let r = spec.rank(&module) as i64;
        let opts = (Kind::Float, self.device);
        let init = |part: &str, shape: [i64; 2]| -> Result<Option<Tensor>> {
            let key = peft_key(&module, part);
            let Some(t) = spec.init.get(&key) else { return Ok(None) };
            if t.size() != shape {
                return Err(MedgenError::format(format!("adapter tensor `{key}` has shape {:?}, expected {shape:?}", t.size())));
            }
            Ok(Some(t.f_to_kind(Kind::Float)?.f_to_device(self.device)?))
        };
        let a = match init("lora_A", [r, inp])? {
            Some(a) => a,
            None => {
                let bound = 1.0 / (inp as f64).sqrt();
                Tensor::f_empty([r, inp], opts)?.f_uniform_(-bound, bound)?
            }
        };
        let b = match init("lora_B", [out, r])? {
            Some(b) => b,
            None => Tensor::f_zeros([out, r], opts)?,
        };
        let (a, b) = (a.f_detach()?.set_requires_grad(spec.trainable), b.f_detach()?.set_requires_grad(spec.trainable));
        let scaling = spec.scaling(&module);
        self.loaded.borrow_mut().adapters.push((module, a.shallow_clone(), b.shallow_clone()));
        Ok(Some(Lora { a: Weight(a), b: Weight(b), scaling, dropout: spec.dropout }))
    }
}
