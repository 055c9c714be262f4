"""`make bench`: the recurrent baseline, against its PyTorch reference and against the default
transformer.

1. Speed, medgen against the PyTorch reference module of tests/test_rnn.py (nn.LSTM with
   packed sequences, the same attention and layers) with the same weights, batches and threads
   (2): training examples per second (batch 16, the default shape: LSTM, 2 layers, hidden
   256, embedding 128, bidirectional, Luong attention with input feeding; AdamW, clipping;
   steps 2..N timed), and greedy decoding tokens per second for batch 1 and batch 8 (32 new
   tokens each, EOS ignored: the reference steps its LSTM with its state, as medgen does).
2. The comparison a hospital asks for: on the same synthetic chest X-ray findings → impression
   data (tests/test_rnn_train.py's generator, 500 training and 40 validation pairs), the
   recurrent model trained from scratch (tokenizer included) and the default model
   (SmolLM2-135M) fine-tuned with LoRA: ROUGE-1/2/L (rouge-score) of greedy drafts on the
   validation data, training time and model size, with copying the input as the floor.

    .venv/bin/python bench/bench_rnn.py [--only speed|compare]
"""

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_rnn import Reference  # noqa: E402
from test_rnn_train import reports, rouge_l  # noqa: E402

MEDGEN = ROOT / "target/release/medgen"
THREADS = 2
BATCH = 16
STEPS = 8
NEW_TOKENS = 32


def run(*args):
    out = subprocess.run([str(MEDGEN), *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return out.stdout


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def reference_model(folder):
    from safetensors.torch import load_file

    cfg = json.loads((folder / "config.json").read_text())
    model = Reference(cfg)
    model.load_state_dict(load_file(folder / "model.safetensors"), strict=False)
    return model, cfg


def batches(folder, rows, cfg):
    """Right-padded tensors of each batch of `rows`, tokenised by HF tokenizers."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    pad, start = cfg["pad_token_id"], cfg["decoder_start_token_id"]
    out = []
    for i in range(0, len(rows), BATCH):
        chunk = rows[i:i + BATCH]
        src = [tok.encode(r["input"]).ids for r in chunk]
        tgt = [tok.encode(r["target"]).ids for r in chunk]
        pad_to = lambda seqs, v: torch.tensor([s + [v] * (max(map(len, seqs)) - len(s)) for s in seqs])  # noqa: E731
        labels = pad_to(tgt, -100)
        dec = torch.cat([torch.full((len(chunk), 1), start), labels[:, :-1].clamp(min=0)], 1)
        dec[dec == 0] = pad
        mask = pad_to([[1] * len(s) for s in src], 0)
        out.append((pad_to(src, pad), mask, dec, labels))
    return out


def reference_train_rate(folder, rows):
    model, cfg = reference_model(folder)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    data = batches(folder, rows, cfg)
    start = None
    for step, (ids, mask, dec, labels) in enumerate(data[:STEPS]):
        if step == 1:
            start = time.perf_counter()
        logits = model(ids, mask, dec)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum")
        (loss / (labels != -100).sum()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
    return (STEPS - 1) * BATCH / (time.perf_counter() - start)


def medgen_train_rate(tokenizer, train, out):
    run("finetune", "--from-scratch", "rnn", "--tokenizer", tokenizer, "--bidirectional", "--rnn-dropout", 0,
           "--train", train, "--output", out, "--overwrite", "--no-shuffle", "--no-deid", "--batch-size", BATCH,
           "--max-steps", STEPS, "--logging-steps", 1, "--lr", 1e-3, "--threads", THREADS, "--json")
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    return (STEPS - 1) * BATCH / (log[-1]["elapsed_seconds"] - log[0]["elapsed_seconds"])


@torch.no_grad()
def reference_decode_rate(folder, prompts):
    model, cfg = reference_model(folder)
    model.eval()
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    seqs = [tok.encode(p).ids for p in prompts]
    ids = torch.tensor([s + [cfg["pad_token_id"]] * (max(map(len, seqs)) - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (ids.shape[1] - len(s)) for s in seqs])
    t0 = time.perf_counter()
    enc, summary = model.encode(ids, mask)
    h0 = torch.tanh(model.bridge(summary)).expand(cfg["decoder_layers"], -1, -1).contiguous()
    state = (h0, torch.zeros_like(h0))
    feed = torch.zeros(len(prompts), 1, cfg["hidden_size"])
    token = torch.full((len(prompts), 1), cfg["decoder_start_token_id"])
    for _ in range(NEW_TOKENS):
        h, state = model.decoder.rnn(torch.cat([model.decoder.embedding(token), feed], 2), state)
        feed = model.attend(h, enc, mask)
        token = model.out_proj(feed).argmax(-1)
    return NEW_TOKENS * len(prompts) / (time.perf_counter() - t0)


def medgen_decode_rate(folder, prompts):
    import medgen

    model = medgen.Model.load(str(folder), threads=THREADS)
    model.generate(prompts[0], max_new_tokens=4)  # warm-up
    t0 = time.perf_counter()
    outs = model.generate(prompts, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, batch_size=len(prompts))
    tokens = sum(len(o.token_ids) for o in outs)
    return tokens / (time.perf_counter() - t0)


def speed(tmp):
    rows = reports(BATCH * STEPS, 0)
    train = write_jsonl(tmp / "speed.jsonl", rows)
    tokenizer = tmp / "speed-tokenizer.json"
    run("tokenizer", "train", "--input", train, "--vocab-size", 1000, "--output", tokenizer)
    out = tmp / "speed-model"
    ours = medgen_train_rate(tokenizer, train, out)
    # The reference starts from the weights medgen initialised.
    theirs = reference_train_rate(out / "from-scratch", rows)
    print(f"| training, batch {BATCH} (examples/s) | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f}x |")
    for b in (1, 8):
        prompts = [r["input"] for r in rows[:b]]
        ours, theirs = medgen_decode_rate(out, prompts), reference_decode_rate(out, prompts)
        print(f"| greedy decode, batch {b} (tokens/s) | {ours:.0f} | {theirs:.0f} | {ours / theirs:.2f}x |")


def drafts(model, adapter, rows):
    """Greedy drafts; a decoder-only model gets its input as the user's chat turn, as
    `medgen finetune` trained it."""
    import medgen

    m = medgen.Model.load(str(model), threads=THREADS, adapter=adapter and str(adapter))
    if adapter is None:
        return [m.generate(r["input"], max_new_tokens=24).text.strip() for r in rows]
    return [m.chat([{"role": "user", "content": r["input"]}], max_new_tokens=24).text.strip() for r in rows]


def rouge(predictions, references):
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [scorer.score(r, p) for p, r in zip(predictions, references)]
    return [float(np.mean([s[k].fmeasure for s in scores])) for k in ("rouge1", "rouge2", "rougeL")]


def size_mb(folder, pattern):
    return sum(f.stat().st_size for f in Path(folder).glob(pattern)) / 1e6


def compare(tmp):
    import medgen

    train = write_jsonl(tmp / "train.jsonl", reports(500, 0))
    val_rows = reports(40, 1)
    validation = write_jsonl(tmp / "validation.jsonl", val_rows)
    refs = [r["target"] for r in val_rows]
    lines = []
    t0 = time.perf_counter()
    tokenizer = tmp / "tokenizer.json"
    run("tokenizer", "train", "--input", train, "--vocab-size", 400, "--output", tokenizer)
    rnn = tmp / "rnn"
    run("finetune", "--from-scratch", "rnn", "--tokenizer", tokenizer, "--hidden", 128, "--embedding", 64,
           "--layers", 1, "--bidirectional", "--no-deid", "--train", train, "--validation", validation, "--output", rnn,
           "--overwrite", "--lr", 5e-3, "--batch-size", 16, "--epochs", 12, "--eval-generate", 0, "--threads", THREADS, "--json")
    seconds = time.perf_counter() - t0
    lines.append(("medgen_rnn from scratch (LSTM 1+1 layers, 128 hidden, 12 epochs)", rouge(drafts(rnn, None, val_rows), refs),
                  seconds, size_mb(rnn, "model.safetensors")))
    lora = tmp / "lora"
    t0 = time.perf_counter()
    run("finetune", "--method", "lora", "--no-deid", "--train", train, "--validation", validation, "--output", lora,
           "--overwrite", "--lr", 3e-4, "--batch-size", 8, "--epochs", 1, "--eval-generate", 0, "--threads", THREADS, "--json")
    seconds = time.perf_counter() - t0
    base = Path(medgen.default_model_path())
    lines.append(("SmolLM2-135M + LoRA r 8 (q, v; 1 epoch)", rouge(drafts(base, lora, val_rows), refs), seconds,
                  base.stat().st_size / 1e6 + size_mb(lora, "adapter_model.safetensors")))
    lines.append(("copying the input", rouge([r["input"] for r in val_rows], refs), 0.0, 0.0))
    print("| model | ROUGE-1 | ROUGE-2 | ROUGE-L | training (s) | size (MB) |")
    print("|---|---|---|---|---|---|")
    for name, (r1, r2, rl), s, mb in lines:
        print(f"| {name} | {r1:.3f} | {r2:.3f} | {rl:.3f} | {s:.0f} | {mb:.1f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["speed", "compare"])
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    print(f"machine: {platform.processor() or platform.machine()}, {THREADS} threads")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.only in (None, "speed"):
            print("| recurrent model | medgen | PyTorch reference | ratio |")
            print("|---|---|---|---|")
            speed(tmp)
        if args.only in (None, "compare"):
            compare(tmp)


if __name__ == "__main__":
    main()
