"""lwtnn nodes against correctionlib: every layer type and activation, rejections,
transformations, gradients with respect to inputs and weights, facades."""

from __future__ import annotations

import json
import pathlib
import pickle

import awkward as ak
import correctionlib
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from correctionlib import _core
from documents import INT, REAL, STRING, binning, category, document, lwtnn, text, variables
from oracle import oracle_set

import corrax

INPUTS = variables(("x", REAL), ("k", INT), ("y", REAL))
# every name lwtnn's sequential network accepts, and the {"function", "alpha"} form
ACTIVATIONS = [
    "linear",
    "sigmoid",
    "rectified",
    "softmax",
    "tanh",
    "hard_sigmoid",
    "elu",
    "leakyrelu",  # a bare name: alpha is NaN
    "swish",
    "abs",
    "sigmoid_legacy",
    "hard_sigmoid_legacy",
    "tanh_legacy",
    "rectified_legacy",
    {"function": "elu", "alpha": 0.4},
    {"function": "leakyrelu", "alpha": 0.2},
    {"function": "swish", "alpha": 1.3},
]
EXAMPLE = "electron_fastsim_sf"


def _normal(rng, size: int, scale: float = 1.0) -> list[float]:
    return [float(v) for v in rng.normal(0.0, scale, size)]


def dense(rng, n_in: int, n_out: int, activation, scale: float = 1.0) -> dict:
    weights = _normal(rng, n_in * n_out, scale / np.sqrt(n_in))
    return {
        "architecture": "dense",
        "weights": weights,
        "bias": _normal(rng, n_out),
        "activation": activation,
    }


def every_layer(rng, activation, highway_activation) -> list[dict]:
    """normalization, dense (with and without weights and bias), maxout and highway:
    three network inputs to two outputs."""
    return [
        {"architecture": "normalization", "weights": _normal(rng, 3), "bias": _normal(rng, 3)},
        dense(rng, 3, 4, activation),
        {
            "architecture": "maxout",
            "sublayers": [{"weights": _normal(rng, 12), "bias": _normal(rng, 3)} for _ in range(3)],
        },
        {
            "architecture": "highway",
            "components": {
                "t": {"weights": _normal(rng, 9), "bias": _normal(rng, 3)},
                "carry": {"weights": _normal(rng, 9), "bias": _normal(rng, 3)},
            },
            "activation": highway_activation,
        },
        {"architecture": "dense", "weights": [], "bias": _normal(rng, 3), "activation": "tanh"},
        {"architecture": "dense", "weights": _normal(rng, 6), "bias": [], "activation": "linear"},
    ]


def network(rng, layers, finalizer="x*[0]+y", inputs=("y", "x", "k")) -> dict:
    """A network on the correction's inputs in another order (and the int input)."""
    spec = [(name, float(rng.normal()), float(rng.uniform(0.5, 2.0))) for name in inputs]
    return lwtnn(spec, layers, ["u", "v"], finalizer, ["u", "v"], [float(rng.normal())])


def example_like(rng) -> dict:
    """A node like correctionlib's example: log10 transforms in front of a
    4-32-32-4 ReLU network with softmax outputs and a ratio as finalizer."""
    names = ["pt", "eta", "phi", "iso"]
    layers = [
        dense(rng, 4, 32, "rectified"),
        dense(rng, 32, 32, "rectified"),
        dense(rng, 32, 4, "softmax"),
    ]
    node = lwtnn(
        [(n, 0.0, 1.0) for n in names],
        layers,
        ["p11", "p10", "p01", "p00"],
        "(x[2]+x[3] > 0) * (x[1]+x[3]) / max(x[2]+x[3], 1e-10)",
        ["p00", "p01", "p10", "p11"],
    )
    for name, floor in (("iso", "1e-6"), ("pt", "1e-4")):
        rule = {
            "nodetype": "formula",
            "expression": f"log10(max(x, {floor}))",
            "parser": "TFormula",
            "variables": [name],
        }
        node = {"nodetype": "transform", "input": name, "rule": rule, "content": node}
    return document(node, variables(*((n, REAL) for n in names)), name=EXAMPLE)


def _inputs(rng, n: int, n_keys: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = rng.normal(0.0, 2.0, n), rng.normal(0.0, 2.0, n)
    x[:5], x[10:14] = [np.inf, -np.inf, np.nan, 0.0, -0.0], [50.0, -50.0, 1e3, -1e3]
    y[5:8] = [np.nan, -np.inf, np.inf]
    return x, rng.integers(0, n_keys, n), y


def _compare(got, want, rtol: float = 1e-12) -> float:
    """Equal values and NaN places; returns the largest relative difference."""
    got, want = np.asarray(got), np.asarray(want)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
    np.testing.assert_allclose(got[finite], want[finite], rtol=rtol, atol=1e-300)
    scale = np.maximum(np.abs(want[finite]), np.finfo(float).tiny)
    return float(np.max(np.abs(got[finite] - want[finite]) / scale, initial=0.0))


@pytest.fixture(scope="module", name="every")
def every_fixture():
    """Selected by k: a chain of every activation, the bare names whose alpha is NaN,
    a network with every layer type, and three networks of one shape stacked below
    a binning (k = -1)."""
    rng = np.random.default_rng(7)
    finite = [a for a in ACTIVATIONS if a not in ("leakyrelu", "swish")]
    chain = [dense(rng, 3, 3, a, scale=3.0) for a in finite]
    nets = {0: network(rng, [*chain, dense(rng, 3, 2, "linear")])}
    for activation in ("leakyrelu", "swish"):
        nets[len(nets)] = network(rng, [dense(rng, 3, 2, activation)])
    nets[len(nets)] = network(rng, every_layer(rng, "softmax", {"function": "swish", "alpha": 0.6}))
    shared = [dense(rng, 3, 5, "tanh"), dense(rng, 5, 2, "sigmoid")]
    stacked = [network(rng, [dict(layer) for layer in shared]) for _ in range(3)]
    for net in stacked[1:]:  # same shape, other numbers
        for layer in net["opaque"]["layers"]:
            layer["weights"] = _normal(rng, len(layer["weights"]))
    nets[-1] = binning("y", [-1.0, 0.0, 1.0], stacked[:2], stacked[2])
    doc = document(category("k", nets), INPUTS)
    return corrax.CorrectionSet(doc)["c"], oracle_set(text(doc))["c"], len(nets) - 1


def test_every_layer_type_and_activation_equals_correctionlib(every):
    corr, reference, n_keys = every
    rng = np.random.default_rng(1)
    x, k, y = _inputs(rng, 3000, n_keys)
    k[::7] = -1
    want = reference.evaluate(x, k, y)
    assert np.isnan(want).any() and np.isfinite(want).sum() > 2000
    got = corr.evaluate(x, k, y)
    rel = _compare(got, want)
    print(f"every layer and activation: max relative difference {rel:.2g}")
    np.testing.assert_array_equal(corr.evaluate(y=y, k=k, x=x), got)  # by name, any order


def test_the_stacked_networks_share_one_table():
    rng = np.random.default_rng(3)
    shared = [dense(rng, 3, 4, "elu"), dense(rng, 4, 2, "linear")]
    nets = []
    for _ in range(4):
        net = network(rng, [dict(layer) for layer in shared])
        for layer in net["opaque"]["layers"]:
            layer["weights"] = _normal(rng, len(layer["weights"]))
        nets.append(net)
    doc = document(binning("x", [-2.0, -1.0, 0.0, 1.0, 2.0], nets, "clamp"), INPUTS)
    bound = corrax.CorrectionSet(doc)["c"].bind()
    weights = [leaf for name, leaf in bound.leaves_by_name().items() if "weights" in name]
    assert [w.shape[:2] for w in weights] == [(1, 4), (1, 4)]  # 4 networks, one table
    x, k, y = _inputs(rng, 500, 1)
    _compare(bound(x, k, y), oracle_set(text(doc))["c"].evaluate(x, k, y))


def _example_path() -> pathlib.Path:
    root = pathlib.Path(correctionlib.__file__).resolve().parent
    for path in (root / "tests" / "data", root.parent / "tests" / "data"):
        if (path / "lwtnn_example.json").is_file():
            return path / "lwtnn_example.json"
    pytest.skip("correctionlib's lwtnn_example.json is not installed (it ships in its sdist)")
    raise AssertionError  # unreachable


def _example_inputs(rng, n: int) -> list[np.ndarray]:
    pt, eta = 10 ** rng.uniform(-5.0, 3.0, n), rng.uniform(-2.5, 2.5, n)
    phi, iso = rng.uniform(-np.pi, np.pi, n), 10 ** rng.uniform(-8.0, 1.0, n)
    pt[:3], iso[3:6] = [0.0, np.inf, np.nan], [0.0, np.inf, np.nan]
    return [pt, eta, phi, iso]


@pytest.mark.parametrize("source", ["installed", "built"])
def test_example_equals_correctionlib(source):
    if source == "installed":
        path = _example_path()
        corr, reference = corrax.CorrectionSet.from_file(path)[EXAMPLE], oracle_set(path)[EXAMPLE]
    else:
        doc = example_like(np.random.default_rng(11))
        corr, reference = corrax.CorrectionSet(doc)[EXAMPLE], oracle_set(text(doc))[EXAMPLE]
    args = _example_inputs(np.random.default_rng(2), 20000)
    rel = _compare(corr.evaluate(*args), reference.evaluate(*args))
    print(f"{source} example: max relative difference {rel:.2g}")


def test_integer_inputs_convert_like_correctionlib():
    rng = np.random.default_rng(5)
    doc = document(network(rng, [dense(rng, 3, 2, "tanh")], inputs=("k", "x", "k")), INPUTS)
    k = np.array([0, 1, -7, 2**53 + 1, -(2**62) - 1, 123456789])
    x, y = np.full(len(k), 0.5), np.zeros(len(k))
    _compare(
        corrax.CorrectionSet(doc)["c"].evaluate(x, k, y),
        oracle_set(text(doc))["c"].evaluate(x, k, y),
    )


def test_transformations_and_gradients_match_finite_differences():
    rng = np.random.default_rng(9)
    layers = [dense(rng, 3, 2, "tanh"), dense(rng, 2, 2, "softmax")]
    doc = document(network(rng, layers, finalizer="x*[0]+exp(y)"), INPUTS)
    corr, reference = corrax.CorrectionSet(doc)["c"], oracle_set(text(doc))["c"]
    x, y, k = jnp.array([-1.5, 0.3, 2.0]), jnp.array([0.7, -0.2, 1.1]), jnp.array([1, -2, 4])

    def f(x, y):
        return corr.evaluate(x, k, y)

    step, h = 1e-5, 1e-4
    values = reference.evaluate(x, k, y)
    dx = (reference.evaluate(x + step, k, y) - reference.evaluate(x - step, k, y)) / (2 * step)
    dy = (reference.evaluate(x, k, y + step) - reference.evaluate(x, k, y - step)) / (2 * step)
    second = (reference.evaluate(x + h, k, y) - 2 * values + reference.evaluate(x - h, k, y)) / h**2

    @jax.jit  # one compilation for all of them
    def transformed(x, y):
        return (
            jax.grad(lambda x, y: f(x, y).sum(), argnums=(0, 1))(x, y),
            jax.jacfwd(f)(x, y),
            jax.jacrev(f, argnums=1)(x, y),
            jax.hessian(lambda x: f(x, y).sum())(x),
            jax.vmap(corr.evaluate)(x, k, y),
        )

    grad, forward, reverse, hessian, mapped = transformed(x, y)
    np.testing.assert_allclose(grad, [dx, dy], rtol=1e-7)
    np.testing.assert_allclose(forward, np.diag(dx), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(reverse, np.diag(dy), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(hessian, np.diag(second), rtol=1e-5, atol=1e-9)
    eager = f(x, y)
    np.testing.assert_allclose(eager, values, rtol=1e-14)
    np.testing.assert_array_equal(mapped, eager)
    np.testing.assert_array_equal(jax.jit(f)(x, y), eager)  # in a caller's jit: bit-equal

    # with respect to the weights: bind() makes every weight and bias a leaf
    bound = corr.bind()
    names = bound.leaves_by_name()
    assert sum("weights" in n for n in names) == 2 and sum("bias" in n for n in names) == 2

    def loss(b):
        return jnp.sum((b(x, k, y) - 0.5) ** 2)

    loss_and_grad = jax.jit(jax.value_and_grad(loss))
    value, gradient = loss_and_grad(bound)
    grads = gradient.leaves_by_name()
    for layer_index, key in [(0, "weights"), (0, "bias"), (1, "weights"), (1, "bias")]:
        name = next(n for n in names if n.endswith(f"layers/{layer_index}/{key}"))
        moved = []
        for sign in (1, -1):
            changed = json.loads(text(doc))
            node = changed["corrections"][0]["data"]["opaque"]["layers"][layer_index]
            node[key][0] += sign * step
            values = correctionlib.CorrectionSet.from_string(json.dumps(changed))["c"].evaluate(
                x, k, y
            )
            moved.append(np.sum((values - 0.5) ** 2))
        numeric = (moved[0] - moved[1]) / (2 * step)
        np.testing.assert_allclose(grads[name].ravel()[0], numeric, rtol=1e-6, err_msg=name)

    optax = pytest.importorskip("optax")
    optimiser = optax.sgd(0.05)
    state = optimiser.init(bound)
    updates, _ = optimiser.update(gradient, state)
    assert loss_and_grad(optax.apply_updates(bound, updates))[0] < value


def test_relaxation_modes_keep_values_and_exact_gradients():
    rng = np.random.default_rng(4)
    doc = document(network(rng, [dense(rng, 3, 2, "sigmoid")], finalizer="x*[0]+y"), INPUTS)
    reference = oracle_set(text(doc))["c"]
    x, k, y = jnp.array([-0.5, 1.0]), jnp.array([2, 0]), jnp.array([0.25, -1.0])
    step = 1e-5
    dx = (reference.evaluate(x + step, k, y) - reference.evaluate(x - step, k, y)) / (2 * step)
    cset = corrax.CorrectionSet(doc)
    for relaxed in (
        cset["c"].relaxed("straight_through", formula_width=0.1),
        cset.relaxed("smooth", widths={"y": 0.1})["c"],
    ):
        value, grad = jax.jit(jax.value_and_grad(lambda x, r=relaxed: r.evaluate(x, k, y).sum()))(x)
        np.testing.assert_allclose(value, reference.evaluate(x, k, y).sum(), rtol=1e-14)
        np.testing.assert_allclose(grad, dx, rtol=1e-7)


def test_pickle_jagged_dask_and_compound():
    rng = np.random.default_rng(6)
    node = network(rng, [dense(rng, 3, 2, "elu")], finalizer="1+0.1*tanh(x*[0]+y)")
    doc = document(
        node,
        INPUTS,
        compound=[
            {
                "name": "twice",
                "inputs": INPUTS,
                "output": {"name": "o", "type": "real"},
                "inputs_update": ["x"],
                "input_op": "*",
                "output_op": "*",
                "stack": ["c", "c"],
            }
        ],
    )
    cset, reference = corrax.CorrectionSet(doc), oracle_set(text(doc))
    x, k, y = (
        ak.Array([[0.5, -1.0], [], [2.0]]),
        ak.Array([1, 2, 3]),
        ak.Array([[0.1, 0.2], [], [-3.0]]),
    )
    want = reference["c"].evaluate(x, k, y)
    got = pickle.loads(pickle.dumps(cset["c"])).evaluate(x, k, y)
    assert got.type == want.type
    _compare(ak.flatten(got), ak.flatten(want))
    flat = [np.asarray(ak.flatten(v)) for v in (x, ak.broadcast_arrays(k, x)[0], y)]
    _compare(cset.compound["twice"].evaluate(*flat), reference.compound["twice"].evaluate(*flat))
    dak = pytest.importorskip("dask_awkward")
    lazy = cset["c"].evaluate(
        dak.from_awkward(x, npartitions=2),
        dak.from_awkward(k, npartitions=2),
        dak.from_awkward(y, npartitions=2),
    )
    assert lazy.compute().tolist() == got.tolist()


def _rejected(mutate, inputs=INPUTS):
    rng = np.random.default_rng(8)
    node = network(rng, [dense(rng, 3, 2, "tanh")])
    mutate(node)
    return binning("x", [0.0, 1.0, 2.0], [1.0, node]), inputs


def _set(path: str, value):
    def mutate(node):
        *keys, last = path.split(".")
        target = node
        for key in keys:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(last) if last.isdigit() else last] = value

    return mutate


REJECTED = {
    "no activation": (lambda n: n["opaque"]["layers"][0].pop("activation"), "undefined"),
    "unknown activation": (_set("opaque.layers.0.activation", "relu6"), "not recognized"),
    "alpha missing": (_set("opaque.layers.0.activation", {"function": "elu"}), "alpha"),
    "recurrent layer": (_set("opaque.layers.0.architecture", "lstm"), "architecture"),
    "unknown layer": (_set("opaque.layers.0.architecture", "conv2d"), "not recognized"),
    "weights not divisible": (_set("opaque.layers.0.weights", [1.0] * 5), "not divisible"),
    "bias of the wrong size": (_set("opaque.layers.0.bias", [1.0]), "bias layer"),
    "not a number": (_set("opaque.layers.0.bias.0", True), "conversion"),
    "NaN weight": (_set("opaque.layers.0.weights.0", float("nan")), ""),
    "missing scale": (lambda n: n["opaque"]["inputs"][0].pop("scale"), "scale"),
    "more outputs than the network": (_set("opaque.outputs", ["u", "v", "w"]), "2 outputs"),
    "bad finalizer": (_set("finalizer.expression", "fabs(x)"), "fabs"),
    "maxout of uneven sublayers": (
        _set(
            "opaque.layers.0",
            {
                "architecture": "maxout",
                "sublayers": [
                    {"weights": [1.0] * 6, "bias": [0, 0]},
                    {"weights": [1.0] * 3, "bias": [0]},
                ],
            },
        ),
        "uneven",
    ),
    "highway without carry": (
        _set(
            "opaque.layers.0",
            {
                "architecture": "highway",
                "components": {"t": {"weights": [1.0] * 9, "bias": [0.0] * 3}},
                "activation": "linear",
            },
        ),
        "carry",
    ),
    "normalization of unequal sizes": (
        _set(
            "opaque.layers.0",
            {"architecture": "normalization", "weights": [1.0] * 3, "bias": [1.0]},
        ),
        "not equal in size",
    ),
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_rejected_at_load_like_correctionlib(case):
    mutate, message = REJECTED[case]
    data, inputs = _rejected(mutate)
    doc = document(data, inputs)
    with pytest.raises(RuntimeError, match="Failed to parse LWTNN model from 'opaque' field"):
        _core.CorrectionSet.from_string(json.dumps(doc))
    with pytest.raises(corrax.InvalidDocumentError) as info:
        corrax.CorrectionSet(doc)
    found = str(info.value)
    assert "correction 'c', at data.content[1]: Failed to parse LWTNN model" in found, found
    assert message in found, found


def test_string_inputs_are_rejected_like_correctionlib():
    data, _ = _rejected(lambda node: None)
    doc = document(data, variables(("x", REAL), ("k", INT), ("y", STRING)))
    with pytest.raises(RuntimeError, match="LWTNN cannot use string inputs"):
        _core.CorrectionSet.from_string(json.dumps(doc))
    with pytest.raises(corrax.InvalidDocumentError, match="LWTNN cannot use string inputs"):
        corrax.CorrectionSet(doc)


def test_sizes_lwtnn_does_not_check_are_rejected():
    """lwtnn accepts these and then reads past its vectors: corrax refuses them."""
    layers = {
        "normalization": {"architecture": "normalization", "weights": [1.0] * 2, "bias": [0.5] * 2},
        "highway": {
            "architecture": "highway",
            "components": {
                "t": {"weights": [1.0] * 6, "bias": [0.0] * 2},
                "carry": {"weights": [1.0] * 6, "bias": [0.0] * 2},
            },
            "activation": "linear",
        },
    }
    for kind, layer in layers.items():
        data, _ = _rejected(
            _set(
                "opaque.layers",
                [
                    layer,
                    {
                        "architecture": "dense",
                        "weights": [1.0] * 6,
                        "bias": [],
                        "activation": "linear",
                    },
                ],
            )
        )
        with pytest.raises(corrax.InvalidDocumentError, match=f"{kind} layer of size 2"):
            corrax.CorrectionSet(document(data, INPUTS))


def test_numbers_as_text_and_scalar_weights_read_like_lwtnn():
    """boost's property tree holds text: "1.5" is a number and a scalar has no items."""
    rng = np.random.default_rng(10)
    layers = [
        dense(rng, 3, 2, "linear"),
        {"architecture": "dense", "weights": 0.0, "bias": ["0.25", " 1e-1 "], "activation": "abs"},
    ]
    layers[0]["weights"][0] = str(layers[0]["weights"][0])
    doc = document(network(rng, layers), INPUTS)
    x, k, y = _inputs(rng, 200, 3)
    _compare(
        corrax.CorrectionSet(doc)["c"].evaluate(x, k, y),
        oracle_set(text(doc))["c"].evaluate(x, k, y),
    )
