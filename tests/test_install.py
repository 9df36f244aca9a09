"""The bare package installs alone (jax, numpy and correctionlib) and evaluates a
correction; features whose extra is missing say which extra to install."""

from __future__ import annotations

import pathlib
import subprocess
import textwrap
import venv

ROOT = pathlib.Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import importlib.util, json
    import numpy as np
    import correctionlib, corrax

    document = {
        "schema_version": 2,
        "corrections": [{
            "name": "sf", "version": 1,
            "inputs": [{"name": "pt", "type": "real"}],
            "output": {"name": "w", "type": "real"},
            "data": {"nodetype": "binning", "input": "pt", "edges": [0.0, 30.0, 100.0],
                     "content": [0.9, 1.1], "flow": "clamp"},
        }],
    }
    pt = np.array([10.0, 50.0, 500.0])
    ours = np.asarray(corrax.CorrectionSet(document)["sf"].evaluate(pt))
    theirs = correctionlib.CorrectionSet.from_string(json.dumps(document))["sf"].evaluate(pt)
    assert np.array_equal(ours.astype(np.float32), theirs.astype(np.float32)), (ours, theirs)
    for module in ("awkward", "coffea", "dask", "uproot", "hist"):
        assert importlib.util.find_spec(module) is None, module
    for feature, extra in (("awkward", "awkward"), ("coffea", "coffea"), ("dask", "dask"),
                           ("agc", "agc")):
        try:
            __import__(f"corrax.{feature}")
        except ModuleNotFoundError as error:
            assert f"corrax[{extra}]" in str(error), error
        else:
            raise AssertionError(f"corrax.{feature} imported without its extra")
    print("bare install ok")
    """
)


def test_the_bare_package_installs_and_evaluates(tmp_path):
    environment = tmp_path / "bare"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    run = subprocess.run(
        [str(python), "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "bare install ok" in run.stdout
