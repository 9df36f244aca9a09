"""The functional layer: a correction lowered to tables plus a pure JAX function.

``Correction.lower(*strings)`` (or ``CompoundCorrection.lower``) fixes the string
inputs and returns a ``LoweredCorrection`` (``LoweredCompound``): a JAX pytree whose
leaves are the correction's float tables and whose static part is its structure (node
types, flows, formula shapes, integer index tables, relaxation mode). It is what every
layer above the core uses (the ``Correction`` facade, awkward behaviors, the jagged
jit path, coffea and dask helpers):

* ``lowered(*inputs)`` / ``lowered.evaluate(*inputs)``: the numeric inputs (in the
  correction's order, or by name); eager calls raise on bad values, calls under
  ``jit``/``vmap``/``grad`` give NaN for failing elements;
* ``lowered.evaluate_with_errors(*inputs) -> (value, errors)``: pure, for jitted
  analyses: ``errors`` is an int32 array, 0 where fine; after the jitted function has
  run, ``lowered.raise_for_errors(errors, *inputs)`` raises the error an eager call
  would have raised (naming correction, input and value);
* passed as an argument to a jitted function it is not re-traced when its numbers
  change; ``jax.grad`` with respect to it gives a gradient for each table entry.

``lower(..., differentiable=True)`` (also ``Correction.bind``) keeps every number of
the document as its own table entry (bin contents, formula parameters and literals,
bin edges), so that gradients with respect to them are meaningful, and replacing them
(``jax.tree_util.tree_map``) gives a valid correction. The default lowering instead
derives fast search tables from the numbers.

The tables are concrete arrays of the precision active when lowering (float64 with
x64 on); lower again after switching ``jax_enable_x64``.

Lowerings of equal content share one static part (``_Layout``, interned by a digest
of the correction's document, the string choices, the lowering mode and the
precision, the default device): a correction unpickled, loaded again from its file
or built afresh has the same static part as the first copy, so it shares its tables
and is lowered only once per process. The jitted evaluator's cache of compiled code
is keyed by the static part's structure (node tree, leaf layout, integer tables),
not its float tables, so lowerings that differ only in their numbers (a scale
factor's ``sf``/``systup``/``systdown``, the same binning in another file) share
compiled code too.
"""

from __future__ import annotations

import hashlib
import operator
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from correctionlib import schemav2

from . import _diagnostics, _dispatch, _inputs
from ._core import nodes
from ._core.backend import on_cpu
from ._core.formula import true_divide
from ._core.lowering import lower_correction
from ._core.relax import EXACT, Relaxation
from ._core.tables import to_device

__all__ = ["BoundCorrection", "LoweredCompound", "LoweredCorrection"]


# the static parts of the lowerings alive in this process, by content digest
_INTERNED: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_INTERN_LOCK = threading.Lock()


# the document digest of each model alive (by id, checked against a weak reference)
_DOCUMENT_DIGESTS: dict[int, tuple[weakref.ref, bytes]] = {}


def _document_digest(model: Any) -> bytes:
    """blake2b of the document's fields (``repr`` of ``model_dump()``: exact floats,
    ±inf included, whichever way the model was built), once per model object: dumping
    takes 6 ms for a 200 kB correction but 0.7 s for the largest tau corrections, and
    a correction is lowered once per string choice. (Documents are not changed after
    a correction is built from them.)"""
    key = id(model)
    found = _DOCUMENT_DIGESTS.get(key)
    if found is not None and found[0]() is model:
        return found[1]
    digest = hashlib.blake2b(repr(model.model_dump()).encode(), digest_size=20).digest()

    def forget(ref: weakref.ref, key: int = key) -> None:
        if _DOCUMENT_DIGESTS.get(key, (None,))[0] is ref:
            del _DOCUMENT_DIGESTS[key]

    _DOCUMENT_DIGESTS[key] = (weakref.ref(model, forget), digest)
    return digest


def _digest(model: Any, *parts: str) -> str:
    """A content key: the document's digest (``_document_digest``) and the other parts
    (the string choices, the mode, the float dtype)."""
    h = hashlib.blake2b(_document_digest(model), digest_size=20)
    for part in parts:
        h.update(b"\x00")
        h.update(part.encode())
    return h.hexdigest()


def _interned(key: str, build: Any) -> Any:
    """The static part of this content: the one already made in this process, else
    ``build()``. (Held weakly here, but the jitted evaluator's cache of compiled code
    holds every static part it has compiled for: those, with their tables, stay for
    the life of the process, as the compiled code itself does.)"""
    with _INTERN_LOCK:
        found = _INTERNED.get(key)
    if found is not None:
        return found
    made = build()  # outside the lock: lowering a large correction takes a while
    with _INTERN_LOCK:
        return _INTERNED.setdefault(key, made)


class _Layout:
    """The static part of one lowering: structure, integer tables, leaf layout, and the
    float tables of the document (the leaves a fresh lowering starts from).

    Compared by its structure (``structure``: a digest of the node tree, the leaf
    layout and the integer tables, not of the float tables), so that replacing the
    float leaves never re-traces a jitted function, and corrections that differ only
    in their float tables — the ``sf``/``systup``/``systdown`` choices of a scale
    factor, one file's years — share compiled code; interned by content (see the
    module docstring), so that equal corrections have one.
    """

    __slots__ = (
        "__weakref__",
        "differentiable",
        "int_tables",
        "is_float",
        "leaves",
        "model",
        "names",
        "node",
        "strings",
        "structure",
        "treedef",
    )

    def __init__(
        self, model, strings, node, treedef, is_float, int_tables, names, differentiable, leaves
    ):
        self.leaves = leaves
        self.differentiable = differentiable
        self.model = model
        self.strings = strings
        self.node = node
        self.treedef = treedef
        self.is_float = is_float
        self.int_tables = int_tables
        self.names = names
        self.structure = _structure_digest(node, treedef, is_float, int_tables, differentiable)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Layout) and other.structure == self.structure

    def __hash__(self) -> int:
        return hash(self.structure)


def _structure_digest(node, treedef, is_float, int_tables, differentiable) -> bytes:
    """What a jitted evaluation of a layout depends on besides its float leaves (whose
    shapes and dtypes ``jit`` keys itself): the node tree (frozen dataclasses of
    ints, strings and tuples, so its ``repr`` is exact), the leaf layout and the
    integer tables, which a trace closes over as constants."""
    h = hashlib.blake2b(repr((node, str(treedef), is_float, differentiable)).encode())
    for table in int_tables:
        host = np.asarray(table)
        h.update(repr((host.dtype.str, host.shape)).encode())
        h.update(np.ascontiguousarray(host).tobytes())
    return h.digest()


def _path_name(path) -> str:
    parts = []
    for entry in path:
        if isinstance(entry, jax.tree_util.DictKey):
            parts.append(str(entry.key))
        elif isinstance(entry, jax.tree_util.SequenceKey):
            parts.append(str(entry.idx))
    return "/".join(parts)


def _numeric_variables(model, strings) -> list:
    return [v for v, s in zip(model.inputs, strings, strict=True) if s is None]


def _aligned(name, model, strings, args, named) -> tuple:
    """The numeric arguments checked, converted and aligned with all inputs."""
    variables = _numeric_variables(model, strings)
    values = iter(_inputs.bind_arguments(name, variables, args, named))
    aligned = []
    for variable, string in zip(model.inputs, strings, strict=True):
        aligned.append(None if string is not None else _inputs.number(name, variable, next(values)))
    _inputs.check_broadcast(name, model.inputs, aligned)
    return tuple(aligned)


class _Lowered:
    """What lowered corrections and compounds share: their inputs and evaluation.

    Subclasses hold ``_layout`` (with ``model`` and ``strings``) and implement the pure
    ``_evaluate(inputs) -> (value, errors)`` and the host ``_raise(errors, inputs)``.
    """

    _layout: Any

    @property
    def name(self) -> str:
        return self._layout.model.name

    @property
    def model(self) -> Any:
        """The correctionlib schema-v2 model this was lowered from."""
        return self._layout.model

    @property
    def strings(self) -> tuple[str | None, ...]:
        """The fixed string values, aligned with the inputs (None: numeric)."""
        return self._layout.strings

    @property
    def inputs(self) -> list[schemav2.Variable]:
        """The numeric inputs this takes, in order."""
        return _numeric_variables(self.model, self.strings)

    def evaluate(self, *inputs: Any, **named: Any) -> jax.Array:
        """The value for these numeric inputs (in order or by name, broadcast together).

        Eagerly, bad values raise (``OutOfBoundsError``, ``MissingCategoryError``);
        under a JAX transformation failing elements are NaN. Awkward or dask-awkward
        inputs give an array of their (broadcast) layout.
        """
        if _inputs.any_columnar((*inputs, *named.values())):
            values = _inputs.bind_arguments(self.name, self.inputs, inputs, named)
            return _inputs.columnar_call(self.evaluate, values)
        return _dispatch.call(self, _aligned(self.name, self.model, self.strings, inputs, named))

    def __call__(self, *inputs: Any, **named: Any) -> jax.Array:
        return self.evaluate(*inputs, **named)

    def evaluate_with_errors(self, *inputs: Any, **named: Any) -> tuple[jax.Array, jax.Array]:
        """(value, errors): pure; ``errors`` is int32, 0 where the element is fine."""
        aligned = _aligned(self.name, self.model, self.strings, inputs, named)
        return _dispatch.evaluate_with_errors(self, aligned)

    def raise_for_errors(self, errors: Any, *inputs: Any, **named: Any) -> None:
        """Raise what an eager call would have raised for these error codes (from
        ``evaluate_with_errors``) and inputs; return None when every code is 0."""
        errors = np.asarray(errors)
        if errors.any():
            aligned = _aligned(self.name, self.model, self.strings, inputs, named)
            self._raise(errors, aligned)

    def _raise(self, errors: np.ndarray, inputs: Sequence[Any]) -> None:  # pragma: no cover
        raise NotImplementedError


@jax.tree_util.register_pytree_node_class
class LoweredCorrection(_Lowered):
    """A correction with its string inputs fixed: float tables (pytree leaves) and a
    static structure. See the module docstring; make one with ``Correction.lower`` or
    ``Correction.bind``."""

    def __init__(self, layout: _Layout, relaxation: Relaxation, leaves: Sequence[Any]):
        self._layout = layout
        self._relaxation = relaxation
        self._leaves = tuple(leaves)
        self._host_tables: Any = None  # NumPy views of the tables, made on first use
        self._host: bool | None = None  # whether NumPy can evaluate it (found on first use)

    @classmethod
    def build(
        cls,
        model: schemav2.Correction,
        strings: tuple[str | None, ...],
        relaxation: Relaxation = EXACT,
        differentiable: bool = False,
    ) -> LoweredCorrection:
        """Lower ``model`` for these string values (None at numeric inputs); a content
        already lowered in this process is not lowered again."""
        key = _digest(
            model,
            repr(tuple(strings)),
            "differentiable" if differentiable else "fast",
            str(jnp.result_type(float)),
            repr(jax.config.jax_default_device),  # the tables live on that device
        )
        layout = _interned(key, lambda: cls._layout_of(model, tuple(strings), differentiable))
        return cls(layout, relaxation, layout.leaves)

    @staticmethod
    def _layout_of(
        model: schemav2.Correction, strings: tuple[str | None, ...], differentiable: bool
    ) -> _Layout:
        by_index = {i: s for i, s in enumerate(strings) if s is not None}
        node, host = lower_correction(model, by_index, fast=not differentiable)
        paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(host)
        floats, ints, names, is_float = [], [], [], []
        # concrete arrays even when first asked for inside a caller's jit trace
        with jax.ensure_compile_time_eval():
            for path, host_leaf in paths_leaves:
                table = np.asarray(host_leaf)
                is_float.append(table.dtype.kind == "f")
                if is_float[-1]:
                    floats.append(to_device(path, table))
                    names.append(_path_name(path))
                else:
                    ints.append(to_device(path, table))
        return _Layout(
            model,
            tuple(strings),
            node,
            treedef,
            tuple(is_float),
            tuple(ints),
            tuple(names),
            differentiable,
            tuple(floats),
        )

    # pytree protocol
    def tree_flatten(self):
        return self._leaves, (self._layout, self._relaxation)

    @classmethod
    def tree_unflatten(cls, aux, leaves):
        return cls(aux[0], aux[1], leaves)

    def __reduce__(self):
        leaves = tuple(np.asarray(leaf) for leaf in self._leaves)
        return _rebuild_lowered, (
            self.model,
            self.strings,
            self._relaxation,
            self.differentiable,
            leaves,
        )

    @property
    def relaxation(self) -> Relaxation:
        return self._relaxation

    @property
    def differentiable(self) -> bool:
        """Whether every number of the document is its own table entry (``bind``)."""
        return self._layout.differentiable

    def __repr__(self) -> str:
        fixed = ", ".join(
            f"{v.name}={s!r}" for v, s in zip(self.model.inputs, self.strings, strict=True) if s
        )
        return (
            f"<corrax.LoweredCorrection {_inputs.signature(self.name, self.inputs)}"
            f"{' with ' + fixed if fixed else ''}; {self._relaxation.mode}>"
        )

    def leaves_by_name(self) -> dict[str, jax.Array]:
        """The float tables by their place in the lowered structure
        (e.g. ``content/members/0/value``)."""
        return dict(zip(self._layout.names, self._leaves, strict=True))

    def tables(self) -> Any:
        """The full params pytree (float leaves and integer tables) of the structure."""
        floats, ints = iter(self._leaves), iter(self._layout.int_tables)
        flat = [next(floats) if f else next(ints) for f in self._layout.is_float]
        return jax.tree_util.tree_unflatten(self._layout.treedef, flat)

    def _evaluate(self, inputs: tuple) -> tuple[jax.Array, jax.Array]:
        return nodes.evaluate_root(self._layout.node, self.tables(), inputs, self._relaxation)

    def _runs_on_host(self) -> bool:
        """Whether eager calls can evaluate with NumPy: exact mode, float64 tables on
        the CPU (tables on a GPU keep eager calls there), x64 on, and no node written
        for JAX only (lwtnn)."""
        if self._host is None:
            float64 = all(np.dtype(leaf.dtype) == np.float64 for leaf in self._leaves)
            self._host = (
                float64
                and self._relaxation == EXACT
                and on_cpu(self._leaves)
                and nodes.runs_on_host(self._layout.node)
            )
        # x64 off: the compiled path's float32 (and its errors), not float64 values
        return self._host and jax.config.jax_enable_x64

    def _evaluate_host(self, inputs: tuple) -> tuple[np.ndarray, np.ndarray]:
        """``_evaluate`` with NumPy, on NumPy inputs (see ``_runs_on_host``)."""
        if self._host_tables is None:
            self._host_tables = jax.tree_util.tree_map(np.asarray, self.tables())
        node = self._layout.node
        return nodes.evaluate_root(node, self._host_tables, inputs, self._relaxation, host=True)

    def _raise(self, errors: np.ndarray, inputs: Sequence[Any], context: str = "") -> None:
        values = _inputs.merged(self.strings, inputs)
        _diagnostics.raise_first_error(self.model, np.asarray(errors), values, context)


def _rebuild_lowered(model, strings, relaxation, differentiable, leaves) -> LoweredCorrection:
    lowered = LoweredCorrection.build(model, strings, differentiable=differentiable)
    return LoweredCorrection(lowered._layout, relaxation, [jnp.asarray(x) for x in leaves])


BoundCorrection = LoweredCorrection
"""A correction bound to its string inputs, as a pytree of every number of the
document: ``Correction.bind(*strings)``, i.e. ``lower(*strings, differentiable=True)``."""


_COMPOUND_OPS = {
    "+": operator.add,
    "*": operator.mul,
    "/": true_divide,
    "last": lambda _, new: new,
}

# Error codes of stack member k are offset by k * STACK_STRIDE (see nodes.error_code).
STACK_STRIDE = 1 << 20


class _CompoundLayout:
    """Static part of a lowered compound: the chain's wiring. Compared by identity;
    interned by content (``compound_layout``)."""

    __slots__ = ("__weakref__", "input_maps", "model", "strings", "updates")

    def __init__(self, model, strings, input_maps, updates):
        self.model = model
        self.strings = strings
        self.input_maps = input_maps
        self.updates = updates


@jax.tree_util.register_pytree_node_class
class LoweredCompound(_Lowered):
    """A compound correction with its string inputs fixed: its lowered members chained
    (``inputs_update`` with ``input_op``, output accumulated with ``output_op``).

    Same calling convention as ``LoweredCorrection``."""

    def __init__(self, layout: _CompoundLayout, members: Sequence[LoweredCorrection]):
        self._layout = layout
        self._members = tuple(members)

    def tree_flatten(self):
        return self._members, self._layout

    @classmethod
    def tree_unflatten(cls, aux, members):
        return cls(aux, members)

    def __reduce__(self):
        layout = self._layout
        return _rebuild_compound, (
            layout.model,
            layout.strings,
            layout.input_maps,
            layout.updates,
            self._members,
        )

    @property
    def members(self) -> tuple[LoweredCorrection, ...]:
        return self._members

    def __repr__(self) -> str:
        return f"<corrax.LoweredCompound {_inputs.signature(self.name, self.inputs)}>"

    def _evaluate(self, inputs: tuple) -> tuple[jax.Array, jax.Array]:
        return self._chain(inputs, jnp, lambda member, numbers: member._evaluate(numbers))

    def _runs_on_host(self) -> bool:
        return all(member._runs_on_host() for member in self._members)

    def _evaluate_host(self, inputs: tuple) -> tuple[np.ndarray, np.ndarray]:
        return self._chain(inputs, np, lambda member, numbers: member._evaluate_host(numbers))

    def _chain(self, inputs: tuple, xp: Any, evaluate: Any) -> tuple[Any, Any]:
        """The members evaluated in turn (``evaluate(member, inputs)``), with array
        library ``xp``."""
        layout = self._layout
        shape = xp.broadcast_shapes(*(xp.shape(x) for x in inputs if x is not None))
        values = [None if x is None else xp.broadcast_to(x, shape) for x in inputs]
        input_op = _COMPOUND_OPS[layout.model.input_op]
        output_op = _COMPOUND_OPS[layout.model.output_op]
        out = err = None
        for k, (member, input_map) in enumerate(zip(self._members, layout.input_maps, strict=True)):
            factor, member_err = evaluate(member, tuple(values[p] for p in input_map))
            member_err = xp.where(member_err != 0, member_err + k * STACK_STRIDE, 0)
            err = member_err if err is None else nodes.combine_errors(err, member_err)
            for position in layout.updates:
                values[position] = input_op(values[position], factor)
            out = factor if out is None else output_op(out, factor)
        return xp.where(err != 0, np.nan, out), err

    def _raise(self, errors: np.ndarray, inputs: Sequence[Any]) -> None:
        errors = np.asarray(errors)
        first = int(errors.reshape(-1)[np.flatnonzero(errors)[0]])
        k = first // STACK_STRIDE
        member_errors = np.where(errors // STACK_STRIDE == k, errors % STACK_STRIDE, 0)
        member_inputs = [inputs[p] for p in self._layout.input_maps[k]]
        self._members[k]._raise(
            member_errors,
            member_inputs,
            f" (in compound {self.name!r}; the value shown is the compound's input, "
            "before earlier corrections updated it)",
        )


def compound_layout(model, strings, input_maps, updates) -> _CompoundLayout:
    """The static part of a lowered compound of this content (interned)."""
    key = _digest(model, repr((tuple(strings), input_maps, updates)))
    return _interned(key, lambda: _CompoundLayout(model, strings, input_maps, updates))


def _rebuild_compound(model, strings, input_maps, updates, members) -> LoweredCompound:
    return LoweredCompound(compound_layout(model, strings, input_maps, updates), members)
