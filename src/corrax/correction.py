"""``Correction`` and ``CompoundCorrection``: correctionlib's high-level API in JAX."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from correctionlib import schemav2

from . import _diagnostics, _inputs
from . import _nodes as nodes
from ._device import to_device
from ._formula import true_divide
from ._lowering import lower_correction
from ._relax import EXACT, MODES, Relaxation
from .bound import BoundCorrection
from .errors import InvalidDocumentError, InvalidInputError
from .nuisance import NuisanceCorrection

__all__ = ["CompoundCorrection", "Correction"]


def x64_enabled() -> bool:
    """Whether JAX currently computes in 64 bits (``jax_enable_x64``, maybe in a context)."""
    return jnp.result_type(float) == jnp.float64


class _Lowered:
    """A correction lowered for one tuple of string values, with its compiled evaluator."""

    def __init__(self, node: nodes.Node, host_params: Any):
        self.node = node
        self.host_params = host_params
        self._device_params: dict[bool, Any] = {}
        self._compiled: dict[Relaxation, Callable] = {}

    def compiled(self, relax: Relaxation) -> Callable:
        """The jitted, error-checking evaluator for these relaxation settings."""
        if relax not in self._compiled:
            evaluate = functools.partial(nodes.evaluate_root, self.node, relax=relax)
            function = jax.jit(functools.partial(_checked, evaluate))
            self._compiled.setdefault(relax, function)
        return self._compiled[relax]

    def params(self) -> Any:
        key = x64_enabled()
        if key not in self._device_params:
            # concrete arrays even when first asked for inside a caller's jit trace
            with jax.ensure_compile_time_eval():
                tables = jax.tree_util.tree_map_with_path(to_device, self.host_params)
            self._device_params.setdefault(key, tables)
        return self._device_params[key]


def _checked(evaluate: Callable, params: Any, inputs: tuple):
    """``evaluate``'s (value, err) and whether any element failed, for one host check."""
    value, err = evaluate(params, inputs)
    return value, err, jnp.any(err != 0)


class Correction:
    """One correction of a correction set, evaluated with JAX.

    ``evaluate(*inputs)`` takes the inputs positionally, in the order of ``inputs``,
    like correctionlib: real and int inputs as Python numbers, NumPy or JAX arrays
    (broadcast together like NumPy), string inputs as a Python ``str``. It returns a
    JAX array of the broadcast shape (float64 with x64 enabled, else float32) and
    works under ``jax.jit``, ``vmap``, ``grad``, ``jacfwd``, ``jacrev`` and ``hessian``.

    Out-of-range inputs (flow ``error``) and unknown category keys raise when the
    call is concrete; under a JAX transformation, where values cannot raise, those
    elements evaluate to NaN.
    """

    def __init__(self, model: schemav2.Correction, relaxation: Relaxation = EXACT):
        self._model = model
        self._relaxation = relaxation
        self._lowered: dict[tuple[str | None, ...], _Lowered] = {}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._model.name

    @property
    def description(self) -> str:
        return self._model.description or ""

    @property
    def version(self) -> int:
        return self._model.version

    @property
    def inputs(self) -> list[schemav2.Variable]:
        return list(self._model.inputs)

    @property
    def output(self) -> schemav2.Variable:
        return self._model.output

    @property
    def model(self) -> schemav2.Correction:
        """The validated correctionlib schema-v2 model of this correction."""
        return self._model

    @property
    def relaxation(self) -> Relaxation:
        """How lookups are relaxed ("exact" unless made with ``relaxed``)."""
        return self._relaxation

    def __repr__(self) -> str:
        mode = "" if self._relaxation.mode == "exact" else f" ({self._relaxation.mode})"
        return f"<corrax.Correction {_inputs.signature(self.name, self._model.inputs)}{mode}>"

    def relaxed(
        self,
        mode: str,
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
        relaxation = make_relaxation(
            self.name, self._model.inputs, mode, widths, inputs, formula_width
        )
        copy = Correction(self._model, relaxation)
        copy._lowered, copy._lock = self._lowered, self._lock
        return copy

    def lowered(self, strings: tuple[str | None, ...]) -> _Lowered:
        """The lowering for these string input values (cached)."""
        with self._lock:
            lowered = self._lowered.get(strings)
            if lowered is None:
                by_index = {i: s for i, s in enumerate(strings) if s is not None}
                lowered = _Lowered(*lower_correction(self._model, by_index))
                self._lowered[strings] = lowered
        return lowered

    def nuisance(
        self,
        input: str,
        *,
        nominal: str | float | None = None,
        up: str | None = None,
        down: str | None = None,
        family: str | None = None,
        interpolation: str = "linear",
    ) -> NuisanceCorrection:
        """The string systematic ``input`` as a continuous nuisance parameter θ
        (θ = 0 nominal, ±1 up/down); see ``corrax.NuisanceCorrection``. Keys are
        detected among the CMS spellings unless given."""
        return NuisanceCorrection(self, input, nominal, up, down, family, interpolation)

    def bind(self, *strings: str) -> BoundCorrection:
        """This correction with its string inputs fixed (in input order), as a pytree
        whose leaves are its numbers: see ``corrax.BoundCorrection``."""
        names = [v.name for v in self._model.inputs if v.type == "string"]
        if len(strings) != len(names):
            raise InvalidInputError(
                f"correction {self.name!r}: bind takes its string inputs {names}, "
                f"got {len(strings)} values"
            )
        values = iter(strings)
        key = tuple(next(values) if v.type == "string" else None for v in self._model.inputs)
        for variable, value in zip(self._model.inputs, key, strict=True):
            if variable.type == "string" and not isinstance(value, str):
                raise InvalidInputError(
                    f"correction {self.name!r}: input {variable.name!r} takes a str, got {value!r}"
                )
        return BoundCorrection.build(self, key)

    def evaluate(self, *args: Any) -> jax.Array:
        """Evaluate the correction; see the class docstring for inputs and errors."""
        strings, numbers = _inputs.split_inputs(self.name, self._model.inputs, args)
        lowered = self.lowered(strings)
        return _run(
            lowered.compiled(self._relaxation),
            functools.partial(nodes.evaluate_root, lowered.node, relax=self._relaxation),
            lowered.params(),
            numbers,
            lambda err: _diagnostics.raise_first_error(
                self._model, err, _inputs.merged(strings, numbers)
            ),
        )


def make_relaxation(
    name: str,
    variables: Sequence[schemav2.Variable],
    mode: str,
    widths: Mapping[str, float] | None,
    inputs: Sequence[str] | None,
    formula_width: float | None,
) -> Relaxation:
    """Check ``Correction.relaxed``'s arguments and build the static settings."""
    if mode not in MODES:
        raise ValueError(f"correction {name!r}: relaxation mode {mode!r} is not one of {MODES}")
    index = {v.name: i for i, v in enumerate(variables)}
    real = [v.name for v in variables if v.type == "real"]
    for value, what in [
        (formula_width, "formula_width"),
        *((w, f"width of {n!r}") for n, w in (widths or {}).items()),
    ]:
        if value is not None and not (value > 0 and np.isfinite(value)):
            raise ValueError(f"correction {name!r}: {what} must be positive, got {value!r}")
    if mode == "smooth":
        if not widths and formula_width is None:
            raise ValueError(
                f"correction {name!r}: smooth relaxation needs widths, e.g. widths={{{real[0]!r}: 1.0}}"
                if real
                else f"correction {name!r} has no real input to relax"
            )
        names = list(widths or {})
    else:
        names = list(inputs) if inputs is not None else (real if mode != "exact" else [])
    unknown = [n for n in names if n not in real]
    if unknown:
        raise ValueError(f"correction {name!r}: cannot relax {unknown}: real inputs are {real}")
    settings = tuple((index[n], float(widths[n]) if mode == "smooth" else None) for n in names)
    return Relaxation(mode, settings, None if formula_width is None else float(formula_width))


def _run(compiled: Callable, traced: Callable, params: Any, numbers: tuple, on_error: Callable):
    """Evaluate eagerly (compiled, raising on errors) or inside a caller's transformation.

    Under a transformation (traced inputs, or a caller's ``jit`` around a call whose
    inputs are all strings) values cannot raise: failing elements are NaN.
    """
    if any(_inputs.is_traced(x) for x in numbers if x is not None):
        return traced(params, numbers)[0]
    value, err, failed = compiled(params, numbers)
    if _inputs.is_traced(failed):
        return value
    if bool(failed):
        on_error(np.asarray(err))
    return value


_COMPOUND_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": jnp.add,
    "*": jnp.multiply,
    "/": true_divide,
    "last": lambda _, new: new,
}

# Error codes of stack member k are offset by k * _STACK_STRIDE (see _nodes.error_code).
_STACK_STRIDE = 1 << 20


class CompoundCorrection:
    """A chain of corrections (e.g. JEC L1 → L2 → L3 → residual), evaluated as one
    compiled function. Same calling convention and error behaviour as ``Correction``."""

    def __init__(self, model: schemav2.CompoundCorrection, corrections: dict[str, Correction]):
        self._model = model
        missing = [name for name in model.stack if name not in corrections]
        if missing:
            raise InvalidDocumentError(
                f"compound correction {model.name!r}: stack refers to unknown corrections {missing}"
            )
        self._stack = [corrections[name] for name in model.stack]
        positions = {var.name: i for i, var in enumerate(model.inputs)}
        self._input_maps = []
        for corr in self._stack:
            unknown = [v.name for v in corr.inputs if v.name not in positions]
            if unknown:
                raise InvalidDocumentError(
                    f"compound correction {model.name!r}: {corr.name!r} needs inputs {unknown} "
                    "that the compound does not take"
                )
            self._input_maps.append(tuple(positions[v.name] for v in corr.inputs))
        if not self._stack:
            raise InvalidDocumentError(f"compound correction {model.name!r} has an empty stack")
        self._updates = tuple(positions[name] for name in model.inputs_update)
        for position in self._updates:
            if model.inputs[position].type != "real":
                raise InvalidDocumentError(
                    f"compound correction {model.name!r}: updated input "
                    f"{model.inputs[position].name!r} must be real"
                )
        self._compiled: dict[tuple[str | None, ...], Callable] = {}

    name = property(lambda self: self._model.name)
    description = property(lambda self: self._model.description or "")
    inputs = property(lambda self: list(self._model.inputs))
    output = property(lambda self: self._model.output)
    stack = property(lambda self: list(self._stack))

    def __repr__(self) -> str:
        return f"<corrax.CompoundCorrection {_inputs.signature(self.name, self._model.inputs)}>"

    def _members(self, strings: tuple[str | None, ...]) -> list[_Lowered]:
        return [
            corr.lowered(tuple(strings[p] for p in input_map))
            for corr, input_map in zip(self._stack, self._input_maps, strict=True)
        ]

    def _evaluate_traced(self, members: Sequence[nodes.Node], params: Sequence[Any], numbers):
        values = list(numbers)
        out = err = None
        input_op = _COMPOUND_OPS[self._model.input_op]
        output_op = _COMPOUND_OPS[self._model.output_op]
        for k, (node, member_params, input_map) in enumerate(
            zip(members, params, self._input_maps, strict=True)
        ):
            factor, member_err = nodes.evaluate_root(
                node, member_params, tuple(values[p] for p in input_map)
            )
            member_err = jnp.where(member_err != 0, member_err + k * _STACK_STRIDE, 0)
            err = member_err if err is None else nodes.combine_errors(err, member_err)
            for position in self._updates:
                values[position] = input_op(values[position], factor)
            out = factor if out is None else output_op(out, factor)
        return jnp.where(err != 0, jnp.nan, out), err

    def evaluate(self, *args: Any) -> jax.Array:
        """Evaluate the chain; see ``Correction`` for inputs and errors."""
        strings, numbers = _inputs.split_inputs(self.name, self._model.inputs, args)
        members = self._members(strings)
        nodes_ = tuple(m.node for m in members)
        params = tuple(m.params() for m in members)
        traced = functools.partial(self._evaluate_traced, nodes_)
        compiled = self._compiled.get(strings)
        if compiled is None:
            compiled = self._compiled.setdefault(
                strings, jax.jit(functools.partial(_checked, traced))
            )

        def on_error(err: np.ndarray) -> None:
            first = int(err.reshape(-1)[np.flatnonzero(err)[0]])
            k = first // _STACK_STRIDE
            member_err = np.where(err // _STACK_STRIDE == k, err % _STACK_STRIDE, 0)
            values = _inputs.merged(strings, numbers)
            member_inputs = [values[p] for p in self._input_maps[k]]
            _diagnostics.raise_first_error(
                self._stack[k].model,
                member_err,
                member_inputs,
                f" (in compound {self.name!r}; the value shown is the compound's input, "
                "before earlier corrections updated it)",
            )

        return _run(compiled, traced, params, numbers, on_error)
