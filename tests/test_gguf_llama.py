"""medgen on a llama.cpp-style GGUF Llama with a SentencePiece BPE vocabulary
(`tokenizer.ggml.model = "llama"`), against transformers loading the same file as the reference.

The file is built here: a vocabulary trained with `sentencepiece` (byte fallback on), a tiny
random-weight LlamaForCausalLM (GQA, untied output), q/k rows permuted as llama.cpp's converter
does, and F32 tensors with one F16 and one Q8_0 weight of each kind (attention, FFN)."""

import io
import time

import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as T
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import CLINICAL_SENTENCES, MEDGEN, medgen_json

N_LAYER, N_HEAD, N_KV_HEAD, HIDDEN, FFN, CTX = 3, 8, 2, 64, 96, 128
# Tensors stored in a type other than F32 (with transformers' names, for the read-back check).
F16 = {"blk.0.ffn_up.weight": "model.layers.0.mlp.up_proj.weight",
       "blk.1.attn_k.weight": "model.layers.1.self_attn.k_proj.weight"}
Q8_0 = {"blk.1.attn_q.weight": "model.layers.1.self_attn.q_proj.weight",
        "blk.2.ffn_down.weight": "model.layers.2.mlp.down_proj.weight"}

EXTRA_SENTENCES = [
    "Metoprolol 25 mg twice daily; lisinopril 10 mg once daily.",
    "Temperature 37.2 °C at admission, 39.1 °C overnight, afebrile since.",
    "Vancomycin trough ≥ 15 µg/mL; dose held, repeat level in 12 hours.",
    "Assessment: sepsis secondary to urinary tract infection, improving.",
    "Plan: continue antibiotics, monitor renal function, encourage oral intake.",
    "She reports nausea and vomiting for three days without diarrhea.",
    "诊断：社区获得性肺炎。给予头孢曲松静脉滴注。",
    "血压正常，心率九十六次每分钟，体温三十八度。",
]

TOKENIZE_TEXTS = [
    "Patient is a 67-year-old woman, BP 142/88 mmHg, HR 96, SpO2 94% on 2 L.",
    "   leading spaces,  double  spaces and trailing   ",
    "Subjective:\nchest pain.\n\n\tObjective: afebrile.",
    "Vitamin B12 1000 µg IM; 38.5 °C; HbA1c ≥ 6.5%",
    "患者男性，50岁，主诉胸痛。否认发热。",
    "Café naïve patient 🩺 with Ωmega Q~ {x}",  # é ï 🩺 Ω ~ { } are not in the vocabulary
]
PROMPTS = [TOKENIZE_TEXTS[0], TOKENIZE_TEXTS[3], TOKENIZE_TEXTS[4]]


def mg_json(*args):
    """medgen_json, waiting while the binary is missing or being relinked by a concurrent build."""
    deadline = time.monotonic() + 300
    while True:
        try:
            if MEDGEN.exists():
                return medgen_json(*args)
        except OSError:  # "text file busy"
            pass
        if time.monotonic() > deadline:
            raise FileNotFoundError(MEDGEN)
        time.sleep(2)


def train_vocab():
    """(processor, pieces, scores, llama.cpp token types) of a SentencePiece BPE model trained like Llama's."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter((CLINICAL_SENTENCES + EXTRA_SENTENCES) * 3), model_writer=model,
        model_type="bpe", vocab_size=480, byte_fallback=True, character_coverage=1.0,
        normalization_rule_name="identity", remove_extra_whitespaces=False, split_digits=True,
        allow_whitespace_only_pieces=True, unk_id=0, bos_id=1, eos_id=2, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    n = sp.get_piece_size()

    def ttype(i):  # llama.cpp: NORMAL 1, UNKNOWN 2, CONTROL 3, UNUSED 5, BYTE 6
        return 2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else 5 if sp.is_unused(i) else 1

    types = [ttype(i) for i in range(n)]
    assert types[:3] == [2, 3, 3] and types.count(6) == 256
    return sp, [sp.id_to_piece(i) for i in range(n)], [sp.get_score(i) for i in range(n)], types


def permute(w, n_head):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute (rotary halves -> interleaved pairs)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_tensors(model):
    """llama.cpp name -> float32 numpy array (PyTorch shape order) of a LlamaForCausalLM."""
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    out = {"token_embd.weight": sd["model.embed_tokens.weight"],
           "output_norm.weight": sd["model.norm.weight"], "output.weight": sd["lm_head.weight"]}
    names = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
             "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj"}
    for i in range(N_LAYER):
        for g, h in names.items():
            out[f"blk.{i}.{g}.weight"] = sd[f"model.layers.{i}.{h}.weight"]
        out[f"blk.{i}.attn_q.weight"] = permute(out[f"blk.{i}.attn_q.weight"], N_HEAD)
        out[f"blk.{i}.attn_k.weight"] = permute(out[f"blk.{i}.attn_k.weight"], N_KV_HEAD)
    return out


def write_gguf(path, pieces, scores, types, tensors, rope_theta=5000.0):
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-sp-llama")
    w.add_context_length(CTX)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(FFN)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_KV_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(rope_theta)
    w.add_rope_dimension_count(HIDDEN // N_HEAD)
    w.add_tokenizer_model("llama")
    w.add_token_list(pieces)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    for name, x in tensors.items():
        if name in F16:
            w.add_tensor(name, x.astype(np.float16))
        elif name in Q8_0:
            w.add_tensor(name, gguf.quants.quantize(x, T.Q8_0), raw_dtype=T.Q8_0)
        else:
            w.add_tensor(name, np.ascontiguousarray(x, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="session")
def sp_llama(tmp_path_factory):
    """(path of the GGUF, transformers tokenizer, transformers model, the SentencePiece processor);
    the tokenizer and model are read from the GGUF."""
    from transformers import LlamaConfig, LlamaForCausalLM

    sp, pieces, scores, types = train_vocab()
    torch.manual_seed(5)
    cfg = LlamaConfig(vocab_size=len(pieces), hidden_size=HIDDEN, intermediate_size=FFN,
                      num_hidden_layers=N_LAYER, num_attention_heads=N_HEAD, num_key_value_heads=N_KV_HEAD,
                      max_position_embeddings=CTX, rope_theta=5000.0, rms_norm_eps=1e-5,
                      initializer_range=0.08, tie_word_embeddings=False,
                      bos_token_id=1, eos_token_id=2)
    orig = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in orig.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    folder = tmp_path_factory.mktemp("sp_llama")
    path = folder / "tiny-sp-llama.gguf"
    write_gguf(path, pieces, scores, types, gguf_tensors(orig))

    tok = AutoTokenizer.from_pretrained(folder, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=path.name, dtype=torch.float32).eval()
    # The reference must read back what was written: exact for F32 (so q/k were un-permuted),
    # close for F16/Q8_0.
    ref, got = orig.state_dict(), model.state_dict()
    assert not model.config.tie_word_embeddings and set(ref) <= set(got)
    for name in ref:
        tol = 0.02 if name in Q8_0.values() else 1e-3 if name in F16.values() else 0
        assert torch.allclose(got[name], ref[name], rtol=0, atol=tol * float(ref[name].abs().max())), name
    return path, tok, model, sp


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def first_diff(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def test_info_reports_llama_and_tensor_types(sp_llama):
    path, tok, _, _ = sp_llama
    info = mg_json("info", "--model", path, "--json")
    assert info["architecture"] == "llama"
    n_tensors = 3 + 9 * N_LAYER
    assert info["tensor_types"] == {"F32": n_tensors - len(F16) - len(Q8_0), "F16": len(F16), "Q8_0": len(Q8_0)}
    assert info["vocab_size"] == len(tok)
    cfg = info["config"]
    assert (cfg["n_layers"], cfg["n_heads"], cfg["n_kv_heads"], cfg["head_dim"]) == (N_LAYER, N_HEAD, N_KV_HEAD, 8)
    assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["rope_theta"]) == (HIDDEN, FFN, 5000.0)


@pytest.mark.parametrize("text", TOKENIZE_TEXTS)
def test_tokenize_matches_transformers(sp_llama, text):
    path, tok, _, _ = sp_llama
    out = mg_json("tokenize", "--model", path, "--prompt", text)
    ref = tok(text)["input_ids"]
    i = first_diff(out["ids"], ref)
    assert out["ids"] == ref, (
        f"first difference at {i}: medgen {out['ids'][i:i + 6]} {tok.convert_ids_to_tokens(out['ids'][i:i + 6])}"
        f" vs transformers {ref[i:i + 6]} {tok.convert_ids_to_tokens(ref[i:i + 6])}")
    assert out["decoded"] == tok.decode(out["ids"], skip_special_tokens=False)


# Not text[1]: on text that starts with spaces transformers' Metaspace adds no prefix "▁" where
# SentencePiece (and llama.cpp) always do, so the three cannot all agree there.
@pytest.mark.parametrize("text", [t for t in TOKENIZE_TEXTS if not t[0].isspace()])
def test_ids_match_sentencepiece_and_round_trip(sp_llama, text):
    """Without BOS: the trained SentencePiece model's own ids, and decoding gives the text back
    (characters outside the vocabulary go through <0xNN> byte pieces)."""
    path, _, _, sp = sp_llama
    out = mg_json("tokenize", "--model", path, "--prompt", text, "--no-special")
    assert out["ids"] == sp.encode(text)
    assert out["decoded"] == text == sp.decode(out["ids"])


@pytest.mark.parametrize("prompt", PROMPTS)
def test_last_logits_match_transformers(sp_llama, tmp_path, prompt):
    path, tok, model, _ = sp_llama
    npy = tmp_path / "logits.npy"
    ids = mg_json("logits", "--model", path, "--prompt", prompt, "--out", npy)["prompt_token_ids"]
    assert ids == tok(prompt)["input_ids"]
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0, -1].numpy()
    assert rel_l2(np.load(npy), ref) < 1e-4


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_16_tokens_match_transformers(sp_llama, prompt):
    path, tok, model, _ = sp_llama
    out = mg_json("generate", "--model", path, "--prompt", prompt, "--json",
                  "--max-new-tokens", 16, "--min-new-tokens", 16)
    ids = tok(prompt)["input_ids"]
    assert out["prompt_token_ids"] == ids
    with torch.no_grad():
        gen = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             do_sample=False, max_new_tokens=16, min_new_tokens=16, pad_token_id=0)
    ref = gen[0, len(ids):].tolist()
    i = first_diff(out["token_ids"], ref)
    assert out["token_ids"] == ref, f"first difference at {i}: medgen {out['token_ids'][i:]} vs transformers {ref[i:]}"
    # Random weights emit runs of <0xNN> pieces that are not valid UTF-8: decoded as transformers does.
    assert out["text"] == tok.decode(ref, skip_special_tokens=True)


def llama3_rope_factors(rope, head_dim):
    """llama.cpp convert_hf_to_gguf.py (LlamaModel.generate_extra_tensors): Llama 3's RoPE
    scaling as one divisor per frequency, stored as rope_freqs.weight."""
    import math

    factor, low, high, old = (rope[k] for k in ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"))
    out = []
    for f in (1.0 / rope["rope_theta"] ** (np.arange(0, head_dim, 2) / head_dim)).tolist():
        wavelen = 2 * math.pi / f
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def test_llama3_rope_factors_of_llama_cpp_files_are_applied(sp_llama, tmp_path):
    """Llama 3.1/3.2 GGUFs carry their RoPE scaling as rope_freqs.weight (no rope.scaling keys).
    The reference is the file's weights in the configuration of the HF model it was made from:
    transformers' own GGUF loader drops the tensor. RoPE base 100 and original_max_position_embeddings 64 put the four frequencies
    of these 8-wide heads in all three bands (kept, smoothed, divided) within a short prompt."""
    from transformers import LlamaConfig, LlamaForCausalLM

    path, tok, _, _ = sp_llama
    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64, "rope_theta": 100.0}
    torch.manual_seed(6)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=N_LAYER,
                      num_attention_heads=N_HEAD, num_key_value_heads=N_KV_HEAD, max_position_embeddings=CTX,
                      rms_norm_eps=1e-5, initializer_range=0.08, tie_word_embeddings=False,
                      bos_token_id=1, eos_token_id=2, rope_parameters=rope)
    orig = LlamaForCausalLM(cfg).eval()
    factors = llama3_rope_factors(rope, HIDDEN // N_HEAD)
    assert len(set(factors.tolist())) > 2, "low, high and smoothed frequencies"
    _, pieces, scores, types = train_vocab()
    file = tmp_path / "llama3-rope.gguf"
    write_gguf(file, pieces, scores, types, {**gguf_tensors(orig), "rope_freqs.weight": factors}, rope_theta=100.0)
    prompt = " ".join(PROMPTS)
    npy = tmp_path / "logits.npy"
    ids = mg_json("logits", "--model", file, "--prompt", prompt, "--out", npy)["prompt_token_ids"]
    assert len(ids) > 40
    # The file's weights (some stored F16 and Q8_0) as transformers reads them, in the original
    # model's configuration, and in the configuration transformers reads from the file.
    read = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=file.name, dtype=torch.float32).eval()
    scaled = LlamaForCausalLM(cfg).eval()
    scaled.load_state_dict(read.state_dict())
    with torch.no_grad():
        ref = scaled(torch.tensor([ids])).logits[0, -1].numpy()
        plain = read(torch.tensor([ids])).logits[0, -1].numpy()
    assert rel_l2(plain, ref) > 1e-2, "the scaling matters on this prompt"
    assert rel_l2(np.load(npy), ref) < 1e-4
    # config.json cannot state per-frequency factors: full fine-tuning says so before training
    # (the output folder stays empty).
    import json

    from conftest import run_medgen
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"input": "a", "target": "b"}) + "\n")
    proc = run_medgen("finetune", "--model", file, "--train", data, "--output", tmp_path / "out", "--method", "full",
                      "--no-deid", "--no-chat", "--max-steps", "1", check=False)
    assert proc.returncode == 1 and "rope_freqs" in proc.stderr, proc.stderr
    assert not any((tmp_path / "out").iterdir())
