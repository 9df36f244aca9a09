"""A simple, documented detector emulation: generator particles → NanoAOD collections.

Input: Pythia's final-state particles at hadron level (``id``, ``px``, ``py``, ``pz``,
``e`` in GeV, and ``origin``, the ``genPartFlav`` of electrons and muons) and the B
and C hadrons of the event record (``flavour``, four-momentum). Output: flat/jagged
columns named like NanoAOD. What is emulated (numbers: CMS Run 2 where cited):

* **Pileup**: ``Pileup_nTrueInt`` ~ Gamma(k = 9, θ = 3.5) (mean 31.5, like 2018),
  ``Pileup_nPU`` ~ Poisson(nTrueInt), ``fixedGridRhoFastjetAll`` =
  1.5 + 0.5 nPU + N(0, 1.5) GeV (≥ 0).
* **Generator jets** (``GenJet``): anti-kt R = 0.4 (FastJet) on the final-state
  particles without neutrinos and without prompt electrons and muons (from a W, or
  from a τ from one), pt > 10 GeV. Hadron flavour: 5 if a B hadron, else 4 if a C
  hadron, has this jet as its nearest jet within ΔR < 0.4, else 0.
* **Jets**: every generator jet gives a jet whose fully corrected pt is
  ``pt_gen · (1 + σ_MC · N(0, 1))`` — the detector response after the full JEC is 1
  (particle level), σ_MC the real ``PtResolution``; its raw pt is the solution of
  ``raw · JEC(area, eta, raw, rho) = pt`` for the real L1L2L3Res compound, stored as
  ``Jet_rawFactor = 1 − raw/pt``, so the real JEC brings raw jets back to particle
  level (closure) and the real JER scale factors smear on top of the MC resolution.
  Without a JEC file: raw = pt and σ_MC = √(3²/pt² + 1/pt + 0.04²). Pileup jets
  (Poisson with mean 0.02 nPU, pt 20 + Exp(8) GeV, |η| < 4.7, light) have no
  generator jet (``Jet_genJetIdx = −1``). ``Jet_area`` ~ N(0.50, 0.02);
  ``Jet_jetId`` = 6 (tight + lepton veto) with probability 0.98, else 2. Jets with
  pt > 15 GeV are kept.
* **b tagging** (``Jet_btagCSVV2``): CSVv2-like, d = 1 / (1 + e⁻ᶻ) with z normal per
  hadron flavour, its mean shifted with pt and |η| (``btag_efficiency`` gives the
  efficiency in closed form). At pt = 60 GeV, η = 0 the efficiencies are b 0.82,
  c 0.30, light 0.080 at d > 0.5 and b 0.63, c 0.12, light 0.010 at the medium
  working point d > 0.8484 — CSVv2's published loose/medium values for b and light
  jets (CMS BTV-16-002, JINST 13 (2018) P05011; the c values are approximate). The b
  efficiency peaks near 90 GeV and falls towards low and high pt and with |η|; the
  light mistag rate rises with pt and |η|.
* **Leptons**: every final-state electron and muon, dressed with the photons within
  ΔR < 0.1 (its final-state radiation: CMS's electron supercluster, the LHC's
  particle-level lepton), with pt > 5 GeV, and its ``genPartFlav`` (1 prompt, 15
  from a prompt τ, 5/4/3 from a b/c/light hadron).
  Muons: reconstructed with efficiency 0.99 (|η| < 2.4), relative pt resolution 1 %
  (|η| < 1.2) or 2 %; ``tightId`` with probability 0.97 (prompt) or 0.90. Electrons:
  0.96 (|η| < 2.5), 2 % (barrel, |η| < 1.479) or 3 %. Isolation (``pfRelIso04_all``
  for muons, ``pfRelIso03_all`` for electrons): Σ pt of the other visible
  final-state particles within ΔR < 0.4 (0.3), other than the dressing photons, plus
  the pileup left after CMS's pileup correction, 0.03 GeV · nPU · |N(0, 1)| in a
  ΔR < 0.4 cone (scaled with the cone's area), over the lepton's pt.
  ``Electron_cutBased`` is the lower of an identification level drawn as 4, 3, 2, 1,
  0 with probabilities 0.80, 0.08, 0.06, 0.03, 0.03 and the isolation level: the
  Fall17 V2 cut-based relative-isolation cuts (tight, medium, loose, veto) 0.0287,
  0.0478, 0.112, 0.198 + 0.506/pt (barrel) and 0.0445, 0.0658, 0.108, 0.203 +
  0.963/pt (endcap), so identification and isolation are correlated as in data. ``sip3d`` = 1.3 |N(0, 1)|, plus Exp(mean 10) for leptons
  from b and c hadrons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np
from scipy.special import ndtr

__all__ = ["DetectorCorrections", "btag_efficiency", "emulate"]

_JET_R = 0.4
_GEN_JET_PT_MIN = 10.0
_JET_PT_MIN = 15.0
_NEUTRINOS = (12, 14, 16)
_PROMPT = (1, 15)  # genPartFlav of leptons from a W (directly or through a τ)

# the tagger's latent z per hadron flavour: (mean, width) at the reference pt, η = 0
_BTAG_LATENT = {5: (2.70, 2.95), 4: (-1.386, 2.644), 0: (-2.626, 1.869)}
_BTAG_REFERENCE_PT = 60.0  # GeV


def _btag_shift(flavour: np.ndarray, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Shift of the latent mean with pt (GeV) and |η|: 0 at 60 GeV and η = 0."""
    b_like = -0.6 * (np.log(pt / 90.0) ** 2 - np.log(_BTAG_REFERENCE_PT / 90.0) ** 2)
    b_like = b_like - 0.3 * np.abs(eta)
    light = 0.3 * np.log(pt / _BTAG_REFERENCE_PT) + 0.15 * np.abs(eta)
    return np.where(flavour == 5, b_like, np.where(flavour == 4, 0.5 * b_like, light))


def _btag_latent(flavour, pt, eta) -> tuple[np.ndarray, np.ndarray]:
    """(mean, width) of the latent z per jet."""
    flavour = np.asarray(flavour)
    light = _BTAG_LATENT[0]
    heavy = [flavour == f for f in (5, 4)]
    mean = np.select(heavy, [_BTAG_LATENT[f][0] for f in (5, 4)], light[0])
    width = np.select(heavy, [_BTAG_LATENT[f][1] for f in (5, 4)], light[1])
    return mean + _btag_shift(flavour, np.asarray(pt), np.asarray(eta)), width


def btag_efficiency(flavour: Any, pt: Any, eta: Any, cut: float) -> np.ndarray:
    """P(``Jet_btagCSVV2`` > ``cut``) for jets of hadron ``flavour`` (5, 4, else
    light), ``pt`` (GeV) and ``eta``, broadcast; the emulation's exact efficiency."""
    mean, width = _btag_latent(flavour, pt, eta)
    return ndtr((mean - np.log(cut / (1.0 - cut))) / width)


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


def _is_prompt_lepton(particles: ak.Array) -> ak.Array:
    return _is_any(particles.id, (11, 13)) & _is_any(particles.origin, _PROMPT)


def _visible(particles: ak.Array) -> ak.Array:
    return particles[~_is_any(particles.id, _NEUTRINOS) & ~_is_prompt_lepton(particles)]


def _gen_jets(particles: ak.Array, hadrons: ak.Array) -> ak.Array:
    import fastjet  # here: the analysis imports this module without the generator's deps

    visible = _visible(particles)
    vectors = ak.zip({"px": visible.px, "py": visible.py, "pz": visible.pz, "E": visible.e})
    definition = fastjet.JetDefinition(fastjet.antikt_algorithm, _JET_R)
    jets = fastjet.ClusterSequence(vectors, definition).inclusive_jets(min_pt=_GEN_JET_PT_MIN)
    pt, eta, phi = _pt_eta_phi(jets.px, jets.py, jets.pz)
    mass = np.sqrt(np.maximum(jets.E**2 - jets.px**2 - jets.py**2 - jets.pz**2, 0.0))
    order = ak.argsort(pt, ascending=False)
    jets = ak.zip({"pt": pt, "eta": eta, "phi": phi, "mass": mass})[order]

    # each B/C hadron flavours its nearest jet within ΔR < R (hadron × jet pairs)
    _, h_eta, h_phi = _pt_eta_phi(hadrons.px, hadrons.py, hadrons.pz)
    pairs = ak.cartesian(
        [ak.zip({"flavour": hadrons.flavour, "eta": h_eta, "phi": h_phi}), jets], nested=True
    )
    distance = _delta_r(pairs["0"].eta, pairs["0"].phi, pairs["1"].eta, pairs["1"].phi)
    nearest = ak.argmin(distance, axis=-1, keepdims=True)
    close = ak.firsts(distance[nearest], axis=-1) < _JET_R
    owner = ak.where(close, ak.firsts(nearest, axis=-1), -1)  # per hadron: jet index or −1
    # per jet: the largest flavour among the hadrons it owns (jet × hadron pairs)
    jet_index = ak.local_index(jets)
    owned = ak.cartesian(
        [jet_index, ak.zip({"owner": owner, "flavour": hadrons.flavour})], nested=True
    )
    flavour = ak.max(ak.where(owned["1"].owner == owned["0"], owned["1"].flavour, 0), axis=-1)
    flavour = ak.fill_none(flavour, 0)
    return ak.with_field(jets, ak.values_astype(flavour, np.int32), "hadronFlavour")


def _flat(array: ak.Array) -> np.ndarray:
    return ak.to_numpy(ak.flatten(array))


def _btag(flavour: np.ndarray, pt: np.ndarray, eta: np.ndarray, rng) -> np.ndarray:
    mean, width = _btag_latent(flavour, pt, eta)
    return 1.0 / (1.0 + np.exp(-(mean + width * rng.normal(size=len(flavour)))))


def _jets(gen: ak.Array, n_pileup: np.ndarray, rho: np.ndarray, corr, rng) -> ak.Array:
    counts = ak.to_numpy(ak.num(gen))
    n = int(counts.sum())
    rho_gen = np.repeat(rho, counts)
    pt_gen, eta, phi = _flat(gen.pt), _flat(gen.eta), _flat(gen.phi)
    mass_gen = _flat(gen.mass)
    flavour = _flat(gen.hadronFlavour)
    gen_index = _flat(ak.local_index(gen))

    n_pu = rng.poisson(0.02 * n_pileup)
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
    columns["btagCSVV2"] = _btag(columns["hadronFlavour"], columns["pt"], columns["eta"], rng)

    order = np.lexsort((-columns["pt"], event_of))
    keep = columns["pt"][order] > _JET_PT_MIN
    order = order[keep]
    per_event = np.bincount(event_of[order], minlength=len(counts))
    return ak.unflatten(ak.zip({k: v[order] for k, v in columns.items()}), per_event)


# Fall17 V2 cut-based electron relative isolation: (tight, medium, loose, veto) cuts
# c0 + c1/pt, barrel and endcap
_ELECTRON_ISOLATION = {
    "barrel": ((0.0287, 0.0478, 0.112, 0.198), 0.506),
    "endcap": ((0.0445, 0.0658, 0.108, 0.203), 0.963),
}
_ELECTRON_ID_LEVELS = ((4, 3, 2, 1, 0), (0.80, 0.08, 0.06, 0.03, 0.03))
_BARREL_ETA = 1.479
_DRESSING_R = 0.1
_PILEUP_ISOLATION = 0.03  # GeV per pileup interaction in a ΔR < 0.4 cone, times |N(0, 1)|


def _isolation_level(isolation: np.ndarray, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """4 (tight) … 1 (veto), 0: the tightest Fall17 V2 isolation cut passed."""
    level = np.zeros(len(pt), np.int32)
    for region, barrel in (("barrel", True), ("endcap", False)):
        cuts, per_pt = _ELECTRON_ISOLATION[region]
        in_region = (np.abs(eta) < _BARREL_ETA) == barrel
        for value, cut in zip((4, 3, 2, 1), cuts, strict=True):
            passed = in_region & (level == 0) & (isolation < cut + per_pt / pt)
            level[passed] = value
    return level


def _leptons(particles: ak.Array, n_pileup: np.ndarray, flavour: int, rng) -> ak.Array:
    candidates = particles[abs(particles.id) == flavour]
    others = particles[~_is_any(particles.id, _NEUTRINOS)]
    pairs = ak.cartesian([candidates, others], nested=True)
    lepton, other = pairs["0"], pairs["1"]
    _, l_eta, l_phi = _pt_eta_phi(lepton.px, lepton.py, lepton.pz)
    o_pt, o_eta, o_phi = _pt_eta_phi(other.px, other.py, other.pz)
    distance = _delta_r(l_eta, l_phi, o_eta, o_phi)
    # dressing: photons within ΔR < 0.1 are the lepton's (its FSR), not its isolation
    dressing = (other.id == 22) & (distance < _DRESSING_R)
    momentum = {
        k: candidates[k] + ak.sum(ak.where(dressing, other[k], 0.0), axis=-1)
        for k in ("px", "py", "pz")
    }
    pt, eta, phi = _pt_eta_phi(momentum["px"], momentum["py"], momentum["pz"])
    cone = 0.4 if flavour == 13 else 0.3
    near = (distance < cone) & (distance > 1e-4) & ~dressing  # not the lepton itself
    activity = ak.sum(ak.where(near, o_pt, 0.0), axis=-1)
    candidates = ak.zip(
        {
            "pt": pt,
            "eta": eta,
            "phi": phi,
            "id": candidates.id,
            "origin": candidates.origin,
            "activity": activity,
        }
    )[pt > 5.0]
    activity = _flat(candidates.activity)

    counts = ak.to_numpy(ak.num(candidates))
    n = int(counts.sum())
    origin = _flat(candidates.origin)
    prompt = np.isin(origin, _PROMPT)
    eta_flat = _flat(candidates.eta)
    barrel = np.abs(eta_flat) < (1.2 if flavour == 13 else _BARREL_ETA)
    if flavour == 13:
        efficiency, eta_max, resolution = 0.99, 2.4, np.where(barrel, 0.01, 0.02)
    else:
        efficiency, eta_max, resolution = 0.96, 2.5, np.where(barrel, 0.02, 0.03)
    reco_pt = _flat(candidates.pt) * (1.0 + resolution * rng.normal(size=n))
    heavy = np.isin(origin, (4, 5))
    columns = {
        "pt": reco_pt,
        "eta": eta_flat,
        "phi": _flat(candidates.phi),
        "mass": np.full(n, 0.105658 if flavour == 13 else 0.000511),
        "charge": -np.sign(_flat(candidates.id)).astype(np.int32),
        "sip3d": 1.3 * np.abs(rng.normal(size=n)) + np.where(heavy, rng.exponential(10.0, n), 0.0),
        "genPartFlav": origin.astype(np.uint8),
    }
    # pileup left after CMS's pileup correction (GeV), in proportion to the cone's area
    pileup = _PILEUP_ISOLATION * np.repeat(n_pileup, counts) * (cone / 0.4) ** 2
    isolation = (activity + pileup * np.abs(rng.normal(size=n))) / reco_pt
    if flavour == 13:
        columns["pfRelIso04_all"] = isolation
        columns["tightId"] = rng.uniform(size=n) < np.where(prompt, 0.97, 0.90)
    else:
        columns["pfRelIso03_all"] = isolation
        levels, probabilities = _ELECTRON_ID_LEVELS
        identified = rng.choice(levels, n, p=probabilities).astype(np.int32)
        columns["cutBased"] = np.minimum(
            identified, _isolation_level(isolation, reco_pt, eta_flat)
        ).astype(np.int32)
    keep = (rng.uniform(size=n) < efficiency) & (np.abs(eta_flat) < eta_max) & (reco_pt > 5.0)
    event_of = np.repeat(np.arange(len(counts)), counts)
    order = np.lexsort((-reco_pt, event_of))
    order = order[keep[order]]
    per_event = np.bincount(event_of[order], minlength=len(counts))
    return ak.unflatten(ak.zip({k: v[order] for k, v in columns.items()}), per_event)


def emulate(
    particles: ak.Array,
    hadrons: ak.Array,
    corrections: DetectorCorrections,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """NanoAOD-like collections for a batch of events (see the module docstring).

    ``particles``: per event, final-state records with id, px, py, pz, e (GeV) and
    origin; ``hadrons``: per event, B and C hadrons with flavour (5, 4), px, py, pz,
    e. Returns a dict of per-event columns and jagged collections (``Jet``,
    ``GenJet``, ``Muon``, ``Electron``), ready for ``uproot`` writing.
    """
    n_events = len(particles)
    true_int = rng.gamma(9.0, 3.5, n_events)
    n_pu = rng.poisson(true_int)
    rho = np.maximum(1.5 + 0.5 * n_pu + rng.normal(0.0, 1.5, n_events), 0.0)
    gen = _gen_jets(particles, hadrons)
    return {
        "Pileup_nTrueInt": true_int.astype(np.float32),
        "Pileup_nPU": n_pu.astype(np.int32),
        "fixedGridRhoFastjetAll": rho.astype(np.float32),
        "GenJet": gen,
        "Jet": _jets(gen, n_pu, rho, corrections, rng),
        "Muon": _leptons(particles, n_pu, 13, rng),
        "Electron": _leptons(particles, n_pu, 11, rng),
    }
