"""Corrections on awkward and dask-awkward columns: jagged in, same layout out.

``evaluate_columns(function, inputs)`` broadcasts the inputs with awkward (event-level
values such as ``fixedGridRhoFastjetAll`` against per-object ones such as ``Jet_pt``),
takes the flat buffer of valid values of each, calls ``function`` once on those flat
buffers, and rebuilds the broadcast layout around the result: the offsets are reused,
missing values (option types) stay missing and are never evaluated.

Both awkward backends work: on the CPU backend the buffers are NumPy arrays (errors
raise, naming the offending value); on the JAX backend they are JAX arrays, so
``jax.grad`` with respect to jagged fields (or to a ``BoundCorrection``) flows through.
dask-awkward arrays are evaluated partition by partition (``map_partitions``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import awkward as ak
import numpy as np

from .._inputs import is_columnar

__all__ = ["evaluate_columns", "is_columnar", "map_columns"]


def _is_dask(value: Any) -> bool:
    return type(value).__module__.split(".")[0] == "dask_awkward"


def evaluate_columns(function: Callable[..., Any], inputs: Sequence[Any]) -> Any:
    """``function`` (flat numeric arrays → flat values) applied to jagged ``inputs``.

    ``inputs``: awkward or dask-awkward arrays, NumPy arrays (treated as awkward
    arrays) or anything else (numbers, JAX scalars, None: passed through as they are).
    Returns an awkward array (dask-awkward if any input is one) with the broadcast
    layout of the array inputs.
    """
    if any(_is_dask(x) for x in inputs):
        return _evaluate_dask(function, inputs)
    return map_columns(function, inputs)


def map_columns(function: Callable[..., Any], inputs: Sequence[Any]) -> Any:
    """Like ``evaluate_columns`` (awkward only), for a ``function`` returning one flat
    array or a dict of them: then a dict of awkward arrays of the broadcast layout."""
    positions = [i for i, x in enumerate(inputs) if _is_array(x)]
    arrays = [_as_awkward(inputs[i], inputs) for i in positions]
    if any(ak.backend(array) == "typetracer" for array in arrays):  # dask-awkward tracing
        arrays = ak.broadcast_arrays(*arrays)
        for array in arrays:
            ak.typetracer.touch_data(array)
        return ak.values_astype(arrays[0], np.float64)
    flats, rebuild = _shared_offsets(arrays) or _broadcast(arrays)
    arguments = list(inputs)
    for position, flat in zip(positions, flats, strict=True):
        arguments[position] = flat
    values = function(*arguments)
    if isinstance(values, dict):
        return {name: rebuild(flat) for name, flat in values.items()}
    return rebuild(values)


def _shared_offsets(arrays: Sequence[ak.Array]) -> tuple[list[Any], Callable] | None:
    """The common case, without ``ak.broadcast_arrays``: NumPy-backed lists of numbers
    that share one set of offsets (fields of one collection, e.g. ``jets.pt`` and
    ``abs(jets.eta)``), maybe with per-event numbers beside them (``rho``). The flat
    buffers are views of the contents (or one gather, for indexed contents); per-event
    numbers are repeated per object.
    Returns None (use ``_broadcast``) for anything else."""
    layouts = [array.layout for array in arrays]
    lists = [layout for layout in layouts if isinstance(layout, ak.contents.ListOffsetArray)]
    if not lists or any(not _plain_numbers(layout, len(lists[0])) for layout in layouts):
        return None
    offsets = lists[0].offsets.data
    if any(not _same(layout.offsets.data, offsets) for layout in lists[1:]):
        return None
    start, stop = int(offsets[0]), int(offsets[-1])
    counts = None
    flats = []
    for layout in layouts:
        if isinstance(layout, ak.contents.ListOffsetArray):
            flats.append(_numbers(layout.content, start, stop))
        else:
            counts = np.diff(offsets) if counts is None else counts
            flats.append(np.repeat(_numbers(layout, 0, len(layout)), counts))
    template = lists[0]
    rebased = template.offsets if start == 0 else ak.index.Index64(offsets - start)
    behavior = arrays[layouts.index(template)].behavior

    def rebuild(flat: Any) -> ak.Array:
        content = ak.contents.NumpyArray(np.asarray(flat))
        return ak.Array(template.copy(offsets=rebased, content=content), behavior=behavior)

    return flats, rebuild


def _plain_numbers(layout: ak.contents.Content, n_events: int) -> bool:
    """A NumPy-backed ListOffsetArray of 1-D numbers, or ``n_events`` 1-D numbers;
    the numbers maybe behind an IndexedArray (what a selection such as
    ``jets[jets.pt > 30]`` leaves)."""
    if isinstance(layout, ak.contents.ListOffsetArray):
        leaf = layout.content
        if not isinstance(layout.offsets.data, np.ndarray):
            return False
    elif len(layout) == n_events:
        leaf = layout
    else:
        return False
    if isinstance(leaf, ak.contents.IndexedArray):
        if not isinstance(leaf.index.data, np.ndarray) or leaf.parameters:
            return False
        leaf = leaf.content
    return (
        isinstance(leaf, ak.contents.NumpyArray)
        and isinstance(leaf.data, np.ndarray)
        and leaf.data.ndim == 1
        and leaf.parameter("__array__") is None  # not characters
    )


def _numbers(leaf: ak.contents.Content, start: int, stop: int) -> np.ndarray:
    """Entries ``start:stop`` of a NumPy or indexed NumPy leaf (see ``_plain_numbers``)."""
    if isinstance(leaf, ak.contents.IndexedArray):
        return leaf.content.data[leaf.index.data[start:stop]]
    return leaf.data[start:stop]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a is b or (a.shape == b.shape and np.array_equal(a, b))


def _broadcast(arrays: Sequence[ak.Array]) -> tuple[list[Any], Callable]:
    """Any layouts: broadcast with awkward, flatten the valid values, rebuild around."""
    arrays = _mask_missing(ak.broadcast_arrays(*arrays))
    backend = ak.backend(arrays[0])
    flats = [_flat_buffer(array, backend) for array in arrays]
    packed = ak.to_packed(arrays[0])

    def rebuild(flat: Any) -> ak.Array:
        flat = flat if backend == "jax" else np.asarray(flat)
        return ak.Array(_with_leaf(packed.layout, flat), behavior=arrays[0].behavior)

    return flats, rebuild


def _is_array(value: Any) -> bool:
    return is_columnar(value) or (isinstance(value, np.ndarray) and value.ndim > 0)


def _as_awkward(value: Any, inputs: Sequence[Any]) -> ak.Array:
    if isinstance(value, ak.Array):
        return value
    backends = {ak.backend(x) for x in inputs if isinstance(x, ak.Array)}
    return ak.Array(value, backend=backends.pop() if len(backends) == 1 else "cpu")


def _mask_missing(arrays: Sequence[ak.Array]) -> list[ak.Array]:
    """Missing (None) wherever any input is missing, so every flat buffer aligns."""
    if not any(_has_option(array.layout) for array in arrays):
        return list(arrays)
    missing = None
    for array in arrays:
        none = ak.is_none(array, axis=-1)
        missing = none if missing is None else (missing | none)
    return [ak.mask(array, ~missing) for array in arrays]


def _has_option(layout: ak.contents.Content) -> bool:
    if layout.is_option:
        return True
    content = getattr(layout, "content", None)
    return content is not None and _has_option(content)


def _flat_buffer(array: ak.Array, backend: str) -> Any:
    flat = ak.flatten(array, axis=None)
    if backend == "jax":
        return ak.to_jax(flat)
    return ak.to_numpy(flat)


def _with_leaf(layout: ak.contents.Content, values: Any) -> ak.contents.Content:
    """A packed layout with its numeric leaf replaced by ``values``."""
    if isinstance(layout, ak.contents.NumpyArray):
        return ak.contents.NumpyArray(values)
    content = getattr(layout, "content", None)
    if content is None:
        raise TypeError(f"corrections evaluate numeric columns, not {layout.form.type}")
    return layout.copy(content=_with_leaf(content, values))


def _evaluate_dask(function: Callable[..., Any], inputs: Sequence[Any]) -> Any:
    import dask_awkward as dak  # noqa: PLC0415 - dask only when used

    arrays = [x for x in inputs if _is_dask(x)]
    meta = ak.broadcast_arrays(*(array._meta for array in arrays))[0]
    meta = ak.values_astype(meta, np.float64)

    def partition(*parts: Any) -> Any:
        return evaluate_columns(function, parts)

    return dak.map_partitions(partition, *inputs, meta=meta, label="corrax-evaluate")
