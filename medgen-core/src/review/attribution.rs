//! Source attribution: each sentence of a draft linked to the clauses of the source note that
//! support it, with a score; a sentence without support is flagged.
//!
//! Works on text alone, for every model family, with no second model:
//! - The draft is cut into units: sentences and list items, headings left out ("Plan:" alone
//!   is no claim; "Impression: No acute disease." keeps "No acute disease.").
//! - The source is cut into clauses: at sentence ends, line breaks, semicolons and commas, so
//!   that "BP 148/92, HR 102" gives two spans.
//! - Both are read as concept terms: words (lower case, a light stem, common clinical
//!   abbreviations expanded: "HTN" is "hypertension", "BID" is "twice daily"), Chinese
//!   character pairs, numbers by value, medications by generic name (a brand in the draft
//!   matches the generic in the source), and placeholders.
//! - Terms weigh by their rarity among the source's clauses. A unit's spans are chosen
//!   greedily: the clause that covers the most of the unit's weight not yet covered, while one
//!   adds enough. The unit's score is the share of its weight covered.
//! - A unit is unsupported when its score is below [`SUPPORT_THRESHOLD`], or when it holds a
//!   placeholder the source lacks, a check finding (number, medication, negation flip, PHI),
//!   or repeats an earlier unit (a repetition loop).

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use regex::Regex;
use rust_stemmers::{Algorithm, Stemmer};

use super::network::NetworkSignal;
use crate::checks::{medications, Finding, FindingKind};

/// The share of a unit's term weight its spans must cover for it to count as supported.
pub const SUPPORT_THRESHOLD: f32 = 0.4;

/// Most spans one unit is linked to.
const MAX_SPANS: usize = 4;

/// A clause is added to a unit's spans only when it covers at least this share of the unit's
/// weight not covered yet.
const MIN_GAIN: f32 = 0.12;

/// How much a clause's share of the network's attention counts, against the share of the
/// unit's term weight it covers, when spans are chosen.
pub const NETWORK_WEIGHT: f32 = 0.3;

/// With the network's signal, a unit whose terms the source does not cover still counts as
/// supported when the note raised the model's log-probability of its tokens by at least
/// this much (nats per token): a paraphrase. Chosen on the annotated pairs (README).
pub const RESCUE_GAIN: f32 = 0.4;

/// With the network's signal, a unit whose terms are covered is flagged when the note raised
/// its tokens' log-probability by less than this.
pub const NO_GAIN: f32 = 0.0;

/// A span of the source that supports a unit of the draft.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SourceSpan {
    /// Character offsets into the source.
    pub start: usize,
    pub end: usize,
    /// The share of the unit's term weight this span covers (beyond the spans before it).
    pub score: f32,
}

/// Why a unit is unsupported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// Its terms are not covered by the source (score below the threshold), and, with the
    /// network's signal, the note did not make the model expect it either.
    NoSupport,
    /// Its terms are covered, but the note does not raise the model's likelihood of it at all
    /// (network signal only): the words are there, the statement is not.
    NoGain,
    /// It writes a placeholder (`[DATE_5]`) that the source does not have.
    UnknownPlaceholder,
    /// It repeats an earlier unit of the draft word for word.
    Repetition,
    /// A safety check found a problem inside it (see the result's findings).
    Finding,
}

impl Flag {
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::NoSupport => "no_support",
            Flag::NoGain => "no_gain",
            Flag::UnknownPlaceholder => "unknown_placeholder",
            Flag::Repetition => "repetition",
            Flag::Finding => "finding",
        }
    }
}

/// How sure the model was of a unit's tokens.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Confidence {
    /// Mean probability of the unit's tokens.
    pub mean: f32,
    /// The least probable token's probability.
    pub min: f32,
    /// Tokens whose probability was below [`LOW_CONFIDENCE`].
    pub low_tokens: usize,
}

/// A token below this probability counts as low-confidence.
pub const LOW_CONFIDENCE: f32 = 0.5;

/// One unit (sentence or list item) of a draft and the source spans that support it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Attribution {
    /// Character offsets into the draft.
    pub start: usize,
    pub end: usize,
    pub text: String,
    /// Supporting spans of the source, the strongest first.
    pub spans: Vec<SourceSpan>,
    /// The share of the unit's term weight the spans cover, in [0, 1].
    pub score: f32,
    pub supported: bool,
    /// Why it is unsupported; empty when supported.
    pub flags: Vec<Flag>,
    /// From the model's token probabilities, when the draft's tokens are known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<Confidence>,
    /// With the network's signal: how much the note raised the model's log-probability of
    /// the unit's tokens, per token (nats; see [`NetworkSignal::gains`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note_gain: Option<f32>,
}

/// One generated token's place in the draft and its probability.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TokenConfidence {
    /// Character offsets into the draft.
    pub start: usize,
    pub end: usize,
    /// Probability of the token under the model.
    pub prob: f32,
    /// Probability of the most likely other token.
    pub alternative_prob: f32,
}

fn term_regex() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\[[A-Za-z]+_[0-9]+\]|[0-9]+(?:[.,][0-9]+)*|[A-Za-z][A-Za-z']*|\p{Han}+").ok()).as_ref()
}

/// The placeholders of `text` as medgen writes them, in any case ("[Date_5]" is read as
/// "[DATE_5]").
fn placeholders(text: &str) -> impl Iterator<Item = regex::Match<'_>> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\[[A-Za-z]+_[0-9]+\]").ok()).as_ref().into_iter().flat_map(move |re| re.find_iter(text))
}

#[rustfmt::skip]
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "of", "to", "in", "on", "at", "for", "with", "by", "from", "as", "is", "are",
    "was", "were", "be", "been", "being", "has", "have", "had", "this", "that", "these", "those", "it", "its",
    "he", "she", "his", "her", "him", "they", "their", "them", "we", "our", "you", "your", "i", "my", "me",
    "which", "who", "whom", "will", "would", "should", "can", "could", "may", "might", "also", "then", "than",
    "there", "here", "into", "over", "after", "before", "during", "while", "but", "so", "if", "not", "no",
    "patient", "pt", "s", "per", "any", "all", "some", "such", "did", "does", "do", "up", "out", "about",
];

/// Abbreviations read as the words they stand for.
#[rustfmt::skip]
const EXPANSIONS: &[(&str, &str)] = &[
    ("htn", "hypertension"), ("dm", "diabetes"), ("cad", "coronary artery disease"), ("chf", "heart failure"),
    ("hf", "heart failure"), ("copd", "chronic obstructive pulmonary disease"), ("mi", "myocardial infarction"),
    ("afib", "atrial fibrillation"), ("af", "atrial fibrillation"), ("sob", "shortness breath"),
    ("dyspnea", "shortness breath"), ("cp", "chest pain"), ("uti", "urinary tract infection"),
    ("ckd", "chronic kidney disease"), ("aki", "acute kidney injury"), ("pe", "pulmonary embolism"),
    ("dvt", "deep vein thrombosis"), ("gerd", "reflux"), ("bid", "twice daily"), ("tid", "three times daily"),
    ("qid", "four times daily"), ("qd", "daily"), ("od", "daily"), ("qhs", "bedtime"), ("prn", "needed"),
    ("po", "mouth"), ("oral", "mouth"), ("orally", "mouth"), ("iv", "intravenous"), ("intravenously", "intravenous"),
    ("hr", "heart rate"), ("bp", "blood pressure"), ("rr", "respiratory rate"), ("temp", "temperature"),
    ("wbc", "white blood cell"), ("hgb", "hemoglobin"), ("hb", "hemoglobin"), ("cxr", "chest x ray"),
    ("ct", "ct"), ("mri", "mri"), ("ekg", "ecg"), ("yo", "year old"), ("y", "year"), ("yrs", "year"),
    ("f", "female"), ("m", "male"), ("woman", "female"), ("man", "male"), ("hx", "history"), ("h", "hour"),
    ("hrs", "hour"), ("wk", "week"), ("wks", "week"), ("mo", "month"), ("d", "day"), ("abd", "abdomen"),
    ("abdominal", "abdomen"), ("pulmonary", "lung"), ("renal", "kidney"), ("cardiac", "heart"),
    ("hepatic", "liver"), ("fx", "fracture"), ("dx", "diagnosis"), ("tx", "treatment"), ("rx", "prescription"),
    ("f/u", "follow"), ("fu", "follow"), ("followup", "follow"), ("denies", "deny"), ("denied", "deny"),
    ("negative", "no"), ("febrile", "fever"), ("afebrile", "fever"),
];

fn expansions() -> &'static HashMap<&'static str, Vec<&'static str>> {
    static MAP: OnceLock<HashMap<&'static str, Vec<&'static str>>> = OnceLock::new();
    MAP.get_or_init(|| EXPANSIONS.iter().chain(LAY).map(|(k, v)| (*k, v.split(' ').collect())).collect())
}

/// The Snowball (Porter 2) stem of an English word: "fractures" and "fractured" are one.
fn stem(word: &str) -> String {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::English)).stem(word).into_owned()
}

/// Words of clinical prose that carry little of a sentence's claim ("was admitted with",
/// "showed", "consistent with"): they weigh a quarter of other words, so that a paraphrase is
/// judged by its clinical terms.
#[rustfmt::skip]
const GENERIC: &[&str] = &[
    "admit", "present", "show", "reveal", "demonstr", "note", "find", "found", "seen", "see", "develop", "given",
    "give", "receiv", "start", "continu", "report", "state", "say", "describ", "evid", "consist", "like", "probabl",
    "possibl", "suggest", "set", "without", "histori", "sign", "symptom", "well", "also", "current", "new",
    "plan", "recommend", "advis", "discuss", "review", "assess", "due", "secondari", "follow", "includ", "result",
    "level", "mild", "moder", "sever", "noth", "none", "today", "yesterday", "day", "week", "month", "year", "time",
    "hospit", "stay", "cours", "discharg", "treat", "treatment", "therapi", "manag", "care", "status", "condit",
    "improv", "resolv", "remain", "stabl", "normal", "unremark", "appear", "made", "make", "take", "took", "need",
    "requir", "use", "one", "two", "first", "second", "last", "next", "left", "right", "both", "each", "other",
    "further", "prior", "previous", "recent", "initi", "subsequ", "overal", "approxim", "about", "around",
];

/// Lay words read as the clinical words they stand for ("pee" is "urination").
#[rustfmt::skip]
const LAY: &[(&str, &str)] = &[
    ("pee", "urination"), ("peeing", "urination"), ("wee", "urination"), ("poo", "stool"), ("tummy", "abdomen"),
    ("belly", "abdomen"), ("eardrum", "tympanic membrane"), ("shivers", "rigors"),
    ("chills", "rigors"), ("throwing", "vomiting"), ("breathless", "shortness breath"),
    ("puffed", "shortness breath"), ("sugar", "glucose"), ("sugars", "glucose"), ("heartbeat", "heart rate"),
    ("pulse", "heart rate"), ("jab", "injection"), ("shot", "injection"), ("pills", "tablets"), ("tablet", "tablets"),
    ("feverish", "fever"), ("burning", "dysuria"), ("gallstones", "cholelithiasis"),
    ("egd", "endoscopy"), ("ogd", "endoscopy"), ("scope", "endoscopy"), ("postop", "postoperative"),
    ("post-op", "postoperative"), ("preop", "preoperative"), ("pre-op", "preoperative"), ("pylori", "pylori"),
    ("helicobacter", "pylori"), ("nsaid", "nsaid"), ("nsaids", "nsaid"), ("ibuprofen", "nsaid"),
    ("naproxen", "nsaid"), ("diclofenac", "nsaid"), ("a1c", "hba1c"), ("glycated", "hba1c"), ("glycemic", "glucose"),
    ("hypoglycemic", "hypoglycemia"), ("diuresed", "diuresis"), ("diuretic", "diuresis"),
];

/// The number a digit run writes, as a key ("25", "0.5", "1000" for "1,000").
fn number_key(written: &str) -> String {
    let plain = written.replace(',', "");
    match plain.parse::<f64>() {
        Ok(v) => format!("#{v}"),
        Err(_) => format!("#{plain}"),
    }
}

/// The terms of `text` (see the module's description), as keys.
fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for m in term_regex().into_iter().flat_map(|re| re.find_iter(text)) {
        let written = m.as_str();
        let first = written.chars().next().unwrap_or(' ');
        let mut push = |key: String| out.push(key);
        if first == '[' {
            push(format!("ph:{}", written.to_uppercase()));
        } else if first.is_ascii_digit() {
            push(number_key(written));
        } else if first.is_ascii_alphabetic() {
            let lower = written.to_lowercase();
            match expansions().get(lower.as_str()) {
                Some(words) => words.iter().for_each(|w| push(stem(w))),
                None if STOPWORDS.contains(&lower.as_str()) => {}
                None => push(stem(&lower)),
            }
        } else {
            // Chinese: overlapping character pairs (a lone character stands for itself).
            let han: Vec<char> = written.chars().collect();
            if han.len() == 1 {
                push(han[0].to_string());
            }
            out.extend(han.windows(2).map(|pair| pair.iter().collect::<String>()));
        }
    }
    out
}

/// The terms of each piece of `text` ([`terms`], and the medications named in it), with the
/// medication lexicon run once over the whole text.
fn piece_terms(text: &str, pieces: &[Piece]) -> Vec<Vec<String>> {
    let chars: Vec<char> = text.chars().collect();
    let meds = medications::generics(text);
    pieces
        .iter()
        .map(|p| {
            let mut keys = terms(&chars[p.start..p.end].iter().collect::<String>());
            keys.extend(meds.iter().filter(|m| p.start <= m.0 && m.1 <= p.end).map(|m| format!("rx:{}", m.2)));
            keys
        })
        .collect()
}

/// A piece of a text: character offsets and the text.
#[derive(Debug, Clone)]
pub(super) struct Piece {
    pub start: usize,
    pub end: usize,
}

/// Cuts `text` at the characters where `cut` says a piece ends (the character is kept in the
/// piece before it); pieces are trimmed of spaces and list bullets, and empty ones dropped.
fn cut(text: &str, base: usize, mut ends_piece: impl FnMut(&[char], usize) -> bool) -> Vec<Piece> {
    let chars: Vec<char> = text.chars().collect();
    let mut pieces = Vec::new();
    let mut start = 0;
    for i in 0..chars.len() {
        let end_here = chars[i] == '\n' || ends_piece(&chars, i);
        if end_here || i + 1 == chars.len() {
            push_trimmed(&chars, start, i + 1, base, &mut pieces);
            start = i + 1;
        }
    }
    pieces
}

fn push_trimmed(chars: &[char], mut start: usize, mut end: usize, base: usize, pieces: &mut Vec<Piece>) {
    let bullet = |c: char| c.is_whitespace() || matches!(c, '-' | '*' | '•' | '+' | '#' | '>');
    while start < end && bullet(chars[start]) {
        start += 1;
    }
    // A numbered item: "1. " or "2) ".
    let digits = chars[start..end].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 && digits <= 2 && start + digits + 1 < end && matches!(chars[start + digits], '.' | ')' | '、') && chars[start + digits + 1].is_whitespace() {
        start += digits + 1;
        while start < end && chars[start].is_whitespace() {
            start += 1;
        }
    }
    while end > start && (chars[end - 1].is_whitespace() || chars[end - 1] == '*') {
        end -= 1;
    }
    if chars[start..end].iter().any(|c| c.is_alphanumeric()) {
        pieces.push(Piece { start: base + start, end: base + end });
    }
}

/// Whether `chars[i]` ends a sentence: 。！？；, or . ! ? ; before a space or the end (not a
/// decimal point or an abbreviation inside a word).
fn sentence_end(chars: &[char], i: usize) -> bool {
    match chars[i] {
        '。' | '！' | '？' | '；' => true,
        '.' | '!' | '?' | ';' => chars.get(i + 1).is_none_or(|c| c.is_whitespace()),
        _ => false,
    }
}

/// Whether `chars[i]` ends a clause of the source: a sentence end, a comma before a space,
/// or a Chinese comma.
fn clause_end(chars: &[char], i: usize) -> bool {
    sentence_end(chars, i) || chars[i] == '，' || (chars[i] == ',' && chars.get(i + 1).is_none_or(|c| c.is_whitespace()))
}

/// A line that is a heading only ("Plan:", "## Plan", "**Plan**", "出院诊断："), or the
/// character where a line's content starts after a heading ("Impression: No acute disease.").
fn content_start(line: &str) -> Option<usize> {
    let t = line.trim();
    let bare = t.trim_matches(|c: char| matches!(c, '#' | '*' | '_' | '【' | '】' | '[' | ']') || c.is_whitespace());
    let short = |s: &str| {
        let s = s.trim_matches(|c: char| matches!(c, '#' | '*' | '_' | '-' | '•') || c.is_whitespace());
        !s.is_empty() && s.split_whitespace().count() <= 5 && s.chars().count() <= 40 && !s.chars().any(|c| c.is_ascii_digit())
    };
    if t.starts_with('#') || (t.starts_with("**") && t.ends_with("**")) || (t.starts_with('【') && t.ends_with('】')) {
        return short(bare).then_some(line.chars().count());
    }
    let colon = line.char_indices().find(|&(_, c)| c == ':' || c == '：')?;
    let head = &line[..colon.0];
    if !short(head) {
        return None;
    }
    Some(line[..colon.0].chars().count() + 1)
}

/// The units of a draft: sentences and list items, headings left out.
pub(super) fn draft_units(draft: &str) -> Vec<Piece> {
    let mut units = Vec::new();
    let mut base = 0;
    for line in draft.split_inclusive('\n') {
        let n = line.chars().count();
        let from = content_start(line.trim_end_matches('\n')).unwrap_or(0);
        let rest: String = line.chars().skip(from).collect();
        units.extend(cut(&rest, base + from, sentence_end));
        base += n;
    }
    units
}

/// Whether `text` has a unit to attribute (as a draft) or to attribute to (as a source).
pub(crate) fn has_units(text: &str) -> bool {
    !draft_units(text).is_empty() && !source_clauses(text).is_empty()
}

/// The clauses of a source.
pub(super) fn source_clauses(source: &str) -> Vec<Piece> {
    cut(source, 0, clause_end)
}

/// Attribution of every unit of `draft` to `source`. `findings` are the safety checks'
/// findings on the draft (character offsets), `known_placeholders` the placeholders the
/// de-identified source has beyond those written in `source` (the mapping's keys),
/// `tokens` the generated tokens' places and probabilities, when known, and `network` the
/// model's signal ([`super::network::signal`]), when known: a clause's attention share adds
/// [`NETWORK_WEIGHT`] times it to the clause's gain when spans are chosen, and the note's
/// gain in log-probability decides a unit whose terms the source does not cover (see
/// [`RESCUE_GAIN`], [`NO_GAIN`]).
pub fn attribute(
    source: &str,
    draft: &str,
    findings: &[Finding],
    known_placeholders: &[String],
    tokens: &[TokenConfidence],
    network: Option<&NetworkSignal>,
) -> Vec<Attribution> {
    let clauses = source_clauses(source);
    let clause_terms: Vec<HashSet<String>> =
        piece_terms(source, &clauses).into_iter().map(|keys| keys.into_iter().collect()).collect();
    // Where each term occurs, and how rare it is among the clauses.
    let mut index: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, set) in clause_terms.iter().enumerate() {
        for key in set {
            index.entry(key.as_str()).or_default().push(i);
        }
    }
    let n = clauses.len().max(1) as f32;
    let weight = |key: &str| -> f32 {
        let df = index.get(key).map_or(0, Vec::len) as f32;
        let w = (1.0 + n / (1.0 + df)).ln();
        if key.starts_with('#') || key.starts_with("rx:") || key.starts_with("ph:") {
            1.5 * w
        } else if GENERIC.contains(&key) {
            0.25 * w
        } else {
            w
        }
    };
    let mut known: HashSet<String> = placeholders(source).map(|m| m.as_str().to_uppercase()).collect();
    known.extend(known_placeholders.iter().map(|p| p.to_uppercase()));

    let draft_chars: Vec<char> = draft.chars().collect();
    let mut seen_units: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    let units = draft_units(draft);
    let unit_terms = piece_terms(draft, &units);
    for (u, (unit, mut keys)) in units.into_iter().zip(unit_terms).enumerate() {
        let shares = network.and_then(|n| n.shares.get(u)).filter(|row| row.len() == clauses.len());
        let note_gain = network.and_then(|n| n.gains.get(u)).copied();
        let text: String = draft_chars[unit.start..unit.end].iter().collect();
        keys.sort();
        keys.dedup();
        let weights: Vec<f32> = keys.iter().map(|k| weight(k)).collect();
        let total: f32 = weights.iter().sum();

        let mut covered = vec![false; keys.len()];
        let mut spans = Vec::new();
        while spans.len() < MAX_SPANS && total > 0.0 {
            let mut gains: HashMap<usize, f32> = HashMap::new();
            for (k, key) in keys.iter().enumerate().filter(|(k, _)| !covered[*k]) {
                for &c in index.get(key.as_str()).map_or(&[][..], Vec::as_slice) {
                    *gains.entry(c).or_default() += weights[k];
                }
            }
            for (c, share) in shares.into_iter().flatten().enumerate() {
                if *share > 0.0 && !spans.iter().any(|s: &SourceSpan| s.start == clauses[c].start) {
                    *gains.entry(c).or_default() += NETWORK_WEIGHT * share * total;
                }
            }
            let best = gains.into_iter().max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
            let Some((c, gain)) = best.filter(|&(_, g)| g / total >= MIN_GAIN) else { break };
            for (k, key) in keys.iter().enumerate() {
                covered[k] |= clause_terms[c].contains(key);
            }
            spans.push(SourceSpan { start: clauses[c].start, end: clauses[c].end, score: gain / total });
        }
        let score = if total > 0.0 {
            let covered: f32 = weights.iter().zip(&covered).filter(|(_, &c)| c).map(|(w, _)| w).sum();
            // An empty sum is -0.0; adding 0.0 makes it 0.0.
            (covered / total).clamp(0.0, 1.0) + 0.0
        } else {
            1.0
        };

        let mut flags = Vec::new();
        match note_gain {
            // Terms not covered, unless the note made the model expect the unit (a paraphrase).
            _ if score < SUPPORT_THRESHOLD && note_gain.is_none_or(|g| g < RESCUE_GAIN) => flags.push(Flag::NoSupport),
            Some(g) if g < NO_GAIN => flags.push(Flag::NoGain),
            _ => {}
        }
        if placeholders(&text).any(|m| !known.contains(&m.as_str().to_uppercase())) {
            flags.push(Flag::UnknownPlaceholder);
        }
        if keys.len() >= 3 && !seen_units.insert(normalized(&text)) {
            flags.push(Flag::Repetition);
        }
        let own = |k: FindingKind| matches!(k, FindingKind::UnknownPlaceholder | FindingKind::Repetition);
        if findings.iter().any(|f| f.start < unit.end && unit.start < f.end && !own(f.kind)) {
            flags.push(Flag::Finding);
        }
        spans.sort_by(|a, b| b.score.total_cmp(&a.score));
        out.push(Attribution {
            start: unit.start,
            end: unit.end,
            text,
            spans,
            score,
            supported: flags.is_empty(),
            flags,
            confidence: confidence(tokens, unit.start, unit.end),
            note_gain,
        });
    }
    out
}

/// A unit's text as repetitions compare it: letters and digits, lower case.
fn normalized(text: &str) -> String {
    text.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// Placeholders in `draft` that `source` does not have (in any case: "[Date_5]" is
/// "[DATE_5]"), as findings.
pub(crate) fn unknown_placeholders(source: &str, draft: &str) -> Vec<Finding> {
    let known: HashSet<String> = placeholders(source).map(|m| m.as_str().to_uppercase()).collect();
    placeholders(draft)
        .filter(|m| !known.contains(&m.as_str().to_uppercase()))
        .map(|m| {
            let start = draft[..m.start()].chars().count();
            Finding {
                kind: FindingKind::UnknownPlaceholder,
                start,
                end: start + m.as_str().chars().count(),
                text: m.as_str().to_string(),
                detail: format!("{} is not a placeholder of the source: it stands for nothing the note says", m.as_str()),
            }
        })
        .collect()
}

/// Units of `draft` (of three terms or more) that repeat an earlier one, as findings.
pub(crate) fn repetitions(draft: &str) -> Vec<Finding> {
    let chars: Vec<char> = draft.chars().collect();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for unit in draft_units(draft) {
        let text: String = chars[unit.start..unit.end].iter().collect();
        if terms(&text).len() >= 3 && !seen.insert(normalized(&text)) {
            out.push(Finding {
                kind: FindingKind::Repetition,
                start: unit.start,
                end: unit.end,
                detail: "this sentence repeats an earlier one: a repetition loop".into(),
                text,
            });
        }
    }
    out
}

/// The confidence of the tokens that overlap `start..end`.
pub(crate) fn confidence(tokens: &[TokenConfidence], start: usize, end: usize) -> Option<Confidence> {
    let probs: Vec<f32> = tokens.iter().filter(|t| t.start < end && start < t.end).map(|t| t.prob).collect();
    if probs.is_empty() {
        return None;
    }
    Some(Confidence {
        mean: probs.iter().sum::<f32>() / probs.len() as f32,
        min: probs.iter().copied().fold(1.0, f32::min),
        low_tokens: probs.iter().filter(|&&p| p < LOW_CONFIDENCE).count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans_text(source: &str, a: &Attribution) -> Vec<String> {
        a.spans.iter().map(|s| source.chars().skip(s.start).take(s.end - s.start).collect()).collect()
    }

    #[test]
    fn each_sentence_is_linked_to_the_clause_that_says_it() {
        let source = "72 yo man admitted with community-acquired pneumonia. BP 148/92, HR 102. \
                      Treated with ceftriaxone 1 g IV daily. Denies chest pain.";
        let draft = "Diagnoses:\n- Community-acquired pneumonia\nHospital Course:\nHe received ceftriaxone 1 g daily. \
                     Heart rate was 102.";
        let units = attribute(source, draft, &[], &[], &[], None);
        let texts: Vec<&str> = units.iter().map(|u| u.text.as_str()).collect();
        assert_eq!(texts, ["Community-acquired pneumonia", "He received ceftriaxone 1 g daily.", "Heart rate was 102."]);
        assert!(units.iter().all(|u| u.supported), "{units:#?}");
        assert_eq!(spans_text(source, &units[0]), ["72 yo man admitted with community-acquired pneumonia."]);
        assert_eq!(spans_text(source, &units[1]), ["Treated with ceftriaxone 1 g IV daily."]);
        assert_eq!(spans_text(source, &units[2]), ["HR 102."]);
    }

    #[test]
    fn invented_sentences_placeholders_and_loops_are_unsupported() {
        let source = "Seen on [DATE_1] for cough. Chest x-ray clear.";
        let draft = "Cough since [DATE_1].\nReturn on [Date_5].\nStart lisinopril for hypertension.\n\
                     The chest x-ray was clear. The chest x-ray was clear.";
        let units = attribute(source, draft, &[], &[], &[], None);
        let flags: Vec<&[Flag]> = units.iter().map(|u| u.flags.as_slice()).collect();
        assert_eq!(flags[0], []);
        assert!(flags[1].contains(&Flag::UnknownPlaceholder), "{flags:?}");
        assert!(flags[2].contains(&Flag::NoSupport), "{flags:?}");
        assert_eq!(flags[3], []);
        assert_eq!(flags[4], [Flag::Repetition]);
    }

    #[test]
    fn chinese_brands_and_abbreviations_match() {
        let source = "患者男性，65岁，因胸痛入院。予阿司匹林100mg口服。";
        let units = attribute(source, "出院诊断：胸痛\n出院带药：阿司匹林 100 mg。", &[], &[], &[], None);
        assert!(units.iter().all(|u| u.supported), "{units:#?}");
        let units = attribute("Hx of HTN. Metoprolol 25 mg PO BID.", "History of hypertension. Lopressor 25 mg by mouth twice daily.", &[], &[], &[], None);
        assert!(units.iter().all(|u| u.supported), "{units:#?}");
    }

    #[test]
    fn a_finding_inside_a_unit_makes_it_unsupported_and_confidence_aggregates_tokens() {
        let source = "Aspirin 81 mg daily.";
        let draft = "Aspirin 325 mg daily.";
        let findings = crate::checks::check(source, draft);
        let tokens = [
            TokenConfidence { start: 0, end: 7, prob: 0.9, alternative_prob: 0.05 },
            TokenConfidence { start: 7, end: 11, prob: 0.3, alternative_prob: 0.6 },
        ];
        let units = attribute(source, draft, &findings, &[], &tokens, None);
        assert_eq!(units[0].flags, [Flag::Finding]);
        let c = units[0].confidence.clone().unwrap();
        assert!((c.mean - 0.6).abs() < 1e-6 && c.min == 0.3 && c.low_tokens == 1, "{c:?}");
    }

    #[test]
    fn empty_texts_give_no_units() {
        assert!(attribute("", "", &[], &[], &[], None).is_empty());
        let units = attribute("", "Pneumonia.", &[], &[], &[], None);
        assert_eq!(units[0].flags, [Flag::NoSupport]);
    }

    #[test]
    fn the_network_signal_rescues_paraphrases_flags_no_gain_and_adds_attended_spans() {
        let source = "Chest pain at rest. Troponin normal. Sent home.";
        let draft = "Hurting behind the breastbone while lying quietly. Troponin normal. Sent home.";
        let lexical = attribute(source, draft, &[], &[], &[], None);
        assert_eq!(lexical.iter().map(|u| u.supported).collect::<Vec<_>>(), [false, true, true]);
        assert!(lexical[0].spans.is_empty());
        // The first unit looked at the first clause and the note raised it; the third unit's
        // words are in the note but the note did not raise it.
        let shares = vec![vec![0.9, 0.05, 0.05], vec![0.1, 0.8, 0.1], vec![0.3, 0.3, 0.4]];
        let signal = NetworkSignal { shares, gains: vec![RESCUE_GAIN + 0.1, 1.0, NO_GAIN - 0.1] };
        let units = attribute(source, draft, &[], &[], &[], Some(&signal));
        assert!(units[0].supported && units[0].flags.is_empty());
        assert_eq!((units[0].spans[0].start, units[0].spans[0].end), (0, 19));
        assert!(units[1].supported && units[1].note_gain == Some(1.0));
        assert_eq!(units[2].flags, [Flag::NoGain]);
        // Below the rescue threshold a paraphrase stays unsupported.
        let weak = NetworkSignal { gains: vec![RESCUE_GAIN - 0.1, 1.0, 1.0], ..signal };
        assert_eq!(attribute(source, draft, &[], &[], &[], Some(&weak))[0].flags, [Flag::NoSupport]);
    }
}
