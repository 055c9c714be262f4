//! Model hyper-parameters, read from GGUF metadata or an HF `config.json`.

use serde_json::Value as Json;

use crate::error::{MedgenError, Result};
use crate::formats::gguf::GgufFile;

/// The network families medgen runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Llama, SmolLM2 and other Llama-shaped models.
    Llama,
    /// Mistral (Llama-shaped).
    Mistral,
    /// Qwen2: Llama-shaped with biases on q, k and v.
    Qwen2,
    /// GPT-2.
    Gpt2,
}

impl Architecture {
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Mistral => "mistral",
            Architecture::Qwen2 => "qwen2",
            Architecture::Gpt2 => "gpt2",
        }
    }

    fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "llama" => Architecture::Llama,
            "mistral" => Architecture::Mistral,
            "qwen2" => Architecture::Qwen2,
            "gpt2" => Architecture::Gpt2,
            other => {
                return Err(MedgenError::Unsupported(format!(
                    "model architecture `{other}` (medgen runs llama, mistral, qwen2 and gpt2)"
                )))
            }
        })
    }
}

/// How rotary position frequencies are rescaled for long contexts.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum RopeScaling {
    /// Positions divided by `factor`.
    Linear { factor: f64 },
    /// Llama 3's frequency-dependent scaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

/// The shape of a decoder-only network.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// The longest sequence (prompt plus generated tokens) the model allows.
    pub context_length: usize,
    pub norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
}

/// A ceiling on every dimension read from a file, far above any real model, so that a
/// corrupt header fails here instead of in a multi-terabyte allocation.
const MAX_DIM: usize = 1 << 24;

impl ModelConfig {
    /// Reads the hyper-parameters of a GGUF model (`{arch}.embedding_length`, ...).
    /// `vocab_size` comes from the token embedding's shape.
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let arch_name = g
            .get("general.architecture")
            .and_then(|v| v.as_str())
            .ok_or_else(|| MedgenError::format("GGUF metadata lacks general.architecture"))?;
        let architecture = Architecture::parse(arch_name)?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let uint = |k: &str| -> Result<Option<usize>> {
            match g.get(&key(k)) {
                None => Ok(None),
                Some(v) => v.as_u64().map(|n| Some(n as usize)).ok_or_else(|| {
                    MedgenError::format(format!("GGUF metadata {} is not an integer", key(k)))
                }),
            }
        };
        let need = |k: &str| -> Result<usize> {
            uint(k)?.ok_or_else(|| MedgenError::format(format!("GGUF metadata lacks {}", key(k))))
        };
        let float = |k: &str| g.get(&key(k)).and_then(|v| v.as_f64());

        let hidden_size = need("embedding_length")?;
        let n_heads = need("attention.head_count")?;
        let vocab_size = g
            .tensor_info("token_embd.weight")
            .and_then(|t| t.dims.get(1).copied())
            .ok_or_else(|| MedgenError::format("GGUF lacks a 2-D token_embd.weight"))?;
        let head_dim = match uint("attention.key_length")? {
            Some(d) => d,
            None => hidden_size / n_heads.max(1),
        };
        let norm_eps = if architecture == Architecture::Gpt2 {
            float("attention.layer_norm_epsilon").unwrap_or(1e-5)
        } else {
            float("attention.layer_norm_rms_epsilon").unwrap_or(1e-5)
        };
        let rope_scaling = match g.get(&key("rope.scaling.type")).and_then(|v| v.as_str()) {
            None | Some("none") => None,
            Some("linear") => Some(RopeScaling::Linear {
                factor: float("rope.scaling.factor").unwrap_or(1.0),
            }),
            Some(other) => {
                return Err(MedgenError::Unsupported(format!("rope scaling `{other}`")))
            }
        };
        let cfg = ModelConfig {
            architecture,
            vocab_size,
            hidden_size,
            intermediate_size: need("feed_forward_length")?,
            n_layers: need("block_count")?,
            n_heads,
            n_kv_heads: uint("attention.head_count_kv")?.unwrap_or(n_heads),
            head_dim,
            context_length: need("context_length")?,
            norm_eps,
            rope_theta: float("rope.freq_base").unwrap_or(10000.0),
            rope_scaling,
        };
        cfg.validate()
    }

    /// Reads an HF `config.json` (transformers 4 or 5 style).
    pub fn from_hf(config: &Json) -> Result<Self> {
        let model_type = config
            .get("model_type")
            .and_then(Json::as_str)
            .ok_or_else(|| MedgenError::format("config.json lacks model_type"))?;
        let architecture = Architecture::parse(model_type)?;
        let uint = |k: &str| config.get(k).and_then(Json::as_u64).map(|v| v as usize);
        let need = |k: &str| {
            uint(k).ok_or_else(|| MedgenError::format(format!("config.json lacks `{k}`")))
        };
        let float = |k: &str| config.get(k).and_then(Json::as_f64);

        if architecture == Architecture::Gpt2 {
            let hidden_size = need("n_embd")?;
            let n_heads = need("n_head")?;
            let activation = config.get("activation_function").and_then(Json::as_str);
            if !matches!(activation, None | Some("gelu_new") | Some("gelu_pytorch_tanh")) {
                return Err(MedgenError::Unsupported(format!(
                    "GPT-2 activation_function {activation:?}"
                )));
            }
            return ModelConfig {
                architecture,
                vocab_size: need("vocab_size")?,
                hidden_size,
                intermediate_size: uint("n_inner").unwrap_or(4 * hidden_size),
                n_layers: need("n_layer")?,
                n_heads,
                n_kv_heads: n_heads,
                head_dim: hidden_size / n_heads.max(1),
                context_length: need("n_positions")?,
                norm_eps: float("layer_norm_epsilon").unwrap_or(1e-5),
                rope_theta: 0.0,
                rope_scaling: None,
            }
            .validate();
        }

        let hidden_size = need("hidden_size")?;
        let n_heads = need("num_attention_heads")?;
        // transformers 5 moves rope_theta and rope_scaling into `rope_parameters`.
        let rope = config
            .get("rope_parameters")
            .or_else(|| config.get("rope_scaling"))
            .filter(|v| v.is_object());
        let rope_f = |k: &str| rope.and_then(|r| r.get(k)).and_then(Json::as_f64);
        let rope_type = rope
            .and_then(|r| r.get("rope_type").or_else(|| r.get("type")))
            .and_then(Json::as_str)
            .unwrap_or("default");
        let rope_scaling = match rope_type {
            "default" => None,
            "linear" => Some(RopeScaling::Linear {
                factor: rope_f("factor").unwrap_or(1.0),
            }),
            "llama3" => Some(RopeScaling::Llama3 {
                factor: rope_f("factor").unwrap_or(8.0),
                low_freq_factor: rope_f("low_freq_factor").unwrap_or(1.0),
                high_freq_factor: rope_f("high_freq_factor").unwrap_or(4.0),
                original_max_position_embeddings: rope_f("original_max_position_embeddings")
                    .unwrap_or(8192.0),
            }),
            other => return Err(MedgenError::Unsupported(format!("rope scaling `{other}`"))),
        };
        let mut context_length = need("max_position_embeddings")?;
        // Mistral's sliding window changes attention past its width; medgen does not
        // implement the window, so it refuses longer sequences rather than differ.
        let sliding = config.get("use_sliding_window").and_then(Json::as_bool) != Some(false);
        if let (true, Some(window)) = (sliding, uint("sliding_window")) {
            context_length = context_length.min(window);
        }
        ModelConfig {
            architecture,
            vocab_size: need("vocab_size")?,
            hidden_size,
            intermediate_size: need("intermediate_size")?,
            n_layers: need("num_hidden_layers")?,
            n_heads,
            n_kv_heads: uint("num_key_value_heads").unwrap_or(n_heads),
            head_dim: uint("head_dim").unwrap_or(hidden_size / n_heads.max(1)),
            context_length,
            norm_eps: float("rms_norm_eps").unwrap_or(1e-6),
            rope_theta: rope_f("rope_theta")
                .or_else(|| float("rope_theta"))
                .unwrap_or(10000.0),
            rope_scaling,
        }
        .validate()
    }

    /// Rejects zero, absurd or inconsistent dimensions.
    fn validate(self) -> Result<Self> {
        let dims = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("head_dim", self.head_dim),
            ("context_length", self.context_length),
        ];
        for (name, v) in dims {
            if v == 0 || v > MAX_DIM {
                return Err(MedgenError::format(format!(
                    "model dimension {name} = {v} is out of range (1 to {MAX_DIM})"
                )));
            }
        }
        if self.n_layers > 4096 || self.n_heads > 4096 {
            return Err(MedgenError::format(format!(
                "{} layers and {} heads are absurd",
                self.n_layers, self.n_heads
            )));
        }
        if self.n_heads % self.n_kv_heads != 0 {
            return Err(MedgenError::format(format!(
                "{} attention heads are not a multiple of {} key/value heads",
                self.n_heads, self.n_kv_heads
            )));
        }
        if self.architecture != Architecture::Gpt2 && self.head_dim % 2 != 0 {
            return Err(MedgenError::format(format!("head_dim {} is odd", self.head_dim)));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps >= 0.0) {
            return Err(MedgenError::format(format!("norm epsilon {}", self.norm_eps)));
        }
        Ok(self)
    }

    /// Rotary inverse frequencies (`head_dim / 2` of them), after any scaling.
    pub fn rope_inv_freq(&self) -> Vec<f32> {
        let dim = self.head_dim;
        let base: Vec<f64> = (0..dim / 2)
            .map(|i| 1.0 / self.rope_theta.powf((2 * i) as f64 / dim as f64))
            .collect();
        match &self.rope_scaling {
            None => base.iter().map(|&f| f as f32).collect(),
            Some(RopeScaling::Linear { factor }) => {
                base.iter().map(|&f| (f / factor) as f32).collect()
            }
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: old,
            }) => {
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                base.iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        let scaled = if wavelen > low_wavelen { f / factor } else { f };
                        let smooth = (old / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        let mid = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
                        let out = if mid {
                            (1.0 - smooth) * scaled / factor + smooth * scaled
                        } else {
                            scaled
                        };
                        out as f32
                    })
                    .collect()
            }
        }
    }
}
