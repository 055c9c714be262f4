//! Python bindings for medgen: type conversion, the GIL and error mapping only; every
//! behaviour lives in medgen-core.

mod clinical;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use medgen::{ChatMessage, Generator, LoadOptions, MedgenError as CoreError};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyStopIteration, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString};

create_exception!(_medgen, MedgenError, PyException, "Base class of every medgen error.");
create_exception!(_medgen, ModelLoadError, MedgenError, "A model file or folder is missing, unreadable or malformed.");
create_exception!(_medgen, UnsupportedError, MedgenError, "The model uses an architecture, tensor type or tokenizer medgen does not run.");
create_exception!(_medgen, InvalidArgumentError, MedgenError, "An option or input is out of range or malformed.");
create_exception!(_medgen, ContextLengthError, MedgenError, "The prompt plus max_new_tokens exceeds the model's context.");
create_exception!(_medgen, DeviceError, MedgenError, "The requested device is not available.");
create_exception!(_medgen, TokenizerError, MedgenError, "The tokenizer failed.");
create_exception!(_medgen, TemplateError, MedgenError, "The chat template failed to render.");
create_exception!(_medgen, TorchError, MedgenError, "libtorch reported an error.");

/// The core error as the matching Python exception, keeping its message.
fn err(e: CoreError) -> PyErr {
    let msg = e.to_string();
    match e {
        CoreError::Io { .. } | CoreError::ModelFormat(_) => ModelLoadError::new_err(msg),
        CoreError::Unsupported(_) => UnsupportedError::new_err(msg),
        CoreError::InvalidArgument { .. } => InvalidArgumentError::new_err(msg),
        CoreError::ContextLength { .. } => ContextLengthError::new_err(msg),
        CoreError::Device(_) => DeviceError::new_err(msg),
        CoreError::Tokenizer(_) => TokenizerError::new_err(msg),
        CoreError::Template(_) => TemplateError::new_err(msg),
        CoreError::Torch(_) => TorchError::new_err(msg),
        _ => MedgenError::new_err(msg),
    }
}

/// Generation options: the fields of medgen's Rust `GenerationConfig`, same names and defaults.
#[pyclass(module = "medgen", get_all, set_all)]
#[derive(Clone)]
struct GenerationConfig {
    max_new_tokens: usize,
    min_new_tokens: usize,
    do_sample: bool,
    temperature: f32,
    top_k: usize,
    top_p: f32,
    min_p: f32,
    repetition_penalty: f32,
    seed: Option<u64>,
    stop: Vec<String>,
    logprobs: bool,
    num_beams: usize,
    length_penalty: f32,
    early_stopping: EarlyStopping,
    num_return_sequences: usize,
    no_repeat_ngram_size: usize,
}

/// `early_stopping` as transformers takes it: True, False or "never".
#[derive(Clone, Copy)]
struct EarlyStopping(medgen::EarlyStopping);

impl<'py> FromPyObject<'py> for EarlyStopping {
    fn extract_bound(ob: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(b) = ob.downcast::<PyBool>() {
            return Ok(EarlyStopping(if b.is_true() { medgen::EarlyStopping::True } else { medgen::EarlyStopping::False }));
        }
        match ob.extract::<String>() {
            Ok(s) => s.parse().map(EarlyStopping).map_err(err),
            Err(_) => Err(PyTypeError::new_err("early_stopping must be True, False or \"never\"")),
        }
    }
}

impl<'py> IntoPyObject<'py> for EarlyStopping {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = std::convert::Infallible;
    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(match self.0 {
            medgen::EarlyStopping::True => PyBool::new(py, true).to_owned().into_any(),
            medgen::EarlyStopping::False => PyBool::new(py, false).to_owned().into_any(),
            medgen::EarlyStopping::Never => PyString::new(py, "never").into_any(),
        })
    }
}

#[pymethods]
impl GenerationConfig {
    #[new]
    #[pyo3(signature = (*, max_new_tokens=256, min_new_tokens=0, do_sample=false, temperature=1.0, top_k=50,
        top_p=1.0, min_p=0.0, repetition_penalty=1.0, seed=None, stop=Vec::new(), logprobs=false, num_beams=1,
        length_penalty=1.0, early_stopping=EarlyStopping(medgen::EarlyStopping::False), num_return_sequences=1,
        no_repeat_ngram_size=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        max_new_tokens: usize,
        min_new_tokens: usize,
        do_sample: bool,
        temperature: f32,
        top_k: usize,
        top_p: f32,
        min_p: f32,
        repetition_penalty: f32,
        seed: Option<u64>,
        stop: Vec<String>,
        logprobs: bool,
        num_beams: usize,
        length_penalty: f32,
        early_stopping: EarlyStopping,
        num_return_sequences: usize,
        no_repeat_ngram_size: usize,
    ) -> Self {
        GenerationConfig {
            max_new_tokens,
            min_new_tokens,
            do_sample,
            temperature,
            top_k,
            top_p,
            min_p,
            repetition_penalty,
            seed,
            stop,
            logprobs,
            num_beams,
            length_penalty,
            early_stopping,
            num_return_sequences,
            no_repeat_ngram_size,
        }
    }

    /// Checks every option (raises InvalidArgumentError naming the field).
    fn validate(&self) -> PyResult<()> {
        self.core().validate().map_err(err)
    }

    fn __repr__(&self) -> String {
        format!("GenerationConfig({:?})", self.core())
    }
}

impl GenerationConfig {
    fn core(&self) -> medgen::GenerationConfig {
        medgen::GenerationConfig {
            max_new_tokens: self.max_new_tokens,
            min_new_tokens: self.min_new_tokens,
            do_sample: self.do_sample,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            seed: self.seed,
            stop: self.stop.clone(),
            logprobs: self.logprobs,
            num_beams: self.num_beams,
            length_penalty: self.length_penalty,
            early_stopping: self.early_stopping.0,
            num_return_sequences: self.num_return_sequences,
            no_repeat_ngram_size: self.no_repeat_ngram_size,
        }
    }
}

/// The core's defaults, for checking that the Python keywords above match them.
#[pyfunction]
fn _core_default_config() -> String {
    serde_json::to_string(&medgen::GenerationConfig::default()).unwrap_or_default()
}

/// The result of one generation.
#[pyclass(module = "medgen", frozen, get_all)]
struct Generation {
    text: String,
    token_ids: Vec<u32>,
    prompt_token_ids: Vec<u32>,
    /// "eos", "stop", "length" or "cancelled".
    finish_reason: &'static str,
    logprobs: Option<Vec<f32>>,
    /// load_s, prefill_s, prefill_tokens_per_s, decode_s, decode_tokens_per_s.
    timings: Py<PyDict>,
    seed: u64,
    /// Beam search's sequences, best first: [{"text", "token_ids", "score"}]; empty without beams.
    sequences: Py<PyList>,
}

#[pymethods]
impl Generation {
    fn __repr__(&self) -> String {
        format!("Generation(finish_reason={:?}, tokens={}, text={:?})", self.finish_reason, self.token_ids.len(), self.text)
    }
}

impl Generation {
    fn from_core(py: Python<'_>, g: medgen::Generation) -> PyResult<Self> {
        let t = &g.timings;
        let timings = PyDict::new(py);
        for (k, v) in [
            ("load_s", t.load_s),
            ("prefill_s", t.prefill_s),
            ("prefill_tokens_per_s", t.prefill_tokens_per_s),
            ("decode_s", t.decode_s),
            ("decode_tokens_per_s", t.decode_tokens_per_s),
        ] {
            timings.set_item(k, v)?;
        }
        let sequences = PyList::empty(py);
        for seq in &g.sequences {
            let d = PyDict::new(py);
            d.set_item("text", &seq.text)?;
            d.set_item("token_ids", &seq.token_ids)?;
            d.set_item("score", seq.score)?;
            sequences.append(d)?;
        }
        Ok(Generation {
            sequences: sequences.unbind(),
            finish_reason: g.finish_reason.as_str(),
            text: g.text,
            token_ids: g.token_ids,
            prompt_token_ids: g.prompt_token_ids,
            logprobs: g.logprobs,
            timings: timings.unbind(),
            seed: g.seed,
        })
    }
}

/// A prompt: text, or chat messages (a list of {"role", "content"} dicts).
enum Prompt {
    Text(String),
    Chat(Vec<ChatMessage>),
}

impl Prompt {
    fn extract(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        if let Ok(s) = obj.downcast::<PyString>() {
            return Ok(Prompt::Text(s.extract::<String>()?));
        }
        chat_messages(obj).map(Prompt::Chat)
    }

    fn ids(&self, model: &medgen::Model) -> medgen::Result<Vec<u32>> {
        match self {
            Prompt::Text(t) if t.is_empty() => Err(CoreError::InvalidArgument { name: "prompt", reason: "the prompt is empty".into() }),
            Prompt::Text(t) => model.tokenize(t),
            Prompt::Chat(m) => model.chat_ids(m),
        }
    }
}

fn chat_messages(obj: &Bound<'_, PyAny>) -> PyResult<Vec<ChatMessage>> {
    let list = obj
        .downcast::<PyList>()
        .map_err(|_| PyTypeError::new_err("expected a str prompt or a list of {'role', 'content'} messages"))?;
    list.iter()
        .map(|m| {
            let get = |k: &str| -> PyResult<String> {
                m.get_item(k)
                    .and_then(|v| v.extract())
                    .map_err(|_| PyTypeError::new_err(format!("each message needs a str '{k}'")))
            };
            Ok(ChatMessage::new(get("role")?, get("content")?))
        })
        .collect()
}

/// A loaded model; safe to share between threads, which may generate at once.
#[pyclass(module = "medgen", frozen)]
struct Model {
    inner: Arc<medgen::Model>,
}

/// Stops a generation when Python has a pending signal (Ctrl-C), checked every few pieces.
struct Interrupt {
    pieces: usize,
    error: Option<PyErr>,
}

impl Interrupt {
    fn new() -> Self {
        Interrupt { pieces: 0, error: None }
    }

    fn check(&mut self) -> std::ops::ControlFlow<()> {
        self.pieces += 1;
        if self.pieces % 4 == 0 {
            if let Err(e) = Python::with_gil(|py| py.check_signals()) {
                self.error = Some(e);
                return std::ops::ControlFlow::Break(());
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

#[pymethods]
impl Model {
    /// Loads a GGUF file or an HF model folder; without a path, the default model.
    #[staticmethod]
    #[pyo3(signature = (path=None, *, device="cpu", dtype="f32", threads=None))]
    fn load(py: Python<'_>, path: Option<PathBuf>, device: &str, dtype: &str, threads: Option<usize>) -> PyResult<Self> {
        let opts = LoadOptions { device: device.parse().map_err(err)?, dtype: dtype.parse().map_err(err)?, threads };
        let model = py.allow_threads(|| medgen::Model::load(path.as_deref(), &opts)).map_err(err)?;
        Ok(Model { inner: Arc::new(model) })
    }

    /// Generates from a prompt (str), or from each prompt of a list, in order: a list runs
    /// in batches of `batch_size` prompts, each batch one pass through the network per step.
    /// Keywords are GenerationConfig fields and override `config`.
    #[pyo3(signature = (prompt, config=None, *, batch_size=8, **options))]
    fn generate(
        &self,
        py: Python<'_>,
        prompt: &Bound<'_, PyAny>,
        config: Option<GenerationConfig>,
        batch_size: usize,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyObject> {
        let cfg = merge(py, config, options)?;
        let Ok(list) = prompt.downcast::<PyList>() else {
            let prompt = Prompt::extract(prompt)?;
            return Ok(Py::new(py, self.run(py, &prompt, &cfg)?)?.into_any());
        };
        if batch_size == 0 {
            return Err(err(CoreError::InvalidArgument { name: "batch_size", reason: "must be at least 1".into() }));
        }
        let prompts = list.iter().map(|p| {
            p.downcast::<PyString>()
                .map(|s| Prompt::Text(s.to_string()))
                .map_err(|_| PyTypeError::new_err("a list prompt must hold str prompts"))
        });
        let prompts = prompts.collect::<PyResult<Vec<_>>>()?;
        let model = &self.inner;
        let mut interrupt = Interrupt::new();
        let out = py.allow_threads(|| {
            if prompts.is_empty() {
                // The core's error for an empty batch.
                return model.generate_batch_ids(Vec::new(), &cfg, || interrupt.check());
            }
            let mut out = Vec::with_capacity(prompts.len());
            for batch in prompts.chunks(batch_size) {
                let ids = batch.iter().map(|p| p.ids(model)).collect::<medgen::Result<Vec<_>>>()?;
                out.extend(model.generate_batch_ids(ids, &cfg, || interrupt.check())?);
                if interrupt.error.is_some() {
                    break;
                }
            }
            Ok(out)
        });
        if let Some(e) = interrupt.error {
            return Err(e);
        }
        let out = out.map_err(err)?.into_iter().map(|g| Py::new(py, Generation::from_core(py, g)?));
        Ok(PyList::new(py, out.collect::<PyResult<Vec<_>>>()?)?.into_any().unbind())
    }

    /// Answers chat messages through the model's chat template.
    #[pyo3(signature = (messages, config=None, **options))]
    fn chat(
        &self,
        py: Python<'_>,
        messages: &Bound<'_, PyAny>,
        config: Option<GenerationConfig>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Generation> {
        let cfg = merge(py, config, options)?;
        self.run(py, &Prompt::Chat(chat_messages(messages)?), &cfg)
    }

    /// An iterator of text pieces (for a str prompt or chat messages); `.result` holds the
    /// Generation once it is exhausted.
    #[pyo3(signature = (prompt, config=None, **options))]
    fn stream(
        &self,
        py: Python<'_>,
        prompt: &Bound<'_, PyAny>,
        config: Option<GenerationConfig>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Stream> {
        let cfg = merge(py, config, options)?;
        let prompt = Prompt::extract(prompt)?;
        let model = self.inner.clone();
        let generator = py
            .allow_threads(|| prompt.ids(&model).and_then(|ids| Generator::new(model.clone(), ids, &cfg)))
            .map_err(err)?;
        Ok(Stream { state: Mutex::new((Some(generator), None)) })
    }

    /// Token ids of a text, with the model's BOS/EOS rules.
    fn tokenize(&self, text: &str) -> PyResult<Vec<u32>> {
        self.inner.tokenize(text).map_err(err)
    }

    /// Text of token ids, special tokens left out.
    fn detokenize(&self, ids: Vec<u32>) -> PyResult<String> {
        self.inner.detokenize(&ids).map_err(err)
    }

    /// The prompt text the chat template makes of messages.
    fn render_chat(&self, messages: &Bound<'_, PyAny>) -> PyResult<String> {
        self.inner.render_chat(&chat_messages(messages)?).map_err(err)
    }

    /// Runs a clinical task on a note: de-identify (`deid`: "placeholder", "redact" or
    /// "none"), prompt, generate, re-identify if asked, check, audit. Returns a dict: text,
    /// sections, missing_sections, findings, notice, audit, and mapping (placeholder ->
    /// original: PHI for the caller only; the audit record holds none).
    #[pyo3(signature = (task, note, *, deid="placeholder", reidentify=false, config=None, **options))]
    fn run_task(
        &self,
        py: Python<'_>,
        task: &str,
        note: &str,
        deid: &str,
        reidentify: bool,
        config: Option<GenerationConfig>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyObject> {
        let task = medgen::tasks::get(task).map_err(err)?;
        let opts = medgen::TaskOptions { deid: deid.parse().map_err(err)?, reidentify, generation: merge(py, config, options)? };
        let model = &self.inner;
        let mut interrupt = Interrupt::new();
        let out = py.allow_threads(|| medgen::run_task(model, task, note, &opts, |_| interrupt.check()));
        if let Some(e) = interrupt.error {
            return Err(e);
        }
        let out = out.map_err(err)?;
        let result = clinical::to_py(py, &out)?;
        result.bind(py).set_item("mapping", out.mapping.into_pyobject(py)?)?;
        Ok(result)
    }

    /// Architecture, parameters, tensor types, context length, ... as a JSON string.
    #[getter]
    fn info_json(&self) -> String {
        serde_json::to_string(self.inner.info()).unwrap_or_default()
    }
}

impl Model {
    fn run(&self, py: Python<'_>, prompt: &Prompt, cfg: &medgen::GenerationConfig) -> PyResult<Generation> {
        let model = &self.inner;
        let mut interrupt = Interrupt::new();
        let out = py.allow_threads(|| {
            let mut generator = model.generator(prompt.ids(model)?, cfg)?;
            // Checked every step, not only on steps that make text: a long run of tokens with
            // no text (special tokens) must not hide a Ctrl-C.
            while generator.step()?.is_some() {
                if interrupt.check().is_break() {
                    generator.cancel();
                }
            }
            Ok::<_, medgen::MedgenError>(generator.finish())
        });
        if let Some(e) = interrupt.error {
            return Err(e);
        }
        Generation::from_core(py, out.map_err(err)?)
    }
}

/// `config` (or the defaults) with keyword overrides; an unknown keyword is a TypeError.
fn merge(py: Python<'_>, config: Option<GenerationConfig>, options: Option<&Bound<'_, PyDict>>) -> PyResult<medgen::GenerationConfig> {
    let cfg = Bound::new(py, config.unwrap_or_else(|| GenerationConfig::from_core(medgen::GenerationConfig::default())))?;
    if let Some(options) = options {
        for (k, v) in options.iter() {
            let name: String = k.extract()?;
            if !cfg.hasattr(name.as_str())? {
                return Err(PyTypeError::new_err(format!("unexpected keyword argument '{name}'")));
            }
            cfg.setattr(name.as_str(), v)?;
        }
    }
    let cfg = cfg.borrow().core();
    cfg.validate().map_err(err)?;
    Ok(cfg)
}

impl GenerationConfig {
    fn from_core(c: medgen::GenerationConfig) -> Self {
        GenerationConfig {
            max_new_tokens: c.max_new_tokens,
            min_new_tokens: c.min_new_tokens,
            do_sample: c.do_sample,
            temperature: c.temperature,
            top_k: c.top_k,
            top_p: c.top_p,
            min_p: c.min_p,
            repetition_penalty: c.repetition_penalty,
            seed: c.seed,
            stop: c.stop,
            logprobs: c.logprobs,
            num_beams: c.num_beams,
            length_penalty: c.length_penalty,
            early_stopping: EarlyStopping(c.early_stopping),
            num_return_sequences: c.num_return_sequences,
            no_repeat_ngram_size: c.no_repeat_ngram_size,
        }
    }
}

/// Text pieces of a generation in progress.
#[pyclass(module = "medgen", frozen)]
struct Stream {
    /// The generator while running; the result once finished.
    state: Mutex<(Option<Generator>, Option<Py<Generation>>)>,
}

#[pymethods]
impl Stream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<String> {
        let mut state = self.state.lock().map_err(|_| MedgenError::new_err("stream poisoned by an earlier panic"))?;
        let Some(generator) = state.0.as_mut() else {
            return Err(PyStopIteration::new_err(()));
        };
        let step = py.allow_threads(|| generator.next());
        match step {
            Some(Ok(piece)) => Ok(piece),
            other => {
                let finished = state.0.take().map(Generator::finish);
                if let Some(g) = finished {
                    state.1 = Some(Py::new(py, Generation::from_core(py, g)?)?);
                }
                match other {
                    Some(Err(e)) => Err(err(e)),
                    _ => Err(PyStopIteration::new_err(())),
                }
            }
        }
    }

    /// Stops generating; `result` then holds what was generated, finish_reason "cancelled".
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        let mut state = self.state.lock().map_err(|_| MedgenError::new_err("stream poisoned by an earlier panic"))?;
        if let Some(g) = state.0.take() {
            state.1 = Some(Py::new(py, Generation::from_core(py, g.finish())?)?);
        }
        Ok(())
    }

    /// The Generation once the stream is exhausted or cancelled, else None.
    #[getter]
    fn result(&self, py: Python<'_>) -> PyResult<Option<Py<Generation>>> {
        let state = self.state.lock().map_err(|_| MedgenError::new_err("stream poisoned by an earlier panic"))?;
        Ok(state.1.as_ref().map(|g| g.clone_ref(py)))
    }
}

#[pymodule]
fn _medgen(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", medgen::VERSION)?;
    m.add_class::<Model>()?;
    m.add_class::<Generation>()?;
    m.add_class::<GenerationConfig>()?;
    m.add_class::<Stream>()?;
    m.add_function(wrap_pyfunction!(_core_default_config, m)?)?;
    clinical::register(m)?;
    for (name, ty) in [
        ("MedgenError", py.get_type::<MedgenError>()),
        ("ModelLoadError", py.get_type::<ModelLoadError>()),
        ("UnsupportedError", py.get_type::<UnsupportedError>()),
        ("InvalidArgumentError", py.get_type::<InvalidArgumentError>()),
        ("ContextLengthError", py.get_type::<ContextLengthError>()),
        ("DeviceError", py.get_type::<DeviceError>()),
        ("TokenizerError", py.get_type::<TokenizerError>()),
        ("TemplateError", py.get_type::<TemplateError>()),
        ("TorchError", py.get_type::<TorchError>()),
    ] {
        m.add(name, ty)?;
    }
    Ok(())
}
