"""`make bench`: medgen and its references side by side, in one run, on the default model.

Batch 1, a ~85-token clinical prompt, 128 new tokens (greedy, EOS suppressed so every run
makes all 128), 2 CPU threads. Rows: medgen f32, bf16 and with int8 activations, transformers
f32 (reading the same GGUF), and llama.cpp through llama-cpp-python (4-bit kernels) where it
is installed. Prints load seconds, prefill and decode tokens/s, and ratios against
transformers f32 and llama.cpp; then how far each engine's decode-step logits are from
transformers' f32 on the parity tests' prompts, and how many of their 32 greedy tokens
equal transformers'. Last, the same prompt on Gemma 3 270M's Q4_K_M file, whose weights
mix Q5_0, Q4_K, Q6_K and Q8_0 blocks: medgen against llama.cpp.
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
from conftest import DEFAULT_DIR, DEFAULT_FILE, GEMMA3_GGUF, MEDGEN  # noqa: E402

THREADS = 2
NEW = 128
# The synthetic note's opening (~85 tokens): complaint, history of present illness.
PROMPT = (ROOT / "examples/notes/discharge_note.txt").read_text().split("Exam:")[0].strip()


def run_with_rss(args):
    """A command's stdout and its peak resident memory in MiB (the child's own, by wait4)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, args)
    return out, usage.ru_maxrss / 1024


def medgen(dtype, *flags):
    args = [str(MEDGEN), "generate", "--json", "--greedy", "--prompt", PROMPT, "--dtype", dtype,
            "--threads", str(THREADS), "--max-new-tokens", str(NEW), "--min-new-tokens", str(NEW), *flags]
    runs = [run_with_rss(args) for _ in range(2)]
    best = max((json.loads(out) for out, _ in runs), key=lambda r: r["timings"]["decode_tokens_per_s"])
    t = best["timings"]
    return {"load_s": t["load_s"], "prefill": t["prefill_tokens_per_s"], "decode": t["decode_tokens_per_s"],
            "prompt_tokens": len(best["prompt_token_ids"]), "rss": max(rss for _, rss in runs)}


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


def load_llama_cpp(path=DEFAULT_DIR / DEFAULT_FILE, **options):
    """llama.cpp's model, and the seconds it took to load; None where it is not installed."""
    try:
        import llama_cpp
    except ImportError:
        return None, 0.0
    start = time.perf_counter()
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=THREADS, n_batch=512, verbose=False, **options)
    return llm, time.perf_counter() - start


def llama_cpp(path=DEFAULT_DIR / DEFAULT_FILE, bos=False):
    """llama.cpp's row; `bos` where the model's prompts start with one (as medgen's do)."""
    import numpy as np

    llm, load_s = load_llama_cpp(path)
    if llm is None:
        return None
    tokens = llm.tokenize(PROMPT.encode(), add_bos=bos, special=True)
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(tokens)
    t1 = time.perf_counter()
    for _ in range(NEW - 1):
        llm.eval([int(np.argmax(llm.scores[llm.n_tokens - 1]))])
    t2 = time.perf_counter()
    return {"load_s": load_s, "prefill": len(tokens) / (t1 - t0), "decode": (NEW - 1) / (t2 - t1)}


def llama_cpp_row(*args, **kw):
    """`llama_cpp(...)`, or None (the reason printed) where it fails: an API change in the
    reference must not hide the other rows."""
    try:
        return llama_cpp(*args, **kw)
    except Exception as e:
        print(f"llama.cpp row skipped: {e}")
        return None


def accuracy(cpp):
    """Per prompt of the parity tests: the relative L2 distance of the logits after a decode
    step (the prompt's last token run alone) from transformers' f32 on the same tokens, and
    whether 32 greedy tokens equal transformers'. None for llama.cpp where it is missing."""
    import numpy as np
    import tempfile

    import torch
    from test_reference import PROMPTS, hf_greedy, rel_l2
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(DEFAULT_DIR, gguf_file=DEFAULT_FILE, dtype=torch.float32).eval()
    llm, _ = load_llama_cpp(logits_all=True) if cpp else (None, 0.0)
    engines = {"medgen f32": [], "medgen int8 activations": [], "llama.cpp Q4_1": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "logits.npy"
        for prompt in PROMPTS:
            rows = {}
            for name, flags in [("medgen f32", []), ("medgen int8 activations", ["--int8-activations"])]:
                run = lambda *a: json.loads(subprocess.run([str(MEDGEN), *a, *flags], capture_output=True,  # noqa: E731
                                                           text=True, check=True).stdout)
                ids = run("debug", "logits", "--decode-last", "--prompt", prompt, "--out", str(out), "--force")["prompt_token_ids"]
                gen = run("generate", "--json", "--greedy", "--prompt", prompt, "--max-new-tokens", "32")["token_ids"]
                rows[name] = (np.load(out), gen)
            with torch.no_grad():
                ref = model(torch.tensor([ids])).logits[0, -1].numpy()
            greedy = hf_greedy(model, ids, 32)
            if llm is not None:
                llm.reset()
                llm.eval(ids[:-1])
                llm.eval(ids[-1:])
                logits = np.array(llm.scores[len(ids) - 1])
                gen = [int(np.argmax(logits))]
                while len(gen) < 32:
                    llm.eval(gen[-1:])
                    gen.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
                rows["llama.cpp Q4_1"] = (logits, gen)
            for name, (logits, gen) in rows.items():
                # transformers stops at EOS; llama.cpp's loop here does not.
                engines[name].append((rel_l2(logits, ref), gen[:len(greedy)] == greedy))
    return {name: r for name, r in engines.items() if r}


def main():
    # First, while this process is small: a child's peak RSS counts what it shared with its
    # parent before exec.
    _, idle = run_with_rss([str(MEDGEN), "--version"])
    rows = {"medgen f32": medgen("f32"), "medgen bf16": medgen("bf16"),
            "medgen int8 activations": medgen("f32", "--int8-activations")}
    gemma_rows = gemma_medgen()
    rows["transformers f32"] = transformers_f32()
    cpp = llama_cpp_row()
    if cpp:
        rows["llama.cpp Q4_1"] = cpp
    ref = rows["transformers f32"]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    print(f"\nSmolLM2-135M-Instruct Q4_1 GGUF, {rows['medgen f32']['prompt_tokens']}-token prompt, {NEW} new tokens, "
          f"batch 1, {THREADS} threads, {cpu}, {os.cpu_count()} cores\n")
    print("| engine | load (s) | prefill tok/s | decode tok/s | decode vs transformers f32 | decode vs llama.cpp |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        vs_cpp = f"{r['decode'] / cpp['decode']:.2f}x" if cpp else "(not installed)"
        print(f"| {name} | {r['load_s']:.2f} | {r['prefill']:.0f} | {r['decode']:.1f} | {r['decode'] / ref['decode']:.2f}x | {vs_cpp} |")
    # Memory: a medgen process's peak RSS while generating, less that of the same binary
    # doing nothing (`--version`: libtorch's libraries mapped and relocated), against the
    # weight file's size. The KV cache of this request is under 3 MiB.
    size = DEFAULT_DIR.joinpath(DEFAULT_FILE).stat().st_size / 2**20
    print(f"\nPeak RSS while generating ({size:.0f} MiB weight file; `medgen --version` alone: {idle:.0f} MiB)\n")
    print("| engine | peak RSS (MiB) | above the idle binary (MiB) | above idle / file size |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        if "rss" in r:
            print(f"| {name} | {r['rss']:.0f} | {r['rss'] - idle:.0f} | {(r['rss'] - idle) / size:.2f} |")
    print("\nDecode-step logits against transformers f32 (relative L2, per prompt of tests/test_reference.py), "
          "and prompts whose 32 greedy tokens equal transformers'\n")
    print("| engine | relative L2 per prompt | mean | greedy equal |")
    print("|---|---|---|---|")
    for name, r in accuracy(cpp is not None).items():
        errors = [e for e, _ in r]
        print(f"| {name} | {' '.join(f'{e:.1e}' for e in errors)} | {sum(errors) / len(errors):.1e} | "
              f"{sum(same for _, same in r)}/{len(r)} |")
    gemma(gemma_rows)


def gemma_medgen():
    """medgen's rows on Gemma 3 270M Q4_K_M (measured while this process is small)."""
    if not GEMMA3_GGUF.exists():
        return None
    model = ["--model", str(GEMMA3_GGUF)]
    return {"medgen f32": medgen("f32", *model), "medgen int8 activations": medgen("f32", "--int8-activations", *model)}


def gemma(rows):
    """Gemma 3 270M Q4_K_M: every block type of the file used as stored, against llama.cpp."""
    if rows is None:
        print(f"\nGemma 3 rows skipped: {GEMMA3_GGUF} is missing (make setup assembles it)")
        return
    cpp = llama_cpp_row(GEMMA3_GGUF, bos=True)
    if cpp:
        rows["llama.cpp Q4_K_M"] = cpp
    size = GEMMA3_GGUF.stat().st_size / 2**20
    print(f"\nGemma 3 270M Q4_K_M GGUF ({size:.0f} MiB: Q5_0, Q4_K, Q6_K and Q8_0 blocks), "
          f"{rows['medgen f32']['prompt_tokens']}-token prompt, {NEW} new tokens, batch 1, {THREADS} threads\n")
    print("| engine | load (s) | prefill tok/s | decode tok/s | decode vs llama.cpp | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        vs_cpp = f"{r['decode'] / cpp['decode']:.2f}x" if cpp else "(not installed)"
        rss = f"{r['rss']:.0f}" if "rss" in r else ""
        print(f"| {name} | {r['load_s']:.2f} | {r['prefill']:.0f} | {r['decode']:.1f} | {vs_cpp} | {rss} |")


if __name__ == "__main__":
    main()
