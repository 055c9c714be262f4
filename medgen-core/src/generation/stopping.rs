//! Stop strings and the UTF-8-safe, stop-safe streaming of decoded text.

/// Where the text decoded so far may be cut and how much of it may be shown.
pub(crate) struct StopStrings {
    stops: Vec<String>,
    longest: usize,
}

impl StopStrings {
    pub fn new(stops: &[String]) -> Self {
        StopStrings {
            stops: stops.to_vec(),
            longest: stops.iter().map(String::len).max().unwrap_or(0),
        }
    }

    /// Byte offset of the earliest stop string in `text` that ends after `shown` bytes
    /// (text before `shown` was already searched).
    pub fn find(&self, text: &str, shown: usize) -> Option<usize> {
        let mut from = shown.saturating_sub(self.longest);
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        self.stops
            .iter()
            .filter_map(|s| text[from..].find(s.as_str()).map(|i| from + i))
            .min()
    }

    /// How many bytes of `text` may be shown: all but an incomplete character at the end
    /// (decoded as U+FFFD while its bytes are split across tokens) and any tail that could
    /// still grow into a stop string.
    pub fn safe_len(&self, text: &str) -> usize {
        let mut end = text.len();
        if text.ends_with('\u{FFFD}') {
            end -= '\u{FFFD}'.len_utf8();
        }
        let held = self
            .stops
            .iter()
            .map(|s| partial_suffix(&text[..end], s))
            .max()
            .unwrap_or(0);
        end - held
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `stop`.
fn partial_suffix(text: &str, stop: &str) -> usize {
    (1..stop.len().min(text.len() + 1))
        .rev()
        .find(|&n| stop.is_char_boundary(n) && text.ends_with(&stop[..n]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_stop_string_is_held_back() {
        let s = StopStrings::new(&["</end>".to_string()]);
        assert_eq!(s.safe_len("done </e"), 5);
        assert_eq!(s.safe_len("done </x"), 8);
        assert_eq!(s.find("done </end> more", 0), Some(5));
    }

    #[test]
    fn an_incomplete_character_is_held_back() {
        let s = StopStrings::new(&[]);
        assert_eq!(s.safe_len("37 \u{FFFD}"), 3);
    }

    #[test]
    fn multibyte_stop_strings_cut_on_char_boundaries() {
        let s = StopStrings::new(&["。结束".to_string()]);
        assert_eq!(s.safe_len("胸痛。"), "胸痛".len());
        assert_eq!(s.find("胸痛。结束了", 3), Some("胸痛".len()));
    }
}
