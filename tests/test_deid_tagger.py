"""The learned PHI tagger (`medgen.deid`, `medgen deid --engine`, `medgen deid train`).

The network is checked against a PyTorch module written here from its documented design
(hashed feature embeddings summed, a linear layer, dilated residual convolutions with layer
norms, a linear layer to BIO labels): logits, windowing of long notes, and training steps
(cross-entropy, clipping, AdamW with transformers' linear schedule). Tokens and features are
recomputed here from the documentation. Quality on hand-annotated notes is in test_deid.py
(the ensemble is the default engine) and in `make bench`.
"""

import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import get_linear_schedule_with_warmup

import medgen
from conftest import ROOT, run_medgen
from test_deid import load_note

SMALL = dict(buckets=4096, dim=16, hidden=32, dilations=[1, 2])
CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff〇]")


def notes_jsonl(path, paths):
    with open(path, "w", encoding="utf-8") as f:
        for p in paths:
            text, spans = load_note(p)
            ents = [{"start": s, "end": e, "category": c} for c, s, e in spans]
            f.write(json.dumps({"text": text, "entities": ents}, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("tagger")
    paths = sorted((ROOT / "tests" / "data" / "deid").glob("*.txt"))
    train = notes_jsonl(d / "train.jsonl", [p for p in paths if not p.name.startswith("heldout_")])
    val = notes_jsonl(d / "val.jsonl", [p for p in paths if p.name.startswith("heldout_")])
    return d, train, val


@pytest.fixture(scope="module")
def tiny(data):
    """A small tagger trained for a few steps (full precision)."""
    d, train, val = data
    out = d / "tiny.safetensors"
    medgen.deid.train_deid_tagger(train, out, val=val, max_steps=6, batch_size=8, half=False, **SMALL)
    return out


class Block(torch.nn.Module):
    def __init__(self, hidden, dilation):
        super().__init__()
        self.conv = torch.nn.Conv1d(hidden, hidden, 3, padding=dilation, dilation=dilation)
        self.norm = torch.nn.LayerNorm(hidden)

    def forward(self, h):
        c = self.conv(h.T.unsqueeze(0)).squeeze(0).T
        return self.norm(h + torch.relu(c))


class Reference(torch.nn.Module):
    """The tagger over one whole text: [tokens, 8] feature ids -> [tokens, labels]."""

    def __init__(self, buckets, dim, hidden, dilations, labels=37):
        super().__init__()
        self.embed = torch.nn.Embedding(buckets, dim)
        self.input = torch.nn.Linear(dim, hidden)
        self.blocks = torch.nn.ModuleList(Block(hidden, d) for d in dilations)
        self.output = torch.nn.Linear(hidden, labels)

    def forward(self, ids):
        h = torch.relu(self.input(self.embed(ids).sum(1)))
        for b in self.blocks:
            h = b(h)
        return self.output(h)


def reference(path):
    ref = Reference(**SMALL)
    ref.load_state_dict({k: v.float() for k, v in load_file(str(path)).items() if k != "known_words"})
    return ref


def test_logits_equal_the_pytorch_reference_on_short_long_and_chinese_notes(tiny):
    ref = reference(tiny)
    long_note = " ".join(f"Seen by Dr. Mere Tapsell on 3/{i % 28 + 1}/2024, MRN 8596-6202-{i}." for i in range(260))
    for text in ["Patient Drew Castellanos called 2535550101.", "患者李建国，男，68岁，电话13812345678。", long_note]:
        got = medgen.deid.deid_tagger_logits(text, tagger=tiny)
        ids = torch.tensor(got["features"])
        with torch.no_grad():
            want = ref(ids).numpy()
        assert len(got["logits"]) == len(got["tokens"]) == len(ids)
        np.testing.assert_allclose(np.array(got["logits"]), want, atol=1e-4, rtol=1e-4)
    assert len(medgen.deid.deid_tagger_logits(long_note, tagger=tiny)["tokens"]) > 2 * 1024, "more than two windows"


def test_logits_on_the_kernels_of_cpus_without_avx2_equal_the_reference_too(tiny):
    """Inference runs on medgen's own matrix kernel; MEDGEN_SCALAR_KERNELS forces the plain
    Rust path that CPUs without AVX2 take."""
    import os
    import subprocess
    import sys

    text = "Seen by Dr. Mere Tapsell on 3/14/2024, MRN 8596-6202-4. 患者李建国，电话13812345678。" * 40
    code = ("import sys, json, torch, medgen; "
            "print(json.dumps(medgen.deid.deid_tagger_logits(sys.argv[1], tagger=sys.argv[2])))")
    out = subprocess.run([sys.executable, "-c", code, text, str(tiny)], env={**os.environ, "MEDGEN_SCALAR_KERNELS": "1"},
                         capture_output=True, text=True, check=True, timeout=300).stdout
    got = json.loads(out)
    with torch.no_grad():
        want = reference(tiny)(torch.tensor(got["features"])).numpy()
    np.testing.assert_allclose(np.array(got["logits"]), want, atol=1e-4, rtol=1e-4)


def fnv(tag, s):
    h = 0xCBF29CE484222325
    for b in bytes([tag]) + s.encode():
        h = ((h ^ b) * 0x100000001B3) % 2**64
    return h


def tokens_and_features(text, buckets):
    """The documented tokenization and the first seven features (the eighth reads word lists)."""
    toks, line_start, new_line = [], [], True
    for m in re.finditer(r"\s+|[^\W\d_]+|\d+|.", text):
        s = m.group()
        if s.isspace():
            new_line = new_line or "\n" in s
            continue
        pieces = [s] if CJK.match(s) or len(s) == 1 else [s[i:i + 32] for i in range(0, len(s), 32)]
        if CJK.match(s[0]):
            pieces = list(s)
        at = m.start()
        for p in pieces:
            toks.append((at, at + len(p)))
            line_start.append(new_line)
            new_line = False
            at += len(p)

    def shape_char(c):
        return "H" if CJK.match(c) else "d" if c.isdigit() else "X" if c.isupper() else "x" if c.isalpha() else c

    feats = []
    for i, (s, e) in enumerate(toks):
        tok = text[s:e]
        low = tok.lower()
        shape = re.sub(r"(.)\1{2,}", r"\1\1", "".join(map(shape_char, tok)))
        cls = shape_char(tok[0]) if shape_char(tok[0]) in "HdXx" else "o"
        before = i > 0 and toks[i - 1][1] == s
        after = i + 1 < len(toks) and toks[i + 1][0] == e
        long = len(low) > 3
        feats.append([fnv(ord(t), v) % buckets for t, v in [
            ("w", low), ("s", shape), ("p", low[:3] if long else ""), ("f", low[-3:] if long else ""),
            ("l", f"{cls}{min(len(low), 20)}"), ("g", f"{int(before)}{int(after)}{cls}"), ("n", f"{int(line_start[i])}{cls}")]])
    return toks, feats


def test_tokens_and_features_are_those_documented_and_unlearned_words_are_unknown(tiny):
    text = "MRN: A12-34 (Dr. O'Brien)\nSMITH, JOHN  seen 2024-03-14;\n患者李建国 电话13812345678。 Zoë Xqzvbn"
    got = medgen.deid.deid_tagger_logits(text, tagger=tiny)
    toks, feats = tokens_and_features(text, SMALL["buckets"])
    known = load_file(str(tiny))["known_words"].numpy()
    unknown = fnv(ord("w"), "\0unk") % SMALL["buckets"]
    for f in feats:
        f[0] = f[0] if known[f[0]] else unknown
    assert [tuple(t) for t in got["tokens"]] == toks
    assert [f[:7] for f in got["features"]] == feats
    assert got["features"][-1][0] == unknown and got["features"][0][0] != unknown


def bio_labels(tokens, entities, categories):
    labels, prev = [], None
    for s, _ in tokens:
        hit = next((i for i, (a, b, _) in enumerate(entities) if a <= s < b), None)
        if hit is None:
            labels.append(0)
        else:
            c = categories.index(entities[hit][2])
            labels.append(2 + 2 * c if prev == hit else 1 + 2 * c)
        prev = hit
    return labels


def test_two_training_steps_equal_torch_adamw_with_clipping_and_the_linear_schedule(data, tiny, tmp_path):
    d, _, _ = data
    paths = sorted((ROOT / "tests" / "data" / "deid").glob("*_0[12].txt"))[:6]
    train = notes_jsonl(tmp_path / "t.jsonl", paths)
    out = tmp_path / "stepped.safetensors"
    lr, wd = 5e-3, 0.1
    medgen.deid.train_deid_tagger(train, out, init=tiny, epochs=2, batch_size=len(paths), shuffle=False, lr=lr,
                                  warmup_ratio=0.0, weight_decay=wd, max_grad_norm=0.5, half=False, word_dropout=0.0,
                                  **SMALL)
    ref = reference(tiny)
    categories = [c.removeprefix("B-") for c in medgen.deid.deid_tagger_logits("x", tagger=tiny)["labels"][1::2]]
    batch = []
    for p in paths:
        text, spans = load_note(p)
        got = medgen.deid.deid_tagger_logits(text, tagger=tiny)
        ents = sorted((s, e, c) for c, s, e in spans)
        batch.append((torch.tensor(got["features"]), torch.tensor(bio_labels(got["tokens"], ents, categories))))
    decay = [p for n, p in ref.named_parameters() if n.endswith(".weight") and "norm" not in n and n != "embed.weight"]
    rest = [p for n, p in ref.named_parameters() if not any(p is q for q in decay)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}], lr=lr)
    sched = get_linear_schedule_with_warmup(opt, 0, 2)
    for _ in range(2):
        logits = torch.cat([ref(ids) for ids, _ in batch])
        loss = torch.nn.functional.cross_entropy(logits, torch.cat([lab for _, lab in batch]))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.5)
        opt.step()
        sched.step()
        opt.zero_grad()
    got = load_file(str(out))
    assert (got["known_words"] == load_file(str(tiny))["known_words"]).all(), "init's known words stay"
    for name, p in ref.state_dict().items():
        np.testing.assert_allclose(got[name].float().numpy(), p.detach().numpy(), atol=2e-5, err_msg=name)


def test_engines_agree_with_their_parts_and_the_ensemble_unites_them():
    text = ("Patient Drew Castellanos (MRN 8596-6202-4) was seen on 03/14/2024 by Dr. Mere Tapsell. "
            "Call 2535550101. 患者欧阳建国，电话13812345678。")
    rules = medgen.deid.detect(text, engine="rules")
    model = medgen.deid.detect(text, engine="model")
    both = medgen.deid.detect(text)
    assert both == medgen.deid.detect(text, engine="ensemble")
    covered = lambda ents: {i for e in ents for i in range(e["start"], e["end"])}
    assert covered(rules) | covered(model) == covered(both)
    for e in both:
        assert text[e["start"]:e["end"]] == e["text"] and 0 < e["confidence"] <= 1
    spans = lambda ents: [(e["category"], e["start"], e["end"], round(e["confidence"], 4)) for e in ents]
    assert [spans(x) for x in medgen.deid.detect_batch([text, "", text])] == [spans(both), [], spans(both)]
    out = medgen.deid.deidentify(text)
    assert medgen.deid.reidentify(out["text"], out["mapping"]) == text


def test_the_cli_takes_the_engine_and_a_tagger_file(tiny):
    text = "Seen by Dr. Ann Lee on 03/14/2024."
    for engine in ["rules", "model", "ensemble"]:
        r = run_medgen("deid", "--json", "--engine", engine, input=text, check=False)
        assert r.returncode == 0, r.stderr
    r = run_medgen("deid", "--json", "--engine", "model", "--tagger", str(tiny), input=text, check=False)
    assert r.returncode == 0, r.stderr
    r = run_medgen("deid", "--engine", "neural", input=text, check=False)
    assert r.returncode == 1 and "unknown engine" in r.stderr


@pytest.mark.parametrize("content", [b"", b"\x00" * 7, b"not a safetensors file at all", b"\x10\x00\x00\x00\x00\x00\x00\x00{}"])
def test_a_corrupt_or_missing_tagger_is_a_clear_error_and_the_rules_still_work(tmp_path, content):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    for path in [bad, tmp_path / "missing.safetensors"]:
        with pytest.raises(medgen.ModelLoadError):
            medgen.deid.detect("Dr. Ann Lee", engine="model", tagger=path)
        with pytest.raises(medgen.ModelLoadError):
            medgen.deid.deidentify("Dr. Ann Lee", tagger=path)
        r = run_medgen("deid", "--tagger", str(path), input="Dr. Ann Lee", check=False)
        assert r.returncode == 1 and str(path.name) in r.stderr
    assert medgen.deid.detect("Dr. Ann Lee", engine="rules", tagger=bad)[0]["text"] == "Ann Lee"


def load_metadata(path):
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        return f.metadata()


def test_a_tagger_of_other_sizes_missing_tensors_or_nan_weights_is_refused(tiny, tmp_path):
    from safetensors.torch import save_file
    tensors = load_file(str(tiny))
    meta = json.loads(json.dumps({"format": "medgen-deid-tagger", "config": json.dumps(SMALL)}))
    del tensors["output.bias"]
    save_file(tensors, str(tmp_path / "short.safetensors"), metadata=meta)
    with pytest.raises(medgen.ModelLoadError, match="output.bias"):
        medgen.deid.detect("Dr. Ann Lee", engine="model", tagger=tmp_path / "short.safetensors")
    save_file(load_file(str(tiny)), str(tmp_path / "nometa.safetensors"))
    with pytest.raises(medgen.ModelLoadError, match="config"):
        medgen.deid.detect("Dr. Ann Lee", engine="model", tagger=tmp_path / "nometa.safetensors")
    # A NaN or infinite weight would make every confidence NaN: refused by name.
    for value in [float("nan"), float("inf")]:
        tensors = load_file(str(tiny))
        tensors["blocks.1.conv.weight"][0, 0, 0] = value
        save_file(tensors, str(tmp_path / "nan.safetensors"), metadata=load_metadata(tiny))
        with pytest.raises(medgen.ModelLoadError, match="blocks.1.conv.weight"):
            medgen.deid.detect("Dr. Ann Lee", engine="ensemble", tagger=tmp_path / "nan.safetensors")


@pytest.mark.parametrize("line, message", [
    ('{"text": "Ann", "entities": [{"start": 0, "end": 9, "category": "NAME"}]}', "past the text"),
    ('{"text": "Ann Lee", "entities": [{"start": 0, "end": 3, "category": "NAME"}, '
     '{"start": 2, "end": 7, "category": "NAME"}]}', "overlap"),
    ('{"text": "Ann", "entities": [{"start": 0, "end": 3, "category": "PERSON"}]}', "unknown category"),
    ('{"text": "Ann", "entities": [{"start": 2, "end": 2, "category": "NAME"}]}', "empty"),
    ("not json", "line 1"),
])
def test_bad_training_data_is_refused_with_its_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(medgen.InvalidArgumentError, match=message):
        medgen.deid.train_deid_tagger(path, tmp_path / "out.safetensors", max_steps=1, **SMALL)
    assert not (tmp_path / "out.safetensors").exists()


def test_bad_training_options_are_refused_and_an_existing_output_is_kept(data, tmp_path):
    _, train, _ = data
    with pytest.raises(medgen.InvalidArgumentError, match="max_steps"):
        medgen.deid.train_deid_tagger(train, tmp_path / "o.safetensors", **{**SMALL, "max_steps": 0})
    assert not (tmp_path / "o.safetensors").exists()
    for kwargs in [dict(epochs=0), dict(batch_size=0), dict(lr=0.0), dict(lr=float("nan")), dict(window=4),
                   dict(dilations=[]), dict(dilations=[40]), dict(buckets=0), dict(weight_decay=-1.0),
                   dict(word_dropout=1.0), dict(word_dropout=-0.1)]:
        with pytest.raises(medgen.InvalidArgumentError):
            medgen.deid.train_deid_tagger(train, tmp_path / "o.safetensors", max_steps=1, **{**SMALL, **kwargs})
    out = tmp_path / "kept.safetensors"
    out.write_bytes(b"keep")
    with pytest.raises(medgen.InvalidArgumentError, match="exists"):
        medgen.deid.train_deid_tagger(train, out, max_steps=1, **SMALL)
    assert out.read_bytes() == b"keep"


def test_long_odd_and_mixed_notes_keep_offsets_on_the_text():
    one_line = ("Pt Drew Castellanos MRN 8596-6202-4 call 2535550101 " * 20000)[:1_000_000]
    mixed = "患者Mere Tapsell于2024年3月15日入院\x00\x07，tel 13812345678\u200b，Zoë Ngata-Ruawai 🙂 e\u0301"
    for text in [one_line, mixed, "\x01\x02\x03", " " * 1000]:
        found = medgen.deid.detect(text)
        for e in found:
            assert text[e["start"]:e["end"]] == e["text"]
    assert len(medgen.deid.detect(one_line)) > 10000
