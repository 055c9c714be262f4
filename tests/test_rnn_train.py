"""The recurrent baseline trained from scratch: `medgen tokenizer train` against HF
`tokenizers`, the initialisation against PyTorch's modules' defaults, learning a finding →
impression mapping well past a copy-the-input baseline (ROUGE-L by `rouge-score`), DP-SGD,
scheduled sampling and resume on it, and every bad input the issue names."""

import json
import random

import numpy as np
import pytest

from conftest import medgen_json, run_medgen

SIDES = ["left", "right"]
LOBES = ["upper", "middle", "lower"]
FINDINGS = [("consolidation", "pneumonia"), ("a spiculated nodule", "suspicious nodule"),
            ("ground-glass opacity", "infection or inflammation"), ("linear opacity", "atelectasis"),
            ("a cavitary lesion", "cavitary lesion, consider tuberculosis")]
NORMAL = ["Heart size is normal.", "No pleural effusion.", "No pneumothorax.", "Osseous structures are intact.",
          "Trachea is midline.", "Mediastinal contours are unremarkable.", "Lines and tubes unchanged."]


def reports(n, seed):
    """Chest X-ray findings (one abnormal sentence among normal ones, shuffled) and their
    impression: the abnormal finding's side, lobe and diagnosis."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        side, lobe = rng.choice(SIDES), rng.choice(LOBES)
        finding, diagnosis = rng.choice(FINDINGS)
        sentences = [f"There is {finding} in the {side} {lobe} lobe."] + rng.sample(NORMAL, 3)
        rng.shuffle(sentences)
        out.append({"input": "Findings: " + " ".join(sentences), "target": f"{side.capitalize()} {lobe} lobe {diagnosis}."})
    return out


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("rnn_data")
    train = write_jsonl(d / "train.jsonl", reports(500, 0))
    validation = write_jsonl(d / "validation.jsonl", reports(40, 1))
    tokenizer = d / "tokenizer.json"
    run_medgen("tokenizer", "train", "--input", train, "--vocab-size", 400, "--output", tokenizer)
    return d, train, validation, tokenizer


def scratch_args(tokenizer, *extra):
    return ["--from-scratch", "rnn", "--tokenizer", tokenizer, "--hidden", 128, "--embedding", 64, "--layers", 1,
            "--bidirectional", "--no-deid", *extra]


def test_the_learned_tokenizer_is_one_hf_tokenizers_reads_the_same(data, tmp_path):
    from tokenizers import Tokenizer

    _, train, _, tokenizer = data
    tok = Tokenizer.from_file(str(tokenizer))
    assert [tok.id_to_token(i) for i in range(4)] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert tok.get_vocab_size() <= 400
    texts = ["Findings: There is consolidation in the left lower lobe.", "Dose ≥ 5 µg, 患者男性 50岁.", "\tx  y\n"]
    for text in texts:
        ids = tok.encode(text).ids
        assert ids[-1] == 2  # </s> appended, as T5's tokenizers do
        assert tok.decode(ids, skip_special_tokens=True) == text  # byte-level: nothing is lost
    # A WordPiece vocabulary, and plain-text input files.
    lines = tmp_path / "notes.txt"
    lines.write_text("\n".join(r["input"] for r in reports(50, 3)))
    wordpiece = tmp_path / "wp.json"
    run_medgen("tokenizer", "train", "--input", lines, "--vocab-size", 120, "--model", "wordpiece", "--output", wordpiece)
    wp = Tokenizer.from_file(str(wordpiece))
    assert wp.token_to_id("<unk>") == 3 and wp.get_vocab_size() <= 120
    assert "consolidation" in wp.decode(wp.encode("consolidation").ids)


def test_a_new_model_is_initialised_as_pytorch_initialises_its_modules(data, tmp_path):
    import torch
    from safetensors.torch import load_file

    _, train, _, tokenizer = data
    out = tmp_path / "init"
    medgen_json("finetune", *scratch_args(tokenizer, "--attention", "bahdanau"), "--train", train, "--output", out,
                "--max-steps", 1, "--lr", 1e-12, "--json")
    weights = load_file(out / "from-scratch" / "model.safetensors")
    config = json.loads((out / "from-scratch" / "config.json").read_text())
    assert config["model_type"] == "medgen_rnn" and config["vocab_size"] == weights["encoder.embedding.weight"].shape[0]
    # PyTorch's own modules of the same sizes, freshly made: their ranges and spreads.
    torch.manual_seed(0)
    lstm, bridge, key = torch.nn.LSTM(64, 128), torch.nn.Linear(256, 128), torch.nn.Linear(256, 128)
    fan_in = torch.nn.init._calculate_fan_in_and_fan_out
    # (our tensor, PyTorch's, the bound of PyTorch's uniform init: 1/sqrt(hidden) for
    # recurrent layers, 1/sqrt(fan in) for a linear layer's weight and bias)
    cases = [("encoder.rnn.weight_ih_l0_reverse", lstm.weight_ih_l0, 1 / 128 ** 0.5),
             ("bridge.weight", bridge.weight, 1 / fan_in(bridge.weight)[0] ** 0.5),
             ("attention.key.bias", key.bias, 1 / fan_in(key.weight)[0] ** 0.5)]
    for name, ref, bound in cases:
        ours, ref = weights[name], ref.detach()
        assert float(ref.abs().max()) <= bound
        assert bound * 0.9 < float(ours.abs().max()) <= bound, name
        assert float(ours.std()) == pytest.approx(float(ref.std()), rel=0.15), name
    embedding = weights["encoder.embedding.weight"]
    ref = torch.nn.Embedding(400, 64).weight.detach()
    assert float(embedding.std()) == pytest.approx(float(ref.std()), rel=0.05) and abs(float(embedding.mean())) < 0.05


def rouge_l(predictions, references):
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return float(np.mean([scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)]))


@pytest.mark.long
def test_a_model_from_scratch_learns_past_copying_the_input(data, tmp_path):
    import medgen

    _, train, validation, tokenizer = data
    out = tmp_path / "model"
    report = medgen_json("finetune", *scratch_args(tokenizer), "--train", train, "--validation", validation,
                         "--output", out, "--lr", 5e-3, "--batch-size", 16, "--epochs", 12, "--eval-generate", 0,
                         "--threads", 2, "--json")
    assert report["steps"] == 12 * 32
    rows = [json.loads(line) for line in validation.read_text().splitlines()]
    model = medgen.Model.load(str(out), threads=2)
    predictions = [model.generate(r["input"], max_new_tokens=24).text for r in rows]
    references = [r["target"] for r in rows]
    learned, copied = rouge_l(predictions, references), rouge_l([r["input"] for r in rows], references)
    print(f"ROUGE-L: trained {learned:.3f}, copying the input {copied:.3f}")
    assert copied < 0.3 and learned > 0.7 and learned > 3 * copied, (learned, copied, predictions[:3])
    # The clinical task path (de-identification, prompt, checks, audit) serves it as any model.
    note = tmp_path / "note.txt"
    note.write_text(rows[0]["input"])
    proc = run_medgen("task", "radiology_impression", "--model", out, "--input", note, "--max-new-tokens", 20)
    assert "review_required" in proc.stdout + proc.stderr


def test_dp_sgd_scheduled_sampling_and_resume_work_on_the_recurrent_model(data, tmp_path):
    _, train, validation, tokenizer = data
    out = tmp_path / "dp"
    report = medgen_json("finetune", *scratch_args(tokenizer, "--cell", "gru", "--teacher-forcing-ratio", 0.5),
                         "--train", train, "--output", out, "--max-steps", 3, "--batch-size", 8, "--lr", 1e-3,
                         "--dp-max-grad-norm", 1.0, "--dp-noise-multiplier", 1.0, "--json")
    assert report["steps"] == 3 and report["epsilon"] > 0 and np.isfinite(report["train_loss"])
    # Stopped after step 2 and resumed: the model made at the start is kept, not made again.
    out = tmp_path / "resumed"
    args = [*scratch_args(tokenizer), "--train", train, "--output", out, "--max-steps", 4, "--batch-size", 8, "--json"]
    medgen_json("finetune", *args, "--stop-after", 2)
    first = (out / "from-scratch" / "model.safetensors").read_bytes()
    medgen_json("finetune", *args, "--resume")
    assert (out / "from-scratch" / "model.safetensors").read_bytes() == first
    assert json.loads((out / "run.json").read_text())["result"]["steps"] == 4


@pytest.mark.parametrize("extra,words", [
    (["--hidden", 0], "hidden_size"),
    (["--layers", 0], "encoder_layers"),
    (["--embedding", 0], "embedding_size"),
    (["--attention", "cosine"], "unknown variant"),
    (["--cell", "rnn"], "unknown variant"),
    (["--attention", "dot", "--bidirectional"], "dot attention"),
    (["--tie-embeddings"], "tie"),
    (["--teacher-forcing-ratio", 1.5], "teacher_forcing_ratio"),
    (["--method", "lora"], "method full"),
    (["--hidden", 1000000], "parameters"),
])
def test_bad_recurrent_shapes_are_refused(data, tmp_path, extra, words):
    _, train, _, tokenizer = data
    args = ["--from-scratch", "rnn", "--tokenizer", tokenizer, *extra]
    proc = run_medgen("finetune", *args, "--train", train, "--output", tmp_path / "out", "--max-steps", 1, check=False)
    assert proc.returncode != 0 and words in proc.stderr, proc.stderr


def test_bad_tokenizers_and_model_folders_are_refused(data, tmp_path):
    _, train, _, tokenizer = data
    # A vocabulary too small for its special tokens and byte alphabet.
    proc = run_medgen("tokenizer", "train", "--input", train, "--vocab-size", 100, "--output", tmp_path / "t.json", check=False)
    assert proc.returncode != 0 and "vocab_size" in proc.stderr
    # A tokenizer file that does not parse.
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = run_medgen("finetune", "--from-scratch", "rnn", "--tokenizer", bad, "--train", train, "--output", tmp_path / "o",
                      check=False)
    assert proc.returncode != 0 and "does not parse" in proc.stderr
    # A model folder: its weights against its config, and special tokens beyond its vocabulary.
    out = tmp_path / "m"
    medgen_json("finetune", *scratch_args(tokenizer), "--train", train, "--output", out, "--max-steps", 1, "--json")
    model = out / "from-scratch"
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "hidden_size": 48}))
    proc = run_medgen("generate", "--model", model, "--prompt", "Findings:", "--max-new-tokens", 2, check=False)
    assert proc.returncode != 0 and "encoder.rnn.weight_ih_l0" in proc.stderr and "[512, 64]" in proc.stderr \
        and "[192, 64]" in proc.stderr, proc.stderr
    (model / "config.json").write_text(json.dumps({**config, "vocab_size": 2}))
    proc = run_medgen("generate", "--model", model, "--prompt", "Findings:", "--max-new-tokens", 2, check=False)
    assert proc.returncode != 0 and "smaller than its special tokens" in proc.stderr, proc.stderr
    (model / "config.json").write_text(json.dumps({**config, "attention": "cosine"}))
    proc = run_medgen("info", "--model", model, check=False)
    assert proc.returncode != 0 and "cosine" in proc.stderr, proc.stderr


def test_the_tokenizer_never_replaces_an_existing_file_unasked(data, tmp_path):
    """Not the training data given as the output by mistake, nor a tokenizer already there:
    --force (Python: overwrite=True) replaces one."""
    _, train, _, _ = data
    copy = tmp_path / "train.jsonl"
    copy.write_bytes(train.read_bytes())
    proc = run_medgen("tokenizer", "train", "--input", copy, "--vocab-size", 300, "--output", copy, check=False)
    assert proc.returncode == 1 and "exists" in proc.stderr, proc.stderr
    assert copy.read_bytes() == train.read_bytes()
    out = tmp_path / "tokenizer.json"
    out.write_text("{}")
    run_medgen("tokenizer", "train", "--input", copy, "--vocab-size", 300, "--output", out, "--force")
    assert json.loads(out.read_text())["model"]["type"] == "BPE"
    import torch  # noqa: F401 (before medgen, whose library links libtorch)
    import medgen

    with pytest.raises(medgen.InvalidArgumentError, match="exists"):
        medgen.train_tokenizer([copy], out, vocab_size=300)
    assert medgen.train_tokenizer([copy], out, vocab_size=300, overwrite=True) == out
