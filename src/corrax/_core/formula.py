"""TFormula expressions: parsed by correctionlib, evaluated with jax.numpy (or NumPy
on the host, see ``backend``).

correctionlib's own PEG parser (``correctionlib._core.Formula``) builds the syntax
tree, so precedence and grammar quirks (``-x^2 == +x^2``, right-associative ``^``)
are exactly correctionlib's. We then lift every number in the tree, literal or
parameter, into a *slot*: two formulas that differ only in their numbers share one
template, and their numbers become rows of a table. The CMS JEC and b-tag files hold
10^5 formulas of a handful of shapes; this is what lets them evaluate as one
vectorised expression with gathered numbers.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import jax.scipy.special
import numpy as np
from correctionlib import _core

from ..errors import InvalidDocumentError
from . import relax as _relax
from .backend import namespace, on_host

_Ast = _core.FormulaAst
_UNARY = _Ast.UnaryOp
_BINARY = _Ast.BinaryOp


def _sentinel_a(i: int) -> float:
    """Two sets of parameter values for the double parse in ``formula_template``.

    Short decimals, so that they survive correctionlib's JSON number parsing exactly;
    no literal can equal the i-th value of both sets.
    """
    return -1000.25 - i


def _sentinel_b(i: int) -> float:
    return -2000.75 - i


@dataclass(frozen=True)
class FormulaTemplate:
    """A formula with its numbers lifted into slots.

    ``tree`` is nested tuples: ``("slot", k)``, ``("var", input_index)``,
    ``("unary", op_name, child)``, ``("binary", op_name, left, right)``.
    ``slot_literals[k]`` is the literal value of slot k, or NaN where the slot holds
    parameter ``slot_params[k]`` (-1 for literals).
    """

    tree: tuple
    slot_literals: tuple[float, ...]
    slot_params: tuple[int, ...]

    @property
    def n_slots(self) -> int:
        return len(self.slot_literals)

    def slot_values(self, parameters: Sequence[float]) -> np.ndarray:
        """The slot vector (float64, shape ``[n_slots]``) for given parameters."""
        values = np.array(self.slot_literals, dtype=np.float64)
        for k, p in enumerate(self.slot_params):
            if p >= 0:
                values[k] = parameters[p]
        return values


def _parse(expression: str, variables: tuple[str, ...], inputs_json: str, params: list[float]):
    formula = {
        "nodetype": "formula",
        "expression": expression,
        "parser": "TFormula",
        "variables": list(variables),
        "parameters": params,
    }
    core_inputs = [_core.Variable.from_string(json.dumps(v)) for v in json.loads(inputs_json)]
    try:
        return _core.Formula.from_string(json.dumps(formula), core_inputs).ast
    except RuntimeError as exc:
        raise InvalidDocumentError(f"cannot parse formula {expression!r}: {exc}") from None


@functools.lru_cache(maxsize=4096)
def formula_template(
    expression: str, variables: tuple[str, ...], inputs_json: str, n_params: int
) -> FormulaTemplate:
    """Parse ``expression`` once per distinct (expression, variables, inputs, #params).

    ``inputs_json`` is the correction's input list as JSON (variables resolve to
    input positions). correctionlib binds parameters into the tree as literals, so
    we parse twice with two sets of sentinel parameter values: a slot that holds the
    i-th sentinel in both parses is parameter i, any other slot is a literal.
    """
    tree_a = _parse(expression, variables, inputs_json, [_sentinel_a(i) for i in range(n_params)])
    tree_b = _parse(expression, variables, inputs_json, [_sentinel_b(i) for i in range(n_params)])
    literals: list[float] = []
    params: list[int] = []

    def lift(node_a, node_b) -> tuple:
        kind = node_a.nodetype
        if kind == _Ast.NodeType.LITERAL:
            value_a, value_b = float(node_a.data), float(node_b.data)
            param = _sentinel_index(value_a, value_b, n_params)
            literals.append(float("nan") if param >= 0 else value_a)
            params.append(param)
            return ("slot", len(literals) - 1)
        if kind == _Ast.NodeType.VARIABLE:
            return ("var", int(node_a.data))
        if kind == _Ast.NodeType.UNARY:
            return ("unary", node_a.data.name, lift(node_a.children[0], node_b.children[0]))
        if kind == _Ast.NodeType.BINARY:
            left = lift(node_a.children[0], node_b.children[0])
            right = lift(node_a.children[1], node_b.children[1])
            return ("binary", node_a.data.name, left, right)
        raise InvalidDocumentError(f"unexpected formula node {kind} in {expression!r}")

    tree = lift(tree_a, tree_b)
    return FormulaTemplate(tree=tree, slot_literals=tuple(literals), slot_params=tuple(params))


def _sentinel_index(value_a: float, value_b: float, n_params: int) -> int:
    if value_a == value_b:
        return -1
    for i in range(n_params):
        if value_a == _sentinel_a(i) and value_b == _sentinel_b(i):
            return i
    raise AssertionError("formula parse differs between sentinel parameter sets")


def true_divide(numerator, denominator):
    """``numerator / denominator``, correctly rounded like C++.

    XLA rewrites a division by anything it can prove to be a broadcast scalar (also
    a gather from a one-row table) into a multiplication by its reciprocal, which is
    off by one ulp for about half of all inputs. Hiding the denominator behind an
    optimization barrier keeps the real division. (NumPy divides as written.)
    """
    if on_host(numerator, denominator):
        return np.true_divide(numerator, denominator)
    shape = jnp.broadcast_shapes(jnp.shape(numerator), jnp.shape(denominator))
    denominator = jax.lax.optimization_barrier(jnp.broadcast_to(denominator, shape))
    return numerator / denominator


def separately_rounded(product, zero):
    """``product``, rounded on its own before it is added to anything.

    C++ rounds ``low + a * b`` twice; XLA on CPU contracts it into one fused
    multiply-add (optimization barriers are removed before code generation). XOR-ing
    the product's bits with those of ``zero`` (a +0.0 the compiler cannot prove to be
    zero, e.g. ``x - x`` for a finite x) hides the product from that contraction.
    NumPy rounds every operation on its own.
    """
    if on_host(product):
        return product
    unsigned = jnp.uint64 if product.dtype == jnp.float64 else jnp.uint32
    bits = jax.lax.bitcast_convert_type(product, unsigned)
    zero_bits = jax.lax.bitcast_convert_type(jnp.asarray(zero, product.dtype), unsigned)
    return jax.lax.bitcast_convert_type(bits ^ zero_bits, product.dtype)


# std::max(a, b) is (a < b) ? b : a and std::min(a, b) is (b < a) ? b : a: with a NaN
# argument they return the first argument, unlike jnp.maximum/minimum.
def _binary_ops(xp, divide) -> dict:
    def where_bool(condition):
        return xp.where(condition, 1.0, 0.0)

    return {
        "LOGICALOR": lambda a, b: where_bool((a != 0) | (b != 0)),
        "LOGICALAND": lambda a, b: where_bool((a != 0) & (b != 0)),
        "EQUAL": lambda a, b: where_bool(a == b),
        "NOTEQUAL": lambda a, b: where_bool(a != b),
        "GREATER": lambda a, b: where_bool(a > b),
        "LESS": lambda a, b: where_bool(a < b),
        "GREATEREQ": lambda a, b: where_bool(a >= b),
        "LESSEQ": lambda a, b: where_bool(a <= b),
        "MINUS": xp.subtract,
        "PLUS": xp.add,
        "DIV": divide,
        "TIMES": xp.multiply,
        "POW": xp.power,
        "ATAN2": xp.arctan2,
        "MAX": lambda a, b: xp.where(a < b, b, a),
        "MIN": lambda a, b: xp.where(b < a, b, a),
    }


def _unary_ops(xp, erf) -> dict:
    return {
        "NEGATIVE": xp.negative,
        "LOG": xp.log,
        "LOG10": xp.log10,
        "EXP": xp.exp,
        "ERF": erf,
        "SQRT": xp.sqrt,
        "ABS": xp.abs,
        "COS": xp.cos,
        "SIN": xp.sin,
        "TAN": xp.tan,
        "ACOS": xp.arccos,
        "ASIN": xp.arcsin,
        "ATAN": xp.arctan,
        "COSH": xp.cosh,
        "SINH": xp.sinh,
        "TANH": xp.tanh,
        "ACOSH": xp.arccosh,
        "ASINH": xp.arcsinh,
        "ATANH": xp.arctanh,
        "SQUARE": lambda x: x * x,
    }


# NumPy has no erf (SciPy is not a dependency of the evaluator): the C library's, as
# correctionlib's C++ calls it, element by element.
_host_erf = np.vectorize(math.erf, otypes=[np.float64])

# the operations by array library (see ``backend``)
_BINARY_OPS = {jnp: _binary_ops(jnp, true_divide), np: _binary_ops(np, np.true_divide)}
_UNARY_OPS = {jnp: _unary_ops(jnp, jax.scipy.special.erf), np: _unary_ops(np, _host_erf)}


def variables_used(tree: tuple) -> frozenset[int]:
    """The input indices a template reads."""
    kind = tree[0]
    if kind == "var":
        return frozenset((tree[1],))
    if kind == "slot":
        return frozenset()
    if kind == "unary":
        return variables_used(tree[2])
    return variables_used(tree[2]) | variables_used(tree[3])


def _composed(outer, inner):
    return lambda *args: outer(inner(*args))


def remap_slots(tree: tuple, remap: dict[int, int]) -> tuple:
    """The tree with slot k renamed ``remap[k]``."""
    kind = tree[0]
    if kind == "slot":
        return ("slot", remap[tree[1]])
    if kind == "var":
        return tree
    if kind == "unary":
        return ("unary", tree[1], remap_slots(tree[2], remap))
    return ("binary", tree[1], remap_slots(tree[2], remap), remap_slots(tree[3], remap))


def squared_powers(tree: tuple, uniform: dict[int, float]) -> tuple:
    """The tree with ``pow(a, k)`` as ``a * a`` where slot k holds 2 in every instance."""
    kind = tree[0]
    if kind in ("slot", "var"):
        return tree
    if kind == "unary":
        return ("unary", tree[1], squared_powers(tree[2], uniform))
    left, right = squared_powers(tree[2], uniform), squared_powers(tree[3], uniform)
    if tree[1] == "POW" and right[0] == "slot" and uniform.get(right[1]) == 2.0:
        return ("unary", "SQUARE", left)
    return ("binary", tree[1], left, right)


_COMPARISONS = ("GREATER", "LESS", "GREATEREQ", "LESSEQ")
_LOGIC = ("LOGICALAND", "LOGICALOR")


def _identity(x):
    return x


# Functions whose results XLA may rewrite when composed (see nodes._opaque).
_HIDDEN = frozenset(_UNARY_OPS[jnp]) - {"NEGATIVE", "ABS"} | {"POW", "ATAN2"}


def evaluate_tree(tree: tuple, variables: Sequence, slots: Sequence, relax=None, opaque=_identity):
    """Evaluate a template tree; ``variables[i]`` is input i, ``slots[k]`` slot k.

    ``opaque(x)`` hides a function's result from XLA's algebraic rewrites.

    ``relax``: a ``relax.Relaxation`` whose ``formula_width`` relaxes comparisons
    (and ``&&``/``||`` of comparisons); None or no width keeps C++ semantics.
    """
    xp = namespace(*variables, *slots)
    return _evaluate(tree, variables, slots, relax, opaque, xp)[0]


def _evaluate(tree, variables, slots, relax, opaque, xp):
    """(value, exact value, soft truth value or None) of a subtree.

    ``exact`` is None where it equals the value. A relaxed comparison has a soft truth value in
    [0, 1]; ``&&``/``||`` of two of them combine the soft values; everything else
    computes on the (possibly relaxed) values of its operands.
    """
    kind = tree[0]
    if kind == "slot":
        return slots[tree[1]], None, None
    if kind == "var":
        return variables[tree[1]], None, None
    if kind == "unary":
        value, exact, _ = _evaluate(tree[2], variables, slots, relax, opaque, xp)
        function = _UNARY_OPS[xp][tree[1]]
        if tree[1] in _HIDDEN:
            function = _composed(opaque, function)
        if exact is None or exact is value:
            return function(value), None, None
        return function(value), function(exact), None
    op = tree[1]
    left, exact_left, soft_left = _evaluate(tree[2], variables, slots, relax, opaque, xp)
    right, exact_right, soft_right = _evaluate(tree[3], variables, slots, relax, opaque, xp)
    function = _BINARY_OPS[xp][op]
    if op in _HIDDEN:
        function = _composed(opaque, function)
    width = None if relax is None else relax.formula_width
    if width is None:
        return function(left, right), None, None
    exact_left = left if exact_left is None else exact_left
    exact_right = right if exact_right is None else exact_right
    exact = function(exact_left, exact_right)
    if op in _COMPARISONS:
        soft = _relax.soft_compare(op, left, right, width)
    elif op in _LOGIC and soft_left is not None and soft_right is not None:
        soft = _relax.soft_logic(op, soft_left, soft_right)
    else:
        return function(left, right), exact, None
    return relax.combine(exact, soft), exact, soft
