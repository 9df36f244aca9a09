"""Systematics: nuisance-parameter interpolation, Jacobian uncertainty propagation, and
gradients through HashPRNG smearing (the reparameterisation trick)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import AGC_CORRECTIONS, CORRECTIONS_DIR, require_shared
from documents import REAL, STRING, category, document, formula, variables
from jax.flatten_util import ravel_pytree
from jax.test_util import check_grads
from oracle import oracle_set

import corrax

MUON = CORRECTIONS_DIR / "MUO__2018_UL__muon_Z.json.gz"
MUON_SF = "NUM_TightID_DEN_TrackerMuons"


@pytest.fixture(name="muon")
def muon_fixture():
    return corrax.CorrectionSet.from_file(require_shared(MUON))[MUON_SF]


ETA = jnp.array([0.3, 1.0, 1.5, 2.2, 0.8])
PT = jnp.array([22.0, 35.0, 45.0, 70.0, 150.0])


@pytest.mark.parametrize("interpolation", ["linear", "exponential"])
def test_nuisance_hits_the_branches_and_is_differentiable(muon, interpolation):
    nuisance = muon.nuisance("ValType", interpolation=interpolation)
    assert (nuisance.nominal, nuisance.up, nuisance.down) == ("sf", "systup", "systdown")
    reference = oracle_set(MUON)[MUON_SF]
    for theta, key in [(0.0, "sf"), (1.0, "systup"), (-1.0, "systdown")]:
        want = reference.evaluate("2018_UL", np.asarray(ETA), np.asarray(PT), key)
        np.testing.assert_allclose(nuisance.evaluate(theta, "2018_UL", ETA, PT), want, rtol=1e-15)
    thetas = jnp.array([-1.7, -0.4, 0.3, 1.2])
    check_grads(
        lambda t: nuisance.evaluate(t, "2018_UL", ETA[0], PT[0]),
        (thetas,),
        order=1,
        eps=1e-5,
        rtol=1e-6,
    )
    batched = jax.jit(jax.vmap(lambda t: nuisance.evaluate(t, "2018_UL", ETA, PT).sum()))(thetas)
    one_by_one = [float(nuisance.evaluate(t, "2018_UL", ETA, PT).sum()) for t in thetas]
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-14)


def test_linear_nuisance_is_piecewise_linear():
    doc = document(
        category(
            "s",
            {
                "nom": formula("x", ["x"]),
                "up": formula("2*x", ["x"]),
                "down": formula("0.25*x", ["x"]),
            },
        ),
        variables(("s", STRING), ("x", REAL)),
    )
    nuisance = corrax.CorrectionSet(doc)["c"].nuisance("s")
    np.testing.assert_allclose(
        nuisance.evaluate(jnp.array([-2.0, -0.5, 0.5, 2.0]), 4.0),
        [4 - 2 * 3, 4 - 0.5 * 3, 4 + 0.5 * 4, 4 + 2 * 4],
    )
    exponential = corrax.CorrectionSet(doc)["c"].nuisance("s", interpolation="exponential")
    np.testing.assert_allclose(exponential.evaluate(0.5, 4.0), 4 * np.sqrt(2.0))


def test_nuisance_for_the_agc_btag_family_with_a_constant_nominal():
    cset = corrax.CorrectionSet.from_file(require_shared(AGC_CORRECTIONS))
    btag = cset["event_systematics"].nuisance("direction", nominal=1.0)
    pt = jnp.array([40.0, 80.0])
    np.testing.assert_allclose(btag.evaluate(1.0, "btag_var", pt), 1 + 0.075 * pt / 50)
    np.testing.assert_allclose(btag.evaluate(-1.0, "btag_var", pt), 1 - 0.075 * pt / 50)
    np.testing.assert_allclose(btag.evaluate(0.0, "btag_var", pt), 1.0)


def test_nuisance_errors_name_what_is_missing():
    doc = document(category("s", {"a": 1.0}), variables(("s", STRING), ("x", REAL)))
    corr = corrax.CorrectionSet(doc)["c"]
    with pytest.raises(corrax.InvalidArgumentError, match="no up/down pair"):
        corr.nuisance("s")
    with pytest.raises(corrax.InvalidInputError, match="not one of its string inputs"):
        corr.nuisance("x")


def _total_uncertainty(muon):
    """Per-bin sigma, flat like the scale factors' numbers: systup = sf + hypot(syst, stat)."""
    syst, stat = muon.bind("2018_UL", "syst"), muon.bind("2018_UL", "stat")
    return jnp.hypot(ravel_pytree(syst)[0], ravel_pytree(stat)[0])


def test_jacobian_propagation_agrees_with_the_up_down_shift_for_a_linear_yield(muon):
    nominal, syst = muon.bind("2018_UL", "sf"), _total_uncertainty(muon)
    weights = jnp.array([1.0, 2.0, 0.5, 1.5, 3.0])

    def weighted_yield(sf):  # linear in the scale factors
        return jnp.sum(weights * sf.evaluate(ETA, PT))

    shifted = jnp.sum(weights * muon.evaluate("2018_UL", ETA, PT, "systup"))
    shift = shifted - weighted_yield(nominal)
    full = corrax.propagate(weighted_yield, nominal, syst, correlation="full")
    np.testing.assert_allclose(jnp.sqrt(full), abs(shift), rtol=1e-12)
    independent = corrax.propagate(weighted_yield, nominal, syst, correlation="none")
    # uncorrelated bins add in quadrature: never more than the coherent shift
    assert 0 < float(independent) <= float(full) * (1 + 1e-12)


def test_jacobian_propagation_of_a_nonlinear_output_is_first_order(muon):
    nominal, syst = muon.bind("2018_UL", "sf"), _total_uncertainty(muon)

    def two_muon_weight(sf):  # product of two scale factors: not linear
        values = sf.evaluate(ETA[:2], PT[:2])
        return values[0] * values[1]

    shift = muon.evaluate("2018_UL", ETA[:2], PT[:2], "systup").prod() - two_muon_weight(nominal)
    first_order = jnp.sqrt(corrax.propagate(two_muon_weight, nominal, syst, correlation="full"))
    # the difference is the second-order term sigma_1 * sigma_2, tiny against the shift
    sigma = jnp.hypot(
        muon.evaluate("2018_UL", ETA[:2], PT[:2], "syst"),
        muon.evaluate("2018_UL", ETA[:2], PT[:2], "stat"),
    )
    np.testing.assert_allclose(abs(shift) - first_order, sigma.prod(), rtol=1e-6)
    assert sigma.prod() < 1e-3 * abs(shift)


def test_histogram_covariance_equals_the_sum_of_independent_shifts(muon):
    """Independent bins: Cov = sum over numbers i of (h(x + σ_i e_i) - h(x))², outer
    product, for a histogram linear in the numbers (each shift computed by evaluating)."""
    nominal, syst = muon.bind("2018_UL", "sf"), _total_uncertainty(muon)

    def histogram(sf):
        values = sf.evaluate(ETA, PT)
        return jnp.stack([values[:2].sum(), values[2:].sum()])

    covariance = corrax.propagate(histogram, nominal, syst)
    flat, unravel = ravel_pytree(nominal)
    base = histogram(nominal)
    expected = np.zeros((2, 2))
    # shift the contents (edges carry a "σ" too, but a histogram has no derivative there)
    is_content = np.concatenate(
        [
            np.full(np.size(leaf), "edges" not in name)
            for name, leaf in nominal.leaves_by_name().items()
        ]
    )
    for i in np.flatnonzero(is_content & np.isfinite(syst) & (syst != 0)):
        shifted = flat.at[i].add(syst[i])
        delta = np.asarray(histogram(unravel(shifted)) - base)
        expected += np.outer(delta, delta)
    np.testing.assert_allclose(covariance, expected, rtol=1e-9, atol=1e-15)


def test_hashprng_smearing_differentiates_through_sigma_and_sf_not_the_random_number():
    path = require_shared(CORRECTIONS_DIR / "JME__jer_smear__from_OSU-CMS_DisappTrks_v2.json.gz")
    smear = corrax.CorrectionSet.from_file(path)["JERSmear"]
    pt, eta, rho, event = jnp.array([50.0, 120.0]), jnp.array([0.4, -1.9]), 20.0, jnp.array([7, 9])
    jer, jersf = jnp.array([0.1, 0.08]), jnp.array([1.15, 1.1])
    genpt = jnp.array([-1.0, -1.0])  # no generator match: stochastic smearing
    factor = smear.evaluate(pt, eta, genpt, rho, event, jer, jersf)
    z = (factor - 1) / (jnp.sqrt(jersf**2 - 1) * jer)  # the normal deviate, recovered
    # the seed does not involve JER or JERSF: finite differences see a fixed z
    grad_sf = jax.grad(lambda s: smear.evaluate(pt, eta, genpt, rho, event, jer, s).sum())(jersf)
    np.testing.assert_allclose(grad_sf, jersf / jnp.sqrt(jersf**2 - 1) * jer * z, rtol=1e-10)
    check_grads(
        lambda j: smear.evaluate(pt, eta, genpt, rho, event, j, jersf),
        (jer,),
        order=2,
        eps=1e-6,
        rtol=1e-5,
    )
    # pt seeds z: its gradient is the reparameterisation-trick one, with z held fixed
    grad_pt = jax.grad(lambda p: (p * smear.evaluate(p, eta, genpt, rho, event, jer, jersf)).sum())
    np.testing.assert_allclose(grad_pt(pt), factor, rtol=1e-12)
