"""medgen: generation of clinical text with pretrained language models (Rust over libtorch).

    import medgen
    model = medgen.Model.load()                      # the packaged SmolLM2, or a path
    out = model.generate("Summarize: ...", max_new_tokens=64)
    print(out.text, out.finish_reason)
"""

import json as _json

# The extension links libtorch; importing torch loads it (from the installed torch==2.13.0).
import torch as _torch  # noqa: F401

from ._medgen import (  # noqa: E402
    ContextLengthError,
    DeviceError,
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
    UnsupportedError,
    __version__,
    default_model_path,
)


from . import checks, deid, metrics, tasks  # noqa: E402


def _default_model():
    """The default model's path as a str, or None when it is not installed (older name)."""
    try:
        return str(default_model_path())
    except ModelLoadError:
        return None


def model_info(model: Model) -> dict:
    """Architecture, parameter count, tensor types, context length, ... of a loaded model."""
    return _json.loads(model.info_json)


__all__ = [
    "Model", "Generation", "GenerationConfig", "Stream", "model_info", "MedgenError", "ModelLoadError",
    "UnsupportedError", "InvalidArgumentError", "ContextLengthError", "DeviceError", "TokenizerError",
    "TemplateError", "TorchError", "__version__", "default_model_path", "deid", "checks", "metrics", "tasks",
]
