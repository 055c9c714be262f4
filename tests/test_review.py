"""Clinician review: the section constraint (against a reference written here as a transformers
LogitsProcessor, and every family, decoding mode and task), attribution quality on the
hand-annotated pairs of tests/data/attribution, token confidence, and the typed errors."""

import json
import re
import sys
from pathlib import Path

import pytest
import torch

import medgen
from conftest import ROOT, _train_tokenizer, cached, medgen_json, run_medgen

sys.path.insert(0, str(ROOT / "bench"))
from bench_review import evaluate, load_pairs, ratios  # noqa: E402

NOTE = ("Patient is a 67-year-old woman admitted with community-acquired pneumonia. Blood pressure 142/88 mmHg, "
        "heart rate 96. Started ceftriaxone 1 g IV daily. No fever, denies chest pain.")
NOTE_ZH = "患者男性，50岁，主诉胸痛。否认发热。"
# The T5-style prompts of medgen-core/src/tasks/catalog.rs, which a model without a chat
# template gets.
T5_PREFIX = {"discharge_summary": "summarize: ", "soap_note": "summarize dialogue: "}
TASKS = ["discharge_summary", "radiology_impression", "soap_note", "diagnostic_report", "operative_note",
         "patient_explanation", "question_summary"]


def make_long_tiny(kind, path):
    """A tiny random-weight model with a context long enough for a task's prompt."""
    import transformers as tf

    torch.manual_seed({"llama": 31, "gpt2": 32, "qwen2": 33, "gemma3": 34, "bart": 35}[kind])
    path.mkdir(parents=True, exist_ok=True)
    if kind == "bart":
        from test_seq2seq import _tokenizer

        tok = _tokenizer("bart", path)
        cfg = tf.BartConfig(vocab_size=len(tok), d_model=64, encoder_layers=2, decoder_layers=2,
                            encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=96,
                            decoder_ffn_dim=96, max_position_embeddings=512, bos_token_id=0, pad_token_id=1,
                            eos_token_id=2, decoder_start_token_id=2, forced_bos_token_id=None,
                            forced_eos_token_id=None, init_std=0.2)
        tf.BartForConditionalGeneration(cfg).save_pretrained(path)
        return
    tok = _train_tokenizer(path)
    n, eos = len(tok), tok.eos_token_id
    if kind == "llama":
        model = tf.LlamaForCausalLM(tf.LlamaConfig(vocab_size=n, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                                   num_attention_heads=4, num_key_value_heads=2,
                                                   max_position_embeddings=1024, bos_token_id=eos, eos_token_id=eos))
    elif kind == "gpt2":
        model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=n, n_positions=1024, n_embd=64, n_layer=2, n_head=4,
                                                 bos_token_id=eos, eos_token_id=eos))
    elif kind == "qwen2":
        model = tf.Qwen2ForCausalLM(tf.Qwen2Config(vocab_size=n, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                                   num_attention_heads=4, num_key_value_heads=2,
                                                   max_position_embeddings=1024, bos_token_id=eos, eos_token_id=eos))
    else:
        model = tf.Gemma3ForCausalLM(tf.Gemma3TextConfig(vocab_size=n, hidden_size=64, intermediate_size=96,
                                                         num_hidden_layers=2, num_attention_heads=4,
                                                         num_key_value_heads=2, head_dim=16, sliding_window=16,
                                                         max_position_embeddings=1024, bos_token_id=eos,
                                                         eos_token_id=eos, pad_token_id=eos))
    model.save_pretrained(path)


@pytest.fixture(scope="module")
def long_tiny():
    out = {}
    for kind in ["llama", "gpt2", "qwen2", "gemma3", "bart"]:
        out[kind] = cached(ROOT / "tests" / ".cache" / "tiny" / f"review_{kind}",
                           lambda path, kind=kind: make_long_tiny(kind, path))
    return out


def three_ways(path):
    """A tiny model as transformers' tokenizer, transformers' model and medgen's model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return AutoTokenizer.from_pretrained(path), hf, medgen.Model.load(str(path))


def heading_lines(text):
    """The lines of `text` that are a canonical heading with a colon, in order."""
    return [line.strip()[:-1] for line in text.splitlines() if line.strip().endswith((":", "："))]


def assert_sections_in_order(task, text, chinese=False):
    """Every required heading once, in order; nothing after the last section's blank line."""
    names = medgen.tasks.info(task)["sections"]
    found = medgen.tasks.sections(task, text)
    assert found["missing"] == [], (task, text)
    positions = []
    for name in names:
        hits = [m.start() for m in re.finditer(rf"(?m)^\s*{re.escape(name)}:\s*$", text)] if not chinese else [0]
        if not chinese:
            assert len(hits) == 1, (name, text)
            positions.append(hits[0])
    assert positions == sorted(positions), text


class SectionReference:
    """The section constraint's documented rules, written again for transformers: force each
    heading, move EOS to a line break inside a section, end a section at a blank line after
    text, force the next heading when the budget is only enough for the rest."""

    def __init__(self, tok, task, prompt_len, max_new):
        self.prompt_len, self.max_new = prompt_len, max_new
        self.names = medgen.tasks.info(task)["sections"]
        enc = lambda s: tok.encode(s, add_special_tokens=False)
        self.forced = [[enc("\n\n" + h + ":\n"), enc("\n" + h + ":\n"), enc(h + ":\n")] for h in self.names]
        self.reserve = [0] * (len(self.names) + 1)
        for j in reversed(range(len(self.names))):
            self.reserve[j] = self.reserve[j + 1] + max(len(f) for f in self.forced[j])
        nl, nl2 = enc("\n"), enc("\n\n")
        self.newline = [nl[0], nl2[0] if len(nl2) == 1 else nl[0]]
        self.texts = [tok.decode([i], skip_special_tokens=True) for i in range(len(tok))]
        self.eos = tok.eos_token_id
        self.keys = [re.sub(r"\W", "", n.lower()) for n in self.names]
        self.closers = [i for i, t in enumerate(self.texts) if t.lstrip(" ").startswith((":", "：", "\n", "*", "】"))]

    def budget(self, st, p):
        if st[0] == "body" and st[1] + 1 < len(self.names) and self.max_new - p <= self.reserve[st[1] + 1]:
            return ("head", st[1] + 1, min(st[4], 2), 0)
        return st

    def read(self, st, token):
        text = self.texts[token]
        if st[0] == "head":
            _, j, t, pos = st
            pos += self.forced[j][t][pos] == token
            return st[:3] + (pos,) if pos < len(self.forced[j][t]) else ("body", j, "", False, 1)
        if st[0] == "done":
            return st
        _, j, line, has_text, breaks = st
        for c in text:
            if c != "\n":
                line += c
                if not c.isspace():
                    has_text, breaks = True, 0
                continue
            line, breaks = "", breaks + 1
            if has_text and breaks >= 2:
                return ("head", j + 1, 2, 0) if j + 1 < len(self.names) else ("done",)
        return ("body", j, line, has_text, breaks)

    def __call__(self, input_ids, scores):
        for row in range(scores.shape[0]):
            gen = input_ids[row, self.prompt_len:].tolist()
            st = ("head", 0, 2, 0)
            for p, token in enumerate(gen):
                st = self.budget(st, p)
                if self.texts[token]:
                    st = self.read(st, token)
            st = self.budget(st, len(gen))
            s = scores[row]
            if st[0] in ("head", "done"):
                keep = self.forced[st[1]][st[2]][st[3]] if st[0] == "head" else self.eos
                value = s[keep].clone()
                s[:] = float("-inf")
                s[keep] = value if torch.isfinite(value) else 0.0
            else:
                _, j, line, has_text, breaks = st
                if j + 1 < len(self.names):
                    eos = s[self.eos].clone()
                    s[self.eos] = float("-inf")
                    if has_text:
                        nl = self.newline[1 if breaks == 0 else 0]
                        s[nl] = torch.logaddexp(s[nl], eos)
                key = re.sub(r"\W", "", line.lower())
                if key and any(k == key for i, k in enumerate(self.keys) if i != j + 1):
                    s[self.closers] = float("-inf")
        return scores


@pytest.mark.parametrize("kind", ["llama", "gpt2", "qwen2", "gemma3"])
@pytest.mark.parametrize("task", ["discharge_summary", "soap_note"])
@pytest.mark.parametrize("beams", [1, 3])
def test_the_constraint_decodes_as_the_reference_logits_processor(long_tiny, kind, task, beams):
    tok, hf, model = three_ways(long_tiny[kind])
    max_new = 96
    out = model.run_task(task, NOTE, deid="none", constrain_sections=True, max_new_tokens=max_new, num_beams=beams)
    # run_task prompts a model without a chat template with the task's T5-style prompt.
    ids = model.tokenize(T5_PREFIX[task] + NOTE)
    ref = SectionReference(tok, task, len(ids), max_new)
    with torch.no_grad():
        gen = hf.generate(torch.tensor([ids]), max_new_tokens=max_new, do_sample=False, num_beams=beams,
                          logits_processor=[ref], pad_token_id=tok.eos_token_id, early_stopping=False,
                          length_penalty=1.0)
    best = gen[0, len(ids):].tolist()
    expected = tok.decode(best, skip_special_tokens=True)
    assert_sections_in_order(task, out["text"])
    if beams == 1 or out["text"] == expected:
        assert out["text"] == expected
        return
    # Beam search is a heuristic: where medgen's beams end elsewhere than transformers', its
    # sequence must score at least as well under the reference processor (a near tie).
    mine = tok.encode(out["text"], add_special_tokens=False)
    mine += [tok.eos_token_id] if len(mine) < max_new else []
    assert tok.decode(mine, skip_special_tokens=True) == out["text"]
    best = best[:best.index(tok.eos_token_id) + 1] if tok.eos_token_id in best else best
    assert processed_score(hf, ref, ids, mine) >= processed_score(hf, ref, ids, best) - 1e-4


def processed_score(hf, ref, ids, new):
    """A continuation's beam score under `ref`: its processed log-probabilities over its length."""
    seq = ids + new
    with torch.no_grad():
        logits = hf(torch.tensor([seq])).logits[0]
    total = 0.0
    for i, t in enumerate(new):
        lp = torch.log_softmax(logits[len(ids) + i - 1], -1)[None].clone()
        total += float(ref(torch.tensor([seq[:len(ids) + i]]), lp)[0, t])
    return total / len(new)


@pytest.mark.parametrize("kind", ["llama", "gpt2", "qwen2", "gemma3", "bart"])
def test_every_task_family_and_mode_gets_every_section_in_order(long_tiny, kind):
    model = medgen.Model.load(str(long_tiny[kind]))
    modes = [dict(), dict(do_sample=True, temperature=1.5, seed=7), dict(num_beams=3)]
    for task in TASKS:
        for mode in modes:
            out = model.run_task(task, NOTE, deid="none", constrain_sections=True, max_new_tokens=120, **mode)
            assert_sections_in_order(task, out["text"])
            assert out["missing_sections"] == []


def test_chinese_notes_get_chinese_headings_in_order(long_tiny):
    model = medgen.Model.load(str(long_tiny["llama"]))
    out = model.run_task("discharge_summary", NOTE_ZH, deid="none", constrain_sections=True, max_new_tokens=120)
    heads = heading_lines(out["text"])
    assert heads[:1] == ["出院诊断"] and out["missing_sections"] == [], out["text"]
    assert [h for h in heads if h in ("出院诊断", "诊疗经过", "出院带药", "出院医嘱")] == ["出院诊断", "诊疗经过", "出院带药", "出院医嘱"]


def test_the_default_model_writes_every_section_of_every_task():
    """The shipped model and adapter, greedy, on two notes: 100 % of the drafts have every
    required heading once and in order."""
    note2 = (ROOT / "examples" / "notes" / "admission_note_phi.txt").read_text()
    for note in [NOTE, note2]:
        for task in TASKS:
            out = medgen_json("task", task, "--constrain-sections", "--max-new-tokens", 100, "--json", input=note)
            assert_sections_in_order(task, out["text"])


def test_without_the_constraint_the_task_decodes_as_transformers(long_tiny):
    """The unconstrained path is unchanged: greedy tokens equal transformers' generate."""
    tok, hf, model = three_ways(long_tiny["llama"])
    out = model.run_task("discharge_summary", NOTE, deid="none", max_new_tokens=30, min_new_tokens=30)
    ids = model.tokenize("summarize: " + NOTE)
    with torch.no_grad():
        gen = hf.generate(torch.tensor([ids]), max_new_tokens=30, min_new_tokens=30, do_sample=False,
                          pad_token_id=tok.eos_token_id)
    assert out["text"] == tok.decode(gen[0, len(ids):], skip_special_tokens=True)


def test_a_budget_too_small_for_the_sections_is_an_error_before_decoding(long_tiny):
    model = medgen.Model.load(str(long_tiny["llama"]))
    with pytest.raises(medgen.InvalidArgumentError, match="max_new_tokens.*required sections"):
        model.run_task("operative_note", NOTE, deid="none", constrain_sections=True, max_new_tokens=8)
    proc = run_medgen("task", "soap_note", "--model", long_tiny["llama"], "--constrain-sections",
                      "--max-new-tokens", 3, "--deid", "none", input=NOTE, check=False)
    assert proc.returncode != 0 and "max_new_tokens" in proc.stderr


def test_token_confidence_is_the_models_own_probability(long_tiny):
    """Each token's probability (and its best alternative's) equals the softmax of
    transformers' logits at that step."""
    tok, hf, model = three_ways(long_tiny["gpt2"])
    out = model.run_task("discharge_summary", NOTE, deid="none", max_new_tokens=12, min_new_tokens=12)
    ids = model.tokenize("summarize: " + NOTE)
    with torch.no_grad():
        gen = hf.generate(torch.tensor([ids]), max_new_tokens=12, min_new_tokens=12, do_sample=False,
                          output_scores=True, return_dict_in_generate=True, pad_token_id=tok.eos_token_id)
        full = hf(gen.sequences).logits[0]
    new = gen.sequences[0, len(ids):].tolist()
    probs = torch.softmax(full[len(ids) - 1:-1], -1)
    expected, alternatives = [], []
    for step, t in enumerate(new):
        p = probs[step].clone()
        expected.append(float(p[t]))
        p[t] = -1
        alternatives.append(float(p.max()))
    tokens = out["tokens"]
    # Tokens that write no character of their own are left out of the spans.
    texts = [tok.decode([t]) for t in new]
    kept = [i for i, t in enumerate(texts) if t]
    assert len(tokens) == len(kept)
    for tc, i in zip(tokens, kept):
        assert tc["prob"] == pytest.approx(expected[i], abs=2e-4)
        assert tc["alternative_prob"] == pytest.approx(alternatives[i], abs=2e-4)
    assert "".join(out["text"][t["start"]:t["end"]] for t in tokens) == out["text"]
    conf = [a["confidence"] for a in out["attributions"]]
    assert all(c is None or 0 <= c["min"] <= c["mean"] <= 1 for c in conf)


def test_attribution_quality_on_the_annotated_pairs():
    """Measured against hand annotation (64 pairs, 602 sentences). The floors are below what
    the README reports, so that a regression fails without the figures being tuned to them."""
    stats = evaluate(load_pairs(), medgen.review.attribute)
    overall = ratios(stats["all"])
    assert overall["sentences"] >= 600
    assert overall["unsupported_recall"] >= 0.85, overall
    assert overall["unsupported_precision"] >= 0.45, overall
    assert overall["span_precision"] >= 0.65 and overall["span_recall"] >= 0.65, overall
    for lang in ["en", "zh"]:
        assert ratios(stats[lang])["unsupported_recall"] >= 0.8, (lang, ratios(stats[lang]))


def test_every_invented_placeholder_and_repeated_copy_is_flagged():
    """Sentences the annotation marks as using a placeholder the source lacks, or as a loop's
    repeated copy, are unsupported in every case."""
    for pair in load_pairs():
        units = medgen.review.attribute(pair["source"], pair["draft"])
        known = set(re.findall(r"\[[A-Z]+_\d+\]", pair["source"]))
        for u in units:
            invented = set(p.upper() for p in re.findall(r"\[[A-Za-z]+_\d+\]", u["text"])) - known
            if invented:
                assert "unknown_placeholder" in u["flags"], (pair["id"], u["text"])
        texts = [u["text"] for u in units]
        for i, u in enumerate(units):
            if len(u["text"].split()) >= 3 and texts[:i].count(u["text"]) >= 1:
                assert "repetition" in u["flags"], (pair["id"], u["text"])


def test_the_checks_report_invented_placeholders_and_loops():
    source = "Seen on [DATE_1] for cough."
    draft = "Seen on [DATE_1].\nReturn on [Date_5].\nCough improving since then.\nCough improving since then."
    kinds = [f["kind"] for f in medgen.checks.check(source, draft)]
    assert kinds == ["unknown_placeholder", "repetition"], kinds


def test_attribute_cli_python_and_bad_input(tmp_path):
    src, drf = tmp_path / "s.txt", tmp_path / "d.txt"
    src.write_text("Admitted with pneumonia. Treated with ceftriaxone 1 g IV daily.")
    drf.write_text("Diagnoses:\n- Pneumonia\nCourse:\nCeftriaxone 1 g daily was given. He enjoys golf.")
    lines = [json.loads(x) for x in run_medgen("review", "attribute", "--source", src, "--draft", drf).stdout.splitlines()]
    assert lines == medgen.review.attribute(src.read_text(), drf.read_text())
    assert [u["supported"] for u in lines] == [True, True, False]
    for u in lines:
        for s in u["spans"]:
            assert src.read_text()[s["start"]:s["end"]] in src.read_text()
    for source, draft, name in [("Cough.", "Plan:\n", "draft"), (" ", "Cough.", "source"), ("Cough.", "", "draft")]:
        with pytest.raises(medgen.InvalidArgumentError, match=name):
            medgen.review.attribute(source, draft)
    drf.write_text("Plan:\n")
    proc = run_medgen("review", "attribute", "--source", src, "--draft", drf, check=False)
    assert proc.returncode != 0 and "draft" in proc.stderr


# ---- JSON output --------------------------------------------------------------------------

RICH_SCHEMA = {
    "type": "object",
    "properties": {
        "diagnosis": {"type": "string", "maxLength": 40},
        "temperature_c": {"type": "number"},
        "days": {"type": "integer"},
        "admitted": {"type": "boolean"},
        "route": {"enum": ["oral", "iv", "im"]},
        "medications": {"type": "array", "items": {
            "type": "object", "properties": {"name": {"type": "string"}, "dose_mg": {"type": "number"}},
            "required": ["name", "dose_mg"], "additionalProperties": False}, "minItems": 1, "maxItems": 3},
        "allergies": {"type": "null"},
    },
    "required": ["diagnosis", "temperature_c", "days", "admitted", "route", "medications", "allergies"],
    "additionalProperties": False,
}


def check_json(out, schema):
    """The draft parses, the jsonschema package accepts it, its keys come in the schema's
    order, and the result's "json" is the draft parsed."""
    import jsonschema

    value = json.loads(out["text"])
    jsonschema.validate(value, schema)
    assert list(value) == list(schema["properties"]), out["text"]
    assert out["json"] == value


@pytest.mark.parametrize("kind", ["llama", "gpt2", "qwen2", "gemma3", "bart"])
def test_json_output_is_valid_json_of_the_schema_in_every_family_and_mode(long_tiny, kind):
    model = medgen.Model.load(str(long_tiny[kind]))
    modes = [dict(), dict(do_sample=True, temperature=1.5, seed=11), dict(num_beams=3)]
    for mode in modes:
        for max_new in [140, 220]:
            out = model.run_task("discharge_summary", NOTE, deid="none", json_schema=RICH_SCHEMA,
                                 max_new_tokens=max_new, **mode)
            check_json(out, RICH_SCHEMA)
        task_schema = json.loads(_task_schema("soap_note"))
        out = model.run_task("soap_note", NOTE, deid="none", json_output=True, max_new_tokens=60, **mode)
        check_json(out, task_schema)


def _task_schema(task):
    """The task's schema as the command builds it: one string per required section."""
    keys = [re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_") for s in medgen.tasks.info(task)["sections"]]
    return json.dumps({"type": "object", "properties": {k: {"type": "string"} for k in keys},
                       "required": keys, "additionalProperties": False})


def test_the_default_model_writes_valid_json_for_every_task():
    note2 = (ROOT / "examples" / "notes" / "admission_note_phi.txt").read_text()
    for task in TASKS:
        out = medgen_json("task", task, "--json-output", "--max-new-tokens", 120, "--json", input=note2)
        check_json(out, json.loads(_task_schema(task)))
        assert set(out["sections"]) | set(out["missing_sections"]) == set(medgen.tasks.info(task)["sections"])


def test_bad_schemas_and_budgets_are_errors_before_decoding(long_tiny, tmp_path):
    model = medgen.Model.load(str(long_tiny["llama"]))
    for schema, word in [({"type": "object", "properties": {"a": {"$ref": "#/x"}}}, "$ref"),
                         ({"oneOf": []}, "oneOf"), ({"type": ["string", "null"]}, "type"),
                         ("{not json", "JSON"), ({"type": "array"}, "items")]:
        with pytest.raises(medgen.InvalidArgumentError, match=re.escape(word)):
            model.run_task("soap_note", NOTE, deid="none", json_schema=schema, max_new_tokens=50)
    with pytest.raises(medgen.InvalidArgumentError, match="max_new_tokens"):
        model.run_task("soap_note", NOTE, deid="none", json_schema=RICH_SCHEMA, max_new_tokens=20)
    # A value whose characters the byte-level vocabulary writes only in byte pieces: refused by
    # what it is, not as a budget of 2^63 tokens.
    cjk = {"type": "object", "properties": {"dx": {"enum": ["肺炎", "心衰"]}}, "required": ["dx"]}
    with pytest.raises(medgen.UnsupportedError, match="byte pieces"):
        model.run_task("soap_note", NOTE, deid="none", json_schema=cjk, max_new_tokens=50)
    with pytest.raises(medgen.InvalidArgumentError, match="constrain_sections.*exclude"):
        model.run_task("soap_note", NOTE, deid="none", json_output=True, constrain_sections=True, max_new_tokens=80)
    bad = tmp_path / "schema.json"
    bad.write_text('{"type": "object", "properties": {"a": {"anyOf": []}}}')
    proc = run_medgen("task", "soap_note", "--model", long_tiny["llama"], "--json-schema", bad, "--deid", "none",
                      input=NOTE, check=False)
    assert proc.returncode != 0 and "anyOf" in proc.stderr
