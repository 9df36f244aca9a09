"""Soft cuts: the probability that a value passes a threshold."""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from ._width import is_hard

Keep = Literal["above", "below"]


def _distance(x: ArrayLike, threshold: ArrayLike, keep: Keep) -> jax.Array:
    if keep not in ("above", "below"):
        raise ValueError(f"keep must be 'above' or 'below', got {keep!r}")
    difference = jnp.asarray(x) - jnp.asarray(threshold)
    return difference if keep == "above" else -difference


def cut(x: ArrayLike, threshold: ArrayLike, width: ArrayLike, keep: Keep = "above") -> jax.Array:
    """P(``x`` passes): ``σ((x − threshold)/width)`` for ``keep="above"`` (``x >
    threshold``), ``σ((threshold − x)/width)`` for ``"below"``; broadcasting shapes.

    ``width`` is in the units of ``x``: the pass probability is 0.5 at the threshold,
    0.73 one width above it, 0.88 two widths above, and goes from 0.1 to 0.9 over
    4.4 widths. ``σ`` is ``jax.nn.sigmoid``, finite for any finite argument (no
    overflow of ``exp``). ``width=0`` gives the hard cut, 1.0 where ``x > threshold``
    (strictly) and 0.0 elsewhere.
    """
    distance = _distance(x, threshold, keep)
    if is_hard(width):
        return (distance > 0).astype(jnp.result_type(distance, float))
    return jax.nn.sigmoid(distance / width)


def log_cut(
    x: ArrayLike, threshold: ArrayLike, width: ArrayLike, keep: Keep = "above"
) -> jax.Array:
    """log P(``x`` passes), computed in log space (``log σ``): finite and accurate far
    below the threshold where ``log(cut(...))`` underflows to −∞. ``width=0``: 0 where
    the hard cut passes, −∞ elsewhere."""
    distance = _distance(x, threshold, keep)
    if is_hard(width):
        return jnp.where(distance > 0, 0.0, -jnp.inf).astype(jnp.result_type(distance, float))
    return jax.nn.log_sigmoid(distance / width)
