"""Writes medgen-core/src/deid/data/zh_traditional.txt: each traditional Chinese character (and
Hong Kong and Taiwan variant) with the simplified character it is written as in mainland text,
from OpenCC's character tables (opencc-python-reimplemented 0.1.7, Apache-2.0:
TSCharacters.txt, HKVariantsRev.txt, TWVariantsRev.txt). The rules read a note through this map,
character for character, so that their simplified labels, titles, family names and place
suffixes find 陳志明醫生 as they find 陈志明医生. Only pairs whose UTF-8 lengths are equal are
kept, so that a byte offset in the mapped text is the same offset in the note, and no character
that simplified text also writes (么, 乾) is mapped.

    pip install opencc-python-reimplemented==0.1.7 && python training/deid/traditional.py
"""

import importlib.util
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "medgen-core" / "src" / "deid" / "data" / "zh_traditional.txt"


def table(name):
    folder = Path(importlib.util.find_spec("opencc").submodule_search_locations[0]) / "dictionary"
    pairs = {}
    for line in (folder / name).read_text(encoding="utf-8").splitlines():
        source, targets = line.split("\t")
        pairs[source] = targets.split()[0]
    return pairs


def main():
    to_simplified = table("TSCharacters.txt")
    # A regional variant (峯, 綫) is first read as the standard traditional character.
    variants = {**table("TWVariantsRev.txt"), **table("HKVariantsRev.txt")}
    for variant, standard in variants.items():
        to_simplified.setdefault(variant, to_simplified.get(standard, standard))
    # A character that simplified text uses too (么 of 什么, 乾 of 乾隆) stays as it is.
    simplified_too = set(table("STCharacters.txt")) | set(to_simplified.values()) | {"乾"}
    pairs = sorted(
        (t, s)
        for t, s in to_simplified.items()
        if len(t) == 1 and len(s) == 1 and t != s and len(t.encode()) == len(s.encode()) and t not in simplified_too
    )
    lines = [" ".join(t + s for t, s in pairs[i : i + 20]) for i in range(0, len(pairs), 20)]
    header = "# Traditional (and Hong Kong, Taiwan variant) character, then its simplified one: written by\n"
    header += "# training/deid/traditional.py from OpenCC's tables (Apache-2.0).\n"
    OUT.write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(pairs)} characters")


if __name__ == "__main__":
    main()
