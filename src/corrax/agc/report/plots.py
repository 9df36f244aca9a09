"""Plots of the AGC analysis (matplotlib + mplhep, CMS style).

* ``stacked``: per-process stacked histograms with the pseudodata, both regions;
* ``versus_reference``: our per-process distributions against the AGC reference
  histograms (same binning, full-luminosity normalisation).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..definition import REGIONS

__all__ = ["before_after", "gradient_check", "stacked", "trajectory", "versus_reference"]

PROCESS_LABELS = {
    "ttbar": r"$t\bar{t}$",
    "wjets": "W+jets",
    "single_top_tW": "tW",
    "single_top_t_chan": "t-channel",
    "single_top_s_chan": "s-channel",
}
OBSERVABLES = {"4j1b": r"$H_T$ [GeV]", "4j2b": r"$m_{bjj}$ [GeV]"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.CMS)
    return plt


def _pseudodata(h: Any) -> np.ndarray:
    return (h[:, "ttbar", "ME_var"].values() + h[:, "ttbar", "PS_var"].values()) / 2 + h[
        :, "wjets", "nominal"
    ].values()


def stacked(histograms: Mapping[str, Any], path: str | Path, title: str = "") -> Path:
    """Stacked nominal histograms per process and the pseudodata, both regions."""
    import mplhep

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(18, 8))
    for ax, region in zip(axes, REGIONS, strict=True):
        h = histograms[region]
        processes = [p for p in reversed(PROCESS_LABELS) if p in h.axes["process"]]
        mplhep.histplot(
            [h[:, p, "nominal"] for p in processes],
            stack=True,
            histtype="fill",
            label=[PROCESS_LABELS[p] for p in processes],
            ax=ax,
        )
        edges = h.axes[0].edges
        centres = 0.5 * (edges[1:] + edges[:-1])
        data = _pseudodata(h)
        ax.errorbar(centres, data, yerr=np.sqrt(np.abs(data)), fmt="ko", label="pseudodata")
        ax.set_xlabel(OBSERVABLES[region])
        ax.set_ylabel("events / 20 GeV")
        ax.set_title(f"{region} {title}".strip(), fontsize=18)
        ax.legend(fontsize=14)
    path = Path(path)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


def versus_reference(
    histograms: Mapping[str, Any], reference: str | Path | Mapping[str, Any], path: str | Path
) -> Path:
    """Our nominal distributions (solid) against the AGC reference (dashed), per process."""
    plt = _pyplot()
    if not isinstance(reference, Mapping):
        reference = json.loads(Path(reference).read_text())
    fig, axes = plt.subplots(1, 2, figsize=(18, 8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, region in zip(axes, REGIONS, strict=True):
        h = histograms[region]
        edges = h.axes[0].edges
        for colour, (process, label) in zip(colours, PROCESS_LABELS.items(), strict=False):
            key = f"{region}_{process}"
            if process not in h.axes["process"] or key not in reference:
                continue
            ours = h[:, process, "nominal"].values()
            theirs = np.asarray(reference[key]["contents"][1:-1])
            ax.stairs(ours, edges, color=colour, label=f"{label} (corrax sample)", linewidth=2)
            ax.stairs(theirs, edges, color=colour, linestyle="--", label=f"{label} (AGC)")
        ax.set_yscale("log")
        ax.set_xlabel(OBSERVABLES[region])
        ax.set_ylabel("events / 20 GeV")
        ax.set_title(f"{region}: generated sample vs AGC reference", fontsize=18)
        ax.legend(fontsize=11, ncol=2)
    path = Path(path)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


def gradient_check(check: Mapping[str, Mapping[str, float]], path: str | Path) -> Path:
    """Autodiff gradient vs central finite difference, per analysis parameter."""
    plt = _pyplot()
    names = list(check)
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 6))
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        entry = check[name]
        ax.bar(
            ["autodiff", "finite diff."],
            [entry["autodiff"], entry["finite_difference"]],
            color=["C0", "C1"],
        )
        ax.set_title(f"d σ(μ)/d {name}\nrelative difference {entry['relative']:.1e}", fontsize=16)
        ax.axhline(0, color="k", linewidth=0.8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def trajectory(steps: list[Mapping[str, float]], path: str | Path) -> Path:
    """The objective and the thresholds at each optimisation step."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(24, 6))
    x = np.arange(len(steps))
    for ax, key, label in zip(
        axes,
        ("objective", "lepton_pt", "jet_pt", "btag"),
        ("expected σ(ttbar_norm)", "lepton pt cut [GeV]", "jet pt cut [GeV]", "b-tag cut"),
        strict=True,
    ):
        ax.plot(x, [s[key] for s in steps], marker="o")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def before_after(replicas: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Held-out expected σ(ttbar_norm) with the AGC's default and the optimised hard
    cuts, one pair of bars per replica (``{"label", "default", "optimised"}``)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(7, 3.5 * len(replicas)), 6))
    for i, replica in enumerate(replicas):
        for offset, key, colour in ((-0.2, "default", "C0"), (0.2, "optimised", "C2")):
            value = replica[key]
            if not isinstance(value, float):
                continue  # not computable: said so in the summary
            ax.bar(i + offset, value, width=0.38, color=colour, label=key if i == 0 else None)
            ax.text(i + offset, value, f"{value:.4g}", ha="center", va="bottom", fontsize=13)
    ax.set_xticks(range(len(replicas)), [r["label"] for r in replicas])
    ax.set_ylabel("expected σ(ttbar_norm), Asimov")
    ax.set_title("hard cuts on held-out events", fontsize=16)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
