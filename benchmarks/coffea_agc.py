"""Benchmark: corrax as a drop-in for correctionlib inside a coffea processor.

``python benchmarks/coffea_agc.py --cache agc-sample`` (also run by ``make bench``)
runs, one pinned core, in one process and on the same generated files (every nominal
dataset of the demo's sample):

1. a processor written the way the AGC writes its own: ``CorrectionSet.from_file`` in
   ``__init__``, correctionlib-style ``evaluate`` calls on awkward arrays inside
   ``process`` — the real JEC compound and JES uncertainty on the jets, the muon and
   electron ID scale factors, the pileup weight, the AGC's ``event_systematics``
   b-tag variations, several jet and weight variations per chunk — through coffea's
   ``Runner`` with its default settings (``IterativeExecutor``; the processor is
   pickled once and unpickled for every chunk), once with ``correctionlib`` and once
   with ``corrax`` loading the files (the only difference). Goal: corrax ≥ 1.2×
   correctionlib's events/s; the histograms agree.
2. the project's own AGC processor (``corrax.agc.hard``: every AGC and real-style
   variation) through the same ``Runner``. Goal: ≥ 2× the correctionlib run of 1.

Each run is a fresh process (imports done before the clock starts): events/s count
every event of the files, every compilation, loading and unpickling included. Each
run is then repeated in its process, compiled code and loaded files reused.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import _pin_single_thread

if __name__ == "__main__":
    _pin_single_thread()

import argparse
import json
import pathlib
import subprocess
import tempfile
import time
import warnings

import awkward as ak
import correctionlib
import hist
import jax
import numpy as np
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import corrax
from corrax.agc import corrections as agc_files

warnings.simplefilter("ignore")
REPO = pathlib.Path(__file__).resolve().parents[1]
UNCERTAINTY = "Summer19UL18_V5_MC_Total_AK4PFchs"


class AGCStyleProcessor(processor.ProcessorABC):
    """HT in 4j1b with the AGC v2 selection, corrections as the AGC's code calls them."""

    def __init__(self, library: str, corrections: pathlib.Path, agc_file: pathlib.Path):
        load = {"corrax": corrax, "correctionlib": correctionlib}[library].CorrectionSet.from_file
        jerc = load(str(corrections / agc_files.JEC_FILE))
        self.jec = jerc.compound[agc_files.JEC_NAMES["jec"]]
        self.uncertainty = jerc[UNCERTAINTY]
        self.muon = load(str(corrections / agc_files.MUON_FILE))[agc_files.MUON_SF]
        self.electron = load(str(corrections / agc_files.ELECTRON_FILE))[agc_files.ELECTRON_SF]
        self.pileup = load(str(corrections / agc_files.PILEUP_FILE))[agc_files.PILEUP]
        self.systematics = load(str(agc_file))["event_systematics"]

    def process(self, events):
        with jax.enable_x64(True):  # scoped: correctionlib's precision for corrax
            return self._process(events)

    def _process(self, events):
        histogram = (
            hist.Hist.new.Reg(25, 50, 550, name="ht")
            .StrCat([], name="variation", growth=True)
            .Weight()
        )
        jets = events.Jet
        raw = jets.pt * (1 - jets.rawFactor)
        rho = ak.broadcast_arrays(events.fixedGridRhoFastjetAll, raw)[0]
        pt = raw * self.jec.evaluate(jets.area, jets.eta, raw, rho)
        uncertainty = self.uncertainty.evaluate(jets.eta, pt)
        electrons = events.Electron
        electrons = electrons[
            (electrons.pt > 30) & (abs(electrons.eta) < 2.1) & (electrons.cutBased == 4)
            & (electrons.sip3d < 4)
        ]  # fmt: skip
        muons = events.Muon
        muons = muons[
            (muons.pt > 30) & (abs(muons.eta) < 2.1) & muons.tightId & (muons.sip3d < 4)
            & (muons.pfRelIso04_all < 0.15)
        ]  # fmt: skip
        one_lepton = (ak.num(electrons) + ak.num(muons)) == 1
        n_true = events.Pileup.nTrueInt
        weight = events.metadata["norm"] * ak.values_astype(events.genWeight, np.float64)
        weights = {}
        for direction, key_mu, key_e in (("nominal", "sf", "sf"), ("up", "systup", "sfup")):
            muon = ak.prod(self.muon.evaluate("2018_UL", abs(muons.eta), muons.pt, key_mu), axis=1)
            electron = ak.prod(
                self.electron.evaluate("2018", key_e, "Tight", electrons.eta, electrons.pt), axis=1
            )
            pileup = self.pileup.evaluate(n_true, direction)
            weights[direction] = weight * muon * electron * pileup
        variations = {
            "nominal": pt,
            "pt_scale_up": pt * 1.03,
            "jes_up": pt * (1 + uncertainty),
            "jes_down": pt * (1 - uncertainty),
        }
        for name, jet_pt in variations.items():
            selected = jets[(jet_pt > 30) & (abs(jets.eta) < 2.4) & ((jets.jetId & 4) != 0)]
            selected_pt = jet_pt[(jet_pt > 30) & (abs(jets.eta) < 2.4) & ((jets.jetId & 4) != 0)]
            n_b = ak.sum(selected.btagCSVV2 > 0.5, axis=1)
            region = one_lepton & (ak.num(selected_pt) >= 4) & (n_b == 1)
            ht = ak.sum(selected_pt[region], axis=1)
            histogram.fill(ht=ht, variation=name, weight=weights["nominal"][region])
            if name != "nominal":
                continue
            histogram.fill(ht=ht, variation="weights_up", weight=weights["up"][region])
            leading = selected_pt[region]
            for direction in ("up", "down"):
                for i in range(4):
                    factor = self.systematics.evaluate("btag_var", direction, leading[:, i])
                    histogram.fill(
                        ht=ht,
                        variation=f"btag_var_{i}_{direction}",
                        weight=weights["nominal"][region] * factor,
                    )
        return {"4j1b": histogram, "events": len(events)}

    def postprocess(self, accumulator):
        return accumulator


def _runner() -> processor.Runner:
    """coffea's Runner with its default settings (processor compression included)."""
    return processor.Runner(
        executor=processor.IterativeExecutor(status=False), schema=NanoAODSchema
    )


def _timed(fileset: dict, instance: processor.ProcessorABC) -> tuple[float, dict]:
    start = time.perf_counter()
    out = _runner()(fileset, processor_instance=instance, treename="Events")
    return time.perf_counter() - start, out


def _fileset(cache: pathlib.Path) -> dict:
    from corrax.agc.sample.inputs import from_generated

    return {k: v for k, v in from_generated(cache).items() if k.endswith("__nominal")}


def _measure(kind: str, corrections: pathlib.Path, agc_file: pathlib.Path, cache, out) -> None:
    """One library's run in this fresh process: cold (every compilation included),
    then warm (the same processor again, in the same process)."""
    fileset = _fileset(cache)
    if kind == "corrax.agc":
        from corrax.agc.corrections import RealCorrections, load_systematics
        from corrax.agc.hard import Analysis
        from corrax.agc.hard.processor import AGCProcessor

        analysis = Analysis(RealCorrections.from_folder(corrections), load_systematics(agc_file))
        make = lambda: AGCProcessor(analysis)
    else:
        make = lambda: AGCStyleProcessor(kind, corrections, agc_file)
    cold, output = _timed(fileset, make())
    warm, _ = _timed(fileset, make())
    histogram = output.get("4j1b")
    values = {}
    if kind != "corrax.agc":
        values = {v: histogram[:, v].values().tolist() for v in histogram.axes["variation"]}
    out.write_text(json.dumps({"events": output["events"], "cold": cold, "warm": warm,
                               "values": values}))  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--cache", type=pathlib.Path, default=REPO / "agc-sample")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one run
    parser.add_argument("--out", type=pathlib.Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    corrections = args.data / "corrections"
    agc_file = args.data / "agc" / "corrections.json"
    if not corrections.is_dir() or not agc_file.exists():
        print(f"note: {args.data} not found; the coffea benchmark needs the real files")
        return 0
    if args.measure:
        _measure(args.measure, corrections, agc_file, args.cache, args.out)
        return 0
    from corrax.agc.sample.generate import generate

    # the demo's size and seed: `make demo` and `make bench` share one generated sample
    generate(args.cache, 20_000, 1, jec_file=corrections / agc_files.JEC_FILE, progress=False)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("correctionlib", "corrax", "corrax.agc"):
            out = pathlib.Path(folder) / f"{kind}.json"
            # a fresh process per run: nothing compiled or loaded by another run is reused
            command = [sys.executable, __file__, "--measure", kind, "--out", str(out)]
            command += ["--data", str(args.data), "--cache", str(args.cache)]
            subprocess.run(command, check=True)
            results[kind] = json.loads(out.read_text())
    n_events = results["corrax"]["events"]
    rate = {k: {s: n_events / r[s] for s in ("cold", "warm")} for k, r in results.items()}
    ours, theirs = results["corrax"]["values"], results["correctionlib"]["values"]
    agree = set(ours) == set(theirs) and all(
        np.allclose(ours[v], theirs[v], rtol=1e-10, atol=1e-9) for v in theirs
    )
    base = rate["correctionlib"]["cold"]
    print(
        f"coffea Runner (default settings, IterativeExecutor), AGC-style processor, "
        f"{n_events:,} events, a fresh process each, every compilation included: "
        f"correctionlib {base:,.0f} events/s, corrax {rate['corrax']['cold']:,.0f} events/s "
        f"({rate['corrax']['cold'] / base:.2f}x, goal >= 1.2x); histograms agree: {agree}. "
        f"Run again in the same process: correctionlib {rate['correctionlib']['warm']:,.0f}, "
        f"corrax {rate['corrax']['warm']:,.0f} events/s"
    )
    agc = rate["corrax.agc"]
    print(
        f"the project's AGC processor (every variation): {agc['cold']:,.0f} events/s "
        f"({agc['cold'] / base:.2f}x the correctionlib run, goal >= 2x); run again in the "
        f"same process {agc['warm']:,.0f} events/s ({agc['warm'] / base:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
