"""Speed of `medgen deid`: MB/s of notes on one core.

Builds a text of several MB from the annotated notes (marks removed; English, Chinese, and both
mixed), runs `medgen deid --mode redact` on it (detection is single-threaded), and prints MB/s.
The command's start-up (loading libtorch, about 0.7 s) is timed on a one-word note and
subtracted; the end-to-end figure is printed too.

    .venv/bin/python bench/bench_deid.py [--mb 5]
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import MEDGEN  # noqa: E402
from test_deid import language, load_note, notes  # noqa: E402


def corpus(lang, megabytes):
    texts = [load_note(p)[0] for p in notes() if lang == "mixed" or language(p) == lang]
    block = "\n\n".join(texts) + "\n\n"
    reps = int(megabytes * 1e6 / len(block.encode())) + 1
    return block * reps


def best_time(path, runs=3):
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(MEDGEN), "deid", "--mode", "redact", "--input", str(path)], check=True,
                       stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=5.0, help="size of each text in MB (default: 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "tiny.txt"
        empty.write_text("fever")
        startup = best_time(empty)
        print(f"start-up (a one-word note): {startup:.3f} s")
        for lang in ("en", "zh", "mixed"):
            path = Path(tmp) / f"{lang}.txt"
            path.write_text(corpus(lang, args.mb), encoding="utf-8")
            size = path.stat().st_size / 1e6
            t = best_time(path)
            print(f"{lang:5s} {size:5.2f} MB: {size / max(t - startup, 1e-9):6.2f} MB/s "
                  f"({size / t:.2f} MB/s end to end, {t:.2f} s)")


if __name__ == "__main__":
    main()
