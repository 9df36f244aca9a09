"""corrax.soft against independent oracles: brute-force enumeration, numerical
integration, relaxed.hist, hist, numpy's hard cuts and argmax, pyhf."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from corrax import soft

RNG = np.random.default_rng(20261202)


# ---------------------------------------------------------------- cuts


def test_cut_at_width_zero_is_the_hard_cut_and_converges_to_it():
    x = RNG.normal(30.0, 10.0, 2000)
    x[:5] = 30.0  # on the threshold: fails a strict cut
    hard = (x > 30.0).astype(float)
    np.testing.assert_array_equal(soft.cut(x, 30.0, 0), hard)
    np.testing.assert_array_equal(soft.cut(x, 30.0, 0, keep="below"), (x < 30.0) * 1.0)
    off = np.abs(x - 30.0) > 1e-3
    gaps = [np.max(np.abs(soft.cut(x, 30.0, w) - hard)[off]) for w in (1.0, 1e-2, 1e-5)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-30


def test_cut_is_stable_far_from_the_threshold():
    z = np.array([-1e6, -800.0, -40.0, 0.0, 40.0, 800.0, 1e6])
    from scipy.special import expit

    np.testing.assert_allclose(soft.cut(z, 0.0, 1.0), expit(z), rtol=1e-12, atol=1e-300)
    # log σ(z) = −log(1 + e^{−z}), written independently with numpy's logaddexp
    np.testing.assert_allclose(soft.log_cut(z, 0.0, 1.0), -np.logaddexp(0.0, -z), rtol=1e-12)
    gradient = jax.grad(lambda c: soft.log_cut(-1e6, c, 1.0))(0.0)
    assert np.isfinite(gradient) and gradient == pytest.approx(-1.0)


def test_cut_gradient_matches_finite_differences():
    x = jnp.asarray(RNG.normal(30.0, 5.0, 50))

    def passing(threshold):
        return jnp.sum(soft.cut(x, threshold, 2.0))

    h = 1e-5
    numeric = (passing(29.0 + h) - passing(29.0 - h)) / (2 * h)
    assert jax.grad(passing)(29.0) == pytest.approx(float(numeric), rel=1e-7)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="keep"):
        soft.cut(1.0, 0.0, 1.0, keep="left")
    with pytest.raises(ValueError, match="width"):
        soft.cut(1.0, 0.0, -1.0)


# ---------------------------------------------------------------- counting


def _brute_force_counts(p: np.ndarray, max_count: int) -> np.ndarray:
    """Sum over all 2^n outcomes of independent passes."""
    out = np.zeros(max_count + 1)
    for passes in itertools.product((0, 1), repeat=len(p)):
        outcome = np.array(passes)
        probability = np.prod(np.where(outcome == 1, p, 1 - p))
        out[min(int(outcome.sum()), max_count)] += probability
    return out


@pytest.mark.parametrize("n", [1, 3, 8])
def test_count_probabilities_equal_brute_force_enumeration(n):
    p = RNG.uniform(0, 1, (6, n))
    p[0, :] = RNG.integers(0, 2, n)  # hard 0/1 inputs: the indicators
    mask = RNG.uniform(size=(6, n)) > 0.3
    for max_count in (0, 1, 2, n + 1):
        result = np.asarray(soft.count_probabilities(p, max_count, mask))
        expected = [_brute_force_counts(row[m], max_count) for row, m in zip(p, mask, strict=False)]
        np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-15)
    for k in range(n + 1):
        brute = np.array(
            [_brute_force_counts(row[m], n + 1) for row, m in zip(p, mask, strict=False)]
        )
        np.testing.assert_allclose(soft.exactly(p, k, mask), brute[:, k], atol=1e-14)
        np.testing.assert_allclose(soft.at_least(p, k, mask), brute[:, k:].sum(1), atol=1e-14)


def test_joint_counts_equal_brute_force_enumeration():
    n = 6
    first = RNG.uniform(0, 1, (4, n))
    both = first * RNG.uniform(0, 1, (4, n))
    mask = np.ones((4, n), bool)
    mask[1, 4:] = False
    result = np.asarray(soft.joint_count_probabilities(first, both, 4, 2, mask))
    for row in range(4):
        expected = np.zeros((5, 3))
        # each object: 0 = fails A, 1 = passes A only, 2 = passes A and B
        for outcomes in itertools.product((0, 1, 2), repeat=n):
            outcome = np.array(outcomes)
            if np.any(outcome[~mask[row]] != 0):
                continue  # a padding object has the single outcome 0
            step = np.select(
                [outcome == 0, outcome == 1],
                [1 - first[row], first[row] - both[row]],
                both[row],
            )
            probability = np.prod(np.where(mask[row], step, 1.0))
            expected[min((outcome > 0).sum(), 4), min((outcome == 2).sum(), 2)] += probability
        np.testing.assert_allclose(result[row], expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("n", [1, 4, 8])
def test_rank_probabilities_equal_brute_force_enumeration(n):
    p = RNG.uniform(0, 1, (5, n))
    p[0, :] = RNG.integers(0, 2, n)  # hard 0/1 inputs: the i-th passing object itself
    mask = RNG.uniform(size=(5, n)) > 0.25
    max_rank = 4
    result = np.asarray(soft.rank_probabilities(p, max_rank, mask))
    for row in range(5):
        expected = np.zeros((n, max_rank))
        for passes in itertools.product((0, 1), repeat=n):
            outcome = np.array(passes)
            if np.any(outcome[~mask[row]]):
                continue  # padding never passes
            probability = np.prod(np.where(mask[row], np.where(outcome, p[row], 1 - p[row]), 1))
            for rank, j in enumerate(np.flatnonzero(outcome)[:max_rank]):
                expected[j, rank] += probability
        np.testing.assert_allclose(result[row], expected, rtol=1e-12, atol=1e-15)


def test_counts_need_an_object_axis():
    with pytest.raises(ValueError, match="object axis"):
        soft.exactly(0.5, 1)


# ---------------------------------------------------------------- choice


def test_soft_choice_becomes_the_hard_argmax_as_temperature_vanishes():
    candidates = 20
    # distinct scores (≥ 1 apart) and qualities away from the cut (|q| ≥ 0.05)
    scores = np.array([RNG.permutation(candidates) * 5.0 for _ in range(200)])
    quality = RNG.choice([-1, 1], (200, candidates)) * RNG.uniform(0.05, 2.0, (200, candidates))
    values = RNG.uniform(50, 300, (200, candidates))
    # the hard choice, by a plain loop: highest score among the allowed candidates
    expected = []
    for s, q, v in zip(scores, quality, values, strict=False):
        allowed = np.flatnonzero(q > 0)
        expected.append(v[allowed[np.argmax(s[allowed])]] if len(allowed) else 0.0)
    expected = np.array(expected)
    gaps = []
    for factor in (1.0, 1e-2, 1e-6):
        log_prior = soft.log_cut(quality, 0.0, 0.1 * factor)
        chosen = soft.choose(values, scores, 5.0 * factor**0.5, log_prior)
        gaps.append(np.max(np.abs(np.asarray(chosen) - expected)))
    assert gaps[0] > gaps[2] and gaps[2] < 1e-9
    # width 0: −∞ log-priors; no allowed candidate gives 0 (not NaN)
    hard_prior = soft.log_cut(quality, 0.0, 0)
    np.testing.assert_array_equal(soft.choose(values, scores, 1.0, hard_prior, "hard"), expected)
    weights = soft.choice_weights(scores[:3], 1.0, np.full((3, candidates), -np.inf))
    np.testing.assert_array_equal(weights, 0.0)


def test_straight_through_choice_has_the_hard_value_and_the_soft_gradient():
    scores = jnp.asarray(RNG.uniform(0, 10, 12))
    values = jnp.asarray(RNG.uniform(0, 10, 12))
    np.testing.assert_array_equal(
        soft.choose(values, scores, 3.0, mode="straight_through"), values[jnp.argmax(scores)]
    )
    for argnum in (0, 1):
        st = jax.grad(lambda v, s: soft.choose(v, s, 3.0, mode="straight_through"), argnum)
        sm = jax.grad(lambda v, s: soft.choose(v, s, 3.0), argnum)
        np.testing.assert_allclose(st(values, scores), sm(values, scores), rtol=1e-12)
    # hard weights: one-hot of the argmax, NaN values of other candidates do not leak
    poisoned = values.at[0].set(jnp.nan)
    best = int(jnp.argmax(scores.at[0].set(-1.0)))
    assert soft.choose(poisoned, scores.at[0].set(-1.0), 1.0, mode="hard") == values[best]


# ---------------------------------------------------------------- histograms


def test_kde_histogram_equals_numerical_integration_of_the_kernel():
    from scipy import integrate, stats

    values = RNG.uniform(40, 160, 30)
    weights = RNG.uniform(0.5, 2.0, (2, 30))
    edges = np.linspace(50, 150, 6)
    contents, sumw2 = soft.histogram(values, edges, 8.0, weights)
    for flow in ("drop", "absorb"):
        contents, sumw2 = soft.histogram(values, edges, 8.0, weights, flow)
        probability = np.zeros((30, 5))
        for i, x in enumerate(values):
            for b in range(5):
                low = -np.inf if (flow == "absorb" and b == 0) else edges[b]
                high = np.inf if (flow == "absorb" and b == 4) else edges[b + 1]
                probability[i, b] = integrate.quad(stats.norm(x, 8.0).pdf, low, high)[0]
        np.testing.assert_allclose(contents, weights @ probability, rtol=1e-9)
        np.testing.assert_allclose(sumw2, weights**2 @ probability, rtol=1e-9)
    total = soft.histogram(values, edges, 8.0, weights, "absorb")[0].sum(-1)
    np.testing.assert_allclose(total, weights.sum(-1), rtol=1e-12)


def test_kde_histogram_with_unit_weights_equals_relaxed_hist():
    relaxed = pytest.importorskip("relaxed")
    values = jnp.asarray(RNG.normal(100, 30, 500))
    edges = jnp.linspace(50, 150, 11)
    np.testing.assert_allclose(
        soft.histogram(values, edges, 5.0)[0], relaxed.hist(values, edges, 5.0), rtol=1e-10
    )


def test_histogram_at_bandwidth_zero_equals_hist():
    import hist

    values = np.concatenate([RNG.uniform(40, 160, 300), [50.0, 150.0, 70.0]])  # edge values
    weights = RNG.uniform(0.1, 3.0, len(values))
    h = hist.Hist.new.Reg(5, 50, 150).Weight().fill(values, weight=weights)
    contents, sumw2 = soft.histogram(values, np.linspace(50, 150, 6), 0, weights)
    np.testing.assert_allclose(contents, h.values(), rtol=1e-12)
    np.testing.assert_allclose(sumw2, h.variances(), rtol=1e-12)


def test_kde_gradient_in_the_values_matches_finite_differences():
    values = jnp.asarray(RNG.uniform(60, 140, 20))
    edges = jnp.linspace(50, 150, 6)

    def third_bin(shift):
        return soft.histogram(values + shift, edges, 6.0)[0][2]

    h = 1e-4
    numeric = (third_bin(h) - third_bin(-h)) / (2 * h)
    assert jax.grad(third_bin)(0.0) == pytest.approx(float(numeric), rel=1e-6)


# ---------------------------------------------------------------- Cramér–Rao


SIGNAL = np.array([5.0, 12.0, 20.0, 9.0])
BACKGROUND = np.array([50.0, 40.0, 30.0, 25.0])
BACKGROUND_UP = np.array([55.0, 41.0, 33.0, 24.0])
BACKGROUND_DOWN = np.array([46.0, 39.5, 28.0, 25.5])
KAPPA = 1.05


def _evermore_nll(asimov):
    import evermore as evm

    def expected(params):
        mu, lumi, shape = params["mu"], params["lumi"], params["shape"]
        signal = mu.scale().offset_and_scale(jnp.asarray(SIGNAL))
        lumi_effect = lumi.scale_log_symmetric(KAPPA).offset_and_scale(jnp.asarray(BACKGROUND))
        morph = shape.morphing(jnp.asarray(BACKGROUND_UP), jnp.asarray(BACKGROUND_DOWN))
        shape_effect = morph.offset_and_scale(jnp.asarray(BACKGROUND))
        background = lumi_effect.scale * shape_effect.scale * (BACKGROUND + shape_effect.offset)
        return signal.scale * SIGNAL + background

    def nll(params):
        lam = expected(params)
        poisson = evm.pdf.PoissonContinuous(lam).log_prob(asimov).sum()
        constraints = evm.pdf.Normal(mean=0.0, width=1.0).log_prob(
            jnp.stack([params["lumi"][...], params["shape"][...]])
        )
        return -(poisson + constraints.sum())

    return nll


def test_cramer_rao_uncertainty_equals_pyhf():
    evm = pytest.importorskip("evermore")
    pyhf = pytest.importorskip("pyhf")

    spec = {
        "channels": [
            {
                "name": "sr",
                "samples": [
                    {
                        "name": "signal",
                        "data": SIGNAL.tolist(),
                        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                    },
                    {
                        "name": "background",
                        "data": BACKGROUND.tolist(),
                        "modifiers": [
                            {
                                "name": "lumi",
                                "type": "normsys",
                                "data": {"hi": KAPPA, "lo": 1 / KAPPA},
                            },
                            {
                                "name": "shape",
                                "type": "histosys",
                                "data": {
                                    "hi_data": BACKGROUND_UP.tolist(),
                                    "lo_data": BACKGROUND_DOWN.tolist(),
                                },
                            },
                        ],
                    },
                ],
            }
        ]
    }
    previous = pyhf.get_backend()
    try:
        pyhf.set_backend("jax")
        model = pyhf.Model(
            spec,
            poi_name="mu",
            modifier_settings={
                "normsys": {"interpcode": "code1"},
                "histosys": {"interpcode": "code4p"},
            },
        )
        init = jnp.asarray(model.config.suggested_init())
        data = jnp.asarray(model.expected_data(init))
        hessian = jax.jit(jax.hessian(lambda p: -model.logpdf(p, data)[0]))(init)
        sigma = np.sqrt(np.diag(np.linalg.inv(np.asarray(hessian))))
        order = {name: model.config.par_slice(name).start for name in ("mu", "lumi", "shape")}
    finally:
        pyhf.set_backend(*previous)

    asimov = SIGNAL + BACKGROUND
    params = {
        "mu": evm.Parameter(1.0),
        "lumi": evm.NormalParameter(0.0),
        "shape": evm.NormalParameter(0.0),
    }
    ours = jax.jit(soft.cramer_rao_uncertainty, static_argnums=0)(_evermore_nll(asimov), params)
    for name, index in order.items():
        assert float(ours[name][...]) == pytest.approx(sigma[index], rel=1e-9)
