"""Documents correctionlib's loader rejects are rejected when corrax loads them.

The oracle is correctionlib's C++ loader: each document here must fail to load there
too; corrax must fail at load (not at first evaluation) with an error naming the
correction and where in the document the bad node is.
"""

from __future__ import annotations

import json

import pytest
from correctionlib import _core, schemav2
from documents import INT, REAL, STRING, binning, category, document, formula, variables

import corrax

REALS = variables(("x", REAL), ("y", REAL))
STR = variables(("s", STRING), ("x", REAL))
INTS = variables(("k", INT), ("x", REAL))


def _nested(node):
    """``node`` as the second bin of a binning, to check the reported location."""
    return binning("x", [0.0, 1.0, 2.0], [1.0, node], "clamp")


CASES = {
    "unknown function": (formula("doesNotExist(2)", ["x"]), REALS, "cannot parse"),
    "TMath prefix": (formula("TMath::Exp(x)", ["x"]), REALS, "cannot parse"),
    "variable index too large": (formula("x[5]", ["x", "y"]), REALS, "Insufficient variables"),
    "negative variable index": (formula("x[-1]", ["x", "y"]), REALS, "cannot parse"),
    "non-numeric variable index": (formula("x[abc]", ["x", "y"]), REALS, "cannot parse"),
    "missing parameter": (formula("[0]+3.", ["x"]), REALS, "Insufficient parameters"),
    "binning on a string": (
        binning("s", [0.0, 1.0], [1.0]),
        STR,
        "Binning cannot use input 's' of type string",
    ),
    "multibinning on a string": (
        {
            "nodetype": "multibinning",
            "inputs": ["x", "s"],
            "edges": [[0.0, 1.0], [0.0, 1.0]],
            "content": [1.0],
            "flow": "clamp",
        },
        STR,
        "MultiBinning cannot use input 's'",
    ),
    "string key on an int input": (category("k", {"a": 1.0}), INTS, "'a' is a str"),
    "numeric string key on an int input": (category("k", {"3": 1.0}), INTS, "'3' is a str"),
    "int key on a string input": (category("s", {3: 1.0}, 2.0), STR, "3 is a int"),
    "category on a real input": (category("x", {3: 1.0}), REALS, "Category cannot use input 'x'"),
    "formula on an int input": (formula("x", ["k"]), INTS, "formula cannot use input 'k'"),
    "transform of a string": (
        {"nodetype": "transform", "input": "s", "rule": 1.0, "content": 1.0},
        STR,
        "Transform cannot use input 's'",
    ),
    "hashprng on a string": (
        {"nodetype": "hashprng", "inputs": ["s"], "distribution": "stdflat"},
        STR,
        "HashPRNG cannot use input 's'",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rejected_at_load_like_correctionlib(case):
    node, inputs, message = CASES[case]
    for data, where in [(node, "at data"), (_nested(node), "at data.content[1]")]:
        doc = document(data, inputs)
        with pytest.raises(RuntimeError):  # the oracle: correctionlib's loader
            _core.CorrectionSet.from_string(json.dumps(doc))
        for load in (
            corrax.CorrectionSet,
            lambda d: corrax.CorrectionSet.from_string(json.dumps(d)),
        ):
            with pytest.raises(corrax.InvalidDocumentError) as info:
                load(doc)
            text = str(info.value)
            assert "correction 'c'" in text and where in text and message in text, text


def test_formularef_out_of_range_is_rejected():
    generic = [{"nodetype": "formula", "expression": "x", "parser": "TFormula", "variables": ["x"]}]
    doc = document(
        {"nodetype": "formularef", "index": 3, "parameters": []}, REALS, generic_formulas=generic
    )
    with pytest.raises(IndexError):
        _core.CorrectionSet.from_string(json.dumps(doc))
    with pytest.raises(corrax.InvalidDocumentError, match="FormulaRef index 3 out of range"):
        corrax.CorrectionSet(doc)


def test_a_correction_built_alone_is_validated_too():
    doc = document(formula("doesNotExist(2)", ["x"]), REALS)
    with pytest.raises(corrax.InvalidDocumentError, match="cannot parse"):
        corrax.Correction(schemav2.Correction.model_validate(doc["corrections"][0]))
