"""The CMS jet-correction chain on flat arrays: JEC, JER hybrid smearing, JES.

``JetCorrectionChain`` applies, on flat per-jet arrays (NumPy or JAX), the chain
coffea's ``CorrectedJetsFactory`` applies, with every correction evaluated by corrax:

1. JEC: ``pt_jec = JEC(area, eta, pt_raw, rho) · pt_raw``; the mass scales with the
   same factor.
2. JER, hybrid method: with ``σ = PtResolution(eta, pt_jec, rho)`` and
   ``s = ScaleFactor(eta)``, a jet matched to a generator jet (``pt_gen > 0`` and
   ``|pt_jec − pt_gen| < 3 σ pt_jec``) is scaled by ``1 + (s − 1)(pt_jec − pt_gen)/pt_jec``;
   any other jet by ``1 + √max(s² − 1, 0) · σ · z`` with ``z`` a standard normal number
   from correctionlib's HashPRNG seeded by (event, pt_raw, eta): reproducible, and
   without gradient (the reparameterisation trick: gradients flow through σ, s, pt).
   A factor that would bring the jet below 0.01 GeV energy is raised to it.
3. JES: ``pt = pt_jer · (1 + θ_JES · Δ(eta, pt_jer))`` with ``Δ`` the uncertainty
   (e.g. ``..._Total_AK4PFchs``): θ = ±1 are the usual up/down variations, and θ is a
   continuous nuisance parameter. The JER scale factor has one too (``θ_JER``,
   HistFactory interpolation between its down, nominal and up values).

It depends on JAX and NumPy only; ``corrax.awkward.JetCorrector`` is its jagged form.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .correctionset import CorrectionSet
from .errors import InvalidArgumentError

__all__ = ["DEFAULT_SHIFTS", "JetCorrectionChain"]

_MIN_JET_ENERGY = 1e-2  # GeV, as in coffea's CorrectedJetsFactory


def _normal_generator() -> Any:
    """A correction returning correctionlib's HashPRNG standard normal numbers."""
    inputs = [
        {"name": "event", "type": "int"},
        {"name": "pt", "type": "real"},
        {"name": "eta", "type": "real"},
    ]
    document = {
        "schema_version": 2,
        "corrections": [
            {
                "name": "jer_noise",
                "version": 1,
                "inputs": inputs,
                "output": {"name": "z", "type": "real"},
                "data": {
                    "nodetype": "hashprng",
                    "inputs": ["event", "pt", "eta"],
                    "distribution": "normal",
                },
            }
        ],
    }
    return CorrectionSet.from_string(json.dumps(document))["jer_noise"]


class JetCorrectionChain:
    """The JEC → JER → JES chain on flat per-jet arrays (see the module docstring).

    ``jec``: the compound (or single) JEC correction (inputs JetA, JetEta, JetPt, Rho);
    ``uncertainty``: the JES uncertainty (JetEta, JetPt), optional;
    ``resolution`` and ``scale_factor``: the JER corrections (PtResolution with JetEta,
    JetPt, Rho; ScaleFactor with JetEta and a nom/up/down systematic), optional.

    The chain is written once, here, on flat arrays (``correct_flat``), with the array
    library chosen from the inputs (NumPy eagerly, JAX inside transformations and
    ``jit``), as scikit-hep/vector writes its compute functions once for every
    backend: ``corrax.awkward.JetCorrector`` wraps it for jagged awkward arrays, and
    the jit path for jagged data (``corrax.jagged``) calls ``correct_flat`` on its
    flat fields.
    """

    def __init__(
        self,
        jec: Any,
        uncertainty: Any = None,
        resolution: Any = None,
        scale_factor: Any = None,
    ):
        if (resolution is None) != (scale_factor is None):
            raise InvalidArgumentError("JER needs both the resolution and the scale factor")
        self.jec = jec
        self.uncertainty = uncertainty
        self.resolution = resolution
        self.scale_factor = scale_factor
        self._jer_theta = None if scale_factor is None else scale_factor.nuisance("systematic")
        self._noise = _normal_generator() if scale_factor is not None else None

    def correct_flat(
        self,
        pt_raw: Any,
        mass_raw: Any,
        eta: Any,
        area: Any,
        rho: Any,
        event: Any = None,
        pt_gen: Any = None,
        jes: Any = 0.0,
        jer: Any = 0.0,
    ) -> dict[str, Any]:
        """The chain on flat per-jet arrays (``rho``, ``event`` already per jet):
        a dict with pt, mass (GeV) and the intermediate values, same shape."""
        shifts = {"": (jes, jer)}
        return self.shifted_flat(pt_raw, mass_raw, eta, area, rho, event, pt_gen, shifts)[""]

    def shifted_flat(
        self,
        pt_raw: Any,
        mass_raw: Any,
        eta: Any,
        area: Any,
        rho: Any,
        event: Any = None,
        pt_gen: Any = None,
        shifts: Mapping[str, tuple[Any, Any]] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """``correct_flat`` for several nuisance values at once: ``shifts`` maps a name
        to (θ_JES, θ_JER) (default: nominal, ``jes_up/down``, ``jer_up/down``); returns
        ``{name: correct_flat's dict}``. The JEC, the resolution and the noise are
        evaluated once, the JER scale factor and the JES uncertainty once per θ_JER,
        as coffea's ``CorrectedJetsFactory`` derives its variations from one
        correction."""
        if shifts is None:
            shifts = dict(DEFAULT_SHIFTS)
        thetas = [x for pair in shifts.values() for x in pair]
        lib = jnp if any(_is_jax(x) for x in (pt_raw, eta, rho, pt_gen, *thetas)) else np

        def evaluate(correction: Any, *inputs: Any) -> Any:
            # eagerly, NumPy: arithmetic on JAX arrays would compile per chunk size
            value = correction.evaluate(*inputs)
            return value if lib is jnp else np.asarray(value)

        jec = evaluate(self.jec, area, eta, pt_raw, rho)
        pt_jec, mass_jec = jec * pt_raw, jec * mass_raw
        common = {"pt_raw": pt_raw, "mass_raw": mass_raw, "jec": jec, "pt_jec": pt_jec}
        smear = None
        if self.resolution is not None:
            if event is None:
                raise InvalidArgumentError(
                    "JER smearing needs the event numbers (they seed the noise)"
                )
            sigma = evaluate(self.resolution, eta, pt_jec, rho)
            smear = (sigma, evaluate(self._noise, event, pt_raw, eta))
        per_jer: dict[Any, dict[str, Any]] = {}  # θ_JER → the smeared jets and Δ there
        results = {}
        for name, (jes, jer) in shifts.items():
            key = _theta_key(jer)
            if key not in per_jer:
                stage = {"pt": pt_jec, "mass": mass_jec}
                if smear is not None:
                    sf = evaluate(self._jer_theta, jer, eta)
                    factor = _jer_factor(lib, eta, *smear, sf, pt_gen, pt_jec)
                    stage = {"jer": factor, "pt_jer": factor * pt_jec}
                    stage.update({"pt": stage["pt_jer"], "mass": factor * mass_jec})
                if self.uncertainty is not None:
                    stage["jes_delta"] = evaluate(self.uncertainty, eta, stage["pt"])
                per_jer[key] = stage
            stage = dict(per_jer[key])
            pt, mass = stage.pop("pt"), stage.pop("mass")
            if self.uncertainty is not None:
                scale = 1.0 + jes * stage["jes_delta"]
                pt, mass = scale * pt, scale * mass
            results[name] = {**common, **stage, "pt": pt, "mass": mass}
        return results


def _jer_factor(lib, eta, sigma, z, sf, pt_gen, pt_jec):
    """The hybrid smearing factor (see the module docstring)."""
    stochastic = 1.0 + lib.sqrt(lib.maximum(sf**2 - 1.0, 0.0)) * sigma * z
    factor = stochastic
    if pt_gen is not None:
        relative = (pt_jec - pt_gen) / pt_jec
        matched = (pt_gen > 0) & (lib.abs(relative) < 3.0 * sigma)
        factor = lib.where(matched, 1.0 + (sf - 1.0) * relative, stochastic)
    min_pt = _MIN_JET_ENERGY / lib.cosh(eta)
    return lib.where(factor * pt_jec < min_pt, min_pt / pt_jec, factor)


DEFAULT_SHIFTS: Mapping[str, tuple[float, float]] = {
    "nominal": (0.0, 0.0),
    "jes_up": (1.0, 0.0),
    "jes_down": (-1.0, 0.0),
    "jer_up": (0.0, 1.0),
    "jer_down": (0.0, -1.0),
}


def _theta_key(theta: Any) -> Any:
    """Equal Python numbers share one evaluation; arrays and tracers are their own."""
    return float(theta) if isinstance(theta, int | float) else id(theta)


def _is_jax(value: Any) -> bool:
    return isinstance(value, jax.Array | jax.core.Tracer)
