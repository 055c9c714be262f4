//! The clinical layer for Python: de-identification, checks, metrics and tasks. Results are
//! plain dicts and lists (made from the core's serde output), with the core's names.

use std::collections::BTreeMap;

use medgen::deid::{self, DeidConfig};
use medgen::metrics;
use pyo3::prelude::*;
use pyo3::types::PyAnyMethods;

use crate::err;

/// A serializable core value as Python objects (through JSON, which every result is made for).
pub(crate) fn to_py<T: serde::Serialize>(py: Python<'_>, value: &T) -> PyResult<PyObject> {
    let text = serde_json::to_string(value).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// Finds protected health information: a list of {category, start, end, text, confidence},
/// offsets in characters.
#[pyfunction]
pub(crate) fn detect(py: Python<'_>, text: &str) -> PyResult<PyObject> {
    let found = py.allow_threads(|| deid::detect(text));
    to_py(py, &found)
}

/// Replaces the PHI in `text`: {text, entities, mapping}. `mode` is "placeholder", "redact",
/// "mask" or "shift-dates"; dates shift by `shift_days`, or by an offset derived from
/// `shift_key`. The mapping (replacement -> original) is PHI: medgen keeps no copy.
#[pyfunction]
#[pyo3(signature = (text, mode="placeholder", *, shift_days=None, shift_key=None))]
pub(crate) fn deidentify(
    py: Python<'_>,
    text: &str,
    mode: &str,
    shift_days: Option<i64>,
    shift_key: Option<String>,
) -> PyResult<PyObject> {
    let config = DeidConfig {
        operator: mode.parse().map_err(err)?,
        date_shift_days: shift_days,
        date_shift_key: shift_key,
        ..Default::default()
    };
    let out = py.allow_threads(|| deid::deidentify(text, &config)).map_err(err)?;
    to_py(py, &out)
}

/// Puts the originals of `mapping` (from `deidentify`) back into `text`.
#[pyfunction]
pub(crate) fn reidentify(py: Python<'_>, text: &str, mapping: BTreeMap<String, String>) -> String {
    py.allow_threads(|| deid::reidentify(text, &mapping))
}

/// The safety checks of a draft against its source: a list of {kind, start, end, text,
/// detail}, offsets in characters of `output`.
#[pyfunction]
pub(crate) fn check(py: Python<'_>, source: &str, output: &str) -> PyResult<PyObject> {
    let findings = py.allow_threads(|| medgen::pipeline::check_draft(source, output));
    to_py(py, &findings)
}

/// ROUGE-1/2/L/Lsum {precision, recall, fmeasure} as rouge-score 0.1.2 computes them.
#[pyfunction]
#[pyo3(signature = (prediction, reference, use_stemmer=false))]
pub(crate) fn rouge(py: Python<'_>, prediction: &str, reference: &str, use_stemmer: bool) -> PyResult<PyObject> {
    to_py(py, &py.allow_threads(|| metrics::rouge(prediction, reference, use_stemmer)))
}

/// Sentence BLEU as sacrebleu 2.6 computes it: {score, counts, totals, precisions, bp, sys_len, ref_len}.
#[pyfunction]
pub(crate) fn sentence_bleu(py: Python<'_>, prediction: &str, reference: &str) -> PyResult<PyObject> {
    to_py(py, &py.allow_threads(|| metrics::sentence_bleu(prediction, reference)))
}

/// Corpus BLEU of predictions against one reference each, as sacrebleu 2.6 computes it.
#[pyfunction]
pub(crate) fn corpus_bleu(py: Python<'_>, predictions: Vec<String>, references: Vec<String>) -> PyResult<PyObject> {
    let p: Vec<&str> = predictions.iter().map(String::as_str).collect();
    let r: Vec<&str> = references.iter().map(String::as_str).collect();
    to_py(py, &py.allow_threads(|| metrics::corpus_bleu(&p, &r)).map_err(err)?)
}

/// The names of the clinical tasks.
#[pyfunction]
pub(crate) fn task_names() -> Vec<&'static str> {
    medgen::tasks::all().iter().map(|t| t.name).collect()
}

/// A task's description and required sections: {name, description, sections}.
#[pyfunction]
pub(crate) fn task_info(py: Python<'_>, name: &str) -> PyResult<PyObject> {
    let task = medgen::tasks::get(name).map_err(err)?;
    let info = serde_json::json!({
        "name": task.name,
        "description": task.description,
        "sections": task.required_sections(),
    });
    to_py(py, &info)
}

/// The sections of a task that `output` has and lacks: {found, missing}.
#[pyfunction]
pub(crate) fn task_sections(py: Python<'_>, name: &str, output: &str) -> PyResult<PyObject> {
    let task = medgen::tasks::get(name).map_err(err)?;
    to_py(py, &task.sections(output))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(detect, m)?)?;
    m.add_function(wrap_pyfunction!(deidentify, m)?)?;
    m.add_function(wrap_pyfunction!(reidentify, m)?)?;
    m.add_function(wrap_pyfunction!(check, m)?)?;
    m.add_function(wrap_pyfunction!(rouge, m)?)?;
    m.add_function(wrap_pyfunction!(sentence_bleu, m)?)?;
    m.add_function(wrap_pyfunction!(corpus_bleu, m)?)?;
    m.add_function(wrap_pyfunction!(task_names, m)?)?;
    m.add_function(wrap_pyfunction!(task_info, m)?)?;
    m.add_function(wrap_pyfunction!(task_sections, m)?)?;
    Ok(())
}
