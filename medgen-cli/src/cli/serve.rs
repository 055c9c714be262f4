//! `medgen review serve`: the review pages of a folder on a local web server (127.0.0.1 only),
//! whose Accept / Edit / Reject buttons append the decision to the review log.
//!
//! One connection at a time; GET `/` lists the pages, GET `/draft/NAME.html` serves one, POST
//! `/decide` (a form: draft_id, decision, reviewer, text) logs a decision. Forms over 4 MB, a
//! head of over 100 header lines or a line over 8 KiB, paths outside the folder and malformed
//! forms are refused with a status and a message; a request not sent within 60 s is dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use medgen::review::log::{self, Decision};
use medgen::{MedgenError, Result};

const MAX_BODY: usize = 4 << 20;
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src blob: data:; form-action 'self'";

/// Serves `dir`'s pages on 127.0.0.1:`port` (0: any free port), logging decisions to `log`.
pub fn serve(dir: &Path, log: &Path, port: u16) -> Result<()> {
    if !dir.is_dir() {
        return Err(MedgenError::InvalidArgument { name: "dir", reason: format!("{} is not a folder", dir.display()) });
    }
    log::verify(log)?;
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| io_err(Path::new("127.0.0.1"), e))?;
    let addr = listener.local_addr().map_err(|e| io_err(Path::new("127.0.0.1"), e))?;
    println!("medgen review: serving {} on http://{addr}/ (decisions go to {})", dir.display(), log.display());
    let _ = std::io::stdout().flush();
    for stream in listener.incoming().flatten() {
        if let Err(e) = handle(stream, dir, log) {
            eprintln!("medgen review: {e}");
        }
    }
    Ok(())
}

fn io_err(path: &Path, e: std::io::Error) -> MedgenError {
    MedgenError::Io { path: path.to_path_buf(), source: e }
}

struct Response {
    status: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
}

fn page(status: &'static str, title: &str, message: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1><p>{m}</p>\
         <p><a href=\"/\">All drafts</a></p></body></html>",
        t = escape(title),
        m = escape(message)
    );
    Response { status, content_type: "text/html; charset=utf-8", body: body.into_bytes() }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// What a request may take: lines of 8 KiB, 100 header lines, and 60 s from its first byte to
/// its last (each read waits only until then: a client that trickles bytes cannot hold the
/// server, which answers one connection at a time).
const MAX_LINE: u64 = 8192;
const MAX_HEADERS: usize = 100;
const REQUEST_DEADLINE: Duration = Duration::from_secs(60);

/// A connection whose reads fail once `until` has passed.
struct Deadline {
    stream: TcpStream,
    until: Instant,
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the request took over 60 s"));
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

/// One line of at most 8 KiB, as bytes (a character the bound cuts is no error); None when it
/// does not end within the bound.
fn read_line(reader: &mut impl BufRead) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut line)?;
    Ok(line.ends_with(b"\n").then_some(line))
}

/// The request line and the Content-Length of a request's head; `Err` with the response when the
/// head breaks a bound, `Ok(None)` when the client went away.
fn read_head(reader: &mut impl BufRead) -> std::io::Result<std::result::Result<Option<(String, usize)>, Response>> {
    if reader.fill_buf()?.is_empty() {
        return Ok(Ok(None));
    }
    let Some(request) = read_line(reader)? else {
        return Ok(Err(page("414 URI Too Long", "Too long", "The request line is over 8 KiB.")));
    };
    let mut length = 0usize;
    for _ in 0..=MAX_HEADERS {
        if reader.fill_buf()?.is_empty() {
            return Ok(Ok(None));
        }
        let Some(line) = read_line(reader)? else { break };
        let line = String::from_utf8_lossy(&line);
        if line.trim().is_empty() {
            return Ok(Ok(Some((String::from_utf8_lossy(&request).into_owned(), length))));
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(usize::MAX);
            }
        }
    }
    Ok(Err(page("431 Request Header Fields Too Large", "Too large", "The request has over 100 header lines or one over 8 KiB.")))
}

fn handle(stream: TcpStream, dir: &Path, log: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(Deadline { stream: stream.try_clone()?, until: Instant::now() + REQUEST_DEADLINE });
    let (request, length) = match read_head(&mut reader)? {
        Ok(Some(head)) => head,
        Ok(None) => return Ok(()),
        Err(response) => {
            // Reply, then read a little of what the client is still sending (for at most a
            // second) so that closing does not reset the connection before the client has
            // read the reply.
            respond(stream.try_clone()?, response)?;
            stream.shutdown(std::net::Shutdown::Write)?;
            let deadline = &mut reader.get_mut().until;
            *deadline = (*deadline).min(Instant::now() + Duration::from_secs(1));
            let _ = std::io::copy(&mut reader.take(1 << 20), &mut std::io::sink());
            return Ok(());
        }
    };
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let response = match (method, path) {
        ("GET", "/") => index(dir),
        ("GET", p) if p.starts_with("/draft/") => draft(dir, &p["/draft/".len()..]),
        ("POST", "/decide") if length > MAX_BODY => page("413 Payload Too Large", "Too large", "The form is over 4 MB."),
        ("POST", "/decide") => {
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body)?;
            decide(log, &body)
        }
        _ => page("404 Not Found", "Not found", "No such page."),
    };
    respond(stream, response)
}

fn respond(mut stream: TcpStream, response: Response) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nContent-Security-Policy: {CSP}\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    )?;
    stream.write_all(&response.body)?;
    stream.flush()
}

/// The folder's pages, newest name last.
fn index(dir: &Path) -> Response {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.retain(|n| page_name(n));
    names.sort();
    let items: Vec<String> = names.iter().map(|n| format!("<li><a href=\"/draft/{0}\">{0}</a></li>", escape(n))).collect();
    let body = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Drafts</title></head><body><h1>Drafts to review</h1><ul>{}</ul></body></html>",
        items.concat()
    );
    Response { status: "200 OK", content_type: "text/html; charset=utf-8", body: body.into_bytes() }
}

/// A page's file name: letters, digits, `-`, `_` and `.`, ending in `.html` (no path).
fn page_name(name: &str) -> bool {
    name.ends_with(".html") && !name.starts_with('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn draft(dir: &Path, name: &str) -> Response {
    if !page_name(name) {
        return page("404 Not Found", "Not found", "No such draft page.");
    }
    match std::fs::read(PathBuf::from(dir).join(name)) {
        Ok(body) => Response { status: "200 OK", content_type: "text/html; charset=utf-8", body },
        Err(_) => page("404 Not Found", "Not found", "No such draft page."),
    }
}

/// Logs the decision of a posted form.
fn decide(log: &Path, body: &[u8]) -> Response {
    let form = match parse_form(body) {
        Some(form) => form,
        None => return page("400 Bad Request", "Bad form", "The form is not valid URL-encoded UTF-8."),
    };
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let decision: std::result::Result<Decision, _> = field("decision").unwrap_or("").parse();
    let result = decision.and_then(|d| {
        let text = if d == Decision::Rejected { None } else { field("text") };
        log::append_review(log, field("draft_id").unwrap_or(""), d, field("reviewer").unwrap_or(""), text)
    });
    match result {
        Ok(review) => {
            let head = log::verify(log).map(|s| s.head_sha256).unwrap_or_default();
            let message = format!(
                "Draft {}: {} by {} at {}. Final text SHA-256: {}. The log's last hash is now {head}: keep it to detect a rewritten log.",
                review.draft_id,
                review.decision.as_str(),
                review.reviewer,
                review.time,
                review.final_sha256.as_deref().unwrap_or("none (rejected)")
            );
            page("200 OK", "Decision recorded", &message)
        }
        Err(e @ MedgenError::AuditTampered { .. }) => page("409 Conflict", "The review log has been altered", &e.to_string()),
        Err(e) => page("400 Bad Request", "Decision refused", &e.to_string()),
    }
}

/// `application/x-www-form-urlencoded` pairs; None for bad escapes or UTF-8.
fn parse_form(body: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        Some((decode(k)?, decode(v)?))
    }).collect()
}

fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_bad_ones_are_refused() {
        let form = parse_form(b"draft_id=ab12&text=Fever+100%25%0Aok&reviewer=dr%2D1&empty=").unwrap();
        assert_eq!(form[1], ("text".to_string(), "Fever 100%\nok".to_string()));
        assert_eq!(form[2].1, "dr-1");
        assert!(parse_form(b"a=%zz").is_none() && parse_form(b"a=%e2%28").is_none() && parse_form(b"a=%4").is_none());
    }

    fn head(bytes: &[u8]) -> std::result::Result<Option<(String, usize)>, &'static str> {
        read_head(&mut std::io::Cursor::new(bytes)).unwrap().map_err(|r| r.status)
    }

    #[test]
    fn a_head_is_bounded_in_lines_and_length() {
        assert_eq!(head(b"POST /decide HTTP/1.1\r\nContent-Length: 12\r\n\r\nbody").unwrap(), Some(("POST /decide HTTP/1.1\r\n".into(), 12)));
        assert_eq!(head(b"").unwrap(), None);
        assert_eq!(head(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(), None, "the client went away before the blank line");
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(100));
        assert!(head(many.as_bytes()).unwrap().is_some());
        let too_many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(101));
        assert_eq!(head(too_many.as_bytes()), Err("431 Request Header Fields Too Large"));
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "y".repeat(9000));
        assert_eq!(head(long.as_bytes()), Err("431 Request Header Fields Too Large"));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
        assert_eq!(head(long.as_bytes()), Err("414 URI Too Long"));
        // The bound cuts a two-byte character: still a 431, not an error.
        let cut = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "é".repeat(5000));
        assert_eq!(head(cut.as_bytes()), Err("431 Request Header Fields Too Large"));
    }

    #[test]
    fn a_read_past_the_deadline_fails_and_one_before_it_waits_only_until_then() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, _) = listener.accept().unwrap();
        let mut late = Deadline { stream: stream.try_clone().unwrap(), until: Instant::now() };
        assert_eq!(late.read(&mut [0u8; 8]).unwrap_err().kind(), std::io::ErrorKind::TimedOut);
        let start = Instant::now();
        let mut soon = Deadline { stream, until: start + Duration::from_millis(200) };
        assert!(soon.read(&mut [0u8; 8]).is_err(), "the client sent nothing");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn only_plain_page_names_are_served() {
        for name in ["a.html", "draft-1_x.html"] {
            assert!(page_name(name), "{name}");
        }
        for name in ["../a.html", "a/b.html", ".hidden.html", "a.txt", "a%2F.html", ""] {
            assert!(!page_name(name), "{name}");
        }
    }
}
