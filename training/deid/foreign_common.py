"""Writes medgen-core/src/deid/data/foreign_common.txt: the 5,000 most frequent words of Malay,
Indonesian, Filipino and Spanish (wordfreq 3.1.1's small lists), less a town, a single letter, the
Malay name words below, and past each language's 300 most frequent words (whose function words,
"ada", "hari", "po", stay) every word that is a given name or a family name (Faker 40's
Indonesian, Filipino, Mexican and Spanish locales and medgen's own name lists). Code-switched
notes from Malaysia, Singapore, Indonesia, the Philippines and the Spanish-speaking US mix these
words with English ("Kaki kanan saya ni, doktor", "Es la pierna, doctora"), where the tagger, trained on English and Chinese, reads them as names and places: a
tagger span made only of such words (and frequent English ones), with one word at least that is
no frequent English word, is dropped when it is in lower case in a text written with capitals,
or when none of its words is in medgen's name lists and none is capitalised but where a
sentence starts. The rules do not read this list.

    pip install --no-deps wordfreq==3.1.1 msgpack && pip install faker
    python training/deid/foreign_common.py
"""

import gzip
import importlib.util
from pathlib import Path

import msgpack
from faker import Faker

DATA = Path(__file__).resolve().parents[2] / "medgen-core" / "src" / "deid" / "data"
LANGUAGES = ["ms", "id", "fil", "es"]
TOP = 5000
# English words this frequent ("harbor", "gate", "dan") are listed apart: a span needs one word
# of the other list to be read as Malay, Indonesian or Filipino.
ENGLISH = 10000
# The most frequent words of a language, kept though a name is spelt the same.
FUNCTION_WORDS = 300
FAKER_LOCALES = ["id_ID", "fil_PH", "en_PH", "es_MX", "es_ES"]
# Words of Malay names (and name particles) that frequency lists hold as words too.
MALAY_NAMES = {
    "muhammad", "mohd", "mohamad", "mohammad", "mohamed", "ahmad", "abdul", "abu", "nur", "nurul", "siti", "bin", "binti",
    "bt", "ali", "hassan", "hussein", "hussin", "ismail", "ibrahim", "yusof", "yusuf", "aminah", "fatimah", "aisyah",
    "zainal", "rahman", "razak", "aziz", "ain", "hajah", "haji", "putra", "putri", "dewi", "sri", "indah", "intan",
    "cahaya", "bunga", "mawar", "melati", "rahmat", "iman", "amin", "salleh", "omar", "osman", "kamal", "jamal",
}


def listed(name):
    """The entries of a list file (comma- or space-separated), lower case."""
    lines = [line for line in (DATA / name).read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return {w.strip().lower() for line in lines for w in (line.split(",") if "," in line else line.split())}


def places(name):
    """The places of a list file, whole (one a line or comma-separated), lower case."""
    lines = [line for line in (DATA / name).read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return {p.strip().lower() for line in lines for p in line.split(",")}


def frequent_words(language, n):
    path = Path(importlib.util.find_spec("wordfreq").submodule_search_locations[0]) / "data" / f"small_{language}.msgpack.gz"
    buckets = msgpack.load(gzip.open(path), raw=False)[1:]
    return [w for bucket in buckets for w in bucket][:n]


def main():
    names = listed("en_first_names.txt") | listed("en_surnames.txt") | listed("en_ambiguous.txt") | listed("en_given_more.txt")
    for locale in FAKER_LOCALES:
        provider = Faker(locale).provider("faker.providers.person")
        for attr in ["first_names", "first_names_male", "first_names_female", "last_names"]:
            names |= {n.lower() for n in getattr(provider, attr, ())}
    towns = places("en_towns.txt") | places("en_places.txt")
    words = set()
    for language in LANGUAGES:
        for rank, w in enumerate(frequent_words(language, TOP)):
            name = w in names and rank >= FUNCTION_WORDS or w in MALAY_NAMES
            if len(w) > 1 and w.isalpha() and not name and w not in towns:
                words.add(w)
    english = set(frequent_words("en", ENGLISH))
    header = "# Written by training/deid/foreign_common.py (see there): frequent Malay, Indonesian, Filipino and Spanish words."
    sections = [
        "# words",
        *sorted(words - english),
        f"# also among the {ENGLISH:,} most frequent English words",
        *sorted(words & english),
    ]
    (DATA / "foreign_common.txt").write_text(header + "\n" + "\n".join(sections) + "\n", encoding="utf-8")
    print(f"{len(words)} words, {len(words & english)} of them frequent in English")


if __name__ == "__main__":
    main()
