"""The `medgen` command: sampling, stop strings, streaming, and bad input."""

import json

import pytest

from conftest import ROOT, medgen_json, run_medgen

PROMPT = "Discharge summary for a 67-year-old woman treated for pneumonia:"
SAMPLE = ["--temperature", "0.9", "--top-k", "40", "--top-p", "0.95", "--max-new-tokens", "24",
          "--min-new-tokens", "24"]


def generate(*args):
    return medgen_json("generate", "--prompt", PROMPT, "--json", *args)


def test_same_seed_gives_same_tokens_and_other_seeds_differ():
    a = generate(*SAMPLE, "--seed", "1")
    b = generate(*SAMPLE, "--seed", "1")
    assert a["token_ids"] == b["token_ids"] and a["seed"] == 1
    others = [generate(*SAMPLE, "--seed", str(s))["token_ids"] for s in (2, 3)]
    assert any(o != a["token_ids"] for o in others)


def test_top_k_one_equals_greedy():
    greedy = generate("--greedy", "--max-new-tokens", "24")
    top1 = generate("--temperature", "1.5", "--top-k", "1", "--seed", "9", "--max-new-tokens", "24")
    assert top1["token_ids"] == greedy["token_ids"]


def test_min_p_and_repetition_penalty_run_and_change_output():
    base = generate("--greedy", "--max-new-tokens", "32")
    penalized = generate("--greedy", "--max-new-tokens", "32", "--repetition-penalty", "1.8")
    assert penalized["token_ids"] != base["token_ids"]
    sampled = generate("--min-p", "0.2", "--seed", "4", "--max-new-tokens", "16")
    assert len(sampled["token_ids"]) >= 1


def test_result_has_typed_fields_and_logprobs():
    out = generate("--greedy", "--max-new-tokens", "8", "--logprobs")
    assert out["finish_reason"] in ("eos", "length")
    assert len(out["logprobs"]) == len(out["token_ids"]) and all(lp <= 0 for lp in out["logprobs"])
    assert set(out["timings"]) >= {"load_s", "prefill_tokens_per_s", "decode_tokens_per_s"}
    assert out["prompt_token_ids"] == medgen_json("tokenize", "--prompt", PROMPT)["ids"]


def test_min_new_tokens_suppresses_eos():
    out = medgen_json("generate", "--chat", "--prompt", "Say OK.", "--max-new-tokens", "40",
                      "--min-new-tokens", "40", "--json")
    assert len(out["token_ids"]) == 40 and out["finish_reason"] == "length"


def test_stop_string_ends_generation_and_is_never_emitted():
    full = generate("--greedy", "--max-new-tokens", "48")["text"]
    words = full.split()
    assert len(words) > 6, full
    stop = " " + words[5]  # a word in the middle, with its leading space
    cut = full.index(stop)
    out = generate("--greedy", "--max-new-tokens", "48", "--stop", stop)
    assert out["finish_reason"] == "stop"
    assert out["text"] == full[:cut]
    streamed = run_medgen("generate", "--prompt", PROMPT, "--greedy", "--max-new-tokens", "48",
                          "--stop", stop).stdout
    assert stop not in streamed and streamed.rstrip("\n") == full[:cut]


def test_streamed_text_equals_json_text():
    args = ["--prompt", "患者男性，50岁，主诉胸痛。", "--greedy", "--max-new-tokens", "40"]
    streamed = run_medgen("generate", *args).stdout
    assert streamed[:-1] == medgen_json("generate", *args, "--json")["text"]


def test_info_reports_the_default_model():
    info = medgen_json("info", "--json")
    assert info["architecture"] == "llama" and info["context_length"] == 8192
    assert info["has_chat_template"] and info["tensor_types"]["Q4_1"] > 0
    assert 130e6 < info["parameters"] < 140e6


def test_stdin_and_input_file_are_prompts(tmp_path):
    note = tmp_path / "note.txt"
    note.write_text(PROMPT)
    a = medgen_json("generate", "--input", note, "--greedy", "--max-new-tokens", "8", "--json")
    b = json.loads(run_medgen("generate", "--greedy", "--max-new-tokens", "8", "--json", input=PROMPT).stdout)
    assert a["token_ids"] == b["token_ids"]


def fails(*args, input=None):
    proc = run_medgen(*args, input=input, check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("args, words", [
    (["--temperature", "-1"], "temperature"),
    (["--temperature", "NaN"], "temperature"),
    (["--top-p", "0"], "top_p"),
    (["--top-p", "1.5"], "top_p"),
    (["--min-p", "2"], "min_p"),
    (["--repetition-penalty", "0"], "repetition_penalty"),
    (["--max-new-tokens", "0"], "max_new_tokens"),
    (["--max-new-tokens", "4", "--min-new-tokens", "5"], "min_new_tokens"),
    (["--max-new-tokens", "9000"], "context length"),
    # Sizes past medgen's documented bounds (a wrapped sum used to panic, 4e9 beams to abort).
    (["--max-new-tokens", "18446744073709551615"], "max_new_tokens"),
    (["--num-beams", "4000000000"], "num_beams"),
    (["--no-repeat-ngram-size", "18446744073709551615"], "no_repeat_ngram_size"),
    (["--device", "tpu"], "device"),
    (["--dtype", "f8"], "dtype"),
    (["--threads", "0"], "threads"),
    (["--stop", ""], "stop"),
])
def test_bad_generation_options_are_one_line_errors(args, words):
    assert words in fails("generate", "--prompt", PROMPT, *args)


@pytest.mark.parametrize("size", ["0", "1025", "18446744073709551615"])
def test_a_batch_size_outside_its_bound_is_an_error(tmp_path, size):
    batch = tmp_path / "b.jsonl"
    batch.write_text('"Fever."\n"Cough."\n')
    assert "batch_size" in fails("generate", "--batch-file", batch, "--batch-size", size, "--max-new-tokens", 1)


def test_empty_prompt_is_an_error():
    assert "empty" in fails("generate", "--prompt", "")
    assert "empty" in fails("generate", input="")


def test_invalid_utf8_input_is_an_error(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"chest pain \xff\xfe")
    assert "UTF-8" in fails("generate", "--input", bad)


def test_prompt_longer_than_the_context_is_an_error(tiny_models):
    long_prompt = "aspirin 81 mg daily. " * 40  # far more than the tiny GPT-2's 64 positions
    assert "context length" in fails("generate", "--model", tiny_models["gpt2"], "--prompt", long_prompt)
    assert "context length" in fails("generate", "--model", tiny_models["gpt2"], "--prompt", "aspirin",
                                     "--max-new-tokens", "64")


def test_missing_model_and_cuda_without_gpu_are_errors(tmp_path):
    assert "cannot read" in fails("generate", "--model", tmp_path / "nope.gguf", "--prompt", "x")
    import torch
    if not torch.cuda.is_available():
        assert "CUDA" in fails("generate", "--device", "cuda", "--prompt", "x")


def test_wrong_shapes_in_a_model_folder_are_errors(tiny_models, tmp_path):
    import shutil
    broken = tmp_path / "broken"
    shutil.copytree(tiny_models["llama"], broken)
    cfg = json.loads((broken / "config.json").read_text())
    cfg["intermediate_size"] += 8
    (broken / "config.json").write_text(json.dumps(cfg))
    assert "shape" in fails("info", "--model", broken)
    cfg["model_type"] = "falcon"
    (broken / "config.json").write_text(json.dumps(cfg))
    assert "falcon" in fails("info", "--model", broken)


def test_demo_note_exists():
    assert (ROOT / "examples/notes/discharge_note.txt").read_text().strip()
