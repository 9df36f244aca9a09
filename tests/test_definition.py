"""The analysis definition: its hard and soft predicates agree, and ``Cuts`` is a pytree
of the optimised thresholds."""

from __future__ import annotations

import itertools

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from corrax.agc import definition
from corrax.agc.definition import OPTIMISED, Cuts


def test_hard_predicates_work_on_awkward_and_numpy():
    cuts = Cuts(jet_pt=30.0)
    pt = ak.Array([[25.0, 30.0, 31.0], [], [45.0]])
    identified = ak.Array([[True, True, False], [], [True]])
    selected = definition.jet_selected(pt, identified, cuts)
    assert selected.tolist() == [[False, False, False], [], [True]]  # pt > 30, strictly
    flat = definition.jet_selected(np.array([29.0, 31.0]), np.array([True, True]), cuts)
    assert flat.dtype == bool and flat.tolist() == [False, True]


def test_soft_predicates_converge_to_the_hard_ones():
    cuts = Cuts(lepton_pt=30.0)
    pt = jnp.array([20.0, 29.9, 30.1, 50.0])
    identified = jnp.array([1.0, 1.0, 0.0, 1.0])
    hard = definition.lepton_selected(np.asarray(pt), np.asarray(identified) > 0, cuts)
    for width in (1.0, 1e-2, 1e-4):
        soft = definition.lepton_selected(pt, identified, cuts, width)
        assert np.all((soft >= 0) & (soft <= 1))
    np.testing.assert_array_equal(np.asarray(soft) > 0.5, hard)
    np.testing.assert_allclose(soft, hard.astype(float), atol=1e-100)


def _brute_force_regions(leptons, jets, tags):
    """Region masks from counting 0/1 outcomes directly (no definition helpers)."""
    n_l, n_j, n_t = sum(leptons), sum(jets), sum(j and t for j, t in zip(jets, tags, strict=True))
    ok = n_l == 1 and n_j >= 4
    return {"4j1b": ok and n_t == 1, "4j2b": ok and n_t >= 2}


def test_soft_regions_with_certain_outcomes_are_the_hard_regions():
    # every lepton and jet outcome of 2 leptons and 5 jets with tags on 3 of them
    rows = []
    for leptons in itertools.product((0, 1), repeat=2):
        for jets in itertools.product((0, 1), repeat=5):
            for tags in ((0, 0, 0, 0, 0), (1, 0, 0, 0, 0), (1, 1, 0, 0, 0), (0, 0, 1, 1, 1)):
                rows.append((leptons, jets, tags))
    leptons = jnp.array([r[0] for r in rows], dtype=float)
    jets = jnp.array([r[1] for r in rows], dtype=float)
    tags = jnp.array([r[2] for r in rows], dtype=float)
    soft = definition.region_probabilities(leptons, jets, jets * tags)
    hard = definition.region_masks(
        np.asarray(leptons).sum(1), np.asarray(jets).sum(1), np.asarray(jets * tags).sum(1)
    )
    for region in definition.REGIONS:
        expected = [_brute_force_regions(*r)[region] for r in rows]
        np.testing.assert_array_equal(hard[region], expected)
        np.testing.assert_allclose(soft[region], np.array(expected, dtype=float), atol=1e-15)


def test_cuts_is_a_pytree_of_the_optimised_thresholds():
    cuts = Cuts(lepton_eta=2.0)
    leaves, tree = jax.tree_util.tree_flatten(cuts)
    assert leaves == [30.0, 30.0, 0.5] and len(leaves) == len(OPTIMISED)
    rebuilt = jax.tree_util.tree_unflatten(tree, [1.0, 2.0, 3.0])
    assert rebuilt.lepton_eta == 2.0 and rebuilt.optimised() == {
        "lepton_pt": 1.0,
        "jet_pt": 2.0,
        "btag": 3.0,
    }
    gradient = jax.grad(lambda c: c.lepton_pt * 2.0 + c.btag)(cuts)
    assert (float(gradient.lepton_pt), float(gradient.jet_pt), float(gradient.btag)) == (2, 0, 1)
    with pytest.raises(TypeError):
        Cuts(unknown=1.0)


def test_weighted_one_lepton_probability_equals_enumeration():
    """Σ over every outcome of 4 leptons with exactly one selected: P(outcome) × that
    lepton's factor, against ``region_probabilities`` with factors."""
    rng = np.random.default_rng(3)
    p = rng.uniform(size=(6, 4))
    p[0, 1] = 1.0  # a certain lepton
    p[1, :] = 0.0
    factors = rng.uniform(0.8, 1.2, size=(6, 4))
    expected = np.zeros(6)
    for outcome in itertools.product((0, 1), repeat=4):
        if sum(outcome) != 1:
            continue
        chosen = outcome.index(1)
        probability = np.prod(np.where(np.array(outcome) == 1, p, 1 - p), axis=1)
        expected += probability * factors[:, chosen]
    jets = jnp.ones((6, 5))
    tagged = jnp.array([[1.0, 0.0, 0.0, 0.0, 0.0]] * 6)  # 4j1b with certainty
    got = definition.region_probabilities(jnp.asarray(p), jets, tagged, jnp.asarray(factors))
    np.testing.assert_allclose(got["4j1b"], expected, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(got["4j2b"], 0.0)
    unweighted = definition.region_probabilities(jnp.asarray(p), jets, tagged)
    ones = definition.region_probabilities(jnp.asarray(p), jets, tagged, jnp.ones((6, 4)))
    np.testing.assert_allclose(ones["4j1b"], unweighted["4j1b"], rtol=1e-13)


def test_cuts_with_other_fixed_thresholds_are_refused_by_events_prepared_otherwise():
    prepared = Cuts().fixed()
    Cuts(lepton_pt=40.0, btag=0.7).check_fixed(prepared)  # optimised ones may differ
    with pytest.raises(ValueError, match="jet_eta"):
        Cuts(jet_eta=2.0).check_fixed(prepared)
