"""Exceptions and warnings raised by corrax.

Every user error is a ``CorraxError``. Messages name the correction, the input and
the offending value, so that a failing evaluation in a large analysis can be traced
back to its cause. Each class also derives from the built-in exceptions correctionlib
raises in the same situation, so that code written for correctionlib (``except
RuntimeError``, ``except ValueError``, ...) catches corrax's errors too (tested case by
case against correctionlib), and from the one a Python user would expect.
"""

from __future__ import annotations

__all__ = [
    "CorraxError",
    "CorraxWarning",
    "InvalidArgumentError",
    "InvalidDocumentError",
    "InvalidInputError",
    "MissingCategoryError",
    "OutOfBoundsError",
    "PrecisionError",
    "PrecisionWarning",
    "UnknownCorrectionError",
]


class CorraxError(Exception):
    """Base class of every corrax error."""


class InvalidDocumentError(CorraxError, ValueError):
    """A correctionlib document that correctionlib would reject when loading it."""


class UnknownCorrectionError(CorraxError, KeyError):
    """A correction name that the correction set does not hold."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the sentence readable
        return str(self.args[0]) if self.args else ""


class InvalidInputError(CorraxError, ValueError, TypeError, RuntimeError):
    """Inputs of the wrong number, name, type, dtype, range or shape for a correction.

    correctionlib raises ``ValueError`` for a wrong number of inputs or shapes that do
    not broadcast and ``RuntimeError`` for a wrong type; ``TypeError`` is Python's own
    choice for bad arguments."""


class InvalidArgumentError(CorraxError, ValueError):
    """A bad setting passed to corrax (a relaxation mode or width, an interpolation,
    a correlation, a systematic key)."""


class OutOfBoundsError(CorraxError, ValueError, RuntimeError):
    """An input outside the edges of a Binning or MultiBinning whose flow is ``error``
    (correctionlib: ``RuntimeError``)."""


class MissingCategoryError(CorraxError, IndexError):
    """A Category key with no matching entry and no default (correctionlib:
    ``IndexError``)."""


class PrecisionError(CorraxError, RuntimeError):
    """An evaluation that needs 64-bit JAX (HashPRNG) while ``jax_enable_x64`` is off."""


class CorraxWarning(UserWarning):
    """Base class of corrax's warnings."""


class PrecisionWarning(CorraxWarning):
    """float64 inputs evaluated in float32 because ``jax_enable_x64`` is off."""
