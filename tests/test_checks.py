"""`medgen check` against hand-annotated source/draft pairs (tests/data/checks/cases.json), and
its handling of bad input.

Each case lists the findings a careful reader expects, by kind and flagged text; a case with
none is a faithful draft (numbers written differently, brands for generics, negations kept,
dates, years and list numbers) on which any finding is a false positive."""

import json
from pathlib import Path

import pytest

from conftest import ROOT, medgen_json, run_medgen

CASES = json.loads((ROOT / "tests/data/checks/cases.json").read_text(encoding="utf-8"))
KINDS = {"unsupported_number", "unsupported_medication", "negation_flip"}


def run_check(tmp_path: Path, source: str, output: str):
    (tmp_path / "source.txt").write_text(source, encoding="utf-8")
    (tmp_path / "output.txt").write_text(output, encoding="utf-8")
    return medgen_json("check", "--source", tmp_path / "source.txt", "--output", tmp_path / "output.txt", "--json")


def matches(expected: dict, found: dict) -> bool:
    """Same kind, and the flagged spans agree (one text holds the other)."""
    return expected["kind"] == found["kind"] and (expected["text"] in found["text"] or found["text"] in expected["text"])


def test_the_annotated_cases_cover_both_languages_and_clean_drafts():
    assert len(CASES) >= 30
    assert sum(c["id"].startswith("zh_") for c in CASES) >= 10
    assert sum(not c["expected"] for c in CASES) >= 10
    assert {e["kind"] for c in CASES for e in c["expected"]} == KINDS


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Case id -> the findings of `medgen check --json` (one run per case: each run loads libtorch)."""
    out = {}
    for case in CASES:
        out[case["id"]] = run_check(tmp_path_factory.mktemp(case["id"]), case["source"], case["output"])["findings"]
    return out


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_check_finds_every_expected_finding_and_nothing_else(results, case):
    findings = results[case["id"]]
    missed = [e for e in case["expected"] if not any(matches(e, f) for f in findings)]
    extra = [f for f in findings if not any(matches(e, f) for e in case["expected"])]
    assert not missed, f"missed {missed}; found {findings}"
    assert not extra, f"false positives {extra}"


def test_recall_over_all_cases_is_complete_and_clean_drafts_have_no_findings(results):
    expected = [(c["id"], e) for c in CASES for e in c["expected"]]
    recalled = [(i, e) for i, e in expected if any(matches(e, f) for f in results[i])]
    assert len(recalled) == len(expected)
    assert all(not results[c["id"]] for c in CASES if not c["expected"])


def test_findings_have_character_offsets_into_the_draft_and_are_sorted(results):
    for case in CASES:
        findings = results[case["id"]]
        for f in findings:
            assert set(f) == {"kind", "start", "end", "text", "detail"}
            assert f["kind"] in KINDS
            assert case["output"][f["start"]:f["end"]] == f["text"], case["id"]
            assert f["detail"]
        assert [f["start"] for f in findings] == sorted(f["start"] for f in findings)


def test_details_say_what_is_unsupported(tmp_path):
    findings = run_check(tmp_path, "Aspirin 81 mg daily.", "Aspirin 325 mg daily and Coumadin.")["findings"]
    details = [f["detail"] for f in findings]
    assert details[0] == "325 mg does not occur in the source"
    assert details[1] == "Coumadin (warfarin) does not occur in the source"


def test_text_output_has_one_line_per_finding(tmp_path):
    (tmp_path / "s.txt").write_text("Denies chest pain. Aspirin 81 mg.", encoding="utf-8")
    (tmp_path / "o.txt").write_text("Chest pain. Aspirin 100 mg.", encoding="utf-8")
    out = run_medgen("check", "--source", tmp_path / "s.txt", "--output", tmp_path / "o.txt").stdout
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert "negation_flip" in lines[0] and "unsupported_number" in lines[1]
    (tmp_path / "o.txt").write_text("No chest pain. Aspirin 81 mg.", encoding="utf-8")
    out = run_medgen("check", "--source", tmp_path / "s.txt", "--output", tmp_path / "o.txt").stdout
    assert out.strip() == "no findings"


@pytest.mark.parametrize("empty", ["source", "output"])
def test_an_empty_file_is_an_invalid_argument(tmp_path, empty):
    files = {"source": "Aspirin 81 mg.", "output": "Aspirin 81 mg."}
    files[empty] = "  \n"
    for name, text in files.items():
        (tmp_path / f"{name}.txt").write_text(text, encoding="utf-8")
    proc = run_medgen("check", "--source", tmp_path / "source.txt", "--output", tmp_path / "output.txt", check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: invalid argument") and f"`{empty}`" in proc.stderr
    assert "is empty" in proc.stderr


def test_a_missing_file_is_an_io_error(tmp_path):
    (tmp_path / "output.txt").write_text("Aspirin 81 mg.", encoding="utf-8")
    missing = tmp_path / "nope.txt"
    proc = run_medgen("check", "--source", missing, "--output", tmp_path / "output.txt", check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: cannot read") and "nope.txt" in proc.stderr


def test_a_file_that_is_not_utf8_is_an_invalid_argument(tmp_path):
    (tmp_path / "source.txt").write_bytes(b"\xff\xfe aspirin")
    (tmp_path / "output.txt").write_text("Aspirin 81 mg.", encoding="utf-8")
    proc = run_medgen("check", "--source", tmp_path / "source.txt", "--output", tmp_path / "output.txt", check=False)
    assert proc.returncode == 1 and "UTF-8" in proc.stderr
    assert "`source`" in proc.stderr and "source.txt" in proc.stderr


def test_source_and_output_are_required(tmp_path):
    (tmp_path / "output.txt").write_text("Aspirin 81 mg.", encoding="utf-8")
    proc = run_medgen("check", "--output", tmp_path / "output.txt", check=False)
    assert proc.returncode == 2 and "required" in proc.stderr
