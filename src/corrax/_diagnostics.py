"""Error messages for failed evaluations, built from the document on the host.

The evaluator returns an error code per element (see ``_nodes.error_code``); only
when one is non-zero, and only outside JAX transformations, do we come here to turn
the first failing element into an exception naming correction, input and value.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from correctionlib import schemav2

from ._core import nodes
from .errors import MissingCategoryError, OutOfBoundsError

_MAX_KEYS_SHOWN = 20


def _walk(node: Any) -> Iterator[Any]:
    """Every node below (and including) ``node`` in a schema-v2 tree."""
    if isinstance(node, int | float) or node is None:
        return
    yield node
    children: list[Any] = []
    if isinstance(node, schemav2.Binning | schemav2.MultiBinning):
        children = [*node.content, node.flow]
    elif isinstance(node, schemav2.Category):
        children = [item.value for item in node.content] + [node.default]
    elif isinstance(node, schemav2.Transform):
        children = [node.rule, node.content]
    for child in children:
        if not isinstance(child, str):
            yield from _walk(child)


def _edge_range(edges: Any) -> tuple[float, float]:
    if isinstance(edges, schemav2.UniformBinning):
        return float(edges.low), float(edges.high)
    return float(edges[0]), float(edges[-1])


def _ranges(correction: schemav2.Correction, input_name: str) -> set[tuple[float, float]]:
    """The [low, high) ranges of every flow="error" binning axis on this input."""
    ranges = set()
    for node in _walk(correction.data):
        if isinstance(node, schemav2.Binning) and node.input == input_name and node.flow == "error":
            ranges.add(_edge_range(node.edges))
        elif isinstance(node, schemav2.MultiBinning) and node.flow == "error":
            for name, edges in zip(node.inputs, node.edges, strict=True):
                if name == input_name:
                    ranges.add(_edge_range(edges))
    return ranges


def category_keys(correction: schemav2.Correction, input_name: str) -> list[int | str]:
    """Every key of every Category on this input, sorted."""
    keys: set[int | str] = set()
    for node in _walk(correction.data):
        if isinstance(node, schemav2.Category) and node.input == input_name:
            keys.update(item.key for item in node.content)
    return sorted(keys)


def raise_first_error(
    correction: schemav2.Correction, err: np.ndarray, inputs: Sequence[Any], context: str = ""
) -> None:
    """Raise for the first non-zero code of ``err`` (shape of the broadcast inputs)."""
    bad = np.flatnonzero(err)
    first = bad[0]
    index, kind = nodes.decode_error(int(err.reshape(-1)[first]))
    variable = correction.inputs[index]
    value = inputs[index]
    if not isinstance(value, str):
        value = np.broadcast_to(np.asarray(value), err.shape).reshape(-1)[first]
    element = tuple(int(i) for i in np.unravel_index(first, err.shape)) if err.ndim else ()
    where = f" (element {element}"
    where += f"; {bad.size} of {err.size} elements fail)"
    shown = repr(value) if isinstance(value, str) else repr(np.asarray(value).item())
    prefix = f"correction {correction.name!r}{context}: input {variable.name!r} = {shown}"
    if kind == nodes.MISSING_KEY:
        keys = category_keys(correction, variable.name)
        shown = ", ".join(map(str, keys[:_MAX_KEYS_SHOWN])) + (
            " ..." if len(keys) > _MAX_KEYS_SHOWN else ""
        )
        raise MissingCategoryError(
            f"{prefix} matches no category key and there is no default{where}; "
            f"available keys: {shown}"
        )
    ranges = _ranges(correction, variable.name)
    if not ranges:  # no flow="error" binning on this input: wrap or a uniform MultiBinning
        raise OutOfBoundsError(
            f"{prefix} cannot be placed in a bin (±inf or NaN with flow 'wrap', or NaN on a "
            f"UniformBinning axis of a MultiBinning){where}"
        )
    side = "below" if kind == nodes.BELOW else "above"
    if not isinstance(value, str) and np.isnan(value):
        side = "NaN, outside"
    if len(ranges) == 1:
        low, high = next(iter(ranges))
        bounds = f"the valid range [{low}, {high})"
    else:
        lows, highs = zip(*ranges, strict=True)
        bounds = (
            f"its bins (the range depends on other inputs; overall [{min(lows)}, {max(highs)}))"
        )
    raise OutOfBoundsError(f"{prefix} is {side} {bounds} and the flow is 'error'{where}")
