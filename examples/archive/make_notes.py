"""Synthetic clinical notes with made-up identifiers (names, MRNs, dates, phone numbers),
for trying the archive pipeline and for its tests.

    python examples/archive/make_notes.py notes/ 1000            # a folder of .txt notes
    python examples/archive/make_notes.py notes.parquet 1000     # a table: id, text
"""
import random
import sys
from pathlib import Path

FIRST = ["Margaret", "Samuel", "Anna", "Robert", "Linda", "James", "Maria", "David", "Susan", "Wei"]
LAST = ["Ellison", "Okafor", "Nguyen", "Garcia", "Smith", "Kowalski", "Patel", "Brown", "Rossi", "Chen"]
FINDINGS = [
    "admitted with community-acquired pneumonia; started ceftriaxone 1 g IV daily.",
    "presents with chest pain; troponin 0.02 ng/mL, ECG without ST changes.",
    "follow-up for type 2 diabetes; HbA1c 7.9%, metformin increased to 1000 mg twice daily.",
    "seen for COPD exacerbation; prednisone 40 mg for 5 days, albuterol as needed.",
    "post-operative day 2 after laparoscopic cholecystectomy, tolerating diet, pain controlled.",
]


def note(i: int) -> str:
    """Note number i: the same text for the same i, on every machine."""
    r = random.Random(i)
    name = f"{r.choice(FIRST)} {r.choice(LAST)}"
    date = f"{r.randint(1, 12):02d}/{r.randint(1, 28):02d}/20{r.randint(10, 25)}"
    return (f"Patient {name}, MRN {r.randint(10**7, 10**8 - 1)}, seen on {date} by Dr. {r.choice(LAST)}.\n"
            f"{r.choice(FINDINGS)}\nCall 555-{r.randint(1000, 9999)} with questions.")


def notes(n: int):
    """n (id, text) pairs, ids note-00000, note-00001, ..."""
    return [(f"note-{i:05d}", note(i)) for i in range(n)]


def write_folder(folder, n: int) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for id, text in notes(n):
        (folder / f"{id}.txt").write_text(text)
    return folder


def write_table(path, n: int, files: int = 4) -> Path:
    """n notes as a Parquet table (columns id, text) in `files` files under the folder `path`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rows = notes(n)
    per_file = -(-n // files)
    for f in range(files):
        part = rows[f * per_file:(f + 1) * per_file]
        pq.write_table(pa.table({"id": [r[0] for r in part], "text": [r[1] for r in part]}),
                       path / f"part-{f}.parquet")
    return path


if __name__ == "__main__":
    out, n = sys.argv[1], int(sys.argv[2])
    (write_table if out.endswith(".parquet") else write_folder)(out, n)
