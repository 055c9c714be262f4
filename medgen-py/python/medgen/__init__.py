"""medgen: generation of clinical text with pretrained language models (Rust over libtorch).

    import medgen
    model = medgen.Model.load()                      # the packaged SmolLM2, or a path
    out = model.generate("Summarize: ...", max_new_tokens=64)
    print(out.text, out.finish_reason)

    history = medgen.finetune(None, "notes.jsonl", output="adapter/", method="lora")
    tuned = medgen.Model.load(adapter="adapter/")
"""

import json as _json
from typing import TYPE_CHECKING, List

# The extension links libtorch; importing torch loads it (from the installed torch==2.13.0).
import torch as _torch  # noqa: F401

from ._medgen import (  # noqa: E402
    ContextLengthError,
    DeviceError,
    FileError,
    Generation,
    GenerationConfig,
    InvalidArgumentError,
    MedgenError,
    Model,
    ModelLoadError,
    Stream,
    TemplateError,
    TokenizerError,
    TorchError,
    InternalError,
    AuditTamperedError,
    UnsupportedError,
    __version__,
    default_model_path,
    evaluate,
    finetune,
    initial_adapter,
    merge,
    task_adapter_path,
    train_tokenizer,
)


from . import checks, deid, metrics, privacy, review, tasks  # noqa: E402

if TYPE_CHECKING:
    from ._medgen import LogEntry, TrainingReport


def _default_model():
    """The default model's path as a str, or None when it is not installed (older name)."""
    try:
        return str(default_model_path())
    except ModelLoadError:
        return None


class History(List["LogEntry"]):
    """What `finetune` returns: its log entries, oldest first, as dicts (step, epoch, loss,
    learning_rate, grad_norm, eval_loss, eval_rougeL, tokens_per_second, total_steps,
    elapsed_seconds; an entry holds the keys that apply to it), which pandas.DataFrame reads
    as they are. `report` is the run's result: output, steps, total_steps, train_loss,
    eval_loss, eval_rougeL, stopped_early, train_examples, validation_examples,
    truncated_examples, best_step and seconds (output/run.json holds it too)."""

    report: "TrainingReport"

    def __init__(self, entries=(), report=None):
        super().__init__(entries)
        self.report = {} if report is None else report

    def __repr__(self):
        return f"History({list.__repr__(self)}, report={self.report!r})"


def model_info(model: Model) -> dict:
    """Architecture, parameter count, tensor types, context length, ... of a loaded model."""
    return _json.loads(model.info_json)


__all__ = [
    "Model", "Generation", "GenerationConfig", "Stream", "model_info", "MedgenError", "ModelLoadError", "FileError",
    "UnsupportedError", "InvalidArgumentError", "ContextLengthError", "DeviceError", "TokenizerError",
    "TemplateError", "TorchError", "InternalError", "AuditTamperedError", "__version__", "default_model_path", "deid", "checks",
    "metrics", "privacy", "review", "tasks",
    "finetune", "merge", "History", "task_adapter_path", "initial_adapter", "evaluate", "train_tokenizer",
]
