"""Lowered correction nodes: static structure, evaluated with gathered tables.

A lowered node is a hashable, frozen description of *structure* (which inputs, which
flow, which formula shape). Its numbers live in a separate pytree of arrays, the
*params*, whose every leaf has a leading axis of length R: the node stands for R
instances of the same structure (e.g. the 82 pt-binnings below an eta-binning, or
the 133k FormulaRefs of a JEC file). Each element of the batch carries a ``row``
index saying which instance applies to it.

Evaluating a node is therefore one vectorised expression over the batch, whatever
the number of bins: a lookup computes a bin index per element, and its children are
evaluated once with ``row = parent_row * n_children + bin``. Children of different
structures form *groups*; each group is evaluated over the batch and the right one
selected per element. Trace time grows with the number of distinct structures, not
with the number of bins, and memory is O(batch + tables).

``row is None`` means R == 1 (the root): the single instance is used without gathers.

Every ``evaluate`` returns ``(value, err)``: ``err`` is None when the node cannot
fail, else an int32 array, 0 where fine, else an error code (see ``error_code``).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import formula as _formula
from . import lwtnn as _lwtnn
from . import relax as _relax
from . import search as _search
from .backend import namespace
from .formula import true_divide
from .hashprng import hashprng

Params = Any  # a pytree of arrays, every leaf with a leading instance axis

# Error kinds; a code is input_index * 4 + kind, so it names the input (see error_code).
BELOW, ABOVE, MISSING_KEY = 1, 2, 3


def error_code(input_index: int, kind: int) -> int:
    return input_index * 4 + kind


def decode_error(code: int) -> tuple[int, int]:
    """(input index, kind) of an error code."""
    return code // 4, code % 4


def combine_errors(first, second):
    """The first error wins: a parent's error makes its children's results irrelevant."""
    if first is None:
        return second
    if second is None:
        return first
    return namespace(first, second).where(first != 0, first, second)


def take(leaf, row):
    """The instance(s) ``row`` of a params leaf of shape ``[R, ...]``."""
    if row is None:
        return leaf[0]
    return _search.gather(leaf, row)


def flatten_instances(params: Params) -> Params:
    """``[R, M, ...]`` leaves to ``[R*M, ...]``: children of all instances in one table."""
    return jax.tree_util.tree_map(
        lambda a: a.reshape((a.shape[0] * a.shape[1], *a.shape[2:])), params
    )


def child_row(row, width: int, index):
    """Row of child ``index`` of instance ``row`` in a flattened ``[R*width]`` table."""
    return index if row is None else row * width + index


def _select(condition, if_true, if_false):
    """Elementwise select of two (value, err) pairs."""
    xp = namespace(condition, if_true[0], if_false[0])
    value = xp.where(condition, if_true[0], if_false[0])
    if if_true[1] is None and if_false[1] is None:
        return value, None
    zero = np.int32(0)
    err_true = zero if if_true[1] is None else if_true[1]
    err_false = zero if if_false[1] is None else if_false[1]
    return value, xp.where(condition, err_true, err_false)


@dataclass(frozen=True)
class Context:
    """The inputs of one evaluation and the elements the current branch decides.

    ``inputs``: one array per correction input (None for strings: they are static),
    all of one broadcast shape; real inputs are floating, int inputs integer.
    ``live``: None (every element), or a bool mask of the elements whose value this
    branch provides. Dead elements still flow through the branch (vectorised code
    computes every branch); their gradients are cut with ``guard`` so that a branch
    that is singular where it is not selected cannot poison gradients with NaN.
    ``xp``: the array library (``jax.numpy``, or NumPy on the host, where nothing is
    differentiated and ``live`` stays None).
    """

    inputs: tuple
    live: Any = None
    relax: _relax.Relaxation = _relax.EXACT
    one: Any = None  # a 1.0 that XLA cannot see as a constant, see ``opaque``
    xp: Any = jnp

    @property
    def host(self) -> bool:
        return self.xp is np

    @property
    def float_dtype(self):
        return np.float64 if self.host else jnp.result_type(float)

    def real(self, index: int):
        x = self.inputs[index]
        if x is None:  # a string input: resolved statically, never used numerically
            return None
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(self.float_dtype)
        return x

    def guard(self, x):
        if self.live is None:
            return x
        return jnp.where(self.live, x, jax.lax.stop_gradient(x))

    def restricted(self, mask) -> Context:
        if self.host:  # masks only cut gradients
            return self
        live = mask if self.live is None else (self.live & mask)
        return Context(self.inputs, live, self.relax, self.one, self.xp)

    def replaced(self, index: int, value) -> Context:
        inputs = list(self.inputs)
        inputs[index] = value
        return Context(tuple(inputs), self.live, self.relax, self.one, self.xp)

    def opaque(self, x):
        """``x`` unchanged, but hidden from XLA's algebraic simplifier (see ``_opaque``)."""
        return x if self.one is None else _opaque(x, self.one)


def _opaque(x, one):
    """``x * one``, where ``one`` is a 1.0 that XLA cannot prove to be 1.

    XLA rewrites compositions of functions on floats, also without fast-math:
    ``log(pow(a, b)) -> b*log(|a|)``, ``log(exp(x)) -> x``, ``exp(a)*exp(b) -> exp(a+b)``,
    ``a/sqrt(b) -> a*rsqrt(b)``. C++ computes each function as written, so each
    function's result goes through this product, which no rewrite can see through.
    Multiplying by 1 is exact for every value (±0, ±inf and NaN included), costs one
    multiplication and differentiates like the identity.
    """
    return x * one.astype(x.dtype)


class Node:
    """Base class: a lowered node's static structure."""

    def evaluate(self, params: Params, ctx: Context, row):  # pragma: no cover - abstract
        raise NotImplementedError

    def optimized(self, params: Params, fast: bool = True) -> tuple[Node, Params]:
        """An equivalent structure for these final (stacked) params.

        ``fast``: layouts derived from the numbers (search tables, merged formula
        columns). Without it every number stays its own table entry and searches use
        the numbers directly, so that the params can be differentiated and replaced.
        """
        return self, params


@dataclass(frozen=True)
class Const(Node):
    """A number. params: ``{"value": [R]}``."""

    def evaluate(self, params, ctx, row):
        return take(params["value"], row), None


@dataclass(frozen=True)
class Missing(Node):
    """A string Category with no branch for the given string, below some other lookup:
    an error only for the elements that reach it (as in correctionlib). No params."""

    input: int

    def evaluate(self, params, ctx, row):
        xp = ctx.xp
        shape = xp.shape(row) if row is not None else ()
        code = xp.full(shape, error_code(self.input, MISSING_KEY), dtype=np.int32)
        return xp.full(shape, np.nan, dtype=ctx.float_dtype), code


@dataclass(frozen=True)
class Formula(Node):
    """A TFormula template. params: ``{"slots": [R, n_slots]}`` (literals and parameters)
    as lowered, or after ``optimized`` a tuple of one column per slot."""

    tree: tuple
    n_slots: int

    def evaluate(self, params, ctx, row):
        slots = params["slots"]
        if isinstance(slots, tuple):
            columns = slots
        else:
            columns = tuple(slots[:, k] for k in range(self.n_slots))
        variables = tuple(
            None if x is None else ctx.guard(ctx.real(i)) for i, x in enumerate(ctx.inputs)
        )
        used = _formula.variables_used(self.tree)
        variables = tuple(x if i in used else None for i, x in enumerate(variables))
        if row is not None and ctx.one is not None:
            value = _formula_value(self.tree, ctx.relax, ctx.one, ctx.live, columns, row, variables)
            return value, None
        slots = [ctx.guard(take(column, row)) for column in columns]
        return _formula.evaluate_tree(self.tree, variables, slots, ctx.relax, ctx.opaque), None

    def optimized(self, params, fast=True):
        """One column per distinct slot: equal columns merge (so XLA evaluates a repeated
        subexpression such as the JEC's ``log10(max(min(x,[1]),[0]))`` once), and a
        column equal in every instance keeps one row (no gather)."""
        if not fast:
            return self, params
        table = np.asarray(params["slots"])
        columns: list[np.ndarray] = []
        remap: dict[int, int] = {}
        for k in range(table.shape[1]):
            column = table[:, k]
            bits = column.view(np.uint64)  # bitwise: 0.0 and -0.0 differ (1/x)
            if (bits == bits[0]).all():
                column = column[:1]
            for j, existing in enumerate(columns):
                if existing.shape == column.shape and np.array_equal(
                    existing.view(np.uint64), column.view(np.uint64)
                ):
                    remap[k] = j
                    break
            else:
                remap[k] = len(columns)
                columns.append(column)
        tree = _formula.remap_slots(self.tree, remap)
        uniform = {j: float(c[0]) for j, c in enumerate(columns) if c.shape[0] == 1}
        tree = _formula.squared_powers(tree, uniform)
        return Formula(tree, len(columns)), {"slots": tuple(columns)}


@dataclass(frozen=True)
class HashPRNG(Node):
    """Deterministic random numbers seeded by the inputs (no params, no gradient)."""

    inputs: tuple[int, ...]
    distribution: str

    def evaluate(self, params, ctx, row):
        seeds = ctx.xp.broadcast_arrays(*(ctx.inputs[i] for i in self.inputs))
        return hashprng(seeds, self.distribution), None


@dataclass(frozen=True)
class Lwtnn(Node):
    """An lwtnn feed-forward network and its finalizer formula (see ``_lwtnn``).

    ``inputs``: the correction input of each network input; ``finalizer``: a formula
    template whose variables are the network's outputs. params: ``{"offset": [R, n_in],
    "scale": [R, n_in], "layers": (per layer {"weights", "bias", ...}), "finalizer":
    [R, n_slots]}``.

    With R > 1 instances every element is evaluated by all R networks and its own
    picked (cost O(R) per element, no per-element copy of the weights).
    """

    inputs: tuple[int, ...]
    layers: tuple[_lwtnn.Layer, ...]
    finalizer: tuple

    def evaluate(self, params, ctx, row):
        x = jnp.stack([ctx.real(i) for i in self.inputs], axis=-1)
        if ctx.live is not None:
            # dead elements' values are discarded: a finite stand-in keeps an inf or
            # NaN there out of the weights' gradients (0 * inf)
            x = jnp.where(ctx.live[..., None], x, 0.0)
        outputs = _lwtnn.network(self.layers, params, x, ctx.opaque)
        if row is None:
            outputs = outputs[..., 0, :]
        else:
            index = jnp.broadcast_to(row, outputs.shape[:-2])[..., None, None]
            outputs = jnp.take_along_axis(outputs, index, axis=-2)[..., 0, :]
        table = params["finalizer"]
        slots = [take(table[:, k], row) for k in range(table.shape[1])]
        variables = tuple(outputs[..., j] for j in range(outputs.shape[-1]))
        value = _formula.evaluate_tree(self.finalizer, variables, slots, ctx.relax, ctx.opaque)
        return value, None


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _formula_value(tree, relax, one, live, columns, row, variables):
    """A formula's value with the slots of instance ``row``.

    Its derivative rule computes the partial derivatives with respect to each input
    with a tangent, and each slot with a tangent, in the forward pass (in their own
    loop, gathering the slots again), so that reverse mode keeps one array per
    differentiated input instead of every gathered parameter and intermediate value.
    Derivatives of elements outside ``live`` are 0 (unselected branches never poison
    a gradient with NaN).
    """
    slots = [take(column, row) for column in columns]
    return _formula.evaluate_tree(tree, variables, slots, relax, lambda x: _opaque(x, one))


def _formula_value_jvp(tree, relax, primals, tangents):
    one, live, columns, row, variables = primals
    _, _, column_dots, _, variable_dots = tangents
    slots = [take(column, row) for column in columns]

    def opaque(x):
        return _opaque(x, one)

    def value_of(variables, slots):
        return _formula.evaluate_tree(tree, variables, slots, relax, opaque)

    value = value_of(variables, slots)
    # The derivatives gather the slots again, through a row index XLA cannot prove
    # equal to ``row``, from inputs it cannot prove equal to the value's: a gather or
    # a transcendental value read by two loops would be written out as a batch-sized
    # array, while recomputing them in the derivative's own loop is cheaper.
    zero = (one - one).astype(row.dtype)
    slots = [take(column, row + zero) for column in columns]
    variables = tuple(None if v is None else _opaque(v, one) for v in variables)
    tangent = jnp.zeros_like(value)
    directions = [("variable", i, dot) for i, dot in enumerate(variable_dots) if _nonzero(dot)] + [
        ("slot", k, dot) for k, dot in enumerate(column_dots) if _nonzero(dot)
    ]
    for kind, index, dot in directions:
        unit_variables = [None if v is None else jnp.zeros_like(v) for v in variables]
        unit_slots = [jnp.zeros_like(slot) for slot in slots]
        if kind == "variable":
            unit_variables[index] = jnp.ones_like(variables[index])
            along = dot
        else:
            unit_slots[index] = jnp.ones_like(slots[index])
            along = take(dot, row)
        _, partial = jax.jvp(value_of, (variables, slots), (tuple(unit_variables), unit_slots))
        if live is not None:
            partial = jnp.where(live, partial, 0.0)
        tangent = tangent + partial * along
    return value, tangent


def _nonzero(tangent) -> bool:
    return tangent is not None and not isinstance(tangent, jax.custom_derivatives.SymbolicZero)


_formula_value.defjvp(_formula_value_jvp, symbolic_zeros=True)


def _round_half_away(value):
    """std::round: halves away from zero (jnp.round rounds halves to even)."""
    xp = namespace(value)
    whole = xp.trunc(value)
    return whole + xp.where(xp.abs(value - whole) >= 0.5, xp.sign(value), 0.0)


@dataclass(frozen=True)
class Transform(Node):
    """Replace input ``input`` by ``rule``'s value, then evaluate ``content``.

    params: ``{"rule": ..., "content": ...}``.
    """

    input: int
    rule: Node
    content: Node

    def evaluate(self, params, ctx, row):
        new_value, rule_err = self.rule.evaluate(params["rule"], ctx, row)
        old = ctx.inputs[self.input]
        if np.issubdtype(old.dtype, np.integer):
            new_value = _round_half_away(new_value).astype(old.dtype)
        new_value = ctx.xp.broadcast_to(new_value, old.shape)
        value, content_err = self.content.evaluate(
            params["content"], ctx.replaced(self.input, new_value), row
        )
        return value, combine_errors(rule_err, content_err)

    def optimized(self, params, fast=True):
        rule, rule_params = self.rule.optimized(params["rule"], fast)
        content, content_params = self.content.optimized(params["content"], fast)
        return Transform(self.input, rule, content), {
            "rule": rule_params,
            "content": content_params,
        }


@dataclass(frozen=True)
class Children(Node):
    """The children of a lookup node, evaluated for a per-element child index.

    ``groups``: the distinct child structures. params: ``{"members": (per group, leaves
    [R, M_g, ...]), "group": [R, N], "member": [R, N]}``; the two tables (present only
    with several groups) say which group and which member child ``i`` is.
    """

    groups: tuple[Node, ...]

    def evaluate_at(self, params, ctx, row, index):
        members = params["members"]
        if len(self.groups) == 1:
            width = _width(members[0])
            return self.groups[0].evaluate(
                flatten_instances(members[0]), ctx, child_row(row, width, index)
            )
        group = _take2(params["group"], row, index)
        member = _take2(params["member"], row, index)
        result = None
        for g, node in enumerate(self.groups):
            selected = group == g
            width = _width(members[g])
            rows = child_row(row, width, ctx.xp.where(selected, member, 0))
            branch = node.evaluate(flatten_instances(members[g]), ctx.restricted(selected), rows)
            result = branch if result is None else _select(selected, branch, result)
        return result

    def optimized(self, params, fast=True):
        groups, members = [], []
        for node, member_params in zip(self.groups, params["members"], strict=True):
            n_rows, width = _n_rows(member_params), _width(member_params)
            node_opt, flat = node.optimized(flatten_instances(member_params), fast)
            groups.append(node_opt)
            members.append(
                jax.tree_util.tree_map(lambda a, r=n_rows, w=width: _unflatten(a, r, w), flat)
            )
        return Children(tuple(groups)), {**params, "members": tuple(members)}


def _width(params) -> int:
    """Children per instance of stacked ``[R, M, ...]`` params (shared leaves have M=1)."""
    return max((a.shape[1] for a in jax.tree_util.tree_leaves(params)), default=1)


def _n_rows(params) -> int:
    return max((a.shape[0] for a in jax.tree_util.tree_leaves(params)), default=1)


def _unflatten(leaf, n_rows: int, width: int):
    """Inverse of ``flatten_instances``; a shared leaf (one row) stays one row."""
    if leaf.shape[0] == 1 and n_rows * width != 1:
        return leaf.reshape((1, 1, *leaf.shape[1:]))
    return leaf.reshape((n_rows, width, *leaf.shape[1:]))


def _take2(table, row, index):
    """``table[row, index]`` for a ``[R, N]`` table (or a shared ``[1, N]`` one)."""
    if row is None or table.shape[0] == 1:
        return _search.gather(table[0], index)
    width = table.shape[1]
    return _search.gather(table.reshape(-1), row * width + index)


def _separately_rounded(product, witness):
    """``product``, rounded on its own before it is added to anything (see
    ``formula.separately_rounded``); ``witness`` is finite (``witness - witness`` is a
    +0.0 the compiler cannot assume)."""
    return _formula.separately_rounded(product, witness - witness)


@dataclass(frozen=True)
class Located:
    """Where an axis puts each element: ``index`` (valid where in range), ``below`` and
    ``above`` its range (for wrap: values that cannot be wrapped), and ``top``: a
    UniformBinning value below ``high`` whose bin computes to n by rounding (None for
    list edges), which correctionlib maps to the content after the last bin."""

    index: Any
    below: Any
    above: Any
    top: Any = None


@dataclass(frozen=True)
class EdgesAxis:
    """A binning axis with explicit edges. params: ``{"edges": [R, E], "nbins": [R]}``.

    Padded rows hold +inf past their last edge.
    """

    input: int
    mode: str = "shared"  # the search layout, see _search

    def locate(self, params, ctx, row, wrap: bool) -> Located:
        xp = ctx.xp
        x = ctx.real(self.input)
        edges = params["edges"]
        nbins = take(params["nbins"], row)
        if wrap:
            unwrappable = ~xp.isfinite(x)
            low = take(edges[:, 0], row)
            high = _take2(edges, row, nbins)
            norm = true_divide(x - low, high - low)
            offset = _separately_rounded((norm - xp.floor(norm)) * (high - low), x)
            x = low + offset
        position = _search.count(self.mode, params, "edges", row, x, "right")
        isnan = xp.isnan(x)
        if wrap:  # inf/NaN cannot be wrapped; correctionlib also fails where rounding
            # puts a wrapped value on the last edge
            above = unwrappable | (position > nbins)
            return Located(position - 1, xp.zeros_like(isnan), above)
        return Located(position - 1, (position == 0) & ~isnan, (position > nbins) | isnan)

    def nbins(self, params, row):
        return take(params["nbins"], row)

    def edge(self, params, row, index):
        """Edge ``index`` (per element) of each element's binning."""
        return _take2(params["edges"], row, index)


@dataclass(frozen=True)
class UniformAxis:
    """``UniformBinning``. params: ``{"low": [R], "high": [R], "nbins": [R]}``."""

    input: int

    def locate(self, params, ctx, row, wrap: bool) -> Located:
        xp = ctx.xp
        x = ctx.real(self.input)
        low, high = take(params["low"], row), take(params["high"], row)
        nbins = take(params["nbins"], row)
        norm = true_divide(x - low, high - low)
        if wrap:
            norm = norm - xp.floor(norm)
        # correctionlib truncates n * norm to an unsigned index; NaN gives bin 0. The
        # product is clipped to [-1, n] first: outside it the range checks decide, and
        # a cast of a value past int32 differs between XLA (saturates) and NumPy.
        scaled = nbins.astype(norm.dtype) * norm
        scaled = xp.clip(xp.where(xp.isfinite(scaled), scaled, 0.0), -1.0, nbins)
        index = scaled.astype(np.int32)
        top = index >= nbins
        index = xp.clip(index, 0, nbins - 1)
        if wrap:
            return Located(index, xp.zeros(xp.shape(x), dtype=bool), ~xp.isfinite(x), top)
        return Located(index, x < low, x >= high, top & (x < high))

    def nbins(self, params, row):
        return take(params["nbins"], row)

    def edge(self, params, row, index):
        low, high = take(params["low"], row), take(params["high"], row)
        return low + index * ((high - low) / take(params["nbins"], row))


@dataclass(frozen=True)
class Binning(Node):
    """Binning or MultiBinning: one or more axes, C-order content, one flow.

    ``flow`` is "clamp", "error", "wrap" or "default" (then ``default`` is the node
    evaluated out of range). params: ``{"axes": (axis params, ...), "content":
    Children params, "default": default params}``.

    Axes are resolved in order, as correctionlib does: the first axis out of range
    decides (error or default) and later axes no longer matter.
    """

    axes: tuple
    flow: str
    content: Children
    default: Node | None = None

    def evaluate(self, params, ctx, row):
        xp = ctx.xp
        flat_index = total = err = outside = top = settled = invalid = None
        located = []  # (axis, params, bin index, nbins) for relaxed evaluation
        for axis, axis_params in zip(self.axes, params["axes"], strict=True):
            where = axis.locate(axis_params, ctx, row, self.flow == "wrap")
            nbins = axis.nbins(axis_params, row)
            index = where.index
            if self.flow == "clamp":
                index = xp.where(where.below, 0, xp.where(where.above, nbins - 1, index))
                out = xp.zeros_like(where.below)
            else:
                out = where.below | where.above
                index = xp.where(out, 0, index)
            if settled is not None:
                out = out & ~settled
            if self.flow in ("error", "wrap"):
                code = xp.where(
                    where.below,
                    error_code(axis.input, BELOW),
                    xp.where(where.above, error_code(axis.input, ABOVE), 0),
                )
                err = combine_errors(err, xp.where(out, code, 0).astype(np.int32))
            outside = out if outside is None else (outside | out)
            if where.top is not None:
                hit = where.top & ~out if settled is None else where.top & ~out & ~settled
                top = hit if top is None else (top | hit)
                settled = (out | hit) if settled is None else (settled | out | hit)
            else:
                settled = out if settled is None else (settled | out)
            flat_index = index if flat_index is None else flat_index * nbins + index
            total = nbins if total is None else total * nbins
            located.append((axis, axis_params, index, nbins))
            if isinstance(axis, UniformAxis) and len(self.axes) > 1:
                # correctionlib turns NaN into a huge index here and fails on it, unless
                # another axis settles the element first (see README)
                nan = xp.isnan(ctx.real(axis.input))
                code = xp.where(nan, error_code(axis.input, ABOVE), 0).astype(np.int32)
                invalid = combine_errors(invalid, code)
        if invalid is not None:  # fails after the axes that settle elements
            invalid = invalid if settled is None else xp.where(settled, 0, invalid)
        if top is not None:
            if self.default is not None:  # the content after the last bin is the default
                outside = outside | top
            elif len(self.axes) > 1:  # MultiBinning: the last content element
                flat_index = xp.where(top, total - 1, flat_index)
        inside_ctx = ctx if self.flow == "clamp" else ctx.restricted(~outside)
        inside = self.content.evaluate_at(params["content"], inside_ctx, row, flat_index)
        if any(ctx.relax.relaxes(axis.input) for axis, *_ in located):
            inside = (self._relaxed(params, inside_ctx, row, located, inside[0]), inside[1])
        if self.default is None:
            value, child_err = inside
            if top is not None and len(self.axes) == 1:  # Binning: a 0.0 placeholder
                value = xp.where(top, 0.0, value)
                child_err = None if child_err is None else xp.where(top, 0, child_err)
            return value, combine_errors(combine_errors(err, invalid), child_err)
        fallback = self.default.evaluate(params["default"], ctx.restricted(outside), row)
        value, selected_err = _select(outside, fallback, inside)
        return value, combine_errors(invalid, selected_err)

    def _relaxed(self, params, ctx, row, located, exact):
        """The relaxed value inside the range (see ``_relax``)."""
        relax = ctx.relax
        per_axis = []
        for axis, axis_params, index, nbins in located:
            if not relax.relaxes(axis.input):
                per_axis.append([(index, 1.0)])
                continue
            x = ctx.guard(ctx.real(axis.input))

            def edge(j, axis=axis, axis_params=axis_params):
                return axis.edge(axis_params, row, j)

            points = relax.bin_points(x, index, nbins, edge, axis.input, self.flow == "clamp")
            per_axis.append(points)
        surrogate = 0.0
        for combination in itertools.product(*per_axis):
            flat, weight = None, 1.0
            for (index, w), (_, _, _, nbins) in zip(combination, located, strict=True):
                flat = index if flat is None else flat * nbins + index
                weight = weight * w
            value, _ = self.content.evaluate_at(params["content"], ctx, row, flat)
            surrogate = surrogate + weight * value
        return relax.combine(exact, surrogate)

    def optimized(self, params, fast=True):
        content, content_params = self.content.optimized(params["content"], fast)
        new_params = {**params, "content": content_params}
        axes, axes_params = [], []
        for axis, axis_params in zip(self.axes, params["axes"], strict=True):
            if isinstance(axis, EdgesAxis):
                mode, planned = _search.plan(axis_params, "edges", fast=fast)
                axes.append(EdgesAxis(axis.input, mode))
                axes_params.append(planned)
            else:
                axes.append(axis)
                axes_params.append(axis_params)
        new_params["axes"] = tuple(axes_params)
        default = self.default
        if default is not None:
            default, new_params["default"] = default.optimized(params["default"], fast)
        return Binning(tuple(axes), self.flow, content, default), new_params


@dataclass(frozen=True)
class IntCategory(Node):
    """Category on an int input. params: ``{"keys": [R, K] sorted, "nkeys": [R],
    "content": Children params (children in key order), "default": ...}``."""

    input: int
    content: Children
    default: Node | None = None
    mode: str = "shared"  # the search layout of the keys, see _search

    def evaluate(self, params, ctx, row):
        xp = ctx.xp
        x = ctx.inputs[self.input]
        keys = params["keys"]
        x = x.astype(keys.dtype)
        position = _search.count(self.mode, params, "keys", row, x, "left")
        if not ctx.host and self.mode == "shared" and keys.shape[1] <= _search.COMPARE_LIMIT:
            found = jnp.any(keys[0] == x[..., None], axis=-1)  # no gather
        else:
            nkeys = take(params["nkeys"], row)
            found = (position < nkeys) & (_take2(keys, row, position) == x)
        index = xp.where(found, position, 0)
        if self.default is None:
            value, child_err = self.content.evaluate_at(
                params["content"], ctx.restricted(found), row, index
            )
            missing = xp.where(found, 0, error_code(self.input, MISSING_KEY)).astype(np.int32)
            return value, combine_errors(missing, child_err)
        inside = self.content.evaluate_at(params["content"], ctx.restricted(found), row, index)
        fallback = self.default.evaluate(params["default"], ctx.restricted(~found), row)
        return _select(found, inside, fallback)

    def optimized(self, params, fast=True):
        content, content_params = self.content.optimized(params["content"], fast)
        mode, new_params = _search.plan(
            {**params, "content": content_params}, "keys", "left", fast=fast
        )
        default = self.default
        if default is not None:
            default, new_params["default"] = default.optimized(params["default"], fast)
        return IntCategory(self.input, content, default, mode), new_params


def evaluate_root(
    node: Node,
    params: Params,
    inputs: tuple,
    relax: _relax.Relaxation = _relax.EXACT,
    host: bool = False,
):
    """Evaluate a lowered correction: returns (value, err) of the inputs' broadcast shape.

    Elements with an error get NaN (err says which); see ``decode_error``.

    With ``host``, params and inputs are NumPy arrays and the evaluation runs with
    NumPy (exact mode, float64, no derivatives; see ``runs_on_host``).
    """
    if host:
        xp, one, dtype = np, None, np.float64
    else:
        # The barrier keeps tables and inputs opaque to XLA: inside a caller's jit
        # they would otherwise be constants that XLA folds and reassociates (e.g.
        # (x*3)*3 -> x*9, or a whole formula evaluated by XLA's constant folder).
        xp, dtype = jnp, jnp.result_type(float)
        one = jnp.ones((), dtype=dtype)
        params, inputs, one = jax.lax.optimization_barrier((params, inputs, one))
    shape = xp.broadcast_shapes(*(xp.shape(x) for x in inputs if x is not None))
    inputs = tuple(None if x is None else xp.broadcast_to(x, shape) for x in inputs)
    value, err = node.evaluate(params, Context(inputs, None, relax, one, xp), None)
    value = xp.broadcast_to(xp.asarray(value, dtype=dtype), shape)
    if err is None:
        return value, xp.zeros(shape, dtype=np.int32)
    err = xp.broadcast_to(err, shape)
    return xp.where(err != 0, np.nan, value), err


def runs_on_host(node: Node) -> bool:
    """Whether NumPy can evaluate ``node`` (every node type but lwtnn, whose networks
    are written for JAX only)."""
    if isinstance(node, Lwtnn):
        return False
    if isinstance(node, Children):
        return all(runs_on_host(group) for group in node.groups)
    if isinstance(node, Transform):
        return runs_on_host(node.rule) and runs_on_host(node.content)
    if isinstance(node, Binning | IntCategory):
        return runs_on_host(node.content) and (node.default is None or runs_on_host(node.default))
    return True
