"""Optional dependencies: a feature whose extra is not installed says which to install."""

from __future__ import annotations

import importlib.util


def require(feature: str, extra: str, *modules: str) -> None:
    """Raise ``ModuleNotFoundError`` naming the extra if any of ``modules`` is missing."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise ModuleNotFoundError(
            f"{feature} needs {', '.join(missing)}, which the bare corrax install leaves "
            f"out: pip install 'corrax[{extra}]'"
        )
