"""Gradient-based optimisation of the AGC analysis cuts (optax).

The objective is the figure of merit of ``corrax.agc.model`` — the expected
σ(ttbar_norm) on Asimov data, every nuisance parameter of the AGC's model (luminosity,
ttbar ME, PS and scale variations, jet pt scale and resolution, b-tag variations,
W+jets scale, MC statistics) profiled through the Fisher information — of the soft
templates of ``corrax.agc.differentiable.pipeline``, computed on one half of the events. Adam updates the
cuts in units of ``SCALES``; after each step they are projected back into the
box ``BOUNDS`` (optax's ``projection_box``; below the lower bounds the generated
sample's skim would bias the result). A threshold that ends on a bound is an
optimum of the box, not of the analysis: the summary flags it (``at_bound``). The hard analysis
is then re-run with the default and the optimised cuts on the other half of
the events, which the optimisation never saw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..definition import OPTIMISED, Cuts
from .pipeline import Batch, Smoothing, ttbar_norm_uncertainty, ttbar_norm_value_and_grad

__all__ = ["BOUNDS", "SCALES", "gradient_check", "optimise", "rounded"]

SCALES = {"lepton_pt": 5.0, "jet_pt": 5.0, "btag": 0.05}
BOUNDS = {"lepton_pt": (27.0, 80.0), "jet_pt": (25.0, 80.0), "btag": (0.2, 0.95)}
FD_STEPS = {
    "lepton_pt": 0.005,
    "jet_pt": 0.005,
    "btag": 0.00005,
}  # central differences: O(h²) error


def _objective(batch: Batch, corrector: Any, smoothing: Smoothing) -> Callable[[Cuts], jax.Array]:
    return lambda cuts: ttbar_norm_uncertainty(cuts, batch, corrector, smoothing)


def gradient_check(
    cuts: Cuts,
    batch: Batch,
    corrector: Any = None,
    smoothing: Smoothing = Smoothing(),  # noqa: B008
) -> dict[str, dict[str, float]]:
    """Per parameter: the autodiff gradient and the central finite difference of the
    same smooth objective (steps ``FD_STEPS``), and their relative difference."""
    objective = _objective(batch, corrector, smoothing)
    _, gradient = ttbar_norm_value_and_grad(cuts, batch, corrector, smoothing)
    result = {}
    for name, step in FD_STEPS.items():
        value = float(getattr(cuts, name))
        up = cuts.replace(**{name: value + step})
        down = cuts.replace(**{name: value - step})
        fd = (float(objective(up)) - float(objective(down))) / (2 * step)
        ad = float(getattr(gradient, name))
        result[name] = {
            "autodiff": ad,
            "finite_difference": fd,
            "relative": abs(ad - fd) / max(abs(fd), 1e-300),
        }
    return result


@dataclass
class Trajectory:
    """The optimised thresholds and the objective at each step."""

    steps: list[dict[str, float]]

    @property
    def best(self) -> dict[str, float]:
        return min(self.steps, key=lambda s: s["objective"])


def optimise(
    batch: Batch,
    corrector: Any = None,
    start: Cuts | None = None,
    steps: int = 30,
    learning_rate: float = 0.15,
    smoothing: Smoothing = Smoothing(),  # noqa: B008
    progress: bool = True,
) -> Trajectory:
    """Adam on the cuts (see the module docstring); returns every step."""
    import optax
    from tqdm.auto import tqdm

    start = start or Cuts()
    origin = start.optimised()

    def cuts_of(z: dict[str, jax.Array]) -> Cuts:
        return start.replace(**{k: origin[k] + SCALES[k] * z[k] for k in OPTIMISED})

    def value_and_grad(z: dict[str, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array]]:
        # the cuts are origin + SCALES · z: the chain rule by hand, so that the
        # one compiled value-and-gradient serves every start
        value, gradient = ttbar_norm_value_and_grad(cuts_of(z), batch, corrector, smoothing)
        return value, {k: getattr(gradient, k) * SCALES[k] for k in origin}

    z = {k: jnp.asarray(0.0) for k in origin}
    lower = {k: (BOUNDS[k][0] - origin[k]) / SCALES[k] for k in origin}
    upper = {k: (BOUNDS[k][1] - origin[k]) / SCALES[k] for k in origin}
    optimiser = optax.adam(learning_rate)
    state = optimiser.init(z)
    history = []
    for _ in tqdm(range(steps + 1), desc="optimising", disable=not progress):
        value, gradient = value_and_grad(z)
        history.append({**cuts_of(z).optimised(), "objective": float(value)})
        updates, state = optimiser.update(gradient, state)
        z = optax.apply_updates(z, updates)
        z = optax.projections.projection_box(z, lower, upper)  # back into the box
    return Trajectory(history)


def rounded(cuts: dict[str, float]) -> dict[str, float]:
    """Thresholds as a physicist would quote them (0.1 GeV, 0.001)."""
    return {
        "lepton_pt": float(np.round(cuts["lepton_pt"], 1)),
        "jet_pt": float(np.round(cuts["jet_pt"], 1)),
        "btag": float(np.round(cuts["btag"], 3)),
    }
