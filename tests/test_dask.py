"""dask.distributed: corrections and a differentiable per-partition analysis over
dask-awkward partitions on a LocalCluster of worker processes; sums equal the
single-process result, also when a worker dies mid-run."""

from __future__ import annotations

import os
import pathlib

import awkward as ak
import hist
import jax
import numpy as np
import pytest
from documents import REAL, STRING, binning, category, document, formula, variables

import corrax
import corrax.awkward as cak
from corrax.dask import partition_sums
from corrax.jagged import Jagged

dak = pytest.importorskip("dask_awkward")


def _corrector():
    inputs = variables(("JetA", REAL), ("JetEta", REAL), ("JetPt", REAL), ("Rho", REAL))
    docs = [
        document(formula("1.1-0.5/x+0.001*y", ["JetPt", "Rho"]), inputs, name="jec"),
        document(
            binning("JetEta", [-5.0, 0.0, 5.0], [0.03, 0.05], "clamp"),
            variables(("JetEta", REAL), ("JetPt", REAL)),
            name="unc",
        ),
        document(
            formula("0.1+1.0/x", ["JetPt"]),
            variables(("JetEta", REAL), ("JetPt", REAL), ("Rho", REAL)),
            name="res",
        ),
        document(
            category("systematic", {"nom": 1.1, "up": 1.2, "down": 1.0}),
            variables(("JetEta", REAL), ("systematic", STRING)),
            name="sf",
        ),
    ]
    cset = corrax.CorrectionSet(
        {"schema_version": 2, "corrections": [d["corrections"][0] for d in docs]}
    )
    return cak.JetCorrector(cset["jec"], cset["unc"], cset["res"], cset["sf"])


def _events(n: int = 400) -> ak.Array:
    rng = np.random.default_rng(17)
    counts = rng.integers(0, 7, n)
    total = int(counts.sum())

    def jagged(values):
        return ak.unflatten(values, counts)

    jets = ak.zip(
        {
            "pt": jagged(rng.exponential(40.0, total) + 20.0),
            "eta": jagged(rng.uniform(-2.4, 2.4, total)),
            "phi": jagged(rng.uniform(-3.1, 3.1, total)),
            "mass": jagged(rng.uniform(2.0, 10.0, total)),
            "area": jagged(rng.uniform(0.4, 0.6, total)),
            "rawFactor": jagged(rng.uniform(0.0, 0.2, total)),
        }
    )
    event = np.arange(n, dtype=np.int64)
    return ak.zip({"Jet": jets, "rho": rng.uniform(5.0, 40.0, n), "event": event}, depth_limit=1)


CORRECTOR = _corrector()


def analysis(events: ak.Array) -> dict:
    """Corrected-jet histogram, Σ HT and d(Σ HT)/dθ_JES (jit path) of a chunk."""
    jax.config.update("jax_enable_x64", True)  # in the worker process too
    jets = CORRECTOR(events.Jet, events.rho, events.event)
    histogram = hist.Hist.new.Reg(20, 0, 400, name="pt").Weight()
    histogram.fill(pt=ak.flatten(jets.pt))
    flat = Jagged.from_awkward(
        ak.zip(
            {
                "pt_raw": jets.pt_raw,
                "mass_raw": jets.mass_raw,
                "eta": jets.eta,
                "area": events.Jet.area,
                "rho": ak.broadcast_arrays(events.rho, jets.pt)[0],
                "event": ak.broadcast_arrays(events.event, jets.pt)[0],
            }
        )
    )

    def total_pt(theta):
        fields = [flat[n] for n in ("pt_raw", "mass_raw", "eta", "area", "rho", "event")]
        corrected = CORRECTOR.correct_flat(*fields, jes=theta)
        return flat.sum(corrected["pt"]).sum()

    return {
        "pt": histogram,
        "ht": float(ak.sum(jets.pt)),
        "d_ht_d_jes": float(jax.jit(jax.grad(total_pt))(0.0)),
    }


def _same(result, reference):
    np.testing.assert_allclose(result["pt"].values(), reference["pt"].values(), rtol=1e-12)
    np.testing.assert_allclose(result["ht"], reference["ht"], rtol=1e-12)
    np.testing.assert_allclose(result["d_ht_d_jes"], reference["d_ht_d_jes"], rtol=1e-12)


def test_partitions_on_a_cluster_sum_to_the_single_process_result(dask_client):
    jax.config.update("jax_enable_x64", True)
    events = _events()
    reference = analysis(events)
    assert reference["d_ht_d_jes"] > 0
    lazy = dak.from_awkward(events, npartitions=5)
    _same(partition_sums(analysis, lazy).compute(), reference)
    # corrections on the partitions directly: a lazy column, equal to the eager one
    jec, jets = CORRECTOR.jec, lazy.Jet
    lazy_values = jec.evaluate(jets.area, jets.eta, jets.pt, lazy.rho).compute()
    eager_values = jec.evaluate(events.Jet.area, events.Jet.eta, events.Jet.pt, events.rho)
    assert lazy_values.tolist() == eager_values.tolist()


def _killing(marker: str):
    def run(events):
        if 150 in ak.to_list(events.event) and not pathlib.Path(marker).exists():
            pathlib.Path(marker).touch()
            os._exit(1)  # the worker process dies in the middle of the run
        return analysis(events)

    return run


def test_a_worker_killed_mid_run_does_not_change_the_result(dask_client, tmp_path):
    jax.config.update("jax_enable_x64", True)
    events = _events()
    reference = analysis(events)
    marker = tmp_path / "killed"
    total = partition_sums(_killing(str(marker)), dak.from_awkward(events, npartitions=5))
    _same(dask_client.compute(total).result(), reference)
    assert marker.exists()  # a worker did die, and its partition was retried
