"""A simple, documented detector emulation: generator particles → NanoAOD collections.

Input: Pythia final-state particles at parton level (``id``, ``px``, ``py``, ``pz``,
``e``; GeV). Output: flat/jagged columns named like NanoAOD. What is emulated:

* **Pileup**: ``Pileup_nTrueInt`` ~ Gamma(k = 9, θ = 3.5) (mean 31.5, like 2018),
  ``Pileup_nPU`` ~ Poisson(nTrueInt), ``fixedGridRhoFastjetAll`` =
  1.5 + 0.5 nPU + N(0, 1.5) GeV (≥ 0).
* **Generator jets**: anti-kt R = 0.4 (FastJet) on the visible particles (no
  neutrinos, no prompt e/μ/τ), pt > 10 GeV; flavour 5 (4) if a b (c) quark with
  pt > 5 GeV lies within ΔR < 0.3, else 0.
* **Jets**: every generator jet gives a jet whose fully corrected pt is
  ``pt_gen · (1 + σ_MC · N(0, 1))``, σ_MC the real ``PtResolution``; its raw pt is
  the solution of ``raw · JEC(area, eta, raw, rho) = pt`` for the real L1L2L3Res
  compound, stored as ``Jet_rawFactor = 1 − raw/pt``, so the real JEC brings raw jets
  back to particle level (closure) and the real JER scale factors smear on top of the
  MC resolution. Without a JEC file: raw = pt and σ_MC = √(3²/pt² + 1/pt + 0.04²).
  Pileup jets (Poisson with mean 0.02 nPU, pt 20 + Exp(8) GeV, |η| < 4.7) have no
  generator jet (``Jet_genJetIdx = −1``). ``Jet_area`` ~ N(0.50, 0.02);
  ``Jet_jetId`` = 6 (tight + lepton veto) with probability 0.98, else 2.
  Jets with pt > 15 GeV are kept.
* **b tagging**: ``Jet_btagCSVV2`` drawn from Beta distributions per flavour,
  tuned so that the efficiency at the 0.5 cut is 0.82 (b), 0.30 (c), 0.08 (light),
  CSVv2-like values at that cut.
* **Leptons**: prompt e and μ (W decays; τ are not decayed at parton level and are
  not reconstructed) with efficiency 0.90 (e, |η| < 2.5) and 0.96 (μ, |η| < 2.4),
  relative pt resolution 2 % (e) and 1.5 % (μ); isolation = Σ pt of visible
  particles within ΔR < 0.4 (0.3 for e) over pt, plus a pileup term 0.002 nPU |N|;
  ``sip3d`` = 1.3 |N(0, 1)|; ``Muon_tightId`` with probability 0.97;
  ``Electron_cutBased`` = 4, 3, 2, 1, 0 with probabilities 0.80, 0.10, 0.05, 0.03, 0.02.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

__all__ = ["BTAG_EFFICIENCY", "DetectorCorrections", "emulate"]

_JET_R = 0.4
# hadron-level / parton-level jet pt (out-of-cone hadronisation losses), see the docstring
_HADRONISATION_RESPONSE = 0.90
_GEN_JET_PT_MIN = 10.0
_JET_PT_MIN = 15.0
_NEUTRINOS = (12, 14, 16)
_PROMPT_LEPTONS = (11, 13, 15)

# Beta(a, b) per hadron flavour; BTAG_EFFICIENCY = its survival beyond 0.5
_BTAG_BETA = {5: (3.0, 1.31), 4: (1.0, 1.737), 0: (1.0, 3.644)}
BTAG_EFFICIENCY = {5: 0.8201, 4: 0.3000, 0: 0.0800}


@dataclass
class DetectorCorrections:
    """The real corrections the emulation inverts (correctionlib objects), or None."""

    jec: Any = None  # compound L1L2L3Res: (JetA, JetEta, JetPt, Rho)
    resolution: Any = None  # PtResolution: (JetEta, JetPt, Rho)

    @classmethod
    def from_file(cls, path: str | None) -> DetectorCorrections:
        if path is None:
            return cls()
        import correctionlib

        from ..corrections import JEC_NAMES

        cset = correctionlib.CorrectionSet.from_file(str(path))
        return cls(jec=cset.compound[JEC_NAMES["jec"]], resolution=cset[JEC_NAMES["resolution"]])

    def sigma(self, eta: np.ndarray, pt: np.ndarray, rho: np.ndarray) -> np.ndarray:
        if self.resolution is None:
            return np.sqrt((3.0 / pt) ** 2 + 1.0 / pt + 0.04**2)
        return self.resolution.evaluate(eta, pt, rho)

    def raw_pt(self, pt: np.ndarray, eta: np.ndarray, area: np.ndarray, rho: np.ndarray):
        """raw with ``raw · JEC(area, eta, raw, rho) = pt``, by bisection on
        [pt/20, 3 pt] (raw · JEC(raw) increases with raw; a fixed-point iteration
        does not converge for every low-pt jet)."""
        if self.jec is None:
            return pt.copy()
        low, high = pt / 20.0, pt * 3.0
        for _ in range(60):
            middle = 0.5 * (low + high)
            above = middle * self.jec.evaluate(area, eta, middle, rho) > pt
            high = np.where(above, middle, high)
            low = np.where(above, low, middle)
        return 0.5 * (low + high)


def _is_any(ids: ak.Array, absolute: tuple[int, ...]) -> ak.Array:
    """|id| in ``absolute``, on jagged ids (``np.isin`` needs rectangular arrays)."""
    magnitude = abs(ids)
    result = magnitude == absolute[0]
    for value in absolute[1:]:
        result = result | (magnitude == value)
    return result


def _pt_eta_phi(px, py, pz):
    pt = np.hypot(px, py)
    return pt, np.arcsinh(pz / np.maximum(pt, 1e-9)), np.arctan2(py, px)


def _delta_r(eta1, phi1, eta2, phi2):
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(eta1 - eta2, dphi)


def _gen_jets(particles: ak.Array) -> ak.Array:
    import fastjet  # here: the analysis reads BTAG_EFFICIENCY without the generator's deps

    # the cut is applied before the hadronisation response below
    visible = particles[~_is_any(particles.id, _NEUTRINOS + _PROMPT_LEPTONS)]
    vectors = ak.zip({"px": visible.px, "py": visible.py, "pz": visible.pz, "E": visible.e})
    definition = fastjet.JetDefinition(fastjet.antikt_algorithm, _JET_R)
    jets = fastjet.ClusterSequence(vectors, definition).inclusive_jets(min_pt=_GEN_JET_PT_MIN)
    pt, eta, phi = _pt_eta_phi(jets.px, jets.py, jets.pz)
    pt = pt * _HADRONISATION_RESPONSE
    mass = _HADRONISATION_RESPONSE * np.sqrt(
        np.maximum(jets.E**2 - jets.px**2 - jets.py**2 - jets.pz**2, 0.0)
    )
    order = ak.argsort(pt, ascending=False)
    jets = ak.zip({"pt": pt, "eta": eta, "phi": phi, "mass": mass})[order]

    quarks = particles[_is_any(particles.id, (4, 5))]
    q_pt, q_eta, q_phi = _pt_eta_phi(quarks.px, quarks.py, quarks.pz)
    quarks = ak.zip({"id": abs(quarks.id), "eta": q_eta, "phi": q_phi})[q_pt > 5.0]
    pairs = ak.cartesian([jets, quarks], nested=True)
    close = _delta_r(pairs["0"].eta, pairs["0"].phi, pairs["1"].eta, pairs["1"].phi) < 0.3
    flavour = ak.fill_none(ak.max(ak.where(close, pairs["1"].id, 0), axis=-1), 0)
    return ak.with_field(jets, ak.values_astype(flavour, np.int32), "hadronFlavour")


def _flat(array: ak.Array) -> np.ndarray:
    return ak.to_numpy(ak.flatten(array))


def _jets(gen: ak.Array, pileup_n: np.ndarray, rho: np.ndarray, corr, rng) -> ak.Array:
    counts = ak.to_numpy(ak.num(gen))
    n = int(counts.sum())
    rho_gen = np.repeat(rho, counts)
    pt_gen, eta, phi = _flat(gen.pt), _flat(gen.eta), _flat(gen.phi)
    mass_gen = _flat(gen.mass)
    flavour = _flat(gen.hadronFlavour)
    gen_index = _flat(ak.local_index(gen))

    n_pu = rng.poisson(0.02 * pileup_n)
    m = int(n_pu.sum())
    pu = {
        "pt": 20.0 + rng.exponential(8.0, m),
        "eta": rng.uniform(-4.7, 4.7, m),
        "phi": rng.uniform(-np.pi, np.pi, m),
        "mass": rng.uniform(2.0, 8.0, m),
    }
    sigma = corr.sigma(eta, pt_gen, rho_gen)
    pt = pt_gen * np.maximum(1.0 + sigma * rng.normal(size=n), 0.05)
    columns = {
        "pt": np.concatenate([pt, pu["pt"]]),
        "eta": np.concatenate([eta, pu["eta"]]),
        "phi": np.concatenate([phi, pu["phi"]]),
        "mass": np.concatenate([mass_gen * pt / pt_gen, pu["mass"]]),
        "hadronFlavour": np.concatenate([flavour, np.zeros(m, np.int32)]).astype(np.int32),
        "genJetIdx": np.concatenate([gen_index, -np.ones(m, np.int64)]).astype(np.int32),
    }
    event_of = np.concatenate(
        [np.repeat(np.arange(len(counts)), counts), np.repeat(np.arange(len(counts)), n_pu)]
    )
    total = n + m
    columns["area"] = rng.normal(0.50, 0.02, total)
    columns["rawFactor"] = (
        1.0
        - corr.raw_pt(columns["pt"], columns["eta"], columns["area"], rho[event_of]) / columns["pt"]
    )
    columns["jetId"] = np.where(rng.uniform(size=total) < 0.98, 6, 2).astype(np.int32)
    columns["partonFlavour"] = columns["hadronFlavour"]
    btag = np.empty(total)
    for value, (a, b) in _BTAG_BETA.items():
        chosen = columns["hadronFlavour"] == value
        btag[chosen] = rng.beta(a, b, int(chosen.sum()))
    columns["btagCSVV2"] = btag

    order = np.lexsort((-columns["pt"], event_of))
    keep = columns["pt"][order] > _JET_PT_MIN
    order = order[keep]
    per_event = np.bincount(event_of[order], minlength=len(counts))
    return ak.unflatten(ak.zip({k: v[order] for k, v in columns.items()}), per_event)


def _leptons(particles: ak.Array, pileup_n: np.ndarray, flavour: int, rng) -> ak.Array:
    candidates = particles[abs(particles.id) == flavour]
    pt, eta, phi = _pt_eta_phi(candidates.px, candidates.py, candidates.pz)
    others = particles[~_is_any(particles.id, _NEUTRINOS + _PROMPT_LEPTONS)]
    o_pt, o_eta, o_phi = _pt_eta_phi(others.px, others.py, others.pz)
    cone = 0.4 if flavour == 13 else 0.3
    pairs = ak.cartesian(
        [ak.zip({"eta": eta, "phi": phi}), ak.zip({"pt": o_pt, "eta": o_eta, "phi": o_phi})],
        nested=True,
    )
    near = _delta_r(pairs["0"].eta, pairs["0"].phi, pairs["1"].eta, pairs["1"].phi) < cone
    activity = ak.sum(ak.where(near, pairs["1"].pt, 0.0), axis=-1)

    counts = ak.to_numpy(ak.num(pt))
    n = int(counts.sum())
    pu = np.repeat(pileup_n, counts)
    efficiency, eta_max, resolution = (0.95, 2.4, 0.015) if flavour == 13 else (0.90, 2.5, 0.02)
    flat_pt = _flat(pt) * (1.0 + resolution * rng.normal(size=n))
    columns = {
        "pt": flat_pt,
        "eta": _flat(eta),
        "phi": _flat(phi),
        "mass": np.full(n, 0.105658 if flavour == 13 else 0.000511),
        "charge": -np.sign(_flat(candidates.id)).astype(np.int32),
        "sip3d": 1.3 * np.abs(rng.normal(size=n)),
    }
    isolation = _flat(activity) / flat_pt + 0.004 * pu * np.abs(rng.normal(size=n))
    if flavour == 13:
        columns["pfRelIso04_all"] = isolation
        columns["tightId"] = rng.uniform(size=n) < 0.93
    else:
        columns["pfRelIso03_all"] = isolation
        columns["cutBased"] = rng.choice(
            [4, 3, 2, 1, 0], n, p=[0.70, 0.12, 0.08, 0.05, 0.05]
        ).astype(np.int32)
    keep = (rng.uniform(size=n) < efficiency) & (np.abs(columns["eta"]) < eta_max) & (flat_pt > 5.0)
    event_of = np.repeat(np.arange(len(counts)), counts)
    order = np.lexsort((-flat_pt, event_of))
    order = order[keep[order]]
    per_event = np.bincount(event_of[order], minlength=len(counts))
    return ak.unflatten(ak.zip({k: v[order] for k, v in columns.items()}), per_event)


def emulate(
    particles: ak.Array, corrections: DetectorCorrections, rng: np.random.Generator
) -> dict[str, Any]:
    """NanoAOD-like collections for a batch of events (see the module docstring).

    ``particles``: per event, records with id, px, py, pz, e. Returns a dict of
    per-event columns and jagged collections (``Jet``, ``GenJet``, ``Muon``,
    ``Electron``), ready for ``uproot`` writing.
    """
    n_events = len(particles)
    true_int = rng.gamma(9.0, 3.5, n_events)
    n_pu = rng.poisson(true_int)
    rho = np.maximum(1.5 + 0.5 * n_pu + rng.normal(0.0, 1.5, n_events), 0.0)
    gen = _gen_jets(particles)
    return {
        "Pileup_nTrueInt": true_int.astype(np.float32),
        "Pileup_nPU": n_pu.astype(np.int32),
        "fixedGridRhoFastjetAll": rho.astype(np.float32),
        "GenJet": gen,
        "Jet": _jets(gen, true_int, rho, corrections, rng),
        "Muon": _leptons(particles, true_int, 13, rng),
        "Electron": _leptons(particles, true_int, 11, rng),
    }
