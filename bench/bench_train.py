"""`make bench`: training throughput and peak memory, medgen against a plain PyTorch loop.

Each run is its own process (so that its peak resident memory is its own), with 2 CPU threads,
batch 8, AdamW, the same data and lengths for both engines, dropout off (the models' configs
say 0, so that transformers' functional attention dropout is off too):
- a t5-small-sized T5 (the random-weight model of bench_seq2seq.py), 512-token inputs and
  128-token targets, full fine-tuning; once more with the reference under the glibc malloc
  settings that `medgen finetune` uses (freed memory kept for reuse: MALLOC_MMAP_THRESHOLD_,
  MALLOC_TRIM_THRESHOLD_), so that the row shows what those settings give either engine;
- the default model (SmolLM2-135M-Instruct, dequantized from its GGUF), 256-token sequences
  (128 prompt + 128 target tokens), LoRA r 8 on q_proj/v_proj, and full fine-tuning.
The reference is the loop transformers' Trainer runs (forward with labels, backward, clip,
AdamW step, schedule), written out in PyTorch so that nothing else is timed, with the Trainer's
default optimiser on this torch ("adamw_torch_fused": `torch.optim.AdamW(fused=True)`). Throughput
counts target tokens and examples per second over steps 2..N (step 1 warms up).

A second table times DP-SGD (C 1, σ 1) with LoRA r 8 (PEFT's targets) on both models, on
the same data, lengths and threads: medgen (`--dp-max-grad-norm 1 --dp-noise-multiplier 1`)
against Opacus's `make_private` around the same PyTorch model (grad_sample_mode "hooks",
Poisson sampling, per-example losses averaged over the batch and the sum divided by the
expected batch, as medgen), and against medgen's own LoRA run without DP. Poisson batches
vary in size and differ between the engines, so each counts the target tokens its own steps
2..N took (medgen's from log.jsonl: each entry's tokens_per_second times the time since the
one before) over their seconds. medgen's noise comes from a cryptographically secure
generator, Opacus's (secure_mode off, its default) from torch's.

    .venv/bin/python bench/bench_train.py [--only dp|plain]
"""

import argparse
import functools
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEDGEN = ROOT / "target/release/medgen"
T5 = ROOT / "tests/.cache/bench_t5/model"
THREADS = 2
BATCH = 8
STEPS = 4
DP = (1.0, 1.0)  # DP-SGD's clipping norm C and noise multiplier σ


def words(rng, n):
    return " ".join(f"w{rng.randrange(3, 32128)}" for _ in range(n))


def t5_data(path):
    rng = random.Random(0)
    with open(path, "w") as f:
        for _ in range(BATCH * STEPS):
            # 511 words + </s> = 512 input tokens; 127 words + </s> = 128 target tokens.
            f.write(json.dumps({"input": words(rng, 511), "target": words(rng, 127)}) + "\n")


def smol_data(path, tok):
    """Prompts and targets of exactly 128 tokens each for SmolLM2's tokenizer (no chat)."""
    rng = random.Random(0)
    vocab = [t for t in ("patient", " fever", " cough", " mg", " daily", " chest", " pain", " normal") ]
    with open(path, "w") as f:
        for _ in range(BATCH * STEPS):
            ids = [tok.convert_tokens_to_ids(tok.tokenize(rng.choice(vocab)))[0] for _ in range(127)]
            tgt = [tok.convert_tokens_to_ids(tok.tokenize(rng.choice(vocab)))[0] for _ in range(127)]
            f.write(json.dumps({"input": tok.decode(ids), "target": tok.decode(tgt)}) + "\n")


@functools.cache  # the DP table's runs without DP may be the first table's
def run_medgen(model, data, method, out, lengths, dp=None):
    """(target tokens, seconds, peak MiB) of steps 2..N; `dp`: (C, σ) for DP-SGD."""
    args = [str(MEDGEN), "finetune", "--model", str(model), "--train", str(data), "--output", str(out),
            "--overwrite", "--no-deid", "--no-chat", "--no-shuffle", "--batch-size", str(BATCH),
            "--max-steps", str(STEPS), "--logging-steps", "1", "--lr", "1e-5", "--threads", str(THREADS),
            "--method", method, "--max-source-length", str(lengths[0]), "--max-target-length", str(lengths[1]), "--json"]
    if dp:
        args += ["--dp-max-grad-norm", str(dp[0]), "--dp-noise-multiplier", str(dp[1])]
    peak = run_child(args) / 1024
    log = [json.loads(l) for l in open(out / "log.jsonl")]
    t = log[-1]["elapsed_seconds"] - log[0]["elapsed_seconds"]
    # An entry's rate is over the time since the one before: their product is its step's
    # tokens (the only record of a Poisson batch's size).
    tokens = sum(round(e["tokens_per_second"] * (e["elapsed_seconds"] - p["elapsed_seconds"])) for p, e in zip(log, log[1:]))
    return tokens, t, peak


REFERENCE = r'''
import json, sys, time, torch, transformers as tf
torch.set_num_threads(int(sys.argv[4]))
model_path, data, method, threads, batch, steps = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
src, tgt = int(sys.argv[7]), int(sys.argv[8])
dp = json.loads(sys.argv[9])  # null, or [C, sigma] for Opacus's DP-SGD
gguf = model_path.endswith(".gguf")
if gguf:
    import os
    d, f = os.path.split(model_path)
    tok = tf.AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = tf.AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
else:
    tok = tf.AutoTokenizer.from_pretrained(model_path)
    model = tf.AutoModelForSeq2SeqLM.from_pretrained(model_path, dtype=torch.float32)
for m in model.modules():
    if isinstance(m, torch.nn.Dropout): m.p = 0.0
assert getattr(model.config, "dropout_rate", 0.0) == 0.0, "T5 attention dropout reads the config"
if method == "lora":
    from peft import LoraConfig, get_peft_model
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16))
model.train()
rows = [json.loads(l) for l in open(data)]
batches = []
for i in range(0, len(rows), batch):
    chunk = rows[i:i + batch]
    if gguf:
        ids = [tok(r["input"]).input_ids[:src] + tok(r["target"], add_special_tokens=False).input_ids[:tgt - 1] + [tok.eos_token_id] for r in chunk]
        n = max(map(len, ids))
        x = torch.tensor([s + [tok.eos_token_id] * (n - len(s)) for s in ids])
        labels = x.clone()
        for j, s in enumerate(ids):
            labels[j, :min(src, len(tok(chunk[j]["input"]).input_ids))] = -100
            labels[j, len(s):] = -100
        batches.append(dict(input_ids=x, labels=labels))
    else:
        enc = tok([r["input"] for r in chunk], return_tensors="pt", padding=True, truncation=True, max_length=src)
        lab = tok(text_target=[r["target"] for r in chunk], return_tensors="pt", padding=True, truncation=True, max_length=tgt).input_ids
        lab[lab == tok.pad_token_id] = -100
        batches.append(dict(input_ids=enc.input_ids, attention_mask=enc.attention_mask, labels=lab))
params = [p for p in model.parameters() if p.requires_grad]
# The Trainer's default optimiser on torch >= 2.8 is "adamw_torch_fused"; Opacus is handed the
# plain one, as its examples do.
opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0, fused=not dp)
source = iter(batches)
if dp:
    from opacus import PrivacyEngine
    # Every example has as many label tokens, so transformers' loss (the mean over the
    # batch's label tokens) is the mean of the examples' own means, which medgen clips.
    examples = [{k: v[j] for k, v in b.items()} for b in batches for j in range(len(b["labels"]))]
    assert len({int((e["labels"] != -100).sum()) for e in examples}) == 1
    torch.manual_seed(0)
    model, opt, loader = PrivacyEngine().make_private(
        module=model, optimizer=opt, data_loader=torch.utils.data.DataLoader(examples, batch_size=batch),
        max_grad_norm=dp[0], noise_multiplier=dp[1], poisson_sampling=True, grad_sample_mode="hooks")
    source = iter(loader)
sched = tf.get_linear_schedule_with_warmup(opt, 0, steps)
times, tokens = [], 0
for step in range(steps):
    t0 = time.time()
    b = next(source)  # Opacus samples the batch here
    loss = model(**b).loss
    loss.backward()
    if not dp:  # DP-SGD clips each example's gradient instead
        torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step(); sched.step(); opt.zero_grad()
    times.append(time.time() - t0)
    if step > 0: tokens += int((b["labels"] != -100).sum())
print(json.dumps({"seconds": sum(times[1:]), "tokens": tokens}))
'''


def run_child(args, env=None):
    """Runs `args`; returns the child's own peak resident memory in KiB (not the maximum
    over every child so far, which RUSAGE_CHILDREN would give)."""
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{args[:3]} failed: {text[-2000:]}")
    run_child.output = text
    return usage.ru_maxrss


# What `medgen finetune` sets with mallopt, as glibc's environment variables.
KEEP_FREED = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}


def run_reference(model, data, method, lengths, env=None, dp=None):
    args = [sys.executable, "-c", REFERENCE, str(model), str(data), method, str(THREADS), str(BATCH), str(STEPS), str(lengths[0]), str(lengths[1]), json.dumps(dp)]
    peak = run_child(args, env={**os.environ, "OMP_NUM_THREADS": str(THREADS), **(env or {})})
    result = json.loads(run_child.output.strip().splitlines()[-1])
    result["peak_mib"] = peak / 1024
    return result


def main():
    parser = argparse.ArgumentParser(description="Training throughput and peak memory: medgen against PyTorch and Opacus.")
    parser.add_argument("--only", choices=["dp", "plain"], help="run only the DP-SGD table, or only the other")
    only = parser.parse_args().only
    import transformers
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_seq2seq
    bench_seq2seq.make_model()
    # The same T5 with dropout 0 in its config: T5's attention dropout is functional, and
    # reads the config rather than an nn.Dropout module.
    scratch = tempfile.TemporaryDirectory()  # removed when main returns
    t5 = Path(scratch.name) / "t5"
    shutil.copytree(T5, t5)
    config = json.loads((t5 / "config.json").read_text())
    (t5 / "config.json").write_text(json.dumps({**config, "dropout_rate": 0.0}))
    info = subprocess.run([str(MEDGEN), "info", "--json"], check=True, capture_output=True, text=True).stdout
    default = Path(json.loads(info)["path"])
    work = Path(scratch.name) / "work"
    work.mkdir()
    t5_file, smol_file = work / "t5.jsonl", work / "smol.jsonl"
    t5_data(t5_file)
    tok = transformers.AutoTokenizer.from_pretrained(default.parent, gguf_file=default.name)
    smol_data(smol_file, tok)
    machine = platform.processor() or platform.machine()
    if only != "dp":
        plain(t5, t5_file, default, smol_file, work, machine)
    if only != "plain":
        private(t5, t5_file, default, smol_file, work, machine)


def plain(t5, t5_file, default, smol_file, work, machine):
    print(f"# training, batch {BATCH}, {THREADS} threads, steps 2..{STEPS} timed; {machine}")
    print("| work | medgen tok/s | reference tok/s | medgen / reference | medgen ex/s | peak MiB medgen | peak MiB reference |")
    print("|---|---|---|---|---|---|---|")
    cases = [("t5-small-sized, full, 512 → 128", t5, t5_file, "full", (512, 128), None),
             ("the same, reference with medgen's malloc settings", t5, t5_file, "full", (512, 128), KEEP_FREED),
             ("SmolLM2-135M, LoRA r 8, 128 + 128", default, smol_file, "lora", (128, 128), None),
             ("SmolLM2-135M, full, 128 + 128", default, smol_file, "full", (128, 128), None)]
    for name, model, data, method, lengths, env in cases:
        ref = run_reference(model, data, method, lengths, env)
        _, secs, peak = run_medgen(model, data, method, work / "out", lengths)
        tokens = ref["tokens"]
        ours, theirs = tokens / secs, tokens / ref["seconds"]
        ex = BATCH * (STEPS - 1) / secs
        print(f"| {name} | {ours:.0f} | {theirs:.0f} | {ours / theirs:.2f}x | {ex:.2f} | {peak:.0f} | {ref['peak_mib']:.0f} |", flush=True)


def private(t5, t5_file, default, smol_file, work, machine):
    print(f"\n# DP-SGD (C {DP[0]}, σ {DP[1]}, Poisson sampling at q {BATCH}/{BATCH * STEPS}), LoRA r 8, expected batch {BATCH}, {THREADS} threads, steps 2..{STEPS} timed; {machine}")
    print("| work | medgen DP tok/s | Opacus tok/s | medgen DP / Opacus | medgen tok/s without DP | without DP / with | peak MiB medgen DP | peak MiB Opacus |")
    print("|---|---|---|---|---|---|---|---|")
    cases = [("t5-small-sized, LoRA (q, v), 512 → 128", t5, t5_file, (512, 128)),
             ("SmolLM2-135M, LoRA (q_proj, v_proj), 128 + 128", default, smol_file, (128, 128))]
    for name, model, data, lengths in cases:
        tokens, secs, peak = run_medgen(model, data, "lora", work / "out", lengths, DP)
        plain_tokens, plain_secs, _ = run_medgen(model, data, "lora", work / "out", lengths)
        ours, without = tokens / secs, plain_tokens / plain_secs
        try:
            ref = run_reference(model, data, "lora", lengths, dp=DP)
            theirs = ref["tokens"] / ref["seconds"]
            vs = f"{theirs:.0f} | {ours / theirs:.2f}x"
            their_peak = f"{ref['peak_mib']:.0f}"
        except RuntimeError as e:  # a model Opacus cannot make private: the row says why
            vs, their_peak = f"refused ({str(e).strip().splitlines()[-1]}) | -", "-"
        print(f"| {name} | {ours:.0f} | {vs} | {without:.0f} | {without / ours:.2f}x | {peak:.0f} | {their_peak} |", flush=True)


if __name__ == "__main__":
    main()
