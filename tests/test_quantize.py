"""Quantization at load (`--quantize q8_0|q4_0`) against gguf-py and transformers: a model
whose linear weights medgen quantized computes what transformers computes on the same weights
quantized and dequantized by gguf-py (ggml's reference rounding), for every family."""

import numpy as np
import pytest
import torch

from conftest import medgen_json, run_medgen
from test_reference import hf_last_logits, medgen_logits, rel_l2
from test_seq2seq import tiny_seq2seq  # noqa: F401 (a fixture)

QTYPES = {"q8_0": "Q8_0", "q4_0": "Q4_0"}
# Under 16 tokens: the prompt's pass runs on the decode kernels too, so every product reads the blocks.
PROMPT = "Patient admitted with pneumonia."


def round_trip(w, qtype):
    """`w` (`[out, in]`) quantized and dequantized by gguf-py, where `in` is a multiple of 32."""
    import gguf

    if w.shape[-1] % 32:
        return w
    t = getattr(gguf.GGMLQuantizationType, QTYPES[qtype])
    q = gguf.quants.quantize(w.detach().float().numpy(), t)
    return torch.from_numpy(gguf.quants.dequantize(q, t).reshape(w.shape).copy())


def quantized_reference(model, qtype):
    """`model` with each linear weight (the output head too, apart from a tied embedding)
    replaced by its gguf-py round trip."""
    from transformers.pytorch_utils import Conv1D

    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.weight = torch.nn.Parameter(round_trip(module.weight, qtype))
        elif isinstance(module, Conv1D):  # GPT-2 stores [in, out]
            module.weight = torch.nn.Parameter(round_trip(module.weight.T, qtype).T.contiguous())
    return model


@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("kind", ["llama", "gpt2", "qwen2"])
def test_decoder_only_quantized_at_load_equals_transformers_on_gguf_py_round_trips(tiny_models, tmp_path, kind, qtype):
    from transformers import AutoModelForCausalLM

    path = tiny_models[kind]
    ids, dense = medgen_logits(tmp_path, ["--model", path], ["--prompt", PROMPT])
    ref = quantized_reference(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval(), qtype)
    want = hf_last_logits(ref, ids)
    for flags in [[], ["--int8-activations"]]:
        _, got = medgen_logits(tmp_path, ["--model", path, "--quantize", qtype, *flags], ["--prompt", PROMPT])
        if flags:  # 8-bit activations on top: close, not equal
            assert rel_l2(got, want) < 0.05
        else:
            assert rel_l2(got, want) < 1e-5
    # The test can tell: the unquantized model is measurably further.
    assert rel_l2(dense, want) > 1e-4
    out = medgen_json("generate", "--model", path, "--quantize", qtype, "--prompt", PROMPT,
                      "--max-new-tokens", 12, "--min-new-tokens", 12, "--json")
    with torch.no_grad():
        gen = ref.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                           max_new_tokens=12, min_new_tokens=12, do_sample=False, pad_token_id=0)
    assert out["token_ids"] == gen[0, len(ids):].tolist()


@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("kind", ["t5_relu", "t5_gated", "bart"])
def test_encoder_decoder_quantized_at_load_equals_transformers_on_gguf_py_round_trips(tiny_seq2seq, kind, qtype):
    import transformers as tf

    path, _, _ = tiny_seq2seq[kind]
    cls = tf.BartForConditionalGeneration if kind.startswith("bart") else tf.T5ForConditionalGeneration
    ref = quantized_reference(cls.from_pretrained(path, dtype=torch.float32).eval(), qtype)
    out = medgen_json("generate", "--model", path, "--quantize", qtype, "--prompt", "chest pain", "--max-new-tokens", 12,
                      "--min-new-tokens", 12, "--json")
    ids = out["prompt_token_ids"]
    assert len(ids) <= 16
    # Greedy by hand, the whole decoder input each step (EOS barred, as min_new_tokens does).
    cfg = ref.config
    dec = [cfg.decoder_start_token_id]
    with torch.no_grad():
        for _ in range(12):
            logits = ref(input_ids=torch.tensor([ids]), decoder_input_ids=torch.tensor([dec])).logits[0, -1]
            logits[cfg.eos_token_id] = float("-inf")
            dec.append(int(logits.argmax()))
    assert out["token_ids"] == dec[1:]


def test_bad_quantize_values_are_refused():
    proc = run_medgen("generate", "--quantize", "q3_k", "--prompt", "x", check=False)
    assert proc.returncode != 0 and "not q8_0 or q4_0" in proc.stderr
    import medgen

    with pytest.raises(medgen.InvalidArgumentError, match="not q8_0 or q4_0"):
        medgen.Model.load(quantize="int4")
