"""The jit path for jagged data: collections as pytrees of flat padded arrays.

See ``collection`` (``Jagged``, ``Combinations``) and ``kinematics`` (four-vectors).
Corrections evaluate on the flat fields with their lowered form
(``correction.lower(...)``), inside the same jitted function.
"""

from __future__ import annotations

from .._extras import require

require("corrax.jagged", "awkward", "awkward")

from . import kinematics
from .collection import Chosen, Combinations, Jagged, capacity_for

__all__ = ["Chosen", "Combinations", "Jagged", "capacity_for", "kinematics"]
