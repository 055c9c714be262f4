//! The clinical layer for Python: de-identification, checks, metrics and tasks. Results are
//! plain dicts and lists (made from the core's serde output), with the core's names.

use std::collections::BTreeMap;
use std::path::PathBuf;

use medgen::deid::{self, DeidConfig};
use medgen::metrics;
use pyo3::prelude::*;
use pyo3::types::PyAnyMethods;

use crate::{err, err_loading};

/// A serializable core value as Python objects (through JSON, which every result is made for).
pub(crate) fn to_py<T: serde::Serialize>(py: Python<'_>, value: &T) -> PyResult<PyObject> {
    let text = serde_json::to_string(value).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// Finds protected health information: a list of {category, start, end, text, confidence},
/// offsets in characters. `engine` is "rules", "model" (the learned tagger) or "ensemble";
/// `tagger` a tagger file instead of the built-in one.
#[pyfunction]
#[pyo3(signature = (text, *, engine="ensemble", tagger=None))]
pub(crate) fn detect(py: Python<'_>, text: &str, engine: &str, tagger: Option<PathBuf>) -> PyResult<PyObject> {
    let engine: deid::Engine = engine.parse().map_err(err)?;
    let found = py.allow_threads(|| deid::detect_with(&[text], engine, tagger.as_deref())).map_err(err_loading(tagger.as_deref()))?;
    to_py(py, &found[0])
}

/// `detect` over many texts at once (faster than one at a time with the tagger).
#[pyfunction]
#[pyo3(signature = (texts, *, engine="ensemble", tagger=None))]
pub(crate) fn detect_batch(py: Python<'_>, texts: Vec<String>, engine: &str, tagger: Option<PathBuf>) -> PyResult<PyObject> {
    let engine: deid::Engine = engine.parse().map_err(err)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // Texts go in chunks, Ctrl-C looked for between them (the tagger is loaded once).
    let mut found = Vec::with_capacity(refs.len());
    for chunk in refs.chunks(32) {
        py.check_signals()?;
        found.extend(py.allow_threads(|| deid::detect_with(chunk, engine, tagger.as_deref())).map_err(err_loading(tagger.as_deref()))?);
    }
    to_py(py, &found)
}

/// The learned tagger's view of `text`: {tokens: [[start, end]] in characters, features: one
/// list of hashed feature ids per token (a word training did not learn as the unknown word), logits: one list of label scores per token, labels:
/// the label names}. For inspecting the tagger and checking it against a reference.
#[pyfunction]
#[pyo3(signature = (text, *, tagger=None))]
pub(crate) fn deid_tagger_logits(py: Python<'_>, text: &str, tagger: Option<PathBuf>) -> PyResult<PyObject> {
    use deid::tagger::{Tagger, FEATURES};
    let out = py
        .allow_threads(|| -> medgen::Result<serde_json::Value> {
            let t = match &tagger {
                Some(p) => Tagger::load(p)?,
                None => Tagger::builtin()?,
            };
            let (tokens, ids) = t.features(text);
            let (_, logits) = t.logits(&[text])?.pop().unwrap_or_default();
            let logits: Vec<Vec<f32>> = Vec::<Vec<f32>>::try_from(logits).unwrap_or_default();
            // Character offset of every byte offset that starts a character (tokens do).
            let mut char_at = vec![0usize; text.len() + 1];
            for (i, (b, _)) in text.char_indices().enumerate() {
                char_at[b] = i;
            }
            char_at[text.len()] = text.chars().count();
            let char_of = |b: usize| char_at[b];
            let labels: Vec<String> = std::iter::once("O".to_string())
                .chain(deid::Category::ALL.iter().flat_map(|c| [format!("B-{c}"), format!("I-{c}")]))
                .collect();
            Ok(serde_json::json!({
                "tokens": tokens.iter().map(|t| [char_of(t.start), char_of(t.end)]).collect::<Vec<_>>(),
                "features": ids.chunks(FEATURES).collect::<Vec<_>>(),
                "logits": logits,
                "labels": labels,
            }))
        })
        .map_err(err_loading(tagger.as_deref()))?;
    to_py(py, &out)
}

/// Trains the learned PHI tagger on annotated notes (JSON lines: {text, entities: [{start, end,
/// category}]}, character offsets) and writes it to `output` (.safetensors); `val` notes choose
/// the best epoch and the ensemble's thresholds. Returns the run's summary.
#[pyfunction]
#[pyo3(signature = (train, output, *, val=None, overwrite=false, init=None, epochs=3, max_steps=None, batch_size=16,
                    window=256, lr=2e-3, warmup_ratio=0.05, weight_decay=0.0, max_grad_norm=1.0, seed=0, shuffle=true,
                    buckets=65536, dim=48, hidden=128, dilations=vec![1, 2, 4, 8], half=true, min_word_count=2, word_dropout=0.2))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn train_deid_tagger(
    py: Python<'_>,
    train: PathBuf,
    output: PathBuf,
    val: Option<PathBuf>,
    overwrite: bool,
    init: Option<PathBuf>,
    epochs: usize,
    max_steps: Option<u64>,
    batch_size: usize,
    window: usize,
    lr: f64,
    warmup_ratio: f64,
    weight_decay: f64,
    max_grad_norm: f64,
    seed: u64,
    shuffle: bool,
    buckets: usize,
    dim: usize,
    hidden: usize,
    dilations: Vec<usize>,
    half: bool,
    min_word_count: usize,
    word_dropout: f64,
) -> PyResult<PyObject> {
    use deid::tagger_train::{read_annotated, train_tagger, TaggerTraining};
    let opts = TaggerTraining {
        config: deid::tagger::TaggerConfig { buckets, dim, hidden, dilations },
        epochs,
        max_steps,
        batch_size,
        window,
        lr,
        warmup_ratio,
        weight_decay,
        max_grad_norm,
        seed,
        shuffle,
        init,
        half,
        min_word_count,
        word_dropout,
    };
    let mut interrupt = crate::Interrupt::new();
    let summary = py.allow_threads(|| {
        let train = read_annotated(&train)?;
        let val = val.as_deref().map(read_annotated).transpose()?.unwrap_or_default();
        train_tagger(&train, &val, &opts, &output, overwrite, |_| {}, || interrupt.check().is_break())
    });
    if let Some(e) = interrupt.error {
        return Err(e);
    }
    let summary = summary.map_err(err)?;
    to_py(py, &summary)
}

/// Replaces the PHI in `text`: {text, entities, mapping}. `mode` is "placeholder", "redact",
/// "mask" or "shift-dates"; dates shift by `shift_days`, or by an offset derived from
/// `shift_key`. `engine` and `tagger` as for `detect`. The mapping (replacement -> original) is
/// PHI: medgen keeps no copy.
#[pyfunction]
#[pyo3(signature = (text, mode="placeholder", *, shift_days=None, shift_key=None, engine="ensemble", tagger=None))]
pub(crate) fn deidentify(
    py: Python<'_>,
    text: &str,
    mode: &str,
    shift_days: Option<i64>,
    shift_key: Option<String>,
    engine: &str,
    tagger: Option<PathBuf>,
) -> PyResult<PyObject> {
    let config = DeidConfig {
        operator: mode.parse().map_err(err)?,
        date_shift_days: shift_days,
        date_shift_key: shift_key,
        engine: engine.parse().map_err(err)?,
        tagger,
        ..Default::default()
    };
    let out = py.allow_threads(|| deid::deidentify(text, &config)).map_err(err_loading(config.tagger.as_deref()))?;
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

/// Each sentence of `draft` linked to the spans of `source` that support it: a list of
/// {start, end, text, spans: [{start, end, score}], score, supported, flags}, offsets in
/// characters. `checks`: run the safety checks and flag the sentences their findings fall
/// in. A draft or source with no sentence raises InvalidArgumentError.
#[pyfunction]
#[pyo3(signature = (source, draft, checks=true, shares=None, gains=None))]
pub(crate) fn review_attribute(
    py: Python<'_>,
    source: &str,
    draft: &str,
    checks: bool,
    shares: Option<Vec<Vec<f32>>>,
    gains: Option<Vec<f32>>,
) -> PyResult<PyObject> {
    let findings = if checks { medgen::pipeline::check_draft(source, draft) } else { Vec::new() };
    let signal = match (shares, gains) {
        (Some(shares), Some(gains)) => Some(medgen::review::NetworkSignal { shares, gains }),
        (None, None) => None,
        _ => return Err(err(medgen::MedgenError::InvalidArgument { name: "signal", reason: "needs both shares and gains".into() })),
    };
    let units = py
        .allow_threads(|| match &signal {
            None => medgen::review::attribute_with(source, draft, &findings),
            Some(signal) => medgen::review::attribute_signal(source, draft, &findings, signal),
        })
        .map_err(err)?;
    to_py(py, &units)
}

/// Logs a reviewer's decision ("accept", "edit", "reject") on draft `draft_id` of the review
/// log at `log`; `text` is the final text (not with "reject"). Returns the logged review.
#[pyfunction]
#[pyo3(signature = (log, draft_id, decision, reviewer, text=None))]
pub(crate) fn review_decide(py: Python<'_>, log: PathBuf, draft_id: &str, decision: &str, reviewer: &str, text: Option<&str>) -> PyResult<PyObject> {
    let decision: medgen::review::log::Decision = decision.parse().map_err(err)?;
    let review = medgen::review::log::append_review(&log, draft_id, decision, reviewer, text).map_err(err)?;
    to_py(py, &review)
}

/// Checks the review log's hash chain: {entries, drafts, reviews, head_sha256}; a log that
/// fails raises AuditTamperedError.
#[pyfunction]
pub(crate) fn review_verify(py: Python<'_>, log: PathBuf) -> PyResult<PyObject> {
    let summary = medgen::review::log::verify(&log).map_err(err)?;
    to_py(py, &summary)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(review_attribute, m)?)?;
    m.add_function(wrap_pyfunction!(review_decide, m)?)?;
    m.add_function(wrap_pyfunction!(review_verify, m)?)?;
    m.add_function(wrap_pyfunction!(detect, m)?)?;
    m.add_function(wrap_pyfunction!(detect_batch, m)?)?;
    m.add_function(wrap_pyfunction!(deid_tagger_logits, m)?)?;
    m.add_function(wrap_pyfunction!(train_deid_tagger, m)?)?;
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
