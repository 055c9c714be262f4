//! Weight formats: GGUF files and HF safetensors folders, behind one [`WeightSource`] that
//! hands out tensors by logical (GGUF-style) name: `token_embd.weight`,
//! `blk.3.attn_q.weight`, `output_norm.weight`, ...

pub mod gguf;
pub mod quants;
pub mod safetensors;

use tch::{Kind, Tensor};

use crate::error::{MedgenError, Result};
use crate::models::Architecture;

/// Tensors by logical name, each as a CPU tensor in PyTorch layout (`[out, in]` for a
/// linear layer's weight) and a floating-point kind.
pub trait WeightSource {
    fn contains(&self, name: &str) -> bool;
    fn tensor(&self, name: &str) -> Result<Tensor>;

    /// The stored blocks of a quantized 2-D tensor, rows in PyTorch order, when the source
    /// keeps one (GGUF); `None` otherwise.
    fn quantized(&self, _name: &str) -> Option<(quants::GgmlType, Vec<u8>)> {
        None
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

    fn quantized(&self, name: &str) -> Option<(quants::GgmlType, Vec<u8>)> {
        let info = self.file.tensor_info(name)?;
        if info.dims.len() != 2 || !quants::is_supported(info.ggml_type) {
            return None;
        }
        let bytes = self.file.tensor_bytes(info);
        let rows = info.dims[1];
        let row_bytes = bytes.len() / rows;
        let Some(heads) = self.permuted(name) else {
            return Some((info.ggml_type, bytes.to_vec()));
        };
        // Whole rows move, so the blocks can be reordered without decoding them.
        let half = rows / heads / 2;
        if half == 0 || rows % (2 * heads) != 0 {
            return None;
        }
        let mut out = Vec::with_capacity(bytes.len());
        for h in 0..heads {
            for a in 0..2 {
                for b in 0..half {
                    let src = h * 2 * half + b * 2 + a;
                    out.extend_from_slice(&bytes[src * row_bytes..(src + 1) * row_bytes]);
                }
            }
        }
        Some((info.ggml_type, out))
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

/// An HF safetensors checkpoint as a weight source, mapping logical names to HF names.
pub struct HfWeights {
    pub files: safetensors::SafetensorsSet,
    pub arch: Architecture,
}

impl HfWeights {
    /// The HF name of a logical tensor, and whether it is stored transposed (GPT-2's
    /// `Conv1D` keeps its weight as `[in, out]`).
    fn hf_name(&self, name: &str) -> (String, bool) {
        let gpt2 = self.arch == Architecture::Gpt2;
        let prefix = if gpt2 { "" } else { "model." };
        let fixed = match (name, gpt2) {
            ("token_embd.weight", false) => Some("model.embed_tokens.weight"),
            ("output_norm.weight", false) => Some("model.norm.weight"),
            ("token_embd.weight", true) => Some("wte.weight"),
            ("position_embd.weight", true) => Some("wpe.weight"),
            ("output_norm.weight", true) => Some("ln_f.weight"),
            ("output_norm.bias", true) => Some("ln_f.bias"),
            ("output.weight", _) => Some("lm_head.weight"),
            _ => None,
        };
        if let Some(f) = fixed {
            return (f.to_string(), false);
        }
        let Some(rest) = name.strip_prefix("blk.") else {
            return (name.to_string(), false);
        };
        let (layer, part) = rest.split_once('.').unwrap_or((rest, ""));
        let (stem, suffix) = part.rsplit_once('.').unwrap_or((part, ""));
        let gemma3 = self.arch == Architecture::Gemma3;
        let hf = match (stem, gpt2) {
            // Gemma 3 norms around attention and feed-forward, and per-head q/k norms.
            ("ffn_norm", false) if gemma3 => "pre_feedforward_layernorm",
            ("post_attention_norm", false) => "post_attention_layernorm",
            ("post_ffw_norm", false) => "post_feedforward_layernorm",
            ("attn_q_norm", false) => "self_attn.q_norm",
            ("attn_k_norm", false) => "self_attn.k_norm",
            ("attn_norm", false) => "input_layernorm",
            ("attn_q", false) => "self_attn.q_proj",
            ("attn_k", false) => "self_attn.k_proj",
            ("attn_v", false) => "self_attn.v_proj",
            ("attn_output", false) => "self_attn.o_proj",
            ("ffn_norm", false) => "post_attention_layernorm",
            ("ffn_gate", false) => "mlp.gate_proj",
            ("ffn_up", false) => "mlp.up_proj",
            ("ffn_down", false) => "mlp.down_proj",
            ("attn_norm", true) => "ln_1",
            ("attn_qkv", true) => "attn.c_attn",
            ("attn_output", true) => "attn.c_proj",
            ("ffn_norm", true) => "ln_2",
            ("ffn_up", true) => "mlp.c_fc",
            ("ffn_down", true) => "mlp.c_proj",
            _ => stem,
        };
        let layers = if gpt2 { "h" } else { "layers" };
        let conv1d = gpt2 && suffix == "weight" && !stem.ends_with("norm");
        (format!("{prefix}{layers}.{layer}.{hf}.{suffix}"), conv1d)
    }

    /// Finds an HF name, trying GPT-2's optional `transformer.` prefix and where the
    /// multimodal Gemma 3 keeps its language model (transformers 5, then 4).
    fn resolve(&self, name: &str) -> Option<(String, bool)> {
        let (hf, transposed) = self.hf_name(name);
        let mut names = vec![format!("transformer.{hf}")];
        if self.arch == Architecture::Gemma3 {
            if let Some(rest) = hf.strip_prefix("model.") {
                names = vec![format!("model.language_model.{rest}"), format!("language_model.model.{rest}")];
            } else {
                names = vec![format!("language_model.{hf}")];
            }
        }
        std::iter::once(hf).chain(names).find(|n| self.files.contains(n)).map(|n| (n, transposed))
    }
}

impl WeightSource for HfWeights {
    fn contains(&self, name: &str) -> bool {
        self.resolve(name).is_some()
    }

    fn tensor(&self, name: &str) -> Result<Tensor> {
        let (hf, transposed) = self
            .resolve(name)
            .ok_or_else(|| MedgenError::format(format!("tensor `{}` is missing", self.hf_name(name).0)))?;
        let t = self.files.tensor(&hf)?;
        let t = if transposed { t.f_transpose(0, 1)?.f_contiguous()? } else { t };
        let t = if t.kind() == Kind::Float { t } else { t.f_to_kind(Kind::Float)? };
        // Gemma's RMSNorm multiplies by `1 + weight`, and HF stores `weight`; llama.cpp's
        // converter writes `1 + weight` into GGUF files. Both sources hand out GGUF's values.
        if self.arch == Architecture::Gemma3 && name.ends_with("norm.weight") {
            return Ok(t.f_add_scalar(1.0)?);
        }
        Ok(t)
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
