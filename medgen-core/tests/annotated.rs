//! The clinical layer against hand-annotated data, with no Python reference needed: the
//! checks on tests/data/checks/cases.json and de-identification on tests/data/deid/ (the same
//! data and scores as tests/test_checks.py and tests/test_deid.py, which run the command).

use std::path::{Path, PathBuf};

use medgen::deid;
use medgen::pipeline::check_draft;
use regex::Regex;
use serde_json::Value;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data").join(rel)
}

/// Same kind, and the flagged spans agree (one text holds the other).
fn matches(expected: &Value, kind: &str, text: &str) -> bool {
    let want = expected["text"].as_str().unwrap_or_default();
    expected["kind"] == kind && (want.contains(text) || text.contains(want))
}

#[test]
fn checks_find_every_annotated_finding_and_nothing_else() {
    let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(data("checks/cases.json")).unwrap()).unwrap();
    assert!(cases.len() >= 30);
    for case in &cases {
        let found: Vec<(String, String)> = check_draft(case["source"].as_str().unwrap(), case["output"].as_str().unwrap())
            .into_iter()
            .map(|f| (serde_json::to_value(f.kind).unwrap().as_str().unwrap_or_default().to_string(), f.text))
            .collect();
        let expected = case["expected"].as_array().unwrap();
        let missed: Vec<&Value> = expected.iter().filter(|e| !found.iter().any(|(k, t)| matches(e, k, t))).collect();
        let extra: Vec<&(String, String)> = found.iter().filter(|(k, t)| !expected.iter().any(|e| matches(e, k, t))).collect();
        assert!(missed.is_empty() && extra.is_empty(), "{}: missed {missed:?}, false positives {extra:?}", case["id"]);
    }
}

/// A note's plain text and its annotated spans, as character offsets.
fn load_note(raw: &str) -> (String, Vec<(usize, usize)>) {
    let mark = Regex::new(r"(?s)\[\[([A-Z_]+):(.*?)\]\]").unwrap();
    let (mut text, mut spans, mut at) = (String::new(), Vec::new(), 0);
    for m in mark.captures_iter(raw) {
        let whole = m.get(0).unwrap();
        text.push_str(&raw[at..whole.start()]);
        let start = text.chars().count();
        let inner = m.get(2).unwrap().as_str();
        spans.push((start, start + inner.chars().count()));
        text.push_str(inner);
        at = whole.end();
    }
    text.push_str(&raw[at..]);
    (text, spans)
}

#[test]
fn deid_token_recall_and_precision_meet_the_thresholds_in_both_languages() {
    const CJK: &str = r"\x{3400}-\x{4dbf}\x{4e00}-\x{9fff}\x{f900}-\x{faff}〇";
    let token = Regex::new(&format!(r"[{CJK}]|[^\W_{CJK}]+")).unwrap();
    let mut counts = std::collections::BTreeMap::<&str, [usize; 3]>::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(data("deid")).unwrap().map(|e| e.unwrap().path()).collect();
    paths.retain(|p| p.extension().is_some_and(|e| e == "txt"));
    assert!(paths.len() >= 40);
    for path in &paths {
        let (text, gold) = load_note(&std::fs::read_to_string(path).unwrap());
        let predicted: Vec<(usize, usize)> = deid::detect(&text).iter().map(|e| (e.start, e.end)).collect();
        let covered = |spans: &[(usize, usize)], s: usize, e: usize| spans.iter().any(|&(a, b)| a < e && s < b);
        let lang = if path.file_name().unwrap().to_string_lossy().contains("zh_") { "zh" } else { "en" };
        let c = counts.entry(lang).or_default();
        for m in token.find_iter(&text) {
            let s = text[..m.start()].chars().count();
            let e = s + m.as_str().chars().count();
            let (g, p) = (covered(&gold, s, e), covered(&predicted, s, e));
            c[0] += usize::from(g && p);
            c[1] += usize::from(p && !g);
            c[2] += usize::from(g && !p);
        }
    }
    for (lang, [tp, fp, fn_]) in counts {
        let (recall, precision) = (tp as f64 / (tp + fn_).max(1) as f64, tp as f64 / (tp + fp).max(1) as f64);
        assert!(recall >= 0.98 && precision >= 0.90, "{lang}: recall {recall:.4}, precision {precision:.4}");
    }
}
