"""Gemma 3 against transformers: tiny random-weight models that transformers makes (local
sliding-window and global layers, a window shorter than the prompts, head_dim != hidden / heads,
grouped-query attention, RoPE scaling on the global layers, logit softcapping, the multimodal
checkpoint layout), and the 270M base model as a Q4_K_M GGUF (requirements/gemma3.txt), which
transformers loads and dequantizes from the same file."""

import json
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from conftest import (CLINICAL_SENTENCES, GEMMA3_GGUF, ROOT, _train_tokenizer, cached, kernel_logits, medgen_json,
                      peak_rss_mib, run_medgen)

WINDOW = 8
# 8 and 37 tokens with the tiny models' tokenizer: the window exactly, and well past it.
TINY_PROMPTS = ["Patient admitted.", CLINICAL_SENTENCES[0]]


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def tiny_text_config(vocab, **kw):
    """A Gemma3TextConfig's arguments: 4 heads of 24 (hidden 64), 2 key/value heads, queries
    scaled by 32^-0.5, a window of 8 positions, norms that are not 1."""
    return dict(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_attention_heads=4,
                num_key_value_heads=2, head_dim=24, query_pre_attn_scalar=32, sliding_window=WINDOW,
                max_position_embeddings=128, initializer_range=0.08, bos_token_id=0, eos_token_id=0,
                pad_token_id=0, **kw)


def make_tiny_gemma3(kind, path):
    import transformers as tf

    torch.manual_seed({"tied": 21, "untied": 22, "multimodal": 23, "local_scaled": 24}[kind])
    tok = _train_tokenizer(path)
    if kind == "tied":
        cfg = tf.Gemma3TextConfig(**tiny_text_config(len(tok), num_hidden_layers=4, sliding_window_pattern=2))
        model = tf.Gemma3ForCausalLM(cfg)
    elif kind == "untied":
        # Linear RoPE scaling on the global layers only; logits softcapped.
        rope = {"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 50000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 1000.0}}
        types = ["sliding_attention", "sliding_attention", "full_attention", "sliding_attention", "full_attention"]
        cfg = tf.Gemma3TextConfig(**tiny_text_config(len(tok), num_hidden_layers=5, layer_types=types,
                                                     rope_parameters=rope, final_logit_softcapping=5.0,
                                                     tie_word_embeddings=False))
        model = tf.Gemma3ForCausalLM(cfg)
    elif kind == "local_scaled":
        # RoPE scaled on the local layers as well, differently from the global ones.
        rope = {"full_attention": {"rope_type": "default", "rope_theta": 1e6},
                "sliding_attention": {"rope_type": "linear", "factor": 3.0, "rope_theta": 100.0}}
        types = ["sliding_attention", "full_attention", "sliding_attention"]
        cfg = tf.Gemma3TextConfig(**tiny_text_config(len(tok), num_hidden_layers=3, layer_types=types,
                                                     rope_parameters=rope))
        model = tf.Gemma3ForCausalLM(cfg)
    else:
        # Gemma3ForConditionalGeneration: the text model's settings in text_config, its tensors
        # under language_model.; a tiny vision tower that medgen ignores.
        vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
                      image_size=28, patch_size=14)
        n = len(tok)
        cfg = tf.Gemma3Config(text_config=tiny_text_config(n, num_hidden_layers=3), vision_config=vision,
                              mm_tokens_per_image=4, image_token_index=n - 1, boi_token_index=n - 2,
                              eoi_token_index=n - 3)
        model = tf.Gemma3ForConditionalGeneration(cfg)
    # Gemma's norms multiply by 1 + weight, which starts at 0: give every norm a part.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and "vision" not in name:
                p.uniform_(-0.5, 0.5)
    model.save_pretrained(path)


@pytest.fixture(scope="module")
def tiny_gemma3():
    """kind -> (folder, transformers tokenizer, transformers model) of a tiny Gemma 3."""
    out = {}
    for kind in ["tied", "untied", "multimodal", "local_scaled"]:
        path = cached(ROOT / "tests" / ".cache" / "tiny" / f"gemma3_{kind}",
                      lambda path, kind=kind: make_tiny_gemma3(kind, path))
        tok = PreTrainedTokenizerFast.from_pretrained(path)
        out[kind] = path, tok, AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return out


def medgen_logits(tmp_path, model, prompt):
    out = tmp_path / "logits.npy"
    ids = medgen_json("logits", "--model", model, "--prompt", prompt, "--out", out, "--force")["prompt_token_ids"]
    return ids, np.load(out)


def hf_last_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, -1].float().numpy()


def hf_greedy(model, ids, n, **kw):
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=n, do_sample=False, top_k=None, top_p=None, temperature=None,
                             pad_token_id=0, **kw)
    return out[0, len(ids):].tolist()


@pytest.mark.parametrize("kind", ["tied", "untied", "multimodal", "local_scaled"])
def test_tiny_gemma3_logits_and_greedy_match_transformers(tiny_gemma3, tmp_path, kind):
    path, tok, model = tiny_gemma3[kind]
    info = medgen_json("info", "--model", path, "--json")
    assert info["architecture"] == "gemma3"
    assert info["config"]["gemma3"]["sliding_window"] == WINDOW
    for prompt in TINY_PROMPTS:
        ids, logits = medgen_logits(tmp_path, path, prompt)
        assert ids == tok(prompt)["input_ids"]
        err = rel_l2(logits, hf_last_logits(model, ids))
        assert err < 1e-4, (prompt, err)
        # 20 new tokens: every step past the window.
        out = medgen_json("generate", "--model", path, "--prompt", prompt, "--max-new-tokens", 20,
                          "--min-new-tokens", 20, "--json")
        assert out["token_ids"] == hf_greedy(model, ids, 20, min_new_tokens=20)
    assert len(ids) > 4 * WINDOW


def test_tiny_gemma3_local_rope_scaling_medgen_does_not_run_is_refused(tiny_gemma3, tmp_path):
    path = tmp_path / "yarn"
    shutil.copytree(tiny_gemma3["local_scaled"][0], path)
    config = json.loads((path / "config.json").read_text())
    config["rope_parameters"]["sliding_attention"] = {"rope_type": "yarn", "factor": 2.0, "rope_theta": 100.0}
    (path / "config.json").write_text(json.dumps(config))
    proc = run_medgen("generate", "--model", path, "--prompt", "Patient admitted.", "--max-new-tokens", 2, check=False)
    assert proc.returncode != 0 and "yarn" in proc.stderr, proc.stderr


def test_tiny_gemma3_window_is_transformers_own(tiny_gemma3, tmp_path):
    """A window one position wider or narrower than the model's gives other logits, so the
    agreement above holds for the window's exact width (a query sees itself and 7 before)."""
    path, tok, model = tiny_gemma3["tied"]
    prompt = TINY_PROMPTS[1]
    ref = hf_last_logits(model, tok(prompt)["input_ids"])
    for window in [WINDOW - 1, WINDOW + 1]:
        other = tmp_path / f"window{window}"
        shutil.copytree(path, other)
        cfg = json.loads((other / "config.json").read_text())
        cfg["sliding_window"] = window
        (other / "config.json").write_text(json.dumps(cfg))
        _, logits = medgen_logits(tmp_path, other, prompt)
        assert rel_l2(logits, ref) > 1e-2, window


@pytest.mark.parametrize("beams", [1, 3])
def test_tiny_gemma3_left_padded_batch_equals_prompts_alone(tiny_gemma3, tmp_path, beams):
    path, _, _ = tiny_gemma3["untied"]
    prompts = [TINY_PROMPTS[0], CLINICAL_SENTENCES[0], CLINICAL_SENTENCES[6][:20]]
    args = ["--max-new-tokens", 12, "--num-beams", beams]
    alone = [medgen_json("generate", "--model", path, "--prompt", p, *args, "--json") for p in prompts]
    batch = tmp_path / "prompts.jsonl"
    batch.write_text("".join(json.dumps(p) + "\n" for p in prompts))
    lines = run_medgen("generate", "--model", path, "--batch-file", batch, *args).stdout.splitlines()
    assert len(lines) == len(prompts)
    for line, a in zip(lines, alone):
        b = json.loads(line)
        assert (b["prompt_token_ids"], b["token_ids"], b["text"]) == (a["prompt_token_ids"], a["token_ids"], a["text"])


# The 270M base model (Q4_K_M), against transformers reading the same GGUF.

PROMPTS = [
    "Patient is a 67-year-old woman admitted with community-acquired pneumonia. Summary:",
    "Findings: right lower lobe consolidation without pleural effusion. Impression:",
    "患者男性，50岁，主诉胸痛。",
]
# 777 tokens, past the 512-position window of the local layers.
LONG_PROMPT = " ".join(CLINICAL_SENTENCES * 4)

TOKENIZER_TEXTS = [
    "Discharge medications: aspirin 81 mg daily, metoprolol 25 mg twice daily, and",
    "Vitamin B12 1000 µg IM; temperature 38.5 °C; HbA1c ≥ 6.5%.",
    "患者男性，50岁，主诉胸痛。否认发热。",
    # Runs of spaces (stored in the file as spaces, spelled ▁ in the vocabulary), tabs, newlines.
    "   leading spaces,  double  spaces, x  the   of and trailing   ",
    "Subjective:\nchest pain.\n\n\tObjective: afebrile.\n\n\n",
    # Control tokens whole, byte fallback, emoji.
    "<start_of_turn>user\nSummarize the note.<end_of_turn>\n<start_of_turn>model\n",
    "Café naïve patient 🩺 with Ωmega Q~ {x} \x07 at 03/14/2024",
]


@pytest.fixture(scope="module")
def gemma3_tok():
    assert GEMMA3_GGUF.exists(), f"{GEMMA3_GGUF} is missing: run `make setup`"
    return AutoTokenizer.from_pretrained(GEMMA3_GGUF.parent, gguf_file=GEMMA3_GGUF.name)


@pytest.fixture(scope="module")
def gemma3_hf(gemma3_tok):
    model = AutoModelForCausalLM.from_pretrained(GEMMA3_GGUF.parent, gguf_file=GEMMA3_GGUF.name, dtype=torch.float32)
    return gemma3_tok, model.eval()


def test_gemma3_gguf_info_has_the_270m_shape():
    info = medgen_json("info", "--model", GEMMA3_GGUF, "--json")
    cfg = info["config"]
    assert (info["architecture"], info["vocab_size"], info["context_length"]) == ("gemma3", 262144, 32768)
    assert (cfg["n_layers"], cfg["n_heads"], cfg["n_kv_heads"], cfg["head_dim"], cfg["hidden_size"]) == (18, 4, 1, 256, 640)
    g = cfg["gemma3"]
    assert g["sliding_layers"] == [(i + 1) % 6 != 0 for i in range(18)]
    assert (g["sliding_window"], cfg["rope_theta"], g["rope_local_theta"], g["query_pre_attn_scalar"]) == (512, 1e6, 1e4, 256)
    assert g["final_logit_softcapping"] is None
    assert info["tensor_types"] == {"F32": 109, "Q4_K": 27, "Q5_0": 81, "Q6_K": 9, "Q8_0": 10}


@pytest.mark.parametrize("text", TOKENIZER_TEXTS)
def test_gemma3_tokenizer_matches_transformers(gemma3_tok, text):
    out = medgen_json("tokenize", "--model", GEMMA3_GGUF, "--prompt", text)
    # Text is tokenized literally: control tokens' text in it makes no control token.
    ref = gemma3_tok(text, split_special_tokens=True)["input_ids"]
    assert ref[0] == 2  # <bos>
    assert out["ids"] == ref
    assert out["decoded"] == gemma3_tok.decode(ref)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_gemma3_logits_match_transformers(gemma3_hf, tmp_path, prompt):
    tok, model = gemma3_hf
    ids, logits = medgen_logits(tmp_path, GEMMA3_GGUF, prompt)
    assert ids == tok(prompt)["input_ids"]
    ref = hf_last_logits(model, ids)
    assert rel_l2(logits, ref) < 1e-4, (rel_l2(logits, ref), float(np.abs(logits - ref).max()))


def test_gemma3_logits_past_the_window_match_transformers(gemma3_hf, tmp_path):
    tok, model = gemma3_hf
    ids, logits = medgen_logits(tmp_path, GEMMA3_GGUF, LONG_PROMPT)
    assert ids == tok(LONG_PROMPT)["input_ids"] and len(ids) > 512 + 200
    ref = hf_last_logits(model, ids)
    assert rel_l2(logits, ref) < 1e-4, (rel_l2(logits, ref), float(np.abs(logits - ref).max()))


@pytest.mark.parametrize("dtype", ["bf16", "f16"])
def test_gemma3_reduced_precision_stays_close_to_transformers_f32(gemma3_hf, tmp_path, dtype):
    _, model = gemma3_hf
    out = tmp_path / "logits.npy"
    ids = medgen_json("logits", "--model", GEMMA3_GGUF, "--prompt", PROMPTS[0], "--dtype", dtype,
                      "--out", out)["prompt_token_ids"]
    assert rel_l2(np.load(out), hf_last_logits(model, ids)) < 0.05


@pytest.mark.parametrize("prompt", PROMPTS[:2])
def test_gemma3_greedy_24_tokens_match_transformers(gemma3_hf, prompt):
    _, model = gemma3_hf
    out = medgen_json("generate", "--model", GEMMA3_GGUF, "--prompt", prompt, "--max-new-tokens", 24,
                      "--greedy", "--json")
    assert out["token_ids"] == hf_greedy(model, out["prompt_token_ids"], 24)


def test_gemma3_decode_steps_on_its_q5_0_k_quant_and_q8_0_blocks_match_transformers(gemma3_hf, tmp_path):
    """Gemma's file mixes Q5_0, Q4_K, Q6_K and Q8_0 blocks; the decode step (on CPU slices,
    `Gemma3::decode_cpu`) reads each as stored. With f32 activations (vector and scalar
    kernels) the last token's decode step gives transformers' logits on the dequantized
    weights; with --int8-activations (integer kernels, every instruction set this CPU has) a
    few percent away, as llama.cpp's are."""
    _, model = gemma3_hf
    for prompt in PROMPTS[:2]:
        ids, exact = kernel_logits(tmp_path, prompt, "--model", GEMMA3_GGUF)
        ref = hf_last_logits(model, ids)
        assert rel_l2(exact, ref) < 1e-4
        _, scalar = kernel_logits(tmp_path, prompt, "--model", GEMMA3_GGUF, scalar=True)
        assert rel_l2(scalar, ref) < 1e-4
        for kernels in [None, "scalar", "avx2"]:
            _, int8 = kernel_logits(tmp_path, prompt, "--model", GEMMA3_GGUF, "--int8-activations", kernels=kernels)
            assert 1e-4 < rel_l2(int8, ref) < 0.1, (kernels, rel_l2(int8, ref))
    # Past the local layers' window of 512: the decode step reads only its latest keys.
    ids, exact = kernel_logits(tmp_path, LONG_PROMPT, "--model", GEMMA3_GGUF)
    assert len(ids) > 512 + 200
    assert rel_l2(exact, hf_last_logits(model, ids)) < 1e-4


def test_gemma3_generating_costs_about_the_weight_file_in_memory():
    """Every block type of Gemma's file is used as stored (no dense copy: 4 to 7 times the
    file), and each tensor's mapped pages are released as it is copied. Peak memory while
    generating, above the idle binary's, stays under 1.4 times the file (its tokenizer of
    262,144 pieces included)."""
    size = GEMMA3_GGUF.stat().st_size / 2**20
    prompt = "Discharge summary. " + "The patient was admitted with chest pain and discharged home. " * 6
    idle = peak_rss_mib("--version")
    generating = peak_rss_mib("generate", "--model", GEMMA3_GGUF, "--prompt", prompt, "--max-new-tokens", 8, "--threads", 2)
    assert generating - idle < 1.4 * size, (generating, idle, size)
