//! Finding the section headings of an output.
//!
//! A line is read as a heading when, after its decoration is taken off (markdown `#`, list
//! bullets, numbering such as "2.", "II.", "(3)", "一、", bold `**…**`, brackets `【…】`), the
//! text before a colon, or the whole line when it has none, names a section. Names compare
//! without case, spaces or punctuation: "Follow-up", "Follow up" and "FOLLOWUP" are one; a
//! marked heading (colon, `#`, bold) may add words after a name of four letters or more
//! ("Follow-up Appointments:").

use std::sync::OnceLock;

use regex::Regex;

use super::Section;

/// The sections an output has and lacks, by canonical name in the task's order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SectionReport {
    /// Required sections that have a heading in the output.
    pub found: Vec<String>,
    /// Required sections that have none.
    pub missing: Vec<String>,
}

/// Lowercase letters and digits only: the form in which headings compare.
pub(crate) fn key(heading: &str) -> String {
    heading.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// What surrounds a heading: numbering and bullets before it, bold or brackets around it,
/// HTML tags.
fn decoration() -> Option<&'static (Regex, Regex, Regex)> {
    static RE: OnceLock<Option<(Regex, Regex, Regex)>> = OnceLock::new();
    RE.get_or_init(|| {
        let numbering = Regex::new(
            r"(?i)^(?:[#>]+\s*|[-*•+]\s+|\(?[0-9]{1,2}[.)、．]\s*|\(?[ivx]{1,4}[.)]\s+|[一二三四五六七八九十]{1,3}[、.．]\s*|[（(][一二三四五六七八九十0-9]{1,3}[)）]\s*)+",
        )
        .ok()?;
        let wrapped = Regex::new(r"^(?:\*\*(.+?)\*\*|__(.+?)__|【(.+?)】|\[(.+?)\])").ok()?;
        let tags = Regex::new(r"</?[A-Za-z][^>]*>").ok()?;
        Some((numbering, wrapped, tags))
    })
    .as_ref()
}

/// A line read as a heading: its comparison key, and whether it is marked as one (a colon,
/// markdown `#`, bold or brackets) rather than being a whole short line.
pub(crate) struct Heading {
    pub key: String,
    pub marked: bool,
}

/// The heading a line would be; None when it is too long to be one.
pub(crate) fn heading(line: &str) -> Option<Heading> {
    let (numbering, wrapped, tags) = decoration()?;
    let line = tags.replace_all(line, "");
    let mut marked = line.trim_start().starts_with('#');
    let line = numbering.replace(line.trim(), "");
    let line = line.trim();
    let text = match wrapped.captures(line) {
        Some(caps) => {
            marked = true;
            caps.iter().skip(1).flatten().next().map_or("", |m| m.as_str())
        }
        None => match [":", "：", " - ", " – ", " — "].iter().filter_map(|sep| line.find(sep)).min() {
            Some(end) => {
                marked = true;
                &line[..end]
            }
            None => line,
        },
    };
    let text = text.trim_matches(|c: char| c.is_whitespace() || matches!(c, '*' | '_' | ':' | '：'));
    let short = text.split_whitespace().count() <= 6 && text.chars().count() <= 40;
    (short && !text.is_empty()).then(|| Heading { key: key(text), marked })
}

/// Whether heading `h` names `section`: one of its names, or (when marked as a heading) a
/// name of four letters or more followed by other words.
pub(crate) fn names(section: &Section, h: &Heading) -> bool {
    let mut all = [section.name, section.chinese].into_iter().chain(section.aliases.iter().copied());
    all.any(|name| {
        let k = key(name);
        h.key == k || (h.marked && k.chars().count() >= 4 && h.key.starts_with(k.as_str()))
    })
}

/// The report of which of `sections` `output` has.
pub(crate) fn report(sections: &[Section], output: &str) -> SectionReport {
    let headings: Vec<Heading> = output.lines().filter_map(heading).collect();
    let (mut found, mut missing) = (Vec::new(), Vec::new());
    for section in sections {
        if headings.iter().any(|h| names(section, h)) {
            found.push(section.name.to_string());
        } else {
            missing.push(section.name.to_string());
        }
    }
    SectionReport { found, missing }
}

#[cfg(test)]
mod tests {
    use crate::tasks::get;

    fn found(task: &str, output: &str) -> Vec<String> {
        get(task).unwrap().sections(output).found
    }

    #[test]
    fn plain_and_upper_case_headings_with_colons_count() {
        let out = "Subjective: cough\nOBJECTIVE: clear lungs\nAssessment: bronchitis\nPlan: fluids";
        assert_eq!(found("soap_note", out), ["Subjective", "Objective", "Assessment", "Plan"]);
    }

    #[test]
    fn markdown_headings_and_bold_count() {
        let out = "## Subjective\ncough\n### Objective:\nclear\n**Assessment**\nbronchitis\n**Plan:** fluids";
        assert_eq!(found("soap_note", out), ["Subjective", "Objective", "Assessment", "Plan"]);
    }

    #[test]
    fn soap_letters_count_for_soap_only() {
        let report = get("soap_note").unwrap().sections("S: cough\nO: clear\nA: bronchitis\nP: fluids");
        assert!(report.missing.is_empty(), "{report:?}");
        assert_eq!(found("discharge_summary", "A: pneumonia"), Vec::<String>::new());
    }

    #[test]
    fn assessment_and_plan_counts_for_both() {
        let report = get("soap_note").unwrap().sections("S: cough\nO: clear\nA/P: bronchitis, fluids");
        assert!(report.missing.is_empty(), "{report:?}");
    }

    #[test]
    fn numbered_headings_and_synonyms_count() {
        let out = "1. Discharge Diagnoses: pneumonia\n2) BRIEF HOSPITAL COURSE\ntext\nIII. Discharge Medications\n- amoxicillin\n4. Follow up: clinic";
        let report = get("discharge_summary").unwrap().sections(out);
        assert_eq!(report.found, ["Diagnoses", "Hospital Course", "Medications", "Follow-up"]);
        assert!(report.missing.is_empty());
    }

    #[test]
    fn follow_up_spellings_are_one_heading() {
        for heading in ["Follow-up:", "Follow up:", "Followup:", "FOLLOW-UP", "**Follow-Up**"] {
            assert_eq!(found("discharge_summary", heading), ["Follow-up"], "{heading}");
        }
    }

    #[test]
    fn a_heading_may_add_words_after_a_long_name_but_not_after_a_letter() {
        assert_eq!(found("discharge_summary", "Follow-Up Appointments:\nclinic"), ["Follow-up"]);
        assert_eq!(found("soap_note", "<b>Assessment</b>\nbronchitis"), ["Assessment"]);
        assert_eq!(found("soap_note", "Abdomen: soft\nPain: none"), Vec::<String>::new());
    }

    #[test]
    fn chinese_headings_count() {
        let out =
            "一、出院诊断：肺炎\n【诊疗经过】\n入院后予抗感染治疗。\n出院带药：阿莫西林\n（四）出院医嘱：2周后复诊";
        let report = get("discharge_summary").unwrap().sections(out);
        assert!(report.missing.is_empty(), "{report:?}");
    }

    #[test]
    fn missing_sections_are_reported_and_prose_is_not_a_heading() {
        let out = "Impression text without a heading.\nThe findings are stable and the impression is unchanged.";
        let report = get("radiology_impression").unwrap().sections(out);
        assert_eq!(report.missing, ["Impression"]);
        let report = get("radiology_impression").unwrap().sections("IMPRESSION:\n1. No acute disease.");
        assert_eq!(report.found, ["Impression"]);
    }
}
