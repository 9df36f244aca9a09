"""coffea helpers: an example processor applying corrax corrections (``processor``)."""

from __future__ import annotations

from .._extras import require

require("corrax.coffea", "coffea", "awkward", "vector", "coffea", "uproot", "hist")

from .processor import CorrectedJetsProcessor

__all__ = ["CorrectedJetsProcessor"]
