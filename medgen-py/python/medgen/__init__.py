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
)


from . import checks, deid, metrics, tasks  # noqa: E402


def model_info(model: Model) -> dict:
    """Architecture, parameter count, tensor types, context length, ... of a loaded model."""
    return _json.loads(model.info_json)


__all__ = [
    "Model", "Generation", "GenerationConfig", "Stream", "model_info", "MedgenError", "ModelLoadError",
    "UnsupportedError", "InvalidArgumentError", "ContextLengthError", "DeviceError", "TokenizerError",
    "TemplateError", "TorchError", "__version__", "deid", "checks", "metrics", "tasks",
]
