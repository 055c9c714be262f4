"""Writes medgen-core/src/deid/data/en_common.txt: the 5,000 most frequent English words
(wordfreq 3.1.1's small English list, Apache-2.0, by Robyn Speer) that are in none of medgen's
name and place lists. The ensemble drops a tagger span made only of such words (a tagger that
reads "yeah" or "take care" in a transcript as a name).

    pip install --no-deps wordfreq==3.1.1 msgpack && python training/deid/common_words.py
"""

import gzip
import importlib.util
from pathlib import Path

import msgpack

DATA = Path(__file__).resolve().parents[2] / "medgen-core" / "src" / "deid" / "data"


def listed(name):
    """The entries of a list file (comma- or space-separated), lower case: a word of a longer
    entry ("the" of "The Hague") is not an entry of its own."""
    lines = [line for line in (DATA / name).read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return {w.strip().lower() for line in lines for w in (line.split(",") if "," in line else line.split())}


def main():
    # The data file only: importing wordfreq would need its tokenizers' dependencies.
    path = Path(importlib.util.find_spec("wordfreq").submodule_search_locations[0]) / "data" / "small_en.msgpack.gz"
    buckets = msgpack.load(gzip.open(path), raw=False)[1:]
    names = listed("en_first_names.txt") | listed("en_surnames.txt") | listed("en_places.txt")
    words = [w for bucket in buckets for w in bucket if w.isalpha() and w.isascii() and len(w) > 1]
    common = [w for w in words[:5000] if w not in names]
    header = ("# The most frequent English words (wordfreq 3.1.1, Apache-2.0) in none of the name and place\n"
              "# lists; made by training/deid/common_words.py.\n")
    (DATA / "en_common.txt").write_text(header + "\n".join(sorted(common)) + "\n", encoding="utf-8")
    print(len(common), "words")


if __name__ == "__main__":
    main()
