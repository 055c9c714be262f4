"""`medgen eval` against the references it claims to match: rouge-score 0.1.2 (ROUGE-1/2/L/Lsum,
with and without the Porter stemmer) and sacrebleu 2.6.0 (sentence and corpus BLEU)."""

import json
import random

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from conftest import run_medgen

TOL = 1e-9
ROUGE_TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]

WORDS = (
    "patient Patient PATIENT admitted hospitalized hospitalization hospitalizing ponies pony caresses "
    "caress relational generalization agreed feeding motoring hopping happily denies denied "
    "fever febrile afebrile chest pain shortness of breath the a with without no and "
    "pneumonia ceftriaxone azithromycin aspirin atorvastatin troponin creatinine potassium "
    "daily nightly orally IV history follow-up x-ray community-acquired well-appearing "
    "U.S. e.g. i.e. Dr. St. mg mL mmHg °C µg ≥ ± 患者 胸痛 発熱 naïve café Ärzte İzmir"
).split()
NUMBERS = ["1", "5", "81", "142/88", "38.5", "0.02", "1,000", "4.2", "67-year-old", "5-10", "2x", "10mg"]
UNITS = ["mg", "g", "mL", "mg/dL", "mmol/L", "ng/mL", "°C", "%", "bpm"]
PUNCT = [".", ",", ";", ":", "!", "?", "(", ")", "-", "/", "'s", '"', "&", "&amp;", "<", ">", "--", "..."]


def _sentence(rng):
    parts = []
    for _ in range(rng.randint(1, 14)):
        r = rng.random()
        if r < 0.6:
            word = rng.choice(WORDS)
            parts.append(word.upper() if rng.random() < 0.05 else word)
        elif r < 0.8:
            parts.append(rng.choice(NUMBERS) + rng.choice(["", " ", ""]) + rng.choice(UNITS))
        else:
            parts[-1:] = [(parts[-1] if parts else "") + rng.choice(PUNCT)]
    return " ".join(parts)


def _text(rng):
    sentences = [_sentence(rng) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
    return rng.choice(["\n", " ", "\n\n", ".\n"]).join(sentences)


def _variant(rng, text):
    """A prediction near its reference: words dropped, swapped, repeated, re-cased."""
    words = text.split(" ")
    out = []
    for w in words:
        r = rng.random()
        if r < 0.15:
            continue
        if r < 0.25:
            w = rng.choice(WORDS)
        elif r < 0.3:
            out.append(w)
        elif r < 0.35:
            w = w.lower()
        out.append(w)
    return " ".join(out)


def make_pairs(n=240, seed=20240611):
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        ref = _text(rng)
        kind = i % 8
        if kind == 0:
            pred = ref  # identical
        elif kind in (1, 2, 3):
            pred = _variant(rng, ref)
        else:
            pred = _text(rng)
        pairs.append((pred, ref))
    # Edge cases that the generator reaches rarely.
    pairs += [
        ("", "Patient denies chest pain."),
        ("Patient denies chest pain.", ""),
        ("", ""),
        ("   ", "\n"),
        ("患者男性，50岁，主诉胸痛。", "患者男性，50岁，主诉胸痛。"),
        ("hospitalized ponies caresses", "hospitalization pony caress"),
        ("Pain resolved.\nDischarged home.", "Discharged home.\nPain resolved."),
        ("BP 142/88 mmHg, T 38.5 °C, HR 96.", "BP 142/88 mmHg; T 38.5°C; HR 96"),
        ("the the the the", "the"),
        ("-", "--"),
    ]
    return pairs


def _write_jsonl(path, texts):
    # Alternate between the two JSON-lines shapes, with a blank line that must be skipped.
    lines = [json.dumps(t) if i % 2 else json.dumps({"text": t, "id": i}) for i, t in enumerate(texts)]
    lines.insert(len(lines) // 2, "")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def pairs():
    return make_pairs()


@pytest.fixture(scope="module")
def files(pairs, tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    _write_jsonl(d / "pred.jsonl", [p for p, _ in pairs])
    _write_jsonl(d / "ref.jsonl", [r for _, r in pairs])
    return d / "pred.jsonl", d / "ref.jsonl"


@pytest.fixture(scope="module", params=[False, True], ids=["no_stem", "stem"])
def report(request, files):
    pred, ref = files
    stem = ["--stem"] if request.param else []
    proc = run_medgen("eval", "--pred", pred, "--ref", ref, *stem, "--json")
    return request.param, json.loads(proc.stdout)


def test_rouge_matches_rouge_score_for_every_example(pairs, report):
    use_stemmer, out = report
    scorer = rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=use_stemmer)
    assert out["n"] == len(pairs) == len(out["per_example"])
    worst = 0.0
    for (pred, ref), got in zip(pairs, out["per_example"]):
        expected = scorer.score(ref, pred)
        for t in ROUGE_TYPES:
            for field in ("precision", "recall", "fmeasure"):
                diff = abs(getattr(expected[t], field) - got[t][field])
                assert diff <= TOL, (t, field, pred, ref, expected[t], got[t])
                worst = max(worst, diff)
    print(f"max ROUGE difference (stem={use_stemmer}): {worst:g}")


def test_mean_rouge_is_the_mean_f_measure_over_examples(report):
    _, out = report
    for t in ROUGE_TYPES:
        mean = sum(e[t]["fmeasure"] for e in out["per_example"]) / out["n"]
        assert abs(out[t] - mean) <= TOL


def test_sentence_bleu_matches_sacrebleu_for_every_example(pairs, report):
    _, out = report
    worst = 0.0
    for (pred, ref), got in zip(pairs, out["per_example"]):
        diff = abs(sacrebleu.sentence_bleu(pred, [ref]).score - got["bleu"])
        assert diff <= TOL, (pred, ref)
        worst = max(worst, diff)
    print(f"max sentence BLEU difference: {worst:g}")


def test_corpus_bleu_matches_sacrebleu(pairs, report):
    _, out = report
    expected = sacrebleu.corpus_bleu([p for p, _ in pairs], [[r for _, r in pairs]])
    got = out["bleu_detail"]
    assert abs(out["bleu"] - expected.score) <= TOL
    assert abs(got["score"] - expected.score) <= TOL
    assert abs(got["bp"] - expected.bp) <= TOL
    assert got["counts"] == expected.counts
    assert got["totals"] == expected.totals
    assert (got["sys_len"], got["ref_len"]) == (expected.sys_len, expected.ref_len)
    for p, q in zip(got["precisions"], expected.precisions):
        assert abs(p - q) <= TOL


def test_plain_text_files_give_one_example_per_line(tmp_path):
    preds = ["Patient denies chest pain.", "", "Started aspirin 81 mg daily."]
    refs = ["Denies chest pain.", "Afebrile.", "Aspirin 81 mg daily started."]
    (tmp_path / "p.txt").write_text("\n".join(preds) + "\n")
    (tmp_path / "r.txt").write_text("\n".join(refs) + "\n")
    out = json.loads(run_medgen("eval", "--pred", tmp_path / "p.txt", "--ref", tmp_path / "r.txt", "--json").stdout)
    assert out["n"] == 3
    scorer = rouge_scorer.RougeScorer(ROUGE_TYPES)
    for (pred, ref), got in zip(zip(preds, refs), out["per_example"]):
        assert abs(scorer.score(ref, pred)["rougeL"].fmeasure - got["rougeL"]["fmeasure"]) <= TOL
        assert abs(sacrebleu.sentence_bleu(pred, [ref]).score - got["bleu"]) <= TOL


def test_a_byte_order_mark_does_not_hide_json_lines(tmp_path):
    preds, refs = ["Denies chest pain.", "Aspirin 81 mg daily."], ["Denies chest pain.", "Aspirin daily."]
    (tmp_path / "p.jsonl").write_text("\ufeff" + "".join(json.dumps(p) + "\n" for p in preds), encoding="utf-8")
    (tmp_path / "r.jsonl").write_text("\ufeff" + "".join(json.dumps(r) + "\n" for r in refs), encoding="utf-8")
    out = json.loads(run_medgen("eval", "--pred", tmp_path / "p.jsonl", "--ref", tmp_path / "r.jsonl", "--json").stdout)
    expected = sacrebleu.corpus_bleu(preds, [refs])
    assert out["n"] == 2 and abs(out["bleu"] - expected.score) <= TOL


def test_table_output_lists_rouge_means_and_sacrebleus_bleu_line(files, pairs):
    pred, ref = files
    text = run_medgen("eval", "--pred", pred, "--ref", ref).stdout
    for t in ROUGE_TYPES:
        assert t in text
    expected = sacrebleu.corpus_bleu([p for p, _ in pairs], [[r for _, r in pairs]])
    assert f"BLEU = {expected.score:.2f} {expected.prec_str} (BP = {expected.bp:.3f}" in text


def _eval_error(tmp_path, pred_text, ref_text):
    (tmp_path / "p").write_text(pred_text, encoding="utf-8")
    (tmp_path / "r").write_text(ref_text, encoding="utf-8")
    proc = run_medgen("eval", "--pred", tmp_path / "p", "--ref", tmp_path / "r", "--json", check=False)
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.startswith("error: ")
    return proc.stderr


def test_mismatched_line_counts_are_an_error_naming_both_counts(tmp_path):
    err = _eval_error(tmp_path, "a\nb\nc\n", "a\nb\n")
    assert "3 examples" in err and "has 2" in err


def test_malformed_json_line_is_an_error_naming_the_file_and_line(tmp_path):
    err = _eval_error(tmp_path, '"ok"\n"fine"\n{"text": "broken\n', '"a"\n"b"\n"c"\n')
    assert str(tmp_path / "p") in err and "line 3" in err and "malformed JSON" in err


def test_json_object_without_text_is_an_error(tmp_path):
    err = _eval_error(tmp_path, '{"text": "ok"}\n{"summary": "no"}\n', '"a"\n"b"\n')
    assert "line 2" in err and '"text"' in err


def test_empty_files_are_an_error(tmp_path):
    err = _eval_error(tmp_path, "", "")
    assert "no examples" in err


def test_missing_file_is_an_error(tmp_path):
    (tmp_path / "r").write_text("a\n")
    proc = run_medgen("eval", "--pred", tmp_path / "missing.jsonl", "--ref", tmp_path / "r", check=False)
    assert proc.returncode == 1
    assert "cannot read" in proc.stderr and "missing.jsonl" in proc.stderr


def test_rouge_on_long_documents_matches_rouge_score():
    """Long texts, with and without line breaks: the LCS walk over blocks of the table picks the
    same LCS for ROUGE-Lsum's union as rouge-score's full table."""
    import medgen

    rng = random.Random(11)
    for lines in (1, 40):
        ref = "\n".join(" ".join(_sentence(rng) for _ in range(100 // lines)) for _ in range(lines))
        pred = "\n".join(" ".join(_sentence(rng) for _ in range(100 // lines)) for _ in range(lines))
        ours = medgen.metrics.rouge(pred, ref, use_stemmer=True)
        want = rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=True).score(ref, pred)
        for t in ROUGE_TYPES:
            got = [ours[t][k] for k in ("precision", "recall", "fmeasure")]
            assert got == pytest.approx(list(want[t]), abs=TOL), t


@pytest.mark.parametrize("vocab, n, m", [(2, 1500, 1300), (7, 1029, 1100), (300, 1400, 700), (1, 200, 130)])
def test_rouge_l_of_long_sentences_over_small_vocabularies_matches_rouge_score(vocab, n, m):
    import medgen

    rng = random.Random(vocab)
    words = [f"w{i}" for i in range(vocab)]
    pred, ref = (" ".join(rng.choice(words) for _ in range(k)) for k in (n, m))
    ours = medgen.metrics.rouge(pred, ref)
    want = rouge_scorer.RougeScorer(["rougeL", "rougeLsum"]).score(ref, pred)
    for t in ("rougeL", "rougeLsum"):
        got = [ours[t][k] for k in ("precision", "recall", "fmeasure")]
        assert got == pytest.approx(list(want[t]), abs=TOL), t


def test_rouge_lsum_of_many_short_lines_matches_rouge_score():
    """Many short lines over small vocabularies, some repeated: the union skips sentences that
    share no token, or only tokens at positions it holds, and stops once it holds them all."""
    import medgen

    rng = random.Random(5)
    scorer = rouge_scorer.RougeScorer(["rougeLsum"])
    for _ in range(300):
        words = [f"w{i}" for i in range(rng.randint(2, 9))]
        line = lambda: " ".join(rng.choice(words) for _ in range(rng.randint(1, 7)))  # noqa: E731
        pool = [line() for _ in range(rng.randint(1, 12))]
        pred, ref = ("\n".join(rng.choice(pool + [line()]) for _ in range(rng.randint(1, 40))) for _ in range(2))
        got = medgen.metrics.rouge(pred, ref)["rougeLsum"]
        want = scorer.score(ref, pred)["rougeLsum"]
        assert [got[k] for k in ("precision", "recall", "fmeasure")] == pytest.approx(list(want), abs=TOL), (pred, ref)


def test_rouge_l_of_a_30000_token_pair_needs_megabytes_not_gigabytes():
    import subprocess
    import sys

    code = """
import resource, random, medgen
rng = random.Random(3)
words = [f"w{i}" for i in range(300)]
a = " ".join(rng.choice(words) for _ in range(30000))
b = " ".join(rng.choice(words) for _ in range(30000))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
r = medgen.metrics.rouge(a, b)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    grown_mib = int(out.stdout.split()[-1]) / 1024
    # A full table of 30,001 x 30,001 counts is 3.4 GiB at 4 bytes each.
    assert grown_mib < 200, f"{grown_mib:.0f} MiB"
