"""Every node type and flow, on hand-written documents, against correctionlib."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from correctionlib import schemav2
from documents import (
    FLOWS,
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
    text,
    uniform,
    variables,
)
from oracle import generate_inputs, jit_evaluate, oracle_evaluate, oracle_set

import corrax

N = 4000


def compare(
    doc: dict,
    name: str = "c",
    strings: tuple = (),
    seed: int = 0,
    rtol: float = 0.0,
    atol: float = 1e-300,
    finite_only: bool = False,
):
    """Evaluate ``name`` under jit and compare with correctionlib on generated inputs.

    ``rtol=0``: bit-exact. ``finite_only``: no ±inf/NaN inputs (flow wrap, where
    correctionlib's result for them is undefined behaviour; corrax reports an error).
    """
    cset = corrax.CorrectionSet(doc)
    reference = oracle_set(text(doc))
    corr = cset[name]
    args = generate_inputs(corr.model, strings, N, np.random.default_rng(seed))
    if finite_only:
        args = [a if isinstance(a, str) else np.where(np.isfinite(a), a, 0.5) for a in args]
    want, failed = oracle_evaluate(reference[name], args)
    got = np.broadcast_to(jit_evaluate(corr, args), want.shape)
    if rtol:
        np.testing.assert_allclose(got[~failed], want[~failed], rtol=rtol, atol=atol)
    else:
        np.testing.assert_array_equal(got[~failed], want[~failed])
    assert np.isnan(got[failed]).all()
    return failed


def flow_id(flow) -> str:
    return flow if isinstance(flow, str) else type(flow).__name__


@pytest.mark.parametrize("flow", FLOWS, ids=flow_id)
@pytest.mark.parametrize(
    "edges",
    [[0.0, 1.0, 2.5, 10.0], ["-inf", -1.0, 0.0, 3.0, "inf"], uniform(7, -2.0, 5.0)],
    ids=["list", "infinite", "uniform"],
)
def test_binning_every_flow(edges, flow):
    if flow == "wrap" and isinstance(edges, list) and "inf" in edges:
        pytest.skip("wrap needs finite edges")
    n = edges["n"] if isinstance(edges, dict) else len(edges) - 1
    content = [float(i) * 1.5 - 2.0 for i in range(n)]
    doc = document(binning("x", edges, content, flow), variables(("x", REAL)))
    compare(doc, finite_only=flow == "wrap")


def test_binning_of_an_int_input_and_formula_content():
    content = [formula("x*2", ["y"]), 4.0, formula("[0]*x+[1]", ["y"], [0.5, -1.0])]
    data = binning("i", [-0.5, 0.5, 1.5, 2.5], content, "clamp")
    compare(document(data, variables(("i", INT), ("y", REAL))))


@pytest.mark.parametrize("flow", FLOWS[:4], ids=flow_id)
def test_multibinning_three_axes(flow):
    edges = [[0.0, 1.0, 2.0], uniform(3, -1.0, 2.0), [10.0, 20.0, 50.0, 100.0]]
    content = [float(i) for i in range(2 * 3 * 3)]
    data = multibinning(["x", "y", "z"], edges, content, flow)
    doc = document(data, variables(("x", REAL), ("y", REAL), ("z", REAL)))
    compare(doc, finite_only=flow == "wrap")


def test_multibinning_default_node_and_nested_binnings_of_different_sizes():
    inner = [
        binning(
            "z",
            [0.0, float(k + 1)] + [float(k + 2 + j) for j in range(k)],
            [float(10 * k + j) for j in range(k + 1)],
            "clamp",
        )
        for k in range(4)
    ]
    data = multibinning(["x", "y"], [[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]], inner, formula("-x", ["z"]))
    compare(document(data, variables(("x", REAL), ("y", REAL), ("z", REAL))))


def test_int_category_with_and_without_default():
    nested = category("k", {1: 1.0, 2: binning("x", [0.0, 1.0, 2.0], [3.0, 4.0])})
    data = category("j", {0: 10.0, 4: nested, 5: formula("x+1", ["x"])}, default=-7.0)
    failed = compare(document(data, variables(("j", INT), ("k", INT), ("x", REAL))))
    assert failed.any(), "inputs should include keys with no match"


@pytest.mark.parametrize("systematic", ["central", "up", "other"])
def test_string_category_selects_statically(systematic):
    data = category("syst", {"central": 1.0, "up": formula("1+0.1*x", ["x"])}, default=0.5)
    doc = document(data, variables(("syst", STRING), ("x", REAL)))
    compare(doc, strings=(systematic,), rtol=1e-14)


def test_string_key_missing_below_a_binning_fails_only_where_reached():
    data = binning(
        "x",
        [0.0, 1.0, 2.0],
        [category("s", {"a": 1.0}), category("s", {"a": 2.0, "b": 3.0})],
        "clamp",
    )
    failed = compare(document(data, variables(("x", REAL), ("s", STRING))), strings=("b",))
    assert failed.any() and not failed.all()


EXPRESSIONS = [
    "-x^2",
    "2^3^2",
    "x*y-[0]/(y+3)",
    "x>y",
    "(x<y)+(x>=1)*2+(x<=0.5)*4+(x==y)*8+(x!=y)*16",
    "(x>0)&&(y>0)",
    "(x>0)||(y>0.5)",
    "max(x,y)+min(x,[1])",
    "atan2(x,y)+pow(abs(x),0.5)",
    "log(abs(x)+1)+log10(abs(y)+2)+exp(-x*x)+erf(y)",
    "sqrt(abs(x))+cos(x)+sin(y)+tan(x/4)",
    "acos(x/10)+asin(y/10)+atan(x)",
    "cosh(x/5)+sinh(y/5)+tanh(x)",
    "acosh(abs(x)+1)+asinh(y)+atanh(x/20)",
    "x[0]*[0]+x[1]*[1]",
    "1e-3*x+1.5e2",
    "[0]*max(min(x,[3]),[2])+[1]",
]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_formula_grammar_and_functions(expression):
    data = formula(expression, ["x", "y"], [1.25, -0.75, 0.5, 3.0])
    # terms of |x|, |y| <= 500 cancel: 1e-13 relative to the terms, not to the result
    compare(document(data, variables(("x", REAL), ("y", REAL))), rtol=1e-13, atol=1e-11)


def test_formula_variables_map_by_name_not_position():
    data = formula("x-2*y", ["b", "a"])
    compare(document(data, variables(("a", REAL), ("b", REAL))))


def test_formularef_shares_one_template_across_bins():
    generic = [
        {
            "nodetype": "formula",
            "expression": "[0]+[1]*log(x)",
            "parser": "TFormula",
            "variables": ["x"],
        }
    ]
    refs = [
        {"nodetype": "formularef", "index": 0, "parameters": [float(i), 0.1 * i]} for i in range(6)
    ]
    data = binning("eta", [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0], refs, "clamp")
    doc = document(data, variables(("eta", REAL), ("x", REAL)), generic_formulas=generic)
    compare(doc, rtol=1e-14)
    node = corrax.CorrectionSet(doc)["c"].lower()._layout.node
    assert len(node.content.groups) == 1, "six FormulaRefs of one formula: one template"


def test_transform_rounds_int_inputs_half_away_from_zero():
    rule = formula("x/2", ["x"])  # halves: 0.5 -> 1, -0.5 -> -1, 2.5 -> 3
    inner = category("i", {k: float(k) for k in range(-6, 7)}, default=99.0)
    data = {"nodetype": "transform", "input": "i", "rule": rule, "content": inner}
    doc = document(data, variables(("i", INT), ("x", REAL)))
    cset, reference = corrax.CorrectionSet(doc), oracle_set(text(doc))
    x = np.arange(-12.0, 12.5, 0.5)
    i = np.zeros_like(x, dtype=np.int64)
    np.testing.assert_array_equal(cset["c"].evaluate(i, x), reference["c"].evaluate(i, x))


def test_transform_of_a_real_input():
    data = {
        "nodetype": "transform",
        "input": "x",
        "rule": formula("abs(x)", ["x"]),
        "content": binning("x", [0.0, 1.0, 2.0], [5.0, 6.0], "error"),
    }
    compare(document(data, variables(("x", REAL))))


@pytest.mark.parametrize("distribution", ["stdflat", "normal", "stdnormal"])
def test_hashprng_node(distribution):
    data = {"nodetype": "hashprng", "inputs": ["x", "n"], "distribution": distribution}
    compare(document(data, variables(("x", REAL), ("n", INT))))


@pytest.mark.parametrize("input_op", ["+", "*", "/"])
@pytest.mark.parametrize("output_op", ["+", "*", "/", "last"])
def test_compound_every_operation(input_op, output_op):
    first = formula("1+0.01*x", ["x"])
    second = binning("x", [0.0, 10.0, 20.0, 50.0], [1.1, 0.9, 1.05], "clamp")
    third = formula("0.5+x/100", ["y"])
    doc = document(
        first,
        variables(("x", REAL)),
        name="a",
        extra=[
            correction("b", second, variables(("x", REAL))),
            correction("d", third, variables(("y", REAL), ("x", REAL))),
        ],
        compound=[
            compound(
                "chain", variables(("x", REAL), ("y", REAL)), ["a", "b", "d"], input_op, output_op
            )
        ],
    )
    cset, reference = corrax.CorrectionSet(doc), oracle_set(text(doc))
    rng = np.random.default_rng(3)
    x, y = rng.uniform(-5, 60, 1000), rng.uniform(0, 10, 1000)
    want = reference.compound["chain"].evaluate(x, y)
    got = jax.jit(cset.compound["chain"].evaluate)(x, y)
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_api_mirrors_correctionlib():
    doc = document(formula("x", ["x"]), variables(("x", REAL)))
    doc["corrections"][0]["description"] = "identity"
    cset = corrax.CorrectionSet(doc)
    assert list(cset) == list(cset.keys()) == ["c"] and len(cset) == 1
    corr = cset["c"]
    assert (corr.name, corr.description, corr.version) == ("c", "identity", 1)
    assert [v.name for v in corr.inputs] == ["x"] and corr.output.type == "real"
    assert float(corr.evaluate(2.5)) == 2.5
    assert corr.evaluate(np.ones((2, 3))).shape == (2, 3)
    model = schemav2.CorrectionSet.model_validate(doc)
    assert float(corrax.CorrectionSet(model)["c"].evaluate(1.0)) == 1.0
    assert float(corrax.CorrectionSet.from_string(text(doc))["c"].evaluate(3.0)) == 3.0


def test_from_file_reads_gzip_and_bare_infinity(tmp_path):
    import gzip

    raw = text(document(binning("x", ["-inf", 0.0, "inf"], [1.0, 2.0]), variables(("x", REAL))))
    raw = raw.replace('"-inf"', "-Infinity").replace('"inf"', "Infinity")
    plain, packed = tmp_path / "c.json", tmp_path / "c.json.gz"
    plain.write_text(raw)
    packed.write_bytes(gzip.compress(raw.encode()))
    for path in (plain, packed):
        corr = corrax.CorrectionSet.from_file(path)["c"]
        np.testing.assert_array_equal(corr.evaluate(np.array([-1e300, 0.0, 5.0])), [1, 2, 2])


def _perturbed(n: int) -> list[float]:
    jitter = np.random.default_rng(1).uniform(-0.2, 0.2, n + 1) * (1.0 / n)
    jitter[[0, -1]] = 0.0
    return list(np.linspace(0.0, 1.0, n + 1) + jitter)


@pytest.mark.parametrize(
    "edges",
    [
        list(np.linspace(-2.0, 3.0, 51)),  # arithmetic index (linear)
        list(np.geomspace(10.0, 1000.0, 41)),  # arithmetic index (log)
        _perturbed(60),  # linear guess off by one, corrected
        list(np.sort(np.random.default_rng(2).uniform(-3, 3, 40))),  # binary search
        list(np.linspace(0.1, 0.9, 7)),  # comparisons
    ],
    ids=["linear", "log", "perturbed", "irregular", "small"],
)
@pytest.mark.parametrize("flow", ["clamp", "error", 7.0])
def test_every_search_layout_equals_correctionlib(edges, flow):
    content = [float(i) for i in range(len(edges) - 1)]
    compare(document(binning("x", edges, content, flow), variables(("x", REAL))))


def test_per_row_edges_use_the_union_lookup():
    rng = np.random.default_rng(4)
    rows = [list(np.sort(rng.uniform(0.0, 10.0, 5 + i))) for i in range(6)]
    inner = [
        binning("y", r, [float(10 * i + j) for j in range(len(r) - 1)], "clamp")
        for i, r in enumerate(rows)
    ]
    data = binning("x", [float(i) for i in range(7)], inner, "clamp")
    doc = document(data, variables(("x", REAL), ("y", REAL)))
    compare(doc)
    node = corrax.CorrectionSet(doc)["c"].lower()._layout.node
    assert node.content.groups[0].axes[0].mode.startswith("union")


# XLA's algebraic simplifier rewrites these compositions (also without fast-math);
# correctionlib computes each function as written.
COMPOSITIONS = [
    "log(exp(x))",
    "exp(log(x))",
    "log(pow(x,0.5))",
    "log10(pow((-4),y))",
    "exp(x)*exp(y)",
    "pow(exp(x),y)",
    "x/sqrt(y)",
    "log(sqrt(x))",
    "x/15.",
]


@pytest.mark.parametrize("expression", COMPOSITIONS)
def test_compositions_are_computed_as_written(expression):
    doc = document(formula(expression, ["x", "y"]), variables(("x", REAL), ("y", REAL)))
    corr, reference = corrax.CorrectionSet(doc)["c"], oracle_set(text(doc))["c"]
    x = np.array([1000.0, 750.0, -1.0, -4.0, 3.0, 7.0, 1e-300, 2.0, 0.5, 710.0])
    y = np.array([0.5, 3.0, 2.0, -1.5, 0.1, 7.0, 4.0, -2.0, 1e5, 1.25])
    want = reference.evaluate(x, y)
    for got in (
        corr.evaluate(x, y),
        jax.jit(corr.evaluate)(x, y),
        jax.jit(lambda: corr.evaluate(x, y))(),  # constants of the caller's program
    ):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-15, atol=0, equal_nan=True)
