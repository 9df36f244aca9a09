"""The jit path for jagged data against the eager awkward paths (oracle: awkward +
scikit-hep vector on the CPU backend for values, awkward-JAX for gradients)."""

from __future__ import annotations

import warnings

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import vector
import vector.backends.awkward
from documents import REAL, binning, document, formula, variables

import corrax
from corrax.jagged import Jagged, kinematics

# a JEC-like correction: eta bins of pt formulas with an event-level rho
JEC_DOC = document(
    binning(
        "eta",
        [-5.0, -1.5, 0.0, 1.5, 5.0],
        [
            formula(
                "[0]+[1]/(pow(log10(x),2)+[2])+[3]*y",
                ["pt", "rho"],
                [1.0 + 0.01 * i, 0.3, 1.5, 0.002],
            )
            for i in range(4)
        ],
        "clamp",
    ),
    variables(("eta", REAL), ("pt", REAL), ("rho", REAL)),
)


def _events(n_events: int, seed: int = 5) -> ak.Array:
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 8, n_events)
    n = int(counts.sum())
    jets = ak.zip(
        {
            "pt": ak.unflatten(rng.exponential(40.0, n) + 20.0, counts),
            "eta": ak.unflatten(rng.uniform(-2.4, 2.4, n), counts),
            "phi": ak.unflatten(rng.uniform(-np.pi, np.pi, n), counts),
            "mass": ak.unflatten(rng.uniform(2.0, 15.0, n), counts),
            "weight": ak.unflatten(rng.uniform(0.5, 1.5, n), counts),
        }
    )
    rho = rng.uniform(5.0, 40.0, n_events)
    return jets, rho


def trijet_jit(pt, jets: Jagged, combos):
    """Mass of the highest-pt trijet, from every combination's four-vector."""
    cartesian = kinematics.to_cartesian(pt, jets["eta"], jets["phi"], jets["mass"])
    p4 = kinematics.combination_p4(combos, cartesian)
    return combos.select_best(kinematics.pt(*p4), kinematics.mass(*p4))


def trijet_chosen(pt, jets: Jagged, combos):
    """The same through ``best``: the choice, then the chosen objects' sum only."""
    cartesian = kinematics.to_cartesian(pt, jets["eta"], jets["phi"], jets["mass"])
    chosen = combos.best(kinematics.pt(*(combos.total(c) for c in cartesian[:2])))
    return kinematics.mass(*kinematics.combination_p4(chosen, cartesian))


def test_jit_path_equals_awkward_and_vector():
    jets_ak, rho = _events(300)
    jec = corrax.CorrectionSet(JEC_DOC)["c"]
    lowered = jec.lower()
    jets = Jagged.from_awkward(jets_ak, fields=["pt", "eta", "phi", "mass", "weight"])
    combos = jets.combinations(3)
    rho_slots = jnp.zeros(jets.event_slots).at[: len(rho)].set(rho)

    @jax.jit
    def run(scale, lowered, jets, combos, rho):
        raw = jets["pt"] * scale
        pt = raw * lowered(jets["eta"], raw, jets.broadcast(rho))
        return (
            jets.sum(pt, jets["weight"]),
            trijet_jit(pt, jets, combos),
            trijet_chosen(pt, jets, combos),
            pt,
        )

    weighted, trijet_mass, chosen_mass, pt = run(1.02, lowered, jets, combos, rho_slots)

    # oracle: awkward + vector on the CPU backend
    raw = jets_ak.pt * 1.02
    corrected = raw * jec.evaluate(jets_ak.eta, raw, rho)
    back = jets.to_awkward(pt)
    assert ak.all(ak.num(back) == ak.num(corrected))
    np.testing.assert_allclose(ak.flatten(back), ak.flatten(corrected), rtol=1e-13)
    want_sum = ak.sum(corrected * jets_ak.weight, axis=1)
    np.testing.assert_allclose(weighted[: len(rho)], want_sum, rtol=1e-12)
    p4 = vector.zip({"pt": corrected, "eta": jets_ak.eta, "phi": jets_ak.phi, "mass": jets_ak.mass})
    triples = ak.combinations(p4, 3, fields=["a", "b", "c"])
    total = triples.a + triples.b + triples.c
    best = ak.argmax(total.pt, axis=1, keepdims=True)
    want_mass = ak.fill_none(ak.flatten(total.mass[best], axis=1), 0.0)
    for got in (trijet_mass, chosen_mass):
        np.testing.assert_allclose(got[: len(rho)], want_mass, rtol=1e-10, atol=1e-9)
        assert np.all(np.asarray(got)[: len(rho)][ak.num(jets_ak) < 3] == 0.0)
        assert np.all(np.asarray(got)[len(rho) :] == 0.0)  # padding events


def test_jit_path_gradients_equal_the_awkward_jax_path():
    jets_ak, rho = _events(60, seed=9)
    jec = corrax.CorrectionSet(JEC_DOC)["c"]
    jets = Jagged.from_awkward(jets_ak, fields=["pt", "eta", "phi", "mass", "weight"])
    combos = jets.combinations(3)
    rho_slots = jnp.zeros(jets.event_slots).at[: len(rho)].set(rho)
    lowered = jec.lower()

    def objective_jit(scale, trijet):
        raw = jets["pt"] * scale
        pt = raw * lowered(jets["eta"], raw, jets.broadcast(rho_slots))
        return jets.sum(pt, jets["weight"]).sum() + trijet(pt, jets, combos).sum()

    value_and_grad = jax.jit(jax.value_and_grad(objective_jit), static_argnums=1)
    value_jit, grad_jit = value_and_grad(1.03, trijet_jit)
    value_chosen, grad_chosen = value_and_grad(1.03, trijet_chosen)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ak.jax.register_and_check()
        jets_jax = ak.to_backend(jets_ak, "jax")

        def objective_eager(scale):
            raw = jets_jax.pt * scale
            pt = raw * jec.evaluate(jets_jax.eta, raw, ak.Array(rho, backend="jax"))
            p4 = ak.zip(
                {"pt": pt, "eta": jets_jax.eta, "phi": jets_jax.phi, "mass": jets_jax.mass},
                with_name="Momentum4D",
                behavior=vector.backends.awkward.behavior,  # not registered globally
            )
            triples = ak.combinations(p4, 3, fields=["a", "b", "c"])
            total = triples.a + triples.b + triples.c
            best = ak.argmax(jax.lax.stop_gradient(total.pt), axis=1, keepdims=True)
            # the JAX backend returns the int maximum, not None, for events without triples
            best = ak.mask(best, ak.num(total.pt, axis=1) > 0)
            masses = ak.fill_none(ak.flatten(total.mass[best], axis=1), 0.0)
            return ak.sum(pt * jets_jax.weight) + ak.sum(masses)

        value_eager, grad_eager = jax.value_and_grad(objective_eager)(1.03)
    np.testing.assert_allclose(value_jit, value_eager, rtol=1e-12)
    np.testing.assert_allclose(grad_jit, grad_eager, rtol=1e-10)
    np.testing.assert_allclose(value_chosen, value_eager, rtol=1e-12)
    np.testing.assert_allclose(grad_chosen, grad_eager, rtol=1e-10)


def test_best_combination_ties_empty_events_and_gradients():
    values = ak.Array([[2.0, 2.0, 2.0], [5.0], [], [2.0, 0.5, 4.0]])
    jets = Jagged.from_awkward(values)
    x = jets["value"]
    pairs = jets.combinations(2)
    key = pairs.total(x)  # sums: [4, 4, 4], [], [], [2.5, 6, 4.5]
    chosen = pairs.best(key)
    np.testing.assert_array_equal(chosen.found[:4], [True, False, False, True])
    index = np.asarray(chosen.index)
    np.testing.assert_array_equal(index[[0, 3]], [[0, 1], [4, 6]])  # the first of ties
    np.testing.assert_array_equal(chosen.take(x)[:4], [[2.0, 2.0], [0, 0], [0, 0], [2.0, 4.0]])
    np.testing.assert_array_equal(pairs.select_best(key, key)[:4], [4.0, 0.0, 0.0, 6.0])
    assert int(pairs.argbest(key)[1]) == len(pairs.event)  # none: the number of slots

    # d/dx of Σ (x_i·x_j of the chosen pair): only the chosen objects get a gradient
    def product_of_chosen(x):
        return jnp.prod(pairs.best(pairs.total(x)).take(x), axis=1).sum()

    gradient = jax.grad(product_of_chosen)(x)
    want = np.zeros(jets.capacity)
    want[[0, 1, 4, 6]] = [2.0, 2.0, 4.0, 2.0]
    np.testing.assert_array_equal(gradient, want)

    # a NaN (a failed correction under jit) reaches its event's result, not a 0
    failed = x.at[5].set(jnp.nan)
    key = pairs.total(failed)
    assert np.isnan(pairs.select_best(key, key)[3])
    assert np.isnan(pairs.best(key).total(failed)[3])
    np.testing.assert_array_equal(pairs.select_best(key, key)[:3], [4.0, 0.0, 0.0])


def test_reductions_padding_and_round_trip():
    values = ak.Array([[1.0, 2.0, 3.0], [], [4.0, -1.0]])
    jets = Jagged.from_awkward(values)
    x = jets["value"]
    np.testing.assert_array_equal(jets.sum(x)[:3], [6.0, 0.0, 3.0])
    np.testing.assert_array_equal(jets.prod(x)[:3], [6.0, 1.0, -4.0])
    np.testing.assert_array_equal(jets.count()[:3], [3.0, 0.0, 2.0])
    np.testing.assert_array_equal(jets.max(x)[:2], [3.0, -np.inf])
    np.testing.assert_array_equal(jets.argmax(x)[:3], [2, jets.capacity, 3])
    np.testing.assert_array_equal(jets.argmax(x.at[4].set(jnp.nan))[:3], [2, jets.capacity, 4])
    np.testing.assert_array_equal(jets.first(x, 2)[:3], [[1.0, 2.0], [0.0, 0.0], [4.0, -1.0]])
    soft = jnp.where(x > 1.5, 1.0, 0.0)
    np.testing.assert_array_equal(jets.prod(x, soft)[:3], [6.0, 1.0, 4.0])
    assert jets.to_awkward(x * 2).tolist() == [[2.0, 4.0, 6.0], [], [8.0, -2.0]]
    assert jets.capacity == 256 and jets.event_slots == 256


def test_chunks_of_similar_size_share_one_compilation():
    traces = []

    @jax.jit
    def total(jets):
        traces.append(1)
        return jets.sum(jets["value"]).sum()

    rng = np.random.default_rng(1)
    for n_events in (150, 170, 200, 240):
        counts = rng.integers(0, 3, n_events)
        array = ak.unflatten(rng.uniform(0, 1, int(counts.sum())), counts)
        assert float(total(Jagged.from_awkward(array))) == pytest.approx(float(ak.sum(array)))
    assert len(traces) == 1
