"""`medgen review serve`: the pages of a folder on 127.0.0.1, the decisions their forms post
appended to the review log, and the requests it refuses."""

import json
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import MEDGEN, ROOT, medgen_json, run_medgen

NOTE = ROOT / "examples" / "notes" / "admission_note_phi.txt"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A folder with one task's page, its log, and the server on a free port."""
    tmp = tmp_path_factory.mktemp("serve")
    pages, log = tmp / "pages", tmp / "review.jsonl"
    pages.mkdir()
    out = medgen_json("task", "discharge_summary", "--input", NOTE, "--max-new-tokens", 40, "--html",
                      pages / "summary-1.html", "--review-log", log, "--json")
    (tmp / "secret.html").write_text("not to be served")
    proc = subprocess.Popen([str(MEDGEN), "review", "serve", "--dir", pages, "--log", log, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
    yield url, out, log, tmp
    proc.terminate()
    proc.wait(timeout=10)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=20) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def post(url, fields=None, data=None):
    body = data if data is not None else urllib.parse.urlencode(fields).encode()
    req = urllib.request.Request(url + "decide", data=body, method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    return get(req)


def test_the_server_lists_and_serves_the_pages_with_their_form(served):
    url, out, log, _ = served
    status, body, _ = get(url)
    assert status == 200 and 'href="/draft/summary-1.html"' in body
    status, page, headers = get(url + "draft/summary-1.html")
    assert status == 200 and "default-src 'none'" in headers["Content-Security-Policy"]
    assert f'name="draft_id" value="{out["draft_id"]}"' in page and 'action="/decide"' in page


def test_a_posted_decision_is_appended_to_the_log(served):
    url, out, log, _ = served
    final = out["text"] + "\nEdited by the reviewer."
    status, body, _ = post(url, {"draft_id": out["draft_id"], "decision": "edit", "reviewer": "dr-42", "text": final})
    assert status == 200 and "Decision recorded" in body
    summary = medgen_json("review", "verify", "--log", log)
    assert summary["reviews"][-1] == [out["draft_id"], "edited"]
    entry = json.loads(log.read_text().splitlines()[-1])
    import hashlib
    assert entry["final_sha256"] == hashlib.sha256(final.encode()).hexdigest() and entry["reviewer"] == "dr-42"
    assert summary["head_sha256"] in body
    status, body, _ = post(url, {"draft_id": out["draft_id"], "decision": "reject", "reviewer": "dr-7"})
    assert status == 200 and medgen_json("review", "verify", "--log", log)["reviews"][-1][1] == "rejected"


def test_bad_requests_are_refused_and_leave_the_log_alone(served):
    url, out, log, tmp = served
    before = log.read_text()
    for fields, word in [({"draft_id": "0" * 16, "decision": "accept", "reviewer": "x", "text": "t"}, "draft_id"),
                         ({"draft_id": out["draft_id"], "decision": "maybe", "reviewer": "x"}, "decision"),
                         ({"draft_id": out["draft_id"], "decision": "accept", "reviewer": ""}, "reviewer")]:
        status, body, _ = post(url, fields)
        assert status == 400 and word in body, body
    assert post(url, data=b"draft_id=%zz")[0] == 400
    for path in ["draft/../secret.html", "draft/..%2Fsecret.html", "draft/secret.html", "nothing"]:
        assert get(url + path)[0] == 404, path
    assert log.read_text() == before
    # An altered log: 409, nothing appended.
    log.write_text(before.replace("dr-42", "dr-43"))
    status, body, _ = post(url, {"draft_id": out["draft_id"], "decision": "accept", "reviewer": "x", "text": "t"})
    assert status == 409 and "line" in body
    log.write_text(before)


def raw(url, data):
    """Sends `data` as is and returns the status line of the reply."""
    import socket
    host, port = re.match(r"http://([\d.]+):(\d+)/", url).groups()
    with socket.create_connection((host, int(port)), timeout=20) as s:
        s.sendall(data)
        return s.makefile("rb").readline().decode()


def test_a_head_over_its_bounds_is_refused_and_the_server_goes_on(served):
    url = served[0]
    assert " 200 " in raw(url, b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 100 + b"\r\n")
    assert " 431 " in raw(url, b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 5000 + b"\r\n")
    assert " 431 " in raw(url, b"GET / HTTP/1.1\r\nX-A: " + b"b" * 20000 + b"\r\n\r\n")
    assert " 414 " in raw(url, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n")
    assert get(url)[0] == 200


def test_a_missing_folder_or_an_altered_log_stops_the_server_before_it_starts(tmp_path):
    proc = run_medgen("review", "serve", "--dir", tmp_path / "nope", "--log", tmp_path / "l.jsonl", "--port", "0", check=False)
    assert proc.returncode != 0 and "dir" in proc.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"seq": 5}\n')
    proc = run_medgen("review", "serve", "--dir", tmp_path, "--log", bad, "--port", "0", check=False)
    assert proc.returncode != 0 and "altered" in proc.stderr
