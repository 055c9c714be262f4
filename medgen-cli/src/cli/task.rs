//! `medgen task`: the clinical pipeline on one note.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;

use medgen::deid::DeidConfig;
use medgen::{Model, Result, TaskOptions};

#[derive(clap::Args)]
pub struct Args {
    /// The task: discharge_summary, radiology_impression, soap_note, diagnostic_report,
    /// operative_note, patient_explanation or question_summary.
    name: String,
    /// GGUF file or HF model folder (default: the packaged SmolLM2-135M-Instruct).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The note (default: stdin).
    #[arg(long)]
    input: Option<PathBuf>,
    /// How the note is de-identified before the model sees it, as `medgen deid --mode` does it
    /// (placeholder, redact, mask, shift-dates), or none.
    #[arg(long, default_value = "placeholder")]
    deid: String,
    /// With --deid shift-dates: shift dates by this many days (negative: earlier).
    #[arg(long, allow_negative_numbers = true)]
    shift_days: Option<i64>,
    /// With --deid shift-dates: derive the shift from this key (a patient id, say).
    #[arg(long)]
    shift_key: Option<String>,
    /// Which detectors de-identify the note, as `medgen deid --engine`: rules, model or ensemble.
    #[arg(long, default_value = "ensemble")]
    deid_engine: String,
    /// A tagger file (from `medgen deid train`) instead of the built-in one.
    #[arg(long)]
    tagger: Option<PathBuf>,
    /// Put the original identifiers back into the draft.
    #[arg(long)]
    reidentify: bool,
    #[command(flatten)]
    decode: super::DecodeArgs,
    #[command(flatten)]
    load: super::LoadArgs,
    /// Print one JSON object: text, sections, missing_sections, findings, notice, audit.
    #[arg(long)]
    json: bool,
    /// Enforce the task's sections while decoding: every required heading, in order, once.
    #[arg(long)]
    constrain_sections: bool,
    /// Write the draft as JSON of the task's schema (one string per required section),
    /// decoding constrained to it; the result's "json" holds it parsed.
    #[arg(long, conflicts_with = "constrain_sections")]
    json_output: bool,
    /// Write the draft as JSON of this JSON schema (a file; the subset medgen reads: objects,
    /// arrays, strings, numbers, booleans, null, enums).
    #[arg(long, conflicts_with_all = ["constrain_sections", "json_output"])]
    json_schema: Option<PathBuf>,
    /// Add the model's own signal to the attribution: it reads its draft again with and
    /// without the note (its attention and the note's gain in likelihood per sentence).
    #[arg(long)]
    network_attribution: bool,
    /// Write the review page (one self-contained HTML file) here.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Append the draft's audit record to this review log (hash-chained JSON lines), where
    /// `medgen review decide` later logs the reviewer's decision.
    #[arg(long)]
    review_log: Option<PathBuf>,
    /// Replace an existing --html file.
    #[arg(long)]
    force: bool,
    /// Run the default model without medgen's tasks adapter (see `make task-adapter`).
    #[arg(long, conflicts_with = "model")]
    no_adapter: bool,
}

pub fn run(a: Args) -> Result<()> {
    let task = medgen::tasks::get(&a.name)?;
    let engine = a.deid_engine.parse()?;
    let deid = medgen::deid_option(&a.deid)?.map(|operator| DeidConfig {
        operator,
        date_shift_days: a.shift_days,
        date_shift_key: a.shift_key.clone(),
        engine,
        tagger: a.tagger.clone(),
        ..Default::default()
    });
    let json_schema = match (&a.json_schema, a.json_output) {
        (Some(path), _) => Some(super::read_text(Some(path))?),
        (None, true) => Some(task.json_schema()),
        (None, false) => None,
    };
    if let Some(schema) = &json_schema {
        medgen::generation::json::JsonSchema::parse(schema)?;
    }
    let opts = TaskOptions {
        deid,
        reidentify: a.reidentify,
        generation: a.decode.config(),
        constrain_sections: a.constrain_sections,
        json_schema,
        network_attribution: a.network_attribution,
    };
    opts.generation.validate()?;
    if let Some(html) = a.html.as_deref().filter(|p| p.exists() && !a.force) {
        return Err(medgen::MedgenError::InvalidArgument { name: "html", reason: format!("{} exists: pass --force to replace it", html.display()) });
    }
    // Before loading the model, so that a bad note or log fails at once.
    let note = super::read_note(a.input.as_deref())?;
    if let Some(log) = a.review_log.as_deref() {
        medgen::review::log::check_appendable(log)?;
    }
    let mut load = a.load.options()?;
    // The default model runs the tasks with the adapter medgen ships for them.
    if a.model.is_none() && load.adapter.is_none() && !a.no_adapter {
        load.adapter = Some(medgen::tasks::default_adapter_path()?);
    }
    let model = Model::load(a.model.as_deref(), &load)?;

    if a.json {
        let result = medgen::run_task(&model, task, &note, &opts, |_| ControlFlow::Continue(()))?;
        let draft_id = save(&a, &result)?;
        let mut value = serde_json::to_value(&result).unwrap_or_default();
        value["draft_id"] = serde_json::json!(draft_id);
        println!("{value}");
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    let result = medgen::run_task(&model, task, &note, &opts, |piece| {
        match stdout.write_all(piece.as_bytes()).and_then(|_| stdout.flush()) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    })?;
    let _ = writeln!(stdout);
    if result.audit.reidentified {
        let _ = writeln!(stdout, "\n--- re-identified ---\n{}", result.text);
    }
    eprintln!("\n[{}]", result.notice);
    eprintln!("sections found: {}", result.sections.join(", "));
    eprintln!("sections missing: {}", if result.missing_sections.is_empty() { "none".into() } else { result.missing_sections.join(", ") });
    eprintln!("findings: {}", result.findings.len());
    for f in &result.findings {
        eprintln!("  {:?} at {}..{}: {}", f.kind, f.start, f.end, f.detail);
    }
    let unsupported: Vec<&str> = result.attributions.iter().filter(|u| !u.supported).map(|u| u.text.as_str()).collect();
    eprintln!("sentences supported by the note: {} of {}", result.attributions.len() - unsupported.len(), result.attributions.len());
    for text in unsupported {
        eprintln!("  unsupported: {text}");
    }
    eprintln!("audit record: {}", serde_json::to_string_pretty(&result.audit).unwrap_or_default());
    if let Some(id) = save(&a, &result)? {
        eprintln!("review log: draft {id} in {}", a.review_log.as_deref().unwrap_or_else(|| std::path::Path::new("")).display());
    }
    Ok(())
}

/// Logs the draft (with --review-log) and writes its page (with --html); the draft's id in
/// the log, if logged.
fn save(a: &Args, result: &medgen::TaskResult) -> Result<Option<String>> {
    let id = a.review_log.as_deref().map(|log| medgen::review::log::append_draft(log, &result.audit)).transpose()?;
    if let Some(path) = &a.html {
        medgen::inspect::write_file(path, result.to_html(id.as_deref()).as_bytes(), a.force)?;
    }
    Ok(id)
}
