"""The summary of ``python -m corrax.agc``: yields, fit results, the optimisation's
result, as tables (``markdown``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..definition import REGIONS
from ..model import SAMPLES

__all__ = ["markdown", "yields"]


def yields(histograms: dict[str, Any], reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nominal yields per region and process (sum of the 25 bins), ± MC statistics,
    and the AGC reference and ratio when given."""
    table: dict[str, Any] = {}
    for region in REGIONS:
        h = histograms[region]
        table[region] = {}
        for process in SAMPLES:
            if process not in h.axes["process"]:
                continue
            view = h[:, process, "nominal"]
            entry = {
                "yield": float(view.values().sum()),
                "stat": float(np.sqrt(view.variances().sum())),
            }
            key = f"{region}_{process}"
            if reference is not None and key in reference:
                entry["agc"] = float(np.sum(reference[key]["contents"][1:-1]))
                entry["ratio"] = entry["yield"] / entry["agc"]
            table[region][process] = entry
    return table


def _number(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else f"not computed ({value})"


def _optimisation(result: dict[str, Any]) -> list[str]:
    lines = ["", f"Figure of merit: {result['figure_of_merit']}.", ""]
    lines += ["| threshold | default | optimised (per replica) |", "|---|---|---|"]
    for name, entry in result["default_thresholds"].items():
        optimised = ", ".join(
            f"{r[name]['value']:g}" + (" (at bound)" if r[name]["at_bound"] else "")
            for r in result["optimised_thresholds"]
        )
        lines.append(f"| {name} | {entry['value']:g} | {optimised} |")
    lines += ["", "| replica | held-out σ default | held-out σ optimised |", "|---|---|---|"]
    for r in result["held_out_sigma"]:
        lines.append(f"| {r['label']} | {_number(r['default'])} | {_number(r['optimised'])} |")
    if result.get("spread") is not None:
        verdict = "exceeds" if result["significant"] else "does not exceed"
        lines.append(
            f"\nMean relative change {result['mean_relative_change']:+.3f} ± "
            f"{result['spread']:.3f} (spread over {result['replicas']} replicas): the gain "
            f"{verdict} 3× its spread."
        )
    elif "mean_relative_change" in result:
        lines.append(
            f"\nRelative change {result['mean_relative_change']:+.3f} (one replica: no error "
            "bar; `--replicas 6` gives the spread over six)"
        )
    lines.append(f"\npyhf's σ for the default cuts: {_number(result['pyhf_sigma_default'])}")
    return lines


def markdown(summary: dict[str, Any]) -> str:
    lines = ["# AGC analysis with corrax", ""]
    lines += ["| region | process | yield | MC stat | AGC | ratio |", "|---|---|---|---|---|---|"]
    for region, rows in summary["yields"].items():
        for process, e in rows.items():
            agc = f"{e['agc']:.0f}" if "agc" in e else ""
            ratio = f"{e['ratio']:.2f}" if "ratio" in e else ""
            lines.append(
                f"| {region} | {process} | {e['yield']:.0f} | {e['stat']:.0f} | {agc} | {ratio} |"
            )
    if "fit" in summary:
        lines += [
            "",
            "| library | ttbar_norm (fit to pseudodata) | uncertainty |",
            "|---|---|---|",
        ]
        for lib, r in summary["fit"].items():
            if "error" in r:
                lines.append(f"| {lib} | not computed: {r['error']} | |")
            else:
                lines.append(f"| {lib} | {r['ttbar_norm']:.5f} | {r['uncertainty']:.5f} |")
    if "optimisation" in summary:
        lines += _optimisation(summary["optimisation"])
    lines += [
        "",
        "Timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in summary["timings"].items()),
    ]
    return "\n".join(lines) + "\n"
