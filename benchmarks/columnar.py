"""Benchmark: corrections on jagged data, in one process, single thread.

``python benchmarks/columnar.py`` (also run by ``make bench``) measures, in one run:

1. jagged / flat: the real JEC compound and muon scale factor on 10^6 jets/muons as
   jagged awkward arrays against the same values as flat NumPy arrays (eager,
   compiled once beforehand; measured alternately). Goal: jagged ≤ 1.2× flat.
2. the jit path against eager awkward-JAX: value and gradient (w.r.t. a jet energy
   scale) of a per-event analysis (corrected jets → Σ pt, trijet mass of the
   highest-pt combination) at 10^5 events, each written the fastest way its API
   offers (the choice without gradient, then the mass of the chosen triple only).
   Goal: jit ≥ 10× faster.
3. a coffea processor (JEC-corrected jet histograms weighted by muon scale factors)
   through ``Runner`` + ``IterativeExecutor`` on the real NanoAOD file read 25 times
   (40 events: opening the file dominates) and, with ``--cache``, on the ttbar files
   of the demo's generated sample (5,000 events each), with corrax against the same
   processor with correctionlib: events/s.

Options: ``--data`` the shared data folder (default ``../shared/data``), ``--repeats``,
``--cache`` the generated sample's folder (``make bench`` passes the demo's).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import _pin_single_thread

if __name__ == "__main__":
    _pin_single_thread()

import argparse
import functools
import pathlib
import time
import warnings

import awkward as ak
import correctionlib
import hist
import jax
import jax.numpy as jnp
import numpy as np
import uproot
import vector

import corrax
from corrax.jagged import Jagged, kinematics

jax.config.update("jax_enable_x64", True)
# awkward's JAX backend (the eager path) needs synchronous CPU dispatch: it reads JAX
# buffers through raw pointers (wrong results at 10^5 events otherwise)
jax.config.update("jax_cpu_enable_async_dispatch", False)
warnings.simplefilter("ignore")

REPO = pathlib.Path(__file__).resolve().parents[1]
JEC = "Summer19UL18_V5_MC_L1L2L3Res_AK4PFchs"
MUON = "NUM_TightID_DEN_TrackerMuons"


def best_of(function, repeats: int) -> float:
    jax.block_until_ready(function())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(function())
        times.append(time.perf_counter() - start)
    return min(times)


def best_of_pair(first, second, repeats: int) -> tuple[float, float]:
    """Best times of two functions measured alternately, so that a slow phase of a
    shared machine affects both."""
    times = ([], [])
    for _ in range(repeats + 1):
        for function, series in zip((first, second), times, strict=True):
            start = time.perf_counter()
            jax.block_until_ready(function())
            series.append(time.perf_counter() - start)
    return min(times[0][1:]), min(times[1][1:])


def jets(n_events: int, seed: int = 3) -> tuple[ak.Array, np.ndarray]:
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 12, n_events)
    n = int(counts.sum())

    def jagged(values):
        return ak.unflatten(values, counts)

    return (
        ak.zip(
            {
                "pt": jagged(rng.exponential(40.0, n) + 20.0),
                "eta": jagged(rng.uniform(-2.4, 2.4, n)),
                "phi": jagged(rng.uniform(-np.pi, np.pi, n)),
                "mass": jagged(rng.uniform(2.0, 15.0, n)),
                "area": jagged(rng.uniform(0.4, 0.6, n)),
            }
        ),
        rng.uniform(5.0, 40.0, n_events),
    )


def jagged_over_flat(data: pathlib.Path, repeats: int) -> None:
    jec = corrax.CorrectionSet.from_file(data / "corrections/JME__2018_UL__jet_jerc.json.gz")
    muon = corrax.CorrectionSet.from_file(data / "corrections/MUO__2018_UL__muon_Z.json.gz")
    events, rho = jets(180_000)  # ~10^6 jets
    rho_jagged = ak.broadcast_arrays(rho, events.pt)[0]
    flat = {f: ak.to_numpy(ak.flatten(events[f])) for f in events.fields}
    flat_rho = ak.to_numpy(ak.flatten(rho_jagged))
    compound, sf = jec.compound[JEC], muon[MUON]
    cases = {
        "JEC compound": (
            lambda: compound.evaluate(events.area, events.eta, events.pt, rho),
            lambda: compound.evaluate(flat["area"], flat["eta"], flat["pt"], flat_rho),
        ),
        "muon ID SF": (
            lambda: sf.evaluate("2018_UL", abs(events.eta), events.pt, "sf"),
            lambda: sf.evaluate("2018_UL", np.abs(flat["eta"]), flat["pt"], "sf"),
        ),
    }
    n = len(flat["pt"])
    for name, (jagged_call, flat_call) in cases.items():
        t_jagged, t_flat = best_of_pair(jagged_call, flat_call, 2 * repeats)
        print(
            f"jagged/flat, {name}, {n:,} objects: jagged {t_jagged * 1e3:.1f} ms, flat "
            f"{t_flat * 1e3:.1f} ms, ratio {t_jagged / t_flat:.2f} (goal <= 1.2)"
        )


def jit_over_eager(data: pathlib.Path, repeats: int) -> None:
    cset = corrax.CorrectionSet.from_file(data / "corrections/JME__2018_UL__jet_jerc.json.gz")
    compound = cset.compound[JEC]
    lowered = compound.lower()
    events, rho = jets(100_000)
    collection = Jagged.from_awkward(events)
    combos = collection.combinations(3)
    rho_slots = jnp.zeros(collection.event_slots).at[: len(rho)].set(rho)

    def trijet_chosen(combos, cartesian):
        # the highest-pt triple (no gradient through the choice), then its mass
        chosen = combos.best(kinematics.pt(*(combos.total(c) for c in cartesian[:2])))
        return kinematics.mass(*kinematics.combination_p4(chosen, cartesian))

    def trijet_all(combos, cartesian):
        # the same through the masses of every trijet (select_best), for comparison
        p4 = kinematics.combination_p4(combos, cartesian)
        return combos.select_best(kinematics.pt(*p4), kinematics.mass(*p4))

    def jit_objective(scale, lowered, collection, combos, rho, trijet=trijet_chosen):
        raw = collection["pt"] * scale
        pt = raw * lowered(collection["area"], collection["eta"], raw, collection.broadcast(rho))
        cartesian = kinematics.to_cartesian(
            pt, collection["eta"], collection["phi"], collection["mass"]
        )
        return collection.sum(pt).sum() + trijet(combos, cartesian).sum()

    jit_vg = jax.jit(jax.value_and_grad(jit_objective))
    jit_all_vg = jax.jit(jax.value_and_grad(functools.partial(jit_objective, trijet=trijet_all)))

    ak.jax.register_and_check()
    vector.register_awkward()
    events_jax, rho_jax = ak.to_backend(events, "jax"), ak.Array(rho, backend="jax")

    def eager_objective(scale):
        raw = events_jax.pt * scale
        pt = raw * compound.evaluate(events_jax.area, events_jax.eta, raw, rho_jax)
        p4 = ak.zip(
            {"pt": pt, "eta": events_jax.eta, "phi": events_jax.phi, "mass": events_jax.mass},
            with_name="Momentum4D",
        )
        triples = ak.combinations(p4, 3, fields=["a", "b", "c"])
        key = jax.lax.stop_gradient((triples.a + triples.b + triples.c).pt)
        best = ak.argmax(key, axis=1, keepdims=True)
        # the JAX backend returns the int maximum, not None, for events without triples
        best = ak.mask(best, ak.num(key, axis=1) > 0)
        # the chosen triple's mass only (1.5x faster than the masses of all triples)
        chosen = ak.flatten(triples[best], axis=1)
        return ak.sum(pt) + ak.sum(ak.fill_none((chosen.a + chosen.b + chosen.c).mass, 0.0))

    eager_vg = jax.value_and_grad(eager_objective)
    arguments = (1.01, lowered, collection, combos, rho_slots)
    t_jit, t_all = best_of_pair(lambda: jit_vg(*arguments), lambda: jit_all_vg(*arguments), repeats)
    t_eager = best_of(lambda: eager_vg(1.01), max(1, repeats // 3))
    jit_value, eager_value = jit_vg(*arguments), eager_vg(1.01)
    print(
        f"value+grad at {len(rho):,} events: jit path {t_jit * 1e3:.1f} ms, eager awkward-JAX "
        f"{t_eager * 1e3:.0f} ms, speedup {t_eager / t_jit:.1f}x (goal >= 10); "
        f"values agree to {abs(float(jit_value[0]) / float(eager_value[0]) - 1):.1e}, "
        f"gradients to {abs(float(jit_value[1]) / float(eager_value[1]) - 1):.1e}"
    )
    print(
        f"jit path through every trijet's mass (select_best): {t_all * 1e3:.1f} ms, "
        f"{t_all / t_jit:.1f}x the chosen-triple form (best)"
    )


class _Processor:
    """JEC-corrected jet pt histogram weighted by the product of muon scale factors,
    with corrax or correctionlib evaluating the corrections."""

    def __init__(self, library: str, data: pathlib.Path):
        if library == "corrax":
            load = corrax.CorrectionSet.from_file
        else:
            load = correctionlib.CorrectionSet.from_file
        self.jec = load(str(data / "corrections/JME__2018_UL__jet_jerc.json.gz")).compound[JEC]
        self.muon = load(str(data / "corrections/MUO__2018_UL__muon_Z.json.gz"))[MUON]

    def process(self, events):
        jax.config.update("jax_enable_x64", True)
        muons = events.Muon[(events.Muon.pt > 15) & (abs(events.Muon.eta) < 2.4)]
        weight = ak.prod(self.muon.evaluate("2018_UL", abs(muons.eta), muons.pt, "sf"), axis=1)
        jets = events.Jet
        raw = jets.pt * (1 - jets.rawFactor)
        pt = raw * self.jec.evaluate(jets.area, jets.eta, raw, events.fixedGridRhoFastjetAll)
        out = hist.Hist.new.Reg(25, 0, 500, name="pt").Weight()
        out.fill(pt=ak.flatten(pt), weight=ak.flatten(ak.broadcast_arrays(weight, pt)[0]))
        return {"pt": out}

    def postprocess(self, accumulator):
        return accumulator


def processor_throughput(data: pathlib.Path, files: list[str], label: str) -> None:
    from coffea import processor
    from coffea.nanoevents import NanoAODSchema

    fileset = {"sample": files}
    results = {}
    for library in ("corrax", "correctionlib"):
        instance = type("P", (_Processor, processor.ProcessorABC), {})(library, data)
        runner = processor.Runner(
            executor=processor.IterativeExecutor(status=False), schema=NanoAODSchema
        )
        runner({"sample": files[:1]}, processor_instance=instance, treename="Events")  # warm up
        start = time.perf_counter()
        out = runner(fileset, processor_instance=instance, treename="Events")
        results[library] = (time.perf_counter() - start, out["pt"])
    n_events = sum(uproot.open(f)["Events"].num_entries for f in files)
    agree = np.allclose(results["corrax"][1].values(), results["correctionlib"][1].values())
    print(
        f"coffea processor, {label}, {n_events:,} events (IterativeExecutor): corrax "
        f"{n_events / results['corrax'][0]:,.0f} events/s, correctionlib "
        f"{n_events / results['correctionlib'][0]:,.0f} events/s; histograms agree: {agree}"
    )


def generated_files(cache: pathlib.Path, data: pathlib.Path) -> list[str]:
    """The ttbar files of the demo's generated sample (made, or reused, in ``cache``)."""
    from corrax.agc.corrections import JEC_FILE
    from corrax.agc.sample.generate import generate
    from corrax.agc.sample.inputs import from_generated

    generate(cache, 20_000, 1, jec_file=data / "corrections" / JEC_FILE, progress=False)
    return list(from_generated(cache)["ttbar__nominal"]["files"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--cache",
        type=pathlib.Path,
        default=None,
        help="folder of the demo's generated sample (made if missing): the processor "
        "then also runs on its ttbar files",
    )
    args = parser.parse_args(argv)
    if not (args.data / "corrections").is_dir():
        print(f"note: {args.data} not found; the columnar benchmarks need the real files")
        return 0
    jagged_over_flat(args.data, args.repeats)
    jit_over_eager(args.data, args.repeats)
    nano = str(args.data / "nanoaod/nano_dy.root")
    processor_throughput(args.data, [nano] * 25, "nano_dy.root read 25 times")
    if args.cache is not None:
        processor_throughput(args.data, generated_files(args.cache, args.data), "generated ttbar")
    return 0


if __name__ == "__main__":
    sys.exit(main())
