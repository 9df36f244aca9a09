"""Relaxed lookups: useful gradients for piecewise-constant corrections.

A bin lookup is piecewise constant: its exact derivative with respect to the looked-up
input is zero almost everywhere. Each relaxation mode is one small frozen class (like
an optax transform: a new mode is one class) that the evaluator asks two questions:

* ``bin_points(x, index, nbins, edge, input_index, clamp)``: which bins, with which
  weights, stand in for the exact bin ``index`` of a relaxed axis;
* ``combine(exact, surrogate)``: the value given the exact one and the weighted sum
  of those bins (also used for relaxed comparisons inside formulas).

Modes:

* ``Exact``: nothing relaxed (the default).
* ``StraightThrough``: the value stays exact; the derivative is that of the
  piecewise-linear interpolation of the bin contents between bin centres (multilinear
  across relaxed MultiBinning axes). ``exact + g - stop_gradient(g)`` is exact in the
  forward pass by construction and composes with every JAX transformation;
  derivatives of any order are those of the interpolant g.
* ``Smooth``: the value itself is smooth: the contents of the bin and its two
  neighbours weighted by soft bin memberships ``sigmoid((x - lo)/w) - sigmoid((x - hi)/w)``
  (normalised), with a width ``w`` per input. It converges to the exact value as
  ``w -> 0`` everywhere except exactly on an edge; at a distance ``d`` from the nearest
  edge the error is at most ``|Δcontent| * sigmoid(-d/w)`` per relaxed axis.

Comparisons inside formulas (``>``, ``<``, ``>=``, ``<=``, and ``&&``/``||`` of
comparisons) relax the same way with one width, ``formula_width``. Category stays
discrete; flows (clamp, error, default) act exactly as without relaxation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import jax
import jax.numpy as jnp

from ..errors import InvalidArgumentError

Mode = Literal["exact", "straight_through", "smooth"]
Points = list[tuple[Any, Any]]  # (bin index array, weight array) pairs


@dataclass(frozen=True)
class Relaxation:
    """Base class of the relaxation modes: static settings of one evaluation.

    ``formula_width``: width of relaxed formula comparisons, None to keep them exact.
    """

    mode: ClassVar[str] = "exact"
    formula_width: float | None = None

    def relaxes(self, input_index: int) -> bool:
        """Whether lookups on input ``input_index`` are relaxed."""
        return False

    def bin_points(
        self, x, index, nbins, edge: Callable, input_index: int, clamp: bool
    ) -> Points:  # pragma: no cover - only called for relaxed inputs
        raise NotImplementedError

    def combine(self, exact, surrogate):
        """The value of a relaxed lookup or comparison."""
        return exact


@dataclass(frozen=True)
class Exact(Relaxation):
    """No relaxation: lookups are piecewise constant (zero derivative)."""

    mode: ClassVar[str] = "exact"


@dataclass(frozen=True)
class StraightThrough(Relaxation):
    """Exact values, derivatives of the interpolation between bin centres.

    ``inputs``: indices of the relaxed inputs.
    """

    mode: ClassVar[str] = "straight_through"
    inputs: tuple[int, ...] = ()

    def relaxes(self, input_index: int) -> bool:
        return input_index in self.inputs

    def bin_points(self, x, index, nbins, edge, input_index, clamp):
        return linear_points(x, index, nbins, edge)

    def combine(self, exact, surrogate):
        return straight_through(exact, surrogate)


@dataclass(frozen=True)
class Smooth(Relaxation):
    """Smooth values: soft memberships of a bin and its neighbours.

    ``widths``: ``(input index, width)`` for each relaxed input, in the input's units.
    """

    mode: ClassVar[str] = "smooth"
    widths: tuple[tuple[int, float], ...] = ()

    def relaxes(self, input_index: int) -> bool:
        return any(i == input_index for i, _ in self.widths)

    def bin_points(self, x, index, nbins, edge, input_index, clamp):
        width = dict(self.widths)[input_index]
        return smooth_points(x, index, nbins, edge, width, clamp)

    def combine(self, exact, surrogate):
        return surrogate


EXACT = Exact()
MODES: dict[str, type[Relaxation]] = {cls.mode: cls for cls in (Exact, StraightThrough, Smooth)}


def make(
    name: str,
    variables: Sequence[Any],
    mode: str,
    widths: Mapping[str, float] | None = None,
    inputs: Sequence[str] | None = None,
    formula_width: float | None = None,
) -> Relaxation:
    """Check ``Correction.relaxed``'s arguments (``variables``: the correction's
    inputs, with ``.name`` and ``.type``) and build the mode object."""
    if mode not in MODES:
        raise InvalidArgumentError(
            f"correction {name!r}: relaxation mode {mode!r} is not one of {tuple(MODES)}"
        )
    index = {v.name: i for i, v in enumerate(variables)}
    real = [v.name for v in variables if v.type == "real"]
    for value, what in [
        (formula_width, "formula_width"),
        *((w, f"width of {n!r}") for n, w in (widths or {}).items()),
    ]:
        if value is not None and not (
            isinstance(value, int | float) and value > 0 and math.isfinite(value)
        ):
            raise InvalidArgumentError(
                f"correction {name!r}: {what} must be a positive number, got {value!r}"
            )
    formula = None if formula_width is None else float(formula_width)
    if mode == "smooth":
        if not widths and formula_width is None:
            raise InvalidArgumentError(
                f"correction {name!r}: smooth relaxation needs widths, e.g. "
                f"widths={{{real[0]!r}: 1.0}}"
                if real
                else f"correction {name!r} has no real input to relax"
            )
        names = list(widths or {})
    elif mode == "straight_through":
        names = list(inputs) if inputs is not None else real
    else:
        names = []
    unknown = [n for n in names if n not in real]
    if unknown:
        raise InvalidArgumentError(
            f"correction {name!r}: cannot relax {unknown}: its real inputs are {real}"
        )
    if mode == "smooth":
        pairs = tuple((index[n], float(widths[n])) for n in names)  # type: ignore[index]
        return Smooth(formula_width=formula, widths=pairs)
    if mode == "straight_through":
        return StraightThrough(formula_width=formula, inputs=tuple(index[n] for n in names))
    return EXACT


def make_for_set(
    name: str,
    variables: Sequence[Any],
    mode: str,
    widths: Mapping[str, float],
    formula_width: float | None,
) -> Relaxation:
    """One correction's relaxation when a whole set is relaxed: straight-through relaxes
    every real input; smooth the inputs named in ``widths`` that this correction has
    (exact if it has none of them and no ``formula_width``)."""
    if mode != Smooth.mode:
        return make(name, variables, mode, formula_width=formula_width)
    real = {v.name for v in variables if v.type == "real"}
    mine = {input_name: w for input_name, w in widths.items() if input_name in real}
    if not mine and formula_width is None:
        return EXACT
    return make(name, variables, mode, widths=mine, formula_width=formula_width)


def straight_through(exact, surrogate):
    """``exact`` in value, ``surrogate``'s derivatives."""
    return exact + (surrogate - jax.lax.stop_gradient(surrogate))


def _finite(x):
    """±inf replaced by the largest finite numbers (keeps sigmoid arguments finite)."""
    big = jnp.finfo(x.dtype).max
    return jnp.clip(x, -big, big)


def smooth_points(x, index, nbins, edge, width: float, clamp: bool) -> Points:
    """(bin index, weight) for the bin ``index`` and its two neighbours.

    ``edge(j)`` gives edge j of each element's binning. With ``clamp`` the outer
    bins extend to ±inf, like the exact lookup.
    """
    x = _finite(x)
    raw = []
    for offset in (-1, 0, 1):
        j = index + offset
        valid = (j >= 0) & (j < nbins)
        jc = jnp.clip(j, 0, nbins - 1)
        low, high = edge(jc), edge(jc + 1)
        if clamp:
            low = jnp.where(jc == 0, -jnp.inf, low)
            high = jnp.where(jc == nbins - 1, jnp.inf, high)
        weight = jax.nn.sigmoid((x - low) / width) - jax.nn.sigmoid((x - high) / width)
        raw.append((jc, jnp.where(valid, weight, 0.0)))
    total = jnp.maximum(sum(w for _, w in raw), jnp.finfo(x.dtype).tiny)
    return [(j, w / total) for j, w in raw]


def _centre(edge, j):
    low, high = edge(j), edge(j + 1)
    finite_low, finite_high = jnp.isfinite(low), jnp.isfinite(high)
    both = jnp.where(finite_low & finite_high, 0.5 * (low + high), 0.0)
    return jnp.where(
        finite_low & finite_high,
        both,
        jnp.where(finite_low, low, jnp.where(finite_high, high, 0.0)),
    )


def linear_points(x, index, nbins, edge) -> Points:
    """(bin index, weight) pairs of the linear interpolation between bin centres."""
    centre = _centre(edge, index)
    right = x >= centre
    first = jnp.where(right, index, index - 1)
    valid = (first >= 0) & (first + 1 < nbins)
    first = jnp.where(valid, first, index)
    second = jnp.where(valid, first + 1, index)
    c_first, c_second = _centre(edge, first), _centre(edge, second)
    span = jnp.where(valid, c_second - c_first, 1.0)
    t = jnp.where(valid, jnp.clip((_finite(x) - c_first) / span, 0.0, 1.0), 0.0)
    return [(first, 1.0 - t), (second, t)]


def soft_compare(op: str, left, right, width: float):
    """A sigmoid in place of a 0/1 comparison."""
    if op in ("GREATER", "GREATEREQ"):
        return jax.nn.sigmoid((left - right) / width)
    return jax.nn.sigmoid((right - left) / width)


def soft_logic(op: str, left, right):
    """And/or of soft truth values in [0, 1]."""
    if op == "LOGICALAND":
        return left * right
    return left + right - left * right
