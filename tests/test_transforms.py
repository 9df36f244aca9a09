"""Every node type under jit, vmap, grad, jacfwd, jacrev and hessian.

Default gradient semantics are exact: a lookup is piecewise constant (zero
derivative with respect to the looked-up input), a formula differentiates as the
formula, and compositions chain both. Formula derivatives are checked against finite
differences with ``jax.test_util.check_grads``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from documents import INT, REAL, binning, category, document, formula, multibinning, variables
from documents import compound as compound_doc
from documents import correction as correction_doc
from jax.test_util import check_grads

import corrax

SMOOTH = formula("[0]*log(x)+[1]*x*x+exp(-y/[2])", ["x", "y"], [0.7, 0.01, 30.0])

# name -> (document data, d value/dx is zero: a lookup on x with constant contents)
CASES = {
    "formula": (SMOOTH, False),
    "binning": (binning("x", [1.0, 5.0, 20.0, 100.0], [1.1, 1.2, 1.3], "clamp"), True),
    "binning_of_formulas": (
        binning("y", [0.0, 10.0, 50.0], [SMOOTH, formula("x/y", ["x", "y"])], "clamp"),
        False,
    ),
    "multibinning": (
        multibinning(
            ["x", "y"],
            [[1.0, 10.0, 100.0], {"n": 2, "low": 0.0, "high": 50.0}],
            [1.0, 2.0, 3.0, 4.0],
            "clamp",
        ),
        True,
    ),
    "category": (category("k", {0: SMOOTH, 5: 2.0}, default=formula("x", ["x"])), False),
    "transform": (
        {"nodetype": "transform", "input": "x", "rule": formula("2*x", ["x"]), "content": SMOOTH},
        False,
    ),
    "hashprng": (
        {"nodetype": "hashprng", "inputs": ["x", "y", "k"], "distribution": "normal"},
        True,
    ),
}


def correction(data):
    doc = document(data, variables(("x", REAL), ("y", REAL), ("k", INT)))
    return corrax.CorrectionSet(doc)["c"]


X = jnp.array([2.0, 7.5, 30.0, 60.0])
Y = jnp.array([5.0, 12.0, 25.0, 40.0])
K = jnp.array([0, 5, 0, 3])


@pytest.fixture(params=list(CASES), name="case")
def case_fixture(request):
    data, flat_in_x = CASES[request.param]
    return correction(data), flat_in_x


def test_jit_and_vmap_equal_eager(case):
    corr, _ = case
    eager = corr.evaluate(X, Y, K)
    np.testing.assert_array_equal(jax.jit(corr.evaluate)(X, Y, K), eager)
    np.testing.assert_array_equal(jax.vmap(corr.evaluate)(X, Y, K), eager)
    np.testing.assert_array_equal(jax.jit(jax.vmap(corr.evaluate))(X, Y, K), eager)


def test_grad_jacobians_and_hessian_agree(case):
    corr, flat_in_x = case

    def scalar(x, y):
        return corr.evaluate(x, y, jnp.int64(0)).sum()

    def vector(x):
        return corr.evaluate(x, Y, K)

    value, grad_x = jax.value_and_grad(scalar)(X, Y)
    np.testing.assert_array_equal(value, corr.evaluate(X, Y, 0).sum())
    forward, reverse = jax.jacfwd(vector)(X), jax.jacrev(vector)(X)
    np.testing.assert_allclose(forward, reverse, rtol=1e-12)
    # elementwise correction: the Jacobian is diagonal
    np.testing.assert_array_equal(forward - jnp.diag(jnp.diag(forward)), 0.0)
    hess = jax.hessian(lambda x: vector(x).sum())(X)
    # oracle: central finite differences of the gradient
    step = 1e-5
    grad = jax.grad(lambda x: vector(x).sum())
    numeric = np.stack(
        [(grad(X + step * e) - grad(X - step * e)) / (2 * step) for e in np.eye(len(X))]
    )
    np.testing.assert_allclose(hess, numeric, rtol=1e-5, atol=1e-7)
    if flat_in_x:
        np.testing.assert_array_equal(grad_x, 0.0)
        np.testing.assert_array_equal(hess, 0.0)


@pytest.mark.parametrize("name", ["formula", "binning_of_formulas", "category", "transform"])
def test_formula_derivatives_match_finite_differences(name):
    corr = correction(CASES[name][0])
    # away from bin edges, where the function is smooth
    check_grads(
        lambda x, y: corr.evaluate(x, y, K),
        (X, Y),
        order=2,
        modes=["fwd", "rev"],
        eps=1e-4,
        rtol=1e-5,
    )


def test_compound_chains_gradients():
    doc = document(
        formula("1+0.01*x", ["x"]),
        variables(("x", REAL)),
        name="a",
        extra=[correction_doc("b", formula("2+log(x)", ["x"]), variables(("x", REAL)))],
        compound=[compound_doc("ab", variables(("x", REAL)), ["a", "b"])],
    )
    chain = corrax.CorrectionSet(doc).compound["ab"]

    def by_hand(x):
        first = 1 + 0.01 * x
        return first * (2 + jnp.log(x * first))

    np.testing.assert_allclose(
        jax.grad(lambda x: chain.evaluate(x).sum())(X),
        jax.grad(lambda x: by_hand(x).sum())(X),
        rtol=1e-14,
    )
    check_grads(chain.evaluate, (X,), order=2, eps=1e-4, rtol=1e-5)


def test_a_singular_unselected_branch_does_not_poison_gradients():
    # sqrt(x) is evaluated for every element, also where x < 0 selects the other bin
    data = binning("y", [0.0, 1.0, 2.0], [formula("sqrt(x)", ["x"]), formula("x*x", ["x"])])
    corr = correction(data)
    x, y = jnp.array([-4.0, 4.0]), jnp.array([1.5, 0.5])
    grad = jax.grad(lambda x: corr.evaluate(x, y, 0).sum())(x)
    np.testing.assert_allclose(grad, [-8.0, 0.25])


def test_concrete_inputs_inside_a_callers_jit_are_staged_with_the_caller(case):
    """NumPy constants evaluated inside a caller's jit (no traced input): staged out
    with the caller's function, equal to the eager values; and grad of jit, jit of
    grad and vmap of jit give what they give eagerly."""
    corr, _ = case
    x, y, k = (np.asarray(v) for v in (X, Y, K))
    eager = corr.evaluate(x, y, k)
    np.testing.assert_array_equal(jax.jit(lambda s: s * corr.evaluate(x, y, k))(1.0), eager)
    jaxpr = jax.make_jaxpr(lambda: corr.evaluate(x, y, k))()
    assert jaxpr.eqns, "the evaluation is part of the caller's function"

    def total(x):
        return corr.evaluate(x, Y, K).sum()

    grad = jax.grad(total)(X)
    np.testing.assert_array_equal(jax.grad(jax.jit(total))(X), grad)
    np.testing.assert_array_equal(jax.jit(jax.grad(total))(X), grad)
    np.testing.assert_array_equal(jax.vmap(jax.jit(corr.evaluate))(X, Y, K), eager)


def test_no_private_jax_api_is_imported():
    """corrax tells traced from concrete calls through JAX's public API only."""
    import pathlib

    source = pathlib.Path(corrax.__file__).parent
    offenders = [
        str(path.relative_to(source))
        for path in source.rglob("*.py")
        if "jax._src" in path.read_text() or "jax.interpreters" in path.read_text()
    ]
    assert not offenders
