"""Copies of a correction share compiled code: a correction unpickled for every chunk
(as coffea's Runner and dask ship a processor), loaded again or built afresh compiles
at most once per size rung of the eager dispatcher, in this process. (Eager calls of
corrections NumPy can evaluate compile nothing at all: see test_host.py.)"""

from __future__ import annotations

import pickle

import correctionlib
import jax
import numpy as np
from conftest import compilations
from documents import (
    REAL,
    STRING,
    binning,
    category,
    document,
    formula,
    random_lwtnn,
    text,
    variables,
)

import corrax


def _document(marker: float) -> dict:
    """A JEC-like document; ``marker`` (a formula parameter) makes its content unique."""
    inputs = variables(("syst", STRING), ("eta", REAL), ("pt", REAL))
    nominal = binning(
        "eta", [-2.5, 0.0, 2.5], [formula("[0]+[1]*x", ["pt"], [marker, 0.01]), 1.2], "clamp"
    )
    # lwtnn is evaluated by compiled code even eagerly (NumPy evaluates the rest)
    network = random_lwtnn(3, ("eta", "pt"))
    return document(category("syst", {"nom": nominal, "up": 1.1, "net": network}), inputs)


class _Processor:
    """What an AGC-style processor does: load in ``__init__``, evaluate per chunk."""

    def __init__(self, doc: dict):
        self.corrections = corrax.CorrectionSet(doc)

    def process(self, eta: np.ndarray, pt: np.ndarray) -> float:
        c = self.corrections["c"]
        # to NumPy first: NumPy functions on JAX arrays would compile JAX reductions
        nominal, network = (np.asarray(c.evaluate(key, eta, pt)) for key in ("nom", "net"))
        return float(nominal.sum() + network.sum())


def test_a_processor_unpickled_per_chunk_compiles_once_per_size_rung():
    rng = np.random.default_rng(5)
    shipped = pickle.dumps(_Processor(_document(1.000123)))
    sizes = [100, 3000, 150, 2500, 90, 4000, 200, 1000, 60, 3500]  # two rungs: 256, 65536
    with compilations() as count:
        totals = []
        for size in sizes:
            processor = pickle.loads(shipped)  # coffea: one unpickled copy per chunk
            eta, pt = rng.uniform(-2.4, 2.4, size), rng.uniform(20.0, 200.0, size)
            totals.append(processor.process(eta, pt))
    # the compiled choice (net) × two rungs; not ten copies × that
    assert count[0] <= 2, count[0]
    assert all(np.isfinite(totals))


def test_a_correction_loaded_again_or_built_afresh_reuses_the_compiled_code():
    doc = _document(1.000456)
    eta, pt = np.array([-1.0, 0.5]), np.array([30.0, 60.0])
    expected = corrax.CorrectionSet(doc)["c"].evaluate("nom", eta, pt)
    with compilations() as count:
        for _ in range(5):
            again = corrax.CorrectionSet.from_string(
                corrax.CorrectionSet(doc).model.model_dump_json()
            )
            np.testing.assert_array_equal(again["c"].evaluate("nom", eta, pt), expected)
            np.testing.assert_array_equal(
                corrax.CorrectionSet(doc)["c"].evaluate("nom", eta, pt), expected
            )
    assert count[0] == 0


def test_different_contents_do_not_share():
    eta, pt = np.array([-0.5]), np.array([100.0])  # the formula bin
    one = corrax.CorrectionSet(_document(1.0))["c"].evaluate("nom", eta, pt)
    two = corrax.CorrectionSet(_document(2.0))["c"].evaluate("nom", eta, pt)
    np.testing.assert_allclose(two - one, 1.0, rtol=1e-6)


def _scale_factor(edges: list[float], values: list[float]) -> dict:
    """A muon-like scale factor: the nominal and two variations, binned in |eta|."""
    inputs = variables(("valtype", STRING), ("abseta", REAL))
    choices = {
        key: binning("abseta", edges, [v * factor for v in values], "clamp")
        for key, factor in (("sf", 1.0), ("systup", 1.01), ("systdown", 0.99))
    }
    return document(category("valtype", choices), inputs)


def test_corrections_differing_only_in_their_numbers_share_compiled_code():
    """The sf/systup/systdown choices of a scale factor, and another file with the same
    binning, compile once (per size rung) and each gives correctionlib's values;
    different edges give their own values too (sharing code, never numbers). Under
    ``jit``, as eager calls on the host compile nothing."""
    abseta = np.linspace(0.0, 2.4, 1000)
    docs = [
        _scale_factor([0.0, 0.9, 1.2, 2.1, 2.4], [0.991, 0.987, 0.993, 0.978]),
        _scale_factor([0.0, 0.9, 1.2, 2.1, 2.4], [0.95, 0.96, 0.97, 0.98]),
        _scale_factor([0.0, 0.8, 1.3, 2.0, 2.4], [0.95, 0.96, 0.97, 0.98]),
    ]
    with compilations() as count:
        for doc in docs:
            ours = corrax.CorrectionSet(doc)["c"]
            theirs = correctionlib.CorrectionSet.from_string(text(doc))["c"]
            for key in ("sf", "systup", "systdown"):
                lowered = ours.lower(key)
                np.testing.assert_array_equal(
                    np.asarray(_jitted(lowered, abseta)), theirs.evaluate(key, abseta)
                )
    assert count[0] <= 1, count[0]  # one size rung (1000 elements), not nine


@jax.jit
def _jitted(lowered, abseta):
    return lowered(abseta)


def test_copies_unpickled_in_one_process_are_one_set():
    """Unpickling a set (as coffea does for every chunk) does not parse its document
    again: copies of equal content are the same object; other relaxations are not."""
    cset = corrax.CorrectionSet(_document(1.000789))
    blob = pickle.dumps(cset)
    assert pickle.loads(blob) is cset and pickle.loads(blob) is pickle.loads(blob)
    relaxed = cset.relaxed("straight_through")
    assert pickle.loads(pickle.dumps(relaxed)) is relaxed is not cset
    eta, pt = np.array([-1.0]), np.array([50.0])
    np.testing.assert_array_equal(
        pickle.loads(blob)["c"].evaluate("nom", eta, pt), cset["c"].evaluate("nom", eta, pt)
    )


def test_copies_made_with_copy_are_new_objects():
    """``copy``/``deepcopy`` give new objects (a deep copy has its own document), not
    the one set unpickling shares."""
    import copy

    cset = corrax.CorrectionSet(_document(1.000987))
    pickle.dumps(cset)  # registers it as the shared object of its content
    for made in (copy.copy(cset), copy.deepcopy(cset)):
        assert made is not cset
        assert made["c"].evaluate("up", np.array([0.5]), np.array([50.0])) == 1.1
    assert copy.deepcopy(cset).model is not cset.model
    assert copy.deepcopy(cset["c"]) is not cset["c"]
