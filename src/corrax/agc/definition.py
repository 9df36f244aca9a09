"""The AGC ttbar analysis (version 2) defined once: thresholds, selections, regions,
binning and variations, for the hard analysis, the differentiable one and the eager
reference alike.

Each selection is a predicate with a ``width``: at ``width=0`` (the default, a Python
number) it is the hard cut, a boolean mask of whatever array library its inputs come
from (NumPy, awkward, JAX); at ``width > 0`` it is the soft cut ``corrax.soft.cut``, a
probability (JAX). The cuts that are never relaxed (η, identification, isolation) are
separate predicates (``*_identified``), hard in both analyses.

* electrons: pt > ``lepton_pt``, |η| < ``lepton_eta``, ``cutBased == 4`` (tight),
  ``sip3d < sip3d``; muons: pt > ``lepton_pt``, |η| < ``lepton_eta``, ``tightId``,
  ``sip3d < sip3d``, ``pfRelIso04_all < muon_isolation``;
* jets: pt > ``jet_pt``, |η| < ``jet_eta``, ``jetId & 4`` (tight lepton veto); b tag:
  ``btagCSVV2 > btag``;
* events: exactly one lepton and at least four jets; region ``4j1b``: exactly one b
  tag (observable HT, the scalar sum of the jets' pt), ``4j2b``: at least two
  (observable m_bjj, the mass of the highest-pt trijet containing a b-tagged jet);
  ``BINS`` for both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import soft

__all__ = [
    "BINS",
    "EDGES",
    "JET_VARIATIONS",
    "OPTIMISED",
    "REGIONS",
    "RESOLUTION_WIDTH",
    "SCALE_UP",
    "WEIGHT_VARIATIONS",
    "Cuts",
    "above",
    "b_tagged",
    "electron_identified",
    "jet_identified",
    "jet_selected",
    "lepton_selected",
    "muon_identified",
    "region_masks",
    "region_probabilities",
]

BINS = (25, 50.0, 550.0)  # the AGC histograms: 25 bins, 50–550 GeV
EDGES = np.linspace(BINS[1], BINS[2], BINS[0] + 1)
REGIONS = ("4j1b", "4j2b")

# the AGC's jet variations: pt_scale_up (pt × SCALE_UP) and pt_res_up (pt × (1 +
# RESOLUTION_WIDTH · z), z standard normal); the mass is not varied
SCALE_UP = 1.03
RESOLUTION_WIDTH = 0.05
JET_VARIATIONS = ("nominal", "pt_scale_up", "pt_res_up")
# the AGC's event-weight variations (its ``event_systematics`` correction): name →
# (syst_name, direction, rank of the selected jet whose pt it takes); scale_var is
# applied to W+jets only
WEIGHT_VARIATIONS = {
    **{
        f"btag_var_{i}_{direction}": ("btag_var", direction, i)
        for i in range(4)
        for direction in ("up", "down")
    },
    "scale_var_up": ("scale_var", "up", 0),
    "scale_var_down": ("scale_var", "down", 0),
}

OPTIMISED = ("lepton_pt", "jet_pt", "btag")  # the thresholds the optimiser moves


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Cuts:
    """The analysis's thresholds (GeV for pt), the AGC's values by default.

    A JAX pytree whose leaves are the optimised thresholds (``OPTIMISED``); the others
    are static (fixed numbers, part of a compiled function's key).
    """

    lepton_pt: Any = 30.0
    jet_pt: Any = 30.0
    btag: Any = 0.5
    lepton_eta: float = field(default=2.1, metadata={"static": True})
    sip3d: float = field(default=4.0, metadata={"static": True})
    muon_isolation: float = field(default=0.15, metadata={"static": True})
    jet_eta: float = field(default=2.4, metadata={"static": True})

    def replace(self, **changes: Any) -> Cuts:
        """A copy with some thresholds changed."""
        return dataclasses.replace(self, **changes)

    def optimised(self) -> dict[str, float]:
        """The optimised thresholds as numbers."""
        return {name: float(getattr(self, name)) for name in OPTIMISED}

    def fixed(self) -> tuple[tuple[str, float], ...]:
        """The thresholds that are not optimised, as (name, value) pairs."""
        return tuple(
            (f.name, float(getattr(self, f.name)))
            for f in dataclasses.fields(self)
            if f.name not in OPTIMISED
        )

    def check_fixed(self, fixed: tuple[tuple[str, float], ...]) -> None:
        """Raise ``ValueError`` if the fixed thresholds differ from ``fixed`` (those
        a batch of events was selected with)."""
        if self.fixed() != tuple(fixed):
            raise ValueError(
                f"these cuts' fixed thresholds {dict(self.fixed())} differ from those the "
                f"events were prepared with {dict(fixed)}: prepare them with these cuts "
                "(load_batch(..., cuts=...))"
            )

    def as_dict(self) -> dict[str, float]:
        """Every threshold as a number."""
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)}


def above(x: Any, threshold: Any, width: Any = 0.0) -> Any:
    """``x > threshold``: a mask at ``width=0`` (any array library), else the
    logistic ``soft.cut`` (JAX)."""
    return x > threshold if soft.is_hard(width) else soft.cut(x, threshold, width)


def _and(identified: Any, passes: Any, width: Any) -> Any:
    """A hard mask and a threshold's mask (``&``) or probability (a product)."""
    return identified & passes if soft.is_hard(width) else identified * passes


def electron_identified(electron: Any, cuts: Cuts) -> Any:
    """The electron cuts that are never relaxed (``electron``: records with ``eta``,
    ``cutBased``, ``sip3d``, e.g. ``events.Electron``)."""
    return (
        (abs(electron.eta) < cuts.lepton_eta)
        & (electron.cutBased == 4)
        & (electron.sip3d < cuts.sip3d)
    )


def muon_identified(muon: Any, cuts: Cuts) -> Any:
    """The muon cuts that are never relaxed (records with ``eta``, ``tightId``,
    ``sip3d``, ``pfRelIso04_all``)."""
    return (
        (abs(muon.eta) < cuts.lepton_eta)
        & (muon.tightId != 0)
        & (muon.sip3d < cuts.sip3d)
        & (muon.pfRelIso04_all < cuts.muon_isolation)
    )


def jet_identified(jet: Any, cuts: Cuts) -> Any:
    """The jet cuts that are never relaxed (records with ``eta``, ``jetId``)."""
    return (abs(jet.eta) < cuts.jet_eta) & ((jet.jetId & 4) != 0)


def lepton_selected(pt: Any, identified: Any, cuts: Cuts, width: Any = 0.0) -> Any:
    """A lepton passes: identified and pt > ``cuts.lepton_pt`` (GeV; soft at
    ``width`` GeV)."""
    return _and(identified, above(pt, cuts.lepton_pt, width), width)


def jet_selected(pt: Any, identified: Any, cuts: Cuts, width: Any = 0.0) -> Any:
    """A jet passes: identified and pt > ``cuts.jet_pt`` (GeV; soft at ``width`` GeV)."""
    return _and(identified, above(pt, cuts.jet_pt, width), width)


def b_tagged(score: Any, cuts: Cuts, width: Any = 0.0) -> Any:
    """A (selected) jet is b-tagged: ``btagCSVV2 > cuts.btag`` (soft at ``width``)."""
    return above(score, cuts.btag, width)


def region_masks(n_leptons: Any, n_jets: Any, n_tags: Any) -> dict[str, Any]:
    """Per event, hard: region → mask, from the numbers of selected leptons, jets and
    b-tagged jets."""
    base = (n_leptons == 1) & (n_jets >= 4)
    return {"4j1b": base & (n_tags == 1), "4j2b": base & (n_tags >= 2)}


def region_probabilities(
    leptons: jax.Array,
    jets: jax.Array,
    tagged: jax.Array,
    lepton_factors: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """Per event, soft: region → probability, from each lepton's probability to be
    selected (``leptons``, ``[E, L]``), each jet's (``jets``, ``[E, N]``) and to be
    selected and tagged (``tagged`` ⊂ ``jets``), independent (Poisson-binomial, exact;
    0/1 probabilities give ``region_masks``). With ``lepton_factors`` (``[E, L]``, e.g.
    scale factors): the expectation of the one selected lepton's factor times the
    region's indicator, Σ_l f_l p_l Π_{k≠l} (1 − p_k) × P(jets)."""
    if lepton_factors is None:
        one_lepton = soft.exactly(leptons, 1)
    else:
        one_lepton = _exactly_one_weighted(jnp.asarray(leptons), jnp.asarray(lepton_factors))
    counts = soft.joint_count_probabilities(jets, tagged, 4, 2)
    return {"4j1b": one_lepton * counts[..., 4, 1], "4j2b": one_lepton * counts[..., 4, 2]}


def _exactly_one_weighted(p: jax.Array, factors: jax.Array) -> jax.Array:
    """Σ_l f_l p_l Π_{k≠l} (1 − p_k) over the last axis (products of the others taken
    directly, not by dividing out (1 − p_l), which is 0 for a certain lepton)."""
    n = p.shape[-1]
    total = jnp.zeros(p.shape[:-1], dtype=jnp.result_type(p, factors))
    for lepton in range(n):
        others = jnp.prod(jnp.delete(1.0 - p, lepton, axis=-1, assume_unique_indices=True), axis=-1)
        total = total + factors[..., lepton] * p[..., lepton] * others
    return total
