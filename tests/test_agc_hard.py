"""The hard AGC analysis against an independent implementation (``agc_reference``:
uproot + awkward + correctionlib, no corrax), the built-in systematics against the
AGC's file, real NanoAOD and the AGC's file list."""

from __future__ import annotations

import json

import correctionlib
import numpy as np
import pytest
from agc_reference import reference_histogram_inputs
from conftest import AGC_CORRECTIONS, CORRECTIONS_DIR, SHARED_DATA, require_shared

pytest.importorskip("pythia8mc")

from corrax.agc import Analysis, RealCorrections
from corrax.agc.corrections import agc_systematics
from corrax.agc.definition import BINS
from corrax.agc.sample import inputs


def _hist_from(pairs):
    import hist

    h = hist.Hist.new.Reg(*BINS, name="x").Weight()
    h.fill(x=pairs[0], weight=pairs[1])
    return h


def _compare(ours, reference, process):
    for region, variations in reference.items():
        for variation, pairs in variations.items():
            expected = _hist_from(pairs)
            got = ours[region][:, process, variation]
            np.testing.assert_allclose(
                got.values(),
                expected.values(),
                rtol=1e-12,  # float64 on both sides (weights and jet pt variations)
                atol=1e-9,
                err_msg=f"{region} {variation}",
            )
            np.testing.assert_allclose(got.variances(), expected.variances(), rtol=1e-12, atol=1e-9)


def test_hard_analysis_equals_independent_implementation(agc_sample):
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    folder, manifest = agc_sample
    real, real_cl = RealCorrections(), None
    if CORRECTIONS_DIR.is_dir():
        loaded = RealCorrections.from_folder(CORRECTIONS_DIR)
        # jets as stored (the JEC chain is checked against coffea in test_jets)
        real = RealCorrections(
            muon_id=loaded.muon_id,
            electron_id=loaded.electron_id,
            pileup=loaded.pileup,
        )

        def cl(file, name):
            return correctionlib.CorrectionSet.from_file(str(CORRECTIONS_DIR / file))[name]

        from corrax.agc import corrections as c

        real_cl = {
            "muon": cl(c.MUON_FILE, c.MUON_SF),
            "electron": cl(c.ELECTRON_FILE, c.ELECTRON_SF),
            "pileup": cl(c.PILEUP_FILE, c.PILEUP),
        }
    analysis = Analysis(real)
    entry = manifest["samples"]["ttbar"]["nominal"]
    norm = entry["cross_section"] * 3378.0 / entry["sum_weights"]
    systematics_cl = correctionlib.CorrectionSet.from_string(_systematics_json())
    selected = 0
    for name in entry["files"]:
        path = folder / name
        events = NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager"
        ).events()
        # the ttbar events also under the W+jets label: its scale_var variation
        for process in ("ttbar", "wjets"):
            ours = analysis.process_events(events, process, "nominal", norm)
            expected = reference_histogram_inputs(path, norm, process, systematics_cl, real_cl)
            _compare(ours, expected, process)
        selected += sum(len(v["nominal"][0]) for v in expected.values())
    assert selected > 0


def _systematics_json():
    if AGC_CORRECTIONS.exists():
        return AGC_CORRECTIONS.read_text()
    from corrax.agc.corrections import _systematics_document

    return _systematics_document().model_dump_json(exclude_unset=True)


def test_built_in_systematics_equal_the_agc_file():
    require_shared(AGC_CORRECTIONS)
    theirs = correctionlib.CorrectionSet.from_file(str(AGC_CORRECTIONS))["event_systematics"]
    ours = agc_systematics()
    pt = np.linspace(0.0, 500.0, 11)
    for name in ("btag_var", "btag_var_1", "btag_var_4", "scale_var", "other"):
        for direction in ("up", "down", "nominal"):
            np.testing.assert_allclose(
                np.asarray(ours.evaluate(name, direction, pt)), theirs.evaluate(name, direction, pt)
            )


def test_pipeline_runs_on_real_nanoaod():
    """The real 2015 files select (almost) nothing: the pipeline runs and agrees."""
    path = require_shared(SHARED_DATA / "nanoaod" / "nanoAOD_2015_CMS_Open_Data_ttbar.root")
    from corrax.agc.hard.processor import run

    fileset = inputs.from_paths([path])
    output = run(fileset, Analysis(), executor="iterative")
    assert output["events"] == 200
    systematics_cl = correctionlib.CorrectionSet.from_string(_systematics_json())
    expected = reference_histogram_inputs(path, 1.0, "ttbar", systematics_cl)
    _compare({r: output[r] for r in ("4j1b", "4j2b")}, expected, "ttbar")


def test_agc_file_list_fileset():
    listing = require_shared(SHARED_DATA / "agc" / "nanoaod_inputs.json")
    fileset = inputs.from_agc_list(listing, files_per_process=1)
    entry = fileset["ttbar__nominal"]
    raw = json.loads(listing.read_text())["ttbar"]["nominal"]["files"][0]
    assert list(entry["files"]) == [raw["path"]]
    assert entry["metadata"]["norm"] == pytest.approx((396.87 + 332.97) * 3378 / raw["nevts"])


def test_processor_computes_in_64_bits_without_changing_jaxs_setting(agc_sample):
    """A coffea worker starts with JAX's defaults (32 bits): the processor works in 64
    bits in its own scope and leaves the worker's setting as it found it."""
    import jax
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    from corrax.agc.hard.processor import AGCProcessor

    folder, manifest = agc_sample
    path = folder / manifest["samples"]["ttbar"]["nominal"]["files"][0]
    events = NanoEventsFactory.from_root(
        {str(path): "Events"},
        schemaclass=NanoAODSchema,
        mode="eager",
        metadata={"process": "ttbar", "variation": "nominal", "norm": 0.1},
    ).events()
    expected = AGCProcessor(Analysis(variations=False)).process(events)
    with jax.enable_x64(False):
        out = AGCProcessor(Analysis(variations=False)).process(events)
        assert not jax.config.read("jax_enable_x64")
    for region in ("4j1b", "4j2b"):
        np.testing.assert_array_equal(out[region].values(), expected[region].values())
