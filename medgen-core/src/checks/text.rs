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

/// A text with the count of its characters before every 1,024th byte, so that converting
/// between byte and character offsets reads at most 1,024 bytes, however long the text (a
/// finding's offsets counted from the start each time made checking a long draft quadratic).
pub(crate) struct Indexed<'t> {
    text: &'t str,
    chars_before: Vec<usize>,
}

const BLOCK: usize = 1024;

/// Whether a byte starts a character (is not a UTF-8 continuation byte).
fn starts_char(b: &u8) -> bool {
    b & 0xC0 != 0x80
}

impl<'t> Indexed<'t> {
    pub(crate) fn new(text: &'t str) -> Indexed<'t> {
        let mut count = 0;
        let chars_before = text
            .as_bytes()
            .chunks(BLOCK)
            .map(|block| {
                let before = count;
                count += block.iter().filter(|b| starts_char(b)).count();
                before
            })
            .collect();
        Indexed { text, chars_before }
    }

    /// The character offset of byte offset `byte`.
    pub(crate) fn char_offset(&self, byte: usize) -> usize {
        let block = byte / BLOCK;
        let before = self.chars_before.get(block).copied().unwrap_or_else(|| self.text.chars().count());
        before + self.text.as_bytes()[(block * BLOCK).min(byte)..byte].iter().filter(|b| starts_char(b)).count()
    }

    /// The byte offset of character offset `chars` (the text's length past its end).
    pub(crate) fn byte_offset(&self, chars: usize) -> usize {
        let block = self.chars_before.partition_point(|&c| c <= chars).saturating_sub(1);
        let Some(&before) = self.chars_before.get(block) else { return self.text.len() };
        let starts = self.text.as_bytes()[block * BLOCK..].iter().enumerate().filter(|(_, b)| starts_char(b));
        starts.map(|(i, _)| block * BLOCK + i).nth(chars - before).unwrap_or(self.text.len())
    }
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

/// A finding for the byte span `start..end` of `folded` (the fold of `original`, character for
/// character).
pub(crate) fn finding(
    kind: FindingKind,
    original: &Indexed,
    folded: &Indexed,
    start: usize,
    end: usize,
    detail: String,
) -> Finding {
    let (start, end) = (folded.char_offset(start), folded.char_offset(end));
    let text = original.text[original.byte_offset(start)..original.byte_offset(end)].to_string();
    Finding { kind, start, end, text, detail }
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
    fn offsets_convert_both_ways_across_blocks() {
        let text = "a".repeat(1000) + &"体温３８℃ ".repeat(400) + "end";
        let indexed = Indexed::new(&text);
        let mut chars = 0;
        for (byte, _) in text.char_indices().chain([(text.len(), ' ')]) {
            assert_eq!(indexed.char_offset(byte), chars, "byte {byte}");
            assert_eq!(indexed.byte_offset(chars), byte, "character {chars}");
            chars += 1;
        }
        assert_eq!(indexed.byte_offset(chars + 5), text.len());
        let empty = Indexed::new("");
        assert_eq!((empty.char_offset(0), empty.byte_offset(0), empty.byte_offset(3)), (0, 0, 0));
    }

    #[test]
    fn ascii_bounded_rejects_words_inside_words() {
        assert!(ascii_bounded("take aspirin.", 5, 12));
        assert!(!ascii_bounded("aspirins", 0, 7));
        assert!(ascii_bounded("阿司匹林肠溶片", 0, 12));
    }
}
