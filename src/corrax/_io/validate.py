"""The checks correctionlib's C++ loader makes beyond the schema, done at load time.

correctionlib's pydantic model accepts documents that its C++ loader then rejects:
formulas that do not parse (unknown functions, ``x[5]`` with two variables, missing
parameters), lookups on string inputs, Category keys of the wrong type, Transforms
or HashPRNG on strings, FormulaRef indices out of range. corrax rejects the same
documents when they are loaded (not at first evaluation), with an error naming the
correction and the node's location, e.g. ``data.content[3].value``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from correctionlib import schemav2

from .._core import lwtnn as _lwtnn
from .._core.formula import formula_template
from ..errors import InvalidDocumentError

_NUMERIC = ("real", "int")


class _Checker:
    def __init__(self, correction: schemav2.Correction):
        self.correction = correction
        self.types = {v.name: v.type for v in correction.inputs}
        self.inputs_json = json.dumps([{"name": v.name, "type": v.type} for v in correction.inputs])

    def fail(self, where: str, message: str) -> InvalidDocumentError:
        return InvalidDocumentError(f"correction {self.correction.name!r}, at {where}: {message}")

    def input(self, name: str, where: str, allowed: tuple[str, ...], what: str) -> str:
        kind = self.types.get(name)
        if kind is None:
            raise self.fail(where, f"{what} refers to unknown input {name!r}")
        if kind not in allowed:
            raise self.fail(
                where,
                f"{what} cannot use input {name!r} of type {kind} (needs {' or '.join(allowed)})",
            )
        return kind

    def formula(self, where: str, expression: str, variables: list[str], parameters: list) -> None:
        for name in variables:
            self.input(name, where, ("real",), "a formula")
        try:
            formula_template(expression, tuple(variables), self.inputs_json, len(parameters))
        except InvalidDocumentError as exc:
            raise self.fail(where, str(exc)) from None

    def visit(self, node: Any, where: str) -> None:
        if isinstance(node, int | float) or node is None:
            return
        visit = getattr(self, f"_visit_{node.nodetype}", None)
        if visit is None:
            raise self.fail(where, f"node type {node.nodetype!r} is not supported by corrax")
        visit(node, where)

    def _visit_binning(self, node: schemav2.Binning, where: str) -> None:
        self.input(node.input, where, _NUMERIC, "a Binning")
        self._content(node.content, node.flow, where)

    def _visit_multibinning(self, node: schemav2.MultiBinning, where: str) -> None:
        for name in node.inputs:
            self.input(name, where, _NUMERIC, "a MultiBinning")
        self._content(node.content, node.flow, where)

    def _content(self, content: list, flow: Any, where: str) -> None:
        for i, child in enumerate(content):
            self.visit(child, f"{where}.content[{i}]")
        if not isinstance(flow, str):
            self.visit(flow, f"{where}.flow")

    def _visit_category(self, node: schemav2.Category, where: str) -> None:
        kind = self.input(node.input, where, ("int", "string"), "a Category")
        key_type = int if kind == "int" else str
        for i, item in enumerate(node.content):
            if not isinstance(item.key, key_type) or isinstance(item.key, bool):
                raise self.fail(
                    f"{where}.content[{i}]",
                    f"Category key {item.key!r} is a {type(item.key).__name__}, "
                    f"but its input {node.input!r} is {kind}",
                )
            self.visit(item.value, f"{where}.content[{i}].value")
        self.visit(node.default, f"{where}.default")

    def _visit_formula(self, node: schemav2.Formula, where: str) -> None:
        self.formula(where, node.expression, node.variables, node.parameters or [])

    def _visit_formularef(self, node: schemav2.FormulaRef, where: str) -> None:
        generic = self.correction.generic_formulas or []
        if not 0 <= node.index < len(generic):
            raise self.fail(
                where,
                f"FormulaRef index {node.index} out of range ({len(generic)} generic formulas)",
            )
        formula = generic[node.index]
        self.formula(where, formula.expression, formula.variables, node.parameters)

    def _visit_transform(self, node: schemav2.Transform, where: str) -> None:
        self.input(node.input, where, _NUMERIC, "a Transform")
        self.visit(node.rule, f"{where}.rule")
        self.visit(node.content, f"{where}.content")

    def _visit_hashprng(self, node: schemav2.HashPRNG, where: str) -> None:
        for name in node.inputs:
            self.input(name, where, _NUMERIC, "a HashPRNG")

    def _visit_lwtnn(self, node: schemav2.LWTNN, where: str) -> None:
        try:
            _lwtnn.parse(node, self.correction.inputs)
        except InvalidDocumentError as exc:
            raise self.fail(where, str(exc)) from None


def validate_correction(correction: schemav2.Correction) -> None:
    """Raise ``InvalidDocumentError`` for what correctionlib's loader would reject."""
    checker = _Checker(correction)
    for i, formula in enumerate(correction.generic_formulas or []):
        for name in formula.variables:
            checker.input(name, f"generic_formulas[{i}]", ("real",), "a formula")
    checker.visit(correction.data, "data")


def validate_compound(
    compound: schemav2.CompoundCorrection, corrections: Mapping[str, schemav2.Correction]
) -> None:
    """Check a compound's stack against the corrections it chains."""
    prefix = f"compound correction {compound.name!r}"
    if not compound.stack:
        raise InvalidDocumentError(f"{prefix} has an empty stack")
    missing = [name for name in compound.stack if name not in corrections]
    if missing:
        raise InvalidDocumentError(f"{prefix}: stack refers to unknown corrections {missing}")
    types = {v.name: v.type for v in compound.inputs}
    for name in compound.stack:
        for variable in corrections[name].inputs:
            if variable.name not in types:
                raise InvalidDocumentError(
                    f"{prefix}: {name!r} needs input {variable.name!r} that the compound does "
                    "not take"
                )
            if types[variable.name] != variable.type:
                raise InvalidDocumentError(
                    f"{prefix}: input {variable.name!r} is {types[variable.name]} in the "
                    f"compound but {variable.type} in {name!r}"
                )
    for name in compound.inputs_update:
        if types.get(name) != "real":
            raise InvalidDocumentError(f"{prefix}: updated input {name!r} must be a real input")
