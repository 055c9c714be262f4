#!/usr/bin/env python3
"""Validate the inline [[CATEGORY:text]] marks of a blind de-identification batch.

Usage: python3 tests/data/check_blind.py tests/data/deid_notes9   (the batch's folder)

Checks: known categories, no empty or padded spans, no nested or leftover
brackets, clean length 1,500-3,500 characters, UTF-8.  Warns (does not fail)
when a marked string also occurs unmarked in the same file: every NAME and
LOCATION, other categories from four characters; strings with Chinese
characters (two or more) are searched without word boundaries; each word of a
NAME (three letters or more, particles aside) is checked on its own too.
Prints per-file and per-category counts; exits 1 on any error.
"""
import collections
import pathlib
import re
import sys

CATS = {"NAME", "LOCATION", "DATE", "AGE", "PHONE", "FAX", "EMAIL", "URL",
        "IP_ADDRESS", "MRN", "ID", "ID_NUMBER", "SSN", "HEALTH_PLAN", "ACCOUNT",
        "LICENSE", "DEVICE", "VEHICLE"}
MARK = re.compile(r"\[\[([A-Z_]+):(.*?)\]\]", re.S)
MIN_LEN, MAX_LEN = 1500, 3500
# name particles not checked on their own
PARTICLES = {"van", "der", "den", "de", "del", "dela", "la", "los", "bin",
             "binti", "bte", "bt", "a/l", "a/p", "al", "el", "the", "and",
             "as", "in", "x-ray"}


def parse(text):
    """Return (clean_text, spans [(cat, start, end, surface)], errors)."""
    errors, spans, out, pos, clean_len = [], [], [], 0, 0
    for m in MARK.finditer(text):
        out.append(text[pos:m.start()])
        clean_len += m.start() - pos
        cat, surface = m.group(1), m.group(2)
        if cat not in CATS:
            errors.append(f"unknown category {cat!r}")
        if not surface:
            errors.append(f"empty span for {cat}")
        elif surface != surface.strip():
            errors.append(f"padded span {cat}:{surface!r}")
        if any(t in surface for t in ("[", "]", "\n")):
            errors.append(f"bracket or newline inside span {cat}:{surface!r}")
        spans.append((cat, clean_len, clean_len + len(surface), surface))
        out.append(surface)
        clean_len += len(surface)
        pos = m.end()
    out.append(text[pos:])
    clean = "".join(out)
    for tok in ("[[", "]]"):
        if tok in clean:
            errors.append(f"leftover {tok!r} after removing marks")
    if re.search(r"\[[A-Z_]+:", clean):
        errors.append("leftover unclosed mark")
    return clean, spans, errors


def unmarked_repeats(clean, spans):
    """Marked strings that also occur outside any span."""
    covered = [(s, e) for _, s, e, _ in spans]
    warns = set()
    for cat, _, _, surf in spans:
        cjk = re.search(r"[\u4e00-\u9fff]", surf) is not None
        if cjk:
            if len(surf) < 2:
                continue
            pat = re.escape(surf)
        else:
            if cat not in ("NAME", "LOCATION") and len(surf) < 4:
                continue
            pat = r"(?<!\w)" + re.escape(surf) + r"(?!\w)"
        for m in re.finditer(pat, clean):
            if not any(s <= m.start() and m.end() <= e for s, e in covered):
                warns.add(f"{cat}:{surf!r} also unmarked at {m.start()}")
        if cat == "NAME" and not cjk:
            for tok in re.findall(r"[^\W\d_][\w'-]{2,}", surf):
                if tok.lower() in PARTICLES:
                    continue
                tpat = r"(?<![\w-])" + re.escape(tok) + r"(?![\w-])"
                for m in re.finditer(tpat, clean):
                    if not any(s <= m.start() and m.end() <= e
                               for s, e in covered):
                        warns.add(f"NAME part {tok!r} of {surf!r} also "
                                  f"unmarked at {m.start()}")
    return sorted(warns)


def main():
    folder = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    files = sorted(folder.glob("*.txt"))
    total = collections.Counter()
    bad = 0
    print(f"{'file':<14}{'chars':>6}{'marks':>6}  categories")
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            print(f"{f.name}: not UTF-8 ({exc})")
            bad += 1
            continue
        clean, spans, errors = parse(text)
        if not MIN_LEN <= len(clean) <= MAX_LEN:
            errors.append(f"clean length {len(clean)} outside {MIN_LEN}-{MAX_LEN}")
        counts = collections.Counter(c for c, *_ in spans)
        total.update(counts)
        cats = " ".join(f"{c}={n}" for c, n in sorted(counts.items()))
        print(f"{f.name:<14}{len(clean):>6}{len(spans):>6}  {cats}")
        for e in errors:
            print(f"   ERROR {e}")
        for w in unmarked_repeats(clean, spans):
            print(f"   warn  {w}")
        bad += bool(errors)
    print("\nper category:")
    for c in sorted(CATS):
        print(f"  {c:<12}{total[c]:>5}")
    print(f"  {'TOTAL':<12}{sum(total.values()):>5}  in {len(files)} files")
    missing = sorted(c for c in CATS if not total[c])
    if missing:
        print("categories never used:", ", ".join(missing))
    print("OK" if not bad else f"{bad} file(s) with errors")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
