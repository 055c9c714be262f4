//! Clinical task templates: the prompts that ask a model for a discharge summary, a radiology
//! impression, a SOAP note and so on, and a checker of the sections an output has.
//!
//! Each [`Task`] has a prompt for chat and instruct models (a system message and a user
//! message holding the note, in the note's language), a prompt for T5-style models (a prefixed
//! string), and the sections its output must have, each with the headings that count as it.
//!
//! ```
//! use medgen::tasks;
//! let task = tasks::get("soap_note")?;
//! let messages = task.chat_messages("Doctor: What brings you in?\nPatient: A cough for a week.");
//! assert_eq!(messages[0].role, "system");
//! let report = task.sections("S: cough for a week\nO: afebrile\n**Assessment**\nbronchitis");
//! assert_eq!(report.missing, ["Plan"]);
//! # Ok::<(), medgen::MedgenError>(())
//! ```

mod adapter;
mod catalog;
mod constraint;
mod sections;

pub use adapter::default_adapter_path;
pub use constraint::SectionConstraint;
pub use sections::SectionReport;

use crate::chat::ChatMessage;
use crate::error::{MedgenError, Result};

/// A clinical generation task.
#[derive(Debug)]
pub struct Task {
    /// Identifier, e.g. "discharge_summary".
    pub name: &'static str,
    /// One line on what the task produces.
    pub description: &'static str,
    /// The user message's wording for notes in English.
    pub english: Prompt,
    /// The user message's wording for notes in Chinese.
    pub chinese: Prompt,
    /// What a T5-style prompt starts with, e.g. "summarize: ".
    pub t5_prefix: &'static str,
    /// The sections the output must have, in order.
    pub sections: &'static [Section],
}

/// The wording of a task's user message in one language.
#[derive(Debug)]
pub struct Prompt {
    /// What to write, e.g. "Write the discharge summary of this hospital stay."
    pub instruction: &'static str,
    /// The label of the input, e.g. "Note" or "Dialogue".
    pub input: &'static str,
}

/// An output section, with the headings that count as it.
#[derive(Debug)]
pub struct Section {
    /// Canonical English heading, e.g. "Medications".
    pub name: &'static str,
    /// Heading used in Chinese outputs, e.g. "出院带药".
    pub chinese: &'static str,
    /// Other headings that count, English and Chinese ("Discharge Medications", "Meds", "出院用药").
    pub aliases: &'static [&'static str],
}

/// The system message of every task.
const SYSTEM: &str = "You are a careful clinical documentation assistant. Use only information stated in the \
input: do not add diagnoses, numbers, doses or medications that it does not contain, and keep negations as \
written (a symptom the input denies stays denied). Write in the same language as the input.";

/// All tasks.
pub fn all() -> &'static [Task] {
    catalog::TASKS
}

/// The task called `name` ("discharge_summary"; case and "-" for "_" do not matter).
///
/// An unknown name is an [`MedgenError::InvalidArgument`] that lists the known ones.
pub fn get(name: &str) -> Result<&'static Task> {
    let wanted = name.trim().to_lowercase().replace('-', "_");
    all().iter().find(|t| t.name == wanted).ok_or_else(|| {
        let known: Vec<&str> = all().iter().map(|t| t.name).collect();
        MedgenError::invalid("task", format!("unknown task {name:?}; known tasks: {}", known.join(", ")))
    })
}

/// A section name in snake case: "Hospital Course" is `hospital_course`.
fn json_key(name: &str) -> String {
    let words: Vec<String> = name.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    words.join("_")
}

/// Whether `text` is mostly Chinese: a Chinese character counts as much as four Latin letters.
fn is_chinese(text: &str) -> bool {
    let cjk = text.chars().filter(|c| matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}')).count();
    let latin = text.chars().filter(char::is_ascii_alphabetic).count();
    cjk > 0 && cjk * 4 >= latin
}

impl Task {
    /// A system message and a user message asking for this task's output from `note`, in the
    /// note's language, with the required section headings in that language.
    pub fn chat_messages(&self, note: &str) -> Vec<ChatMessage> {
        let note = note.trim();
        let user = if is_chinese(note) {
            let headings: Vec<&str> = self.sections.iter().map(|s| s.chinese).collect();
            format!(
                "{}\n请用中文书写，并按顺序使用以下标题：{}。\n\n{}：\n{note}",
                self.chinese.instruction,
                headings.join("、"),
                self.chinese.input
            )
        } else {
            format!(
                "{}\nUse these section headings, in this order: {}.\n\n{}:\n{note}",
                self.english.instruction,
                self.required_sections().join(", "),
                self.english.input
            )
        };
        vec![ChatMessage::new("system", SYSTEM), ChatMessage::new("user", user)]
    }

    /// The prompt for a T5-style model: the task's prefix and the note.
    pub fn t5_prompt(&self, note: &str) -> String {
        format!("{}{}", self.t5_prefix, note.trim())
    }

    /// The canonical names of the sections an output must have, in order.
    pub fn required_sections(&self) -> Vec<&'static str> {
        self.sections.iter().map(|s| s.name).collect()
    }

    /// The JSON schema of this task's output as JSON (`--json-output`): an object with one
    /// string per required section, in order, keyed by the section's name in snake case
    /// ("Follow-up" is `follow_up`).
    pub fn json_schema(&self) -> String {
        let keys: Vec<String> = self.sections.iter().map(|s| json_key(s.name)).collect();
        let props: Vec<String> = keys.iter().map(|k| format!("\"{k}\": {{\"type\": \"string\"}}")).collect();
        let required: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
        format!(
            "{{\"type\": \"object\", \"properties\": {{{}}}, \"required\": [{}], \"additionalProperties\": false}}",
            props.join(", "),
            required.join(", ")
        )
    }

    /// The key of section `name` in this task's JSON output.
    pub fn json_key(&self, name: &str) -> String {
        json_key(name)
    }

    /// Which required sections `output` has, by its headings ("Assessment:", "## Assessment",
    /// "**Assessment**", "A:", "2. ASSESSMENT", synonyms and Chinese headings).
    pub fn sections(&self, output: &str) -> SectionReport {
        sections::report(self.sections, output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_of_an_unknown_task_lists_the_known_ones() {
        let err = get("nope").unwrap_err().to_string();
        assert!(err.contains("`task`") && err.contains("\"nope\""), "{err}");
        assert!(err.contains("discharge_summary") && err.contains("question_summary"), "{err}");
    }

    #[test]
    fn get_accepts_case_and_hyphens() {
        assert_eq!(get("Discharge-Summary").unwrap().name, "discharge_summary");
    }

    #[test]
    fn every_task_has_prompts_and_sections() {
        let names: Vec<&str> = all().iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "discharge_summary",
                "radiology_impression",
                "soap_note",
                "diagnostic_report",
                "operative_note",
                "patient_explanation",
                "question_summary"
            ]
        );
        for task in all() {
            assert!(!task.required_sections().is_empty(), "{}", task.name);
            let messages = task.chat_messages("Chest pain for two days.");
            assert_eq!(messages.len(), 2);
            assert!(messages[1].content.ends_with("Chest pain for two days."));
            assert!(task.t5_prompt(" Chest pain. ").ends_with(": Chest pain."), "{}", task.name);
        }
    }

    #[test]
    fn a_chinese_note_gets_a_chinese_prompt_with_chinese_headings() {
        let task = get("discharge_summary").unwrap();
        let messages = task.chat_messages("患者男性，65岁，因胸痛入院。BP 130/80 mmHg。");
        assert!(messages[1].content.contains("出院诊断、诊疗经过、出院带药、出院医嘱"), "{}", messages[1].content);
        assert!(messages[1].content.contains("中文"));
        let english = task.chat_messages("65-year-old man admitted with chest pain.");
        assert!(english[1].content.contains("Diagnoses, Hospital Course, Medications, Follow-up"));
    }

    #[test]
    fn every_task_schema_is_one_string_per_section_in_order() {
        let schema = get("discharge_summary").unwrap().json_schema();
        assert_eq!(
            crate::generation::json::JsonSchema::parse(&schema).unwrap(),
            crate::generation::json::JsonSchema::Object(
                ["diagnoses", "hospital_course", "medications", "follow_up"]
                    .iter()
                    .map(|k| (k.to_string(), crate::generation::json::JsonSchema::String { max_len: None }))
                    .collect()
            )
        );
        for task in all() {
            assert!(crate::generation::json::JsonSchema::parse(&task.json_schema()).is_ok(), "{}", task.name);
        }
    }

    #[test]
    fn the_system_message_asks_for_the_language_of_the_note() {
        let messages = get("soap_note").unwrap().chat_messages("x");
        assert!(messages[0].content.contains("same language as the input"));
    }
}
