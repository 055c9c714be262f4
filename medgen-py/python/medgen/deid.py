"""De-identification of protected health information (medgen-core's `deid` module): the rules,
the learned tagger, or both (`engine="ensemble"`, the default)."""

from ._medgen import deid_tagger_logits, deidentify, detect, detect_batch, reidentify, train_deid_tagger

__all__ = ["detect", "detect_batch", "deidentify", "reidentify", "train_deid_tagger", "deid_tagger_logits"]
