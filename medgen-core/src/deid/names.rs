//! English person names: capitalised words next to a cue (a title, a credential, a label, a
//! relative, a greeting), or a known given name followed by a capitalised word. Every name
//! found is then looked for again through the whole note ("John Smith" … "Smith said").
//! Chinese names are in `names_zh`.

use std::collections::{HashMap, HashSet};

use super::detect::Span;
use super::lexicon::{captures, matches, regex, Pattern, AMBIGUOUS, CITIES, COMMON, FIRST_NAMES, GIVEN_MORE, NOT_NAMES, REGIONS, SURNAMES};
use super::{names_zh, spoken, Category};
use crate::checks::medications;

regex!(
    TITLE = r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Drs|Prof|Professor|Doctor|Nurse|Sister|Rev|Reverend|Father|Mister|Madam|Madame|Sir|Dame|Judge|Officer|Capt|Captain|Sgt|Mme|Mlle|MR|MRS|MS|DR|PROF)(?:\.[ \t\x{3000}]*|[ \t\x{3000}]+)"
);
regex!(
    CREDENTIAL = r"(,[ \t\x{3000}]*|[ \t\x{3000}]+)(?:MD|M\.D\.|DO|D\.O\.|RN|NP|PA-C|PA|MBBS|MBChB|FRCS|FRCP|FRCPC|PhD|DDS|DMD|PharmD|APRN|CNM|CRNA|LPN|LVN|MSW|LCSW|DPM|FACS|FACP|FACC|MPH|DNP|RDN|DPT|OTR|CNA|ARNP|FNP|FNP-BC|BSN|MSN|RRT)\b"
);
// A label before a colon: what follows is a name (strong) or may be one (weak: speakers in a
// dialogue, "Patient:", "To:").
regex!(
    LABEL_STRONG = r"(?i)\b(?:name|attending|surgeon|surgeons|assistant|assistants|anesthesiologist|anaesthetist|anesthetist|physician|resident|fellow|intern|provider|pcp|gp|consultant|by|author|attn|kin|guardian|proxy|pathologist|radiologist|clinician|therapist|practitioner|midwife|witness|interpreter|caregiver|referring|referrer|cc|dictated|transcribed|signed)\b[ \t\x{3000}]*(?:\([^)\n]{0,30}\))?[ \t\x{3000}]*:[ \t\x{3000}]*"
);
regex!(
    LABEL_WEAK = r"(?i)\b(?:patient|pt|doctor|nurse|mother|father|wife|husband|son|daughter|parent|from|to|re|contact|spouse|informant|mom|dad|sister|brother|child|guarantor|insured|subscriber|member)\b[ \t\x{3000}]*:[ \t\x{3000}]*"
);
regex!(
    RELATIVE = r"(?i)\b(?:wife|husband|spouse|partner|son|daughter|mother|father|mom|dad|brother|sister|niece|nephew|aunt|uncle|cousin|grandson|granddaughter|grandmother|grandfather|grandma|grandpa|friend|(?:my|his|her|their|our|your) mate|neighbou?r|caregiver|carer|fianc[ée]e?|boyfriend|girlfriend|stepson|stepdaughter|roommate|guardian|sibling|twin)\b,?[ \t\x{3000}]+(?:(?:named|called|is|was)[ \t\x{3000}]+)?"
);
regex!(
    ROLE_IN_PARENS = r"[ \t\x{3000}]*\((?:the[ \t\x{3000}]+)?(?:patient|son|daughter|mother|father|wife|husband|spouse|partner|brother|sister|guardian|caregiver|niece|nephew|aunt|uncle|friend|neighbou?r|grand\w+|parent|mom|dad|child)\b"
);
// Cues written in lower case, as in terse hand-overs and patients' messages ("pt mrs o'neill",
// "under mr whitcombe", "sw (jen ruiz)"): a title, a title that is also a clinical
// abbreviation (mr: mitral regurgitation, ms: multiple sclerosis), or a role or relative.
regex!(
    LOWER_CUE = r"\b(?:(?P<title>mrs|miss|mister|missus|dr|fr|prof|doctor)|(?P<weak>mr|ms)|(?P<role>rn|RN|sw|SW|pt|nok|NOK|dtr|wife|husband|son|daughter|brother|sister|mum|mom|dad|partner|friend|neighbou?r|carer|caregiver|(?:nurse|pharmacist|adjuster|therapist|physio|social worker|case worker|caseworker|aide|receptionist|coordinator|interpreter|chaplain|midwife)(?: there| here)?(?: is| was)?(?: called| named)?)|(?P<kin>manager|boss|supervisor|co-?worker|roommate|fianc[eé]e?|grandson|granddaughter|niece|nephew|uncle|aunt|cousin))(?:\.[ \t]*|[ \t]+)(?P<paren>\([ \t]*)?"
);
// A Malay, Indian or Iban name with its father's: "Nurul Ain binti Hashim", "Kavitha a/p
// Subramaniam". Not "s/o" ("suggestive of" as often as "son of") nor "A/P" (assessment and plan).
regex!(
    PATRONYMIC = {
        let word = r"(?:[A-Z][a-z'’-]+|[A-Z]{2,})";
        format!(r"\b{word}(?: {word}){{0,3}} (?:bin|binti|bte|bt|a/p|a/l|anak|BIN|BINTI) {word}(?: {word}){{0,2}}\b")
    }
);
// What comes before "mr" or "ms" when it is a title: the patient, a bed, a surgeon's list.
regex!(WEAK_TITLE_LEAD = r"(?i)(?:^|\n|\b(?:pt|patient|bed[ \t]*\d+[ \t-]*|under|by|with|to|for|and|see|saw|seen|called|from|per|dear)[ \t]*|[(:-][ \t]*)$");
regex!(INTRO = r"(?i)\b(?:my name is|name is|i am|i'm|this is|call me|named|called)[ \t\x{3000}]+");
regex!(
    GREETING = r"(?i)\b(?:hi|hello|hey|dear|thanks|thank you|good (?:morning|afternoon|evening)|nice to meet you|bye|goodbye|welcome|sorry|well done),?[ \t\x{3000}]+"
);
// The close of a letter or an e-mail, the writer's name on the next line.
regex!(
    SIGN_OFF = r"(?im)^[ \t]*(?:best|best wishes|all the best|kind regards|warm regards|regards|many thanks|thanks|thank you|sincerely|yours sincerely|yours faithfully|yours truly|cheers|warmly|with thanks)[,.!]?[ \t]*\r?\n[ \t]*"
);
// Words after a capitalised word that make it an eponym: Parkinson's disease, Foley catheter.
regex!(
    EPONYM_HEAD = r"(?i)^(?:'s|’s|s'|’|')?[ \t\x{3000}]+(?:disease|syndrome|sign|test|maneuver|manoeuvre|reflex|score|scale|criteria|criterion|classification|catheter|tube|drain|line|procedure|operation|repair|incision|position|lymphoma|sarcoma|tumou?r|palsy|phenomenon|triangle|fingers?|malformation|fracture|ulcer|node|cyst|diverticulum|o?esophagus|thyroiditis|encephalopathy|ana?emia|disorder|law|rule|formula|equation|stain|staining|method|technique|approach|solution|cells?|bod(?:y|ies)|space|ligament|canal|duct|gland|nerve|area|loop|hernia|index|grade|stage|staging|type|effect|point|respiration|breathing|murmur|sound|ratio|coma|angle|sheath|needle|forceps|retractor|clamp|stitch|suture|mask|valve|shunt|pouch|bag|pump|cannula|balloon|stent|graft|flap|block|cast|splint|view|projection|ring|spots?|lines|nodules?|crisis|reaction|dementia|chorea|ataxia|neuralgia|contracture|deformity|osteotomy|fundoplication|gastrectomy|questionnaire|inventory|assessment|protocol|regimen|trocar|system|units?|agar|medium|bacillus|virus|fever|pneumonia|o?edema|curve|chart|table|dressing|tape|phase|pattern|hypothesis|nodes|tract|artery|vein|pressure|wave|waves|complex|cycle|equation|trial|study|surgery|tear|\w+(?:ectomy|otomy|ostomy|plasty|pexy|scopy|rrhaphy))\b"
);

/// Does `rest` (the text after a capitalised word) make that word an eponym or a thing's name
/// ("'s disease", " catheter", " scale")?
pub(crate) fn is_eponym_head(rest: &str) -> bool {
    // The head word is near: look at a short window, not the rest of a long note.
    let mut end = rest.len().min(48);
    while !rest.is_char_boundary(end) {
        end -= 1;
    }
    EPONYM_HEAD.as_ref().is_some_and(|r| r.is_match(&rest[..end]))
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Capitalised with lower-case letters: Smith, McDonald, O'Brien, Whitfield-Moss.
    Cap,
    /// All capitals, two letters or more: SMITH.
    Upper,
    /// One capital letter: J (of "J. Smith").
    Initial,
    Lower,
}

struct Word {
    start: usize,
    /// End without a possessive 's.
    end: usize,
    /// End with it.
    full_end: usize,
    kind: Kind,
    lower: String,
}

struct Ctx<'a> {
    text: &'a str,
    words: Vec<Word>,
}

/// Words of Latin letters, with inner apostrophes and hyphens (O'Brien, Whitfield-Moss,
/// Parkinson's), as byte ranges. A hand-written scan: the regex with \p{Latin} was a tenth of
/// the time spent on an English note.
fn latin_words(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let latin = |c: char| c.is_alphabetic() && (c.is_ascii() || ('\u{C0}'..='\u{24F}').contains(&c));
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        let (start, _) = chars.by_ref().find(|&(_, c)| latin(c))?;
        let mut end = text.len();
        while let Some(&(i, c)) = chars.peek() {
            // A combining mark stays in its word (Rene\u{301}e is René, written decomposed).
            if latin(c) || super::tagger::is_combining(c) {
                chars.next();
                continue;
            }
            // An apostrophe or hyphen joins two letters.
            let joins = matches!(c, '\'' | '’' | '-') && text[i + c.len_utf8()..].starts_with(latin);
            if joins {
                chars.next();
                continue;
            }
            end = i;
            break;
        }
        Some((start, end))
    })
}

const PARTICLES: [&str; 16] =
    ["van", "von", "der", "den", "de", "del", "della", "di", "da", "dos", "das", "du", "la", "le", "bin", "ibn"];

impl<'a> Ctx<'a> {
    fn new(text: &'a str) -> Ctx<'a> {
        let words = latin_words(text)
            .map(|(start, end)| {
                let s = &text[start..end];
                let base = s.strip_suffix("'s").or_else(|| s.strip_suffix("’s")).unwrap_or(s);
                let letters = base.chars().filter(|c| c.is_alphabetic());
                let first_upper = base.starts_with(char::is_uppercase);
                let any_lower = base.chars().any(char::is_lowercase);
                let kind = match (first_upper, any_lower, letters.count()) {
                    (true, true, _) => Kind::Cap,
                    (true, false, 1) => Kind::Initial,
                    (true, false, _) => Kind::Upper,
                    _ => Kind::Lower,
                };
                // Word lists are read without combining marks: decomposed "Jose\u{301}" is "jose".
                let lower = base.chars().filter(|&c| !super::tagger::is_combining(c)).collect::<String>().to_lowercase();
                Word { start, end: start + base.len(), full_end: end, kind, lower }
            })
            .collect();
        Ctx { text, words }
    }

    fn gap(&self, i: usize) -> &str {
        &self.text[self.words[i].full_end..self.words[i + 1].start]
    }

    /// May word `i` be part of a name? Capitalised (or all capitals where allowed) and not a
    /// word that is never a name.
    fn name_like(&self, i: usize, upper: bool) -> bool {
        let w = &self.words[i];
        (w.kind == Kind::Cap || upper && w.kind == Kind::Upper) && !NOT_NAMES.contains(&w.lower)
    }

    /// The first word at or after byte `pos` if only spaces come between.
    fn word_at(&self, pos: usize) -> Option<usize> {
        let i = self.words.partition_point(|w| w.start < pos);
        (i < self.words.len() && self.text[pos..self.words[i].start].chars().all(|c| c == ' ' || c == '\t'))
            .then_some(i)
    }

    /// The last word ending at or before byte `pos` if only spaces come between.
    fn word_before(&self, pos: usize) -> Option<usize> {
        let i = self.words.partition_point(|w| w.full_end <= pos);
        (i > 0 && self.text[self.words[i - 1].full_end..pos].chars().all(|c| c == ' ' || c == '\t')).then(|| i - 1)
    }

    /// The name that starts at word `i`: up to `max` name words (initials and particles such as
    /// "van" in between), on one line. `comma` allows one "Last, First". Returns the last word.
    fn run_forward(&self, i: usize, upper: bool, comma: bool, max: usize) -> Option<usize> {
        let (mut j, mut last, mut count, mut commas) = (i, None, 0, 0);
        while j < self.words.len() {
            let w = &self.words[j];
            if w.kind == Kind::Initial && w.lower != "i" {
                // An initial counts only when a name word follows it.
            } else if self.name_like(j, upper) {
                count += 1;
                last = Some(j);
            } else if !(PARTICLES.contains(&w.lower.as_str()) && self.particle_leads_to_name(j, upper)) {
                break;
            }
            if w.full_end != w.end || count >= max || j + 1 >= self.words.len() {
                break;
            }
            let gap = self.gap(j);
            let ok = gap == " "
                || (gap == ". " || gap == ".") && w.kind == Kind::Initial
                || comma && gap == ", " && commas == 0 && count == 1;
            if !ok {
                break;
            }
            commas += usize::from(gap == ", ");
            j += 1;
        }
        let last = last?;
        // "Nakamura," with nothing after the comma: drop a trailing comma form.
        Some(last)
    }

    /// Do particles from word `j` on ("van der") lead to a name word?
    fn particle_leads_to_name(&self, j: usize, upper: bool) -> bool {
        let mut k = j;
        while k < self.words.len() && PARTICLES.contains(&self.words[k].lower.as_str()) && k < j + 3 {
            k += 1;
        }
        k > j && k < self.words.len() && self.name_like(k, upper)
    }

    /// The name that ends at word `k`, going back up to `max` words. Returns the first word.
    fn run_backward(&self, k: usize, upper: bool, max: usize) -> Option<usize> {
        if !self.name_like(k, upper) {
            return None;
        }
        let (mut first, mut count, mut j) = (k, 1, k);
        while j > 0 && count < max {
            let gap = self.gap(j - 1);
            let prev = &self.words[j - 1];
            let joined = gap == " " || (gap == ". " && prev.kind == Kind::Initial);
            if !joined || prev.full_end != prev.end {
                break;
            }
            if prev.kind == Kind::Initial || PARTICLES.contains(&prev.lower.as_str()) {
                j -= 1;
                if prev.kind == Kind::Initial {
                    first = j;
                }
                continue;
            }
            if !self.name_like(j - 1, upper) {
                break;
            }
            j -= 1;
            first = j;
            count += 1;
        }
        Some(first)
    }

    /// May word `i`, in lower case, be a name after a lower-case cue? Not a frequent word, a
    /// word that is never a name, a number, a month or weekday, or a drug.
    fn lower_name_like(&self, i: usize) -> bool {
        let w = &self.words[i];
        w.kind == Kind::Lower
            && w.lower.chars().count() >= 2
            && w.end == w.full_end
            && !COMMON.contains(&w.lower)
            && !NOT_NAMES.contains(&w.lower)
            && !spoken::is_number_word(&w.lower)
            && !spoken::is_month(&w.lower)
            && !spoken::is_weekday(&w.lower)
            && !medications::is_known(&w.lower)
    }

    /// The lower-case name that starts at word `i`: up to `max` such words one space apart.
    /// More words follow only a known given name ("tom marsh", not "achterberg notified"),
    /// or inside brackets (`bracketed`: "(jen ruiz)").
    fn lower_run(&self, i: usize, max: usize, bracketed: bool) -> Option<usize> {
        if !self.lower_name_like(i) {
            return None;
        }
        let mut last = i;
        let more = bracketed || FIRST_NAMES.contains(&self.words[i].lower) || GIVEN_MORE.contains(&self.words[i].lower);
        while more && last + 1 < self.words.len() && last + 1 - i < max && self.gap(last) == " " && self.lower_name_like(last + 1) {
            last += 1;
        }
        Some(last)
    }

    fn in_name_lists(&self, i: usize) -> bool {
        let w = &self.words[i].lower;
        (FIRST_NAMES.contains(w) || SURNAMES.contains(w) || GIVEN_MORE.contains(w)) && !AMBIGUOUS.contains(w)
    }

    fn is_eponym(&self, last: usize) -> bool {
        is_eponym_head(&self.text[self.words[last].end..])
    }

    fn span(&self, first: usize, last: usize, conf: f32) -> Option<Span> {
        (!self.is_eponym(last)).then(|| Span::new(Category::Name, self.words[first].start, self.words[last].end, conf))
    }

    fn in_dicts(&self, first: usize, last: usize) -> bool {
        (first..=last).any(|i| {
            let w = &self.words[i].lower;
            (FIRST_NAMES.contains(w) || SURNAMES.contains(w) || GIVEN_MORE.contains(w)) && !AMBIGUOUS.contains(w)
        })
    }

    fn name_words(&self, first: usize, last: usize) -> usize {
        (first..=last).filter(|&i| matches!(self.words[i].kind, Kind::Cap | Kind::Upper)).count()
    }
}

/// Adds every person's name in `text` (English and Chinese) to `out`.
pub(crate) fn find(text: &str, out: &mut Vec<Span>) {
    let ctx = Ctx::new(text);
    let mut found = Vec::new();
    find_english(&ctx, &mut found);
    for m in matches(&PATRONYMIC, text) {
        // Titles stay outside the name: "Dr Kavitha a/p Subramaniam", "Puan Siti binti Ali".
        const TITLES: [&str; 16] =
            ["dr", "mr", "mrs", "ms", "encik", "en", "puan", "pn", "cik", "tuan", "datuk", "dato", "haji", "hajah", "prof", "sn"];
        // So do words before the name ("Husband Rosli bin Hamzah").
        // The word before the particle is the given name, whatever it also means ("Rose binti Ali").
        let words: Vec<&str> = m.as_str().split(' ').collect();
        let particle = words.iter().position(|w| w.contains('/') || ["bin", "binti", "bte", "bt", "anak"].contains(&w.to_lowercase().as_str()));
        let mut start = m.start();
        for w in &words[..particle.unwrap_or(1).saturating_sub(1)] {
            let lower = w.to_lowercase();
            if !TITLES.contains(&lower.as_str()) && !COMMON.contains(&lower) && !NOT_NAMES.contains(&lower) {
                break;
            }
            start += w.len() + 1;
        }
        found.push(Span::new(Category::Name, start, m.end(), 0.9));
    }
    names_zh::find(text, &mut found);
    // Words inside an e-mail, a URL or an address are not names of people.
    let taken: Vec<(usize, usize)> = {
        let mut t: Vec<(usize, usize)> =
            out.iter().filter(|s| s.conf >= 0.85 && s.cat != Category::Name).map(|s| (s.start, s.end)).collect();
        t.sort_unstable();
        t
    };
    let inside = |s: &Span| {
        let i = taken.partition_point(|t| t.0 <= s.start);
        i > 0 && taken[i - 1].1 >= s.end
    };
    found.retain(|s| !inside(s));
    spread(&ctx, &mut found);
    names_zh::spread(text, &mut found);
    found.retain(|s| !inside(s));
    out.extend(join_neighbours(text, found));
}

/// Joins names that touch across one space or ", " ("SMITH" "JOHN" → "SMITH, JOHN"), so that
/// one person's name is one entity and gets one placeholder.
fn join_neighbours(text: &str, mut found: Vec<Span>) -> Vec<Span> {
    found.sort_by_key(|s| (s.start, s.end));
    let mut out: Vec<Span> = Vec::with_capacity(found.len());
    for s in found {
        match out.last_mut() {
            Some(last) if s.start <= last.end => {
                last.end = last.end.max(s.end);
                last.conf = last.conf.max(s.conf);
            }
            Some(last) if matches!(&text[last.end..s.start], " " | ", ") && text[last.start..s.end].is_ascii() => {
                last.end = s.end;
                last.conf = last.conf.min(s.conf);
            }
            _ => out.push(s),
        }
    }
    out
}

fn find_english(ctx: &Ctx, found: &mut Vec<Span>) {
    let text = ctx.text;
    let matches = |re: &'static Pattern| matches(re, text);
    for m in matches(&TITLE) {
        if let Some(i) = ctx.word_at(m.end()) {
            if let Some(last) = ctx.run_forward(i, true, false, 3) {
                found.extend(ctx.span(i, last, 0.92));
            }
        }
    }
    for m in captures(&CREDENTIAL, text) {
        let (Some(all), Some(sep)) = (m.get(0), m.get(1)) else { continue };
        let comma = sep.as_str().starts_with(',');
        if let Some(k) = ctx.word_before(all.start()) {
            if let Some(first) = ctx.run_backward(k, comma, 4) {
                if comma || ctx.name_words(first, k) >= 2 {
                    found.extend(ctx.span(first, k, 0.9));
                }
            }
        }
    }
    for (re, strong) in [(&LABEL_STRONG, true), (&LABEL_WEAK, false)] {
        for m in matches(re) {
            let Some(i) = ctx.word_at(m.end()) else { continue };
            let Some(last) = ctx.run_forward(i, true, true, 4) else { continue };
            let comma_form = (i..last).any(|j| ctx.gap(j) == ", ");
            let single_first =
                i == last && FIRST_NAMES.contains(&ctx.words[i].lower) && !AMBIGUOUS.contains(&ctx.words[i].lower);
            // A form's field ("Patient: Raymond Kessler   Age: 91"): two or three capitalised
            // words that end the field are a name; a speaker's sentence goes on.
            let rest = &text[ctx.words[last].full_end..];
            let field_end =
                rest.is_empty() || ["  ", "\t", "\n", "\r", ",", ";", " (", " |"].iter().any(|e| rest.starts_with(e));
            let field = field_end && (2..=3).contains(&ctx.name_words(i, last));
            let accept =
                strong || comma_form || single_first || field || ctx.name_words(i, last) >= 2 && ctx.in_dicts(i, last);
            if accept {
                found.extend(ctx.span(i, last, if strong { 0.9 } else { 0.85 }));
            }
        }
    }
    for m in matches(&RELATIVE) {
        if let Some(i) = ctx.word_at(m.end()) {
            if let Some(last) = ctx.run_forward(i, false, false, 3) {
                found.extend(ctx.span(i, last, 0.85));
            }
        }
    }
    for m in matches(&ROLE_IN_PARENS) {
        if let Some(k) = ctx.word_before(m.start()) {
            if let Some(first) = ctx.run_backward(k, false, 4) {
                found.extend(ctx.span(first, k, 0.85));
            }
        }
    }
    for c in captures(&LOWER_CUE, text) {
        let Some(m) = c.get(0) else { continue };
        let Some(i) = ctx.word_at(m.end()) else { continue };
        // A capitalised name after a title in lower case ("dr. Vukasinovic") runs as after "Dr.".
        if c.name("title").is_some() && c.name("paren").is_none() && ctx.words[i].kind == Kind::Cap {
            found.extend(ctx.run_forward(i, true, false, 3).and_then(|last| ctx.span(i, last, 0.9)));
            continue;
        }
        let Some(last) = ctx.lower_run(i, 3, c.name("paren").is_some()) else { continue };
        // In brackets the name must close them: "wife (mere)", "SW (jen ruiz)".
        let closed = text[ctx.words[last].end..].trim_start_matches([' ', '\t']).starts_with(')');
        // Kin and colleagues are as often a family history's ("aunt (melanoma)"): a listed name only.
        let accept = if c.name("kin").is_some() {
            ctx.in_name_lists(i) && (c.name("paren").is_none() || closed)
        } else if c.name("paren").is_some() {
            closed
        } else if c.name("title").is_some() {
            true
        } else if c.name("weak").is_some() {
            let mut from = m.start().saturating_sub(24);
            while !text.is_char_boundary(from) {
                from += 1;
            }
            let lead = WEAK_TITLE_LEAD.as_ref().is_some_and(|r| r.is_match(&text[from..m.start()]));
            lead || ctx.in_name_lists(i)
        } else {
            ctx.in_name_lists(i)
        };
        if accept {
            found.extend(ctx.span(i, last, 0.85));
            // The name's other form in brackets right after it: "mrs o'neill (bernadette)".
            let rest = &text[ctx.words[last].full_end..];
            if let Some(j) = rest.strip_prefix(" (").and_then(|_| ctx.word_at(ctx.words[last].full_end + 2)) {
                if let Some(end) = ctx.lower_run(j, 2, true).or_else(|| ctx.run_forward(j, false, false, 2)) {
                    if text[ctx.words[end].full_end..].starts_with(')') {
                        found.extend(ctx.span(j, end, 0.85));
                    }
                }
            }
        }
    }
    // In a transcript in lower case, a given name that ends the phrase after an introduction
    // or a greeting, even one that is also a word: "this is grace", "thank you, dawn.".
    let lower_vocative = |i: usize| {
        let w = &ctx.words[i];
        let after = text[w.full_end..].trim_start_matches([' ', '\t']).chars().next();
        w.kind == Kind::Lower
            && FIRST_NAMES.contains(&w.lower)
            && !NOT_NAMES.contains(&w.lower)
            && after.is_none_or(|c| ",.!?;:\n".contains(c))
    };
    for m in matches(&INTRO).chain(matches(&GREETING)) {
        if let Some(i) = ctx.word_at(m.end()).filter(|&i| lower_vocative(i)) {
            found.extend(ctx.span(i, i, 0.8));
        }
    }
    for m in matches(&INTRO) {
        if let Some(i) = ctx.word_at(m.end()) {
            if let Some(last) = ctx.run_forward(i, false, false, 3) {
                let w = &ctx.words[i].lower;
                if FIRST_NAMES.contains(w) && !AMBIGUOUS.contains(w)
                    || ctx.name_words(i, last) >= 2 && ctx.in_dicts(i, last)
                {
                    found.extend(ctx.span(i, last, 0.85));
                }
            }
        }
    }
    for m in matches(&GREETING) {
        if let Some(i) = ctx.word_at(m.end()) {
            if let Some(last) = ctx.run_forward(i, false, false, 3) {
                // A vocative: the name ends the phrase.
                let after = text[ctx.words[last].full_end..].chars().next();
                if after.is_none_or(|c| ",.!?;:\n".contains(c)) {
                    found.extend(ctx.span(i, last, 0.85));
                }
            }
        }
    }
    for m in matches(&SIGN_OFF) {
        if let Some(i) = ctx.word_at(m.end()) {
            if let Some(last) = ctx.run_forward(i, false, false, 3) {
                // The name is the whole line (or ends at a comma: "Priya, RN").
                let after = text[ctx.words[last].full_end..].trim_start_matches([' ', '\t']).chars().next();
                if after.is_none_or(|c| ",\r\n".contains(c)) {
                    found.extend(ctx.span(i, last, 0.85));
                }
            }
        }
    }
    // Known given name + capitalised word; known family name, comma, known given name.
    for i in 0..ctx.words.len() {
        let w = &ctx.words[i];
        if w.kind != Kind::Cap || AMBIGUOUS.contains(&w.lower) || NOT_NAMES.contains(&w.lower) {
            continue;
        }
        if FIRST_NAMES.contains(&w.lower) {
            if let Some(last) = ctx.run_forward(i, false, false, 3) {
                if ctx.name_words(i, last) >= 2 {
                    found.extend(ctx.span(i, last, 0.8));
                } else if w.lower.chars().count() >= 3
                    && !CITIES.contains(&w.lower)
                    && !REGIONS.contains(&w.lower)
                    // "Ella 1.5 mg" is a drug.
                    && !ctx.text[w.full_end..].trim_start_matches(' ').starts_with(|c: char| c.is_ascii_digit())
                {
                    // A known given name alone ("Denise at the front desk") is less sure: it is
                    // not spread to other mentions.
                    found.extend(ctx.span(i, i, 0.7));
                }
            }
        } else if SURNAMES.contains(&w.lower) && i + 1 < ctx.words.len() && ctx.gap(i) == ", " {
            let next = &ctx.words[i + 1];
            if next.kind == Kind::Cap && FIRST_NAMES.contains(&next.lower) && !AMBIGUOUS.contains(&next.lower) {
                found.extend(ctx.span(i, i + 1, 0.8));
            }
        }
    }
}

/// Marks the other mentions of names already found: whole names anywhere, and their single
/// words when those are not common words ("Smith", but not "Ward" or "Rose").
fn spread(ctx: &Ctx, found: &mut Vec<Span>) {
    let mut singles: HashSet<&str> = HashSet::new();
    let mut wholes: HashMap<&str, Vec<Vec<&str>>> = HashMap::new();
    let mut lower: HashSet<&str> = HashSet::new();
    for s in found.iter().filter(|s| s.conf >= 0.8) {
        let first = ctx.words.partition_point(|w| w.start < s.start);
        let last = ctx.words.partition_point(|w| w.start < s.end);
        let seq: Vec<&str> = ctx.words[first..last]
            .iter()
            .filter(|w| matches!(w.kind, Kind::Cap | Kind::Upper))
            .map(|w| w.lower.as_str())
            .collect();
        for w in &seq {
            if w.chars().count() >= 2 && !AMBIGUOUS.contains(*w) && !NOT_NAMES.contains(*w) {
                singles.insert(w);
            }
        }
        // Names found in lower case after a lower-case cue are looked for in lower case too.
        if s.conf >= 0.85 {
            let distinct = (first..last).filter(|&i| ctx.lower_name_like(i) && !AMBIGUOUS.contains(&ctx.words[i].lower));
            lower.extend(distinct.map(|i| ctx.words[i].lower.as_str()));
        }
        if seq.len() >= 2 {
            wholes.entry(seq[0]).or_default().push(seq);
        }
    }
    for seqs in wholes.values_mut() {
        seqs.sort_unstable();
        seqs.dedup();
    }
    if singles.is_empty() && wholes.is_empty() && lower.is_empty() {
        return;
    }
    let mut more = Vec::new();
    for (i, w) in ctx.words.iter().enumerate() {
        if w.kind == Kind::Lower && lower.contains(w.lower.as_str()) {
            more.extend(ctx.span(i, i, 0.8));
        }
        if !matches!(w.kind, Kind::Cap | Kind::Upper) {
            continue;
        }
        if singles.contains(w.lower.as_str()) {
            more.extend(ctx.span(i, i, 0.8));
        }
        for seq in wholes.get(w.lower.as_str()).into_iter().flatten() {
            let n = seq.len();
            let matched = i + n <= ctx.words.len()
                && (1..n).all(|k| ctx.words[i + k].lower == seq[k] && matches!(ctx.gap(i + k - 1), " " | ", " | ". "));
            if matched {
                more.extend(ctx.span(i, i + n - 1, 0.85));
            }
        }
    }
    found.extend(more);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        find(&crate::deid::lexicon::simplified(text), &mut out);
        super::super::detect::resolve(out).into_iter().map(|s| text[s.start..s.end].to_string()).collect()
    }

    #[test]
    fn all_patterns_compile() {
        for re in [
            &PATRONYMIC,
            &TITLE,
            &CREDENTIAL,
            &LABEL_STRONG,
            &LABEL_WEAK,
            &RELATIVE,
            &ROLE_IN_PARENS,
            &INTRO,
            &GREETING,
            &SIGN_OFF,
            &EPONYM_HEAD,
            &LOWER_CUE,
            &WEAK_TITLE_LEAD,
        ] {
            assert!(re.is_some());
        }
    }

    #[test]
    fn names_after_titles_labels_and_relatives_and_their_later_mentions() {
        let text = "Patient: Harold Whitfield\nMr. Whitfield has Parkinson's disease. His wife, Eleanor, called Dr. Ortiz. Whitfield is stable.";
        assert_eq!(names(text), ["Harold Whitfield", "Whitfield", "Eleanor", "Ortiz", "Whitfield"]);
        assert_eq!(names("Seriously? My mate Declan said so; her carer Oluwaseun came."), ["Declan", "Oluwaseun"]);
        assert!(names("Yerba mate Tea daily.").is_empty());
    }

    #[test]
    fn lower_case_given_names_that_end_an_introduction_or_a_greeting() {
        let text = "[doctor] who's this with you\n[patient] this is grace\n[doctor] thank you, dawn. hi rose, how are you";
        assert_eq!(names(text), ["grace", "dawn", "rose"]);
        for t in ["[patient] this is fine\n", "i am sorry.", "thank you doctor.", "this is grant money for the clinic"] {
            assert!(names(t).is_empty(), "{t}: {:?}", names(t));
        }
    }

    #[test]
    fn names_with_the_fathers_name_after_bin_binti_or_a_p() {
        let text = "Nama: Nurul Ain binti Hashim. Suami: Azman bin Yusof, under Dr Kavitha a/p Subramaniam; RAJ BIN KUMAR. Husband Rosli bin Hamzah; Rose binti Ali";
        assert_eq!(
            names(text),
            ["Nurul Ain binti Hashim", "Azman bin Yusof", "Kavitha a/p Subramaniam", "RAJ BIN KUMAR", "Rosli bin Hamzah", "Rose binti Ali"]
        );
        assert!(names("bin the swabs; the a/p view; HRCT Chest s/o Tuberculosis. A/P Pneumonia").is_empty());
    }

    #[test]
    fn the_writer_after_a_sign_off_and_lower_case_names_after_mister_and_roles() {
        let mail = "Happy to see him.\n\nBest wishes,\nSeun\n\nDr Oluwaseun Adeyemi\nThanks,\nPriya, RN\nRegards,\nthe clinic team";
        let got = names(mail);
        assert!(got.contains(&"Seun".to_string()) && got.contains(&"Priya".to_string()), "{got:?}");
        assert!(!got.iter().any(|n| n.contains("clinic") || n.contains("team")), "{got:?}");
        assert_eq!(names("[doctor] hello mister abernathy come on in"), ["abernathy"]);
        assert_eq!(names("i'll ask my manager phil he's good"), ["phil"]);
        assert_eq!(names("the pharmacist is bernadette she's lovely; the nurse there rosalind sets it up"), ["bernadette", "rosalind"]);
        assert!(names("the nurse is here, the pharmacist is busy, the therapist was called").is_empty());
        assert!(names("the manager said the unit was full").is_empty());
        assert!(names("maternal aunt (melanoma), uncle (epilepsy)").is_empty());
    }

    #[test]
    fn lower_case_names_after_lower_case_cues() {
        let text = "bed 4 - pt mrs o'neill (bernadette) 78F. ORIF under mr whitcombe. bernadette v anxious.";
        assert_eq!(names(text), ["o'neill", "bernadette", "whitcombe", "bernadette"]);
        assert_eq!(names("seen by dr farooq (med reg); SW (jen ruiz) following; wife (mere) ph 0412"), ["farooq", "jen ruiz", "mere"]);
        assert_eq!(names("NOK dtr siobhan 07700 914382"), ["siobhan"]);
        assert_eq!(names("IR aware (dr. Vukasinovic); back with the eye doctor, doctor havili"), ["Vukasinovic", "havili"]);
        assert_eq!(names("dr achterberg notified 02:52; fr. daniel okafor"), ["achterberg", "daniel okafor"]);
        // Mitral regurgitation and multiple sclerosis, and words that follow a title anyway.
        assert!(names("echo: mild mr noted, trace tr. hx ms flare in 2019. dr appt next week. mr angiogram booked").is_empty());
    }

    #[test]
    fn eponyms_and_lone_titles_are_not_names() {
        assert!(names("Hodgkin lymphoma, Foley catheter placed, Murphy's sign positive, seen by the Dr. on call.")
            .is_empty());
        assert!(names("Glasgow Coma Scale 15; Apgar score 9.").is_empty());
    }

    #[test]
    fn credentials_and_last_first_forms() {
        assert_eq!(names("Signed, Caroline Hughes, MD"), ["Caroline Hughes"]);
        assert_eq!(names("Name: GONZALEZ, MARIA ELENA    Acct"), ["GONZALEZ, MARIA ELENA"]);
    }
}
