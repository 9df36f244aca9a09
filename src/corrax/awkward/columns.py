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
    arrays = ak.broadcast_arrays(*(_as_awkward(inputs[i], inputs) for i in positions))
    arrays = _mask_missing(arrays)
    backend = ak.backend(arrays[0])
    if backend == "typetracer":  # dask-awkward tracing the graph: every input is needed
        for array in arrays:
            ak.typetracer.touch_data(array)
        return ak.values_astype(arrays[0], np.float64)
    flats = [_flat_buffer(array, backend) for array in arrays]
    arguments = list(inputs)
    for position, flat in zip(positions, flats, strict=True):
        arguments[position] = flat
    values = function(*arguments)
    packed = ak.to_packed(arrays[0])

    def rebuild(flat: Any) -> ak.Array:
        flat = flat if backend == "jax" else np.asarray(flat)
        return ak.Array(_with_leaf(packed.layout, flat), behavior=arrays[0].behavior)

    if isinstance(values, dict):
        return {name: rebuild(flat) for name, flat in values.items()}
    return rebuild(values)


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
