//! Reading the files a caller names (training data, annotations, review logs) with a bound on
//! what they may cost: an endless stream (`/dev/zero`, a FIFO fed by `yes`) or a file far
//! past anything medgen could use is an `Io` error naming the bound, not all of memory.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{MedgenError, Result};

/// The most medgen reads of one whole data file (training, validation or evaluation data,
/// tokenizer-training text): 1 GiB.
pub const MAX_DATA_FILE: u64 = 1 << 30;
/// The longest line of a line-by-line file (a review log, tagger annotations): 64 MiB.
pub const MAX_LINE: u64 = 64 << 20;

fn too_large(path: &Path, what: &str, limit: u64) -> MedgenError {
    let e = std::io::Error::new(std::io::ErrorKind::FileTooLarge, format!("{what} is longer than {limit} bytes, the most medgen reads"));
    MedgenError::io(path, e)
}

/// The bytes of `path`, at most `limit` of them.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| MedgenError::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| MedgenError::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(path, "the file", limit));
    }
    Ok(bytes)
}

/// The text of `path`, at most `limit` bytes of UTF-8.
pub(crate) fn read_text_bounded(path: &Path, limit: u64) -> Result<String> {
    let bytes = read_bounded(path, limit)?;
    String::from_utf8(bytes).map_err(|e| MedgenError::io(path, std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 text ({e})"))))
}

/// The lines of a file one at a time, each at most [`MAX_LINE`] bytes of UTF-8, without the
/// line break; [`Lines::ended_cleanly`] says afterwards whether the last line had one.
pub(crate) struct Lines {
    reader: BufReader<std::fs::File>,
    path: PathBuf,
    buf: Vec<u8>,
    last_had_break: bool,
}

impl Lines {
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::File::open(path)?;
        Ok(Lines { reader: BufReader::new(file), path: path.to_path_buf(), buf: Vec::new(), last_had_break: true })
    }

    /// Whether the file was empty or ended with a line break.
    pub(crate) fn ended_cleanly(&self) -> bool {
        self.last_had_break
    }
}

impl Iterator for Lines {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Result<String>> {
        self.buf.clear();
        let read = (&mut self.reader).take(MAX_LINE + 1).read_until(b'\n', &mut self.buf);
        match read {
            Err(e) => Some(Err(MedgenError::io(&self.path, e))),
            Ok(0) => None,
            Ok(_) => {
                self.last_had_break = self.buf.last() == Some(&b'\n');
                if self.last_had_break {
                    self.buf.pop();
                } else if self.buf.len() as u64 > MAX_LINE {
                    return Some(Err(too_large(&self.path, "a line", MAX_LINE)));
                }
                if self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
                let line = std::mem::take(&mut self.buf);
                Some(String::from_utf8(line).map_err(|e| MedgenError::io(&self.path, std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 text ({e})")))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_files_are_refused_with_the_bound() {
        let zero = Path::new("/dev/zero");
        let e = read_bounded(zero, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("/dev/zero") && e.contains("1048576"), "{e}");
        let mut lines = Lines::open(zero).unwrap();
        let e = lines.next().unwrap().unwrap_err().to_string();
        assert!(e.contains("a line is longer than"), "{e}");
    }

    #[test]
    fn lines_keep_content_and_say_how_the_file_ended() {
        let dir = std::env::temp_dir().join(format!("medgen-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.txt");
        std::fs::write(&p, "one\r\n\ntwo\nthree").unwrap();
        let mut lines = Lines::open(&p).unwrap();
        let got: Vec<String> = lines.by_ref().map(|l| l.unwrap()).collect();
        assert_eq!(got, ["one", "", "two", "three"]);
        assert!(!lines.ended_cleanly());
        std::fs::write(&p, "one\n").unwrap();
        let mut lines = Lines::open(&p).unwrap();
        assert_eq!(lines.by_ref().count(), 1);
        assert!(lines.ended_cleanly());
        std::fs::write(&p, [b'a', 0xff, b'\n']).unwrap();
        assert!(Lines::open(&p).unwrap().next().unwrap().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
