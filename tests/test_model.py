"""The AGC statistical model against cabinetry (the AGC's own configuration and
workspace building) and pyhf (the same workspace, pyhf's likelihood)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SHARED_DATA, require_shared

pytest.importorskip("evermore")
pytest.importorskip("pyhf")

from corrax.agc import model
from corrax.agc.hard.analysis import histogram

CENTRES = np.linspace(60.0, 540.0, 25)  # the analysis's 25 bins of 20 GeV
SHAPES = {
    "ttbar": 4000 * np.exp(-0.5 * ((CENTRES - 250) / 80) ** 2),
    "wjets": 900 * np.exp(-CENTRES / 150),
    "single_top_tW": 300 * np.exp(-0.5 * ((CENTRES - 220) / 90) ** 2),
    "single_top_t_chan": 120 * np.exp(-CENTRES / 200),
    "single_top_s_chan": 10 * np.exp(-CENTRES / 200),
}


def synthetic_histograms(mu_true: float = 1.1) -> dict:
    """Smooth, deterministic analysis histograms with every AGC variation: shape and
    normalisation effects of different sizes per sample; the pseudodata inputs (ME
    and PS variations) are μ_true · ttbar with opposite tilts."""
    tilt = (CENTRES - 300) / 300
    out = {}
    for region, stretch in (("4j1b", 1.0), ("4j2b", 0.7)):
        h = histogram()
        for k, (process, shape) in enumerate(SHAPES.items()):
            values = shape * stretch
            size = 1 + 0.2 * k  # each sample its own variation sizes

            def fill(variation, contents, process=process, h=h):
                h.fill(observable=CENTRES, process=process, variation=variation)
                # weight² sums: a fixed MC-statistics variance of 1 % of the content
                h[:, process, variation] = np.stack([contents, 0.01 * contents], axis=-1)

            fill("nominal", values)
            fill("pt_scale_up", values * (1.02 * size + 0.1 * tilt))
            fill("pt_res_up", values * (0.99 + 0.05 * tilt**2))
            for i in range(4):
                fill(f"btag_var_{i}_up", values * (1 + 0.01 * (i + 1) * size + 0.02 * tilt))
                fill(f"btag_var_{i}_down", values * (1 - 0.008 * (i + 1) * size - 0.01 * tilt))
            if process == "wjets":
                fill("scale_var_up", values * 1.025)
                fill("scale_var_down", values * 0.975)
            if process == "ttbar":
                fill("ME_var", values * mu_true * (1 + 0.05 * tilt))
                fill("PS_var", values * mu_true * (1 - 0.03 * tilt))
                fill("scaleup", values * (1.05 + 0.1 * tilt))
                fill("scaledown", values * (0.96 - 0.05 * tilt))
        out[region] = h
    return out


@pytest.fixture(scope="module")
def templates():
    return model.build_templates(synthetic_histograms())


def _rebinned(h, region, process, variation):
    return h[region][:, process, variation].values()[3:].reshape(11, 2).sum(1)


def test_templates_hold_the_agc_systematics(templates):
    h = synthetic_histograms()
    np.testing.assert_allclose(
        templates.sample("4j1b", "ttbar")[0], _rebinned(h, "4j1b", "ttbar", "nominal")
    )
    assert list(templates.names) == [s.name for s in model.SYSTEMATICS]
    assert templates.systematic("4j1b", "wjets", "ME_var") is None
    assert templates.systematic("4j1b", "ttbar", "scale_var") is None
    up, down = templates.systematic("4j2b", "ttbar", "pt_scale")
    assert down is None  # symmetrised
    np.testing.assert_allclose(up, _rebinned(h, "4j2b", "ttbar", "pt_scale_up"))
    me, ps = (_rebinned(h, "4j1b", "ttbar", v) for v in ("ME_var", "PS_var"))
    wjets = _rebinned(h, "4j1b", "wjets", "nominal")
    np.testing.assert_allclose(templates.data[0], (me + ps) / 2 + wjets)


def test_norm_plus_shape_by_hand():
    nominal, up = np.array([10.0, 30.0]), np.array([16.0, 28.0])  # κ_up = 44/40 = 1.1
    kappa_up, kappa_down, shape_up, shape_down = model.norm_plus_shape(nominal, up, None)
    assert (float(kappa_up[0]), float(kappa_down[0])) == pytest.approx((1.1, 0.9))
    np.testing.assert_allclose(shape_up, up / 1.1)
    np.testing.assert_allclose(shape_down, 2 * nominal - up / 1.1)  # not clipped
    assert float(np.sum(shape_up)) == pytest.approx(40.0)


def test_normsys_code4_is_pyhf_code4():
    import pyhf

    thetas = np.array([-2.3, -1.0, -0.7, -0.1, 0.0, 0.3, 0.99, 1.0, 1.7])
    kappa_up, kappa_down = 1.13, 0.91
    # pyhf's code4 on one histogram set [down, nominal, up] of one bin
    interpolator = pyhf.interpolators.code4([[[[kappa_down], [1.0], [kappa_up]]]])
    expected = np.asarray(interpolator(pyhf.tensorlib.astensor([thetas])))[0, 0, :, 0]
    ours = np.asarray(model.normsys_code4(jnp.asarray(thetas), kappa_up, kappa_down))
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
    # and smooth at θ = 0: a finite second derivative (the Hessian of the fit)
    second = jax.grad(jax.grad(lambda t: model.normsys_code4(t, kappa_up, kappa_down)))(0.0)
    assert np.isfinite(float(second))


def test_evermore_equals_pyhf(templates):
    # the figure of merit: evermore's exact Hessian against pyhf's, at the Asimov point
    ours = float(model.expected_uncertainty(templates))
    assert ours == pytest.approx(model.pyhf_expected_uncertainty(templates), rel=1e-6)
    import pyhf

    before = pyhf.get_backend()
    ever, ref = model.evermore_fit(templates), model.pyhf_fit(templates)
    assert pyhf.get_backend() == before  # pyhf's global backend is restored
    assert ever.ttbar_norm == pytest.approx(ref.ttbar_norm, rel=1e-3)
    assert ever.uncertainty == pytest.approx(ref.uncertainty, rel=1e-3)
    assert 1.0 < ever.ttbar_norm < 1.2  # the pseudodata hold 1.1 × ttbar


def test_fit_returns_an_injected_normalisation(templates):
    truth = model.nominal_parameters(templates).at[0].set(1.37)
    data = {k: np.asarray(v) for k, v in model.expected_counts(truth, templates).items()}
    x, _ = model.minimise(templates, data)
    assert x[0] == pytest.approx(1.37, rel=1e-6)


def test_figure_of_merit_is_differentiable_in_the_templates(templates):
    """d σ / d (ttbar nominal) by JAX against central finite differences."""
    import dataclasses

    def sigma(scale):
        nominal = jnp.asarray(templates.nominal).at[1, 0].multiply(scale)  # 4j2b ttbar
        return model.expected_uncertainty(dataclasses.replace(templates, nominal=nominal))

    gradient = float(jax.grad(sigma)(1.0))
    step = 1e-5
    numeric = (float(sigma(1.0 + step)) - float(sigma(1.0 - step))) / (2 * step)
    assert gradient == pytest.approx(numeric, rel=1e-5)
    assert gradient < 0  # more signal, smaller σ


def test_empty_bins_and_an_empty_sample_fit_without_a_singular_matrix():
    h = synthetic_histograms()
    for region in h.values():  # single top s-channel absent; the last two bins empty
        view = region.view()
        s_chan = region.axes["process"].index("single_top_s_chan")
        for field in ("value", "variance"):
            view[field][:, s_chan, :] = 0.0
            view[field][23:, :, :] = 0.0
    templates = model.build_templates(h)
    fit = model.evermore_fit(templates)
    assert np.isfinite(fit.uncertainty) and fit.uncertainty > 0
    sigma = float(model.expected_uncertainty(templates))
    assert sigma == pytest.approx(model.pyhf_expected_uncertainty(templates), rel=1e-6)


# ---------------------------------------------------------------- cabinetry


def _cabinetry_workspace(histograms, folder):
    """cabinetry's workspace of ``histograms`` with the AGC's configuration: each
    histogram saved under the name cabinetry looks up, then cabinetry's own
    postprocessing and workspace building."""
    import cabinetry
    import yaml

    path = require_shared(SHARED_DATA / "agc" / "cabinetry_config.yml")
    config = yaml.safe_load(path.read_text())
    config["General"]["HistogramFolder"] = str(folder)
    edges = np.asarray(config["Regions"][0]["Binning"], dtype=np.float64)
    variation_of = {}  # cabinetry's VariationPath suffix → our variation name
    for systematic in config["Systematics"]:
        for template in ("Up", "Down"):
            suffix = systematic.get(template, {}).get("VariationPath")
            if suffix:
                variation_of[(systematic["Name"], template)] = suffix.removeprefix("_")

    def save(region, sample, systematic, template, process, variation):
        h = histograms[region["RegionPath"]]
        values = model.rebin(h[:, process, variation].values())
        stdev = np.sqrt(model.rebin(h[:, process, variation].variances()))
        name = cabinetry.histo.name(region, sample, systematic, template=template)
        cabinetry.histo.Histogram.from_arrays(edges, values, stdev).save(folder / name)

    for region in config["Regions"]:
        h = histograms[region["RegionPath"]]
        pseudo = {"Name": "Pseudodata"}
        data = model.rebin(
            h[:, "ttbar", "ME_var"].values() + h[:, "ttbar", "PS_var"].values()
        ) / 2 + model.rebin(h[:, "wjets", "nominal"].values())
        name = cabinetry.histo.name(region, pseudo, {})
        cabinetry.histo.Histogram.from_arrays(edges, data, np.sqrt(data)).save(folder / name)
        for sample in config["Samples"]:
            if sample.get("Data"):
                continue
            process = sample["SamplePath"]
            save(region, sample, {}, None, process, "nominal")
            for (systematic_name, template), variation in variation_of.items():
                systematic = next(s for s in config["Systematics"] if s["Name"] == systematic_name)
                if cabinetry.configuration.sample_contains_modifier(sample, systematic):
                    save(region, sample, systematic, template, process, variation)
    cabinetry.templates.postprocess(config)
    return cabinetry.workspace.build(config)


def test_fit_equals_cabinetrys(tmp_path):
    """The AGC's statistical workflow (its cabinetry configuration, cabinetry's
    workspace) fitted with pyhf, σ from the exact Hessian, against corrax's model."""
    import cabinetry

    histograms = synthetic_histograms(mu_true=1.1)
    workspace = _cabinetry_workspace(histograms, tmp_path)
    with model.pyhf_jax_backend():
        cab_model, data = cabinetry.model_utils.model_and_data(workspace)
        reference = model.fit_pyhf_model(cab_model, data)
    ours = model.evermore_fit(model.build_templates(histograms))
    assert ours.ttbar_norm == pytest.approx(reference.ttbar_norm, abs=1e-3)
    assert ours.uncertainty == pytest.approx(reference.uncertainty, rel=1e-2)
