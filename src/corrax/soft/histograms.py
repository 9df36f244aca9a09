"""Weighted histograms as binned kernel density estimates (differentiable in the values).

Each value ``x_i`` with weight ``w_i`` is spread by a Gaussian kernel of standard
deviation ``bandwidth`` (the units of ``x``); bin ``b`` receives ``w_i · P_ib``, the
kernel's probability between the bin's edges, ``½[erf((e_{b+1} − x_i)/(h√2)) −
erf((e_b − x_i)/(h√2))]``. The sums of squared weights are ``Σ w_i² P_ib``: at
bandwidth 0 they are ``hist``'s ``Weight()`` variances. Written here rather than taken
from ``relaxed.hist`` because that takes no event weights and returns no variances
(with unit weights the contents are equal: tested).

Under- and overflow (``flow``):

* ``"drop"`` (default): kernel mass outside the outer edges is lost, as the
  under/overflow bins of a hard histogram are not in its contents;
* ``"absorb"``: the mass below the first edge is added to the first bin and the mass
  above the last edge to the last bin (the total weight is kept).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from ._width import is_hard

Flow = Literal["drop", "absorb"]


def _bin_probabilities(values: jax.Array, edges: jax.Array, bandwidth, flow: Flow) -> jax.Array:
    """``[E, B]``: each value's probability to fall in each bin."""
    if is_hard(bandwidth):
        # hist's convention: bin b holds e_b ≤ x < e_{b+1}
        cdf = (values[:, None] >= edges[None, :]).astype(values.dtype)
        cdf = 1.0 - cdf
    else:
        z = (edges[None, :] - values[:, None]) / (bandwidth * np.sqrt(2.0))
        cdf = 0.5 * (1.0 + jax.lax.erf(z))  # the kernel's CDF at each edge
    if flow == "absorb":
        cdf = cdf.at[:, 0].set(0.0).at[:, -1].set(1.0)
    # erf's tail rounding (~1e-16) is kept from giving negative probabilities
    return jnp.maximum(cdf[:, 1:] - cdf[:, :-1], 0.0)


def histogram(
    values: ArrayLike,
    edges: ArrayLike,
    bandwidth: ArrayLike,
    weights: ArrayLike | None = None,
    flow: Flow = "drop",
) -> tuple[jax.Array, jax.Array]:
    """(contents, sums of squared weights) of a soft histogram.

    ``values``: ``[E]``; ``edges``: ``[B + 1]``, increasing (same units as ``values``);
    ``bandwidth``: the kernel's standard deviation (0, a Python number, gives the hard
    histogram); ``weights``: ``[..., E]`` (default 1), leading axes giving one
    histogram each (e.g. a one-hot of each event's sample times its weight, for all
    samples' histograms in one product). Returns two arrays ``[..., B]``.
    """
    if flow not in ("drop", "absorb"):
        raise ValueError(f"flow must be 'drop' or 'absorb', got {flow!r}")
    values = jnp.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"values must be one-dimensional [E], got shape {values.shape}")
    dtype = jnp.result_type(values, float)
    values = values.astype(dtype)
    edges = jnp.asarray(edges, dtype=dtype)
    weights = jnp.ones_like(values) if weights is None else jnp.asarray(weights)
    if weights.shape[-1:] != values.shape:
        raise ValueError(f"weights {weights.shape} must end with the values' axis {values.shape}")
    probability = _bin_probabilities(values, edges, bandwidth, flow)
    return weights @ probability, (weights**2) @ probability
