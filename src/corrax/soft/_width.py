"""Telling a hard (width 0) call from a soft one."""

from __future__ import annotations

from numbers import Real
from typing import Any


def is_hard(width: Any) -> bool:
    """True for a width of exactly 0 given as a Python number (a static choice: a
    traced or array width is always soft)."""
    if isinstance(width, Real):
        if width < 0:
            raise ValueError(f"a width must be ≥ 0, got {width}")
        return width == 0
    return False
