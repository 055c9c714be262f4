"""Writes medgen-core/src/deid/data/en_given_more.txt: given names that a cue makes a name in
lower-case text ("the pharmacist is bernadette", "my neighbour walt"), beyond medgen's own list:
the given names of Faker 40's locales that the tagger's training generator also draws from
(never its held-out ones: es_ES, fr_FR, vi_VN, tr_TR, zh_TW), less every word among wordfreq
3.1.1's 20,000 most frequent English words ("precious", "bill", "rob" need more than a cue), the
de-identifier's lists of words that are never names, and names of two letters or fewer. The
rules read this list only after a cue in lower case; the tagger does not read it.

    pip install --no-deps wordfreq==3.1.1 msgpack && pip install faker
    python training/deid/given_names.py
"""

import unicodedata
from pathlib import Path

from faker import Faker
from towns import frequent_words, listed

DATA = Path(__file__).resolve().parents[2] / "medgen-core" / "src" / "deid" / "data"
LOCALES = ["en_US", "en_GB", "en_IE", "en_IN", "en_NZ", "en_KE", "en_NG", "en_PK", "es_MX", "es_AR", "de_DE", "pt_BR",
           "it_IT", "pl_PL", "nl_NL", "yo_NG", "ig_NG", "ha_NG", "sw", "zu_ZA", "tw_GH"]


def main():
    never = listed("en_not_names.txt") | listed("en_role_words.txt") | listed("en_common.txt") | listed("en_ambiguous.txt")
    known = listed("en_first_names.txt")
    frequent = frequent_words(20000)
    names = set()
    for locale in LOCALES:
        provider = Faker(locale).provider("faker.providers.person")
        for attr in ["first_names", "first_names_male", "first_names_female"]:
            for name in getattr(provider, attr, ()):
                # "José" is written "jose" as often as not in a transcript: both.
                plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
                for n in {name.lower(), plain}:
                    if n.isalpha() and len(n) > 2 and n not in never and n not in known and n not in frequent:
                        names.add(n)
    header = "# Written by training/deid/given_names.py (see there): given names a lower-case cue makes a name."
    (DATA / "en_given_more.txt").write_text(header + "\n" + "\n".join(sorted(names)) + "\n", encoding="utf-8")
    print(f"{len(names)} names")


if __name__ == "__main__":
    main()
