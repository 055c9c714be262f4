"""Fine-tuning (`medgen finetune`, `debug train-batch`, `merge`, adapters at inference) against
independent references: the tokenizer's own encoding, transformers' loss and gradients, PEFT's
LoRA layers, and a plain PyTorch loop (torch.optim.AdamW, transformers' linear warm-up schedule,
clip_grad_norm_) written here from the contract.

The tiny models are made by conftest.make_tiny and test_seq2seq.make_tiny_seq2seq (the latter's
projection matrices scaled back to their initial size, see unscale_projections) and saved under
tests/.cache/finetune/<kind> with every dropout probability set to 0 in config.json, so that
transformers in train mode is deterministic. PEFT adapters for them are saved beside them.

Reference facts these tests rely on (transformers 5.23, PEFT 0.21.2, checked in their sources):
- Trainer.get_decay_parameter_names: parameters inside nn.LayerNorm modules, or whose lowercased
  name matches bias | layernorm | rmsnorm | (^|.)norm($|.) | _norm($|.), get no weight decay.
  T5's relative_attention_bias.weight matches "bias", so it gets none either.
- Causal LM loss (ForCausalLMLoss): logits[:, :-1] against labels[:, 1:], sum over tokens /
  num_items_in_batch, which the Trainer counts over labels[..., 1:] != -100.
- T5 / BART: decoder_input_ids = labels shifted right with decoder_start_token_id first and -100
  replaced by pad_token_id (T5._shift_right, bart.shift_tokens_right); their loss is a plain
  CrossEntropyLoss mean, which equals sum / tokens for one batch.
- PEFT's default LoRA targets: t5 q,v; bart, llama, qwen2 q_proj,v_proj; gpt2 c_attn (with
  fan_in_fan_out forced to True for Conv1D). Saved keys drop the adapter name:
  base_model.model.<module>.lora_A.weight ([r, in]) and .lora_B.weight ([out, r]).
"""

import csv
import hashlib
import json
import math
import re
import shutil
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from conftest import CLINICAL_SENTENCES, ROOT, cached, make_tiny, medgen_json, run_medgen
from test_seq2seq import make_tiny_seq2seq

CACHE = ROOT / "tests" / ".cache" / "finetune"
# A folder in CACHE is complete when it holds this file; change it when the recipes change.
MADE = ".made-v1"
DECODER_KINDS = ["gpt2", "qwen2", "llama", "llama_untied"]
SEQ2SEQ_KINDS = ["t5_relu", "t5_gated", "bart"]
ALL_KINDS = DECODER_KINDS + SEQ2SEQ_KINDS
# Every dropout probability the five config classes have.
DROPOUT_KEYS = ["dropout", "attention_dropout", "activation_dropout", "dropout_rate", "resid_pdrop",
                "embd_pdrop", "attn_pdrop", "summary_first_dropout", "classifier_dropout",
                "encoder_layerdrop", "decoder_layerdrop"]
LLAMA_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# Gradients: 1e-5 relative per tensor, 1e-4 for tensors whose norm is under 1% of the largest,
# and differences under 1e-6 of the largest norm always allowed (see assert_tensors_close). In
# BART the smallest attention gradients (1e-4 of the largest) come out of float32 with 1e-4
# relative error in transformers and 3e-4 in medgen: rounding of large terms that cancel.
GRAD_TOL = 1e-5
TINY_GRAD_TOL = 1e-4
GRAD_FLOOR = 1e-6


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The reference computations are tiny: one thread is faster than two contending with the
    medgen process and anything else on a 2-core machine (several times, measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# Tiny models and adapters


def is_seq2seq(kind):
    return kind.startswith(("t5", "bart"))


@lru_cache(maxsize=None)
def model_dir(kind) -> Path:
    """The tiny model `kind` with all dropout at 0, made once per cache."""
    def make(path):
        if is_seq2seq(kind):
            make_tiny_seq2seq(kind, path)
            unscale_projections(path / "model.safetensors")
        else:
            make_tiny(kind, path)
        config = json.loads((path / "config.json").read_text())
        for key in DROPOUT_KEYS:
            if key in config:
                config[key] = 0.0
        (path / "config.json").write_text(json.dumps(config, indent=2))

    return cached(CACHE / kind, make, MADE)


def unscale_projections(weights_file):
    """Undoes make_tiny_seq2seq's x4 on the projection matrices. Made for greedy decoding, that
    scale saturates the attention softmax (T5 does not scale its scores), and then float32
    gradients themselves are only good to ~1e-3 relative (measured against float64), too coarse
    to compare two implementations at 1e-5; at the default scale they are good to ~1e-6."""
    from safetensors.torch import load_file, save_file

    weights = load_file(weights_file)
    for name, w in weights.items():
        if (w.dim() == 2 and not any(e in name for e in ["shared", "embed", "lm_head"])
                and "bias" not in name and "norm" not in name):
            weights[name] = w * 0.25
    save_file(weights, weights_file, metadata={"format": "pt"})


def model_class(kind):
    import transformers as tf

    return tf.AutoModelForSeq2SeqLM if is_seq2seq(kind) else tf.AutoModelForCausalLM


def load_hf(kind_or_dir, kind=None, train=True):
    """A float32 transformers model from a folder (a kind's tiny model by default), with the
    loading report checked: nothing missing, nothing unexpected (a missing tensor would be
    randomly initialised without an error)."""
    import torch

    path = model_dir(kind_or_dir) if kind is None else Path(kind_or_dir)
    kind = kind or kind_or_dir
    model, info = model_class(kind).from_pretrained(path, dtype=torch.float32, attn_implementation="eager",
                                                    output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], (path, info)
    return model.train() if train else model.eval()


@lru_cache(maxsize=None)
def tokenizer(kind):
    """The model's tokenizer.json as it is, with the special tokens of tokenizer_config.json.
    (AutoTokenizer would give Qwen2Tokenizer for qwen2, which in transformers 5.23 replaces the
    file's pre-tokenizer with Qwen2's own and splits digits differently.)"""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(model_dir(kind))


def lora_config(kind, variant="default"):
    from peft import LoraConfig

    kw = dict(r=4, lora_alpha=8, lora_dropout=0.0, init_lora_weights=False,
              task_type="SEQ_2_SEQ_LM" if is_seq2seq(kind) else "CAUSAL_LM")
    if variant == "rslora_mlp":
        kw.update(use_rslora=True, target_modules=LLAMA_LINEAR)
    if variant == "patterns":  # PEFT's per-module ranks and alphas, keys as regular expressions
        kw.update(target_modules=LLAMA_LINEAR, rank_pattern={"v_proj": 2, r"layers\.1\.mlp\.down_proj": 8},
                  alpha_pattern={"v_proj": 32, "o_proj": 2})
    return LoraConfig(**kw)


def lora_args(variant="default"):
    """medgen's LoRA options matching lora_config (the rest comes from --init-adapter)."""
    args = ["--method", "lora", "--lora-r", "4", "--lora-alpha", "8"]
    if variant == "rslora_mlp":
        args += ["--use-rslora", "--target-modules", ",".join(LLAMA_LINEAR)]
    return args


@lru_cache(maxsize=None)
def adapter_dir(kind, variant="default") -> Path:
    """A PEFT LoRA adapter for `kind` saved by save_pretrained, with init_lora_weights=False so
    that B is not zero (scaled by 0.1 to keep the adapted model's activations moderate)."""
    import torch
    from peft import get_peft_model

    def make(path):
        base = load_hf(kind)
        torch.manual_seed(100 + ALL_KINDS.index(kind))
        peft_model = get_peft_model(base, lora_config(kind, variant))
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "lora_B" in name:
                    p.mul_(0.1)
        peft_model.save_pretrained(path)

    return cached(CACHE / "adapters" / f"{kind}-{variant}", make, MADE)


def load_peft(kind, adapter, trainable=True):
    from peft import PeftModel

    model = PeftModel.from_pretrained(load_hf(kind), adapter, is_trainable=trainable)
    return model.train() if trainable else model.eval()


def peft_saved_key(param_name):
    """PEFT's key in adapter_model.safetensors for a parameter of the default adapter."""
    return param_name.replace(".default.", ".")


# ---------------------------------------------------------------------------------------------
# Data, tokenisation and batches as the contract defines them


def split_sentence(s):
    """A sentence cut about in half at a space (at the middle for text without spaces)."""
    cut = len(s) // 2
    if " " in s[:cut]:
        cut = s.rfind(" ", 0, cut)
    return {"input": s[:cut], "target": s[cut:]}


# Eight examples of different lengths, with non-ASCII text (µ, ≥, Chinese).
EXAMPLES = [split_sentence(CLINICAL_SENTENCES[i]) for i in [0, 1, 2, 3, 4, 5, 7, 8]]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def encode(kind, ex, max_source=512, max_target=128):
    """(model input ids, labels) of one example, computed from the tokenizer independently.

    The target is cut as transformers' tokenizers cut with truncation=True when their
    post-processor appends EOS: the text's ids to max_target - 1, then EOS, so that a truncated
    target still ends in EOS (checked in transformers 5.23: a T5-style "$A </s>" template with
    max_length=5 gives 4 ids and </s>)."""
    tok = tokenizer(kind)
    eos = tok.eos_token_id
    source = tok(ex["input"], add_special_tokens=True).input_ids[:max_source]
    if is_seq2seq(kind):
        content = tok(ex["target"], add_special_tokens=True).input_ids
        if content and content[-1] == eos:
            content = content[:-1]
    else:
        content = tok(ex["target"], add_special_tokens=False).input_ids
    target = content[:max_target - 1] + [eos]
    if is_seq2seq(kind):
        return source, target
    return source + target, [-100] * len(source) + target


def pad_id(kind):
    tok = tokenizer(kind)
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def collate(kind, examples, max_source=512, max_target=128):
    """Right-padded int64 tensors of a batch: input_ids, attention_mask, labels and, for
    encoder-decoder models, decoder_input_ids (labels shifted right as transformers does)."""
    import torch

    pairs = [encode(kind, ex, max_source, max_target) for ex in examples]
    pad = pad_id(kind)

    def right_pad(rows, value):
        width = max(map(len, rows))
        return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.int64)

    ids = right_pad([p[0] for p in pairs], pad)
    mask = right_pad([[1] * len(p[0]) for p in pairs], 0)
    labels = right_pad([p[1] for p in pairs], -100)
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if is_seq2seq(kind):
        batch["decoder_input_ids"] = shift_right(kind, labels)
    return batch


def shift_right(kind, labels):
    """decoder_input_ids from labels: written out here and checked against transformers' own."""
    import torch

    cfg = json.loads((model_dir(kind) / "config.json").read_text())
    out = torch.full_like(labels, cfg["pad_token_id"])
    out[:, 1:] = labels[:, :-1]
    out[:, 0] = cfg["decoder_start_token_id"]
    return out.masked_fill(out == -100, cfg["pad_token_id"])


def loss_sum_and_items(model, kind, batch):
    """(sum of the label tokens' cross-entropies, number of label tokens) for one micro-batch."""
    import torch
    import torch.nn.functional as F

    if is_seq2seq(kind):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       decoder_input_ids=batch["decoder_input_ids"]).logits
        labels = batch["labels"]
    else:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        labels = batch["labels"][:, 1:]
    # float32 at least, as transformers' ForCausalLMLoss upcasts; float64 kept for the exact reference.
    logits = logits if logits.dtype == torch.float64 else logits.float()
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
                           reduction="sum")
    return loss, int((labels != -100).sum())


def reference_loss_and_grads(model, kind, batch):
    """Loss (sum / label tokens) of one batch and the gradients of the trainable parameters."""
    loss, items = loss_sum_and_items(model, kind, batch)
    (loss / items).backward()
    grads = {n: p.grad.numpy().copy() for n, p in model.named_parameters() if p.requires_grad}
    return float(loss.detach()) / items, grads


# ---------------------------------------------------------------------------------------------
# The reference training loop


def decay_names(model):
    """transformers' rule for which parameters get weight decay (Trainer.get_decay_parameter_names
    uses no Trainer state, so it is called unbound)."""
    from transformers import Trainer

    return set(Trainer.get_decay_parameter_names(None, model))


def reference_train(model, kind, examples, *, steps, batch_size, accumulation, lr, warmup, weight_decay,
                    max_grad_norm):
    """Trains `model` (its trainable parameters) in place as the contract says and returns one
    record per optimizer step: loss, grad_norm (before clipping) and the lr the step used.
    Micro-batches are consecutive examples in file order; an optimizer step takes
    `accumulation` of them (the last of an epoch may take fewer, as transformers' Trainer does)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = decay_names(model)
    groups = [
        {"params": [p for n, p in named if n in decay], "weight_decay": weight_decay},
        {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    sched = get_linear_schedule_with_warmup(opt, warmup, steps)
    micro = [collate(kind, examples[i:i + batch_size]) for i in range(0, len(examples), batch_size)]
    # Optimizer steps of each epoch: groups of `accumulation` micro-batches (the last may be short).
    epoch_steps = [micro[i:i + accumulation] for i in range(0, len(micro), accumulation)]
    records = []
    while len(records) < steps:
        for group in epoch_steps:
            if len(records) == steps:
                break
            opt.zero_grad(set_to_none=True)
            items = sum(_label_items(kind, b) for b in group)
            total = 0.0
            for b in group:
                loss, _ = loss_sum_and_items(model, kind, b)
                (loss / items).backward()
                total += float(loss.detach())
            norm = float(torch.nn.utils.clip_grad_norm_([p for _, p in named], max_grad_norm))
            lr_used = opt.param_groups[0]["lr"]
            opt.step()
            sched.step()
            records.append({"loss": total / items, "grad_norm": norm, "lr": lr_used})
    return records


def _label_items(kind, batch):
    labels = batch["labels"] if is_seq2seq(kind) else batch["labels"][:, 1:]
    return int((labels != -100).sum())


TRAIN_OPTS = ["--no-shuffle", "--batch-size", "2", "--gradient-accumulation-steps", "2", "--warmup-steps", "3",
              "--lr", "1e-3", "--max-grad-norm", "0.5", "--weight-decay", "0.01", "--max-steps", "10"]
TRAIN_KW = dict(steps=10, batch_size=2, accumulation=2, lr=1e-3, warmup=3, weight_decay=0.01, max_grad_norm=0.5)


# ---------------------------------------------------------------------------------------------
# Comparison helpers


def rel_err(ours, ref):
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    denom = np.linalg.norm(ref)
    return float(np.linalg.norm(ours - ref) / denom) if denom > 0 else float(np.linalg.norm(ours))


def assert_tensors_close(ours: dict, ref: dict, tol, what, tiny_tol=None, ref32=None, bounds=None, floor=1e-7):
    """Every reference tensor present in `ours` with the same shape and within `tol` relative to
    the reference's norm (`tiny_tol` for tensors whose norm is under 1% of the largest one's).

    With `ref32`, `ref` is the computation in float64 and `ref32` the same in float32: a tensor
    may then also differ by 4 times transformers' own float32 error (some gradients of attention
    layers are ill-conditioned: float32 gets them only to ~1e-5 whoever computes them) or by
    `floor` times the largest norm (the rounding of large terms that cancel in a small tensor; a
    gradient that is zero in exact arithmetic, such as an attention key bias's, is all rounding).
    `bounds`: name -> an absolute difference always allowed. The worst offenders are listed
    with their numbers on failure."""
    missing = sorted(set(ref) - set(ours))
    extra = sorted(set(ours) - set(ref))
    assert not missing and not extra, f"{what}: missing {missing[:10]}, unexpected {extra[:10]}"
    largest = max(float(np.linalg.norm(np.asarray(v, dtype=np.float64))) for v in ref.values())
    bad = []
    for name, r in ref.items():
        o = np.asarray(ours[name], dtype=np.float64)
        r = np.asarray(r, dtype=np.float64)
        assert o.shape == r.shape, f"{what} {name}: shape {o.shape} != reference {r.shape}"
        ref_norm = float(np.linalg.norm(r))
        limit = tiny_tol if tiny_tol is not None and ref_norm < 0.01 * largest else tol
        allowed = limit * ref_norm
        hf32 = float("nan")
        if ref32 is not None:
            hf32 = float(np.linalg.norm(np.asarray(ref32[name], dtype=np.float64) - r))
            allowed = max(allowed, 4 * hf32, floor * largest)
        allowed = max(allowed, (bounds or {}).get(name, 0.0))
        diff = float(np.linalg.norm(o - r))
        if not diff <= allowed:
            bad.append((diff / max(ref_norm, 1e-30), name, ref_norm, hf32 / max(ref_norm, 1e-30),
                        allowed / max(ref_norm, 1e-30), float(np.abs(o - r).max())))
    bad.sort(reverse=True)
    lines = [f"  {n}: rel {e:.3g} (allowed {a:.3g}; transformers float32: {h:.3g}), |ref| {rn:.4g} "
             f"(largest {largest:.4g}), max abs diff {d:.3g}" for e, n, rn, h, a, d in bad[:12]]
    assert not bad, f"{what}: {len(bad)} of {len(ref)} tensors differ\n" + "\n".join(lines)


def assert_loss_close(ours, ref64, ref32, what):
    allowed = max(1e-5 * abs(ref64), 4 * abs(ref32 - ref64))
    assert abs(ours - ref64) <= allowed, f"{what}: medgen {ours!r}, reference {ref64!r} (float32 {ref32!r})"


def numpy_state(named):
    return {n: p.detach().float().numpy().copy() for n, p in named}


def load_safetensors(path):
    from safetensors.numpy import load_file

    return load_file(str(path))


def scalar(x):
    return float(np.asarray(x).reshape(-1)[0])


def read_log(out_dir):
    return [json.loads(line) for line in (Path(out_dir) / "log.jsonl").read_text().splitlines() if line.strip()]


def assert_refused(proc, *words, any_of=()):
    """A clean refusal: non-zero exit (run_medgen already rules out a panic), not clap's
    unknown-option error, and stderr naming the problem."""
    err = proc.stderr.lower().replace("_", "-")
    assert proc.returncode != 0, f"accepted (exit 0); stdout: {proc.stdout[-500:]}"
    assert "unexpected argument" not in err and "unrecognized subcommand" not in err, proc.stderr
    norm = lambda w: w.lower().replace("_", "-")  # noqa: E731
    for w in words:
        assert norm(w) in err, f"{w!r} not in stderr: {proc.stderr}"
    if any_of:
        assert any(norm(w) in err for w in any_of), f"none of {any_of} in stderr: {proc.stderr}"


# ---------------------------------------------------------------------------------------------
# debug train-batch: tokenisation, loss and gradients of one batch


def train_batch(tmp_path, kind, train_file, *extra):
    out = tmp_path / "batch.safetensors"
    run_medgen("debug", "train-batch", "--model", model_dir(kind), "--train", train_file, "--output", out,
               "--no-chat", "--no-deid", *extra)
    return load_safetensors(out)


def check_dumped_batch(kind, dump, expected):
    """The dumped int64 tensors equal the independent tokenisation, and the reference
    decoder_input_ids equal transformers' own shift of the labels."""
    names = ["input_ids", "attention_mask", "labels"] + (["decoder_input_ids"] if is_seq2seq(kind) else [])
    for name in names:
        assert name in dump, f"{name} missing from the dump: {sorted(k for k in dump if not k.startswith('grad.'))}"
        assert dump[name].dtype == np.int64, (name, dump[name].dtype)
        assert dump[name].tolist() == expected[name].tolist(), (
            f"{name} differs from the tokenizer's\n"
            f"medgen:    {dump[name].tolist()}\nreference: {expected[name].tolist()}")
    if is_seq2seq(kind):
        model = load_hf(kind)
        hf_shift = model.prepare_decoder_input_ids_from_labels(labels=expected["labels"])
        assert hf_shift.tolist() == expected["decoder_input_ids"].tolist()


# Five examples in one batch: different lengths, so padding is exercised.
BATCH_EXAMPLES = EXAMPLES[:4] + [EXAMPLES[7]]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_train_batch_full_loss_and_gradients_match_transformers(tmp_path, kind):
    import torch

    data = write_jsonl(tmp_path / "train.jsonl", BATCH_EXAMPLES)
    dump = train_batch(tmp_path, kind, data, "--method", "full")
    expected = collate(kind, BATCH_EXAMPLES)
    check_dumped_batch(kind, dump, expected)

    # transformers' own loss (it shifts the labels itself, or builds decoder_input_ids from them)
    # is the loss written out here; the gradients are then taken in float64 and float32.
    hf_inputs = {k: torch.from_numpy(dump[k]) for k in ["input_ids", "attention_mask", "labels"]}
    with torch.no_grad():
        hf_loss = float(load_hf(kind)(**hf_inputs).loss)
    loss32, grads32 = reference_loss_and_grads(load_hf(kind), kind, expected)
    assert math.isclose(loss32, hf_loss, rel_tol=1e-6), (loss32, hf_loss)
    loss64, grads64 = reference_loss_and_grads(load_hf(kind).double(), kind, expected)

    assert "loss" in dump
    assert_loss_close(scalar(dump["loss"]), loss64, loss32, f"{kind} loss")
    ours = {k[len("grad."):]: v for k, v in dump.items() if k.startswith("grad.")}
    assert all(v.dtype == np.float32 for v in ours.values())
    # Names as transformers' named_parameters() gives them: tied weights once.
    assert_tensors_close(ours, grads64, GRAD_TOL, f"{kind} full gradients", tiny_tol=TINY_GRAD_TOL, ref32=grads32,
                         floor=GRAD_FLOOR)


LORA_CASES = [(k, "default") for k in ALL_KINDS] + [("llama", "rslora_mlp")]


@pytest.mark.parametrize("kind,variant", LORA_CASES, ids=[f"{k}-{v}" for k, v in LORA_CASES])
def test_train_batch_lora_loss_and_gradients_match_peft(tmp_path, kind, variant):
    import torch

    adapter = adapter_dir(kind, variant)
    data = write_jsonl(tmp_path / "train.jsonl", BATCH_EXAMPLES)
    dump = train_batch(tmp_path, kind, data, *lora_args(variant), "--init-adapter", adapter)
    expected = collate(kind, BATCH_EXAMPLES)
    check_dumped_batch(kind, dump, expected)

    hf_inputs = {k: torch.from_numpy(dump[k]) for k in ["input_ids", "attention_mask", "labels"]}
    with torch.no_grad():
        hf_loss = float(load_peft(kind, adapter)(**hf_inputs).loss)
    loss32, grads32 = reference_loss_and_grads(load_peft(kind, adapter), kind, expected)
    assert math.isclose(loss32, hf_loss, rel_tol=1e-6), (loss32, hf_loss)
    loss64, grads64 = reference_loss_and_grads(load_peft(kind, adapter).double(), kind, expected)
    grads32 = {peft_saved_key(n): g for n, g in grads32.items()}
    grads64 = {peft_saved_key(n): g for n, g in grads64.items()}
    # The keys are those PEFT saves.
    assert set(grads64) == set(load_safetensors(adapter / "adapter_model.safetensors"))

    assert_loss_close(scalar(dump["loss"]), loss64, loss32, f"{kind} {variant} loss")
    ours = {k[len("grad."):]: v for k, v in dump.items() if k.startswith("grad.")}
    assert_tensors_close(ours, grads64, GRAD_TOL, f"{kind} {variant} LoRA gradients", tiny_tol=TINY_GRAD_TOL,
                         ref32=grads32, floor=GRAD_FLOOR)


@pytest.mark.parametrize("kind", ["llama", "t5_relu"])
def test_train_batch_truncates_source_and_target_to_their_max_lengths(tmp_path, kind):
    """Source: its first N ids. Target: its first M - 1 ids and EOS (see encode)."""
    long = {"input": " ".join(CLINICAL_SENTENCES[:2]), "target": " ".join(CLINICAL_SENTENCES[2:4])}
    short = {"input": "No fever.", "target": " mg"}
    data = write_jsonl(tmp_path / "train.jsonl", [long, short])
    dump = train_batch(tmp_path, kind, data, "--method", "full", "--max-source-length", "7",
                       "--max-target-length", "5")
    expected = collate(kind, [long, short], max_source=7, max_target=5)
    tok = tokenizer(kind)
    # The long example is cut on both sides, the short one on neither.
    assert len(tok(long["input"]).input_ids) > 7 and len(tok(long["target"]).input_ids) > 5
    assert len(tok(short["input"]).input_ids) < 7 and len(tok(short["target"]).input_ids) + 1 < 5
    check_dumped_batch(kind, dump, expected)


@pytest.mark.parametrize("kind", ["llama", "bart"])
def test_csv_columns_give_the_same_batch_as_json_lines(tmp_path, kind):
    rows = BATCH_EXAMPLES[:3] + [{"input": 'Note, with "quotes",\nand a new line', "target": " Follow up, 2 weeks."}]
    path = tmp_path / "train.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "note", "summary"])
        for i, r in enumerate(rows):
            w.writerow([i, r["input"], r["target"]])
    dump = train_batch(tmp_path, kind, path, "--method", "full", "--input-column", "note",
                       "--target-column", "summary")
    check_dumped_batch(kind, dump, collate(kind, rows))


# ---------------------------------------------------------------------------------------------
# finetune: full fine-tuning and LoRA against the plain PyTorch loop


def finetune(tmp_path, kind, *extra, name="out", data=None):
    data = data or write_jsonl(tmp_path / "train.jsonl", EXAMPLES)
    out = tmp_path / name
    summary = medgen_json("finetune", "--model", model_dir(kind), "--train", data, "--output", out,
                          "--no-chat", "--no-deid", "--json", *extra)
    return out, summary


def check_log_and_summary(out, summary, records):
    """log.jsonl's training entries against the reference steps: grad_norm before clipping; loss
    the mean of the steps' losses since the previous entry (the step's own loss when every step
    is logged); lr the one the step used (0 for the first step of a warm-up), as transformers
    5.23's Trainer logs it. The summary's train_loss is the mean step loss, as the Trainer's is."""
    assert summary["steps"] == len(records), summary
    assert Path(summary["output"]).resolve() == Path(out).resolve(), summary
    assert math.isclose(summary["train_loss"], float(np.mean([r["loss"] for r in records])), rel_tol=1e-4), (
        summary["train_loss"], [r["loss"] for r in records])
    entries = [e for e in read_log(out) if "loss" in e]
    assert entries, "no training entry in log.jsonl"
    previous = 0
    for e in entries:
        assert {"step", "epoch", "loss", "learning_rate", "grad_norm"} <= set(e), e
        step = e["step"]
        assert previous < step <= len(records), (previous, e)
        r = records[step - 1]
        mean_loss = float(np.mean([x["loss"] for x in records[previous:step]]))
        assert math.isclose(e["loss"], mean_loss, rel_tol=1e-4), (e, mean_loss)
        assert math.isclose(e["grad_norm"], r["grad_norm"], rel_tol=1e-4), (e, r)
        assert math.isclose(e["learning_rate"], r["lr"], rel_tol=1e-6, abs_tol=1e-12), (e, r)
        previous = step


# Trained parameters are compared with the float64 run of the reference loop: the weights at
# 1e-5 relative per tensor (the updates, weights minus initial ones, at 1e-3), or 4 times as far
# as the same loop in float32 is. Adam's normalisation (m / (sqrt(v) + eps)) turns float32 noise
# in a gradient that is zero in exact arithmetic (BART's attention key biases: softmax ignores a
# shift shared by all keys) into lr-sized steps in any direction; such a tensor, which the float64
# run leaves where it was, may move as far as Adam's steps go (3 lr per step and element).
PARAM_TOL = 1e-5
UPDATE_TOL = 1e-3


def assert_trained_close(ours, ref64, ref32, initial, records, what):
    lr_sum = sum(r["lr"] for r in records)
    bounds = {n: 3 * lr_sum * math.sqrt(v.size) for n, v in ref64.items()
              if np.linalg.norm(ref64[n] - initial[n]) <= 1e-9 * max(1.0, float(np.linalg.norm(initial[n])))}
    assert_tensors_close(ours, ref64, PARAM_TOL, f"{what} weights", ref32=ref32, bounds=bounds)
    delta = lambda w: {n: np.asarray(w[n], np.float64) - initial[n] for n in ref64 if n in w}  # noqa: E731
    assert_tensors_close(delta(ours), delta(ref64), UPDATE_TOL, f"{what} updates (trained minus initial weights)",
                         ref32=delta(ref32), bounds=bounds)


def reference_runs(make_model, kind, state):
    """The reference loop in float64 and in float32 from the same start: (initial weights, float64
    weights, float32 weights, float64 step records), weights as `state(model)` gives them."""
    model64 = make_model().double()
    initial = state(model64)
    records = reference_train(model64, kind, EXAMPLES, **TRAIN_KW)
    model32 = make_model()
    reference_train(model32, kind, EXAMPLES, **TRAIN_KW)
    return initial, state(model64), state(model32), records


def full_state(model):
    return {n: p.detach().double().numpy().copy() for n, p in model.named_parameters()}


def lora_state(model):
    from peft import get_peft_model_state_dict

    return {n: v.detach().double().numpy().copy() for n, v in get_peft_model_state_dict(model).items()}


FULL_KINDS = ["gpt2", "qwen2", "llama", "t5_relu", "t5_gated", "bart"]


@pytest.mark.parametrize("kind", FULL_KINDS)
def test_full_finetune_matches_a_plain_pytorch_loop(tmp_path, kind):
    out, summary = finetune(tmp_path, kind, "--method", "full", *TRAIN_OPTS)
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json",
              "log.jsonl", "run.json"]:
        assert (out / f).exists(), f"{f} missing from {sorted(p.name for p in out.iterdir())}"
    # Loads in transformers with every tensor present; tied weights stay tied.
    trained = load_hf(out, kind)
    assert trained.config.tie_word_embeddings == load_hf(kind).config.tie_word_embeddings

    initial, ref64, ref32, records = reference_runs(lambda: load_hf(kind), kind, full_state)
    assert_trained_close(full_state(trained), ref64, ref32, initial, records, f"{kind} full")
    check_log_and_summary(out, summary, records)

    run = json.loads((out / "run.json").read_text())
    data_sha = hashlib.sha256((tmp_path / "train.jsonl").read_bytes()).hexdigest()
    assert data_sha in json.dumps(run), "run.json does not record the training data's sha256"


LORA_TRAIN_KINDS = ["gpt2", "qwen2", "llama", "t5_relu", "t5_gated", "bart"]


@pytest.mark.parametrize("kind", LORA_TRAIN_KINDS)
def test_lora_finetune_matches_peft_with_a_plain_pytorch_loop(tmp_path, kind):
    from peft import get_peft_model_state_dict

    adapter = adapter_dir(kind)
    out, summary = finetune(tmp_path, kind, *lora_args(), "--lora-dropout", "0", "--init-adapter", adapter,
                            *TRAIN_OPTS)
    for f in ["adapter_config.json", "adapter_model.safetensors", "log.jsonl", "run.json"]:
        assert (out / f).exists(), f"{f} missing from {sorted(p.name for p in out.iterdir())}"
    ours = load_safetensors(out / "adapter_model.safetensors")

    initial, ref64, ref32, records = reference_runs(lambda: load_peft(kind, adapter), kind, lora_state)
    assert_trained_close(ours, ref64, ref32, initial, records, f"{kind} LoRA")
    check_log_and_summary(out, summary, records)

    # PEFT loads medgen's adapter as it is, with the same configuration.
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8 and config.get("peft_type") == "LORA", config
    base_targets = json.loads((adapter / "adapter_config.json").read_text())["target_modules"]
    assert set(config["target_modules"]) == set(base_targets), (config["target_modules"], base_targets)
    loaded = load_peft(kind, out, trainable=False)
    assert_tensors_close({n: v.numpy() for n, v in get_peft_model_state_dict(loaded).items()}, ours, 0.0,
                         "adapter as PEFT loads it")


def test_warmup_ratio_is_the_ceiling_of_its_share_of_the_steps(tmp_path):
    """--warmup-ratio 0.25 of 10 steps: 3 warm-up steps, as transformers 5.23 rounds a fractional
    warm-up (TrainingArguments.get_warmup_steps: ceil(total * ratio))."""
    import torch
    from transformers import TrainingArguments, get_linear_schedule_with_warmup

    warmup = TrainingArguments(output_dir=str(tmp_path / "unused"), warmup_steps=0.25).get_warmup_steps(10)
    assert warmup == 3
    opts = ["--method", "lora", "--lora-dropout", "0", "--no-shuffle", "--batch-size", "4", "--lr", "1e-2",
            "--max-steps", "10"]
    data = write_jsonl(tmp_path / "train.jsonl", EXAMPLES)
    ratio_out, _ = finetune(tmp_path, "llama", *opts, "--warmup-ratio", "0.25", name="ratio", data=data)
    steps_out, _ = finetune(tmp_path, "llama", *opts, "--warmup-steps", str(warmup), name="steps", data=data)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-2)
    sched = get_linear_schedule_with_warmup(opt, warmup, 10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    for e in read_log(ratio_out):
        if "loss" in e:
            assert math.isclose(e["learning_rate"], lrs[e["step"] - 1], rel_tol=1e-6, abs_tol=1e-12), (e, lrs)
    a = load_safetensors(ratio_out / "adapter_model.safetensors")
    b = load_safetensors(steps_out / "adapter_model.safetensors")
    assert max(rel_err(a[k], b[k]) for k in b) <= 1e-6


# ---------------------------------------------------------------------------------------------
# Resuming


RESUME_OPTS = ["--method", "lora", "--lora-r", "4", "--lora-alpha", "8", "--lora-dropout", "0.1", "--seed", "7",
               "--batch-size", "2", "--gradient-accumulation-steps", "2", "--warmup-steps", "3", "--lr", "1e-3",
               "--max-steps", "10"]


@pytest.mark.parametrize("stop", [5, 6], ids=["mid-epoch", "epoch-end"])
def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(tmp_path, stop):
    """Shuffling on and LoRA dropout 0.1, so the data order and the dropout masks after the
    restart must come from the saved random state; 2 optimizer steps per epoch, so step 5 stops
    in the middle of an epoch and step 6 at its end."""
    data = write_jsonl(tmp_path / "train.jsonl", EXAMPLES)
    a_out, a = finetune(tmp_path, "llama", *RESUME_OPTS, name="a", data=data)
    b_out, b_stop = finetune(tmp_path, "llama", *RESUME_OPTS, "--stop-after", str(stop), name="b", data=data)
    assert b_stop["steps"] == stop, b_stop
    b_out, b = finetune(tmp_path, "llama", *RESUME_OPTS, "--resume", name="b", data=data)
    assert b["steps"] == a["steps"] == 10, (a, b)

    wa = load_safetensors(a_out / "adapter_model.safetensors")
    wb = load_safetensors(b_out / "adapter_model.safetensors")
    assert set(wa) == set(wb)
    worst = max(rel_err(wb[k], wa[k]) for k in wa)
    assert worst <= 1e-6, f"resumed weights differ from the uninterrupted run's by {worst:.3g} relative"
    # The restart appends to the log without repeating steps. (Its losses are not compared: an
    # entry's loss is the mean since the previous entry, and a resumed run, like transformers'
    # Trainer, starts that mean afresh at the restart.)
    steps = [e["step"] for e in read_log(b_out) if "loss" in e]
    assert steps == sorted(set(steps)), f"steps logged twice or out of order: {steps}"


# ---------------------------------------------------------------------------------------------
# Merging, and adapters at inference


MERGE_CASES = [("gpt2", "default"), ("qwen2", "default"), ("llama", "rslora_mlp"), ("t5_relu", "default"),
               ("bart", "default"), ("llama", "patterns")]


@pytest.mark.parametrize("kind,variant", MERGE_CASES, ids=[f"{k}-{v}" for k, v in MERGE_CASES])
def test_merge_equals_peft_merge_and_unload(tmp_path, kind, variant):
    """GPT-2's c_attn is a Conv1D ([in, out]): PEFT merges B @ A transposed (fan_in_fan_out)."""
    adapter = adapter_dir(kind, variant)
    merged_dir = tmp_path / "merged"
    run_medgen("merge", "--model", model_dir(kind), "--adapter", adapter, "--output", merged_dir)
    assert (merged_dir / "tokenizer.json").exists() and (merged_dir / "config.json").exists()
    ours = load_hf(merged_dir, kind, train=False)
    ref = load_peft(kind, adapter, trainable=False).merge_and_unload()
    assert_tensors_close(numpy_state(ours.named_parameters()), numpy_state(ref.named_parameters()), 1e-5,
                         f"{kind} {variant} merged weights")
    # The merge changed the targeted weights.
    base = numpy_state(load_hf(kind).named_parameters())
    assert any(rel_err(v, base[n]) > 1e-3 for n, v in numpy_state(ref.named_parameters()).items())


def test_merge_of_a_medgen_trained_adapter_equals_peft_merge(tmp_path):
    out, _ = finetune(tmp_path, "llama", "--method", "lora", "--lora-r", "4", "--lora-alpha", "8",
                      "--lora-dropout", "0", "--lr", "1e-2", "--max-steps", "2", "--no-shuffle")
    merged_dir = tmp_path / "merged"
    run_medgen("merge", "--model", model_dir("llama"), "--adapter", out, "--output", merged_dir)
    ours = load_hf(merged_dir, "llama", train=False)
    ref = load_peft("llama", out, trainable=False).merge_and_unload()
    assert_tensors_close(numpy_state(ours.named_parameters()), numpy_state(ref.named_parameters()), 1e-5,
                         "merged weights")


def test_merge_into_a_folder_with_files_is_refused_and_overwrites_nothing(tmp_path):
    base = tmp_path / "base"
    shutil.copytree(model_dir("llama"), base)
    before = (base / "model.safetensors").read_bytes()
    for output in [base, adapter_dir("llama")]:
        proc = run_medgen("merge", "--model", base, "--adapter", adapter_dir("llama"), "--output", output, check=False)
        assert_refused(proc, "output", "not an empty folder")
    assert (base / "model.safetensors").read_bytes() == before


ADAPTER_LOGIT_CASES = [("gpt2", "default"), ("qwen2", "default"), ("llama", "default"),
                       ("llama_untied", "default"), ("llama", "rslora_mlp"), ("llama", "patterns")]


@pytest.mark.parametrize("kind,variant", ADAPTER_LOGIT_CASES, ids=[f"{k}-{v}" for k, v in ADAPTER_LOGIT_CASES])
def test_logits_with_an_adapter_match_peft(tmp_path, kind, variant):
    import torch

    adapter = adapter_dir(kind, variant)
    prompt = CLINICAL_SENTENCES[0]
    out = tmp_path / "logits.npy"
    ids = medgen_json("debug", "logits", "--model", model_dir(kind), "--adapter", adapter, "--prompt", prompt,
                      "--out", out)["prompt_token_ids"]
    assert ids == tokenizer(kind)(prompt).input_ids
    model = load_peft(kind, adapter, trainable=False)
    with torch.no_grad():
        ref = model(input_ids=torch.tensor([ids])).logits[0, -1].numpy()
        plain = load_hf(kind, train=False)(input_ids=torch.tensor([ids])).logits[0, -1].numpy()
    ours = np.load(out)
    assert ours.shape == ref.shape
    assert rel_err(ours, ref) < 1e-4, (
        f"rel {rel_err(ours, ref):.3g}; without the adapter it would be {rel_err(plain, ref):.3g}")
    assert rel_err(plain, ref) > 1e-3, "the adapter changes nothing: the test would not see it ignored"


@pytest.mark.parametrize("sentence", [0, 3])
def test_greedy_generation_with_an_adapter_matches_peft(sentence):
    """llama_untied: the tied tiny models repeat one token whatever the adapter does."""
    import torch

    kind = "llama_untied"
    adapter = adapter_dir(kind)
    prompt = CLINICAL_SENTENCES[sentence][:30]
    out = medgen_json("generate", "--model", model_dir(kind), "--adapter", adapter, "--prompt", prompt,
                      "--greedy", "--max-new-tokens", "10", "--min-new-tokens", "10", "--json")
    assert out["prompt_token_ids"] == tokenizer(kind)(prompt).input_ids
    ids = torch.tensor([out["prompt_token_ids"]])
    kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=10,
              min_new_tokens=10, pad_token_id=pad_id(kind))
    with torch.no_grad():
        ref = load_peft(kind, adapter, trainable=False).generate(**kw)[0, ids.shape[1]:].tolist()
        plain = load_hf(kind, train=False).generate(**kw)[0, ids.shape[1]:].tolist()
    assert ref != plain, "the adapter does not change greedy tokens here: the test would not see it ignored"
    assert out["token_ids"] == ref, f"medgen {out['token_ids']}, PEFT {ref}, without the adapter {plain}"


def test_training_text_is_deidentified_unless_no_deid(tmp_path):
    phi = ["John Smith", "4829301", "03/14/2021", "03/20/2021"]
    example = {"input": "Patient John Smith, MRN 4829301, seen on 03/14/2021.",
               "target": " John Smith was discharged on 03/20/2021."}
    data = write_jsonl(tmp_path / "train.jsonl", [example])
    out = tmp_path / "deid.safetensors"
    run_medgen("debug", "train-batch", "--model", model_dir("llama"), "--train", data, "--output", out, "--no-chat",
               "--method", "full")
    dump = load_safetensors(out)
    text = tokenizer("llama").decode(dump["input_ids"][0][dump["attention_mask"][0] == 1])
    assert "Patient" in text and "MRN" in text and "discharged" in text, text
    assert not [p for p in phi if p in text], text
    raw = train_batch(tmp_path, "llama", data, "--method", "full")  # --no-deid
    assert raw["input_ids"].tolist() == collate("llama", [example])["input_ids"].tolist()


# ---------------------------------------------------------------------------------------------
# A small run end to end


def synthetic_pairs():
    drugs = ["aspirin", "atorvastatin", "ceftriaxone", "azithromycin"]
    doses = [1, 2, 4, 5, 8, 10, 20, 40, 81, 500]
    return [{"input": f"Started {d} {n} mg orally.", "target": f" {d} {n} mg daily"} for d in drugs for n in doses]


def test_small_run_lowers_the_validation_loss(tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", synthetic_pairs())
    out, summary = finetune(tmp_path, "llama", "--method", "full", "--validation-split", "0.2", "--epochs", "6",
                            "--batch-size", "4", "--lr", "1e-3", "--eval-steps", "4", "--warmup-steps", "2",
                            data=data)
    # 32 training examples, 4 a batch, 6 epochs. The same run in PyTorch (any split and order)
    # takes the validation loss from about 5.6 at step 4 to about 3.65 at step 48.
    assert summary["steps"] == 48, summary
    evals = [e for e in read_log(out) if "eval_loss" in e]
    assert len(evals) >= 2, read_log(out)
    assert all("eval_rougeL" in e and 0 <= e["eval_rougeL"] <= 1 for e in evals), evals
    first, last = evals[0]["eval_loss"], evals[-1]["eval_loss"]
    assert last < 0.8 * first, f"validation loss {first:.4f} -> {last:.4f}: {[e['eval_loss'] for e in evals]}"
    assert all(math.isfinite(e["loss"]) for e in read_log(out) if "loss" in e)
    assert load_hf(out, "llama") is not None


# ---------------------------------------------------------------------------------------------
# Bad input


def refuse(tmp_path, *args, rows=None, data=None, kind="llama"):
    data = data or write_jsonl(tmp_path / "train.jsonl", EXAMPLES if rows is None else rows)
    steps = [] if "--max-steps" in args else ["--max-steps", "1"]
    return run_medgen("finetune", "--model", model_dir(kind), "--train", data, "--output", tmp_path / "out",
                      "--no-chat", "--no-deid", *steps, *args, check=False)


@pytest.mark.parametrize("missing", ["train", "validation"])
def test_a_data_file_that_does_not_exist_is_refused_and_leaves_no_output_folder(tmp_path, missing):
    absent = tmp_path / "absent.jsonl"
    proc = refuse(tmp_path, data=absent) if missing == "train" else refuse(tmp_path, "--validation", absent)
    assert_refused(proc, "absent.jsonl")
    assert not (tmp_path / "out").exists()


def test_empty_training_file_is_refused(tmp_path):
    data = tmp_path / "empty.jsonl"
    data.write_text("")
    assert_refused(refuse(tmp_path, data=data), any_of=["empty", "no example", "no training example"])


def test_malformed_json_line_is_refused_naming_file_and_line(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps(EXAMPLES[0]) + "\n" + json.dumps(EXAMPLES[1]) + "\n" + '{"input": "x", "target": \n')
    assert_refused(refuse(tmp_path, data=data), "bad.jsonl", any_of=["line 3", "bad.jsonl:3"])


def test_example_without_target_is_refused(tmp_path):
    assert_refused(refuse(tmp_path, rows=[EXAMPLES[0], {"input": "No fever."}]), "target")


def test_empty_target_is_refused(tmp_path):
    assert_refused(refuse(tmp_path, rows=[EXAMPLES[0], {"input": "No fever.", "target": ""}]), "target")


def test_missing_csv_column_is_refused(tmp_path):
    data = tmp_path / "train.csv"
    data.write_text("note,summary\nNo fever.,Home.\n")
    assert_refused(refuse(tmp_path, "--input-column", "note", "--target-column", "report", data=data), "report")


@pytest.mark.parametrize("lr", ["0", "-1", "nan"])
def test_learning_rate_that_is_not_positive_and_finite_is_refused(tmp_path, lr):
    proc = refuse(tmp_path, "--lr", lr)
    assert_refused(proc)
    assert re.search(r"(?<![a-z])lr(?![a-z])|learning.rate", proc.stderr.lower()), proc.stderr


@pytest.mark.parametrize("option", ["--lora-r", "--lora-alpha"])
def test_zero_lora_rank_or_alpha_is_refused(tmp_path, option):
    assert_refused(refuse(tmp_path, "--method", "lora", option, "0"), option.lstrip("-"))


def test_unknown_target_module_is_refused_listing_the_models_modules(tmp_path):
    proc = refuse(tmp_path, "--method", "lora", "--target-modules", "nonexistent")
    assert_refused(proc, "nonexistent", "q_proj")


@pytest.mark.parametrize("option", ["--max-source-length", "--batch-size"])
def test_zero_length_or_batch_size_is_refused(tmp_path, option):
    assert_refused(refuse(tmp_path, option, "0"), option.lstrip("-"))


@pytest.mark.parametrize("option", ["--logging-steps", "--save-steps", "--eval-steps"])
def test_a_zero_step_interval_is_refused_naming_its_option(tmp_path, option):
    proc = refuse(tmp_path, "--validation-split", "0.25", option, "0")
    assert_refused(proc, option.lstrip("-").replace("-", "_"))
    assert not (tmp_path / "out").exists()


def test_evaluation_drafts_past_the_context_are_refused_before_training(tmp_path):
    """GPT-2's learned positions end at n_positions (64 here): a validation prompt plus
    eval_max_new_tokens past them is refused before any step, not at the first evaluation."""
    val = write_jsonl(tmp_path / "val.jsonl", [{"input": "Fever and cough for three days. " * 6, "target": "Pneumonia."}])
    proc = refuse(tmp_path, "--validation", val, "--eval-max-new-tokens", "32", kind="gpt2")
    assert_refused(proc, "eval_max_new_tokens", "validation example 1")
    assert not (tmp_path / "out" / "log.jsonl").exists(), "the run trained before refusing"


def test_a_training_example_past_gpt2_positions_is_a_context_error(tmp_path):
    rows = [{"input": "Fever and cough for three days. " * 12, "target": "Pneumonia."}]
    proc = refuse(tmp_path, "--max-source-length", "200", "--eval-generate", "0", rows=rows, kind="gpt2")
    assert proc.returncode == 1 and "context" in proc.stderr and "n_positions" in proc.stderr, proc.stderr
    assert "torch error" not in proc.stderr


def test_rouge_as_the_metric_without_generated_drafts_is_refused(tmp_path):
    proc = refuse(tmp_path, "--validation-split", "0.25", "--metric", "rougeL", "--eval-generate", "0")
    assert_refused(proc, "metric", "eval_generate")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["0", "18446744073709551615"])
def test_evaluation_length_out_of_bounds_is_refused_before_training(tmp_path, value):
    proc = refuse(tmp_path, "--validation-split", "0.25", "--eval-max-new-tokens", value)
    assert_refused(proc, "eval_max_new_tokens")
    assert not (tmp_path / "out" / "log.jsonl").exists(), "the run trained before refusing"


@pytest.mark.parametrize("variant,args,word", [
    ("default", ["--lora-r", "8", "--lora-alpha", "8"], "r 4"),  # the adapter's r is 4
    ("default", ["--lora-r", "4", "--lora-alpha", "8", "--use-rslora"], "use_rslora"),
    ("rslora_mlp", ["--lora-r", "4", "--lora-alpha", "8", "--use-rslora"], "no layer"),  # default targets
])
def test_an_init_adapter_unlike_the_runs_options_is_refused_not_retrained_otherwise(tmp_path, variant, args, word):
    """An adapter of other rank, scaling or layers would continue as another adapter, its
    tensors for other layers dropped: refused, naming what differs."""
    proc = refuse(tmp_path, "--method", "lora", *args, "--init-adapter", adapter_dir("llama", variant))
    assert_refused(proc, "init_adapter", word)


def test_non_empty_output_folder_is_refused_without_overwrite_or_resume(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep me")
    assert_refused(refuse(tmp_path), any_of=["--overwrite", "not empty", "exists"])
    assert (tmp_path / "out" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("where", ["base", "inside", "nested", "dotdot"])
def test_an_output_over_the_base_model_is_refused_even_with_overwrite(tmp_path, where):
    import hashlib
    import shutil

    base = tmp_path / "base"
    shutil.copytree(model_dir("llama"), base)
    digest = lambda: hashlib.sha256((base / "model.safetensors").read_bytes()).hexdigest()
    before = digest()
    out = {"base": base, "inside": base / "run", "nested": base / "runs" / "r1", "dotdot": tmp_path / "missing" / ".." / "base"}[where]
    proc = run_medgen("finetune", "--model", base, "--train", write_jsonl(tmp_path / "train.jsonl", EXAMPLES),
                      "--output", out, "--no-chat", "--no-deid", "--max-steps", "1", "--overwrite", check=False)
    assert_refused(proc, "output", "write over what it reads")
    assert digest() == before and not (base / "log.jsonl").exists() and not (base / "run").exists()


def test_resume_from_a_run_on_another_base_model_is_refused(tmp_path):
    finetune(tmp_path, "llama", "--method", "lora", "--max-steps", "2", "--save-steps", "1", "--stop-after", "1")
    proc = refuse(tmp_path, "--method", "lora", "--max-steps", "2", "--resume", kind="qwen2")
    assert_refused(proc, any_of=["sha256", "base model"])


def test_adapter_for_another_base_model_is_refused(tmp_path):
    proc = run_medgen("generate", "--model", model_dir("llama"), "--adapter", adapter_dir("qwen2"), "--prompt", "x",
                      "--max-new-tokens", "2", check=False)
    assert_refused(proc, "adapter", any_of=["base", "shape", "match", "sha256"])


def edited_adapter(tmp_path, **changes):
    """A copy of the llama PEFT adapter with `changes` written into its adapter_config.json."""
    path = tmp_path / "edited-adapter"
    shutil.copytree(adapter_dir("llama"), path)
    config = json.loads((path / "adapter_config.json").read_text())
    (path / "adapter_config.json").write_text(json.dumps({**config, **changes}))
    return path


@pytest.mark.parametrize("command", ["merge", "generate"])
def test_adapter_recording_another_base_is_refused_by_merge_and_load(tmp_path, command):
    adapter = edited_adapter(tmp_path, medgen_base_sha256="0" * 64)
    if command == "merge":
        args = ["merge", "--model", model_dir("llama"), "--adapter", adapter, "--output", tmp_path / "merged"]
    else:
        args = ["generate", "--model", model_dir("llama"), "--adapter", adapter, "--prompt", "x", "--max-new-tokens", "2"]
    assert_refused(run_medgen(*args, check=False), "another base")
    assert not (tmp_path / "merged").exists()


@pytest.mark.parametrize("changes, word", [({"r": 0}, "rank"), ({"r": 2.5}, "rank"), ({"lora_alpha": -1}, "lora_alpha")])
def test_adapter_config_with_impossible_rank_or_alpha_is_refused(tmp_path, changes, word):
    proc = run_medgen("generate", "--model", model_dir("llama"), "--adapter", edited_adapter(tmp_path, **changes),
                      "--prompt", "x", "--max-new-tokens", "2", check=False)
    assert_refused(proc, word)
