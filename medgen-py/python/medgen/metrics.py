"""ROUGE (as rouge-score 0.1.2) and BLEU (as sacrebleu 2.6), from medgen-core's `metrics`."""

from ._medgen import corpus_bleu, rouge, sentence_bleu

__all__ = ["rouge", "sentence_bleu", "corpus_bleu"]
