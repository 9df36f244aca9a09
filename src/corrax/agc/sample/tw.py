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
(Pythia's internal processes do the same). The top decays with Pythia's V−A weight;
the W produced with it decays isotropically in its rest frame (its polarisation is not
carried to its decay products).
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np
import pythia8mc

__all__ = ["CODE", "GbToTW", "add_to", "matrix_element_squared"]

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
        self._sigma = 0.0

    def name(self) -> str:
        return "g b -> t W- (corrax)"

    def code(self) -> int:
        return CODE

    def inFlux(self) -> str:
        return "qg"

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
        quark = self.id2 if self.id1 == 21 else self.id1
        if abs(quark) != 5:
            return 0.0
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
        return 1.0
