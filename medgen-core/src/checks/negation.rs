//! Negation flips: a finding negated in the source but stated as present in the draft, or
//! present in the source but negated in the draft.
//!
//! NegEx-style (Chapman et al., 2001): negation triggers ("denies", "no", "negative for",
//! "without", "ruled out", 否认, 无, 未见, 没有 …) open a scope that runs forward (or, for
//! triggers that follow their finding, "MI was ruled out", "水肿(-)", backward) up to a
//! terminator (punctuation, "but", "however", 但, the next trigger) or a token limit.
//! Pseudo-triggers ("no change", "gram negative", 无明显诱因) negate nothing. Findings come
//! from a lexicon (`lexicon/findings.txt`, synonyms and Chinese names sharing one name) and
//! from the noun phrases of negation scopes in either text ("denies hemoptysis" makes
//! "hemoptysis" a finding to compare). A finding the source states both ways, or as
//! resolved, uncertain or hypothetical ("chest pain resolved", "possible pneumonia", "return
//! if fever develops", 如有胸痛), is never a flip, nor is one the draft states so.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;

use super::text::{ascii_bounded, finding, fold, Indexed};
use super::{Finding, FindingKind};

/// Phrases that look like negation but negate nothing.
#[rustfmt::skip]
const PSEUDO: &[&str] = &[
    "no change", "no changes", "no significant change", "no significant changes", "no interval change",
    "no increase", "no decrease", "no improvement", "not improved", "not only", "not necessarily", "not certain",
    "not sure", "not clear", "without difficulty", "without incident", "gram negative", "gram-negative",
    "no longer needed", "no longer required",
    "无明显诱因", "无诱因", "无明确诱因", "无明显原因", "无力", "无菌", "无创", "无痛", "无效", "无法", "无关",
    "无需", "无须", "无明显变化", "无变化", "无明显改善", "无改善", "无明显好转", "无好转", "未见好转",
    "未见改善", "未见缓解", "未见明显好转",
];

/// Triggers after their finding ("chest pain was denied", "双下肢水肿(-)").
#[rustfmt::skip]
const POST: &[&str] = &[
    "(?:was|were|is|are|has been|have been) not (?:seen|present|found|noted|detected|identified|visualized|appreciated|observed)",
    "not (?:seen|present|found|noted|detected|identified|visualized|appreciated|observed)",
    "(?:was|were|is|are) (?:absent|negative|denied)",
    "(?:was|were|is|has been|have been) (?:ruled out|excluded)", r"\(-\)",
    "阴性",
];

/// Triggers before their finding whose scope is a list of noun phrases (harvested as
/// findings to compare).
#[rustfmt::skip]
const PRE_NOUN: &[&str] = &[
    "denies", "denied", "deny", "denying", "denies any", "denies having", "denied having", "no",
    "no evidence of", "no signs? of", "no symptoms of", "no history of", "no complaints? of", "no episodes? of",
    "no known", "no new", "without", "without any", "without evidence of", "without signs? of", "negative for",
    "neg for", "(?:pertinent )?negatives(?: include| were)?", "free of", "absence of", "never had",
    "never experienced",
    "否认", "无", "未见", "未闻及", "未触及", "未扪及", "未及", "未诉", "未述", "未出现", "未发现", "未发生",
    "未有", "未引出", "没有", "不伴有", "不伴", "并无",
];

/// Other triggers before their finding ("did not have", "not tender").
const PRE: &[&str] = &[
    "(?:(?:did|does|do|has|have|had|is|was|were|are)(?:n't| not)|not|never|cannot)(?: (?:have|had|has|having|experience|experienced|report|reported|complain of|complained of|develop|developed|been|any))*",
];

/// Triggers in either place ("ruled out MI", "MI ruled out").
const BOTH: &[&str] = &["ruled out", "excluded", "absent", "negative", "排除", "除外", "已排除"];

/// Findings that were there and are gone ("chest pain resolved", "no longer has"), that may
/// or may not be there ("possible pneumonia", "rule out PE"), or that might come ("return if
/// fever develops", 如有胸痛): they agree with either polarity.
#[rustfmt::skip]
const EITHER_PRE: &[&str] = &[
    "resolution of", "improvement in", "improvement of", "no further", "no recurrence of", "no recurrent",
    "no more", "no longer(?: has| have| had| experiences?| complains of| reports)?", "if", "in case of",
    "return for", "watch for", "monitor for", "monitoring for", "look out for", "call for",
    "seek (?:medical )?(?:care|attention|help) for", "should", "risk of", "rule out", "to rule out", "r/o",
    "evaluate for", "evaluation for", "assess for", "check for", "screen for", "screening for", "concern for",
    "concerning for", "possible", "possibly", "probable", "likely", "suspected", "suspicious for",
    "suspicion of", "questionable", "may have", "might have", "whether",
    "(?:(?:was|were|is|are|has been|have been) )?not (?:been |be )?(?:ruled out|excluded)",
    "cannot (?:be )?(?:ruled out|excluded)", "can't (?:be )?(?:ruled out|excluded)", "cannot rule out",
    "can not rule out", "can't rule out", "could not rule out",
    "如有", "如出现", "若出现", "若有", "若", "警惕", "必要时", "有无", "是否", "可能", "疑似", "待排除", "待排",
    "不能排除", "不除外", "未排除", "未再",
];
/// The same, after the finding ("pneumonia unlikely", 症状缓解) and in either place.
#[rustfmt::skip]
const EITHER_POST: &[&str] = &[
    "subsided", "abated", "disappeared", "unlikely", "less likely", r"\?",
    "消失", "缓解", "好转", "消退", "已愈", "痊愈", "减轻", "可能", "待排",
];
const EITHER_BOTH: &[&str] = &["resolved", "resolving", "improved", "improving"];

/// Where a scope stops: clause punctuation, and words that start a new statement.
const TERMINATORS: &str = r"(?i)[.;:!?\n。；！？，]|(?-u:\b)(?:but|however|although|though|yet|except|aside from|apart from|other than|which|who|whom|whose|reports?|reported|reporting|complains?|complained|complaining|endorses|endorsed|endorsing|admits|admitted|presents|presented|positive for|has|had|have|secondary to|due to|because|since|now)(?-u:\b)|但是|但|然而|却";

/// Longest scope, in tokens (a word, or one Chinese character).
const FORWARD_TOKENS: usize = 12;
const BACKWARD_TOKENS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Trigger {
    Pseudo,
    Pre { harvest: bool },
    Post,
    Both,
    EitherPre,
    EitherPost,
    EitherBoth,
}

/// How a text states a finding.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Polarity {
    Present,
    Absent,
    /// Resolved, uncertain or hypothetical: agrees with either.
    Either,
}

/// A byte span of a folded text under a trigger.
#[derive(Debug, Clone, Copy)]
struct Scope {
    start: usize,
    end: usize,
    /// Whether the scope makes its findings [`Polarity::Either`] rather than absent.
    either: bool,
    /// Whether the scope is a list of noun phrases to harvest as findings.
    harvest: bool,
}

fn alternation(phrases: &[&str]) -> String {
    let mut phrases: Vec<String> = phrases
        .iter()
        .map(|p| {
            let p = p.replace(' ', r"\s+");
            // English phrases are whole words; Chinese ones and "(-)" have no word boundaries.
            if p.starts_with(|c: char| c.is_ascii_alphabetic()) || p.starts_with("(?:") {
                format!(r"(?-u:\b){p}(?-u:\b)")
            } else {
                p
            }
        })
        .collect();
    phrases.sort_by_key(|p| std::cmp::Reverse(p.len()));
    phrases.join("|")
}

fn trigger_regex() -> Option<&'static (Regex, Regex)> {
    static RE: OnceLock<Option<(Regex, Regex)>> = OnceLock::new();
    RE.get_or_init(|| {
        // Group order decides between triggers that start at the same place: pseudo-triggers
        // first ("no change" over "no"), then "not seen" over "not", "no longer" and "not
        // ruled out" over "no" and "not", "negative for" over "negative".
        let pattern = format!(
            "(?i)(?P<pseudo>{})|(?P<post>{})|(?P<either_pre>{})|(?P<either_post>{})|(?P<either_both>{})|(?P<pre_noun>{})|(?P<pre>{})|(?P<both>{})",
            alternation(PSEUDO),
            alternation(POST),
            alternation(EITHER_PRE),
            alternation(EITHER_POST),
            alternation(EITHER_BOTH),
            alternation(PRE_NOUN),
            alternation(PRE),
            alternation(BOTH),
        );
        Some((Regex::new(&pattern).ok()?, Regex::new(TERMINATORS).ok()?))
    })
    .as_ref()
}

/// The byte offsets of the token starts of `text`: runs of ASCII letters and digits, and
/// single other letters (Chinese characters).
fn token_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut previous_ascii = false;
    for (i, c) in text.char_indices() {
        let ascii = c.is_ascii_alphanumeric();
        if (ascii && !previous_ascii) || (!ascii && c.is_alphanumeric()) {
            starts.push(i);
        }
        previous_ascii = ascii;
    }
    starts
}

/// The negation and resolution scopes of a folded text.
fn scopes(text: &str) -> Vec<Scope> {
    let Some((triggers_re, terminators_re)) = trigger_regex() else { return Vec::new() };
    let mut triggers = Vec::new();
    for caps in triggers_re.captures_iter(text) {
        let Some(m) = caps.get(0) else { continue };
        let kind = if caps.name("pseudo").is_some() {
            Trigger::Pseudo
        } else if caps.name("post").is_some() {
            Trigger::Post
        } else if caps.name("pre_noun").is_some() {
            Trigger::Pre { harvest: true }
        } else if caps.name("pre").is_some() {
            Trigger::Pre { harvest: false }
        } else if caps.name("both").is_some() {
            Trigger::Both
        } else if caps.name("either_pre").is_some() {
            Trigger::EitherPre
        } else if caps.name("either_post").is_some() {
            Trigger::EitherPost
        } else {
            Trigger::EitherBoth
        };
        triggers.push((m.start(), m.end(), kind));
    }
    // Spans that end a scope: terminators and other triggers.
    let mut stops: Vec<(usize, usize)> = terminators_re.find_iter(text).map(|m| (m.start(), m.end())).collect();
    stops.extend(triggers.iter().map(|&(s, e, _)| (s, e)));
    let tokens = token_starts(text);

    // Sorted, so that each trigger finds its nearest stops and tokens by binary search.
    let mut stop_starts: Vec<usize> = stops.iter().map(|&(s, _)| s).collect();
    let mut stop_ends: Vec<usize> = stops.iter().map(|&(_, e)| e).collect();
    stop_starts.sort_unstable();
    stop_ends.sort_unstable();
    let mut scopes = Vec::new();
    for &(start, end, kind) in &triggers {
        let (forward, backward, either, harvest) = match kind {
            Trigger::Pseudo => continue,
            Trigger::Pre { harvest } => (true, false, false, harvest),
            Trigger::Post => (false, true, false, false),
            Trigger::Both => (true, true, false, false),
            Trigger::EitherPre => (true, false, true, false),
            Trigger::EitherPost => (false, true, true, false),
            Trigger::EitherBoth => (true, true, true, false),
        };
        if forward {
            // "Denies: fever" - a colon right after the trigger opens its list.
            let from = end + (text[end..].len() - text[end..].trim_start_matches([' ', '\t', ':']).len());
            let stop = stop_starts.get(stop_starts.partition_point(|&s| s < from)).copied().unwrap_or(text.len());
            let cap = tokens.get(tokens.partition_point(|&t| t < from) + FORWARD_TOKENS).copied().unwrap_or(text.len());
            scopes.push(Scope { start: from, end: stop.min(cap), either, harvest });
        }
        if backward {
            let stop = stop_ends.partition_point(|&e| e <= start).checked_sub(1).map_or(0, |i| stop_ends[i]);
            let before = tokens.partition_point(|&t| t < start);
            let cap = before.checked_sub(BACKWARD_TOKENS).map_or(0, |i| tokens[i]);
            scopes.push(Scope { start: stop.max(cap), end: start, either, harvest: false });
        }
    }
    scopes
}

/// Finding names as matched: lowercase name -> (finding, whether the name states absence).
struct Terms {
    regex: Regex,
    names: HashMap<String, (String, bool)>,
}

fn term_key(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

impl Terms {
    fn new(names: HashMap<String, (String, bool)>) -> Option<Terms> {
        let mut patterns: Vec<&String> = names.keys().collect();
        patterns.sort_by_key(|n| std::cmp::Reverse(n.chars().count()));
        let alternation: Vec<String> = patterns.iter().map(|n| regex::escape(n).replace(' ', r"\s+")).collect();
        let regex = Regex::new(&format!("(?i)(?:{})", alternation.join("|"))).ok()?;
        Some(Terms { regex, names })
    }

    /// The findings named in `text`: (start, end, finding, whether the name states absence).
    fn find<'a>(&'a self, text: &str) -> Vec<(usize, usize, &'a str, bool)> {
        find_terms(&[self], text)
    }
}

/// The findings of several sets of names in `text`, as one alternation of all their names
/// (longest first) finds them: from each position the leftmost match of any set, at one
/// start the longest name. So the phrases harvested from one pair of texts join the lexicon
/// without compiling the lexicon again for every pair.
fn find_terms<'a>(sets: &[&'a Terms], text: &str) -> Vec<(usize, usize, &'a str, bool)> {
    let mut found = Vec::new();
    let mut at = 0;
    // Each set's next match from `at`, searched again only once `at` passes its start (the
    // names hold no look-around, so the match from an earlier place that starts at or after
    // `at` is the match from `at`); None inside: the set has no match left.
    let mut next: Vec<Option<Option<regex::Match>>> = vec![None; sets.len()];
    while at < text.len() {
        for (slot, t) in next.iter_mut().zip(sets) {
            if slot.is_none_or(|m| m.is_some_and(|m| m.start() < at)) {
                *slot = Some(t.regex.find_at(text, at));
            }
        }
        let leftmost = next
            .iter()
            .zip(sets)
            .filter_map(|(m, t)| Some(((*m)??, *t)))
            .min_by_key(|(m, _)| (m.start(), std::cmp::Reverse(term_key(m.as_str()).chars().count())));
        let Some((m, terms)) = leftmost else { break };
        if m.is_empty() {
            at = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        if ascii_bounded(text, m.start(), m.end()) {
            if let Some((name, negated)) = terms.names.get(&term_key(m.as_str())) {
                found.push((m.start(), m.end(), name.as_str(), *negated));
            }
        }
        at = m.end();
    }
    found
}

fn lexicon() -> Option<&'static Terms> {
    static LEXICON: OnceLock<Option<Terms>> = OnceLock::new();
    LEXICON
        .get_or_init(|| {
            let mut names = HashMap::new();
            for line in include_str!("lexicon/findings.txt").lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (name, aliases) = line.split_once('|').unwrap_or((line, ""));
                let name = name.trim().to_string();
                names.insert(term_key(&name), (name.clone(), false));
                for alias in aliases.split(',').map(str::trim).filter(|a| !a.is_empty()) {
                    let negated = alias.starts_with('-');
                    names.insert(term_key(alias.trim_start_matches('-')), (name.clone(), negated));
                }
            }
            Terms::new(names)
        })
        .as_ref()
}

/// Words that head or trail a negated noun phrase without being the finding.
fn phrase_cleaners() -> Option<&'static (Regex, Regex, Regex, Regex)> {
    static RE: OnceLock<Option<(Regex, Regex, Regex, Regex)>> = OnceLock::new();
    RE.get_or_init(|| {
        let split = Regex::new(r"(?i),|，|、|;|/|(?-u:\b)(?:or|and|nor)(?-u:\b)|或者|或|以及|和|及|与").ok()?;
        let lead = Regex::new(
            r"(?i)^(?:(?:any|a|an|the|other|further|significant|obvious|definite|acute|new|focal|recent|prior|known|evident|apparent|overt|gross|active|current|ongoing|associated|complaints? of|history of|signs? of|symptoms? of|evidence of|episodes? of|reports? of)\s+|明显|任何|其他|其它|特殊|明确|确切|新发)+",
        )
        .ok()?;
        let trail = Regex::new(r"(?:等症状|等不适|等|症状|病史|史|表现|现象|情况|发生|发作)+$").ok()?;
        // A phrase ends at a preposition or a reporting word: "chest pain at rest".
        let cut = Regex::new(
            r"(?i)\s+(?:at|in|on|with|during|since|for|after|before|from|to|today|noted|seen|reported|observed|were|was|is|are)(?-u:\b).*$",
        )
        .ok()?;
        Some((split, lead, trail, cut))
    })
    .as_ref()
}

/// Phrases too vague to compare ("no abnormality", 未见异常).
#[rustfmt::skip]
const VAGUE: &[&str] = &[
    "abnormality", "abnormalities", "abnormal findings", "findings", "issues", "issue", "problems", "problem",
    "complaints", "complaint", "concerns", "change", "changes", "evidence", "history", "difficulty",
    "improvement", "distress", "need", "plans", "drugs", "drug", "medications", "one",
    "异常", "异常改变", "异常发现", "不适", "特殊不适", "变化", "改善", "诱因", "异常情况",
];

/// The noun phrases of the harvestable scopes of `text` that the lexicon does not cover.
fn harvest(text: &str, scopes: &[Scope], lexicon: &Terms) -> Vec<String> {
    let Some((split, lead, trail, cut)) = phrase_cleaners() else { return Vec::new() };
    let mut phrases = Vec::new();
    for scope in scopes.iter().filter(|s| s.harvest) {
        for item in split.split(&text[scope.start..scope.end]) {
            let item = term_key(item);
            let item = lead.replace(&item, "");
            let item = cut.replace(&item, "");
            let item = trail.replace(item.trim(), "").trim().to_string();
            let english = item.starts_with(|c: char| c.is_ascii_alphabetic())
                && item.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-' || c == '\'');
            let chinese = item.chars().all(|c| !c.is_ascii() && c.is_alphabetic());
            let words = item.split_whitespace().count();
            let fits = (english && (1..=4).contains(&words) && item.len() >= 3)
                || (chinese && (2..=8).contains(&item.chars().count()));
            if fits && !VAGUE.contains(&item.as_str()) && lexicon.find(&item).is_empty() {
                phrases.push(item);
            }
        }
    }
    phrases
}

/// A finding named in a text, and how the text states it.
struct Mention<'a> {
    start: usize,
    end: usize,
    finding: &'a str,
    polarity: Polarity,
}

/// The polarity given by a "finding: value" line ("Fever: none", "胸痛：无"); `Some(None)`
/// for a heading ("Allergies: penicillin"), which states nothing either way.
fn labelled(text: &str, end: usize) -> Option<Option<Polarity>> {
    let rest = text[end..].trim_start_matches([' ', '\t']);
    let value = rest.strip_prefix(':')?.trim_start().to_lowercase();
    const ABSENT: &[&str] =
        &["no", "none", "negative", "denies", "denied", "absent", "nil", "(-)", "-", "无", "否认", "阴性", "未"];
    const PRESENT: &[&str] = &["yes", "present", "positive", "(+)", "+", "有", "阳性"];
    let starts = |words: &[&str]| {
        words.iter().any(|w| {
            value.starts_with(w) && (!w.is_ascii() || !value[w.len()..].starts_with(|c: char| c.is_ascii_alphabetic()))
        })
    };
    Some(if starts(ABSENT) {
        Some(Polarity::Absent)
    } else if starts(PRESENT) {
        Some(Polarity::Present)
    } else {
        None
    })
}

/// Whether `rest` (the text after a finding) starts by stating it present.
fn affirmed_after(rest: &str) -> bool {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(?i)^\s*(?:(?:is|was|were|are)\s+)?(?:present(?-u:\b)|positive(?-u:\b)|\(\+\)|阳性)").ok())
        .as_ref()
        .is_some_and(|re| re.is_match(rest))
}

fn mentions<'a>(text: &str, scopes: &[Scope], terms: &[&'a Terms]) -> Vec<Mention<'a>> {
    // Per kind of scope (`either` or not): the starts in order, and the furthest end of the
    // scopes up to each, so that whether a scope holds a span is one binary search.
    let reach = |either: bool| {
        let mut kind: Vec<(usize, usize)> = scopes.iter().filter(|s| s.either == either).map(|s| (s.start, s.end)).collect();
        kind.sort_unstable();
        let furthest: Vec<usize> = kind.iter().scan(0, |m, &(_, e)| {
            *m = e.max(*m);
            Some(*m)
        }).collect();
        (kind.into_iter().map(|(s, _)| s).collect::<Vec<usize>>(), furthest)
    };
    let reaches = [reach(false), reach(true)];
    let within = |either: bool, start: usize, end: usize| {
        let (starts, furthest) = &reaches[either as usize];
        starts.partition_point(|&s| s <= start).checked_sub(1).is_some_and(|i| furthest[i] >= end)
    };
    let mut out = Vec::new();
    for (start, end, finding, negated_name) in find_terms(terms, text) {
        let polarity = match labelled(text, end) {
            Some(Some(p)) => p,
            Some(None) => continue,
            // "No fever, cough present": an affirmation right after the finding wins.
            None if affirmed_after(&text[end..]) => Polarity::Present,
            None => {
                if within(true, start, end) {
                    Polarity::Either
                } else if within(false, start, end) != negated_name {
                    Polarity::Absent
                } else {
                    Polarity::Present
                }
            }
        };
        out.push(Mention { start, end, finding, polarity });
    }
    out
}

/// The clause of `text` around a span, for a finding's detail.
fn clause(text: &str, start: usize, end: usize) -> String {
    let stop = |c: char| matches!(c, '.' | ';' | '\n' | '!' | '?' | '。' | '；' | '！' | '？');
    // At most 400 bytes either way: the detail shows 80 characters, and a long text without a
    // stop must not be read again for every finding.
    let mut lo = start.saturating_sub(400);
    while !text.is_char_boundary(lo) {
        lo += 1;
    }
    let from = text[lo..start].char_indices().rev().find(|&(_, c)| stop(c)).map_or(lo, |(i, c)| lo + i + c.len_utf8());
    let mut ahead = text[end..].char_indices().take(400);
    let to = ahead.find(|&(_, c)| stop(c)).map_or_else(|| text[end..].char_indices().nth(400).map_or(text.len(), |(i, _)| end + i), |(i, _)| end + i);
    let clause = text[from..to].trim();
    if clause.chars().count() <= 80 {
        clause.to_string()
    } else {
        format!("{}…", clause.chars().take(80).collect::<String>())
    }
}

/// Negation flips of `output` against `source`.
pub fn check(source: &str, output: &str) -> Vec<Finding> {
    let Some(lexicon) = lexicon() else { return Vec::new() };
    let (src, out) = (fold(source), fold(output));
    let (src_scopes, out_scopes) = (scopes(&src), scopes(&out));
    let mut phrases = harvest(&src, &src_scopes, lexicon);
    phrases.extend(harvest(&out, &out_scopes, lexicon));
    // The harvested phrases hold no lexicon name (`harvest` drops those), so none is a key
    // of both sets.
    let harvested =
        if phrases.is_empty() { None } else { Terms::new(phrases.into_iter().map(|p| (p.clone(), (p, false))).collect()) };
    let terms: Vec<&Terms> = [Some(lexicon), harvested.as_ref()].into_iter().flatten().collect();
    // Per finding: where the source first names it, and the ways it states it.
    let mut in_source: HashMap<&str, ((usize, usize), Vec<Polarity>)> = HashMap::new();
    for s in mentions(&src, &src_scopes, &terms) {
        let (_, ways) = in_source.entry(s.finding).or_insert(((s.start, s.end), Vec::new()));
        if !ways.contains(&s.polarity) {
            ways.push(s.polarity);
        }
    }
    let (original, indexed) = (Indexed::new(output), Indexed::new(&out));
    let mut findings = Vec::new();
    for m in mentions(&out, &out_scopes, &terms) {
        if m.polarity == Polarity::Either {
            continue;
        }
        let Some((first, ways)) = in_source.get(m.finding) else { continue };
        if ways.iter().any(|&p| p == m.polarity || p == Polarity::Either) {
            continue;
        }
        let context = clause(&src, first.0, first.1);
        let detail = match m.polarity {
            Polarity::Present => {
                format!("{} is stated as present, but the source negates it: \"{context}\"", m.finding)
            }
            _ => format!("{} is negated here, but the source states it as present: \"{context}\"", m.finding),
        };
        findings.push(finding(FindingKind::NegationFlip, &original, &indexed, m.start, m.end, detail));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flagged(source: &str, output: &str) -> Vec<String> {
        check(source, output).into_iter().map(|f| f.text).collect()
    }

    #[test]
    fn a_denied_finding_stated_as_present_is_flagged() {
        assert_eq!(flagged("Patient denies chest pain.", "Patient reports chest pain."), ["chest pain"]);
        assert_eq!(flagged("No fever or chills.", "Fever and chills overnight."), ["Fever", "chills"]);
        assert_eq!(flagged("否认胸痛。", "患者诉胸痛。"), ["胸痛"]);
    }

    #[test]
    fn english_triggers_glued_to_chinese_are_found() {
        // Mixed notes write English with no space after Chinese: word boundaries are ASCII
        // ones, as everywhere in the checks (a Unicode boundary does not fall between 者 and n).
        assert_eq!(flagged("患者no fever。", "患者有fever。"), ["fever"]);
        assert_eq!(flagged("患者发热，but no cough。", "患者no fever。"), ["fever"]);
    }

    #[test]
    fn a_present_finding_negated_in_the_draft_is_flagged() {
        assert_eq!(flagged("Presents with productive cough.", "No cough."), ["cough"]);
        assert_eq!(flagged("患者发热3天。", "患者无发热。"), ["发热"]);
        assert_eq!(flagged("Febrile to 39 C.", "She remained afebrile."), ["afebrile"]);
    }

    #[test]
    fn preserved_negation_and_synonyms_are_not_flagged() {
        assert!(flagged("Denies shortness of breath.", "No dyspnea.").is_empty());
        assert!(flagged("无发热、咳嗽。", "患者否认发热及咳嗽。").is_empty());
        assert!(flagged("Negative for nausea, vomiting.", "No nausea or vomiting.").is_empty());
    }

    #[test]
    fn a_terminator_ends_the_scope() {
        assert!(flagged("Denies fever but reports cough.", "Has a cough; no fever.").is_empty());
        assert!(flagged("无发热，但有咳嗽。", "咳嗽，无发热。").is_empty());
    }

    #[test]
    fn an_affirmation_after_the_finding_wins_over_the_scope() {
        assert!(flagged("No fever, cough present.", "Cough; no fever.").is_empty());
        assert!(flagged("咳嗽(+)，发热(-)。", "咳嗽，无发热。").is_empty());
    }

    #[test]
    fn pseudo_negations_negate_nothing() {
        assert!(flagged("MI not ruled out; chest pain no change.", "Chest pain persists; MI possible.").is_empty());
        assert!(flagged("患者无明显诱因出现胸痛。", "患者胸痛。").is_empty());
    }

    #[test]
    fn post_triggers_negate_backwards() {
        assert_eq!(flagged("Pulmonary embolism was ruled out.", "Found a pulmonary embolism."), ["pulmonary embolism"]);
        assert_eq!(flagged("双下肢水肿(-)。", "双下肢水肿。"), ["水肿"]);
    }

    #[test]
    fn findings_outside_the_lexicon_come_from_negation_scopes() {
        assert_eq!(flagged("He denies hematochezia or tenesmus.", "He reports tenesmus."), ["tenesmus"]);
    }

    #[test]
    fn resolved_findings_and_findings_stated_both_ways_are_not_flagged() {
        assert!(flagged("Chest pain resolved after nitroglycerin.", "No chest pain at discharge.").is_empty());
        assert!(flagged("Chest pain on exertion. No chest pain at rest.", "Chest pain on exertion.").is_empty());
    }

    #[test]
    fn hypothetical_and_uncertain_findings_are_not_flagged() {
        assert!(flagged("Denies chest pain or fever.", "Return to the ED if chest pain or fever develops.").is_empty());
        assert!(flagged("否认胸痛。", "如有胸痛、气促等不适，及时就诊。").is_empty());
        assert!(flagged("No pneumonia on imaging.", "Possible pneumonia; rule out pneumonia.").is_empty());
        assert!(flagged("Presented with chest pain.", "He no longer has chest pain.").is_empty());
    }

    #[test]
    fn harvested_phrases_match_as_one_alternation_with_the_lexicon_would() {
        // The reference: one regex of every name, matched as `check` matched before it kept the
        // two sets apart. Texts glue lexicon names, words of them and phrases that overlap them.
        let lexicon = lexicon().unwrap();
        let mut names: Vec<&String> = lexicon.names.keys().collect();
        names.sort();
        let phrases: Vec<String> = ["chest", "feverish feeling", "dizzyness", "tenesmus", "胸部", "night", "radiating pain"]
            .into_iter()
            .map(String::from)
            .filter(|p| lexicon.find(p).is_empty())
            .collect();
        // Phrases that start where a longer or a shorter lexicon name starts.
        assert_eq!(phrases.len(), 7, "{phrases:?}");
        let harvested = Terms::new(phrases.iter().map(|p| (p.clone(), (p.clone(), false))).collect()).unwrap();
        let mut all = lexicon.names.clone();
        all.extend(harvested.names.clone());
        let one = Terms::new(all).unwrap();
        let mut seed = 7u64;
        let mut pick = |n: usize| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        for _ in 0..300 {
            let mut text = String::new();
            for _ in 0..1 + pick(12) {
                let piece = match pick(4) {
                    0 => names[pick(names.len())].clone(),
                    1 => phrases[pick(phrases.len())].clone(),
                    2 => names[pick(names.len())].split_whitespace().next().unwrap_or("").to_uppercase(),
                    _ => ["", " ", "  ", "-", "no ", "x", "，", "\n"][pick(8)].to_string(),
                };
                text.push_str(&piece);
                text.push_str(["", " ", " ", "s "][pick(4)]);
            }
            let reference: Vec<_> = one
                .regex
                .find_iter(&text)
                .filter(|m| ascii_bounded(&text, m.start(), m.end()))
                .filter_map(|m| one.names.get(&term_key(m.as_str())).map(|(n, neg)| (m.start(), m.end(), n.as_str(), *neg)))
                .collect();
            assert_eq!(find_terms(&[lexicon, &harvested], &text), reference, "{text:?}");
        }
    }

    #[test]
    fn labelled_values_give_the_polarity() {
        assert_eq!(flagged("Fever: none", "Patient had a fever."), ["fever"]);
        assert!(flagged("Allergies: penicillin", "Allergies: penicillin").is_empty());
    }
}
