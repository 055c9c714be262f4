"""Federated fine-tuning on Flower (PyPI `flwr`): each site trains a LoRA adapter where its
notes are; only the adapter's weights, example counts and metrics travel.

    # server (one per federation)
    medgen.initial_adapter(None, output="global0/", method="lora", lora_r=8, seed=0)
    server = medgen.federated.server_app("global0/", output="rounds/", num_rounds=3)

    # each site
    client = medgen.federated.client_app(None, max_steps=20, batch_size=4, lr=3e-4)

`server_app` runs `FedAvg`: Flower's FedAvg (updates weighted by their example counts) that
first checks every update's base model (SHA-256), adapter configuration and round, and
rejects a site that does not match, with the reason in the server's round log, instead of
averaging it in. With `freeze_a=True` the sites train only LoRA's B matrices (FFA-LoRA), so
that the average of their B matrices times the shared A is exactly the average of their
updates. Flower's differential-privacy wrappers and mods (for example
`DifferentialPrivacyClientSideFixedClipping` with `fixedclipping_mod`) wrap it unchanged.

Each round a site writes the server's adapter into `workdir/round-NNN/global/`, its update
into `workdir/round-NNN/update/` (a PEFT adapter with medgen's `run.json`, which
records the site, the round, its example count and, with DP-SGD, the ε spent), and the
round's aggregate it evaluates into `workdir/round-NNN/evaluated/`. The server
writes the global adapter after each round into `output/round-NNN/` and a line per site and
round into `output/rounds.jsonl`. Neither holds any text of the notes.
"""

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg as _FedAvg
from safetensors.numpy import load_file, save_file

import medgen

from . import privacy

_log = logging.getLogger("medgen.federated")
_Path = Union[str, "os.PathLike[str]"]

# The adapter_config.json fields that decide which tensors an adapter has and what they mean.
_ADAPTER_FIELDS = ("peft_type", "task_type", "r", "lora_alpha", "use_rslora", "target_modules", "fan_in_fan_out", "medgen_base_sha256")
# Options a site may not set: the server's adapter decides them.
_SERVER_OPTIONS = ("method", "lora_r", "lora_alpha", "use_rslora", "target_modules", "init_adapter", "lora_freeze_a", "federated_round", "site", "output", "overwrite", "resume", "dp_epsilon")


def read_adapter(folder: _Path) -> ArrayRecord:
    """A PEFT adapter folder's tensors as an ArrayRecord, in key order."""
    tensors = load_file(str(Path(folder) / "adapter_model.safetensors"))
    return ArrayRecord({k: Array(np.ascontiguousarray(tensors[k])) for k in sorted(tensors)})


def write_adapter(arrays: ArrayRecord, config: dict, folder: _Path) -> Path:
    """Writes `arrays` with `config` (adapter_config.json's fields) as a PEFT adapter folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(arrays[k].numpy()) for k in arrays.keys()}, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return folder


def adapter_config(folder: _Path) -> dict:
    return json.loads((Path(folder) / "adapter_config.json").read_text())


def fingerprint(config: dict) -> str:
    """SHA-256 of the fields of an adapter configuration that sites must share."""
    shared = {k: config.get(k) for k in _ADAPTER_FIELDS}
    return hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()


def _round_dir(root: Path, server_round: int) -> Path:
    return root / f"round-{server_round:03d}"


@dataclasses.dataclass
class Site:
    """Where one site's data and files are; `name` goes into the records (no patient data)."""

    name: str
    train: _Path
    workdir: _Path
    validation: Optional[_Path] = None
    # This site's copy of the base model (default: the client app's `model`).
    model: Optional[_Path] = None


def site_from_node_config(context: Context) -> Site:
    """The site a Flower SuperNode was started for, from its `--node-config` keys `site`,
    `train`, `workdir`, and optionally `validation` and `model`."""
    c = context.node_config
    missing = [k for k in ("site", "train", "workdir") if k not in c]
    if missing:
        raise ValueError(f"the SuperNode's --node-config lacks {', '.join(missing)} (give site, train, workdir and optionally validation and model)")
    optional = {k: str(c[k]) if c.get(k) else None for k in ("validation", "model")}
    return Site(name=str(c["site"]), train=str(c["train"]), workdir=str(c["workdir"]), **optional)


class _Privacy:
    """A site's DP-SGD steps over the rounds, in `workdir/privacy.json`: every round runs the
    same sampled Gaussian mechanism (sample rate q, noise σ), so the ε of the whole
    federation so far is the accountant's ε for the rounds' steps added up."""

    def __init__(self, workdir: Path):
        self.path = workdir / "privacy.json"
        self.state = json.loads(self.path.read_text()) if self.path.exists() else {"rounds": {}}

    def add(self, server_round: int, record: dict) -> float:
        dp = record["differential_privacy"]
        mechanism = {k: dp[k] for k in ("sample_rate", "noise_multiplier", "delta")}
        if self.state.get("mechanism", mechanism) != mechanism:
            raise ValueError(f"DP-SGD's sample rate, noise or delta changed between rounds ({self.state['mechanism']} then {mechanism}): the rounds' privacy would not add up; keep the data, batch size and dp options of the first round")
        self.state["mechanism"] = mechanism
        # A round trained again (a retried message, a second federation in the same workdir)
        # spent its steps again: they add up, never replace the earlier count.
        self.state["rounds"][str(server_round)] = self.state["rounds"].get(str(server_round), 0) + dp["steps"]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.path)
        steps = sum(self.state["rounds"].values())
        return privacy.epsilon(sample_rate=mechanism["sample_rate"], noise_multiplier=mechanism["noise_multiplier"], steps=steps, delta=mechanism["delta"])


def client_app(model: Optional[_Path] = None, *, site: Optional[Callable[[Context], Site]] = None, mods=(), **options) -> ClientApp:
    """A Flower ClientApp that fine-tunes `model` (None: the default model) with medgen from
    the server's adapter each round and returns the update with its example count.

    `site(context)` says where this site's data and files are (default:
    `site_from_node_config`). `options` are `medgen.finetune`'s keywords (steps, batch size,
    learning rate, DP-SGD's `dp_max_grad_norm` and `dp_noise_multiplier`, ...), except those
    the server's adapter decides (rank, alpha, targets), and `dp_epsilon`: a federation's
    ε adds up over the rounds, so pick σ for the planned rounds with
    `medgen.privacy.noise_multiplier` and give `dp_noise_multiplier`. `mods` are Flower's
    client mods (such as `fixedclipping_mod`)."""
    refused = sorted(set(options) & set(_SERVER_OPTIONS))
    if refused:
        raise TypeError(f"client_app() does not take {', '.join(refused)}: the server's adapter and round decide them")
    base = Path(model) if model is not None else Path(medgen.default_model_path())
    where = site or site_from_node_config
    app = ClientApp(mods=list(mods))

    def receive(msg: Message, context: Context, folder: str):
        s = where(context)
        cfg = msg.content["config"]
        server_round = int(cfg["server-round"])
        config = json.loads(str(cfg["medgen.adapter-config"]))
        root = _round_dir(Path(s.workdir), server_round)
        global_dir = write_adapter(msg.content["arrays"], config, root / folder)
        return s, cfg, server_round, config, root, global_dir

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        s, cfg, server_round, config, root, global_dir = receive(msg, context, "global")
        history = medgen.finetune(
            s.model or base, s.train, s.validation, output=root / "update", overwrite=True, method="lora",
            lora_r=int(config["r"]), lora_alpha=float(config["lora_alpha"]), use_rslora=bool(config.get("use_rslora", False)),
            target_modules=list(config["target_modules"]), init_adapter=str(global_dir),
            lora_freeze_a=bool(cfg.get("medgen.freeze-a", False)), federated_round=server_round, site=s.name, **options,
        )
        record = json.loads((root / "update" / "run.json").read_text())
        epsilon = _Privacy(Path(s.workdir)).add(server_round, record) if record.get("differential_privacy") else -1.0
        update = read_adapter(root / "update")
        sent = msg.content["arrays"]
        meta = {
            "site": s.name, "round": server_round, "base-sha256": record["base_model"]["sha256"],
            "adapter-fingerprint": fingerprint(adapter_config(root / "update")),
            "epsilon": float(epsilon), "dp": json.dumps(record.get("differential_privacy")),
        }
        return Message(RecordDict({
            # The keys in the order the server sent them (Flower's clipping mods compare the lists).
            "arrays": ArrayRecord({k: update[k] for k in sent.keys()}),
            "metrics": MetricRecord({"num-examples": int(history.report["train_examples"]), "train-loss": float(history.report["train_loss"] or 0.0)}),
            "medgen": ConfigRecord(meta),
        }), reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        # The round's aggregate, after training: beside the adapter the round started from.
        s, _, _, config, _, global_dir = receive(msg, context, "evaluated")
        if s.validation is None:
            raise ValueError(f"site {s.name} has no validation data to evaluate on")
        lora = {k: v for k, v in options.items() if k in ("max_source_length", "max_target_length", "chat", "deid", "input_column", "target_column", "batch_size", "threads")}
        result = medgen.evaluate(s.model or base, s.validation, method="lora", lora_r=int(config["r"]), lora_alpha=float(config["lora_alpha"]),
                                 use_rslora=bool(config.get("use_rslora", False)), target_modules=list(config["target_modules"]), init_adapter=str(global_dir), **lora)
        return Message(RecordDict({"metrics": MetricRecord({"eval-loss": float(result["loss"]), "num-examples": int(result["examples"])})}), reply_to=msg)

    return app


class FedAvg(_FedAvg):
    """Flower's FedAvg over medgen's LoRA updates (weighted by each site's example count),
    which first rejects an update whose base model, adapter configuration or round is not the
    federation's, or (with `freeze_a`) whose A matrices moved. `adapter` is the folder of the
    first global adapter (`medgen.initial_adapter`); `round_log` a JSON-lines file that gets a
    line per site and round (who contributed how many examples, DP settings and ε)."""

    def __init__(self, adapter: _Path, *, freeze_a: bool = False, round_log: Optional[_Path] = None, **kwargs):
        super().__init__(**kwargs)
        self.config = adapter_config(adapter)
        if "medgen_base_sha256" not in self.config:
            raise ValueError(f"{adapter} is not an adapter medgen wrote (its config has no medgen_base_sha256)")
        self.fingerprint = fingerprint(self.config)
        self.freeze_a = freeze_a
        self.round_log = Path(round_log) if round_log is not None else None
        self.rejected: List[dict] = []
        self._sent: Dict[int, ArrayRecord] = {}

    def configure_train(self, server_round, arrays, config, grid):
        config["medgen.adapter-config"] = json.dumps(self.config)
        config["medgen.freeze-a"] = self.freeze_a
        self._sent[server_round] = arrays
        return super().configure_train(server_round, arrays, config, grid)

    def configure_evaluate(self, server_round, arrays, config, grid):
        config["medgen.adapter-config"] = json.dumps(self.config)
        config["server-round"] = server_round
        return super().configure_evaluate(server_round, arrays, config, grid)

    def check(self, server_round: int, content: RecordDict) -> Optional[str]:
        """Why an update may not be averaged in; None when it may."""
        if "medgen" not in content.config_records:
            return "the reply carries no medgen record (not a medgen.federated client)"
        meta = content["medgen"]
        missing = [k for k in ("site", "round", "base-sha256", "adapter-fingerprint", "epsilon", "dp") if k not in meta]
        if missing:
            return f"its medgen record lacks {', '.join(missing)}"
        if int(meta["round"]) != server_round:
            return f"it is an update for round {meta['round']}, not {server_round}"
        if meta["base-sha256"] != self.config["medgen_base_sha256"]:
            return f"it was trained on another base model (SHA-256 {meta['base-sha256']}; the federation's is {self.config['medgen_base_sha256']})"
        if meta["adapter-fingerprint"] != self.fingerprint:
            return "its adapter configuration (rank, alpha, targets or task) is not the federation's"
        sent = self._sent.get(server_round)
        arrays = next(iter(content.array_records.values()), None)
        if sent is None or arrays is None or list(arrays.keys()) != list(sent.keys()):
            return "its tensors are not the federation's adapter's"
        for k in sent.keys():
            a, b = arrays[k].numpy(), sent[k].numpy()
            if a.shape != b.shape:
                return f"tensor {k} has shape {a.shape}, not {b.shape}"
            if not np.all(np.isfinite(a)):
                return f"tensor {k} holds NaN or infinite values"
            if self.freeze_a and ".lora_A." in k and not np.array_equal(a, b):
                return f"its A matrix {k} changed, though A is frozen (FFA-LoRA)"
        return None

    def aggregate_train(self, server_round, replies):
        replies = list(replies)
        accepted = []
        lines = []
        for msg in replies:
            if msg.has_error():
                lines.append({"round": server_round, "node": msg.metadata.src_node_id, "accepted": False, "reason": f"the site failed: {msg.error.reason}"})
                continue
            reason = self.check(server_round, msg.content)
            meta = msg.content.config_records.get("medgen")
            metrics = next(iter(msg.content.metric_records.values()), {})
            line = {
                "round": server_round, "node": msg.metadata.src_node_id, "site": meta.get("site") if meta else None,
                "examples": int(metrics.get("num-examples", 0)), "train_loss": metrics.get("train-loss"),
                "accepted": reason is None,
            }
            if reason is None:
                dp = json.loads(str(meta["dp"]))
                line["differential_privacy"] = dp
                line["epsilon_total"] = float(meta["epsilon"]) if dp else None
            if reason is None:
                accepted.append(msg)
            else:
                line["reason"] = reason
                self.rejected.append(line)
                _log.error("round %d: the update of site %s (node %d) is rejected: %s", server_round, line["site"], line["node"], reason)
            lines.append(line)
        self._write(lines)
        sent = self._sent.pop(server_round, None)
        arrays, metrics = super().aggregate_train(server_round, accepted)
        if arrays is not None and self.freeze_a and sent is not None:
            # Every accepted update holds the sent A (checked): keep it bit for bit, rather
            # than its weighted mean, which rounds.
            arrays = ArrayRecord({k: sent[k] if ".lora_A." in k else arrays[k] for k in arrays.keys()})
        return arrays, metrics

    def aggregate_evaluate(self, server_round, replies):
        metrics = super().aggregate_evaluate(server_round, replies)
        if metrics is not None:
            self._write([{"round": server_round, "eval_loss": metrics.get("eval-loss")}])
        return metrics

    def _write(self, lines):
        if self.round_log is None:
            return
        self.round_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.round_log, "a") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")


def server_app(adapter: Optional[_Path] = None, *, output: Optional[_Path] = None, num_rounds: Optional[int] = None,
               strategy=None, timeout: float = 3600) -> ServerApp:
    """A Flower ServerApp that starts from the adapter folder `adapter` and runs `num_rounds`
    rounds of `strategy` (default: `FedAvg(adapter, round_log=output/rounds.jsonl)` over every
    connected site, at least two; any Flower wrapper around a `FedAvg` of this module works),
    writing the global adapter after each round into `output/round-NNN/` and the last into
    `output/final/`. What is not given here is read from the Flower run's config (keys
    `adapter`, `output`, `num-rounds`, `min-sites`), as `flwr run` passes it."""
    if num_rounds is not None and num_rounds < 1:
        raise ValueError(f"num_rounds is {num_rounds}: give at least 1")
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run = context.run_config
        missing = [k for k, v in (("adapter", adapter), ("output", output)) if v is None and k not in run]
        if missing:
            raise ValueError(f"server_app needs {' and '.join(missing)}: give them as arguments or in the run config")
        start = Path(adapter if adapter is not None else str(run["adapter"]))
        out = Path(output if output is not None else str(run["output"]))
        rounds = num_rounds if num_rounds is not None else int(run.get("num-rounds", 3))
        if rounds < 1:
            raise ValueError(f"num-rounds is {rounds}: give at least 1")
        sites = int(run.get("min-sites", 2))
        chosen = strategy if strategy is not None else FedAvg(start, round_log=out / "rounds.jsonl", min_train_nodes=sites,
                                                               min_evaluate_nodes=sites, min_available_nodes=sites)
        config = adapter_config(start)

        def save(server_round: int, arrays: ArrayRecord):
            write_adapter(arrays, config, _round_dir(out, server_round))
            return None

        result = chosen.start(grid=grid, initial_arrays=read_adapter(start), num_rounds=rounds, timeout=timeout, evaluate_fn=save)
        write_adapter(result.arrays, config, out / "final")

    return app
