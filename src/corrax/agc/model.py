"""The AGC statistical model: evermore (differentiable), cross-checked with pyhf.

HistFactory-style, as the AGC's cabinetry configuration: channels 4j1b (HT) and 4j2b
(m_bjj), rebinned to 11 bins over 110–550 GeV; samples ttbar, W+jets, single top
s-, t-channel and tW; POI ``ttbar_norm`` (a free normalisation of ttbar, bounds
0–10); data = the AGC's pseudodata ((ttbar ME_var + ttbar PS_var)/2 + W+jets).

Systematics, the same in both libraries so that the fits agree:

* luminosity: ±3 % on every sample, ``κ^θ`` (evermore ``scale_log_symmetric``,
  pyhf ``normsys`` code 1);
* every template variation (jet pt scale and resolution, b-tag variations, W+jets
  scale, ttbar scale, ME and PS variations, and the real-style ones present in the
  histograms): vertical morphing with the smooth polynomial inside |θ| < 1 and linear
  extrapolation outside (evermore ``morphing``, pyhf ``histosys`` code 4p, the same
  function); one-sided variations are symmetrised, ``down = 2·nominal − up``, as
  the AGC does;
* MC statistics: one parameter γ per bin and channel multiplying every sample,
  with a Gaussian constraint of mean 1 and relative width √(Σ variance)/Σ nominal
  (pyhf ``staterror``; in evermore a ``Parameter`` scaling every sample and a
  ``Normal(1, σ)`` constraint).

``evermore_fit`` returns the maximum-likelihood ``ttbar_norm`` and its uncertainty
(inverse Hessian); ``expected_uncertainty`` the expected σ(ttbar_norm) on Asimov data
(``ttbar_norm = 1``, nuisances at 0; every nuisance profiled through the Fisher
information), the figure of merit of the optimisation. No discovery significance
is computed: ttbar is 75–95 % of every bin, so the background-only fit behind
``√q₀`` drives the normalisation nuisances to their bounds and is ill-posed.

Bins that are empty in every sample leave their MC-statistics γ without effect;
such a γ gets a unit-width constraint (it then decouples from every other
parameter, as if absent, which is what pyhf does), so small samples never give a
singular Hessian.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import evermore as evm
import jax
import jax.numpy as jnp
import numpy as np

from ..errors import PrecisionError

__all__ = [
    "FitResult",
    "Templates",
    "build_templates",
    "evermore_fit",
    "expected_uncertainty",
    "hard_figures",
    "pyhf_expected_uncertainty",
    "pyhf_fit",
]

SAMPLES = ("ttbar", "wjets", "single_top_s_chan", "single_top_t_chan", "single_top_tW")
CHANNELS = ("4j1b", "4j2b")
REBIN_FIRST, REBIN_GROUP = 3, 2  # 25 bins of 20 GeV from 50 → 11 bins of 40 GeV from 110
LUMI_KAPPA = 1.03
ONE_SIDED = ("pt_scale_up", "pt_res_up", "ME_var", "PS_var")
TTBAR_ONLY = ("ME_var", "PS_var", "scaleup")


@dataclass
class Templates:
    """Rebinned histograms: per channel, nominal and (up, down) per sample and systematic.

    ``nominal[channel][sample]``, ``variance[channel][sample]``: shape (11,);
    ``systematics[channel][sample][name] = (up, down)``; ``data[channel]``.
    """

    nominal: dict[str, dict[str, np.ndarray]]
    variance: dict[str, dict[str, np.ndarray]]
    systematics: dict[str, dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]]
    data: dict[str, np.ndarray]
    names: list[str] = field(default_factory=list)

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(110.0, 550.0, 12)


def _rebin(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)[REBIN_FIRST:]
    return values.reshape(-1, REBIN_GROUP).sum(axis=1)


def _systematic_name(variation: str) -> str | None:
    """The systematic a histogram variation belongs to (None: the nominal)."""
    if variation == "nominal":
        return None
    if variation in ("scaleup", "scaledown"):
        return "ttbar_scale"
    if variation in ONE_SIDED:
        return variation.removesuffix("_up")
    return variation.removesuffix("_up").removesuffix("_down")


def build_templates(histograms: Mapping[str, Any]) -> Templates:
    """Templates from the analysis histograms (``{"4j1b": Hist, "4j2b": Hist}``)."""
    nominal: dict[str, dict[str, np.ndarray]] = {}
    variance: dict[str, dict[str, np.ndarray]] = {}
    systematics: dict[str, dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]] = {}
    data: dict[str, np.ndarray] = {}
    names: set[str] = set()
    for channel in CHANNELS:
        h = histograms[channel]
        processes = list(h.axes["process"])
        variations = list(h.axes["variation"])

        def values(process: str, variation: str, h=h) -> np.ndarray:
            return _rebin(h[:, process, variation].values())

        nominal[channel] = {s: values(s, "nominal") for s in SAMPLES if s in processes}
        variance[channel] = {
            s: _rebin(h[:, s, "nominal"].variances()) for s in SAMPLES if s in processes
        }
        data[channel] = (values("ttbar", "ME_var") + values("ttbar", "PS_var")) / 2 + values(
            "wjets", "nominal"
        )
        systematics[channel] = {}
        for sample, nom in nominal[channel].items():
            found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for variation in variations:
                if variation in ("nominal", "scaledown") or variation.endswith("_down"):
                    continue
                if variation in TTBAR_ONLY and sample != "ttbar":
                    continue
                if not h[:, sample, variation].variances().any():
                    continue  # never filled: this sample has no such variation
                name = _systematic_name(variation)
                up = values(sample, variation)
                if variation in ONE_SIDED:
                    # symmetrised as the AGC does; clipped at 0 (a low-statistics up
                    # template can exceed twice the nominal in a bin)
                    down = np.maximum(2 * nom - up, 0.0)
                elif variation == "scaleup":
                    down = values(sample, "scaledown")
                else:
                    down = values(sample, f"{name}_down")
                found[name] = (up, down)
            systematics[channel][sample] = found
            names.update(found)
    return Templates(nominal, variance, systematics, data, sorted(names))


# ---------------------------------------------------------------- evermore


@dataclass
class FitResult:
    """Maximum-likelihood ``ttbar_norm`` ± uncertainty (inverse Hessian)."""

    ttbar_norm: float
    uncertainty: float
    library: str


def _layout(templates: Templates) -> dict[str, slice]:
    n_bins = len(templates.edges) - 1
    layout = {"ttbar_norm": slice(0, 1), "lumi": slice(1, 2)}
    position = 2
    for name in templates.names:
        layout[name] = slice(position, position + 1)
        position += 1
    for channel in CHANNELS:
        layout[f"staterror_{channel}"] = slice(position, position + n_bins)
        position += n_bins
    return layout


def _require_x64() -> None:
    if not jax.config.jax_enable_x64:
        raise PrecisionError(
            "the likelihood fit needs 64-bit JAX: jax.config.update('jax_enable_x64', True) "
            "before using corrax.agc.model (corrax never changes JAX's configuration itself)"
        )


def _relative_stat_error(templates: Templates, channel: str) -> np.ndarray:
    total = sum(templates.nominal[channel].values())
    var = sum(templates.variance[channel].values())
    return np.where(total > 0, np.sqrt(var) / np.where(total > 0, total, 1.0), 0.0)


def expected_counts(x: jax.Array, templates: Templates) -> dict[str, jax.Array]:
    """Expected counts per channel for the flat parameter vector ``x`` (see ``_layout``)."""
    layout = _layout(templates)
    mu = evm.Parameter(x[layout["ttbar_norm"]][0])
    lumi = evm.NormalParameter(x[layout["lumi"]][0])
    result = {}
    for channel in CHANNELS:
        # γ per bin, multiplying every sample (its Gaussian constraint: see the likelihood)
        stat_modifier = evm.Parameter(x[layout[f"staterror_{channel}"]]).scale()
        total = 0.0
        for sample, nominal in templates.nominal[channel].items():
            modifiers = [lumi.scale_log_symmetric(LUMI_KAPPA), stat_modifier]
            if sample == "ttbar":
                modifiers.append(mu.scale())
            variations = templates.systematics[channel][sample]
            if variations:
                # every template systematic of this sample at once: θ (k, 1), templates (k, bins)
                index = np.array([layout[name].start for name in variations])
                up = np.stack([u for u, _ in variations.values()])
                down = np.stack([d for _, d in variations.values()])
                modifiers.append(evm.NormalParameter(x[index][:, None]).morphing(up, down))
            total = total + _apply(modifiers, jnp.asarray(nominal))
        result[channel] = total
    return result


def _apply(modifiers: list[Any], nominal: jax.Array) -> jax.Array:
    """HistFactory composition: (nominal + Σ offsets) · Π scales, each modifier's
    offset and scale taken at the nominal — what ``evm.modifier.Compose`` computes;
    written out because Compose groups modifiers by hashing their graph, which fails
    when parameter values are JAX tracers (inside ``jit``/``grad``)."""
    offset, scale = jnp.zeros_like(nominal), jnp.ones_like(nominal)
    for modifier in modifiers:
        effect = modifier.offset_and_scale(nominal)
        # stacked modifiers (one row per parameter) add their offsets and multiply scales
        offset = offset + jnp.reshape(effect.offset, (-1, nominal.shape[-1])).sum(axis=0)
        scale = scale * jnp.reshape(effect.scale, (-1, nominal.shape[-1])).prod(axis=0)
    return scale * (nominal + offset)


def negative_log_likelihood(
    x: jax.Array, templates: Templates, data: Mapping[str, Any]
) -> jax.Array:
    """−log L (Poisson per bin, standard-normal constraints on every nuisance)."""
    expected = expected_counts(x, templates)
    nll = 0.0
    for channel in CHANNELS:
        lam = jnp.clip(expected[channel], 1e-10)
        nll = nll - evm.pdf.PoissonContinuous(lam).log_prob(jnp.asarray(data[channel])).sum()
    layout = _layout(templates)
    first_stat = layout[f"staterror_{CHANNELS[0]}"].start
    constraint = evm.pdf.Normal(mean=0.0, width=1.0).log_prob(x[1:first_stat]).sum()
    for channel in CHANNELS:
        rel = _relative_stat_error(templates, channel)
        # empty bins: γ has no effect; a unit width decouples it (see the module docstring)
        width = np.where(rel > 0, rel, 1.0)
        gamma = x[layout[f"staterror_{channel}"]]
        terms = evm.pdf.Normal(mean=1.0, width=width).log_prob(gamma)
        constraint = constraint + terms.sum()
    return nll - constraint


class _Compiled:
    """−log L, its gradient and Hessian for one set of templates, compiled once."""

    def __init__(self, templates: Templates):
        _require_x64()
        self.templates = templates
        layout = _layout(templates)
        self.size = layout[f"staterror_{CHANNELS[-1]}"].stop

        def nll(x, data):
            return negative_log_likelihood(x, templates, data)

        self.value_and_grad = jax.jit(jax.value_and_grad(nll))
        self.hessian = jax.jit(jax.hessian(nll))
        self.expected = jax.jit(lambda x: expected_counts(x, templates))
        # pyhf's bounds: nuisances ±5, staterror γ in [1e-10, 10], POI [0, 10]
        lower, upper = np.full(self.size, -5.0), np.full(self.size, 5.0)
        lower[0], upper[0] = 0.0, 10.0
        self.start = np.zeros(self.size)
        self.start[0] = 1.0
        for channel in CHANNELS:
            part = layout[f"staterror_{channel}"]
            lower[part], upper[part], self.start[part] = 1e-10, 10.0, 1.0
        self.bounds = list(zip(lower, upper, strict=True))

    def nominal(self) -> np.ndarray:
        """ttbar_norm = 1, every nuisance at its nominal value."""
        return self.start.copy()

    def minimise(
        self, data: Mapping[str, Any], fixed_mu: float | None = None
    ) -> tuple[np.ndarray, float]:
        from scipy.optimize import minimize

        data = {k: jnp.asarray(v) for k, v in data.items()}
        x0 = self.nominal()
        free = np.ones(self.size, bool)
        if fixed_mu is not None:
            x0[0], free[0] = fixed_mu, False

        def objective(values):
            x = x0.copy()
            x[free] = values
            value, gradient = self.value_and_grad(jnp.asarray(x), data)
            return float(value), np.asarray(gradient)[free]

        bounds = [b for b, f in zip(self.bounds, free, strict=True) if f]
        result = minimize(
            objective,
            x0[free],
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": 1e-15, "gtol": 1e-9, "maxiter": 20_000, "maxcor": 50},
        )
        x = x0.copy()
        x[free] = result.x
        return x, float(result.fun)

    def uncertainty(self, x: np.ndarray, data: Mapping[str, Any]) -> float:
        data = {k: jnp.asarray(v) for k, v in data.items()}
        hessian = np.asarray(self.hessian(jnp.asarray(x), data))
        return float(np.sqrt(np.linalg.inv(hessian)[0, 0]))

    def expected_uncertainty(self) -> float:
        nominal = self.nominal()
        asimov = {k: np.asarray(v) for k, v in self.expected(jnp.asarray(nominal)).items()}
        return self.uncertainty(nominal, asimov)


def _fit(compiled: _Compiled, data: Mapping[str, Any]) -> FitResult:
    x, _ = compiled.minimise(data)
    sigma = compiled.uncertainty(x, data)
    return FitResult(float(x[0]), sigma, "evermore")


def evermore_fit(templates: Templates, data: Mapping[str, Any] | None = None) -> FitResult:
    """Fit with evermore (JAX): ``ttbar_norm`` ± √(H⁻¹)₀₀."""
    return _fit(_Compiled(templates), templates.data if data is None else data)


def expected_uncertainty(templates: Templates) -> float:
    """The expected uncertainty on ``ttbar_norm`` on Asimov data (inverse Hessian at
    the nominal parameters): the hard analysis's value of the differentiable figure
    of merit."""
    return _Compiled(templates).expected_uncertainty()


def hard_figures(templates: Templates) -> tuple[FitResult, float]:
    """``evermore_fit`` and ``expected_uncertainty`` with one compilation."""
    compiled = _Compiled(templates)
    return _fit(compiled, templates.data), compiled.expected_uncertainty()


# ---------------------------------------------------------------- pyhf


def pyhf_spec(templates: Templates) -> dict[str, Any]:
    """The same model as a pyhf workspace specification."""
    channels = []
    for channel in CHANNELS:
        samples = []
        for sample, nominal in templates.nominal[channel].items():
            modifiers: list[dict[str, Any]] = [
                {
                    "name": "lumi",
                    "type": "normsys",
                    "data": {"hi": LUMI_KAPPA, "lo": 1 / LUMI_KAPPA},
                },
                {
                    "name": f"staterror_{channel}",
                    "type": "staterror",
                    "data": list(np.sqrt(templates.variance[channel][sample])),
                },
            ]
            if sample == "ttbar":
                modifiers.append({"name": "ttbar_norm", "type": "normfactor", "data": None})
            for name, (up, down) in templates.systematics[channel][sample].items():
                modifiers.append(
                    {
                        "name": name,
                        "type": "histosys",
                        "data": {"hi_data": list(up), "lo_data": list(down)},
                    }
                )
            samples.append({"name": sample, "data": list(nominal), "modifiers": modifiers})
        channels.append({"name": channel, "samples": samples})
    return {"channels": channels}


def _numerical_hessian(model: Any, data: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Hessian of pyhf's −log L at ``x`` by central differences (steps 1e-4·max(1, |x|))."""

    def nll(p: np.ndarray) -> float:
        return -float(model.logpdf(p, data)[0])

    x = np.asarray(x, dtype=np.float64)
    steps = 1e-4 * np.maximum(1.0, np.abs(x))
    size = len(x)
    hessian = np.empty((size, size))
    for i in range(size):
        for j in range(i, size):
            total = 0.0
            for si, sj, sign in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)):
                p = x.copy()
                p[i] += si * steps[i]
                p[j] += sj * steps[j]
                total += sign * nll(p)
            hessian[i, j] = hessian[j, i] = total / (4 * steps[i] * steps[j])
    return hessian


def _pyhf_model(templates: Templates) -> Any:
    """The same model in pyhf (pyhf's global backend is left as it is)."""
    import pyhf

    return pyhf.Model(
        pyhf_spec(templates),
        poi_name="ttbar_norm",
        modifier_settings={
            "normsys": {"interpcode": "code1"},
            "histosys": {"interpcode": "code4p"},
        },
    )


def _poi_uncertainty(hessian: np.ndarray, poi: int) -> float:
    """√(H⁻¹)_poi over the parameters the likelihood constrains (pyhf keeps the γ of
    empty bins, whose rows are zero: they are left out, as they decouple)."""
    keep = np.flatnonzero(np.abs(np.diag(hessian)) > 0)
    inverse = np.linalg.inv(hessian[np.ix_(keep, keep)])
    position = int(np.flatnonzero(keep == poi)[0])
    return float(np.sqrt(inverse[position, position]))


def pyhf_fit(templates: Templates) -> FitResult:
    """The same fit with pyhf (Minuit): ``ttbar_norm`` and its uncertainty from the
    Hessian of pyhf's own −log L by central differences (Minuit's HESSE was
    unreliable here with this many staterror parameters)."""
    import pyhf

    _require_x64()
    model = _pyhf_model(templates)
    bounds = model.config.suggested_bounds()
    bounds[model.config.poi_index] = (0.0, 10.0)
    observed = np.concatenate([templates.data[c] for c in CHANNELS])
    data = np.concatenate([observed, model.config.auxdata])
    # pyhf's Minuit optimizer object used directly, without pyhf.set_backend (global
    # state); where Minuit does not converge (small samples) pyhf raises
    # FailedMinimization, reported by the caller rather than replaced by another minimum
    optimizer = pyhf.optimize.minuit_optimizer(tolerance=1e-6)
    init = model.config.suggested_init()
    fitted = optimizer.minimize(pyhf.infer.mle.twice_nll, data, model, init, bounds)
    poi = model.config.poi_index
    sigma = _poi_uncertainty(_numerical_hessian(model, data, fitted), poi)
    return FitResult(float(fitted[poi]), sigma, "pyhf")


def pyhf_expected_uncertainty(templates: Templates) -> float:
    """The expected σ(ttbar_norm) computed with pyhf: the inverse of the central-
    difference Hessian of pyhf's −log L at its Asimov point (nominal parameters,
    Asimov data with auxiliary data) — the cross-check of ``expected_uncertainty``."""
    _require_x64()
    model = _pyhf_model(templates)
    init = np.asarray(model.config.suggested_init(), dtype=np.float64)
    asimov = np.asarray(model.expected_data(init), dtype=np.float64)
    return _poi_uncertainty(_numerical_hessian(model, asimov, init), model.config.poi_index)
