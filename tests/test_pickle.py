"""Every public object pickles (coffea executors and dask ship them to workers).

Objects are pickled before and after use, with pickle and cloudpickle, and the
unpickled objects are evaluated in a fresh Python process against correctionlib.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import cloudpickle
import numpy as np
import pytest
from conftest import CORRECTIONS_DIR
from documents import REAL, STRING, binning, category, document, formula, text, variables

import corrax

INPUTS = variables(("syst", STRING), ("eta", REAL), ("pt", REAL))
DOC = document(
    category(
        "syst",
        {
            "nom": binning(
                "eta", [-2.5, 0.0, 2.5], [formula("[0]+[1]*x", ["pt"], [1.0, 0.01]), 1.2], "clamp"
            ),
            "up": 1.1,
            "down": 0.9,
        },
    ),
    INPUTS,
    compound=[
        {
            "name": "twice",
            "inputs": INPUTS,
            "output": {"name": "o", "type": "real"},
            "inputs_update": ["pt"],
            "input_op": "*",
            "output_op": "*",
            "stack": ["c", "c"],
        }
    ],
)
ETA, PT = [-1.0, 0.5, 2.0], [30.0, 45.0, 80.0]


def _objects(cset: corrax.CorrectionSet) -> dict[str, object]:
    corr = cset["c"]
    return {
        "set": cset,
        "correction": corr,
        "relaxed": corr.relaxed("straight_through"),
        "compound": cset.compound["twice"],
        "lowered": corr.lower("nom"),
        "bound": corr.bind("nom"),
        "lowered_compound": cset.compound["twice"].lower("nom"),
        "nuisance": corr.nuisance("syst", nominal="nom"),
        "relaxed_set": cset.relaxed("smooth", widths={"pt": 1.0}),
    }


def _use(objects: dict[str, object]) -> None:
    for name, obj in objects.items():
        if name in ("set", "relaxed_set"):
            obj["c"].evaluate("nom", ETA, PT)
        elif name in ("lowered", "bound", "lowered_compound"):
            obj.evaluate(ETA, PT)
        elif name == "nuisance":
            obj.evaluate(0.5, ETA, PT)
        else:
            obj.evaluate("nom", ETA, PT)


CHECK = textwrap.dedent(
    """
    import pickle, sys
    import correctionlib, jax, numpy as np
    jax.config.update("jax_enable_x64", True)
    objects, document = pickle.load(open(sys.argv[1], "rb"))
    reference = correctionlib.CorrectionSet.from_string(document)
    eta, pt = np.array({eta}), np.array({pt})
    want = reference["c"].evaluate("nom", eta, pt)
    for name, obj in objects.items():
        if name in ("set", "relaxed_set"):
            got = obj["c"].evaluate("nom", eta, pt)
        elif name in ("lowered", "bound"):
            got = obj.evaluate(eta, pt)
        elif name == "nuisance":
            got = obj.evaluate(0.0, eta, pt)
        elif name == "lowered_compound":
            got, want_c = obj.evaluate(eta, pt), reference.compound["twice"].evaluate("nom", eta, pt)
            assert np.allclose(got, want_c, rtol=1e-14), name
            continue
        elif name == "compound":
            got = obj.evaluate("nom", eta, pt)
            assert np.allclose(got, reference.compound["twice"].evaluate("nom", eta, pt)), name
            continue
        else:
            got = obj.evaluate("nom", eta, pt)
        assert np.allclose(got, want, rtol=1e-14), (name, got, want)
    print("checked", len(objects))
    """
).format(eta=ETA, pt=PT)


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
@pytest.mark.parametrize("used", [False, True], ids=["fresh", "used"])
def test_objects_pickle_and_evaluate_in_a_fresh_process(dumps, used, tmp_path):
    objects = _objects(corrax.CorrectionSet(DOC))
    if used:
        _use(objects)
    path = tmp_path / "objects.pkl"
    path.write_bytes(dumps((objects, text(DOC))))
    for name, obj in objects.items():  # round trip here too, object by object
        assert type(pickle.loads(dumps(obj))) is type(obj), name
    result = subprocess.run(
        [sys.executable, "-c", CHECK, str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert f"checked {len(objects)}" in result.stdout


def test_real_scale_factor_pickles_after_use():
    path = CORRECTIONS_DIR / "MUO__2018_UL__muon_Z.json.gz"
    if not path.exists():
        pytest.skip(f"{path} not found: the real CMS files live in ../shared/data beside the repo")
    corr = corrax.CorrectionSet.from_file(path)["NUM_TightID_DEN_TrackerMuons"]
    eta, pt = np.array([0.3, 1.7]), np.array([35.0, 60.0])
    before = corr.evaluate("2018_UL", eta, pt, "sf")
    clone = cloudpickle.loads(cloudpickle.dumps(corr))
    np.testing.assert_array_equal(clone.evaluate("2018_UL", eta, pt, "sf"), before)
