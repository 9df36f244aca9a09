"""Checking and converting the arguments of ``evaluate`` against a signature.

Concrete inputs stay NumPy arrays (the eager dispatcher pads and blocks them on the
host, see ``_dispatch``); traced inputs stay JAX values. Real inputs become the
default float dtype (float64 with x64, else float32), int inputs the default int dtype.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .errors import InvalidInputError, PrecisionWarning

_warned = {"float32": False}  # warnings given once per process


def signature(name: str, variables: Sequence[Any]) -> str:
    """``name(eta: real, pt: real, systematic: string)``."""
    return f"{name}({', '.join(f'{v.name}: {v.type}' for v in variables)})"


def is_traced(value: Any) -> bool:
    return isinstance(value, jax.core.Tracer)


def is_columnar(value: Any) -> bool:
    """Whether ``value`` is an awkward or dask-awkward array (checked without importing
    either library)."""
    return type(value).__module__.split(".")[0] in ("awkward", "dask_awkward")


def any_columnar(values: Any) -> bool:
    """Whether any value is an awkward or dask-awkward array (without importing them)."""
    return any(is_columnar(v) for v in values)


def columnar_call(function: Any, values: list[Any]) -> Any:
    """Evaluate on awkward or dask-awkward columns (``corrax._columnar``): ``function``
    takes the flat numeric buffers. awkward is imported only when such arrays come, as
    correctionlib's ``highlevel`` does; the dispatcher below never sees them."""
    from ._columnar import evaluate_columns  # noqa: PLC0415 - awkward only when used

    return evaluate_columns(function, values)


def x64_scope() -> Any:
    """A context in which JAX computes in 64 bits, this thread only, restored on exit:
    ``jax.enable_x64(True)``, or its older spelling ``jax.experimental.enable_x64``."""
    scope = getattr(jax, "enable_x64", None)
    if scope is None:  # pragma: no cover - older JAX releases
        from jax.experimental import enable_x64 as scope  # noqa: PLC0415
    return scope(True)


def x64_enabled() -> bool:
    """Whether JAX currently computes in 64 bits (``jax_enable_x64``, maybe in a context)."""
    return jnp.result_type(float) == jnp.float64


def bind_arguments(
    name: str, variables: Sequence[Any], args: Sequence[Any], named: Mapping[str, Any]
) -> list[Any]:
    """Positional then keyword arguments, in the order of ``variables`` (``.name``)."""
    names = [v.name for v in variables]
    if len(args) > len(names):
        raise InvalidInputError(
            f"correction {name!r} takes {len(names)} inputs, got {len(args)}; "
            f"signature: {signature(name, variables)}"
        )
    values = dict(zip(names, args, strict=False))
    for key, value in named.items():
        if key not in names:
            raise InvalidInputError(
                f"correction {name!r} has no input named {key!r}; "
                f"signature: {signature(name, variables)}"
            )
        if key in values:
            raise InvalidInputError(f"correction {name!r}: input {key!r} given twice")
        values[key] = value
    missing = [n for n in names if n not in values]
    if missing:
        raise InvalidInputError(
            f"correction {name!r} takes {len(names)} inputs, got {len(values)} "
            f"(missing {', '.join(map(repr, missing))}); signature: {signature(name, variables)}"
        )
    return [values[n] for n in names]


def split_inputs(
    name: str, variables: Sequence[Any], args: Sequence[Any]
) -> tuple[tuple[str | None, ...], tuple[Any, ...]]:
    """Check ``args`` against the inputs; return (strings, numbers), aligned with the inputs.

    ``strings[i]`` is the value of string input i (None for numeric inputs);
    ``numbers[i]`` the array of numeric input i (None for string inputs). The numeric
    inputs must broadcast together.
    """
    if len(args) != len(variables):
        raise InvalidInputError(
            f"correction {name!r} takes {len(variables)} inputs, got {len(args)}; "
            f"signature: {signature(name, variables)}"
        )
    strings: list[str | None] = []
    numbers: list[Any] = []
    for variable, value in zip(variables, args, strict=True):
        if variable.type == "string":
            strings.append(_string(name, variable, value))
            numbers.append(None)
        else:
            strings.append(None)
            numbers.append(number(name, variable, value))
    check_broadcast(name, variables, numbers)
    return tuple(strings), tuple(numbers)


def check_broadcast(name: str, variables: Sequence[Any], numbers: Sequence[Any]) -> tuple:
    """The broadcast shape of the numeric inputs, or an error naming them and their shapes."""
    shapes = [np.shape(x) for x in numbers if x is not None]
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        described = ", ".join(
            f"{v.name}: {np.shape(x)}"
            for v, x in zip(variables, numbers, strict=True)
            if x is not None
        )
        raise InvalidInputError(
            f"correction {name!r}: inputs of shapes that do not broadcast together ({described})"
        ) from None


def merged(strings: Sequence[str | None], numbers: Sequence[Any]) -> list[Any]:
    """The inputs in order again: strings where given, else the numbers."""
    return [n if s is None else s for s, n in zip(strings, numbers, strict=True)]


def _string(name: str, variable: Any, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "USO" and value.ndim == 0:
        return str(value)
    raise InvalidInputError(
        f"correction {name!r}: input {variable.name!r} is a string input and takes one "
        f"Python str (it selects a branch statically), got {type(value).__name__}"
        + (" of strings; evaluate once per distinct string" if _looks_like_strings(value) else "")
    )


def _looks_like_strings(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "USO"
    return isinstance(value, list | tuple) and any(isinstance(v, str) for v in value)


def number(name: str, variable: Any, value: Any):
    """One real or int input: a NumPy array (concrete) or a JAX value (traced)."""
    if isinstance(value, str) or _looks_like_strings(value):
        raise InvalidInputError(
            f"correction {name!r}: input {variable.name!r} is {variable.type}, got a string "
            f"({value!r:.60})"
        )
    if is_traced(value):
        return _traced(name, variable, value)
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"correction {name!r}: input {variable.name!r} cannot be read as an array: {exc}"
        ) from None
    kind = array.dtype.kind
    if variable.type == "int":
        if kind not in "iub":
            raise InvalidInputError(
                f"correction {name!r}: input {variable.name!r} is int, got dtype {array.dtype}"
                + (
                    " (integers beyond the 64-bit range?)"
                    if kind == "O"
                    else "; pass integers (e.g. array.astype(int))"
                )
            )
        target = np.dtype(jnp.result_type(int))
        _check_int_range(name, variable, array, target)
        return array.astype(target, copy=False)
    if kind not in "iubf":
        raise InvalidInputError(
            f"correction {name!r}: input {variable.name!r} is real, got dtype {array.dtype}"
        )
    target = np.dtype(jnp.result_type(float))
    if array.dtype == np.float64 and target == np.float32:
        warn_float32()
    return array.astype(target, copy=False)


def _traced(name: str, variable: Any, value: Any):
    kind = np.dtype(value.dtype).kind
    if variable.type == "int" and kind not in "iub":
        raise InvalidInputError(
            f"correction {name!r}: input {variable.name!r} is int, got dtype {value.dtype}"
        )
    if variable.type == "real" and kind not in "iubf":
        raise InvalidInputError(
            f"correction {name!r}: input {variable.name!r} is real, got dtype {value.dtype}"
        )
    return jnp.asarray(value, dtype=jnp.result_type(int if variable.type == "int" else float))


def _check_int_range(name: str, variable: Any, array: np.ndarray, target: np.dtype) -> None:
    if array.size == 0 or array.dtype == target or array.dtype.kind == "b":
        return
    info = np.iinfo(target)
    low, high = array.min(), array.max()
    if low < info.min or high > info.max:
        bad = high if high > info.max else low
        hint = "" if target == np.int64 else "; enable JAX's 64-bit mode for int64 inputs"
        raise InvalidInputError(
            f"correction {name!r}: input {variable.name!r} = {int(bad)} is outside the "
            f"{target} range [{info.min}, {info.max}]{hint}"
        )


def warn_float32() -> None:
    """Warn, once per process, that float64 inputs are evaluated in float32."""
    if _warned["float32"]:
        return
    _warned["float32"] = True
    warnings.warn(
        "corrax: float64 inputs are evaluated in float32 because JAX's 64-bit mode is off "
        "in this process, so values differ from correctionlib's at the 1e-7 level. Enable it "
        'with jax.config.update("jax_enable_x64", True) at the start of the program, and in '
        "every worker process (coffea/dask workers start with JAX's defaults: enable it in "
        "the processor or a worker initializer); pass float32 inputs to silence this warning.",
        PrecisionWarning,
        stacklevel=4,
    )
