"""Corrected jets against coffea's CorrectedJetsFactory (same JSON corrections through
coffea's correctionlib adapters), correctionlib's HashPRNG and finite differences."""

from __future__ import annotations

import json
import warnings

import awkward as ak
import correctionlib
import jax
import numpy as np
import pytest
from conftest import CORRECTIONS_DIR, SHARED_DATA, require_shared
from documents import INT, REAL, STRING, binning, category, document, formula, variables

import corrax
import corrax.awkward as cak

JERC = CORRECTIONS_DIR / "JME__2018_UL__jet_jerc.json.gz"
TAG, JER_TAG = "Summer19UL18_V5", "Summer19UL18_JRV2"


def _flat(array):
    return ak.to_numpy(ak.flatten(array)).astype(np.float64)


@pytest.fixture(scope="module", name="real")
def real_fixture():
    from coffea.jetmet_tools import CorrectedJetsFactory
    from coffea.jetmet_tools.correctionlib_adapters import CorrectionLibJECStack
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    path = require_shared(SHARED_DATA / "nanoaod" / "nano_dy.root")
    require_shared(JERC)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        events = NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager"
        ).events()
        jets = events.Jet
        stack = CorrectionLibJECStack.from_file(
            str(JERC),
            jec_tag=TAG,
            data_type="MC",
            jet_type="AK4PFchs",
            unc_sources=["Total"],
            jer_tag=JER_TAG,
        )
        jets["pt_raw"] = (1 - jets.rawFactor) * jets.pt
        jets["mass_raw"] = (1 - jets.rawFactor) * jets.mass
        jets["pt_gen"] = ak.values_astype(ak.fill_none(jets.matched_gen.pt, 0), np.float32)
        jets["event_rho"] = ak.broadcast_arrays(events.fixedGridRhoFastjetAll, jets.pt)[0]
        names = stack.blank_name_map
        names.update(
            {
                "JetPt": "pt",
                "JetMass": "mass",
                "JetEta": "eta",
                "JetA": "area",
                "ptRaw": "pt_raw",
                "massRaw": "mass_raw",
                "Rho": "event_rho",
                "ptGenJet": "pt_gen",
                "JetPhi": "phi",
            }
        )
        coffea_jets = CorrectedJetsFactory(names, stack).build(jets)
    cset = corrax.CorrectionSet.from_file(JERC)
    corrector = cak.JetCorrector(
        cset.compound[f"{TAG}_MC_L1L2L3Res_AK4PFchs"],
        cset[f"{TAG}_MC_Total_AK4PFchs"],
        cset[f"{JER_TAG}_MC_PtResolution_AK4PFchs"],
        cset[f"{JER_TAG}_MC_ScaleFactor_AK4PFchs"],
    )
    pt_gen = ak.fill_none(events.Jet.matched_gen.pt, 0.0)
    return events, corrector, coffea_jets, pt_gen, cset


def _correct(real, **theta):
    events, corrector, _, pt_gen, _ = real
    return corrector(events.Jet, events.fixedGridRhoFastjetAll, events.event, pt_gen, **theta)


def _hybrid(real, corrected):
    """The jets the hybrid method smears deterministically (matched within 3σ)."""
    events, _, _, pt_gen, cset = real
    sigma = _flat(
        cset[f"{JER_TAG}_MC_PtResolution_AK4PFchs"].evaluate(
            events.Jet.eta, corrected.pt_jec, events.fixedGridRhoFastjetAll
        )
    )
    relative = (_flat(corrected.pt_jec) - _flat(pt_gen)) / _flat(corrected.pt_jec)
    return (_flat(pt_gen) > 0) & (np.abs(relative) < 3 * sigma)


def test_corrected_jets_equal_coffeas_factory(real):
    theirs = real[2]
    ours = _correct(real)
    # JEC: every jet
    np.testing.assert_allclose(_flat(ours.pt_jec), _flat(theirs.pt_jec), rtol=1e-14)
    np.testing.assert_allclose(_flat(ours.mass_raw * ours.jec), _flat(theirs.mass_jec), rtol=1e-14)
    # JER and JES: jets smeared by the (deterministic) hybrid method
    hybrid = _hybrid(real, ours)
    assert hybrid.sum() > 50
    np.testing.assert_allclose(_flat(ours.pt_jer)[hybrid], _flat(theirs.pt_jer)[hybrid], rtol=1e-14)
    for theta, key in [(1.0, "up"), (-1.0, "down")]:
        jes = _correct(real, jes=theta)
        want = theirs["JES_Total"][key]
        np.testing.assert_allclose(_flat(jes.pt)[hybrid], _flat(want.pt)[hybrid], rtol=1e-14)
        np.testing.assert_allclose(_flat(jes.mass)[hybrid], _flat(want.mass)[hybrid], rtol=1e-14)
        jer = _correct(real, jer=theta)
        want = theirs["JER"][key]
        np.testing.assert_allclose(_flat(jer.pt)[hybrid], _flat(want.pt)[hybrid], rtol=1e-14)


def test_variations_in_one_pass_equal_coffeas_factory(real):
    """``JetCorrector.variations``: the nominal jets and JES/JER up/down from one
    evaluation of the JEC, the resolution and the noise equal coffea's variations."""
    events, corrector, theirs, pt_gen, _ = real
    shifted = corrector.variations(events.Jet, events.fixedGridRhoFastjetAll, events.event, pt_gen)
    assert list(shifted) == ["nominal", "jes_up", "jes_down", "jer_up", "jer_down"]
    nominal = _correct(real)
    for field in ("pt", "mass", "pt_jec", "pt_jer", "jes_delta"):
        np.testing.assert_array_equal(_flat(shifted["nominal"][field]), _flat(nominal[field]))
    hybrid = _hybrid(real, nominal)
    assert hybrid.sum() > 50
    coffea = {
        "jes_up": theirs["JES_Total"]["up"],
        "jes_down": theirs["JES_Total"]["down"],
        "jer_up": theirs["JER"]["up"],
        "jer_down": theirs["JER"]["down"],
    }
    for name, want in coffea.items():
        got = shifted[name]
        np.testing.assert_allclose(_flat(got.pt)[hybrid], _flat(want.pt)[hybrid], rtol=1e-14)
        np.testing.assert_allclose(_flat(got.mass)[hybrid], _flat(want.mass)[hybrid], rtol=1e-14)


def test_stochastic_smearing_uses_correctionlibs_hashprng(real):
    events, _, _, pt_gen, cset = real
    ours = _correct(real)
    jets, rho = events.Jet, events.fixedGridRhoFastjetAll
    eta, pt_jec = _flat(jets.eta), _flat(ours.pt_jec)
    sigma = cset[f"{JER_TAG}_MC_PtResolution_AK4PFchs"].evaluate(jets.eta, ours.pt_jec, rho)
    sf = correctionlib.CorrectionSet.from_file(str(JERC))[f"{JER_TAG}_MC_ScaleFactor_AK4PFchs"]
    noise = correctionlib.CorrectionSet.from_string(
        json.dumps(
            document(
                {
                    "nodetype": "hashprng",
                    "inputs": ["event", "pt", "eta"],
                    "distribution": "normal",
                },
                variables(("event", INT), ("pt", REAL), ("eta", REAL)),
            )
        )
    )["c"]
    event = _flat(ak.broadcast_arrays(events.event, jets.eta)[0]).astype(np.int64)
    z = noise.evaluate(event, _flat(ours.pt_raw), eta)
    s = sf.evaluate(eta, "nom")
    want = 1 + np.sqrt(np.maximum(s**2 - 1, 0)) * _flat(sigma) * z
    relative = (pt_jec - _flat(pt_gen)) / pt_jec
    stochastic = ~((_flat(pt_gen) > 0) & (np.abs(relative) < 3 * _flat(sigma)))
    assert stochastic.sum() > 20
    np.testing.assert_allclose(_flat(ours.jer)[stochastic], want[stochastic], rtol=1e-13)
    again = _correct(real)  # reproducible: the noise is a function of the jet
    np.testing.assert_array_equal(_flat(again.pt), _flat(ours.pt))


def test_vector_behaviour_of_corrected_jets(real):
    ours = _correct(real)
    pairs = ak.combinations(ours, 2, fields=["a", "b"])
    mass = (pairs.a + pairs.b).mass
    a, b = pairs.a, pairs.b
    px = a.pt * np.cos(a.phi) + b.pt * np.cos(b.phi)
    py = a.pt * np.sin(a.phi) + b.pt * np.sin(b.phi)
    pz = a.pt * np.sinh(a.eta) + b.pt * np.sinh(b.eta)
    energy = np.sqrt((a.pt * np.cosh(a.eta)) ** 2 + a.mass**2) + np.sqrt(
        (b.pt * np.cosh(b.eta)) ** 2 + b.mass**2
    )
    # NanoAOD's eta and phi are float32: m² = E² − p² cancels, so compare at the
    # precision of E² rather than of m
    mass2 = energy**2 - px**2 - py**2 - pz**2
    np.testing.assert_allclose(_flat(mass**2), _flat(mass2), rtol=0, atol=1e-5 * ak.max(energy**2))
    assert "Momentum4D" not in ak.behavior  # vector's behavior, not registered globally


# a small synthetic chain, to test gradients without the real files
INPUTS_JEC = variables(("JetA", REAL), ("JetEta", REAL), ("JetPt", REAL), ("Rho", REAL))


def _synthetic():
    jec = document(formula("1.1-0.5/x+0.001*y", ["JetPt", "Rho"]), INPUTS_JEC, name="jec")
    unc = document(
        binning("JetEta", [-5.0, 0.0, 5.0], [0.03, 0.05], "clamp"),
        variables(("JetEta", REAL), ("JetPt", REAL)),
        name="unc",
    )
    res = document(
        formula("0.1+1.0/x", ["JetPt"]),
        variables(("JetEta", REAL), ("JetPt", REAL), ("Rho", REAL)),
        name="res",
    )
    sf = document(
        category("systematic", {"nom": 1.1, "up": 1.2, "down": 1.0}),
        variables(("JetEta", REAL), ("systematic", STRING)),
        name="sf",
    )
    cset = corrax.CorrectionSet(
        {
            "schema_version": 2,
            "corrections": [d["corrections"][0] for d in (jec, unc, res, sf)],
        }
    )
    return cak.JetCorrector(cset["jec"], cset["unc"], cset["res"], cset["sf"])


def test_gradients_with_respect_to_jes_theta_and_jet_pt():
    corrector = _synthetic()
    jets = ak.zip(
        {
            "pt": ak.Array([[50.0, 30.0], [], [80.0]]),
            "eta": ak.Array([[0.5, -1.0], [], [2.0]]),
            "phi": ak.Array([[0.1, 2.0], [], [-1.0]]),
            "mass": ak.Array([[5.0, 4.0], [], [8.0]]),
            "area": ak.Array([[0.5, 0.5], [], [0.5]]),
            "rawFactor": ak.Array([[0.1, 0.2], [], [0.0]]),
        }
    )
    rho, event = ak.Array([10.0, 20.0, 30.0]), ak.Array([1, 2, 3])
    pt_gen = ak.Array([[48.0, 0.0], [], [81.0]])

    def total_pt(theta):
        return ak.sum(corrector(jets, rho, event, pt_gen, jes=theta).pt)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ak.jax.register_and_check()
        jax_jets = ak.to_backend(jets, "jax")
        jax_args = [ak.to_backend(x, "jax") for x in (rho, event, pt_gen)]

        def total_pt_jax(theta):
            return ak.sum(corrector(jax_jets, *jax_args, jes=theta).pt)

        value, grad = jax.value_and_grad(total_pt_jax)(0.3)
    step = 1e-6
    numeric = (total_pt(0.3 + step) - total_pt(0.3 - step)) / (2 * step)
    np.testing.assert_allclose(value, total_pt(0.3), rtol=1e-14)
    np.testing.assert_allclose(grad, numeric, rtol=1e-7)
    # analytically: d pt / d theta = pt_jer * delta, summed
    nominal = corrector(jets, rho, event, pt_gen)
    np.testing.assert_allclose(grad, ak.sum(nominal.pt_jer * nominal.jes_delta), rtol=1e-12)


def test_a_name_map_reads_jets_with_other_field_names(real):
    """Jets whose fields are named otherwise (as coffea's factory takes a name_map)
    give the same corrected jets; the flat chain below both is the same object."""
    from corrax.jets import JetCorrectionChain

    events, corrector, _, pt_gen, _ = real
    jets = events.Jet
    renamed = ak.zip(
        {"JetPt": jets.pt, "JetMass": jets.mass, "JetEta": jets.eta, "JetPhi": jets.phi,
         "JetA": jets.area, "raw": jets.rawFactor},
        depth_limit=2,
    )  # fmt: skip
    mapped = cak.JetCorrector(
        corrector.jec, corrector.uncertainty, corrector.resolution, corrector.scale_factor,
        name_map={"JetPt": "JetPt", "JetMass": "JetMass", "JetEta": "JetEta",
                  "JetPhi": "JetPhi", "JetA": "JetA", "rawFactor": "raw", "Rho": "rho"},
    )  # fmt: skip
    ours = mapped(renamed, events.fixedGridRhoFastjetAll, events.event, pt_gen, jes=1.0)
    expected = _correct(real, jes=1.0)
    np.testing.assert_array_equal(_flat(ours.pt), _flat(expected.pt))
    np.testing.assert_array_equal(_flat(ours.mass), _flat(expected.mass))
    assert isinstance(corrector, JetCorrectionChain)
    with pytest.raises(corrax.InvalidArgumentError, match="no field 'JetPt'"):
        mapped(ak.zip({"JetEta": jets.eta}), events.fixedGridRhoFastjetAll)
