"""Uncertainty propagation by Jacobian: Cov(out) = J Σ Jᵀ over a correction's numbers.

``propagate(function, bound, sigma)``: ``function(bound) -> array`` is any output built
from a ``BoundCorrection`` (a yield, a histogram); ``sigma`` gives the uncertainty of
each of the bound's numbers as a pytree of the same structure (for instance the
per-bin ``syst`` values of a CMS scale-factor file, bound the same way), or a flat
vector. ``correlation`` says how the numbers co-vary: "none" (independent bins),
"full" (one coherent shift, the classic up/down variation), or a matrix.

For an output linear in the numbers, ``correlation="full"`` reproduces the up/down
shift exactly: Var = (J σ)² = (f(x + σ) - f(x))². Otherwise it is the first-order
(delta-method) approximation of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .errors import InvalidArgumentError


def jacobian(function: Callable[[Any], Any], bound: Any) -> jax.Array:
    """d function / d (flat numbers of ``bound``): shape ``[*output shape, n_numbers]``."""
    vector, unravel = ravel_pytree(bound)
    return jax.jacrev(lambda v: jnp.asarray(function(unravel(v))))(vector)


def propagate(
    function: Callable[[Any], Any],
    bound: Any,
    sigma: Any,
    correlation: Literal["none", "full"] | jax.Array = "none",
) -> jax.Array:
    """Covariance ``J Σ Jᵀ`` of ``function(bound)`` (shape ``[*out, *out]``), with
    ``Σ = D C D``, ``D = diag(sigma)`` and ``C`` the correlation (identity for "none",
    all ones for "full", or the given matrix)."""
    sigma_vector = (
        sigma if isinstance(sigma, jax.Array) and sigma.ndim == 1 else ravel_pytree(sigma)[0]
    )
    jac = jacobian(function, bound)
    out_shape = jac.shape[:-1]
    jac = jac.reshape(-1, jac.shape[-1])
    # J D with D = diag(σ); numbers the output does not depend on contribute nothing,
    # even where their σ is not finite (e.g. bin edges bound along with the contents)
    scaled = jnp.where(jac != 0, jac * sigma_vector, 0.0)
    if isinstance(correlation, str):
        if correlation == "none":
            covariance = scaled @ scaled.T
        elif correlation == "full":
            shift = scaled.sum(axis=-1)
            covariance = jnp.outer(shift, shift)
        else:
            raise InvalidArgumentError(
                f"correlation must be 'none', 'full' or a matrix, got {correlation!r}"
            )
    else:
        covariance = scaled @ jnp.asarray(correlation) @ scaled.T
    return covariance.reshape(out_shape + out_shape)
