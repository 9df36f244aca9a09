"""How many objects pass: the Poisson-binomial distribution of independent passes.

Each object ``j`` of a padded set ``[..., N]`` passes independently with probability
``p_j`` (e.g. a soft cut); the number that pass follows a Poisson-binomial
distribution, computed exactly by dynamic programming over the objects: O(N · K)
for counts capped at K. With 0/1 probabilities the results are the hard indicators
(exactly k, at least k), so the soft counts of a soft analysis become the hard ones
as the cut widths go to 0. Padding objects are excluded with ``mask`` (or by a
probability of 0).

The recursion is unrolled over the N objects (N is a static shape): XLA fuses it
into a few loops over the leading axes, much faster on CPUs than a ``lax.scan``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def _masked(p: ArrayLike, mask: ArrayLike | None) -> jax.Array:
    p = jnp.asarray(p)
    if p.ndim == 0:
        raise ValueError("pass probabilities need an object axis (the last), got a scalar")
    if mask is None:
        return p
    return jnp.where(jnp.asarray(mask, dtype=bool), p, 0.0)


def _check_cap(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative Python int, got {value!r}")


def count_probabilities(p: ArrayLike, max_count: int, mask: ArrayLike | None = None) -> jax.Array:
    """Probabilities of the number of passing objects, ``[..., max_count + 1]``.

    ``p``: pass probabilities ``[..., N]`` (last axis: objects); ``mask``: ``[..., N]``,
    False for padding. Entry ``k < max_count`` is P(exactly k pass); the last entry is
    P(at least ``max_count`` pass). The entries sum to 1.
    """
    _check_cap("max_count", max_count)
    p = _masked(p, mask)
    state = [jnp.ones(p.shape[:-1], dtype=p.dtype)]
    state += [jnp.zeros(p.shape[:-1], dtype=p.dtype)] * max_count
    for j in range(p.shape[-1]):
        q = p[..., j]
        moved = [s * q for s in state]
        # k passes so far: stays k on a failure, becomes k + 1 on a pass; "≥ K" stays
        new = [state[k] - moved[k] + (moved[k - 1] if k else 0.0) for k in range(max_count)]
        new.append(state[max_count] + (moved[max_count - 1] if max_count else 0.0))
        state = new
    return jnp.stack(state, axis=-1)


def exactly(p: ArrayLike, k: int, mask: ArrayLike | None = None) -> jax.Array:
    """P(exactly ``k`` of the objects pass), ``[...]`` (see ``count_probabilities``)."""
    _check_cap("k", k)
    return count_probabilities(p, k + 1, mask)[..., k]


def at_least(p: ArrayLike, k: int, mask: ArrayLike | None = None) -> jax.Array:
    """P(at least ``k`` of the objects pass), ``[...]`` (see ``count_probabilities``)."""
    _check_cap("k", k)
    return count_probabilities(p, k, mask)[..., k]


def rank_probabilities(p: ArrayLike, max_rank: int, mask: ArrayLike | None = None) -> jax.Array:
    """P(object j passes and is the r-th passing object, in the objects' order),
    ``[..., N, max_rank]`` for r = 0 … max_rank − 1 (e.g. "the pt of the i-th selected
    jet" becomes Σ_j P(j is i-th) · pt_j).

    ``p``, ``mask``: as in ``count_probabilities``. Entry (j, r) is p_j times P(exactly
    r of the objects before j pass); summed over j it is P(at least r + 1 pass).
    """
    _check_cap("max_rank", max_rank)
    p = _masked(p, mask)
    before = [jnp.ones(p.shape[:-1], dtype=p.dtype)]  # P(exactly r passed so far)
    before += [jnp.zeros(p.shape[:-1], dtype=p.dtype)] * max(max_rank - 1, 0)
    ranks = []
    for j in range(p.shape[-1]):
        q = p[..., j]
        ranks.append(jnp.stack([b * q for b in before], axis=-1))
        before = [
            before[r] * (1 - q) + (before[r - 1] * q if r else 0.0) for r in range(len(before))
        ]
    return jnp.stack(ranks, axis=-2)


def joint_count_probabilities(
    p_first: ArrayLike,
    p_both: ArrayLike,
    max_first: int,
    max_both: int,
    mask: ArrayLike | None = None,
) -> jax.Array:
    """Joint probabilities of (n objects passing A, m passing A and B), for two nested
    selections, e.g. jets selected (A) and selected and b-tagged (A and B).

    ``p_first``: P(A) per object, ``[..., N]``; ``p_both``: P(A and B) ≤ P(A), the
    same shape. Returns ``[..., max_first + 1, max_both + 1]``: entry (n, m) is P(n
    pass A, m pass both), the last index on each axis meaning "at least". E.g. the
    AGC's region "≥ 4 jets, exactly 1 b tag" is entry ``[..., 4, 1]`` of
    ``joint_count_probabilities(selected, selected * tagged, 4, 2)``.
    """
    _check_cap("max_first", max_first)
    _check_cap("max_both", max_both)
    first = _masked(p_first, mask)
    both = _masked(p_both, mask)
    if first.shape != both.shape:
        raise ValueError(f"p_first {first.shape} and p_both {both.shape} differ in shape")
    # state: P(n, m) per reached (n, m), each a [...] array; unreached states are absent
    state = {(0, 0): jnp.ones(first.shape[:-1], dtype=first.dtype)}
    for j in range(first.shape[-1]):
        a, b = first[..., j], both[..., j]
        outcomes = ((0, 0, 1.0 - a), (1, 0, a - b), (1, 1, b))  # (Δn, Δm, probability)
        new: dict[tuple[int, int], jax.Array] = {}
        for (n, m), probability in state.items():
            for dn, dm, step in outcomes:
                target = (min(n + dn, max_first), min(m + dm, max_both))
                new[target] = new.get(target, 0.0) + probability * step
        state = new
    zero = jnp.zeros(first.shape[:-1], dtype=first.dtype)
    rows = [
        jnp.stack([state.get((n, m), zero) for m in range(max_both + 1)], axis=-1)
        for n in range(max_first + 1)
    ]
    return jnp.stack(rows, axis=-2)
