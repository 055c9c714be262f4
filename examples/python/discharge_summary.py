"""Notebook-style: draft a discharge summary from a synthetic note with the default model.

    python examples/python/discharge_summary.py [--max-new-tokens N]
"""
import argparse
from pathlib import Path

import medgen

parser = argparse.ArgumentParser()
parser.add_argument("--max-new-tokens", type=int, default=200)
args = parser.parse_args()

examples = Path(__file__).resolve().parent.parent
note = (examples / "notes/discharge_note.txt").read_text()
system = (examples / "prompts/discharge_summary_system.txt").read_text().strip()

# Load once; the model is safe to share between threads.
model = medgen.Model.load()
print(medgen.model_info(model)["architecture"], "model loaded")

# Stream the draft as it is generated.
messages = [{"role": "system", "content": system}, {"role": "user", "content": note}]
stream = model.stream(messages, max_new_tokens=args.max_new_tokens, repetition_penalty=1.1)
for piece in stream:
    print(piece, end="", flush=True)
out = stream.result
print(f"\n\n[{out.finish_reason}: {len(out.token_ids)} tokens at {out.timings['decode_tokens_per_s']:.1f} tok/s]")
