"""The summary of ``python -m corrax.agc``: yields, fit results, the optimisation's
result, as tables (``markdown``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..definition import REGIONS
from ..model import SAMPLES

__all__ = ["markdown", "validation", "yields"]

# the targets of the validation: within this factor of the AGC, or within 2σ of it
TARGET_FACTOR = 1.3
TARGET_SIGMAS = 2.0
TARGET_M_BJJ_MODE = (165.0, 185.0)  # GeV, the mode's peak (``_mode``)
TARGET_VARIATION_NOISE = 0.03  # relative MC noise of a ttbar variation's effect


def yields(histograms: dict[str, Any], reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nominal yields per region and process (sum of the 25 bins), ± MC statistics,
    the effective number of MC events (Σw)²/Σw², and the AGC reference and ratio when
    given, with ``within_target``: the ratio within ×1.3 or the yield within 2σ of
    our MC statistics."""
    table: dict[str, Any] = {}
    for region in REGIONS:
        h = histograms[region]
        table[region] = {}
        for process in SAMPLES:
            if process not in h.axes["process"]:
                continue
            view = h[:, process, "nominal"]
            value, variance = float(view.values().sum()), float(view.variances().sum())
            entry = {
                "yield": value,
                "stat": float(np.sqrt(variance)),
                "effective_events": value**2 / variance if variance > 0 else 0.0,
            }
            key = f"{region}_{process}"
            if reference is not None and key in reference:
                entry["agc"] = float(np.sum(reference[key]["contents"][1:-1]))
                entry["ratio"] = entry["yield"] / entry["agc"]
                entry["within_target"] = bool(
                    1 / TARGET_FACTOR <= entry["ratio"] <= TARGET_FACTOR
                    or abs(entry["yield"] - entry["agc"]) <= TARGET_SIGMAS * entry["stat"]
                )
            table[region][process] = entry
    return table


def _mode(centres: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """The fullest bin's centre and the peak of the parabola through it and its two
    neighbours (GeV; finer than the 20 GeV bins)."""
    i = int(np.argmax(values))
    result = {"bin": float(centres[i]), "peak": float(centres[i])}
    if 0 < i < len(values) - 1:
        left, middle, right = values[i - 1 : i + 2]
        curvature = left - 2 * middle + right
        if curvature < 0:
            width = centres[1] - centres[0]
            result["peak"] = float(centres[i] + 0.5 * width * (left - right) / curvature)
    return result


def validation(
    histograms: dict[str, Any],
    reference: dict[str, Any] | None = None,
    cutflow: dict[str, dict[str, float]] | None = None,
    variations: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The sample against the AGC: ``yields`` (see ``yields``), per process the
    4j2b/4j1b ratio ± MC statistics (and the AGC's), ttbar's m_bjj mode in 4j2b
    (``_mode``, GeV; and the AGC's), the ``cutflow`` (weighted events per selection
    step and process, from ``Analysis.selection_report``) and, from its
    ``variations`` sums, each ttbar variation's relative effect on the yield per
    region (``shift``: (variation − nominal)/nominal of the histograms' yields;
    ``shift_with_flow``: the same from the weights, outside the histograms' range too) and
    that effect's relative MC noise (``noise``: √Σg²(w − 1)² / Σg over the region's
    events, the variation datasets being the nominal events reweighted)."""
    table = yields(histograms, reference)
    ratios = {}
    for process, two_b in table["4j2b"].items():
        one_b = table["4j1b"].get(process)
        if one_b is None or one_b["yield"] <= 0 or two_b["yield"] <= 0:
            continue
        ratio = two_b["yield"] / one_b["yield"]
        relative = np.hypot(two_b["stat"] / two_b["yield"], one_b["stat"] / one_b["yield"])
        entry = {"ratio": ratio, "stat": float(ratio * relative)}
        if "agc" in two_b and "agc" in one_b:
            entry["agc"] = two_b["agc"] / one_b["agc"]
            entry["ratio_to_agc"] = ratio / entry["agc"]
            entry["within_target"] = bool(
                1 / TARGET_FACTOR <= entry["ratio_to_agc"] <= TARGET_FACTOR
            )
        ratios[process] = entry
    h = histograms["4j2b"]
    centres = h.axes["observable"].centers
    mode = {"ours": _mode(centres, h[:, "ttbar", "nominal"].values())}
    if reference is not None and "4j2b_ttbar" in reference:
        mode["agc"] = _mode(centres, np.asarray(reference["4j2b_ttbar"]["contents"][1:-1]))
    low, high = TARGET_M_BJJ_MODE
    mode["within_target"] = bool(low <= mode["ours"]["peak"] <= high)
    effects = {}  # each ttbar variation's effect on the yield, and that effect's MC noise
    for name, regions in ((variations or {}).get("ttbar") or {}).items():
        for region, sums in regions.items():
            view = histograms[region][:, "ttbar", :]
            nominal = float(view[:, "nominal"].values().sum())
            if sums["nominal"] > 0 and nominal > 0 and name in view.axes["variation"]:
                noise = float(np.sqrt(sums["variance"])) / sums["nominal"]
                effects.setdefault(name, {})[region] = {
                    "shift": float(view[:, name].values().sum()) / nominal - 1.0,
                    "shift_with_flow": sums["shift"] / sums["nominal"],
                    "noise": noise,
                    "within_target": noise < TARGET_VARIATION_NOISE,
                }
    return {
        "targets": {
            "yield": f"ratio within ×{TARGET_FACTOR} or within {TARGET_SIGMAS:g}σ (MC stat)",
            "ratio_4j2b_4j1b": f"within ×{TARGET_FACTOR} of the AGC's",
            "ttbar_m_bjj_mode": f"{low:g}–{high:g} GeV",
            "ttbar_variations": f"MC noise of each effect below {TARGET_VARIATION_NOISE:.0%}",
        },
        "yields": table,
        "ratio_4j2b_4j1b": ratios,
        "ttbar_m_bjj_mode": mode,
        "ttbar_variations": effects,
        "cutflow": cutflow or {},
    }


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


def _validation(result: dict[str, Any]) -> list[str]:
    lines = ["## Validation against the AGC", ""]
    lines += [
        "| region | process | yield | MC stat | effective MC events | AGC | ratio | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for region, rows in result["yields"].items():
        for process, e in rows.items():
            agc = f"{e['agc']:.0f}" if "agc" in e else ""
            ratio = f"{e['ratio']:.2f}" if "ratio" in e else ""
            target = {True: "yes", False: "no"}.get(e.get("within_target"), "")
            lines.append(
                f"| {region} | {process} | {e['yield']:.0f} | {e['stat']:.0f} | "
                f"{e['effective_events']:.0f} | {agc} | {ratio} | {target} |"
            )
    lines += ["", "| process | 4j2b/4j1b | AGC | ratio | target |", "|---|---|---|---|---|"]
    for process, e in result["ratio_4j2b_4j1b"].items():
        agc = f"{e['agc']:.2f}" if "agc" in e else ""
        ratio = f"{e['ratio_to_agc']:.2f}" if "ratio_to_agc" in e else ""
        target = {True: "yes", False: "no"}.get(e.get("within_target"), "")
        lines.append(
            f"| {process} | {e['ratio']:.2f} ± {e['stat']:.2f} | {agc} | {ratio} | {target} |"
        )
    mode = result["ttbar_m_bjj_mode"]
    agc = ""
    if "agc" in mode:
        agc = f" (AGC: {mode['agc']['bin']:.0f} GeV, peak {mode['agc']['peak']:.0f} GeV)"
    verdict = "within" if mode["within_target"] else "outside"
    lines.append(
        f"\nttbar m_bjj mode in 4j2b: the {mode['ours']['bin']:.0f} GeV bin, peak "
        f"{mode['ours']['peak']:.0f} GeV{agc}; {verdict} {result['targets']['ttbar_m_bjj_mode']}."
    )
    effects = result.get("ttbar_variations", {})
    if effects:
        lines += [
            "",
            "| ttbar variation | region | effect on the yield | MC noise | target |",
            "|---|---|---|---|---|",
        ]
        for name, regions in effects.items():
            for region, e in regions.items():
                target = "yes" if e["within_target"] else "no"
                lines.append(
                    f"| {name} | {region} | {e['shift']:+.1%} | {e['noise']:.1%} | {target} |"
                )
    if result["cutflow"]:
        steps = list(next(iter(result["cutflow"].values())))
        lines += ["", "| process | " + " | ".join(steps) + " |", "|---" * (len(steps) + 1) + "|"]
        for process, flow in result["cutflow"].items():
            lines.append(f"| {process} | " + " | ".join(f"{flow[s]:.0f}" for s in steps) + " |")
    return lines


def markdown(summary: dict[str, Any]) -> str:
    lines = ["# AGC analysis with corrax", ""]
    lines += _validation(summary["validation"])
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
                name = r.get("library", lib)  # pyhf's says which Minuit strategy converged
                lines.append(f"| {name} | {r['ttbar_norm']:.5f} | {r['uncertainty']:.5f} |")
    if "optimisation" in summary:
        lines += _optimisation(summary["optimisation"])
    lines += [
        "",
        "Timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in summary["timings"].items()),
    ]
    return "\n".join(lines) + "\n"
