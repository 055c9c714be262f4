"""The clinical pipeline (`medgen task`): de-identification before the model, the draft's
sections and checks, the audit record (complete, and free of PHI), and bad input."""

import hashlib
import json
from datetime import datetime

import pytest

from conftest import DEFAULT_DIR, DEFAULT_FILE, ROOT, medgen_json, run_medgen

NOTE = ROOT / "examples/notes/admission_note_phi.txt"
# Identifiers written into the synthetic note (by hand): none may reach the audit record.
PHI = ["Margaret", "Ellison", "00482913", "04/17/1958", "2217 Larkspur", "Dayton", "45419", "555-0148",
       "Samuel", "Okafor", "Anna", "03/02/2025", "03/05/2025", "03/06/2025", "555-0199"]
TASKS = ["discharge_summary", "radiology_impression", "soap_note", "diagnostic_report", "operative_note",
         "patient_explanation", "question_summary"]


@pytest.fixture(scope="module")
def result():
    return medgen_json("task", "discharge_summary", "--input", NOTE, "--max-new-tokens", 48, "--json")


def test_task_result_has_every_part(result):
    assert set(result) >= {"text", "sections", "missing_sections", "findings", "notice", "audit"}
    assert "mapping" not in result, "the mapping is PHI: the command never prints it"
    assert "review" in result["notice"] and "clinician" in result["notice"]
    assert set(result["sections"]) | set(result["missing_sections"]) >= {"Medications"}


def test_model_sees_placeholders_not_identifiers(result):
    for phi in ["Margaret", "Ellison", "Okafor", "00482913"]:
        assert phi not in result["text"]


def test_audit_record_is_complete(result):
    audit = result["audit"]
    model_file = DEFAULT_DIR / DEFAULT_FILE
    assert audit["model_sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert audit["model_name"] == DEFAULT_FILE
    assert audit["task"] == "discharge_summary" and audit["deid"] == "placeholder"
    tagger = ROOT / "medgen-core/assets/deid-tagger.safetensors"
    assert audit["deid_engine"] == "ensemble"
    assert audit["deid_tagger_sha256"] == hashlib.sha256(tagger.read_bytes()).hexdigest()
    assert audit["review_required"] is True and audit["reidentified"] is False
    assert audit["generation"]["max_new_tokens"] == 48 and isinstance(audit["seed"], int)
    assert audit["output_sha256"] == hashlib.sha256(result["text"].encode()).hexdigest()
    deid = medgen_json("deid", "--input", NOTE, "--json")
    assert audit["input_sha256"] == hashlib.sha256(deid["text"].encode()).hexdigest()
    counts = {}
    for e in deid["entities"]:
        counts[e["category"]] = counts.get(e["category"], 0) + 1
    assert audit["phi_counts"] == counts
    start = datetime.fromisoformat(audit["started_at"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(audit["finished_at"].replace("Z", "+00:00"))
    assert start.utcoffset().total_seconds() == 0 and start <= end
    assert audit["medgen_version"] and len(audit["findings"]) == len(result["findings"])


def test_audit_record_holds_no_phi(result):
    audit = json.dumps(result["audit"])
    for phi in PHI:
        assert phi not in audit, phi
    assert all(set(f) == {"kind", "start", "end"} for f in result["audit"]["findings"])


def test_reidentify_puts_the_identifiers_back():
    kept = medgen_json("task", "patient_explanation", "--input", NOTE, "--max-new-tokens", 40, "--json")
    back = medgen_json("task", "patient_explanation", "--input", NOTE, "--max-new-tokens", 40, "--json",
                       "--reidentify")
    assert back["audit"]["output_sha256"] == hashlib.sha256(back["text"].encode()).hexdigest()
    if "[" in kept["text"]:
        assert back["text"] != kept["text"]
    assert "[NAME_" not in back["text"]


def test_redact_and_none_modes_run():
    red = medgen_json("task", "question_summary", "--input", NOTE, "--max-new-tokens", 8, "--json", "--deid", "redact")
    assert red["audit"]["deid"] == "redact" and red["audit"]["phi_counts"]
    raw = medgen_json("task", "question_summary", "--input", NOTE, "--max-new-tokens", 8, "--json", "--deid", "none")
    assert raw["audit"]["phi_counts"] == {}
    assert raw["audit"]["deid_engine"] is None and raw["audit"]["deid_tagger_sha256"] is None


def test_the_task_takes_the_deid_engine_and_records_it():
    out = medgen_json("task", "question_summary", "--input", NOTE, "--max-new-tokens", 4, "--json",
                      "--deid-engine", "rules")
    deid = medgen_json("deid", "--input", NOTE, "--json", "--engine", "rules")
    assert out["audit"]["deid_engine"] == "rules" and out["audit"]["deid_tagger_sha256"] is None
    assert out["audit"]["input_sha256"] == hashlib.sha256(deid["text"].encode()).hexdigest()
    proc = run_medgen("task", "question_summary", "--input", NOTE, "--deid-engine", "neural", check=False)
    assert proc.returncode == 1 and "engine" in proc.stderr


def test_every_deid_operator_runs_in_a_task_as_medgen_deid_runs_it():
    """The task takes `medgen deid`'s operators: the model sees what `medgen deid` writes."""
    for mode, extra in [("mask", []), ("shift-dates", ["--shift-days", "-30"])]:
        out = medgen_json("task", "question_summary", "--input", NOTE, "--max-new-tokens", 4, "--json",
                          "--deid", mode, *extra)
        deid = medgen_json("deid", "--input", NOTE, "--json", "--mode", mode, *extra)
        assert out["audit"]["deid"] == mode
        assert out["audit"]["input_sha256"] == hashlib.sha256(deid["text"].encode()).hexdigest()
    proc = run_medgen("task", "question_summary", "--input", NOTE, "--deid", "shift-dates", check=False)
    assert proc.returncode == 1 and "date_shift" in proc.stderr


def test_every_task_runs_with_the_default_model():
    for name in TASKS:
        out = medgen_json("task", name, "--input", NOTE, "--max-new-tokens", 4, "--json")
        assert out["audit"]["task"] == name


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"   \n\t ", "empty"),
    (b"\x00\x01\x02binary\x00", "binary"),
    (b"caf\xe9 au lait", "UTF-8"),
])
def test_bad_notes_are_typed_errors(tmp_path, content, message):
    note = tmp_path / "note.txt"
    note.write_bytes(content)
    proc = run_medgen("task", "discharge_summary", "--input", note, check=False)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr


def test_unknown_task_lists_the_known_ones():
    proc = run_medgen("task", "summarise_everything", "--input", NOTE, check=False)
    assert proc.returncode == 1 and "discharge_summary" in proc.stderr and "soap_note" in proc.stderr


def test_a_one_megabyte_note_is_a_context_error_not_a_crash(tmp_path):
    note = tmp_path / "big.txt"
    note.write_text(NOTE.read_text() * (1_000_000 // len(NOTE.read_text()) + 1))
    proc = run_medgen("task", "discharge_summary", "--input", note, "--max-new-tokens", 4, check=False)
    assert proc.returncode == 1 and "context length" in proc.stderr, proc.stderr[-500:]


def test_bad_options_are_typed_errors():
    proc = run_medgen("task", "soap_note", "--input", NOTE, "--deid", "scramble", check=False)
    assert proc.returncode == 1 and "deid" in proc.stderr
    proc = run_medgen("task", "soap_note", "--input", NOTE, "--max-new-tokens", 0, check=False)
    assert proc.returncode == 1 and "max_new_tokens" in proc.stderr


def test_check_flags_phi_that_the_source_lacks(tmp_path):
    source = tmp_path / "source.txt"
    draft = tmp_path / "draft.txt"
    source.write_text("Patient [NAME_1] admitted on [DATE_1] with pneumonia. Aspirin 81 mg daily.")
    draft.write_text("[NAME_1] was treated for pneumonia by Dr. Robert Hughes; call 617-555-0143. Aspirin 81 mg daily.")
    found = medgen_json("check", "--source", source, "--output", draft, "--json")["findings"]
    phi = [f for f in found if f["kind"] == "phi"]
    texts = " ".join(f["text"] for f in phi)
    assert "Robert Hughes" in texts and "617-555-0143" in texts, found
    text = draft.read_text()
    assert all(text[f["start"]:f["end"]] == f["text"] for f in found)
    assert not [f for f in found if f["kind"] != "phi"], found


def test_the_demo_draft_has_every_section_no_invented_placeholder_and_no_loop():
    """`make demo`'s promise, with the shipped tasks adapter (greedy, 300 new tokens, sections
    constrained): every required section of the task's catalog, each with text under it,
    placeholders only from the note's own mapping, and no line written three times."""
    import re
    from collections import Counter

    out = medgen_json("task", "discharge_summary", "--input", NOTE, "--max-new-tokens", 300, "--constrain-sections", "--json")
    assert out["missing_sections"] == [], out["text"]
    headings = ("Diagnoses:", "Hospital Course:", "Medications:", "Follow-up:")
    sections = re.split("|".join(map(re.escape, headings)), out["text"])[1:]
    assert len(sections) == len(headings) and all(s.strip() for s in sections), out["text"]
    mapping = medgen_json("deid", "--input", NOTE, "--json")["mapping"]
    invented = set(re.findall(r"\[[A-Z]+_\d+\]", out["text"])) - set(mapping)
    assert not invented, (invented, out["text"])
    lines = Counter(line.strip("-• ").strip() for line in out["text"].splitlines() if line.strip())
    assert max(lines.values()) < 3, out["text"]
