"""Random valid documents, every node type and flow, against correctionlib."""

from __future__ import annotations

import jax
import numpy as np
from documents import (
    INT,
    REAL,
    STRING,
    binning,
    category,
    document,
    formula,
    multibinning,
    random_lwtnn,
    text,
)
from documents import variables as make_variables
from hypothesis import example, given
from hypothesis import strategies as st
from oracle import generate_inputs, oracle_evaluate, oracle_set

import corrax

INPUTS = make_variables(("x", REAL), ("y", REAL), ("k", INT), ("s", STRING))
TEMPLATES = [
    "[0]+[1]*x",
    "[0]*log(abs(x)+1)+[1]",
    "max(x,[0])*[1]",
    "(x>[0])*[1]+(y<[0])",
    "[0]/(abs(y)+1)+pow(abs(x),0.5)*[1]",
    "(x>[0])&&(y>[1])",
    "(x<[0])||(y<[1])",
]
# XLA on CPU flushes subnormal numbers to zero (see README): none in documents here
numbers = st.floats(-5, 5, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def edges(draw):
    if draw(st.booleans()):
        return {
            "n": draw(st.integers(1, 5)),
            "low": draw(st.floats(-3, 0, allow_subnormal=False)),
            "high": draw(st.floats(0.5, 4)),
        }
    values = sorted(
        set(
            draw(
                st.lists(
                    st.floats(-4, 4, allow_nan=False, allow_subnormal=False), min_size=2, max_size=6
                )
            )
        )
    )
    if len(values) < 2:
        values = [-1.0, 1.0]
    if draw(st.booleans()):
        values = ["-inf", *values[1:]]
    return values


def _size(e) -> int:
    return e["n"] if isinstance(e, dict) else len(e) - 1


leaves = st.one_of(
    numbers,
    st.builds(
        lambda t, p: formula(t, ["x", "y"], p),
        st.sampled_from(TEMPLATES),
        st.lists(numbers, min_size=2, max_size=2),
    ),
    st.just({"nodetype": "hashprng", "inputs": ["x", "k"], "distribution": "stdflat"}),
    st.builds(random_lwtnn, st.integers(0, 2**16)),
)


def _flow(draw, contents, e):
    flows = ["clamp", "error", "default"]
    if not (isinstance(e, list) and "-inf" in e):
        flows.append("wrap")
    choice = draw(st.sampled_from(flows))
    return draw(contents) if choice == "default" else choice


@st.composite
def nodes(draw, depth=0):
    contents = leaves if depth >= 2 else nodes(depth=depth + 1)
    kind = draw(st.sampled_from(["leaf", "binning", "multibinning", "int", "str", "transform"]))
    if kind == "leaf":
        return draw(leaves)
    if kind == "binning":
        e = draw(edges())
        content = [draw(contents) for _ in range(_size(e))]
        return binning(draw(st.sampled_from(["x", "y"])), e, content, _flow(draw, contents, e))
    if kind == "multibinning":
        ex, ey = draw(edges()), draw(edges())
        content = [draw(leaves) for _ in range(_size(ex) * _size(ey))]
        flow = draw(st.sampled_from(["clamp", "error", "default"]))
        return multibinning(
            ["x", "y"], [ex, ey], content, draw(leaves) if flow == "default" else flow
        )
    if kind == "int":
        keys = draw(st.lists(st.integers(-3, 5), min_size=1, max_size=4, unique=True))
        default = draw(st.one_of(st.none(), leaves))
        return category("k", {key: draw(contents) for key in keys}, default)
    if kind == "str":
        keys = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True))
        default = draw(st.one_of(st.none(), leaves))
        return category("s", {key: draw(contents) for key in keys}, default)
    target = draw(st.sampled_from(["x", "k"]))
    rule = formula(draw(st.sampled_from(["x*[0]", "[0]+y"])), ["x", "y"], [draw(numbers)])
    return {"nodetype": "transform", "input": target, "rule": rule, "content": draw(contents)}


def _finite(arg):
    if isinstance(arg, np.ndarray) and arg.dtype.kind == "f":
        return np.where(np.isfinite(arg), arg, 0.25)
    return arg


def _times_three(content):
    rule = formula("x*[0]", ["x", "y"], [3.0])
    return {"nodetype": "transform", "input": "x", "rule": rule, "content": content}


# Found by random runs: (x*3)*3 folded by XLA inside a caller's jit changed HashPRNG's
# bits; log10(pow(-4, x)) rewritten by XLA to x*log10(|-4|) hid a NaN from the binning.
CHAINED_TRANSFORMS = binning(
    "y",
    [-5.0, 0.0, 5.0],
    [
        _times_three(
            _times_three({"nodetype": "hashprng", "inputs": ["x", "k"], "distribution": "stdflat"})
        ),
        1.0,
    ],
    "clamp",
)
NAN_INTO_UNIFORM = {
    "nodetype": "transform",
    "input": "x",
    "rule": formula("log10(pow((-4),x))", ["x", "y"], []),
    "content": binning("x", {"n": 3, "low": -1.0, "high": 2.0}, [10.0, 11.0, 12.0], 2.5),
}


@given(data=nodes(), string=st.sampled_from(["a", "b", "z"]), seed=st.integers(0, 2**16))
@example(data=CHAINED_TRANSFORMS, string="a", seed=0)
@example(data=NAN_INTO_UNIFORM, string="a", seed=1)
def test_random_documents_equal_correctionlib(data, string, seed):
    doc = document(data, INPUTS)
    reference = oracle_set(text(doc))["c"]
    corr = corrax.CorrectionSet(doc)["c"]
    args = generate_inputs(corr.model, (string,), 300, np.random.default_rng(seed))
    # no ±inf/NaN: under flow wrap correctionlib's result for them is undefined behaviour
    args = [_finite(a) for a in args]
    want, failed = oracle_evaluate(reference, args)
    if failed.all() and np.ndim(failed) == 0:
        return
    try:
        in_callers_jit = jax.jit(lambda x, y, k: corr.evaluate(x, y, k, string))(*args[:3])
        closed_over = jax.jit(lambda: corr.evaluate(*args[:3], string))()
        eager, errors = corr.evaluate_with_errors(*args[:3], string)
    except corrax.MissingCategoryError:
        assert failed.all()
        return
    for result in (in_callers_jit, closed_over, eager):
        got = np.asarray(result)
        np.testing.assert_allclose(got[~failed], want[~failed], rtol=1e-12, atol=1e-12)
        assert np.isnan(got[failed]).all()
    np.testing.assert_array_equal(np.asarray(errors) != 0, failed)
