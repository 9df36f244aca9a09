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

from ..._inputs import x64_scope
from ...jagged import capacity_for
from .. import model
from ..corrections import RealCorrections
from ..definition import OPTIMISED, Cuts
from .pipeline import (
    Smoothing,
    load_batch,
    soft_template_histograms,
    templates_from_soft,
)

__all__ = ["chunk_contribution", "chunks_of", "value_and_grad"]

Datasets = Mapping[str, tuple[Sequence[str], float]]


def chunks_of(datasets: Datasets) -> list[dict[str, tuple[list[str], float]]]:
    """One chunk per file: ``{sample: ([path], norm)}``."""
    return [{name: ([path], norm)} for name, (paths, norm) in datasets.items() for path in paths]


def chunk_contribution(
    chunk: Datasets,
    cuts: Cuts,
    corrector: Any = None,
    smoothing: Smoothing | None = None,
    split: str | None = None,
    capacities: tuple[int, int] | None = None,
    real: RealCorrections | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The soft histograms of one chunk and their Jacobian, per sample: ``{sample:
    (histograms, d histograms/dθ)}``, the histograms as one sample's slice of
    ``soft_template_histograms`` and the Jacobian with a leading axis of the three
    optimised thresholds (``OPTIMISED`` order)."""
    with x64_scope():  # a worker starts with JAX's defaults: 64 bits, scoped
        return _chunk_contribution(chunk, cuts, corrector, smoothing, split, capacities, real)


def _chunk_contribution(chunk, cuts, corrector, smoothing, split, capacities, real):
    batch = load_batch(chunk, split, capacities, real)
    smoothing = smoothing or Smoothing()

    def histograms(t: Cuts) -> jax.Array:
        return soft_template_histograms(t, batch, corrector, smoothing)

    # the histograms come out of the same forward-mode pass (one compilation)
    jacobian, values = jax.jacfwd(lambda t: (histograms(t), histograms(t)), has_aux=True)(cuts)
    d_values = np.stack([np.asarray(getattr(jacobian, n)) for n in OPTIMISED])
    return {
        name: (np.asarray(values)[..., k, :], d_values[..., k, :])
        for k, name in enumerate(batch.samples)
    }


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
    cuts: Cuts,
    corrector: Any = None,
    smoothing: Smoothing | None = None,
    split: str | None = None,
    client: Any = None,
    real: RealCorrections | None = None,
) -> tuple[float, dict[str, float]]:
    """The expected σ(ttbar_norm) and its gradient, summed over per-file chunks
    (on ``client``'s cluster when given); ``real``: the real scale factors of the
    event weights (``pipeline.load_batch``)."""
    chunks = chunks_of(datasets)
    capacities = _common_capacities(chunks)
    arguments = (cuts, corrector, smoothing, split, capacities, real)
    if client is None:
        parts = [chunk_contribution(c, *arguments) for c in chunks]
    else:
        futures = [client.submit(chunk_contribution, c, *arguments, pure=False) for c in chunks]
        parts = client.gather(futures)
    total: dict = {}
    for part in parts:
        _add(total, part)
    samples = tuple(datasets)
    # [..., sample, bins] as soft_template_histograms of one batch of every sample
    stacked = np.stack([total[name][0] for name in samples], axis=-2)
    d_stacked = np.stack([total[name][1] for name in samples], axis=-2)

    def figure_of_merit(histograms: jax.Array) -> jax.Array:
        return model.expected_uncertainty(templates_from_soft(histograms, samples))

    value, cotangent = jax.value_and_grad(figure_of_merit)(jax.numpy.asarray(stacked))
    gradient = np.tensordot(d_stacked, np.asarray(cotangent), axes=cotangent.ndim)
    return float(value), dict(zip(OPTIMISED, gradient.tolist(), strict=True))
