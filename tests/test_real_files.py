"""Every correction and compound correction of the real CMS files equals correctionlib.

For each correction, generated inputs (inside the bins, exactly on edges, just below
edges, outside, ±inf, NaN, category keys with and without a match) spread over its
string-input combinations. Values are compared with correctionlib's; where
correctionlib raises, corrax must give NaN under jit and raise the same kind of error
eagerly. The default run samples 2,000 inputs over up to 2 string combinations per
correction (every correction of every file); ``make test-all`` (marker ``slow``) runs
10^4 inputs over up to 8 combinations.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from conftest import real_correction_files, require_shared
from oracle import (
    NO_SUCH_KEY,
    generate_for,
    generate_inputs,
    jit_evaluate,
    jit_evaluate_closed,
    oracle_evaluate,
    oracle_set,
    string_combinations,
)

import corrax

SAMPLED = {"n_inputs": 2_000, "max_combinations": 2}
EXHAUSTIVE = {"n_inputs": 10_000, "max_combinations": 8}
SWEEPS = [
    pytest.param(SAMPLED, id="sampled"),
    pytest.param(EXHAUSTIVE, id="exhaustive", marks=pytest.mark.slow),
]
# Tables compare exactly. Formulas compare to 1e-12 relative; XLA may fuse a*b+c into
# one rounding where C++ rounds twice, so values that cancel to ~0 get an absolute floor.
FORMULA_RTOL, FORMULA_ATOL = 1e-12, 1e-14

FILES = real_correction_files()
MISSING = pytest.param(
    None, marks=pytest.mark.skip(reason="../shared/data/corrections not found beside the repo")
)


def _has_formula(correction) -> bool:
    text = correction.model_dump_json()
    return '"formula' in text


def _check(corr, reference, args, exact: bool):
    want, failed = oracle_evaluate(reference, args)
    got = np.broadcast_to(jit_evaluate(corr, args), np.shape(want))
    ok = ~failed
    if exact:
        np.testing.assert_array_equal(got[ok], want[ok], err_msg=corr.name)
    else:
        np.testing.assert_allclose(
            got[ok], want[ok], rtol=FORMULA_RTOL, atol=FORMULA_ATOL, err_msg=corr.name
        )
    assert np.isnan(got[failed]).all(), (
        f"{corr.name}: correctionlib raised, corrax did not give NaN"
    )
    if failed.any():
        with pytest.raises((corrax.OutOfBoundsError, corrax.MissingCategoryError)):
            corr.evaluate(*args)
    _check_eager(corr, args, want, ok, exact)
    return int(np.size(want))


def _check_eager(corr, args, want, ok, exact: bool):
    """Eager ``evaluate`` (NumPy on the host where the correction allows, else the
    compiled path) on the elements correctionlib evaluates."""
    shape = np.shape(want)
    if shape:
        args = [a[ok] if isinstance(a, np.ndarray) and a.shape == shape else a for a in args]
        want = want[ok]
    elif not ok:
        return
    eager = np.broadcast_to(np.asarray(corr.evaluate(*args)), np.shape(want))
    if exact:
        np.testing.assert_array_equal(eager, want, err_msg=corr.name)
    else:
        np.testing.assert_allclose(
            eager, want, rtol=FORMULA_RTOL, atol=FORMULA_ATOL, err_msg=corr.name
        )


@pytest.mark.parametrize("sweep", SWEEPS)
@pytest.mark.parametrize("path", FILES or [MISSING], ids=[p.name for p in FILES] or None)
def test_every_correction_equals_correctionlib(path, sweep, record_property):
    require_shared(path)
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    cset = corrax.CorrectionSet.from_file(path)
    reference = oracle_set(path)
    checked = {}
    for name in cset:
        corr = cset[name]
        exact = not _has_formula(corr.model)
        combos = string_combinations(corr.model, sweep["max_combinations"], rng)
        known = [c for c in combos if NO_SUCH_KEY not in c]
        per_combo = max(sweep["n_inputs"] // max(len(known), 1), 1)
        checked[name] = 0
        for strings in combos:
            n = per_combo if strings in known else 100
            args = generate_inputs(corr.model, strings, n, rng)
            try:
                checked[name] += _check(corr, reference[name], args, exact)
            except corrax.MissingCategoryError:
                # a string key with no branch: correctionlib must fail on it too
                with pytest.raises(IndexError):
                    reference[name].evaluate(*args)
    record_property("inputs_checked", sum(checked.values()))
    numeric = [n for n in cset if any(v.type != "string" for v in cset[n].inputs)]
    assert all(checked[n] >= 0.9 * sweep["n_inputs"] for n in numeric if checked[n] > 0)
    assert sum(checked[n] > 0 for n in cset) >= 0.9 * len(cset)


COMPOUND_FILES = [p for p in FILES if "jerc" in p.name]


@pytest.mark.parametrize(
    "path", COMPOUND_FILES or [MISSING], ids=[p.name for p in COMPOUND_FILES] or None
)
def test_every_compound_equals_correctionlib(path):
    require_shared(path)
    rng = np.random.default_rng(7)
    cset = corrax.CorrectionSet.from_file(path)
    reference = oracle_set(path)
    assert len(cset.compound) > 0
    for name in cset.compound:
        compound = cset.compound[name]
        members = [member.model.data for member in compound.stack]
        args = generate_for(compound.inputs, members, (), 10_000, rng, specials=False)
        want, failed = oracle_evaluate(reference.compound[name], args)
        got = jit_evaluate_closed(compound, args)  # tables as XLA constants
        np.testing.assert_allclose(
            got[~failed], want[~failed], rtol=FORMULA_RTOL, atol=FORMULA_ATOL, err_msg=name
        )
        assert np.isnan(got[failed]).all()
        eager = compound.evaluate(*(a[~failed] for a in args))
        np.testing.assert_allclose(
            eager, want[~failed], rtol=FORMULA_RTOL, atol=FORMULA_ATOL, err_msg=name
        )
