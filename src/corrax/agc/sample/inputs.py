"""Filesets for the AGC analysis: the generated sample, the AGC's file list, or paths.

A fileset is coffea's: ``{dataset: {"files": {path: "Events"}, "metadata": {...}}}``
with metadata ``process``, ``variation``, ``norm`` (event weight per unit of
``genWeight``, or per event when ``use_genweight`` is false), ``use_genweight`` and,
on a generated nominal dataset with variations, ``variation_norms``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .samples import LUMINOSITY, PROCESSES

__all__ = ["from_agc_list", "from_generated", "from_paths"]


def _dataset(
    process: str,
    variation: str,
    files: Sequence[str],
    norm: float,
    genweight: bool,
    **extra: Any,
):
    return {
        "files": {str(f): "Events" for f in files},
        "metadata": {
            "process": process,
            "variation": variation,
            "norm": norm,
            "use_genweight": genweight,
            **extra,
        },
    }


def from_generated(folder: str | Path) -> dict[str, Any]:
    """The generated sample in ``folder`` (its ``manifest.json``), normalised to σ·L:
    ``norm = cross_section · L / Σ genWeight`` over every generated event. A nominal
    dataset whose process has variations also carries ``variation_norms``: per
    variation, its ``norm`` over the nominal's (the factor that keeps the cross
    section of a ``VariationWeight_<name>``-reweighted sample fixed)."""
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    fileset = {}
    for process, variations in manifest["samples"].items():
        norms = {
            variation: entry["cross_section"] * LUMINOSITY / entry["sum_weights"]
            for variation, entry in variations.items()
        }
        for variation, entry in variations.items():
            files = [folder / f for f in entry["files"]]
            extra = {}
            if variation == "nominal" and len(variations) > 1:
                nominal = norms["nominal"]
                extra["variation_norms"] = {
                    name: norm / nominal for name, norm in norms.items() if name != "nominal"
                }
            fileset[f"{process}__{variation}"] = _dataset(
                process, variation, files, norms[variation], True, **extra
            )
    return fileset


def from_agc_list(path: str | Path, files_per_process: int = 1) -> dict[str, Any]:
    """The AGC's ``nanoaod_inputs.json`` (process → variation → files with ``nevts``),
    normalised as the AGC does: ``σ · L / Σ nevts`` of the files read, no genWeight."""
    listing = json.loads(Path(path).read_text())
    fileset = {}
    for process, variations in listing.items():
        for variation, entry in variations.items():
            files = entry["files"][:files_per_process]
            events = sum(f["nevts"] for f in files)
            norm = PROCESSES[process].cross_section * LUMINOSITY / events
            paths = [f["path"] for f in files]
            fileset[f"{process}__{variation}"] = _dataset(process, variation, paths, norm, False)
    return fileset


def from_paths(
    paths: Sequence[str | Path], process: str = "ttbar", variation: str = "nominal"
) -> dict[str, Any]:
    """Any NanoAOD files, as one unnormalised dataset (weight = genWeight, or 1)."""
    return {
        f"{process}__{variation}": _dataset(process, variation, list(map(str, paths)), 1.0, True)
    }
