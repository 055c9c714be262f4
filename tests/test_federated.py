"""Federated fine-tuning (medgen.federated) in Flower's simulation, one process: the global
adapter of each round against the example-weighted average of the sites' updates computed
here with numpy, FFA-LoRA's frozen A matrices, a site on another base model rejected, Flower's
client-side fixed-clipping DP wrapper and mod, DP-SGD's ε over the rounds against Opacus's
accountant, and the thin client's command line (`medgen finetune --federated-round`)."""

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import medgen_json, run_medgen
from test_finetune import EXAMPLES, collate, load_peft, loss_sum_and_items, model_dir, write_jsonl

pytest.importorskip("flwr")
import medgen  # noqa: E402
import medgen.federated as fed  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

# Flower's simulation starts a Ray cluster: one at a time across pytest workers.
pytestmark = pytest.mark.usefixtures("one_ray_cluster")

SITE_SIZES = [4, 6, 8]
OPTIONS = dict(max_steps=3, batch_size=2, lr=3e-3, chat=False, deid=False, threads=1, eval_generate=0)


def tensors(folder):
    return load_file(str(Path(folder) / "adapter_model.safetensors"))


def make_sites(root, sizes=SITE_SIZES, models=None):
    sites = []
    for i, n in enumerate(sizes):
        d = root / f"site{i}"
        d.mkdir(parents=True)
        sites.append(fed.Site(name=f"hospital-{i}", train=write_jsonl(d / "train.jsonl", EXAMPLES[:n]),
                              validation=write_jsonl(d / "val.jsonl", EXAMPLES[:4]), workdir=d,
                              model=None if models is None else models[i]))
    return sites


def simulate(root, sites, *, rounds=3, freeze_a=False, wrap=None, mods=(), **options):
    """Runs a federation of `sites` for `rounds`; returns the server's output folder."""
    model = model_dir("llama")
    medgen.initial_adapter(model, output=root / "global0", seed=0, lora_r=4)
    n = len(sites)
    strategy = fed.FedAvg(root / "global0", freeze_a=freeze_a, round_log=root / "server" / "rounds.jsonl",
                          min_train_nodes=n, min_evaluate_nodes=n, min_available_nodes=n)
    if wrap is not None:
        strategy = wrap(strategy)
    client = fed.client_app(model, site=lambda ctx: sites[int(ctx.node_config["partition-id"])], mods=mods,
                            **{**OPTIONS, **options})
    server = fed.server_app(root / "global0", output=root / "server", num_rounds=rounds, strategy=strategy)
    run_simulation(server, client, num_supernodes=n, backend_config={"client_resources": {"num_cpus": 1}})
    return root / "server"


def round_log(server):
    return [json.loads(line) for line in (server / "rounds.jsonl").read_text().splitlines()]


def weighted_average(updates, weights):
    total = sum(weights)
    return {k: sum(w * u[k].astype(np.float64) for u, w in zip(updates, weights)) / total for k in updates[0]}


def reference_loss(adapter, examples):
    """transformers + PEFT's mean cross-entropy per label token of `examples` under `adapter`."""
    import torch

    model = load_peft("llama", adapter, trainable=False)
    with torch.no_grad():
        loss, items = loss_sum_and_items(model, "llama", collate("llama", examples))
    return float(loss) / items


def test_each_round_is_the_example_weighted_average_of_the_sites_updates(tmp_path):
    sites = make_sites(tmp_path)
    server = simulate(tmp_path, sites)
    previous = tensors(tmp_path / "global0")
    log = round_log(server)
    for r in (1, 2, 3):
        updates, weights = [], []
        for s in sites:
            folder = Path(s.workdir) / f"round-{r:03d}"
            # What the site received is the previous round's global adapter.
            received = tensors(folder / "global")
            assert all(np.array_equal(received[k], previous[k]) for k in previous)
            record = json.loads((folder / "update" / "run.json").read_text())
            assert record["federated"]["site"] == s.name and record["federated"]["round"] == r
            weights.append(record["federated"]["examples"])
            updates.append(tensors(folder / "update"))
        assert weights == SITE_SIZES
        expected = weighted_average(updates, weights)
        got = tensors(server / f"round-{r:03d}")
        for k in expected:
            np.testing.assert_allclose(got[k], expected[k], rtol=1e-6, atol=1e-7)
        # The sites did train: the global adapter moved.
        assert any(not np.array_equal(got[k], previous[k]) for k in got)
        lines = [entry for entry in log if entry["round"] == r and "site" in entry]
        assert sorted((entry["site"], entry["examples"], entry["accepted"]) for entry in lines) == \
            [(s.name, n, True) for s, n in zip(sites, SITE_SIZES)]
        previous = got
    assert all(np.array_equal(tensors(server / "final")[k], previous[k]) for k in previous)
    # Validation loss falls over the rounds; each round's loss is the sites' weighted mean, and
    # medgen.evaluate equals transformers + PEFT on the global adapter.
    losses = [reference_loss(tmp_path / "global0", EXAMPLES[:4])]
    losses += [entry["eval_loss"] for entry in log if "eval_loss" in entry]
    assert len(losses) == 4 and all(a > b for a, b in zip(losses, losses[1:])), losses
    assert losses[3] == pytest.approx(reference_loss(server / "round-003", EXAMPLES[:4]), rel=1e-5)
    assert medgen.evaluate(model_dir("llama"), sites[0].validation, method="lora", lora_r=4,
                           init_adapter=str(server / "round-003"), chat=False, deid=False)["loss"] == \
        pytest.approx(losses[3], rel=1e-5)
    # Nothing of the notes' text is in the records.
    text = (server / "rounds.jsonl").read_text()
    assert not any(e["input"] in text or e["target"] in text for e in EXAMPLES)


def test_ffa_lora_keeps_a_and_a_site_on_another_base_is_rejected(tmp_path):
    models = [None, None, model_dir("llama_untied")]
    sites = make_sites(tmp_path, models=models)
    server = simulate(tmp_path, sites, rounds=2, freeze_a=True)
    start = tensors(tmp_path / "global0")
    log = round_log(server)
    rejected = [e for e in log if e.get("accepted") is False]
    assert {e["site"] for e in rejected} == {"hospital-2"} and len(rejected) == 2
    assert all("another base model" in e["reason"] for e in rejected)
    for r in (1, 2):
        updates = [tensors(Path(s.workdir) / f"round-{r:03d}" / "update") for s in sites[:2]]
        expected = weighted_average(updates, SITE_SIZES[:2])
        got = tensors(server / f"round-{r:03d}")
        for k in got:
            np.testing.assert_allclose(got[k], expected[k], rtol=1e-6, atol=1e-7)
            if ".lora_A." in k:
                assert np.array_equal(got[k], start[k]) and all(np.array_equal(u[k], start[k]) for u in updates)
        # With A shared, the average of B times A is the average of the sites' B·A updates.
        for k in (k for k in got if ".lora_B." in k):
            a = start[k.replace(".lora_B.", ".lora_A.")].astype(np.float64)
            mean_update = sum(n * (u[k].astype(np.float64) @ a) for u, n in zip(updates, SITE_SIZES)) / sum(SITE_SIZES[:2])
            np.testing.assert_allclose(got[k].astype(np.float64) @ a, mean_update, rtol=1e-5, atol=1e-8)


def test_flower_client_side_clipping_and_dp_sgd_epsilon_over_rounds(tmp_path):
    from flwr.clientapp.mod import fixedclipping_mod
    from flwr.serverapp.strategy import DifferentialPrivacyClientSideFixedClipping
    from opacus.accountants import RDPAccountant

    clip = 0.01
    sites = make_sites(tmp_path)
    # Noise 0 on the server, so that the aggregate can be recomputed exactly; each site runs
    # medgen's DP-SGD (seeded here only so that the test repeats).
    server = simulate(tmp_path, sites, rounds=2, mods=[fixedclipping_mod],
                      wrap=lambda s: DifferentialPrivacyClientSideFixedClipping(s, noise_multiplier=0.0, clipping_norm=clip,
                                                                                num_sampled_clients=3),
                      dp_max_grad_norm=1.0, dp_noise_multiplier=1.1, dp_noise_seed=7)
    previous = {k: v.astype(np.float64) for k, v in tensors(tmp_path / "global0").items()}
    norms = []
    for r in (1, 2):
        deltas = []
        for s in sites:
            update = tensors(Path(s.workdir) / f"round-{r:03d}" / "update")
            delta = {k: update[k] - previous[k] for k in previous}
            norm = np.sqrt(sum(float((d ** 2).sum()) for d in delta.values()))
            norms.append(norm)
            deltas.append({k: d * min(1.0, clip / norm) for k, d in delta.items()})
        expected = {k: previous[k] + v for k, v in weighted_average(deltas, SITE_SIZES).items()}
        got = tensors(server / f"round-{r:03d}")
        for k in expected:
            np.testing.assert_allclose(got[k], expected[k], rtol=1e-5, atol=1e-7)
        previous = {k: v.astype(np.float64) for k, v in got.items()}
    assert max(norms) > clip  # the clipping did something
    for s, n in zip(sites, SITE_SIZES):
        lines = [e for e in round_log(server) if e.get("site") == s.name]
        steps = 0
        for e in sorted(lines, key=lambda e: e["round"]):
            dp = e["differential_privacy"]
            steps += dp["steps"]
            assert (dp["noise_multiplier"], dp["max_grad_norm"], dp["sample_rate"]) == (1.1, 1.0, 2 / n)
            accountant = RDPAccountant()
            accountant.history = [(1.1, 2 / n, steps)]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                assert e["epsilon_total"] == pytest.approx(accountant.get_epsilon(delta=1e-5), rel=1e-9)
        assert steps == 2 * OPTIONS["max_steps"]


def test_the_command_line_takes_part_as_a_thin_client(tmp_path):
    model = model_dir("llama")
    medgen.initial_adapter(model, output=tmp_path / "global", seed=0, lora_r=4)
    data = write_jsonl(tmp_path / "train.jsonl", EXAMPLES[:5])
    out = tmp_path / "update"
    medgen_json("finetune", "--model", model, "--train", data, "--output", out, "--method", "lora", "--lora-r", "4",
                "--init-adapter", tmp_path / "global", "--lora-freeze-a", "--federated-round", "2", "--site", "st-mary",
                "--no-chat", "--no-deid", "--max-steps", "2", "--batch-size", "2", "--lr", "1e-2", "--json")
    record = json.loads((out / "run.json").read_text())["federated"]
    assert (record["site"], record["round"], record["examples"], record["frozen_a"]) == ("st-mary", 2, 5, True)
    start, update = tensors(tmp_path / "global"), tensors(out)
    assert start.keys() == update.keys()
    for k in start:
        assert np.array_equal(start[k], update[k]) == (".lora_A." in k), k


@pytest.mark.parametrize("args,words", [
    (["--site", ""], "site"),
    (["--site", "a\nb"], "site"),
    (["--lora-freeze-a", "--federated-round", "1"], "init_adapter"),
    (["--federated-round", "-1"], "-1"),
])
def test_bad_federated_options_are_refused(tmp_path, args, words):
    data = write_jsonl(tmp_path / "train.jsonl", EXAMPLES[:2])
    proc = run_medgen("finetune", "--model", model_dir("llama"), "--train", data, "--output", tmp_path / "out",
                      "--method", "lora", "--max-steps", "1", *args, check=False)
    assert proc.returncode != 0 and words in proc.stderr, proc.stderr
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()


def test_bad_python_federation_settings_are_refused(tmp_path):
    with pytest.raises(TypeError, match="lora_r"):
        fed.client_app(model_dir("llama"), lora_r=4)
    with pytest.raises(TypeError, match="dp_epsilon"):
        fed.client_app(model_dir("llama"), dp_epsilon=3.0)
    medgen.initial_adapter(model_dir("llama"), output=tmp_path / "global0", lora_r=4)
    with pytest.raises(ValueError, match="num_rounds"):
        fed.server_app(tmp_path / "global0", output=tmp_path / "server", num_rounds=0)
    config = json.loads((tmp_path / "global0" / "adapter_config.json").read_text())
    del config["medgen_base_sha256"]
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="medgen_base_sha256"):
        fed.FedAvg(tmp_path / "foreign")
    with pytest.raises(medgen.InvalidArgumentError, match="lora"):
        medgen.initial_adapter(model_dir("llama"), output=tmp_path / "full", method="full")
    with pytest.raises(medgen.MedgenError, match="example"):
        medgen.evaluate(model_dir("llama"), write_jsonl(tmp_path / "empty.jsonl", []), deid=False)
    # An adapter given without method lora would be ignored: refused instead.
    with pytest.raises(medgen.InvalidArgumentError, match="init_adapter"):
        medgen.evaluate(model_dir("llama"), write_jsonl(tmp_path / "val.jsonl", [{"input": "a", "target": "b"}]),
                        init_adapter=str(tmp_path / "foreign"), deid=False)


def test_a_round_trained_twice_spends_its_steps_twice(tmp_path):
    """The site's accountant adds a retried round's steps to the earlier ones (Opacus's ε for all
    the steps run), instead of counting the round once."""
    from opacus.accountants import RDPAccountant

    privacy = fed._Privacy(tmp_path)
    record = {"differential_privacy": {"sample_rate": 0.1, "noise_multiplier": 1.0, "delta": 1e-5, "steps": 20}}
    privacy.add(1, record)
    eps = fed._Privacy(tmp_path).add(1, record)
    accountant = RDPAccountant()
    accountant.history = [(1.0, 0.1, 40)]
    assert eps == pytest.approx(accountant.get_epsilon(delta=1e-5), rel=1e-9)
