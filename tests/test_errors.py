"""Bad input: clear errors eagerly, NaN (never a plausible number) under jit."""

from __future__ import annotations

import json

import correctionlib
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from documents import INT, REAL, STRING, binning, category, document, multibinning, variables

import corrax

EDGES = [0.0, 10.0, 20.0]


def _document() -> dict:
    strict = binning("pt", EDGES, [1.0, 2.0], "error")
    keyed = category("flavour", {0: 1.0, 5: strict}, default=None)
    doc = document(keyed, variables(("flavour", INT), ("pt", REAL)), name="sf")
    doc["corrections"].append(
        {
            "name": "syst",
            "version": 1,
            "inputs": variables(("kind", STRING), ("x", REAL)),
            "output": {"name": "o", "type": "real"},
            "data": category("kind", {"nom": 1.0}),
        }
    )
    return doc


@pytest.fixture(name="cset")
def cset_fixture():
    return corrax.CorrectionSet(_document())


def test_out_of_range_names_correction_input_value_and_range(cset):
    with pytest.raises(corrax.OutOfBoundsError) as info:
        cset["sf"].evaluate(np.array([5, 5, 5]), np.array([5.0, 25.0, 30.0]))
    message = str(info.value)
    for part in ("'sf'", "'pt'", "25.0", "above", "[0.0, 20.0)", "2 of 3 elements"):
        assert part in message, message


def test_nan_with_flow_error_is_reported(cset):
    with pytest.raises(corrax.OutOfBoundsError, match="nan"):
        cset["sf"].evaluate(5, float("nan"))


def test_missing_int_key_lists_available_keys(cset):
    with pytest.raises(corrax.MissingCategoryError) as info:
        cset["sf"].evaluate(np.array([0, 4]), 5.0)
    assert "'flavour' = 4" in str(info.value) and "0, 5" in str(info.value)
    assert isinstance(info.value, IndexError)  # like correctionlib


def test_missing_string_key_raises_even_under_jit(cset):
    with pytest.raises(corrax.MissingCategoryError, match="'kind' = 'up'.*'nom'"):
        jax.jit(lambda x: cset["syst"].evaluate("up", x))(1.0)


def test_under_jit_failing_elements_are_nan_and_others_exact(cset):
    values = jax.jit(cset["sf"].evaluate)(
        jnp.array([5, 5, 4, 0]), jnp.array([5.0, 25.0, 5.0, 99.0])
    )
    np.testing.assert_array_equal(np.isnan(values), [False, True, True, False])
    np.testing.assert_array_equal(np.asarray(values)[[0, 3]], [1.0, 1.0])


def test_under_grad_failing_elements_are_nan(cset):
    grad = jax.grad(lambda pt: cset["sf"].evaluate(jnp.array([5, 5]), pt).sum())
    value = jax.value_and_grad(lambda pt: cset["sf"].evaluate(jnp.array([5, 5]), pt).sum())
    assert np.isnan(value(jnp.array([5.0, 25.0]))[0])
    # in range: a bin lookup is piecewise constant, its exact derivative is 0
    np.testing.assert_array_equal(grad(jnp.array([5.0, 15.0])), [0.0, 0.0])


def test_wrong_number_of_inputs_shows_signature(cset):
    with pytest.raises(
        corrax.InvalidInputError, match=r"takes 2 inputs, got 1.*sf\(flavour: int, pt: real\)"
    ):
        cset["sf"].evaluate(5)


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        ((5.5, 1.0), "'flavour' is int, got dtype float64"),
        ((5, "high"), "'pt' is real, got a string"),
        ((np.array(["a", "b"]), 1.0), "'flavour' is int, got a string"),
    ],
)
def test_wrong_types(cset, args, pattern):
    with pytest.raises(corrax.InvalidInputError, match=pattern):
        cset["sf"].evaluate(*args)


def test_array_of_strings_for_a_string_input(cset):
    with pytest.raises(corrax.InvalidInputError, match="one Python str.*evaluate once per"):
        cset["syst"].evaluate(np.array(["nom", "up"]), 1.0)


def test_unknown_correction_suggests_close_names(cset):
    with pytest.raises(corrax.UnknownCorrectionError, match="'sff'.*did you mean 'sf'"):
        cset["sff"]
    with pytest.raises(KeyError):
        cset.compound["nothing"]


def test_invalid_document_reports_schema_message_and_location():
    bad = document(binning("x", [0.0, 2.0, 1.0], [1.0, 2.0]), variables(("x", REAL)))
    with pytest.raises(corrax.InvalidDocumentError, match=r"corrections\.0\.data.*edges"):
        corrax.CorrectionSet(bad)
    with pytest.raises(corrax.InvalidDocumentError, match="schema_version"):
        corrax.CorrectionSet({"schema_version": 1, "corrections": []})
    with pytest.raises(corrax.InvalidDocumentError, match="not valid JSON"):
        corrax.CorrectionSet.from_string("{nope")


def test_errors_lose_nothing_the_set_stays_usable(cset):
    with pytest.raises(corrax.OutOfBoundsError):
        cset["sf"].evaluate(5, 50.0)
    assert float(cset["sf"].evaluate(5, 15.0)) == 2.0


def test_multibinning_error_names_the_failing_axis():
    data = multibinning(["a", "b"], [[0.0, 1.0], [0.0, 1.0]], [3.0], "error")
    corr = corrax.CorrectionSet(document(data, variables(("a", REAL), ("b", REAL))))["c"]
    with pytest.raises(corrax.OutOfBoundsError, match="'b' = -1.0 is below"):
        corr.evaluate(0.5, -1.0)


CASES = {
    "out of bounds": ("sf", (np.array([5]), np.array([25.0]))),
    "nan in a binning with flow error": ("sf", (np.array([5]), np.array([np.nan]))),
    "missing category": ("sf", (np.array([3]), np.array([5.0]))),
    "too few inputs": ("sf", (np.array([5]),)),
    "too many inputs": ("sf", (np.array([5]), np.array([5.0]), 1.0)),
    "a string for a real input": ("sf", (np.array([5]), "x")),
    "shapes that do not broadcast": ("sf", (np.array([5, 5]), np.array([5.0, 6.0, 7.0]))),
    "a number for a string input": ("syst", (1.0, np.array([1.0]))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_error_is_also_the_exception_correctionlib_raises(case, cset):
    """Code written for correctionlib (``except ValueError``, ``except RuntimeError``,
    ...) catches corrax's error in the same situation."""
    name, args = CASES[case]
    oracle = correctionlib.CorrectionSet.from_string(json.dumps(_document()))
    with pytest.raises(Exception) as expected:  # noqa: PT011 - the oracle's type is the point
        oracle[name].evaluate(*args)
    with pytest.raises(corrax.CorraxError) as got:
        cset[name].evaluate(*args)
    assert isinstance(got.value, type(expected.value)), (case, type(got.value).__mro__)
