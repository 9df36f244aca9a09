"""The functional layer: lowered corrections as pytrees, one dispatcher, one jit cache."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import compilations
from documents import INT, REAL, STRING, binning, category, document, formula, text, variables
from oracle import oracle_set

import corrax
from corrax import _dispatch

INPUTS = variables(("syst", STRING), ("eta", REAL), ("pt", REAL))
SF = category(
    "syst",
    {
        "nom": binning(
            "eta",
            [-2.5, 0.0, 2.5],
            [formula("[0]+[1]*log(x)", ["pt"], [1.0, 0.01]), formula("[0]*x", ["pt"], [0.02])],
            "error",
        ),
        "up": 1.1,
    },
)
ETA = np.array([-1.0, 0.5, 2.0, -2.0])
PT = np.array([30.0, 45.0, 80.0, 120.0])


@pytest.fixture(name="pair")
def pair_fixture():
    doc = document(SF, INPUTS)
    return corrax.CorrectionSet(doc)["c"], oracle_set(text(doc))["c"]


def test_lowered_equals_correctionlib_eagerly_and_under_jit(pair):
    corr, reference = pair
    lowered = corr.lower("nom")
    want = reference.evaluate("nom", ETA, PT)
    np.testing.assert_allclose(lowered(ETA, PT), want, rtol=1e-15)
    np.testing.assert_allclose(lowered.evaluate(pt=PT, eta=ETA), want, rtol=1e-15)
    np.testing.assert_allclose(jax.jit(lambda c, e, p: c(e, p))(lowered, ETA, PT), want, rtol=1e-15)
    assert [v.name for v in lowered.inputs] == ["eta", "pt"]


def test_lowered_as_jit_argument_is_not_retraced_when_numbers_change(pair):
    corr, _ = pair
    traces = []

    @jax.jit
    def total(c, pt):
        traces.append(1)
        return c(ETA, pt).sum()

    bound = corr.bind("nom")
    first = total(bound, PT)
    doubled = jax.tree_util.tree_map(lambda leaf: leaf * 2.0, bound)
    second = total(doubled, PT)
    assert len(traces) == 1
    assert float(second) != float(first)


def test_errors_under_jit_are_reported_afterwards(pair):
    corr, reference = pair
    eta = np.array([-1.0, 7.0, 0.5])
    value, errors = jax.jit(lambda e, p: corr.evaluate_with_errors("nom", e, p))(eta, PT[:3])
    np.testing.assert_array_equal(np.asarray(errors) != 0, [False, True, False])
    assert np.isnan(value[1])
    with pytest.raises(RuntimeError):  # the oracle fails on the same element
        reference.evaluate("nom", eta, PT[:3])
    with pytest.raises(corrax.OutOfBoundsError) as eager:
        corr.evaluate("nom", eta, PT[:3])
    with pytest.raises(corrax.OutOfBoundsError) as afterwards:
        corr.raise_for_errors(errors, "nom", eta, PT[:3])
    assert str(afterwards.value) == str(eager.value)
    assert corr.raise_for_errors(np.zeros(3, dtype=np.int32), "nom", eta, PT[:3]) is None


def test_compound_errors_under_jit_name_the_member():
    inputs = variables(("x", REAL))
    doc = document(binning("x", [0.0, 10.0, 20.0], [1.0, 2.0], "error"), inputs, name="a")
    doc["corrections"].append(document(formula("x*0+3", ["x"]), inputs, name="b")["corrections"][0])
    doc["compound_corrections"] = [
        {
            "name": "ab",
            "inputs": inputs,
            "output": {"name": "o", "type": "real"},
            "inputs_update": ["x"],
            "input_op": "*",
            "output_op": "*",
            "stack": ["b", "a"],
        }
    ]
    compound = corrax.CorrectionSet(doc).compound["ab"]
    x = np.array([1.0, 5.0])  # b gives 3 and updates x to 3x: 3 and 15 are in a's range
    value, errors = jax.jit(compound.lower().evaluate_with_errors)(x)
    want = oracle_set(text(doc)).compound["ab"].evaluate(x)
    np.testing.assert_allclose(value, want)
    with pytest.raises(corrax.OutOfBoundsError, match="in compound 'ab'"):
        compound.evaluate(np.array([1.0, 9.0]))
    _, errors = jax.jit(compound.lower().evaluate_with_errors)(np.array([1.0, 9.0]))
    with pytest.raises(corrax.OutOfBoundsError, match="'a'.*in compound 'ab'"):
        compound.raise_for_errors(errors, np.array([1.0, 9.0]))


def test_chunks_of_any_size_compile_at_most_once_per_ladder_rung():
    doc = document(
        binning("x", [0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0], "clamp"), variables(("x", REAL))
    )
    corr = corrax.CorrectionSet(doc)["c"]
    reference = oracle_set(text(doc))["c"]
    rng = np.random.default_rng(3)
    sizes = [int(s) for s in rng.integers(1, 3 * _dispatch.BLOCK, 25)] + [0, 1, _dispatch.BLOCK]
    with compilations() as count:
        for size in sizes:
            x = rng.uniform(-1.0, 4.0, size)
            np.testing.assert_array_equal(corr.evaluate(x), reference.evaluate(x))
    assert count[0] <= len(_dispatch.RUNGS)


def test_padding_never_changes_values_nor_raises_for_padded_elements():
    doc = document(binning("x", [0.0, 1.0, 2.0], [1.0, 2.0], "error"), variables(("x", REAL)))
    corr = corrax.CorrectionSet(doc)["c"]
    x = np.full((3, 7), 1.5)  # 21 elements, padded to the first rung
    np.testing.assert_array_equal(corr.evaluate(x), np.full((3, 7), 2.0))
    assert corr.evaluate(np.zeros((0, 4))).shape == (0, 4)


def test_eager_grad_uses_the_shared_compiled_evaluator(pair):
    corr, _ = pair
    grad = jax.grad(lambda pt: corr.evaluate("nom", ETA, pt).sum())
    first = grad(PT)
    with compilations() as count:
        for _ in range(3):
            np.testing.assert_array_equal(grad(PT), first)
    assert count[0] == 0
    # d/dpt of [0]+[1]*log(pt) and [0]*pt, by hand: the formulas' own derivatives
    np.testing.assert_allclose(first, np.where(ETA < 0, 0.01 / PT, 0.02), rtol=1e-14)


def test_keyword_inputs_and_their_errors(pair):
    corr, reference = pair
    want = reference.evaluate("nom", ETA, PT)
    np.testing.assert_allclose(corr.evaluate(pt=PT, syst="nom", eta=ETA), want, rtol=1e-15)
    np.testing.assert_allclose(corr.evaluate("nom", pt=PT, eta=ETA), want, rtol=1e-15)
    with pytest.raises(corrax.InvalidInputError, match="no input named 'phi'"):
        corr.evaluate("nom", ETA, PT, phi=1.0)
    with pytest.raises(corrax.InvalidInputError, match="'eta' given twice"):
        corr.evaluate("nom", ETA, PT, eta=ETA)
    with pytest.raises(corrax.InvalidInputError, match="missing 'pt'"):
        corr.evaluate("nom", eta=ETA)


def test_inputs_that_do_not_broadcast_name_their_shapes(pair):
    corr, _ = pair
    with pytest.raises(corrax.InvalidInputError, match=r"eta: \(4,\), pt: \(3,\)"):
        corr.evaluate("nom", ETA, PT[:3])
    with pytest.raises(corrax.InvalidInputError, match="do not broadcast"):
        jax.jit(lambda p: corr.evaluate("nom", ETA, p))(PT[:3])


def test_integers_beyond_int64_raise():
    corr = corrax.CorrectionSet(document(category("k", {1: 2.0}, 0.0), variables(("k", INT))))["c"]
    with pytest.raises(corrax.InvalidInputError, match="outside the int64 range"):
        corr.evaluate(2**63)
    with pytest.raises(corrax.InvalidInputError, match="64-bit range"):
        corr.evaluate([2**64, 1])
    assert float(corr.evaluate(np.uint64(1))) == 2.0


def test_float32_mode_warns_once_when_float64_arrives(pair, monkeypatch):
    corr, reference = pair
    monkeypatch.setitem(corrax._inputs._warned, "float32", False)
    with jax.enable_x64(False):
        with pytest.warns(corrax.PrecisionWarning, match="jax_enable_x64"):
            value = corr.evaluate("nom", ETA, PT)
        again = corr.evaluate("nom", ETA, PT)  # no second warning (filterwarnings=error)
        assert value.dtype == jnp.float32 and again.dtype == jnp.float32
        quiet = corr.evaluate("nom", ETA.astype(np.float32), PT.astype(np.float32))
    np.testing.assert_allclose(quiet, reference.evaluate("nom", ETA, PT), rtol=2e-6)


def test_every_user_error_is_a_corrax_error(pair):
    corr, _ = pair
    hashing = document(
        {"nodetype": "hashprng", "inputs": ["x"], "distribution": "stdflat"}, variables(("x", REAL))
    )
    failures = [
        lambda: corr.relaxed("fuzzy"),
        lambda: corr.relaxed("smooth", widths={"pt": -1.0}),
        lambda: corr.nuisance("syst", interpolation="cubic"),
        lambda: corrax.propagate(lambda b: b(ETA, PT).sum(), corr.bind("nom"), 0.1, "some"),
        lambda: corr.evaluate("nom", ETA),
        lambda: corrax.CorrectionSet({"schema_version": 2}),
    ]
    for failure in failures:
        with pytest.raises(corrax.CorraxError):
            failure()
    with jax.enable_x64(False), pytest.raises(corrax.PrecisionError, match="64-bit"):
        corrax.CorrectionSet(hashing)["c"].evaluate(np.float32(1.0))


def test_a_correction_of_string_inputs_only_gives_a_scalar():
    doc = document(category("s", {"a": 1.5, "b": 2.5}), variables(("s", STRING)))
    corr, reference = corrax.CorrectionSet(doc)["c"], oracle_set(text(doc))["c"]
    assert float(corr.evaluate("b")) == reference.evaluate("b")
    assert float(jax.jit(lambda: corr.evaluate("a"))()) == reference.evaluate("a")
