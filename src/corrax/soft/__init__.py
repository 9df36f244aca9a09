"""Soft counterparts of the hard steps of an analysis, for gradient-based optimisation.

Written for any analysis: thresholds, bins, temperatures and weights are arguments.
Each operation has a *width* (a cut's logistic width, a choice's temperature, a
histogram's kernel bandwidth), in the units of the quantity it acts on; at width 0
(a Python number) each returns exactly its hard counterpart, and as the width → 0 the
soft value converges to it.

* ``cut`` / ``log_cut``: the probability that ``x`` passes a threshold (logistic);
* ``count_probabilities``, ``exactly``, ``at_least``, ``joint_count_probabilities``:
  how many of a set of padded objects pass, from their independent pass
  probabilities (Poisson-binomial, exact); ``rank_probabilities``: which object is
  the r-th that passes;
* ``choice_weights`` / ``choose``: a soft choice of one candidate (e.g. a trijet) by
  a log-space softmax with a temperature, and its hard and straight-through forms;
* ``histogram``: a weighted binned kernel density estimate, contents and sums of
  squared weights;
* ``is_hard``: whether a width means the hard counterpart (exactly 0, a Python
  number);
* ``cramer_rao_uncertainty``: √diag(H⁻¹) of a negative log-likelihood (e.g. of an
  evermore model), the expected uncertainty of its parameters.

Only JAX is needed; every function works under ``jit``, ``grad`` and ``vmap``.
"""

from __future__ import annotations

from ._width import is_hard
from .choice import choice_weights, choose
from .counting import (
    at_least,
    count_probabilities,
    exactly,
    joint_count_probabilities,
    rank_probabilities,
)
from .cuts import cut, log_cut
from .fisher import cramer_rao_uncertainty
from .histograms import histogram

__all__ = [
    "at_least",
    "choice_weights",
    "choose",
    "count_probabilities",
    "cramer_rao_uncertainty",
    "cut",
    "exactly",
    "histogram",
    "is_hard",
    "joint_count_probabilities",
    "log_cut",
    "rank_probabilities",
]
