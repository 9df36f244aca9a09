"""An example coffea processor that applies corrections with corrax.

``CorrectedJetsProcessor`` shows the pattern for any coffea processor:

* corrections are passed to the constructor as corrax objects (they pickle by their
  documents, so every executor can ship the processor to its workers);
* ``process()`` runs in JAX's 64-bit mode, scoped (``with jax.enable_x64(True):``):
  worker processes start with JAX's defaults (float32), and corrax never changes
  JAX's configuration (the corrections are lowered in float64 inside the scope);
* muon scale factors through a behavior (``events.Muon`` gets ``id_sf``), per-event
  weights as their product; jets corrected by ``JetCorrector`` (JEC, JER, JES);
* ``hist`` histograms of the corrected jets, and per-chunk gradients, summed by
  coffea's accumulation like the histograms: d(Σ weight·HT)/dθ_JES at θ = 0 (on the
  jit path for jagged data, ``corrax.jagged``), and d(Σ weight)/d(the muon scale
  factor's numbers).
"""

from __future__ import annotations

import functools
from typing import Any

import awkward as ak
import hist
import jax
import numpy as np
from coffea import processor
from jax.flatten_util import ravel_pytree

from .._inputs import x64_scope
from ..awkward import Binding, JetCorrector, argument, product, with_corrections
from ..jagged import Jagged

__all__ = ["CorrectedJetsProcessor"]

JET_PT_MIN = 30.0  # GeV
MUON_PT_MIN, MUON_ETA_MAX = 15.0, 2.4


class CorrectedJetsProcessor(processor.ProcessorABC):
    """Corrected-jet histograms weighted by muon scale factors, with gradients.

    ``jets``: a ``corrax.awkward.JetCorrector``; ``muon_sf``: a muon scale factor
    with inputs (year, abseta, pt, ValType) such as ``NUM_TightID_DEN_TrackerMuons``;
    ``year``: its year key.
    """

    def __init__(self, jets: JetCorrector, muon_sf: Any, year: str = "2018_UL"):
        self.jets = jets
        self.muon_sf = muon_sf
        self.year = year

    def process(self, events: Any) -> dict[str, Any]:
        with x64_scope():  # scoped, in every worker: see the module docstring
            return self._process(events)

    def _process(self, events: Any) -> dict[str, Any]:
        muons = events.Muon[(events.Muon.pt > MUON_PT_MIN) & (abs(events.Muon.eta) < MUON_ETA_MAX)]
        binding = Binding(
            self.muon_sf,
            year=self.year,
            abseta=lambda muon: abs(muon.eta),
            pt="pt",
            ValType=argument("sf"),
        )
        muons = with_corrections(muons, id_sf=binding)
        weight = product(muons.id_sf())

        rho, event = events.fixedGridRhoFastjetAll, events.event
        pt_gen = ak.fill_none(events.Jet.matched_gen.pt, 0.0) if "GenJet" in events.fields else None
        jets = self.jets(events.Jet, rho, event, pt_gen)
        jets = jets[jets.pt > JET_PT_MIN]
        ht = ak.sum(jets.pt, axis=1)

        jet_pt = hist.Hist.new.Reg(25, 0, 500, name="pt", label="jet pt [GeV]").Weight()
        jet_pt.fill(
            pt=ak.flatten(jets.pt), weight=ak.flatten(ak.broadcast_arrays(weight, jets.pt)[0])
        )
        ht_hist = hist.Hist.new.Reg(25, 0, 1000, name="ht", label="HT [GeV]").Weight()
        ht_hist.fill(ht=ht, weight=weight)
        return {
            "jet_pt": jet_pt,
            "ht": ht_hist,
            "sumw": float(ak.sum(weight)),
            "d_sumw_ht_d_jes": self._jes_gradient(events, pt_gen, weight),
            "d_sumw_d_muon_sf": self._sf_gradient(muons),
        }

    def _jes_gradient(self, events: Any, pt_gen: Any, weight: ak.Array) -> float:
        """d(Σ weight·HT)/dθ_JES at θ = 0, on the jit path for jagged data (compiled
        once per capacity, not once per chunk)."""
        jets = events.Jet
        columns = {
            "pt_raw": jets.pt * (1.0 - jets.rawFactor),
            "mass_raw": jets.mass * (1.0 - jets.rawFactor),
            "eta": jets.eta,
            "area": jets.area,
            "rho": ak.broadcast_arrays(events.fixedGridRhoFastjetAll, jets.pt)[0],
            "event": ak.broadcast_arrays(ak.values_astype(events.event, np.int64), jets.pt)[0],
            "pt_gen": jets.pt * 0.0 if pt_gen is None else pt_gen,
        }
        collection = Jagged.from_awkward(ak.zip(columns))
        padded_weight = np.zeros(collection.event_slots)
        padded_weight[: len(weight)] = ak.to_numpy(weight)
        gradient = _weighted_ht_gradient(self.jets, pt_gen is not None)
        return float(gradient(collection, jax.numpy.asarray(padded_weight)))

    def _sf_gradient(self, muons: Any) -> np.ndarray:
        """d(Σ weight)/d(the scale factor's numbers), flat like ``ravel_pytree``."""
        bound = self.muon_sf.bind(self.year, "sf")
        abseta = ak.to_numpy(ak.flatten(abs(muons.eta))).astype(np.float64)
        pt = ak.to_numpy(ak.flatten(muons.pt)).astype(np.float64)
        counts = ak.to_numpy(ak.num(muons.pt))
        events = np.repeat(np.arange(len(counts)), counts)

        def total(b: Any) -> jax.Array:
            log_sf = jax.numpy.log(b.evaluate(abseta, pt))
            per_event = jax.ops.segment_sum(log_sf, events, num_segments=len(counts))
            return jax.numpy.exp(per_event).sum()

        return np.array(ravel_pytree(jax.grad(total)(bound))[0])  # writable: coffea adds in place

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return accumulator


@functools.cache
def _weighted_ht_gradient(corrector: JetCorrector, matched: bool) -> Any:
    """A jitted d(Σ_events weight · Σ_jets pt·[pt > 30])/dθ_JES at θ = 0 (one per
    corrector and process)."""

    def weighted_ht(theta: jax.Array, jets: Jagged, weight: jax.Array) -> jax.Array:
        corrected = corrector.correct_flat(
            jets["pt_raw"],
            jets["mass_raw"],
            jets["eta"],
            jets["area"],
            jets["rho"],
            jets["event"],
            jets["pt_gen"] if matched else None,
            jes=theta,
        )
        pt = corrected["pt"]
        selected = jax.numpy.where(pt > JET_PT_MIN, pt, 0.0)
        return (weight * jets.sum(selected)).sum()

    gradient = jax.jit(jax.grad(weighted_ht))
    return lambda jets, weight: gradient(0.0, jets, weight)
