#!/usr/bin/env python3
"""Sets up a federation to try on one machine: each site's synthetic notes and the server's
first global adapter.

    python examples/federated/prepare.py --out federation [--sites 3] [--model PATH]

writes OUT/site-K/train.jsonl and OUT/site-K/validation.jsonl (invented notes and drafts from
examples/finetune/make_task_data.py, a different seed and size per site: in a real federation
each hospital puts its own notes there, and they never leave it) and OUT/global0/, the LoRA
adapter every site starts from (r 8 on every projection, seeded).
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import medgen

HERE = Path(__file__).resolve().parent
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sites", type=int, default=3)
    ap.add_argument("--model", help="the base model (default: medgen's default model)")
    args = ap.parse_args()
    if args.sites < 2:
        ap.error("a federation needs at least 2 sites")
    for k in range(args.sites):
        site = args.out / f"site-{k}"
        # Sites of different sizes, so that the weighting by example counts matters.
        subprocess.run([sys.executable, str(HERE.parent / "finetune" / "make_task_data.py"), "--out", str(site),
                        "--seed", str(100 + k), "--n-per-task", str(10 + 5 * k)], check=True)
        (site / "test.jsonl").unlink(missing_ok=True)
    shutil.rmtree(args.out / "global0", ignore_errors=True)
    medgen.initial_adapter(args.model, output=args.out / "global0", lora_r=8, lora_alpha=16, target_modules=TARGETS, seed=0)
    print(f"wrote {args.sites} sites and the first global adapter under {args.out}")


if __name__ == "__main__":
    main()
