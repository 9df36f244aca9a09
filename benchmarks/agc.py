"""AGC benchmark: events/s of the hard forward pass (awkward, CPU), of the
differentiable value+gradient on the jit path, and of the same value+gradient through
awkward's JAX backend (eager, ``corrax.agc.differentiable.eager``), on the same generated events.

    python benchmarks/agc.py [--size N] [--cache DIR] [--corrections DIR]

Both passes read the training datasets of the demo (ttbar nominal, its ME, PS and
scale variations, W+jets, single top) once into memory first; the timings exclude
reading and the first (compiling) call, and are the best of five (of three for the
eager path). The eager path runs last: it switches JAX to the CPU for the rest of the
process.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import awkward as ak
import jax


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--cache", type=Path, default=Path("agc-sample"))
    parser.add_argument("--corrections", type=Path, default=None)
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    # the eager path (awkward's JAX backend) needs synchronous CPU dispatch, set before
    # JAX creates its CPU client (see corrax.agc.differentiable.eager)
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    # the generated files have no photons, taus, ...: coffea warns about each index
    warnings.filterwarnings("ignore", "Missing cross-reference index", RuntimeWarning)

    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    from corrax.agc.corrections import JEC_FILE, RealCorrections
    from corrax.agc.definition import Cuts
    from corrax.agc.differentiable import eager, load_batch, ttbar_norm_uncertainty
    from corrax.agc.hard import Analysis, JetSystematics
    from corrax.agc.sample import inputs
    from corrax.agc.sample.generate import generate
    from corrax.agc.study import TRAINING_SAMPLES, training_datasets

    jec = args.corrections / JEC_FILE if args.corrections else None
    generate(args.cache, args.size, 1, jec_file=jec, progress=False)
    fileset = inputs.from_generated(args.cache)
    real = RealCorrections.from_folder(args.corrections)  # JEC chain, lepton ID, pileup

    chunks = []
    for name, key in TRAINING_SAMPLES.items():
        meta = fileset[key]["metadata"]
        for path in fileset[key]["files"]:
            events = NanoEventsFactory.from_root(
                {path: "Events"}, schemaclass=NanoAODSchema, mode="eager"
            ).events()
            chunks.append((events, meta["process"], meta["variation"], meta["norm"], name))
    n_events = sum(len(c[0]) for c in chunks)
    analysis = Analysis(real, variations=False)

    def hard() -> None:
        for events, process, variation, norm, _ in chunks:
            # the nominal selection and histograms: the pass the soft analysis relaxes
            analysis.process_events(events, process, variation, norm)

    def best_of(function, repeat=5) -> float:
        function()  # compile / warm up
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
        return min(times)

    t_hard = best_of(hard)
    batch = load_batch(training_datasets(fileset), real=real)
    corrector = JetSystematics(real).corrector
    value_and_grad = jax.value_and_grad(lambda t: ttbar_norm_uncertainty(t, batch, corrector))

    def soft() -> None:
        value, _ = value_and_grad(Cuts())
        jax.block_until_ready(value)

    t_soft = best_of(soft)
    device = jax.devices()[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the backend's own notice
        ak.jax.register_and_check()  # awkward's JAX backend: this benchmark's choice
        eager_batch = eager.load_eager_batch(training_datasets(fileset), real=real)
    eager_value_and_grad = jax.value_and_grad(
        lambda t: eager.ttbar_norm_uncertainty(t, eager_batch, corrector)
    )

    def soft_eager() -> None:
        value, _ = eager_value_and_grad(Cuts())
        jax.block_until_ready(value)

    t_eager = best_of(soft_eager, repeat=3)
    print(f"events: {n_events} ({batch.n_events} in the jit batch), device: {device}")
    print(
        f"hard forward (awkward, nominal):        {n_events / t_hard:10.0f} events/s ({t_hard:.2f} s)"
    )
    print(
        f"jit value+grad (3 jet passes):         {batch.n_events / t_soft:10.0f} events/s ({t_soft:.2f} s)"
    )
    print(
        f"eager awkward-JAX value+grad (CPU):     {len(eager_batch) / t_eager:10.0f} events/s ({t_eager:.2f} s)"
    )
    print(f"ratio jit value+grad / hard forward:     {t_soft / t_hard:10.2f}  (goal <= 3)")
    print(f"speedup jit / eager awkward-JAX:         {t_eager / t_soft:10.2f}  (goal >= 10)")


if __name__ == "__main__":
    main()
