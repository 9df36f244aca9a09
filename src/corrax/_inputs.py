"""Checking and converting the arguments of ``evaluate`` against a signature."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from correctionlib import schemav2

from .errors import InvalidInputError


def signature(name: str, variables: Sequence[schemav2.Variable]) -> str:
    """``name(eta: real, pt: real, systematic: string)``."""
    return f"{name}({', '.join(f'{v.name}: {v.type}' for v in variables)})"


def is_traced(value: Any) -> bool:
    return isinstance(value, jax.core.Tracer)


def split_inputs(
    name: str, variables: Sequence[schemav2.Variable], args: Sequence[Any]
) -> tuple[tuple[str | None, ...], tuple[Any, ...]]:
    """Check ``args`` against the inputs; return (strings, numbers), aligned with the inputs.

    ``strings[i]`` is the value of string input i (None for numeric inputs);
    ``numbers[i]`` the JAX array of numeric input i (None for string inputs): real
    inputs become the default float dtype, int inputs the default int dtype.
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
            numbers.append(_number(name, variable, value))
    return tuple(strings), tuple(numbers)


def merged(strings: Sequence[str | None], numbers: Sequence[Any]) -> list[Any]:
    """The inputs in order again: strings where given, else the numbers."""
    return [n if s is None else s for s, n in zip(strings, numbers, strict=True)]


def _string(name: str, variable: schemav2.Variable, value: Any) -> str:
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


def _number(name: str, variable: schemav2.Variable, value: Any):
    if isinstance(value, str) or _looks_like_strings(value):
        raise InvalidInputError(
            f"correction {name!r}: input {variable.name!r} is {variable.type}, got a string "
            f"({value!r:.60})"
        )
    if is_traced(value) or isinstance(value, jax.Array):
        array = value
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"correction {name!r}: input {variable.name!r} cannot be read as an array: {exc}"
            ) from None
    kind = np.dtype(array.dtype).kind
    if variable.type == "int":
        if kind not in "iub":
            raise InvalidInputError(
                f"correction {name!r}: input {variable.name!r} is int, got dtype {array.dtype}; "
                "pass integers (e.g. array.astype(int))"
            )
        return jnp.asarray(array, dtype=jnp.result_type(int))
    if kind not in "iubf":
        raise InvalidInputError(
            f"correction {name!r}: input {variable.name!r} is real, got dtype {array.dtype}"
        )
    return jnp.asarray(array, dtype=jnp.result_type(float))
