//! `medgen task`: the clinical pipeline on one note.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;

use medgen::{GenerationConfig, Model, Result, TaskOptions};

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
    /// How the note is de-identified before the model sees it: placeholder, redact or none.
    #[arg(long, default_value = "placeholder")]
    deid: String,
    /// Put the original identifiers back into the draft.
    #[arg(long)]
    reidentify: bool,
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    #[arg(long, default_value_t = 0)]
    min_new_tokens: usize,
    /// Sample with this temperature (default: greedy).
    #[arg(long)]
    temperature: Option<f32>,
    #[arg(long)]
    top_p: Option<f32>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    #[command(flatten)]
    load: super::LoadArgs,
    /// Print one JSON object: text, sections, missing_sections, findings, notice, audit.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let task = medgen::tasks::get(&a.name)?;
    let defaults = GenerationConfig::default();
    let opts = TaskOptions {
        deid: a.deid.parse()?,
        reidentify: a.reidentify,
        generation: GenerationConfig {
            max_new_tokens: a.max_new_tokens,
            min_new_tokens: a.min_new_tokens,
            do_sample: a.temperature.is_some() || a.top_p.is_some(),
            temperature: a.temperature.unwrap_or(defaults.temperature),
            top_p: a.top_p.unwrap_or(defaults.top_p),
            repetition_penalty: a.repetition_penalty,
            seed: a.seed,
            ..defaults
        },
    };
    opts.generation.validate()?;
    // Before loading the model, so that a bad note fails at once.
    let note = super::read_note(a.input.as_deref())?;
    let model = Model::load(a.model.as_deref(), &a.load.options()?)?;

    if a.json {
        let result = medgen::run_task(&model, task, &note, &opts, |_| ControlFlow::Continue(()))?;
        println!("{}", serde_json::to_string(&result).unwrap_or_default());
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
    eprintln!("audit record: {}", serde_json::to_string_pretty(&result.audit).unwrap_or_default());
    Ok(())
}
