"""Benchmark: jitted corrax against correctionlib, single thread, same inputs.

Run ``python benchmarks/run.py`` (or ``make bench``). Options: ``--n`` values per
input (default 2e6), ``--repeats`` (default 7, the median is reported), ``--data``
the directory of the real CMS files (default ``../shared/data/corrections`` relative
to the repository; their cases are skipped with a note when it is absent),
``--device {cpu,gpu}`` the JAX device for corrax, ``--case TEXT`` to run only the cases
whose name contains TEXT, ``--json PATH`` to also write the results as JSON.

Single thread. Before JAX is imported, this script

* sets ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``
  and ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``/``OPENBLAS_NUM_THREADS`` to 1;
* re-executes itself once under ``taskset -c <first allowed CPU>`` (normally CPU 0),
  or, without ``taskset``, pins itself with ``os.sched_setaffinity``.

Both libraries therefore run on one core. 64-bit mode is on (``jax_enable_x64``),
so that corrax computes in double precision like correctionlib.

Per case it measures, on the same inputs: corrax throughput (a ``jax.jit`` of
``evaluate`` with the string inputs closed over, inputs already on the device,
``block_until_ready``, one warm-up call), correctionlib throughput
(``Correction.evaluate`` on NumPy arrays), their ratio, the first-call time (trace +
lower + compile of a fresh ``jit`` of a freshly loaded correction, i.e.
``jit(f).lower(*x).compile()`` at the batch size ``--n``, which it can depend on), the
``value_and_grad`` time of ``sum(evaluate)`` (w.r.t. the first real input) over the
forward time, and the agreement of the values (relative difference <= 1e-12, NaN at
the same places). Then the first-call time of a Binning with 10, 10^3 and 10^5 bins,
and a chunk stream: 50 chunks of random sizes between 10^3 and 10^5 objects through
the real JEC compound and the real muon scale factor, evaluated eagerly (as a coffea
processor would, chunk after chunk), total time including every compilation, corrax
against correctionlib.
"""

from __future__ import annotations

import os
import shutil
import sys

_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
_PINNED_ENV = "CORRAX_BENCH_PINNED"


def _pin_single_thread() -> None:
    """One thread on one core; re-execs under ``taskset`` once. Call before importing JAX."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    flags = os.environ.get("XLA_FLAGS", "")
    if _XLA_FLAGS not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {_XLA_FLAGS}".strip()
    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    if _PINNED_ENV not in os.environ:
        taskset = shutil.which("taskset")
        if taskset:
            os.environ[_PINNED_ENV] = "taskset"
            script = os.path.abspath(sys.argv[0])
            os.execv(taskset, [taskset, "-c", str(cpu), sys.executable, script, *sys.argv[1:]])
        os.environ[_PINNED_ENV] = "sched_setaffinity"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


if __name__ == "__main__":
    _pin_single_thread()

import argparse
import datetime
import itertools
import json
import pathlib
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import correctionlib
import jax
import jax.numpy as jnp
import numpy as np

import corrax

jax.config.update("jax_enable_x64", True)

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "corrections"
JEC_FILE, JEC_NAME = "JME__2018_UL__jet_jerc.json.gz", "Summer19UL18_V5_MC_L1L2L3Res_AK4PFchs"
BTAG_FILE = "BTV__2018_UL__btagging.json.gz"
EGM_FILE, EGM_NAME = "EGM__2018_UL__electron.json.gz", "UL-Electron-ID-SF"
EGM_STRINGS = ("2018", "sf", "Tight")
JER_FILE = "JME__jer_smear__from_OSU-CMS_DisappTrks_v2.json.gz"

# Targets: corrax / correctionlib throughput ratio per case kind.
RATIO_TARGET = {"table": 3.0, "formula": 10.0, "compound": 3.0, "shape": 3.0}
GRAD_TARGET = 2.0  # value_and_grad time / forward time
FIRST_CALL_TARGET = {"compound": 2.0}  # seconds
RTOL = 1e-12

Args = list[Any]  # evaluate's positional inputs: NumPy arrays and Python str
Loader = Callable[[], tuple[Any, Any]]  # fresh (corrax, correctionlib) corrections


@dataclass
class Case:
    """One benchmark: how to load the correction in both libraries, and its inputs."""

    name: str
    kind: str  # "table", "formula", "compound", "shape", "prng" or "lwtnn" (no ratio target)
    load: Loader
    args: Args


@dataclass
class Result:
    case: str
    kind: str
    corrax_per_s: float
    correctionlib_per_s: float
    ratio: float
    ratio_target: float | None
    first_call_s: float
    first_call_target: float | None
    grad_over_forward: float | None
    max_abs_diff: float
    max_rel_diff: float
    values_ok: bool


# --- synthetic documents --------------------------------------------------------


def _document(name: str, inputs: Sequence[tuple[str, str]], data: dict) -> str:
    """A one-correction correctionlib document as JSON text."""
    correction = {
        "name": name,
        "version": 1,
        "inputs": [{"name": n, "type": t} for n, t in inputs],
        "output": {"name": "weight", "type": "real"},
        "data": data,
    }
    return json.dumps({"schema_version": 2, "corrections": [correction]})


def _text_loader(text: str, name: str) -> Loader:
    """Both libraries read the same JSON text (so they parse the same numbers)."""

    def load() -> tuple[Any, Any]:
        return (
            corrax.CorrectionSet.from_string(text)[name],
            correctionlib.CorrectionSet.from_string(text)[name],
        )

    return load


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in values]


def _pt_edges(nbins: int) -> list[float]:
    return _rounded(np.geomspace(10.0, 1000.0, nbins + 1))


def _eta_edges(rng: np.random.Generator, nbins: int) -> list[float]:
    inner = np.sort(rng.uniform(-2.5, 2.5, nbins - 1))
    return _rounded(np.concatenate([[-2.5], inner, [2.5]]))


def _multibinning(rng: np.random.Generator) -> dict:
    return {
        "nodetype": "multibinning",
        "inputs": ["eta", "pt"],
        "edges": [_eta_edges(rng, 10), _pt_edges(50)],
        "content": _rounded(rng.uniform(0.8, 1.2, 10 * 50)),
        "flow": "clamp",
    }


def _binning(rng: np.random.Generator, nbins: int) -> dict:
    return {
        "nodetype": "binning",
        "input": "pt",
        "edges": _pt_edges(nbins),
        "content": _rounded(rng.uniform(0.8, 1.2, nbins)),
        "flow": "clamp",
    }


def _lwtnn(rng: np.random.Generator) -> dict:
    """Like correctionlib's lwtnn example: log10(pt), log10(iso) into a 4-32-32-4 ReLU
    network with softmax outputs, and a ratio of them as the finalizer."""
    names, widths = ["pt", "eta", "phi", "iso"], [4, 32, 32, 4]
    layers = [
        {
            "architecture": "dense",
            "weights": _rounded(rng.normal(0.0, 1.0 / np.sqrt(n_in), n_in * n_out)),
            "bias": _rounded(rng.normal(0.0, 0.1, n_out)),
            "activation": "softmax" if n_out == 4 else "rectified",
        }
        for n_in, n_out in itertools.pairwise(widths)
    ]
    node: dict = {
        "nodetype": "lwtnn",
        "opaque": {
            "inputs": [{"name": n, "offset": 0.0, "scale": 1.0} for n in names],
            "layers": layers,
            "outputs": ["p11", "p10", "p01", "p00"],
        },
        "finalizer": {
            "nodetype": "formula",
            "expression": "(x[2]+x[3] > 0) * (x[1]+x[3]) / max(x[2]+x[3], 1e-10)",
            "parser": "TFormula",
            "variables": ["p00", "p01", "p10", "p11"],
        },
    }
    for name, floor in (("iso", "1e-6"), ("pt", "1e-4")):
        rule = {
            "nodetype": "formula",
            "expression": f"log10(max(x, {floor}))",
            "parser": "TFormula",
            "variables": [name],
        }
        node = {"nodetype": "transform", "input": name, "rule": rule, "content": node}
    return node


def synthetic_cases(n: int, rng: np.random.Generator) -> list[Case]:
    pt = rng.uniform(5.0, 1200.0, n)  # includes both flows (clamped)
    eta = rng.uniform(-3.0, 3.0, n)
    flavour = rng.choice(np.array([0, 4, 5]), n)
    category = {
        "nodetype": "category",
        "input": "flavour",
        "content": [{"key": k, "value": _multibinning(rng)} for k in (0, 4, 5)],
    }
    formula = {
        "nodetype": "formula",
        "expression": "[0]+[1]*log10(x)+[2]*exp(-[3]*x)",
        "parser": "TFormula",
        "variables": ["pt"],
        "parameters": [1.02, -0.012, 0.45, 0.031],
    }
    jet_pt = rng.uniform(15.0, 1000.0, n)
    real = [("pt", "real")]
    two = [("eta", "real"), ("pt", "real")]
    docs = [
        ("Binning (50 bins)", "table", _document("b", real, _binning(rng, 50)), [pt]),
        ("MultiBinning (10x50)", "table", _document("b", two, _multibinning(rng)), [eta, pt]),
        (
            "Category(int)+MultiBinning",
            "table",
            _document("b", [("flavour", "int"), *two], category),
            [flavour, eta, pt],
        ),
        ("Formula (4 params)", "formula", _document("b", real, formula), [jet_pt]),
        (
            "lwtnn 4-32-32-4 (ReLU, softmax)",
            "lwtnn",
            _document("b", [(v, "real") for v in ("pt", "eta", "phi", "iso")], _lwtnn(rng)),
            [jet_pt, eta, rng.uniform(-np.pi, np.pi, n), 10 ** rng.uniform(-7.0, 1.0, n)],
        ),
    ]
    return [Case(name, kind, _text_loader(text, "b"), args) for name, kind, text, args in docs]


# --- real CMS files ---------------------------------------------------------------


def _file_loader(path: pathlib.Path, name: str, compound: bool = False) -> Loader:
    def load() -> tuple[Any, Any]:
        ours = corrax.CorrectionSet.from_file(path)
        theirs = correctionlib.CorrectionSet.from_file(str(path))
        if compound:
            return ours.compound[name], theirs.compound[name]
        return ours[name], theirs[name]

    return load


def _edge_range(edges: Sequence[Any], low: float, high: float) -> tuple[float, float]:
    """The range of a binning axis, with infinite edges replaced by ``low``/``high``."""
    first, last = float(edges[0]), float(edges[-1])
    return (first if np.isfinite(first) else low), (last if np.isfinite(last) else high)


def _egm_node(path: pathlib.Path) -> Any:
    """The MultiBinning that ``EGM_STRINGS`` select in the electron ID file."""
    node = corrax.CorrectionSet.from_file(path)[EGM_NAME].model.data
    for key in EGM_STRINGS:
        node = next(item.value for item in node.content if item.key == key)
    return node


def real_cases(n: int, rng: np.random.Generator, data: pathlib.Path) -> list[Case]:
    cases = []
    path = data / JEC_FILE
    if path.is_file():
        area = rng.uniform(0.4, 0.6, n)
        eta = rng.uniform(-4.7, 4.7, n)
        pt = np.exp(rng.uniform(np.log(15.0), np.log(1000.0), n))
        rho = rng.uniform(0.0, 50.0, n)
        loader = _file_loader(path, JEC_NAME, compound=True)
        cases.append(Case("JEC compound L1L2L3Res", "compound", loader, [area, eta, pt, rho]))
    path = data / BTAG_FILE
    if path.is_file():
        flavour = np.full(n, 5)
        abseta = rng.uniform(0.0, 2.5, n)  # [0, 2.5): the abseta axis has flow "error"
        pt = rng.uniform(15.0, 1200.0, n)
        disc = rng.uniform(0.0, 1.0, n)
        args = ["central", flavour, abseta, pt, disc]
        cases.append(Case("deepJet_shape (b)", "shape", _file_loader(path, "deepJet_shape"), args))
    path = data / EGM_FILE
    if path.is_file():
        eta_edges, pt_edges = _egm_node(path).edges
        eta = rng.uniform(*_edge_range(eta_edges, -2.5, 2.5), n)
        pt = rng.uniform(*_edge_range(pt_edges, 0.0, 500.0), n)
        loader = _file_loader(path, EGM_NAME)
        cases.append(Case("electron ID SF (flow error)", "table", loader, [*EGM_STRINGS, eta, pt]))
    path = data / JER_FILE
    if path.is_file():
        jet_pt = rng.uniform(15.0, 1000.0, n)
        jet_eta = rng.uniform(-4.7, 4.7, n)
        matched = rng.uniform(size=n) < 0.7
        gen_pt = np.where(matched, jet_pt * rng.normal(1.0, 0.1, n), -1.0)
        rho = rng.uniform(0.0, 50.0, n)
        event = rng.integers(0, 10**9, n)
        jer = rng.uniform(0.05, 0.3, n)
        jersf = rng.uniform(1.0, 1.3, n)
        args = [jet_pt, jet_eta, gen_pt, rho, event, jer, jersf]
        cases.append(Case("JERSmear (HashPRNG)", "prng", _file_loader(path, "JERSmear"), args))
    return cases


# --- measurements -----------------------------------------------------------------


def median_times(calls: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median wall time of each call (after one warm-up call), blocking on JAX results.

    Each call's runs are consecutive: alternating the calls makes each one fault in
    fresh pages for its output (glibc returns the freed buffers of the other to the
    OS), which showed up as up to 2x slower, order-dependent corrax timings.
    """
    medians = {}
    for name, call in calls.items():
        jax.block_until_ready(call())
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(call())
            times.append(time.perf_counter() - start)
        medians[name] = statistics.median(times)
    return medians


def numeric_function(correction: Any, args: Args) -> Callable[..., jax.Array]:
    """``evaluate`` as a function of the numeric inputs only (strings closed over)."""
    positions = [i for i, a in enumerate(args) if not isinstance(a, str)]

    def evaluate(*numbers: jax.Array) -> jax.Array:
        full = list(args)
        for position, value in zip(positions, numbers, strict=True):
            full[position] = value
        return correction.evaluate(*full)

    return evaluate


def first_real(args: Args) -> int:
    """Index, among the numeric inputs, of the first real (floating) input."""
    numbers = [a for a in args if not isinstance(a, str)]
    return next(i for i, a in enumerate(numbers) if np.issubdtype(a.dtype, np.floating))


def compile_time(function: Callable, numbers: Sequence[jax.Array]) -> float:
    """Trace + lower + compile time of a fresh ``jit`` of ``function``."""
    start = time.perf_counter()
    jax.jit(function).lower(*numbers).compile()
    return time.perf_counter() - start


def compare(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float, bool]:
    """(max abs diff, max relative diff, ok): NaN must match NaN, else rel <= RTOL."""
    nan_ok = bool(np.array_equal(np.isnan(ours), np.isnan(theirs)))
    both = ~(np.isnan(ours) | np.isnan(theirs))
    diff = np.abs(ours[both] - theirs[both])
    scale = np.abs(theirs[both])
    rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), diff)
    max_abs = float(diff.max(initial=0.0))
    max_rel = float(rel.max(initial=0.0))
    return max_abs, max_rel, nan_ok and max_rel <= RTOL


def value_and_grad_call(
    function: Callable, numbers: Sequence[jax.Array], argnum: int
) -> Callable[[], Any] | None:
    """A call of jitted ``value_and_grad(sum(f))`` (None, with a note, if it fails)."""
    loss = jax.jit(jax.value_and_grad(lambda *x: jnp.sum(function(*x)), argnums=argnum))
    try:
        jax.block_until_ready(loss(*numbers))
    except (TypeError, ValueError, NotImplementedError) as exc:  # no derivative rule
        print(f"    value_and_grad failed: {type(exc).__name__}: {str(exc)[:120]}")
        return None
    return lambda: loss(*numbers)


def run_case(case: Case, repeats: int, device: jax.Device) -> Result:
    ours, theirs = case.load()  # freshly loaded: nothing lowered or traced yet
    numbers = [jax.device_put(a, device) for a in case.args if not isinstance(a, str)]
    function = numeric_function(ours, case.args)
    first_call = compile_time(function, numbers)

    forward = jax.jit(function)
    calls = {
        "corrax": lambda: forward(*numbers),
        "correctionlib": lambda: theirs.evaluate(*case.args),
    }
    grad = value_and_grad_call(function, numbers, first_real(case.args))
    if grad is not None:
        calls["value_and_grad"] = grad
    times = median_times(calls, repeats)
    max_abs, max_rel, ok = compare(
        np.asarray(forward(*numbers)), np.asarray(theirs.evaluate(*case.args))
    )
    n = len(numbers[0])
    grad_s = times.get("value_and_grad")
    return Result(
        case=case.name,
        kind=case.kind,
        corrax_per_s=n / times["corrax"],
        correctionlib_per_s=n / times["correctionlib"],
        ratio=times["correctionlib"] / times["corrax"],
        ratio_target=RATIO_TARGET.get(case.kind),
        first_call_s=first_call,
        first_call_target=FIRST_CALL_TARGET.get(case.kind),
        grad_over_forward=None if grad_s is None else grad_s / times["corrax"],
        max_abs_diff=max_abs,
        max_rel_diff=max_rel,
        values_ok=ok,
    )


def flatness(n: int, rng: np.random.Generator, device: jax.Device) -> dict[int, float]:
    """First-call (trace + compile) time of a Binning with 10, 10^3 and 10^5 bins."""
    x = jax.device_put(rng.uniform(5.0, 1200.0, n), device)
    times = {}
    for nbins in (10, 10**3, 10**5):
        text = _document("b", [("pt", "real")], _binning(rng, nbins))
        correction = corrax.CorrectionSet.from_string(text)["b"]
        times[nbins] = compile_time(correction.evaluate, [x])
    return times


MUON_FILE, MUON_NAME = "MUO__2018_UL__muon_Z.json.gz", "NUM_TightID_DEN_TrackerMuons"
N_CHUNKS, CHUNK_SIZES = 50, (1_000, 100_000)


def chunk_stream(data: pathlib.Path, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Total time of eager evaluation over a stream of chunks of varying size,
    including every compilation; freshly loaded corrections in both libraries."""
    sizes = rng.integers(*CHUNK_SIZES, N_CHUNKS)
    rows = []
    for label, file, name, compound in [
        ("JEC L1L2L3Res compound", JEC_FILE, JEC_NAME, True),
        ("muon ID SF", MUON_FILE, MUON_NAME, False),
    ]:
        path = data / file
        if not path.exists():
            continue
        ours, theirs = _file_loader(path, name, compound)()
        chunks = []
        for size in sizes:
            eta, pt = rng.uniform(-2.3, 2.3, size), rng.exponential(40.0, size) + 16.0
            if compound:
                chunks.append((rng.uniform(0.3, 0.7, size), eta, pt, rng.uniform(5, 40, size)))
            else:
                chunks.append(("2018_UL", np.abs(eta), pt, "sf"))
        times = {}
        for who, correction in [("corrax", ours), ("correctionlib", theirs)]:
            start = time.perf_counter()
            outputs = [np.asarray(correction.evaluate(*chunk)) for chunk in chunks]
            times[who] = time.perf_counter() - start
            if who == "corrax":
                mine = outputs
        worst = max(
            compare(a, np.asarray(theirs.evaluate(*c)))[1]
            for a, c in zip(mine, chunks, strict=True)
        )
        rows.append(
            {
                "case": label,
                "chunks": N_CHUNKS,
                "objects": int(sizes.sum()),
                "corrax_s": times["corrax"],
                "correctionlib_s": times["correctionlib"],
                "max_rel_diff": worst,
            }
        )
    return rows


# --- report -------------------------------------------------------------------------


def _mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def ratio_cell(r: Result) -> str:
    if r.ratio_target is None:
        return f"{r.ratio:.2f}x"
    return f"{r.ratio:.2f}x (≥{r.ratio_target:g}x {_mark(r.ratio >= r.ratio_target)})"


def first_call_cell(r: Result) -> str:
    if r.first_call_target is None:
        return f"{r.first_call_s:.2f}"
    ok = r.first_call_s <= r.first_call_target
    return f"{r.first_call_s:.2f} (≤{r.first_call_target:g}s {_mark(ok)})"


def grad_cell(r: Result) -> str:
    if r.grad_over_forward is None:
        return "n/a"
    return f"{r.grad_over_forward:.2f} ({_mark(r.grad_over_forward <= GRAD_TARGET)})"


def markdown_table(results: Sequence[Result]) -> str:
    header = (
        "| case | corrax Mval/s | correctionlib Mval/s | corrax/correctionlib | "
        "first call s | value_and_grad/fwd (≤2) | max abs diff | values |"
    )
    lines = [header, "|" + "---|" * 8]
    for r in results:
        lines.append(
            f"| {r.case} | {r.corrax_per_s / 1e6:.1f} | {r.correctionlib_per_s / 1e6:.1f} | "
            f"{ratio_cell(r)} | {first_call_cell(r)} | {grad_cell(r)} | "
            f"{r.max_abs_diff:.1e} | {'PASS' if r.values_ok else 'FAIL'} |"
        )
    return "\n".join(lines)


def machine_info(device: jax.Device) -> dict[str, Any]:
    model = "unknown"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "pinned_to": affinity,
        "pinning": os.environ.get(_PINNED_ENV),
        "device": str(device),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "correctionlib": correctionlib.__version__,
        "corrax": corrax.__version__,
        "numpy": np.__version__,
    }


def missed_targets(results: Sequence[Result]) -> list[str]:
    missed = []
    for r in results:
        if r.ratio_target is not None and r.ratio < r.ratio_target:
            missed.append(f"{r.case}: ratio {r.ratio:.2f}x < {r.ratio_target:g}x")
        if r.grad_over_forward is not None and r.grad_over_forward > GRAD_TARGET:
            missed.append(f"{r.case}: value_and_grad {r.grad_over_forward:.2f}x forward")
        if r.first_call_target is not None and r.first_call_s > r.first_call_target:
            missed.append(f"{r.case}: first call {r.first_call_s:.2f}s")
        if not r.values_ok:
            missed.append(f"{r.case}: values differ from correctionlib")
    return missed


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000_000, help="values per input")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs (median)")
    parser.add_argument(
        "--data",
        type=pathlib.Path,
        default=DEFAULT_DATA,
        help="directory of the real CMS correction files",
    )
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--case", default="", help="only the cases whose name contains this")
    parser.add_argument("--json", type=pathlib.Path, default=None, help="also write JSON here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        device = jax.devices(args.device)[0]
    except RuntimeError as exc:
        print(f"no JAX {args.device} device: {exc}")
        return 2
    jax.config.update("jax_default_device", device)
    rng = np.random.default_rng(20240601)
    cases = synthetic_cases(args.n, rng)
    if args.data.is_dir():
        cases += real_cases(args.n, rng, args.data)
    else:
        print(f"note: {args.data} not found; skipping the real-file cases")
    cases = [case for case in cases if args.case.lower() in case.name.lower()]
    info = machine_info(device)
    print(f"corrax benchmark: n = {args.n:,} values, median of {args.repeats}, {device}")

    results = []
    for case in cases:
        print(f"  {case.name} ...", flush=True)
        results.append(run_case(case, args.repeats, device))
    flat = flatness(args.n, rng, device)
    stream = chunk_stream(args.data, rng) if args.data.is_dir() and not args.case else []

    print()
    print(markdown_table(results))
    print()
    print(
        "First call (trace + compile) vs bins: "
        + ", ".join(f"{nbins:,} bins {t:.2f} s" for nbins, t in flat.items())
    )
    for row in stream:
        print(
            f"Chunk stream, {row['case']}: {row['chunks']} chunks, {row['objects']:,} objects "
            f"in total, including compilations: corrax {row['corrax_s']:.2f} s, correctionlib "
            f"{row['correctionlib_s']:.2f} s ({row['correctionlib_s'] / row['corrax_s']:.2f}x; "
            f"max rel diff {row['max_rel_diff']:.1e})"
        )
    print()
    print(" | ".join(f"{key}: {value}" for key, value in info.items()))
    missed = missed_targets(results)
    missed += [
        f"chunk stream {row['case']}: corrax slower in total"
        for row in stream
        if row["corrax_s"] > row["correctionlib_s"]
    ]
    print(
        "\nMissed targets:" + "".join(f"\n  {m}" for m in missed)
        if missed
        else "\nMissed targets: none"
    )
    if args.json is not None:
        payload = {
            "n": args.n,
            "repeats": args.repeats,
            "machine": info,
            "results": [asdict(r) for r in results],
            "first_call_vs_bins": {str(k): v for k, v in flat.items()},
            "chunk_stream": stream,
            "missed_targets": missed,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
