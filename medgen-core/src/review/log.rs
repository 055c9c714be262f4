//! The review log: an append-only file of JSON lines, one entry per draft produced and one
//! per reviewer's decision, each carrying the SHA-256 of the entry before it, so that a line
//! changed, removed, inserted or reordered after it was written is found by [`verify`].
//!
//! An entry holds no protected health information: a run's entry is its
//! [`AuditRecord`](crate::audit::AuditRecord) (hashes, counts, options); a decision's names the
//! reviewer by the identifier the caller gives and the final text by its SHA-256.
//!
//! Each line is a JSON object with `seq` (0, 1, …), `prev_sha256` (the previous entry's
//! `sha256`, 64 zeros for the first), `kind` (`"draft"` or `"review"`), the entry's fields,
//! and `sha256`: the SHA-256 of the line's object without `sha256`, written with sorted keys
//! and no spaces (serde_json's compact form). A chain proves order and integrity against
//! edits that do not rewrite every later line; keep a copy of the last hash elsewhere (or
//! sign it) to detect a rewrite of the whole tail.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::{json, Map, Value};

use crate::audit::{self, AuditRecord};
use crate::error::{MedgenError, Result};

/// A reviewer's decision on a draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The draft is right as it is.
    Accepted,
    /// The reviewer corrected it; the final text is the edited one.
    Edited,
    /// The draft is not to be used.
    Rejected,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Accepted => "accepted",
            Decision::Edited => "edited",
            Decision::Rejected => "rejected",
        }
    }
}

impl FromStr for Decision {
    type Err = MedgenError;
    /// "accept(ed)", "edit(ed)" or "reject(ed)".
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "accept" | "accepted" => Ok(Decision::Accepted),
            "edit" | "edited" => Ok(Decision::Edited),
            "reject" | "rejected" => Ok(Decision::Rejected),
            _ => Err(MedgenError::invalid("decision", format!("`{s}` is not accept, edit or reject"))),
        }
    }
}

/// What [`verify`] found in a sound log.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LogSummary {
    pub entries: usize,
    /// Draft ids in the order they were logged.
    pub drafts: Vec<String>,
    /// Decisions, in order: (draft id, decision).
    pub reviews: Vec<(String, String)>,
    /// The last entry's hash (64 zeros for an empty log): keep it to detect a rewritten tail.
    pub head_sha256: String,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of an entry: SHA-256 of its compact JSON without `sha256` (keys sorted).
fn entry_hash(entry: &Map<String, Value>) -> String {
    let mut body = entry.clone();
    body.remove("sha256");
    // serde_json's map keeps keys sorted, so the form is canonical.
    audit::sha256_hex(&Value::Object(body).to_string())
}

fn tampered(path: &Path, line: usize, reason: impl Into<String>) -> MedgenError {
    MedgenError::AuditTampered { path: path.to_path_buf(), line, reason: reason.into() }
}

/// Checks every entry of the log at `path`: its JSON, its sequence number, its own hash and
/// the previous entry's.
///
/// Errors: `AuditTampered` naming the first line that fails; `Io` when the file cannot be
/// read, or is missing: a mistyped path must not pass as a clean, empty log (appending a
/// draft makes the file).
pub fn verify(path: &Path) -> Result<LogSummary> {
    // Shared with other readers, after any writer's entry is whole (see `append`).
    let file = std::fs::File::open(path).map_err(|e| MedgenError::io(path, e))?;
    file.lock_shared().map_err(|e| MedgenError::io(path, e))?;
    verify_unlocked(path)
}

/// [`verify`] without the lock, for a caller that holds one.
fn verify_unlocked(path: &Path) -> Result<LogSummary> {
    let mut lines = match crate::files::Lines::open(path) {
        Ok(l) => Some(l),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(MedgenError::io(path, e)),
    };
    let mut summary = LogSummary { entries: 0, drafts: Vec::new(), reviews: Vec::new(), head_sha256: GENESIS.into() };
    for (i, line) in lines.iter_mut().flatten().enumerate() {
        let line = line?;
        let n = i + 1;
        let entry: Map<String, Value> = match serde_json::from_str(&line) {
            Ok(Value::Object(m)) => m,
            _ => return Err(tampered(path, n, "not a JSON object")),
        };
        if entry.get("seq").and_then(Value::as_u64) != Some(i as u64) {
            return Err(tampered(path, n, format!("its sequence number is not {i}: a line was removed, inserted or moved")));
        }
        if entry.get("prev_sha256").and_then(Value::as_str) != Some(summary.head_sha256.as_str()) {
            return Err(tampered(path, n, "it does not carry the previous entry's hash"));
        }
        let hash = entry_hash(&entry);
        if entry.get("sha256").and_then(Value::as_str) != Some(hash.as_str()) {
            return Err(tampered(path, n, "its content does not match its hash: it was edited"));
        }
        let draft = entry.get("draft_id").and_then(Value::as_str).unwrap_or_default().to_string();
        match entry.get("kind").and_then(Value::as_str) {
            Some("draft") => summary.drafts.push(draft),
            Some("review") => {
                let decision = entry.get("decision").and_then(Value::as_str).unwrap_or_default();
                summary.reviews.push((draft, decision.to_string()));
            }
            _ => return Err(tampered(path, n, "its kind is neither draft nor review")),
        }
        summary.head_sha256 = hash;
        summary.entries += 1;
    }
    if lines.is_some_and(|l| !l.ended_cleanly()) {
        return Err(tampered(path, summary.entries, "the file does not end with a line break: a write was cut or the file was edited"));
    }
    Ok(summary)
}

/// Appends `fields` (with `kind`) to the log, after verifying it and passing its summary to
/// `check`; returns the new entry. `create` makes the file where it is not there (a draft
/// starts a log; a decision needs one, so that a mistyped path is an error, not a new log).
/// The file is locked (an exclusive `flock`) from the check
/// to the synced write, so that writers in other threads or processes take their turns and
/// readers ([`verify`]) never see half an entry.
fn append(path: &Path, create: bool, kind: &str, fields: Map<String, Value>, check: impl FnOnce(&LogSummary) -> Result<()>) -> Result<Map<String, Value>> {
    let mut file = OpenOptions::new().create(create).append(true).open(path).map_err(|e| MedgenError::io(path, e))?;
    file.lock().map_err(|e| MedgenError::io(path, e))?;
    let summary = verify_unlocked(path)?;
    check(&summary)?;
    let mut entry = fields;
    entry.insert("kind".into(), json!(kind));
    entry.insert("seq".into(), json!(summary.entries));
    entry.insert("prev_sha256".into(), json!(summary.head_sha256));
    let hash = entry_hash(&entry);
    entry.insert("sha256".into(), json!(hash));
    let line = format!("{}\n", Value::Object(entry.clone()));
    file.write_all(line.as_bytes()).and_then(|_| file.sync_data()).map_err(|e| MedgenError::io(path, e))?;
    Ok(entry)
}

/// The id of a draft: the first 16 hex digits of the SHA-256 of its audit record.
pub fn draft_id(record: &AuditRecord) -> Result<String> {
    let json = serde_json::to_string(record).map_err(|e| MedgenError::internal("audit", e.to_string()))?;
    Ok(audit::sha256_hex(&json)[..16].to_string())
}

/// Whether a draft can be logged at `path`: the file opens for appending (made, empty, where it
/// is not there) and the log verifies. Checked before a task runs, so that a path that cannot
/// be written or a tampered log is found before the generation it would throw away.
pub fn check_appendable(path: &Path) -> Result<()> {
    OpenOptions::new().create(true).append(true).open(path).map_err(|e| MedgenError::io(path, e))?;
    verify(path).map(|_| ())
}

/// Logs a draft: its audit record under its [`draft_id`], which it returns.
pub fn append_draft(path: &Path, record: &AuditRecord) -> Result<String> {
    let id = draft_id(record)?;
    let mut fields = Map::new();
    fields.insert("draft_id".into(), json!(id));
    fields.insert("record".into(), serde_json::to_value(record).map_err(|e| MedgenError::internal("audit", e.to_string()))?);
    append(path, true, "draft", fields, |_| Ok(()))?;
    Ok(id)
}

/// A reviewer's decision, as logged.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Review {
    pub draft_id: String,
    pub decision: Decision,
    pub reviewer: String,
    /// UTC, RFC 3339.
    pub time: String,
    /// SHA-256 of the final text (the draft as accepted, or as edited); None when rejected.
    pub final_sha256: Option<String>,
}

/// Logs a decision on the draft `draft_id` of the log at `path`. A draft may be decided on
/// again (a reviewer corrects a decision): the last decision counts, and all stay in the log.
///
/// `final_text` is the text as accepted or edited (required for those, refused for a
/// rejection); only its SHA-256 is logged. The reviewer's identifier must not be empty and may
/// not hold control characters; it should be a staff identifier, not a name.
///
/// Errors: `Io` when there is no log at `path` (it is not made: a mistyped path would
/// otherwise leave a new, empty log that verifies); `AuditTampered` when the log fails
/// [`verify`]; `InvalidArgument` for a draft the log does not hold, a bad reviewer or a text
/// that does not go with the decision.
pub fn append_review(path: &Path, draft_id: &str, decision: Decision, reviewer: &str, final_text: Option<&str>) -> Result<Review> {
    let reviewer = reviewer.trim();
    if reviewer.is_empty() || reviewer.chars().any(char::is_control) || reviewer.chars().count() > 200 {
        return Err(MedgenError::invalid("reviewer", "give the reviewer's identifier: 1 to 200 characters, no control characters"));
    }
    let final_sha256 = match (decision, final_text) {
        (Decision::Rejected, None) => None,
        (Decision::Rejected, Some(_)) => {
            return Err(MedgenError::invalid("final_text", "a rejected draft has no final text"));
        }
        (_, None) => {
            return Err(MedgenError::invalid("final_text", format!("a decision `{}` needs the final text", decision.as_str())));
        }
        (_, Some(text)) => Some(audit::sha256_hex(text)),
    };
    let review = Review { draft_id: draft_id.to_string(), decision, reviewer: reviewer.to_string(), time: audit::utc_now(), final_sha256 };
    let Value::Object(fields) = serde_json::to_value(&review).map_err(|e| MedgenError::internal("audit", e.to_string()))? else {
        return Err(MedgenError::internal("audit", "a review did not serialize as an object"));
    };
    append(path, false, "review", fields, |summary| {
        if summary.drafts.iter().any(|d| d == draft_id) {
            return Ok(());
        }
        Err(MedgenError::invalid("draft_id", format!("the log {} holds no draft {draft_id:?}", path.display())))
    })?;
    Ok(review)
}

/// The log that sits next to a draft file: `DRAFT.audit.jsonl`.
pub fn log_path_for(draft: &Path) -> PathBuf {
    let mut name = draft.as_os_str().to_owned();
    name.push(".audit.jsonl");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log path of its own for one test, with no file yet.
    fn fresh(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("medgen-review-log-{name}-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    fn record() -> AuditRecord {
        AuditRecord {
            medgen_version: "x",
            model_name: "m".into(),
            model_sha256: "0".repeat(64),
            adapter_sha256: None,
            task: "soap_note".into(),
            deid: "placeholder".into(),
            deid_engine: Some("rules".into()),
            deid_tagger_sha256: None,
            reidentified: false,
            generation: Default::default(),
            seed: 1,
            started_at: "2026-01-01T00:00:00.000Z".into(),
            finished_at: "2026-01-01T00:00:01.000Z".into(),
            input_sha256: "1".repeat(64),
            output_sha256: "2".repeat(64),
            phi_counts: Default::default(),
            findings: vec![],
            review_required: true,
        }
    }

    #[test]
    fn writers_and_readers_in_several_threads_at_once_keep_the_chain() {
        let path = fresh("threads");
        let id = append_draft(&path, &record()).unwrap();
        std::thread::scope(|s| {
            // A reader meanwhile never sees half an entry.
            s.spawn(|| (0..200).for_each(|_| assert!(verify(&path).is_ok())));
            for t in 0..4 {
                let (path, id) = (&path, &id);
                s.spawn(move || {
                    for i in 0..25 {
                        append_review(path, id, Decision::Edited, &format!("dr-{t}-{i}"), Some("final")).unwrap();
                    }
                });
            }
        });
        assert_eq!(verify(&path).unwrap().entries, 101);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_chain_verifies_and_any_edit_breaks_it() {
        let path = fresh("chain");
        let id = append_draft(&path, &record()).unwrap();
        append_review(&path, &id, Decision::Edited, "dr-42", Some("final")).unwrap();
        let summary = verify(&path).unwrap();
        assert_eq!(summary.entries, 2);
        assert_eq!(summary.reviews, [(id.clone(), "edited".to_string())]);

        let good = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = good.lines().collect();
        for (bad, line) in [
            (good.replace("dr-42", "dr-43"), 2),
            (format!("{}\n", lines[1]), 1),
            (format!("{}\n{}\n", lines[1], lines[0]), 1),
            (format!("{}\n", lines[0]) + &lines[1].replace("\"seq\":1", "\"seq\":2") + "\n", 2),
            (good.trim_end().to_string(), 2),
        ] {
            std::fs::write(&path, bad).unwrap();
            match verify(&path) {
                Err(MedgenError::AuditTampered { line: l, .. }) => assert_eq!(l, line),
                other => panic!("{other:?}"),
            }
            assert!(matches!(append_review(&path, &id, Decision::Accepted, "x", Some("t")), Err(MedgenError::AuditTampered { .. })));
        }
    }

    #[test]
    fn bad_decisions_are_refused() {
        let path = fresh("decisions");
        let id = append_draft(&path, &record()).unwrap();
        let err = |d, r: &str, t| append_review(&path, d, Decision::from_str(r).unwrap_or(Decision::Accepted), "dr", t);
        assert!(matches!(err("nope", "accept", Some("t")), Err(MedgenError::InvalidArgument { name: "draft_id", .. })));
        assert!(matches!(err(&id, "reject", Some("t")), Err(MedgenError::InvalidArgument { name: "final_text", .. })));
        assert!(matches!(err(&id, "edit", None), Err(MedgenError::InvalidArgument { name: "final_text", .. })));
        assert!(matches!(append_review(&path, &id, Decision::Rejected, " ", None), Err(MedgenError::InvalidArgument { name: "reviewer", .. })));
        assert!(matches!("maybe".parse::<Decision>(), Err(MedgenError::InvalidArgument { name: "decision", .. })));
        assert_eq!(verify(&path).unwrap().entries, 1);
    }

    #[test]
    fn a_decision_on_a_log_that_is_not_there_makes_no_log() {
        let path = fresh("mistyped");
        let err = append_review(&path, "0123456789abcdef", Decision::Rejected, "dr", None).unwrap_err();
        assert!(matches!(err, MedgenError::Io { .. }), "{err}");
        assert!(!path.exists());
        assert!(matches!(verify(&path), Err(MedgenError::Io { .. })));
    }
}
