"""The g b → tW process (corrax.agc.sample.tw) against its helicity amplitudes summed
one by one, and Pythia's events from it against the kinematics and the top's V−A decay.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pythia8mc = pytest.importorskip("pythia8mc")

from corrax.agc.sample import tw

TOP, W = 172.5, 80.385
METRIC = np.diag([1.0, -1.0, -1.0, -1.0])
SIGMA = (
    np.array([[0, 1], [1, 0]], complex),
    np.array([[0, -1j], [1j, 0]]),
    np.array([[1, 0], [0, -1]], complex),
)
# Dirac matrices, Dirac representation
GAMMA = np.array(
    [np.block([[np.eye(2), np.zeros((2, 2))], [np.zeros((2, 2)), -np.eye(2)]])]
    + [np.block([[np.zeros((2, 2)), s], [-s, np.zeros((2, 2))]]) for s in SIGMA]
)
LEFT = (np.eye(4) - 1j * GAMMA[0] @ GAMMA[1] @ GAMMA[2] @ GAMMA[3]) / 2


def slash(p):
    return np.einsum("m,mab->ab", METRIC @ p, GAMMA)


def spinors(p, mass):
    """u(p, s) for the two spin states along z (Dirac representation)."""
    sigma_p = sum(s * x for s, x in zip(SIGMA, p[1:], strict=True))
    out = []
    for chi in (np.array([1, 0], complex), np.array([0, 1], complex)):
        out.append(np.sqrt(p[0] + mass) * np.concatenate([chi, sigma_p @ chi / (p[0] + mass)]))
    return out


def transverse(p):
    """Two real polarisation vectors orthogonal to p's direction."""
    axis = p[1:] / np.linalg.norm(p[1:])
    first = np.cross(axis, [0.0, 1.0, 0.0] if abs(axis[1]) < 0.9 else [1.0, 0.0, 0.0])
    first /= np.linalg.norm(first)
    second = np.cross(axis, first)
    return [np.concatenate([[0.0], v]) for v in (first, second)]


def kinematics(s, cos_theta):
    """b (+z) g (−z) → t W⁻ in the centre-of-mass frame; returns p_b, p_g, p_W, p_t."""
    root = np.sqrt(s)
    energy = (s + TOP**2 - W**2) / (2 * root)
    p = np.sqrt(energy**2 - TOP**2)
    sin_theta = np.sqrt(1 - cos_theta**2)
    b = np.array([root / 2, 0, 0, root / 2])
    g = np.array([root / 2, 0, 0, -root / 2])
    t = np.array([energy, p * sin_theta, 0, p * cos_theta])
    return b, g, b + g - t, t


def currents(b, g, w, t):
    """Γ^{μν} between ū(t) and u(b): the b absorbs the gluon (ν) then emits the W (μ),
    or emits the W and the top absorbs the gluon; the W vertex's left projector."""
    q, r = b + g, t - g
    absorb_first = np.einsum("mab,bc,ncd->mnad", GAMMA, slash(q), GAMMA) / (q @ METRIC @ q)
    emit_first = np.einsum("nab,bc,mcd->mnad", GAMMA, slash(r) + TOP * np.eye(4), GAMMA) / (
        r @ METRIC @ r - TOP**2
    )
    return absorb_first @ LEFT, emit_first @ LEFT


def amplitude(current, u_t, u_b, eps_w, eps_g):
    bar = u_t.conj() @ GAMMA[0]
    return np.einsum("a,mnab,b,m,n->", bar, current, u_b, METRIC @ eps_w.conj(), METRIC @ eps_g)


def w_polarisations(w):
    axis = w[1:] / np.linalg.norm(w[1:])
    longitudinal = np.concatenate([[np.linalg.norm(w[1:])], w[0] * axis]) / W
    return [*transverse(w), longitudinal]


@pytest.mark.parametrize(("sqrt_s", "cos_theta"), [(260.0, 0.3), (400.0, -0.8), (1500.0, 0.95)])
def test_matrix_element_is_the_sum_of_helicity_amplitudes(sqrt_s, cos_theta):
    s = sqrt_s**2
    b, g, w, t = kinematics(s, cos_theta)
    current = sum(currents(b, g, w, t))
    total = 0.0
    for u_t, u_b, eps_w, eps_g in itertools.product(
        spinors(t, TOP), spinors(b, 0.0), w_polarisations(w), transverse(g)
    ):
        total += abs(amplitude(current, u_t, u_b, eps_w, eps_g)) ** 2
    t_gluon_top = (g - t) @ METRIC @ (g - t)
    assert tw.matrix_element_squared(s, t_gluon_top, TOP, W) == pytest.approx(total, rel=1e-9)


def test_the_two_diagrams_are_gauge_invariant_together_only():
    """With the gluon's polarisation replaced by its momentum the sum vanishes (which
    fixes the diagrams' relative sign the matrix element relies on)."""
    b, g, w, t = kinematics(500.0**2, 0.4)
    first, second = currents(b, g, w, t)
    u_t, u_b, eps_w = spinors(t, TOP)[0], spinors(b, 0.0)[1], w_polarisations(w)[2]
    alone = abs(amplitude(first, u_t, u_b, eps_w, g))
    assert alone > 1e-3
    assert abs(amplitude(first + second, u_t, u_b, eps_w, g)) < 1e-9 * alone


def _hard_process_events(settings, events):
    pythia = pythia8mc.Pythia("", False)
    tw.add_to(pythia)
    for line in (
        "Beams:eCM = 13000.",
        "PartonLevel:all = off",
        "HadronLevel:all = off",
        "Print:quiet = on",
        "Next:numberCount = 0",
        "Random:setSeed = on",
        "Random:seed = 5",
        *settings,
    ):
        pythia.readString(line)
    assert pythia.init()
    for _ in range(events):
        assert pythia.next()
        yield pythia.process


def _four(particle):
    return np.array([particle.e(), particle.px(), particle.py(), particle.pz()])


def _in_rest_frame(p, frame):
    beta = frame[1:] / frame[0]
    gamma = 1 / np.sqrt(1 - beta @ beta)
    along = beta @ p[1:]
    space = p[1:] + ((gamma - 1) * along / (beta @ beta) - gamma * p[0]) * beta
    return np.concatenate([[gamma * (p[0] - along)], space])


def test_pythia_events_both_charges_threshold_and_v_minus_a_top_decay():
    """Events from the process: t W⁻ and t̄ W⁺ equally often (b and b̄ have one PDF),
    the tW mass above m_t + m_W, and the top's W helicity: the charged lepton's angle
    to the W direction (W rest frame) has ⟨cos θ*⟩ = −F_L/2, F_L = 2m_W²/(m_t² + 2m_W²)
    at leading order. The W produced with the top is polarised: its charged lepton's
    angle to the W's flight direction has a mean away from 0, the same for both
    charges (CP)."""
    tops, masses, cosines, associated = [], [], [], []
    for record in _hard_process_events(("24:onMode = off", "24:onIfAny = 11 13"), 3000):
        top = next(p for p in record if p.idAbs() == 6 and p.status() == -22)
        boson = next(p for p in record if p.idAbs() == 24 and p.mother1() == top.mother1())
        tops.append(np.sign(top.id()))
        masses.append((_four(top) + _four(boson)) @ METRIC @ (_four(top) + _four(boson)))
        w = next(record[i] for i in (top.daughter1(), top.daughter2()) if record[i].idAbs() == 24)
        lepton = next(
            record[i] for i in (w.daughter1(), w.daughter2()) if record[i].idAbs() in (11, 13)
        )
        in_w_top = _in_rest_frame(_four(top), _four(w))[1:]
        in_w_lepton = _in_rest_frame(_four(lepton), _four(w))[1:]
        cosines.append(
            -in_w_top @ in_w_lepton / np.linalg.norm(in_w_top) / np.linalg.norm(in_w_lepton)
        )
        lepton = next(
            record[i]
            for i in (boson.daughter1(), boson.daughter2())
            if record[i].idAbs() in (11, 13)
        )
        in_boson = _in_rest_frame(_four(lepton), _four(boson))[1:]
        flight = _four(boson)[1:]
        associated.append(in_boson @ flight / np.linalg.norm(in_boson) / np.linalg.norm(flight))
    tops = np.array(tops)
    n = len(tops)
    assert abs((tops > 0).mean() - 0.5) < 3 * 0.5 / np.sqrt(n)
    # the generated masses include the t and W widths: a few widths below threshold
    assert np.quantile(np.sqrt(masses), 0.01) > TOP + W - 10
    f_left = 2 * W**2 / (TOP**2 + 2 * W**2)
    cosines = np.array(cosines)
    assert abs(cosines.mean() + f_left / 2) < 3 * cosines.std() / np.sqrt(n)
    associated = np.array(associated)
    means, errors = [], []
    for charge in (1, -1):
        values = associated[tops == charge]
        means.append(values.mean())
        errors.append(values.std() / np.sqrt(len(values)))
    assert min(means) > 3 * max(errors)  # isotropic decays would give 0
    assert abs(means[0] - means[1]) < 3 * np.hypot(*errors)


def antispinors(p):
    """v(p, s) of a massless antifermion for the two spin states (Dirac representation)."""
    sigma_p = sum(s * x for s, x in zip(SIGMA, p[1:], strict=True))
    return [
        np.sqrt(p[0]) * np.concatenate([sigma_p @ eta / p[0], eta])
        for eta in (np.array([1, 0], complex), np.array([0, 1], complex))
    ]


def _w_polarisations_of(w):
    mass = np.sqrt(w @ METRIC @ w)
    axis = w[1:] / np.linalg.norm(w[1:])
    longitudinal = np.concatenate([[np.linalg.norm(w[1:])], w[0] * axis]) / mass
    return [*transverse(w), longitudinal]


def _decay_in_w_frame(w, cos_theta, phi):
    """A massless f f̄′ pair of total momentum ``w``, the fermion at (θ, φ) in the W's
    rest frame (z along the lab axes)."""
    mass = np.sqrt(w @ METRIC @ w)
    direction = np.array(
        [
            np.sqrt(1 - cos_theta**2) * np.cos(phi),
            np.sqrt(1 - cos_theta**2) * np.sin(phi),
            cos_theta,
        ]
    )
    rest = [np.concatenate([[mass / 2], sign * mass / 2 * direction]) for sign in (1, -1)]
    beta = w[1:] / w[0]
    gamma = w[0] / mass

    def boost(p):
        along = beta @ p[1:]
        space = p[1:] + ((gamma - 1) * along / (beta @ beta) + gamma * p[0]) * beta
        return np.concatenate([[gamma * (p[0] + along)], space])

    return boost(rest[0]), boost(rest[1])


@pytest.mark.parametrize(("cos_theta", "phi"), [(0.7, 0.4), (-0.9, 2.5), (0.1, -1.2)])
def test_w_decay_weight_is_the_full_amplitude_summed_one_by_one(cos_theta, phi):
    """The decay weight against b g → t (W⁻ → e⁻ ν̄) from its helicity amplitudes:
    Σ|Σ_λ (M·ε_λ*)(D·ε_λ)|² over the production |M|² times the decay's Σ|D|²/3."""
    b, g, w, t = kinematics(450.0**2, 0.35)
    lepton, neutrino = _decay_in_w_frame(w, cos_theta, phi)
    current = sum(currents(b, g, w, t))
    polarisations = _w_polarisations_of(w)
    full = production = decay = 0.0
    for u_t, u_b, eps_g in itertools.product(spinors(t, TOP), spinors(b, 0.0), transverse(g)):
        produced = [amplitude(current, u_t, u_b, eps, eps_g) for eps in polarisations]
        production += sum(abs(m) ** 2 for m in produced)
        for u_l, v_n in itertools.product(spinors(lepton, 0.0), antispinors(neutrino)):
            decays = [
                u_l.conj() @ GAMMA[0] @ np.einsum("m,mab->ab", METRIC @ eps, GAMMA) @ LEFT @ v_n
                for eps in polarisations
            ]
            full += abs(sum(m * d for m, d in zip(produced, decays, strict=True))) ** 2
    for u_l, v_n in itertools.product(spinors(lepton, 0.0), antispinors(neutrino)):
        for eps in polarisations:
            d = u_l.conj() @ GAMMA[0] @ np.einsum("m,mab->ab", METRIC @ eps, GAMMA) @ LEFT @ v_n
            decay += abs(d) ** 2
    # production summed over the two b spins and t spins once per lepton spin state
    expected = full / (production * decay / 3)
    assert tw.decay_weight(b, g, t, lepton, neutrino, TOP) == pytest.approx(expected, rel=1e-9)


def test_w_decay_weight_averages_to_one_and_stays_below_three():
    b, g, w, t = kinematics(700.0**2, -0.5)
    rng = np.random.default_rng(3)
    weights = []
    for cos_theta, phi in zip(
        rng.uniform(-1, 1, 1500), rng.uniform(0, 2 * np.pi, 1500), strict=True
    ):
        lepton, neutrino = _decay_in_w_frame(w, cos_theta, phi)
        weights.append(tw.decay_weight(b, g, t, lepton, neutrino, TOP))
    weights = np.array(weights)
    assert weights.min() >= 0 and weights.max() <= 3
    assert abs(weights.mean() - 1) < 3 * weights.std() / np.sqrt(len(weights))
    assert weights.std() > 0.1  # the W is polarised
