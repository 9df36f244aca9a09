"""Precision: x64 on equals correctionlib; x64 off computes in float32.

corrax never changes JAX's configuration; it uses whatever precision is active when
a correction is evaluated (tables are kept in float64 on the host and converted).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from documents import INT, REAL, binning, category, document, formula, text, variables
from oracle import oracle_set

import corrax

DATA = category(
    "k",
    {
        0: binning(
            "x",
            [0.0, 1.0, 5.0, 20.0],
            [formula("1+0.1*x", ["x"]), 2.0, formula("exp(-x/7)", ["x"])],
        )
    },
    default=0.5,
)
DOC = document(DATA, variables(("k", INT), ("x", REAL)))


def test_importing_corrax_leaves_jax_config_alone():
    import importlib

    before = jax.config.jax_enable_x64
    importlib.reload(corrax)
    assert jax.config.jax_enable_x64 == before


def test_x32_float32_close_to_correctionlib():
    corr = corrax.CorrectionSet(DOC)["c"]
    x = np.random.default_rng(0).uniform(0.01, 19.9, 5000)
    x = x[np.abs(x[:, None] - np.array([1.0, 5.0])).min(axis=1) > 1e-5]  # not on an edge
    k = np.zeros(x.shape, dtype=np.int64)
    want = oracle_set(text(DOC))["c"].evaluate(k, x)
    with jax.enable_x64(False):
        got = corr.evaluate(k, x)
        assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-6)
    with jax.enable_x64(True):  # the same object switches back to float64
        assert corr.evaluate(k, x).dtype == np.float64


def test_hashprng_needs_x64():
    doc = document(
        {"nodetype": "hashprng", "inputs": ["x"], "distribution": "stdflat"}, variables(("x", REAL))
    )
    corr = corrax.CorrectionSet(doc)["c"]
    with jax.enable_x64(False), pytest.raises(RuntimeError, match="64-bit"):
        corr.evaluate(np.ones(3))
