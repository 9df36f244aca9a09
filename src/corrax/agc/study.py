"""The differentiable stage of ``python -m corrax.agc``: gradient check, optimisation,
held-out hard-cut comparison, plots (see ``differentiable`` and ``optimise``)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import jax

from . import model, plots
from .analysis import Analysis, Cuts, JetSystematics
from .differentiable import Smoothing, Thresholds, load_batch, ttbar_norm_uncertainty
from .optimise import as_cuts, gradient_check, optimise, rounded
from .processor import run

__all__ = ["TRAINING_SAMPLES", "differentiable_stage", "hard_result"]

# differentiable sample name → dataset of the generated fileset
TRAINING_SAMPLES = {
    "ttbar": "ttbar__nominal",
    "ttbar_ME_var": "ttbar__ME_var",
    "ttbar_PS_var": "ttbar__PS_var",
    "wjets": "wjets__nominal",
    "single_top_s_chan": "single_top_s_chan__nominal",
    "single_top_t_chan": "single_top_t_chan__nominal",
    "single_top_tW": "single_top_tW__nominal",
}


def training_datasets(fileset: dict[str, Any]) -> dict[str, tuple[list[str], float]]:
    """The samples of the differentiable analysis from a generated fileset:
    ``{sample: (files, norm)}`` (see ``differentiable.load_batch``)."""
    return {
        name: (list(fileset[key]["files"]), fileset[key]["metadata"]["norm"])
        for name, key in TRAINING_SAMPLES.items()
    }


def hard_result(histograms: dict[str, Any]) -> dict[str, float]:
    """Hard-cut figures of merit: expected σ(ttbar_norm) on Asimov data and the
    expected significance in the Wald approximation, 1/σ (the quantity optimised);
    the fit to the pseudodata (evermore); and √q₀ on Asimov data, whose
    background-only fit pulls nuisances to their bounds here (ttbar dominates every
    bin), so it is reported but not compared."""
    fit, expected = model.hard_figures(model.build_templates(histograms))
    return {
        "expected_uncertainty": expected,
        "expected_significance": 1.0 / expected,
        "ttbar_norm": fit.ttbar_norm,
        "uncertainty": fit.uncertainty,
        "asimov_significance_q0": fit.asimov_significance,
    }


def differentiable_stage(
    args: Any, fileset: dict[str, Any], analysis: Analysis, timings: dict[str, float]
) -> dict[str, Any]:
    device = jax.devices(args.device)[0] if args.device else None
    context = jax.default_device(device) if device is not None else contextlib.nullcontext()
    corrector = JetSystematics(analysis.real).corrector
    smoothing = Smoothing()
    result: dict[str, Any] = {
        "smoothing": vars(smoothing),
        "device": str(device or jax.devices()[0]),
    }
    with context:
        start = time.perf_counter()
        train = load_batch(training_datasets(fileset), split="even")
        held_out = load_batch(training_datasets(fileset), split="odd")
        default = Thresholds()
        result["objective_default"] = {
            "train": float(ttbar_norm_uncertainty(default, train, corrector, smoothing)),
            "held_out": float(ttbar_norm_uncertainty(default, held_out, corrector, smoothing)),
        }
        result["gradient_check"] = gradient_check(default, train, corrector, smoothing)
        timings["gradient_check"] = time.perf_counter() - start

        start = time.perf_counter()
        trajectory = optimise(
            train, corrector, default, args.steps, smoothing=smoothing, progress=not args.quiet
        )
        timings["optimisation"] = time.perf_counter() - start
        best = rounded(trajectory.best)
        result["trajectory"] = trajectory.steps
        result["optimised"] = best
        result["objective_optimised"] = {
            "train": float(ttbar_norm_uncertainty(Thresholds(**best), train, corrector, smoothing)),
            "held_out": float(
                ttbar_norm_uncertainty(Thresholds(**best), held_out, corrector, smoothing)
            ),
        }

    start = time.perf_counter()
    held: dict[str, Any] = {}
    for label, cuts in (("default", Cuts()), ("optimised", as_cuts(best))):
        options = {
            "real": analysis.real,
            "systematics": analysis.systematics,
            "cuts": cuts,
            "split": "odd",
        }
        output = run(fileset, Analysis(**options), args.executor, args.workers, args.chunksize)
        histograms = {r: output[r] for r in ("4j1b", "4j2b")}
        held[label] = {"cuts": vars(cuts), **hard_result(histograms)}
        plots.stacked(
            histograms,
            args.output / f"stacked_held_out_{label}.png",
            title=f"(held-out, {label} cuts)",
        )
    timings["held_out_hard"] = time.perf_counter() - start
    result["held_out_hard"] = held
    plots.gradient_check(result["gradient_check"], args.output / "gradient_check.png")
    plots.trajectory(trajectory.steps, args.output / "trajectory.png")
    plots.before_after(held, args.output / "before_after.png")
    return result
