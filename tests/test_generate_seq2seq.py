"""Generation with encoder-decoder models (T5 v1.0, T5 v1.1, BART) against transformers'
`generate` on tiny random-weight models: greedy and beam search with the same options give
the same token ids and scores; BART's forced BOS/EOS; batches (`--batch-file`) equal the
prompts run one by one, for encoder-decoder and decoder-only models; and typed errors for
bad input."""

import json
import shutil

import pytest
import torch
import transformers as tf

from conftest import CLINICAL_SENTENCES, medgen_json, run_medgen
from test_beam import SETTINGS, assert_same_beams, cli_args, setting_id
from test_seq2seq import KINDS, tiny_seq2seq  # noqa: F401 (a fixture)

MAX_NEW = 16
PROMPTS = [CLINICAL_SENTENCES[0], CLINICAL_SENTENCES[6][:20], " ".join(CLINICAL_SENTENCES[1:4])]


def hf_generate(model, ids, eos, **settings):
    """transformers' generate on one input: [(generated ids cut after the first EOS, score)],
    the best first (score None without beams). The decoder start token is left out."""
    # use_cache=False: transformers 5.23 sizes T5's cache by the encoder's layer count and
    # fails when the decoder has more (as the tiny T5 models do).
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=settings.pop("max_new_tokens", MAX_NEW), do_sample=False,
                             eos_token_id=eos, output_scores=True, return_dict_in_generate=True,
                             use_cache=False, **settings)
    scores = out.sequences_scores.tolist() if settings.get("num_beams", 1) > 1 else [None]
    result = []
    for seq, score in zip(out.sequences[:, 1:].tolist(), scores):
        if eos in seq:
            seq = seq[: seq.index(eos) + 1]
        result.append((seq, score))
    return result


def medgen_generate(path, prompt, settings, max_new=MAX_NEW):
    return medgen_json("generate", "--model", path, "--prompt", prompt, "--max-new-tokens", max_new,
                       *cli_args(settings), "--json")


def load(path):
    cls = tf.BartForConditionalGeneration if "bart" in path.name else tf.T5ForConditionalGeneration
    return cls.from_pretrained(path, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def eos_variants(tiny_seq2seq, tmp_path_factory):  # noqa: F811
    """kind -> (folder, eos): each tiny model copied with its EOS set to the runner-up of the
    first step (random weights almost never choose the real EOS), so that some beams end
    early and others run to max_new_tokens."""
    out = {}
    for kind in KINDS:
        src, model, _ = tiny_seq2seq[kind]
        ids = medgen_json("tokenize", "--model", src, "--prompt", PROMPTS[0])["ids"]
        with torch.no_grad():
            start = torch.tensor([[model.config.decoder_start_token_id]])
            logits = model(input_ids=torch.tensor([ids]), decoder_input_ids=start).logits[0, -1]
        eos = int(logits.argsort(descending=True)[1])
        dst = tmp_path_factory.mktemp(f"{kind}-eos") / kind
        shutil.copytree(src, dst)
        for name in ["config.json", "generation_config.json"]:
            cfg = json.loads((dst / name).read_text())
            cfg["eos_token_id"] = eos
            (dst / name).write_text(json.dumps(cfg))
        out[kind] = (dst, eos)
    return out


@pytest.mark.parametrize("prompt", PROMPTS[:2])
@pytest.mark.parametrize("kind", KINDS)
def test_greedy_generation_matches_transformers(tiny_seq2seq, eos_variants, kind, prompt):  # noqa: F811
    for path, eos in [(tiny_seq2seq[kind][0], tiny_seq2seq[kind][1].config.eos_token_id), eos_variants[kind]]:
        out = medgen_generate(path, prompt, {})
        [(ref, _)] = hf_generate(load(path), out["prompt_token_ids"], eos)
        assert out["token_ids"] == ref
        assert out["finish_reason"] == ("eos" if ref[-1] == eos else "length")
        assert out["text"] == tiny_seq2seq[kind][2].decode(ref, skip_special_tokens=True)


@pytest.mark.parametrize("settings", SETTINGS, ids=setting_id)
@pytest.mark.parametrize("kind", KINDS)
def test_beam_search_matches_transformers(eos_variants, kind, settings):
    path, eos = eos_variants[kind]
    out = medgen_generate(path, PROMPTS[0], settings)
    got = [(s["token_ids"], s["score"]) for s in out["sequences"]]
    ref = hf_generate(load(path), out["prompt_token_ids"], eos, **settings)
    assert_same_beams(f"{kind}/{setting_id(settings)}", got, ref)


def test_beams_end_at_eos_before_max_new_tokens(eos_variants):
    """The EOS variants make EOS matter: some returned sequences end early in EOS."""
    for kind in KINDS:
        path, eos = eos_variants[kind]
        out = medgen_generate(path, PROMPTS[0], dict(num_beams=4, num_return_sequences=4, length_penalty=0.0))
        assert any(s["token_ids"][-1] == eos and len(s["token_ids"]) < MAX_NEW for s in out["sequences"]), kind


@pytest.fixture(scope="module")
def bart_forced(tiny_seq2seq, tmp_path_factory):  # noqa: F811
    """The tiny BART with forced_bos_token_id 0 and forced_eos_token_id 2 in its
    generation_config.json, as BART summarization checkpoints have them."""
    dst = tmp_path_factory.mktemp("bart-forced") / "bart"
    shutil.copytree(tiny_seq2seq["bart"][0], dst)
    gen = json.loads((dst / "generation_config.json").read_text())
    gen.update(forced_bos_token_id=0, forced_eos_token_id=2)
    (dst / "generation_config.json").write_text(json.dumps(gen))
    return dst


@pytest.mark.parametrize("settings", [{}, dict(num_beams=4, num_return_sequences=2), SETTINGS[3]], ids=setting_id)
def test_bart_forced_bos_and_eos_match_transformers(bart_forced, settings):
    model = load(bart_forced)
    assert model.generation_config.forced_bos_token_id == 0
    for max_new in [1, 6]:
        out = medgen_generate(bart_forced, PROMPTS[2], settings, max_new)
        ref = hf_generate(model, out["prompt_token_ids"], 2, max_new_tokens=max_new, **settings)
        got = [(s["token_ids"], s["score"]) for s in out.get("sequences", [])] or [(out["token_ids"], None)]
        if settings:
            assert_same_beams(f"bart-forced/{max_new}/{setting_id(settings)}", got, ref)
        else:
            assert got == ref
        # The first token is BOS (unless the only one, which is EOS); the last is EOS.
        tokens = got[0][0]
        assert tokens[-1] == 2 and (max_new == 1 or tokens[0] == 0), tokens


@pytest.mark.parametrize("kind", ["t5_relu", "bart"])
def test_the_decoder_starts_where_generation_config_says(tiny_seq2seq, tmp_path, kind):  # noqa: F811
    """transformers 5 takes decoder_start_token_id from generation_config.json over
    config.json's; so does medgen (it used config.json's)."""
    dst = tmp_path / kind
    shutil.copytree(tiny_seq2seq[kind][0], dst)
    config = json.loads((dst / "config.json").read_text())
    gen = json.loads((dst / "generation_config.json").read_text())
    gen["decoder_start_token_id"] = 5 if config["decoder_start_token_id"] != 5 else 6
    (dst / "generation_config.json").write_text(json.dumps(gen))
    model = load(dst)
    assert model.generation_config.decoder_start_token_id == gen["decoder_start_token_id"]
    out = medgen_generate(dst, PROMPTS[0], {}, 6)
    eos = config["eos_token_id"]
    assert [(out["token_ids"], None)] == hf_generate(model, out["prompt_token_ids"], eos, max_new_tokens=6)
    gen["decoder_start_token_id"] = 10**6
    (dst / "generation_config.json").write_text(json.dumps(gen))
    proc = run_medgen("generate", "--model", dst, "--prompt", "x", "--max-new-tokens", "1", check=False)
    assert proc.returncode == 1 and "decoder_start_token_id" in proc.stderr


def run_batch(path, prompts, settings, tmp_path, batch_size=8, max_new=MAX_NEW, extra=()):
    batch = tmp_path / "prompts.jsonl"
    batch.write_text("".join(json.dumps(p) + "\n" for p in prompts))
    proc = run_medgen("generate", "--model", path, "--batch-file", batch, "--batch-size", batch_size,
                      "--max-new-tokens", max_new, *cli_args(settings), *extra)
    return [json.loads(line) for line in proc.stdout.splitlines()]


BATCH_SETTINGS = [{}, dict(num_beams=3, num_return_sequences=2, length_penalty=0.6),
                  dict(num_beams=4, early_stopping="never", no_repeat_ngram_size=3)]


def assert_batch_equals_alone(path, settings, tmp_path, prompts=PROMPTS, extra=()):
    """Every result of a batch (and of batches of 2) equals the prompt run alone."""
    alone = [medgen_json("generate", "--model", path, "--prompt", p, "--max-new-tokens", MAX_NEW,
                         *cli_args(settings), *extra, "--json") for p in prompts]
    objects = [{"prompt": p} if i % 2 else p for i, p in enumerate(prompts)]
    for size in [len(prompts), 2]:
        batch = run_batch(path, objects, settings, tmp_path, size, extra=extra)
        assert len(batch) == len(prompts)
        for b, a in zip(batch, alone):
            assert b["prompt_token_ids"] == a["prompt_token_ids"]
            assert (b["token_ids"], b["text"], b["finish_reason"]) == (a["token_ids"], a["text"], a["finish_reason"])
            assert [s["token_ids"] for s in b.get("sequences", [])] == [s["token_ids"] for s in a.get("sequences", [])]
            for sb, sa in zip(b.get("sequences", []), a.get("sequences", [])):
                assert abs(sb["score"] - sa["score"]) < 1e-4


@pytest.mark.parametrize("settings", BATCH_SETTINGS, ids=setting_id)
@pytest.mark.parametrize("kind", KINDS)
def test_seq2seq_batch_equals_prompts_alone(eos_variants, kind, settings, tmp_path):
    assert_batch_equals_alone(eos_variants[kind][0], settings, tmp_path)


@pytest.mark.parametrize("settings", BATCH_SETTINGS, ids=setting_id)
@pytest.mark.parametrize("kind", ["gpt2", "qwen2", "llama"])
def test_decoder_only_batch_equals_prompts_alone(tiny_models, kind, settings, tmp_path):
    """Left padding: prompts of different lengths in one batch (short enough for GPT-2's 64 positions)."""
    prompts = [CLINICAL_SENTENCES[0], CLINICAL_SENTENCES[6][:20], CLINICAL_SENTENCES[9]]
    assert_batch_equals_alone(tiny_models[kind], settings, tmp_path, prompts)


def test_sampled_batch_equals_prompts_alone_with_the_same_seed(tiny_models, eos_variants, tmp_path):
    for path in [tiny_models["llama"], eos_variants["t5_gated"][0]]:
        assert_batch_equals_alone(path, {}, tmp_path, extra=("--temperature", "0.9", "--top-p", "0.95", "--seed", "7"))


def test_batch_of_chat_messages_uses_the_chat_template(tmp_path):
    """The default model: a {"messages": ...} line equals --chat with the same prompt."""
    prompt = "Name one antibiotic."
    batch = tmp_path / "chat.jsonl"
    batch.write_text(json.dumps({"messages": [{"role": "user", "content": prompt}]}) + "\n")
    [b] = [json.loads(line) for line in run_medgen("generate", "--batch-file", batch, "--max-new-tokens", 8).stdout.splitlines()]
    a = medgen_json("generate", "--chat", "--prompt", prompt, "--max-new-tokens", 8, "--json")
    assert (b["prompt_token_ids"], b["token_ids"]) == (a["prompt_token_ids"], a["token_ids"])


def error_of(*args):
    proc = run_medgen(*args, check=False)
    assert proc.returncode == 1, proc.stderr
    return proc.stderr


def test_bad_batch_files_are_refused_with_the_line(tiny_seq2seq, tmp_path):  # noqa: F811
    path = tiny_seq2seq["t5_relu"][0]
    cases = {
        "malformed.jsonl": ('"one"\n{"prompt": "two"}\n{"prompt": \n', "line 3"),
        "unknown.jsonl": ('"one"\n\n{"text": "two"}\n', "line 3"),
        "empty_prompt.jsonl": ('"one"\n""\n', "line 2"),
        "number.jsonl": ('42\n', "line 1"),
        "empty.jsonl": ("\n\n", "holds no prompts"),
    }
    for name, (text, expected) in cases.items():
        (tmp_path / name).write_text(text)
        err = error_of("generate", "--model", path, "--batch-file", tmp_path / name, "--max-new-tokens", 4)
        assert "batch-file" in err and expected in err, (name, err)
    (tmp_path / "ok.jsonl").write_text('"one"\n')
    err = error_of("generate", "--model", path, "--batch-file", tmp_path / "ok.jsonl", "--batch-size", 0)
    assert "batch_size" in err and "1024" in err


def test_too_long_inputs_are_refused(tiny_seq2seq, tmp_path):  # noqa: F811
    bart = tiny_seq2seq["bart"][0]
    limit = json.loads((bart / "config.json").read_text())["max_position_embeddings"]
    long = " ".join(CLINICAL_SENTENCES[:7]) * 4
    err = error_of("generate", "--model", bart, "--prompt", long, "--json")
    assert f"the model allows {limit} (encoder input)" in err, err
    err = error_of("generate", "--model", bart, "--prompt", "fever", "--max-new-tokens", limit + 1)
    assert "max_new_tokens" in err, err
    # T5's limit: n_positions in config.json (512 when absent).
    t5 = tmp_path / "t5"
    shutil.copytree(tiny_seq2seq["t5_relu"][0], t5)
    cfg = json.loads((t5 / "config.json").read_text())
    cfg["n_positions"] = 16
    (t5 / "config.json").write_text(json.dumps(cfg))
    err = error_of("generate", "--model", t5, "--prompt", long, "--json")
    # Far past the context: counted on its head ("encoder input: at least ...").
    assert "the model allows 16 (encoder input" in err, err
    # In a batch file, the error names the prompt's line (far past the context: found as the
    # file's prompts are read).
    (tmp_path / "b.jsonl").write_text(json.dumps("fever") + "\n" + json.dumps(long) + "\n")
    err = error_of("generate", "--model", t5, "--batch-file", tmp_path / "b.jsonl", "--max-new-tokens", 4)
    assert "b.jsonl line 2" in err and "context length exceeded" in err, err


@pytest.mark.parametrize("args,field", [
    (["--num-beams", "0"], "num_beams"),
    (["--num-beams", "2", "--num-return-sequences", "3"], "num_return_sequences"),
    (["--early-stopping", "sometimes"], "early"),
])
def test_bad_beam_options_are_refused(tiny_seq2seq, args, field):  # noqa: F811
    proc = run_medgen("generate", "--model", tiny_seq2seq["bart"][0], "--prompt", "fever", *args, check=False)
    assert proc.returncode in (1, 2) and field in proc.stderr, proc.stderr
