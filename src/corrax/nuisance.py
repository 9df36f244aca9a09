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
from typing import TYPE_CHECKING, Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from . import _dispatch, _inputs
from ._diagnostics import category_keys
from .errors import InvalidArgumentError, InvalidInputError
from .lowered import STACK_STRIDE, LoweredCorrection

if TYPE_CHECKING:
    from .correction import Correction

Interpolation = Literal["linear", "exponential"]
INTERPOLATIONS = ("linear", "exponential")
_NOMINAL = ("nom", "nominal", "central", "sf")
_PAIRS = (("up", "down"), ("sfup", "sfdown"), ("systup", "systdown"))


def _detect(keys: Sequence[str], family: str | None) -> tuple[str | None, str, str] | None:
    """(nominal, up, down) keys among a Category's keys, or None."""
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
    return None


class NuisanceCorrection:
    """A correction whose string systematic input is replaced by a real θ.

    ``evaluate(theta, *inputs)``: θ first (scalar or array, broadcast with the
    inputs), then the correction's other inputs in order (or by name). Works under
    jit, vmap, grad; pickles.
    """

    def __init__(
        self,
        correction: Correction,
        input_name: str,
        nominal: str | float | None = None,
        up: str | None = None,
        down: str | None = None,
        family: str | None = None,
        interpolation: Interpolation = "linear",
    ):
        names = [v.name for v in correction.inputs]
        if input_name not in names or correction.inputs[names.index(input_name)].type != "string":
            raise InvalidInputError(
                f"correction {correction.name!r}: {input_name!r} is not one of its string inputs"
            )
        if interpolation not in INTERPOLATIONS:
            raise InvalidArgumentError(
                f"correction {correction.name!r}: interpolation must be one of "
                f"{INTERPOLATIONS}, got {interpolation!r}"
            )
        if up is None or down is None:
            keys = category_keys(correction.model, input_name)
            found = _detect(keys, family)
            if found is None:
                raise InvalidArgumentError(
                    f"correction {correction.name!r}: no up/down pair"
                    f"{'' if family is None else f' for family {family!r}'} among the keys of "
                    f"{input_name!r}: {keys}; name them with up=..., down=..."
                )
            found_nominal, up, down = found
            nominal = found_nominal if nominal is None else nominal
        if nominal is None:
            raise InvalidArgumentError(
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

    @property
    def inputs(self) -> list:
        """The inputs after θ: the correction's, without the systematic one."""
        return [v for i, v in enumerate(self.correction.inputs) if i != self.position]

    def lower(self, *strings: str, **named: str) -> _LoweredNuisance:
        """The branches lowered for the other string inputs (in order, or by name), as a
        pytree ``f(theta, *numeric inputs)``."""
        variables = [v for v in self.inputs if v.type == "string"]
        values = iter(_inputs.bind_arguments(self.correction.name, variables, strings, named))
        others = [None if v.type != "string" else next(values) for v in self.inputs]
        return self._lowered(tuple(others))

    def _lowered(self, others: tuple) -> _LoweredNuisance:
        def branch(key):
            if not isinstance(key, str):
                return float(key)
            strings = list(others)
            strings.insert(self.position, key)
            return self.correction._lowered(tuple(strings))

        return _LoweredNuisance(
            (branch(self.nominal), branch(self.up), branch(self.down)), self.interpolation
        )

    def evaluate(self, theta: Any, *inputs: Any, **named: Any) -> jax.Array:
        """The interpolated value at θ (see the module docstring)."""
        name = self.correction.name
        values = _inputs.bind_arguments(name, self.inputs, inputs, named)
        if _inputs.any_columnar((theta, *values)):
            numeric = [i for i, v in enumerate(self.inputs) if v.type != "string"]

            def flat(theta: Any, *numbers: Any) -> jax.Array:
                full = list(values)
                for i, number in zip(numeric, numbers, strict=True):
                    full[i] = number
                return self.evaluate(theta, *full)

            return _inputs.columnar_call(flat, [theta, *(values[i] for i in numeric)])
        strings, numbers = _inputs.split_inputs(name, self.inputs, values)
        theta_variable = _Variable("theta", "real")
        theta = _inputs.number(name, theta_variable, theta)
        _inputs.check_broadcast(name, [theta_variable, *self.inputs], [theta, *numbers])
        lowered = self._lowered(strings)
        aligned = list(numbers)
        aligned.insert(self.position, None)
        return _dispatch.call(lowered, (theta, *aligned))


class _Variable:
    def __init__(self, name: str, type: str):
        self.name, self.type = name, type


@jax.tree_util.register_pytree_node_class
class _LoweredNuisance:
    """Three lowered branches (or a constant nominal) interpolated at θ."""

    def __init__(self, branches: tuple, interpolation: str):
        self.branches = branches
        self.interpolation = interpolation

    def tree_flatten(self):
        lowered = tuple(b for b in self.branches if isinstance(b, LoweredCorrection))
        constants = tuple(None if isinstance(b, LoweredCorrection) else b for b in self.branches)
        return lowered, (constants, self.interpolation)

    @classmethod
    def tree_unflatten(cls, aux, lowered):
        constants, interpolation = aux
        it = iter(lowered)
        return cls(tuple(next(it) if c is None else c for c in constants), interpolation)

    def __call__(self, theta: Any, *inputs: Any) -> jax.Array:
        """Pure: the interpolated value (NaN where a branch fails)."""
        return self._evaluate((theta, *inputs))[0]

    def _evaluate(self, inputs: tuple) -> tuple[jax.Array, jax.Array]:
        return self._interpolated(inputs, jnp, lambda branch, x: branch._evaluate(x))

    def _runs_on_host(self) -> bool:
        lowered = [b for b in self.branches if isinstance(b, LoweredCorrection)]
        return all(branch._runs_on_host() for branch in lowered)

    def _evaluate_host(self, inputs: tuple) -> tuple[np.ndarray, np.ndarray]:
        return self._interpolated(inputs, np, lambda branch, x: branch._evaluate_host(x))

    def _interpolated(self, inputs: tuple, xp: Any, evaluate: Any) -> tuple[Any, Any]:
        """The branches evaluated (``evaluate(branch, inputs)``) and interpolated, with
        array library ``xp``."""
        theta, numbers = inputs[0], inputs[1:]
        shape = xp.broadcast_shapes(*(xp.shape(x) for x in inputs if x is not None))
        dtype = np.float64 if xp is np else jnp.result_type(float)
        results, errors = [], []
        for b, branch in enumerate(self.branches):
            if isinstance(branch, LoweredCorrection):
                value, err = evaluate(branch, numbers)
                errors.append(xp.where(err != 0, err + b * STACK_STRIDE, 0))
            else:
                value = xp.full(shape, branch, dtype=dtype)
            results.append(xp.broadcast_to(value, shape))
        err = errors[0]
        for other in errors[1:]:
            err = xp.where(err != 0, err, other)
        theta = xp.asarray(theta, dtype=results[0].dtype)
        value = _interpolate(xp, theta, *results, self.interpolation)
        return xp.where(err != 0, np.nan, value), xp.broadcast_to(err, shape)

    def _raise(self, errors: np.ndarray, inputs: Sequence[Any]) -> None:
        first = int(errors.reshape(-1)[np.flatnonzero(errors)[0]])
        b = first // STACK_STRIDE
        branch_errors = np.where(errors // STACK_STRIDE == b, errors % STACK_STRIDE, 0)
        self.branches[b]._raise(branch_errors, inputs[1:])


def interpolate(
    theta: jax.Array,
    nominal: jax.Array,
    up: jax.Array,
    down: jax.Array,
    interpolation: Interpolation = "linear",
) -> jax.Array:
    """HistFactory interpolation between down (θ = -1), nominal (0) and up (+1),
    elementwise (arrays broadcast together)."""
    return _interpolate(jnp, theta, nominal, up, down, interpolation)


def _interpolate(xp: Any, theta, nominal, up, down, interpolation: str):
    """``interpolate`` with array library ``xp`` (jax.numpy, or NumPy on the host)."""
    if interpolation == "linear":
        return xp.where(
            theta >= 0, nominal + theta * (up - nominal), nominal + theta * (nominal - down)
        )
    up_ratio, down_ratio = up / nominal, down / nominal
    positive = nominal * up_ratio ** xp.maximum(theta, 0.0)
    negative = nominal * down_ratio ** xp.maximum(-theta, 0.0)
    return xp.where(theta >= 0, positive, negative)
