"""``python -m corrax.agc`` end to end at a small size: the summary, plots and
held-out histograms it writes."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from agc_sample import SEED, SIZE, jec_or_none
from conftest import SHARED_DATA

pytest.importorskip("pythia8mc")


def test_cli_writes_plots_and_summary(agc_sample, tmp_path):
    from corrax.agc.cli import main

    folder, _ = agc_sample
    output = tmp_path / "results"
    args = ["--cache", str(folder), "--size", str(SIZE), "--seed", str(SEED)]
    args += ["--output", str(output)]
    jec = jec_or_none()
    if jec is not None:
        # the real JEC chain only (the scale factors are checked by test_agc_hard): the
        # shared sample was generated for that JEC file, so the CLI reuses it
        only_jec = tmp_path / "jec-only"
        only_jec.mkdir()
        (only_jec / jec.name).symlink_to(jec.resolve())
        args += ["--corrections", str(only_jec)]
    # the whole job at a small size (600 events per sample: empty bins, a W+jets half
    # with few events), one optimisation step
    args += ["--executor", "iterative", "--steps", "1", "--quiet"]
    reference = SHARED_DATA / "agc" / "reference_histos_1_file_per_process.json"
    if reference.exists():
        args += ["--reference", str(reference)]
    summary = main(args)
    assert (output / "stacked.png").stat().st_size > 10_000
    assert (output / "summary.md").exists()
    saved = json.loads((output / "summary.json").read_text())
    ours = saved["validation"]["yields"]["4j2b"]["ttbar"]
    assert ours["yield"] == summary["validation"]["yields"]["4j2b"]["ttbar"]["yield"] > 0
    if reference.exists():
        assert (output / "versus_agc.png").exists()
    assert np.isfinite(saved["fit"]["evermore"]["uncertainty"])
    # pyhf's Minuit fit may fail on so few events: then the summary says so
    pyhf_fit = saved["fit"]["pyhf"]
    assert "FailedMinimization" in pyhf_fit.get("error", "FailedMinimization")
    assert np.isfinite(pyhf_fit.get("uncertainty", 0.0))
    if "error" not in pyhf_fit:  # where Minuit converges, it finds evermore's minimum
        evermore = saved["fit"]["evermore"]
        assert pyhf_fit["ttbar_norm"] == pytest.approx(evermore["ttbar_norm"], rel=1e-4)
        assert pyhf_fit["uncertainty"] == pytest.approx(evermore["uncertainty"], rel=1e-3)
    result = saved["optimisation"]
    assert "Asimov" in result["figure_of_merit"] and "significance" not in json.dumps(result)
    for entry in result["optimised_thresholds"][0].values():
        low, high = entry["bounds"]
        assert low <= entry["value"] <= high
        assert entry["at_bound"] == (min(entry["value"] - low, high - entry["value"]) < 1e-2)
    (sigma,) = result["held_out_sigma"]
    assert np.isfinite(sigma["default"]) and np.isfinite(sigma["optimised"])
    # pyhf's σ on the same held-out templates equals evermore's
    assert result["pyhf_sigma_default"] == pytest.approx(sigma["default"], rel=1e-6)
    # a held-out fit that cannot be computed is reported in one line, not a traceback
    for entry in result["replica_details"][0]["hard"].values():
        assert "\n" not in entry["fit"].get("error", "")
    import pickle

    full = pickle.loads((output / "histograms.pkl").read_bytes())
    # the cut-flow's regions are the histograms' contents, flow bins included, and
    # each step keeps at most what the one before it kept
    validation = saved["validation"]
    for process, flow in validation["cutflow"].items():
        for region in ("4j1b", "4j2b"):
            total = full[region][:, process, "nominal"].sum(flow=True).value
            assert flow[region] == pytest.approx(total, rel=1e-9, abs=1e-9), (process, region)
        steps = list(flow.values())
        assert all(a >= b - 1e-9 for a, b in itertools.pairwise(steps[:4]))
        assert flow["≥ 4 jets"] >= flow["4j1b"] + flow["4j2b"] - 1e-6
    assert set(validation["cutflow"]) == set(saved["validation"]["yields"]["4j1b"])
    # the ttbar variations are weights on the nominal events: their effect, from the
    # nominal events' weights, is the variation datasets' histograms over the nominal's
    # (flow bins included); its MC noise is the weights' spread's
    effects = validation["ttbar_variations"]
    assert set(effects) == {"scaledown", "scaleup", "ME_var", "PS_var"}
    for name, regions in effects.items():
        for region, effect in regions.items():
            ttbar = full[region][:, "ttbar", :]
            ratio = ttbar[:, name].sum(flow=True).value / ttbar[:, "nominal"].sum(flow=True).value
            assert effect["shift_with_flow"] == pytest.approx(ratio - 1, abs=1e-5), (name, region)
            own = validation["yields"][region]["ttbar"]
            assert 0 < effect["noise"] < 2 * own["stat"] / own["yield"], (name, region)
    mode = validation["ttbar_m_bjj_mode"]["ours"]
    assert 50 < mode["bin"] < 550 and abs(mode["peak"] - mode["bin"]) <= 10
    for label in ("default", "optimised"):
        held = pickle.loads((output / f"held_out_{label}.pkl").read_bytes())
        assert set(held) == {"4j1b", "4j2b"}
        assert held["4j1b"].axes.name == full["4j1b"].axes.name
        # the model's variations (the real-style ones are left out of the held-out runs)
        model_variations = {"nominal", "pt_scale_up", "pt_res_up", "ME_var", "scaleup"}
        assert model_variations <= set(held["4j1b"].axes["variation"])
        assert set(held["4j1b"].axes["variation"]) <= set(full["4j1b"].axes["variation"])
        assert held["4j1b"][:, "ttbar", "nominal"].sum().value > 0
