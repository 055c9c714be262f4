"""`make bench`: decoder-only throughput over many prompts at once, on the default model.

32 different clinical prompts (10 to 60 tokens: batches are left-padded), 64 new tokens each
(greedy, EOS suppressed so every sequence makes all 64), 2 CPU threads. Rows: medgen
(`--batch-file`, batches of 8 and of 32; f32 and with int8 activations), transformers f32
batched `generate` (left padding, the same GGUF), and llama.cpp's batched decoding (one
sequence id per prompt, all in one `llama_decode` per step, through llama-cpp-python's
low-level API) where it is installed. Tokens/s = 32 x 64 / (prefill + decode seconds), load
excluded; best of 2 (transformers' and llama.cpp's runs: 1).
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import CLINICAL_SENTENCES, DEFAULT_DIR, DEFAULT_FILE, MEDGEN  # noqa: E402

THREADS = 2
NEW = 64
N = 32


def prompts():
    """32 prompts of one to four clinical sentences, each a different combination."""
    english = [s for s in CLINICAL_SENTENCES if s.isascii()]
    return [" ".join(english[(i + k) % len(english)] for k in range(1 + i % 4)) for i in range(N)]


def medgen(batch, *flags):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "prompts.jsonl"
        path.write_text("".join(json.dumps(p) + "\n" for p in prompts()))
        best = None
        for _ in range(2):
            out = subprocess.run([str(MEDGEN), "generate", "--batch-file", str(path), "--batch-size", str(batch),
                                  "--greedy", "--max-new-tokens", str(NEW), "--min-new-tokens", str(NEW),
                                  "--threads", str(THREADS), *flags], capture_output=True, text=True, check=True).stdout
            results = [json.loads(line) for line in out.splitlines()]
            assert all(len(r["token_ids"]) == NEW for r in results)
            # The results of one batch share its timings.
            seconds = sum(r["timings"]["prefill_s"] + r["timings"]["decode_s"] for r in results[::batch])
            best = seconds if best is None else min(best, seconds)
    return N * NEW / best


def transformers_f32(batch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(THREADS)
    tok = AutoTokenizer.from_pretrained(DEFAULT_DIR, gguf_file=DEFAULT_FILE, padding_side="left")
    tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(DEFAULT_DIR, gguf_file=DEFAULT_FILE, dtype=torch.float32).eval()
    texts = prompts()
    start = time.perf_counter()
    for first in range(0, N, batch):
        inputs = tok(texts[first:first + batch], return_tensors="pt", padding=True)
        with torch.no_grad():
            model.generate(**inputs, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False,
                           pad_token_id=tok.eos_token_id)
    return N * NEW / (time.perf_counter() - start)


def llama_cpp(batch):
    """llama.cpp decoding `batch` sequences together: one context holding them all (its own
    sequence id each), every step one `llama_decode` of one token per sequence."""
    try:
        import llama_cpp as lc
    except ImportError:
        return None
    import numpy as np

    llm = lc.Llama(model_path=str(DEFAULT_DIR / DEFAULT_FILE), n_ctx=512, n_threads=THREADS, verbose=False)
    model = llm._model.model
    vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(model))
    texts = prompts()
    total = 0.0
    for first in range(0, N, batch):
        tokens = [llm.tokenize(t.encode(), add_bos=False, special=True) for t in texts[first:first + batch]]
        params = lc.llama_context_default_params()
        params.n_ctx = params.n_batch = sum(map(len, tokens)) + len(tokens) * NEW + 64
        params.n_ubatch, params.n_seq_max = 512, len(tokens)
        params.n_threads = params.n_threads_batch = THREADS
        ctx = lc.llama_init_from_model(model, params)
        b = lc.llama_batch_init(params.n_batch, 0, 1)

        def decode(entries):
            """(token, position, sequence, logits wanted) for each token of one decode."""
            b.n_tokens = len(entries)
            for i, (t, p, s, want) in enumerate(entries):
                b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = t, p, 1, want
                b.seq_id[i][0] = s
            assert lc.llama_decode(ctx, b) == 0

        def argmax(i):
            return int(np.argmax(np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, i), shape=(vocab,))))

        start = time.perf_counter()
        entries = [(t, p, s, p == len(ts) - 1) for s, ts in enumerate(tokens) for p, t in enumerate(ts)]
        decode(entries)
        last = [argmax(i) for i, e in enumerate(entries) if e[3]]
        for step in range(NEW - 1):
            decode([(last[s], len(ts) + step, s, True) for s, ts in enumerate(tokens)])
            last = [argmax(s) for s in range(len(tokens))]
        total += time.perf_counter() - start
        lc.llama_batch_free(b)
        lc.llama_free(ctx)
    return N * NEW / total


def main():
    rows = {}
    for batch in [8, 32]:
        rows[f"medgen f32, batches of {batch}"] = medgen(batch)
        rows[f"medgen int8 activations, batches of {batch}"] = medgen(batch, "--int8-activations")
        rows[f"transformers f32, batches of {batch}"] = transformers_f32(batch)
        try:
            cpp = llama_cpp(batch)
        except Exception as e:  # an API change in the reference must not hide the other rows
            print(f"llama.cpp batch {batch} row skipped: {e}")
            cpp = None
        if cpp:
            rows[f"llama.cpp Q4_1, batches of {batch}"] = cpp
    print(f"\nSmolLM2-135M-Instruct Q4_1 GGUF, {N} prompts of 10 to 60 tokens, {NEW} new tokens each, "
          f"{THREADS} threads\n")
    print("| engine | tokens/s | vs transformers f32, same batches |")
    print("|---|---|---|")
    for name, value in rows.items():
        batch = name.rsplit(" ", 1)[1]
        ref = rows[f"transformers f32, batches of {batch}"]
        print(f"| {name} | {value:.1f} | {value / ref:.2f}x |")


if __name__ == "__main__":
    main()
