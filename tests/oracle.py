"""Test inputs for any correction, and correctionlib as the oracle for them.

``generate_inputs`` reads a correction's document to find the interesting values of
each input (bin edges, category keys) and draws a mix of: values inside the ranges,
exactly on edges, just outside, ±inf and NaN, and keys with and without matches.
``oracle_evaluate`` evaluates correctionlib on them, element by element where the
vectorised call raises, so that failing elements are known individually.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import correctionlib
import jax
import numpy as np
from correctionlib import schemav2


def _walk(node: Any):
    if isinstance(node, int | float) or node is None or isinstance(node, str):
        return
    yield node
    if isinstance(node, schemav2.Binning | schemav2.MultiBinning):
        for child in [*node.content, node.flow]:
            yield from _walk(child)
    elif isinstance(node, schemav2.Category):
        for item in node.content:
            yield from _walk(item.value)
        yield from _walk(node.default)
    elif isinstance(node, schemav2.Transform):
        yield from _walk(node.rule)
        yield from _walk(node.content)


def _edges(edges: Any) -> list[float]:
    if isinstance(edges, schemav2.UniformBinning):
        return list(np.linspace(edges.low, edges.high, edges.n + 1))
    return [float(e) for e in edges]


def interesting_values(inputs: list, data_nodes: list) -> dict[str, dict[str, list]]:
    """Per input name: its bin edges ("edges") and category keys ("keys") in the nodes."""
    found: dict[str, dict[str, list]] = {v.name: {"edges": [], "keys": []} for v in inputs}
    nodes = [node for data in data_nodes for node in _walk(data)]
    for node in nodes:
        if isinstance(node, schemav2.Binning):
            found[node.input]["edges"].extend(_edges(node.edges))
        elif isinstance(node, schemav2.MultiBinning):
            for name, edges in zip(node.inputs, node.edges, strict=True):
                found[name]["edges"].extend(_edges(edges))
        elif isinstance(node, schemav2.Category):
            found[node.input]["keys"].extend(item.key for item in node.content)
    for entry in found.values():
        entry["edges"] = sorted(set(entry["edges"]))
        entry["keys"] = sorted(set(entry["keys"]), key=str)
    return found


def _real_values(
    edges: list[float], n: int, rng: np.random.Generator, specials: bool
) -> np.ndarray:
    finite = [e for e in edges if math.isfinite(e)]
    if not finite:
        low, high = -5.0, 500.0
    else:
        low, high = min(finite), max(finite)
        if low == high:
            low, high = low - 1.0, high + 1.0
    span = high - low
    pieces = [
        rng.uniform(low, high, n),  # inside
        rng.uniform(low - 0.2 * span, high + 0.2 * span, n // 4),  # around
        rng.choice(np.array(finite or [0.0]), n // 4),  # exactly on edges
    ]
    # just below edges; not below 0.0, whose neighbour is subnormal (see README)
    normal_edges = [e for e in finite if e != 0.0]
    if normal_edges:
        pieces.append(np.nextafter(rng.choice(np.array(normal_edges), n // 20), -np.inf))
    if specials:
        pieces.append(np.array([np.inf, -np.inf, np.nan, 0.0, -0.0]))
    values = np.concatenate(pieces)
    rng.shuffle(values)
    values = values[:n] if len(values) >= n else np.resize(values, n)
    if specials and n >= 20:  # always some ±inf and NaN, whatever the shuffle
        values[rng.choice(n, 5, replace=False)] = [np.inf, -np.inf, np.nan, np.inf, np.nan]
    return values


def _int_values(keys: list, n: int, rng: np.random.Generator) -> np.ndarray:
    ints = [k for k in keys if isinstance(k, int)]
    base = np.array(ints or [0], dtype=np.int64)
    draws = rng.choice(base, n)
    # a few keys that match nothing, and neighbours of real keys
    stray = rng.random(n) < 0.05
    draws[stray] = draws[stray] + rng.integers(-3, 4, stray.sum())
    return draws


NO_SUCH_KEY = "__no_such_key__"


def string_combinations(correction: schemav2.Correction, limit: int, rng) -> list[tuple]:
    """Tuples of values for the string inputs: every combination, or a sample of
    ``limit`` that always holds one with a key that matches nothing (if any) and
    otherwise combinations of real keys."""
    values = interesting_values(correction.inputs, [correction.data])
    choices = []
    for var in correction.inputs:
        if var.type == "string":
            keys = [k for k in values[var.name]["keys"] if isinstance(k, str)]
            choices.append([*keys, NO_SUCH_KEY])
    combos = list(itertools.product(*choices))
    if len(combos) <= limit:
        return combos
    known = [c for c in combos if NO_SUCH_KEY not in c]
    unknown = [c for c in combos if NO_SUCH_KEY in c]
    n_known = min(len(known), limit - 1 if unknown else limit)
    picks = [known[i] for i in sorted(rng.choice(len(known), n_known, replace=False))]
    if unknown:
        picks.append(unknown[int(rng.integers(len(unknown)))])
    return picks


def generate_inputs(
    correction: schemav2.Correction,
    strings: tuple,
    n: int,
    rng: np.random.Generator,
    specials: bool = True,
) -> list:
    """Arguments for ``evaluate``: arrays of ``n`` values, the given strings in place."""
    return generate_for(correction.inputs, [correction.data], strings, n, rng, specials)


def generate_for(
    inputs: list, data_nodes: list, strings: tuple, n: int, rng, specials: bool = True
) -> list:
    """Like ``generate_inputs`` for an input list and the nodes that use them."""
    values = interesting_values(inputs, data_nodes)
    strings_iter = iter(strings)
    args: list[Any] = []
    for var in inputs:
        if var.type == "string":
            args.append(next(strings_iter))
        elif var.type == "int":
            args.append(_int_values(values[var.name]["keys"], n, rng))
        else:
            args.append(_real_values(values[var.name]["edges"], n, rng, specials))
    return args


def oracle_evaluate(corr: Any, args: list) -> tuple[np.ndarray, np.ndarray]:
    """correctionlib's values, and a mask of the elements where it raises."""
    n = next((len(a) for a in args if isinstance(a, np.ndarray)), None)
    if n is None:  # only string inputs: one scalar value
        try:
            return np.array(corr.evaluate(*args), dtype=np.float64), np.array(False)
        except Exception:  # noqa: BLE001
            return np.array(np.nan), np.array(True)
    try:
        return np.asarray(corr.evaluate(*args), dtype=np.float64), np.zeros(n, dtype=bool)
    except Exception:  # noqa: BLE001 - any correctionlib error: redo element by element
        pass
    out = np.full(n, np.nan)
    failed = np.zeros(n, dtype=bool)
    for i in range(n):
        element = [a[i] if isinstance(a, np.ndarray) else a for a in args]
        element = [x.item() if isinstance(x, np.generic) else x for x in element]
        try:
            out[i] = corr.evaluate(*element)
        except Exception:  # noqa: BLE001
            failed[i] = True
    return out, failed


def jit_evaluate_closed(corr: Any, args: list) -> np.ndarray:
    """corrax under jax.jit with the correction closed over (its tables become
    constants of the compiled program), numbers as jit arguments."""
    numeric = [i for i, a in enumerate(args) if not isinstance(a, str)]

    def call(*numbers):
        full = list(args)
        for i, x in zip(numeric, numbers, strict=True):
            full[i] = x
        return corr.evaluate(*full)

    return np.asarray(jax.jit(call)(*[args[i] for i in numeric]))


@jax.jit
def _evaluate_lowered(lowered: Any, numbers: tuple) -> jax.Array:
    return lowered.evaluate(*numbers)


def jit_evaluate(corr: Any, args: list) -> np.ndarray:
    """corrax under jax.jit: the correction lowered for its string arguments and passed
    as a pytree argument (so corrections of one structure share a compilation), the
    numbers as jit arguments."""
    strings = {corr.inputs[i].name: a for i, a in enumerate(args) if isinstance(a, str)}
    numbers = tuple(a for a in args if not isinstance(a, str))
    return np.asarray(_evaluate_lowered(corr.lower(**strings), numbers))


def oracle_set(source: Any) -> correctionlib.CorrectionSet:
    """correctionlib's evaluator for a document (path or JSON text)."""
    if isinstance(source, str) and source.lstrip().startswith("{"):
        return correctionlib.CorrectionSet.from_string(source)
    return correctionlib.CorrectionSet.from_file(str(source))
