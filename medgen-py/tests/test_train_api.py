"""Fine-tuning from Python: medgen.finetune's keywords are the core's TrainingConfig fields,
its result, callback and Ctrl-C, errors, adapters at load, merge, and agreement with
`medgen finetune` for the same options and seed.

The base is a tiny random-weight Llama made by transformers (as tests/conftest.py make_tiny
does), with every dropout at 0, so that runs are deterministic."""

import ast
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import medgen
from gil import runs_without_the_gil

ROOT = Path(__file__).resolve().parents[2]
MEDGEN = ROOT / "target/release/medgen"
STUB = ROOT / "medgen-py/python/medgen/_medgen.pyi"
SIGINT_RAISES = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)"

SENTENCES = [
    "Patient is a 67-year-old woman admitted with community-acquired pneumonia.",
    "Blood pressure 142/88 mmHg, heart rate 96, temperature 38.5 °C.",
    "Started ceftriaxone 1 g IV daily and azithromycin 500 mg orally.",
    "Troponin 0.02 ng/mL, creatinine 1.1 mg/dL, potassium 4.2 mmol/L.",
    "Discharged home on aspirin 81 mg and atorvastatin 40 mg nightly.",
    "No fever, denies chest pain, shortness of breath improved.",
    "Chest X-ray: right lower lobe consolidation, no effusion.",
    "Follow up with cardiology in two weeks for stress testing.",
]
# The options of the reference run, as keywords and as the CLI's flags.
OPTIONS = dict(method="lora", epochs=1, batch_size=4, chat=False, deid=False, lr=1e-2)
FLAGS = ["--method", "lora", "--epochs", "1", "--batch-size", "4", "--no-chat", "--no-deid", "--lr", "1e-2"]


def make_tiny_llama(path: Path) -> Path:
    import torch
    import transformers as tf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    torch.manual_seed(3)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(SENTENCES * 4, trainer)
    fast = tf.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    fast.save_pretrained(path)
    eos = fast.eos_token_id
    cfg = tf.LlamaConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=128,
                         rope_theta=5000.0, tie_word_embeddings=True, attention_dropout=0.0,
                         bos_token_id=eos, eos_token_id=eos)
    tf.LlamaForCausalLM(cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    lines = [json.dumps({"input": f"Note: {s}", "target": s.split(",")[0]}) for s in SENTENCES]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def run(base, data, tmp_path_factory):
    """The reference run: (output folder, history, entries the callback saw)."""
    out = tmp_path_factory.mktemp("run") / "adapter"
    seen = []
    history = medgen.finetune(base, data, output=out, callback=seen.append, **OPTIONS)
    return out, history, seen


def test_finetune_returns_the_log_as_a_list_of_dicts_with_the_report(run):
    out, history, seen = run
    assert isinstance(history, list) and len(history) == 2
    assert all(isinstance(e, dict) for e in history)
    assert [e["step"] for e in history] == [1, 2]
    assert all(math.isfinite(e["loss"]) and e["total_steps"] == 2 for e in history)
    # The callback saw each entry as it was logged; the log file holds the same.
    assert seen == list(history)
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [1, 2]
    report = history.report
    assert report["steps"] == report["total_steps"] == 2 and report["stopped_early"] is False
    assert report["train_examples"] == 8 and Path(report["output"]) == out
    assert "history" not in report
    assert json.loads((out / "run.json").read_text())["result"]["steps"] == 2


def test_pandas_reads_the_history(run):
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(run[1])
    assert list(frame["step"]) == [1, 2] and {"loss", "learning_rate", "grad_norm", "epoch"} <= set(frame.columns)


def test_a_lora_run_writes_an_adapter_that_loads_with_the_model(base, run):
    out = run[0]
    assert (out / "adapter_model.safetensors").exists() and (out / "adapter_config.json").exists()
    tuned = medgen.Model.load(base, adapter=out)
    g = tuned.generate("Note: fever", max_new_tokens=6, min_new_tokens=6)
    assert len(g.token_ids) == 6


def test_merge_folds_the_adapter_into_a_model_that_generates_the_same(base, run, tmp_path):
    out = run[0]
    medgen.merge(base, out, tmp_path / "merged")
    opts = dict(max_new_tokens=8, min_new_tokens=8, logprobs=True)
    with_adapter = medgen.Model.load(base, adapter=out).generate("Note: chest pain", **opts)
    merged = medgen.Model.load(tmp_path / "merged").generate("Note: chest pain", **opts)
    assert merged.token_ids == with_adapter.token_ids
    assert merged.logprobs == pytest.approx(with_adapter.logprobs, abs=1e-4)


def test_same_options_and_seed_give_the_same_adapter_as_the_cli(base, data, run, tmp_path):
    from safetensors.torch import load_file

    cli_out = tmp_path / "cli"
    subprocess.run([str(MEDGEN), "finetune", "--model", str(base), "--train", str(data), "--output", str(cli_out),
                    *FLAGS, "--json"], check=True, capture_output=True, text=True)
    ours = load_file(run[0] / "adapter_model.safetensors")
    theirs = load_file(cli_out / "adapter_model.safetensors")
    assert ours.keys() == theirs.keys() and ours
    for name in ours:
        assert ours[name].equal(theirs[name]), name
    cli_log = [json.loads(line) for line in (cli_out / "log.jsonl").read_text().splitlines()]
    assert [e["loss"] for e in cli_log] == [e["loss"] for e in run[1]]


def test_a_callback_returning_false_stops_the_run_with_a_checkpoint(base, data, tmp_path):
    out = tmp_path / "stopped"
    history = medgen.finetune(base, data, output=out, callback=lambda entry: False, **OPTIONS)
    assert [e["step"] for e in history] == [1]
    assert history.report["steps"] == 1 < history.report["total_steps"] == 2
    assert history.report["stopped_early"] is True
    assert (out / "checkpoint" / "state.json").exists() and (out / "adapter_model.safetensors").exists()
    # The checkpoint continues the run.
    resumed = medgen.finetune(base, data, output=out, resume=True, **OPTIONS)
    assert [e["step"] for e in resumed] == [1, 2] and resumed.report["stopped_early"] is False


def test_an_exception_in_the_callback_stops_the_run_and_is_raised(base, data, tmp_path):
    def fail(entry):
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        medgen.finetune(base, data, output=tmp_path / "failed", callback=fail, **OPTIONS)
    assert (tmp_path / "failed" / "checkpoint" / "state.json").exists()


def test_keyboard_interrupt_stops_the_run_cleanly_and_is_raised(base, data, tmp_path):
    out = tmp_path / "interrupted"
    code = (f"{SIGINT_RAISES}; import sys, medgen; print('ready', flush=True); "
            "medgen.finetune(sys.argv[1], sys.argv[2], output=sys.argv[3], method='lora', chat=False, deid=False, "
            "batch_size=4, max_steps=1000000, logging_steps=1)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(base), str(data), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "KeyboardInterrupt" in err and proc.returncode != 0
    assert time.time() - sent < 10
    result = json.loads((out / "run.json").read_text())["result"]
    assert 0 < result["steps"] < 1000000 and result["stopped_early"] is True
    assert (out / "checkpoint" / "state.json").exists() and (out / "adapter_model.safetensors").exists()


def test_paths_may_be_pathlike_and_an_adapter_may_start_a_run(base, data, run, tmp_path):
    history = medgen.finetune(Path(base), Path(data), output=tmp_path / "more", init_adapter=run[0],
                              target_modules=("q_proj", "v_proj"), max_steps=1, **OPTIONS)
    assert history.report["steps"] == 1
    options = json.loads((tmp_path / "more" / "run.json").read_text())["options"]
    assert options["lora"]["init_adapter"] == str(run[0]) and options["max_steps"] == 1


@pytest.mark.parametrize("options, error, match", [
    (dict(bogus=1), TypeError, "'bogus'"),
    (dict(bogus=1, lora_rank=8), TypeError, "'bogus', 'lora_rank'"),
    (dict(r=8), TypeError, "'r'"),
    (dict(lora={"r": 8}), TypeError, "'lora'"),
    (dict(lr=0), medgen.InvalidArgumentError, "lr"),
    (dict(lr=float("nan")), medgen.InvalidArgumentError, "lr"),
    (dict(lora_r=0), medgen.InvalidArgumentError, "lora_r"),
    (dict(lora_r="8"), TypeError, "lora_r"),
    (dict(epochs=-1), OverflowError, "epochs: expected a whole number of at least 0, got integer `-1`"),
    (dict(max_steps=2**64), OverflowError, "max_steps: 18446744073709551616 is out of range"),
    (dict(dp_noise_seed=-1), OverflowError, "dp_noise_seed"),
    (dict(shuffle=3), TypeError, "shuffle: expected True or False"),
    (dict(lr="fast"), TypeError, "lr: expected a number"),
    (dict(method="qlora"), medgen.InvalidArgumentError, "method"),
    (dict(metric="bleu"), medgen.InvalidArgumentError, "metric"),
    (dict(batch_size=None), TypeError, "batch_size"),
])
def test_bad_options_raise_the_matching_error(base, data, tmp_path, options, error, match):
    kw = {**OPTIONS, **options}
    with pytest.raises(error, match=match):
        medgen.finetune(base, data, output=tmp_path / "out", **kw)


def test_a_missing_model_is_a_model_load_error(data, tmp_path):
    with pytest.raises(medgen.ModelLoadError):
        medgen.finetune(tmp_path / "nowhere", data, output=tmp_path / "out", **OPTIONS)


def test_the_stub_lists_every_training_keyword_with_the_core_default():
    core = json.loads(medgen._medgen._core_training_defaults())
    tree = ast.parse(STUB.read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "finetune")
    stub = {a.arg: ast.literal_eval(d) for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults) if d is not None}
    own = {"callback", "device", "dtype", "threads"}
    assert {k: v for k, v in stub.items() if k not in own} == core


def test_a_full_run_writes_a_model_that_loads(base, data, tmp_path):
    out = tmp_path / "full"
    history = medgen.finetune(base, data, output=out, **{**OPTIONS, "method": "full", "lr": 1e-3}, max_steps=1)
    assert history.report["steps"] == 1 and not (out / "adapter_model.safetensors").exists()
    assert len(medgen.Model.load(out).generate("Note: fever", max_new_tokens=4, min_new_tokens=4).token_ids) == 4


def test_finetune_runs_without_the_gil(base, data, tmp_path):
    with runs_without_the_gil():
        medgen.finetune(base, data, output=tmp_path / "out", **{**OPTIONS, "epochs": 4})
