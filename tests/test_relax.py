"""Relaxed lookups: exact values kept (straight-through), convergence (smooth), and
gradients checked against independent interpolations and finite differences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CORRECTIONS_DIR, require_shared
from documents import REAL, binning, document, formula, multibinning, variables
from jax.test_util import check_grads

import corrax

EDGES = [0.0, 1.0, 2.5, 4.0, 7.0]
CONTENT = [1.0, 3.0, 2.0, 5.0]
CENTRES = [0.5, 1.75, 3.25, 5.5]


def sf(flow="clamp"):
    doc = document(binning("x", EDGES, CONTENT, flow), variables(("x", REAL)))
    return corrax.CorrectionSet(doc)["c"]


X = jnp.linspace(-1.0, 8.0, 181)


def test_straight_through_keeps_exact_values_and_uses_the_interpolants_slope():
    exact, relaxed = sf(), sf().relaxed("straight_through")
    np.testing.assert_array_equal(relaxed.evaluate(X), exact.evaluate(X))
    grad = jax.vmap(jax.grad(relaxed.evaluate))(X)
    # oracle: numpy's piecewise-linear interpolation through the bin centres
    step = 1e-6
    slope = (np.interp(X + step, CENTRES, CONTENT) - np.interp(X - step, CENTRES, CONTENT)) / (
        2 * step
    )
    away_from_kinks = np.min(np.abs(np.asarray(X)[:, None] - np.array(CENTRES)), axis=1) > 1e-3
    np.testing.assert_allclose(grad[away_from_kinks], slope[away_from_kinks], atol=1e-6)
    np.testing.assert_array_equal(jax.vmap(jax.grad(exact.evaluate))(X), 0.0)


@pytest.mark.parametrize("width", [0.5, 0.05, 0.005])
def test_smooth_converges_to_exact_within_the_documented_bound(width):
    exact, smooth = sf(), sf().relaxed("smooth", widths={"x": width})
    x = jnp.linspace(0.01, 6.99, 2000)
    distance = np.min(np.abs(np.asarray(x)[:, None] - np.array(EDGES[1:-1])), axis=1)
    error = np.abs(np.asarray(smooth.evaluate(x) - exact.evaluate(x)))
    jump = np.max(np.abs(np.diff(CONTENT)))
    bound = 2 * jump * jax.nn.sigmoid(-distance / width)
    assert (error <= bound + 1e-12).all()


def test_smooth_max_error_shrinks_with_width():
    exact = sf()
    x = jnp.linspace(0.01, 6.99, 2000)
    far = np.min(np.abs(np.asarray(x)[:, None] - np.array(EDGES[1:-1])), axis=1) > 0.1
    errors = [
        float(
            np.max(
                np.abs(
                    np.asarray(
                        sf().relaxed("smooth", widths={"x": w}).evaluate(x) - exact.evaluate(x)
                    )
                )[far]
            )
        )
        for w in (0.1, 0.03, 0.01)
    ]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-3


def test_smooth_gradients_match_finite_differences_to_second_order():
    smooth = sf().relaxed("smooth", widths={"x": 0.3})
    check_grads(
        smooth.evaluate,
        (jnp.array([0.3, 1.1, 2.4, 3.9, 6.0]),),
        order=2,
        modes=["fwd", "rev"],
        eps=1e-4,
        rtol=1e-4,
    )
    x = jnp.array([1.2, 2.6])
    hessian = jax.hessian(lambda x: smooth.evaluate(x).sum())(x)
    grad, step = jax.grad(lambda x: smooth.evaluate(x).sum()), 1e-5
    numeric = np.stack([(grad(x + step * e) - grad(x - step * e)) / (2 * step) for e in np.eye(2)])
    np.testing.assert_allclose(hessian, numeric, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mode", ["straight_through", "smooth"])
def test_flows_are_respected(mode):
    kwargs = {"widths": {"x": 0.05}} if mode == "smooth" else {}
    default = sf(9.0).relaxed(mode, **kwargs)
    np.testing.assert_array_equal(default.evaluate(jnp.array([-3.0, 8.0])), [9.0, 9.0])
    error = sf("error").relaxed(mode, **kwargs)
    with pytest.raises(corrax.OutOfBoundsError):
        error.evaluate(8.0)
    assert np.isnan(jax.jit(error.evaluate)(8.0))
    clamp = sf().relaxed(mode, **kwargs)
    np.testing.assert_allclose(clamp.evaluate(jnp.array([-50.0, 50.0])), [1.0, 5.0], atol=1e-12)
    # far in the clamped flows the value is constant: zero derivative
    outer = jax.grad(lambda x: clamp.evaluate(x).sum())(jnp.array([-50.0, 50.0]))
    np.testing.assert_allclose(outer, 0.0, atol=1e-12)


def test_multibinning_straight_through_is_bilinear_between_centres():
    edges_x, edges_y = [0.0, 1.0, 3.0, 4.0], [0.0, 2.0, 4.0]
    table = np.array([[1.0, 2.0], [4.0, 8.0], [3.0, 1.0]])
    data = multibinning(["x", "y"], [edges_x, edges_y], list(table.ravel()), "clamp")
    corr = corrax.CorrectionSet(document(data, variables(("x", REAL), ("y", REAL))))["c"]
    relaxed = corr.relaxed("straight_through")
    cx, cy = [0.5, 2.0, 3.5], [1.0, 3.0]

    def bilinear(x, y):  # oracle: interpolate along y in each x row, then along x
        rows = [np.interp(y, cy, table[i]) for i in range(3)]
        return np.interp(x, cx, rows)

    for x, y in [(1.2, 1.7), (2.7, 2.5), (0.7, 3.3)]:
        gx, gy = jax.grad(relaxed.evaluate, argnums=(0, 1))(x, y)
        h = 1e-6
        np.testing.assert_allclose(
            gx, (bilinear(x + h, y) - bilinear(x - h, y)) / (2 * h), atol=1e-6
        )
        np.testing.assert_allclose(
            gy, (bilinear(x, y + h) - bilinear(x, y - h)) / (2 * h), atol=1e-6
        )
        assert float(relaxed.evaluate(x, y)) == float(corr.evaluate(x, y))
    only_y = corr.relaxed("straight_through", inputs=["y"])
    assert float(jax.grad(only_y.evaluate, argnums=0)(1.2, 1.7)) == 0.0


def test_formula_comparisons_relax():
    doc = document(formula("2*(x>1)+((x>0)&&(x<3))", ["x"]), variables(("x", REAL)))
    corr = corrax.CorrectionSet(doc)["c"]
    x = jnp.array([-0.5, 0.5, 1.5, 3.5])
    st = corr.relaxed("straight_through", formula_width=0.2)
    np.testing.assert_array_equal(st.evaluate(x), corr.evaluate(x))
    sig = jax.nn.sigmoid
    soft = lambda x: 2 * sig((x - 1) / 0.2) + sig(x / 0.2) * sig((3 - x) / 0.2)
    np.testing.assert_allclose(
        jax.vmap(jax.grad(st.evaluate))(x), jax.vmap(jax.grad(soft))(x), rtol=1e-12
    )
    smooth = corr.relaxed("smooth", widths={"x": 1.0}, formula_width=0.2)
    np.testing.assert_allclose(smooth.evaluate(x), soft(x), rtol=1e-12)


def test_relaxed_corrections_work_under_every_transform():
    relaxed = sf().relaxed("smooth", widths={"x": 0.2})
    np.testing.assert_allclose(jax.jit(relaxed.evaluate)(X), relaxed.evaluate(X), rtol=1e-14)
    np.testing.assert_allclose(jax.vmap(relaxed.evaluate)(X), relaxed.evaluate(X), rtol=1e-14)
    forward = jax.jacfwd(relaxed.evaluate)(X[:5])
    np.testing.assert_allclose(forward, jax.jacrev(relaxed.evaluate)(X[:5]), rtol=1e-10)


def test_bad_relaxation_arguments():
    with pytest.raises(ValueError, match="mode"):
        sf().relaxed("fuzzy")
    with pytest.raises(ValueError, match="needs widths"):
        sf().relaxed("smooth")
    with pytest.raises(ValueError, match="cannot relax"):
        sf().relaxed("straight_through", inputs=["pt"])
    with pytest.raises(ValueError, match="positive"):
        sf().relaxed("smooth", widths={"x": 0.0})


def test_real_muon_scale_factor_straight_through():
    path = require_shared(CORRECTIONS_DIR / "MUO__2018_UL__muon_Z.json.gz")
    corr = corrax.CorrectionSet.from_file(path)["NUM_TightID_DEN_TrackerMuons"]
    relaxed = corr.relaxed("straight_through", inputs=["pt"])
    eta, pt = jnp.full(50, 0.5), jnp.linspace(16.0, 110.0, 50)
    np.testing.assert_array_equal(
        relaxed.evaluate("2018_UL", eta, pt, "sf"), corr.evaluate("2018_UL", eta, pt, "sf")
    )
    grad = jax.grad(lambda p: relaxed.evaluate("2018_UL", eta, p, "sf").sum())(pt)
    assert np.abs(grad).max() > 0  # the scale factor's pt dependence is felt


def test_a_whole_set_relaxes():
    doc = document(binning("x", EDGES, CONTENT), variables(("x", REAL)))
    doc["corrections"].append(
        {
            "name": "other",
            "version": 1,
            "inputs": variables(("y", REAL)),
            "output": {"name": "o", "type": "real"},
            "data": formula("(x>1)*2", ["y"]),
        }
    )
    cset = corrax.CorrectionSet(doc).relaxed("smooth", widths={"x": 0.2}, formula_width=0.1)
    assert cset["c"].mode == "smooth"
    np.testing.assert_allclose(cset["other"].evaluate(1.0), 1.0)  # 2 * sigmoid(0)
    st = corrax.CorrectionSet(doc).relaxed("straight_through")
    np.testing.assert_array_equal(st["c"].evaluate(X), sf().evaluate(X))
    assert float(jax.grad(st["c"].evaluate)(1.5)) != 0.0
