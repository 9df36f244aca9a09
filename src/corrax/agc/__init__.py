"""The AGC ttbar analysis with corrax: a generated sample, the hard analysis, the model,
the differentiable analysis.

Subpackages and modules by stage, each using only the ones before and corrax's
public API:

* ``definition`` (thresholds ``Cuts``, selections in hard and soft form, regions,
  binning, variations) and ``corrections`` (the AGC's systematics correction, real
  CMS files): what every stage below shares;
* ``sample``: processes and Pythia settings → detector emulation → NanoAOD files
  (Pythia 8 + FastJet), coffea filesets;
* ``hard``: the cut-based analysis (selection, observables, weights, variations, all
  corrections through corrax) and its coffea processor;
* ``model``: the one statistical model (the AGC's cabinetry configuration, evermore;
  pyhf cross-check), for the hard fit, the held-out evaluation and the
  differentiable figure of merit;
* ``differentiable``: the soft analysis on the jit path for jagged data
  (``pipeline``), its eager awkward-JAX reference (``eager``), sums over files on
  dask (``distributed``), the optimiser (``optimise``);
* ``report``: plots and the summary's tables;
* ``study`` (the demo's differentiable stage over replicas) and ``cli``
  (``python -m corrax.agc --help``).
"""

from __future__ import annotations

from .._extras import require

require(
    "corrax.agc",
    "agc",
    "awkward",
    "vector",
    "coffea",
    "uproot",
    "hist",
    "dask_awkward",
    "evermore",
    "pyhf",
    "optax",
    "matplotlib",
)

from .corrections import RealCorrections, agc_systematics
from .definition import Cuts
from .hard import Analysis
from .sample.samples import LUMINOSITY, PROCESSES

__all__ = ["LUMINOSITY", "PROCESSES", "Analysis", "Cuts", "RealCorrections", "agc_systematics"]
