"""Searching sorted tables (bin edges, category keys) for a batch of values.

XLA on CPU runs every gather as its own pass over the batch, so the cost of a lookup
is the number of dependent gathers. Three layouts, chosen on the host when a
correction is lowered (``plan``), keep that number small:

* ``shared``: one sorted row for all instances. Up to ``COMPARE_LIMIT`` entries, a sum
  of comparisons (no gather at all); above, a branchless binary search whose first
  step compares with a scalar (a constant-index gather would be folded by XLA into a
  batch-sized constant, making compile time grow with the batch).
* ``union``: rows that differ (e.g. pt edges per eta bin): one search in the sorted
  union of all rows, then one gather in a ``[R, U+1]`` table of per-row counts.
  Exact because no row has an entry strictly between two consecutive union entries.
* ``rows``: a per-row binary search (log2(E) gathers), when the union table would be
  too large.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

COMPARE_LIMIT = 16
_UNION_TABLE_LIMIT = 1 << 22  # entries of the [R, U+1] table (16 MiB of int32)


def _passes(entry, x, side: str):
    return (entry <= x) if side == "right" else (entry < x)


def count_shared(table, x, side: str):
    """How many entries of the sorted 1-d ``table`` are <= x ("right") or < x ("left")."""
    width = table.shape[0]
    if width <= COMPARE_LIMIT:
        return jnp.sum(_passes(table, x[..., None], side), axis=-1, dtype=jnp.int32)
    step = 1 << (width.bit_length() - 1)
    position = jnp.where(_passes(table[step - 1], x, side), step, 0).astype(jnp.int32)
    step //= 2
    while step >= 1:
        candidate = position + step
        entry = jnp.take(table, jnp.minimum(candidate, width) - 1, mode="clip")
        position = jnp.where((candidate <= width) & _passes(entry, x, side), candidate, position)
        step //= 2
    return position


def count_rows(table, row, x, side: str):
    """Per-element count in row ``row`` of a sorted ``[R, E]`` table (padded at the end)."""
    width = table.shape[1]
    flat = table.reshape(-1)
    base = row * width
    position = jnp.zeros(jnp.shape(x), dtype=jnp.int32)
    step = 1 << (width.bit_length() - 1)
    while step >= 1:
        candidate = position + step
        entry = jnp.take(flat, base + jnp.minimum(candidate, width) - 1, mode="clip")
        position = jnp.where((candidate <= width) & _passes(entry, x, side), candidate, position)
        step //= 2
    return position


def count(mode: str, params: dict, key: str, row, x, side: str):
    """Count in the layout ``mode`` (see module docstring) of ``params[key]``."""
    table = params[key]
    if mode == "shared" or row is None:
        return count_shared(table[0], x, side)
    if mode == "union":
        union, lookup = params[key + "_union"][0], params[key + "_lookup"]
        position = count_shared(union, x, side)
        width = lookup.shape[1]
        return jnp.take(lookup.reshape(-1), row * width + position, mode="clip")
    return count_rows(table, row, x, side)


def plan(params: dict, key: str) -> tuple[str, dict]:
    """Choose the layout for the host table ``params[key]`` (``[R, E]``, sorted rows)."""
    table = np.asarray(params[key])
    if table.shape[0] == 1 or (table == table[:1]).all():
        return "shared", {**params, key: table[:1]}
    union = np.unique(table)  # sorted; +inf padding collapses into one entry
    if table.shape[0] * (union.size + 1) > _UNION_TABLE_LIMIT:
        return "rows", params
    # lookup[r, k] = entries of row r <= union[k - 1]: the count for any x with k union
    # entries below it (side="right": <= x; side="left": < x), since rows are subsets.
    lookup = np.zeros((table.shape[0], union.size + 1), dtype=np.int32)
    for r, entries in enumerate(table):
        lookup[r, 1:] = np.searchsorted(entries, union, side="right")
    # the union is shared by all instances: one row, like every params leaf
    return "union", {**params, key + "_union": union[None], key + "_lookup": lookup}
