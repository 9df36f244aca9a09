"""corrax on awkward arrays: jagged columns, behaviors on NanoAOD collections.

``Correction.evaluate`` (and every other ``evaluate``) accepts awkward and
dask-awkward arrays directly and returns the same layout (see ``corrax._columnar``). This
subpackage adds behaviors: corrections attached to record types such as ``Muon`` or
``Jet`` (see ``behavior``), registered on the arrays you ask for, never globally.
"""

from __future__ import annotations

from .._extras import require

require("corrax.awkward", "awkward", "awkward", "vector")

from .._columnar import evaluate_columns, is_columnar
from .behavior import Argument, Binding, argument, with_corrections
from .jets import JetCorrector
from .weights import btag_fixed_wp, product

__all__ = [
    "Argument",
    "Binding",
    "JetCorrector",
    "argument",
    "btag_fixed_wp",
    "evaluate_columns",
    "is_columnar",
    "product",
    "with_corrections",
]
