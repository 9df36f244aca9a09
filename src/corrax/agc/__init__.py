"""The AGC ttbar analysis with corrax: a generated sample, the hard analysis, the model.

Layers, each using only the ones before and corrax's public API:

* ``samples`` (processes, Pythia settings, cross sections) → ``detector`` (emulation)
  → ``generate`` (Pythia 8 + FastJet → NanoAOD files);
* ``corrections`` (the AGC's systematics correction, real CMS files) → ``analysis``
  (selection, observables, weights and variations, all corrections through corrax)
  → ``processor`` (coffea) with filesets from ``inputs``;
* ``model`` (evermore likelihood, pyhf cross-check) and ``plots``;
* ``differentiable`` (the soft analysis on the jit path for jagged data) →
  ``optimise`` (optax) → ``study`` (the demo's differentiable stage); ``eager`` (the
  same soft analysis through awkward's JAX backend: the reference it is checked and
  timed against); ``distributed`` (per-file templates and Jacobians on dask);
* ``cli``: ``python -m corrax.agc --help``.
"""

from __future__ import annotations

from .analysis import Analysis, Cuts
from .corrections import RealCorrections, agc_systematics
from .samples import LUMINOSITY, PROCESSES

__all__ = ["LUMINOSITY", "PROCESSES", "Analysis", "Cuts", "RealCorrections", "agc_systematics"]
