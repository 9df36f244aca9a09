"""The hard AGC analysis as a coffea processor, and running it on a fileset.

``run(fileset, analysis, executor=...)`` processes a fileset (``corrax.agc.sample.inputs``)
with coffea's ``Runner`` and NanoAOD schema: ``executor`` is ``"iterative"``,
``"futures"`` (local processes) or a dask scheduler address (``"tcp://host:8786"``),
or any coffea executor object. Returns ``{"4j1b": Hist, "4j2b": Hist, "events": n,
"cutflow": {process: {step: weighted events}}, "variations": {process: {variation:
{region: sums}}}}`` (``Analysis.selection_report``, nominal samples; ``variations``
where the files carry variation weights).
"""

from __future__ import annotations

from typing import Any

from coffea import processor
from coffea.nanoevents import NanoAODSchema

from ..._inputs import x64_scope
from .analysis import Analysis

__all__ = ["AGCProcessor", "run"]


class AGCProcessor(processor.ProcessorABC):
    """Fills the AGC histograms of one chunk (see ``corrax.agc.hard.analysis``)."""

    def __init__(self, analysis: Analysis):
        self.analysis = analysis

    def process(self, events: Any) -> dict[str, Any]:
        # workers start with JAX's defaults (float32): 64 bits in this scope only
        with x64_scope():
            return self._process(events)

    def _process(self, events: Any) -> dict[str, Any]:
        meta = events.metadata
        nominal = meta["variation"] == "nominal"
        histograms, report = self.analysis.process_chunk(
            events,
            meta["process"],
            meta["variation"],
            meta["norm"],
            use_genweight=meta.get("use_genweight", True),
            report=nominal,
            variation_norms=meta.get("variation_norms"),
        )
        output = {**histograms, "events": len(events)}
        if report is not None:
            output["cutflow"] = {meta["process"]: report["cutflow"]}
            if "variations" in report:
                output["variations"] = {meta["process"]: report["variations"]}
        return output

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return accumulator


def executor_for(executor: Any, workers: int = 2) -> Any:
    """A coffea executor from a name or a dask scheduler address."""
    if not isinstance(executor, str):
        return executor
    if executor == "iterative":
        return processor.IterativeExecutor(status=False)
    if executor == "futures":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawned, not forked: the parent may already run JAX threads
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        return processor.FuturesExecutor(pool=pool, workers=workers, status=False)
    if "://" in executor:
        from distributed import Client

        return processor.DaskExecutor(client=Client(executor), status=False)
    raise ValueError(f"unknown executor {executor!r}: iterative, futures or a scheduler address")


def run(
    fileset: dict[str, Any],
    analysis: Analysis,
    executor: Any = "iterative",
    workers: int = 2,
    chunksize: int = 50_000,
) -> dict[str, Any]:
    """The AGC histograms of ``fileset`` (see the module docstring). A worker pool or
    dask client made here from a name or an address is closed afterwards."""
    made = executor_for(executor, workers)
    try:
        runner = processor.Runner(
            executor=made, schema=NanoAODSchema, chunksize=chunksize, savemetrics=False
        )
        return runner(fileset, processor_instance=AGCProcessor(analysis), treename="Events")
    finally:
        if made is not executor:
            _close(made)


def _close(executor: Any) -> None:
    pool = getattr(executor, "pool", None)
    if hasattr(pool, "shutdown"):
        pool.shutdown(cancel_futures=True)  # after an error: no queued chunk runs
    client = getattr(executor, "client", None)
    if client is not None:
        client.close()  # a remote scheduler keeps running: only this connection ends
