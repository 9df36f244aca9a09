"""``python -m corrax.demo [FILE]``: load a correction, evaluate it, jit it, differentiate it.

Given the CMS JEC file (``JME__2018_UL__jet_jerc.json.gz``) as FILE it runs the real
L1L2L3Res compound. Without FILE it runs an embedded JEC-like document of the same
structure (an eta binning of per-bin pt formulas, chained like L1 → L2 → L3).
Values are compared with correctionlib, which computes the same in C++.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

import correctionlib
import jax
import jax.numpy as jnp
import numpy as np

import corrax

JEC_COMPOUND = "Summer19UL18_V5_MC_L1L2L3Res_AK4PFchs"


def embedded_document() -> dict:
    """A small JEC-like correction set: per-eta-bin formulas, chained by a compound."""
    inputs = [{"name": "JetEta", "type": "real"}, {"name": "JetPt", "type": "real"}]
    generic = [
        {
            "nodetype": "formula",
            "expression": "[0]+[1]/(pow(log10(x),2)+[2])",
            "parser": "TFormula",
            "variables": ["JetPt"],
        }
    ]
    eta_edges = [-5.0, -3.0, -1.5, 0.0, 1.5, 3.0, 5.0]

    def level(name: str, scale: float) -> dict:
        refs = [
            {
                "nodetype": "formularef",
                "index": 0,
                "parameters": [1.0 + scale * i, 0.8 * scale, 2.0 + 0.1 * i],
            }
            for i in range(len(eta_edges) - 1)
        ]
        return {
            "name": name,
            "version": 1,
            "inputs": inputs,
            "generic_formulas": generic,
            "output": {"name": "factor", "type": "real"},
            "data": {
                "nodetype": "binning",
                "input": "JetEta",
                "edges": eta_edges,
                "content": refs,
                "flow": "clamp",
            },
        }

    corrections = [level("L1", 0.01), level("L2", 0.02), level("L3", -0.005)]
    compound = {
        "name": "L1L2L3",
        "inputs": inputs,
        "output": {"name": "f", "type": "real"},
        "inputs_update": ["JetPt"],
        "input_op": "*",
        "output_op": "*",
        "stack": ["L1", "L2", "L3"],
    }
    return {"schema_version": 2, "corrections": corrections, "compound_corrections": [compound]}


def main(argv: list[str]) -> int:
    jax.config.update("jax_enable_x64", True)  # the demo's choice: correctionlib's precision
    path = pathlib.Path(argv[0]) if argv else None
    rng = np.random.default_rng(42)
    n = 100_000
    eta, pt = rng.uniform(-4.7, 4.7, n), rng.exponential(60.0, n) + 15.0
    if path is not None:
        print(f"Reading {path}")
        cset, reference = (
            corrax.CorrectionSet.from_file(path),
            correctionlib.CorrectionSet.from_file(str(path)),
        )
        name = JEC_COMPOUND
        area, rho = rng.uniform(0.3, 0.7, n), rng.uniform(0.0, 40.0, n)
        args: tuple = (area, eta, pt, rho)
        pt_position = 2
    else:
        print("No file given: using the embedded JEC-like document")
        document = embedded_document()
        cset = corrax.CorrectionSet(document)
        reference = correctionlib.CorrectionSet.from_string(json.dumps(document))
        name, args, pt_position = "L1L2L3", (eta, pt), 1
    compound = cset.compound[name]
    print(f"{compound!r}\n  stack: {[c.name for c in compound.stack]}")

    factor = compound.evaluate(*args)
    expected = reference.compound[name].evaluate(*args)
    print(f"\n{n} jets: factor[:4] = {np.asarray(factor[:4])}")
    print(
        f"max |corrax - correctionlib| / correctionlib = "
        f"{np.max(np.abs(np.asarray(factor) - expected) / np.abs(expected)):.2e}"
    )

    def corrected_pt(pt_raw, jets=slice(None)):
        full = [a[jets] for a in args]
        full[pt_position] = pt_raw
        return pt_raw * compound.evaluate(*full)

    start = time.perf_counter()
    jitted = jax.jit(corrected_pt)
    jitted(jnp.asarray(pt)).block_until_ready()
    first = time.perf_counter() - start
    start = time.perf_counter()
    jitted(jnp.asarray(pt)).block_until_ready()
    print(
        f"\njit: first call (trace + compile) {first:.2f} s, then {1e3 * (time.perf_counter() - start):.1f} ms"
    )

    grad = jax.jit(jax.grad(lambda p: corrected_pt(p).sum()))(jnp.asarray(pt))
    first_jets = jnp.asarray(pt[:4])
    numeric = []
    for i in range(4):
        step = 1e-6 * float(pt[i]) * np.eye(4)[i]
        up = corrected_pt(first_jets + step, slice(0, 4)).sum()
        down = corrected_pt(first_jets - step, slice(0, 4)).sum()
        numeric.append(float(up - down) / (2e-6 * float(pt[i])))
    print("d(corrected pt)/d(raw pt), first 4 jets:")
    print(f"  jax.grad            {np.asarray(grad[:4])}")
    print(f"  finite differences  {np.asarray(numeric)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
