"""``python -m corrax.agc``: the hard AGC analysis end to end.

Generate (or reuse) the sample, run the analysis through coffea, fit the
statistical model with evermore and pyhf, write histograms, fit results, plots
and a summary under ``--output``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import time
import warnings
from pathlib import Path
from typing import Any

__all__ = ["main"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m corrax.agc",
        description="The AGC ttbar analysis with corrax: generate, analyse, fit, plot.",
    )
    p.add_argument(
        "--size",
        type=int,
        default=20_000,
        help="ttbar nominal events to generate (other processes in proportion)",
    )
    p.add_argument("--seed", type=int, default=1, help="generation seed")
    p.add_argument(
        "--cache",
        type=Path,
        default=Path("agc-sample"),
        help="folder of the generated sample (reused when present)",
    )
    p.add_argument(
        "--inputs",
        default="generated",
        help="'generated', an AGC file list (nanoaod_inputs.json), or NanoAOD paths separated by commas",
    )
    p.add_argument(
        "--files-per-process",
        type=int,
        default=1,
        help="with an AGC file list: files read per process and variation",
    )
    p.add_argument(
        "--corrections",
        type=Path,
        default=None,
        help="folder of real CMS correction files (JEC/JER, muon, electron, pileup)",
    )
    p.add_argument(
        "--agc-corrections",
        type=Path,
        default=None,
        help="the AGC's corrections.json (default: the same correction, built in)",
    )
    p.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="the AGC reference histograms (JSON) to compare with",
    )
    p.add_argument(
        "--executor",
        default="futures",
        help="iterative, futures, or a dask scheduler address (tcp://host:port)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="local worker processes (generation, futures executor)",
    )
    p.add_argument("--chunksize", type=int, default=50_000, help="events per coffea chunk")
    p.add_argument("--output", type=Path, default=Path("results"), help="output folder")
    p.add_argument("--no-fit", action="store_true", help="skip the statistical model")
    p.add_argument(
        "--no-optimise",
        action="store_true",
        help="skip the differentiable analysis and its optimisation",
    )
    p.add_argument("--steps", type=int, default=30, help="optimisation steps (optax Adam)")
    p.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="held-out comparisons (optimise on one half, evaluate on the other): the "
        "first trains on the even events of --seed, the second on its odd ones, further "
        "pairs on independent samples generated with seeds --seed+1, --seed+2, ...",
    )
    p.add_argument(
        "--device",
        default=None,
        help="JAX platform for the differentiable analysis (cpu, gpu); default: JAX's choice",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def generated_fileset(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """The generated sample of ``seed`` (``--cache``, or ``<cache>-seed<seed>`` for
    another seed than ``--seed``), generated where absent."""
    from .sample import inputs
    from .sample.generate import generate

    jec = None
    if args.corrections is not None:
        from .corrections import JEC_FILE

        candidate = args.corrections / JEC_FILE
        jec = candidate if candidate.exists() else None
    folder = (
        args.cache if seed == args.seed else args.cache.with_name(f"{args.cache.name}-seed{seed}")
    )
    generate(folder, args.size, seed, args.workers, jec, progress=not args.quiet)
    return inputs.from_generated(folder)


def fileset_for(args: argparse.Namespace) -> dict[str, Any]:
    from .sample import inputs

    if args.inputs == "generated":
        return generated_fileset(args, args.seed)
    if args.inputs.endswith(".json"):
        return inputs.from_agc_list(args.inputs, args.files_per_process)
    return inputs.from_paths(args.inputs.split(","))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    if args.replicas < 1:
        raise SystemExit("--replicas must be at least 1")
    # coffea warns about NanoAOD cross-references the generated files do not have;
    # the variable reaches the worker processes too
    quiet = "ignore:Missing cross-reference index:RuntimeWarning"
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), quiet]))
    warnings.filterwarnings("ignore", "Missing cross-reference index", RuntimeWarning)
    import jax

    jax.config.update("jax_enable_x64", True)  # explicit: the fit and the corrections in float64
    from . import model
    from .corrections import RealCorrections, load_systematics
    from .definition import REGIONS
    from .hard.analysis import Analysis
    from .hard.processor import run
    from .report import plots
    from .report.summary import markdown, validation

    args.output.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    fileset = fileset_for(args)
    timings["inputs"] = time.perf_counter() - start

    start = time.perf_counter()
    analysis = Analysis(
        RealCorrections.from_folder(args.corrections), load_systematics(args.agc_corrections)
    )
    output = run(fileset, analysis, args.executor, args.workers, args.chunksize)
    histograms = {region: output[region] for region in REGIONS}
    timings["analysis"] = time.perf_counter() - start
    with open(args.output / "histograms.pkl", "wb") as f:
        pickle.dump(histograms, f)

    reference = json.loads(args.reference.read_text()) if args.reference else None
    summary: dict[str, Any] = {
        "events": output["events"],
        "validation": validation(
            histograms, reference, output.get("cutflow"), output.get("variations")
        ),
    }
    if not args.no_fit:
        start = time.perf_counter()
        templates = model.build_templates(histograms)
        summary["fit"] = {}
        for library, fit in (("evermore", model.evermore_fit), ("pyhf", model.pyhf_fit)):
            try:
                summary["fit"][library] = vars(fit(templates))
            except Exception as error:  # noqa: BLE001 - any failed fit is reported, not fatal
                summary["fit"][library] = {"error": model.failure_message(error)}
        timings["fit"] = time.perf_counter() - start
    if not args.no_optimise:
        if args.inputs != "generated":
            raise SystemExit("the optimisation needs the generated sample (--inputs generated)")
        from .study import differentiable_stage

        summary["optimisation"] = differentiable_stage(
            args, fileset, analysis, timings, lambda seed: generated_fileset(args, seed)
        )
    plots.stacked(histograms, args.output / "stacked.png")
    if reference is not None:
        plots.versus_reference(histograms, reference, args.output / "versus_agc.png")
    summary["timings"] = timings
    (args.output / "summary.json").write_text(json.dumps(summary, indent=1))
    (args.output / "summary.md").write_text(markdown(summary))
    print(markdown(summary))
    return summary
