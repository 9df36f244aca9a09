"""The differentiable stage of ``python -m corrax.agc``: gradient check, optimisation,
held-out hard-cut comparison over replicas, plots (see ``differentiable``)."""

from __future__ import annotations

import contextlib
import pickle
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from . import model
from .definition import REGIONS, Cuts
from .differentiable.optimise import BOUNDS, SCALES, gradient_check, optimise, rounded
from .differentiable.pipeline import Smoothing, load_batch, ttbar_norm_uncertainty
from .hard.analysis import Analysis, JetSystematics
from .hard.processor import run
from .report import plots

__all__ = ["FIGURE_OF_MERIT", "TRAINING_SAMPLES", "differentiable_stage", "hard_result"]

# differentiable sample name → dataset of the generated fileset
TRAINING_SAMPLES = {
    "ttbar": "ttbar__nominal",
    "ttbar_ME_var": "ttbar__ME_var",
    "ttbar_PS_var": "ttbar__PS_var",
    "ttbar_scaleup": "ttbar__scaleup",
    "ttbar_scaledown": "ttbar__scaledown",
    "wjets": "wjets__nominal",
    "single_top_s_chan": "single_top_s_chan__nominal",
    "single_top_t_chan": "single_top_t_chan__nominal",
    "single_top_tW": "single_top_tW__nominal",
}


def training_datasets(fileset: dict[str, Any]) -> dict[str, tuple[list[str], float]]:
    """The samples of the differentiable analysis from a generated fileset:
    ``{sample: (files, norm)}`` (see ``differentiable.pipeline.load_batch``)."""
    return {
        name: (list(fileset[key]["files"]), fileset[key]["metadata"]["norm"])
        for name, key in TRAINING_SAMPLES.items()
    }


FIGURE_OF_MERIT = (
    "expected σ(ttbar_norm) on Asimov data, every nuisance parameter profiled through "
    "the Fisher information (Cramér–Rao)"
)


def hard_result(histograms: dict[str, Any], with_pyhf: bool = True) -> dict[str, Any]:
    """Hard-cut figures on ``histograms``: the figure of merit (evermore, and, with
    ``with_pyhf``, pyhf's value on the same templates) and the fit to the pseudodata.
    A figure that cannot be computed is reported as ``{"error": ...}``; the others
    are still given."""
    templates = model.build_templates(histograms)
    result: dict[str, Any] = {}
    figures: list[tuple[str, Any]] = [
        ("expected_uncertainty", lambda: float(model.expected_uncertainty(templates))),
        ("fit", lambda: vars(model.evermore_fit(templates))),
    ]
    if with_pyhf:
        figures.append(
            ("pyhf_expected_uncertainty", lambda: model.pyhf_expected_uncertainty(templates))
        )
    for key, compute in figures:
        try:
            result[key] = compute()
        except (ArithmeticError, ValueError, np.linalg.LinAlgError) as error:
            result[key] = {"error": model.failure_message(error)}
    return result


def _at_bound(thresholds: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Each threshold with a flag saying whether it sits on its box's bound (within
    1e-3 of its optimisation scale: there the optimum is the bound, not a minimum)."""
    out = {}
    for name, value in thresholds.items():
        low, high = BOUNDS[name]
        tolerance = 1e-3 * SCALES[name]
        out[name] = {
            "value": value,
            "at_bound": bool(value <= low + tolerance or value >= high - tolerance),
            "bounds": [low, high],
        }
    return out


def _replica_statistics(replicas: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread (standard deviation over replicas, and of the mean) of the
    relative change of the held-out σ, and whether the gain exceeds 3× its spread."""
    changes = [
        r["optimised"] / r["default"] - 1.0
        for r in replicas
        if isinstance(r.get("default"), float) and isinstance(r.get("optimised"), float)
    ]
    if not changes:
        return {"replicas": 0}
    mean = float(np.mean(changes))
    if len(changes) < 2:
        return {"replicas": 1, "mean_relative_change": mean, "spread": None, "significant": None}
    spread = float(np.std(changes, ddof=1))
    return {
        "replicas": len(changes),
        "mean_relative_change": mean,
        "spread": spread,
        "error_of_mean": spread / np.sqrt(len(changes)),
        "significant": bool(-mean > 3 * spread),
    }


def _replica(
    args: Any,
    fileset: dict[str, Any],
    analysis: Analysis,
    corrector: Any,
    smoothing: Smoothing,
    halves: dict[str, Any],
    train_split: str,
    label: str,
    timings: dict[str, float],
) -> dict[str, Any]:
    """Optimise on one half of the events (``train_split``), compare default and
    optimised hard cuts on the other half (``halves``: the even and odd ``Batch``)."""
    held_split = "odd" if train_split == "even" else "even"
    start = time.perf_counter()
    train, held_out = halves[train_split], halves[held_split]
    default = Cuts()
    result: dict[str, Any] = {"label": label, "train": train_split, "held_out": held_split}
    result["gradient_check"] = gradient_check(default, train, corrector, smoothing)
    timings[f"gradient_check_{label}"] = time.perf_counter() - start
    start = time.perf_counter()
    trajectory = optimise(
        train, corrector, default, args.steps, smoothing=smoothing, progress=not args.quiet
    )
    timings[f"optimisation_{label}"] = time.perf_counter() - start
    best = rounded(trajectory.best)
    result["trajectory"] = trajectory.steps
    result["optimised_thresholds"] = best
    result["soft_objective"] = {
        name: {
            "train": float(ttbar_norm_uncertainty(Cuts(**t), train, corrector, smoothing)),
            "held_out": float(ttbar_norm_uncertainty(Cuts(**t), held_out, corrector, smoothing)),
        }
        for name, t in (("default", default.optimised()), ("optimised", best))
    }
    start = time.perf_counter()
    result["hard"] = {}
    for cuts_label, cuts in (("default", Cuts()), ("optimised", Cuts(**best))):
        options = {"real": analysis.real, "systematics": analysis.systematics}
        # the model's variations only: the real-style ones are not in the model
        held = Analysis(**options, cuts=cuts, split=held_split, real_variations=False)
        output = run(fileset, held, args.executor, args.workers, args.chunksize)
        histograms = {r: output[r] for r in REGIONS}
        # pyhf's cross-check for the default cuts (the summary's pyhf_sigma_default)
        figures = hard_result(histograms, with_pyhf=cuts_label == "default")
        result["hard"][cuts_label] = {"cuts": cuts.as_dict(), **figures}
        result["hard"][cuts_label]["histograms"] = histograms
    timings[f"held_out_hard_{label}"] = time.perf_counter() - start
    return result


def differentiable_stage(
    args: Any,
    fileset: dict[str, Any],
    analysis: Analysis,
    timings: dict[str, float],
    fileset_of_seed: Callable[[int], dict[str, Any]],
) -> dict[str, Any]:
    """``--replicas`` held-out comparisons (optimise on one half, evaluate on the
    other): on ``fileset`` (the sample of ``--seed``) the first trains on the even
    events and the second on the odd ones; further pairs use independent samples of
    seeds ``--seed + 1``, ``--seed + 2``, ... Writes the first replica's held-out
    histograms and plots. ``fileset_of_seed``: the generated fileset of a seed.
    """
    device = jax.devices(args.device)[0] if args.device else None
    context = jax.default_device(device) if device is not None else contextlib.nullcontext()
    corrector = JetSystematics(analysis.real).corrector
    smoothing = Smoothing()
    replicas = []
    with context:
        for number in range(args.replicas):
            seed, split = args.seed + number // 2, ("even", "odd")[number % 2]
            if number % 2 == 0:
                start = time.perf_counter()
                if seed != args.seed:
                    fileset = fileset_of_seed(seed)
                datasets = training_datasets(fileset)
                halves = {
                    half: load_batch(datasets, split=half, real=analysis.real)
                    for half in ("even", "odd")
                }
                timings[f"load_batches_seed{seed}"] = time.perf_counter() - start
            label = f"seed{seed}_{split}_trained"
            replicas.append(
                _replica(
                    args, fileset, analysis, corrector, smoothing, halves, split, label, timings
                )
            )
    first = replicas[0]
    for cuts_label, entry in first["hard"].items():
        histograms = entry["histograms"]
        with open(args.output / f"held_out_{cuts_label}.pkl", "wb") as f:
            pickle.dump(histograms, f)
        plots.stacked(
            histograms,
            args.output / f"stacked_held_out_{cuts_label}.png",
            title=f"(held-out, {cuts_label} cuts)",
        )
    plots.gradient_check(first["gradient_check"], args.output / "gradient_check.png")
    plots.trajectory(first["trajectory"], args.output / "trajectory.png")
    sigmas = [
        {
            "label": r["label"],
            "default": r["hard"]["default"]["expected_uncertainty"],
            "optimised": r["hard"]["optimised"]["expected_uncertainty"],
        }
        for r in replicas
    ]
    plots.before_after(sigmas, args.output / "before_after.png")
    for r in replicas:
        for entry in r["hard"].values():
            del entry["histograms"]
    default = first["hard"]["default"]
    return {
        "smoothing": vars(smoothing),
        "device": str(device or jax.devices()[0]),
        "figure_of_merit": FIGURE_OF_MERIT,
        "default_thresholds": _at_bound(Cuts().optimised()),
        "optimised_thresholds": [_at_bound(r["optimised_thresholds"]) for r in replicas],
        "held_out_sigma": sigmas,
        **_replica_statistics(sigmas),
        "pyhf_sigma_default": default["pyhf_expected_uncertainty"],
        "replica_details": replicas,
    }
