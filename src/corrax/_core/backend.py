"""The array library an evaluation runs on, told from its arrays.

The node code is written once against an array namespace, as scikit-hep/vector
writes its ``_compute`` functions against an injected ``lib``: ``jax.numpy`` when
any operand is a JAX array or tracer (jitted, differentiated or vmapped
evaluation), NumPy when every operand is a host array or scalar (eager evaluation
on the host, which compiles nothing; see ``corrax._dispatch``).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def namespace(*values: Any) -> ModuleType:
    """``jax.numpy`` if any of ``values`` is a JAX array (or tracer), else ``numpy``."""
    return jnp if any(isinstance(v, jax.Array) for v in values) else np


def on_host(*values: Any) -> bool:
    """Whether ``values`` evaluate with NumPy (no JAX array or tracer among them)."""
    return namespace(*values) is np


def on_cpu(values: Any) -> bool:
    """Whether every JAX array among ``values`` lives on a CPU device (a GPU's arrays
    are evaluated there, compiled)."""
    return all(
        device.platform == "cpu"
        for x in values
        if isinstance(x, jax.Array)
        for device in x.devices()
    )
