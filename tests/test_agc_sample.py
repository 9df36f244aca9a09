"""The generated AGC sample: NanoAOD files coffea reads, reproducible generation with
unique event numbers, the detector emulation's JEC closure, jets, tagger and leptons
(read back from generated events and from controlled inputs), every decay with its
weight, the kept fraction against the PDG's W branching ratios."""

from __future__ import annotations

import itertools
import os

import awkward as ak
import correctionlib
import numpy as np
import pytest
import uproot
from agc_sample import SEED, SIZE, events, jec_or_none
from conftest import CORRECTIONS_DIR, require_shared

pytest.importorskip("pythia8mc")

from corrax.agc.corrections import JEC_FILE, JEC_NAMES
from corrax.agc.sample import generate
from corrax.agc.sample.detector import DetectorCorrections, btag_efficiency, emulate

# PDG: B(W → ℓν) per lepton flavour; the processes keep events with a leptonic W
W_TO_LEPTON = 3 * 0.1086


def test_generated_files_are_nanoaod(agc_sample):
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    folder, manifest = agc_sample
    path = folder / manifest["samples"]["ttbar"]["nominal"]["files"][0]
    events = NanoEventsFactory.from_root(
        {str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager"
    ).events()
    assert len(events) > 0
    for collection, fields in {
        "Jet": (
            "pt",
            "eta",
            "phi",
            "mass",
            "rawFactor",
            "area",
            "btagCSVV2",
            "jetId",
            "hadronFlavour",
            "genJetIdx",
        ),
        "GenJet": ("pt", "eta", "phi", "mass", "hadronFlavour"),
        "Muon": ("pt", "tightId", "sip3d", "pfRelIso04_all", "genPartFlav"),
        "Electron": ("pt", "cutBased", "sip3d", "pfRelIso03_all", "genPartFlav"),
    }.items():
        assert set(fields) <= set(events[collection].fields), collection
    assert {"fixedGridRhoFastjetAll", "genWeight", "event"} <= set(events.fields)
    assert {"nTrueInt", "nPU"} <= set(events.Pileup.fields)
    # the generator-jet index points at the generator jet each jet came from
    index = events.Jet.genJetIdx
    matched = index >= 0
    gen_eta = ak.pad_none(events.GenJet.eta, 1)[ak.where(matched, index, 0)]
    assert ak.all(abs(gen_eta[matched] - events.Jet.eta[matched]) < 1e-5)
    # Runs: every generated event counted, the skim kept a fraction
    runs = uproot.open(path)["Runs"].arrays()
    assert int(runs.genEventCount[0]) >= len(events)
    assert manifest["samples"]["ttbar"]["nominal"]["generated"] == SIZE


def test_generation_reuses_and_reproduces(agc_sample, tmp_path):
    folder, manifest = agc_sample
    files = [folder / f for f in manifest["samples"]["single_top_s_chan"]["nominal"]["files"]]
    stamps = [os.stat(f).st_mtime_ns for f in files]
    again = generate.generate(
        folder, SIZE, seed=SEED, workers=1, jec_file=jec_or_none(), progress=False
    )
    assert [os.stat(f).st_mtime_ns for f in files] == stamps
    assert again["samples"] == manifest["samples"]
    # the same job in a new folder gives the same events
    job = next(
        j
        for j in generate.jobs_for(SIZE, SEED, jec_or_none(True))
        if j.process == "single_top_s_chan"
    )
    generate.run_job(job, tmp_path)
    fresh = uproot.open(job.path(tmp_path))["Events"].arrays()
    cached = uproot.open(files[0])["Events"].arrays()
    assert ak.all(fresh.Jet_pt == cached.Jet_pt)
    assert ak.all(fresh.event == cached.event)


def test_raw_jets_close_under_the_real_jec(agc_sample):
    """Stored raw pt × the real L1L2L3Res (correctionlib) gives back the stored pt."""
    require_shared(CORRECTIONS_DIR / JEC_FILE)
    folder, manifest = agc_sample
    ev = events(folder, manifest)
    jec = correctionlib.CorrectionSet.from_file(str(CORRECTIONS_DIR / JEC_FILE)).compound[
        JEC_NAMES["jec"]
    ]
    pt = ak.to_numpy(ak.flatten(ev.Jet_pt)).astype(np.float64)
    raw = pt * (1 - ak.to_numpy(ak.flatten(ev.Jet_rawFactor)))
    rho = ak.to_numpy(ak.flatten(ak.broadcast_arrays(ev.fixedGridRhoFastjetAll, ev.Jet_pt)[0]))
    area = ak.to_numpy(ak.flatten(ev.Jet_area)).astype(np.float64)
    eta = ak.to_numpy(ak.flatten(ev.Jet_eta)).astype(np.float64)
    corrected = raw * jec.evaluate(area, eta, raw, rho.astype(np.float64))
    np.testing.assert_allclose(corrected, pt, rtol=2e-5)
    assert np.mean(ak.flatten(ev.Jet_rawFactor)) > 0.01  # the JEC is not a no-op


def test_btag_efficiencies_are_the_taggers(agc_sample):
    """Per flavour, the tagged fraction at the loose and medium cuts equals the mean of
    ``btag_efficiency`` over the same jets (pt and η dependence included)."""
    folder, manifest = agc_sample
    ev = events(folder, manifest)
    flavour = ak.to_numpy(ak.flatten(ev.Jet_hadronFlavour))
    score = ak.to_numpy(ak.flatten(ev.Jet_btagCSVV2))
    pt = ak.to_numpy(ak.flatten(ev.Jet_pt)).astype(np.float64)
    eta = ak.to_numpy(ak.flatten(ev.Jet_eta)).astype(np.float64)
    for value in (5, 4, 0):
        chosen = flavour == value
        assert chosen.sum() > 100, value
        for cut in (0.5, 0.8484):
            p = btag_efficiency(value, pt[chosen], eta[chosen], cut)
            observed = (score[chosen] > cut).sum()
            assert abs(observed - p.sum()) < 5 * np.sqrt((p * (1 - p)).sum()), (value, cut)


def test_tagger_is_csvv2_like():
    """CSVv2's published efficiencies (CMS BTV-16-002) at 60 GeV, η = 0: loose (0.5)
    b 0.82, light 0.08; medium (0.8484) b 0.63, light 0.010; the b efficiency falls at
    low pt and with |η|, the light mistag rate rises with pt."""
    for flavour, cut, published in ((5, 0.5, 0.82), (0, 0.5, 0.08), (5, 0.8484, 0.63)):
        assert btag_efficiency(flavour, 60.0, 0.0, cut) == pytest.approx(published, abs=0.01)
    assert btag_efficiency(0, 60.0, 0.0, 0.8484) == pytest.approx(0.010, abs=0.002)
    assert btag_efficiency(5, 30.0, 0.0, 0.8484) < btag_efficiency(5, 90.0, 0.0, 0.8484)
    assert btag_efficiency(5, 60.0, 2.0, 0.8484) < btag_efficiency(5, 60.0, 0.0, 0.8484)
    assert btag_efficiency(0, 300.0, 0.0, 0.8484) > btag_efficiency(0, 60.0, 0.0, 0.8484)
    # the tagger's scores, drawn, give the closed form back
    rng = np.random.default_rng(3)
    from corrax.agc.sample.detector import _btag

    flavour = np.full(200_000, 5)
    pt, eta = rng.uniform(30, 300, flavour.size), rng.uniform(-2.4, 2.4, flavour.size)
    drawn = _btag(flavour, pt, eta, rng) > 0.8484
    assert drawn.mean() == pytest.approx(btag_efficiency(5, pt, eta, 0.8484).mean(), abs=0.005)


def _particles(records: list[list[tuple[int, float, float, float, int]]]) -> ak.Array:
    """Events of (id, pt, eta, phi, origin) records as the emulation's input."""
    rows = [
        [
            {
                "id": pid,
                "px": pt * np.cos(phi),
                "py": pt * np.sin(phi),
                "pz": pt * np.sinh(eta),
                "e": pt * np.cosh(eta),
                "origin": origin,
            }
            for pid, pt, eta, phi, origin in event
        ]
        for event in records
    ]
    return ak.Array(rows)


def test_leptons_read_back_their_efficiencies():
    """Isolated prompt leptons (pt 50 GeV, |η| 0.5) give back the documented
    efficiencies and resolutions: μ 0.99, tightId 0.97, 1 %; e 0.96, 2 %,
    cutBased == 4 with the identification's 0.80."""
    n = 20_000
    event = [(13, 50.0, 0.5, 0.0, 1), (-11, 50.0, -0.5, 2.5, 1), (211, 40.0, 0.0, -1.5, 0)]
    particles = _particles([event] * n)
    far_charm = dict(zip(("px", "py", "pz", "e"), _four(10.0, -3.0, 1.0), strict=True))
    hadrons = ak.Array([[{"flavour": 4, **far_charm}]] * n)
    out = emulate(particles, hadrons, DetectorCorrections(), np.random.default_rng(11))
    muons, electrons = out["Muon"], out["Electron"]

    def binomial(k, total, p):
        assert abs(k - p * total) < 5 * np.sqrt(total * p * (1 - p)), (k, total, p)

    binomial(int(ak.sum(ak.num(muons))), n, 0.99)
    binomial(int(ak.sum(ak.num(electrons))), n, 0.96)
    mu, el = ak.flatten(muons), ak.flatten(electrons)
    binomial(int(ak.sum(mu.tightId)), len(mu), 0.97)
    binomial(int(ak.sum(el.cutBased == 4)), len(el), 0.80)
    assert np.std(ak.to_numpy(mu.pt) / 50 - 1) == pytest.approx(0.01, rel=0.05)
    assert np.std(ak.to_numpy(el.pt) / 50 - 1) == pytest.approx(0.02, rel=0.05)
    assert ak.all(mu.genPartFlav == 1) and ak.all(el.charge == 1) and ak.all(mu.charge == -1)
    # only pileup in the cone: prompt isolated muons pass pfRelIso04 < 0.15
    assert ak.mean(mu.pfRelIso04_all < 0.15) > 0.99
    # the prompt leptons are not in the generator jets, the pion is
    assert ak.all(ak.num(out["GenJet"]) == 1)
    assert ak.all(abs(out["GenJet"].pt - 40.0) < 1e-6)


def test_isolation_cones_dressing_and_jet_flavour():
    """A 4 GeV hadron at ΔR = 0.35 is in the muon's 0.4 cone, not the electron's 0.3;
    a 4 GeV photon at ΔR = 0.05 dresses the lepton (its pt, not its isolation); the B hadron
    flavours the jet it lies in, a C hadron far from every jet flavours none."""
    n = 2000
    muon_event = [(13, 50.0, 0.0, 0.0, 1), (211, 4.0, 0.35, 0.0, 0), (22, 4.0, 0.0, 0.05, 0)]
    electron_event = [(11, 50.0, 0.0, 0.0, 1), (211, 4.0, 0.35, 0.0, 0), (22, 4.0, 0.05, 0, 0)]
    jets = [(211, 30.0, 1.5, 2.0, 0), (211, 20.0, 1.6, 2.1, 0), (211, 40.0, -1.5, -2.0, 0)]
    particles = _particles([muon_event + jets] * n + [electron_event + jets] * n)
    b_and_c = [
        {"flavour": 5, **dict(zip(("px", "py", "pz", "e"), _four(20.0, 1.55, 2.05), strict=True))},
        {"flavour": 4, **dict(zip(("px", "py", "pz", "e"), _four(10.0, 0.0, -3.0), strict=True))},
    ]
    out = emulate(
        particles, ak.Array([b_and_c] * (2 * n)), DetectorCorrections(), np.random.default_rng(5)
    )
    mu = ak.flatten(out["Muon"])
    el = ak.flatten(out["Electron"])
    muon_iso = ak.to_numpy(mu.pfRelIso04_all) * ak.to_numpy(mu.pt)
    electron_iso = ak.to_numpy(el.pfRelIso03_all) * ak.to_numpy(el.pt)
    assert np.all(muon_iso > 4.0 - 1e-6) and np.median(muon_iso) < 5.0
    assert np.median(electron_iso) < 1.0
    assert np.median(ak.to_numpy(mu.pt)) == pytest.approx(54.0, rel=0.01)
    gen = out["GenJet"][0]
    assert ak.to_list(gen.hadronFlavour) == [5, 0]  # sorted by pt: 50 GeV b jet, 40 GeV light
    assert ak.to_list(np.round(gen.pt)) == [50.0, 40.0]


def _four(pt, eta, phi):
    return pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)


def test_prompt_leptons_in_ttbar(agc_sample):
    """In the generated ttbar events: prompt (genPartFlav 1) and τ-decay leptons are
    there, leptons from b and c hadrons too, and most prompt muons are isolated."""
    folder, manifest = agc_sample
    ev = events(folder, manifest)
    origin = ak.to_numpy(ak.flatten(ev.Muon_genPartFlav))
    assert {1, 15, 5} <= set(np.unique(origin))
    prompt = (origin == 1) & (ak.to_numpy(ak.flatten(ev.Muon_pt)) > 30)
    isolated = ak.to_numpy(ak.flatten(ev.Muon_pfRelIso04_all))[prompt] < 0.15
    assert 0.8 < isolated.mean() <= 1.0
    from_b = ak.to_numpy(ak.flatten(ev.Muon_pfRelIso04_all))[origin == 5]
    assert np.median(from_b) > 0.15  # leptons from b decays sit in jets


def test_kept_fraction_is_the_w_branching_ratios(agc_sample):
    _, manifest = agc_sample
    b = W_TO_LEPTON
    # two Ws: at least one leptonic, 1 − (1 − B)²; one W: B (PDG branching ratios)
    for process in ("ttbar", "single_top_tW"):
        kept = manifest["samples"][process]["nominal"]["kept_fraction"]
        assert kept == pytest.approx(b * (2 - b), rel=0.02), process
    for process in ("single_top_s_chan", "single_top_t_chan"):
        assert manifest["samples"][process]["nominal"]["kept_fraction"] == pytest.approx(
            b, rel=0.02
        )


def test_decay_configurations_carry_their_branching_fraction(agc_sample):
    """ttbar's two decay configurations (W⁺ → ℓν with W⁻ → anything; W⁺ → qq̄′ with
    W⁻ → ℓν) hold 1/(2 − B) and (1 − B)/(2 − B) of the weight, B = B(W → ℓν)."""
    import json

    folder, manifest = agc_sample
    weights = [0.0, 0.0]
    for name in manifest["samples"]["ttbar"]["nominal"]["files"]:
        meta = json.loads((folder / name).with_suffix(".json").read_text())
        job = generate.Job(**{k: v for k, v in meta["job"].items() if k != "format"})
        weights[job.decay] += meta["sum_weights"]
    share = weights[0] / sum(weights)
    assert share == pytest.approx(1 / (2 - W_TO_LEPTON), rel=0.01)


def test_jobs_balance_decays_and_number_events_uniquely(agc_sample):
    jobs = generate.jobs_for(20_000, 3)
    for process in {j.process for j in jobs}:
        mine = [j for j in jobs if j.process == process]
        configurations = {j.decay for j in mine}
        assert len(mine) % len(configurations) == 0
        for j in mine:
            assert j.decay_events == sum(k.events for k in mine if k.decay == j.decay)
            assert j.total_events == sum(k.events for k in mine)
    ranges = sorted((j.first_event, j.first_event + j.events) for j in jobs)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(ranges))
    # every event of a variation's datasets has its own number; a variation's files
    # hold the nominal's events, numbers included
    folder, manifest = agc_sample

    def numbers(variation):
        return np.concatenate(
            [
                uproot.open(folder / f)["Events"]["event"].array(library="np")
                for variations in manifest["samples"].values()
                for f in variations.get(variation, variations["nominal"])["files"]
            ]
        )

    nominal = numbers("nominal")
    assert len(np.unique(nominal)) == len(nominal)
    for variation in ("scaleup", "ME_var"):
        assert np.array_equal(numbers(variation), nominal)


def test_variation_datasets_are_the_nominal_events_reweighted(agc_sample):
    folder, manifest = agc_sample
    ttbar = manifest["samples"]["ttbar"]
    assert set(ttbar) == {"nominal", "scaledown", "scaleup", "ME_var", "PS_var"}
    nominal = uproot.open(folder / ttbar["nominal"]["files"][0])["Events"].arrays(library="np")
    for variation in ("scaledown", "scaleup", "ME_var", "PS_var"):
        path = folder / ttbar[variation]["files"][0]
        varied = uproot.open(path)["Events"].arrays(library="np")
        np.testing.assert_array_equal(
            np.concatenate(varied["Jet_pt"]), np.concatenate(nominal["Jet_pt"])
        )
        expected = nominal["genWeight"] * nominal[f"VariationWeight_{variation}"]
        np.testing.assert_allclose(varied["genWeight"], expected, rtol=2e-7)
        # each variation's datasets are normalised to the same cross section
        assert ttbar[variation]["generated"] == ttbar["nominal"]["generated"]
        assert ttbar[variation]["cross_section"] == ttbar["nominal"]["cross_section"]
        assert ttbar[variation]["sum_weights"] > 0


def _hard_only(settings):
    from corrax.agc.sample.samples import _COMMON  # the generator's common settings

    return generate._pythia(
        (*_COMMON, *settings, "PartonLevel:all = off", "HadronLevel:all = off"), 11, "test"
    )


def test_hard_process_weights_reproduce_pythias_cross_sections():
    """Reweighting nominal ttbar events to another PDF and αs, or to scales × 2,
    gives the cross section Pythia integrates with those settings (hard process)."""
    from corrax.agc.sample.samples import PROCESSES, WEIGHT_VARIATIONS
    from corrax.agc.sample.variations import VariationWeights

    process = PROCESSES["ttbar"]
    pythia = _hard_only(process.settings_for(0))
    weights = VariationWeights(pythia, process)
    info = pythia.nextBatch(4000).info
    nominal_sigma = pythia.infoPython().sigmaGen()
    # the nominal PDF and αs reproduce the ones each event was generated with
    np.testing.assert_allclose(weights.hard(info), 1.0, rtol=1e-10)
    ratios = weights(info)
    me_var = WEIGHT_VARIATIONS["ME_var"]
    changes = {
        "ME_var": (f"PDF:pSet = {me_var.pdf_set}", f"SigmaProcess:alphaSvalue = {me_var.alpha_s}"),
        # Pythia's factors multiply μ², the variation's μ
        "scaleup": ("SigmaProcess:renormMultFac = 4.", "SigmaProcess:factorMultFac = 4."),
    }
    for name, lines in changes.items():
        other = _hard_only((*process.settings_for(0), *lines))
        other.nextBatch(20_000)
        expected = other.infoPython().sigmaGen() / nominal_sigma
        error = other.infoPython().sigmaErr() / other.infoPython().sigmaGen()
        # scaleup also carries its shower weight: 1 at hard-process level
        reweighted = ratios[name]
        spread = reweighted.std() / np.sqrt(len(reweighted)) / reweighted.mean()
        assert reweighted.mean() == pytest.approx(expected, rel=4 * np.hypot(error, spread)), name
        assert abs(expected - 1) > 4 * np.hypot(error, spread), name  # a visible change
