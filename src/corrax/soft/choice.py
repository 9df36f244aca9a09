"""A soft choice of one candidate among several (e.g. the trijet of highest pt).

The hard choice takes the candidate of highest ``score`` among the allowed ones. Its
soft counterpart weights every candidate by ``softmax(score / temperature + log_prior)``
along the candidate axis: ``log_prior`` is the log-probability that the candidate is
allowed at all (e.g. the sum of its objects' ``log_cut`` values), so a candidate
failing a cut by many widths gets a weight that vanishes faster than any score
difference. Everything is computed in log space: no ``exp`` overflows and no
log-probability underflows to −∞ for a finite argument.

Modes:

* ``"soft"``: the softmax weights (gradients flow to every candidate);
* ``"hard"``: a one-hot of the candidate of largest ``score / temperature +
  log_prior`` (the mode of the soft weights; no gradient through the choice);
* ``"straight_through"``: the hard choice's value, the soft choice's gradient (with
  respect to the scores, priors and values alike).

As the temperature → 0 (with log-priors → 0 or −∞, i.e. hard cuts), the soft choice
becomes the hard one (tested).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

Mode = Literal["soft", "hard", "straight_through"]


def _logits(scores, temperature, log_prior) -> jax.Array:
    logits = jnp.asarray(scores) / temperature
    return logits if log_prior is None else logits + log_prior


def _softmax(logits: jax.Array, axis: int) -> jax.Array:
    """Softmax that gives weights 0 (not NaN) where every logit is −∞."""
    top = jax.lax.stop_gradient(jnp.max(logits, axis=axis, keepdims=True))
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    exponentials = jnp.exp(logits - top)
    total = jnp.sum(exponentials, axis=axis, keepdims=True)
    return exponentials / jnp.where(total > 0, total, 1.0)


def _check_mode(mode: str) -> None:
    if mode not in ("soft", "hard", "straight_through"):
        raise ValueError(f"mode must be 'soft', 'hard' or 'straight_through', got {mode!r}")


def choice_weights(
    scores: ArrayLike,
    temperature: ArrayLike,
    log_prior: ArrayLike | None = None,
    mode: Mode = "soft",
    axis: int = -1,
) -> jax.Array:
    """Weights of the candidates along ``axis`` (they sum to 1; 0 where every candidate
    has ``log_prior`` −∞). ``scores`` and ``temperature`` share units (e.g. GeV);
    ``log_prior`` is dimensionless (natural log). Shapes broadcast."""
    _check_mode(mode)
    logits = _logits(scores, temperature, log_prior)
    if mode == "soft":
        return _softmax(logits, axis)
    best = jnp.argmax(logits, axis=axis, keepdims=True)
    positions = jax.lax.broadcasted_iota(jnp.int32, logits.shape, axis % logits.ndim)
    hard = (positions == best).astype(logits.dtype)
    hard = jnp.where(jnp.isfinite(jnp.max(logits, axis=axis, keepdims=True)), hard, 0.0)
    if mode == "hard":
        return hard
    soft = _softmax(logits, axis)
    return hard + (soft - jax.lax.stop_gradient(soft))


def choose(
    values: ArrayLike,
    scores: ArrayLike,
    temperature: ArrayLike,
    log_prior: ArrayLike | None = None,
    mode: Mode = "soft",
    axis: int = -1,
) -> jax.Array:
    """The chosen candidate's value: ``Σ weights · values`` along ``axis`` (see
    ``choice_weights``). In ``"hard"`` mode the value is taken, not multiplied, so an
    unchosen candidate's NaN or ∞ does not leak into the result."""
    _check_mode(mode)
    values = jnp.asarray(values)
    logits = _logits(scores, temperature, log_prior)
    values, logits = jnp.broadcast_arrays(values, logits)
    if mode == "soft":
        return jnp.sum(_softmax(logits, axis) * values, axis=axis)
    best = jnp.argmax(logits, axis=axis, keepdims=True)
    hard = jnp.squeeze(jnp.take_along_axis(values, best, axis=axis), axis=axis)
    if mode == "hard":
        return hard
    soft = jnp.sum(_softmax(logits, axis) * values, axis=axis)
    return jax.lax.stop_gradient(hard) + (soft - jax.lax.stop_gradient(soft))
