"""Generate the AGC sample: Pythia 8 → FastJet → detector emulation → NanoAOD files.

``generate(folder, size, seed)`` writes, per process, files of ``CHUNK`` events each
(``<process>__<variation>/s<seed>_c<chunk>.root``, an ``Events`` tree in NanoAOD layout
and a ``Runs`` tree with ``genEventCount``/``genEventSumw``), and a ``manifest.json``.
A job generates one chunk of nominal events and writes one file per variation of its
process: the variations are weights on the nominal events (``samples``), so their files
hold the same events, with the same event numbers. Jobs are independent (their seed is
derived from the sample seed, the process and the chunk index), run in parallel
processes, and files already on disk with the same settings are reused: a second run
costs nothing.

Events are skimmed before writing (``genEventSumw`` counts every generated event):
at least one lepton with pt > 25 GeV and at least four jets with pt > 20 GeV and
|η| < 2.5 — looser than the AGC selection, including its +3 % jet-pt variation.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from .detector import DetectorCorrections, emulate
from .samples import PROCESSES, Process
from .variations import VariationWeights

__all__ = ["CHUNK", "Job", "generate", "jobs_for", "kept_fraction", "run_job"]

CHUNK = 5000  # events per file
_BATCH = 500  # events per Pythia batch
FORMAT_VERSION = 11  # bump when the emulation changes: cached files are regenerated


@dataclass(frozen=True)
class Job:
    """One chunk of ``events`` events of one process (a file per variation).

    ``decay_events``/``total_events``: events of this chunk's decay configuration and
    of every configuration, over the process's chunks (for the decay weight, see
    ``samples``).
    """

    process: str
    chunk: int
    events: int
    seed: int
    jec_file: str | None
    decay_events: int = 0
    total_events: int = 0

    @property
    def decay(self) -> int:
        """Which of the process's decay configurations this file uses (alternating)."""
        return self.chunk % len(PROCESSES[self.process].decays)

    @property
    def job_seed(self) -> int:
        key = f"{self.seed}/{self.process}/{self.chunk}/{FORMAT_VERSION}"
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little") % 900_000_000

    def path(self, folder: Path, variation: str = "nominal") -> Path:
        return folder / f"{self.process}__{variation}" / f"s{self.seed}_c{self.chunk}.root"

    @property
    def first_event(self) -> int:
        """Event numbers are ``first_event + i``: distinct for every (seed < 10⁴,
        process, chunk < 10⁴) as long as a chunk has < 10⁷ events (a variation's file
        holds the nominal's events, and their numbers)."""
        process = list(PROCESSES).index(self.process)
        key = (self.seed % 10_000 * 16 + process) * 10_000 + self.chunk
        return key * 10_000_000 + 1


def jobs_for(size: int, seed: int, jec_file: str | None = None) -> list[Job]:
    """The chunks of a sample: ``size`` ttbar events, the rest in proportion."""
    jobs = []
    for process in PROCESSES.values():
        total = max(round(size * process.share), 1)
        # at most CHUNK events a file, every decay configuration equally often
        n_decays = len(process.decays)
        files = -(-max(-(-total // CHUNK), n_decays) // n_decays) * n_decays
        planned = [
            Job(process.name, chunk, int(events), seed, jec_file)
            for chunk, events in enumerate(np.diff(np.linspace(0, total, files + 1).round()))
        ]
        per_decay = [sum(j.events for j in planned if j.decay == i) for i in range(n_decays)]
        jobs += [replace(j, decay_events=per_decay[j.decay], total_events=total) for j in planned]
    return jobs


def _pythia(
    settings: Iterable[str],
    seed: int,
    name: str,
    add_process: Callable[[Any], None] | None = None,
) -> Any:
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    if add_process is not None:
        add_process(pythia)
    for line in settings:
        pythia.readString(line)
    pythia.readString("Random:setSeed = on")
    pythia.readString(f"Random:seed = {seed}")
    if not pythia.init():
        raise RuntimeError(f"Pythia did not initialise for {name}")
    return pythia


def _origin_of(hadron_ids: np.ndarray) -> np.ndarray:
    """Heaviest quark of hadrons (PDG ids): 5 (b), 4 (c) or 3 (lighter); 0 if not a
    hadron (|id| ≤ 100, or a diquark: tens digit 0)."""
    code = np.abs(hadron_ids) % 10_000
    hadron = (np.abs(hadron_ids) > 100) & ((code // 10) % 10 != 0)
    quark = np.where(code >= 1000, code // 1000, (code // 100) % 10)
    return np.where(hadron, np.where(quark >= 4, np.minimum(quark, 5), 3), 0)


def _lepton_origin(ids: np.ndarray, mother: np.ndarray, leptons: np.ndarray) -> np.ndarray:
    """NanoAOD's ``genPartFlav`` of final-state leptons (global indices ``leptons``):
    1 from a W, 15 from a τ from one, 5/4/3 from a b/c/light hadron, 0 otherwise;
    found by walking up ``mother``."""
    origin = np.zeros(len(leptons), np.int32)
    via_tau = np.zeros(len(leptons), bool)
    current = mother[leptons]
    open_ = np.ones(len(leptons), bool)
    for _ in range(500):
        if not open_.any():
            break
        pid = np.abs(ids[current])
        boson = open_ & (pid == 24)
        origin[boson] = np.where(via_tau[boson], 15, 1)
        hadron = open_ & ~boson & (_origin_of(ids[current]) > 0)
        origin[hadron] = _origin_of(ids[current][hadron])
        via_tau |= open_ & (pid == 15)
        parent = mother[current]
        root = parent == current
        open_ &= ~(boson | hadron | root)
        current = parent
    return origin


def _final_particles(events: ak.Array) -> tuple[ak.Array, ak.Array]:
    """(final-state particles, b and c hadrons) per event, from Pythia's record.

    Final state: ``id``, four-momentum (GeV) and ``origin`` (``_lepton_origin`` for e
    and μ, 0 otherwise). Heavy hadrons: every B and C hadron of the record (any
    status) with pt > 1 GeV, with ``flavour`` 5 or 4 and momentum, for the jet
    flavour.
    """
    prt = events.prt
    counts = ak.to_numpy(ak.num(prt))
    offsets = np.repeat(np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    ids = ak.to_numpy(ak.flatten(prt.id))
    status = ak.to_numpy(ak.flatten(prt.status))
    local_mother = ak.to_numpy(ak.flatten(prt.mother1))
    index = np.arange(len(ids))
    # mother1 = 0 points at the event's system line: a root
    mother = np.where(local_mother > 0, local_mother + offsets, index)
    p = {k: ak.to_numpy(ak.flatten(prt.p[k])) for k in ("px", "py", "pz", "e")}
    final = status > 0
    origin = np.zeros(len(ids), np.int32)
    leptons = np.flatnonzero(final & np.isin(np.abs(ids), (11, 13)))
    origin[leptons] = _lepton_origin(ids, mother, leptons)
    flavour = _origin_of(ids)
    heavy = (flavour >= 4) & (np.hypot(p["px"], p["py"]) > 1.0)

    def per_event(mask: np.ndarray, fields: dict[str, np.ndarray]) -> ak.Array:
        n = np.bincount(np.repeat(np.arange(len(counts)), counts)[mask], minlength=len(counts))
        return ak.unflatten(ak.zip({k: v[mask] for k, v in fields.items()}), n)

    particles = per_event(final, {"id": ids, **p, "origin": origin})
    hadrons = per_event(heavy, {"flavour": flavour.astype(np.int32), **p})
    return particles, hadrons


def _skim(columns: dict[str, Any]) -> np.ndarray:
    jets = columns["Jet"]
    good_jets = ak.sum((jets.pt > 20.0) & (abs(jets.eta) < 2.5), axis=1) >= 4
    leptons = ak.sum(columns["Muon"].pt > 25.0, axis=1) + ak.sum(
        columns["Electron"].pt > 25.0, axis=1
    )
    return ak.to_numpy(good_jets & (leptons >= 1))


def run_job(job: Job, folder: Path) -> list[dict[str, Any]]:
    """Generate one chunk (or reuse its files); returns a summary per file."""
    process = PROCESSES[job.process]
    paths = {variation: job.path(folder, variation) for variation in process.variations}
    cached = [_cached(path, job) for path in paths.values()]
    if all(meta is not None for meta in cached):
        return cached
    rng = np.random.default_rng(job.job_seed)
    pythia = _pythia(
        process.settings_for(job.decay), job.job_seed, job.process, process.add_process
    )
    detector = DetectorCorrections.from_file(job.jec_file)
    decay_weight = _decay_weight(pythia, process, job)
    reweight = VariationWeights(pythia, process) if len(process.variations) > 1 else None
    parts, hadron_parts, weights = [], [], []
    ratios: dict[str, list[np.ndarray]] = {name: [] for name in process.variations[1:]}
    for start in range(0, job.events, _BATCH):
        events = pythia.nextBatch(min(_BATCH, job.events - start))
        weights.append(ak.to_numpy(ak.firsts(events.info.weights)) * decay_weight)
        if reweight is not None:
            for name, ratio in reweight(events.info).items():
                ratios[name].append(ratio)
        final, hadrons = _final_particles(events)
        parts.append(final)
        hadron_parts.append(hadrons)
    particles = ak.concatenate(parts)
    weight = np.concatenate(weights)
    columns = emulate(particles, ak.concatenate(hadron_parts), detector, rng)
    keep = _skim(columns)
    out = {k: _float32(v[keep]) for k, v in columns.items()}
    out["genWeight"] = weight[keep].astype(np.float32)
    out["event"] = (job.first_event + np.flatnonzero(keep)).astype(np.uint64)
    out["run"] = np.ones(int(keep.sum()), np.uint32)
    out["luminosityBlock"] = np.full(int(keep.sum()), job.chunk + 1, np.uint32)
    ratio = {name: np.concatenate(values) for name, values in ratios.items()}
    # the nominal file carries every variation's weight ratio (like NanoAOD's PSWeight)
    nominal = {
        **out,
        **{f"VariationWeight_{k}": v[keep].astype(np.float32) for k, v in ratio.items()},
    }
    metas = [_write(paths["nominal"], folder, job, "nominal", nominal, weight)]
    for name, values in ratio.items():
        varied = weight * values
        file_columns = {**out, "genWeight": varied[keep].astype(np.float32)}
        metas.append(_write(paths[name], folder, job, name, file_columns, varied))
    return metas


def _cached(path: Path, job: Job) -> dict[str, Any] | None:
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("job") == _job_dict(job):
            return meta
    return None


def _write(
    path: Path,
    folder: Path,
    job: Job,
    variation: str,
    out: dict[str, Any],
    weight: np.ndarray,
) -> dict[str, Any]:
    """Write one file (``weight``: every generated event's, for the ``Runs`` tree)."""
    import uproot

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
        "variation": variation,
        "file": str(path.relative_to(folder)),
        "generated": job.events,
        "written": len(out["event"]),
        "sum_weights": float(weight.sum()),
    }
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return meta


def _decay_weight(pythia: Any, process: Process, job: Job) -> float:
    """Event weight of the job's decay configuration: its share of the process's
    branching fraction over its share of the events (1 with one configuration)."""
    if len(process.decays) == 1:
        return 1.0
    branching: dict[int, dict[tuple[int, ...], float]] = {}
    for decay in process.decays:
        for particle, products in decay.bosons:
            entry = pythia.particleData.particleDataEntryPtr(particle)
            total = 0.0
            for i in range(entry.sizeChannels()):
                channel = entry.channel(i)
                found = {abs(channel.product(j)) for j in range(channel.multiplicity())}
                total += channel.bRatio() if found & set(products) else 0.0
            branching.setdefault(particle, {})[products] = total
    fractions = [decay.fraction(branching) for decay in process.decays]
    return fractions[job.decay] / sum(fractions) * job.total_events / job.decay_events


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
        "chunk": job.chunk,
        "events": job.events,
        "decay_events": job.decay_events,
        "total_events": job.total_events,
        "seed": job.seed,
        "jec_file": None if job.jec_file is None else Path(job.jec_file).name,
        "format": FORMAT_VERSION,
    }


# the cross section only: no showers, no hadrons, no resonance decays (their open
# channels enter the cross section through the branching fractions, not the decays)
_HARD_ONLY = (
    "PartonLevel:all = off",
    "HadronLevel:all = off",
    "ProcessLevel:resonanceDecays = off",
)


def _sigma(
    settings: tuple[str, ...],
    seed: int,
    events: int,
    add_process: Callable[[Any], None] | None = None,
) -> float:
    """Pythia's cross section (pb) for ``settings``, hard process only."""
    pythia = _pythia((*settings, *_HARD_ONLY), seed, "cross section", add_process)
    pythia.nextBatch(events)
    return pythia.infoPython().sigmaGen() * 1e9  # mb → pb


def kept_fraction(process: Process, seed: int, events: int | None = None) -> float:
    """Σ over decay configurations of σ(restricted) / σ(reference), measured.

    ``events`` per cross-section run (default 20,000 against a ``reference`` of other
    settings, W+jets; 1,000 otherwise: a restriction of the resonances' decay
    channels only, without resonance decays, changes each event's cross section by
    the open fraction alone, so the ratio is exact at any size — 1,000 and 20,000
    events agree to 1e-15 for every top process — and tW's Python matrix element
    took 25 s for 20,000)."""
    from .samples import _COMMON

    if events is None:
        events = 20_000 if process.reference is not None else 1_000
    reference = process.reference or process.settings
    add = process.add_process if process.reference is None else None
    inclusive = _sigma((*_COMMON, *reference), seed, events, add)
    restricted = [
        _sigma(process.settings_for(i), seed, events, process.add_process)
        for i in range(len(process.decays))
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
    for meta in (meta for metas in results for meta in metas):
        job = meta["job"]
        entry = samples.setdefault(job["process"], {}).setdefault(
            meta["variation"], {"files": [], "generated": 0, "sum_weights": 0.0}
        )
        entry["files"].append(meta["file"])
        entry["generated"] += meta["generated"]
        entry["sum_weights"] += meta["sum_weights"]
    for name, variations in samples.items():
        for entry in variations.values():
            entry["kept_fraction"] = kept[name]
            process = PROCESSES[name]
            entry["cross_section"] = process.cross_section * kept[name] * process.normalisation
    return {
        "size": size,
        "seed": seed,
        "jec_file": None if jec is None else Path(jec).name,
        "format": FORMAT_VERSION,
        "samples": samples,
    }
