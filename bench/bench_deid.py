"""De-identification quality and speed, per engine (rules, model, ensemble).

Quality: character- and token-level recall and precision per language and per category on
the hand-annotated notes (tests/data/deid: the rules' own notes and those written after the
rules; tests/data/deid_unseen and deid_unseen2: written after the tagger was trained, by
someone who saw neither detectors nor generator; tests/data/deid_dialogue: transcribed
clinic conversations with spoken identifiers, by such a writer, a dev split the detectors
were tuned on and a test split only scored; tests/data/deid_dialogue3, deid_notes4,
deid_notes5, deid_notes6 and deid_notes7: blind batches by such writers, scored first and then tuned on) and on the generator's held-out split
(templates and locales that training never saw). Characters are the non-space characters inside spans; a gold
character counts as found when any predicted span covers it (the category aside), and a
category's precision is that of the characters predicted as that category.

Speed: one thread (torch.set_num_threads(1)); megabytes or kilobytes of UTF-8 per second, one
note at a time and in batches.

    python bench/bench_deid.py [--tagger FILE] [--only quality|speed] [--misses N]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

import medgen

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_deid import TOKEN, load_note  # noqa: E402

ENGINES = ["rules", "model", "ensemble"]


def annotated(folder, keep=lambda name: True):
    out = []
    for p in sorted((ROOT / "tests" / "data" / folder).glob("*.txt")):
        if keep(p.name):
            text, spans = load_note(p)
            lang = "mixed" if p.name.startswith("mixed_") else "zh" if "zh_" in p.name else "en"
            out.append((lang, text, [(s, e, c) for c, s, e in spans]))
    return out


def generated(split, n=20000):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, str(ROOT / "training/deid/generate.py"), "--out", d, "--notes", str(n)],
                       check=True, capture_output=True)
        rows = [json.loads(line) for line in open(Path(d) / f"{split}.jsonl", encoding="utf-8")]
    return [(r["lang"], r["text"], [(e["start"], e["end"], e["category"]) for e in r["entities"]]) for r in rows]


def score(notes, engine, tagger, misses=None):
    """{(language, category or None): [tp, fp, fn] characters}, token counts per language."""
    chars = defaultdict(lambda: [0, 0, 0])
    tokens = defaultdict(lambda: [0, 0, 0])
    found = medgen.deid.detect_batch([t for _, t, _ in notes], engine=engine, tagger=tagger)
    for (lang, text, gold), pred in zip(notes, found):
        gcat, pcat = [None] * len(text), [None] * len(text)
        for s, e, c in gold:
            gcat[s:e] = [c] * (e - s)
        for p in pred:
            pcat[p["start"]:p["end"]] = [p["category"]] * (p["end"] - p["start"])
        for i, ch in enumerate(text):
            if ch.isspace() or (gcat[i] is None and pcat[i] is None):
                continue
            for key in [(lang, None), ("all", None)]:
                c = chars[key]
                c[0] += gcat[i] is not None and pcat[i] is not None
                c[1] += gcat[i] is None
                c[2] += pcat[i] is None
            if gcat[i] is not None:
                chars[("all", gcat[i])][0 if pcat[i] is not None else 2] += 1
            if pcat[i] is not None and gcat[i] is None:
                chars[("all", pcat[i])][1] += 1
        for m in TOKEN.finditer(text):
            g = any(x is not None for x in gcat[m.start():m.end()])
            p = any(x is not None for x in pcat[m.start():m.end()])
            for key in [lang, "all"]:
                t = tokens[key]
                t[0] += g and p
                t[1] += p and not g
                t[2] += g and not p
        if misses is not None:
            misses.extend((c, text[s:e]) for s, e, c in gold if all(x is None for x in pcat[s:e]))
    return chars, tokens


def rp(c):
    tp, fp, fn = c
    return tp / max(tp + fn, 1), tp / max(tp + fp, 1)


def quality(tagger, show_misses):
    sets = [
        ("rules' own notes", annotated("deid", lambda n: not n.startswith("heldout_"))),
        ("written after the rules", annotated("deid", lambda n: n.startswith("heldout_"))),
        ("unseen (after the tagger)", annotated("deid_unseen")),
        ("unseen, second batch", annotated("deid_unseen2")),
        ("dialogue, dev", annotated("deid_dialogue", lambda n: n.startswith("dev_"))),
        ("dialogue, test", annotated("deid_dialogue", lambda n: n.startswith("test_"))),
        ("dialogue, third batch (blind, then tuned on)", annotated("deid_dialogue3")),
        ("hand-overs, triage, portal, HK/SG (blind, then tuned on)", annotated("deid_notes4")),
        ("ASR visits, reports, e-mail, Taiwan/Malaysia (blind, then tuned on)", annotated("deid_notes5")),
        ("ASR visits, ward and lab notes, India/SG/HK, code-switched (blind, then tuned on)", annotated("deid_notes6")),
        ("psychiatry, paediatrics, radiology, triage call, hospice; 门诊, 问诊; MY/SG/HK (blind, then tuned on)", annotated("deid_notes7")),
        ("conversations: ASR, telehealth, pharmacy, NZ/UK/CA; 问诊; SG/MY/HK/PH (blind, then tuned on)", annotated("deid_notes8")),
        ("ASR and MTS visits US/CA/AU/IN/ZA/IE, fax, radiology, ED board, discharge; 问诊, 出院小結; ES/MY/PH (blind, then tuned on)",
         annotated("deid_notes9")),
        ("ACI/MTS visits AZ/Glasgow/Lagos/Manila, a triage call; operative, pathology, home-care, occupational; 广州, 杭州, 台中; ID/FR (blind, then tuned on)",
         annotated("deid_notes10")),
        ("generator held-out", generated("heldout")),
    ]
    print("| notes | engine | language | char recall | char precision | token recall | token precision |")
    print("|---|---|---|---:|---:|---:|---:|")
    per_category = {}
    for name, notes in sets:
        for engine in ENGINES:
            miss = []
            chars, tokens = score(notes, engine, tagger, miss)
            for lang in ["en", "zh", "mixed", "all"]:
                if tokens[lang] == [0, 0, 0]:
                    continue
                (cr, cp), (tr, tp) = rp(chars[(lang, None)]), rp(tokens[lang])
                print(f"| {name} | {engine} | {lang} | {cr:.3f} | {cp:.3f} | {tr:.3f} | {tp:.3f} |")
            if engine == "ensemble":
                per_category[name] = {c: rp(v) for (lang, c), v in chars.items() if lang == "all" and c}
                if show_misses and (name.startswith("unseen") or name == "dialogue, dev"):
                    print(f"\n  misses of the ensemble on {name}: {miss[:show_misses]}\n")
    print("\nPer category (ensemble, characters), recall / precision:")
    print("| category | " + " | ".join(per_category) + " |")
    print("|---|" + "---:|" * len(per_category))
    for c in sorted({c for v in per_category.values() for c in v}):
        cells = [f"{v[c][0]:.3f} / {v[c][1]:.3f}" if c in v else "" for v in per_category.values()]
        print(f"| {c} | " + " | ".join(cells) + " |")


def speed(tagger):
    torch.set_num_threads(1)
    notes = [t for _, t, _ in generated("heldout", 4000)]
    size = sum(len(t.encode()) for t in notes)
    print(f"\n{len(notes)} generated notes, {size / 1e6:.2f} MB, one thread:")
    print("| engine | one note at a time | batches of 64 |")
    print("|---|---:|---:|")
    for engine in ENGINES:
        medgen.deid.detect_batch(notes[:64], engine=engine, tagger=tagger)
        t = time.perf_counter()
        for n in notes:
            medgen.deid.detect(n, engine=engine, tagger=tagger)
        single = size / (time.perf_counter() - t)
        t = time.perf_counter()
        for i in range(0, len(notes), 64):
            medgen.deid.detect_batch(notes[i:i + 64], engine=engine, tagger=tagger)
        batch = size / (time.perf_counter() - t)
        print(f"| {engine} | {single / 1e3:,.0f} kB/s | {batch / 1e3:,.0f} kB/s |")
    print("Quoted by issue 17 (same character metric, English notes): Philter 10 kB/s.")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--tagger", help="a tagger file (default: the built-in one)")
    ap.add_argument("--only", choices=["quality", "speed"])
    ap.add_argument("--misses", type=int, default=0, help="print this many misses on the unseen notes")
    a = ap.parse_args()
    if a.only != "speed":
        quality(a.tagger, a.misses)
    if a.only != "quality":
        speed(a.tagger)
