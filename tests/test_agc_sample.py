"""The generated AGC sample: NanoAOD files coffea reads, reproducible generation, the
detector emulation's JEC, b-tag efficiencies and leptons, the kept fraction."""

from __future__ import annotations

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
from corrax.agc.sample.detector import BTAG_EFFICIENCY


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
        "GenJet": ("pt", "eta", "phi", "mass"),
        "Muon": ("pt", "tightId", "sip3d", "pfRelIso04_all"),
        "Electron": ("pt", "cutBased", "sip3d"),
    }.items():
        assert set(fields) <= set(events[collection].fields), collection
    assert {"fixedGridRhoFastjetAll", "genWeight", "event"} <= set(events.fields)
    assert "nTrueInt" in events.Pileup.fields
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


def test_btag_efficiencies_and_leptons(agc_sample):
    folder, manifest = agc_sample
    ev = events(folder, manifest)
    flavour = ak.to_numpy(ak.flatten(ev.Jet_hadronFlavour))
    tagged = ak.to_numpy(ak.flatten(ev.Jet_btagCSVV2)) > 0.5
    for value, efficiency in BTAG_EFFICIENCY.items():
        chosen = flavour == value
        n = chosen.sum()
        assert n > 50
        assert abs(tagged[chosen].mean() - efficiency) < 5 * np.sqrt(
            efficiency * (1 - efficiency) / n
        )
    # semileptonic ttbar: every event has at least one reconstructed lepton (the skim)
    leptons = ak.num(ev.Muon_pt[ev.Muon_pt > 25]) + ak.num(ev.Electron_pt[ev.Electron_pt > 25])
    assert ak.all(leptons >= 1)


def test_kept_fraction_is_the_w_branching_ratios(agc_sample):
    _, manifest = agc_sample
    # one W → eν/μν, the other → quarks, two charge configurations: 2 · B(ℓν) · B(qq)
    kept = manifest["samples"]["ttbar"]["nominal"]["kept_fraction"]
    assert kept == pytest.approx(2 * (2 * 0.1086) * 0.6741, rel=0.03)
