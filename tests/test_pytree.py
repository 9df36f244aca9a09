"""Corrections as pytrees: gradients w.r.t. every number, no re-trace, vmap over copies."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CORRECTIONS_DIR, require_shared
from documents import REAL, STRING, binning, category, document, formula, variables
from jax.flatten_util import ravel_pytree

import corrax

EDGES = [0.0, 1.0, 2.5, 4.0]
DATA = category(
    "syst",
    {
        "nom": binning("x", EDGES, [1.0, formula("[0]+[1]*x", ["y"], [0.5, 0.1]), 3.0]),
        "up": binning("x", EDGES, [1.5, 2.5, 3.5]),
    },
)
DOC = document(DATA, variables(("syst", STRING), ("x", REAL), ("y", REAL)))


def bound(relax=None):
    corr = corrax.CorrectionSet(DOC)["c"]
    if relax:
        corr = corr.relaxed(*relax[0], **relax[1])
    return corr, corr.bind("nom")


X = jnp.array([0.5, 1.5, 1.7, 3.0])
Y = jnp.array([2.0, 4.0, -1.0, 0.0])


def test_bound_evaluates_like_the_correction():
    corr, b = bound()
    np.testing.assert_array_equal(b.evaluate(X, Y), corr.evaluate("nom", X, Y))
    with pytest.raises(corrax.InvalidInputError, match="takes 2 inputs, got 1"):
        b.evaluate(X)


def test_gradient_reaches_every_content_and_parameter():
    _, b = bound()
    grads = jax.grad(lambda c: c.evaluate(X, Y).sum())(b)
    flat = grads.leaves_by_name()
    names = list(flat)
    content = next(n for n in names if n.endswith("value"))
    slots = next(n for n in names if n.endswith("slots"))
    # x=0.5 -> bin 0 (constant), x=1.5 and 1.7 -> bin 1 (formula [0]+[1]*y), x=3 -> bin 2;
    # the two constant bins form one table, the formula bin another
    np.testing.assert_array_equal(np.ravel(flat[content]), [1.0, 1.0])
    slot_grad = np.asarray(flat[slots]).reshape(-1, 2)[0]
    np.testing.assert_allclose(slot_grad, [2.0, 4.0 + -1.0])  # d/d[0] = 2 elements, d/d[1] = sum y
    # finite differences of the same scalar in the flat parameter vector
    vector, unravel = ravel_pytree(b)
    grad_vector, _ = ravel_pytree(grads)
    for k in range(vector.size):
        step = jnp.zeros_like(vector).at[k].set(1e-6)
        up = unravel(vector + step).evaluate(X, Y).sum()
        down = unravel(vector - step).evaluate(X, Y).sum()
        np.testing.assert_allclose(grad_vector[k], (up - down) / 2e-6, atol=1e-6)


def test_jit_does_not_retrace_when_numbers_change():
    _, b = bound()
    traces = []

    @jax.jit
    def total(c, x, y):
        traces.append(1)
        return c.evaluate(x, y).sum()

    first = total(b, X, Y)
    vector, unravel = ravel_pytree(b)
    changed = unravel(vector * 2.0)
    second = total(changed, X, Y)
    assert len(traces) == 1
    assert not np.isclose(first, second)


def test_vmap_over_a_stack_of_corrections():
    _, b = bound()
    vector, unravel = ravel_pytree(b)
    copies = [unravel(vector * s) for s in (1.0, 2.0, 3.0)]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *copies)
    out = jax.vmap(lambda c: c.evaluate(X, Y))(stacked)
    for i, c in enumerate(copies):
        np.testing.assert_allclose(out[i], c.evaluate(X, Y), rtol=1e-15)


def test_smooth_mode_gives_gradients_for_edges():
    _, b = bound((("smooth",), {"widths": {"x": 0.2}}))
    grads = jax.grad(lambda c: c.evaluate(X, Y).sum())(b).leaves_by_name()
    edges = next(v for n, v in grads.items() if n.endswith("edges"))
    assert np.abs(np.asarray(edges)).max() > 0


def test_bind_checks_strings():
    corr, _ = bound()
    with pytest.raises(corrax.InvalidInputError, match="missing"):
        corr.bind()


def test_real_scale_factor_contents_get_gradients():
    path = require_shared(CORRECTIONS_DIR / "MUO__2018_UL__muon_Z.json.gz")
    corr = corrax.CorrectionSet.from_file(path)["NUM_TightID_DEN_TrackerMuons"]
    b = corr.bind("2018_UL", "sf")
    eta, pt = jnp.array([0.3, 1.0, 2.2]), jnp.array([22.0, 45.0, 70.0])
    np.testing.assert_array_equal(b.evaluate(eta, pt), corr.evaluate("2018_UL", eta, pt, "sf"))
    grads, _ = ravel_pytree(jax.grad(lambda c: c.evaluate(eta, pt).sum())(b))
    assert int(np.sum(np.asarray(grads) != 0)) == 3  # one bin per muon
