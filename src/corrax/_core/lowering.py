"""Lowering: a correctionlib schema-v2 node tree to a lowered node and its tables.

``lower_correction`` walks the validated document once. Each node becomes a
structure (``_nodes``) and a params pytree of NumPy arrays for a single instance;
siblings of equal structure are stacked into one table (padded where their sizes
differ), so the result has one node per distinct structure and tables holding the
numbers. String inputs are resolved here: a string selects its Category branch
statically, so each tuple of string values lowers to its own (small) tree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from correctionlib import schemav2

from ..errors import InvalidDocumentError, MissingCategoryError
from . import formula as _formula
from . import lwtnn as _lwtnn
from . import nodes

# Fill values for padding stacked tables: +inf past the last edge keeps edges sorted
# and makes padded bins unreachable; the largest int does the same for category keys.
_PAD = {"edges": np.inf, "keys": np.iinfo(np.int64).max}


def stack(params_list: Sequence[Any]) -> Any:
    """Stack single-instance params of one structure into ``[N, ...]`` tables.

    Arrays of different sizes (e.g. binnings with different numbers of edges) are
    padded to the largest, with the fill value of their key (see ``_PAD``).
    """
    flat_lists = []
    treedef = None
    for params in params_list:
        leaves_with_paths, treedef_i = jax.tree_util.tree_flatten_with_path(params)
        if treedef is None:
            treedef = treedef_i
        elif treedef_i != treedef:
            raise AssertionError("stacking params of different structures")
        flat_lists.append(leaves_with_paths)
    stacked = []
    for position, (path, _) in enumerate(flat_lists[0]):
        arrays = [np.asarray(leaves[position][1]) for leaves in flat_lists]
        stacked.append(_stack_padded(arrays, _PAD.get(_last_key(path), 0)))
    return jax.tree_util.tree_unflatten(treedef, stacked)


def _last_key(path) -> Any:
    for entry in reversed(path):
        if isinstance(entry, jax.tree_util.DictKey):
            return entry.key
    return None


def _stack_padded(arrays: list[np.ndarray], fill: Any) -> np.ndarray:
    shape = tuple(max(sizes) for sizes in zip(*(a.shape for a in arrays), strict=True))
    if all(a.shape == shape for a in arrays):
        return np.stack(arrays)
    out = np.full((len(arrays), *shape), fill, dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[(i, *(slice(0, n) for n in a.shape))] = a
    return out


class Lowerer:
    """Lowers the nodes of one correction for one tuple of string input values."""

    def __init__(self, correction: schemav2.Correction, strings: dict[int, str]):
        self.correction = correction
        self.input_index = {var.name: i for i, var in enumerate(correction.inputs)}
        self.input_types = [var.type for var in correction.inputs]
        self.inputs_json = json.dumps([{"name": v.name, "type": v.type} for v in correction.inputs])
        self.strings = strings

    def _index(self, name: str, allowed: tuple[str, ...] = ("real", "int")) -> int:
        index = self.input_index.get(name)
        if index is None:
            raise InvalidDocumentError(
                f"correction {self.correction.name!r}: node refers to unknown input {name!r}"
            )
        if self.input_types[index] not in allowed:
            raise InvalidDocumentError(
                f"correction {self.correction.name!r}: input {name!r} of type "
                f"{self.input_types[index]} cannot be used here (needs {' or '.join(allowed)})"
            )
        return index

    def lower(self, node: Any) -> tuple[nodes.Node, Any]:
        if isinstance(node, int | float):
            return nodes.Const(), {"value": np.float64(node)}
        method = getattr(self, f"_lower_{node.nodetype}", None)
        if method is None:
            raise InvalidDocumentError(
                f"correction {self.correction.name!r}: node type {node.nodetype!r} "
                "is not supported by corrax"
            )
        return method(node)

    def lower_children(self, items: Sequence[Any]) -> tuple[nodes.Children, Any]:
        if all(isinstance(item, int | float) for item in items):
            values = np.asarray(items, dtype=np.float64)
            return nodes.Children((nodes.Const(),)), {"members": ({"value": values},)}
        lowered = [self.lower(item) for item in items]
        by_structure: dict[nodes.Node, list[int]] = {}
        for i, (structure, _) in enumerate(lowered):
            by_structure.setdefault(structure, []).append(i)
        if len(by_structure) == 1:
            structure = lowered[0][0]
            return nodes.Children((structure,)), {"members": (stack([p for _, p in lowered]),)}
        # A canonical group order, so that sibling lookups with the same child
        # structures have equal structure themselves and can be stacked.
        groups = sorted(by_structure, key=repr)
        group_of = np.zeros(len(items), dtype=np.int32)
        member_of = np.zeros(len(items), dtype=np.int32)
        members = []
        for g, structure in enumerate(groups):
            positions = by_structure[structure]
            group_of[positions] = g
            member_of[positions] = np.arange(len(positions), dtype=np.int32)
            members.append(stack([lowered[i][1] for i in positions]))
        params = {"members": tuple(members), "group": group_of, "member": member_of}
        return nodes.Children(tuple(groups)), params

    def _flow(self, flow: Any) -> tuple[str, nodes.Node | None, Any]:
        if isinstance(flow, str):
            return flow, None, None
        default, default_params = self.lower(flow)
        return "default", default, default_params

    def _axis(self, input_name: str, edges: Any) -> tuple[Any, dict[str, np.ndarray]]:
        index = self._index(input_name)
        if isinstance(edges, schemav2.UniformBinning):
            params = {
                "low": np.float64(edges.low),
                "high": np.float64(edges.high),
                "nbins": np.int32(edges.n),
            }
            return nodes.UniformAxis(index), params
        # float() also reads the schema's "inf", "+inf" and "-inf" edges
        values = np.array([float(e) for e in edges], dtype=np.float64)
        return nodes.EdgesAxis(index), {"edges": values, "nbins": np.int32(len(values) - 1)}

    def _binning(self, inputs, edges, content, flow) -> tuple[nodes.Node, Any]:
        axes, axes_params = zip(
            *(self._axis(name, e) for name, e in zip(inputs, edges, strict=True)), strict=True
        )
        children, children_params = self.lower_children(content)
        flow_kind, default, default_params = self._flow(flow)
        params = {"axes": tuple(axes_params), "content": children_params}
        if default is not None:
            params["default"] = default_params
        return nodes.Binning(tuple(axes), flow_kind, children, default), params

    def _lower_binning(self, node: schemav2.Binning):
        return self._binning([node.input], [node.edges], node.content, node.flow)

    def _lower_multibinning(self, node: schemav2.MultiBinning):
        return self._binning(node.inputs, node.edges, node.content, node.flow)

    def _lower_category(self, node: schemav2.Category):
        index = self._index(node.input, ("int", "string"))
        if self.input_types[index] == "string":
            return self._resolve_string(node, index)
        items = sorted(node.content, key=lambda item: item.key)
        keys = np.array([item.key for item in items], dtype=np.int64)
        children, children_params = self.lower_children([item.value for item in items])
        params = {"keys": keys, "nkeys": np.int32(len(keys)), "content": children_params}
        default = None
        if node.default is not None:
            default, params["default"] = self.lower(node.default)
        return nodes.IntCategory(index, children, default), params

    def _resolve_string(self, node: schemav2.Category, index: int):
        value = self.strings[index]
        for item in node.content:
            if item.key == value:
                return self.lower(item.value)
        if node.default is not None:
            return self.lower(node.default)
        if node is self.correction.data:  # every element fails: say so now, statically
            keys = ", ".join(repr(item.key) for item in node.content)
            name = self.correction.inputs[index].name
            raise MissingCategoryError(
                f"correction {self.correction.name!r}: input {name!r} = {value!r} matches no "
                f"category and there is no default; available: {keys}"
            )
        return nodes.Missing(index), {}

    def _formula(self, expression: str, variables: list[str], parameters: list[float]):
        for name in variables:
            self._index(name, ("real",))
        template = _formula.formula_template(
            expression, tuple(variables), self.inputs_json, len(parameters)
        )
        structure = nodes.Formula(template.tree, template.n_slots)
        return structure, {"slots": template.slot_values(parameters)}

    def _lower_formula(self, node: schemav2.Formula):
        return self._formula(node.expression, node.variables, node.parameters or [])

    def _lower_formularef(self, node: schemav2.FormulaRef):
        generic = self.correction.generic_formulas or []
        if not 0 <= node.index < len(generic):
            raise InvalidDocumentError(
                f"correction {self.correction.name!r}: FormulaRef index {node.index} "
                f"out of range ({len(generic)} generic formulas)"
            )
        formula = generic[node.index]
        return self._formula(formula.expression, formula.variables, node.parameters)

    def _lower_transform(self, node: schemav2.Transform):
        index = self._index(node.input)
        rule, rule_params = self.lower(node.rule)
        content, content_params = self.lower(node.content)
        params = {"rule": rule_params, "content": content_params}
        return nodes.Transform(index, rule, content), params

    def _lower_hashprng(self, node: schemav2.HashPRNG):
        indices = tuple(self._index(name) for name in node.inputs)
        return nodes.HashPRNG(indices, node.distribution), {}

    def _lower_lwtnn(self, node: schemav2.LWTNN):
        try:
            network = _lwtnn.parse(node, self.correction.inputs)
        except InvalidDocumentError as exc:
            raise InvalidDocumentError(f"correction {self.correction.name!r}: {exc}") from None
        structure = nodes.Lwtnn(network.inputs, network.layers, network.finalizer.tree)
        return structure, network.params


def lower_correction(
    correction: schemav2.Correction, strings: dict[int, str], fast: bool = True
) -> tuple[nodes.Node, Any]:
    """Lower a whole correction; returns the root node and its params (leading axis 1).

    ``fast``: see ``_nodes.Node.optimized``.
    """
    structure, params = Lowerer(correction, strings).lower(correction.data)
    params = jax.tree_util.tree_map(lambda a: np.asarray(a)[None], params)
    return structure.optimized(params, fast)
