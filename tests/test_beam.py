"""Beam search and the no-repeat n-gram processor against HF transformers: the same token ids
and `sequences_scores` on tiny random-weight GPT-2, Qwen2 and Llama models and on the default
GGUF model, and the CLI's errors for bad beam options."""

import json
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM

from conftest import medgen_json, run_medgen

PROMPT = "Patient is a 67-year-old woman admitted with community-acquired pneumonia."

# Beam options as transformers names them; each test runs medgen with the same ones.
SETTINGS = [
    dict(num_beams=4),
    dict(num_beams=4, length_penalty=0.6, early_stopping=True, num_return_sequences=2),
    dict(num_beams=4, length_penalty=2.0, early_stopping="never", num_return_sequences=4),
    dict(num_beams=3, length_penalty=0.6, early_stopping="never", no_repeat_ngram_size=3, num_return_sequences=2),
    dict(num_beams=4, length_penalty=2.0, early_stopping=False, min_new_tokens=6, num_return_sequences=2),
    dict(num_beams=2, length_penalty=0.0, repetition_penalty=1.3, no_repeat_ngram_size=2, num_return_sequences=2),
]

MAX_SCORE_DIFF = []  # (test, largest |medgen - transformers| score difference), for the report


def setting_id(s):
    return ",".join(f"{k}={v}" for k, v in s.items())


def cli_args(settings):
    """medgen generate options for transformers' keyword arguments."""
    args = []
    for k, v in settings.items():
        args += ["--" + k.replace("_", "-"), str(v).lower() if isinstance(v, bool) else v]
    return args


def hf_beam(model, ids, max_new_tokens, eos, **settings):
    """transformers' beam search: [(token ids, score)], the best first. A sequence ends at
    its first EOS (an EOS finishes a beam, so none occurs earlier); the rest is padding."""
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=max_new_tokens, do_sample=False, top_k=None, top_p=None,
                             temperature=None, eos_token_id=eos, pad_token_id=eos, output_scores=True,
                             return_dict_in_generate=True, **settings)
    result = []
    for seq, score in zip(out.sequences[:, len(ids):].tolist(), out.sequences_scores.tolist()):
        if eos in seq:
            seq = seq[: seq.index(eos) + 1]
        result.append((seq, score))
    return result


def medgen_beam(model_args, prompt_args, max_new_tokens, settings):
    out = medgen_json("generate", *model_args, *prompt_args, "--max-new-tokens", max_new_tokens,
                      *cli_args(settings), "--json")
    return out, [(s["token_ids"], s["score"]) for s in out["sequences"]]


def assert_same_beams(name, got, ref, per_token=None):
    """Same token ids, scores within 1e-4; with `per_token` = length_penalty, within 1e-4 per
    token of an unnormalised sum: `len ** (1 - length_penalty)` (the default model's
    quantized weights leave its log-probs ~1e-5 from transformers', which a sum adds up)."""
    assert [t for t, _ in got] == [t for t, _ in ref]
    diff = max(abs(a - b) for (_, a), (_, b) in zip(got, ref))
    MAX_SCORE_DIFF.append((name, diff))
    print(f"{name}: score difference {diff:.2e}")
    tol = 1e-4
    if per_token is not None:
        tol *= max(1.0, max(len(t) for t, _ in got) ** (1 - per_token))
    assert diff < tol, (got, ref)


@pytest.fixture(scope="module")
def tiny_eos_variants(tiny_models, tmp_path_factory):
    """(kind, eos) -> folder: each tiny model with its own EOS, and copies whose
    generation_config names a token the model produces often as EOS (the token that greedy
    decoding repeats, and the runner-up of the first step), so that beams end early."""
    out = {}
    for kind in ["gpt2", "qwen2", "llama"]:
        src = tiny_models[kind]
        model = AutoModelForCausalLM.from_pretrained(src).eval()
        ids = medgen_json("tokenize", "--model", src, "--prompt", PROMPT)["ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1]
            greedy = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False, top_k=None,
                                    top_p=None, temperature=None, pad_token_id=0)[0, len(ids):].tolist()
        out[(kind, "own")] = (src, json.loads((src / "generation_config.json").read_text())["eos_token_id"])
        for name, eos in [("repeated", max(set(greedy), key=greedy.count)),
                          ("runner_up", int(logits.argsort(descending=True)[1]))]:
            dst = tmp_path_factory.mktemp(f"{kind}-{name}")
            shutil.copytree(src, dst, dirs_exist_ok=True)
            gen = json.loads((dst / "generation_config.json").read_text())
            gen["eos_token_id"] = eos
            (dst / "generation_config.json").write_text(json.dumps(gen))
            out[(kind, name)] = (dst, eos)
    return out


@pytest.mark.parametrize("settings", SETTINGS, ids=setting_id)
@pytest.mark.parametrize("eos_kind", ["own", "repeated", "runner_up"])
@pytest.mark.parametrize("kind", ["gpt2", "qwen2", "llama"])
def test_beam_search_matches_transformers_on_tiny_models(tiny_eos_variants, kind, eos_kind, settings):
    path, eos = tiny_eos_variants[(kind, eos_kind)]
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    out, got = medgen_beam(["--model", path], ["--prompt", PROMPT], 16, settings)
    ref = hf_beam(model, out["prompt_token_ids"], 16, eos, **settings)
    assert_same_beams(f"{kind}/{eos_kind}/{setting_id(settings)}", got, ref)
    assert (out["token_ids"], out["finish_reason"]) == (got[0][0], "eos" if got[0][0][-1] == eos else "length")


def test_beam_search_on_tiny_models_ends_beams_at_eos(tiny_eos_variants):
    """The EOS variants make EOS matter in the comparisons above: returned sequences end in
    EOS before max_new_tokens, next to sequences that reach it."""
    for kind in ["gpt2", "qwen2"]:
        path, eos = tiny_eos_variants[(kind, "runner_up")]
        _, got = medgen_beam(["--model", path], ["--prompt", PROMPT], 16, dict(num_beams=4, num_return_sequences=4))
        assert any(t[-1] == eos and len(t) < 16 for t, _ in got), got
        assert any(len(t) == 16 for t, _ in got), got


# Short chat prompts after which SmolLM2's beams end in EOS at different lengths.
CHAT_PROMPTS = ["Say hi.", "What is 2+2? Answer with a number only."]


@pytest.mark.parametrize("prompt,settings", [(CHAT_PROMPTS[0], s) for s in SETTINGS] + [(CHAT_PROMPTS[1], SETTINGS[2])],
                         ids=lambda x: setting_id(x) if isinstance(x, dict) else x[:8])
def test_beam_search_matches_transformers_on_the_default_model(hf_default, prompt, settings):
    tok, model = hf_default
    out, got = medgen_beam([], ["--chat", "--prompt", prompt], 16, settings)
    ref = hf_beam(model, out["prompt_token_ids"], 16, tok.eos_token_id, **settings)
    assert_same_beams(f"default/{prompt[:8]}/{setting_id(settings)}", got, ref, settings.get("length_penalty", 1.0))


def test_beam_search_on_the_default_model_ends_at_eos(hf_default):
    tok, _ = hf_default
    out, got = medgen_beam([], ["--chat", "--prompt", CHAT_PROMPTS[0]], 16, dict(num_beams=4, num_return_sequences=4))
    assert out["finish_reason"] == "eos" and got[0][0][-1] == tok.eos_token_id
    assert len({len(t) for t, _ in got}) > 1, got


def hf_greedy_no_repeat(model, ids, n, size):
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=n, min_new_tokens=n, do_sample=False, top_k=None, top_p=None,
                             temperature=None, no_repeat_ngram_size=size, pad_token_id=0)
    return out[0, len(ids):].tolist()


@pytest.mark.parametrize("kind", ["gpt2", "qwen2", "llama"])
def test_greedy_with_no_repeat_ngram_matches_transformers_on_tiny_models(tiny_models, kind):
    model = AutoModelForCausalLM.from_pretrained(tiny_models[kind]).eval()
    base = ["generate", "--model", tiny_models[kind], "--prompt", PROMPT, "--max-new-tokens", 24,
            "--min-new-tokens", 24, "--json"]
    plain = medgen_json(*base)
    out = medgen_json(*base, "--no-repeat-ngram-size", 3)
    # The tiny models repeat one token, so the processor changes the output.
    assert out["token_ids"] != plain["token_ids"]
    assert out["token_ids"] == hf_greedy_no_repeat(model, out["prompt_token_ids"], 24, 3)


def test_greedy_with_no_repeat_ngram_matches_transformers_on_the_default_model(hf_default):
    _, model = hf_default
    prompt = "Discharge medications: aspirin 81 mg daily, metoprolol 25 mg twice daily, and"
    out = medgen_json("generate", "--prompt", prompt, "--max-new-tokens", 48, "--min-new-tokens", 48,
                      "--no-repeat-ngram-size", 3, "--json")
    assert out["token_ids"] == hf_greedy_no_repeat(model, out["prompt_token_ids"], 48, 3)


def test_beam_text_is_printed_once_and_equals_the_json_text():
    args = ["generate", "--prompt", PROMPT, "--max-new-tokens", 12, "--num-beams", 3]
    streamed = run_medgen(*args).stdout
    out = medgen_json(*args, "--json")
    assert streamed == out["text"] + "\n"
    assert out["sequences"][0]["text"] == out["text"] and out["sequences"][0]["token_ids"] == out["token_ids"]


def test_without_beams_the_json_has_no_sequences():
    out = medgen_json("generate", "--prompt", PROMPT, "--max-new-tokens", 4, "--json")
    assert "sequences" not in out


def test_stop_strings_cut_beam_sequences_and_their_tokens():
    args = ["generate", "--prompt", PROMPT, "--max-new-tokens", 24, "--num-beams", 3, "--json"]
    full = medgen_json(*args)
    stop = full["text"][len(full["text"]) // 2:][:3]
    assert stop.strip(), full["text"]
    out = medgen_json(*args, "--stop", stop)
    at = full["text"].index(stop)
    assert out["text"] == full["text"][:at] and out["finish_reason"] == "stop"
    assert out["token_ids"] == full["token_ids"][: len(out["token_ids"])]
    assert len(out["token_ids"]) < len(full["token_ids"])
    assert out["sequences"][0]["score"] == full["sequences"][0]["score"]


def test_beam_logprobs_cover_the_best_sequence():
    out = medgen_json("generate", "--prompt", PROMPT, "--max-new-tokens", 8, "--num-beams", 2, "--logprobs", "--json")
    assert len(out["logprobs"]) == len(out["token_ids"]) and all(lp <= 0 for lp in out["logprobs"])


@pytest.mark.parametrize("args,words", [
    (["--num-beams", 0], "num_beams"),
    (["--num-beams", 2, "--num-return-sequences", 3], "num_return_sequences"),
    (["--num-return-sequences", 2], "num_return_sequences"),
    (["--num-beams", 2, "--num-return-sequences", 0], "num_return_sequences"),
    (["--num-beams", 2, "--temperature", 0.7], "do_sample"),
    (["--num-beams", 2, "--length-penalty", "nan"], "length_penalty"),
])
def test_bad_beam_options_are_one_line_errors(args, words):
    proc = run_medgen("generate", "--prompt", PROMPT, *args, check=False)
    assert proc.returncode == 1 and words in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_unknown_early_stopping_value_is_a_usage_error():
    proc = run_medgen("generate", "--prompt", PROMPT, "--num-beams", 2, "--early-stopping", "sometimes", check=False)
    assert proc.returncode == 2 and "sometimes" in proc.stderr and "never" in proc.stderr, proc.stderr


def test_report_the_largest_score_difference():
    """Runs last: prints the largest score difference of the comparisons above (pytest -s)."""
    if MAX_SCORE_DIFF:
        name, diff = max(MAX_SCORE_DIFF, key=lambda x: x[1])
        print(f"\n{len(MAX_SCORE_DIFF)} beam comparisons, largest score difference {diff:.2e} ({name})")
