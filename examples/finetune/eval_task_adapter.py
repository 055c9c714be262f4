"""Drafts of `medgen task` on held-out synthetic notes, with and without the tasks adapter.

    python examples/finetune/eval_task_adapter.py DATA/test.jsonl [--per-task 2] [--adapter DIR]

For the first --per-task notes of each task in the test split (which training never saw),
runs `medgen task NAME --json` on the default model with `--no-adapter` and with the adapter
(the shipped one, or --adapter DIR), and prints per variant: ROUGE-1/2/L (stemmed, `medgen
eval`) against the reference drafts, the share of drafts with every required section, the
drafts that contain a placeholder the note's de-identification did not make, and the drafts
with a repeated sentence.
"""

import argparse
import json
import re
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MEDGEN = str(ROOT / "target/release/medgen")


def task(name, note, extra):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "note.txt"
        path.write_text(note)
        out = subprocess.run([MEDGEN, "task", name, "--input", path, "--json", "--max-new-tokens", "320", *extra],
                             check=True, capture_output=True, text=True)
        deid = subprocess.run([MEDGEN, "deid", "--input", path, "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout), json.loads(deid.stdout)


def repeated(text):
    sentences = [s.strip() for s in re.split(r"(?<=[.!?。])\s+|\n", text) if len(s.strip()) > 15]
    return len(sentences) != len(set(sentences))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("test")
    ap.add_argument("--per-task", type=int, default=2)
    ap.add_argument("--adapter")
    a = ap.parse_args()
    rows, seen = [], defaultdict(int)
    for line in open(a.test):
        ex = json.loads(line)
        if seen[ex["task"]] < a.per_task:
            seen[ex["task"]] += 1
            rows.append(ex)
    variants = {"base model": ["--no-adapter"], "with the tasks adapter": ["--adapter", a.adapter] if a.adapter else []}
    print(f"{len(rows)} held-out notes ({a.per_task} per task), greedy, at most 320 new tokens")
    print("| model | ROUGE-1 | ROUGE-2 | ROUGE-L | all sections | invented placeholders | repetition |")
    print("|---|---|---|---|---|---|---|")
    for label, extra in variants.items():
        preds, complete, invented, loops = [], 0, 0, 0
        for ex in rows:
            result, deid = task(ex["task"], ex["note"], extra)
            text = result["text"]
            preds.append(text)
            complete += not result["missing_sections"]
            made = set(re.findall(r"\[[A-Z_]+_\d+\]", deid.get("text", "")))
            invented += any(p not in made for p in re.findall(r"\[[A-Z_]+_\d+\]", text))
            loops += repeated(text)
        with tempfile.TemporaryDirectory() as d:
            pred, ref = Path(d) / "p.jsonl", Path(d) / "r.jsonl"
            pred.write_text("".join(json.dumps(p) + "\n" for p in preds))
            ref.write_text("".join(json.dumps(ex["target"]) + "\n" for ex in rows))
            scores = json.loads(subprocess.run([MEDGEN, "eval", "--pred", pred, "--ref", ref, "--stem", "--json"],
                                               check=True, capture_output=True, text=True).stdout)
        m = scores.get("mean", scores)
        r = lambda k: m[k]["fmeasure"] if isinstance(m[k], dict) else m[k]
        n = len(rows)
        print(f"| {label} | {r('rouge1'):.3f} | {r('rouge2'):.3f} | {r('rougeL'):.3f} | {complete}/{n} | {invented}/{n} | {loops}/{n} |", flush=True)


if __name__ == "__main__":
    main()
