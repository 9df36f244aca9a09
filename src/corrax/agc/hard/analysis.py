"""The hard (cut-based) AGC ttbar analysis, version 2, with every correction through corrax.

The selection, regions, binning and variations are those of ``corrax.agc.definition``
(thresholds ``Cuts``, the AGC's values by default), at width 0.

Weights: ``norm · genWeight`` (``norm = σ · L / Σ genWeight``, from the dataset's
metadata), times — when the real files are given (``RealCorrections``) — the muon and
electron ID scale factors and the pileup weight. No b-tag scale factors: the real
ones are deepJet's, at deepJet's working points, while this analysis cuts on the
CSVv2-like discriminant of the generated sample, for which no measured factors exist
(``corrax.awkward.btag_fixed_wp`` applies such factors where they do).

Variations (histogram axis ``variation``):

* the AGC's: ``pt_scale_up`` (jet pt × 1.03), ``pt_res_up`` (jet pt × N(1, 0.05), the
  normal numbers from correctionlib's HashPRNG seeded by event, pt and φ, so the
  variation is reproducible), ``btag_var_{0..3}_{up,down}`` (event weight from the
  AGC's ``event_systematics`` correction with the pt of the i-th selected jet),
  ``scale_var_{up,down}`` (W+jets only); the alternative ttbar samples fill their own
  name (``scaleup``, ``ME_var``, ...);
* real-style, when the real files are given: ``jes_{up,down}`` and ``jer_{up,down}``
  (jets rebuilt from raw pt by ``JetCorrector``: JEC, JER hybrid smearing, JES
  uncertainty), ``muon_id_*``, ``electron_id_*``, ``pileup_*``.

Every correction is evaluated by corrax: the systematics and scale factors through
behaviors attached to the collections (``corrax.awkward.with_corrections``), the
jets through ``JetCorrector``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import awkward as ak
import hist
import numpy as np
import vector

from ...awkward import Binding, JetCorrector, argument, product, with_corrections
from ...jets import DEFAULT_SHIFTS
from .. import definition
from ..corrections import (
    ELECTRON_WORKING_POINT,
    ELECTRON_YEAR,
    MUON_YEAR,
    RealCorrections,
    jet_resolution_noise,
    load_systematics,
    matched_gen_pt,
)
from ..definition import (
    BINS,
    JET_VARIATIONS,
    REGIONS,
    RESOLUTION_WIDTH,
    SCALE_UP,
    WEIGHT_VARIATIONS,
    Cuts,
)

__all__ = ["Analysis", "JetSystematics", "histogram", "m_bjj"]


def histogram() -> hist.Hist:
    """An empty AGC histogram: observable × process × variation, weighted."""
    return (
        hist.Hist.new.Reg(*BINS, name="observable", label="observable [GeV]")
        .StrCat([], name="process", growth=True)
        .StrCat([], name="variation", growth=True)
        .Weight()
    )


class JetSystematics:
    """Per-variation jet pt and mass (jagged, same layout as ``events.Jet``)."""

    def __init__(self, real: RealCorrections):
        self.corrector = None
        if real.has_jets:
            self.corrector = JetCorrector(
                real.jec, real.uncertainty, real.resolution, real.scale_factor
            )
        self.noise = Binding(jet_resolution_noise(), event="event", pt="pt", phi="phi")

    def names(self) -> list[str]:
        names = list(JET_VARIATIONS)
        if self.corrector is not None:
            names += [name for name in DEFAULT_SHIFTS if name != "nominal"]
        return names

    def _corrected(self, events: Any, names: list[str]) -> dict[str, tuple[ak.Array, ak.Array]]:
        """(pt, mass) of the nominal jets and of the real-style shifts in ``names``."""
        jets = events.Jet
        if self.corrector is None:
            # float64, as the AGC's variations (pt × 1.03) and correctionlib compute
            pt, mass = (
                ak.values_astype(jets.pt, np.float64),
                ak.values_astype(jets.mass, np.float64),
            )
            return {"nominal": (pt, mass)}
        shifts = {
            name: DEFAULT_SHIFTS[name] for name in ["nominal", *names] if name in DEFAULT_SHIFTS
        }
        corrected = self.corrector.variations(
            jets,
            events.fixedGridRhoFastjetAll,
            events.event,
            matched_gen_pt(jets.genJetIdx, events.GenJet.pt),
            shifts,
        )
        return {name: (shifted.pt, shifted.mass) for name, shifted in corrected.items()}

    def __call__(
        self, events: Any, names: list[str] | None = None
    ) -> dict[str, tuple[ak.Array, ak.Array]]:
        """``{variation: (pt, mass)}`` for ``names`` (default: every variation)."""
        names = self.names() if names is None else names
        result = self._corrected(events, names)
        pt, mass = result["nominal"]
        if "pt_scale_up" in names:
            result["pt_scale_up"] = (pt * SCALE_UP, mass)
        if "pt_res_up" in names:
            jets = events.Jet
            event = ak.broadcast_arrays(ak.values_astype(events.event, np.int64), jets.pt)[0]
            fields = ak.zip({"event": event, "pt": jets.pt, "phi": jets.phi}, with_name="AGCJet")
            z = with_corrections(fields, noise=self.noise).noise
            result["pt_res_up"] = (pt * (1.0 + RESOLUTION_WIDTH * z), mass)
        return {name: result[name] for name in names}


def _leptons(events: Any, cuts: Cuts) -> tuple[ak.Array, ak.Array]:
    electrons, muons = events.Electron, events.Muon
    good_electron = definition.lepton_selected(
        electrons.pt, definition.electron_identified(electrons, cuts), cuts
    )
    good_muon = definition.lepton_selected(muons.pt, definition.muon_identified(muons, cuts), cuts)
    return electrons[good_electron], muons[good_muon]


def _flat_momenta(fields: ak.Array) -> vector.MomentumNumpy4D:
    """The flat momenta of jagged records with four-momentum fields (vector's NumPy
    backend: one call per operation for every object, where its awkward backend
    costs milliseconds per call on small chunks)."""
    flat = ak.flatten(fields)
    return vector.array({name: ak.to_numpy(flat[name]) for name in flat.fields})


def m_bjj(jets: ak.Array, btag_cut: float) -> ak.Array:
    """Per event: the mass of the highest-pt trijet with a b-tagged jet (None if none).

    The trijets are ``ak.argcombinations`` of each event's jets (the AGC's order);
    their four-momenta are summed by vector's NumPy backend on flat arrays, and the
    highest-pt tagged trijet of each event (the first of equal pts, as ``ak.argmax``)
    is found with one sort, so a chunk costs a handful of array calls whatever its
    number of events.
    """
    momenta = _flat_momenta(jets[["pt", "eta", "phi", "mass"]])
    cartesian = {"px": momenta.px, "py": momenta.py, "pz": momenta.pz, "E": momenta.E}
    btag = ak.to_numpy(ak.flatten(jets.btagCSVV2))
    n_jets = ak.to_numpy(ak.num(jets.pt))
    first_jet = np.cumsum(n_jets) - n_jets
    trijets = ak.argcombinations(jets.pt, 3, fields=["a", "b", "c"])
    n_trijets = ak.to_numpy(ak.num(trijets)).astype(np.int64)
    event = np.repeat(np.arange(len(n_jets)), n_trijets)
    members = [
        ak.to_numpy(ak.flatten(trijets[j])).astype(np.int64) + first_jet[event] for j in "abc"
    ]
    a, b, c = (vector.array({k: v[m] for k, v in cartesian.items()}) for m in members)
    p4 = a + b + c
    max_btag = np.maximum(btag[members[0]], np.maximum(btag[members[1]], btag[members[2]]))
    tagged = np.flatnonzero(definition.above(max_btag, btag_cut))
    # tagged trijets by event, then pt descending, then position: each event's first
    order = tagged[np.lexsort((tagged, -p4.pt[tagged], event[tagged]))]
    starts = np.flatnonzero(np.diff(event[order], prepend=-1))
    best = order[starts]
    mass = np.zeros(len(n_jets))
    found = np.zeros(len(n_jets), dtype=bool)
    mass[event[best]], found[event[best]] = p4.mass[best], True
    if found.all():
        return ak.Array(mass)
    return ak.mask(ak.Array(mass), found)


def _regions(jets: ak.Array, n_leptons: np.ndarray, cuts: Cuts) -> dict[str, tuple[Any, Any]]:
    """Region → (event mask, observable per selected event). The per-event counts are
    NumPy arrays: awkward's broadcasting costs milliseconds per call on flat arrays."""
    n_tags = ak.to_numpy(ak.sum(definition.b_tagged(jets.btagCSVV2, cuts), axis=1))
    masks = definition.region_masks(n_leptons, ak.to_numpy(ak.num(jets.pt)), n_tags)
    one_b, two_b = masks["4j1b"], masks["4j2b"]
    return {
        "4j1b": (one_b, ak.sum(jets.pt[one_b], axis=1)),
        "4j2b": (two_b, m_bjj(jets[two_b], cuts.btag)),
    }


class _Weights:
    """The nominal event weight and the weight variations (through behaviors)."""

    def __init__(self, systematics: Any, real: RealCorrections):
        self.real = real
        self.agc = Binding(systematics, syst_name=argument(), direction=argument(), pt="pt")
        self.muon = self.electron = None
        if real.muon_id is not None:
            self.muon = Binding(
                real.muon_id,
                year=MUON_YEAR,
                abseta=lambda muon: abs(muon.eta),
                pt="pt",
                ValType=argument("sf"),
            )
        if real.electron_id is not None:
            self.electron = Binding(
                real.electron_id,
                year=ELECTRON_YEAR,
                ValType=argument("sf"),
                WorkingPoint=ELECTRON_WORKING_POINT,
                eta="eta",
                pt="pt",
            )

    def scale_factors(
        self, events, electrons, muons, variations: bool = True
    ) -> dict[str, ak.Array]:
        """Per event: the product of the real-style factors (``"nominal"``) and, with
        ``variations``, each of their variations (``"<name>_<up|down>"``)."""
        directions = ("nominal", "up", "down") if variations else ("nominal",)
        ones = ak.ones_like(events.genWeight, dtype=np.float64)
        parts: dict[str, dict[str, Any]] = {}
        if self.muon is not None:
            muon = with_corrections(muons, id_sf=self.muon)
            keys = {"nominal": "sf", "up": "systup", "down": "systdown"}
            parts["muon_id"] = {d: product(muon.id_sf(keys[d])) for d in directions}
        if self.electron is not None:
            electron = with_corrections(electrons, id_sf=self.electron)
            keys = {"nominal": "sf", "up": "sfup", "down": "sfdown"}
            parts["electron_id"] = {d: product(electron.id_sf(keys[d])) for d in directions}
        if self.real.pileup is not None:
            n_true = events.Pileup.nTrueInt
            parts["pileup"] = {d: self.real.pileup.evaluate(n_true, d) for d in directions}
        nominal = ones
        for part in parts.values():
            nominal = nominal * part["nominal"]
        result = {"nominal": nominal}
        for name, part in parts.items():
            for direction in directions[1:]:
                result[f"{name}_{direction}"] = nominal / part["nominal"] * part[direction]
        return result

    def agc_per_jet(self, jets: ak.Array, name: str, direction: str) -> ak.Array:
        """The AGC's ``event_systematics`` weight evaluated with each jet's pt (the
        variation of jet i is column i)."""
        return with_corrections(jets, agc=self.agc).agc(name, direction)


class Analysis:
    """The configured analysis: corrections, cuts; ``process_events`` fills histograms.

    ``split``: ``"even"`` or ``"odd"`` analyses only the events with that parity of
    the event number, with weights × 2 (held-out evaluation of optimised cuts);
    ``variations=False``: the nominal histograms only; ``real_variations=False``:
    the AGC's variations without the real-style ones (``jes_*``, ``jer_*``, lepton ID,
    pileup), which the statistical model does not use.
    """

    def __init__(
        self,
        real: RealCorrections | None = None,
        systematics: Any = None,
        cuts: Cuts | None = None,
        split: str | None = None,
        variations: bool = True,
        real_variations: bool = True,
    ):
        self.real = real or RealCorrections()
        self.systematics = systematics if systematics is not None else load_systematics()
        self.cuts = cuts or Cuts()
        if split not in (None, "even", "odd"):
            raise ValueError(f"split must be None, 'even' or 'odd', not {split!r}")
        self.split = split
        self.variations = variations
        self.real_variations = real_variations
        self.jets = JetSystematics(self.real)
        self.weights = _Weights(self.systematics, self.real)

    def process_events(
        self, events: Any, process: str, variation: str, norm: float, use_genweight: bool = True
    ) -> dict[str, hist.Hist]:
        """Histograms (``{"4j1b": Hist, "4j2b": Hist}``) of one chunk of NanoEvents."""
        return self.process_chunk(events, process, variation, norm, use_genweight)[0]

    def process_chunk(
        self,
        events: Any,
        process: str,
        variation: str,
        norm: float,
        use_genweight: bool = True,
        report: bool = False,
        variation_norms: Mapping[str, float] | None = None,
    ) -> tuple[dict[str, hist.Hist], dict[str, dict[str, Any]] | None]:
        """(``process_events``'s histograms, and with ``report`` the chunk's
        ``selection_report`` from the same nominal jets and weights)."""
        nominal_sample = variation == "nominal" and self.variations
        names = self.jets.names() if nominal_sample else ["nominal"]
        if not self.real_variations:
            names = [n for n in names if n in JET_VARIATIONS]
        chunk = (events, process, variation, norm, use_genweight)
        return self._process(*chunk, names, nominal_sample, report, variation_norms)

    def _process(
        self,
        events,
        process,
        variation,
        norm,
        use_genweight,
        names,
        nominal_sample,
        report,
        variation_norms,
    ):
        """(histograms, report or None) of the jet variations ``names``; the weight
        variations too where ``nominal_sample``."""
        output = {region: histogram() for region in REGIONS}
        cuts = self.cuts
        if self.split is not None:
            # half of the events (by event-number parity) stand for the whole sample
            events = events[events.event % 2 == (0 if self.split == "even" else 1)]
            norm = 2.0 * norm
        electrons, muons = _leptons(events, cuts)
        n_leptons = ak.to_numpy(ak.num(electrons.pt)) + ak.to_numpy(ak.num(muons.pt))
        # float64: NanoAOD's genWeight is float32, the normalisation is not rounded to it
        gen_weight = ak.values_astype(events.genWeight, np.float64)
        base = norm * (gen_weight if use_genweight else ak.ones_like(gen_weight))
        # the lepton scale factors and the jet identification are the same for every
        # jet variation
        factors = self.weights.scale_factors(
            events, electrons, muons, variations=self.real_variations and nominal_sample
        )
        weight = base * factors["nominal"]
        identified = definition.jet_identified(events.Jet, cuts)
        # plain records: NanoEvents' jets compute pt through vector's behavior on
        # every access, which costs more than the selection on small chunks
        fixed = {name: events.Jet[name] for name in ("eta", "phi", "btagCSVV2")}
        summary = None
        for jet_variation, (pt, mass) in self.jets(events, names).items():
            jets = ak.zip({"pt": pt, "mass": mass, **fixed}, with_name="AGCJet")
            jets = jets[definition.jet_selected(pt, identified, cuts)]
            label = variation if jet_variation == "nominal" else jet_variation
            regions = _regions(jets, n_leptons, cuts)
            if report and jet_variation == "nominal":
                summary = _report(events, n_leptons, jets, weight, regions, variation_norms)
            for region, (mask, observable) in regions.items():
                fill = _filler(output[region], process, observable)
                fill(label, weight[mask])
                if jet_variation != "nominal" or not nominal_sample:
                    continue
                for name, factor in factors.items():
                    if name != "nominal":
                        fill(name, (base * factor)[mask])
                per_jet = {}  # (syst_name, direction) → the weight with each jet's pt
                for name, (syst, direction, rank) in WEIGHT_VARIATIONS.items():
                    if syst == "scale_var" and process != "wjets":
                        continue  # the AGC's W+jets scale variation
                    if (syst, direction) not in per_jet:
                        per_jet[syst, direction] = self.weights.agc_per_jet(
                            jets[mask], syst, direction
                        )
                    fill(name, weight[mask] * per_jet[syst, direction][:, rank])
        return output, summary

    def cutflow(self, events: Any, norm: float, use_genweight: bool = True) -> dict[str, float]:
        """Weighted events after each selection step (nominal jets and weights, no
        histogram range): ``written`` (the generation skim), ``one lepton``,
        ``≥ 4 jets``, ``4j1b``, ``4j2b``."""
        return self.selection_report(events, norm, use_genweight)["cutflow"]

    def selection_report(
        self,
        events: Any,
        norm: float,
        use_genweight: bool = True,
        variation_norms: Mapping[str, float] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """``cutflow`` (see ``cutflow``) and, where the events carry variation weights
        (``VariationWeight_<name>``, ratios to ``genWeight``), ``variations``: per
        variation and region the sums Σg (``nominal``), Σg(w − 1) (``shift``) and
        Σg²(w − 1)² (``variance``, the shift's MC variance), g the nominal weight and
        w the ratio times ``variation_norms[name]`` (the variation's normalisation
        over the nominal's, default 1)."""
        chunk = (events, "", "nominal", norm, use_genweight)
        return self._process(*chunk, ["nominal"], False, True, variation_norms)[1]


def _report(events, n_leptons, jets, weight, regions, variation_norms) -> dict[str, Any]:
    """The selection report (see ``Analysis.selection_report``) of selected jets."""
    one_lepton = n_leptons == 1
    four_jets = one_lepton & (ak.num(jets.pt) >= 4)
    steps = {"written": weight, "one lepton": weight[one_lepton]}
    steps["≥ 4 jets"] = weight[four_jets]
    steps.update({region: weight[mask] for region, (mask, _) in regions.items()})
    report: dict[str, dict[str, Any]] = {
        "cutflow": {step: float(ak.sum(w)) for step, w in steps.items()}
    }
    if "VariationWeight" in events.fields:
        ratios = events.VariationWeight
        scale = variation_norms or {}
        report["variations"] = {
            name: {
                region: _shift_sums(
                    weight[mask],
                    ak.values_astype(ratios[name][mask], np.float64) * scale.get(name, 1.0),
                )
                for region, (mask, _) in regions.items()
            }
            for name in ratios.fields
        }
    return report


def _shift_sums(weight: ak.Array, ratio: ak.Array) -> dict[str, float]:
    shift = weight * (ratio - 1.0)
    return {
        "nominal": float(ak.sum(weight)),
        "shift": float(ak.sum(shift)),
        "variance": float(ak.sum(shift * shift)),
    }


def _filler(histogram_: hist.Hist, process: str, observable: ak.Array):
    values = ak.to_numpy(observable)

    def fill(variation: str, weight: ak.Array) -> None:
        weight = ak.to_numpy(weight)
        if len(values) == 0:
            # no event selected: one entry of weight 0 still creates the categories
            histogram_.fill(observable=[0.0], process=process, variation=variation, weight=[0.0])
            return
        histogram_.fill(observable=values, process=process, variation=variation, weight=weight)

    return fill
