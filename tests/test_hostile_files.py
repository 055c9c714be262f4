"""Hostile model folders cost no more than a small multiple of their size before they are
rejected, and a chat template cannot run without end: each case is a typed error, quickly."""

import json
import os
import shutil
import struct
import time

import pytest

from conftest import run_medgen


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
    cfg["chat_template"] = "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    rejected("generate", "--model", folder, "--chat", "--prompt", "Hi", "--max-new-tokens", 1, message="fuel")
