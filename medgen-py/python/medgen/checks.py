"""Safety checks of a generated draft against its source note (medgen-core's `checks`)."""

from ._medgen import check

__all__ = ["check"]
