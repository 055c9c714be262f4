"""medgen against HF transformers: logits, greedy generation and tokenization of the default
GGUF model, and of tiny random-weight GPT-2, Qwen2 and Llama models that transformers makes."""

import json
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from conftest import kernel_logits, medgen_json, run_medgen

PROMPTS = [
    "Patient is a 67-year-old woman admitted with community-acquired pneumonia. Summary:",
    "Findings: right lower lobe consolidation without pleural effusion. Impression:",
    "Discharge medications: aspirin 81 mg daily, metoprolol 25 mg twice daily, and",
    "The patient denies chest pain, fever or shortness of breath. Temperature 38.5 °C,",
    "患者男性，50岁，主诉胸痛。",
]

TOKENIZER_TEXTS = [
    "Vitamin B12 1000 µg IM; temperature 38.5 °C; HbA1c ≥ 6.5%.",
    "患者男性，50岁，主诉胸痛。否认发热。",
    "  leading spaces, tabs\tand\nnewlines — dashes… and emoji 🩺 at 03/14/2024",
    "<|im_start|>user\nHello<|im_end|>",
]


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def medgen_logits(tmp_path, model_args, prompt_args):
    out = tmp_path / "logits.npy"
    ids = medgen_json("logits", *model_args, *prompt_args, "--out", out, "--force")["prompt_token_ids"]
    return ids, np.load(out)


def hf_last_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, -1].float().numpy()


def hf_greedy(model, ids, n):
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=n, do_sample=False, repetition_penalty=1.0, top_k=None,
                             top_p=None, temperature=None, pad_token_id=0)
    return out[0, len(ids):].tolist()


@pytest.mark.parametrize("prompt", PROMPTS)
def test_default_model_logits_and_tokens_match_transformers(hf_default, tmp_path, prompt):
    tok, model = hf_default
    ids, logits = medgen_logits(tmp_path, [], ["--prompt", prompt])
    assert ids == tok(prompt)["input_ids"]
    assert rel_l2(logits, hf_last_logits(model, ids)) < 1e-3


@pytest.mark.parametrize("prompt", PROMPTS)
def test_default_model_greedy_32_tokens_match_transformers(hf_default, prompt):
    tok, model = hf_default
    out = medgen_json("generate", "--prompt", prompt, "--max-new-tokens", 32, "--greedy", "--json")
    assert out["token_ids"] == hf_greedy(model, out["prompt_token_ids"], 32)


def test_chat_template_renders_like_transformers(hf_default, tmp_path):
    tok, model = hf_default
    messages = [{"role": "system", "content": "You are a careful clinical scribe."},
                {"role": "user", "content": "Summarize: 50-year-old man with chest pain."}]
    ids, logits = medgen_logits(tmp_path, [], ["--chat", "--system", messages[0]["content"],
                                               "--prompt", messages[1]["content"]])
    ref = tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"]
    assert ids == list(ref)
    assert rel_l2(logits, hf_last_logits(model, ids)) < 1e-3


@pytest.mark.parametrize("text", TOKENIZER_TEXTS)
def test_default_tokenizer_encodes_and_decodes_like_transformers(hf_default, text):
    tok, _ = hf_default
    out = medgen_json("tokenize", "--prompt", text)
    # Text is tokenized literally: control tokens' text in it makes no control token.
    assert out["ids"] == tok(text, split_special_tokens=True)["input_ids"]
    assert out["decoded"] == tok.decode(out["ids"])


@pytest.mark.parametrize("kind", ["gpt2", "qwen2", "llama", "llama_untied"])
def test_tiny_model_logits_and_greedy_match_transformers(tiny_models, tmp_path, kind):
    path = tiny_models[kind]
    # tokenizer.json as written (AutoTokenizer would swap in Qwen2's own pre-tokenizer).
    tok = PreTrainedTokenizerFast.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    for prompt in ["Patient admitted with pneumonia.", "aspirin 81 mg, 38.5 °C, 患者男性"]:
        ids, logits = medgen_logits(tmp_path, ["--model", path], ["--prompt", prompt])
        assert ids == tok(prompt)["input_ids"]
        assert rel_l2(logits, hf_last_logits(model, ids)) < 1e-4
        out = medgen_json("generate", "--model", path, "--prompt", prompt, "--max-new-tokens", 20,
                          "--min-new-tokens", 20, "--json")
        with torch.no_grad():
            ref = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=20, min_new_tokens=20, do_sample=False, pad_token_id=0)
        assert out["token_ids"] == ref[0, len(ids):].tolist()
        assert out["text"] == tok.decode(out["token_ids"], skip_special_tokens=True)


def test_ids_past_the_tokenizer_of_a_padded_vocabulary_decode_to_nothing(tiny_models, tmp_path):
    """An embedding padded past the tokenizer (t5-small: 32,128 rows, 32,100 pieces; Qwen2.5):
    the model may pick an id with no text; transformers generates and decodes it as nothing."""
    import transformers as tf

    tok = PreTrainedTokenizerFast.from_pretrained(tiny_models["llama"])
    torch.manual_seed(5)
    cfg = tf.LlamaConfig(vocab_size=len(tok) + 109, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=0, eos_token_id=0)
    model = tf.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    prompt = "Patient admitted with pneumonia."
    ids = tok(prompt)["input_ids"]
    with torch.no_grad():
        ref = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=20, min_new_tokens=20, do_sample=False, pad_token_id=0)[0, len(ids):].tolist()
    assert any(i >= len(tok) for i in ref), "no padded id generated: the case is not exercised"
    out = medgen_json("generate", "--model", tmp_path, "--prompt", prompt, "--max-new-tokens", 20,
                      "--min-new-tokens", 20, "--json")
    assert out["token_ids"] == ref
    assert out["text"] == tok.decode(ref, skip_special_tokens=True)


@pytest.mark.parametrize("dtype", ["bf16", "f16"])
def test_reduced_precision_stays_close_to_transformers_f32(hf_default, tmp_path, dtype):
    _, model = hf_default
    ids, logits = medgen_logits(tmp_path, ["--dtype", dtype], ["--prompt", PROMPTS[0]])
    assert rel_l2(logits, hf_last_logits(model, ids)) < 0.05


def test_scalar_kernels_match_transformers_too(hf_default, tmp_path):
    """The kernels CPUs without AVX2 run (forced with MEDGEN_SCALAR_KERNELS): the same
    reference, decode steps included."""
    import os
    import subprocess

    from conftest import MEDGEN

    tok, model = hf_default
    env = {**os.environ, "MEDGEN_SCALAR_KERNELS": "1"}
    run = lambda *a: json.loads(subprocess.run([str(MEDGEN), *map(str, a)], env=env, capture_output=True,  # noqa: E731
                                               text=True, check=True, timeout=600).stdout)
    out = run("generate", "--prompt", PROMPTS[0], "--max-new-tokens", 32, "--greedy", "--json")
    assert out["token_ids"] == hf_greedy(model, out["prompt_token_ids"], 32)
    ids = run("logits", "--prompt", PROMPTS[1], "--out", tmp_path / "scalar.npy")["prompt_token_ids"]
    assert rel_l2(np.load(tmp_path / "scalar.npy"), hf_last_logits(model, ids)) < 1e-3


def test_decode_step_logits_match_transformers_in_f32_and_within_int8_error_with_int8_activations(hf_default, tmp_path):
    """The decode kernels on the default model's Q4_1 and Q8_0 blocks: with f32 activations
    as exact as the prompt's pass; with --int8-activations (integer kernels) a few percent
    away, as llama.cpp's logits are (2 to 14 % on these prompts; README), on every
    instruction set this CPU has, down to the scalar one."""
    _, model = hf_default
    for prompt in PROMPTS:
        ids, exact = kernel_logits(tmp_path, prompt)
        ref = hf_last_logits(model, ids)
        assert rel_l2(exact, ref) < 1e-4
        # The instruction sets agree to 1e-5 per dot product (the kernels' unit tests), but an
        # activation that rounds to the next 8-bit step in one and not in the other moves
        # everything after it: each is checked against the reference.
        for kernels in [None, "scalar", "avx2"]:
            _, int8 = kernel_logits(tmp_path, prompt, "--int8-activations", kernels=kernels)
            assert 1e-4 < rel_l2(int8, ref) < 0.1, (kernels, rel_l2(int8, ref))


def test_decode_last_needs_two_tokens(tmp_path):
    proc = run_medgen("debug", "logits", "--decode-last", "--prompt", "Hi", "--out", tmp_path / "x.npy", check=False)
    assert proc.returncode != 0 and "at least two tokens" in proc.stderr


@pytest.mark.parametrize("kind, settings", [
    ("llama", {"hidden_act": "gelu"}),
    ("qwen2", {"hidden_act": "relu"}),
    ("gpt2", {"scale_attn_by_inverse_layer_idx": True}),
    ("gpt2", {"scale_attn_weights": False}),
])
def test_settings_medgen_does_not_run_are_refused_by_name(tiny_models, tmp_path, kind, settings):
    """A setting that changes the arithmetic and that medgen does not implement is refused,
    naming it, rather than run as if it were the default."""
    path = tmp_path / kind
    shutil.copytree(tiny_models[kind], path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, **settings}))
    proc = run_medgen("generate", "--model", path, "--prompt", "Patient admitted.", "--max-new-tokens", 2, check=False)
    assert proc.returncode != 0
    assert next(iter(settings)) in proc.stderr, proc.stderr
