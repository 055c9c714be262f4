"""The review page (`TaskResult.to_html`, `medgen task --html`) in a real browser, and the
review log end to end: clicking a draft sentence highlights the source spans that support
it, the page loads nothing from the network, it escapes the note, and the hash-chained log
catches a changed, removed or reordered line.

The browser is Debian's headless Chromium; each run gets a fresh profile under tmp_path."""

import hashlib
import json
import re
import shutil
import subprocess
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

import medgen
from conftest import DEFAULT_DIR, DEFAULT_FILE, ROOT, medgen_json, run_medgen

NOTE = ROOT / "examples/notes/admission_note_phi.txt"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
# A note that tries to run a script and to break out of an attribute.
HOSTILE_NOTE = ("Patient admitted with pneumonia. <script>alert(1)</script> Treated with ceftriaxone "
                "1 g IV daily. \"><img src=x onerror=alert(2)> Denies chest pain.")


# ---------------------------------------------------------------------------------------------
# Helpers: Chromium, a small DOM parser, script injection.

def chromium_path() -> Path:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("headless Chromium is missing: install Debian's chromium (`apt-get install chromium`; "
                    "the Makefile's set-up installs it); the review page tests need a real browser")
    return Path(path)


def run_chromium(tmp: Path, page: Path, *args) -> subprocess.CompletedProcess:
    """Runs headless Chromium on `page` with a fresh profile; returns the finished process."""
    profile = Path(tmp) / f"profile-{len(list(Path(tmp).glob('profile-*')))}"
    profile.mkdir(parents=True)
    cmd = [str(chromium_path()), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *map(str, args),
           page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc


def dump_dom(tmp: Path, page: Path) -> str:
    """The DOM of `page` after its scripts ran."""
    return run_chromium(tmp, page, "--dump-dom", "--virtual-time-budget=3000").stdout


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    @property
    def classes(self):
        return (self.attrs.get("class") or "").split()

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.walk()

    def find(self, id_):
        return next((n for n in self.walk() if n.attrs.get("id") == id_), None)

    def all(self, pred):
        return [n for n in self.walk() if pred(n)]


class _TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.stack[-1])
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, attrs, self.stack[-1]))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    b = _TreeBuilder()
    b.feed(html)
    b.close()
    return b.root


def inject(html: str, script: str, *, head: str = "") -> str:
    """`html` with `script` (a JS body) run on load before `</body>`, and `head` (raw HTML)
    right after `<head>`."""
    assert html.count("</body>") == 1 and html.count("<head>") == 1, "the page should have one body and one head"
    html = html.replace("<head>", "<head>" + head, 1)
    return html.replace("</body>", f"<script id=\"probe-js\">{script}</script></body>", 1)


PROBE_TAIL = """
  } catch (e) { out.error = String((e && e.stack) || e); }
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});"""


def probe(dom: Node) -> dict:
    pre = dom.find("probe")
    assert pre is not None, "the injected probe did not run: the page's scripts failed or the page did not load"
    out = json.loads(pre.text())
    assert "error" not in out, f"the probe script failed in the page: {out['error']}"
    return out


def span_id(span) -> str:
    return f"s{span['start']}-{span['end']}"


# ---------------------------------------------------------------------------------------------
# Fixtures: one run of the task with the default model and adapter.

@pytest.fixture(scope="module")
def model():
    return medgen.Model.load(adapter=str(medgen.task_adapter_path()))


@pytest.fixture(scope="module")
def run(model, tmp_path_factory):
    """The task on the example note, logged; its page written to review.html."""
    tmp = tmp_path_factory.mktemp("review")
    log = tmp / "drafts.audit.jsonl"
    r = model.run_task("discharge_summary", NOTE.read_text(), max_new_tokens=120, review_log=log)
    page = tmp / "review.html"
    html = r.to_html(page)
    assert page.read_text(encoding="utf-8") == html
    assert r.attributions, f"the draft has no sentence to review: {r.text!r}"
    return {"r": r, "html": html, "page": page, "log": log, "tmp": tmp}


@pytest.fixture(scope="module")
def hostile(model):
    """The task on a note holding markup, without de-identification."""
    r = model.run_task("discharge_summary", HOSTILE_NOTE, deid="none", max_new_tokens=20)
    assert r.source == HOSTILE_NOTE
    return r


# ---------------------------------------------------------------------------------------------
# 1. Clicking a sentence highlights its source spans, in a real browser.

def test_units_json_matches_the_attributions(run):
    r, dom = run["r"], parse(run["html"])
    units = json.loads(dom.find("units").text())
    assert units == [[span_id(s) for s in a["spans"]] for a in r.attributions]
    source = dom.find("source")
    assert source is not None and source.text() == r.source, "#source must show the whole source note"
    for a in r.attributions:
        assert r.text[a["start"]:a["end"]] == a["text"]
        for s in a["spans"]:
            el = dom.find(span_id(s))
            assert el is not None and "sp" in el.classes and el.parent is source, f"no source span {span_id(s)}"
            assert el.text() == r.source[s["start"]:s["end"]]
    # The draft's pieces, read in order, are the draft; each unit's pieces are its text.
    draft = dom.find("draft")
    assert draft.text() == r.text
    for u, a in enumerate(r.attributions):
        pieces = draft.all(lambda n, u=u: n.attrs.get("data-u") == str(u))
        assert "".join(p.text() for p in pieces) == a["text"], f"unit {u}"


def test_clicking_a_sentence_highlights_its_source_spans(run):
    r = run["r"]
    units = r.attributions
    with_spans = [u for u, a in enumerate(units) if a["spans"]]
    first = next((u for u in with_spans if units[u]["supported"]), None)
    assert first is not None, f"no supported sentence with spans to click: {units}"
    ids = lambda u: {span_id(s) for s in units[u]["spans"]}
    second = next((u for u in with_spans if u != first and ids(u) - ids(first) and ids(first) - ids(u)), None)
    assert second is not None, f"no second sentence with other spans to click: {units}"

    script = """window.addEventListener('load', () => {
  const out = {};
  const state = () => {
    const spans = [...document.querySelectorAll('#source .sp.on')];
    const pieces = [...document.querySelectorAll('#draft .on')];
    return {spans: spans.map(e => e.id), spanTexts: spans.map(e => e.textContent),
            draft: pieces.map(e => e.textContent).join(''), units: [...new Set(pieces.map(e => e.dataset.u))],
            all: document.querySelectorAll('.on').length, selected: document.body.dataset.selected ?? null};
  };
  const fire = (el, type) => el.dispatchEvent(new MouseEvent(type, {bubbles: true, cancelable: true, view: window}));
  const piece = u => document.querySelector('#draft [data-u="' + u + '"]');
  try {
    out.before = state();
    fire(piece(%(second)d), 'mouseover'); out.hover = state();
    fire(piece(%(first)d), 'click'); out.first = state();
    fire(piece(%(second)d), 'mouseover'); out.hoverAfterClick = state();
    fire(piece(%(second)d), 'click'); out.second = state();
    for (const b of document.querySelectorAll('button')) {
      fire(b, 'click'); out['cmd_' + b.textContent.trim().toLowerCase()] = document.getElementById('cmd').textContent;
    }
    out.save = document.getElementById('save').getAttribute('href');
""" % {"first": first, "second": second} + PROBE_TAIL
    page = run["tmp"] / "click.html"
    page.write_text(inject(run["html"], script), encoding="utf-8")
    dom = parse(dump_dom(run["tmp"], page))
    out = probe(dom)

    def expect(state, u, what):
        a = units[u]
        assert state["spans"] and sorted(state["spans"]) == sorted(ids(u)), \
            f"{what}: highlighted source spans {state['spans']}, expected unit {u}'s {sorted(ids(u))}"
        bounds = {span_id(s): (s["start"], s["end"]) for s in a["spans"]}
        assert state["spanTexts"] == [r.source[slice(*bounds[i])] for i in state["spans"]]
        assert state["draft"] == a["text"], f"{what}: highlighted draft text {state['draft']!r}, expected {a['text']!r}"
        assert state["units"] == [str(u)]

    assert out["before"]["all"] == 0 and out["before"]["selected"] is None, "nothing is highlighted before a click"
    expect(out["hover"], second, "hovering before any click")
    expect(out["first"], first, "after clicking the first sentence")
    assert out["first"]["selected"] == str(first)
    expect(out["hoverAfterClick"], first, "hovering after a click (the click's choice stays)")
    expect(out["second"], second, "after clicking the second sentence")
    assert out["second"]["selected"] == str(second)
    left = ids(first) - ids(second)
    assert left and not left & set(out["second"]["spans"]), "the first sentence's own spans must lose the highlight"

    # The DOM as Chromium left it, read without the probe: the second sentence's spans and pieces.
    on = dom.all(lambda n: "on" in n.classes)
    assert sorted(n.attrs["id"] for n in on if "sp" in n.classes) == sorted(ids(second))
    assert "".join(n.text() for n in on if n.attrs.get("data-u") and n.parent.attrs.get("id") == "draft") \
        == units[second]["text"]

    # Accept / Edit / Reject write the command that logs the decision.
    for word, decision in [("accept", "accept"), ("edit", "edit"), ("reject", "reject")]:
        cmd = out[f"cmd_{word}"]
        assert cmd.startswith("medgen review decide --log ") and f"--draft-id {r.draft_id} " in cmd, cmd
        assert f"--decision {decision} " in cmd and "--reviewer " in cmd
        assert ("--text " in cmd) == (decision != "reject"), cmd
    assert (out["save"] or "").startswith("blob:"), "Accept/Edit offers the final text as a local download"


# ---------------------------------------------------------------------------------------------
# 2. The page loads nothing from the network.

def network_requests(net_log: Path) -> list:
    """URLs the page itself asked for (Chromium's own background requests left out)."""
    raw = net_log.read_text(encoding="utf-8")
    try:
        log = json.loads(raw)
    except json.JSONDecodeError:
        # A log cut at exit lacks its closing brackets.
        log = json.loads(raw.rstrip().rstrip(",") + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for ev in log["events"]:
        params = ev.get("params") or {}
        if ev.get("type") == start_job and "url" in params and params.get("initiator") != "not an origin":
            urls.append(params["url"])
    return urls


def remote(urls):
    return [u for u in urls if not u.startswith(("file:", "data:", "blob:"))]


def page_requests(tmp: Path, page: Path) -> list:
    net_log = tmp / f"{page.stem}.netlog.json"
    run_chromium(tmp, page, f"--log-net-log={net_log}", "--dump-dom", "--virtual-time-budget=3000")
    return network_requests(net_log)


def test_the_page_makes_no_network_request(run):
    tmp = run["tmp"]
    assert remote(page_requests(tmp, run["page"])) == []

    # The detector sees a page's request: a control page without CSP, loading an image.
    control = tmp / "control.html"
    control.write_text('<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png"><p>control</p></body></html>')
    assert "http://127.0.0.1:9/x.png" in remote(page_requests(tmp, control)), "the network-log detector is blind"

    # The page's CSP blocks what an injected image, fetch or stylesheet would load.
    hostile = tmp / "csp.html"
    loads = '<img src="http://127.0.0.1:9/y.png"><link rel="stylesheet" href="http://127.0.0.1:9/s.css">'
    injected = inject(run["html"], "fetch('http://127.0.0.1:9/f').catch(() => {});")
    hostile.write_text(injected.replace("</main>", "</main>" + loads, 1), encoding="utf-8")
    assert remote(page_requests(tmp, hostile)) == [], "the page's Content-Security-Policy must block loads"


def test_the_page_is_self_contained_and_carries_a_csp(run):
    html = run["html"]
    assert not re.search(r"""\b(?:src|href|action|poster|srcset)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I), \
        "the page must not point at anything on the network"
    style = "".join(re.findall(r"<style>(.*?)</style>", html, re.S))
    assert style and "url(" not in style and "@import" not in style and "@font-face" not in style
    metas = re.findall(r"""<meta http-equiv="Content-Security-Policy" content="([^"]*)">""", html)
    assert len(metas) == 1, "the page carries one Content-Security-Policy meta"
    assert html.index("Content-Security-Policy") < min(html.index("<style"), html.index("<script")), \
        "the CSP must come before any style or script"
    policy = {d.split()[0]: d.split()[1:] for d in unescape(metas[0]).split(";") if d.strip()}
    assert policy.get("default-src") == ["'none'"], policy
    allowed = {"'none'", "'unsafe-inline'", "blob:", "data:"}
    assert all(set(srcs) <= allowed for srcs in policy.values()), f"a directive allows the network: {policy}"
    assert not re.search(r"<(?:link|iframe|object|embed|img|audio|video|source)\b", html, re.I)


# ---------------------------------------------------------------------------------------------
# 3. What the page shows, and escaping.

def audit_rows(audit: Node) -> dict:
    """The audit panel's rows: term -> value."""
    items = [n for n in audit.children if isinstance(n, Node)]
    assert [n.tag for n in items] == ["dt", "dd"] * (len(items) // 2), "the audit panel is a list of dt/dd pairs"
    return {dt.text(): dd.text() for dt, dd in zip(items[::2], items[1::2])}


def check_panel(r, html):
    dom = parse(html)
    units = r.attributions
    unsupported = [(u, a) for u, a in enumerate(units) if not a["supported"]]
    ul = dom.find("unsupported")
    assert ul is not None
    items = ul.all(lambda n: n.tag == "li")
    assert len(items) == len(unsupported)
    for li, (u, a) in zip(items, unsupported):
        assert li.attrs.get("data-u") == str(u) and a["text"] in li.text(), (li.text(), a)
        assert all(f in li.text() for f in a["flags"])
    assert f"Unsupported sentences: {len(unsupported)}<" in html
    supported = len(units) - len(unsupported)
    assert f"{supported} of {len(units)} sentences supported" in html
    # Unsupported sentences are marked in the draft, supported ones not.
    for n in dom.find("draft").all(lambda n: "data-u" in n.attrs):
        assert ("uns" in n.classes) == (not units[int(n.attrs["data-u"])]["supported"]), n.text()
    assert len(dom.find("findings").all(lambda n: n.tag == "li")) == len(r.findings)
    missing = dom.find("missing")
    if r.missing_sections:
        assert [li.text() for li in missing.all(lambda n: n.tag == "li")] == r.missing_sections
    else:
        assert missing is None
    return dom


def test_the_page_lists_unsupported_sentences_and_the_audit(run):
    r, html = run["r"], run["html"]
    dom = check_panel(r, html)
    audit = dom.find("audit")
    assert audit is not None, "the page has no #audit panel"
    model_sha = hashlib.sha256((DEFAULT_DIR / DEFAULT_FILE).read_bytes()).hexdigest()
    assert r.audit["model_sha256"] == model_sha
    assert r.draft_id and re.fullmatch(r"[0-9a-f]{16}", r.draft_id)
    rows = audit_rows(audit)
    assert rows.get("draft id") == r.draft_id and rows.get("model SHA-256") == model_sha, rows
    assert rows.get("output SHA-256") == r.audit["output_sha256"] == hashlib.sha256(r.text.encode()).hexdigest()
    assert rows.get("input SHA-256") == r.audit["input_sha256"] and rows.get("model") == DEFAULT_FILE
    assert dom.find("final").text() == r.text, "the edit box starts with the draft"
    body = dom.all(lambda n: n.tag == "body")[0]
    assert body.attrs.get("data-draft") == r.draft_id
    assert "DRAFT" in dom.all(lambda n: n.tag == "header")[0].text()


def test_a_page_without_a_log_says_so(hostile):
    dom = check_panel(hostile, hostile.to_html())
    assert hostile.draft_id is None
    assert audit_rows(dom.find("audit"))["draft id"] == "(not logged)"
    assert any(not a["supported"] for a in hostile.attributions), "an invented sentence should be flagged"


def test_markup_in_the_note_is_escaped(hostile, tmp_path):
    html = hostile.to_html()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(2)&gt;" in html
    # Count calls of alert() made by anything on the page.
    spy = "<script id=\"probe-spy\">window.__alerts = []; window.alert = m => window.__alerts.push(String(m));</script>"
    script = "window.addEventListener('load', () => { const out = {alerts: window.__alerts};\n try {" + PROBE_TAIL

    def browse(page_html, name):
        page = tmp_path / name
        page.write_text(inject(page_html, script, head=spy), encoding="utf-8")
        dom = parse(dump_dom(tmp_path, page))
        scripts = [n for n in dom.all(lambda n: n.tag == "script") if not n.attrs.get("id", "").startswith("probe")]
        return dom, probe(dom)["alerts"], [s.text() for s in scripts if "alert" in s.text()], \
            dom.all(lambda n: n.tag == "img")

    dom, alerts, scripts, imgs = browse(html, "hostile.html")
    assert alerts == [] and scripts == [] and imgs == [], (alerts, scripts, imgs)
    assert dom.find("source").text() == HOSTILE_NOTE, "the note is shown as text, markup included"
    # The same checks see a script that does run.
    control = html.replace("</main>", "</main><script>alert(1)</script>", 1)
    _, alerts, scripts, _ = browse(control, "control.html")
    assert alerts == ["1"] and scripts == ["alert(1)"], "the detector must see a script that runs"


# ---------------------------------------------------------------------------------------------
# 4. The review log through the CLI.

def lines_of(path: Path):
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_review_log_end_to_end_with_the_cli(tmp_path):
    log, page = tmp_path / "drafts.audit.jsonl", tmp_path / "draft.html"
    out = medgen_json("task", "discharge_summary", "--input", NOTE, "--max-new-tokens", 120,
                      "--html", page, "--review-log", log, "--json")
    draft_id = out["draft_id"]
    assert re.fullmatch(r"[0-9a-f]{16}", draft_id)
    html = page.read_text(encoding="utf-8")
    assert f'data-draft="{draft_id}"' in html and audit_rows(parse(html).find("audit"))["draft id"] == draft_id

    final = tmp_path / "final.txt"
    final.write_text("Diagnoses:\n- Community-acquired pneumonia\n", encoding="utf-8")
    accepted = json.loads(run_medgen("review", "decide", "--log", log, "--draft-id", draft_id,
                                     "--decision", "accept", "--reviewer", "dr-042", "--text", final).stdout)
    assert accepted["decision"] == "accepted" and accepted["reviewer"] == "dr-042"
    assert accepted["final_sha256"] == hashlib.sha256(final.read_bytes()).hexdigest()
    rejected = json.loads(run_medgen("review", "decide", "--log", log, "--draft-id", draft_id,
                                     "--decision", "reject", "--reviewer", "dr-007").stdout)
    assert rejected["decision"] == "rejected" and rejected["final_sha256"] is None
    summary = json.loads(run_medgen("review", "verify", "--log", log).stdout)
    assert summary["entries"] == 3 and summary["drafts"] == [draft_id]
    assert summary["reviews"] == [[draft_id, "accepted"], [draft_id, "rejected"]]
    good = lines_of(log)
    assert len(good) == 3 and json.loads(good[-1])["sha256"] == summary["head_sha256"]
    assert "Community-acquired pneumonia" not in log.read_text(), "the log holds the final text's hash, not the text"

    def altered(lines, line_no, what):
        log.write_text("".join(lines), encoding="utf-8")
        before = log.read_bytes()
        proc = run_medgen("review", "verify", "--log", log, check=False)
        assert proc.returncode != 0, f"{what}: verify passed an altered log"
        assert f"line {line_no}" in proc.stderr and "altered" in proc.stderr, f"{what}: {proc.stderr}"
        proc = run_medgen("review", "decide", "--log", log, "--draft-id", draft_id, "--decision", "accept",
                          "--reviewer", "dr-042", "--text", final, check=False)
        assert proc.returncode != 0 and "altered" in proc.stderr, f"{what}: decide appended to an altered log"
        assert log.read_bytes() == before, f"{what}: decide changed the altered log"

    # One byte of the reviewer's id.
    assert good[1].count('"dr-042"') == 1
    altered([good[0], good[1].replace('"dr-042"', '"dr-043"'), good[2]], 2, "an edited byte")
    altered([good[0], good[2]], 2, "a removed line")
    altered([good[0], good[2], good[1]], 2, "reordered lines")
    altered([good[1], good[0], good[2]], 1, "reordered lines at the start")

    # The untouched log verifies again.
    log.write_text("".join(good), encoding="utf-8")
    assert json.loads(run_medgen("review", "verify", "--log", log).stdout) == summary

    def refused(args, name):
        proc = run_medgen("review", "decide", "--log", log, *args, check=False)
        assert proc.returncode != 0 and name in proc.stderr, (args, proc.stderr)
        assert lines_of(log) == good, f"a refused decision ({args}) changed the log"

    refused(["--draft-id", "0123456789abcdef", "--decision", "accept", "--reviewer", "dr-042", "--text", final],
            "draft_id")
    refused(["--draft-id", draft_id, "--decision", "maybe", "--reviewer", "dr-042", "--text", final], "decision")
    refused(["--draft-id", draft_id, "--decision", "accept", "--reviewer", "dr-042"], "final_text")
    refused(["--draft-id", draft_id, "--decision", "reject", "--reviewer", "dr-042", "--text", final], "final_text")
    refused(["--draft-id", draft_id, "--decision", "reject", "--reviewer", " "], "reviewer")


def test_html_onto_an_existing_file_needs_force(tmp_path):
    page, log = tmp_path / "existing.html", tmp_path / "log.jsonl"
    page.write_text("keep me", encoding="utf-8")
    proc = run_medgen("task", "discharge_summary", "--input", NOTE, "--max-new-tokens", 120,
                      "--html", page, "--review-log", log, check=False)
    assert proc.returncode != 0 and "--force" in proc.stderr, proc.stderr
    assert page.read_text(encoding="utf-8") == "keep me"
    assert not log.exists(), "a refused run must not log a draft"


def test_a_review_log_that_cannot_be_written_or_is_tampered_fails_before_generating(tmp_path):
    page = tmp_path / "page.html"
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text('{"kind": "draft", "seq": 0, "sha256": "0"}\n', encoding="utf-8")
    for log, word in [(tmp_path / "missing" / "log.jsonl", "missing"), (tampered, "tamper")]:
        proc = run_medgen("task", "discharge_summary", "--input", NOTE, "--max-new-tokens", 120,
                          "--html", page, "--review-log", log, check=False)
        assert proc.returncode != 0 and word in proc.stderr.lower(), proc.stderr
        assert not page.exists(), "the draft was generated before the log was checked"


# ---------------------------------------------------------------------------------------------
# 5. The Python API.

SOURCE = "Admitted with pneumonia. Treated with ceftriaxone 1 g IV daily. Denies chest pain."
DRAFT = ("Hospital Course:\nTreated with ceftriaxone 1 g IV daily.\n"
         "Started warfarin 5 mg for atrial fibrillation.")


def test_attribute_links_a_stated_sentence_and_flags_an_invented_one():
    units = medgen.review.attribute(SOURCE, DRAFT)
    assert [u["text"] for u in units] == ["Treated with ceftriaxone 1 g IV daily.",
                                          "Started warfarin 5 mg for atrial fibrillation."]
    stated, invented = units
    for u in units:
        assert DRAFT[u["start"]:u["end"]] == u["text"]
    assert stated["supported"] is True and stated["flags"] == [] and stated["score"] >= 0.5
    texts = [SOURCE[s["start"]:s["end"]] for s in stated["spans"]]
    assert texts and all(t in SOURCE for t in texts)
    assert "Treated with ceftriaxone 1 g IV daily." in texts, texts
    assert "Denies chest pain." not in texts and "Admitted with pneumonia." not in texts
    assert invented["supported"] is False and "no_support" in invented["flags"]


def test_attribute_refuses_empty_texts():
    with pytest.raises(medgen.InvalidArgumentError, match="draft"):
        medgen.review.attribute(SOURCE, "Plan:\n")
    with pytest.raises(medgen.InvalidArgumentError, match="source"):
        medgen.review.attribute("", DRAFT)
    with pytest.raises(medgen.InvalidArgumentError, match="source"):
        medgen.review.attribute(" \n", DRAFT)


def test_attribution_spans_of_the_run_are_clauses_of_its_source(run):
    r = run["r"]
    for a in r.attributions:
        for s in a["spans"]:
            assert 0 <= s["start"] < s["end"] <= len(r.source) and 0 < s["score"] <= 1
            assert r.source[s["start"]:s["end"]].strip() == r.source[s["start"]:s["end"]]
        assert a["supported"] == (a["flags"] == [])


def test_decide_and_verify_from_python(run, tmp_path):
    r = run["r"]
    log = tmp_path / "log.jsonl"
    shutil.copy(run["log"], log)
    assert medgen.review.verify(log)["drafts"] == [r.draft_id]
    entry = medgen.review.decide(log, r.draft_id, "edit", "dr-042", text="Edited.")
    assert entry["decision"] == "edited" and entry["final_sha256"] == hashlib.sha256(b"Edited.").hexdigest()
    with pytest.raises(medgen.InvalidArgumentError, match="draft_id"):
        medgen.review.decide(log, "0" * 16, "accept", "dr-042", text="x")
    with pytest.raises(medgen.InvalidArgumentError, match="decision"):
        medgen.review.decide(log, r.draft_id, "maybe", "dr-042", text="x")
    summary = medgen.review.verify(log)
    assert summary["entries"] == 2 and summary["reviews"] == [[r.draft_id, "edited"]]

    lines = lines_of(log)
    log.write_text(lines[0] + lines[1].replace('"dr-042"', '"dr-043"'), encoding="utf-8")
    before = log.read_bytes()
    with pytest.raises(medgen.AuditTamperedError, match="line 2"):
        medgen.review.verify(log)
    with pytest.raises(medgen.AuditTamperedError, match="line 2"):
        medgen.review.decide(log, r.draft_id, "accept", "dr-042", text="x")
    assert log.read_bytes() == before
    assert issubclass(medgen.AuditTamperedError, medgen.MedgenError)


def test_to_html_does_not_overwrite_without_asking(run, tmp_path):
    page = tmp_path / "page.html"
    page.write_text("keep me")
    with pytest.raises(FileExistsError):
        run["r"].to_html(page)
    assert page.read_text() == "keep me"
    run["r"].to_html(page, overwrite=True)
    assert page.read_text(encoding="utf-8") == run["html"]
