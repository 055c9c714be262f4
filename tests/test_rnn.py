"""medgen's recurrent encoder-decoder (model_type "medgen_rnn") against a reference written here
in plain PyTorch from the definition in medgen-core/src/models/rnn.rs: nn.Embedding, nn.LSTM /
nn.GRU (batch_first, packed sequences for padding), the attention, nn.Linear.

Each variant's weights are the reference's own seeded initialisation, saved from its
state_dict(), so medgen reading them checks that its tensor names are PyTorch's. Compared on a
padded batch: encoder outputs, the logits of each cached greedy step and of one pass, greedy
ids (`debug seq2seq`), loss and every gradient (`debug train-batch`); greedy and beam ids of
`generate` (beam search: transformers' `generate` running the reference); and the weights
after 10 optimiser steps of `finetune` against a plain PyTorch loop (AdamW, linear schedule,
clip_grad_norm_).

Tolerances: logits and encoder outputs within 1e-5 of the float64 reference (relative to their
norm; measured ~2e-7). Loss, gradients and trained weights as test_finetune checks them, within
1e-5 per tensor or 4 times the float32 reference's own distance from float64: gradients are
measured within 5e-6 (most ~5e-7); after 10 Adam steps at lr 1e-2 the float32 reference itself
is up to 6e-6 from float64, and medgen within 1.5 times that.

Reference facts (PyTorch 2.13): for packed sequences nn.LSTM / nn.GRU return as final state
each row's output at its last token (forward) and at its first token (backward direction), and
pad_packed_sequence writes zeros at padding, which the attention mask hides anyway.
"""

import json
import shutil
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers.utils import ModelOutput

from conftest import CLINICAL_SENTENCES, ROOT, _train_tokenizer, cached, medgen_json, run_medgen
from test_beam import assert_same_beams, cli_args, setting_id
from test_finetune import (BATCH_EXAMPLES, EXAMPLES, GRAD_FLOOR, GRAD_TOL, TINY_GRAD_TOL, assert_loss_close,
                           assert_tensors_close, assert_trained_close, check_log_and_summary, load_safetensors,
                           scalar, write_jsonl)
from test_generate_seq2seq import hf_generate

CACHE = ROOT / "tests" / ".cache" / "rnn"
# A folder in CACHE is complete when it holds this file; change it when the recipe changes.
MADE = ".made-v2"
MAX_NEW = 12
LOGITS_TOL = 1e-5
# Different lengths (the second pads), non-ASCII text in the third.
PROMPTS = [CLINICAL_SENTENCES[0], CLINICAL_SENTENCES[6][:20], CLINICAL_SENTENCES[8]]

BASE = dict(model_type="medgen_rnn", embedding_size=16, hidden_size=24, dropout=0.0, teacher_forcing_ratio=1.0,
            pad_token_id=0, decoder_start_token_id=0, eos_token_id=0, max_length=256)
# Every cell, scoring, direction, input feeding, tying and depth (encoder and decoder apart),
# and each scoring with and without input feeding. Dot scoring needs a one-direction encoder,
# tying embedding_size = hidden_size.
VARIANTS = {
    "lstm-luong-bi-feed": dict(cell="lstm", attention="luong", bidirectional=True, input_feeding=True,
                               tie_embeddings=False, encoder_layers=2, decoder_layers=2),
    "gru-bahdanau-bi-feed-tied": dict(cell="gru", attention="bahdanau", bidirectional=True, input_feeding=True,
                                      tie_embeddings=True, encoder_layers=2, decoder_layers=1),
    "lstm-dot-tied": dict(cell="lstm", attention="dot", bidirectional=False, input_feeding=False,
                          tie_embeddings=True, encoder_layers=1, decoder_layers=2),
    "gru-dot-feed": dict(cell="gru", attention="dot", bidirectional=False, input_feeding=True,
                         tie_embeddings=False, encoder_layers=1, decoder_layers=1),
    "lstm-bahdanau": dict(cell="lstm", attention="bahdanau", bidirectional=False, input_feeding=False,
                          tie_embeddings=False, encoder_layers=2, decoder_layers=1),
    "gru-luong-bi-tied": dict(cell="gru", attention="luong", bidirectional=True, input_feeding=False,
                              tie_embeddings=True, encoder_layers=1, decoder_layers=2),
}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny reference computations: one thread beats two contending with medgen on 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# The reference


class Reference(nn.Module):
    """The architecture of rnn.rs, its parameters named as medgen's tensors."""

    def __init__(self, cfg):
        super().__init__()
        v, e, h = cfg["vocab_size"], cfg["embedding_size"], cfg["hidden_size"]
        width = 2 * h if cfg["bidirectional"] else h
        cell = nn.LSTM if cfg["cell"] == "lstm" else nn.GRU
        self.cfg = cfg
        self.encoder = nn.Module()
        self.encoder.embedding = nn.Embedding(v, e)
        self.encoder.rnn = cell(e, h, cfg["encoder_layers"], batch_first=True, bidirectional=cfg["bidirectional"],
                                dropout=cfg["dropout"])
        self.decoder = nn.Module()
        self.decoder.embedding = nn.Embedding(v, e)
        self.decoder.rnn = cell(e + h * cfg["input_feeding"], h, cfg["decoder_layers"], batch_first=True,
                                dropout=cfg["dropout"])
        self.bridge = nn.Linear(width, h)
        self.attention = nn.Module()
        if cfg["attention"] == "luong":
            self.attention.linear_in = nn.Linear(h, width, bias=False)
        elif cfg["attention"] == "bahdanau":
            self.attention.query = nn.Linear(h, h, bias=False)
            self.attention.key = nn.Linear(width, h)
            self.attention.v = nn.Linear(h, 1, bias=False)
        self.attention.linear_out = nn.Linear(width + h, h, bias=False)
        self.out_proj = nn.Linear(h, v)
        if cfg["tie_embeddings"]:
            self.out_proj.weight = self.decoder.embedding.weight

    def encode(self, ids, mask):
        """(outputs [b, s, width], zero at padding; summary [b, width]: the final states)."""
        packed = pack_padded_sequence(self.encoder.embedding(ids), mask.sum(1).cpu(), batch_first=True,
                                      enforce_sorted=False)
        out, state = self.encoder.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        h_n = state[0] if self.cfg["cell"] == "lstm" else state
        summary = torch.cat([h_n[-2], h_n[-1]], 1) if self.cfg["bidirectional"] else h_n[-1]
        return out, summary

    def attend(self, h, enc, mask):
        """Luong's attentional outputs tanh(linear_out([context; h])) of decoder outputs h."""
        a = self.attention
        if self.cfg["attention"] == "dot":
            scores = h @ enc.transpose(1, 2)
        elif self.cfg["attention"] == "luong":
            scores = a.linear_in(h) @ enc.transpose(1, 2)
        else:
            scores = a.v(torch.tanh(a.query(h).unsqueeze(2) + a.key(enc).unsqueeze(1))).squeeze(3)
        scores = scores.masked_fill(mask[:, None, :] == 0, float("-inf"))
        context = torch.softmax(scores, -1) @ enc
        return torch.tanh(a.linear_out(torch.cat([context, h], 2)))

    def decode(self, enc, summary, mask, decoder_input_ids):
        """Logits [b, t, vocab] of the decoder inputs, from a fresh state."""
        h0 = torch.tanh(self.bridge(summary)).expand(self.cfg["decoder_layers"], -1, -1).contiguous()
        state = (h0, torch.zeros_like(h0)) if self.cfg["cell"] == "lstm" else h0
        x = self.decoder.embedding(decoder_input_ids)
        if not self.cfg["input_feeding"]:
            out = self.attend(self.decoder.rnn(x, state)[0], enc, mask)
        else:
            # Each step's input: its embedding and the previous attentional output (0 at first).
            feed, outs = x.new_zeros(x.shape[0], 1, self.cfg["hidden_size"]), []
            for t in range(x.shape[1]):
                h, state = self.decoder.rnn(torch.cat([x[:, t:t + 1], feed], 2), state)
                feed = self.attend(h, enc, mask)
                outs.append(feed)
            out = torch.cat(outs, 1)
        return self.out_proj(out)

    def forward(self, input_ids, attention_mask, decoder_input_ids):
        enc, summary = self.encode(input_ids, attention_mask)
        return self.decode(enc, summary, attention_mask, decoder_input_ids)


@dataclass
class _EncoderOutput(ModelOutput):
    # Tensors of a ModelOutput are what generate repeats for each beam.
    last_hidden_state: torch.Tensor = None
    summary: torch.Tensor = None


class _Encoder(nn.Module):
    main_input_name = "input_ids"

    def __init__(self, ref):
        super().__init__()
        self.encode = ref.encode

    def forward(self, input_ids, attention_mask, **_):
        enc, summary = self.encode(input_ids, attention_mask)
        return _EncoderOutput(last_hidden_state=enc, summary=summary)


def transformers_model(ref):
    """The reference as a transformers encoder-decoder, so that transformers' own `generate`
    (beam search included) runs it; with use_cache=False each step recomputes the decoder."""
    from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
    from transformers.modeling_outputs import Seq2SeqLMOutput

    class Wrapped(PreTrainedModel, GenerationMixin):
        config_class = PretrainedConfig

        def __init__(self):
            cfg = ref.cfg
            super().__init__(PretrainedConfig(is_encoder_decoder=True, vocab_size=cfg["vocab_size"],
                                              decoder_start_token_id=cfg["decoder_start_token_id"],
                                              pad_token_id=cfg["pad_token_id"], eos_token_id=cfg["eos_token_id"]))
            self.ref, self.encoder = ref, _Encoder(ref)

        def get_encoder(self):
            return self.encoder

        def forward(self, attention_mask=None, decoder_input_ids=None, encoder_outputs=None, **_):
            enc = encoder_outputs
            return Seq2SeqLMOutput(logits=self.ref.decode(enc.last_hidden_state, enc.summary, attention_mask,
                                                          decoder_input_ids))

    return Wrapped().eval()


# ---------------------------------------------------------------------------------------------
# Tiny models


def make_model(variant, path):
    """A variant's folder: config.json, tokenizer and the seeded reference's weights."""
    path.mkdir(parents=True, exist_ok=True)
    tok = _train_tokenizer(path)
    cfg = dict(BASE, vocab_size=len(tok), **VARIANTS[variant])
    if cfg["tie_embeddings"]:
        cfg["embedding_size"] = cfg["hidden_size"]
    torch.manual_seed(list(VARIANTS).index(variant))
    model = Reference(cfg)
    # PyTorch's initialisation scaled up (measured: hidden states up to 0.6-1, logits of std
    # 1.5-2.5 instead of 0.1-0.6, attention far from uniform), still far enough from saturation
    # for float32 gradients to be good to ~1e-6 of float64's.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embedding" not in name:
                p.mul_(8 if name == "out_proj.weight" else 2 if ".rnn." in name else 2.5)
    weights = model.state_dict()
    if cfg["tie_embeddings"]:
        del weights["out_proj.weight"]
    save_file({k: v.contiguous() for k, v in weights.items()}, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(cfg, indent=2))


def reference(path, dtype=torch.float32):
    """The reference loaded from a folder's files (strictly: every tensor, no other)."""
    cfg = json.loads((path / "config.json").read_text())
    model = Reference(cfg)
    weights = load_file(str(path / "model.safetensors"))
    if cfg["tie_embeddings"]:
        weights["out_proj.weight"] = weights["decoder.embedding.weight"]
    model.load_state_dict(weights)
    return model.to(dtype)


def tokenize(path, text):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(path)(text).input_ids


@lru_cache(maxsize=None)
def model_dir(variant):
    return cached(CACHE / variant, lambda path: make_model(variant, path), MADE)


@lru_cache(maxsize=None)
def eos_dir(variant):
    """The variant with its EOS set to the token that greedy decoding gives PROMPTS[1] at step
    MAX_NEW // 3 (random weights never choose the tokenizer's EOS), so that rows and beams end
    early, others not."""
    src = model_dir(variant)

    def make(path):
        ref = reference(src)
        greedy = reference_greedy(ref, [tokenize(src, PROMPTS[1])], MAX_NEW)[0]
        shutil.copytree(src, path, dirs_exist_ok=True)
        cfg = dict(ref.cfg, eos_token_id=greedy[MAX_NEW // 3])
        (path / "config.json").write_text(json.dumps(cfg, indent=2))

    return cached(CACHE / f"{variant}-eos", make, MADE)


def right_pad(rows, value):
    width = max(map(len, rows))
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.int64)


def padded(seqs):
    return right_pad(seqs, BASE["pad_token_id"]), right_pad([[1] * len(s) for s in seqs], 0)


def reference_greedy(ref, seqs, max_new):
    """Greedy ids of a padded batch, as transformers' generate gives them: rows that met EOS
    go on with the pad token; the decoder is rerun on all tokens at each step."""
    cfg = ref.cfg
    ids, mask = padded(seqs)
    dec = torch.full((len(seqs), 1), cfg["decoder_start_token_id"])
    done = torch.zeros(len(seqs), dtype=torch.bool)
    with torch.no_grad():
        while dec.shape[1] <= max_new and not done.all():
            nxt = ref(ids, mask, dec)[:, -1].argmax(-1)
            nxt = torch.where(done, cfg["pad_token_id"], nxt)
            done |= nxt == cfg["eos_token_id"]
            dec = torch.cat([dec, nxt[:, None]], 1)
    return dec[:, 1:].tolist()


def cut_at_eos(ids, eos):
    return ids[: ids.index(eos) + 1] if eos in ids else ids


def rel(ours, ref):
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


# ---------------------------------------------------------------------------------------------
# Inference


@pytest.mark.parametrize("variant", VARIANTS)
def test_encoder_outputs_and_decoder_logits_match_the_reference_on_a_padded_batch(tmp_path, variant):
    """Encoder outputs at the valid positions; the logits of each cached greedy step and of the
    same tokens in one pass, against the float64 reference; greedy ids against the float32 one."""
    path = eos_dir(variant)
    seqs = [tokenize(path, p) for p in PROMPTS]
    out = medgen_json("debug", "seq2seq", path, "--ids", json.dumps(seqs), "--max-new-tokens", MAX_NEW,
                      "--out", tmp_path)
    assert out["generated"] == reference_greedy(reference(path), seqs, MAX_NEW)
    eos = json.loads((path / "config.json").read_text())["eos_token_id"]
    assert any(eos in g for g in out["generated"]), "no row ends early: EOS untested"

    ref = reference(path, torch.float64)
    ids, mask = padded(seqs)
    dec = torch.tensor([[ref.cfg["decoder_start_token_id"]] + g[:-1] for g in out["generated"]])
    with torch.no_grad():
        enc, _ = ref.encode(ids, mask)
        logits = ref(ids, mask, dec).numpy()
    valid = mask.bool().numpy()
    ours_enc = np.load(tmp_path / "encoder.npy")
    assert ours_enc.shape == tuple(enc.shape)
    assert rel(ours_enc[valid], enc.numpy()[valid]) < LOGITS_TOL
    for name in ["step_logits", "full_logits"]:
        ours = np.load(tmp_path / f"{name}.npy")
        assert ours.shape == logits.shape, name
        assert rel(ours, logits) < LOGITS_TOL, (name, rel(ours, logits))


def generate_batch(path, tmp_path, settings):
    """`medgen generate --batch-file` over PROMPTS: one JSON result per prompt."""
    batch = write_jsonl(tmp_path / "prompts.jsonl", PROMPTS)
    proc = run_medgen("generate", "--model", path, "--batch-file", batch, "--max-new-tokens", MAX_NEW,
                      *cli_args(settings))
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.mark.parametrize("variant", VARIANTS)
def test_greedy_generation_of_a_batch_matches_the_reference_loop(tmp_path, variant):
    for path in [model_dir(variant), eos_dir(variant)]:
        ref = reference(path)
        results = generate_batch(path, tmp_path, {})
        seqs = [r["prompt_token_ids"] for r in results]
        assert seqs == [tokenize(path, p) for p in PROMPTS]
        expected = [cut_at_eos(g, ref.cfg["eos_token_id"]) for g in reference_greedy(ref, seqs, MAX_NEW)]
        assert [r["token_ids"] for r in results] == expected, path.name


BEAM_SETTINGS = [dict(num_beams=3, num_return_sequences=3), dict(num_beams=4, num_return_sequences=2)]


@pytest.mark.parametrize("settings", BEAM_SETTINGS, ids=setting_id)
@pytest.mark.parametrize("variant", VARIANTS)
def test_beam_search_matches_transformers_generate_running_the_reference(tmp_path, variant, settings):
    path = eos_dir(variant)
    model = transformers_model(reference(path))
    eos = model.config.eos_token_id
    for prompt, result in zip(PROMPTS, generate_batch(path, tmp_path, settings)):
        got = [(s["token_ids"], s["score"]) for s in result["sequences"]]
        ref = hf_generate(model, result["prompt_token_ids"], eos, max_new_tokens=MAX_NEW, **settings)
        assert_same_beams(f"{variant}/{setting_id(settings)}/{prompt[:8]}", got, ref)


def test_beam_comparisons_include_sequences_ending_at_eos_and_at_max_new_tokens(tmp_path):
    ends = []
    for variant in list(VARIANTS)[:2]:
        path = eos_dir(variant)
        eos = json.loads((path / "config.json").read_text())["eos_token_id"]
        for result in generate_batch(path, tmp_path, BEAM_SETTINGS[0]):
            ends += [(len(s["token_ids"]), s["token_ids"][-1] == eos) for s in result["sequences"]]
    assert any(at_eos and n < MAX_NEW for n, at_eos in ends), ends
    assert any(n == MAX_NEW and not at_eos for n, at_eos in ends), ends


# ---------------------------------------------------------------------------------------------
# Training


def collate(path, examples):
    """input_ids, attention_mask, labels (target ids and EOS, -100 at padding) and
    decoder_input_ids (labels shifted right after the start token, pad for -100)."""
    cfg = json.loads((path / "config.json").read_text())
    sources = [tokenize(path, ex["input"]) for ex in examples]
    labels = right_pad([tokenize(path, ex["target"]) + [cfg["eos_token_id"]] for ex in examples], -100)
    ids, mask = padded(sources)
    dec = torch.cat([torch.full((len(examples), 1), cfg["decoder_start_token_id"]), labels[:, :-1]], 1)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels,
            "decoder_input_ids": dec.masked_fill(dec == -100, cfg["pad_token_id"])}


def loss_sum_and_items(model, batch):
    logits = model(batch["input_ids"], batch["attention_mask"], batch["decoder_input_ids"])
    loss = nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100,
                                       reduction="sum")
    return loss, int((batch["labels"] != -100).sum())


def reference_grads(model, batch):
    loss, items = loss_sum_and_items(model, batch)
    (loss / items).backward()
    return float(loss.detach()) / items, {n: p.grad.numpy().copy() for n, p in model.named_parameters()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_loss_and_gradients_of_a_padded_batch_match_the_reference(tmp_path, variant):
    path = model_dir(variant)
    data = write_jsonl(tmp_path / "train.jsonl", BATCH_EXAMPLES)
    out = tmp_path / "batch.safetensors"
    run_medgen("debug", "train-batch", "--model", path, "--train", data, "--output", out, "--method", "full",
               "--no-chat", "--no-deid")
    dump = load_safetensors(out)
    batch = collate(path, BATCH_EXAMPLES)
    for name, expected in batch.items():
        assert dump[name].tolist() == expected.tolist(), name

    loss32, grads32 = reference_grads(reference(path), batch)
    loss64, grads64 = reference_grads(reference(path, torch.float64), batch)
    assert_loss_close(scalar(dump["loss"]), loss64, loss32, f"{variant} loss")
    ours = {k[len("grad."):]: v for k, v in dump.items() if k.startswith("grad.")}
    # Names as named_parameters() gives them: a tied projection once, as decoder.embedding.weight.
    assert_tensors_close(ours, grads64, GRAD_TOL, f"{variant} gradients", tiny_tol=TINY_GRAD_TOL, ref32=grads32,
                         floor=GRAD_FLOOR)


TRAIN = dict(steps=10, batch_size=4, lr=1e-2, max_grad_norm=1.0)


def reference_train(model, batches, steps, lr, max_grad_norm):
    """transformers' Trainer defaults as a plain loop: AdamW (betas 0.9, 0.999, eps 1e-8, no
    weight decay), the linear schedule without warm-up, clip_grad_norm_, loss = sum of the
    label tokens' cross-entropies / their number. One record per step: loss, grad_norm, lr."""
    from transformers import get_linear_schedule_with_warmup

    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    sched = get_linear_schedule_with_warmup(opt, 0, steps)
    records = []
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        loss, items = loss_sum_and_items(model, batches[step % len(batches)])
        (loss / items).backward()
        norm = float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
        records.append({"loss": float(loss.detach()) / items, "grad_norm": norm, "lr": opt.param_groups[0]["lr"]})
        opt.step()
        sched.step()
    return records


def state(model):
    return {n: p.detach().double().numpy().copy() for n, p in model.named_parameters()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_ten_optimizer_steps_match_a_plain_pytorch_loop(tmp_path, variant):
    path = model_dir(variant)
    data = write_jsonl(tmp_path / "train.jsonl", EXAMPLES)
    out = tmp_path / "out"
    summary = medgen_json("finetune", "--model", path, "--train", data, "--output", out, "--method", "full",
                          "--no-chat", "--no-deid", "--no-shuffle", "--batch-size", TRAIN["batch_size"],
                          "--max-steps", TRAIN["steps"], "--lr", TRAIN["lr"], "--max-grad-norm",
                          TRAIN["max_grad_norm"], "--logging-steps", 1, "--eval-generate", 0, "--json")
    size = TRAIN["batch_size"]
    batches = [collate(path, EXAMPLES[i:i + size]) for i in range(0, len(EXAMPLES), size)]
    model64 = reference(path, torch.float64)
    initial = state(model64)
    records = reference_train(model64, batches, TRAIN["steps"], TRAIN["lr"], TRAIN["max_grad_norm"])
    model32 = reference(path)
    reference_train(model32, batches, TRAIN["steps"], TRAIN["lr"], TRAIN["max_grad_norm"])

    ours = load_safetensors(out / "model.safetensors")
    assert_trained_close(ours, state(model64), state(model32), initial, records, f"{variant} full")
    check_log_and_summary(out, summary, records)
    # The trained folder is a model of the same configuration.
    assert json.loads((out / "config.json").read_text()) == json.loads((path / "config.json").read_text())
