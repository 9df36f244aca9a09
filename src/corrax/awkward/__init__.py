"""corrax on awkward arrays: jagged columns, behaviors on NanoAOD collections.

``Correction.evaluate`` (and every other ``evaluate``) accepts awkward and
dask-awkward arrays directly and returns the same layout (see ``columns``). This
subpackage adds behaviors: corrections attached to record types such as ``Muon`` or
``Jet`` (see ``behavior``), registered on the arrays you ask for, never globally.
"""

from __future__ import annotations

from .behavior import Argument, Binding, argument, with_corrections
from .columns import evaluate_columns, is_columnar
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
