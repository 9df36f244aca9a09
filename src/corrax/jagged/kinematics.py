"""Four-vector sums and masses on flat JAX arrays (the jit path).

scikit-hep ``vector`` does this on awkward arrays (the eager path); inside ``jit`` the
objects are flat arrays, and a combination's momenta sit along a last axis of size k,
so the few formulas needed are written here: (pt, eta, phi, mass) → (px, py, pz, E),
summed over the last axis, then pt and invariant mass of the sum.

Convert each object once (``to_cartesian`` on the ``[capacity]`` fields), then sum
the Cartesian components per combination (``combination_p4``, ``Combinations.total``)
or over one chosen combination per event (``Combinations.best``): the trigonometric
and hyperbolic functions run once per object, not once per object and combination.

The highest-pt trijet's mass, with gradients through its three jets only::

    cartesian = kinematics.to_cartesian(pt, jets["eta"], jets["phi"], jets["mass"])
    chosen = combos.best(kinematics.pt(*(combos.total(c) for c in cartesian[:2])))
    trijet_mass = kinematics.mass(*kinematics.combination_p4(chosen, cartesian))
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["combination_p4", "mass", "pt", "sum_p4", "to_cartesian"]


def to_cartesian(
    pt: jax.Array, eta: jax.Array, phi: jax.Array, mass: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """(px, py, pz, E) from (pt, eta, phi, mass) in GeV, written out to memory (see
    ``_materialised``: per-combination sums then read them, never recompute them)."""
    px, py = pt * jnp.cos(phi), pt * jnp.sin(phi)
    pz = pt * jnp.sinh(eta)
    energy = _safe_sqrt(px**2 + py**2 + pz**2 + mass**2)
    return _materialised((px, py, pz, energy))


def sum_p4(pt, eta, phi, mass, axis: int = -1) -> tuple[jax.Array, ...]:
    """The summed (px, py, pz, E) over ``axis`` (e.g. the k objects of a combination)."""
    return tuple(c.sum(axis=axis) for c in to_cartesian(pt, eta, phi, mass))


def combination_p4(combinations: Any, cartesian: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
    """(px, py, pz, E) of each combination (``Combinations``: ``[combination slots]``
    each) or of each event's chosen one (``Chosen``: ``[event slots]`` each), from
    per-object Cartesian components (``to_cartesian``, which writes them out: sums
    per combination read them instead of recomputing them)."""
    return _materialised(tuple(combinations.total(c) for c in cartesian))


def pt(px: jax.Array, py: jax.Array, *_: jax.Array) -> jax.Array:
    """Transverse momentum of (px, py, ...)."""
    return jnp.hypot(px, py)


def mass(px: jax.Array, py: jax.Array, pz: jax.Array, energy: jax.Array) -> jax.Array:
    """Invariant mass of (px, py, pz, E); 0 for a (numerically) space-like vector."""
    return _safe_sqrt(energy**2 - px**2 - py**2 - pz**2)


def _materialised(columns: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
    """The same columns, written out to memory.

    XLA on CPU fuses elementwise producers (cos, sin, sinh, sqrt) into the gathers
    that read them, recomputing them for every combination, and the gathers into their
    consumers and the consumers' transposes (3–5× slower value and gradient with 3
    objects per combination; ``optimization_barrier`` does not prevent it). A product
    with the identity matrix is a library call that XLA does not fuse, so the columns
    are written out. Finite values are unchanged (× 1 and + 0 are exact; full
    precision, no TF32 on GPUs); a non-finite component makes the object's other
    components NaN (0 · inf), so that such an object is NaN throughout.
    """
    columns = jnp.broadcast_arrays(*columns)
    shape = columns[0].shape
    stacked = jnp.stack([c.reshape(-1) for c in columns])  # [columns, n]: rows contiguous
    identity = jnp.eye(len(columns), dtype=stacked.dtype)
    stacked = jnp.matmul(identity, stacked, precision=jax.lax.Precision.HIGHEST)
    return tuple(stacked[i].reshape(shape) for i in range(len(columns)))


def _safe_sqrt(x: jax.Array) -> jax.Array:
    """√x for x > 0, else 0, with a finite gradient (0) where x <= 0 (padding)."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)
