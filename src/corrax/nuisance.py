"""Systematic variations as a continuous nuisance parameter θ.

A CMS correction often selects its systematic variation with a string input
(``sf``/``sfup``/``sfdown``, ``nom``/``up``/``down``, ``central``/``up``/``down``,
``up_jes``/``down_jes``...). ``NuisanceCorrection`` evaluates the nominal, up and down
branches and interpolates between them HistFactory-style, so that θ = 0 gives the
nominal value, θ = ±1 the variations, and θ can be fitted or profiled with gradients:

* ``"linear"`` (HistFactory code 0): ``nom + θ (up - nom)`` for θ ≥ 0, ``nom + θ (nom - down)``
  for θ < 0;
* ``"exponential"`` (code 1, for multiplicative factors, always positive):
  ``nom (up/nom)^θ`` for θ ≥ 0, ``nom (down/nom)^(-θ)`` for θ < 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from ._diagnostics import category_keys
from .errors import InvalidInputError

INTERPOLATIONS = ("linear", "exponential")
_NOMINAL = ("nom", "nominal", "central", "sf")
_PAIRS = (("up", "down"), ("sfup", "sfdown"), ("systup", "systdown"))


def _detect(keys: Sequence[str], family: str | None) -> tuple[str | None, str, str]:
    """(nominal, up, down) keys among a Category's keys."""
    nominal = next((k for k in _NOMINAL if k in keys), None)
    if family is None:
        pairs = _PAIRS
    else:
        pairs = (
            (f"up_{family}", f"down_{family}"),
            (f"{family}_up", f"{family}_down"),
            (f"{family}Up", f"{family}Down"),
        )
    for up, down in pairs:
        if up in keys and down in keys:
            return nominal, up, down
    raise KeyError(family)


class NuisanceCorrection:
    """A correction whose string systematic input is replaced by a real θ.

    ``evaluate(theta, *inputs)``: θ first (scalar or array, broadcast with the
    inputs), then the correction's other inputs in order. Works under jit, vmap, grad.
    """

    def __init__(
        self,
        correction,
        input_name: str,
        nominal: str | float | None = None,
        up: str | None = None,
        down: str | None = None,
        family: str | None = None,
        interpolation: str = "linear",
    ):
        names = [v.name for v in correction.inputs]
        if input_name not in names or correction.inputs[names.index(input_name)].type != "string":
            raise InvalidInputError(
                f"correction {correction.name!r}: {input_name!r} is not one of its string inputs"
            )
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}"
            )
        if up is None or down is None:
            keys = category_keys(correction.model, input_name)
            try:
                found_nominal, up, down = _detect(keys, family)
            except KeyError:
                raise InvalidInputError(
                    f"correction {correction.name!r}: no up/down pair"
                    f"{'' if family is None else f' for family {family!r}'} among the keys of "
                    f"{input_name!r}: {keys}; name them with up=..., down=..."
                ) from None
            nominal = found_nominal if nominal is None else nominal
        if nominal is None:
            raise InvalidInputError(
                f"correction {correction.name!r}: no nominal key for {input_name!r}; "
                "give nominal= (a key, or a number such as 1.0)"
            )
        self.correction = correction
        self.position = names.index(input_name)
        self.nominal, self.up, self.down = nominal, up, down
        self.interpolation = interpolation

    def __repr__(self) -> str:
        return (
            f"<corrax.NuisanceCorrection {self.correction.name}: θ over "
            f"{self.down!r} / {self.nominal!r} / {self.up!r}, {self.interpolation}>"
        )

    def _branch(self, key: str | float, inputs: Sequence[Any]):
        if not isinstance(key, str):
            shape = jnp.broadcast_shapes(*(jnp.shape(x) for x in inputs if not isinstance(x, str)))
            return jnp.full(shape, key, dtype=jnp.result_type(float))
        args = list(inputs)
        args.insert(self.position, key)
        return self.correction.evaluate(*args)

    def evaluate(self, theta: Any, *inputs: Any) -> jax.Array:
        """The interpolated value at θ (see the module docstring)."""
        nominal = self._branch(self.nominal, inputs)
        up = self._branch(self.up, inputs)
        down = self._branch(self.down, inputs)
        return interpolate(
            jnp.asarray(theta, dtype=nominal.dtype), nominal, up, down, self.interpolation
        )


def interpolate(theta, nominal, up, down, interpolation: str = "linear"):
    """HistFactory interpolation between down (θ = -1), nominal (0) and up (+1)."""
    if interpolation == "linear":
        return jnp.where(
            theta >= 0, nominal + theta * (up - nominal), nominal + theta * (nominal - down)
        )
    up_ratio, down_ratio = up / nominal, down / nominal
    positive = nominal * up_ratio ** jnp.maximum(theta, 0.0)
    negative = nominal * down_ratio ** jnp.maximum(-theta, 0.0)
    return jnp.where(theta >= 0, positive, negative)
