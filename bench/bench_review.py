"""Attribution quality on the hand-annotated draft–source pairs of tests/data/attribution, and
the speed of attribution and of the section constraint.

    python bench/bench_review.py              # quality and speed
    python bench/bench_review.py --quality    # quality only, lexical and with the model's signal

Quality, for each annotated draft sentence (found in the draft left to right):
- "unsupported" flag: the sentence counts as flagged when a unit medgen attributes that
  overlaps it is unsupported; precision and recall of flagged against the annotation (a
  partially supported sentence counts as unsupported).
- spans: over the sentences annotated as supported, the characters of the source inside
  medgen's spans against those inside the annotated spans, summed over the set (micro
  precision and recall); "sentence recall" is the share of annotated spans that medgen's
  spans touch.
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ROOT / "tests" / "data" / "attribution" / "pairs.jsonl"


def load_pairs(path=PAIRS):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def locate(haystack, needles):
    """Character ranges of each needle, found left to right (each after the previous one)."""
    out, at = [], 0
    for n in needles:
        i = haystack.find(n, at)
        if i < 0:
            i = haystack.find(n)
        out.append((i, i + len(n)))
        at = i + len(n)
    return out


def evaluate(pairs, attribute):
    """Counts per language and overall: {lang: {tp, fp, fn, span_tp, span_fp, span_fn, ...}}."""
    stats = {}
    for pair in pairs:
        units = attribute(pair["source"], pair["draft"])
        gold = pair["sentences"]
        ranges = locate(pair["draft"], [g["text"] for g in gold])
        for key in (pair["lang"], "all"):
            s = stats.setdefault(key, dict(tp=0, fp=0, fn=0, tn=0, span_tp=0, span_fp=0, span_fn=0, touched=0, spans=0))
            for g, (start, end) in zip(gold, ranges):
                overlapping = [u for u in units if u["start"] < end and start < u["end"]]
                flagged = any(not u["supported"] for u in overlapping) or not overlapping
                unsupported = not g["support"] or g.get("partial", False)
                s["tp" if flagged and unsupported else "fp" if flagged else "fn" if unsupported else "tn"] += 1
                if unsupported:
                    continue
                gold_chars, gold_ranges = set(), []
                for span in g["support"]:
                    i = pair["source"].find(span)
                    gold_ranges.append((i, i + len(span)))
                    gold_chars.update(range(i, i + len(span)))
                pred_chars = set()
                for u in overlapping:
                    for sp in u["spans"]:
                        pred_chars.update(range(sp["start"], sp["end"]))
                s["span_tp"] += len(gold_chars & pred_chars)
                s["span_fp"] += len(pred_chars - gold_chars)
                s["span_fn"] += len(gold_chars - pred_chars)
                s["spans"] += len(gold_ranges)
                s["touched"] += sum(any(c in pred_chars for c in range(a, b)) for a, b in gold_ranges)
    return stats


def ratios(s):
    div = lambda a, b: a / b if b else 0.0
    return {
        "unsupported_precision": div(s["tp"], s["tp"] + s["fp"]),
        "unsupported_recall": div(s["tp"], s["tp"] + s["fn"]),
        "span_precision": div(s["span_tp"], s["span_tp"] + s["span_fp"]),
        "span_recall": div(s["span_tp"], s["span_tp"] + s["span_fn"]),
        "span_sentence_recall": div(s["touched"], s["spans"]),
        "sentences": s["tp"] + s["fp"] + s["fn"] + s["tn"],
    }


def quality(network=False):
    """The table of lexical attribution; with `network`, the same with the default model's own
    signal beside it (and the even and odd halves of the set, each on its own)."""
    import medgen

    pairs = load_pairs()
    ways = {"lexical": medgen.review.attribute}
    if network:
        model = medgen.Model.load()
        signals = {(p["source"], p["draft"]): model.network_signal(p["source"], p["draft"], p["task"]) for p in pairs}
        ways["lexical + model signal"] = lambda s, d: medgen.review.attribute(s, d, signal=signals[(s, d)])
    print(f"attribution on {PAIRS.relative_to(ROOT)} ({len(pairs)} pairs)")
    print("| attribution | set | sentences | unsupported P | unsupported R | span P | span R | spans touched |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for way, attribute in ways.items():
        stats = evaluate(pairs, attribute)
        rows = [(key, ratios(stats[key])) for key in ["en", "zh", "all"]]
        if network:
            rows += [(half, ratios(evaluate(pairs[i::2], attribute)["all"])) for half, i in [("even half", 0), ("odd half", 1)]]
        for key, r in rows:
            print(f"| {way} | {key} | {r['sentences']} | {r['unsupported_precision']:.3f} | {r['unsupported_recall']:.3f} | "
                  f"{r['span_precision']:.3f} | {r['span_recall']:.3f} | {r['span_sentence_recall']:.3f} |")


def speed():
    """Attribution of a 2,000-word note and a 400-word draft, one thread."""
    import medgen
    import torch

    torch.set_num_threads(1)
    pairs = load_pairs()
    sources = [p["source"] for p in pairs if p["lang"] == "en"]
    drafts = [p["draft"] for p in pairs if p["lang"] == "en"]
    note, draft = "", ""
    i = 0
    while len(note.split()) < 2000:
        note += sources[i % len(sources)] + "\n\n"
        i += 1
    i = 0
    while len(draft.split()) < 400:
        draft += drafts[i % len(drafts)] + "\n\n"
        i += 1
    note = " ".join(note.split(" ")[:2000])
    draft = " ".join(draft.split(" ")[:400])
    for checks, what in [(False, "attribution"), (True, "safety checks and attribution")]:
        medgen.review.attribute(note, draft, checks=checks)
        runs = []
        for _ in range(20):
            t = time.perf_counter()
            medgen.review.attribute(note, draft, checks=checks)
            runs.append(time.perf_counter() - t)
        runs.sort()
        print(f"{what}, {len(note.split())}-word note, {len(draft.split())}-word draft, one thread: "
              f"median {1000 * runs[len(runs) // 2]:.1f} ms, best {1000 * runs[0]:.1f} ms"
              + (" (target < 50 ms)" if not checks else ""))

    # The network's signal on the same note and draft: two teacher-forced passes of the
    # default model (with and without the note), with attention spelled out.
    model = medgen.Model.load()
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        medgen.review.attribute(note, draft, model=model, task="discharge_summary")
        runs.append(time.perf_counter() - t)
    print(f"attribution with the default model's signal, same note and draft, the model's threads: best {min(runs):.2f} s")

    # The constraints: the same task decoded plain, with the section constraint and as JSON (the
    # default model and adapter, greedy), best of 3; time per generated token, since the
    # constrained drafts end where their constraint says.
    model = medgen.Model.load(adapter=str(medgen.task_adapter_path()))
    text = (ROOT / "examples" / "notes" / "admission_note_phi.txt").read_text()
    modes = {"plain": dict(min_new_tokens=160), "sections": dict(constrain_sections=True, min_new_tokens=160),
             "json": dict(json_output=True)}
    per_token = {}
    for name, extra in modes.items():
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            out = model.run_task("discharge_summary", text, max_new_tokens=160, deid="none", **extra)
            runs.append((time.perf_counter() - t) / max(1, len(out["tokens"])))
        per_token[name] = min(runs)
    base = per_token["plain"]
    print("task decode, ms per generated token (whole run over its tokens): " + ", ".join(
        f"{k} {1000 * v:.1f} ({100 * (v / base - 1):+.1f}%)" for k, v in per_token.items())
          + " (target for sections < 5%)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quality", action="store_true")
    args = ap.parse_args()
    quality(network=True)
    if not args.quality:
        speed()
