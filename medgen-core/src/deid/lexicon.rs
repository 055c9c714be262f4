//! Word lists (in `data/`, one or more entries a line, `#` starts a comment line) and the
//! regex helper shared by the detectors.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use regex::Regex;

/// Compiles a pattern in which `\b` means an ASCII word boundary. Unicode `\b` would make the
/// regex crate leave its DFA for a much slower engine on non-ASCII text (all Chinese notes);
/// the ASCII boundary also treats a digit next to a Han character as a boundary, which we want.
/// Patterns are constants checked by the `all_patterns_compile` tests, so None never happens.
pub(crate) fn compile(pattern: &str) -> Option<Regex> {
    Regex::new(&pattern.replace(r"\b", r"(?-u:\b)")).ok()
}

/// Declares `static NAME: LazyLock<Option<Regex>>` compiled with [`compile`].
macro_rules! regex {
    ($name:ident = $pattern:expr) => {
        static $name: std::sync::LazyLock<Option<regex::Regex>> =
            std::sync::LazyLock::new(|| crate::deid::lexicon::compile(&$pattern));
    };
}
pub(crate) use regex;

/// A pattern declared with [`regex!`].
pub(crate) type Pattern = LazyLock<Option<Regex>>;

/// The matches of a declared pattern in `text`.
pub(crate) fn matches<'t>(re: &'static Pattern, text: &'t str) -> impl Iterator<Item = regex::Match<'t>> + 't {
    re.as_ref().into_iter().flat_map(move |r| r.find_iter(text))
}

/// The captures of a declared pattern in `text`.
pub(crate) fn captures<'t>(re: &'static Pattern, text: &'t str) -> impl Iterator<Item = regex::Captures<'t>> + 't {
    re.as_ref().into_iter().flat_map(move |r| r.captures_iter(text))
}

fn words(data: &'static str) -> impl Iterator<Item = &'static str> {
    data.lines().filter(|l| !l.trim_start().starts_with('#')).flat_map(str::split_whitespace)
}

fn lower_set(data: &'static str) -> HashSet<String> {
    words(data).map(str::to_lowercase).collect()
}

/// English given names, lower case.
pub(crate) static FIRST_NAMES: LazyLock<HashSet<String>> =
    LazyLock::new(|| lower_set(include_str!("data/en_first_names.txt")));
/// More given names (`data/en_given_more.txt`, made by `training/deid/given_names.py`), lower
/// case: read only after a lower-case cue; the tagger's features read [`FIRST_NAMES`] alone.
pub(crate) static GIVEN_MORE: LazyLock<HashSet<String>> =
    LazyLock::new(|| lower_set(include_str!("data/en_given_more.txt")));
/// English family names, lower case.
pub(crate) static SURNAMES: LazyLock<HashSet<String>> =
    LazyLock::new(|| lower_set(include_str!("data/en_surnames.txt")));
/// Capitalised words that are never part of a name, lower case.
pub(crate) static NOT_NAMES: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let mut set = lower_set(include_str!("data/en_not_names.txt"));
    set.extend(ROLE_WORDS.iter().cloned());
    set
});
/// Roles, services, qualifications and abbreviations: never names, in any case, lower case.
pub(crate) static ROLE_WORDS: LazyLock<HashSet<String>> =
    LazyLock::new(|| lower_set(include_str!("data/en_role_words.txt")));
/// Words that are names only with a strong cue (common words, eponyms, towns), lower case.
pub(crate) static AMBIGUOUS: LazyLock<HashSet<String>> =
    LazyLock::new(|| lower_set(include_str!("data/en_ambiguous.txt")));
/// The most frequent English words that are in none of the name and place lists, lower case.
pub(crate) static COMMON: LazyLock<HashSet<String>> = LazyLock::new(|| lower_set(include_str!("data/en_common.txt")));
/// Frequent Malay, Indonesian, Filipino and Spanish words (`data/foreign_common.txt`, made by
/// `training/deid/foreign_common.py`), lower case: what code-switched notes of South-East Asia
/// and of Spanish speakers mix with English. Read only to drop the tagger's names and places made of them.
pub(crate) static FOREIGN_COMMON: LazyLock<HashSet<String>> = LazyLock::new(|| lower_set(include_str!("data/foreign_common.txt")));
/// The words of [`FOREIGN_COMMON`] that are no frequent English words (its first section).
pub(crate) static FOREIGN_ONLY: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let data = include_str!("data/foreign_common.txt");
    let first = data.split("\n# also").next().unwrap_or_default();
    words(first).map(str::to_lowercase).collect()
});
/// Cities and towns, lower case, spaces kept ("new york").
pub(crate) static CITIES: LazyLock<HashSet<String>> = LazyLock::new(|| {
    include_str!("data/en_places.txt")
        .lines()
        .skip_while(|l| !l.starts_with("# cities"))
        .take_while(|l| !l.starts_with("# regions"))
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.split(','))
        .map(|w| w.trim().to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
});
/// Cities and the towns of `en_towns.txt` (made by `training/deid/towns.py`), lower case: what
/// the rules read as places. The tagger's features read [`CITIES`] alone, as in training.
pub(crate) static TOWNS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let towns = include_str!("data/en_towns.txt").lines().skip_while(|l| *l != "# towns").skip(1);
    CITIES.iter().cloned().chain(towns.map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty())).collect()
});
/// States, provinces, countries and regions: larger than a state, so not PHI; lower case.
pub(crate) static REGIONS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    include_str!("data/en_places.txt")
        .lines()
        .skip_while(|l| !l.starts_with("# regions"))
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.split(','))
        .map(|w| w.trim().to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
});

/// Chinese family names: single characters, then two-character ones.
pub(crate) static ZH_SURNAMES: LazyLock<(HashSet<char>, HashSet<String>)> = LazyLock::new(|| {
    let mut single = HashSet::new();
    let mut double = HashSet::new();
    for w in words(include_str!("data/zh_surnames.txt")) {
        let mut chars = w.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => {
                single.insert(c);
            }
            (Some(_), Some(_)) => {
                double.insert(w.to_string());
            }
            _ => {}
        }
    }
    (single, double)
});
/// The hundred most common single-character family names (the list is in order of frequency):
/// only these stand alone before a title (刘医生), where a rarer one is usually a word (检查医师).
pub(crate) static ZH_COMMON_SURNAMES: LazyLock<HashSet<char>> = LazyLock::new(|| {
    words(include_str!("data/zh_surnames.txt"))
        .filter(|w| w.chars().count() == 1)
        .flat_map(str::chars)
        .take(100)
        .collect()
});
/// Characters common in Chinese given names.
pub(crate) static ZH_GIVEN: LazyLock<HashSet<char>> =
    LazyLock::new(|| words(include_str!("data/zh_given_chars.txt")).flat_map(str::chars).collect());
/// Chinese cities written without 市 (北京, 广州 …).
pub(crate) static ZH_CITIES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| words(include_str!("data/zh_places.txt")).collect());

/// Traditional characters and their simplified ones, of equal UTF-8 length
/// (`data/zh_traditional.txt`, made by `training/deid/traditional.py`).
static TRADITIONAL: LazyLock<HashMap<char, char>> = LazyLock::new(|| {
    words(include_str!("data/zh_traditional.txt"))
        .filter_map(|pair| {
            let mut chars = pair.chars();
            Some((chars.next()?, chars.next()?))
        })
        .collect()
});

/// `text` with its traditional Chinese characters written simplified, for the rules: every
/// character keeps its UTF-8 length, so byte offsets in the result are offsets in `text`.
pub(crate) fn simplified(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| TRADITIONAL.contains_key(&c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().map(|c| TRADITIONAL.get(&c).copied().unwrap_or(c)).collect())
}

/// Is `c` a CJK ideograph (a token of its own in Chinese text)?
pub(crate) fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F) || c == '〇'
}
