"""The DP-SGD privacy accountant (medgen-core's `privacy`): Rényi DP of the sampled Gaussian
mechanism over Opacus 1.6's orders and (ε, δ) conversion, with Opacus's keyword names."""

from ._medgen import epsilon, noise_multiplier

__all__ = ["epsilon", "noise_multiplier"]
