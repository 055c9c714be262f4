"""DP-SGD (`medgen finetune --dp-*`) against Opacus 1.6: per-example gradients clipped and summed
as Opacus's GradSampleModule and flat clipping give them, for every family with LoRA; the noise's
scale; the ε a run reports against Opacus's RDPAccountant and get_noise_multiplier; bad input.

The tiny models, PEFT adapters and helpers are test_finetune's."""

import json
import math

import numpy as np
import pytest

from conftest import medgen_json, run_medgen
from test_finetune import (ALL_KINDS, BATCH_EXAMPLES, EXAMPLES, GRAD_FLOOR, GRAD_TOL, TINY_GRAD_TOL, adapter_dir,
                           assert_refused, assert_tensors_close, collate, is_seq2seq, load_hf, load_peft, lora_args,
                           model_dir, peft_saved_key, read_log, reference_loss_and_grads, rel_err, train_batch,
                           write_jsonl)


def opacus_clipped_sum(kind, examples, max_norm, double=True):
    """Opacus's per-sample gradients of each example's mean token loss (GradSampleModule, hooks
    on the LoRA layers), flat-clipped (min(1, C / (norm + 1e-6))) and summed, in float64; and
    the per-example norms."""
    import torch
    import torch.nn.functional as F
    from opacus import GradSampleModule

    model = load_peft(kind, adapter_dir(kind))
    model = model.double() if double else model
    gsm = GradSampleModule(model, loss_reduction="sum")  # the loss below is a sum over examples
    batch = collate(kind, examples)
    if is_seq2seq(kind):
        logits = gsm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     decoder_input_ids=batch["decoder_input_ids"]).logits
        labels = batch["labels"]
    else:
        logits = gsm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        labels = batch["labels"][:, 1:]
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
                         reduction="none").reshape(labels.shape)
    per_example = ce.sum(1) / (labels != -100).sum(1)
    per_example.sum().backward()
    samples = {peft_saved_key(n): p.grad_sample for n, p in model.named_parameters() if p.requires_grad}
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in samples.values()))
    factor = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    return {n: torch.einsum("b,b...->...", factor, g).numpy() for n, g in samples.items()}, norms.numpy()


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_the_clipped_summed_gradient_equals_opacus(tmp_path, kind):
    data = write_jsonl(tmp_path / "train.jsonl", BATCH_EXAMPLES)
    _, norms = opacus_clipped_sum(kind, BATCH_EXAMPLES, 1e9)
    max_norm = float(np.median(norms))  # some examples clipped, some not
    ref, _ = opacus_clipped_sum(kind, BATCH_EXAMPLES, max_norm)
    dump = train_batch(tmp_path, kind, data, *lora_args(), "--init-adapter", adapter_dir(kind),
                       "--dp-max-grad-norm", repr(max_norm))
    ours = {k[len("grad."):]: v for k, v in dump.items() if k.startswith("grad.")}
    assert set(ours) == set(ref)
    if kind in ("llama", "t5_relu"):
        # Batched passes of at most --batch-size examples (here 2, 2 and 1) sum to the same.
        chunked = train_batch(tmp_path, kind, data, *lora_args(), "--init-adapter", adapter_dir(kind),
                              "--dp-max-grad-norm", repr(max_norm), "--batch-size", "2")
        assert max(rel_err(chunked["grad." + n], ours[n]) for n in ours) < 1e-5
    # Within 1e-5 of the float64 reference, or 4 times as far as the same in float32 is, or (a
    # tensor whose terms cancel to a small one) 1e-6 of the largest gradient: the gradient tests'
    # rule. medgen takes them from one padded batch, with a copy of each adapter per example.
    ref32, _ = opacus_clipped_sum(kind, BATCH_EXAMPLES, max_norm, double=False)
    assert_tensors_close(ours, ref, GRAD_TOL, f"{kind} clipped LoRA gradients", tiny_tol=TINY_GRAD_TOL, ref32=ref32,
                         floor=GRAD_FLOOR)
    # Without clipping (a bound above every norm) it is the sum of the per-example gradients.
    unclipped, _ = opacus_clipped_sum(kind, BATCH_EXAMPLES, 1e9)
    assert max(rel_err(unclipped[n], ref[n]) for n in ref) > 1e-3, "the bound clips nothing: the test is blind"


def per_example_clipped_sum(kind, max_norm, double=True):
    """Each example's gradient of its mean token loss under full fine-tuning, from transformers
    one example at a time, flat-clipped and summed; and the norms."""
    grads = []
    for example in BATCH_EXAMPLES:
        model = load_hf(kind)
        grads.append(reference_loss_and_grads(model.double() if double else model, kind, collate(kind, [example]))[1])
    norms = [math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in gs.values())) for gs in grads]
    factors = [min(1.0, max_norm / (n + 1e-6)) for n in norms]
    return {name: sum(f * gs[name] for f, gs in zip(factors, grads)) for name in grads[0]}, norms


@pytest.mark.parametrize("kind", ["llama", "t5_relu"])
def test_full_fine_tuning_clips_each_examples_own_gradient(tmp_path, kind):
    """Without adapters every layer trains: each example gets a pass of its own."""
    data = write_jsonl(tmp_path / "train.jsonl", BATCH_EXAMPLES)
    _, norms = per_example_clipped_sum(kind, 1e9)
    max_norm = float(np.median(norms))
    ref, _ = per_example_clipped_sum(kind, max_norm)
    ref32, _ = per_example_clipped_sum(kind, max_norm, double=False)
    dump = train_batch(tmp_path, kind, data, "--method", "full", "--dp-max-grad-norm", repr(max_norm))
    ours = {k[len("grad."):]: v for k, v in dump.items() if k.startswith("grad.")}
    assert_tensors_close(ours, ref, GRAD_TOL, f"{kind} clipped full gradients", tiny_tol=TINY_GRAD_TOL, ref32=ref32,
                         floor=GRAD_FLOOR)
    unclipped, _ = per_example_clipped_sum(kind, 1e9)
    assert max(rel_err(unclipped[n], ref[n]) for n in ref) > 1e-3, "the bound clips nothing: the test is blind"


def test_the_noise_has_standard_deviation_sigma_times_c(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", BATCH_EXAMPLES)
    base = [*lora_args(), "--init-adapter", adapter_dir("llama"), "--dp-max-grad-norm", "0.5"]
    clean = train_batch(tmp_path, "llama", data, *base)
    noisy = {}
    for seed in ["1", "2", None]:
        extra = ["--dp-noise-multiplier", "1.3"] + (["--dp-noise-seed", seed] if seed else [])
        noisy[seed] = train_batch(tmp_path, "llama", data, *base, *extra)
    names = [k for k in clean if k.startswith("grad.")]
    noise = np.concatenate([(noisy["1"][n] - clean[n]).ravel() for n in names]).astype(np.float64)
    assert noise.size > 2000
    # A factor of 2 in the scale, or a mean of a tenth of it, fails by many standard errors.
    assert abs(noise.std() - 1.3 * 0.5) < 0.05 * 0.65, noise.std()
    assert abs(noise.mean()) < 0.05 * 0.65, noise.mean()
    # Seeded noise repeats; the default (operating-system seeded) does not repeat a seeded run.
    again = train_batch(tmp_path, "llama", data, *base, "--dp-noise-multiplier", "1.3", "--dp-noise-seed", "1")
    assert all(np.array_equal(again[n], noisy["1"][n]) for n in names)
    assert not all(np.array_equal(noisy["2"][n], noisy["1"][n]) for n in names)
    assert not all(np.array_equal(noisy[None][n], noisy["1"][n]) for n in names)


def opacus_epsilon(q, sigma, steps, delta):
    import warnings

    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(sigma, q, steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return accountant.get_epsilon(delta=delta)


def dp_run(tmp_path, *extra, name="out"):
    data = write_jsonl(tmp_path / "train.jsonl", EXAMPLES * 4)  # 32 examples
    val = write_jsonl(tmp_path / "val.jsonl", EXAMPLES[:2])
    out = tmp_path / name
    summary = medgen_json("finetune", "--model", model_dir("llama"), "--train", data, "--validation", val,
                          "--output", out, "--no-chat", "--no-deid", "--method", "lora", "--batch-size", "4",
                          "--max-steps", "6", "--eval-steps", "3", "--eval-generate", "0", "--lr", "1e-3",
                          "--dp-max-grad-norm", "1.0", *extra, "--json")
    return out, summary


def test_a_private_run_reports_the_epsilon_opacus_computes(tmp_path):
    out, summary = dp_run(tmp_path, "--dp-noise-multiplier", "0.9")
    q = 4 / 32
    evals = [e for e in read_log(out) if "eval_loss" in e]
    assert [e["step"] for e in evals] == [3, 6]
    for e in evals:
        assert e["epsilon"] == pytest.approx(opacus_epsilon(q, 0.9, e["step"], 1e-5), rel=1e-9)
    record = json.loads((out / "run.json").read_text())["differential_privacy"]
    assert record["epsilon"] == summary["epsilon"] == pytest.approx(opacus_epsilon(q, 0.9, 6, 1e-5), rel=1e-9)
    assert (record["delta"], record["noise_multiplier"], record["max_grad_norm"], record["sample_rate"],
            record["steps"]) == (1e-5, 0.9, 1.0, q, 6)
    assert "rdp" in record["accountant"].lower() and "operating system" in record["noise"]
    assert math.isfinite(summary["train_loss"])


def test_a_batch_size_that_does_not_divide_the_examples_samples_at_opacus_rate(tmp_path):
    """make_private's q is 1 / len(data_loader): 1/7 for 32 examples in batches of 5, not 5/32."""
    from torch.utils.data import DataLoader

    data = write_jsonl(tmp_path / "train.jsonl", EXAMPLES * 4)
    out = tmp_path / "out"
    summary = medgen_json("finetune", "--model", model_dir("llama"), "--train", data, "--output", out, "--no-chat",
                          "--no-deid", "--method", "lora", "--batch-size", "5", "--max-steps", "2", "--lr", "1e-3",
                          "--dp-max-grad-norm", "1.0", "--dp-noise-multiplier", "1.1", "--json")
    q = 1 / len(DataLoader(range(32), batch_size=5))
    record = json.loads((out / "run.json").read_text())["differential_privacy"]
    assert record["sample_rate"] == q
    assert summary["epsilon"] == pytest.approx(opacus_epsilon(q, 1.1, 2, 1e-5), rel=1e-9)


def test_a_target_epsilon_picks_opacus_noise_multiplier(tmp_path):
    from opacus.accountants.utils import get_noise_multiplier

    out, summary = dp_run(tmp_path, "--dp-epsilon", "4", "--dp-delta", "1e-3")
    sigma = get_noise_multiplier(target_epsilon=4, target_delta=1e-3, sample_rate=4 / 32, steps=6)
    assert summary["noise_multiplier"] == pytest.approx(sigma, rel=1e-9)
    assert 4 - 0.01 <= summary["epsilon"] <= 4


def test_a_resumed_run_keeps_the_privacy_settings_its_steps_were_taken_with(tmp_path):
    """The accountant counts every step at the run's σ, C and q: a resume that changes them (or
    turns DP on or off) would report an ε the steps taken did not spend."""
    data = write_jsonl(tmp_path / "train.jsonl", EXAMPLES * 4)
    out = tmp_path / "out"
    base = ["finetune", "--model", model_dir("llama"), "--train", data, "--output", out, "--no-chat", "--no-deid",
            "--method", "lora", "--batch-size", "4", "--lr", "1e-3"]
    medgen_json(*base, "--max-steps", "2", "--dp-max-grad-norm", "1", "--dp-noise-multiplier", "1", "--json")
    for changed in [["--dp-max-grad-norm", "1", "--dp-noise-multiplier", "5"],
                    ["--dp-max-grad-norm", "2", "--dp-noise-multiplier", "1"], []]:
        proc = run_medgen(*base, "--max-steps", "4", "--resume", *changed, check=False)
        assert_refused(proc, "resume", "noise multiplier 1")
    summary = medgen_json(*base, "--max-steps", "4", "--resume", "--dp-max-grad-norm", "1",
                          "--dp-noise-multiplier", "1", "--json")
    assert summary["epsilon"] == pytest.approx(opacus_epsilon(4 / 32, 1.0, 4, 1e-5), rel=1e-9)


def test_a_weak_delta_is_warned_about(tmp_path):
    proc = run_medgen("finetune", "--model", model_dir("llama"), "--train", write_jsonl(tmp_path / "t.jsonl", EXAMPLES),
                      "--output", tmp_path / "out", "--no-chat", "--no-deid", "--method", "lora", "--max-steps", "1",
                      "--dp-max-grad-norm", "1", "--dp-noise-multiplier", "1", "--dp-delta", "0.5")
    assert "warning" in proc.stderr and "dp_delta" in proc.stderr, proc.stderr


def test_a_noise_multiplier_of_zero_warns_that_epsilon_is_infinite(tmp_path):
    proc = run_medgen("finetune", "--model", model_dir("llama"), "--train", write_jsonl(tmp_path / "t.jsonl", EXAMPLES),
                      "--output", tmp_path / "out", "--no-chat", "--no-deid", "--method", "lora", "--max-steps", "1",
                      "--dp-max-grad-norm", "1", "--dp-noise-multiplier", "0")
    assert "warning" in proc.stderr and "infinite" in proc.stderr, proc.stderr


@pytest.mark.parametrize("args,words", [
    (["--dp-max-grad-norm", "0", "--dp-noise-multiplier", "1"], ["dp_max_grad_norm"]),
    (["--dp-max-grad-norm", "-1", "--dp-noise-multiplier", "1"], ["dp_max_grad_norm"]),
    (["--dp-max-grad-norm", "1", "--dp-noise-multiplier", "-0.5"], ["dp_noise_multiplier"]),
    (["--dp-max-grad-norm", "1", "--dp-epsilon", "0"], ["target_epsilon"]),
    (["--dp-max-grad-norm", "1", "--dp-epsilon", "-2"], ["target_epsilon"]),
    (["--dp-max-grad-norm", "1", "--dp-noise-multiplier", "1", "--dp-delta", "0"], ["delta"]),
    (["--dp-max-grad-norm", "1", "--dp-noise-multiplier", "1", "--dp-delta", "1"], ["delta"]),
    (["--dp-max-grad-norm", "1", "--dp-epsilon", "1e-9"], ["cannot be reached"]),
    (["--dp-max-grad-norm", "1"], ["dp_noise_multiplier", "dp_epsilon"]),
    (["--dp-max-grad-norm", "1", "--dp-noise-multiplier", "1", "--dp-epsilon", "3"], ["not both"]),
    (["--dp-noise-multiplier", "1"], ["dp_max_grad_norm"]),
    (["--dp-noise-seed", "7"], ["dp_max_grad_norm"]),
    (["--dp-max-grad-norm", "1e39", "--dp-noise-multiplier", "1"], ["dp_max_grad_norm", "f32"]),
    (["--dp-max-grad-norm", "1e20", "--dp-noise-multiplier", "1e20"], ["dp_noise_multiplier", "f32"]),
    (["--dp-max-grad-norm", "1", "--dp-noise-multiplier", "1", "--gradient-accumulation-steps", "2"],
     ["gradient_accumulation_steps"]),
])
def test_bad_privacy_settings_are_refused_before_training(tmp_path, args, words):
    proc = run_medgen("finetune", "--model", model_dir("llama"), "--train", write_jsonl(tmp_path / "t.jsonl", EXAMPLES),
                      "--output", tmp_path / "out", "--no-chat", "--no-deid", "--method", "lora", "--max-steps", "2",
                      *args, check=False)
    assert_refused(proc, *words)
    assert not (tmp_path / "out" / "log.jsonl").exists()


def test_python_takes_the_privacy_options_and_reports_epsilon(tmp_path):
    import medgen

    data = write_jsonl(tmp_path / "train.jsonl", EXAMPLES * 4)
    history = medgen.finetune(str(model_dir("llama")), str(data), output=str(tmp_path / "out"), method="lora",
                              chat=False, deid=False, batch_size=4, max_steps=4, validation_split=0.25,
                              eval_steps=2, eval_generate=0, dp_max_grad_norm=1.0, dp_noise_multiplier=1.1)
    q = 4 / 24  # 24 of the 32 examples train
    evals = [e for e in history if "eval_loss" in e]
    assert [e["epsilon"] for e in evals] == pytest.approx([opacus_epsilon(q, 1.1, s, 1e-5) for s in (2, 4)], rel=1e-9)
    assert history.report["epsilon"] == pytest.approx(opacus_epsilon(q, 1.1, 4, 1e-5), rel=1e-9)
    with pytest.raises(medgen.InvalidArgumentError, match="dp_max_grad_norm"):
        medgen.finetune(str(model_dir("llama")), str(data), output=str(tmp_path / "bad"), dp_max_grad_norm=-1.0,
                        dp_noise_multiplier=1.0, max_steps=1)
