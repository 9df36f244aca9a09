"""Relaxed lookups: useful gradients for piecewise-constant corrections.

A bin lookup is piecewise constant: its exact derivative with respect to the looked-up
input is zero almost everywhere. Two relaxations, per input (``Relaxation``):

* ``straight_through``: the value stays exact; the derivative is that of the
  piecewise-linear interpolation of the bin contents between bin centres (multilinear
  across relaxed MultiBinning axes). Implemented as ``exact + g - stop_gradient(g)``,
  which is exact in the forward pass by construction and composes with every JAX
  transformation; derivatives of any order are those of the interpolant g.
* ``smooth``: the value itself is smooth: the contents of the bin and its two
  neighbours weighted by soft bin memberships ``sigmoid((x - lo)/w) - sigmoid((x - hi)/w)``
  (normalised), with a width ``w`` per input. It converges to the exact value as
  ``w -> 0`` everywhere except exactly on an edge; at a distance ``d`` from the nearest
  edge the error is at most ``|Δcontent| * sigmoid(-d/w)`` per relaxed axis.

Comparisons inside formulas (``>``, ``<``, ``>=``, ``<=``, and ``&&``/``||`` of
comparisons) relax the same way with one width, ``formula_width``. Category stays
discrete; flows (clamp, error, default) act exactly as without relaxation.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

MODES = ("exact", "straight_through", "smooth")


@dataclass(frozen=True)
class Relaxation:
    """Static relaxation settings of one evaluation.

    ``widths``: ``(input index, width)`` for each relaxed input (width None in
    straight-through mode). ``formula_width``: width of relaxed formula comparisons,
    None to keep them exact.
    """

    mode: str = "exact"
    widths: tuple[tuple[int, float | None], ...] = ()
    formula_width: float | None = None

    def width(self, input_index: int) -> float | None:
        for index, width in self.widths:
            if index == input_index:
                return width
        return None

    def relaxes(self, input_index: int) -> bool:
        return self.mode != "exact" and any(i == input_index for i, _ in self.widths)


EXACT = Relaxation()


def straight_through(exact, surrogate):
    """``exact`` in value, ``surrogate``'s derivatives."""
    return exact + (surrogate - jax.lax.stop_gradient(surrogate))


def _finite(x):
    """±inf replaced by the largest finite numbers (keeps sigmoid arguments finite)."""
    big = jnp.finfo(x.dtype).max
    return jnp.clip(x, -big, big)


def smooth_points(x, index, nbins, edge, width: float, clamp: bool):
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


def linear_points(x, index, nbins, edge):
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
