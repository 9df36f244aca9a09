"""Per-object scale factors to per-event weights, on awkward arrays (both backends).

The CMS recipes, written with awkward reductions so that they work on jagged arrays
of any event, empty events and empty collections included (the weight of an event
without objects is 1), and differentiate on the awkward JAX backend:

* ``product``: Π_i SF_i (muon/electron ID and isolation, b-tag shape method);
* ``btag_fixed_wp``: the fixed-working-point method "1a",
  w = Π_tagged SF_i · Π_untagged (1 − SF_i ε_i) / (1 − ε_i), with ε_i the MC tagging
  efficiency of jet i (its flavour, pt, eta) at the working point.

Event-level corrections such as the pileup weight (a correction of
``Pileup_nTrueInt``) are evaluated directly on the event column:
``pileup.evaluate(events.Pileup.nTrueInt, "nominal")``.
"""

from __future__ import annotations

from typing import Any

import awkward as ak

__all__ = ["btag_fixed_wp", "product"]


def product(scale_factors: ak.Array, axis: int = -1) -> ak.Array:
    """Π of the scale factors along ``axis`` (the objects of each event); 1 for none.

    Missing values (None) count as 1.
    """
    return ak.prod(ak.fill_none(scale_factors, 1.0), axis=axis)


def btag_fixed_wp(
    scale_factors: ak.Array, efficiencies: ak.Array | Any, tagged: ak.Array, axis: int = -1
) -> ak.Array:
    """The fixed-working-point b-tag event weight (method 1a), per event.

    ``scale_factors`` and ``efficiencies`` per jet (same layout; efficiencies may be a
    number), ``tagged`` per jet (bool: passes the working point).
    """
    untagged = (1.0 - scale_factors * efficiencies) / (1.0 - efficiencies)
    per_jet = ak.where(tagged, scale_factors, untagged)
    return product(per_jet, axis=axis)
