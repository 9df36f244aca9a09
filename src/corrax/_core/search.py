"""Searching sorted tables (bin edges, category keys) for a batch of values.

XLA on CPU runs every gather as its own pass over the batch, so the cost of a lookup
is the number of dependent gathers. The layout of each table is chosen on the host
when a correction is lowered (``plan``) to keep that number small:

* ``linear``/``log``: one row of edges spaced uniformly in x or in log(x) (to within a
  quarter bin): the bin is computed arithmetically, then made exact by comparing
  with its two edges (two gathers, whatever the number of bins).
* ``guided<k>``: one row of irregular entries: a guide table over a uniform grid of 4E
  (or 16E) cells gives, from arithmetic on x, a lower bound of the count; k <=
  ``_GUIDE_STEPS`` comparisons with the entries that follow make it exact.
* ``shared``: one sorted row for all instances. Up to ``COMPARE_LIMIT`` entries, a sum
  of comparisons (no gather at all); above, a branchless binary search whose first
  step compares with a scalar (a constant-index gather would be folded by XLA into a
  batch-sized constant, making compile time grow with the batch).
* ``union`` / ``union<k>``: rows that differ (e.g. pt edges per eta bin): one search
  in the sorted union of all rows (shared, or guided with k steps), then one gather
  in a ``[R, U+1]`` table of per-row counts. Exact because no row has an entry
  strictly between two consecutive union entries.
* ``rows``: a per-row binary search (log2(E) gathers), when the union table would be
  too large.

On the host (NumPy arrays, see ``backend``) one sorted row is searched by a sum of
comparisons up to ``COMPARE_LIMIT`` entries, else by ``numpy.searchsorted``; ``rows``
is the same halving search with NumPy.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .backend import namespace, on_host

COMPARE_LIMIT = 16
# tables of up to this many entries are read by selects instead of a gather (XLA on
# CPU runs each gather as its own pass over the batch; a few selects fuse with their
# neighbours): deepJet's shape correction reads eleven such tables per value
SELECT_LIMIT = 4
_UNION_TABLE_LIMIT = 1 << 22  # entries of the [R, U+1] table (16 MiB of int32)
_GUIDE_CELLS_PER_ENTRY = (4, 16)
_GUIDE_STEPS = 2


def gather(table, index):
    """``table[clip(index)]`` along the first axis of ``table`` (``jnp.take`` with
    ``mode="clip"``); tables of at most ``SELECT_LIMIT`` rows by selects."""
    rows = table.shape[0]
    if rows > SELECT_LIMIT or on_host(table, index):
        return namespace(table, index).take(table, index, axis=0, mode="clip")
    shape = jnp.shape(index)
    expanded = jnp.reshape(index, shape + (1,) * (table.ndim - 1))
    value = jnp.broadcast_to(table[0], shape + table.shape[1:])
    for k in range(1, rows):
        value = jnp.where(expanded >= k, table[k], value)
    return value


def _passes(entry, x, side: str):
    return (entry <= x) if side == "right" else (entry < x)


def _halving_search(flat, base, width: int, x, side: str, position, step: int):
    """Branchless binary search in ``flat[base : base + width]``: from ``position``,
    try steps ``step, step/2, ..., 1`` (log2(width) gathers)."""
    xp = namespace(flat, base, x, position)
    while step >= 1:
        candidate = position + step
        entry = gather(flat, base + xp.minimum(candidate, width) - 1)
        position = xp.where((candidate <= width) & _passes(entry, x, side), candidate, position)
        step //= 2
    return position


def count_shared(table, x, side: str):
    """How many entries of the sorted 1-d ``table`` are <= x ("right") or < x ("left")."""
    width = table.shape[0]
    if width <= COMPARE_LIMIT:
        return jnp.sum(_passes(table, x[..., None], side), axis=-1, dtype=jnp.int32)
    # the first step compares with a scalar (see the module docstring)
    first = 1 << (width.bit_length() - 1)
    position = jnp.where(_passes(table[first - 1], x, side), first, 0).astype(jnp.int32)
    return _halving_search(table, 0, width, x, side, position, first // 2)


def count_rows(table, row, x, side: str):
    """Per-element count in row ``row`` of a sorted ``[R, E]`` table (padded at the end)."""
    width = table.shape[1]
    xp = namespace(table, row, x)
    start = xp.zeros(xp.shape(x), dtype=np.int32)
    step = 1 << (width.bit_length() - 1)
    return _halving_search(table.reshape(-1), row * width, width, x, side, start, step)


def _cell(estimate, cells: int):
    """floor(estimate) clipped to [0, cells - 1]; ±inf clip to the ends, NaN gives 0."""
    cell = jnp.clip(jnp.floor(estimate), 0, cells - 1)
    return jnp.where(jnp.isnan(cell), 0, cell).astype(jnp.int32)


def count_spaced(edges, x, mode: str, low, scale):
    """``count_shared(edges, x, "right")`` for edges uniform in x or log(x)."""
    nbins = edges.shape[0] - 1
    coordinate = jnp.log(x) if mode == "log" else x
    guess = _cell((coordinate - low) * scale, nbins)
    lower = gather(edges, guess)
    upper = gather(edges, guess + 1)
    return jnp.where(x < lower, guess, jnp.where(x >= upper, guess + 2, guess + 1))


def count_guided(table, x, guide, low, scale, steps: int):
    """``count_shared(table, x, "right")`` with a guide table (see ``_guide``)."""
    width = table.shape[0]
    position = gather(guide, _cell((x - low) * scale, guide.shape[0]))
    for _ in range(steps):
        entry = gather(table, jnp.minimum(position, width - 1))
        position = jnp.where((position < width) & (entry <= x), position + 1, position)
    return position


def _guide(entries: np.ndarray):
    """(guide, low, scale, steps) for sorted float entries, or None if not worth it.

    Cell c of the grid holds x in [low + c/scale, low + (c+1)/scale); allowing for
    rounding, x computed into cell c lies in the cell widened by half a cell on each
    side (the first and last cells extend to -inf/+inf). guide[c] counts the entries
    below that widened cell; the true count exceeds it by at most the entries inside.
    """
    finite = entries[np.isfinite(entries)]
    if finite.size < 2 or finite[0] == finite[-1]:
        return None
    for per_entry in _GUIDE_CELLS_PER_ENTRY:
        cells = per_entry * entries.size
        low, high = float(finite[0]), float(finite[-1])
        scale = cells / (high - low)
        starts = low + (np.arange(cells) - 0.5) / scale
        ends = low + (np.arange(cells) + 1.5) / scale
        starts[0], ends[-1] = -np.inf, np.inf
        guide = np.searchsorted(entries, starts, side="left").astype(np.int32)
        reach = np.searchsorted(entries, ends, side="left")
        reach[-1] = entries.size  # x = +inf counts +inf entries too
        steps = int((reach - guide).max())
        if steps <= _GUIDE_STEPS:
            return guide, low, scale, max(steps, 1)
    return None


def _arithmetic_params(prefix: str, low: float, scale: float, guide=None) -> dict:
    """The params of an arithmetic (spaced or guided) search, one row each."""
    params = {prefix + "_low": np.array([low]), prefix + "_scale": np.array([scale])}
    if guide is not None:
        params[prefix + "_guide"] = guide[None]
    return params


def _arithmetic(params: dict, prefix: str, *names: str):
    return (params[prefix + name][0] for name in names)


def count(mode: str, params: dict, key: str, row, x, side: str):
    """Count in the layout ``mode`` (see module docstring) of ``params[key]``."""
    table = params[key]
    if on_host(table, x):
        return _count_host(mode, params, key, row, x, side)
    if mode in ("linear", "log"):
        low, scale = _arithmetic(params, key, "_low", "_scale")
        return count_spaced(table[0], x, mode, low, scale)
    if mode.startswith("guided"):
        steps = int(mode.removeprefix("guided"))
        guide, low, scale = _arithmetic(params, key, "_guide", "_low", "_scale")
        return count_guided(table[0], x, guide, low, scale, steps)
    if mode == "shared" or row is None:
        return count_shared(table[0], x, side)
    if mode.startswith("union"):
        union, lookup = params[key + "_union"][0], params[key + "_lookup"]
        if mode == "union":
            position = count_shared(union, x, side)
        else:
            guide, low, scale = _arithmetic(params, key + "_union", "_guide", "_low", "_scale")
            position = count_guided(union, x, guide, low, scale, int(mode.removeprefix("union")))
        width = lookup.shape[1]
        return gather(lookup.reshape(-1), row * width + position)
    return count_rows(table, row, x, side)


def _count_host(mode: str, params: dict, key: str, row, x, side: str):
    """``count`` with NumPy (``_count_sorted_host`` for one sorted row, which may
    count a NaN differently from the compiled searches: callers treat NaN on its
    own)."""
    table = params[key]
    if mode == "rows" and row is not None:
        return count_rows(table, row, x, side)
    if not mode.startswith("union") or row is None:
        return _count_sorted_host(table[0], x, side)
    union, lookup = params[key + "_union"][0], params[key + "_lookup"]
    position = _count_sorted_host(union, x, side)
    return gather(lookup.reshape(-1), row * lookup.shape[1] + position)


def _count_sorted_host(entries: np.ndarray, x: np.ndarray, side: str) -> np.ndarray:
    """Entries <= x ("right") or < x ("left") of one sorted row, with NumPy: a sum of
    comparisons up to ``COMPARE_LIMIT`` entries (searchsorted's per-element binary
    search costs 3x more on a few edges), else ``numpy.searchsorted``."""
    if entries.shape[0] > COMPARE_LIMIT:
        return np.searchsorted(entries, x, side=side).astype(np.int32)
    count = np.zeros(np.shape(x), dtype=np.int32)
    for entry in entries:
        count += _passes(entry, x, side)
    return count


def _spacing(edges: np.ndarray) -> tuple[str, float, float] | None:
    """("linear" or "log", low, bins per unit) if the edges are evenly spaced in x or
    log(x) to within a quarter bin, so that the arithmetic guess is off by at most one."""
    nbins = edges.size - 1
    if nbins < COMPARE_LIMIT or not np.isfinite(edges).all():
        return None
    candidates = [("linear", edges)]
    if edges[0] > 0:
        candidates.append(("log", np.log(edges)))
    for mode, coordinate in candidates:
        low, high = coordinate[0], coordinate[-1]
        even = np.linspace(low, high, nbins + 1)
        if np.abs(coordinate - even).max() <= 0.25 * (high - low) / nbins:
            return mode, float(low), float(nbins / (high - low))
    return None


def plan(params: dict, key: str, side: str = "right", fast: bool = True) -> tuple[str, dict]:
    """Choose the layout for the host table ``params[key]`` (``[R, E]``, sorted rows).

    Without ``fast``, only layouts that read the table itself (so that it can change
    after lowering, e.g. edges being fitted): ``shared`` for one row, else ``rows``.
    """
    table = np.asarray(params[key])
    if not fast:
        return ("shared" if table.shape[0] == 1 else "rows"), params
    if table.shape[0] == 1 or (table == table[:1]).all():
        shared = {**params, key: table[:1]}
        if side != "right" or table.dtype.kind != "f" or table.shape[1] <= COMPARE_LIMIT:
            return "shared", shared
        spacing = _spacing(table[0])
        if spacing is not None:
            mode, low, scale = spacing
            return mode, {**shared, **_arithmetic_params(key, low, scale)}
        guided = _guide(table[0])
        if guided is None:
            return "shared", shared
        guide, low, scale, steps = guided
        return f"guided{steps}", {**shared, **_arithmetic_params(key, low, scale, guide)}
    union = np.unique(table)  # sorted; +inf padding collapses into one entry
    if table.shape[0] * (union.size + 1) > _UNION_TABLE_LIMIT:
        return "rows", params
    # lookup[r, k] = entries of row r <= union[k - 1]: the count for any x with k union
    # entries below it (side="right": <= x; side="left": < x), since rows are subsets.
    lookup = np.zeros((table.shape[0], union.size + 1), dtype=np.int32)
    for r, entries in enumerate(table):
        lookup[r, 1:] = np.searchsorted(entries, union, side="right")
    # the union is shared by all instances: one row, like every params leaf
    planned = {**params, key + "_union": union[None], key + "_lookup": lookup}
    guided = _guide(union) if side == "right" and union.size > COMPARE_LIMIT else None
    if guided is None:
        return "union", planned
    guide, low, scale, steps = guided
    return f"union{steps}", {**planned, **_arithmetic_params(key + "_union", low, scale, guide)}
