"""corrax: differentiable CMS-style corrections.

An exact JAX evaluator for correctionlib schema-v2 documents: every node type, equal
to correctionlib's values, under ``jit``, ``vmap``, ``grad``, ``jacfwd``, ``jacrev``
and ``hessian``.

Layers, each using only the one below:

* ``CorrectionSet`` / ``Correction`` / ``CompoundCorrection``: correctionlib's API;
* ``LoweredCorrection`` / ``LoweredCompound`` (``Correction.lower``): the functional
  layer, a correction as a pytree of tables plus a pure JAX function;
* the private core (``corrax._core``): lowering and evaluation of nodes.

corrax never changes JAX's global configuration. For values equal to correctionlib's
(which computes in double precision) enable 64-bit mode yourself, e.g.
``jax.config.update("jax_enable_x64", True)`` at the start of your program (and of
every worker process), or the ``jax.enable_x64(True)`` context manager; see the
README's "Precision" section.
"""

from __future__ import annotations

from .correction import CompoundCorrection, Correction
from .correctionset import CorrectionSet
from .errors import (
    CorraxError,
    CorraxWarning,
    InvalidArgumentError,
    InvalidDocumentError,
    InvalidInputError,
    MissingCategoryError,
    OutOfBoundsError,
    PrecisionError,
    PrecisionWarning,
    UnknownCorrectionError,
)
from .lowered import BoundCorrection, LoweredCompound, LoweredCorrection
from .nuisance import NuisanceCorrection
from .uncertainty import propagate

__version__ = "0.1.0"

__all__ = [
    "BoundCorrection",
    "CompoundCorrection",
    "CorraxError",
    "CorraxWarning",
    "Correction",
    "CorrectionSet",
    "InvalidArgumentError",
    "InvalidDocumentError",
    "InvalidInputError",
    "LoweredCompound",
    "LoweredCorrection",
    "MissingCategoryError",
    "NuisanceCorrection",
    "OutOfBoundsError",
    "PrecisionError",
    "PrecisionWarning",
    "UnknownCorrectionError",
    "__version__",
    "propagate",
]
