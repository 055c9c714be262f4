"""Hand-annotated notes (inline `[[CATEGORY:text]]` marks, as tests/data/deid/README.md
describes) as training lines: JSON lines of {text, entities} with character offsets.

    python training/deid/annotated.py DIR [--skip PREFIX] [--repeat N] >> train.jsonl
"""

import argparse
import json
import re
import sys
from pathlib import Path

MARK = re.compile(r"\[\[([A-Z_]+):(.*?)\]\]", re.S)


def parse(raw):
    text, entities, at = "", [], 0
    for m in MARK.finditer(raw):
        text += raw[at:m.start()]
        entities.append({"start": len(text), "end": len(text) + len(m.group(2)), "category": m.group(1)})
        text += m.group(2)
        at = m.end()
    return text + raw[at:], entities


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--skip", help="leave out notes whose file name starts with this")
    ap.add_argument("--repeat", type=int, default=1, help="write each note this many times")
    a = ap.parse_args()
    for path in sorted(Path(a.dir).glob("*.txt")):
        if a.skip and path.name.startswith(a.skip):
            continue
        text, entities = parse(path.read_text(encoding="utf-8"))
        line = json.dumps({"text": text, "entities": entities, "template": path.stem}, ensure_ascii=False)
        sys.stdout.write((line + "\n") * a.repeat)
