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
    /// Gemma 3 (text): local sliding-window and global layers, q/k norms, GeGLU; see
    /// [`Gemma3Config`].
    Gemma3,
}

impl Architecture {
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Mistral => "mistral",
            Architecture::Qwen2 => "qwen2",
            Architecture::Gpt2 => "gpt2",
            Architecture::Gemma3 => "gemma3",
        }
    }

    fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "llama" => Architecture::Llama,
            "mistral" => Architecture::Mistral,
            "qwen2" => Architecture::Qwen2,
            "gpt2" => Architecture::Gpt2,
            // GGUF's general.architecture; config.json's model_type of the text model and of
            // the multimodal one (whose text part medgen runs).
            "gemma3" | "gemma3_text" => Architecture::Gemma3,
            "t5" | "bart" => {
                return Err(MedgenError::Unsupported(format!(
                    "`{name}` is an encoder-decoder model: load it with Seq2SeqModel::load"
                )))
            }
            other => {
                return Err(MedgenError::Unsupported(format!(
                    "model architecture `{other}` (medgen runs the decoder-only llama, mistral, qwen2, gpt2 and gemma3, and the encoder-decoder t5 and bart)"
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
    /// Each inverse frequency divided by its own factor: llama.cpp's `rope_freqs.weight`,
    /// which its converter writes for Llama 3.1 and 3.2 in place of the scaling's settings.
    Factors(Vec<f64>),
}

/// Dropout probabilities while training; inference never drops. transformers' names: T5's
/// `dropout_rate` (all four); BART's `dropout` (hidden, embedding), `attention_dropout`,
/// `activation_dropout`; GPT-2's `resid_pdrop`, `attn_pdrop`, `embd_pdrop`; the Llama
/// family's `attention_dropout`.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Dropout {
    /// On each sub-layer's output before the residual sum.
    pub hidden: f64,
    /// On attention probabilities.
    pub attention: f64,
    /// After the feed-forward's activation.
    pub activation: f64,
    /// On the embeddings.
    pub embedding: f64,
}

impl Dropout {
    fn is_zero(&self) -> bool {
        *self == Dropout::default()
    }

    /// All four from one rate.
    pub fn all(p: f64) -> Self {
        Dropout { hidden: p, attention: p, activation: p, embedding: p }
    }
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
    /// Gemma 3's settings beyond this shape (`None` for other architectures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gemma3: Option<Gemma3Config>,
    /// (default: none)
    #[serde(skip_serializing_if = "Dropout::is_zero")]
    pub dropout: Dropout,
}

/// What Gemma 3 adds to the Llama shape. `rope_theta` and `rope_scaling` of [`ModelConfig`]
/// are the global layers'.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Gemma3Config {
    /// Per layer: whether it attends within the sliding window (a local layer); the others
    /// (global) see every earlier position.
    pub sliding_layers: Vec<bool>,
    /// The positions a local layer's query sees, itself included: key `j` is visible from
    /// query `i` when `i - sliding_window < j <= i` (transformers' `sliding_window_overlay`).
    pub sliding_window: usize,
    /// The local layers' RoPE base.
    pub rope_local_theta: f64,
    /// The local layers' RoPE scaling (transformers 5's `rope_parameters.sliding_attention`;
    /// older configs scale only the global layers).
    pub rope_local_scaling: Option<RopeScaling>,
    /// Attention scores are `q·k / sqrt(query_pre_attn_scalar)` rather than `/ sqrt(head_dim)`.
    pub query_pre_attn_scalar: f64,
    /// Logits become `c * tanh(logits / c)` (none in Gemma 3's checkpoints).
    pub final_logit_softcapping: Option<f64>,
}

/// Local layers with every `pattern`-th global, as transformers derives `layer_types` from
/// `sliding_window_pattern` and llama.cpp from its SWA pattern.
fn sliding_pattern(n_layers: usize, pattern: usize) -> Result<Vec<bool>> {
    if pattern == 0 {
        return Err(MedgenError::format("sliding_window_pattern is 0"));
    }
    // The pattern is made before `validate` sees the layer count: an absurd count from a
    // file would be a multi-gigabyte pattern first.
    if n_layers > MAX_LAYERS {
        return Err(MedgenError::format(format!("{n_layers} layers are absurd (at most {MAX_LAYERS})")));
    }
    Ok((0..n_layers).map(|i| (i + 1) % pattern != 0).collect())
}

/// The `config.json` keys medgen reads, by the JSON type each must have.
const WHOLE_KEYS: &[&str] = &[
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "head_dim", "max_position_embeddings", "max_window_layers", "sliding_window_pattern", "n_embd", "n_head", "n_layer",
    "n_inner", "n_positions", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
    "relative_attention_num_buckets", "relative_attention_max_distance", "encoder_layers", "decoder_layers",
    "encoder_ffn_dim", "decoder_ffn_dim", "encoder_attention_heads", "decoder_attention_heads",
];
/// Token ids: integers, where old conversions write -1 for none (`"pad_token_id": -1`).
const ID_KEYS: &[&str] = &["pad_token_id", "decoder_start_token_id", "forced_bos_token_id", "forced_eos_token_id"];
const NUMBER_KEYS: &[&str] = &[
    "rope_theta", "rope_local_base_freq", "rms_norm_eps", "layer_norm_epsilon", "query_pre_attn_scalar",
    "final_logit_softcapping", "attention_dropout", "attn_pdrop", "embd_pdrop", "resid_pdrop", "dropout_rate",
];
const FLAG_KEYS: &[&str] = &[
    "tie_word_embeddings", "use_sliding_window", "is_gated_act", "scale_embedding", "scale_decoder_outputs",
    "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "use_bidirectional_attention",
];
const TEXT_KEYS: &[&str] = &["hidden_act", "hidden_activation", "activation_function", "feed_forward_proj", "dense_act_fn"];

/// A key medgen reads, present with a value of the wrong JSON type (`"rope_theta": "500000"`),
/// is a format error naming it, as transformers refuses it: read as absent, it would run with
/// the default instead. `null` stands for absent.
fn check_types(config: &Json) -> Result<()> {
    let kinds: [(&[&str], &str, fn(&Json) -> bool); 5] = [
        (WHOLE_KEYS, "a whole number", |v| v.as_u64().is_some()),
        (ID_KEYS, "an integer", |v| v.as_i64().is_some()),
        (NUMBER_KEYS, "a number", Json::is_number),
        (FLAG_KEYS, "true or false", Json::is_boolean),
        (TEXT_KEYS, "a string", Json::is_string),
    ];
    for (keys, kind, fits) in kinds {
        for key in keys {
            match config.get(*key) {
                Some(v) if !v.is_null() && !fits(v) => {
                    return Err(MedgenError::format(format!("config.json's `{key}` is {v}, not {kind}")));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Gemma 3's own settings in a (text) `config.json`, with Gemma3TextConfig's defaults.
fn gemma3_from_hf(config: &Json, n_layers: usize, context_length: usize) -> Result<Gemma3Config> {
    let float = |k: &str| config.get(k).and_then(Json::as_f64);
    let is_set = |k: &str| config.get(k).is_some_and(|v| !v.is_null());
    if is_set("attn_logit_softcapping") {
        return Err(MedgenError::Unsupported("Gemma attention logit softcapping".into()));
    }
    if config.get("use_bidirectional_attention").and_then(Json::as_bool) == Some(true) {
        return Err(MedgenError::Unsupported("Gemma 3 with bidirectional attention".into()));
    }
    let act = config.get("hidden_activation").and_then(Json::as_str).unwrap_or("gelu_pytorch_tanh");
    if !matches!(act, "gelu_pytorch_tanh" | "gelu_new") {
        return Err(MedgenError::Unsupported(format!("Gemma 3 hidden_activation `{act}`")));
    }
    let sliding_layers = match config.get("layer_types").and_then(Json::as_array) {
        Some(types) => types
            .iter()
            .map(|t| match t.as_str() {
                Some("sliding_attention") => Ok(true),
                Some("full_attention") => Ok(false),
                _ => Err(MedgenError::Unsupported(format!("Gemma 3 layer type {t}"))),
            })
            .collect::<Result<Vec<_>>>()?,
        None => {
            let pattern = config.get("sliding_window_pattern").and_then(Json::as_u64).unwrap_or(6);
            sliding_pattern(n_layers, pattern as usize)?
        }
    };
    let local_rope = config.get("rope_parameters").and_then(|p| p.get("sliding_attention")).filter(|v| v.is_object());
    let local = local_rope.and_then(|r| r.get("rope_theta")).and_then(Json::as_f64);
    Ok(Gemma3Config {
        rope_local_scaling: rope_scaling_of(local_rope)?,
        sliding_layers,
        // Absent: transformers' default, 4096. Null: no window, local layers see everything.
        sliding_window: config.get("sliding_window").map_or(Some(4096), Json::as_u64).map_or(context_length, |w| w as usize),
        rope_local_theta: local.or_else(|| float("rope_local_base_freq")).unwrap_or(10000.0),
        query_pre_attn_scalar: float("query_pre_attn_scalar").unwrap_or(256.0),
        final_logit_softcapping: float("final_logit_softcapping"),
    })
}

/// The RoPE scaling an HF `rope_parameters` (or older `rope_scaling`) object names.
fn rope_scaling_of(rope: Option<&Json>) -> Result<Option<RopeScaling>> {
    let rope_f = |k: &str| rope.and_then(|r| r.get(k)).and_then(Json::as_f64);
    let rope_type = rope.and_then(|r| r.get("rope_type").or_else(|| r.get("type"))).and_then(Json::as_str).unwrap_or("default");
    Ok(match rope_type {
        "default" => None,
        "linear" => Some(RopeScaling::Linear { factor: rope_f("factor").unwrap_or(1.0) }),
        "llama3" => Some(RopeScaling::Llama3 {
            factor: rope_f("factor").unwrap_or(8.0),
            low_freq_factor: rope_f("low_freq_factor").unwrap_or(1.0),
            high_freq_factor: rope_f("high_freq_factor").unwrap_or(4.0),
            original_max_position_embeddings: rope_f("original_max_position_embeddings").unwrap_or(8192.0),
        }),
        other => return Err(MedgenError::Unsupported(format!("rope scaling `{other}`"))),
    })
}

/// A ceiling on every dimension read from a file, far above any real model, so that a
/// corrupt header fails here instead of in a multi-terabyte allocation.
pub(crate) const MAX_DIM: usize = 1 << 24;
/// A ceiling on layer and head counts, for the same reason.
const MAX_LAYERS: usize = 4096;

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
        let rope_scaling = match (g.tensor_info("rope_freqs.weight"), rope_scaling) {
            (None, scaling) => scaling,
            (Some(_), Some(_)) => return Err(MedgenError::format("GGUF has both rope_freqs.weight and rope.scaling.type")),
            (Some(info), None) => {
                let (factors, _) = g.dequantize(&info.name.clone())?;
                if factors.len() != head_dim / 2 || factors.iter().any(|f| !(f.is_finite() && *f > 0.0)) {
                    let reason = format!("rope_freqs.weight: {} factors, expected {} positive ones (head_dim / 2)", factors.len(), head_dim / 2);
                    return Err(MedgenError::format(reason));
                }
                Some(RopeScaling::Factors(factors.into_iter().map(f64::from).collect()))
            }
        };
        let n_layers = need("block_count")?;
        let gemma3 = if architecture == Architecture::Gemma3 {
            if g.get(&key("attn_logit_softcapping")).is_some() {
                return Err(MedgenError::Unsupported("Gemma attention logit softcapping".into()));
            }
            // llama.cpp's gemma3 loader (llama-model.cpp) fixes what the file does not say:
            // every 6th layer global, local RoPE base 10000, and queries scaled by head_dim,
            // except for the 27B (62 layers), which uses hidden / heads (gemma_pytorch's config).
            let scalar = if n_layers == 62 { hidden_size / n_heads.max(1) } else { head_dim };
            Some(Gemma3Config {
                sliding_layers: sliding_pattern(n_layers, 6)?,
                sliding_window: need("attention.sliding_window")?,
                rope_local_theta: float("rope.freq_base_swa").unwrap_or(10000.0),
                rope_local_scaling: None,
                query_pre_attn_scalar: scalar as f64,
                final_logit_softcapping: float("final_logit_softcapping"),
            })
        } else {
            None
        };
        let cfg = ModelConfig {
            architecture,
            vocab_size,
            hidden_size,
            intermediate_size: need("feed_forward_length")?,
            n_layers,
            n_heads,
            n_kv_heads: uint("attention.head_count_kv")?.unwrap_or(n_heads),
            head_dim,
            context_length: need("context_length")?,
            norm_eps,
            rope_theta: float("rope.freq_base").unwrap_or(10000.0),
            rope_scaling,
            gemma3,
            dropout: Dropout::default(),
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
        // The multimodal Gemma 3 keeps its language model's settings in `text_config`.
        let config = match (model_type, config.get("text_config")) {
            ("gemma3", Some(text)) => text,
            ("gemma3", None) => return Err(MedgenError::format("Gemma 3 config.json lacks text_config")),
            _ => config,
        };
        check_types(config)?;
        let gemma = architecture == Architecture::Gemma3;
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
            // medgen scales attention scores by 1/sqrt(head_dim) in every layer.
            if config.get("scale_attn_weights").and_then(Json::as_bool) == Some(false) {
                return Err(MedgenError::Unsupported("GPT-2 without scale_attn_weights".into()));
            }
            if config.get("scale_attn_by_inverse_layer_idx").and_then(Json::as_bool) == Some(true) {
                return Err(MedgenError::Unsupported("GPT-2 scale_attn_by_inverse_layer_idx".into()));
            }
            return ModelConfig {
                architecture,
                vocab_size: need("vocab_size")?,
                hidden_size,
                // Saturating: an absurd n_embd is for `validate` to refuse, not an overflow.
                intermediate_size: uint("n_inner").unwrap_or(hidden_size.saturating_mul(4)),
                n_layers: need("n_layer")?,
                n_heads,
                n_kv_heads: n_heads,
                head_dim: hidden_size / n_heads.max(1),
                context_length: need("n_positions")?,
                norm_eps: float("layer_norm_epsilon").unwrap_or(1e-5),
                rope_theta: 0.0,
                rope_scaling: None,
                gemma3: None,
                dropout: Dropout {
                    hidden: float("resid_pdrop").unwrap_or(0.1),
                    attention: float("attn_pdrop").unwrap_or(0.1),
                    activation: 0.0,
                    embedding: float("embd_pdrop").unwrap_or(0.1),
                },
            }
            .validate();
        }

        // The Llama family's feed-forward is SwiGLU (Gemma 3's, checked with the rest of its
        // settings, is GeGLU).
        let act = config.get("hidden_act").and_then(Json::as_str).unwrap_or("silu");
        if !gemma && !matches!(act, "silu" | "swish") {
            return Err(MedgenError::Unsupported(format!("{model_type} hidden_act `{act}` (medgen runs silu)")));
        }
        let hidden_size = need("hidden_size")?;
        let n_heads = need("num_attention_heads")?;
        // transformers 5 moves rope_theta and rope_scaling into `rope_parameters`; Gemma 3 has
        // one such object per layer type, and older configs scale only the global layers.
        let params = config.get("rope_parameters").filter(|v| v.is_object());
        let rope = if gemma {
            params.and_then(|p| p.get("full_attention")).or_else(|| config.get("rope_scaling"))
        } else {
            params.or_else(|| config.get("rope_scaling"))
        };
        let rope = rope.filter(|v| v.is_object());
        let rope_f = |k: &str| rope.and_then(|r| r.get(k)).and_then(Json::as_f64);
        let rope_scaling = rope_scaling_of(rope)?;
        let mut context_length = need("max_position_embeddings")?;
        // A sliding window changes attention past its width; medgen does not implement it
        // for these families, so it refuses longer sequences rather than differ. As
        // transformers reads the keys: Mistral's window is 4096 when the key is absent (none
        // when null); Qwen2's applies only with `use_sliding_window` true, to the layers its
        // `layer_types` name or else those from `max_window_layers` (28) on; Llama has none.
        let window = config.get("sliding_window").map_or(Some(4096), Json::as_u64);
        let window = match architecture {
            Architecture::Mistral => window,
            Architecture::Qwen2 if config.get("use_sliding_window").and_then(Json::as_bool) == Some(true) => {
                let any_sliding = match config.get("layer_types").and_then(Json::as_array) {
                    Some(types) => types.iter().any(|t| t.as_str() == Some("sliding_attention")),
                    None => uint("max_window_layers").unwrap_or(28) < uint("num_hidden_layers").unwrap_or(0),
                };
                window.filter(|_| any_sliding)
            }
            _ => None,
        };
        if let Some(window) = window {
            context_length = context_length.min(window as usize);
        }
        let n_layers = need("num_hidden_layers")?;
        let gemma3 = if gemma { Some(gemma3_from_hf(config, n_layers, context_length)?) } else { None };
        ModelConfig {
            architecture,
            vocab_size: need("vocab_size")?,
            hidden_size,
            intermediate_size: need("intermediate_size")?,
            n_layers,
            n_heads,
            n_kv_heads: uint("num_key_value_heads").unwrap_or(n_heads),
            head_dim: uint("head_dim").unwrap_or(hidden_size / n_heads.max(1)),
            context_length,
            norm_eps: float("rms_norm_eps").unwrap_or(1e-6),
            rope_theta: rope_f("rope_theta")
                .or_else(|| float("rope_theta"))
                .unwrap_or(if gemma { 1_000_000.0 } else { 10000.0 }),
            rope_scaling,
            gemma3,
            dropout: Dropout { attention: float("attention_dropout").unwrap_or(0.0), ..Dropout::default() },
        }
        .validate()
    }

    /// transformers' `config.json` for this shape (the Llama family and GPT-2): what a model
    /// that was loaded from a GGUF file is saved with. `tied` says whether the head is the
    /// embedding.
    pub(crate) fn to_hf(&self, tied: bool, bos: Option<u32>, eos: Option<u32>) -> Result<Json> {
        if self.architecture == Architecture::Gpt2 {
            let d = &self.dropout;
            return Ok(serde_json::json!({
                "architectures": ["GPT2LMHeadModel"],
                "model_type": "gpt2",
                "vocab_size": self.vocab_size,
                "n_embd": self.hidden_size,
                "n_inner": self.intermediate_size,
                "n_layer": self.n_layers,
                "n_head": self.n_heads,
                "n_positions": self.context_length,
                "layer_norm_epsilon": self.norm_eps,
                "activation_function": "gelu_new",
                "resid_pdrop": d.hidden,
                "attn_pdrop": d.attention,
                "embd_pdrop": d.embedding,
                "tie_word_embeddings": tied,
                "bos_token_id": bos,
                "eos_token_id": eos,
                "torch_dtype": "float32",
            }));
        }
        let (model_type, class) = match self.architecture {
            Architecture::Llama => ("llama", "LlamaForCausalLM"),
            Architecture::Mistral => ("mistral", "MistralForCausalLM"),
            Architecture::Qwen2 => ("qwen2", "Qwen2ForCausalLM"),
            a => return Err(MedgenError::Unsupported(format!("writing an HF config.json for a {} GGUF model", a.name()))),
        };
        let rope_scaling = match self.rope_scaling {
            None => Json::Null,
            Some(RopeScaling::Linear { factor }) => serde_json::json!({"rope_type": "linear", "factor": factor}),
            Some(RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings }) => serde_json::json!({
                "rope_type": "llama3", "factor": factor, "low_freq_factor": low_freq_factor,
                "high_freq_factor": high_freq_factor, "original_max_position_embeddings": original_max_position_embeddings,
            }),
            Some(RopeScaling::Factors(_)) => {
                let reason = "writing an HF config.json for a GGUF with rope_freqs.weight (per-frequency RoPE factors, which config.json cannot state)";
                return Err(MedgenError::Unsupported(reason.into()));
            }
        };
        Ok(serde_json::json!({
            "architectures": [class],
            "model_type": model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.n_layers,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": self.n_kv_heads,
            "head_dim": self.head_dim,
            "max_position_embeddings": self.context_length,
            "rms_norm_eps": self.norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": rope_scaling,
            "tie_word_embeddings": tied,
            "attention_bias": self.architecture == Architecture::Qwen2,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "hidden_act": "silu",
            "torch_dtype": "float32",
            "use_sliding_window": false,
            "sliding_window": null,
        }))
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
        if self.n_layers > MAX_LAYERS || self.n_heads > MAX_LAYERS {
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
        if let Some(g) = &self.gemma3 {
            if g.sliding_layers.len() != self.n_layers {
                return Err(MedgenError::format(format!(
                    "{} layer types for {} layers",
                    g.sliding_layers.len(),
                    self.n_layers
                )));
            }
            if g.sliding_window == 0 || !(g.query_pre_attn_scalar > 0.0 && g.query_pre_attn_scalar.is_finite()) {
                return Err(MedgenError::format(format!(
                    "sliding_window {} with query_pre_attn_scalar {}",
                    g.sliding_window, g.query_pre_attn_scalar
                )));
            }
            if g.final_logit_softcapping.is_some_and(|c| !(c > 0.0 && c.is_finite())) {
                return Err(MedgenError::format(format!("final_logit_softcapping {:?}", g.final_logit_softcapping)));
            }
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
            Some(RopeScaling::Factors(factors)) => base.iter().zip(factors).map(|(&f, d)| (f / d) as f32).collect(),
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

/// The encoder-decoder families medgen runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Seq2SeqArchitecture {
    /// T5 (v1.0, ReLU feed-forward) and T5 v1.1 / Flan-T5 (gated-GELU feed-forward).
    T5,
    /// BART.
    Bart,
    /// medgen's recurrent encoder-decoder (see [`super::rnn`]).
    Rnn,
}

impl Seq2SeqArchitecture {
    pub fn name(self) -> &'static str {
        match self {
            Seq2SeqArchitecture::T5 => "t5",
            Seq2SeqArchitecture::Bart => "bart",
            Seq2SeqArchitecture::Rnn => super::rnn::MODEL_TYPE,
        }
    }
}

/// A feed-forward activation, by its name in transformers' `ACT2FN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    /// The exact (erf) GELU: `gelu`.
    Gelu,
    /// The tanh approximation: `gelu_new`, `gelu_pytorch_tanh`.
    GeluTanh,
    /// `silu`, `swish`.
    Silu,
}

impl Activation {
    fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "relu" => Activation::Relu,
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            "silu" | "swish" => Activation::Silu,
            other => return Err(MedgenError::Unsupported(format!("activation function `{other}`"))),
        })
    }

    pub(crate) fn apply(self, x: &tch::Tensor) -> Result<tch::Tensor> {
        Ok(match self {
            Activation::Relu => x.f_relu()?,
            Activation::Gelu => x.f_gelu("none")?,
            Activation::GeluTanh => x.f_gelu("tanh")?,
            Activation::Silu => x.f_silu()?,
        })
    }

    /// The same function on f32 values, in place.
    pub(crate) fn apply_slice(self, x: &mut [f32]) -> Result<()> {
        match self {
            Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::Silu => x.iter_mut().for_each(|v| *v /= 1.0 + (-*v).exp()),
            Activation::GeluTanh => {
                let c = (2.0 / std::f32::consts::PI).sqrt();
                x.iter_mut().for_each(|v| *v = 0.5 * *v * (1.0 + (c * (*v + 0.044715 * *v * *v * *v)).tanh()));
            }
            // The standard library has no erf: libtorch's, as `apply` uses.
            Activation::Gelu => {
                let y = tch::Tensor::f_from_slice(x)?.f_gelu("none")?;
                y.f_copy_data(x, x.len())?;
            }
        }
        Ok(())
    }
}

/// The shape of an encoder-decoder network, from an HF `config.json`. Fields marked (T5)
/// or (BART) mean nothing to the other family.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Seq2SeqConfig {
    pub architecture: Seq2SeqArchitecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    /// Attention heads of each encoder layer.
    pub encoder_heads: usize,
    /// Attention heads of each decoder layer, in self- and cross-attention alike.
    pub decoder_heads: usize,
    /// Width of one encoder attention head: T5's `d_kv` (which need not be
    /// `hidden_size / heads`), BART's `d_model / encoder_attention_heads`.
    pub encoder_head_dim: usize,
    /// Width of one decoder attention head: T5's `d_kv`, BART's `d_model / decoder_attention_heads`.
    pub decoder_head_dim: usize,
    /// Width of the encoder's feed-forward (T5's `d_ff`, BART's `encoder_ffn_dim`).
    pub encoder_ffn: usize,
    /// Width of the decoder's feed-forward (T5's `d_ff`, BART's `decoder_ffn_dim`).
    pub decoder_ffn: usize,
    pub activation: Activation,
    /// (T5) The feed-forward is `act(wi_0 x) * wi_1 x` ("gated-gelu", T5 v1.1, Flan-T5)
    /// instead of `act(wi x)`.
    pub gated: bool,
    pub norm_eps: f64,
    /// (T5) Relative position buckets of the first layer's attention bias.
    pub relative_buckets: usize,
    /// (T5) Distances at or past this share the last bucket.
    pub relative_max_distance: usize,
    /// (T5) The decoder's output is scaled by `hidden_size^-0.5` before the head: original
    /// T5, whose head is the token embedding. transformers 5 writes `scale_decoder_outputs`;
    /// older configs say it with `tie_word_embeddings`.
    pub scale_decoder_outputs: bool,
    /// (BART) Learned positions: the longest encoder or decoder sequence.
    pub max_positions: Option<usize>,
    /// The longest input, and the most new tokens, medgen accepts: BART's
    /// `max_position_embeddings`; for T5, whose positions are relative, `n_positions` when
    /// config.json has it, else 512, the length T5 was trained on.
    pub context_length: usize,
    /// (BART) Token embeddings are multiplied by `sqrt(hidden_size)`.
    pub scale_embedding: bool,
    /// (BART) Both stacks embed tokens with `shared` (`tie_word_embeddings`, the default);
    /// otherwise each with its own `embed_tokens`, where the file has it.
    pub tied_embeddings: bool,
    /// The first decoder input (T5: the pad token 0; BART: `</s>`, 2).
    pub decoder_start_token_id: u32,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
    /// (BART) transformers forces this token as the first generated one.
    pub forced_bos_token_id: Option<u32>,
    /// (BART) transformers forces this token when the length limit is reached.
    pub forced_eos_token_id: Option<u32>,
    /// (default: none)
    #[serde(skip_serializing_if = "Dropout::is_zero")]
    pub dropout: Dropout,
    /// (RNN) The recurrent model's own configuration; the attention fields above are 1 for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rnn: Option<super::rnn::RnnConfig>,
}

impl Seq2SeqConfig {
    /// Reads an HF `config.json` of model_type "t5" or "bart".
    pub fn from_hf(config: &Json) -> Result<Self> {
        let model_type = config
            .get("model_type")
            .and_then(Json::as_str)
            .ok_or_else(|| MedgenError::format("config.json lacks model_type"))?;
        check_types(config)?;
        let uint = |k: &str| config.get(k).and_then(Json::as_u64).map(|v| v as usize);
        let need = |k: &str| uint(k).ok_or_else(|| MedgenError::format(format!("config.json lacks `{k}`")));
        let flag = |k: &str| config.get(k).and_then(Json::as_bool);
        let id = |k: &str| config.get(k).and_then(Json::as_u64).map(|v| v as u32);
        // eos_token_id may be a list; the first is the one transformers pads after.
        let eos_token_id = match config.get("eos_token_id") {
            Some(Json::Array(a)) => a.first().and_then(Json::as_u64).map(|v| v as u32),
            _ => id("eos_token_id"),
        };
        let cfg = match model_type {
            "t5" => {
                // "relu", "gelu", "gated-gelu", "gated-silu": an optional "gated-" and an
                // ACT2FN name, where "gated-gelu" means the tanh approximation (configuration_t5.py).
                let proj = config.get("feed_forward_proj").and_then(Json::as_str).unwrap_or("relu");
                let (gated, act) = match proj.split_once('-') {
                    Some(("gated", "gelu")) => (true, Activation::GeluTanh),
                    Some(("gated", act)) => (true, Activation::parse(act)?),
                    Some(_) => return Err(MedgenError::Unsupported(format!("T5 feed_forward_proj `{proj}`"))),
                    None => (false, Activation::parse(proj)?),
                };
                // transformers keeps `dense_act_fn` and `is_gated_act` when config.json states
                // them (save_pretrained does), over what feed_forward_proj implies.
                let act = match config.get("dense_act_fn").and_then(Json::as_str) {
                    Some(name) => Activation::parse(name)?,
                    None => act,
                };
                let gated = flag("is_gated_act").unwrap_or(gated);
                let layers = need("num_layers")?;
                // One head count, head width and feed-forward width serve both stacks.
                let (heads, head_dim, ff) = (need("num_heads")?, need("d_kv")?, need("d_ff")?);
                let scale = match flag("scale_decoder_outputs") {
                    Some(s) => s,
                    None => flag("tie_word_embeddings") != Some(false),
                };
                Seq2SeqConfig {
                    architecture: Seq2SeqArchitecture::T5,
                    vocab_size: need("vocab_size")?,
                    hidden_size: need("d_model")?,
                    encoder_layers: layers,
                    decoder_layers: uint("num_decoder_layers").unwrap_or(layers),
                    encoder_heads: heads,
                    decoder_heads: heads,
                    encoder_head_dim: head_dim,
                    decoder_head_dim: head_dim,
                    encoder_ffn: ff,
                    decoder_ffn: ff,
                    activation: act,
                    gated,
                    norm_eps: config.get("layer_norm_epsilon").and_then(Json::as_f64).unwrap_or(1e-6),
                    relative_buckets: uint("relative_attention_num_buckets").unwrap_or(32),
                    relative_max_distance: uint("relative_attention_max_distance").unwrap_or(128),
                    scale_decoder_outputs: scale,
                    max_positions: None,
                    context_length: uint("n_positions").unwrap_or(512),
                    scale_embedding: false,
                    tied_embeddings: true,
                    decoder_start_token_id: id("decoder_start_token_id").unwrap_or(0),
                    eos_token_id: eos_token_id.or(Some(1)),
                    pad_token_id: id("pad_token_id").or(Some(0)),
                    forced_bos_token_id: None,
                    forced_eos_token_id: None,
                    dropout: Dropout::all(config.get("dropout_rate").and_then(Json::as_f64).unwrap_or(0.1)),
                    rnn: None,
                }
            }
            "bart" => {
                let hidden = need("d_model")?;
                let act = config.get("activation_function").and_then(Json::as_str).unwrap_or("gelu");
                // Each stack has its own head count (cross-attention has the decoder's), and
                // its heads split d_model between them (BartAttention requires it).
                let heads = |k: &str| -> Result<(usize, usize)> {
                    let n = need(k)?;
                    if n == 0 || hidden % n != 0 {
                        return Err(MedgenError::format(format!("d_model {hidden} is not a multiple of {k} {n}")));
                    }
                    Ok((n, hidden / n))
                };
                let (encoder_heads, encoder_head_dim) = heads("encoder_attention_heads")?;
                let (decoder_heads, decoder_head_dim) = heads("decoder_attention_heads")?;
                Seq2SeqConfig {
                    architecture: Seq2SeqArchitecture::Bart,
                    vocab_size: need("vocab_size")?,
                    hidden_size: hidden,
                    encoder_layers: need("encoder_layers")?,
                    decoder_layers: need("decoder_layers")?,
                    encoder_heads,
                    decoder_heads,
                    encoder_head_dim,
                    decoder_head_dim,
                    encoder_ffn: need("encoder_ffn_dim")?,
                    decoder_ffn: need("decoder_ffn_dim")?,
                    activation: Activation::parse(act)?,
                    gated: false,
                    // nn.LayerNorm's default: BART's config has no epsilon.
                    norm_eps: 1e-5,
                    relative_buckets: 0,
                    relative_max_distance: 0,
                    scale_decoder_outputs: false,
                    max_positions: Some(need("max_position_embeddings")?),
                    context_length: need("max_position_embeddings")?,
                    scale_embedding: flag("scale_embedding").unwrap_or(false),
                    tied_embeddings: flag("tie_word_embeddings") != Some(false),
                    decoder_start_token_id: id("decoder_start_token_id").unwrap_or(2),
                    eos_token_id: eos_token_id.or(Some(2)),
                    pad_token_id: id("pad_token_id").or(Some(1)),
                    forced_bos_token_id: id("forced_bos_token_id"),
                    forced_eos_token_id: id("forced_eos_token_id"),
                    dropout: {
                        let p = |k: &str| config.get(k).and_then(Json::as_f64).unwrap_or(0.0);
                        Dropout { hidden: p("dropout"), attention: p("attention_dropout"), activation: p("activation_dropout"), embedding: p("dropout") }
                    },
                    rnn: None,
                }
            }
            super::rnn::MODEL_TYPE => {
                let rnn = super::rnn::RnnConfig::from_json(config)?;
                let (h, w) = (rnn.hidden_size, rnn.encoder_width());
                Seq2SeqConfig {
                    architecture: Seq2SeqArchitecture::Rnn,
                    vocab_size: rnn.vocab_size,
                    // The encoder output's width, which the decoder attends to.
                    hidden_size: w,
                    encoder_layers: rnn.encoder_layers,
                    decoder_layers: rnn.decoder_layers,
                    encoder_heads: 1,
                    decoder_heads: 1,
                    encoder_head_dim: w,
                    decoder_head_dim: h,
                    encoder_ffn: h,
                    decoder_ffn: h,
                    activation: Activation::Relu,
                    gated: false,
                    norm_eps: 0.0,
                    relative_buckets: 0,
                    relative_max_distance: 0,
                    scale_decoder_outputs: false,
                    max_positions: None,
                    context_length: rnn.max_length,
                    scale_embedding: false,
                    tied_embeddings: true,
                    decoder_start_token_id: rnn.decoder_start_token_id,
                    eos_token_id: Some(rnn.eos_token_id),
                    pad_token_id: Some(rnn.pad_token_id),
                    forced_bos_token_id: None,
                    forced_eos_token_id: None,
                    dropout: Dropout::default(),
                    rnn: Some(rnn),
                }
            }
            other => {
                return Err(MedgenError::Unsupported(format!(
                    "encoder-decoder model_type `{other}` (medgen runs t5, bart and medgen_rnn)"
                )))
            }
        };
        cfg.validate()
    }

    /// The sizes of the encoder's layers.
    pub(crate) fn encoder_shape(&self) -> StackShape {
        StackShape { layers: self.encoder_layers, heads: self.encoder_heads, head_dim: self.encoder_head_dim, ffn: self.encoder_ffn }
    }

    /// The sizes of the decoder's layers (their cross-attention included).
    pub(crate) fn decoder_shape(&self) -> StackShape {
        StackShape { layers: self.decoder_layers, heads: self.decoder_heads, head_dim: self.decoder_head_dim, ffn: self.decoder_ffn }
    }

    /// Rejects zero, absurd or inconsistent dimensions.
    fn validate(self) -> Result<Self> {
        let dims = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("encoder_layers", self.encoder_layers),
            ("decoder_layers", self.decoder_layers),
            ("encoder_heads", self.encoder_heads),
            ("decoder_heads", self.decoder_heads),
            ("encoder_head_dim", self.encoder_head_dim),
            ("decoder_head_dim", self.decoder_head_dim),
            ("encoder_ffn", self.encoder_ffn),
            ("decoder_ffn", self.decoder_ffn),
        ];
        for (name, v) in dims {
            if v == 0 || v > MAX_DIM {
                return Err(MedgenError::format(format!("model dimension {name} = {v} is out of range (1 to {MAX_DIM})")));
            }
        }
        if self.encoder_layers.max(self.decoder_layers) > 4096 || self.encoder_heads.max(self.decoder_heads) > 4096 {
            return Err(MedgenError::format("more than 4096 layers or heads"));
        }
        if self.architecture == Seq2SeqArchitecture::T5 {
            // The bucket formula divides by log(max_distance / max_exact), with max_exact
            // half of the (decoder's) buckets: it needs max_distance past that.
            let (b, d) = (self.relative_buckets, self.relative_max_distance);
            if !(4..=MAX_DIM).contains(&b) || d <= b / 2 || d > MAX_DIM {
                return Err(MedgenError::format(format!(
                    "relative_attention_num_buckets {b} with relative_attention_max_distance {d}: \
                     need at least 4 buckets and a distance past half of them"
                )));
            }
        }
        if let Some(p) = self.max_positions {
            if p == 0 || p > MAX_DIM {
                return Err(MedgenError::format(format!("max_position_embeddings {p} is out of range")));
            }
        }
        let ids = [
            ("decoder_start_token_id", Some(self.decoder_start_token_id)),
            ("eos_token_id", self.eos_token_id),
            ("pad_token_id", self.pad_token_id),
            ("forced_bos_token_id", self.forced_bos_token_id),
            ("forced_eos_token_id", self.forced_eos_token_id),
        ];
        for (name, v) in ids {
            if let Some(v) = v.filter(|&v| v as usize >= self.vocab_size) {
                return Err(MedgenError::format(format!("{name} {v} is outside the vocabulary of {}", self.vocab_size)));
            }
        }
        if !(self.norm_eps.is_finite() && self.norm_eps >= 0.0) {
            return Err(MedgenError::format(format!("norm epsilon {}", self.norm_eps)));
        }
        Ok(self)
    }
}

/// The sizes one stack (encoder or decoder) of a [`Seq2SeqConfig`] builds its layers with:
/// the stacks of one network may differ in all of them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StackShape {
    pub layers: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t5(extra: Json) -> Json {
        let mut c = serde_json::json!({
            "model_type": "t5", "vocab_size": 100, "d_model": 32, "d_kv": 8, "d_ff": 64,
            "num_layers": 2, "num_heads": 4
        });
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    }

    fn bart(extra: Json) -> Json {
        let mut c = serde_json::json!({
            "model_type": "bart", "vocab_size": 100, "d_model": 32, "encoder_layers": 2, "decoder_layers": 3,
            "encoder_attention_heads": 4, "decoder_attention_heads": 4, "encoder_ffn_dim": 64,
            "decoder_ffn_dim": 48, "max_position_embeddings": 64
        });
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    }

    #[test]
    fn a_key_of_the_wrong_json_type_is_an_error_naming_it_not_a_default() {
        let llama = serde_json::json!({
            "model_type": "llama", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 96,
            "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 64
        });
        assert!(ModelConfig::from_hf(&llama).is_ok());
        let wrong = [
            ("rope_theta", serde_json::json!("500000")),
            ("rms_norm_eps", serde_json::json!("0.5")),
            ("head_dim", serde_json::json!("16")),
            ("tie_word_embeddings", serde_json::json!("false")),
            ("hidden_size", serde_json::json!(64.0)),
            ("hidden_act", serde_json::json!(1)),
        ];
        for (key, value) in wrong {
            let mut c = llama.clone();
            c[key] = value;
            let err = ModelConfig::from_hf(&c).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{key}: {err}");
        }
        let mut c = llama.clone();
        c["head_dim"] = Json::Null;
        c["pad_token_id"] = serde_json::json!(-1); // early Llama conversions
        assert!(ModelConfig::from_hf(&c).is_ok());
        let err = Seq2SeqConfig::from_hf(&t5(serde_json::json!({"d_kv": "8"}))).unwrap_err().to_string();
        assert!(err.contains("`d_kv`"), "{err}");
    }

    #[test]
    fn t5_v1_0_defaults_to_relu_and_a_scaled_tied_head() {
        let c = Seq2SeqConfig::from_hf(&t5(serde_json::json!({}))).unwrap();
        assert_eq!((c.activation, c.gated, c.scale_decoder_outputs), (Activation::Relu, false, true));
        assert_eq!((c.decoder_layers, c.relative_buckets, c.relative_max_distance), (2, 32, 128));
        assert_eq!((c.decoder_start_token_id, c.eos_token_id, c.pad_token_id), (0, Some(1), Some(0)));
    }

    #[test]
    fn flan_t5_is_gated_tanh_gelu_without_output_scaling() {
        let c = Seq2SeqConfig::from_hf(&t5(serde_json::json!({
            "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false, "num_decoder_layers": 3
        })))
        .unwrap();
        assert_eq!((c.activation, c.gated, c.scale_decoder_outputs, c.decoder_layers), (Activation::GeluTanh, true, false, 3));
        // transformers 5 writes the scaling itself and always says tied.
        let c = Seq2SeqConfig::from_hf(&t5(serde_json::json!({
            "feed_forward_proj": "gated-gelu", "tie_word_embeddings": true, "scale_decoder_outputs": false
        })))
        .unwrap();
        assert!(!c.scale_decoder_outputs);
    }

    #[test]
    fn t5_dense_act_fn_and_is_gated_act_win_over_feed_forward_proj_as_in_transformers() {
        let c = Seq2SeqConfig::from_hf(&t5(serde_json::json!({"feed_forward_proj": "gated-gelu", "dense_act_fn": "gelu"}))).unwrap();
        assert_eq!((c.activation, c.gated), (Activation::Gelu, true));
        let c = Seq2SeqConfig::from_hf(&t5(serde_json::json!({"feed_forward_proj": "gated-gelu", "dense_act_fn": "relu", "is_gated_act": false}))).unwrap();
        assert_eq!((c.activation, c.gated), (Activation::Relu, false));
        let err = Seq2SeqConfig::from_hf(&t5(serde_json::json!({"dense_act_fn": "mish"}))).unwrap_err();
        assert!(err.to_string().contains("`mish`"), "{err}");
    }

    #[test]
    fn sliding_windows_are_read_as_transformers_reads_them() {
        let context = |model_type: &str, extra: Json| {
            let mut c = serde_json::json!({
                "model_type": model_type, "vocab_size": 100, "hidden_size": 64, "intermediate_size": 96,
                "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 32768
            });
            c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            ModelConfig::from_hf(&c).unwrap().context_length
        };
        // Mistral: 4096 when absent, none when null.
        assert_eq!(context("mistral", serde_json::json!({})), 4096);
        assert_eq!(context("mistral", serde_json::json!({"sliding_window": null})), 32768);
        assert_eq!(context("mistral", serde_json::json!({"sliding_window": 100})), 100);
        // Qwen2: only with use_sliding_window true (then 4096 unless stated).
        assert_eq!(context("qwen2", serde_json::json!({"sliding_window": 100})), 32768);
        // (the test model has 2 layers: max_window_layers 0 makes both sliding)
        let qwen = |extra: Json| {
            let mut c = serde_json::json!({"use_sliding_window": true, "max_window_layers": 0});
            c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            context("qwen2", c)
        };
        assert_eq!(qwen(serde_json::json!({})), 4096);
        assert_eq!(qwen(serde_json::json!({"sliding_window": 100})), 100);
        assert_eq!(qwen(serde_json::json!({"sliding_window": null})), 32768);
        assert_eq!(qwen(serde_json::json!({"sliding_window": 100, "max_window_layers": 2})), 32768);
        assert_eq!(context("qwen2", serde_json::json!({"use_sliding_window": true, "sliding_window": 100})), 32768);
        let types = serde_json::json!({"sliding_window": 100, "layer_types": ["full_attention", "sliding_attention"]});
        assert_eq!(qwen(types), 100);
        // Llama has no window.
        assert_eq!(context("llama", serde_json::json!({"sliding_window": 100})), 32768);
        // Gemma 3's local layers: 4096 when absent, everything when null.
        let mut absent = serde_json::json!({
            "model_type": "gemma3_text", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 96,
            "num_hidden_layers": 7, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 32,
            "max_position_embeddings": 8192
        });
        assert_eq!(ModelConfig::from_hf(&absent).unwrap().gemma3.unwrap().sliding_window, 4096);
        absent.as_object_mut().unwrap().insert("sliding_window".into(), Json::Null);
        assert_eq!(ModelConfig::from_hf(&absent).unwrap().gemma3.unwrap().sliding_window, 8192);
    }

    #[test]
    fn malformed_t5_settings_are_refused_with_their_names() {
        let err = Seq2SeqConfig::from_hf(&t5(serde_json::json!({"feed_forward_proj": "double-gelu"}))).unwrap_err();
        assert!(err.to_string().contains("feed_forward_proj `double-gelu`"), "{err}");
        let err = Seq2SeqConfig::from_hf(&t5(serde_json::json!({"relative_attention_max_distance": 16}))).unwrap_err();
        assert!(err.to_string().contains("relative_attention_max_distance 16"), "{err}");
        let err = Seq2SeqConfig::from_hf(&t5(serde_json::json!({"decoder_start_token_id": 100}))).unwrap_err();
        assert!(err.to_string().contains("decoder_start_token_id 100"), "{err}");
    }

    #[test]
    fn bart_reads_its_positions_heads_and_forced_tokens() {
        let c = Seq2SeqConfig::from_hf(&bart(serde_json::json!({"scale_embedding": true, "forced_eos_token_id": 2}))).unwrap();
        assert_eq!((c.encoder_head_dim, c.decoder_ffn, c.max_positions, c.scale_embedding), (8, 48, Some(64), true));
        assert_eq!((c.activation, c.decoder_start_token_id, c.forced_bos_token_id, c.forced_eos_token_id), (Activation::Gelu, 2, None, Some(2)));
    }

    fn gemma3(extra: Json) -> Result<ModelConfig> {
        let mut c = serde_json::json!({
            "model_type": "gemma3_text", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 96,
            "num_hidden_layers": 7, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 32,
            "max_position_embeddings": 2048, "sliding_window": 512
        });
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        ModelConfig::from_hf(&c)
    }

    #[test]
    fn gemma3_config_of_transformers_4_has_every_sixth_layer_global_and_two_rope_bases() {
        // Older configs: rope_theta, rope_local_base_freq and rope_scaling (global layers only).
        let c = gemma3(serde_json::json!({
            "rope_theta": 1e6, "rope_local_base_freq": 1e4, "rope_scaling": {"rope_type": "linear", "factor": 8.0}
        }))
        .unwrap();
        let g = c.gemma3.as_ref().unwrap();
        assert_eq!(g.sliding_layers, [true, true, true, true, true, false, true]);
        assert_eq!((g.sliding_window, g.rope_local_theta, g.query_pre_attn_scalar), (512, 1e4, 256.0));
        assert_eq!((c.rope_theta, c.rope_scaling, c.context_length), (1e6, Some(RopeScaling::Linear { factor: 8.0 }), 2048));
    }

    #[test]
    fn gemma3_config_of_transformers_5_reads_layer_types_and_per_type_rope() {
        let c = gemma3(serde_json::json!({
            "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "sliding_attention",
                            "full_attention", "sliding_attention", "full_attention"],
            "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 5e5},
                                "sliding_attention": {"rope_type": "default", "rope_theta": 2e3}},
            "query_pre_attn_scalar": 48, "final_logit_softcapping": 30.0
        }))
        .unwrap();
        let g = c.gemma3.as_ref().unwrap();
        assert_eq!(g.sliding_layers, [true, false, true, true, false, true, false]);
        assert_eq!((c.rope_theta, c.rope_scaling.clone(), g.rope_local_theta), (5e5, None, 2e3));
        assert_eq!((g.query_pre_attn_scalar, g.final_logit_softcapping), (48.0, Some(30.0)));
    }

    #[test]
    fn gemma3_settings_medgen_does_not_run_are_refused_by_name() {
        let err = gemma3(serde_json::json!({"attn_logit_softcapping": 50.0})).unwrap_err();
        assert!(err.to_string().contains("attention logit softcapping"), "{err}");
        let err = gemma3(serde_json::json!({"hidden_activation": "relu"})).unwrap_err();
        assert!(err.to_string().contains("hidden_activation `relu`"), "{err}");
        let err = gemma3(serde_json::json!({"layer_types": ["sliding_attention"]})).unwrap_err();
        assert!(err.to_string().contains("1 layer types for 7 layers"), "{err}");
    }

    #[test]
    fn an_absurd_gpt2_width_is_refused_without_overflowing_its_default_feed_forward() {
        let c = serde_json::json!({
            "model_type": "gpt2", "vocab_size": 100, "n_embd": 1u64 << 62, "n_head": 4, "n_layer": 2, "n_positions": 64
        });
        let err = ModelConfig::from_hf(&c).unwrap_err();
        assert!(err.to_string().contains("hidden_size = 4611686018427387904 is out of range"), "{err}");
    }

    #[test]
    fn an_absurd_gemma3_layer_count_is_refused_before_its_layer_pattern_is_made() {
        // 3.3 billion layers made a 3.3 GB pattern before validation refused them.
        let err = gemma3(serde_json::json!({"num_hidden_layers": 3_333_333_332u64})).unwrap_err();
        assert!(err.to_string().contains("3333333332 layers are absurd"), "{err}");
    }

    #[test]
    fn bart_stacks_keep_their_own_heads_widths_and_depths() {
        let c = Seq2SeqConfig::from_hf(&bart(serde_json::json!({
            "encoder_layers": 3, "decoder_layers": 1, "encoder_attention_heads": 8, "decoder_attention_heads": 2,
            "encoder_ffn_dim": 24, "decoder_ffn_dim": 160
        })))
        .unwrap();
        let (e, d) = (c.encoder_shape(), c.decoder_shape());
        assert_eq!((e.layers, e.heads, e.head_dim, e.ffn), (3, 8, 4, 24));
        assert_eq!((d.layers, d.heads, d.head_dim, d.ffn), (1, 2, 16, 160));
    }

    #[test]
    fn bart_heads_that_do_not_divide_d_model_are_refused_with_the_stack() {
        let err = Seq2SeqConfig::from_hf(&bart(serde_json::json!({"decoder_attention_heads": 3}))).unwrap_err();
        assert!(err.to_string().contains("d_model 32 is not a multiple of decoder_attention_heads 3"), "{err}");
        let err = Seq2SeqConfig::from_hf(&bart(serde_json::json!({"encoder_attention_heads": 0}))).unwrap_err();
        assert!(err.to_string().contains("encoder_attention_heads 0"), "{err}");
    }

    #[test]
    fn t5_stacks_share_heads_and_widths_but_not_depth() {
        let c = Seq2SeqConfig::from_hf(&t5(serde_json::json!({"num_decoder_layers": 1, "d_kv": 20}))).unwrap();
        let (e, d) = (c.encoder_shape(), c.decoder_shape());
        assert_eq!((e.layers, e.heads, e.head_dim, e.ffn), (2, 4, 20, 64));
        assert_eq!((d.layers, d.heads, d.head_dim, d.ffn), (1, 4, 20, 64));
    }

    #[test]
    fn decoder_only_loader_points_encoder_decoder_models_elsewhere() {
        let err = ModelConfig::from_hf(&t5(serde_json::json!({}))).unwrap_err();
        assert!(err.to_string().contains("encoder-decoder"), "{err}");
    }
}
