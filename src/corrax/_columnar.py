"""Corrections on awkward and dask-awkward columns: jagged in, same layout out.

``evaluate_columns(function, inputs)`` broadcasts the inputs (event-level values such
as ``fixedGridRhoFastjetAll`` against per-object ones such as ``Jet_pt``), takes the
flat buffer of valid values of each, calls ``function`` once on those flat buffers,
and rebuilds the broadcast layout around the result: the offsets are reused, missing
values (option types) stay missing and are never evaluated. Fields of one collection
(also after object or event selections, maybe beside per-event numbers) take a short
path without awkward's general broadcasting: their flat buffers are views of the
contents, or one gather; everything else is broadcast by awkward.

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

from ._inputs import is_columnar

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
    flats, rebuild = _one_collection(arrays) or _broadcast(arrays)
    arguments = list(inputs)
    for position, flat in zip(positions, flats, strict=True):
        arguments[position] = flat
    values = function(*arguments)
    if isinstance(values, dict):
        return {name: rebuild(flat) for name, flat in values.items()}
    return rebuild(values)


def _one_collection(arrays: Sequence[ak.Array]) -> tuple[list[Any], Callable] | None:
    """The common case, without ``ak.broadcast_arrays``: NumPy-backed lists of numbers
    of one collection (e.g. ``jets.pt`` and ``abs(jets.eta)``, also after selecting
    objects or events), maybe with per-event numbers beside them (``rho``). The flat
    buffers are views of the contents (one gather after a selection); per-event numbers
    are repeated per object. Returns None (use ``_broadcast``) for anything else."""
    layouts = [array.layout for array in arrays]
    keys = {n: _list_key(layout) for n, layout in enumerate(layouts) if _is_list(layout)}
    if not keys or None in keys.values():
        return None  # no lists, or lists this path does not read
    first = min(keys)
    key = keys[first]
    if any(not _same_key(other, key) for other in keys.values()):
        return None
    starts, stops = _bounds(key)
    if any(n not in keys and not _numbers_ok(x, len(starts)) for n, x in enumerate(layouts)):
        return None
    counts = stops - starts
    if key[0] == "offsets":  # contiguous objects: views of the contents
        offsets = key[1]
        objects = slice(int(offsets[0]), int(offsets[-1]))
        offsets = offsets if offsets[0] == 0 else offsets - offsets[0]
    else:  # a selection: one gather
        offsets = np.zeros(len(starts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        objects = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])
    flats = [
        _numbers(_list_content(layout), objects)
        if n in keys
        else np.repeat(_numbers(layout, slice(None)), counts)
        for n, layout in enumerate(layouts)
    ]
    index = ak.index.Index(offsets)
    behavior = arrays[first].behavior

    def rebuild(flat: Any) -> ak.Array:
        content = ak.contents.NumpyArray(np.asarray(flat))
        return ak.Array(ak.contents.ListOffsetArray(index, content), behavior=behavior)

    return flats, rebuild


def _is_list(layout: ak.contents.Content) -> bool:
    return layout.is_list or (layout.is_indexed and not layout.is_option and layout.content.is_list)


def _list_key(layout: ak.contents.Content) -> tuple | None:
    """What fixes a list's objects: ("offsets", offsets), ("list", starts, stops) or
    ("indexed", index, offsets) (an event selection of a ListOffsetArray); None for a
    list this path does not read (list parameters, which broadcasting would merge,
    non-NumPy buffers, contents other than numbers)."""
    if layout.parameters or not _numbers_ok(_list_content(layout), None):
        return None
    if isinstance(layout, ak.contents.ListOffsetArray):
        parts = ("offsets", layout.offsets.data)
    elif isinstance(layout, ak.contents.ListArray):
        parts = ("list", layout.starts.data, layout.stops.data)
    elif (
        isinstance(layout, ak.contents.IndexedArray)
        and isinstance(layout.content, ak.contents.ListOffsetArray)
        and not layout.content.parameters
    ):
        parts = ("indexed", layout.index.data, layout.content.offsets.data)
    else:
        return None
    return parts if all(isinstance(x, np.ndarray) for x in parts[1:]) else None


def _list_content(layout: ak.contents.Content) -> ak.contents.Content:
    content = layout.content
    return content.content if isinstance(layout, ak.contents.IndexedArray) else content


def _same_key(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and all(_same(x, y) for x, y in zip(a[1:], b[1:], strict=True))


def _bounds(key: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Per event, the start and stop of its objects in the list's content."""
    if key[0] == "offsets":
        return key[1][:-1], key[1][1:]
    if key[0] == "list":
        return key[1], key[2][: len(key[1])]  # a ListArray's stops may be longer
    index, offsets = key[1], key[2]
    return offsets[:-1][index], offsets[1:][index]


def _numbers_ok(layout: ak.contents.Content, n_events: int | None) -> bool:
    """1-D NumPy numbers (``n_events`` of them, unless None), maybe behind an
    IndexedArray (what a selection leaves); not characters. (Parameters of the numbers,
    such as NanoAOD's ``__doc__``, are not carried to the result, as in ``_broadcast``.)"""
    if n_events is not None and len(layout) != n_events:
        return False
    if isinstance(layout, ak.contents.IndexedArray):
        if layout.parameters or not isinstance(layout.index.data, np.ndarray):
            return False
        layout = layout.content
    return (
        isinstance(layout, ak.contents.NumpyArray)
        and isinstance(layout.data, np.ndarray)
        and layout.data.ndim == 1
        and layout.parameter("__array__") is None
    )


def _numbers(leaf: ak.contents.Content, which: Any) -> np.ndarray:
    """Entries ``which`` (a slice or an index array) of a NumPy or indexed NumPy leaf."""
    if isinstance(leaf, ak.contents.IndexedArray):
        return leaf.content.data[leaf.index.data[which]]
    return leaf.data[which]


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
