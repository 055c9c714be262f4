"""De-identification of protected health information (medgen-core's `deid` module)."""

from ._medgen import deidentify, detect, reidentify

__all__ = ["detect", "deidentify", "reidentify"]
