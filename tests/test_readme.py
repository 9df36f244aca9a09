"""The README's Python snippets run as written, and give correctionlib's values."""

from __future__ import annotations

import json
import pathlib
import re

import awkward as ak
import correctionlib
import numpy as np
import pytest
from conftest import CORRECTIONS_DIR

import corrax

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
FILES = ("JME__2018_UL__jet_jerc.json.gz", "MUO__2018_UL__muon_Z.json.gz")
NANOAOD = CORRECTIONS_DIR.parent / "nanoaod" / "nano_dy.root"


def test_readme_snippets_run_and_agree_with_correctionlib(tmp_path, monkeypatch, capsys):
    for name in FILES:
        if not (CORRECTIONS_DIR / name).exists():
            pytest.skip(f"{CORRECTIONS_DIR / name} not found: the README example reads it")
        (tmp_path / name).symlink_to(CORRECTIONS_DIR / name)
    if not NANOAOD.exists():
        pytest.skip(f"{NANOAOD} not found: the README example reads it")
    (tmp_path / NANOAOD.name).symlink_to(NANOAOD)
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - the point
    printed = capsys.readouterr().out
    assert "input 'abseta' = 2.6 is above" in printed  # raise_for_errors explained it
    assert np.isnan(namespace["weight"])

    jec = correctionlib.CorrectionSet.from_file(FILES[0]).compound[
        "Summer19UL18_V5_MC_L1L2L3Res_AK4PFchs"
    ]
    ns = namespace
    want = jec.evaluate(ns["area"], ns["eta"], ns["raw_pt"], ns["rho"])
    np.testing.assert_allclose(ns["factor"], want, rtol=1e-12)
    step = 1e-4
    numeric = [
        (
            (ns["raw_pt"] + step * e)
            * jec.evaluate(ns["area"], ns["eta"], ns["raw_pt"] + step * e, ns["rho"])
            - (ns["raw_pt"] - step * e)
            * jec.evaluate(ns["area"], ns["eta"], ns["raw_pt"] - step * e, ns["rho"])
        ).sum()
        / (2 * step)
        for e in np.eye(3)
    ]
    np.testing.assert_allclose(ns["dpt"], numeric, rtol=1e-6)
    muon = correctionlib.CorrectionSet.from_file(FILES[1])["NUM_TightID_DEN_TrackerMuons"]
    want = muon.evaluate("2018_UL", np.array([0.3, 1.7]), np.array([35.0, 60.0]), "sf")
    np.testing.assert_array_equal(ns["weights"], want)
    assert isinstance(ns["lowered"], corrax.LoweredCorrection)
    # the lwtnn snippet: correctionlib's values before, a lower loss after fine-tuning
    nn = correctionlib.CorrectionSet.from_string(json.dumps(ns["nn_doc"]))["nn_sf"]
    nn_inputs = (np.asarray(ns["nn_pt"]), np.asarray(ns["nn_eta"]))
    np.testing.assert_allclose(
        ns["nn_sf"].evaluate(*nn_inputs), nn.evaluate(*nn_inputs), rtol=1e-14
    )
    assert ns["nn_loss"](ns["tuned"]) < 0.1 * ns["nn_loss"](ns["nn_sf"].bind())
    # the NanoAOD snippet: jagged values equal correctionlib's on the same jets
    events = ns["events"]
    jets = events.Jet
    raw = jets.pt * (1 - jets.rawFactor)
    want = jec.evaluate(jets.area, jets.eta, raw, events.fixedGridRhoFastjetAll)
    np.testing.assert_allclose(ak.flatten(ns["jec_factor"]), ak.flatten(want), rtol=1e-12)
    assert ak.all(ns["muon_weight"] > 0.9) and len(ns["muon_weight"]) == len(events)
    assert ak.all(ns["corrected"].pt > 0) and ns["dijet_mass"].type.length == len(events)
    up = ns["corrector"](jets, events.fixedGridRhoFastjetAll, events.event, ns["pt_gen"], jes=1.0)
    np.testing.assert_array_equal(ak.flatten(ns["jes_up_pt"]), ak.flatten(up.pt))
    # the jit-path snippet: the highest-pt trijet's mass, as awkward + vector give it
    first = ak.values_astype(ns["corrected"][:, :6], np.float64)  # NanoAOD's eta is float32
    triples = ak.combinations(first, 3, fields=["a", "b", "c"])
    total = triples.a + triples.b + triples.c
    best = ak.argmax(total.pt, axis=1, keepdims=True)
    want = ak.to_numpy(ak.fill_none(ak.flatten(total.mass[best], axis=1), 0.0))
    np.testing.assert_allclose(ns["masses"], want, rtol=1e-10, atol=1e-9)
    assert np.any(want > 0)
