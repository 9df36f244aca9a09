"""The differentiable analysis: the soft pipeline on the jit path for jagged data
(``pipeline``), the same on awkward's JAX backend as an eager reference (``eager``),
its sums over files on dask (``distributed``) and the optimiser (``optimise``).

The pipeline's public names are re-exported here."""

from __future__ import annotations

from .pipeline import (
    MAX_JETS,
    WEIGHT_SETS,
    Batch,
    Smoothing,
    jet_columns,
    lepton_columns,
    load_batch,
    read_datasets,
    sample_histograms,
    soft_histograms,
    soft_template_histograms,
    soft_templates,
    templates_from_soft,
    ttbar_norm_uncertainty,
    ttbar_norm_value_and_grad,
    weight_factors,
)

__all__ = [
    "MAX_JETS",
    "WEIGHT_SETS",
    "Batch",
    "Smoothing",
    "jet_columns",
    "lepton_columns",
    "load_batch",
    "read_datasets",
    "sample_histograms",
    "soft_histograms",
    "soft_template_histograms",
    "soft_templates",
    "templates_from_soft",
    "ttbar_norm_uncertainty",
    "ttbar_norm_value_and_grad",
    "weight_factors",
]
