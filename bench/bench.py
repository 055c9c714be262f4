"""`make bench`: medgen and its references side by side, in one run, on the default model.

Batch 1, a ~85-token clinical prompt, 128 new tokens (greedy, EOS suppressed so every run
makes all 128), 2 CPU threads. Rows: medgen f32 and bf16, transformers f32 (reading the same
GGUF), and llama.cpp through llama-cpp-python (4-bit kernels) where it is installed.
Prints load seconds, prefill and decode tokens/s, and ratios against transformers f32.
"""

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import DEFAULT_DIR, DEFAULT_FILE, MEDGEN  # noqa: E402

THREADS = 2
NEW = 128
# The synthetic note's opening (~85 tokens): complaint, history of present illness.
PROMPT = (ROOT / "examples/notes/discharge_note.txt").read_text().split("Exam:")[0].strip()


def medgen(dtype):
    args = [str(MEDGEN), "generate", "--json", "--greedy", "--prompt", PROMPT, "--dtype", dtype,
            "--threads", str(THREADS), "--max-new-tokens", str(NEW), "--min-new-tokens", str(NEW)]
    runs = [json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout) for _ in range(2)]
    best = max(runs, key=lambda r: r["timings"]["decode_tokens_per_s"])
    t = best["timings"]
    return {"load_s": t["load_s"], "prefill": t["prefill_tokens_per_s"], "decode": t["decode_tokens_per_s"],
            "prompt_tokens": len(best["prompt_token_ids"])}


def transformers_f32():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.generation.streamers import BaseStreamer

    torch.set_num_threads(THREADS)
    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(DEFAULT_DIR, gguf_file=DEFAULT_FILE)
    model = AutoModelForCausalLM.from_pretrained(DEFAULT_DIR, gguf_file=DEFAULT_FILE, dtype=torch.float32).eval()
    load_s = time.perf_counter() - start
    ids = tok(PROMPT, return_tensors="pt")["input_ids"]

    class Clock(BaseStreamer):
        """put() gets the prompt first, then each new token: time stamps of each call."""
        def __init__(self):
            self.stamps = []

        def put(self, value):
            self.stamps.append(time.perf_counter())

        def end(self):
            self.stamps.append(time.perf_counter())

    best = None
    for _ in range(2):
        clock = Clock()
        with torch.no_grad():
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW, min_new_tokens=NEW,
                           do_sample=False, streamer=clock, pad_token_id=tok.eos_token_id)
        prefill = clock.stamps[1] - clock.stamps[0]
        decode = clock.stamps[-1] - clock.stamps[1]
        row = {"load_s": load_s, "prefill": ids.shape[1] / prefill, "decode": (NEW - 1) / decode}
        best = row if best is None or row["decode"] > best["decode"] else best
    return best


def llama_cpp():
    try:
        import llama_cpp
        import numpy as np
    except ImportError:
        return None
    start = time.perf_counter()
    llm = llama_cpp.Llama(model_path=str(DEFAULT_DIR / DEFAULT_FILE), n_ctx=512, n_threads=THREADS,
                          n_batch=512, verbose=False)
    load_s = time.perf_counter() - start
    tokens = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(tokens)
    t1 = time.perf_counter()
    for _ in range(NEW - 1):
        llm.eval([int(np.argmax(llm.scores[llm.n_tokens - 1]))])
    t2 = time.perf_counter()
    return {"load_s": load_s, "prefill": len(tokens) / (t1 - t0), "decode": (NEW - 1) / (t2 - t1)}


def main():
    rows = {"medgen f32": medgen("f32"), "medgen bf16": medgen("bf16"), "transformers f32": transformers_f32()}
    try:
        cpp = llama_cpp()
    except Exception as e:  # an API change in the reference must not hide the other rows
        print(f"llama.cpp row skipped: {e}")
        cpp = None
    if cpp:
        rows["llama.cpp Q4_1"] = cpp
    ref = rows["transformers f32"]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    print(f"\nSmolLM2-135M-Instruct Q4_1 GGUF, {rows['medgen f32']['prompt_tokens']}-token prompt, {NEW} new tokens, "
          f"batch 1, {THREADS} threads, {cpu}, {os.cpu_count()} cores\n")
    print("| engine | load (s) | prefill tok/s | decode tok/s | decode vs transformers f32 |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['load_s']:.2f} | {r['prefill']:.0f} | {r['decode']:.1f} | {r['decode'] / ref['decode']:.2f}x |")


if __name__ == "__main__":
    main()
