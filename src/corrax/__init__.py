"""corrax: differentiable CMS-style corrections.

An exact JAX evaluator for correctionlib schema-v2 documents: every node type, equal
to correctionlib's values, under ``jit``, ``vmap``, ``grad``, ``jacfwd``, ``jacrev``
and ``hessian``.

corrax never changes JAX's global configuration. For values equal to correctionlib's
(which computes in double precision) enable 64-bit mode yourself, e.g.
``jax.config.update("jax_enable_x64", True)`` at the start of your program, or the
``jax.enable_x64(True)`` context manager; see the README's "Precision" section.
"""

from __future__ import annotations

from .bound import BoundCorrection
from .correction import CompoundCorrection, Correction
from .correctionset import CorrectionSet
from .errors import (
    CorraxError,
    InvalidDocumentError,
    InvalidInputError,
    MissingCategoryError,
    OutOfBoundsError,
    UnknownCorrectionError,
)
from .nuisance import NuisanceCorrection
from .uncertainty import propagate

__version__ = "0.1.0"

__all__ = [
    "BoundCorrection",
    "CompoundCorrection",
    "CorraxError",
    "Correction",
    "CorrectionSet",
    "InvalidDocumentError",
    "InvalidInputError",
    "MissingCategoryError",
    "NuisanceCorrection",
    "OutOfBoundsError",
    "UnknownCorrectionError",
    "__version__",
    "propagate",
]
