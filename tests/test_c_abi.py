"""The C ABI (libmedgen + include/medgen.h): C and C++ programs built with warnings as errors
under AddressSanitizer and UBSan, results equal to the `medgen` command (the Rust core),
8 threads on one model (and a stress run), fine-tuning with LoRA equal to `medgen finetune`, and a C++ project
that links medgen through CMake's find_package."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import medgen

from conftest import CLINICAL_SENTENCES, DEFAULT_DIR, DEFAULT_FILE, ROOT, make_tiny, medgen_json

LIB = ROOT / "target" / "release"
PKG_ENV = {**os.environ, "PKG_CONFIG_PATH": str(LIB / "pkgconfig")}
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]
# glibc's per-thread block of pthread keys, of a pool thread still exiting when the process
# does (the model's worker threads wind down after medgen_model_free returns): not a leak of
# the program's, and reported only when the exit races the threads.
LSAN_SUPPRESSIONS = ROOT / "tests" / "c" / "lsan.supp"
RUN_ENV = {
    **os.environ,
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=86",
    "LSAN_OPTIONS": f"suppressions={LSAN_SUPPRESSIONS}:print_suppressions=0",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=87",
}
DEFAULT_MODEL = DEFAULT_DIR / DEFAULT_FILE
PROMPT = "The patient was admitted with"


def pkg_config(*args):
    out = subprocess.run(["pkg-config", *args, "medgen"], env=PKG_ENV, capture_output=True, text=True, check=True)
    return out.stdout.split()


def compile_program(compiler, std, source, out, sanitize=True):
    cmd = [compiler, f"-std={std}", "-Wall", "-Wextra", "-Werror", "-pedantic", *(SANITIZE if sanitize else ["-O2"]),
           *pkg_config("--cflags"), str(source), *pkg_config("--libs"), "-lm", "-pthread", "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


def run_clean(*cmd, timeout=600):
    """Runs a sanitized program; fails on any sanitizer report or a non-zero exit."""
    proc = subprocess.run([str(c) for c in cmd], env=RUN_ENV, capture_output=True, text=True, timeout=timeout)
    for marker in ["AddressSanitizer", "LeakSanitizer", "runtime error:"]:
        assert marker not in proc.stderr, proc.stderr[-4000:]
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def results(stdout):
    out = {}
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            _, name, payload = line.split(" ", 2)
            out[name] = json.loads(payload)
    return out


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("c_abi")
    corrupt = tmp / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(range(256)) * 4)
    return {
        "abi": compile_program("gcc", "c11", ROOT / "tests/c/abi_test.c", tmp / "abi_test"),
        "threads": compile_program("g++", "c++17", ROOT / "tests/c/stress_test.cpp", tmp / "threads_test"),
        # Without sanitizers: ASan's quarantine keeps freed memory, which the RSS check reads.
        "stress": compile_program("g++", "c++17", ROOT / "tests/c/stress_test.cpp", tmp / "stress_test", sanitize=False),
        "corrupt": corrupt,
    }


def test_header_declares_the_contract():
    header = (ROOT / "include/medgen.h").read_text()
    for name in ["medgen_model_load", "medgen_generate", "medgen_chat", "medgen_generate_stream",
                 "medgen_tokenize", "medgen_text_free", "medgen_model_free", "medgen_last_error_message",
                 "medgen_status_str", "MEDGEN_ERR_CANCELLED", "MEDGEN_ERR_INTERNAL", "medgen_finetune",
                 "medgen_finetune_params_default", "medgen_progress_callback", "medgen_merge",
                 "MEDGEN_METHOD_LORA"]:
        assert name in header
    assert "Freeing NULL does nothing" in header and "several threads" in header


@pytest.mark.parametrize("model", ["tiny_llama", "default"])
def test_c_abi_checks_pass_under_asan_and_match_the_cli(programs, tiny_models, model):
    path = DEFAULT_MODEL if model == "default" else tiny_models["llama"]
    got = results(run_clean(programs["abi"], path, programs["corrupt"]))

    greedy = medgen_json("generate", "--model", path, "--prompt", PROMPT, "--max-new-tokens", 12, "--json")
    assert got["greedy"]["token_ids"] == greedy["token_ids"]
    assert got["greedy"]["text"] == greedy["text"]
    sampled = medgen_json("generate", "--model", path, "--prompt", PROMPT, "--max-new-tokens", 12,
                          "--temperature", 0.8, "--top-p", 0.9, "--seed", 7, "--json")
    assert got["sampled"]["token_ids"] == sampled["token_ids"]
    assert got["sampled"]["seed"] == 7
    beam = medgen_json("generate", "--model", path, "--prompt", PROMPT, "--max-new-tokens", 10, "--num-beams", 4,
                       "--num-return-sequences", 2, "--length-penalty", 0.6, "--early-stopping", "never",
                       "--no-repeat-ngram-size", 3, "--json")
    assert got["beam"]["token_ids"] == beam["token_ids"]
    assert [s["token_ids"] for s in got["beam"]["sequences"]] == [s["token_ids"] for s in beam["sequences"]]
    int8 = medgen_json("generate", "--model", path, "--prompt", PROMPT, "--max-new-tokens", 8, "--int8-activations",
                       "--logprobs", "--json")
    assert got["int8_greedy"]["token_ids"] == int8["token_ids"]
    assert got["int8_greedy"]["logprobs"] == int8["logprobs"]
    q4 = medgen_json("generate", "--model", path, "--prompt", PROMPT, "--max-new-tokens", 8, "--quantize", "q4_0",
                     "--logprobs", "--json")
    assert (got["q4_greedy"]["token_ids"], got["q4_greedy"]["logprobs"]) == (q4["token_ids"], q4["logprobs"])
    tokens = medgen_json("tokenize", "--model", path, "--prompt", "Aspirin 81 mg daily. 患者否认胸痛。")
    assert got["tokenize"]["ids"] == tokens["ids"]
    if model == "default":
        chat = medgen_json("generate", "--model", path, "--chat", "--system", "You are a careful clinical assistant.",
                           "--prompt", "Summarize: patient denies chest pain.", "--max-new-tokens", 8, "--json")
        assert got["chat"]["token_ids"] == chat["token_ids"]


def test_c_clinical_functions_match_the_core_and_the_references(programs):
    from rouge_score import rouge_scorer
    import sacrebleu

    got = results(run_clean(programs["abi"], DEFAULT_MODEL, programs["corrupt"]))
    note = ("Patient John Carter (MRN: 4417820) seen on 03/14/2024 by Dr. Alice Wong. "
            "Phone (617) 555-0192. He denies chest pain. Aspirin 81 mg daily.")
    # C adds UTF-8 byte offsets beside the character offsets; the rest is the core's result.
    for deid, text in [(got["deid"], note), (got["deid_zh"], "患者张伟，电话13812345678，主诉胸痛。")]:
        assert deid["entities"]
        for e in deid["entities"]:
            assert text.encode()[e.pop("start_byte"):e.pop("end_byte")].decode() == e["text"] == text[e["start"]:e["end"]]
        assert deid == medgen_json("deid", "--json", input=text)
    for f in got["task"]["findings"]:
        assert got["task"]["text"].encode()[f["start_byte"]:f["end_byte"]].decode() == f["text"]
    assert "John Carter" not in got["task"]["text"] and got["task"]["mapping"]
    assert "John" not in json.dumps(got["task"]["audit"])

    # Review: attribution equals the core's with byte offsets beside, and the task's review fields.
    source = "Admitted with pneumonia. Treated with ceftriaxone 1 g IV daily. Denies chest pain."
    draft = "Diagnoses:\n- Pneumonia\nCourse:\nCeftriaxone 1 g daily was given. Start warfarin 5 mg."
    units = got["attribute"]["attributions"]
    for u in units:
        assert draft.encode()[u.pop("start_byte"):u.pop("end_byte")].decode() == u["text"]
        for sp in u["spans"]:
            assert source.encode()[sp.pop("start_byte"):sp.pop("end_byte")].decode() == source[sp["start"]:sp["end"]]
    assert units == medgen.review.attribute(source, draft)
    assert [u["supported"] for u in units] == [True, True, False]
    model_units = got["attribute_model"]["attributions"]
    for u in model_units:
        assert draft.encode()[u.pop("start_byte"):u.pop("end_byte")].decode() == u["text"]
        for sp in u["spans"]:
            del sp["start_byte"], sp["end_byte"]
    expected = medgen.review.attribute(source, draft, model=medgen.Model.load(str(DEFAULT_MODEL)), task="discharge_summary")
    assert rounded(model_units) == rounded(expected)
    task = got["review_task"]
    assert all(isinstance(u["note_gain"], float) for u in task["attributions"])
    assert task["html"].startswith("<!DOCTYPE html>") and task["draft_id"] in task["html"]
    for t in task["tokens"]:
        assert task["text"].encode()[t["start_byte"]:t["end_byte"]].decode() == task["text"][t["start"]:t["end"]]
    assert "".join(task["text"][t["start"]:t["end"]] for t in task["tokens"]) == task["text"]
    assert got["review_verify"]["drafts"] == [task["draft_id"]]
    assert got["review_verify"]["reviews"] == [[task["draft_id"], "edited"], [task["draft_id"], "rejected"]]

    scores = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True).score(
        "patient discharged home today", "the patient was discharged home")
    for key in ["rouge1", "rougeL"]:
        want = [scores[key].precision, scores[key].recall, scores[key].fmeasure]
        assert got["rouge"][key] == pytest.approx(want, abs=1e-12)
    preds = ["the cat sat on the mat", "aspirin 81 mg daily was continued"]
    refs = ["the cat is on the mat", "continue aspirin 81 mg daily"]
    bleu = sacrebleu.corpus_bleu(preds, [refs])
    assert got["corpus_bleu"]["score"] == pytest.approx(bleu.score, abs=1e-9)
    assert (got["corpus_bleu"]["sys_len"], got["corpus_bleu"]["ref_len"]) == (bleu.sys_len, bleu.ref_len)
    assert got["sentence_bleu"]["score"] == pytest.approx(sacrebleu.sentence_bleu(preds[1], [refs[1]]).score, abs=1e-9)


def rounded(x, digits=4):
    """`x` with its floats rounded: results of two processes, whose sums may differ in the last bits."""
    if isinstance(x, float):
        return round(x, digits)
    if isinstance(x, dict):
        return {k: rounded(v, digits) for k, v in x.items()}
    if isinstance(x, list):
        return [rounded(v, digits) for v in x]
    return x


def test_eight_threads_on_one_model_equal_single_threaded_results_under_sanitizers(programs):
    assert results(run_clean(programs["threads"], DEFAULT_MODEL, 3))["threads"]["failures"] == 0


def test_stress_8_threads_x_50_generations_cancel_from_another_thread_and_1000_load_free_cycles(programs, tiny_models):
    proc = subprocess.run([str(programs["stress"]), str(DEFAULT_MODEL), "50", str(tiny_models["llama"])],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    got = results(proc.stdout)
    assert got["threads"]["failures"] == 0
    grown = got["cycles"]["rss_after_1000_kib"] - got["cycles"]["rss_after_100_kib"]
    # 900 cycles: a leak of even 32 KiB a cycle would show as 28 MiB.
    assert grown < 16 * 1024, f"RSS grew by {grown} KiB over 900 load/free cycles"


@pytest.fixture(scope="module")
def finetune_inputs(tmp_path_factory):
    """A tiny Llama made by transformers, with every dropout at 0, and 8 training pairs."""
    tmp = tmp_path_factory.mktemp("c_finetune")
    base = make_tiny("llama", tmp / "base")
    config = json.loads((base / "config.json").read_text())
    for key in ["attention_dropout", "mlp_dropout", "hidden_dropout", "dropout"]:
        if key in config:
            config[key] = 0.0
    (base / "config.json").write_text(json.dumps(config, indent=2))
    train = tmp / "train.jsonl"
    with train.open("w") as f:
        for i in range(8):
            f.write(json.dumps({"input": CLINICAL_SENTENCES[i], "target": CLINICAL_SENTENCES[i + 1]}) + "\n")
    return tmp, base, train


def test_c_finetune_equals_the_cli_stops_resumes_merges_and_loads_its_adapter(programs, finetune_inputs):
    import torch
    from safetensors.torch import load_file

    tmp, base, train = finetune_inputs
    lora, stopped, merged = tmp / "c_lora", tmp / "c_stopped", tmp / "c_merged"
    got = results(run_clean(programs["abi"], "--finetune", base, train, lora, stopped, merged))

    # abi_test's options (lora_params) as flags.
    cli = tmp / "cli_lora"
    report = medgen_json("finetune", "--model", base, "--train", train, "--output", cli, "--method", "lora",
                         "--no-chat", "--no-deid", "--epochs", 1, "--batch-size", 4, "--seed", 7, "--lr", 1e-2,
                         "--threads", 2, "--json")
    want = load_file(cli / "adapter_model.safetensors")
    assert want and any(t.abs().sum() > 0 for k, t in want.items() if "lora_B" in k), "the adapter trained"
    # The uninterrupted run, and the run stopped by its callback after step 1 and resumed.
    for folder in [lora, stopped]:
        have = load_file(folder / "adapter_model.safetensors")
        assert have.keys() == want.keys(), folder
        for key in want:
            assert torch.equal(have[key], want[key]), (folder, key)
        assert json.loads((folder / "adapter_config.json").read_text()) == \
            json.loads((cli / "adapter_config.json").read_text())
    options = json.loads((lora / "run.json").read_text())["options"]
    cli_options = json.loads((cli / "run.json").read_text())["options"]
    assert options.pop("output") == str(lora) and cli_options.pop("output") == str(cli)
    assert options == cli_options

    run = got["finetune"]
    assert (run["steps"], run["total_steps"], run["train_loss"]) == \
        (report["steps"], report["total_steps"], report["train_loss"])
    assert (run["train_examples"], run["stopped_early"], run["eval_loss"]) == (8, False, None)
    # The callback saw each logged step, as log.jsonl records them.
    fields = ["step", "total_steps", "loss", "learning_rate", "grad_norm"]
    cli_log = [json.loads(line) for line in (cli / "log.jsonl").read_text().splitlines()]
    assert run["callback_calls"] == 2
    assert [[e[k] for k in fields] for e in run["log"]] == [[e[k] for k in fields] for e in cli_log]

    stop = got["finetune_stopped"]
    assert (stop["callback_calls"], stop["steps"], stop["total_steps"], stop["stopped_early"]) == (1, 1, 2, True)
    assert stop["log"][0]["loss"] == run["log"][0]["loss"]
    resumed = json.loads((stopped / "run.json").read_text())["result"]
    assert (resumed["steps"], resumed["stopped_early"]) == (2, False)

    # The federated DP round: epsilon at the evaluation is Opacus's for q = 4 / 8, sigma 1.3, 2
    # steps; run.json records the round; A stayed the starting adapter's.
    from opacus.accountants import RDPAccountant

    fed = got["federated"]
    accountant = RDPAccountant()
    accountant.history = [(1.3, 0.5, 2)]
    assert fed["epsilon"] == pytest.approx(accountant.get_epsilon(delta=1e-5), rel=1e-9)
    record = json.loads((Path(fed["output"]) / "run.json").read_text())
    assert (record["federated"]["site"], record["federated"]["round"], record["federated"]["examples"],
            record["federated"]["frozen_a"]) == ("c-site", 2, 8, True)
    assert record["differential_privacy"]["epsilon"] == pytest.approx(fed["epsilon"], rel=1e-12)
    start, update = load_file(lora / "adapter_model.safetensors"), load_file(Path(fed["output"]) / "adapter_model.safetensors")
    assert all(torch.equal(start[k], update[k]) == ("lora_A" in k) for k in start)

    # The merged model is W + (alpha / r) B A on the adapted layers (PEFT's merge), the rest as it was.
    adapter_cfg = json.loads((lora / "adapter_config.json").read_text())
    scaling = adapter_cfg["lora_alpha"] / adapter_cfg["r"]
    base_w, merged_w = load_file(base / "model.safetensors"), load_file(merged / "model.safetensors")
    adapted = {k.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
               for k in want if k.endswith("lora_A.weight")}
    assert adapted
    for name, w in base_w.items():
        module = name.removesuffix(".weight")
        if module in adapted:
            a = want[f"base_model.model.{module}.lora_A.weight"]
            b = want[f"base_model.model.{module}.lora_B.weight"]
            torch.testing.assert_close(merged_w[name], w + scaling * (b @ a), rtol=0, atol=1e-6)
        else:
            assert torch.equal(merged_w[name], w), name

    # Generation with the adapter loaded (and with the merged model) equals the command's, and
    # differs from the base model's: the adapter is applied.
    for name, args in [("adapter_greedy", ["--model", base, "--adapter", lora]),
                       ("merged_greedy", ["--model", merged])]:
        cli_text = medgen_json("generate", *args, "--prompt", PROMPT, "--max-new-tokens", 8, "--threads", 2,
                               "--logprobs", "--json")
        assert got[name]["token_ids"] == cli_text["token_ids"], name
        assert got[name]["logprobs"] == pytest.approx(cli_text["logprobs"], abs=1e-6), name
        assert got[name]["logprobs"] != pytest.approx(got["base_greedy"]["logprobs"], abs=1e-3), name


def test_a_cpp_project_links_medgen_with_cmake_and_streams_a_summary(tmp_path):
    cmake = shutil.which("cmake", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    assert cmake, "cmake is installed by requirements/test.txt"
    build = tmp_path / "build"
    subprocess.run([cmake, "-S", ROOT / "tests/c/cmake_consumer", "-B", build,
                    f"-Dmedgen_DIR={LIB / 'cmake/medgen'}"], check=True, capture_output=True)
    proc = subprocess.run([cmake, "--build", build, "-j", "2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    note = ROOT / "examples/notes/discharge_note.txt"
    for exe in ["discharge_summary", "discharge_summary_static"]:
        proc = subprocess.run([build / exe, note], env=RUN_ENV, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0 and "AddressSanitizer" not in proc.stderr, proc.stderr[-3000:]
        assert len(proc.stdout.split()) > 20, proc.stdout
        assert "tokens, finish reason" in proc.stderr
    bad = subprocess.run([build / "discharge_summary", note, "/nonexistent.gguf"], env=RUN_ENV,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "MEDGEN_ERR_IO" in bad.stderr, bad.stderr
