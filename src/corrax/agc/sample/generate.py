"""Generate the AGC sample: Pythia 8 → FastJet → detector emulation → NanoAOD files.

``generate(folder, size, seed)`` writes, per process and variation, files of
``CHUNK`` events each (``<process>__<variation>/s<seed>_c<chunk>.root``, an ``Events``
tree in NanoAOD layout and a ``Runs`` tree with ``genEventCount``/``genEventSumw``),
and a ``manifest.json``. Jobs are independent (their seed is derived from the sample
seed, the process, the variation and the chunk index), run in parallel processes,
and a file already on disk with the same settings is reused: a second run costs
nothing.

Events are skimmed before writing (``genEventSumw`` counts every generated event):
at least one lepton with pt > 25 GeV and at least four jets with pt > 20 GeV and
|η| < 2.5 — looser than the AGC selection, including its +3 % jet-pt variation.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from .detector import DetectorCorrections, emulate
from .samples import PROCESSES, Process

__all__ = ["CHUNK", "Job", "generate", "jobs_for", "kept_fraction", "run_job"]

CHUNK = 5000  # events per file
_BATCH = 500  # events per Pythia batch
_VARIATION_SHARE = 0.4  # ttbar variations relative to nominal
FORMAT_VERSION = 8  # bump when the emulation changes: cached files are regenerated


@dataclass(frozen=True)
class Job:
    """One output file: ``events`` events of one process/variation."""

    process: str
    variation: str
    chunk: int
    events: int
    seed: int
    jec_file: str | None

    @property
    def decay(self) -> int:
        """Which of the process's decay configurations this file uses (alternating)."""
        return self.chunk % len(PROCESSES[self.process].decays)

    @property
    def job_seed(self) -> int:
        key = f"{self.seed}/{self.process}/{self.variation}/{self.chunk}/{FORMAT_VERSION}"
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little") % 900_000_000

    def path(self, folder: Path) -> Path:
        return folder / f"{self.process}__{self.variation}" / f"s{self.seed}_c{self.chunk}.root"

    @property
    def first_event(self) -> int:
        return (self.job_seed % 10_000) * 10_000_000 + 1


def jobs_for(size: int, seed: int, jec_file: str | None = None) -> list[Job]:
    """The files of a sample: ``size`` ttbar nominal events, the rest in proportion."""
    jobs = []
    for process in PROCESSES.values():
        for variation in process.variations:
            share = process.share * (1.0 if variation == "nominal" else _VARIATION_SHARE)
            total = max(round(size * share), 1)
            for chunk, start in enumerate(range(0, total, CHUNK)):
                n = min(CHUNK, total - start)
                jobs.append(Job(process.name, variation, chunk, n, seed, jec_file))
    return jobs


def _pythia(settings: Iterable[str], seed: int, name: str) -> Any:
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for line in settings:
        pythia.readString(line)
    pythia.readString("Random:setSeed = on")
    pythia.readString(f"Random:seed = {seed}")
    if not pythia.init():
        raise RuntimeError(f"Pythia did not initialise for {name}")
    return pythia


def _descends_from(mother: np.ndarray, ancestors: np.ndarray) -> np.ndarray:
    """Per particle (global indices): does its mother1 chain reach ``ancestors``?"""
    hit = np.zeros(len(mother), bool)
    current = np.arange(len(mother))
    is_target = np.zeros(len(mother), bool)
    is_target[ancestors] = True
    for _ in range(200):
        hit |= is_target[current]
        parent = mother[current]
        if np.all(parent == current):
            break
        current = parent
    return hit


def _final_particles(events: ak.Array, remove_b: bool, rng: np.random.Generator) -> ak.Array:
    prt = events.prt
    if remove_b:
        # tW emulation: drop one top's decay b quark and everything it showers into
        counts = ak.to_numpy(ak.num(prt))
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        ids = ak.to_numpy(ak.flatten(prt.id))
        local_mother = ak.to_numpy(ak.flatten(prt.mother1))
        mother = np.where(local_mother > 0, local_mother + np.repeat(offsets, counts), -1)
        mother = np.where(mother < 0, np.arange(len(ids)), mother)
        from_top = (np.abs(ids) == 5) & (np.abs(ids[mother]) == 6)
        sign = np.where(rng.uniform(size=len(counts)) < 0.5, 1, -1)
        chosen = from_top & (np.sign(ids) == np.repeat(sign, counts))
        keep = ~_descends_from(mother, np.flatnonzero(chosen))
        prt = prt[ak.unflatten(keep, counts)]
    final = prt[prt.status > 0]
    return ak.zip(
        {"id": final.id, "px": final.p.px, "py": final.p.py, "pz": final.p.pz, "e": final.p.e}
    )


def _skim(columns: dict[str, Any]) -> np.ndarray:
    jets = columns["Jet"]
    good_jets = ak.sum((jets.pt > 20.0) & (abs(jets.eta) < 2.5), axis=1) >= 4
    leptons = ak.sum(columns["Muon"].pt > 25.0, axis=1) + ak.sum(
        columns["Electron"].pt > 25.0, axis=1
    )
    return ak.to_numpy(good_jets & (leptons >= 1))


def run_job(job: Job, folder: Path) -> dict[str, Any]:
    """Generate one file (or reuse it); returns its summary."""
    path = job.path(folder)
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("job") == _job_dict(job):
            return meta
    import uproot

    process = PROCESSES[job.process]
    rng = np.random.default_rng(job.job_seed)
    settings = process.settings_for(job.variation, job.decay)
    pythia = _pythia(settings, job.job_seed, f"{job.process}/{job.variation}")
    detector = DetectorCorrections.from_file(job.jec_file)
    parts, weights = [], []
    for start in range(0, job.events, _BATCH):
        events = pythia.nextBatch(min(_BATCH, job.events - start))
        weights.append(ak.to_numpy(ak.firsts(events.info.weights)))
        parts.append(_final_particles(events, process.remove_b, rng))
    particles = ak.concatenate(parts)
    weight = np.concatenate(weights)
    columns = emulate(particles, detector, rng)
    keep = _skim(columns)
    out = {k: _float32(v[keep]) for k, v in columns.items()}
    out["genWeight"] = weight[keep].astype(np.float32)
    out["event"] = (job.first_event + np.flatnonzero(keep)).astype(np.uint64)
    out["run"] = np.ones(int(keep.sum()), np.uint32)
    out["luminosityBlock"] = np.full(int(keep.sum()), job.chunk + 1, np.uint32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with uproot.recreate(tmp) as file:
        # NanoAOD naming: one counter nJet per collection, branches Jet_pt, ...
        file.mktree(
            "Events",
            {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in out.items()},
            counter_name=lambda counted: "n" + counted,
            field_name=lambda outer, inner: f"{outer}_{inner}",
        )
        file["Events"].extend(out)
        file["Runs"] = {
            "run": np.array([1], np.uint32),
            "genEventCount": np.array([job.events], np.int64),
            "genEventSumw": np.array([weight.sum()]),
            "genEventSumw2": np.array([(weight**2).sum()]),
        }
    os.replace(tmp, path)
    meta = {
        "job": _job_dict(job),
        "file": str(path.relative_to(folder)),
        "generated": job.events,
        "written": int(keep.sum()),
        "sum_weights": float(weight.sum()),
    }
    meta_path.write_text(json.dumps(meta, indent=1))
    return meta


def _float32(array: Any) -> Any:
    """float64 columns as float32, like NanoAOD."""
    if not isinstance(array, ak.Array):
        return array.astype(np.float32) if array.dtype == np.float64 else array
    array = ak.to_packed(array)
    fields = {}
    for name in array.fields:
        column = array[name]
        if ak.to_layout(column).content.dtype == np.float64:
            column = ak.values_astype(column, np.float32)
        fields[name] = column
    return ak.zip(fields)


def _job_dict(job: Job) -> dict[str, Any]:
    return {
        "process": job.process,
        "variation": job.variation,
        "chunk": job.chunk,
        "events": job.events,
        "seed": job.seed,
        "jec_file": None if job.jec_file is None else Path(job.jec_file).name,
        "format": FORMAT_VERSION,
    }


_HARD_ONLY = ("PartonLevel:all = off", "HadronLevel:all = off")


def _sigma(settings: tuple[str, ...], seed: int, events: int) -> float:
    """Pythia's cross section (pb) for ``settings``, hard process only."""
    pythia = _pythia((*settings, *_HARD_ONLY), seed, "cross section")
    pythia.nextBatch(events)
    return pythia.infoPython().sigmaGen() * 1e9  # mb → pb


def kept_fraction(process: Process, seed: int, events: int = 20_000) -> float:
    """Σ over decay configurations of σ(restricted) / σ(reference), measured."""
    from .samples import _COMMON

    reference = process.reference or process.settings
    inclusive = _sigma((*_COMMON, *reference), seed, events)
    restricted = [
        _sigma(process.settings_for("nominal", i), seed, events) for i in range(len(process.decays))
    ]
    return sum(restricted) / inclusive


def generate(
    folder: str | Path,
    size: int = 20_000,
    seed: int = 1,
    workers: int | None = None,
    jec_file: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate (or reuse) the sample under ``folder``; returns the manifest.

    ``size``: ttbar nominal events (other processes in proportion, see
    ``samples.PROCESSES``); ``workers``: processes (default: the CPU count);
    ``jec_file``: the real JME file the detector emulation inverts (None: no JEC).
    """
    from tqdm.auto import tqdm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    jec = None if jec_file is None else str(Path(jec_file).resolve())
    jobs = jobs_for(size, seed, jec)
    workers = workers or os.cpu_count() or 1
    # largest first, so the pool finishes together
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i].events)
    results: list[Any] = [None] * len(jobs)
    bar = tqdm(
        total=sum(j.events for j in jobs), unit="ev", desc="generating", disable=not progress
    )
    # spawn, not fork: the parent may already run JAX threads (fork could deadlock)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_job, jobs[i], folder): i for i in order}
        known = _known_fractions(folder, seed)
        fractions = {
            name: pool.submit(kept_fraction, p, seed)
            for name, p in PROCESSES.items()
            if name not in known
        }
        from concurrent.futures import as_completed

        for future in as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            bar.update(jobs[i].events)
        kept = {**known, **{name: future.result() for name, future in fractions.items()}}
    bar.close()
    (folder / f"kept_fractions_s{seed}.json").write_text(
        json.dumps({"format": FORMAT_VERSION, "kept": kept}, indent=1)
    )
    manifest = _manifest(results, size, seed, jec, kept)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _known_fractions(folder: Path, seed: int) -> dict[str, float]:
    """Kept fractions measured by an earlier run (same seed and format), if any."""
    path = folder / f"kept_fractions_s{seed}.json"
    if not path.exists():
        return {}
    stored = json.loads(path.read_text())
    return stored["kept"] if stored.get("format") == FORMAT_VERSION else {}


def _manifest(results, size, seed, jec, kept) -> dict[str, Any]:
    samples: dict[str, dict[str, Any]] = {}
    for meta in results:
        job = meta["job"]
        entry = samples.setdefault(job["process"], {}).setdefault(
            job["variation"], {"files": [], "generated": 0, "sum_weights": 0.0}
        )
        entry["files"].append(meta["file"])
        entry["generated"] += meta["generated"]
        entry["sum_weights"] += meta["sum_weights"]
    for name, variations in samples.items():
        for entry in variations.values():
            entry["kept_fraction"] = kept[name]
            entry["cross_section"] = PROCESSES[name].cross_section * kept[name]
    return {
        "size": size,
        "seed": seed,
        "jec_file": None if jec is None else Path(jec).name,
        "format": FORMAT_VERSION,
        "samples": samples,
    }
