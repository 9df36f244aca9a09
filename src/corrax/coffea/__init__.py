"""coffea helpers: an example processor applying corrax corrections (``processor``)."""

from __future__ import annotations

from .processor import CorrectedJetsProcessor

__all__ = ["CorrectedJetsProcessor"]
