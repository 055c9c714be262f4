"""The network's own signal for attribution: teacher-forced log-probabilities and attention
(medgen's `Model.forced`) against transformers' eager attention for every family, the signal's
improvement over lexical attribution on the hand-annotated pairs, and the typed errors."""

import json
import math
import re

import pytest
import torch

import medgen
import medgen.review
from conftest import run_medgen
from test_review import long_tiny, make_long_tiny  # noqa: F401  (the fixture and its maker)
from bench_review import evaluate, load_pairs, ratios

PROMPT = "Admitted with pneumonia. Started ceftriaxone 1 g daily. No fever."
TARGET = "Pneumonia treated with ceftriaxone."


def reference(path, kind, prompt, target):
    """Log-probabilities and the mean over layers and heads of the attention at the positions
    predicting `target`, on the prompt's tokens, from transformers with eager attention."""
    import transformers as tf

    p, n = len(prompt), len(target)
    if kind == "bart":
        hf = tf.AutoModelForSeq2SeqLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()
        dec = [hf.config.decoder_start_token_id] + target[:-1]
        with torch.no_grad():
            out = hf(input_ids=torch.tensor([prompt]), decoder_input_ids=torch.tensor([dec]), output_attentions=True)
        logits = out.logits[0]
        att = torch.stack(out.cross_attentions).mean(dim=(0, 2))[0]
    else:
        hf = tf.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()
        with torch.no_grad():
            out = hf(input_ids=torch.tensor([prompt + target[:-1]]), output_attentions=True)
        logits = out.logits[0, p - 1:]
        att = torch.stack(out.attentions).mean(dim=(0, 2))[0, p - 1:, :p]
    lp = torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(target).unsqueeze(1))[:, 0]
    assert att.shape == (n, p)
    return lp, att


@pytest.mark.parametrize("kind", ["llama", "gpt2", "qwen2", "gemma3", "bart"])
def test_forced_reading_is_transformers_eager_attention(long_tiny, kind):  # noqa: F811
    from transformers import AutoTokenizer

    path = long_tiny[kind]
    tok = AutoTokenizer.from_pretrained(path)
    # Long enough that Gemma 3's local layers (window 16) mask part of the prompt.
    prompt = tok(PROMPT * 2, add_special_tokens=False)["input_ids"]
    target = tok(TARGET, add_special_tokens=False)["input_ids"]
    lp, att = reference(path, kind, prompt, target)
    out = medgen.Model.load(str(path)).forced(prompt, target)
    assert torch.tensor(out["logprobs"]) == pytest.approx(lp, abs=2e-4)
    assert torch.tensor(out["attention"]) == pytest.approx(att, abs=2e-5)


@pytest.mark.parametrize("kind", ["llama", "bart"])
def test_a_target_longer_than_the_probes_block_reads_as_transformers(long_tiny, kind):  # noqa: F811
    """The probe records 256 query rows at a time: a 300-token target crosses a block."""
    from transformers import AutoTokenizer

    path = long_tiny[kind]
    tok = AutoTokenizer.from_pretrained(path)
    prompt = tok(PROMPT, add_special_tokens=False)["input_ids"]
    target = tok(" ".join([TARGET] * 60), add_special_tokens=False)["input_ids"][:300]
    assert len(target) == 300
    lp, att = reference(path, kind, prompt, target)
    out = medgen.Model.load(str(path)).forced(prompt, target)
    assert torch.tensor(out["logprobs"]) == pytest.approx(lp, abs=2e-4)
    assert torch.tensor(out["attention"]) == pytest.approx(att, abs=2e-5)


def test_forced_bad_input(long_tiny):  # noqa: F811
    m = medgen.Model.load(str(long_tiny["llama"]))
    for prompt, target, name in [([], [1], "prompt"), ([1], [], "target"), ([1], [10**6], "ids"), ([1] * 1024, [1, 2], "target")]:
        with pytest.raises(medgen.InvalidArgumentError, match=name):
            m.forced(prompt, target)


@pytest.fixture(scope="module")
def default_model():
    return medgen.Model.load()


def test_the_signal_is_shares_per_clause_and_gains_per_sentence(default_model):
    source = "Admitted with pneumonia. Treated with ceftriaxone 1 g IV daily. Denies chest pain."
    draft = "Diagnoses:\n- Pneumonia\nCourse:\nCeftriaxone 1 g daily was given. He enjoys golf."
    sig = default_model.network_signal(source, draft, "discharge_summary")
    lexical = medgen.review.attribute(source, draft)
    assert len(sig["shares"]) == len(sig["gains"]) == len(lexical) == 3
    for row in sig["shares"]:
        assert len(row) == 3 and math.isclose(sum(row), 1.0, abs_tol=1e-4)
    # The sentence the note states gains more than the one it does not.
    assert sig["gains"][1] > sig["gains"][2]
    units = medgen.review.attribute(source, draft, signal=sig)
    assert [u["note_gain"] for u in units] == pytest.approx(sig["gains"])
    assert units == medgen.review.attribute(source, draft, model=default_model, task="discharge_summary")
    assert units[1]["supported"] and not units[2]["supported"]


@pytest.mark.long
def test_the_signal_improves_attribution_on_the_annotated_pairs(default_model):
    """Half the hand-annotated set (the even pairs; the README reports all of it). Lexical
    attribution flags too many paraphrases as unsupported; the note's gain in likelihood
    rescues them, and attention adds supporting spans the matching misses."""
    pairs = load_pairs()[::2]
    signals = {(p["source"], p["draft"]): default_model.network_signal(p["source"], p["draft"], p["task"]) for p in pairs}
    lexical = ratios(evaluate(pairs, medgen.review.attribute)["all"])
    network = ratios(evaluate(pairs, lambda s, d: medgen.review.attribute(s, d, signal=signals[(s, d)]))["all"])
    assert network["unsupported_precision"] >= lexical["unsupported_precision"] + 0.08, (lexical, network)
    assert network["unsupported_recall"] >= lexical["unsupported_recall"] - 0.03, (lexical, network)
    assert network["span_recall"] >= lexical["span_recall"] + 0.02, (lexical, network)
    assert network["span_precision"] >= lexical["span_precision"] - 0.03, (lexical, network)


def test_signal_bad_input(tmp_path, default_model):
    source, draft = "Cough for two days. No fever.", "Cough for two days."
    with pytest.raises(medgen.InvalidArgumentError, match="task"):
        medgen.review.attribute(source, draft, model=default_model)
    with pytest.raises(medgen.InvalidArgumentError, match="task"):
        medgen.review.attribute(source, draft, task="discharge_summary")
    with pytest.raises(medgen.InvalidArgumentError, match="task"):
        default_model.network_signal(source, draft, "no_such_task")
    with pytest.raises(medgen.InvalidArgumentError, match="signal"):
        medgen.review.attribute(source, draft, signal={"shares": [[1.0]], "gains": []})
    for s, d, name in [(" ", draft, "source"), (source, "Plan:\n", "draft")]:
        with pytest.raises(medgen.InvalidArgumentError, match=name):
            default_model.network_signal(s, d, "discharge_summary")
    with pytest.raises(medgen.InvalidArgumentError, match="source"):
        default_model.network_signal("Cough. " * 5000, draft, "discharge_summary")
    # The command line: --task adds the default model's signal; --model needs --task.
    src, drf = tmp_path / "s.txt", tmp_path / "d.txt"
    src.write_text(source)
    drf.write_text(draft)
    lines = [json.loads(x) for x in run_medgen("review", "attribute", "--source", src, "--draft", drf, "--task", "soap_note").stdout.splitlines()]
    assert lines == medgen.review.attribute(source, draft, model=default_model, task="soap_note")
    proc = run_medgen("review", "attribute", "--source", src, "--draft", drf, "--model", "x.gguf", check=False)
    assert proc.returncode != 0 and "required" in proc.stderr


def test_a_draft_past_the_context_is_read_as_far_as_it_goes(long_tiny, tmp_path):  # noqa: F811
    """A draft longer than the context leaves after the prompt: the units that fit get the
    signal, the rest none; and a task whose draft filled a short context attributes it."""
    import shutil

    model = medgen.Model.load(str(long_tiny["llama"]))  # context 1024
    source = "Cough for two days. No fever. Started amoxicillin 500 mg."
    draft = "Cough for two days. " * 600  # about 3,000 tokens
    sig = model.network_signal(source, draft, "discharge_summary")
    read = len(sig["gains"])
    assert len(sig["shares"]) == read and 50 < read < 600, read
    assert all(any(row) for row in sig["shares"]) and all(g != 0 for g in sig["gains"])
    # The sentences read have the note's gain; those past the context have none.
    units = medgen.review.attribute(source, draft, model=model, task="discharge_summary")
    assert len(units) == 600
    assert all("note_gain" in u for u in units[:read]) and not any("note_gain" in u for u in units[read:])
    with pytest.raises(medgen.InvalidArgumentError, match="signal"):
        medgen.review.attribute(source, "Cough for two days.", signal={"shares": sig["shares"][:2], "gains": sig["gains"][:2]})
    # A model whose context the task's prompt and draft fill exactly; its draft, read again,
    # is some 76 tokens for the 48 generated (random tokens re-merge differently).
    model = medgen.Model.load(str(long_tiny["qwen2"]))
    short = tmp_path / "short"
    shutil.copytree(long_tiny["qwen2"], short)
    config = json.loads((short / "config.json").read_text())
    note = "Admitted with pneumonia. Started ceftriaxone 1 g daily. No fever. Discharged home."
    with pytest.raises(medgen.ContextLengthError) as e:  # its message counts the prompt's tokens
        model.run_task("discharge_summary", note, max_new_tokens=1000, deid="none")
    # The network reads the prompt and all but the last of the new tokens.
    prompt_len = int(re.search(r"(\d+) tokens needed", str(e.value)).group(1)) - 999
    config["max_position_embeddings"] = prompt_len + 48
    (short / "config.json").write_text(json.dumps(config))
    result = medgen.Model.load(str(short)).run_task("discharge_summary", note, max_new_tokens=48, min_new_tokens=48,
                                                   network_attribution=True, deid="none")
    assert result["attributions"] and all("note_gain" in u for u in result["attributions"])


def test_a_task_attributes_with_the_models_signal_and_re_identifies_its_offsets(default_model):
    note = ("Patient John Carter, 67, admitted on 03/14/2024 with community-acquired pneumonia. "
            "Started ceftriaxone 1 g IV daily. Seen by Dr. Alice Wong. No fever, denies chest pain.")
    kw = dict(max_new_tokens=48, network_attribution=True)
    plain = default_model.run_task("discharge_summary", note, **kw)
    back = default_model.run_task("discharge_summary", note, reidentify=True, **kw)
    lexical = default_model.run_task("discharge_summary", note, max_new_tokens=48)
    assert plain["text"] == lexical["text"]
    # The signal is the model's reading of the de-identified texts, the same either way.
    assert [u["note_gain"] for u in back["attributions"]] == pytest.approx([u["note_gain"] for u in plain["attributions"]])
    assert all("note_gain" not in u for u in lexical["attributions"])
    for r in [plain, back]:
        assert r["attributions"]
        for u in r["attributions"]:
            assert r["text"][u["start"]:u["end"]] == u["text"]
            for s in u["spans"]:
                assert 0 <= s["start"] < s["end"] <= len(r["source"])
    # The re-identified spans cover the same words of the original note.
    strip = lambda t: re.sub(r"\[[A-Z]+_\d+\]|John Carter|Alice Wong|03/14/2024", "", t)
    for a, b in zip(plain["attributions"], back["attributions"]):
        assert [strip(plain["source"][s["start"]:s["end"]]) for s in a["spans"]] == \
               [strip(back["source"][s["start"]:s["end"]]) for s in b["spans"]]
