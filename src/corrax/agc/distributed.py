"""The differentiable analysis over many files: per-chunk templates and Jacobians.

The soft templates are sums over events, so each chunk of files (one task, on any
worker) returns its templates and their Jacobian with respect to the thresholds
(forward mode: three parameters); the sums over chunks are the full templates and
Jacobian, and the chain rule through the figure of merit gives its gradient:
``dσ/dθ = Σ_bins ∂σ/∂template · Σ_chunks ∂template/∂θ``. With a
``dask.distributed`` client the chunks run on the cluster; without one, in this
process. The result equals the single-batch ``jax.value_and_grad`` (tested).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from ..jagged import capacity_for
from .differentiable import (
    Smoothing,
    Thresholds,
    fisher_uncertainty,
    load_batch,
    templates_for,
)

__all__ = ["chunk_contribution", "chunks_of", "value_and_grad"]

Datasets = Mapping[str, tuple[Sequence[str], float]]


def chunks_of(datasets: Datasets) -> list[dict[str, tuple[list[str], float]]]:
    """One chunk per file: ``{sample: ([path], norm)}``."""
    return [{name: ([path], norm)} for name, (paths, norm) in datasets.items() for path in paths]


def chunk_contribution(
    chunk: Datasets,
    thresholds: Mapping[str, float],
    corrector: Any = None,
    smoothing: Smoothing | None = None,
    split: str | None = None,
    capacities: tuple[int, int] | None = None,
) -> dict[tuple[str, str, float], tuple[np.ndarray, ...]]:
    """Templates of one chunk and their Jacobian: ``{key: (contents, variances,
    d contents/dθ [3, bins], d variances/dθ [3, bins])}`` (θ in ``Thresholds`` order)."""
    jax.config.update("jax_enable_x64", True)  # on a worker: JAX starts with its defaults
    batch = load_batch(chunk, split, capacities)
    smoothing = smoothing or Smoothing()

    def templates(t: Thresholds) -> Any:
        return templates_for(t, batch, corrector, smoothing)

    point = Thresholds(**thresholds)
    # the templates come out of the same forward-mode pass (one compilation)
    jacobian, values = jax.jacfwd(lambda t: (templates(t), templates(t)), has_aux=True)(point)
    names = list(point.as_dict())
    result = {}
    for key, (contents, variances) in values.items():
        d_contents, d_variances = jacobian[key]
        result[key] = (
            np.asarray(contents),
            np.asarray(variances),
            np.stack([np.asarray(getattr(d_contents, n)) for n in names]),
            np.stack([np.asarray(getattr(d_variances, n)) for n in names]),
        )
    return result


def _common_capacities(chunks: Sequence[Datasets]) -> tuple[int, int]:
    """Padded sizes that fit every chunk (events; jets), from the files' metadata."""
    import uproot

    events = jets = 0
    for chunk in chunks:
        for paths, _ in chunk.values():
            for path in paths:
                tree = uproot.open(path)["Events"]
                events = max(events, tree.num_entries)
                jets = max(jets, int(tree["nJet"].array(library="np").sum()))
    return capacity_for(events), capacity_for(jets)


def _add(total: dict, part: dict) -> dict:
    for key, arrays in part.items():
        total[key] = (
            arrays
            if key not in total
            else tuple(a + b for a, b in zip(total[key], arrays, strict=True))
        )
    return total


def value_and_grad(
    datasets: Datasets,
    thresholds: Thresholds,
    corrector: Any = None,
    smoothing: Smoothing | None = None,
    split: str | None = None,
    client: Any = None,
) -> tuple[float, dict[str, float]]:
    """The expected σ(ttbar_norm) and its gradient, summed over per-file chunks
    (on ``client``'s cluster when given)."""
    point = thresholds.as_dict()
    chunks = chunks_of(datasets)
    capacities = _common_capacities(chunks)
    arguments = (point, corrector, smoothing, split, capacities)
    if client is None:
        parts = [chunk_contribution(c, *arguments) for c in chunks]
    else:
        futures = [client.submit(chunk_contribution, c, *arguments, pure=False) for c in chunks]
        parts = client.gather(futures)
    total: dict = {}
    for part in parts:
        _add(total, part)
    templates = {
        key: (jax.numpy.asarray(v[0]), jax.numpy.asarray(v[1])) for key, v in total.items()
    }
    value, pullback = jax.vjp(fisher_uncertainty, templates)
    (cotangent,) = pullback(jax.numpy.ones_like(value))
    gradient = np.zeros(len(point))
    for key, (d_contents, d_variances) in cotangent.items():
        gradient += total[key][2] @ np.asarray(d_contents) + total[key][3] @ np.asarray(d_variances)
    return float(value), dict(zip(point, gradient.tolist(), strict=True))
