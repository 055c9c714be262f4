//! The Porter stemmer as NLTK implements it in its default mode, `NLTK_EXTENSIONS`
//! (nltk/stem/porter.py), which is what rouge-score's `use_stemmer=True` runs. It differs
//! from Porter's 1980 paper in a table of irregular forms, `ies`/`ied` on four-letter words,
//! `y -> i` only after a consonant, `alli` and `fulli`/`logi` in step 2, and in leaving words of
//! one or two letters alone.

/// Lowercased form and its stem, checked before any rule (NLTK's `pool`).
const IRREGULAR: &[(&str, &str)] = &[
    ("sky", "sky"),
    ("skies", "sky"),
    ("dying", "die"),
    ("lying", "lie"),
    ("tying", "tie"),
    ("news", "news"),
    ("innings", "inning"),
    ("inning", "inning"),
    ("outings", "outing"),
    ("outing", "outing"),
    ("cannings", "canning"),
    ("canning", "canning"),
    ("howe", "howe"),
    ("proceed", "proceed"),
    ("exceed", "exceed"),
    ("succeed", "succeed"),
];

/// The Porter stem of an ASCII word, as NLTK's `PorterStemmer().stem(word)`.
///
/// Words with non-ASCII letters are returned lowercased but unstemmed: rouge-score only
/// stems `[a-z0-9]+` tokens, and byte-wise rules would not be NLTK's on other text.
///
/// ```
/// use medgen::metrics::stem;
/// assert_eq!(stem("hospitalization"), "hospit");
/// assert_eq!(stem("ponies"), "poni");
/// ```
pub fn stem(word: &str) -> String {
    let lower = word.to_lowercase();
    if let Some((_, irregular)) = IRREGULAR.iter().find(|(form, _)| *form == lower) {
        return (*irregular).to_string();
    }
    if !lower.is_ascii() || word.chars().count() <= 2 {
        return lower;
    }
    let mut w = lower.into_bytes();
    for step in [step1a, step1b, step1c, step2, step3, step4, step5a, step5b] {
        w = step(w);
    }
    // Only ASCII letters were removed or added, so the bytes are still UTF-8.
    String::from_utf8_lossy(&w).into_owned()
}

/// `true` for each consonant of `w`. A `y` is a consonant at the start of a word or after a
/// vowel, a vowel after a consonant.
fn consonants(w: &[u8]) -> Vec<bool> {
    let mut flags: Vec<bool> = Vec::with_capacity(w.len());
    for &c in w {
        let consonant = match c {
            b'a' | b'e' | b'i' | b'o' | b'u' => false,
            b'y' => !flags.last().copied().unwrap_or(false),
            _ => true,
        };
        flags.push(consonant);
    }
    flags
}

fn is_consonant(w: &[u8], i: usize) -> bool {
    consonants(w).get(i).copied().unwrap_or(false)
}

/// Porter's m: the number of vowel-consonant transitions.
fn measure(w: &[u8]) -> usize {
    consonants(w).windows(2).filter(|p| !p[0] && p[1]).count()
}

fn contains_vowel(w: &[u8]) -> bool {
    consonants(w).iter().any(|&c| !c)
}

/// Porter's *d.
fn ends_double_consonant(w: &[u8]) -> bool {
    let n = w.len();
    n >= 2 && w[n - 1] == w[n - 2] && is_consonant(w, n - 1)
}

/// Porter's *o (consonant-vowel-consonant, the last not w, x or y), which NLTK extends
/// to two-letter vowel-consonant words.
fn ends_cvc(w: &[u8]) -> bool {
    let c = consonants(w);
    let n = w.len();
    (n >= 3 && c[n - 3] && !c[n - 2] && c[n - 1] && !matches!(w[n - 1], b'w' | b'x' | b'y'))
        || (n == 2 && !c[0] && c[1])
}

type Condition<'a> = &'a dyn Fn(&[u8]) -> bool;

fn concat(stem: &[u8], suffix: &str) -> Vec<u8> {
    [stem, suffix.as_bytes()].concat()
}

/// NLTK's `_apply_rule_list`: the first rule whose suffix matches decides; if its condition
/// on the stem fails the word is returned unchanged, without trying later rules.
fn apply_rules(w: Vec<u8>, rules: &[(&str, &str, Condition)]) -> Vec<u8> {
    for (suffix, replacement, condition) in rules {
        if let Some(stem) = w.strip_suffix(suffix.as_bytes()) {
            return if condition(stem) {
                concat(stem, replacement)
            } else {
                w
            };
        }
    }
    w
}

fn always(_: &[u8]) -> bool {
    true
}

fn positive_measure(w: &[u8]) -> bool {
    measure(w) > 0
}

fn step1a(w: Vec<u8>) -> Vec<u8> {
    if w.len() == 4 && w.ends_with(b"ies") {
        return concat(&w[..1], "ie");
    }
    apply_rules(
        w,
        &[
            ("sses", "ss", &always),
            ("ies", "i", &always),
            ("ss", "ss", &always),
            ("s", "", &always),
        ],
    )
}

fn step1b(w: Vec<u8>) -> Vec<u8> {
    if let Some(stem) = w.strip_suffix(b"ied") {
        return concat(stem, if w.len() == 4 { "ie" } else { "i" });
    }
    if let Some(stem) = w.strip_suffix(b"eed") {
        return if measure(stem) > 0 {
            concat(stem, "ee")
        } else {
            w
        };
    }
    let Some(stem) = [b"ed".as_slice(), b"ing"]
        .iter()
        .find_map(|suffix| w.strip_suffix(*suffix).filter(|s| contains_vowel(s)))
    else {
        return w;
    };
    let stem = stem.to_vec();
    for (suffix, replacement) in [("at", "ate"), ("bl", "ble"), ("iz", "ize")] {
        if let Some(s) = stem.strip_suffix(suffix.as_bytes()) {
            return concat(s, replacement);
        }
    }
    if ends_double_consonant(&stem) {
        let n = stem.len();
        return if matches!(stem[n - 1], b'l' | b's' | b'z') {
            stem
        } else {
            stem[..n - 1].to_vec()
        };
    }
    if measure(&stem) == 1 && ends_cvc(&stem) {
        return concat(&stem, "e");
    }
    stem
}

fn step1c(w: Vec<u8>) -> Vec<u8> {
    apply_rules(
        w,
        &[("y", "i", &|s: &[u8]| {
            s.len() > 1 && is_consonant(s, s.len() - 1)
        })],
    )
}

fn step2(w: Vec<u8>) -> Vec<u8> {
    // NLTK tries `alli -> al` before the list (Porter's list has it after `bli`) and runs
    // step 2 again on the result.
    if let Some(stem) = w.strip_suffix(b"alli") {
        if positive_measure(stem) {
            return step2(concat(stem, "al"));
        }
    }
    // `logi -> log` keeps the `l` with the stem for its condition, so that short stems
    // (`geologi`, `theologi`) qualify.
    let logi_stem = w[..w.len().saturating_sub(3)].to_vec();
    let logi = move |_: &[u8]| positive_measure(&logi_stem);
    let m: Condition = &positive_measure;
    apply_rules(
        w,
        &[
            ("ational", "ate", m),
            ("tional", "tion", m),
            ("enci", "ence", m),
            ("anci", "ance", m),
            ("izer", "ize", m),
            ("bli", "ble", m),
            ("alli", "al", m),
            ("entli", "ent", m),
            ("eli", "e", m),
            ("ousli", "ous", m),
            ("ization", "ize", m),
            ("ation", "ate", m),
            ("ator", "ate", m),
            ("alism", "al", m),
            ("iveness", "ive", m),
            ("fulness", "ful", m),
            ("ousness", "ous", m),
            ("aliti", "al", m),
            ("iviti", "ive", m),
            ("biliti", "ble", m),
            ("fulli", "ful", m),
            ("logi", "log", &logi),
        ],
    )
}

fn step3(w: Vec<u8>) -> Vec<u8> {
    let m: Condition = &positive_measure;
    apply_rules(
        w,
        &[
            ("icate", "ic", m),
            ("ative", "", m),
            ("alize", "al", m),
            ("iciti", "ic", m),
            ("ical", "ic", m),
            ("ful", "", m),
            ("ness", "", m),
        ],
    )
}

fn step4(w: Vec<u8>) -> Vec<u8> {
    let m: Condition = &|s: &[u8]| measure(s) > 1;
    let ion: Condition = &|s: &[u8]| measure(s) > 1 && matches!(s.last(), Some(b's' | b't'));
    let rules: Vec<(&str, &str, Condition)> = [
        "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion",
        "ou", "ism", "ate", "iti", "ous", "ive", "ize",
    ]
    .into_iter()
    .map(|suffix| (suffix, "", if suffix == "ion" { ion } else { m }))
    .collect();
    apply_rules(w, &rules)
}

/// Not a rule list in NLTK: when `m > 1` fails, `m == 1 and not *o` is still tried.
fn step5a(w: Vec<u8>) -> Vec<u8> {
    if let Some(stem) = w.strip_suffix(b"e") {
        let m = measure(stem);
        if m > 1 || (m == 1 && !ends_cvc(stem)) {
            return stem.to_vec();
        }
    }
    w
}

fn step5b(w: Vec<u8>) -> Vec<u8> {
    if w.ends_with(b"ll") && measure(&w[..w.len() - 1]) > 1 {
        return w[..w.len() - 1].to_vec();
    }
    w
}

#[cfg(test)]
mod tests {
    use super::stem;

    #[test]
    fn stems_the_papers_examples_as_nltk_does() {
        let cases = [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("ties", "tie"),
            ("cats", "cat"),
            ("feed", "feed"),
            ("agreed", "agre"),
            ("plastered", "plaster"),
            ("motoring", "motor"),
            ("sing", "sing"),
            ("conflated", "conflat"),
            ("hopping", "hop"),
            ("falling", "fall"),
            ("filing", "file"),
            ("happy", "happi"),
            ("enjoy", "enjoy"),
            ("relational", "relat"),
            ("generalization", "gener"),
            ("hospitalized", "hospit"),
            ("hospitalization", "hospit"),
            ("dying", "die"),
            ("controlling", "control"),
            ("geology", "geolog"),
            ("yyyy", "yyyi"),
            ("is", "is"),
        ];
        for (word, expected) in cases {
            assert_eq!(stem(word), expected, "{word}");
        }
    }
}
