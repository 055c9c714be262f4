//! The clinical pipeline: de-identify the note → render the task's prompt → generate →
//! re-identify, or keep the placeholders → check the draft → result with its audit record.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use crate::audit::{self, AuditRecord, DRAFT_NOTICE};
use crate::checks::{self, Finding, FindingKind};
use crate::deid::{self, DeidConfig, Operator};
use crate::error::{MedgenError, Result};
use crate::generation::json::JsonConstraint;
use crate::generation::{Generation, GenerationConfig, LogitsConstraint};
use crate::review::{self, attribution, Attribution, TokenConfidence};
use crate::tasks::{SectionConstraint, SectionReport, Task};
use crate::Model;

/// Options of a pipeline run.
#[derive(Debug, Clone)]
pub struct TaskOptions {
    /// How the note is de-identified before the model sees it, as `medgen deid` does it;
    /// `None`: the model sees the note as it is (default: placeholders, `[NAME_1]`).
    pub deid: Option<DeidConfig>,
    /// Put the original identifiers back into the output (default: false: the output keeps
    /// the placeholders).
    pub reidentify: bool,
    /// (default: `GenerationConfig::default()`)
    pub generation: GenerationConfig,
    /// Enforce the task's sections while decoding ([`SectionConstraint`]): every required
    /// heading, in order, once (default: false).
    pub constrain_sections: bool,
    /// Write the draft as JSON of this schema (JSON text; the subset of
    /// [`crate::generation::json`]), decoding constrained to it; [`Task::json_schema`] is the
    /// task's own (default: None, plain text).
    pub json_schema: Option<String>,
    /// Add the model's own signal to the attribution ([`review::network::signal`]): the
    /// model reads its draft again with and without the note (two more forward passes;
    /// default: false).
    pub network_attribution: bool,
}

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions {
            deid: Some(DeidConfig::default()),
            reidentify: false,
            generation: GenerationConfig::default(),
            constrain_sections: false,
            json_schema: None,
            network_attribution: false,
        }
    }
}

/// The `deid` option of a task as the command and Python spell it: `none`, or an operator
/// (`placeholder`, `redact`, `mask`, `shift-dates`) for every category.
pub fn deid_option(mode: &str) -> Result<Option<Operator>> {
    match mode.trim().to_ascii_lowercase().as_str() {
        "none" => Ok(None),
        _ => mode
            .parse()
            .map(Some)
            .map_err(|_| MedgenError::invalid("deid", format!("`{mode}` is not none, placeholder, redact, mask or shift-dates"))),
    }
}

/// The result of a pipeline run: always a draft for a clinician to review.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskResult {
    /// The draft: with placeholders, or re-identified if asked.
    pub text: String,
    /// The task's sections the draft has, and those it lacks.
    pub sections: Vec<String>,
    pub missing_sections: Vec<String>,
    /// Check findings; offsets are characters of `text`.
    pub findings: Vec<Finding>,
    /// Each sentence of `text` with the spans of `source` that support it.
    pub attributions: Vec<Attribution>,
    /// Each generated token's span in `text` and its probability.
    pub tokens: Vec<TokenConfidence>,
    /// With a JSON schema: the draft parsed (None if it is not valid JSON of the schema, which
    /// only a cancelled run leaves).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
    /// Says that the text is a draft that needs review by a clinician.
    pub notice: &'static str,
    pub audit: AuditRecord,
    /// The text the draft was checked against: the de-identified note, or the original once
    /// the draft is re-identified (then PHI: never serialized).
    #[serde(skip)]
    pub source: String,
    /// Placeholder → original identifier. It is PHI: returned to the caller only, never
    /// serialized, logged or written by medgen.
    #[serde(skip)]
    pub mapping: BTreeMap<String, String>,
    /// The generation behind `text` (token ids, timings).
    #[serde(skip)]
    pub generation: Generation,
}

/// Checks that a note is text worth sending to a model.
pub fn validate_note(note: &str) -> Result<()> {
    if note.trim().is_empty() {
        return Err(MedgenError::invalid("note", "the note is empty"));
    }
    if let Some(at) = note.chars().position(|c| c == '\0') {
        return Err(MedgenError::invalid("note", format!("a NUL character at {at}: this looks like a binary file")));
    }
    Ok(())
}

/// Runs `task` on `note` with `model`, passing each generated piece to `on_piece` (the text
/// the model writes, with placeholders); `ControlFlow::Break` cancels.
pub fn run_task(
    model: &Model,
    task: &Task,
    note: &str,
    opts: &TaskOptions,
    on_piece: impl FnMut(&str) -> ControlFlow<()>,
) -> Result<TaskResult> {
    let started_at = audit::utc_now();
    validate_note(note)?;
    opts.generation.validate()?;
    // A note far past the context fails before it is de-identified whole (a 16 MB note took
    // 47 s to fail): its head alone holds twice the context (placeholders shorten a note by
    // less than half).
    model.refuse_text_past(note, 2)?;
    let (input, entities, mapping) = match &opts.deid {
        None => (note.to_string(), Vec::new(), BTreeMap::new()),
        Some(config) => {
            let d = deid::deidentify(note, config)?;
            (d.text, d.entities, d.mapping)
        }
    };
    let max_new = opts.generation.max_new_tokens;
    let json_constraint = match &opts.json_schema {
        Some(schema) => Some(Arc::new(JsonConstraint::new(schema, model.tokenizer(), max_new)?)),
        None => None,
    };
    let constraint: Option<Arc<dyn LogitsConstraint>> = match (opts.constrain_sections, &json_constraint) {
        (true, Some(_)) => {
            return Err(MedgenError::invalid("constrain_sections", "a JSON draft has no section headings: constrain_sections and JSON output (json_output or json_schema) exclude each other"))
        }
        (true, None) => Some(Arc::new(SectionConstraint::new(task, &input, model.tokenizer(), max_new)?)),
        (false, Some(c)) => Some(c.clone()),
        (false, None) => None,
    };
    let ids = match task_prompt(model, task, &input, opts.json_schema.as_deref()) {
        TaskPrompt::Chat(messages) => model.chat_ids(&messages)?,
        TaskPrompt::Text(text) => model.tokenize(&text)?,
    };
    // Token probabilities are always taken, for the review; the caller gets them if asked.
    let cfg = GenerationConfig { logprobs: true, ..opts.generation.clone() };
    let mut generator = model.generator(ids, &cfg)?;
    if let Some(c) = constraint {
        generator.constrain(c);
    }
    let mut generation = generator.run(on_piece)?;
    let reidentified = opts.reidentify && !mapping.is_empty();
    let text = if reidentified { deid::reidentify(&generation.text, &mapping) } else { generation.text.clone() };
    let mut tokens = review::token_confidences(
        model.tokenizer(),
        &generation.token_ids,
        generation.logprobs.as_deref().unwrap_or_default(),
        generation.alternative_logprobs.as_deref().unwrap_or_default(),
        &generation.text,
    )?;
    if reidentified {
        let map = review::reidentified_offsets(&generation.text, &mapping);
        tokens.iter_mut().for_each(|t| (t.start, t.end) = (map(t.start), map(t.end)));
    }
    if !opts.generation.logprobs {
        (generation.logprobs, generation.alternative_logprobs) = (None, None);
    }

    // The draft is checked against the text it should agree with: the note the model saw,
    // or the original note once the identifiers are back.
    let source = if reidentified { note } else { input.as_str() };
    let findings = check_draft(source, &text);
    let json = json_constraint.and_then(|c| serde_json::from_str::<serde_json::Value>(&text).ok().filter(|v| c.schema().accepts(v)));
    let report = match (&json, &opts.json_schema) {
        // The task's own schema: a section is there when its string is not empty.
        (Some(value), Some(schema)) if *schema == task.json_schema() => {
            let (found, missing): (Vec<_>, Vec<_>) = task
                .required_sections()
                .into_iter()
                .partition(|name| value[task.json_key(name)].as_str().is_some_and(|v| !v.trim().is_empty()));
            SectionReport { found: found.into_iter().map(String::from).collect(), missing: missing.into_iter().map(String::from).collect() }
        }
        _ => task.sections(&text),
    };
    let placeholders: Vec<String> = mapping.keys().cloned().collect();
    let attributions = if opts.network_attribution && attribution::has_units(&generation.text) && attribution::has_units(&input) {
        // The model read the de-identified note and wrote placeholders: its signal is on those
        // texts, and so is the attribution; offsets then move to the re-identified texts.
        let draft = &generation.text;
        let signal = review::network::signal(model, task, &input, draft, opts.json_schema.as_deref())?;
        let findings = if reidentified { check_draft(&input, draft) } else { findings.clone() };
        let deid_tokens = if reidentified { Vec::new() } else { tokens.clone() };
        let mut units = attribution::attribute(&input, draft, &findings, &placeholders, &deid_tokens, Some(&signal));
        if reidentified {
            let (in_draft, in_note) = (review::reidentified_offsets(draft, &mapping), review::reidentified_offsets(&input, &mapping));
            for u in &mut units {
                (u.start, u.end) = (in_draft(u.start), in_draft(u.end));
                u.text = text.chars().skip(u.start).take(u.end - u.start).collect();
                u.confidence = attribution::confidence(&tokens, u.start, u.end);
                u.spans.iter_mut().for_each(|s| (s.start, s.end) = (in_note(s.start), in_note(s.end)));
            }
        }
        units
    } else {
        attribution::attribute(source, &text, &findings, &placeholders, &tokens, None)
    };
    let source = source.to_string();

    let mut phi_counts = BTreeMap::new();
    for e in &entities {
        *phi_counts.entry(e.category.as_str().to_string()).or_insert(0) += 1;
    }
    let model_path = &model.info().path;
    let audit = AuditRecord {
        medgen_version: crate::VERSION,
        model_name: model_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        model_sha256: model.sha256()?,
        adapter_sha256: model.adapter().map(audit::sha256_path).transpose()?,
        task: task.name.to_string(),
        deid: opts.deid.as_ref().map_or("none", |c| c.operator.as_str()).to_string(),
        deid_engine: opts.deid.as_ref().map(|c| c.engine.as_str().to_string()),
        deid_tagger_sha256: match &opts.deid {
            Some(c) if c.engine != deid::Engine::Rules => Some(deid::tagger::sha256(c.tagger.as_deref())?),
            _ => None,
        },
        reidentified,
        generation: opts.generation.clone(),
        seed: generation.seed,
        started_at,
        finished_at: audit::utc_now(),
        input_sha256: audit::sha256_hex(&input),
        output_sha256: audit::sha256_hex(&text),
        phi_counts,
        findings: findings.iter().map(Into::into).collect(),
        review_required: true,
    };
    Ok(TaskResult {
        text,
        sections: report.found,
        missing_sections: report.missing,
        findings,
        attributions,
        tokens,
        json,
        notice: DRAFT_NOTICE,
        audit,
        source,
        mapping,
        generation,
    })
}

/// What a model is given for a task: a conversation for a model with a chat template, else
/// the task's text prompt (T5's style).
pub(crate) enum TaskPrompt {
    Chat(Vec<crate::ChatMessage>),
    Text(String),
}

/// The prompt of `task` on the (de-identified) note `input`, asking for JSON of `json_schema`
/// when given.
pub(crate) fn task_prompt(model: &Model, task: &Task, input: &str, json_schema: Option<&str>) -> TaskPrompt {
    if model.info().has_chat_template {
        let mut messages = task.chat_messages(input);
        if let (Some(schema), Some(user)) = (json_schema, messages.last_mut()) {
            user.content.push_str(&format!("\n\nAnswer with JSON only, following this JSON schema: {schema}"));
        }
        TaskPrompt::Chat(messages)
    } else {
        TaskPrompt::Text(task.t5_prompt(input))
    }
}

impl TaskResult {
    /// The review page of this result ([`review::html`]); `draft_id` is the draft's id in its
    /// review log, when it was logged.
    pub fn to_html(&self, draft_id: Option<&str>) -> String {
        review::html::render(&review::html::Page {
            task: &self.audit.task,
            source: &self.source,
            draft: &self.text,
            attributions: &self.attributions,
            findings: &self.findings,
            tokens: &self.tokens,
            missing_sections: &self.missing_sections,
            audit: Some(&self.audit),
            draft_id,
            notice: self.notice,
        })
    }
}

/// Every safety check of a draft against its source: [`checks::check`] (numbers with units,
/// medications, negation flips), PHI in the draft that the source lacks, placeholders the
/// source lacks and repeated sentences; sorted by start.
pub fn check_draft(source: &str, output: &str) -> Vec<Finding> {
    let mut findings = checks::check(source, output);
    findings.extend(unexpected_phi(source, output));
    findings.extend(attribution::unknown_placeholders(source, output));
    findings.extend(attribution::repetitions(output));
    findings.sort_by_key(|f| (f.start, f.end));
    findings
}

/// PHI in `output` that `source` does not contain: the model made it up, or it slipped
/// through de-identification in a form the source does not have.
fn unexpected_phi(source: &str, output: &str) -> Vec<Finding> {
    deid::detect(output)
        .into_iter()
        .filter(|e| !source.contains(&e.text))
        .map(|e| Finding {
            kind: FindingKind::Phi,
            start: e.start,
            end: e.end,
            detail: format!("possible {} that is not in the de-identified input", e.category.as_str()),
            text: e.text,
        })
        .collect()
}
