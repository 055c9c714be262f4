"""Encoder-decoder families (T5 v1.0, T5 v1.1 / Flan-T5, BART) against transformers: tiny
random-weight models made here, run by `medgen debug seq2seq` and by transformers
on the same token ids, compared on encoder output, decoder logits and greedy tokens."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import CLINICAL_SENTENCES, ROOT, cached, medgen_json, run_medgen

DUMP = [str(ROOT / "target" / "release" / "medgen"), "debug", "seq2seq"]
MAX_NEW = 12
TOL = 1e-4

# Special tokens as the real tokenizers number them: T5 pad 0, eos 1; BART <s> 0, pad 1, </s> 2.
SPECIALS = {"t5": ["<pad>", "</s>", "<unk>"], "bart": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]}


def _tokenizer(family: str, path: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS[family], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CLINICAL_SENTENCES * 4, trainer)
    if family == "t5":
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    else:
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
        )
    fast.save_pretrained(path)
    return fast


def make_tiny_seq2seq(kind: str, path: Path):
    """A tiny random-weight T5 or BART saved with its tokenizer; weights are perturbed so that
    biases, norms and the relative position table all matter."""
    import torch
    import transformers as tf
    from safetensors.torch import load_file, save_file

    torch.manual_seed({"t5_relu": 11, "t5_gated": 12, "bart": 13, "t5_uneven": 15, "bart_uneven": 20, "bart_untied": 24}[kind])
    path.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer("bart" if kind.startswith("bart") else "t5", path)
    vocab = len(tok)
    if kind.startswith("bart"):
        # forced_bos/forced_eos set to None: those are logits processors of generation, which
        # the example's plain greedy loop does not apply. init_std 0.2 (not 0.02) so that the
        # logits are not all final_logits_bias.
        shape = dict(encoder_layers=2, decoder_layers=3, encoder_attention_heads=4, decoder_attention_heads=4,
                     encoder_ffn_dim=96, decoder_ffn_dim=80)
        if kind == "bart_uneven":
            # Stacks as different as BartConfig allows: the encoder deeper, with more and
            # narrower heads (8 of 8) and a narrower feed-forward than the decoder (2 heads of 32).
            shape = dict(encoder_layers=3, decoder_layers=2, encoder_attention_heads=8, decoder_attention_heads=2,
                         encoder_ffn_dim=40, decoder_ffn_dim=136)
        # bart_untied: each stack embeds tokens with its own table, and the head is a third.
        cfg = tf.BartConfig(vocab_size=vocab, d_model=64, **shape, max_position_embeddings=128, scale_embedding=True,
                            activation_function="gelu", bos_token_id=0, pad_token_id=1, eos_token_id=2,
                            decoder_start_token_id=2, forced_bos_token_id=None, forced_eos_token_id=None,
                            init_std=0.2, tie_word_embeddings=kind != "bart_untied")
        model = tf.BartForConditionalGeneration(cfg)
    else:
        # d_kv * num_heads (48) differs from d_model (64), as it may in T5; few buckets and a
        # short max_distance put the test inputs in the logarithmic and clamped buckets too.
        # t5_uneven: heads wider than d_model in all (3 of 40) and fewer decoder than encoder layers.
        shape = dict(d_kv=12, num_heads=4, num_layers=2, num_decoder_layers=3)
        if kind == "t5_uneven":
            shape = dict(d_kv=40, num_heads=3, num_layers=3, num_decoder_layers=1)
        cfg = tf.T5Config(vocab_size=vocab, d_model=64, d_ff=96, **shape,
                          relative_attention_num_buckets=16, relative_attention_max_distance=20,
                          feed_forward_proj="gated-gelu" if kind == "t5_gated" else "relu",
                          pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
        model = tf.T5ForConditionalGeneration(cfg)
    # bart_uneven, bart_untied: smaller biases, and only queries and keys scaled up (by 2). With the recipe
    # the others have, BART's post-LayerNorm stream is swamped by biases and widened
    # projections, and greedy decoding repeats one token whatever the input (the "bart" model
    # mostly does); sharper attention makes the logits too sensitive to rounding for TOL.
    gentle = kind in ("bart_uneven", "bart_untied")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "relative_attention_bias" in name:
                p.normal_(0, 0.1 if gentle else 0.5)
            elif "norm" in name:
                p.uniform_(0.5, 1.5)
            elif p.dim() == 2 and not any(e in name for e in ["shared", "embed", "lm_head"]):
                # With the default scale the token's own embedding dominates the residual
                # stream, and a tied head then repeats the decoder's input token forever.
                if not gentle:
                    p.mul_(4)
                elif any(e in name for e in ["q_proj", "k_proj"]):
                    p.mul_(2)
        if kind.startswith("bart"):
            model.final_logits_bias.normal_(0, 0.1)
    model.save_pretrained(path)
    if kind == "t5_gated":
        # T5 v1.1 / Flan-T5 checkpoints carry their own lm_head and say tie_word_embeddings
        # false (no output scaling); transformers 5 always saves T5 tied, so write one as
        # those checkpoints are.
        weights = load_file(path / "model.safetensors")
        weights["lm_head.weight"] = torch.randn(vocab, 64) * 0.2
        save_file(weights, path / "model.safetensors", metadata={"format": "pt"})
        config = json.loads((path / "config.json").read_text())
        for key in ["scale_decoder_outputs", "is_gated_act", "dense_act_fn"]:
            config.pop(key, None)
        config["tie_word_embeddings"] = False
        (path / "config.json").write_text(json.dumps(config, indent=2))
    return path


# The *_uneven kinds: encoder and decoder of different shapes, as each family's config allows.
KINDS = ["t5_relu", "t5_gated", "t5_uneven", "bart", "bart_uneven", "bart_untied"]


@pytest.fixture(scope="module")
def tiny_seq2seq():
    """kind -> (folder, transformers model, tokenizer), made once per cache."""
    import torch
    import transformers as tf

    out = {}
    for kind in KINDS:
        path = cached(ROOT / "tests" / ".cache" / "tiny" / kind, lambda path, kind=kind: make_tiny_seq2seq(kind, path))
        cls = tf.BartForConditionalGeneration if kind.startswith("bart") else tf.T5ForConditionalGeneration
        model = cls.from_pretrained(path, dtype=torch.float32).eval()
        out[kind] = (path, model, tf.AutoTokenizer.from_pretrained(path))
    return out


def _inputs(tok, case):
    """Token ids of each sequence of a case, with the special tokens the family's tokenizer adds."""
    texts = {
        "short": [CLINICAL_SENTENCES[5]],
        "long": [" ".join(CLINICAL_SENTENCES[:3])],
        "padded_batch": [CLINICAL_SENTENCES[0], CLINICAL_SENTENCES[6][:20]],
    }[case]
    seqs = []
    for t in texts:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        seqs.append(([tok.bos_token_id] if tok.bos_token_id is not None else []) + ids + [tok.eos_token_id])
    return seqs


_RUNS = {}


def _run(tiny_seq2seq, kind, case):
    """(medgen's outputs, transformers' outputs) for one model and input case, computed once."""
    if (kind, case) in _RUNS:
        return _RUNS[(kind, case)]
    import torch

    path, model, tok = tiny_seq2seq[kind]
    seqs = _inputs(tok, case)
    out_dir = path.parent.parent / "dumps" / f"{kind}-{case}"
    proc = subprocess.run(
        [*DUMP, str(path), "--ids", json.dumps(seqs), "--max-new-tokens", str(MAX_NEW), "--out", str(out_dir)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0 and "panicked" not in proc.stderr, proc.stderr
    ours = json.loads(proc.stdout)
    for name in ["encoder", "step_logits", "full_logits"]:
        ours[name] = np.load(out_dir / f"{name}.npy")

    # Right padding, as the families' tokenizers pad.
    s = max(map(len, seqs))
    pad = model.config.pad_token_id
    ids = torch.tensor([q + [pad] * (s - len(q)) for q in seqs])
    mask = torch.tensor([[1] * len(q) + [0] * (s - len(q)) for q in seqs])
    with torch.no_grad():
        enc = model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        # use_cache=False: transformers 5.23's generate sizes T5's cache by the encoder's layer
        # count and fails when the decoder has more (IndexError in cache_utils).
        gen = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, num_beams=1,
                             max_new_tokens=MAX_NEW, use_cache=False)
        logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=gen[:, :-1]).logits
    ref = {"encoder": enc.numpy(), "generated": gen[:, 1:].tolist(), "logits": logits.numpy(),
           "text": tok.batch_decode(gen[:, 1:], skip_special_tokens=True)}
    _RUNS[(kind, case)] = (ours, ref)
    return ours, ref


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


CASES = ["short", "long", "padded_batch"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", KINDS)
def test_encoder_output_matches_transformers(tiny_seq2seq, kind, case):
    ours, ref = _run(tiny_seq2seq, kind, case)
    assert ours["encoder"].shape == ref["encoder"].shape
    assert _rel(ours["encoder"], ref["encoder"]) < TOL


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", KINDS)
def test_cached_step_logits_and_one_pass_logits_match_transformers(tiny_seq2seq, kind, case):
    ours, ref = _run(tiny_seq2seq, kind, case)
    for name in ["step_logits", "full_logits"]:
        assert ours[name].shape == ref["logits"].shape, name
        assert _rel(ours[name], ref["logits"]) < TOL, name


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", KINDS)
def test_greedy_tokens_match_transformers_generate(tiny_seq2seq, kind, case):
    ours, ref = _run(tiny_seq2seq, kind, case)
    assert ours["generated"] == ref["generated"]
    assert ours["text"] == ref["text"]


def test_padded_batch_rows_match_the_same_sequences_alone(tiny_seq2seq):
    """Padding must not leak into a shorter sequence's encoder output or decoder logits."""
    for kind in KINDS:
        batch, _ = _run(tiny_seq2seq, kind, "padded_batch")
        path, _, tok = tiny_seq2seq[kind]
        seqs = _inputs(tok, "padded_batch")
        out_dir = path.parent.parent / "dumps" / f"{kind}-alone"
        proc = subprocess.run(
            [*DUMP, str(path), "--ids", json.dumps([seqs[1]]), "--max-new-tokens", str(MAX_NEW),
             "--out", str(out_dir)], capture_output=True, text=True, timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
        n = len(seqs[1])
        alone = np.load(out_dir / "encoder.npy")[0]
        assert _rel(batch["encoder"][1, :n], alone) < TOL, kind
        steps = np.load(out_dir / "step_logits.npy")[0]
        assert _rel(batch["step_logits"][1, : len(steps)], steps) < TOL, kind


def _stack_shapes(model):
    """stack -> (layers, heads, head width, feed-forward width), read from the modules
    transformers built (not from its config), with the decoder's cross-attention checked to
    have the decoder's heads."""
    if isinstance(model, __import__("transformers").BartForConditionalGeneration):
        out = {}
        for name in ["encoder", "decoder"]:
            layers = getattr(model.model, name).layers
            attn = layers[0].self_attn
            out[name] = (len(layers), attn.num_heads, attn.head_dim, layers[0].fc1.out_features)
        cross = model.model.decoder.layers[0].encoder_attn
        assert (cross.num_heads, cross.head_dim) == out["decoder"][1:3]
        return out
    out = {}
    for name in ["encoder", "decoder"]:
        blocks = getattr(model, name).block
        attn = blocks[0].layer[0].SelfAttention
        out[name] = (len(blocks), attn.n_heads, attn.key_value_proj_dim, blocks[0].layer[-1].DenseReluDense.wo.in_features)
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_info_reports_each_stacks_shape_as_transformers_builds_it(tiny_seq2seq, kind):
    path, model, _ = tiny_seq2seq[kind]
    cfg = medgen_json("info", "--model", path, "--json")["config"]
    shapes = _stack_shapes(model)
    for stack, shape in shapes.items():
        assert tuple(cfg[f"{stack}_{k}"] for k in ["layers", "heads", "head_dim", "ffn"]) == shape, stack
    (el, eh, _, ef), (dl, dh, _, df) = shapes["encoder"], shapes["decoder"]
    text = run_medgen("info", "--model", path).stdout
    assert f"{el} encoder + {dl} decoder (hidden 64, heads {eh} + {dh}, feed-forward {ef} + {df})" in text, text


def test_bart_input_past_max_positions_is_refused(tiny_seq2seq):
    path, model, tok = tiny_seq2seq["bart"]
    ids = [[0] + [5] * model.config.max_position_embeddings + [2]]
    proc = subprocess.run(
        [*DUMP, str(path), "--ids", json.dumps(ids), "--out", str(path.parent.parent / "dumps" / "too-long")],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode != 0 and "panicked" not in proc.stderr
    assert "max_position_embeddings" in proc.stderr


def test_debug_dump_refuses_more_new_tokens_than_the_decoder_holds(tiny_seq2seq):
    path, _, _ = tiny_seq2seq["t5_relu"]
    proc = subprocess.run(
        [*DUMP, str(path), "--ids", "[[5, 6, 1]]", "--max-new-tokens", str(10**15), "--out", str(path.parent / "huge")],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 1 and "panicked" not in proc.stderr
    assert "max_new_tokens" in proc.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_stops_at_eos_and_pads_finished_rows_like_transformers_generate(tiny_seq2seq, kind):
    """Random weights rarely choose the real EOS, so the model is copied with its EOS set to a
    token that one row generates after others: that row then finishes early and is padded
    while the other goes on."""
    import shutil

    import torch
    import transformers as tf

    _, ref = _run(tiny_seq2seq, kind, "padded_batch")
    path, model, tok = tiny_seq2seq[kind]
    pad = model.config.pad_token_id
    row, k, eos = next(
        (r, k, g[k])
        for k in range(1, MAX_NEW - 1)
        for r, g in enumerate(ref["generated"])
        if g[k] != pad and g[k] not in g[:k]
    )
    copy = path.parent.parent / "dumps" / f"{kind}-eos{eos}"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(path, copy)
    for name in ["config.json", "generation_config.json"]:
        cfg = json.loads((copy / name).read_text())
        cfg["eos_token_id"] = eos
        (copy / name).write_text(json.dumps(cfg))
    cls = tf.BartForConditionalGeneration if kind.startswith("bart") else tf.T5ForConditionalGeneration
    model = cls.from_pretrained(copy, dtype=torch.float32).eval()

    seqs = _inputs(tok, "padded_batch")
    s = max(map(len, seqs))
    ids = torch.tensor([q + [pad] * (s - len(q)) for q in seqs])
    mask = torch.tensor([[1] * len(q) + [0] * (s - len(q)) for q in seqs])
    with torch.no_grad():
        gen = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, num_beams=1,
                             max_new_tokens=MAX_NEW, use_cache=False)[:, 1:].tolist()
    assert gen[row][k] == eos and set(gen[row][k + 1:]) <= {pad}
    proc = subprocess.run(
        [*DUMP, str(copy), "--ids", json.dumps(seqs), "--max-new-tokens", str(MAX_NEW), "--out", str(copy / "out")],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["generated"] == gen
