"""Small hand-written correctionlib documents covering every node type and flow."""

from __future__ import annotations

import itertools
import json
from typing import Any

REAL = "real"
INT = "int"
STRING = "string"


def variables(*specs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "type": kind} for name, kind in specs]


def document(
    data: Any,
    inputs: list[dict[str, str]],
    name: str = "c",
    generic_formulas: list[dict] | None = None,
    extra: list[dict] | None = None,
    compound: list[dict] | None = None,
) -> dict[str, Any]:
    correction: dict[str, Any] = {
        "name": name,
        "version": 1,
        "inputs": inputs,
        "output": {"name": "out", "type": "real"},
        "data": data,
    }
    if generic_formulas:
        correction["generic_formulas"] = generic_formulas
    doc: dict[str, Any] = {"schema_version": 2, "corrections": [correction, *(extra or [])]}
    if compound:
        doc["compound_corrections"] = compound
    return doc


def correction(name: str, data: Any, inputs: list[dict[str, str]]) -> dict[str, Any]:
    """One more correction for ``document(..., extra=[...])``."""
    return {
        "name": name,
        "version": 1,
        "inputs": inputs,
        "output": {"name": "o", "type": "real"},
        "data": data,
    }


def compound(
    name: str,
    inputs: list[dict[str, str]],
    stack: list[str],
    input_op: str = "*",
    output_op: str = "*",
    update: tuple[str, ...] = ("x",),
) -> dict[str, Any]:
    """A CompoundCorrection for ``document(..., compound=[...])``."""
    return {
        "name": name,
        "inputs": inputs,
        "output": {"name": "o", "type": "real"},
        "inputs_update": list(update),
        "input_op": input_op,
        "output_op": output_op,
        "stack": stack,
    }


def text(doc: dict[str, Any]) -> str:
    return json.dumps(doc)


def formula(expression: str, variables: list[str], parameters: list[float] | None = None):
    node = {
        "nodetype": "formula",
        "expression": expression,
        "parser": "TFormula",
        "variables": variables,
    }
    if parameters is not None:
        node["parameters"] = parameters
    return node


def binning(input_name: str, edges, content: list, flow: Any = "clamp") -> dict[str, Any]:
    return {
        "nodetype": "binning",
        "input": input_name,
        "edges": edges,
        "content": content,
        "flow": flow,
    }


def uniform(n: int, low: float, high: float) -> dict[str, Any]:
    return {"n": n, "low": low, "high": high}


def multibinning(inputs: list[str], edges: list, content: list, flow: Any = "clamp"):
    return {
        "nodetype": "multibinning",
        "inputs": inputs,
        "edges": edges,
        "content": content,
        "flow": flow,
    }


def category(input_name: str, mapping: dict, default: Any = None) -> dict[str, Any]:
    node = {
        "nodetype": "category",
        "input": input_name,
        "content": [{"key": k, "value": v} for k, v in mapping.items()],
    }
    if default is not None:
        node["default"] = default
    return node


FLOWS = ["clamp", "error", "wrap", 2.5, formula("x*x", ["x"])]


def lwtnn(
    inputs: list[tuple[str, float, float]],
    layers: list[dict],
    outputs: list[str],
    expression: str,
    variables: list[str],
    parameters: list[float] | None = None,
) -> dict[str, Any]:
    """An lwtnn node, built with correctionlib's schema models: network inputs as
    (name, offset, scale), lwtnn layer dicts, output names and the finalizer."""
    from correctionlib import schemav2

    opaque = schemav2.LWTNNSchema(
        inputs=[schemav2.LWTNNInput(name=n, offset=o, scale=s) for n, o, s in inputs],
        outputs=outputs,
        layers=layers,
    )
    finalizer = schemav2.Formula.model_validate(formula(expression, variables, parameters))
    node = schemav2.LWTNN(nodetype="lwtnn", opaque=opaque, finalizer=finalizer)
    return node.model_dump(mode="json", exclude_unset=True)


LWTNN_ACTIVATIONS = [
    "linear",
    "sigmoid",
    "rectified",
    "softmax",
    "tanh",
    "hard_sigmoid",
    "elu",
    "abs",
    {"function": "leakyrelu", "alpha": 0.1},
    {"function": "swish", "alpha": 0.8},
]


def random_lwtnn(seed: int, inputs: tuple[str, ...] = ("y", "k", "x")) -> dict[str, Any]:
    """A small random lwtnn node (one or two dense layers) on ``inputs``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    widths = [len(inputs), *rng.integers(1, 4, size=rng.integers(1, 3))]
    layers = []
    for n_in, n_out in itertools.pairwise(widths):
        activation = LWTNN_ACTIVATIONS[rng.integers(len(LWTNN_ACTIVATIONS))]
        layers.append(
            {
                "architecture": "dense",
                "weights": [float(w) for w in rng.normal(0, 0.5, n_in * n_out)],
                "bias": [float(b) for b in rng.normal(0, 1, n_out)],
                "activation": activation,
            }
        )
    spec = [(name, float(rng.normal()), float(rng.uniform(0.1, 1.0))) for name in inputs]
    outputs = [f"o{i}" for i in range(widths[-1])]
    return lwtnn(spec, layers, outputs, "x*[0]+1", outputs[:1], [float(rng.normal())])
