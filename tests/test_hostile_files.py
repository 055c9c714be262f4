"""Hostile model folders cost no more than a small multiple of their size before they are
rejected, and a chat template cannot run without end: each case is a typed error, quickly."""

import json
import os
import shutil
import struct
import subprocess
import time

import pytest

from conftest import MEDGEN, run_medgen


@pytest.fixture
def folder(tiny_models, tmp_path):
    path = tmp_path / "m"
    shutil.copytree(tiny_models["llama"], path)
    return path


def rejected(*args, message):
    start = time.monotonic()
    proc = run_medgen(*args, check=False)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("name", ["config.json", "tokenizer.json", "tokenizer_config.json"])
def test_a_file_that_never_ends_is_rejected_unread(folder, name):
    (folder / name).unlink()
    os.symlink("/dev/zero", folder / name)
    rejected("info", "--model", folder, message="larger than")


def test_an_oversized_tokenizer_json_is_rejected_before_it_is_read(folder):
    with open(folder / "tokenizer.json", "r+b") as f:
        f.truncate(300 << 20)  # sparse: 300 MiB on paper
    rejected("tokenize", "--model", folder, "--prompt", "x", message="larger than")


def test_a_safetensors_header_over_the_formats_bound_is_rejected(folder):
    path = folder / "model.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", 100_000_001))
        f.truncate(8 + 100_000_001 + 16)  # sparse
    rejected("info", "--model", folder, message="over the format's bound")


def test_tensors_over_the_same_bytes_are_rejected_as_the_safetensors_library_does(folder):
    import safetensors.torch

    path = folder / "model.safetensors"
    tensors = safetensors.torch.load_file(path)
    safetensors.torch.save_file(tensors, path)  # the library's own layout
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    names = sorted(k for k in header if k != "__metadata__")
    a, b = next((a, b) for a in names for b in names
                if a < b and (header[a]["shape"], header[a]["dtype"]) == (header[b]["shape"], header[b]["dtype"]))
    header[b]["data_offsets"] = header[a]["data_offsets"]
    raw = json.dumps(header, separators=(",", ":")).encode().ljust(n)
    assert len(raw) == n
    path.write_bytes(data[:8] + raw + data[8 + n:])
    with pytest.raises(Exception, match="offset"):
        safetensors.torch.load_file(path)
    rejected("info", "--model", folder, message="overlap")


def test_a_chat_template_that_runs_forever_fails_as_a_template_error(folder):
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg["chat_template"] = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    rejected("generate", "--model", folder, "--chat", "--prompt", "Hi", "--max-new-tokens", 1, message="fuel")


def test_a_chat_template_that_writes_without_end_stops_at_its_output_bound(folder):
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg["chat_template"] = "{% for i in range(100000) %}{{ messages[0].content * 1000 }}{% endfor %}"
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    # 23 GB of output if it ran; the bound is eight times the message plus 1 MiB.
    rejected("generate", "--model", folder, "--chat", "--prompt", "x" * 1000, "--max-new-tokens", 1,
             message="output passed")


def test_a_prompt_far_past_the_context_is_refused_from_its_head(tiny_models):
    import transformers

    import medgen

    model = medgen.Model.load(tiny_models["llama"])
    n_ctx = 128
    text = "the patient was seen today " * 400_000  # 10.8 MB; transformers' tokenizer: 2 M tokens
    hf = transformers.AutoTokenizer.from_pretrained(tiny_models["llama"])
    head = text[:n_ctx * 64].rsplit(" ", 1)[0]
    with pytest.raises(medgen.ContextLengthError, match=f"{len(hf(head, add_special_tokens=False).input_ids)} tokens needed.*first {len(head)} of"):
        model.generate(text, max_new_tokens=1)
    with pytest.raises(medgen.ContextLengthError, match="at least"):
        model.chat([{"role": "user", "content": text}], max_new_tokens=1)
    # Text within the probe's bytes is counted whole.
    short = text[:n_ctx * 64]
    with pytest.raises(medgen.ContextLengthError) as e:
        model.generate(short, max_new_tokens=1)
    assert "at least" not in str(e.value) and f"{len(hf(short).input_ids)} tokens needed" in str(e.value)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_a_prompt_that_fills_the_context_is_read_as_transformers_reads_it(tiny_models, tmp_path, kind):
    """The network reads the prompt and every new token but the last: a prompt of exactly the
    context's length gives its next token's logits (as transformers computes them), and a
    generation may end on the context's last position, not one before it."""
    import numpy as np
    import torch
    import transformers

    import medgen

    model = medgen.Model.load(tiny_models[kind])
    n_ctx = json.loads(model.info_json)["context_length"]
    out = tmp_path / "logits.npy"

    def prompt_ids(prompt, *flags):
        """The prompt's tokens as generation reads them (special tokens included); its next
        token's logits into `out`."""
        run = subprocess.run([str(MEDGEN), "debug", "logits", "--model", tiny_models[kind], "--prompt", prompt,
                              "--out", out, "--force", *flags], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)["prompt_token_ids"]

    special = len(prompt_ids("x")) - len(model.tokenize("x"))  # a BOS, where the model adds one
    text = ""
    for word in "chest pain fever cough patient admitted discharged stable".split() * n_ctx:
        if special + len(model.tokenize(f"{text} {word}".strip())) > n_ctx:
            break
        text = f"{text} {word}".strip()
    # Then single characters that each add one token, up to exactly the context.
    for ch in ".,;:-" * n_ctx:
        if special + len(model.tokenize(text)) == n_ctx:
            break
        if special + len(model.tokenize(text + ch)) == special + len(model.tokenize(text)) + 1:
            text += ch
    hf = transformers.AutoModelForCausalLM.from_pretrained(tiny_models[kind], dtype=torch.float32).eval()
    # In the prompt's pass, and with its last token run as a decode step (the decode kernels).
    for flags in [[], ["--decode-last"]]:
        ids = prompt_ids(text, *flags)
        assert len(ids) == n_ctx
        with torch.no_grad():
            want = hf(torch.tensor([ids])).logits[0, -1].numpy()
        assert np.abs(np.load(out) - want).max() < 1e-4 * (1 + np.abs(want).max()), flags
    # The last position of the context is the last new token's: never fed back.
    short = " ".join(text.split()[:len(text.split()) // 2])
    room = n_ctx - len(prompt_ids(short)) + 1
    assert len(model.generate(short, max_new_tokens=room, min_new_tokens=room, do_sample=False).token_ids) == room
    with pytest.raises(medgen.ContextLengthError, match=f"{n_ctx + 1} tokens needed"):
        model.generate(short, max_new_tokens=room + 1, do_sample=False)


@pytest.mark.parametrize("kind", ["finetune", "evaluate", "train_tokenizer", "review_verify", "train_tagger"])
def test_a_data_file_that_never_ends_is_refused_at_a_bound(tiny_models, tmp_path, kind):
    import medgen

    zero = "/dev/zero"
    start = time.monotonic()
    with pytest.raises(medgen.FileError, match="longer than .* bytes, the most medgen reads"):
        if kind == "finetune":
            medgen.finetune(tiny_models["llama"], train=zero, output=tmp_path / "out", max_steps=1)
        elif kind == "evaluate":
            medgen.evaluate(tiny_models["llama"], zero)
        elif kind == "train_tokenizer":
            medgen.train_tokenizer([zero], tmp_path / "tok.json", vocab_size=300)
        elif kind == "review_verify":
            medgen.review.verify(zero)
        else:
            medgen.deid.train_deid_tagger(zero, tmp_path / "tagger.safetensors", max_steps=1)
    assert time.monotonic() - start < 120


def test_a_missing_data_file_is_a_file_error_and_a_missing_model_a_model_load_error(tiny_models, tmp_path):
    import medgen

    data = tmp_path / "data.jsonl"
    data.write_text('{"input": "a", "target": "b"}\n')
    with pytest.raises(medgen.FileError, match="missing.jsonl") as e:
        medgen.evaluate(tiny_models["llama"], tmp_path / "missing.jsonl")
    assert not isinstance(e.value, medgen.ModelLoadError)
    with pytest.raises(medgen.ModelLoadError, match="nowhere"):
        medgen.evaluate(tmp_path / "nowhere", data)
    with pytest.raises(medgen.FileError):
        medgen.review.verify(tmp_path)  # a folder
    with pytest.raises(medgen.FileError, match="missing-log.jsonl"):
        medgen.review.verify(tmp_path / "missing-log.jsonl")  # a mistyped path is no clean log
    with pytest.raises(medgen.InvalidArgumentError, match="adapter"):
        medgen.Model.load(tiny_models["llama"], adapter="")  # not the working directory's adapter


def test_a_note_far_past_the_context_fails_before_it_is_de_identified_whole(tiny_models):
    import medgen

    model = medgen.Model.load(tiny_models["llama"])
    note = "Patient John Smith seen 2020-01-01 with fever. " * 200_000  # 9.6 MB
    with pytest.raises(medgen.ContextLengthError, match="at least"):
        model.run_task("discharge_summary", note, max_new_tokens=8)


def test_a_temperature_near_the_smallest_float_samples_like_greedy(tiny_models):
    import medgen

    model = medgen.Model.load(tiny_models["llama"])
    greedy = model.generate("The patient was admitted with", max_new_tokens=8).text
    for t in (1e-38, 1e-40, 1e-45):
        assert model.generate("The patient was admitted with", max_new_tokens=8, do_sample=True, temperature=t, seed=1).text == greedy
