"""g b → t W⁻ (and its conjugate) at leading order, as a Pythia 8 semi-internal process.

Pythia 8 has no tW process; this one is written by hand from the two tree diagrams (the
b quark absorbs the gluon, then emits the W; or emits the W, and the top absorbs the
gluon), with a massless b quark, |V_tb| = 1, Pythia's running αs and αem at the hard
scale and its sin²θ_W. Summed over spins, polarisations and colours, averaged over the
initial ones (``matrix_element_squared``):

    Σ̄|M|² = g² g_s² / 48 · A(s, t),  g² = 4π αem / sin²θ_W,  g_s² = 4π αs,

    A = (m_t² + 2m_W²)/m_W² · [−2x/s − 2((s + m_t² − m_W²)² + (m_t² − m_W²)²)/(s x)
        − 4m_t²(m_t² − m_W²)/x² − 4(m_t² − m_W²)/s] − 4m_t²/m_W²,

with s the partonic centre-of-mass energy squared, t = (p_g − p_t)² and x = t − m_t²
(the top propagator). The tests check A against the helicity amplitudes summed one by
one. dσ̂/dt = Σ̄|M|²/(16π s²), times the fraction of the t and W decays left open
(Pythia's internal processes do the same).

Decays: the top decays with Pythia's V−A weight (``weightTopDecay``). The W produced
with it keeps its polarisation: its decay angles are accepted with the probability
``decay_weight / 3``, the ratio of the full |M|² of b g → t (W⁻ → f f̄′) to the
production |M|² times the W's unpolarised decay (at most 3, a spin-1 particle's decay
distribution over its average). Both are contractions of the production tensor
H^{μμ'} = Σ M^μ M^{μ'}* (spins and gluon polarisations summed, traces of Dirac
matrices) with the W's propagator numerator and the decay's lepton tensor. The
conjugate process, b̄ g → t̄ W⁺, is its CP mirror: the same weight at parity-flipped
momenta with the W⁺'s antifermion in the fermion's place.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np
import pythia8mc

__all__ = [
    "CODE",
    "GbToTW",
    "add_to",
    "decay_weight",
    "matrix_element_squared",
    "production_tensor",
]

CODE = 9901  # Pythia process code: user processes take codes above Pythia's own


def matrix_element_squared(s: Any, t: Any, top_mass: Any, w_mass: Any) -> Any:
    """A(s, t) of the module docstring (dimensionless; broadcasts over arrays).

    ``s``, ``t``: GeV²; ``top_mass``, ``w_mass``: GeV.
    """
    a = np.square(top_mass)
    b = np.square(w_mass)
    x = np.asarray(t) - a
    bracket = (
        -2.0 * x / s
        - 2.0 * (np.square(s + a - b) + np.square(a - b)) / (s * x)
        - 4.0 * a * (a - b) / np.square(x)
        - 4.0 * (a - b) / s
    )
    return (a + 2.0 * b) / b * bracket - 4.0 * a / b


# Dirac matrices γ^μ (Dirac representation), the metric, the left-handed projector
_PAULI = (
    np.array([[0, 1], [1, 0]], complex),
    np.array([[0, -1j], [1j, 0]]),
    np.array([[1, 0], [0, -1]], complex),
)
_ZERO2 = np.zeros((2, 2))
_GAMMA = np.array(
    [np.block([[np.eye(2), _ZERO2], [_ZERO2, -np.eye(2)]])]
    + [np.block([[_ZERO2, s], [-s, _ZERO2]]) for s in _PAULI]
)
_METRIC = np.diag([1.0, -1.0, -1.0, -1.0])
_LEFT = (np.eye(4) - 1j * _GAMMA[0] @ _GAMMA[1] @ _GAMMA[2] @ _GAMMA[3]) / 2


def _slash(p: np.ndarray) -> np.ndarray:
    return np.einsum("m,mab->ab", _METRIC @ p, _GAMMA)


def _bar(matrices: np.ndarray) -> np.ndarray:
    """γ⁰ Γ† γ⁰ of each Dirac matrix Γ in ``[..., 4, 4]``."""
    return _GAMMA[0] @ np.conj(np.swapaxes(matrices, -1, -2)) @ _GAMMA[0]


_W_VERTEX = _GAMMA @ _LEFT  # γ^α P_L: the W's vertex on a fermion line
_W_VERTEX_BAR = _bar(_W_VERTEX)


def production_tensor(b: np.ndarray, g: np.ndarray, top: np.ndarray, top_mass: float):
    """H^{μμ'} of b(b) g(g) → t(top) W⁻ (four-momenta ``(E, px, py, pz)``, GeV): the
    amplitude's W-index product summed over spins and the gluon's polarisations
    (−g_{νν'}); ``[4, 4]`` complex, up to the couplings."""
    q, r = b + g, top - g
    absorb_first = np.einsum("mab,bc,ncd->mnad", _GAMMA, _slash(q), _GAMMA) / (q @ _METRIC @ q)
    emit_first = np.einsum("nab,bc,mcd->mnad", _GAMMA, _slash(r) + top_mass * np.eye(4), _GAMMA) / (
        r @ _METRIC @ r - top_mass**2
    )
    current = (absorb_first + emit_first) @ _LEFT  # [μ (W), ν (gluon), 4, 4]
    top_sum = _slash(top) + top_mass * np.eye(4)
    return np.einsum(
        "nN,ab,mnbc,cd,MNda->mM",
        -_METRIC,
        top_sum,
        current,
        _slash(b),
        _bar(current),
        optimize=True,
    )


def decay_weight(
    b: np.ndarray,
    g: np.ndarray,
    top: np.ndarray,
    fermion: np.ndarray,
    antifermion: np.ndarray,
    top_mass: float,
) -> float:
    """|M|² of b g → t (W⁻ → f f̄′) over the production |M|² times the W's
    unpolarised decay (see the module docstring); in [0, 3]."""
    return _weight(production_tensor(b, g, top, top_mass), fermion, antifermion)


def _weight(hadron: np.ndarray, fermion: np.ndarray, antifermion: np.ndarray) -> float:
    w = fermion + antifermion
    numerator = -_METRIC + np.outer(_METRIC @ w, _METRIC @ w) / (w @ _METRIC @ w)  # P_{μα}
    lepton = np.einsum(
        "ab,xbc,cd,Xda->xX", _slash(fermion), _W_VERTEX, _slash(antifermion), _W_VERTEX_BAR
    )
    full = np.einsum("mM,ma,MA,aA->", hadron, numerator, numerator, lepton).real
    unpolarised = (
        np.einsum("mM,mM->", hadron, numerator).real * np.einsum("aA,aA->", lepton, numerator).real
    )
    return float(3.0 * full / unpolarised)


# Pythia calls the process's Python methods: it must live as long as its Pythia
_REGISTERED: weakref.WeakKeyDictionary[Any, GbToTW] = weakref.WeakKeyDictionary()


def add_to(pythia: Any) -> None:
    """Register g b → tW with ``pythia`` (a ``pythia8mc.Pythia``, before ``init``)."""
    process = GbToTW(weakref.proxy(pythia))
    pythia.setSigmaPtr(process)
    _REGISTERED[pythia] = process


class GbToTW(pythia8mc.Sigma2Process):
    """b g → t W⁻ and b̄ g → t̄ W⁺ (``add_to`` registers it with a Pythia).

    ``pythia``: the Pythia it is registered with (a weak proxy: its settings and
    particle data are read at initialisation and for the decays' open fractions).
    """

    def __init__(self, pythia: Any):
        super().__init__()
        self._pythia = pythia
        self._open: dict[int, float] = {}
        self._hadron: tuple[Any, Any] = (None, None)

    def name(self) -> str:
        return "g b -> t W- (corrax)"

    def code(self) -> int:
        return CODE

    def inFlux(self) -> str:
        return "qg"

    def initFlux(self) -> bool:
        # only b g and b̄ g pairs: Pythia's "qg" flux would ask sigmaHat for every quark
        for add in (self.addBeamA, self.addBeamB):
            for parton in (21, 5, -5):
                add(parton)
        for quark in (5, -5):
            self.addPair(21, quark)
            self.addPair(quark, 21)
        return True

    def id3Mass(self) -> int:
        return 6

    def id4Mass(self) -> int:
        return 24

    def initProc(self) -> None:
        self._sin2_theta_w = self._pythia.settings.parm("StandardModel:sin2thetaW")

    def sigmaKin(self) -> None:
        # t = (p_g − p_t)²: Pythia's tH when the gluon is the first incoming parton
        self._prefactor = (
            (4.0 * math.pi * self.alpEM / self._sin2_theta_w)
            * (4.0 * math.pi * self.alpS)
            / 48.0
            / (16.0 * math.pi * self.sH2)
        )
        self._gluon_first = float(matrix_element_squared(self.sH, self.tH, self.m3, self.m4))
        self._gluon_second = float(matrix_element_squared(self.sH, self.uH, self.m3, self.m4))

    def sigmaHat(self) -> float:
        quark = self.id2 if self.id1 == 21 else self.id1  # a b or b̄ (``initFlux``)
        value = self._gluon_first if self.id1 == 21 else self._gluon_second
        return self._prefactor * value * self._open_fraction(quark)

    def _open_fraction(self, quark: int) -> float:
        if quark not in self._open:
            sign = 1 if quark > 0 else -1
            self._open[quark] = self._pythia.particleData.resOpenFrac(6 * sign, -24 * sign, 0)
        return self._open[quark]

    def setIdColAcol(self) -> None:
        quark = self.id2 if self.id1 == 21 else self.id1
        sign = 1 if quark > 0 else -1
        self.setId(self.id1, self.id2, 6 * sign, -24 * sign)
        # the b's colour line ends on the gluon; the gluon's colour goes to the top
        if self.id1 == 21:
            self.setColAcol(1, 2, 2, 0, 1, 0, 0, 0)
        else:
            self.setColAcol(1, 0, 2, 1, 2, 0, 0, 0)
        if quark < 0:
            self.swapColAcol()

    def weightDecay(self, process: Any, begin: int, end: int) -> float:
        if process[process[begin].mother1()].idAbs() == 6:
            return self.weightTopDecay(process, begin, end)
        # the hard process's decays (t and W at once): the W's polarisation
        top = next((i for i in range(begin, end + 1) if process[i].idAbs() == 6), None)
        boson = next((i for i in range(begin, end + 1) if process[i].idAbs() == 24), None)
        if top is None or boson is None:
            return 1.0
        first, second = process[boson].daughter1(), process[boson].daughter2()
        if second - first != 1:
            return 1.0
        quark = 3 if process[3].idAbs() == 5 else 4
        gluon = 7 - quark
        conjugate = process[quark].id() < 0
        # the fermion of W⁻ → f f̄′; for W⁺ (the CP mirror) its antifermion
        fermion, antifermion = (first, second) if process[first].id() > 0 else (second, first)
        if conjugate:
            fermion, antifermion = antifermion, fermion
        parity = np.array([1.0, -1.0, -1.0, -1.0]) if conjugate else np.ones(4)

        def momentum(i: int) -> np.ndarray:
            p = process[i]
            return parity * np.array([p.e(), p.px(), p.py(), p.pz()])

        # Pythia draws the decay again until accepted: one production tensor per event
        key = (momentum(quark).tobytes(), momentum(top).tobytes())
        if self._hadron[0] != key:
            hadron = production_tensor(
                momentum(quark), momentum(gluon), momentum(top), process[top].m()
            )
            self._hadron = (key, hadron)
        return _weight(self._hadron[1], momentum(fermion), momentum(antifermion)) / 3.0
