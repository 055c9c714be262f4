"""Batch over a CSV of synthetic notes with pandas: one summary per row.

    python examples/python/batch_csv.py [--max-new-tokens N] [--out summaries.csv]
"""
import argparse
from pathlib import Path

import pandas as pd

import medgen

parser = argparse.ArgumentParser()
parser.add_argument("--max-new-tokens", type=int, default=64)
parser.add_argument("--out", default=None)
args = parser.parse_args()

df = pd.read_csv(Path(__file__).resolve().parent / "notes.csv")
model = medgen.Model.load()
cfg = medgen.GenerationConfig(max_new_tokens=args.max_new_tokens, stop=["\n\n"])

prompts = [f"Clinical note: {note}\nOne-sentence summary:" for note in df["note"]]
df["summary"] = [g.text.strip() for g in model.generate(prompts, config=cfg)]

print(df[["id", "summary"]].to_string(index=False))
if args.out:
    df.to_csv(args.out, index=False)
