//! The review page: one self-contained HTML file (inline style and script, no fonts, images
//! or requests; a Content-Security-Policy that forbids any) showing the source note and the
//! draft side by side. Clicking or hovering a draft sentence highlights the source spans that
//! support it; unsupported sentences are underlined in red, check findings wavy, tokens the
//! model was unsure of shaded by how unsure; missing sections, findings and the audit
//! record's identifiers are listed. A second click on the selected sentence clears the
//! selection. The reviewer edits the text in place and gets the `medgen review decide`
//! command that logs the decision (an "accept" of a changed text is logged as an edit) and
//! the final text as a file to save.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::attribution::{Attribution, TokenConfidence, LOW_CONFIDENCE};
use crate::audit::AuditRecord;
use crate::checks::Finding;

/// What the page shows.
#[derive(Debug, Clone)]
pub struct Page<'a> {
    /// The task's name, for the title.
    pub task: &'a str,
    /// The note the draft is checked against (de-identified, or the original once the draft
    /// is re-identified).
    pub source: &'a str,
    pub draft: &'a str,
    pub attributions: &'a [Attribution],
    pub findings: &'a [Finding],
    pub tokens: &'a [TokenConfidence],
    pub missing_sections: &'a [String],
    pub audit: Option<&'a AuditRecord>,
    /// The draft's id in its review log, when it was logged.
    pub draft_id: Option<&'a str>,
    pub notice: &'a str,
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#f6f6f4}\
header{padding:10px 18px;background:#24303f;color:#fff}header b{color:#ffd479}\
main{display:grid;grid-template-columns:1fr 1fr 300px;gap:14px;padding:14px}\
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px;overflow:auto;max-height:82vh}\
h2{font-size:14px;text-transform:uppercase;letter-spacing:.05em;color:#555;margin:0 0 8px}\
.text{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:13.5px}\
[data-u]{cursor:pointer;border-radius:2px}.uns{text-decoration:underline 2px #d33;text-underline-offset:3px}\
.fnd{text-decoration:underline wavy #e67e00}[data-u]:hover{background:#eef3ff}.on{background:#ffe58a!important}\
.sp.on{background:#b9e6c9!important}\
dl{font-size:12px;word-break:break-all}dt{font-weight:600;margin-top:6px}ul{padding-left:18px}\
textarea{width:100%;height:140px;font:12px ui-monospace,monospace}button{margin:4px 4px 0 0}\
code{font-size:11.5px;word-break:break-all}.warn{color:#b00}";

const SCRIPT: &str = "const units=JSON.parse(document.getElementById('units').textContent);\
function pick(u,keep){document.querySelectorAll('.on').forEach(e=>e.classList.remove('on'));if(u===null)return;\
document.querySelectorAll('[data-u=\"'+u+'\"]').forEach(e=>e.classList.add('on'));\
let first=null;for(const id of units[u]){const s=document.getElementById(id);if(s){s.classList.add('on');first=first||s;}}\
if(first&&keep)first.scrollIntoView({block:'center'});document.body.dataset.selected=u;}\
document.addEventListener('click',e=>{const t=e.target.closest('[data-u]');if(!t)return;\
if(document.body.dataset.selected===t.dataset.u){pick(null);delete document.body.dataset.selected;}else pick(t.dataset.u,true);});\
document.addEventListener('mouseover',e=>{const t=e.target.closest('[data-u]');if(t&&document.body.dataset.selected===undefined)pick(t.dataset.u,false);});\
function decide(d){const id=document.body.dataset.draft||'DRAFT_ID';const text=document.getElementById('final').value;\
if(d==='accept'&&text!==document.getElementById('final').defaultValue)d='edit';\
const form=document.getElementById('review');if(location.protocol.startsWith('http')&&document.body.dataset.draft){\
form.elements.decision.value=d;if(!form.elements.reviewer.value){form.elements.reviewer.focus();return;}form.submit();return;}\
const c=d==='reject'?'':' --text final.txt';document.getElementById('cmd').textContent=\
'medgen review decide --log LOG --draft-id '+id+' --decision '+d+' --reviewer YOUR_ID'+c;\
if(d!=='reject'){const a=document.getElementById('save');a.href=URL.createObjectURL(new Blob([text],{type:'text/plain'}));a.hidden=false;}}";

/// Renders `page` as one HTML document.
pub fn render(page: &Page) -> String {
    let mut html = String::new();
    let title = format!("medgen review: {}", page.task);
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src blob: data:\">\
         <title>{}</title><style>{STYLE}</style></head><body data-draft=\"{}\">",
        escape(&title),
        escape(page.draft_id.unwrap_or("")),
    );
    let supported = page.attributions.iter().filter(|a| a.supported).count();
    let _ = write!(
        html,
        "<header><b>DRAFT</b> · {} · {} of {} sentences supported · {} findings · {}</header><main>",
        escape(page.task),
        supported,
        page.attributions.len(),
        page.findings.len(),
        escape(page.notice)
    );

    // Source, with the spans that support some sentence marked.
    let spans: BTreeSet<(usize, usize)> = page.attributions.iter().flat_map(|a| a.spans.iter().map(|s| (s.start, s.end))).collect();
    html.push_str("<section><h2>Source</h2><div class=\"text\" id=\"source\">");
    let chars: Vec<char> = page.source.chars().collect();
    let mut at = 0;
    for &(start, end) in &spans {
        if start < at || end > chars.len() {
            continue;
        }
        html.push_str(&escape(&chars[at..start].iter().collect::<String>()));
        let _ = write!(html, "<span class=\"sp\" id=\"s{start}-{end}\">{}</span>", escape(&chars[start..end].iter().collect::<String>()));
        at = end;
    }
    html.push_str(&escape(&chars[at.min(chars.len())..].iter().collect::<String>()));
    html.push_str("</div></section>");

    // Draft: cut at every boundary of a sentence, a token and a finding.
    html.push_str("<section><h2>Draft</h2><div class=\"text\" id=\"draft\">");
    let draft: Vec<char> = page.draft.chars().collect();
    let mut cuts: BTreeSet<usize> = [0, draft.len()].into();
    for a in page.attributions {
        cuts.extend([a.start, a.end]);
    }
    for t in page.tokens {
        cuts.extend([t.start, t.end]);
    }
    for f in page.findings {
        cuts.extend([f.start, f.end]);
    }
    let cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= draft.len()).collect();
    for w in cuts.windows(2) {
        let (start, end) = (w[0], w[1]);
        let piece = escape(&draft[start..end].iter().collect::<String>());
        let unit = page.attributions.iter().position(|a| a.start <= start && end <= a.end);
        let token = page.tokens.iter().find(|t| t.start <= start && end <= t.end);
        let finding = page.findings.iter().find(|f| f.start <= start && end <= f.end);
        let mut classes = Vec::new();
        let mut attrs = String::new();
        if let Some(u) = unit {
            let a = &page.attributions[u];
            if !a.supported {
                classes.push("uns");
            }
            let mut title = format!("support {:.2}", a.score);
            if let Some(gain) = a.note_gain {
                let _ = write!(title, "; note gain {gain:.2}");
            }
            for flag in &a.flags {
                let _ = write!(title, "; {}", flag.as_str());
            }
            let _ = write!(attrs, " data-u=\"{u}\" title=\"{title}\"");
        }
        if let Some(f) = finding {
            classes.push("fnd");
            let _ = write!(attrs, " data-finding=\"{}\"", escape(&f.detail));
        }
        if let Some(t) = token.filter(|t| t.prob < LOW_CONFIDENCE) {
            let _ = write!(attrs, " style=\"background:rgba(255,120,0,{:.2})\" data-p=\"{:.3}\"", (1.0 - t.prob) * 0.45, t.prob);
        }
        if classes.is_empty() && attrs.is_empty() {
            html.push_str(&piece);
        } else {
            let _ = write!(html, "<span class=\"{}\"{attrs}>{piece}</span>", classes.join(" "));
        }
    }
    html.push_str("</div></section>");

    // Side panel.
    html.push_str("<section><h2>Review</h2>");
    if !page.missing_sections.is_empty() {
        let list: Vec<String> = page.missing_sections.iter().map(|s| format!("<li>{}</li>", escape(s))).collect();
        let _ = write!(html, "<p class=\"warn\">Missing sections:</p><ul id=\"missing\">{}</ul>", list.concat());
    }
    let unsupported: Vec<String> = page
        .attributions
        .iter()
        .enumerate()
        .filter(|(_, a)| !a.supported)
        .map(|(u, a)| {
            let flags: Vec<&str> = a.flags.iter().map(|f| f.as_str()).collect();
            format!("<li data-u=\"{u}\">{} <i>({})</i></li>", escape(&a.text), flags.join(", "))
        })
        .collect();
    let _ = write!(html, "<p>Unsupported sentences: {}</p><ul id=\"unsupported\">{}</ul>", unsupported.len(), unsupported.concat());
    let findings: Vec<String> = page.findings.iter().map(|f| format!("<li>{}: {}</li>", escape(f.kind.as_str()), escape(&f.detail))).collect();
    let _ = write!(html, "<p>Findings: {}</p><ul id=\"findings\">{}</ul>", page.findings.len(), findings.concat());
    // Served by `medgen review serve`, the buttons post the decision; opened as a file, they
    // give the command that logs it.
    let _ = write!(
        html,
        "<form id=\"review\" method=\"post\" action=\"/decide\"><input type=\"hidden\" name=\"draft_id\" value=\"{}\">\
         <input type=\"hidden\" name=\"decision\" value=\"\"><p>Final text (edit here):</p>\
         <textarea id=\"final\" name=\"text\">{}</textarea>\
         <p>Reviewer: <input name=\"reviewer\" size=\"12\" placeholder=\"staff id\"></p>",
        escape(page.draft_id.unwrap_or("")),
        escape(page.draft)
    );
    html.push_str(
        "<div><button type=\"button\" onclick=\"decide('accept')\">Accept</button>\
         <button type=\"button\" onclick=\"decide('edit')\">Edit</button>\
         <button type=\"button\" onclick=\"decide('reject')\">Reject</button> <a id=\"save\" download=\"final.txt\" hidden>final.txt</a></div>\
         </form><p><code id=\"cmd\"></code></p>",
    );
    if let Some(a) = page.audit {
        let rows = [
            ("draft id", page.draft_id.unwrap_or("(not logged)").to_string()),
            ("model", a.model_name.clone()),
            ("model SHA-256", a.model_sha256.clone()),
            ("input SHA-256", a.input_sha256.clone()),
            ("output SHA-256", a.output_sha256.clone()),
            ("de-identification", format!("{} ({})", a.deid, a.deid_engine.as_deref().unwrap_or("none"))),
            ("started", a.started_at.clone()),
            ("medgen", a.medgen_version.to_string()),
        ];
        let dl: Vec<String> = rows.iter().map(|(k, v)| format!("<dt>{k}</dt><dd>{}</dd>", escape(v))).collect();
        let _ = write!(html, "<h2>Audit</h2><dl id=\"audit\">{}</dl>", dl.concat());
    }
    html.push_str("</section></main>");

    // Each sentence's source span ids, for the script.
    let units: Vec<Vec<String>> =
        page.attributions.iter().map(|a| a.spans.iter().map(|s| format!("s{}-{}", s.start, s.end)).collect()).collect();
    let json = serde_json::to_string(&units).unwrap_or_else(|_| "[]".into()).replace('<', "\\u003c");
    let _ = write!(html, "<script type=\"application/json\" id=\"units\">{json}</script><script>{SCRIPT}</script></body></html>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::attribution::attribute;

    #[test]
    fn the_page_links_sentences_to_spans_and_escapes_text() {
        let source = "Admitted with <pneumonia>. Given ceftriaxone 1 g IV.";
        let draft = "Diagnoses:\n- <pneumonia>\nCourse:\nCeftriaxone 1 g IV given. Invented <script> here.";
        let units = attribute(source, draft, &[], &[], &[], None);
        let page = Page {
            task: "discharge_summary",
            source,
            draft,
            attributions: &units,
            findings: &[],
            tokens: &[],
            missing_sections: &["Follow-up".to_string()],
            audit: None,
            draft_id: None,
            notice: "DRAFT",
        };
        let html = render(&page);
        assert!(!html.contains("<script> here") && html.contains("&lt;script&gt; here"));
        assert!(html.contains("id=\"s0-26\"") && html.contains("[[\"s0-26\"]"), "{html}");
        assert!(html.contains("<li>Follow-up</li>"));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
