"""The AGC analysis: generated sample, detector emulation, hard analysis, model, CLI.

A small sample is generated once per module (Pythia 8 + FastJet, a few thousand
events); the hard analysis is checked against an independent implementation
(``agc_reference``: uproot + awkward + correctionlib, no corrax), the statistical
model between evermore and pyhf.
"""

from __future__ import annotations

import json
import os

import awkward as ak
import correctionlib
import numpy as np
import pytest
import uproot
from agc_reference import reference_histogram_inputs
from conftest import AGC_CORRECTIONS, CORRECTIONS_DIR, SHARED_DATA, require_shared

pytest.importorskip("pythia8mc")

from corrax.agc import Analysis, RealCorrections, generate, inputs
from corrax.agc.analysis import BINS
from corrax.agc.corrections import JEC_FILE, JEC_NAMES, agc_systematics
from corrax.agc.detector import BTAG_EFFICIENCY

SIZE = 600


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    folder = tmp_path_factory.mktemp("agc-sample")
    jec = CORRECTIONS_DIR / JEC_FILE
    manifest = generate.generate(
        folder, SIZE, seed=7, workers=2, jec_file=jec if jec.exists() else None, progress=False
    )
    return folder, manifest


def _events(folder, manifest, process="ttbar", variation="nominal"):
    files = manifest["samples"][process][variation]["files"]
    return ak.concatenate([uproot.open(folder / f)["Events"].arrays() for f in files])


def test_generated_files_are_nanoaod(sample):
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    folder, manifest = sample
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


def test_generation_reuses_and_reproduces(sample, tmp_path):
    folder, manifest = sample
    files = [folder / f for f in manifest["samples"]["single_top_s_chan"]["nominal"]["files"]]
    stamps = [os.stat(f).st_mtime_ns for f in files]
    again = generate.generate(
        folder, SIZE, seed=7, workers=1, jec_file=_jec_or_none(), progress=False
    )
    assert [os.stat(f).st_mtime_ns for f in files] == stamps
    assert again["samples"] == manifest["samples"]
    # the same job in a new folder gives the same events
    job = next(
        j
        for j in generate.jobs_for(SIZE, 7, _jec_or_none(True))
        if j.process == "single_top_s_chan"
    )
    generate.run_job(job, tmp_path)
    fresh = uproot.open(job.path(tmp_path))["Events"].arrays()
    cached = uproot.open(files[0])["Events"].arrays()
    assert ak.all(fresh.Jet_pt == cached.Jet_pt)
    assert ak.all(fresh.event == cached.event)


def _jec_or_none(resolved=False):
    jec = CORRECTIONS_DIR / JEC_FILE
    if not jec.exists():
        return None
    return str(jec.resolve()) if resolved else jec


def test_raw_jets_close_under_the_real_jec(sample):
    """Stored raw pt × the real L1L2L3Res (correctionlib) gives back the stored pt."""
    require_shared(CORRECTIONS_DIR / JEC_FILE)
    folder, manifest = sample
    ev = _events(folder, manifest)
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


def test_btag_efficiencies_and_leptons(sample):
    folder, manifest = sample
    ev = _events(folder, manifest)
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


def test_kept_fraction_is_the_w_branching_ratios(sample):
    _, manifest = sample
    # one W → eν/μν, the other → quarks, two charge configurations: 2 · B(ℓν) · B(qq)
    kept = manifest["samples"]["ttbar"]["nominal"]["kept_fraction"]
    assert kept == pytest.approx(2 * (2 * 0.1086) * 0.6741, rel=0.03)


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
                rtol=1e-6,
                atol=1e-9,
                err_msg=f"{region} {variation}",
            )
            np.testing.assert_allclose(got.variances(), expected.variances(), rtol=1e-6, atol=1e-9)


def test_hard_analysis_equals_independent_implementation(sample):
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    folder, manifest = sample
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
    from corrax.agc.processor import run

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


def test_cli_writes_plots_and_summary(sample, tmp_path):
    from corrax.agc.cli import main

    folder, _ = sample
    args = ["--cache", str(folder), "--size", str(SIZE), "--seed", "7", "--output", str(tmp_path)]
    # without --corrections: the JEC chain is exercised by the other tests
    # the whole job at a small size (600 events per sample: empty bins, a W+jets half
    # with few events), one optimisation step
    args += ["--executor", "iterative", "--steps", "1", "--quiet"]
    reference = SHARED_DATA / "agc" / "reference_histos_1_file_per_process.json"
    if reference.exists():
        args += ["--reference", str(reference)]
    summary = main(args)
    assert (tmp_path / "stacked.png").stat().st_size > 10_000
    assert (tmp_path / "summary.md").exists()
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert (
        saved["yields"]["4j2b"]["ttbar"]["yield"] == summary["yields"]["4j2b"]["ttbar"]["yield"] > 0
    )
    if reference.exists():
        assert (tmp_path / "versus_agc.png").exists()
    assert np.isfinite(saved["fit"]["evermore"]["uncertainty"])
    # pyhf's Minuit fit may fail on so few events: then the summary says so
    pyhf_fit = saved["fit"]["pyhf"]
    assert "FailedMinimization" in pyhf_fit.get("error", "FailedMinimization")
    assert np.isfinite(pyhf_fit.get("uncertainty", 0.0))
    result = saved["optimisation"]
    assert "Asimov" in result["figure_of_merit"] and "significance" not in json.dumps(result)
    for entry in result["optimised_thresholds"][0].values():
        low, high = entry["bounds"]
        assert low <= entry["value"] <= high
        assert entry["at_bound"] == (min(entry["value"] - low, high - entry["value"]) < 1e-2)
    (sigma,) = result["held_out_sigma"]
    assert np.isfinite(sigma["default"]) and np.isfinite(sigma["optimised"])
    # pyhf's value is given (its equality with evermore's: test_evermore_and_pyhf_agree)
    assert np.isfinite(result["pyhf_sigma_default"])
    import pickle

    full = pickle.loads((tmp_path / "histograms.pkl").read_bytes())
    for label in ("default", "optimised"):
        held = pickle.loads((tmp_path / f"held_out_{label}.pkl").read_bytes())
        assert set(held) == {"4j1b", "4j2b"}
        assert held["4j1b"].axes.name == full["4j1b"].axes.name
        assert list(held["4j1b"].axes["variation"]) == list(full["4j1b"].axes["variation"])
        assert held["4j1b"][:, "ttbar", "nominal"].sum().value > 0


# ---------------------------------------------------------------- differentiable


@pytest.fixture(scope="module")
def soft_inputs(sample):
    from corrax.agc.analysis import JetSystematics
    from corrax.agc.differentiable import load_batch
    from corrax.agc.study import training_datasets

    folder, _ = sample
    fileset = inputs.from_generated(folder)
    real = _jets_only()
    corrector = JetSystematics(real).corrector
    return fileset, real, corrector, load_batch(training_datasets(fileset))


def _jets_only():
    """The real JEC/JER/JES corrections only (no scale factors): what the soft
    pipeline applies."""
    if not (CORRECTIONS_DIR / JEC_FILE).exists():
        return RealCorrections()
    loaded = RealCorrections.from_folder(CORRECTIONS_DIR)
    return RealCorrections(loaded.jec, loaded.uncertainty, loaded.resolution, loaded.scale_factor)


def test_gradients_equal_finite_differences(soft_inputs):
    from corrax.agc.differentiable import Thresholds
    from corrax.agc.optimise import gradient_check

    _, _, corrector, batch = soft_inputs
    check = gradient_check(Thresholds(30.0, 30.0, 0.5), batch, corrector)
    for name, entry in check.items():
        assert entry["relative"] < 1e-3, (name, entry)
        assert entry["autodiff"] != 0.0


def test_soft_yields_converge_to_the_hard_analysis(soft_inputs):
    """Widths → 0: soft region yields and histograms → the hard analysis's."""
    from corrax.agc.differentiable import MAX_JETS, Smoothing, Thresholds, soft_histograms
    from corrax.agc.processor import run

    fileset, real, corrector, batch = soft_inputs
    hard = run(fileset, Analysis(real, variations=False), executor="iterative")
    previous = None
    for factor in (1.0, 1e-2, 1e-6):
        soft = soft_histograms(Thresholds(), batch, corrector, 1.0, Smoothing().scaled(factor))
        gaps = []
        for region in ("4j1b", "4j2b"):
            for k, name in enumerate(batch.samples):
                process, variation = _process_variation(name)
                expected = hard[region][:, process, variation].values()
                got = np.asarray(soft[region][0][k])
                gaps.append(abs(got.sum() - expected.sum()) / max(expected.sum(), 1e-9))
                if factor == 1e-6:
                    # events with more than MAX_JETS jets may differ: none here
                    np.testing.assert_allclose(
                        got,
                        expected,
                        rtol=1e-3,
                        atol=1e-6 * expected.sum() + 1e-9,
                        err_msg=f"{region} {name}",
                    )
        if previous is not None:
            assert max(gaps) <= previous + 1e-12
        previous = max(gaps)
    assert previous < 1e-3
    assert (
        ak.max(
            ak.num(
                uproot.open(next(iter(fileset["ttbar__nominal"]["files"])))["Events"][
                    "Jet_pt"
                ].array()
            )
        )
        <= MAX_JETS + 5
    )


def test_soft_templates_and_figure_of_merit_converge_to_the_hard_ones(soft_inputs):
    """Widths → 0: every template of the model (nominal, the jet passes, the b-tag and
    W+jets weight variations, the alternative ttbar samples) and the figure of merit
    from the soft analysis equal those from the hard analysis's histograms."""
    from corrax.agc import model
    from corrax.agc.differentiable import Smoothing, Thresholds, soft_templates
    from corrax.agc.processor import run

    fileset, real, corrector, batch = soft_inputs
    output = run(fileset, Analysis(real), executor="iterative")
    hard = model.build_templates({r: output[r] for r in ("4j1b", "4j2b")})
    smoothing = Smoothing().scaled(1e-6)
    soft = soft_templates(Thresholds(), batch, corrector, smoothing)
    assert soft.names == hard.names == tuple(s.name for s in model.SYSTEMATICS)
    assert soft.present == hard.present
    for c, channel in enumerate(model.CHANNELS):
        atol = 1e-6 * float(np.asarray(hard.nominal)[c].sum())
        for field in ("nominal", "variance", "up", "down", "data"):
            np.testing.assert_allclose(
                np.asarray(getattr(soft, field))[c], np.asarray(getattr(hard, field))[c],
                rtol=1e-3, atol=atol, err_msg=f"{channel} {field}",
            )  # fmt: skip
    sigma_hard = float(model.expected_uncertainty(hard))
    assert float(model.expected_uncertainty(soft)) == pytest.approx(sigma_hard, rel=1e-3)
    assert sigma_hard == pytest.approx(model.pyhf_expected_uncertainty(hard), rel=1e-3)


def _process_variation(name):
    if name.startswith("ttbar_"):
        return "ttbar", name.removeprefix("ttbar_")
    return name, "nominal"


def test_optimisation_improves_the_objective(soft_inputs):
    from corrax.agc.optimise import BOUNDS, optimise

    _, _, corrector, batch = soft_inputs
    trajectory = optimise(batch, corrector, steps=1, progress=False)
    first, best = trajectory.steps[0], trajectory.best
    assert best["objective"] < first["objective"]
    for name, (low, high) in BOUNDS.items():
        assert all(low <= step[name] <= high for step in trajectory.steps)


@pytest.mark.slow
def test_distributed_chunks_equal_the_single_batch(soft_inputs, dask_client):
    """Per-file templates and Jacobians summed on a LocalCluster = one jax.grad.

    Marked slow (make test-all): every worker compiles the forward-mode pipeline (~35 s).
    """
    import jax

    from corrax.agc import distributed
    from corrax.agc.differentiable import Thresholds, ttbar_norm_uncertainty
    from corrax.agc.study import training_datasets

    fileset, _, _, batch = soft_inputs
    point = Thresholds(29.0, 31.0, 0.55)
    # without the JEC chain (checked by the other tests): the summation is under test
    expected, gradient = jax.value_and_grad(ttbar_norm_uncertainty)(point, batch)
    value, grads = distributed.value_and_grad(training_datasets(fileset), point, client=dask_client)
    assert value == pytest.approx(float(expected), rel=1e-10)
    for name, got in grads.items():
        assert got == pytest.approx(float(getattr(gradient, name)), rel=1e-8, abs=1e-14)


def test_eager_awkward_jax_path_equals_the_jit_path(soft_inputs):
    """The soft analysis written with awkward's JAX backend (eager, jagged arrays,
    ``corrax.agc.eager``) gives the jit path's histograms, value and gradient."""
    import warnings

    import jax

    from corrax.agc import eager
    from corrax.agc.analysis import SCALE_UP
    from corrax.agc.differentiable import (
        Smoothing,
        Thresholds,
        soft_histograms,
        ttbar_norm_uncertainty,
    )
    from corrax.agc.study import training_datasets

    fileset, _, corrector, batch = soft_inputs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the backend's own notice
        eager_batch = eager.load_eager_batch(training_datasets(fileset))
    assert eager_batch.samples == batch.samples
    point = Thresholds(29.0, 31.0, 0.55)

    def eager_value_and_histograms(point):
        # the pt_scale_up histograms beside the value: inside one eager grad, they reuse
        # the operations' compilations of the value's own jet passes
        histograms = eager.soft_histograms(point, eager_batch, corrector, SCALE_UP)
        return eager.ttbar_norm_uncertainty(point, eager_batch, corrector), histograms

    (value, histograms), grad = jax.value_and_grad(eager_value_and_histograms, has_aux=True)(point)
    expected_histograms = soft_histograms(point, batch, corrector, SCALE_UP)
    for region, (contents, variances) in histograms.items():
        np.testing.assert_allclose(contents, expected_histograms[region][0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(variances, expected_histograms[region][1], rtol=1e-9, atol=1e-12)

    # called as optimise.gradient_check calls it: its compilation is reused
    expected, expected_grad = jax.value_and_grad(
        lambda t: ttbar_norm_uncertainty(t, batch, corrector, Smoothing())
    )(point)
    assert float(value) == pytest.approx(float(expected), rel=1e-9)
    for name, want in expected_grad.as_dict().items():
        assert getattr(grad, name) == pytest.approx(want, rel=1e-7), name
