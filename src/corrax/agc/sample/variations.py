"""Weights of the alternative samples on the nominal events (``samples.WEIGHT_VARIATIONS``).

Shower variations are Pythia's ``UncertaintyBands`` weights. The hard process's are
ratios evaluated here with Pythia's own PDFs and αs (Pythia has no reweighting of its
internal processes): for an event with partons id₁, id₂ at momentum fractions x₁, x₂,
factorisation scale Q_F² and renormalisation scale Q_R²,

    w = f′(id₁, x₁, k²Q_F²) f′(id₂, x₂, k²Q_F²) / [f(id₁, x₁, Q_F²) f(id₂, x₂, Q_F²)]
        × [α′s(k²Q_R²) / αs(Q_R²)]ⁿ

with k the scale factor (1 without), f′ and α′s the variation's PDF and αs (the
nominal's without), n the process's power of αs. f and αs are the ones the event was
generated with (Pythia's ``pdf1``, ``pdf2`` and ``alphaS``, x·f at Q_F²).
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np

from .samples import WEIGHT_VARIATIONS, Process

__all__ = ["VariationWeights"]

_PROTON = 2212


def _alpha_s(value: float, order: int, flavours: int) -> Any:
    import pythia8mc

    alpha = pythia8mc.AlphaStrong()
    alpha.init(value, order, flavours, False)
    return alpha


def _pdf(pdf_set: int) -> Any:
    """Pythia's proton PDF ``pdf_set`` (an instance kept alive with its Pythia)."""
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for line in (f"PDF:pSet = {pdf_set}", "ProcessLevel:all = off", "Print:quiet = on"):
        pythia.readString(line)
    if not pythia.init():
        raise RuntimeError(f"Pythia did not initialise PDF set {pdf_set}")
    return pythia, pythia.getPDFPtr(_PROTON)


class VariationWeights:
    """Per event of a batch, each variation's weight relative to the nominal.

    ``pythia``: the initialised generator of the nominal events (its shower weights,
    PDF and αs settings); ``process``: its ``Process`` (variations, power of αs).
    """

    def __init__(self, pythia: Any, process: Process):
        info = pythia.infoPython()
        # Pythia lower-cases the variation names
        names = [info.weightNameByIndex(i).lower() for i in range(info.numberOfWeights())]
        settings = pythia.settings
        order = settings.mode("SigmaProcess:alphaSorder")
        flavours = settings.mode("StandardModel:alphaSnfmax")
        self.strong_order = process.strong_order
        self.nominal_pdf = pythia.getPDFPtr(_PROTON)
        self.nominal_alpha_s = _alpha_s(settings.parm("SigmaProcess:alphaSvalue"), order, flavours)
        self._keep_alive: list[Any] = []
        # per variation: (shower weight's index or None, hard-process ratio's arguments
        # or None)
        self._plans: dict[str, tuple[int | None, tuple[float, Any, Any] | None]] = {}
        for name in process.variations[1:]:
            variation = WEIGHT_VARIATIONS[name]
            shower = names.index(name.lower()) if variation.shower is not None else None
            pdf = self.nominal_pdf
            if variation.pdf_set is not None:
                owner, pdf = _pdf(variation.pdf_set)
                self._keep_alive.append(owner)
            alpha = self.nominal_alpha_s
            if variation.alpha_s is not None:
                alpha = _alpha_s(variation.alpha_s, order, flavours)
            hard_process = variation.hard_scale, variation.pdf_set, variation.alpha_s
            needs_hard = any(value is not None for value in hard_process)
            hard = (variation.hard_scale or 1.0, pdf, alpha) if needs_hard else None
            self._plans[name] = (shower, hard)

    def hard(self, info: ak.Array, scale: float = 1.0, pdf: Any = None, alpha_s: Any = None):
        """The hard-process ratio (module docstring) per event of ``info`` (a batch's
        ``events.info``); ``pdf``/``alpha_s``: Pythia ``PDF``/``AlphaStrong`` objects
        (default: the nominal's)."""
        pdf = pdf or self.nominal_pdf
        alpha_s = alpha_s or self.nominal_alpha_s
        k2 = scale * scale
        columns = {
            name: ak.to_numpy(info[name])
            for name in ("id1", "id2", "x1", "x2", "pdf1", "pdf2", "Q2Fac", "Q2Ren", "alphaS")
        }
        out = np.empty(len(columns["x1"]))
        # Pythia's PDF and αs objects take one point at a time
        for i in range(len(out)):
            q2_fac, q2_ren = k2 * columns["Q2Fac"][i], k2 * columns["Q2Ren"][i]
            parton_luminosity = pdf.xf(int(columns["id1"][i]), columns["x1"][i], q2_fac) * pdf.xf(
                int(columns["id2"][i]), columns["x2"][i], q2_fac
            )
            coupling = (alpha_s.alphaS(q2_ren) / columns["alphaS"][i]) ** self.strong_order
            out[i] = parton_luminosity / (columns["pdf1"][i] * columns["pdf2"][i]) * coupling
        return out

    def __call__(self, info: ak.Array) -> dict[str, np.ndarray]:
        """Per variation, its weight over the nominal's for each event of a batch."""
        shower_weights = ak.to_numpy(info.weights)
        out = {}
        for name, (shower, hard) in self._plans.items():
            weight = np.ones(len(shower_weights))
            if shower is not None:
                weight = weight * shower_weights[:, shower] / shower_weights[:, 0]
            if hard is not None:
                weight = weight * self.hard(info, *hard)
            out[name] = weight
        return out
