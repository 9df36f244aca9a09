"""Exceptions raised by corrax.

Every message names the correction, the input and the offending value, so that a
failing evaluation in a large analysis can be traced back to its cause.
"""

from __future__ import annotations

__all__ = [
    "CorraxError",
    "InvalidDocumentError",
    "InvalidInputError",
    "MissingCategoryError",
    "OutOfBoundsError",
    "UnknownCorrectionError",
]


class CorraxError(Exception):
    """Base class of every corrax error."""


class InvalidDocumentError(CorraxError, ValueError):
    """A correctionlib document failed to parse or to validate against schema v2."""


class UnknownCorrectionError(CorraxError, KeyError):
    """A correction name that the correction set does not hold."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the sentence readable
        return str(self.args[0]) if self.args else ""


class InvalidInputError(CorraxError, TypeError):
    """Inputs of the wrong number, type or dtype for a correction's signature."""


class OutOfBoundsError(CorraxError, ValueError):
    """An input outside the edges of a Binning or MultiBinning whose flow is ``error``."""


class MissingCategoryError(CorraxError, IndexError):
    """A Category key with no matching entry and no default."""
