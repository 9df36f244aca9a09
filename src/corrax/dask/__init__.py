"""Scale beyond one machine with dask: per-partition results summed across partitions.

``partition_sums(function, *collections)``: ``function`` is called on matching
partitions of dask-awkward collections (awkward arrays, one chunk of events each) and
returns what is to be summed: a dict of numbers, NumPy arrays, ``hist`` histograms
(anything with ``+``), e.g. histograms and gradients of a differentiable analysis.
The results are summed with a tree reduction. Returns a ``dask.delayed`` object:
``total.compute()`` runs it with the current scheduler, a ``distributed.Client``
(``Client("tcp://scheduler:8786")`` for a real cluster, ``LocalCluster`` on one
machine) makes it run on the cluster, retrying the tasks of a worker that dies.

Corrections themselves evaluate on dask-awkward arrays directly (``evaluate`` maps
them over partitions); use this for everything a partition returns at once.
"""

from __future__ import annotations

from .._extras import require

require("corrax.dask", "dask", "awkward", "dask", "distributed", "dask_awkward")

from collections.abc import Callable, Mapping
from typing import Any

import dask

__all__ = ["add", "partition_sums"]


def add(first: Any, second: Any) -> Any:
    """``first + second``, key by key for dicts (keys of either)."""
    if isinstance(first, Mapping):
        keys = list(first) + [k for k in second if k not in first]
        return {
            k: second[k]
            if k not in first
            else first[k]
            if k not in second
            else add(first[k], second[k])
            for k in keys
        }
    return first + second


def partition_sums(function: Callable[..., Any], *collections: Any, split_every: int = 8) -> Any:
    """Σ over partitions of ``function(*partitions)`` (see the module docstring)."""
    if not collections:
        raise ValueError("partition_sums needs at least one dask collection")
    partitions = [collection.to_delayed() for collection in collections]
    if len({len(p) for p in partitions}) != 1:
        raise ValueError("the collections must have the same number of partitions")
    results = [dask.delayed(function)(*parts) for parts in zip(*partitions, strict=True)]
    while len(results) > 1:
        results = [
            dask.delayed(_add_many)(*results[i : i + split_every])
            for i in range(0, len(results), split_every)
        ]
    return results[0]


def _add_many(*values: Any) -> Any:
    total = values[0]
    for value in values[1:]:
        total = add(total, value)
    return total
