//! Runs every detector over a text and resolves their overlapping answers.

use std::collections::{BTreeMap, HashSet};

use super::tagger::Tagger;
use super::{dates, lexicon, names, names_zh, patterns, places, spoken, tagger, Category, Engine, Entity};
use crate::checks::medications;
use crate::error::Result;

/// A candidate identifier in byte offsets (entities carry character offsets).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Span {
    pub cat: Category,
    pub start: usize,
    pub end: usize,
    pub conf: f32,
}

impl Span {
    pub(crate) fn new(cat: Category, start: usize, end: usize, conf: f32) -> Span {
        Span { cat, start, end, conf }
    }
}

/// All identifiers in `text`, sorted and non-overlapping, in byte offsets.
pub(crate) fn spans(text: &str) -> Vec<Span> {
    if text.is_empty() {
        return Vec::new();
    }
    // Traditional characters read as simplified ones, offsets unchanged (陳志明醫生 as 陈志明医生).
    let simple = lexicon::simplified(text);
    let text = simple.as_ref();
    let mut found = Vec::new();
    patterns::find(text, &mut found);
    places::find(text, &mut found);
    dates::find(text, &mut found);
    spoken::find(text, &mut found);
    // Names come last: they skip words already taken (an e-mail's user name, a street's name)
    // and spread the names found to their other mentions.
    names::find(text, &mut found);
    resolve(found)
}

/// The identifiers of each text found by `engine`, in byte offsets.
pub(crate) fn spans_with(texts: &[&str], engine: Engine, tagger: Option<&std::path::Path>) -> Result<Vec<Vec<Span>>> {
    Ok(texts.iter().zip(engine_spans(texts, engine, tagger)?).map(|(t, s)| whole_characters(t, whole_codes(t, s))).collect())
}

fn engine_spans(texts: &[&str], engine: Engine, tagger: Option<&std::path::Path>) -> Result<Vec<Vec<Span>>> {
    if engine == Engine::Rules {
        return Ok(texts.iter().map(|t| spans(t)).collect());
    }
    let tagger = match tagger {
        Some(path) => Tagger::load(path)?,
        None => Tagger::builtin()?,
    };
    let learned = tagger.spans(texts)?;
    Ok(texts
        .iter()
        .zip(learned)
        .map(|(text, model)| match engine {
            Engine::Model => resolve(model.into_iter().filter(|m| !in_placeholder(text, m)).collect()),
            _ => ensemble(text, spans(text), model),
        })
        .collect())
}

/// Is a span of this category a code: a number or an alphanumeric identifier, written as one
/// token ("PA-88213-0421", "RFM*0047712*B", "KKS19/ANC/0231/23")?
fn is_code(cat: Category) -> bool {
    !matches!(
        cat,
        Category::Name | Category::Location | Category::Date | Category::Age | Category::Email | Category::Url
    )
}

/// `found` (sorted, non-overlapping) with each code span widened to the whole token it stands
/// in, and the pieces of one code united: an identifier is replaced whole or not at all, so
/// that neither a tagger that read "KXD4-9RT2-W7PM" as four pieces nor a rule that took the
/// digits of "PA-88213-0421" leaves a part of it in clear. A token is letters and digits
/// joined by `-`, `/`, `*`, `_` or `.` (a joiner between two of them), with at least two
/// digits; spans of other categories are left as they are, and a code never grows into one.
pub(crate) fn whole_codes(text: &str, found: Vec<Span>) -> Vec<Span> {
    let bytes = text.as_bytes();
    let alnum = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_alphanumeric);
    let joiner = |i: usize| bytes.get(i).is_some_and(|b| matches!(b, b'-' | b'/' | b'*' | b'_' | b'.'));
    let fixed: Vec<(usize, usize)> = found.iter().filter(|s| !is_code(s.cat)).map(|s| (s.start, s.end)).collect();
    let mut grown: Vec<Span> = Vec::with_capacity(found.len());
    for mut s in found {
        if is_code(s.cat) {
            let (mut a, mut b) = (s.start, s.end);
            while a > 0 && (alnum(a - 1) || joiner(a - 1) && a >= 2 && alnum(a - 2) && alnum(a)) {
                a -= 1;
            }
            while b < bytes.len() && (alnum(b) || joiner(b) && alnum(b + 1) && b > 0 && alnum(b - 1)) {
                b += 1;
            }
            // A joiner the span began or ended on, with nothing beyond it, is not the code's.
            while a < b && joiner(a) {
                a += 1;
            }
            while b > a && joiner(b - 1) {
                b -= 1;
            }
            let digits = bytes[a..b].iter().filter(|c| c.is_ascii_digit()).count();
            // `fixed` is sorted and disjoint: only the last span starting before `b` can reach past `a`.
            let before_end = fixed.partition_point(|&(fa, _)| fa < b);
            let clash = before_end > 0 && fixed[before_end - 1].1 > a;
            if digits >= 2 && !clash && (a, b) != (s.start, s.end) {
                s.start = a.min(s.start);
                s.end = b.max(s.end);
            }
        }
        grown.push(s);
    }
    // A code grown backwards may now start before several spans: sorted again, then united.
    grown.sort_by_key(|s| (s.start, s.end));
    let mut out: Vec<Span> = Vec::with_capacity(grown.len());
    for s in grown {
        match out.last_mut() {
            // Pieces of one code, now overlapping: the surer piece's category, then the longer.
            Some(last) if s.start < last.end => {
                let longer = s.end - s.start > last.end - last.start;
                let keep = if s.conf > last.conf || s.conf == last.conf && longer { s } else { *last };
                *last = Span { start: last.start.min(s.start), end: last.end.max(s.end), ..keep };
            }
            _ => out.push(s),
        }
    }
    out
}

/// `found` with each span's end moved past the combining marks that follow it ("José" written
/// `Jose` + U+0301): an entity never ends inside a character, leaving its accent behind.
pub(crate) fn whole_characters(text: &str, mut found: Vec<Span>) -> Vec<Span> {
    for i in 0..found.len() {
        let limit = found.get(i + 1).map_or(text.len(), |n| n.start);
        let s = &mut found[i];
        while let Some(c) = text[s.end..limit].chars().next().filter(|&c| tagger::is_combining(c)) {
            s.end += c.len_utf8();
        }
    }
    found
}

/// The union of the rules' and the tagger's spans: a rule span that a tagger span of its
/// category overlaps gets the confidence `1 - (1 - rule)(1 - model)`; names spread to their
/// other mentions ([`spread_names`]); then overlapping spans become one ([`unite`]), so that
/// no character either engine found is let through because the two disagree on a boundary
/// ("the twelfth of March" against "March") or a category.
pub(crate) fn ensemble(text: &str, mut rules: Vec<Span>, model: Vec<Span>) -> Vec<Span> {
    let by_model = Overlaps::new(&model);
    for r in &mut rules {
        if let Some(m) = by_model.of(r.start, r.end).filter(|m| m.cat == r.cat).map(|m| m.conf).reduce(f32::max) {
            r.conf = 1.0 - (1.0 - r.conf) * (1.0 - m);
        }
    }
    let by_rule = Overlaps::new(&rules);
    let mut pieces = Vec::new();
    // Is the text written with capitals, not a transcript in lower case? Words in title case,
    // speaker labels ("Patient:") aside, make at least one word in thirty.
    let words = text.split_whitespace().filter(|w| !w.ends_with(':'));
    let (titled, all) = words.fold((0, 0), |(t, a), w| {
        let mut cs = w.chars();
        let title = cs.next().is_some_and(|c| c.is_ascii_uppercase()) && cs.any(|c| c.is_ascii_lowercase());
        (t + title as usize, a + 1)
    });
    let cased = titled * 30 > all;
    // A tagger span alone that cannot be an identifier goes; one that overlaps the rules' stays,
    // in the category of the rule span it overlaps (so that "ten" of a date read "ten,
    // fourteen, forty-eight", which the tagger called a name, is not spread as a name).
    // A placeholder already in the text ("[PHONE_1]", "[NAME]") is no identifier: its
    // category's word is left as written.
    let model = model.into_iter().filter(|m| !in_placeholder(text, m)).flat_map(|m| sentences(text, m)).filter_map(|m| {
        if !implausible(text, &m, cased) {
            return Some(m);
        }
        by_rule.of(m.start, m.end).min_by_key(|r| (r.start, r.end)).map(|r| Span { cat: r.cat, ..m })
    });
    for m in model {
        let mut inside: Vec<&Span> = by_rule.of(m.start, m.end).collect();
        inside.sort_by_key(|r| (r.start, r.end));
        // A tagger span across two or more of the rules' spans ("March 30, 2024, 2024年4月20日")
        // keeps only its pieces between them: the rules separated those dates, and each stays
        // one entity (so that date shifting can read it). A name the rules found keeps their
        // boundaries too, and the tagger's words beside it become names of their own when they
        // can be ("Mele" found, "Mele Havili" read: "Havili"; "Dr. Lee agreed": not "agreed").
        let name = m.cat == Category::Name && inside.iter().any(|r| r.cat == Category::Name);
        if inside.len() < 2 && !name {
            pieces.push(m);
            continue;
        }
        let mut at = m.start;
        for r in inside.iter().map(|r| (r.start, r.end)).chain([(m.end, m.end)]) {
            if let Some((a, b)) = trimmed(text, at, r.0.max(at)) {
                let piece = Span::new(m.cat, a, b, m.conf);
                if !implausible(text, &piece, cased) {
                    pieces.push(piece);
                }
            }
            at = at.max(r.1);
        }
    }
    rules.extend(pieces);
    spread_names(text, &mut rules);
    unite(rules)
}

/// Spans in order of their starts, with the furthest end among each one and those before it:
/// the spans overlapping a range are found without reading them all (every tagger span
/// against every rule span made a note full of identifiers quadratic).
struct Overlaps {
    spans: Vec<Span>,
    reach: Vec<usize>,
}

impl Overlaps {
    fn new(spans: &[Span]) -> Overlaps {
        let mut spans = spans.to_vec();
        spans.sort_by_key(|s| (s.start, s.end));
        let reach = spans
            .iter()
            .scan(0, |far, s| {
                *far = s.end.max(*far);
                Some(*far)
            })
            .collect();
        Overlaps { spans, reach }
    }

    /// The spans that overlap `start..end`, the last starting first.
    fn of(&self, start: usize, end: usize) -> impl Iterator<Item = &Span> + '_ {
        let before = self.spans.partition_point(|s| s.start < end);
        (0..before).rev().take_while(move |&i| self.reach[i] > start).map(|i| &self.spans[i]).filter(move |s| s.end > start)
    }
}

/// Titles after a family name said alone (刘医生, 周老师).
const ZH_TITLES: [&str; 16] = ["医生", "医师", "大夫", "老师", "先生", "女士", "小姐", "主任", "教授", "护士", "阿姨", "叔叔", "师傅", "院长", "同志", "总"];
/// Clinical words that start with a family name's character.
const ZH_NOT_NAMES: [&str; 23] = [
    "高血压", "高血糖", "高血脂", "高烧", "高热", "白细胞", "白蛋白", "黄疸", "方案", "复查", "常规", "石膏", "包块", "段时间", "温度",
    "周期", "白班", "夜班", "明白", "满意", "方便", "安排", "平安",
];

/// Is a tagger span no identifier whatever its context: no letter or digit, a weekday alone
/// ("Tuesday"), an age in words, a few number words that are not a date ("five", "nine one one"),
/// one frequent word in lower case ("there", "hour"), a name made only of frequent words,
/// neither in title case past the first word nor a capitalised word inside a sentence ("yeah",
/// "Take care", "Good." but not "Maple Ridge" or "talk to Bill"), and the kinds below? `cased`:
/// the text is written with capitals, not a transcript in lower case.
fn implausible(text: &str, m: &Span, cased: bool) -> bool {
    let (span, cat) = (&text[m.start..m.end], m.cat);
    if !span.chars().any(char::is_alphanumeric) {
        return true;
    }
    // One Chinese character is a surname or nothing (趟, 斤, 机); one letter is an initial in
    // capitals, but not the words "I" and "A".
    let mut chars = span.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        // Nor is a letter that heads a hand-over's line ("B- hx DM2", "R: f/u") or is glued to
        // a number ("ward 5W"), or one of any other kind ("pod C").
        let after = text[m.end..].chars().next();
        let heading = after.is_some_and(|a| a == '-' || a == ':');
        let glued = text[..m.start].chars().next_back().is_some_and(char::is_alphanumeric);
        // A letter read out before a number is part of a code or postcode ("E eight, three D").
        let rest = text[m.end..].trim_start_matches([' ', ',', '，']);
        let spelled = rest.starts_with(|c: char| c.is_ascii_digit())
            || rest.split(|c: char| !c.is_ascii_alphabetic()).next().is_some_and(spoken::is_number_word);
        let initial = (cat == Category::Name || spelled) && c.is_ascii_uppercase() && c != 'I' && c != 'A' && !heading && !glued;
        // A family name alone stands before a title (刘医生), after 老 or 小 (老周), or before a
        // pause, not inside a word (华语).
        let glued_han = text[m.end..].chars().next().is_some_and(lexicon::is_han);
        let titled = ZH_TITLES.iter().any(|t| text[m.end..].starts_with(t)) || text[..m.start].ends_with(['老', '小']);
        let surname = cat == Category::Name && lexicon::ZH_SURNAMES.0.contains(&c) && (titled || !glued_han);
        if lexicon::is_han(c) && !surname || c.is_ascii_alphabetic() && !initial {
            return true;
        }
    }
    // A Chinese name holds no particle (查了, 好的吗) and is no clinical word that starts with a
    // family name (高血压, 白细胞).
    if cat == Category::Name && span.chars().all(lexicon::is_han) {
        if span.chars().any(|c| "了的吗呢吧啊么着".contains(c)) || ZH_NOT_NAMES.iter().any(|w| span.contains(w)) {
            return true;
        }
    }
    // A number of any kind without a digit or a number word is noise when its words are
    // frequent ones ("the", 家里座机是); a rarer word may be an identifier the tagger misnamed.
    let numeral = |c: char| c.is_ascii_digit() || "〇零一二三四五六七八九十百千幺两".contains(c);
    let ascii_words: Vec<String> =
        span.split(|c: char| !c.is_ascii_alphabetic()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    let number = !matches!(cat, Category::Name | Category::Location | Category::Date | Category::Email | Category::Url);
    if number
        && !span.chars().any(numeral)
        && ascii_words.iter().all(|w| lexicon::COMMON.contains(w) && !spoken::is_number_word(w))
    {
        return true;
    }
    // The label of a number is not the number ("CA DL B7730219").
    if number && LABEL_WORDS.contains(&span.to_ascii_lowercase().as_str()) {
        return true;
    }
    // A place of one or two digits is a score or a room ("GCS 13"); a ZIP code has more.
    if cat == Category::Location && span.chars().all(|c| c.is_ascii_digit()) && span.len() < 4 {
        return true;
    }
    // A time of day and a decimal are no dates.
    if cat == Category::Date && TIME_OR_DECIMAL.as_ref().is_some_and(|r| r.is_match(span)) {
        return true;
    }
    // An age in words only with a cue, which the rules read ("she's ninety three", 今年九十二了):
    // alone it is as often a reading ("over ninety-four") or a count (serial sevens, 九十三).
    if cat == Category::Age && span.chars().all(|c| "〇零一二三四五六七八九十百".contains(c)) {
        return true;
    }
    // A date in digits alone has two numbers or six digits ("6/4", "20240314"): "6", "8/" and
    // ",310" are pieces of doses and readings.
    if cat == Category::Date && span.chars().all(|c| !c.is_alphabetic()) {
        let digits = span.chars().filter(char::is_ascii_digit).count();
        let numbers = span.split(|c: char| !c.is_ascii_digit()).filter(|n| !n.is_empty()).count();
        if numbers < 2 && digits < 6 {
            return true;
        }
    }
    // The word filters below read Latin letters, accented ones too ("Sí", "Qué"); not digits
    // nor other scripts.
    let latin = |c: char| c.is_ascii_alphabetic() || c.is_alphabetic() && ('\u{c0}'..='\u{24f}').contains(&c);
    if span.chars().any(|c| c.is_ascii_digit() || c.is_alphabetic() && !latin(c)) {
        return false;
    }
    let raw: Vec<&str> = span.split(|c: char| !latin(c)).filter(|w| !w.is_empty()).collect();
    if raw.is_empty() {
        return false;
    }
    let words: Vec<String> = raw.iter().map(|w| w.to_lowercase()).collect();
    // "Maple Ridge", "Rose Hill": capitals after the first word make a proper name of common
    // words; so does a capital inside a sentence ("talk to Bill").
    let capital = |w: &str| w.starts_with(char::is_uppercase);
    let before = text[..m.start].trim_end_matches([' ', '\t', '"', '\'']);
    let title = before.strip_suffix('.').is_some_and(|b| {
        let word = b.rsplit(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or_default().to_ascii_lowercase();
        TITLES.contains(&word.as_str())
    });
    // After a speaker's label ("[doctor] Good.") a turn starts as a sentence does.
    let sentence_start = !title && before.chars().last().is_none_or(|c| ".?!:]\n¿¡".contains(c));
    let titled = raw.iter().skip(1).any(|w| capital(w)) || (capital(raw[0]) && !sentence_start);
    let all = |f: &dyn Fn(&str) -> bool| words.iter().all(|w| f(w));
    let numbers = matches!(cat, Category::Age | Category::Date);
    let weekday = |w: &str| spoken::is_weekday(w) || spoken::is_weekday(w.strip_suffix('s').unwrap_or(w));
    // A date in words has a month, a day ("twelfth") or three numbers ("ten, fourteen,
    // forty-eight"); "two", "-six" and "nineteen" are pieces of years and readings.
    let date_word = |w: &str| spoken::is_month(w) || spoken::is_ordinal(w);
    let number_count = words.iter().filter(|w| spoken::is_number_word(w)).count();
    let loose_date = cat == Category::Date && !words.iter().any(|w| date_word(w)) && number_count < 3;
    // A reading ("seven point two", "ninety percent") is no identifier but an address.
    let numeric = !matches!(cat, Category::Name | Category::Location | Category::IpAddress | Category::Url);
    let reading = !numbers && numeric && words.iter().any(|w| w == "point" || w == "percent");
    // "six weeks", "Seven West"? the first, not the second: a number and a unit of time.
    let time = |w: &str| spoken::is_number_word(w) || TIME_UNITS.contains(&w);
    // Only lower-case frequent words make no place in a text written with capitals ("take
    // care"); in a transcript in lower case "mass general" may be one.
    let plain_place = cat == Category::Location && cased && raw == words && all(&|w| lexicon::COMMON.contains(w));
    // A speaker's label ("Caller:", "Call handler:", "Guest:") made of role words.
    let label = text[m.end..].trim_start_matches([' ', '\t']).starts_with([':', '：'])
        && all(&|w| SPEAKER_ROLES.contains(&w) || lexicon::NOT_NAMES.contains(w));
    // Words never in a name (a lone "w" for "with" aside); in title case too when one of them
    // is a role or service ("via EMS", "Dear Colleague"; but "Ms. Page").
    let not_name = |w: &str| lexicon::NOT_NAMES.contains(w) || w.len() == 1 && raw.iter().any(|r| *r == w);
    let roles = words.iter().any(|w| lexicon::ROLE_WORDS.contains(w));
    let role = cat == Category::Name
        && (label || (!titled || roles) && all(&not_name) && words.iter().any(|w| lexicon::NOT_NAMES.contains(w)));
    // A place made of words that are never names, one a role or service ("Consultant
    // Rheumatologist", "Pathology").
    let service = cat == Category::Location && roles && all(&|w| lexicon::NOT_NAMES.contains(w));
    // A drug's name ("eliquis", "Amlodipine ten" opening a turn) is no name or place.
    let drug = matches!(cat, Category::Name | Category::Location)
        && !titled
        && words.iter().any(|w| medications::is_known(w))
        && all(&|w| medications::is_known(w) || spoken::is_number_word(w));
    // Malay, Indonesian, Filipino or Spanish words mixed into English ("Kaki kanan saya",
    // "doktor", "Kumusta ka", "Es la pierna"; one at least no frequent English word, so not "mass general"): in lower
    // case in a text written with capitals, or with no word a known name and no capital but
    // where a sentence starts ("dan" and "may" are words there, "Dan" and "May" may be names).
    let known_name =
        |w: &str| lexicon::FIRST_NAMES.contains(w) || lexicon::SURNAMES.contains(w) || lexicon::GIVEN_MORE.contains(w);
    let foreign = matches!(cat, Category::Name | Category::Location)
        && words.iter().any(|w| lexicon::FOREIGN_ONLY.contains(w) && !common(w))
        && all(&|w| lexicon::FOREIGN_COMMON.contains(w) || common(w))
        && (cased && raw == words || !titled && !words.iter().any(|w| known_name(w)));
    loose_date
        || foreign
        || service
        || reading
        || plain_place
        || role
        || drug
        || (matches!(cat, Category::Name | Category::Location) && all(&time))
        || all(&weekday)
        || (cat == Category::Age && all(&spoken::is_number_word))
        || (!numbers && all(&spoken::is_number_word) && words.len() < 4)
        || (cat == Category::Name && !titled && all(&|w| common(w) || spoken::is_number_word(w)))
        || (!numbers && words.len() == 1 && raw[0] == words[0] && common(&words[0]))
}

/// A frequent English word, or (when no known name) its plural or with "re" ("pets", "recheck").
fn common(w: &str) -> bool {
    let derived = |v: Option<&str>| v.is_some_and(|v| v.len() >= 3 && lexicon::COMMON.contains(v));
    lexicon::COMMON.contains(w)
        || !lexicon::FIRST_NAMES.contains(w) && !lexicon::SURNAMES.contains(w) && (derived(w.strip_suffix('s')) || derived(w.strip_prefix("re")))
}

/// A name or place of the tagger cut where a sentence ends inside it ("kwabena. kwabena
/// owusu-ansah", "at work. he"), but not after "St." or "Dr.".
fn sentences(text: &str, m: Span) -> Vec<Span> {
    if !matches!(m.cat, Category::Name | Category::Location) {
        return without_separators(text, m).into_iter().collect();
    }
    let span = &text[m.start..m.end];
    // A full stop before a space or a letter ("feeney.i had"), after a word that is not an
    // initial or a title, and a line break.
    let ends = span.char_indices().filter(|&(at, c)| {
        let next = span[at + c.len_utf8()..].chars().next();
        if c == '\n' {
            return true;
        }
        if c != '.' || !next.is_some_and(|n| n == ' ' || n.is_alphabetic()) {
            return false;
        }
        let word = span[..at].rsplit(|c: char| !c.is_alphabetic()).next().unwrap_or_default().to_lowercase();
        word.chars().count() > 1 && !TITLES.contains(&word.as_str())
    });
    let mut pieces = Vec::new();
    let mut at = m.start;
    for end in ends.map(|(e, _)| m.start + e).chain([m.end]) {
        if let Some((a, b)) = trimmed(text, at, end) {
            let piece = if m.cat == Category::Name { without_role_words(text, a, b) } else { Some((a, b)) };
            pieces.extend(piece.map(|(a, b)| Span::new(m.cat, a, b, m.conf)));
        }
        at = end + 1;
    }
    pieces
}

/// A name without the role words at its ends: a relation or role before it ("dtr siobhan"), a
/// qualification after it ("Helen McCartney MRCGP").
fn without_role_words(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let words: Vec<(usize, usize)> = text[start..end]
        .split_whitespace()
        .map(|w| {
            let at = w.as_ptr() as usize - text.as_ptr() as usize;
            (at, at + w.len())
        })
        .collect();
    let role = |&(a, b): &(usize, usize)| {
        let w = text[a..b].trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
        lexicon::ROLE_WORDS.contains(&w)
    };
    let first = words.iter().position(|w| !role(w))?;
    let last = words.iter().rposition(|w| !role(w))?;
    Some((words[first].0, words[last].1))
}

/// `m` without the separators at its ends ("Friday the 17th,", "，一五九 八三四五"), if anything
/// is left.
fn without_separators(text: &str, m: Span) -> Option<Span> {
    let separator = |c: char| c.is_whitespace() || ",;:，。；：、!?！？".contains(c);
    let s = &text[m.start..m.end];
    let inner = s.trim_start_matches(separator);
    let start = m.start + s.len() - inner.len();
    let mut inner = inner.trim_end_matches(separator);
    // A closing bracket whose opening one is outside: "（电话0571-8820 3361）".
    for (open, close) in [('(', ')'), ('（', '）')] {
        if !inner.contains(open) {
            inner = inner.trim_end_matches(close).trim_end_matches(separator);
        }
    }
    (!inner.is_empty()).then_some(Span { start, end: start + inner.len(), ..m })
}

// A time of day ("8pm", "11:30 am") or a decimal whose whole part is neither a day nor a month
// ("38.9"; "5.6" may be the 6th of May).
lexicon::regex!(TIME_OR_DECIMAL = r"(?i)^(?:[0-9]{1,2}(?::[0-9]{2})?[ \t]*[ap]\.?m\.?|(?:3[2-9]|[4-9][0-9]|[0-9]{3,})\.[0-9]+)$");

/// Does `m` overlap a placeholder written in the text?
fn in_placeholder(text: &str, m: &Span) -> bool {
    let mut from = m.start.saturating_sub(40);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let mut to = (m.end + 40).min(text.len());
    while !text.is_char_boundary(to) {
        to += 1;
    }
    lexicon::matches(&PLACEHOLDER, &text[from..to]).any(|p| from + p.start() < m.end && from + p.end() > m.start)
}

lexicon::regex!(PLACEHOLDER = r"\[[A-Z][A-Z_]*[A-Z](?:_[0-9]+)?\]");

/// Labels of numbers, which a tagger may read as the number.
const LABEL_WORDS: [&str; 12] = ["dl", "id", "sn", "mrn", "dob", "nhs", "ssn", "tel", "ph", "fax", "ff", "no"];

/// Abbreviations a full stop ends that no sentence ends with: "Dr.", "St.", "Prof.".
const TITLES: [&str; 19] = [
    "st", "mt", "dr", "ft", "mr", "mrs", "ms", "prof", "rev", "sgt", "capt", "jr", "sr", "lt", "col", "gen", "hon", "no", "fr",
];

/// Roles that label a speaker's turn in transcripts, some of them also surnames (Guest, Speaker).
const SPEAKER_ROLES: [&str; 9] = ["caller", "handler", "operator", "guest", "speaker", "family", "parent", "interpreter", "translator"];

/// Words for lengths of time.
const TIME_UNITS: [&str; 12] =
    ["second", "seconds", "minute", "minutes", "hour", "hours", "day", "days", "week", "weeks", "month", "months"];

/// `start..end` without the spaces and punctuation at its ends, if a letter or digit is left.
fn trimmed(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let s = text.get(start..end)?;
    let edge = |c: char| !c.is_alphanumeric();
    let inner = s.trim_start_matches(edge);
    let a = start + (s.len() - inner.len());
    let inner = inner.trim_end_matches(edge);
    (!inner.is_empty()).then_some((a, a + inner.len()))
}

/// Overlapping spans of any categories as one span over their union, of the category of the
/// most confident among them (then the longest), with its confidence.
fn unite(mut found: Vec<Span>) -> Vec<Span> {
    found.retain(|s| s.start < s.end);
    found.sort_by_key(|s| (s.start, s.end));
    let mut out: Vec<(Span, Span)> = Vec::with_capacity(found.len());
    for s in found {
        match out.last_mut() {
            Some((group, best)) if s.start < group.end => {
                group.end = group.end.max(s.end);
                let surer = s.conf.total_cmp(&best.conf).then((s.end - s.start).cmp(&(best.end - best.start)));
                if surer.is_gt() {
                    *best = s;
                }
            }
            _ => out.push((s, s)),
        }
    }
    out.into_iter().map(|(group, best)| Span::new(best.cat, group.start, group.end, best.conf)).collect()
}

/// Adds the other mentions of the names either engine found, in any case ("Mele Havili" found,
/// then "MELE" in a header and "mele" in a transcript): each word of a name of three letters
/// or more that is not a common word, wherever it stands as a word; a Chinese name whole.
fn spread_names(text: &str, found: &mut Vec<Span>) {
    let words_of = |s: &str| tagger::tokenize(s).0.into_iter().map(move |t| (t.start, t.end));
    let mut names: HashSet<String> = HashSet::new();
    for s in found.iter().filter(|s| s.cat == Category::Name) {
        let name = &text[s.start..s.end];
        for (a, b) in words_of(name) {
            let w = name[a..b].to_lowercase();
            let plain = w.chars().count() >= 3 && w.chars().all(|c| c.is_alphabetic() && !lexicon::is_han(c));
            if plain && !lexicon::NOT_NAMES.contains(&w) && !lexicon::AMBIGUOUS.contains(&w) {
                names.insert(w);
            }
        }
    }
    names_zh::spread(text, found);
    if !names.is_empty() {
        let more: Vec<Span> = words_of(text)
            .filter(|&(a, b)| names.contains(&text[a..b].to_lowercase()))
            .map(|(a, b)| Span::new(Category::Name, a, b, 0.7))
            .collect();
        found.extend(more);
    }
}

/// Merges overlapping spans of one category into their union, then settles overlaps between
/// categories in favour of the more confident span (then the longer, then the earlier).
pub(crate) fn resolve(mut found: Vec<Span>) -> Vec<Span> {
    found.retain(|s| s.start < s.end);
    found.sort_by_key(|s| (s.cat, s.start, s.end));
    let mut merged: Vec<Span> = Vec::with_capacity(found.len());
    for s in found {
        match merged.last_mut() {
            Some(last) if last.cat == s.cat && s.start < last.end => {
                last.end = last.end.max(s.end);
                last.conf = last.conf.max(s.conf);
            }
            _ => merged.push(s),
        }
    }
    merged.sort_by(|a, b| {
        b.conf.total_cmp(&a.conf).then((b.end - b.start).cmp(&(a.end - a.start))).then(a.start.cmp(&b.start))
    });
    // Accepted spans by start: one look at the neighbours on each side finds a clash.
    let mut kept: BTreeMap<usize, Span> = BTreeMap::new();
    for s in merged {
        let clash_before = kept.range(..=s.start).next_back().is_some_and(|(_, k)| k.end > s.start);
        let clash_after = kept.range(s.start..).next().is_some_and(|(_, k)| k.start < s.end);
        if !clash_before && !clash_after {
            kept.insert(s.start, s);
        }
    }
    kept.into_values().collect()
}

/// Converts byte spans to entities with character offsets, in one pass over the text.
pub(crate) fn to_entities(text: &str, spans: &[Span]) -> Vec<Entity> {
    let mut out = Vec::with_capacity(spans.len());
    let (mut byte, mut chars) = (0usize, 0usize);
    let mut advance = |to: usize| {
        chars += text.get(byte..to).map_or(0, |s| s.chars().count());
        byte = to;
        chars
    };
    for s in spans {
        let start = advance(s.start);
        let end = advance(s.end);
        out.push(Entity {
            category: s.cat,
            start,
            end,
            text: text.get(s.start..s.end).unwrap_or_default().to_string(),
            confidence: s.conf,
        });
    }
    out
}

/// What one detector finds in `text`, resolved: (category, text) pairs, for the tests.
#[cfg(test)]
pub(crate) fn found_by(find: fn(&str, &mut Vec<Span>), text: &str) -> Vec<(Category, String)> {
    let mut out = Vec::new();
    // As `spans` reads a note: traditional characters as simplified ones.
    find(&lexicon::simplified(text), &mut out);
    resolve(out).into_iter().map(|s| (s.cat, text[s.start..s.end].to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A span of `cat` over the first occurrence of `s` in `text`.
    fn span_in(text: &str, cat: Category, s: &str, conf: f32) -> Span {
        let start = text.find(s).unwrap();
        Span::new(cat, start, start + s.len(), conf)
    }

    #[test]
    fn traditional_text_is_read_as_simplified_with_its_own_offsets() {
        let text = "主診醫生：陳志明醫生（顧問醫生）。社工麥嘉欣跟進；物理治療師蔡國偉協助。居於康恩護老院。身分證字號：A123456789";
        let found: Vec<(Category, &str)> = spans(text).iter().map(|s| (s.cat, &text[s.start..s.end])).collect();
        for want in ["陳志明", "麥嘉欣", "蔡國偉", "康恩護老院", "A123456789"] {
            assert!(found.iter().any(|(_, t)| *t == want), "{want} not in {found:?}");
        }
        // Every pair keeps its length, and simplified text is left as it is.
        assert!(lexicon::simplified("什么乾隆陈志明医生").as_ref() == "什么乾隆陈志明医生");
        assert_eq!(lexicon::simplified(text).len(), text.len());
    }

    #[test]
    fn overlapping_spans_of_one_category_merge_and_the_surer_category_wins() {
        let found = vec![
            Span::new(Category::Name, 0, 4, 0.8),
            Span::new(Category::Name, 2, 9, 0.9),
            Span::new(Category::Location, 5, 12, 0.7),
            Span::new(Category::Date, 20, 25, 0.9),
        ];
        let kept = resolve(found);
        assert_eq!(kept, vec![Span::new(Category::Name, 0, 9, 0.9), Span::new(Category::Date, 20, 25, 0.9)]);
    }

    #[test]
    fn the_ensemble_lets_no_character_through_where_the_engines_disagree() {
        let text = "record number is eight five nine six, on 03/14/2024, 2024年4月20日 ok";
        let span = |cat, s: &str, conf| span_in(text, cat, s, conf);
        let rules = vec![
            span(Category::MedicalRecord, "five nine six", 0.8),
            span(Category::Date, "03/14/2024", 0.95),
            span(Category::Date, "2024年4月20日", 0.95),
        ];
        // The tagger: other categories over the number (two number words alone are no
        // identifier, so the rules' category stands), one date over both dates.
        let model = vec![
            span(Category::Phone, "eight five", 0.9),
            span(Category::Ssn, "six", 0.6),
            span(Category::Date, "03/14/2024, 2024年4月20日", 0.9),
        ];
        let got: Vec<(Category, &str)> =
            ensemble(text, rules, model).iter().map(|s| (s.cat, &text[s.start..s.end])).collect();
        assert_eq!(
            got,
            vec![
                (Category::MedicalRecord, "eight five nine six"),
                (Category::Date, "03/14/2024"),
                (Category::Date, "2024年4月20日"),
            ]
        );
    }

    #[test]
    fn the_taggers_words_beside_a_rules_name_become_names_when_they_can_be() {
        let text = "Mele Havili seen by Dr. Lee agreed; talk to Bill. Good.";
        let span = |s: &str, conf| span_in(text, Category::Name, s, conf);
        let rules = vec![span("Mele", 0.9), span("Lee", 0.9)];
        let model = vec![span("Mele Havili", 0.8), span("Lee agreed", 0.8), span("Bill", 0.7), span("Good", 0.6)];
        let got: Vec<&str> = ensemble(text, rules, model).iter().map(|s| &text[s.start..s.end]).collect();
        assert_eq!(got, ["Mele", "Havili", "Lee", "Bill"]);
    }

    #[test]
    fn tagger_spans_that_cannot_be_identifiers_go_and_spread_nothing() {
        let text = "born ten, fourteen, forty-eight. pain ten of ten. on eliquis. Amlodipine ten. \
                    起来三四趟，老周说的。 call the desk, I said; BNP 1,310. \
                    since nineteen sixty; seven point two; he got it at work. he said thursdays. Ama. Ama Owusu. \
                    Back in six weeks; take care. Pharmacist: hi";
        let span = |cat, s: &str| span_in(text, cat, s, 0.8);
        let rules = vec![span(Category::Date, "ten, fourteen, forty-eight")];
        let model = vec![
            span(Category::Name, "ten"),
            span(Category::Name, "eliquis"),
            span(Category::Name, "Amlodipine ten"),
            span(Category::Location, "趟"),
            span(Category::Name, "周"),
            span(Category::Phone, "the"),
            span(Category::Name, "I"),
            span(Category::Date, ",310"),
            span(Category::Date, "nineteen"),
            span(Category::Ssn, "point two"),
            span(Category::Location, "work. he"),
            span(Category::Name, "Ama. Ama Owusu"),
            span(Category::Name, "thursdays"),
            span(Category::Location, "six weeks"),
            span(Category::Location, "take care"),
            span(Category::Name, "Pharmacist"),
        ];
        let got: Vec<(Category, &str)> =
            ensemble(text, rules, model).iter().map(|s| (s.cat, &text[s.start..s.end])).collect();
        let want = [(Category::Date, "ten, fourteen, forty-eight"), (Category::Name, "周")];
        let names = [(Category::Name, "Ama"), (Category::Name, "Ama Owusu")];
        assert_eq!(got, [&want[..], &names[..]].concat());
    }

    #[test]
    fn placeholders_in_the_text_are_left_alone() {
        let text = "Phone [PHONE_1]. Seen at [LOCATION_1] by [NAME].";
        let model = vec![span_in(text, Category::Location, "PHONE", 0.8), span_in(text, Category::Name, "NAME", 0.8)];
        assert!(ensemble(text, vec![], model).is_empty());
    }

    #[test]
    fn hand_over_headings_roles_services_times_and_qualifications_are_no_identifiers() {
        let text = "HANDOFF pod C\nB- hx DM2. R: f/u. ward 5W. via EMS (Medic 14). CC: AMS. Dear Colleague,\n\
                    Consultant Rheumatologist; CA DL B7; GCS 13; febrile 38.9 @ 8pm. Dr Helen McCartney MRCGP; \
                    NOK dtr siobhan; this is harold feeney.i had it; maria\nsent from my phone; Dr. May Chen";
        let span = |cat, s: &str| span_in(text, cat, s, 0.8);
        let model = vec![
            span(Category::IdNumber, "C"),
            span(Category::Name, "B"),
            span(Category::Name, "R"),
            span(Category::IdNumber, "W"),
            span(Category::Name, "EMS"),
            span(Category::Name, "Medic"),
            span(Category::Name, "AMS"),
            span(Category::Name, "Colleague"),
            span(Category::Location, "Rheumatologist"),
            span(Category::Vehicle, "DL"),
            span(Category::Location, "13"),
            span(Category::Date, "38.9"),
            span(Category::Date, "8pm"),
            span(Category::Name, "Helen McCartney MRCGP"),
            span(Category::Name, "dtr siobhan"),
            span(Category::Name, "harold feeney.i"),
            span(Category::Name, "maria\nsent"),
            span(Category::Name, "May Chen"),
        ];
        let got: Vec<&str> = ensemble(text, vec![], model).iter().map(|s| &text[s.start..s.end]).collect();
        assert_eq!(got, ["Helen McCartney", "siobhan", "harold feeney", "maria", "May Chen"]);
    }

    #[test]
    fn particles_clinical_words_glued_family_names_and_plural_common_words_are_no_names() {
        let text = "患者：查了，阳性。家属：高血压。Explained to son in 华语; 刘医生 came. [doctor] any pets? let's recheck. Zhou Ming said";
        let span = |s: &str| span_in(text, Category::Name, s, 0.9);
        let model = vec![span("查了"), span("高血压"), span("华"), span("刘"), span("pets"), span("recheck"), span("Zhou Ming")];
        let got: Vec<&str> = ensemble(text, vec![], model).iter().map(|s| &text[s.start..s.end]).collect();
        assert_eq!(got, ["刘", "Zhou Ming"]);
    }

    #[test]
    fn malay_and_filipino_words_are_no_names_but_names_spelt_like_them_stay() {
        let text = "Patient: Kaki kanan saya ni, doktor. Kumusta ka? She came with Ada.";
        let span = |s: &str| span_in(text, Category::Name, s, 0.9);
        let model = vec![span("Kaki kanan"), span("doktor"), span("Kumusta ka"), span("Ada")];
        let got: Vec<&str> = ensemble(text, vec![], model).iter().map(|s| &text[s.start..s.end]).collect();
        assert_eq!(got, ["Ada"]);
        // In a transcript in lower case, a word that is also a given name may be one.
        let lower = "[patient] my son tama drove me and kaki kanan saya sakit";
        let model = vec![span_in(lower, Category::Name, "tama", 0.9), span_in(lower, Category::Name, "kaki kanan", 0.9)];
        let got: Vec<&str> = ensemble(lower, vec![], model).iter().map(|s| &lower[s.start..s.end]).collect();
        assert_eq!(got, ["tama"]);
        // Frequent English words of those languages' lists ("may", "dan") make no such span.
        assert!(lexicon::FOREIGN_ONLY.contains("kaki") && !lexicon::FOREIGN_ONLY.contains("may") && !lexicon::FOREIGN_ONLY.contains("dan"));
        assert!(lexicon::FOREIGN_ONLY.len() > 5000 && lexicon::FOREIGN_ONLY.iter().all(|w| lexicon::FOREIGN_COMMON.contains(w)));
        assert!(lexicon::FOREIGN_COMMON.len() > lexicon::FOREIGN_ONLY.len() && lexicon::FOREIGN_COMMON.contains("may"));
        // Spanish too, accents and all; Spanish names stay out of the list.
        let text = "Patient: Es la pierna, doctora. ¿Ojalá que no? Sí, Marisol will call you.";
        let model = ["la pierna", "Ojalá que no", "Sí", "Marisol"].map(|w| span_in(text, Category::Name, w, 0.9)).to_vec();
        let got: Vec<&str> = ensemble(text, vec![], model).iter().map(|s| &text[s.start..s.end]).collect();
        assert_eq!(got, ["Marisol"]);
        assert!(["maría", "josé", "luz", "rosa"].iter().all(|w| !lexicon::FOREIGN_COMMON.contains(*w)));
    }

    #[test]
    fn speakers_labels_and_greetings_are_no_names_and_separators_leave_the_taggers_spans() {
        let text = "[doctor] Welcome. [patient] ouch.\nCall handler: hi\nCaller: Cheers. By Friday the 17th, \
                    call 一八六，八零二八。 Seen with Ms. Guest. （电话0571-8820 3361）";
        let span = |cat, s: &str| span_in(text, cat, s, 0.8);
        let model = vec![
            span(Category::Name, "Welcome"),
            span(Category::Name, "ouch"),
            span(Category::Name, "handler"),
            span(Category::Name, "Caller"),
            span(Category::Name, "Cheers"),
            span(Category::Date, "Friday the 17th,"),
            span(Category::Phone, "一八六，八零二八。"),
            span(Category::Phone, "0571-8820 3361）"),
            span(Category::Name, "Guest"),
        ];
        let got: Vec<(Category, &str)> =
            ensemble(text, vec![], model).iter().map(|s| (s.cat, &text[s.start..s.end])).collect();
        let want = [
            (Category::Date, "Friday the 17th"),
            (Category::Phone, "一八六，八零二八"),
            (Category::Name, "Guest"),
            (Category::Phone, "0571-8820 3361"),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn names_after_titles_and_places_named_like_words_stay() {
        let text = "Seen with Dr. Green and Prof. Little; Ms. Page and Asa came from High Point. Doctor: hi";
        let span = |cat, s: &str| span_in(text, cat, s, 0.8);
        let model = vec![
            span(Category::Name, "Green"),
            span(Category::Name, "Prof. Little"),
            span(Category::Name, "Page"),
            span(Category::Name, "Asa"),
            span(Category::Location, "High Point"),
            span(Category::Name, "Doctor"),
        ];
        let got: Vec<&str> = ensemble(text, vec![], model).iter().map(|s| &text[s.start..s.end]).collect();
        assert_eq!(got, ["Green", "Prof. Little", "Page", "Asa", "High Point"]);
    }

    #[test]
    fn a_code_found_in_pieces_is_replaced_whole() {
        let text = "activation code KXD4-9RT2-W7PM. Prior authorization PA-88213-0421 is on 2021-03-04 (Dr Lee).";
        let at = |s: &str| text.find(s).unwrap();
        let piece = |cat, s: &str, conf| Span::new(cat, at(s), at(s) + s.len(), conf);
        let found = vec![
            piece(Category::Other, "KXD4-", 0.6),
            piece(Category::HealthPlan, "9", 0.5),
            piece(Category::Device, "RT2-", 0.7),
            piece(Category::Other, "-88213-0421", 0.9),
            piece(Category::Date, "2021-03-04", 0.95),
            piece(Category::Name, "Lee", 0.9),
        ];
        let got: Vec<(Category, &str)> = whole_codes(text, found).iter().map(|s| (s.cat, &text[s.start..s.end])).collect();
        assert_eq!(
            got,
            [
                (Category::Device, "KXD4-9RT2-W7PM"),
                (Category::Other, "PA-88213-0421"),
                (Category::Date, "2021-03-04"),
                (Category::Name, "Lee")
            ]
        );
        // A code never grows into a word without digits, a sentence's full stop or another span.
        let text = "ref 12 units/day. MRN 0047712.";
        let found = vec![Span::new(Category::Other, 4, 6, 0.8), Span::new(Category::MedicalRecord, 22, 29, 0.9)];
        let got: Vec<&str> = whole_codes(text, found).iter().map(|s| &text[s.start..s.end]).collect();
        assert_eq!(got, ["12", "0047712"]);
    }

    #[test]
    fn codes_grown_over_any_pieces_leave_sorted_disjoint_spans_on_character_boundaries() {
        // Random non-overlapping pieces of every category over texts with codes, joiners and
        // combining marks (a random test found a code grown back over two pieces that then
        // overlapped, and `whole_characters` sliced past its bound).
        let texts = ["a n9\u{301}xL5B 3si a x", "ab1-cd2-ef3\u{301}x 9/9*k 12.3.4 Z-9", "é9a-b2 \u{301}1-2-3 x_y7"];
        let cats = [Category::Other, Category::Device, Category::Name, Category::Date, Category::Phone];
        let mut seed = 7u64;
        let mut next = |n: usize| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        for text in texts {
            let bounds: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
            for _ in 0..2000 {
                let mut found = Vec::new();
                let mut at = 0;
                while at + 1 < bounds.len() {
                    let start = at + next(3);
                    let end = start + 1 + next(4);
                    if end >= bounds.len() {
                        break;
                    }
                    found.push(Span::new(cats[next(cats.len())], bounds[start], bounds[end], next(10) as f32 / 10.0));
                    at = end;
                }
                let got = whole_characters(text, whole_codes(text, found));
                for w in got.windows(2) {
                    assert!(w[0].end <= w[1].start, "{text:?}: {got:?}");
                }
                assert!(got.iter().all(|s| s.start < s.end && text.is_char_boundary(s.start) && text.is_char_boundary(s.end)));
            }
        }
    }

    #[test]
    fn entity_offsets_count_characters_not_bytes() {
        let text = "患者李建国，电话";
        let spans = [Span::new(Category::Name, "患者".len(), "患者李建国".len(), 0.9)];
        let e = &to_entities(text, &spans)[0];
        assert_eq!((e.start, e.end, e.text.as_str()), (2, 5, "李建国"));
    }
}
