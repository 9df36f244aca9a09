"""Host tables (NumPy, float64/int64) as JAX arrays of the current precision."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def to_device(path, leaf: np.ndarray) -> jax.Array:
    """A host table as a JAX array: floats and category keys in the current default
    precision, index tables (bin counts, lookups) in int32.

    With x64 off, int64 key padding is clipped into int32 rather than wrapped.
    """
    if leaf.dtype.kind == "f":
        return jnp.asarray(leaf, dtype=jnp.result_type(float))
    is_keys = any(getattr(entry, "key", None) == "keys" for entry in path)
    dtype = jnp.result_type(int) if is_keys else jnp.int32
    if dtype == jnp.int32:
        info = np.iinfo(np.int32)
        leaf = np.clip(leaf, info.min, info.max)
    return jnp.asarray(leaf, dtype=dtype)
