"""Real-file scale: the traced program does not grow with the number of bins.

Counted in jaxpr equations (deterministic), never in seconds: timing targets live
in benchmarks/.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import CORRECTIONS_DIR, require_shared
from documents import REAL, binning, document, formula, variables

import corrax


def _equations(corr, *args) -> int:
    return len(jax.make_jaxpr(corr.evaluate)(*args).jaxpr.eqns)


def _nested(n_outer: int) -> dict:
    """An eta binning of pt binnings (sizes vary) of formulas with per-bin parameters."""
    inner = [
        binning(
            "pt",
            [10.0 * j for j in range(3 + i % 4)],
            [formula("[0]+[1]*log(x)", ["pt"], [float(i), 0.1 * j]) for j in range(2 + i % 4)],
        )
        for i in range(n_outer)
    ]
    return document(
        binning("eta", list(np.linspace(-5, 5, n_outer + 1)), inner, "clamp"),
        variables(("eta", REAL), ("pt", REAL)),
    )


def test_trace_size_grows_at_most_logarithmically_with_bins():
    """No operation per bin: at most a binary search's log2(bins) steps depend on size."""
    x = np.linspace(-4.0, 4.0, 16)
    nested = [_equations(corrax.CorrectionSet(_nested(n))["c"], x, x + 20.0) for n in (40, 4000)]
    assert nested[1] - nested[0] <= 10 * np.log2(4000 / 40)
    big = [
        binning("x", list(np.linspace(0.0, 1.0, n + 1)), list(np.arange(n, dtype=float)))
        for n in (1000, 100_000)
    ]
    flat = [
        _equations(corrax.CorrectionSet(document(b, variables(("x", REAL))))["c"], x) for b in big
    ]
    assert flat[1] - flat[0] <= 10 * np.log2(100_000 / 1000)


def test_real_jec_lowers_to_a_few_structures():
    path = require_shared(CORRECTIONS_DIR / "JME__2018_UL__jet_jerc.json.gz")
    cset = corrax.CorrectionSet.from_file(path)
    compound = cset.compound["Summer19UL18_V5_MC_L1L2L3Res_AK4PFchs"]
    x = np.ones(8)
    args = {"JetA": x * 0.5, "JetEta": x, "JetPt": x * 50.0, "Rho": x * 20.0}
    # chaining adds a few operations per member to the members' own programs
    members = sum(
        _equations(member, *(args[v.name] for v in member.inputs)) for member in compound.stack
    )
    assert _equations(compound, *args.values()) <= members + 10 * len(compound.stack)
    l2 = cset["Summer19UL18_V5_MC_L2Relative_AK4PFchs"]
    root = l2.lower()._layout.node
    # an eta binning of 82 FormulaRefs of one generic formula: one template
    assert len(root.content.groups) == 1
    assert isinstance(
        root.content.groups[0],
        type(cset["Summer19UL18_V5_MC_L3Absolute_AK4PFchs"].lower()._layout.node.content.groups[0]),
    )


@pytest.mark.parametrize("n_bins", [10, 100_000])
def test_memory_is_tables_plus_batch(n_bins):
    doc = document(
        binning("x", list(np.linspace(0.0, 1.0, n_bins + 1)), list(np.arange(n_bins, dtype=float))),
        variables(("x", REAL)),
    )
    corr = corrax.CorrectionSet(doc)["c"]
    x = np.random.default_rng(0).uniform(0, 1, 1000)
    compiled = jax.jit(corr.evaluate).lower(x).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
        pytest.skip("this backend reports no memory analysis")
    table_bytes = (2 * n_bins + 1) * 8
    assert analysis.temp_size_in_bytes < 64 * x.size * 8 + 4 * table_bytes
