//! Weight formats: GGUF files and HF safetensors folders, behind one [`WeightSource`] that
//! hands out tensors by logical (GGUF-style) name: `token_embd.weight`,
//! `blk.3.attn_q.weight`, `output_norm.weight`, ...

pub mod gguf;
pub mod quants;
pub mod safetensors;

use std::io::Read;
use std::path::Path;

use tch::{Kind, Tensor};

use crate::error::{MedgenError, Result};
use crate::models::Architecture;

/// The largest text file of a model folder medgen reads: `tokenizer.json` of a 256k
/// vocabulary is about 35 MB; a bigger file is rejected before it is read.
pub const MAX_TEXT_FILE: u64 = 256 << 20;
/// The largest safetensors JSON header, as the safetensors format bounds it (100 MB).
pub const MAX_SAFETENSORS_HEADER: u64 = 100_000_000;

/// The text of a model folder's file (JSON, a chat template), at most `MAX_TEXT_FILE`
/// bytes: a larger file, or one that never ends (`/dev/zero`), is a `ModelFormat` error
/// before it costs memory.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).map_err(|e| MedgenError::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_TEXT_FILE + 1).read_to_end(&mut bytes).map_err(|e| MedgenError::io(path, e))?;
    if bytes.len() as u64 > MAX_TEXT_FILE {
        return Err(MedgenError::format(format!("{} is larger than {MAX_TEXT_FILE} bytes", path.display())));
    }
    String::from_utf8(bytes).map_err(|e| MedgenError::format(format!("{}: not UTF-8 text ({e})", path.display())))
}

/// Tensors by logical name, each as a CPU tensor in PyTorch layout (`[out, in]` for a
/// linear layer's weight) and a floating-point kind.
pub trait WeightSource {
    fn contains(&self, name: &str) -> bool;
    fn tensor(&self, name: &str) -> Result<Tensor>;

    /// The stored blocks of a quantized 2-D tensor, rows in PyTorch order, appended to `out`
    /// (several tensors read into one buffer without a copy each) when the source keeps one
    /// (GGUF): the blocks' type; `None` otherwise.
    fn quantized_into(&self, _name: &str, _out: &mut Vec<u8>) -> Option<quants::GgmlType> {
        None
    }

    /// Whether the source holds a tensor under this HF name (an HF checkpoint read through
    /// a family's naming); `false` for sources without HF names.
    fn contains_hf(&self, _hf_name: &str) -> bool {
        false
    }
}

/// A GGUF file as a weight source.
pub struct GgufWeights<'a> {
    pub file: &'a gguf::GgufFile,
    /// Head counts for undoing llama.cpp's permutation of Llama q/k rows; `None` for
    /// architectures it does not permute.
    pub permuted_heads: Option<(usize, usize)>,
}

impl<'a> GgufWeights<'a> {
    pub fn new(file: &'a gguf::GgufFile, arch: Architecture, heads: usize, kv_heads: usize) -> Self {
        // convert_hf_to_gguf.py interleaves the two rotary halves of each q/k head for
        // Llama-arch models (Mistral is converted as Llama); Qwen2 and GPT-2 keep HF layout.
        let permuted = matches!(arch, Architecture::Llama | Architecture::Mistral);
        GgufWeights {
            file,
            permuted_heads: permuted.then_some((heads, kv_heads)),
        }
    }
}

impl WeightSource for GgufWeights<'_> {
    fn contains(&self, name: &str) -> bool {
        self.file.tensor_info(name).is_some()
    }

    fn tensor(&self, name: &str) -> Result<Tensor> {
        let (values, info) = self.file.dequantize(name)?;
        let t = Tensor::f_from_slice(&values)?.f_view(info.torch_shape().as_slice())?;
        match self.permuted(name) {
            Some(heads) => unpermute(&t, heads),
            None => Ok(t),
        }
    }

    fn quantized_into(&self, name: &str, out: &mut Vec<u8>) -> Option<quants::GgmlType> {
        let info = self.file.tensor_info(name)?;
        if info.dims.len() != 2 || !quants::is_supported(info.ggml_type) {
            return None;
        }
        let bytes = self.file.tensor_bytes(info);
        let rows = info.dims[1];
        let row_bytes = bytes.len() / rows;
        let Some(heads) = self.permuted(name) else {
            self.file.copy_into(info, out);
            return Some(info.ggml_type);
        };
        // Whole rows move, so the blocks can be reordered without decoding them.
        let half = rows / heads / 2;
        if half == 0 || rows % (2 * heads) != 0 {
            return None;
        }
        out.reserve(bytes.len());
        for h in 0..heads {
            for a in 0..2 {
                for b in 0..half {
                    let src = h * 2 * half + b * 2 + a;
                    out.extend_from_slice(&bytes[src * row_bytes..(src + 1) * row_bytes]);
                }
            }
        }
        self.file.release(info, 0..bytes.len());
        Some(info.ggml_type)
    }
}

impl GgufWeights<'_> {
    /// Heads whose q/k rows llama.cpp permuted, for this tensor name.
    fn permuted(&self, name: &str) -> Option<usize> {
        let (heads, kv) = self.permuted_heads?;
        if name.ends_with("attn_q.weight") || name.ends_with("attn_q.bias") {
            Some(heads)
        } else if name.ends_with("attn_k.weight") || name.ends_with("attn_k.bias") {
            Some(kv)
        } else {
            None
        }
    }
}

/// Inverse of llama.cpp's q/k permutation: rows of each head go from interleaved pairs
/// `(x0, y0, x1, y1, ...)` back to halves `(x0, x1, ..., y0, y1, ...)`.
fn unpermute(t: &Tensor, heads: usize) -> Result<Tensor> {
    let shape = t.size();
    let rows = shape[0];
    let heads = heads as i64;
    if heads == 0 || rows % (2 * heads) != 0 {
        return Err(MedgenError::format(format!(
            "q/k projection with {rows} rows does not split into {heads} heads"
        )));
    }
    let mut split = vec![heads, rows / heads / 2, 2];
    split.extend_from_slice(&shape[1..]);
    Ok(t.f_reshape(split.as_slice())?
        .f_swapaxes(1, 2)?
        .f_reshape(shape.as_slice())?
        .f_contiguous()?)
}

/// Where a logical (GGUF-style) tensor lives in an HF checkpoint: the names to try, in order,
/// and how the stored tensor differs from the logical one. Each decoder-only family names its
/// own tensors (`hf_tensor` in its file in `models/`).
pub(crate) struct HfTensor {
    pub names: Vec<String>,
    /// Stored as `[in, out]` (GPT-2's `Conv1D`).
    pub transposed: bool,
    /// Stored as `w` where the logical tensor is `1 + w` (Gemma's norms, which llama.cpp's
    /// converter writes as `1 + w`).
    pub plus_one: bool,
}

/// A per-layer logical name's layer, stem and suffix: `blk.3.attn_q.weight` → (3, attn_q, weight).
pub(crate) fn block_parts(name: &str) -> Option<(&str, &str, &str)> {
    let (layer, part) = name.strip_prefix("blk.")?.split_once('.')?;
    let (stem, suffix) = part.rsplit_once('.')?;
    Some((layer, stem, suffix))
}

impl HfTensor {
    pub fn new(names: Vec<String>) -> Self {
        HfTensor { names, transposed: false, plus_one: false }
    }
}

/// An HF safetensors checkpoint as a weight source, through its family's naming.
pub(crate) struct HfWeights {
    pub files: safetensors::SafetensorsSet,
    pub naming: fn(&str) -> HfTensor,
}

impl HfWeights {
    fn resolve(&self, name: &str) -> Option<(String, HfTensor)> {
        let t = (self.naming)(name);
        t.names.iter().find(|n| self.files.contains(n)).cloned().map(|n| (n, t))
    }
}

impl WeightSource for HfWeights {
    fn contains(&self, name: &str) -> bool {
        self.resolve(name).is_some()
    }

    fn contains_hf(&self, hf_name: &str) -> bool {
        self.files.contains(hf_name)
    }

    fn tensor(&self, name: &str) -> Result<Tensor> {
        let (hf, how) = self.resolve(name).ok_or_else(|| {
            let wanted = (self.naming)(name).names.into_iter().next().unwrap_or_else(|| name.to_string());
            MedgenError::format(format!("tensor `{wanted}` is missing"))
        })?;
        let t = self.files.tensor(&hf)?;
        let t = if how.transposed { t.f_transpose(0, 1)?.f_contiguous()? } else { t };
        let t = if t.kind() == Kind::Float { t } else { t.f_to_kind(Kind::Float)? };
        Ok(if how.plus_one { t.f_add_scalar(1.0)? } else { t })
    }
}

/// An HF checkpoint read by its own tensor names: the encoder-decoder families (T5, BART)
/// load their weights by the names transformers gives them
/// (`encoder.block.0.layer.0.SelfAttention.q.weight`), which have no GGUF counterparts.
pub struct HfNamedWeights(pub safetensors::SafetensorsSet);

impl WeightSource for HfNamedWeights {
    fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    fn tensor(&self, name: &str) -> Result<Tensor> {
        self.0.tensor(name)
    }
}
