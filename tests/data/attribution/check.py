#!/usr/bin/env python3
"""Validate tests/data/attribution/pairs.jsonl (standard library only).

Usage: python3 tests/data/attribution/check.py [path/to/pairs.jsonl]
Exits non-zero with a message on the first broken rule; prints counts otherwise.
"""
import collections
import json
import os
import re
import sys

TASKS = ("discharge_summary", "radiology_impression", "soap_note", "diagnostic_report",
         "operative_note", "patient_explanation", "question_summary")
LANGS = ("en", "zh")
MIN_PAIRS, MIN_PER_TASK, MIN_ZH, MIN_UNSUPPORTED, MIN_LOOPS = 64, 6, 16, 60, 3
PLACEHOLDER = re.compile(r"\[[A-Z]+(?:_[A-Z]+)*_\d+\]")
CJK = re.compile(r"[\u4e00-\u9fff]")
# What may stay unannotated on a draft line: a list marker and/or a heading ending in a colon.
LEFTOVER = re.compile(r"^(?:[-*\u2022]|\d+[.)])?\s*(?:[^\s:\uff1a][^:\uff1a]{0,60}[:\uff1a])?$")


def fail(pid, msg):
    sys.exit(f"FAIL [{pid}]: {msg}")


def source_size(src, lang):
    if lang == "zh":  # CJK characters plus Latin/number tokens
        return len(CJK.findall(src)) + len(re.findall(r"[A-Za-z0-9]+", CJK.sub(" ", src)))
    return len(src.split())


def check_pair(p, seen):
    pid = p.get("id", "?")
    for key, typ in (("id", str), ("task", str), ("lang", str), ("source", str),
                     ("draft", str), ("sentences", list)):
        if not isinstance(p.get(key), typ):
            fail(pid, f"missing or mistyped field {key!r}")
    if pid in seen:
        fail(pid, "duplicate id")
    seen.add(pid)
    if p["task"] not in TASKS:
        fail(pid, f"unknown task {p['task']!r}")
    if p["lang"] not in LANGS:
        fail(pid, f"unknown lang {p['lang']!r}")
    src, draft = p["source"], p["draft"]
    if p["lang"] == "zh" and len(CJK.findall(src)) < 50:
        fail(pid, "zh pair whose source is not Chinese")
    if p["lang"] == "en" and CJK.search(src + draft):
        fail(pid, "en pair containing CJK text")
    size = source_size(src, p["lang"])
    lo, hi = (60, 400) if p["lang"] == "en" else (100, 700)
    if not lo <= size <= hi:
        fail(pid, f"source size {size} outside {lo}-{hi}")
    if not p["sentences"]:
        fail(pid, "no sentences")

    src_ph = set(PLACEHOLDER.findall(src))
    covered = [False] * len(draft)
    next_from = collections.defaultdict(int)  # text -> search start for its next occurrence
    last_end = 0
    first_seen = set()
    for i, s in enumerate(p["sentences"]):
        t, sup = s.get("text"), s.get("support")
        if not isinstance(t, str) or not t.strip():
            fail(pid, f"sentence {i}: empty text")
        if t != t.strip():
            fail(pid, f"sentence {i}: text has surrounding whitespace")
        if not isinstance(sup, list) or not all(isinstance(x, str) and x for x in sup):
            fail(pid, f"sentence {i}: support must be a list of non-empty strings")
        partial = s.get("partial", False)
        if not isinstance(partial, bool):
            fail(pid, f"sentence {i}: partial must be a boolean")
        if set(s) - {"text", "support", "partial"}:
            fail(pid, f"sentence {i}: unknown keys {set(s) - {'text', 'support', 'partial'}}")
        pos = draft.find(t, next_from[t])
        if pos < 0:
            fail(pid, f"sentence {i}: text not in draft (or listed more often than it occurs): {t!r}")
        next_from[t] = pos + 1
        if pos < last_end:
            fail(pid, f"sentence {i}: out of draft order or overlapping the previous one: {t!r}")
        last_end = pos + len(t)
        for k in range(pos, pos + len(t)):
            covered[k] = True
        for span in sup:
            n = src.count(span)
            if n == 0:
                fail(pid, f"sentence {i}: support span not in source: {span!r}")
            if n > 1:
                fail(pid, f"sentence {i}: support span occurs {n} times in source: {span!r}")
        if partial and not sup:
            fail(pid, f"sentence {i}: partial sentence must list the spans of its supported part")
        if t in first_seen and sup:
            fail(pid, f"sentence {i}: repeated copy must be unsupported: {t!r}")
        first_seen.add(t)
        extra_ph = set(PLACEHOLDER.findall(t)) - src_ph
        if extra_ph and sup and not partial:
            fail(pid, f"sentence {i}: uses placeholder(s) {sorted(extra_ph)} absent from source "
                      "but is marked supported")

    # every non-heading part of the draft must be annotated
    off = 0
    for line in draft.split("\n"):
        idx = [k for k in range(off, off + len(line)) if covered[k]]
        left = "".join(ch for k, ch in enumerate(line, off) if not covered[k])
        if idx:
            first = idx[0] - off
            # everything uncovered after the first annotated character must be whitespace
            tail = "".join(ch for k, ch in enumerate(line[first:], off + first) if not covered[k])
            if tail.strip():
                fail(pid, f"unannotated text after an annotated sentence: {tail.strip()!r} in {line!r}")
            left = line[:first]
        if not LEFTOVER.match(left.strip()):
            fail(pid, f"unannotated draft text: {left.strip()!r} in line {line!r}")
        off += len(line) + 1


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "pairs.jsonl")
    pairs = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                sys.exit(f"FAIL: blank line {n}")
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"FAIL: line {n} is not JSON: {e}")
            if not isinstance(obj, dict):
                sys.exit(f"FAIL: line {n} is not a JSON object")
            pairs.append(obj)
    seen = set()
    for p in pairs:
        check_pair(p, seen)

    stats = collections.defaultdict(collections.Counter)
    loops = 0
    for p in pairs:
        texts = collections.Counter(s["text"] for s in p["sentences"])
        if max(texts.values()) >= 3:
            loops += 1
        for key in (p["task"], p["lang"], "ALL"):
            c = stats[key]
            c["pairs"] += 1
            for s in p["sentences"]:
                c["sentences"] += 1
                if s["support"] and not s.get("partial"):
                    c["supported"] += 1
                    c["spans"] += len(s["support"])
                    c["multi_span"] += len(s["support"]) >= 2
                else:
                    c["unsupported"] += 1
                    c["partial"] += bool(s.get("partial"))

    tot = stats["ALL"]
    checks = [
        (tot["pairs"] >= MIN_PAIRS, f"at least {MIN_PAIRS} pairs (have {tot['pairs']})"),
        (stats["zh"]["pairs"] >= MIN_ZH, f"at least {MIN_ZH} zh pairs (have {stats['zh']['pairs']})"),
        (tot["unsupported"] >= MIN_UNSUPPORTED, f"at least {MIN_UNSUPPORTED} unsupported sentences (have {tot['unsupported']})"),
        (loops >= MIN_LOOPS, f"at least {MIN_LOOPS} drafts ending in a repetition loop (have {loops})"),
    ] + [(stats[t]["pairs"] >= MIN_PER_TASK, f"at least {MIN_PER_TASK} pairs for {t} (have {stats[t]['pairs']})")
         for t in TASKS]
    for ok, what in checks:
        if not ok:
            sys.exit(f"FAIL: {what}")

    cols = ("pairs", "sentences", "supported", "unsupported", "partial", "multi_span")
    print(f"{'group':<22}" + "".join(f"{c:>12}" for c in cols))
    for key in TASKS + LANGS + ("ALL",):
        print(f"{key:<22}" + "".join(f"{stats[key][c]:>12}" for c in cols))
    print(f"drafts with a repetition loop: {loops}")
    print("OK")


if __name__ == "__main__":
    main()
