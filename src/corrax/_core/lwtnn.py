"""lwtnn feed-forward networks: the ``opaque`` configuration parsed, evaluated in JAX.

correctionlib 2.9 serialises a node's ``opaque`` object back to JSON, reads it with
lwtnn's ``parse_json`` (boost's property tree: every value is text, converted when
asked for) and builds lwtnn's sequential ``LightweightNeuralNetwork``. ``parse``
accepts exactly what that accepts and rejects the rest with correctionlib's message
("Failed to parse LWTNN model from 'opaque' field: ..."), and also the configurations
that lwtnn would accept without checking and then evaluate out of bounds (a
normalization or highway layer whose size is not its input's, a maxout bias of the
wrong size).

The network's numbers become tables (offsets and scales, each layer's weights,
biases and activation ``alpha``); its shape (layer kinds, sizes, activations) is
static, so networks of one shape below one correction stack as instances. ``network``
evaluates them as lwtnn does (``Stack.tcc``):

* inputs ``(x + offset) * scale``;
* ``dense``: ``W x + b`` (either may be absent) and an activation (required);
* ``normalization``: ``W * (x + b)`` elementwise;
* ``maxout``: the elementwise maximum of ``W_k x + b_k`` over its sublayers;
* ``highway``: ``c * act(W_t x + b_t) + (1 - c) * x`` with ``c = sigmoid(W_c x + b_c)``;
* activations ``linear``, ``sigmoid`` (0 below -30, 1 above 30), ``rectified``,
  ``softmax`` (shifted by the maximum), ``tanh``, ``hard_sigmoid``
  (``clip(0.2 x + 0.5, 0, 1)``), ``elu``, ``leakyrelu``, ``swish``
  (``x sigmoid(alpha x)``), ``abs`` and the ``*_legacy`` variants. ``alpha`` is 1 for a
  bare ``"elu"`` and NaN for the other bare names, as in lwtnn.

Recurrent, convolutional and embedding layers belong to lwtnn's other networks; its
sequential stack rejects them ("unknown architecture"), and so does ``parse``.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InvalidDocumentError
from . import formula as _formula

PREFIX = "Failed to parse LWTNN model from 'opaque' field: "

# lwtnn's names; the legacy ones compute the same functions (see ``_ACTIVATIONS``)
_NAMES = {
    "linear": "linear",
    "sigmoid": "sigmoid",
    "rectified": "rectified",
    "softmax": "softmax",
    "tanh": "tanh",
    "hard_sigmoid": "hard_sigmoid",
    "elu": "elu",
    "leakyrelu": "leakyrelu",
    "swish": "swish",
    "abs": "abs",
    "sigmoid_legacy": "sigmoid",
    "hard_sigmoid_legacy": "hard_sigmoid",
    "tanh_legacy": "tanh",
    "rectified_legacy": "rectified_legacy",
}
WITH_ALPHA = frozenset({"elu", "leakyrelu", "swish"})
# column blocks summed in the graph itself; wider layers loop over them
_UNROLLED = 4
_RECURRENT = ("lstm", "gru", "simplernn", "conv1d", "embedding")
_COMPONENTS = frozenset({"i", "o", "c", "f", "z", "r", "h", "t", "carry"})
# what std::istream >> double reads (boost converts every value's text with it)
_DECIMAL = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


class _Error(Exception):
    """A configuration lwtnn (or correctionlib around it) rejects."""


@dataclass(frozen=True)
class Layer:
    """A layer's static shape.

    ``kind``: "dense", "normalization", "maxout" or "highway"; ``activation``: the
    canonical activation name (dense and highway), else None; ``weights``/``bias``:
    whether a dense layer has them; ``units``: a maxout's number of sublayers.
    """

    kind: str
    n_in: int
    n_out: int
    activation: str | None = None
    weights: bool = True
    bias: bool = True
    units: int = 0


@dataclass(frozen=True)
class Network:
    """A parsed lwtnn node: static structure and its single-instance tables."""

    inputs: tuple[int, ...]  # correction input index of each network input
    layers: tuple[Layer, ...]
    finalizer: _formula.FormulaTemplate  # its variables index the network's outputs
    params: dict[str, Any]


def _children(value: Any) -> list:
    """A property tree's children: array items or object values (a scalar has none)."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return []


def _child(tree: dict, key: str) -> Any:
    if not isinstance(tree, dict) or key not in tree:
        raise _Error(f"No such node ({key})")
    return tree[key]


def _number(value: Any, what: str) -> float:
    """A value read as a double, as boost reads its text."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Error(f'{what}: conversion of data {json.dumps(value)} to type "d" failed')
    if isinstance(value, str):
        number = float(value) if _DECIMAL.fullmatch(value) else math.inf
        if math.isinf(number):
            raise _Error(f'{what}: conversion of data {value!r} to type "d" failed')
        return number
    return float(value)


def _numbers(value: Any, what: str) -> np.ndarray:
    return np.array([_number(v, what) for v in _children(value)], dtype=np.float64)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _check_finite(value: Any) -> None:
    """JSON cannot write NaN or infinity: correctionlib's re-serialised blob breaks."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _Error(f"the configuration holds {value}, which JSON cannot represent")
    for child in _children(value):
        _check_finite(child)


def _activation(value: Any) -> tuple[str, float]:
    """(canonical name, alpha) of an activation: a name, or {"function", "alpha"}."""
    if _children(value):
        name = _text(_child(value, "function"))
        alpha = _number(_child(value, "alpha"), "activation alpha")
    else:
        name = _text(value)
        alpha = 1.0 if name == "elu" else math.nan
    if name not in _NAMES:
        raise _Error(f"activation function {json.dumps(value)} not recognized")
    return _NAMES[name], alpha


def _dense_info(layer: dict) -> dict[str, Any]:
    """What lwtnn's ``add_dense_info`` reads: weights, bias, U, activation."""
    info: dict[str, Any] = {
        "weights": _numbers(_child(layer, "weights"), "weights"),
        "bias": _numbers(_child(layer, "bias"), "bias"),
    }
    if "U" in layer:
        info["U"] = _numbers(layer["U"], "U")
    if "activation" in layer:
        info["activation"] = _activation(layer["activation"])
    return info


def _parse_layer(layer: Any) -> dict[str, Any]:
    architecture = _text(_child(layer, "architecture"))
    if architecture in ("dense", "normalization"):
        return {"architecture": architecture, **_dense_info(layer)}
    if architecture == "maxout":
        sublayers = [_dense_info(sub) for sub in _children(_child(layer, "sublayers"))]
        return {"architecture": architecture, "sublayers": sublayers}
    if architecture == "highway":
        components = {}
        for key, component in _items(_child(layer, "components")):
            if key not in _COMPONENTS:
                raise _Error(f"unknown layer component {key!r}")
            components[key] = _dense_info(component)
        parsed = {"architecture": architecture, "components": components}
        parsed["activation"] = _activation(_child(layer, "activation"))
        if "inner_activation" in layer:
            _activation(layer["inner_activation"])
        return parsed
    if architecture in _RECURRENT:
        # parsed by lwtnn, then refused by the sequential stack
        return {"architecture": architecture}
    raise _Error(f"architecture {architecture} not recognized")


def _items(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return list(value.items())
    return [("", child) for child in _children(value)]


def _matrix(weights: np.ndarray, n_in: int) -> np.ndarray:
    """lwtnn's ``build_matrix``: row-major, ``n_in`` columns."""
    if weights.size % n_in:
        raise _Error(
            "matrix elements not divisible by number of columns. "
            f"Elements: {weights.size}, Inputs: {n_in}"
        )
    return weights.reshape(weights.size // n_in, n_in)


def _component(info: dict[str, Any], n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """lwtnn's ``get_component``: a (W, b) pair with consistent sizes."""
    weights = _matrix(info["weights"], n_in)
    n_out = weights.shape[0]
    u_out = 0
    if info.get("U") is not None and info["U"].size:
        if n_out == 0:
            raise _Error("component U given for a component without outputs")
        u_out = _matrix(info["U"], n_out).shape[0]
    if (u_out != n_out and u_out > 0) or info["bias"].size != n_out:
        raise _Error(f"Output dims mismatch, W: {n_out}, U: {u_out}, b: {info['bias'].size}")
    return weights, info["bias"]


def _activation_params(name: str, alpha: float) -> dict[str, np.ndarray]:
    return {"alpha": np.float64(alpha)} if name in WITH_ALPHA else {}


def _build(parsed: dict[str, Any], n_in: int) -> tuple[Layer, dict[str, Any]]:
    """One layer of lwtnn's ``Stack``: its shape and tables, checked like lwtnn."""
    kind = parsed["architecture"]
    if kind == "dense":
        if "activation" not in parsed:
            raise _Error("Got undefined activation function")
        name, alpha = parsed["activation"]
        params = _activation_params(name, alpha)
        n_out = n_in
        has_weights, has_bias = parsed["weights"].size > 0, parsed["bias"].size > 0
        if has_weights:
            params["weights"] = _matrix(parsed["weights"], n_in)
            n_out = params["weights"].shape[0]
        if has_bias:
            if parsed["bias"].size != n_out:
                raise _Error(
                    f"tried to add a bias layer with {parsed['bias'].size} entries, "
                    f"previous layer had {n_out} outputs"
                )
            params["bias"] = parsed["bias"]
        layer = Layer(kind, n_in, n_out, name, has_weights, has_bias)
        return layer, params
    if kind == "normalization":
        weights, bias = parsed["weights"], parsed["bias"]
        if weights.size < 1 or bias.size < 1:
            raise _Error("Either weights or bias layer size is < 1")
        if weights.size != bias.size:
            raise _Error("weights and bias layer are not equal in size!")
        if weights.size != n_in:
            raise _Error(f"normalization layer of size {weights.size} after {n_in} outputs")
        return Layer(kind, n_in, n_in), {"weights": weights, "bias": bias}
    if kind == "maxout":
        if not parsed["sublayers"]:
            raise _Error("layer has wrong info for maxout")
        matrices = [_matrix(sub["weights"], n_in) for sub in parsed["sublayers"]]
        if len({m.shape[0] for m in matrices}) != 1:
            raise _Error("uneven matrices for maxout")
        n_out = matrices[0].shape[0]
        if n_out == 0:
            raise _Error("tried to build maxout without weights!")
        for sub in parsed["sublayers"]:
            if sub["bias"].size != n_out:
                raise _Error(f"maxout bias of size {sub['bias'].size} for {n_out} outputs")
        params = {
            "weights": np.stack(matrices),
            "bias": np.stack([sub["bias"] for sub in parsed["sublayers"]]),
        }
        return Layer(kind, n_in, n_out, units=len(matrices)), params
    if kind == "highway":
        components = parsed["components"]
        for key in ("t", "carry"):
            if key not in components:
                raise _Error(f"highway layer without component {key!r} (map::at)")
        transform_w, transform_b = _component(components["t"], n_in)
        carry_w, carry_b = _component(components["carry"], n_in)
        if transform_w.shape[0] != n_in or carry_w.shape[0] != n_in:
            raise _Error(
                f"highway layer of size {transform_w.shape[0]} (carry {carry_w.shape[0]}) "
                f"after {n_in} outputs"
            )
        name, alpha = parsed["activation"]
        params = {
            "weights": transform_w,
            "bias": transform_b,
            "carry_weights": carry_w,
            "carry_bias": carry_b,
            **_activation_params(name, alpha),
        }
        return Layer(kind, n_in, n_in, name), params
    raise _Error("unknown architecture")


def parse(node: Any, inputs: Sequence[Any]) -> Network:
    """Parse an ``LWTNN`` schema node for a correction with these input ``Variable``s.

    Raises ``InvalidDocumentError`` with correctionlib's message.
    """
    try:
        return _parse(node, inputs)
    except _Error as exc:
        raise InvalidDocumentError(PREFIX + str(exc)) from None
    except InvalidDocumentError as exc:  # the finalizer's formula
        raise InvalidDocumentError(PREFIX + str(exc)) from None


def _parse(node: Any, inputs: Sequence[Any]) -> Network:
    opaque = node.opaque.model_dump()
    _check_finite(opaque)
    # lwtnn's parse_json: inputs, layers, outputs, then the defaults
    offsets, scales, names = [], [], []
    for item in _children(_child(opaque, "inputs")):
        names.append(_text(_child(item, "name")))
        offsets.append(_number(_child(item, "offset"), f"input {names[-1]!r} offset"))
        scales.append(_number(_child(item, "scale"), f"input {names[-1]!r} scale"))
    parsed_layers = [_parse_layer(layer) for layer in _children(_child(opaque, "layers"))]
    outputs = [_text(v) for v in _children(_child(opaque, "outputs"))]
    if "defaults" in opaque:
        _numbers(opaque["defaults"], "defaults")
    else:
        for item in _children(opaque["inputs"]):
            if isinstance(item, dict) and "default" in item:
                _number(item["default"], f"input {item.get('name')!r} default")
    # correctionlib: network inputs are correction inputs, by name; no strings
    indices = []
    for name in names:
        index = next((i for i, v in enumerate(inputs) if v.name == name), None)
        if index is None:
            raise _Error(f"Error: could not find variable {name} in inputs")
        if inputs[index].type == "string":
            raise _Error(f"LWTNN cannot use string inputs, but input '{name}' has string type")
        indices.append(index)
    if not outputs:
        raise _Error("LWTNN model has no outputs")
    if not names:
        raise _Error("need at least one input")
    finalizer = node.finalizer
    outputs_json = json.dumps([{"name": name, "type": "real"} for name in outputs])
    template = _formula.formula_template(
        finalizer.expression,
        tuple(finalizer.variables),
        outputs_json,
        len(finalizer.parameters or []),
    )
    # lwtnn's Stack: each layer takes the previous one's outputs
    layers, layer_params = [], []
    width = len(names)
    for parsed in parsed_layers:
        layer, params = _build(parsed, width)
        layers.append(layer)
        layer_params.append(params)
        width = layer.n_out
    if width != len(outputs):
        raise _Error(f"internal stack has {width} outputs, but {len(outputs)} were given")
    params = {
        "offset": np.array(offsets, dtype=np.float64),
        "scale": np.array(scales, dtype=np.float64),
        "layers": tuple(layer_params),
        "finalizer": template.slot_values(finalizer.parameters or []),
    }
    return Network(tuple(indices), tuple(layers), template, params)


# --- evaluation -------------------------------------------------------------------


@jax.custom_jvp
def _separately_rounded(product, zero):
    """``product``, rounded before any addition (``formula.separately_rounded``),
    differentiated as ``product`` (the bit manipulation has no derivative)."""
    return _formula.separately_rounded(product, zero)


@_separately_rounded.defjvp
def _separately_rounded_jvp(primals, tangents):
    return _separately_rounded(*primals), tangents[0]


def _sigmoid(x, opaque):
    """lwtnn's sigmoid: 0 below -30, 1 above 30 (its overflow guard), else 1/(1+e^-x)."""
    low, high = x < -30.0, x > 30.0
    safe = jnp.where(low | high, 0.0, x)  # no overflow in the unselected branch's gradient
    value = 1.0 / (1.0 + opaque(jnp.exp(-safe)))
    return jnp.where(low, 0.0, jnp.where(high, 1.0, value))


def _hard_sigmoid(x, zero):
    out = _separately_rounded(0.2 * x, zero) + 0.5
    return jnp.where(out < 0, 0.0, jnp.where(out > 1, 1.0, out))


def _elu(x, alpha, opaque):
    positive = x >= 0
    safe = jnp.where(positive, 0.0, x)
    return jnp.where(positive, x, alpha * (opaque(jnp.exp(safe)) - 1.0))


def _softmax(x, opaque):
    # the shift changes no value's derivative: stop_gradient keeps max's out of it
    shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True))
    exps = opaque(jnp.exp(shifted))
    total = _eigen_sum([exps[..., k] for k in range(exps.shape[-1])])
    return _formula.true_divide(exps, total[..., None])


def activate(name: str, x, alpha, opaque: Callable, zero):
    """Activation ``name`` of pre-activations ``x`` (``alpha`` broadcasts against x)."""
    if name == "linear":
        return x
    if name == "sigmoid":
        return _sigmoid(x, opaque)
    if name == "rectified":
        return jnp.where(x < 0, 0.0, x)
    if name == "rectified_legacy":  # NaN stays NaN, -0.0 becomes +0.0
        return jnp.where(jnp.isnan(x), x, jnp.where(x > 0, x, 0.0))
    if name == "softmax":
        return _softmax(x, opaque)
    if name == "tanh":
        return opaque(jnp.tanh(x))
    if name == "hard_sigmoid":
        return _hard_sigmoid(x, zero)
    if name == "elu":
        return _elu(x, alpha, opaque)
    if name == "leakyrelu":
        return jnp.where(x > 0, x, alpha * x)
    if name == "swish":
        return x * _sigmoid(alpha * x, opaque)
    if name == "abs":
        return jnp.abs(x)
    raise AssertionError(f"unknown activation {name}")


@jax.custom_jvp
def _matvec(x, weights, zero):
    """``W x`` per instance: x ``[..., R, n_in]``, W ``[R, (units,) n_out, n_in]``.

    In the order of Eigen 3.3's matrix-vector kernel (lwtnn's Eigen; SSE2, no FMA):
    rows in pairs (all but an odd last row) add the products four columns at a time,
    ``acc + ((p0 + p1) + (p2 + p3))``, then the remaining columns one by one; an odd
    last row adds them one by one. Each product is rounded on its own, and everything
    is elementwise, so that an element's value never depends on the batch's shape (a
    dot's summation order does).
    """
    if weights.ndim == 4:  # a maxout's sublayer axis
        x, zero = x[..., None, :], zero[..., None]
    paired = weights.shape[-2] & ~1
    parts = [
        _summed(x, weights[..., :paired, :], zero, 4),
        _summed(x, weights[..., paired:, :], zero, 1),
    ]
    parts = [part for part in parts if part is not None]
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)


def _dot(x, weights):
    """``W x`` as a dot (any summation order): for derivatives, which need not be
    bit-exact and are much faster this way, forward and reverse."""
    if weights.ndim == 4:
        return jnp.einsum("...ri,ruoi->...ruo", x, weights)
    return jnp.einsum("...ri,roi->...ro", x, weights)


def _nonzero(tangent) -> bool:
    return not isinstance(tangent, jax.custom_derivatives.SymbolicZero)


@functools.partial(_matvec.defjvp, symbolic_zeros=True)
def _matvec_jvp(primals, tangents):
    x, weights, zero = primals
    x_dot, weights_dot, _ = tangents
    value = _matvec(x, weights, zero)
    tangent = jnp.zeros_like(value)
    if _nonzero(x_dot):
        tangent = tangent + _dot(x_dot, weights)
    if _nonzero(weights_dot):
        tangent = tangent + _dot(x, weights_dot)
    return value, tangent


def _summed(x, weights, zero, block: int):
    """The rows of ``W x`` summed in blocks of ``block`` (4 or 1) columns, then the
    remaining columns one by one; None for no rows."""
    if weights.shape[-2] == 0:
        return None
    n_in = weights.shape[-1]
    bound = n_in // block * block

    def products(start, width: int) -> list:
        columns = jax.lax.dynamic_slice_in_dim(x, start, width, axis=-1)
        rows = jax.lax.dynamic_slice_in_dim(weights, start, width, axis=-1)
        return [
            _separately_rounded(rows[..., j] * columns[..., j, None], zero) for j in range(width)
        ]

    def term(start):
        p = products(start, block)
        return p[0] if block == 1 else (p[0] + p[1]) + (p[2] + p[3])

    total = term(0) if bound else None
    blocks = bound // block
    if blocks > _UNROLLED:
        # a loop: the graph (and compile time) stays small for wide layers
        total = jax.lax.fori_loop(1, blocks, lambda b, t: t + term(b * block), total)
    else:
        for b in range(1, blocks):
            total = total + term(b * block)
    for p in products(bound, n_in - bound):
        total = p if total is None else total + p
    return total


def _eigen_sum(terms: Sequence):
    """``sum`` of a vector as Eigen 3.3 reduces it with two-double packets."""
    n = len(terms)
    if n < 2:
        return terms[0]
    aligned, aligned2 = n // 2 * 2, n // 4 * 4
    lanes = [terms[0], terms[1]]
    if aligned > 2:
        second = [terms[2], terms[3]]
        for i in range(4, aligned2, 4):
            lanes = [lanes[0] + terms[i], lanes[1] + terms[i + 1]]
            second = [second[0] + terms[i + 2], second[1] + terms[i + 3]]
        lanes = [lanes[0] + second[0], lanes[1] + second[1]]
        if aligned > aligned2:
            lanes = [lanes[0] + terms[aligned2], lanes[1] + terms[aligned2 + 1]]
    total = lanes[0] + lanes[1]
    for term in terms[aligned:]:
        total = total + term
    return total


def network(layers: Sequence[Layer], params: dict[str, Any], x, opaque: Callable):
    """The outputs ``[..., R, n_out]`` of R stacked networks for inputs ``x [..., n_in]``.

    ``params`` leaves have the leading instance axis R.
    """
    # +0.0 per element that the compiler cannot prove to be zero (the tables may be
    # constants to it, an element's input is not): x - x, or 0.0 where x is not finite
    first = x[..., :1]
    zero = jnp.where(jnp.isfinite(first), first - first, 0.0)[..., None, :]
    n_instances = params["offset"].shape[0]
    x = jnp.broadcast_to(x[..., None, :], (*x.shape[:-1], n_instances, x.shape[-1]))
    h = (x + params["offset"]) * params["scale"]
    for layer, lp in zip(layers, params["layers"], strict=True):
        alpha = lp["alpha"][:, None] if "alpha" in lp else None
        if layer.kind == "dense":
            if layer.weights:
                h = _matvec(h, lp["weights"], zero)
            if layer.bias:
                h = h + lp["bias"]
            h = activate(layer.activation, h, alpha, opaque, zero)
        elif layer.kind == "normalization":
            h = lp["weights"] * (h + lp["bias"])
        elif layer.kind == "maxout":
            units = _matvec(h, lp["weights"], zero) + lp["bias"]
            # Eigen's maxCoeff: std::max in order (a NaN after the first is skipped)
            h = units[..., 0, :]
            for k in range(1, layer.units):
                h = jnp.where(h < units[..., k, :], units[..., k, :], h)
        else:  # highway
            carry = _matvec(h, lp["carry_weights"], zero) + lp["carry_bias"]
            carry = _sigmoid(carry, opaque)
            transform = _matvec(h, lp["weights"], zero) + lp["bias"]
            transform = activate(layer.activation, transform, alpha, opaque, zero)
            h = _separately_rounded(carry * transform, zero) + _separately_rounded(
                (1.0 - carry) * h, zero
            )
    return h
