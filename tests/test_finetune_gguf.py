"""Full fine-tuning from a GGUF base writes a Hugging Face folder that transformers loads:
config.json, the tokenizer and the trained weights, for the Llama family (SentencePiece
vocabulary, q/k rows permuted in the file) and GPT-2 (byte-level BPE, Conv1D weights transposed
in the file). The reference is transformers reading the GGUF base and the written folder."""

import json

import gguf
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from conftest import CLINICAL_SENTENCES, medgen_json, run_medgen
from test_gguf_llama import CTX, FFN, HIDDEN, N_HEAD, N_KV_HEAD, N_LAYER, gguf_tensors, train_vocab, write_gguf

TEXTS = ["Patient is a 67-year-old woman, BP 142/88 mmHg, HR 96.",
         "Plan: continue antibiotics, monitor renal function."]


def llama_gguf(folder):
    _, pieces, scores, types = train_vocab()
    torch.manual_seed(7)
    cfg = LlamaConfig(vocab_size=len(pieces), hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=N_LAYER,
                      num_attention_heads=N_HEAD, num_key_value_heads=N_KV_HEAD, max_position_embeddings=CTX,
                      rope_theta=5000.0, rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    path = folder / "tiny-llama.gguf"
    write_gguf(path, pieces, scores, types, gguf_tensors(LlamaForCausalLM(cfg)))
    return path


def gpt2_gguf(folder, hf_dir):
    """The tiny GPT-2 of the test set-up as llama.cpp's converter writes it: Conv1D weights as
    [out, in], the byte-level BPE vocabulary and merges in the metadata."""
    model = GPT2LMHeadModel.from_pretrained(hf_dir)
    cfg = model.config
    spec = json.loads((hf_dir / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    tokens = [None] * len(vocab)
    for piece, i in vocab.items():
        tokens[i] = piece
    special = {t["id"] for t in spec["added_tokens"] if t["special"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    path = folder / "tiny-gpt2.gguf"
    w = gguf.GGUFWriter(str(path), "gpt2")
    w.add_context_length(cfg.n_positions)
    w.add_embedding_length(cfg.n_embd)
    w.add_feed_forward_length(4 * cfg.n_embd)
    w.add_block_count(cfg.n_layer)
    w.add_head_count(cfg.n_head)
    w.add_layer_norm_eps(cfg.layer_norm_epsilon)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([3 if i in special else 1 for i in range(len(tokens))])
    w.add_token_merges(merges)
    w.add_bos_token_id(cfg.bos_token_id)
    w.add_eos_token_id(cfg.eos_token_id)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    tensors = {"token_embd.weight": sd["transformer.wte.weight"], "position_embd.weight": sd["transformer.wpe.weight"],
               "output_norm.weight": sd["transformer.ln_f.weight"], "output_norm.bias": sd["transformer.ln_f.bias"]}
    names = {"attn_norm": "ln_1", "attn_qkv": "attn.c_attn", "attn_output": "attn.c_proj", "ffn_norm": "ln_2",
             "ffn_up": "mlp.c_fc", "ffn_down": "mlp.c_proj"}
    for i in range(cfg.n_layer):
        for g, h in names.items():
            weight = sd[f"transformer.h.{i}.{h}.weight"]
            tensors[f"blk.{i}.{g}.weight"] = weight if g.endswith("norm") else weight.T
            tensors[f"blk.{i}.{g}.bias"] = sd[f"transformer.h.{i}.{h}.bias"]
    for name, x in tensors.items():
        w.add_tensor(name, np.ascontiguousarray(x, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def gguf_bases(tmp_path_factory, tiny_models):
    from pathlib import Path

    folder = tmp_path_factory.mktemp("gguf_bases")
    return {"llama": llama_gguf(folder), "gpt2": gpt2_gguf(folder, Path(tiny_models["gpt2"]))}


def reference_base(path, tiny_models):
    """(tokenizer, model) of the base as transformers reads it: from the GGUF file, except for
    GPT-2, whose GGUF reader in transformers leaves n_positions at its default (1024) and so
    cannot load the position table; there the folder the file was written from stands in."""
    if path.name == "tiny-gpt2.gguf":
        folder = tiny_models["gpt2"]
        return AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    return tok, model


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_full_finetune_of_a_gguf_base_loads_in_transformers(gguf_bases, tiny_models, tmp_path, kind):
    path = gguf_bases[kind]
    data = tmp_path / "train.jsonl"
    pairs = [(s, CLINICAL_SENTENCES[(i + 1) % len(CLINICAL_SENTENCES)]) for i, s in enumerate(CLINICAL_SENTENCES[:8])]
    data.write_text("".join(json.dumps({"input": s, "target": t}) + "\n" for s, t in pairs))
    out = tmp_path / "out"
    run_medgen("finetune", "--model", path, "--train", data, "--output", out, "--method", "full", "--no-deid",
               "--no-chat", "--batch-size", "4", "--max-steps", "2", "--lr", "1e-3", "--max-source-length", "24",
               "--max-target-length", "24", "--json")

    base_tok, base = reference_base(path, tiny_models)
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    assert type(model) is type(base)
    assert model.config.tie_word_embeddings == base.config.tie_word_embeddings

    # Every tensor of the base is written under its transformers name, and training moved it.
    before, after = base.state_dict(), model.state_dict()
    assert set(after) == set(before)
    moved = [n for n in before if not torch.equal(before[n], after[n])]
    assert len(moved) > len(before) // 2, f"only {moved} changed"

    for text in TEXTS:
        ids = medgen_json("tokenize", "--model", path, "--prompt", text)["ids"]
        assert tok(text)["input_ids"] == ids == base_tok(text)["input_ids"]
        npy = tmp_path / "logits.npy"
        medgen_json("logits", "--model", out, "--prompt", text, "--out", npy, "--force")
        with torch.no_grad():
            ref = model(torch.tensor([ids])).logits[0, -1].numpy()
        got = np.load(npy)
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-5
