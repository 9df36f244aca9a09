"""``BoundCorrection``: a correction with its string inputs fixed, as a JAX pytree.

Its leaves are the correction's numbers (bin contents, formula parameters and
literals, bin edges) as float arrays; its structure (node types, flows, formula
shapes, the string choices) is static. So ``jax.grad`` of any scalar built from
``bound.evaluate(...)`` with respect to ``bound`` gives a gradient for every number,
a jitted function taking ``bound`` as an argument is not re-traced when the numbers
change, and a stacked batch of them can be ``vmap``-ed over.

The tables are lowered without the number-derived fast paths (see
``_nodes.Node.optimized``), so that every number of the document is its own entry
and may change: a BoundCorrection evaluates the same values as its Correction, a
little slower.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _diagnostics, _inputs
from . import _nodes as nodes
from ._device import to_device
from ._lowering import lower_correction
from ._relax import Relaxation
from .errors import InvalidInputError


class _Static:
    """The integer tables and the leaf layout, carried as static data. Compared by
    identity, so that replacing the float leaves (tree_unflatten with the same static
    part) never re-traces a jitted function."""

    def __init__(self, is_float: tuple[bool, ...], int_tables: tuple):
        self.is_float = is_float
        self.int_tables = int_tables

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


def _path_name(path) -> str:
    parts = []
    for entry in path:
        if isinstance(entry, jax.tree_util.DictKey):
            parts.append(str(entry.key))
        elif isinstance(entry, jax.tree_util.SequenceKey):
            parts.append(str(entry.idx))
    return "/".join(parts)


@jax.tree_util.register_pytree_node_class
class BoundCorrection:
    """A correction with fixed string inputs; a pytree of its numbers.

    Make one with ``Correction.bind(*strings)``. ``evaluate`` takes the numeric
    inputs only, in the correction's order.
    """

    def __init__(self, correction, strings: tuple, node, treedef, leaves, static, names):
        self.correction = correction
        self.strings = strings
        self._node = node
        self._treedef = treedef
        self._leaves = tuple(leaves)
        self._static = static
        self._names = names

    @classmethod
    def build(cls, correction, strings: tuple[str | None, ...]) -> BoundCorrection:
        by_index = {i: s for i, s in enumerate(strings) if s is not None}
        node, host = lower_correction(correction.model, by_index, fast=False)
        paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(host)
        floats, ints, names, is_float = [], [], [], []
        for path, host_leaf in paths_leaves:
            table = np.asarray(host_leaf)
            is_float.append(table.dtype.kind == "f")
            with jax.ensure_compile_time_eval():
                if is_float[-1]:
                    floats.append(to_device(path, table))
                    names.append(_path_name(path))
                else:
                    ints.append(to_device(path, table))
        static = _Static(tuple(is_float), tuple(ints))
        return cls(correction, strings, node, treedef, floats, static, tuple(names))

    # pytree protocol
    def tree_flatten(self):
        aux = (self.correction, self.strings, self._node, self._treedef, self._static, self._names)
        return self._leaves, aux

    @classmethod
    def tree_unflatten(cls, aux, leaves):
        correction, strings, node, treedef, static, names = aux
        return cls(correction, strings, node, treedef, leaves, static, names)

    @property
    def relaxation(self) -> Relaxation:
        return self.correction.relaxation

    def leaves_by_name(self) -> dict[str, jax.Array]:
        """The numbers by their place in the lowered tables (e.g. ``content/members/0/value``)."""
        return dict(zip(self._names, self._leaves, strict=True))

    def _params(self) -> Any:
        floats, ints = iter(self._leaves), iter(self._static.int_tables)
        flat = [next(floats) if f else next(ints) for f in self._static.is_float]
        return jax.tree_util.tree_unflatten(self._treedef, flat)

    def evaluate(self, *numbers: Any) -> jax.Array:
        """Evaluate with the numeric inputs (strings are bound), in the correction's order."""
        correction = self.correction
        variables = [v for v in correction.inputs if v.type != "string"]
        if len(numbers) != len(variables):
            raise InvalidInputError(
                f"bound correction {correction.name!r} takes its {len(variables)} numeric "
                f"inputs ({', '.join(v.name for v in variables)}), got {len(numbers)}"
            )
        args = list(self.strings)
        numeric = iter(numbers)
        for i, s in enumerate(args):
            if s is None:
                args[i] = next(numeric)
        strings, values = _inputs.split_inputs(correction.name, correction.inputs, args)
        params = self._params()
        relax = correction.relaxation
        traced = functools.partial(nodes.evaluate_root, self._node, relax=relax)
        if any(_inputs.is_traced(x) for x in (*values, *self._leaves) if x is not None):
            return traced(params, values)[0]
        value, err = _compiled(self._node, relax)(params, values)
        if bool(jnp.any(err != 0)):
            _diagnostics.raise_first_error(
                correction.model, np.asarray(err), _inputs.merged(strings, values)
            )
        return value


@functools.lru_cache(maxsize=256)
def _compiled(node, relax):
    return jax.jit(functools.partial(nodes.evaluate_root, node, relax=relax))
