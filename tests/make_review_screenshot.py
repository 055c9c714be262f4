"""Writes docs/review.png: the review page of the example admission note's discharge summary,
with the second sentence clicked (its source spans highlighted). Not a test; run it by hand:

    PATH=.venv/bin:$PATH .venv/bin/python tests/make_review_screenshot.py

It needs Debian's headless Chromium (`apt-get install chromium`)."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import medgen

ROOT = Path(__file__).resolve().parent.parent
NOTE = ROOT / "examples/notes/admission_note_phi.txt"
OUT = ROOT / "docs" / "review.png"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]

# Clicks the first piece of unit UNIT in the draft, as a reviewer would.
CLICK = """<script>window.addEventListener('load', () => {
  const piece = document.querySelector('#draft [data-u="UNIT"]');
  if (piece) piece.dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true, view: window}));
});</script>"""


def main() -> int:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        sys.exit("headless Chromium is missing: install Debian's chromium (apt-get install chromium)")
    model = medgen.Model.load(adapter=str(medgen.task_adapter_path()))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        result = model.run_task("discharge_summary", NOTE.read_text(), max_new_tokens=120,
                                review_log=tmp / "drafts.audit.jsonl")
        # The second sentence that has source spans (the second sentence if none has).
        with_spans = [u for u, a in enumerate(result.attributions) if a["spans"]]
        unit = with_spans[1] if len(with_spans) > 1 else 1
        html = result.to_html()
        page = tmp / "review.html"
        page.write_text(html.replace("</body>", CLICK.replace("UNIT", str(unit)) + "</body>", 1), encoding="utf-8")
        shot = tmp / "review.png"
        subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp / 'profile'}", "--virtual-time-budget=3000",
                        "--window-size=1400,900", f"--screenshot={shot}", page.as_uri()],
                       check=True, capture_output=True, timeout=120)
        OUT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, OUT)
    print(f"wrote {OUT} (unit {unit}: {result.attributions[unit]['text']!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
