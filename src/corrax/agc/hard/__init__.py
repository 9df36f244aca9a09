"""The hard (cut-based) analysis: selection, observables, weights and variations with
every correction through corrax (``analysis``), and its coffea processor
(``processor``)."""

from __future__ import annotations

from .analysis import Analysis, JetSystematics

__all__ = ["Analysis", "JetSystematics"]
