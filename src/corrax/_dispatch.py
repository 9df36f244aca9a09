"""The one place where evaluations are dispatched, eagerly or inside transformations.

Every evaluable object (a lowered correction, a lowered compound, a nuisance
correction) is a pytree with a pure method ``_evaluate(inputs) -> (value, errors)``
and a host method ``_raise(errors, inputs)``; those NumPy can evaluate also have
``_runs_on_host()`` and ``_evaluate_host(inputs)`` (the same code on NumPy arrays).
One jitted function evaluates all of them, so eager compiled calls, eager
``grad``/``vmap`` and calls inside a caller's ``jit`` share one compilation cache
(keyed by the object's static structure and the shapes).

Eager calls (concrete inputs, outside any trace, none on a GPU) of a correction NumPy
can evaluate (``_runs_on_host``: exact mode, float64 tables on the CPU, no lwtnn
node) run on the host: the same node code with NumPy as its array library (``_core.backend``), in
blocks of at most ``BLOCK`` elements, compiling nothing. XLA's fixed cost of
compiling even a small lookup (0.05 to 0.1 s, plus 0.05 s of tracing and lowering)
was as long as correctionlib's whole pass over a 50-chunk stream of muons; NumPy
evaluates such a lookup at about twice correctionlib's speed from the first call.
Under ``jit`` the compiled code stays the fast path for large batches.

Other eager calls are compiled and run on padded blocks: the
broadcast inputs are flattened and cut into blocks of at most ``BLOCK`` elements, each
padded to the smallest of two sizes (``RUNGS``: 256 for small calls, 65536 for
chunks). A stream of chunks of any sizes thus compiles at most twice per correction
instead of once per size. Compiling costs 0.1 to 0.5 s per correction and size (XLA's
fixed cost dominates even a small lookup), evaluating a padded block of 65536
elements 0.1 to 3 ms, so a middle rung (4096) cost more compilation than it saved
evaluation: in a stream of 50 coffea-like chunks it made the muon scale factor twice
as slow as correctionlib. Elements are independent, so padding never changes a
value. Errors are then raised on the host, naming the first failing element.

Under a transformation (any traced input or table, or inside a caller's ``jit``) the
same jitted function is called directly: no padding, no exceptions; failing elements
are NaN and ``evaluate_with_errors`` returns their error codes.

Whether a call is inside a caller's ``jit`` is told through JAX's public API only: a
jitted function called while another function is being staged out returns a
``jax.core.Tracer`` even for concrete arguments (``_staged``). Concrete inputs inside
a ``jit`` are found the same way, by the first block's result.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._core.backend import on_cpu
from ._inputs import is_traced

BLOCK = 1 << 16
RUNGS = (1 << 8, 1 << 16)  # 256, 65536


@jax.jit
def _evaluate(evaluable: Any, inputs: tuple) -> tuple[jax.Array, jax.Array]:
    return evaluable._evaluate(inputs)


@jax.jit
def _probe() -> jax.Array:
    return jnp.zeros((), dtype=jnp.int32)


def _staged() -> bool:
    """Whether this call is being staged out (inside a ``jit``, also under ``grad`` or
    ``vmap`` of a jitted function): a jitted call then returns a tracer."""
    return isinstance(_probe(), jax.core.Tracer)


class _StagedOut(Exception):
    """Concrete inputs, but the evaluation is being staged out by a caller's ``jit``."""


def evaluate_with_errors(evaluable: Any, inputs: tuple) -> tuple[jax.Array, jax.Array]:
    """(value, error codes) through the shared jitted evaluator; pure, never raises."""
    return _evaluate(evaluable, tuple(_as_jax(x) for x in inputs))


def call(evaluable: Any, inputs: tuple) -> jax.Array:
    """Evaluate: eagerly on padded blocks (raising on errors), or traced (NaN on errors)."""
    traced = any(is_traced(x) for x in inputs if x is not None) or any(
        is_traced(leaf) for leaf in jax.tree_util.tree_leaves(evaluable)
    )
    if traced:
        inputs = tuple(_as_jax(x) for x in inputs)
        if _staged():  # inside a caller's jit: its shapes are fixed, no padding
            return _evaluate(evaluable, inputs)[0]
        return _padded_transform(evaluable, inputs)  # eager grad/jvp/vmap
    if _runs_on_host(evaluable) and on_cpu(inputs) and not _staged():
        value, errors = run_host(evaluable, inputs)
    else:
        try:
            value, errors = run_blocks(evaluable, inputs)
        except _StagedOut:  # concrete inputs (constants) inside a caller's jit
            return _evaluate(evaluable, tuple(_as_jax(x) for x in inputs))[0]
    if errors.any():
        evaluable._raise(errors, inputs)
    return jax.device_put(value)  # no per-shape compilation, unlike jnp.asarray


def run_blocks(evaluable: Any, inputs: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Eager evaluation on padded blocks; host arrays of the broadcast shape."""
    arrays = [None if x is None else np.asarray(x) for x in inputs]
    if all(a is None for a in arrays):  # string inputs only: one scalar
        value, error = _evaluate(evaluable, inputs)
        if isinstance(value, jax.core.Tracer):
            raise _StagedOut
        return np.asarray(value), np.asarray(error)
    shape = np.broadcast_shapes(*(a.shape for a in arrays if a is not None))
    n = math.prod(shape)
    flat = [None if a is None else np.broadcast_to(a, shape).reshape(-1) for a in arrays]
    values = errors = None
    for start in range(0, max(n, 1), BLOCK):
        stop = min(start + BLOCK, n)
        size = rung(stop - start)
        block = tuple(None if a is None else _padded(a[start:stop], size) for a in flat)
        result = _evaluate(evaluable, block)
        if isinstance(result[0], jax.core.Tracer):
            raise _StagedOut
        value, error = (np.asarray(x) for x in result)
        if values is None:
            values, errors = _aligned_empty(n, value.dtype), np.empty(n, error.dtype)
        values[start:stop] = value[: stop - start]
        errors[start:stop] = error[: stop - start]
    values.flags.writeable = False  # device_put may share it without a copy
    return values.reshape(shape), errors.reshape(shape)


def _runs_on_host(evaluable: Any) -> bool:
    runs_on_host = getattr(evaluable, "_runs_on_host", None)
    return runs_on_host is not None and runs_on_host()


def run_host(evaluable: Any, inputs: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Eager evaluation with NumPy (``evaluable._evaluate_host``): nothing to compile.

    Blocks of at most ``BLOCK`` elements keep the temporaries in cache; no padding.
    Floating-point warnings are off: failing elements are reported by their error
    codes, and NaN or inf values are valid inputs.
    """
    arrays = [None if x is None else np.asarray(x) for x in inputs]
    numeric = [a for a in arrays if a is not None]
    shape = np.broadcast_shapes(*(a.shape for a in numeric)) if numeric else ()
    n = math.prod(shape)
    flat = [None if a is None else np.broadcast_to(a, shape).reshape(-1) for a in arrays]
    values = _aligned_empty(n, np.float64)
    errors = np.empty(n, np.int32)
    with np.errstate(all="ignore"):
        for start in range(0, max(n, 1), BLOCK):
            stop = min(start + BLOCK, n) if numeric else 1
            block = tuple(None if a is None else a[start:stop] for a in flat)
            value, error = evaluable._evaluate_host(block)
            values[start:stop] = value
            errors[start:stop] = error
    values.flags.writeable = False  # device_put may share it without a copy
    return values.reshape(shape), errors.reshape(shape)


def _aligned_empty(n: int, dtype: np.dtype) -> np.ndarray:
    """An empty array on a 64-byte boundary: ``jax.device_put`` then wraps it without
    a copy on the CPU (it copies NumPy's usual 16-byte-aligned arrays: ~3 ms per 10^6
    doubles, a third of a fast lookup's time)."""
    itemsize = np.dtype(dtype).itemsize
    buffer = np.empty(n * itemsize + 64, dtype=np.uint8)
    offset = -buffer.ctypes.data % 64
    return buffer[offset : offset + n * itemsize].view(dtype)


def _padded_transform(evaluable: Any, inputs: tuple) -> jax.Array:
    """Eager ``grad``/``jvp`` (outside jit): the same padding as eager calls, with JAX
    operations, so that chunks of varying size reuse the compiled derivative."""
    arrays = [x for x in inputs if x is not None]
    if not arrays:
        return _evaluate(evaluable, inputs)[0]
    shape = jnp.broadcast_shapes(*(jnp.shape(x) for x in arrays))
    n = math.prod(shape)
    size = rung(n) if n <= BLOCK else BLOCK * -(-n // BLOCK)
    padded = []
    for x in inputs:
        if x is None:
            padded.append(None)
            continue
        flat = jnp.broadcast_to(x, shape).reshape(-1)
        fill = flat[:1] if n else jnp.zeros(1, flat.dtype)
        padded.append(jnp.concatenate([flat, jnp.broadcast_to(fill, (size - n,))]))
    value = _evaluate(evaluable, tuple(padded))[0]
    return value[:n].reshape(shape)


def rung(n: int) -> int:
    """The smallest ladder size holding ``n`` elements (``n <= BLOCK``)."""
    return next(size for size in RUNGS if size >= n)


def _padded(values: np.ndarray, size: int) -> np.ndarray:
    """``values`` extended to ``size`` by repeating its first element (a valid input)."""
    if len(values) == size:
        return values
    out = np.empty(size, dtype=values.dtype)
    out[: len(values)] = values
    out[len(values) :] = values[0] if len(values) else 0
    return out


def _as_jax(x: Any) -> Any:
    """A JAX value (``device_put``: no per-shape compilation, unlike ``jnp.asarray``)."""
    return x if x is None or is_traced(x) else jax.device_put(x)
