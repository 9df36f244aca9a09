"""``Correction`` and ``CompoundCorrection``: correctionlib's high-level API in JAX.

Both are thin facades: ``evaluate`` splits the string inputs off, fetches the cached
lowering for them (``corrax.lowered``) and hands the numeric inputs to the shared
dispatcher. They pickle by their document (caches are rebuilt on first use), so coffea
executors and dask can ship them to worker processes.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from correctionlib import schemav2

from . import _dispatch, _inputs, _shared
from ._core import relax as _relax
from ._core.relax import EXACT, Mode, Relaxation
from ._io.validate import validate_compound, validate_correction
from .errors import InvalidInputError
from .lowered import LoweredCompound, LoweredCorrection, _CompoundLayout, compound_layout
from .nuisance import Interpolation, NuisanceCorrection

__all__ = ["CompoundCorrection", "Correction"]

StringKey = tuple[str | None, ...]


class _Cache:
    """Lowerings of one document, shared by a correction and its relaxed copies."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lowered: dict[tuple[StringKey, bool, bool], LoweredCorrection] = {}


class _Evaluates:
    """Evaluation shared by ``Correction`` and ``CompoundCorrection``: split the string
    inputs off, fetch the lowering for them (``_lowered``), dispatch the numbers."""

    _model: Any

    @property
    def name(self) -> str:
        return self._model.name

    @property
    def description(self) -> str:
        return self._model.description or ""

    @property
    def inputs(self) -> list[schemav2.Variable]:
        return list(self._model.inputs)

    @property
    def output(self) -> schemav2.Variable:
        return self._model.output

    def _lowered(self, strings: StringKey) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _split(self, args: Sequence[Any], named: Mapping[str, Any]) -> tuple[Any, tuple]:
        values = _inputs.bind_arguments(self.name, self._model.inputs, args, named)
        strings, numbers = _inputs.split_inputs(self.name, self._model.inputs, values)
        return self._lowered(strings), numbers

    def evaluate(self, *inputs: Any, **named: Any) -> jax.Array:
        """Evaluate; see ``Correction`` for inputs and errors. Awkward or dask-awkward
        inputs give an array of their (broadcast) layout."""
        values = _inputs.bind_arguments(self.name, self._model.inputs, inputs, named)
        if _inputs.any_columnar(values):
            return _columns(self._lowered, self._model.inputs, self.name, values)
        lowered, numbers = self._split(values, {})
        return _dispatch.call(lowered, numbers)

    def evaluate_with_errors(self, *inputs: Any, **named: Any) -> tuple[jax.Array, jax.Array]:
        """(value, errors), pure and usable under ``jit``: ``errors`` is an int32 array,
        0 where the element is fine; ``raise_for_errors`` explains a non-zero one."""
        lowered, numbers = self._split(inputs, named)
        return _dispatch.evaluate_with_errors(lowered, numbers)

    def raise_for_errors(self, errors: Any, *inputs: Any, **named: Any) -> None:
        """Raise the error an eager ``evaluate`` would raise for these error codes and
        inputs (call it outside ``jit`` with the codes the jitted function returned)."""
        errors = np.asarray(errors)
        if errors.any():
            lowered, numbers = self._split(inputs, named)
            lowered._raise(errors, numbers)


class Correction(_Evaluates):
    """One correction of a correction set, evaluated with JAX.

    ``evaluate(*inputs, **named)`` takes the inputs in the order of ``inputs`` (like
    correctionlib) or by name: real and int inputs as Python numbers, NumPy or JAX
    arrays (broadcast together like NumPy), string inputs as a Python ``str``. It
    returns a JAX array of the broadcast shape (float64 with x64 enabled, else
    float32) and works under ``jax.jit``, ``vmap``, ``grad``, ``jacfwd``, ``jacrev``
    and ``hessian``.

    Out-of-range inputs (flow ``error``) and unknown category keys raise when the
    call is concrete; under a JAX transformation, where values cannot raise, those
    elements evaluate to NaN (``evaluate_with_errors`` also returns error codes).
    """

    def __init__(self, model: schemav2.Correction):
        validate_correction(model)
        self._init(model)

    def _init(self, model: schemav2.Correction) -> None:
        self._pickled: tuple[str, bytes] | None = None  # see _shared.state_of
        self._model = model
        self._relaxation: Relaxation = EXACT
        self._cache = _Cache()

    @classmethod
    def _validated(cls, model: schemav2.Correction) -> Correction:
        """A correction whose document was validated already (by its set)."""
        correction = cls.__new__(cls)
        correction._init(model)
        return correction

    @classmethod
    def _relaxed_copy(cls, source: Correction, relaxation: Relaxation) -> Correction:
        copy = cls.__new__(cls)
        copy._model, copy._relaxation, copy._cache = source._model, relaxation, source._cache
        copy._pickled = None
        return copy

    def __copy__(self) -> Correction:
        return _rebuild_correction(self._model, self._relaxation)

    def __deepcopy__(self, memo: dict) -> Correction:
        return _rebuild_correction(copy.deepcopy(self._model, memo), self._relaxation)

    def __reduce__(self):
        digest, data = _shared.state_of(self, lambda: (self._model, self._relaxation))
        return _shared.unpickle, ("Correction", digest, data, _rebuild_correction)

    @property
    def version(self) -> int:
        return self._model.version

    @property
    def model(self) -> schemav2.Correction:
        """The validated correctionlib schema-v2 model of this correction."""
        return self._model

    @property
    def mode(self) -> str:
        """How lookups are relaxed: "exact", "straight_through" or "smooth"."""
        return self._relaxation.mode

    def __repr__(self) -> str:
        mode = "" if self.mode == "exact" else f" ({self.mode})"
        return f"<corrax.Correction {_inputs.signature(self.name, self._model.inputs)}{mode}>"

    def relaxed(
        self,
        mode: Mode,
        widths: Mapping[str, float] | None = None,
        inputs: Sequence[str] | None = None,
        formula_width: float | None = None,
    ) -> Correction:
        """A copy whose lookups have useful gradients (see the README, "Gradients").

        ``mode``: "straight_through" (exact values, derivatives of the interpolation
        between bin centres), "smooth" (smooth values; ``widths`` gives the sigmoid
        width per relaxed input, in that input's units) or "exact".
        ``inputs``: the real inputs to relax in straight-through mode (default: all).
        ``formula_width``: also relax comparisons inside formulas, with this width.
        The copy shares this correction's lowered tables.
        """
        relaxation = _relax.make(self.name, self._model.inputs, mode, widths, inputs, formula_width)
        return Correction._relaxed_copy(self, relaxation)

    def lower(self, *strings: str, differentiable: bool = False, **named: str) -> LoweredCorrection:
        """The correction with its string inputs fixed (in input order, or by name),
        lowered to tables plus a pure function: see ``corrax.LoweredCorrection``.
        ``differentiable``: every number of the document its own table entry."""
        key = _string_key(self.name, self._model.inputs, strings, named)
        return self._lowered(key, differentiable)

    def bind(self, *strings: str, **named: str) -> LoweredCorrection:
        """``lower(*strings, differentiable=True)``: a pytree of every number of the
        document, for gradients with respect to bin contents and parameters."""
        return self.lower(*strings, differentiable=True, **named)

    def _lowered(self, strings: StringKey, differentiable: bool = False) -> LoweredCorrection:
        key = (strings, differentiable, _inputs.x64_enabled())
        cache = self._cache
        with cache.lock:
            lowered = cache.lowered.get(key)
            if lowered is None:
                lowered = LoweredCorrection.build(
                    self._model, strings, differentiable=differentiable
                )
                cache.lowered[key] = lowered
        if self._relaxation is EXACT:
            return lowered
        return LoweredCorrection(lowered._layout, self._relaxation, lowered._leaves)

    def nuisance(
        self,
        input: str,
        *,
        nominal: str | float | None = None,
        up: str | None = None,
        down: str | None = None,
        family: str | None = None,
        interpolation: Interpolation = "linear",
    ) -> NuisanceCorrection:
        """The string systematic ``input`` as a continuous nuisance parameter θ
        (θ = 0 nominal, ±1 up/down); see ``corrax.NuisanceCorrection``. Keys are
        detected among the CMS spellings unless given."""
        return NuisanceCorrection(self, input, nominal, up, down, family, interpolation)


def _string_key(
    name: str, variables: Sequence[Any], args: Sequence[Any], named: Mapping[str, Any]
) -> StringKey:
    """The string inputs' values (given in input order or by name), aligned with all
    inputs (None at numeric ones)."""
    strings = [v for v in variables if v.type == "string"]
    values = iter(_inputs.bind_arguments(name, strings, args, named))
    key: list[str | None] = []
    for variable in variables:
        if variable.type != "string":
            key.append(None)
            continue
        value = next(values)
        if not isinstance(value, str):
            raise InvalidInputError(
                f"correction {name!r}: input {variable.name!r} takes a str, got {value!r}"
            )
        key.append(value)
    return tuple(key)


def _rebuild_correction(model: schemav2.Correction, relaxation: Relaxation) -> Correction:
    correction = Correction._validated(model)
    return correction if relaxation is EXACT else Correction._relaxed_copy(correction, relaxation)


def _columns(lower: Any, variables: Sequence[Any], name: str, values: list[Any]) -> Any:
    """Evaluate on awkward columns: strings fixed, the numeric columns flattened."""
    strings = _string_key(
        name,
        variables,
        [v for v, var in zip(values, variables, strict=True) if var.type == "string"],
        {},
    )
    numeric = [v for v, var in zip(values, variables, strict=True) if var.type != "string"]
    return _inputs.columnar_call(lower(strings).evaluate, numeric)


class CompoundCorrection(_Evaluates):
    """A chain of corrections (e.g. JEC L1 → L2 → L3 → residual), evaluated as one
    compiled function. Same calling convention and error behaviour as ``Correction``;
    its members evaluate in their own relaxation mode."""

    def __init__(self, model: schemav2.CompoundCorrection, corrections: Mapping[str, Correction]):
        validate_compound(model, {name: c.model for name, c in corrections.items()})
        self._model = model
        self._stack = [corrections[name] for name in model.stack]
        positions = {var.name: i for i, var in enumerate(model.inputs)}
        self._input_maps = tuple(
            tuple(positions[v.name] for v in corr.inputs) for corr in self._stack
        )
        self._updates = tuple(positions[name] for name in model.inputs_update)
        self._layouts: dict[StringKey, _CompoundLayout] = {}
        self._lock = threading.Lock()

    def __reduce__(self):
        return _rebuild_compound, (self._model, {c.name: c for c in self._stack})

    @property
    def stack(self) -> list[Correction]:
        """The chained corrections, in order."""
        return list(self._stack)

    @property
    def model(self) -> schemav2.CompoundCorrection:
        return self._model

    def __repr__(self) -> str:
        return f"<corrax.CompoundCorrection {_inputs.signature(self.name, self._model.inputs)}>"

    def _lowered(self, strings: StringKey) -> LoweredCompound:
        members = [
            corr._lowered(tuple(strings[p] for p in input_map))
            for corr, input_map in zip(self._stack, self._input_maps, strict=True)
        ]
        with self._lock:
            layout = self._layouts.get(strings)
            if layout is None:
                layout = compound_layout(self._model, strings, self._input_maps, self._updates)
                self._layouts[strings] = layout
        return LoweredCompound(layout, members)

    def lower(self, *strings: str, **named: str) -> LoweredCompound:
        """The chain with its string inputs fixed, as a pytree: see ``LoweredCompound``."""
        return self._lowered(_string_key(self.name, self._model.inputs, strings, named))


def _rebuild_compound(model, corrections) -> CompoundCorrection:
    return CompoundCorrection(model, corrections)
