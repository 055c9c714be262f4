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


def test_a_chat_template_that_runs_forever_fails_as_a_template_error(folder):
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg["chat_template"] = "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    rejected("generate", "--model", folder, "--chat", "--prompt", "Hi", "--max-new-tokens", 1, message="fuel")
