"""Eager calls on the host: NumPy evaluates the lowered correction, nothing compiles.

Concrete inputs outside any transformation (as in a coffea processor) are evaluated
by the core's node code with NumPy as the array library; ``jit``, ``grad`` and
``vmap`` use the same code with jax.numpy. Checked against correctionlib (the
oracle) for every node type NumPy evaluates, with XLA compilations counted through
JAX's public monitoring events; lwtnn corrections run compiled.
"""

from __future__ import annotations

import pickle

import correctionlib
import jax
import numpy as np
import pytest
from conftest import compilations
from documents import (
    INT,
    REAL,
    STRING,
    binning,
    category,
    compound,
    correction,
    document,
    formula,
    multibinning,
    random_lwtnn,
    text,
    uniform,
    variables,
)

import corrax

INPUTS = variables(("syst", STRING), ("flavour", INT), ("eta", REAL), ("pt", REAL))


def _jec_like() -> dict:
    """Every node type NumPy evaluates: string and int categories (with a default),
    edges and uniform binnings in every flow, a multibinning, formulas with literals,
    parameters and C++ semantics (max, log10, erf, pow), a transform onto an int."""
    response = formula(
        "max(0.0001,[0]+[1]/(pow(log10(x),2)+[2])+[3]*exp(-[4]*(log10(x)-[5])^2))",
        ["pt"],
        [1.02, 0.8, 3.1, -0.05, 0.3, 1.7],
    )
    smooth = formula("0.5*(1+erf((x-[0])/[1]))", ["pt"], [40.0, 12.0])
    per_eta = binning("eta", [-2.5, -1.3, 0.0, 1.3, 2.5], [response, 1.1, smooth, 0.9], "clamp")
    wrapped = binning("eta", uniform(5, -2.5, 2.5), [1.0, 1.1, 1.2, 1.3, 1.4], "wrap")
    grid = multibinning(
        ["eta", "pt"], [[-2.5, 0.0, 2.5], [20.0, 50.0, 100.0, 1000.0]], [1, 2, 3, 4, 5, 6], 0.5
    )
    erroring = binning("pt", [20.0, 50.0, 1000.0], [1.05, 0.95], "error")
    flavours = category("flavour", {0: per_eta, 4: wrapped, 5: grid}, default=erroring)
    rounded = {
        "nodetype": "transform",
        "input": "flavour",
        "rule": formula("x/10", ["pt"]),
        "content": category("flavour", {k: float(k) for k in range(12)}, default=-1.0),
    }
    return document(category("syst", {"nom": flavours, "rounded": rounded, "const": 1.25}), INPUTS)


def _inputs(n: int, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    flavour = rng.choice(np.array([0, 4, 5, 21]), n)
    eta = rng.uniform(-3.0, 3.0, n)
    pt = np.exp(rng.uniform(np.log(15.0), np.log(1200.0), n))
    # flows and NaN, where correctionlib's result is defined (not on the wrap binning:
    # see the README's known differences)
    eta[:4], flavour[:4] = [np.nan, np.inf, -np.inf, 2.5], [0, 5, 21, 4]
    return flavour, eta, pt


def _oracle(theirs, key: str, flavour, eta, pt):
    """correctionlib element by element: (values, failed) with NaN where it raises."""
    out = np.empty(len(pt))
    failed = np.zeros(len(pt), dtype=bool)
    for i in range(len(pt)):
        try:
            out[i] = theirs.evaluate(key, int(flavour[i]), float(eta[i]), float(pt[i]))
        except (IndexError, RuntimeError, ValueError):
            out[i], failed[i] = np.nan, True
    return out, failed


def test_eager_calls_compile_nothing_and_equal_correctionlib():
    """A processor unpickled per chunk (as coffea's Runner ships it): no compilation,
    values equal correctionlib's (formulas to 1e-12), its failures raise."""
    doc = _jec_like()
    theirs = correctionlib.CorrectionSet.from_string(text(doc))["c"]
    shipped = pickle.dumps(corrax.CorrectionSet(doc))
    # the dispatcher's probe for a caller's jit compiles once per process
    corrax.CorrectionSet(doc)["c"].evaluate("const", 0, 0.0, 50.0)
    with compilations() as count:
        for chunk, size in enumerate([300, 70_000, 1_000]):
            ours = pickle.loads(shipped)["c"]
            flavour, eta, pt = _inputs(size, chunk)
            for key in ("nom", "rounded", "const"):
                want, failed = _oracle(theirs, key, flavour[:300], eta[:300], pt[:300])
                ok = ~failed
                subset = (flavour[:300][ok], eta[:300][ok], pt[:300][ok])
                got = np.asarray(ours.evaluate(key, *subset))
                np.testing.assert_allclose(got, want[ok], rtol=1e-12, atol=1e-14, err_msg=key)
                if failed.any():
                    with pytest.raises(corrax.CorraxError) as raised:
                        ours.evaluate(key, flavour[:300], eta[:300], pt[:300])
                    assert isinstance(raised.value, (IndexError, ValueError))
            big = ours.evaluate("rounded", flavour, eta, pt)  # several blocks
            assert np.shape(big) == (size,)
    assert count[0] == 0, count[0]


def test_eager_equals_the_compiled_path():
    """The host's NumPy and XLA's compiled code: tables bit for bit, formulas to 1e-15."""
    corr = corrax.CorrectionSet(_jec_like())["c"]
    flavour, eta, pt = _inputs(5_000, 11)
    keep = ~(np.isnan(eta) | np.isinf(eta))
    flavour, eta, pt = flavour[keep], eta[keep], pt[keep]
    flavour = np.where(flavour == 21, 0, flavour)  # the erroring default raises eagerly
    for key in ("nom", "rounded"):
        lowered = corr.lower(key)
        eager = np.asarray(corr.evaluate(key, flavour, eta, pt))
        compiled = np.asarray(
            jax.jit(lambda f, e, p, lowered=lowered: lowered(f, e, p))(flavour, eta, pt)
        )
        np.testing.assert_allclose(eager, compiled, rtol=1e-15, atol=0)
        tables = flavour != 0
        np.testing.assert_array_equal(eager[tables], compiled[tables])


def _compound_document() -> dict:
    """A two-step chain: an eta scale, then a pt response of the scaled pt."""
    inputs = variables(("eta", REAL), ("pt", REAL))
    response = correction("response", formula("1+0.1/log10(x)", ["pt"]), inputs)
    chain = compound("chain", inputs, ["scale", "response"], update=("pt",))
    scale = binning("eta", [-2.5, 0.0, 2.5], [1.1, 0.9], "clamp")
    return document(scale, inputs, name="scale", extra=[response], compound=[chain])


def test_compounds_run_on_the_host():
    """A compound (pt updated along its chain) equals correctionlib, compiling nothing."""
    doc = _compound_document()
    ours = corrax.CorrectionSet(doc).compound["chain"]
    theirs = correctionlib.CorrectionSet.from_string(text(doc)).compound["chain"]
    rng = np.random.default_rng(3)
    eta, pt = rng.uniform(-2.5, 2.5, 2_000), rng.uniform(20.0, 500.0, 2_000)
    corrax.CorrectionSet(_jec_like())["c"].evaluate("const", 0, 0.0, 50.0)  # see above
    with compilations() as count:
        got = np.asarray(ours.evaluate(eta, pt))
    np.testing.assert_allclose(got, theirs.evaluate(eta, pt), rtol=1e-12)
    assert count[0] == 0


def test_hashprng_on_the_host_equals_correctionlib_bit_for_bit():
    """HashPRNG (JER smearing) hashes and draws with NumPy's uint64 arithmetic and
    glibc's log: correctionlib's bits, nothing compiled."""
    doc = document(
        category(
            "syst",
            {
                d: {"nodetype": "hashprng", "inputs": ["flavour", "eta", "pt"], "distribution": d}
                for d in ("stdflat", "stdnormal", "normal")
            },
        ),
        INPUTS,
    )
    theirs = correctionlib.CorrectionSet.from_string(text(doc))["c"]
    flavour, eta, pt = _inputs(3_000, 5)
    corrax.CorrectionSet(_jec_like())["c"].evaluate("const", 0, 0.0, 50.0)  # see above
    with compilations() as count:
        for distribution in ("stdflat", "stdnormal", "normal"):
            got = np.asarray(
                corrax.CorrectionSet(doc)["c"].evaluate(distribution, flavour, eta, pt)
            )
            want = theirs.evaluate(distribution, flavour, eta, pt)
            np.testing.assert_array_equal(got.view(np.uint64), want.view(np.uint64))
    assert count[0] == 0


def test_lwtnn_runs_compiled_and_equals_correctionlib():
    """lwtnn networks evaluate through the compiled path (also eagerly)."""
    doc = document(random_lwtnn(4), variables(("y", REAL), ("k", REAL), ("x", REAL)))
    x = np.random.default_rng(2).uniform(0.0, 10.0, 500)
    args = (x, x[::-1], x * 0.5)
    theirs = correctionlib.CorrectionSet.from_string(text(doc))["c"]
    with compilations() as count:
        got = np.asarray(corrax.CorrectionSet(doc)["c"].evaluate(*args))
    assert count[0] >= 1
    np.testing.assert_allclose(got, theirs.evaluate(*args), rtol=1e-12, atol=1e-14)


def test_invalid_values_give_no_numpy_warnings():
    """NaN, ±inf and values outside a formula's domain are valid inputs: the host
    evaluation runs without floating-point warnings (pytest turns them into errors)."""
    doc = document(formula("log(x)+sqrt(x)", ["x"]), variables(("x", REAL)))
    theirs = correctionlib.CorrectionSet.from_string(text(doc))["c"]
    x = np.array([-1.0, 0.0, np.nan, np.inf, -np.inf, 2.0])
    got = np.asarray(corrax.CorrectionSet(doc)["c"].evaluate(x))
    with np.errstate(all="ignore"):
        want = theirs.evaluate(x)
    np.testing.assert_array_equal(got, want)


def test_inside_a_callers_jit_concrete_inputs_give_nan_not_exceptions():
    """Constants inside a caller's jit are staged out (compiled), as documented: the
    failing element is NaN, no exception."""
    corr = corrax.CorrectionSet(_jec_like())["c"]
    flavour, eta, pt = np.array([21, 0]), np.array([0.5, 0.5]), np.array([5.0, 60.0])
    value = jax.jit(lambda: corr.evaluate("nom", flavour, eta, pt))()
    assert np.isnan(value[0]) and np.isfinite(value[1])


def test_nuisance_corrections_run_on_the_host():
    """A scale factor's sf/systup/systdown as θ (linear and exponential): correctionlib's
    branches interpolated HistFactory-style, nothing compiled."""
    inputs = variables(("valtype", STRING), ("eta", REAL))
    choices = {
        key: binning("eta", [-2.5, 0.0, 2.5], [0.97 * f, 1.02 * f], "clamp")
        for key, f in (("sf", 1.0), ("systup", 1.03), ("systdown", 0.98))
    }
    doc = document(category("valtype", choices), inputs)
    theirs = correctionlib.CorrectionSet.from_string(text(doc))["c"]
    eta = np.linspace(-2.4, 2.4, 50)
    nom, up, down = (theirs.evaluate(k, eta) for k in ("sf", "systup", "systdown"))
    corrax.CorrectionSet(_jec_like())["c"].evaluate("const", 0, 0.0, 50.0)  # see above
    for interpolation in ("linear", "exponential"):
        nuisance = corrax.CorrectionSet(doc)["c"].nuisance("valtype", interpolation=interpolation)
        for theta in (0.3, -0.7):
            with compilations() as count:
                got = np.asarray(nuisance.evaluate(theta, eta))
            assert count[0] == 0
            if interpolation == "linear":
                want = nom + theta * (up - nom) if theta >= 0 else nom + theta * (nom - down)
            else:
                want = nom * (up / nom) ** theta if theta >= 0 else nom * (down / nom) ** -theta
            np.testing.assert_allclose(got, want, rtol=1e-15)


def test_jax_arrays_on_the_cpu_run_on_the_host_too():
    """Concrete JAX arrays on the CPU (awkward's JAX backend, a notebook's jnp arrays)
    are host inputs too; results are JAX arrays, as from every eager call."""
    corr = corrax.CorrectionSet(_jec_like())["c"]
    flavour, eta, pt = _inputs(1_000, 9)
    flavour, eta = np.where(flavour == 21, 0, flavour), np.clip(eta, -2.4, 2.4)
    expected = np.asarray(corr.evaluate("nom", flavour, eta, pt))
    inputs = [jax.device_put(x) for x in (flavour, eta, pt)]
    with compilations() as count:
        got = corr.evaluate("nom", *inputs)
    assert count[0] == 0 and isinstance(got, jax.Array)
    np.testing.assert_array_equal(np.asarray(got), expected)
