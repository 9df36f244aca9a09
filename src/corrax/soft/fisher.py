"""Expected parameter uncertainties from the curvature of a likelihood (Cramér–Rao)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

Params = TypeVar("Params")


def cramer_rao_uncertainty(
    negative_log_likelihood: Callable[[Params], jax.Array], parameters: Params
) -> Params:
    """√diag(H⁻¹), ``H`` the Hessian of ``negative_log_likelihood`` at ``parameters``.

    ``parameters``: any pytree of float arrays — a flat vector, a dict, or evermore
    parameters (``evm.Parameter`` and friends, whose leaves are their values);
    returns the same structure holding each entry's uncertainty. Evaluated on Asimov
    data at the nominal parameters this is the expected uncertainty of each
    parameter with all others profiled (the Cramér–Rao bound, asymptotically
    reached by the maximum-likelihood fit), differentiable in whatever the
    likelihood depends on (e.g. the cuts that made its templates).

    A singular Hessian (a parameter the likelihood does not constrain, e.g. the
    MC-statistics γ of an empty bin) gives NaN or ∞ entries: leave such parameters
    out of the model, as pyhf and cabinetry do.
    """
    flat, unravel = ravel_pytree(parameters)

    def nll(vector: jax.Array) -> jax.Array:
        return negative_log_likelihood(unravel(vector))

    hessian = jax.hessian(nll)(flat)
    covariance = jnp.linalg.inv(hessian)
    return unravel(jnp.sqrt(jnp.diagonal(covariance)))
