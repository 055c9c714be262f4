//! Text helpers shared by the checks: a one-to-one character fold, so that offsets found in
//! the folded text are offsets in the original, and the conversion of byte offsets to the
//! character offsets that findings report.

use super::{Finding, FindingKind};

/// Folds full-width forms (１２ｍｇ), the Greek mu, dashes and the ordinal indicator used as a
/// degree sign to their plain forms, one character for one character (superscript digits
/// stay: "10⁹" must not read as 109). The full-width comma is kept: it separates Chinese
/// clauses, never thousands.
pub(crate) fn fold(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FF0C}' => c,
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            '\u{03BC}' => '\u{00B5}',
            '\u{00BA}' => '\u{00B0}',
            '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
            _ => c,
        })
        .collect()
}

/// The character offset of byte offset `byte` of `text`.
pub(crate) fn char_offset(text: &str, byte: usize) -> usize {
    text[..byte].chars().count()
}

/// Whether `text[start..end]` stands as a word of its own: an ASCII letter or digit at either
/// end must not continue into another one ("aspirin" in "aspirins" does not; "阿司匹林" in
/// "阿司匹林肠溶片" does, Chinese having no spaces).
pub(crate) fn ascii_bounded(text: &str, start: usize, end: usize) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let inner = &text[start..end];
    !(word(inner.chars().next()) && word(text[..start].chars().next_back())
        || word(inner.chars().next_back()) && word(text[end..].chars().next()))
}

/// A finding for the byte span `start..end` of `folded` (the fold of `original`).
pub(crate) fn finding(
    kind: FindingKind,
    original: &str,
    folded: &str,
    start: usize,
    end: usize,
    detail: String,
) -> Finding {
    let (start, end) = (char_offset(folded, start), char_offset(folded, end));
    Finding { kind, start, end, text: original.chars().skip(start).take(end - start).collect(), detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_keeps_one_character_per_character() {
        let text = "体温３８．５℃，10⁹/L μg – º";
        let folded = fold(text);
        assert_eq!(folded, "体温38.5℃，10⁹/L µg - °");
        assert_eq!(folded.chars().count(), text.chars().count());
    }

    #[test]
    fn ascii_bounded_rejects_words_inside_words() {
        assert!(ascii_bounded("take aspirin.", 5, 12));
        assert!(!ascii_bounded("aspirins", 0, 7));
        assert!(ascii_bounded("阿司匹林肠溶片", 0, 12));
    }
}
