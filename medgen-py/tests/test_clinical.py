"""The clinical layer from Python: de-identification, checks, metrics against rouge-score and
sacrebleu, tasks, and Model.run_task with its mapping and audit record."""

import json
import subprocess
from pathlib import Path

import pytest
import sacrebleu
from rouge_score import rouge_scorer

import medgen

ROOT = Path(__file__).resolve().parents[2]
MEDGEN = ROOT / "target/release/medgen"
NOTE = (ROOT / "examples/notes/admission_note_phi.txt").read_text()


@pytest.fixture(scope="module")
def model():
    return medgen.Model.load()


def cli(*args, input=None):
    out = subprocess.run([str(MEDGEN), *map(str, args)], input=input, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_deidentify_equals_the_command():
    for mode in ["placeholder", "redact", "mask"]:
        assert medgen.deid.deidentify(NOTE, mode) == cli("deid", "--mode", mode, "--json", input=NOTE)
    assert medgen.deid.detect(NOTE) == cli("deid", "--json", input=NOTE)["entities"]


def test_placeholders_round_trip_through_reidentify():
    out = medgen.deid.deidentify(NOTE)
    assert "Ellison" not in out["text"] and out["mapping"]
    back = medgen.deid.reidentify(out["text"], out["mapping"])
    # "Mrs. Ellison" shares the placeholder of "Margaret Ellison", so it comes back as the full name.
    assert "[NAME_" not in back and "[MRN_" not in back
    for phi in ["Margaret Ellison", "00482913", "(937) 555-0148", "Samuel Okafor"]:
        assert phi in back


def test_date_shift_keeps_intervals():
    a = medgen.deid.deidentify(NOTE, "shift-dates", shift_days=10)
    b = medgen.deid.deidentify(NOTE, "shift-dates", shift_key="patient-42")
    assert a["text"] != NOTE and b["text"] != NOTE
    assert medgen.deid.deidentify(NOTE, "shift-dates", shift_key="patient-42") == b


def test_check_flags_a_negation_flip_and_an_unsupported_dose():
    findings = medgen.checks.check("She denies chest pain. Aspirin 81 mg daily.",
                                   "She has chest pain. Aspirin 325 mg daily.")
    kinds = {f["kind"] for f in findings}
    assert {"negation_flip", "unsupported_number"} <= kinds
    assert medgen.checks.check("Aspirin 81 mg daily.", "Aspirin 81mg daily.") == []


def test_metrics_equal_rouge_score_and_sacrebleu():
    pred, ref = "The patient was discharged home on aspirin.", "Patient discharged home with aspirin 81 mg."
    want = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True).score(ref, pred)
    got = medgen.metrics.rouge(pred, ref, use_stemmer=True)
    for key, score in want.items():
        assert got[key]["fmeasure"] == pytest.approx(score.fmeasure, abs=1e-12)
        assert got[key]["precision"] == pytest.approx(score.precision, abs=1e-12)
    preds, refs = [pred, "no acute findings"], [ref, "no acute cardiopulmonary findings"]
    assert medgen.metrics.corpus_bleu(preds, refs)["score"] == pytest.approx(
        sacrebleu.corpus_bleu(preds, [refs]).score, abs=1e-9)
    assert medgen.metrics.sentence_bleu(pred, ref)["score"] == pytest.approx(
        sacrebleu.sentence_bleu(pred, [ref]).score, abs=1e-9)
    with pytest.raises(medgen.InvalidArgumentError):
        medgen.metrics.corpus_bleu(["a", "b"], ["a"])


def test_tasks_are_listed_with_their_sections():
    names = medgen.tasks.names()
    assert len(names) == 7 and "soap_note" in names and "radiology_impression" in names
    assert "Plan" in medgen.tasks.info("soap_note")["sections"]
    report = medgen.tasks.sections("soap_note", "Subjective: cough\nObjective: afebrile\nAssessment: bronchitis")
    assert report["missing"] == ["Plan"]
    with pytest.raises(medgen.InvalidArgumentError, match="discharge_summary"):
        medgen.tasks.info("nope")


def test_run_task_returns_the_mapping_and_an_audit_without_phi(model):
    out = model.run_task("discharge_summary", NOTE, max_new_tokens=24)
    assert out["mapping"] and "Margaret Ellison" in out["mapping"].values()
    assert "Ellison" not in out["text"]
    audit = json.dumps(out["audit"])
    for phi in ["Ellison", "Okafor", "00482913", "Larkspur", "555-0148"]:
        assert phi not in audit
    back = model.run_task("discharge_summary", NOTE, max_new_tokens=24, reidentify=True)
    assert back["text"] == medgen.deid.reidentify(out["text"], out["mapping"])
    assert out["audit"]["review_required"] and "clinician" in out["notice"]


def test_run_task_bad_input_raises_typed_errors(model):
    with pytest.raises(medgen.InvalidArgumentError, match="task"):
        model.run_task("everything", NOTE)
    with pytest.raises(medgen.InvalidArgumentError, match="empty"):
        model.run_task("soap_note", "  ")
    with pytest.raises(medgen.InvalidArgumentError, match="deid"):
        model.run_task("soap_note", NOTE, deid="shred")
    with pytest.raises(medgen.InvalidArgumentError, match="engine"):
        model.run_task("soap_note", NOTE, deid_engine="neural")
    with pytest.raises(medgen.ModelLoadError):
        model.run_task("soap_note", NOTE, tagger="/nonexistent/tagger.safetensors", max_new_tokens=1)
    rules = model.run_task("soap_note", NOTE, deid_engine="rules", max_new_tokens=1)
    assert rules["audit"]["deid_engine"] == "rules" and rules["audit"]["deid_tagger_sha256"] is None
    with pytest.raises(medgen.InvalidArgumentError, match="date_shift"):
        model.run_task("soap_note", NOTE, deid="shift-dates")
    out = model.run_task("soap_note", NOTE, deid="shift-dates", shift_key="patient-7", max_new_tokens=1)
    assert out["audit"]["deid"] == "shift-dates" and out["audit"]["phi_counts"]
    with pytest.raises(medgen.InvalidArgumentError, match="max_new_tokens"):
        model.run_task("soap_note", NOTE, max_new_tokens=0)
    with pytest.raises(medgen.InvalidArgumentError):
        medgen.deid.deidentify(NOTE, "scramble")


def test_beam_search_options_pass_through_and_equal_the_command(model):
    prompt = "Chest X-ray shows"
    out = model.generate(prompt, max_new_tokens=8, num_beams=4, num_return_sequences=2, length_penalty=0.6,
                         early_stopping="never", no_repeat_ngram_size=3)
    want = cli("generate", "--prompt", prompt, "--max-new-tokens", 8, "--num-beams", 4, "--num-return-sequences", 2,
               "--length-penalty", 0.6, "--early-stopping", "never", "--no-repeat-ngram-size", 3, "--json")
    assert out.token_ids == want["token_ids"]
    assert [s["token_ids"] for s in out.sequences] == [s["token_ids"] for s in want["sequences"]]
    assert out.sequences[0]["score"] == pytest.approx(want["sequences"][0]["score"], abs=1e-5)
    batch = model.generate([prompt, "Impression:"], max_new_tokens=8, num_beams=4)
    assert batch[0].token_ids == model.generate(prompt, max_new_tokens=8, num_beams=4).token_ids
    cfg = medgen.GenerationConfig(num_beams=2, early_stopping=True)
    assert cfg.early_stopping is True and medgen.GenerationConfig().early_stopping is False
    with pytest.raises(medgen.InvalidArgumentError, match="num_return_sequences"):
        model.generate(prompt, num_beams=2, num_return_sequences=3)
    with pytest.raises(medgen.InvalidArgumentError, match="num_beams"):
        model.generate(prompt, num_beams=0)
    with pytest.raises(medgen.InvalidArgumentError, match="early_stopping"):
        medgen.GenerationConfig(early_stopping="sometimes")
