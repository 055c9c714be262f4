"""Fine-tuning runs as a whole: chat data, validation and its loss, the best weights and early
stopping, a loss that blows up, checkpoints a crash interrupted, the run's record and curves, and
a small run on the default model that must learn. References: transformers' chat templates and
tokenizers, transformers' loss on the saved model, rouge-score, hashlib.

The tiny models and helpers are test_finetune's."""

import hashlib
import json
import math
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from conftest import CLINICAL_SENTENCES, DEFAULT_DIR, DEFAULT_FILE, medgen_json, run_medgen
from test_finetune import (EXAMPLES, RESUME_OPTS, adapter_dir, assert_refused, collate, finetune, load_hf, load_peft,
                           load_safetensors, loss_sum_and_items, model_dir, read_log, rel_err, tokenizer, write_jsonl)

DEFAULT_MODEL = Path(DEFAULT_DIR) / DEFAULT_FILE


@pytest.fixture(scope="module")
def default_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(DEFAULT_DIR, gguf_file=DEFAULT_FILE)


def dump_batch(tmp_path, rows, *extra, model=DEFAULT_MODEL):
    """`debug train-batch` of `rows` (LoRA, so that the pass is cheap): the batch's tensors."""
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    out = tmp_path / "batch.safetensors"
    run_medgen("debug", "train-batch", "--model", model, "--train", data, "--output", out, "--no-deid",
               "--method", "lora", *extra)
    return load_safetensors(out)


# ---------------------------------------------------------------------------------------------
# Chat data: the model's template, and the loss on the assistant's turns only


def test_an_input_and_target_pair_is_rendered_as_a_user_turn_by_default(tmp_path, default_tokenizer):
    tok = default_tokenizer
    ex = {"input": "Summarise: chest pain at rest, troponin normal.", "target": "Non-cardiac chest pain."}
    dump = dump_batch(tmp_path, [ex])
    prompt = tok.apply_chat_template([{"role": "user", "content": ex["input"]}], tokenize=True,
                                     add_generation_prompt=True, return_dict=False)
    target = tok(ex["target"], add_special_tokens=False).input_ids + [tok.eos_token_id]
    assert dump["input_ids"][0].tolist() == prompt + target
    assert dump["labels"][0].tolist() == [-100] * len(prompt) + target


def test_messages_train_on_the_assistant_turns_only(tmp_path, default_tokenizer):
    tok = default_tokenizer
    messages = [{"role": "system", "content": "You write discharge summaries."},
                {"role": "user", "content": "Patient admitted with pneumonia."},
                {"role": "assistant", "content": "Admitted for pneumonia."},
                {"role": "user", "content": "Treated with ceftriaxone 1 g daily."},
                {"role": "assistant", "content": "Ceftriaxone 1 g daily was given."}]
    dump = dump_batch(tmp_path, [{"messages": messages}])
    ids, labels = dump["input_ids"][0].tolist(), dump["labels"][0].tolist()
    assert ids == tok.apply_chat_template(messages, tokenize=True, return_dict=False)
    labelled = [i for i, label in enumerate(labels) if label != -100]
    assert all(labels[i] == ids[i] for i in labelled)
    # Contiguous runs of labels: one per assistant turn, its text and the turn's end marker.
    runs, start = [], labelled[0]
    for a, b in zip(labelled, labelled[1:] + [None]):
        if b != a + 1:
            runs.append(tok.decode(ids[start:a + 1]))
            start = b
    turns = [m["content"] for m in messages if m["role"] == "assistant"]
    assert len(runs) == len(turns), runs
    for text, turn in zip(runs, turns):
        assert text.startswith(turn) and text[len(turn):].strip() in {"<|im_end|>", ""}, (text, turn)
        assert "<|im_start|>" not in text and "user" not in text, text


def test_messages_for_a_model_without_a_chat_template_are_refused(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}]
    data = write_jsonl(tmp_path / "chat.jsonl", rows)
    proc = run_medgen("finetune", "--model", model_dir("llama"), "--train", data, "--output", tmp_path / "out",
                      "--no-deid", "--max-steps", "1", check=False)
    assert_refused(proc, "chat template")


# ---------------------------------------------------------------------------------------------
# Validation: the loss on a validation file, the best weights, early stopping


def reference_eval_loss(out_dir, examples):
    """transformers' loss over `examples` on the saved model: label tokens' cross-entropy summed
    over the set, divided by their number."""
    import torch

    model = load_hf(out_dir, "llama", train=False)
    with torch.no_grad():
        total, items = 0.0, 0
        for ex in examples:
            loss, n = loss_sum_and_items(model, "llama", collate("llama", [ex]))
            total, items = total + float(loss), items + n
    return total / items


def test_the_validation_file_loss_equals_transformers_on_the_saved_model(tmp_path):
    val = write_jsonl(tmp_path / "val.jsonl", EXAMPLES[5:])
    train = write_jsonl(tmp_path / "train.jsonl", EXAMPLES[:5])
    out, summary = finetune(tmp_path, "llama", "--method", "full", "--max-steps", "3", "--lr", "1e-3",
                            "--validation", val, "--eval-steps", "3", "--batch-size", "2", data=train)
    assert (summary["train_examples"], summary["validation_examples"]) == (5, 3), summary
    evals = [e for e in read_log(out) if "eval_loss" in e]
    assert [e["step"] for e in evals] == [3]
    ref = reference_eval_loss(out, EXAMPLES[5:])
    assert math.isclose(evals[0]["eval_loss"], ref, rel_tol=1e-4), (evals[0]["eval_loss"], ref)
    assert math.isclose(summary["eval_loss"], ref, rel_tol=1e-4)


def test_early_stopping_writes_the_best_evaluated_weights(tmp_path):
    """Training targets that contradict the validation targets, at a high learning rate: the
    validation loss is lowest early, then rises until patience runs out. The model written
    must be the best evaluation's, as transformers' load_best_model_at_end gives."""
    swap = lambda ex, t: {"input": ex["input"], "target": t}  # noqa: E731
    train = write_jsonl(tmp_path / "train.jsonl", [swap(ex, " negative negative negative") for ex in EXAMPLES])
    val_rows = [swap(ex, " positive result") for ex in EXAMPLES[:3]]
    val = write_jsonl(tmp_path / "val.jsonl", val_rows)
    out, summary = finetune(tmp_path, "llama", "--method", "full", "--max-steps", "20", "--lr", "3e-2",
                            "--warmup-steps", "0", "--validation", val, "--eval-steps", "1",
                            "--early-stopping-patience", "2", "--batch-size", "4", data=train)
    evals = [e for e in read_log(out) if "eval_loss" in e]
    losses = [e["eval_loss"] for e in evals]
    best = int(np.argmin(losses))
    assert summary["stopped_early"] and summary["steps"] < 20, (summary, losses)
    assert len(evals) == best + 3, f"patience 2 should stop two evaluations after the best: {losses}"
    assert summary["best_step"] == evals[best]["step"], (summary["best_step"], losses)
    ref = reference_eval_loss(out, val_rows)
    assert math.isclose(ref, losses[best], rel_tol=1e-4), f"written model's loss {ref}, evaluations {losses}"
    assert not math.isclose(ref, losses[-1], rel_tol=1e-3), "the test cannot tell the best from the last"
    record = json.loads((out / "run.json").read_text())
    assert (record["result"]["best_step"], record["result"]["best_by"]) == (summary["best_step"], "loss")


# ---------------------------------------------------------------------------------------------
# A loss that blows up; checkpoints a crash interrupted


def test_a_loss_that_becomes_infinite_stops_the_run_and_keeps_the_last_checkpoint(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", EXAMPLES)
    proc = run_medgen("finetune", "--model", model_dir("llama"), "--train", data, "--output", tmp_path / "out",
                      "--no-chat", "--no-deid", "--method", "full", "--lr", "1e30", "--warmup-steps", "0",
                      "--max-steps", "5", "--save-steps", "1", "--batch-size", "4", check=False)
    assert_refused(proc, "step 2", "checkpoint")
    state = json.loads((tmp_path / "out" / "checkpoint" / "state.json").read_text())
    assert state["state"]["step"] == 1, state
    # The kept checkpoint is one a run can resume from (and whose loss blows up again).
    again = run_medgen("finetune", "--model", model_dir("llama"), "--train", data, "--output", tmp_path / "out",
                       "--no-chat", "--no-deid", "--method", "full", "--lr", "1e30", "--warmup-steps", "0",
                       "--max-steps", "5", "--save-steps", "1", "--batch-size", "4", "--resume", check=False)
    assert_refused(again, "step 2")


def test_a_resume_after_a_crash_between_the_checkpoint_renames_equals_an_uninterrupted_run(tmp_path):
    """A kill after the old checkpoint was moved aside and before the new one took its place
    leaves checkpoint.old and a half-written checkpoint.tmp: --resume takes checkpoint.old."""
    data = write_jsonl(tmp_path / "train.jsonl", EXAMPLES)
    a_out, a = finetune(tmp_path, "llama", *RESUME_OPTS, name="a", data=data)
    b_out, _ = finetune(tmp_path, "llama", *RESUME_OPTS, "--stop-after", "4", name="b", data=data)
    (b_out / "checkpoint").rename(b_out / "checkpoint.old")
    (b_out / "checkpoint.tmp").mkdir()
    (b_out / "checkpoint.tmp" / "params.safetensors").write_bytes(b"\x10\x00\x00")
    b_out, b = finetune(tmp_path, "llama", *RESUME_OPTS, "--resume", name="b", data=data)
    assert b["steps"] == a["steps"] == 10
    wa, wb = (load_safetensors(o / "adapter_model.safetensors") for o in (a_out, b_out))
    assert max(rel_err(wb[k], wa[k]) for k in wa) <= 1e-6
    assert not (b_out / "checkpoint.tmp").exists() and not (b_out / "checkpoint.old").exists()


def test_overwrite_replaces_an_earlier_run(tmp_path):
    out, _ = finetune(tmp_path, "llama", "--method", "lora", "--max-steps", "1")
    (out / "notes.txt").write_text("from before")
    out, summary = finetune(tmp_path, "llama", "--method", "lora", "--max-steps", "2", "--overwrite")
    assert summary["steps"] == 2 and json.loads((out / "run.json").read_text())["result"]["steps"] == 2


# ---------------------------------------------------------------------------------------------
# What a run writes: its record, its curves, its truncation count


def test_the_run_record_names_version_base_data_deidentification_and_result(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", EXAMPLES)
    out = tmp_path / "out"
    summary = medgen_json("finetune", "--model", model_dir("llama"), "--train", data, "--output", out, "--no-chat",
                          "--method", "lora", "--max-steps", "2", "--validation-split", "0.25", "--json")
    record = json.loads((out / "run.json").read_text())
    version = run_medgen("--version").stdout.split()[-1]
    assert record["medgen_version"] == version
    folder = model_dir("llama")
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
    assert record["base_model"]["sha256"] == digest.hexdigest()
    train_file = next(d for d in record["data"] if Path(d["path"]).name == "train.jsonl")
    assert train_file["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert record["deidentified"] is True
    assert record["result"]["steps"] == summary["steps"] == 2
    assert record["result"]["eval_loss"] == summary["eval_loss"] and summary["eval_loss"] > 0
    assert record["options"]["seed"] is not None and record["options"]["lr"] > 0
    assert 0 < record["finished_unix_seconds"] - record["started_unix_seconds"] < 3600
    serialized = json.dumps(record)
    assert not any(ex["input"][:20] in serialized for ex in EXAMPLES), "training text in the run record"


def test_the_curves_plot_every_logged_loss(tmp_path):
    val = write_jsonl(tmp_path / "val.jsonl", EXAMPLES[6:])
    out, _ = finetune(tmp_path, "llama", "--method", "lora", "--max-steps", "6", "--logging-steps", "1",
                      "--validation", val, "--eval-steps", "2", "--batch-size", "2")
    log = read_log(out)
    root = ET.parse(out / "curves.svg").getroot()
    assert root.tag.endswith("svg")
    lines = [el for el in root.iter() if el.tag.endswith("polyline")]
    counts = sorted(len(el.get("points").split()) for el in lines)
    train = sum("loss" in e for e in log)
    evals = sum("eval_loss" in e for e in log)
    assert train == 6 and evals == 3
    assert train in counts and evals in counts, (counts, train, evals)


def test_truncated_examples_are_counted(tmp_path):
    tok = tokenizer("llama")
    source = [len(tok(ex["input"]).input_ids) for ex in EXAMPLES]
    target = [len(tok(ex["target"], add_special_tokens=False).input_ids) + 1 for ex in EXAMPLES]  # and EOS
    limit = sorted(source)[len(source) // 2]  # cuts some sources
    expected = sum(s > limit or t > 64 for s, t in zip(source, target))
    assert 0 < expected < len(EXAMPLES), (source, limit)
    _, summary = finetune(tmp_path, "llama", "--method", "lora", "--max-steps", "1", "--max-source-length",
                          str(limit), "--max-target-length", "64")
    assert summary["truncated_examples"] == expected


# ---------------------------------------------------------------------------------------------
# A small run on the default model: LoRA must lower the validation loss and raise ROUGE-L


DRUGS = [("ceftriaxone", "1 g IV daily"), ("amoxicillin", "500 mg three times daily"),
         ("metoprolol", "25 mg twice daily"), ("furosemide", "40 mg daily"), ("apixaban", "5 mg twice daily"),
         ("insulin glargine", "20 units nightly"), ("prednisone", "40 mg daily"), ("aspirin", "81 mg daily")]
REASONS = ["community-acquired pneumonia", "a heart failure exacerbation", "a COPD flare", "cellulitis of the leg",
           "atrial fibrillation with rapid rate", "a urinary tract infection", "diabetic ketoacidosis",
           "a gout flare"]


def note_pairs(n, seed):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        reason, (drug, dose), days = rng.choice(REASONS), rng.choice(DRUGS), rng.randint(2, 9)
        age, sex = rng.randint(25, 90), rng.choice(["man", "woman"])
        note = (f"{age}-year-old {sex} admitted with {reason}. Treated with {drug} {dose}. "
                f"Improved over {days} days and discharged home.")
        rows.append({"input": f"Write a one-line discharge summary.\n{note}",
                     "target": f"Admitted for {reason}; {drug} {dose}; home after {days} days."})
    return rows


def rouge_l(predictions, references):
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    return float(np.mean([scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)]))


def generations(tmp_path, rows, *extra):
    batch = write_jsonl(tmp_path / "prompts.jsonl", [{"messages": [{"role": "user", "content": r["input"]}]}
                                                     for r in rows])
    out = run_medgen("generate", "--model", DEFAULT_MODEL, "--batch-file", batch, "--greedy",
                     "--max-new-tokens", "40", *extra).stdout
    return [json.loads(line)["text"] for line in out.splitlines() if line.strip()]


@pytest.mark.long
def test_lora_on_the_default_model_lowers_the_validation_loss_and_raises_rouge_l(tmp_path):
    train, val = note_pairs(160, seed=1), note_pairs(40, seed=2)
    train_file, val_file = write_jsonl(tmp_path / "train.jsonl", train), write_jsonl(tmp_path / "val.jsonl", val)
    out = tmp_path / "out"
    summary = medgen_json("finetune", "--model", DEFAULT_MODEL, "--train", train_file, "--validation", val_file,
                          "--output", out, "--no-deid", "--method", "lora", "--lr", "2e-3", "--batch-size", "8",
                          "--max-steps", "24", "--warmup-steps", "2", "--eval-steps", "12", "--eval-generate", "8",
                          "--eval-max-new-tokens", "40", "--threads", "2", "--json")
    assert summary["steps"] == 24, summary
    refs = [r["target"] for r in val[:8]]
    before = rouge_l(generations(tmp_path, val[:8]), refs)
    after = rouge_l(generations(tmp_path, val[:8], "--adapter", out), refs)
    evals = [e for e in read_log(out) if "eval_loss" in e]
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"], evals
    # The adapter written is the best evaluation's; medgen's own ROUGE-L of its generations
    # agrees with rouge-score's of the command's (up to a token that float rounding may flip).
    best = next(e for e in evals if e["step"] == summary["best_step"])
    assert math.isclose(best["eval_rougeL"], after, abs_tol=0.02), (best["eval_rougeL"], after)
    assert after > before + 0.2, f"ROUGE-L {before:.3f} before training, {after:.3f} after"



# ---------------------------------------------------------------------------------------------
# Resuming full fine-tuning; LoRA's initial adapter


def test_a_resumed_full_fine_tune_ends_with_the_same_weights_as_an_uninterrupted_one(tmp_path):
    opts = ["--method", "full", "--seed", "7", "--batch-size", "2", "--gradient-accumulation-steps", "2",
            "--warmup-steps", "3", "--lr", "1e-3", "--max-steps", "8"]
    data = write_jsonl(tmp_path / "train.jsonl", EXAMPLES)
    a_out, a = finetune(tmp_path, "t5_relu", *opts, name="a", data=data)
    finetune(tmp_path, "t5_relu", *opts, "--stop-after", "3", name="b", data=data)
    b_out, b = finetune(tmp_path, "t5_relu", *opts, "--resume", name="b", data=data)
    assert a["steps"] == b["steps"] == 8
    wa, wb = (load_safetensors(o / "model.safetensors") for o in (a_out, b_out))
    assert set(wa) == set(wb) and max(rel_err(wb[k], wa[k]) for k in wa) <= 1e-6


def test_lora_starts_as_peft_initialises_it(tmp_path):
    """A Kaiming-uniform (a = sqrt 5: bound 1/sqrt(fan_in)) and B zero, as PEFT's LoraLayer; one
    step at lr 1e-12 leaves them where they started."""
    import torch
    from peft import LoraConfig, get_peft_model

    out, _ = finetune(tmp_path, "llama", "--method", "lora", "--lora-r", "8", "--max-steps", "1", "--lr", "1e-12",
                      "--warmup-steps", "0")
    ours = load_safetensors(out / "adapter_model.safetensors")
    torch.manual_seed(0)
    peft = get_peft_model(load_hf("llama"), LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    ref = {n: p.detach().numpy() for n, p in peft.named_parameters() if "lora_" in n}
    assert len(ours) == len(ref) and any("lora_A" in n for n in ours)
    for name, w in ours.items():
        if "lora_B" in name:
            assert np.abs(w).max() < 1e-9, name
            continue
        bound = 1 / math.sqrt(w.shape[1])
        peft_a = next(v for n, v in ref.items() if "lora_A" in n and v.shape == w.shape)
        for a in (w, peft_a):  # both fill [-bound, bound] uniformly
            assert np.abs(a).max() <= bound * (1 + 1e-6) and np.abs(a).max() > 0.9 * bound, name
            assert abs(a.std() - bound / math.sqrt(3)) < 0.1 * bound / math.sqrt(3), name


@pytest.mark.parametrize("kind", ["t5_relu", "t5_gated", "bart"])
def test_encoder_decoder_logits_with_an_adapter_match_peft(tmp_path, kind):
    """The decoder-only families are compared in test_finetune; here T5 and BART: medgen's
    greedy steps with the adapter, then the same decoder inputs through PEFT."""
    import torch

    ids = tokenizer(kind)(CLINICAL_SENTENCES[0]).input_ids
    out = medgen_json("debug", "seq2seq", model_dir(kind), "--ids", json.dumps([ids]), "--max-new-tokens", "6",
                      "--adapter", adapter_dir(kind), "--out", tmp_path)
    ours = np.load(tmp_path / "full_logits.npy")[0]
    decoder = [load_hf(kind).config.decoder_start_token_id] + out["generated"][0][:len(ours) - 1]
    kw = dict(input_ids=torch.tensor([ids]), decoder_input_ids=torch.tensor([decoder]))
    with torch.no_grad():
        ref = load_peft(kind, adapter_dir(kind), trainable=False)(**kw).logits[0].numpy()
        plain = load_hf(kind, train=False)(**kw).logits[0].numpy()
    assert rel_err(ours, ref) < 1e-4, f"rel {rel_err(ours, ref):.3g}; without the adapter {rel_err(plain, ref):.3g}"
    assert rel_err(plain, ref) > 1e-3, "the adapter changes nothing: the test would not see it ignored"


def test_ctrl_c_stops_the_command_with_a_checkpoint_that_resumes(tmp_path):
    import signal
    import subprocess
    import time

    from conftest import MEDGEN

    data = write_jsonl(tmp_path / "train.jsonl", EXAMPLES)
    out = tmp_path / "out"
    args = [str(MEDGEN), "finetune", "--model", str(model_dir("llama")), "--train", str(data), "--output", str(out),
            "--no-chat", "--no-deid", "--method", "lora", "--max-steps", "100000", "--logging-steps", "1"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "log.jsonl").exists():
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "interrupted" in err and "panicked" not in err, err
    state = json.loads((out / "checkpoint" / "state.json").read_text())["state"]
    logged = max(e["step"] for e in read_log(out) if "loss" in e)
    assert 0 < logged <= state["step"] < 100000, (logged, state["step"])
    resumed = medgen_json(*args[1:], "--resume", "--stop-after", str(state["step"] + 1), "--json")
    assert resumed["steps"] == state["step"] + 1


def test_the_command_shows_progress_with_step_epoch_loss_rate_speed_and_time_left(tmp_path):
    import re

    data = write_jsonl(tmp_path / "train.jsonl", EXAMPLES)
    err = run_medgen("finetune", "--model", model_dir("llama"), "--train", data, "--output", tmp_path / "out",
                     "--no-chat", "--no-deid", "--method", "lora", "--max-steps", "4", "--logging-steps", "2").stderr
    line = re.compile(r"step (\d+)/4 epoch [\d.]+ loss [\d.]+ lr [\d.e+-]+ grad [\d.]+ [\d.]+ tok/s, \d+ s left")
    assert [int(m.group(1)) for m in line.finditer(err)] == [1, 2, 4], err
    assert "trained 4 of 4 steps" in err
