//! Fine-tuning for Python: `finetune`'s keywords become the core's `TrainingConfig` through
//! serde (its fields listed once, in the core), the run goes with the GIL released, and each
//! logged step reaches the callback and checks for Ctrl-C.

use std::ops::ControlFlow;
use std::path::PathBuf;

use medgen::train::{self, LogEntry, TrainingConfig};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};
use serde_json::Value;

use crate::clinical::to_py;
use crate::{default_model, err, err_loading, field_error, load_options, to_json};

/// `finetune`'s own parameters, which are TrainingConfig fields too but not keywords.
const PARAMETERS: [&str; 4] = ["model", "train", "validation", "output"];
/// LoRA's options are flattened into keywords; PEFT's short names (and freeze_a) take a
/// `lora_` prefix, as the CLI's flags and the core's errors name them (lora_r), the others
/// keep their names.
const LORA_SHORT: [&str; 4] = ["r", "alpha", "dropout", "freeze_a"];

/// TrainingConfig's fields (as JSON) as `finetune`'s keywords: (keyword, JSON pointer).
fn keywords(fields: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (key, value) in fields.as_object().into_iter().flatten() {
        if key == "lora" {
            for sub in value.as_object().into_iter().flatten().map(|(k, _)| k) {
                let name = if LORA_SHORT.contains(&sub.as_str()) { format!("lora_{sub}") } else { sub.clone() };
                out.push((name, format!("/lora/{sub}")));
            }
        } else if !PARAMETERS.contains(&key.as_str()) {
            out.push((key.clone(), format!("/{key}")));
        }
    }
    out
}

fn default_fields() -> PyResult<Value> {
    serde_json::to_value(TrainingConfig::default()).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// The defaults with the keywords over them. Unknown keywords are one TypeError naming them
/// all; each value is read back on its own, so that an error names its keyword.
fn config(py: Python<'_>, function: &str, options: Option<&Bound<'_, PyDict>>) -> PyResult<TrainingConfig> {
    let mut fields = default_fields()?;
    let keywords = keywords(&fields);
    let options: Vec<(String, Bound<'_, PyAny>)> =
        options.map(|o| o.iter().map(|(k, v)| Ok((k.extract()?, v))).collect::<PyResult<_>>()).transpose()?.unwrap_or_default();
    let unknown: Vec<String> =
        options.iter().filter(|(k, _)| !keywords.iter().any(|(name, _)| name == k)).map(|(k, _)| format!("'{k}'")).collect();
    match unknown.len() {
        0 => {}
        1 => return Err(PyTypeError::new_err(format!("{function}() got an unexpected keyword argument {}", unknown[0]))),
        _ => return Err(PyTypeError::new_err(format!("{function}() got unexpected keyword arguments {}", unknown.join(", ")))),
    }
    let mut cfg = TrainingConfig::default();
    for (name, value) in &options {
        let pointer = keywords.iter().find(|(k, _)| k == name).map(|(_, p)| p.as_str()).unwrap_or_default();
        if let Some(slot) = fields.pointer_mut(pointer) {
            *slot = to_json(py, name, value)?;
        }
        cfg = serde_json::from_value(fields.clone()).map_err(|e| field_error(name, e))?;
    }
    Ok(cfg)
}

/// The run's link to Python: each log entry goes to the callback, after a check for Ctrl-C;
/// a pending signal, an exception in the callback or a False from it stops the run.
struct Hook {
    callback: Option<PyObject>,
    /// What stopped the run, raised once the core has written its checkpoint.
    error: Option<PyErr>,
}

impl Hook {
    fn on_log(&mut self, entry: &LogEntry) -> ControlFlow<()> {
        match Python::with_gil(|py| self.call(py, entry)) {
            Ok(true) => ControlFlow::Continue(()),
            Ok(false) => ControlFlow::Break(()),
            Err(e) => {
                self.error = Some(e);
                ControlFlow::Break(())
            }
        }
    }

    /// Whether the run goes on.
    fn call(&self, py: Python<'_>, entry: &LogEntry) -> PyResult<bool> {
        py.check_signals()?;
        let Some(callback) = &self.callback else { return Ok(true) };
        let answer = callback.call1(py, (to_py(py, entry)?,))?;
        // Only False stops: a callback that returns nothing lets the run go on.
        Ok(!answer.bind(py).is(PyBool::new(py, false)))
    }
}

/// Fine-tunes `model` (an HF folder or a GGUF file; None: the default model) on `train`,
/// writing the model, or with method="lora" the adapter, into `output`, with log.jsonl,
/// run.json and the checkpoint. The keywords are the fields of the core's TrainingConfig,
/// same names and defaults, LoRA's flattened (lora_r, lora_alpha, lora_dropout, use_rslora,
/// target_modules, init_adapter); `device`, `dtype` and `threads` are Model.load's.
///
/// `callback(entry)` sees every logged step and evaluation as a dict; returning False stops
/// the run cleanly (a checkpoint and the model so far are written). An exception in the
/// callback, or Ctrl-C (checked after every step), stops it the same way, then is raised.
///
/// Returns the log entries, oldest first, as a `History`: a list of dicts that
/// pandas.DataFrame reads, whose `.report` dict holds the run's result (steps, total_steps,
/// train_loss, eval_loss, eval_rougeL, stopped_early, train_examples, validation_examples,
/// truncated_examples, best_step, seconds, output).
#[pyfunction]
#[pyo3(signature = (model, train, validation=None, *, output, callback=None, device="cpu", dtype="f32", threads=None, **options))]
#[allow(clippy::too_many_arguments)]
fn finetune(
    py: Python<'_>,
    model: Option<PathBuf>,
    train: PathBuf,
    validation: Option<PathBuf>,
    output: PathBuf,
    callback: Option<PyObject>,
    device: &str,
    dtype: &str,
    threads: Option<usize>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyObject> {
    let model = match model {
        Some(m) => m,
        None => default_model()?,
    };
    let cfg = TrainingConfig { model, train, validation, output, load: load_options(device, dtype, threads, None)?, ..config(py, "finetune", options)? };
    let mut hook = Hook { callback, error: None };
    // Ctrl-C is looked for after every step (and every generated token of an evaluation),
    // with the GIL taken back only for that check.
    let mut interrupted = None;
    let mut stop = || match Python::with_gil(|py| py.check_signals()) {
        Ok(()) => false,
        Err(e) => {
            interrupted = Some(e);
            true
        }
    };
    let report = py.allow_threads(|| train::finetune_until(&cfg, &mut |e| hook.on_log(e), &mut stop));
    if let Some(e) = hook.error.take().or(interrupted) {
        return Err(e);
    }
    let report = to_py(py, &report.map_err(err_loading(Some(&cfg.model)))?)?;
    let report = report.bind(py).downcast::<PyDict>()?;
    let history = report.get_item("history")?.ok_or_else(|| PyValueError::new_err("the report has no history"))?;
    report.del_item("history")?;
    Ok(py.import("medgen")?.getattr("History")?.call1((history, report))?.unbind())
}

/// Writes into `output` the LoRA adapter a run with these keywords would start from
/// (`init_adapter`, or PEFT's initialisation seeded by `seed`), without training: a
/// federation's first global adapter. The keywords are `finetune`'s; `method` is "lora".
#[pyfunction]
#[pyo3(signature = (model, *, output, device="cpu", dtype="f32", threads=None, **options))]
fn initial_adapter(py: Python<'_>, model: Option<PathBuf>, output: PathBuf, device: &str, dtype: &str, threads: Option<usize>, options: Option<&Bound<'_, PyDict>>) -> PyResult<PathBuf> {
    let model = match model {
        Some(m) => m,
        None => default_model()?,
    };
    let given = config(py, "initial_adapter", options)?;
    // LoRA unless the caller said otherwise (which the core then refuses).
    let method = if options.is_some_and(|o| o.contains("method").unwrap_or(false)) { given.method } else { train::Method::Lora };
    let cfg = TrainingConfig { model, output: output.clone(), method, load: load_options(device, dtype, threads, None)?, ..given };
    py.allow_threads(|| train::initial_adapter(&cfg)).map_err(err_loading(Some(&cfg.model)))?;
    Ok(output)
}

/// The loss on `validation` (a file in `finetune`'s formats) of `model`, with the adapter
/// `init_adapter` when `method` is "lora", its data prepared as `finetune` prepares it (same
/// keywords): a dict of `loss` (mean cross-entropy per label token, transformers'
/// eval_loss), `examples` and `tokens`.
#[pyfunction]
#[pyo3(signature = (model, validation, *, device="cpu", dtype="f32", threads=None, **options))]
fn evaluate(py: Python<'_>, model: Option<PathBuf>, validation: PathBuf, device: &str, dtype: &str, threads: Option<usize>, options: Option<&Bound<'_, PyDict>>) -> PyResult<PyObject> {
    let model = match model {
        Some(m) => m,
        None => default_model()?,
    };
    let cfg = TrainingConfig { model, validation: Some(validation), load: load_options(device, dtype, threads, None)?, ..config(py, "evaluate", options)? };
    let result = py.allow_threads(|| train::evaluate(&cfg)).map_err(err_loading(Some(&cfg.model)))?;
    to_py(py, &result)
}

/// Learns a tokenizer from `inputs` (text files, one text a line, or training data: .jsonl and
/// .csv, their inputs and targets) and writes it to `output` (tokenizer.json): `model` "bpe"
/// (byte-level: any text encodes) or "wordpiece", up to `vocab_size` tokens, ids 0 to 3 for
/// <pad>, <s>, </s> and <unk>. For `finetune(..., from_scratch={"tokenizer": output, ...})`.
/// An existing `output` is refused unless `overwrite`.
#[pyfunction]
#[pyo3(signature = (inputs, output, *, vocab_size=8000, model="bpe", overwrite=false))]
fn train_tokenizer(py: Python<'_>, inputs: Vec<PathBuf>, output: PathBuf, vocab_size: usize, model: &str, overwrite: bool) -> PyResult<PathBuf> {
    use medgen::train::scratch::{self, VocabModel};
    let model = match model {
        "bpe" => VocabModel::Bpe,
        "wordpiece" => VocabModel::WordPiece,
        m => return Err(err(medgen::MedgenError::InvalidArgument { name: "model", reason: format!("`{m}` is not bpe or wordpiece") })),
    };
    py.allow_threads(|| scratch::train_tokenizer(&scratch::texts(&inputs)?, vocab_size, model, &output, overwrite)).map_err(err)?;
    Ok(output)
}

/// Writes `model` (None: the default model) with the LoRA adapter of the folder `adapter`
/// merged into its weights (PEFT's merge_and_unload) as an HF folder in `output`, which runs
/// at full speed without the adapter.
#[pyfunction]
fn merge(py: Python<'_>, model: Option<PathBuf>, adapter: PathBuf, output: PathBuf) -> PyResult<()> {
    let model = match model {
        Some(m) => m,
        None => default_model()?,
    };
    py.allow_threads(|| train::merge(&model, &adapter, &output, &medgen::LoadOptions::default())).map_err(err_loading(Some(&model)))
}

/// `finetune`'s keywords with the core's defaults, for checking the stubs against the core.
#[pyfunction]
fn _core_training_defaults() -> PyResult<String> {
    let fields = default_fields()?;
    let defaults: serde_json::Map<String, Value> =
        keywords(&fields).into_iter().map(|(k, p)| (k, fields.pointer(&p).cloned().unwrap_or(Value::Null))).collect();
    Ok(Value::Object(defaults).to_string())
}

/// The folder of the LoRA adapter medgen ships for its clinical tasks on the default model
/// (written once into medgen's cache): `Model.load(adapter=medgen.task_adapter_path())`.
#[pyfunction]
fn task_adapter_path() -> PyResult<PathBuf> {
    medgen::tasks::default_adapter_path().map_err(err)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(task_adapter_path, m)?)?;
    m.add_function(wrap_pyfunction!(finetune, m)?)?;
    m.add_function(wrap_pyfunction!(merge, m)?)?;
    m.add_function(wrap_pyfunction!(initial_adapter, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(train_tokenizer, m)?)?;
    m.add_function(wrap_pyfunction!(_core_training_defaults, m)?)?;
    Ok(())
}
