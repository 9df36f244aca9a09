"""The differentiable AGC analysis written eagerly with awkward's JAX backend.

The same relaxations as ``corrax.agc.differentiable.pipeline`` (see its docstring) of the same
definition (``corrax.agc.definition``: thresholds, regions, variations), written
independently of the jit path's code, as an awkward user writes an analysis: jets and leptons stay jagged ``ak.Array``s on the
JAX backend; ``JetCorrector`` corrects the jagged jets; cuts are sigmoids of jagged
columns; HT is an ``ak.sum`` per event; the trijets come from ``ak.combinations`` and
scikit-hep vector sums, their softmax weights from per-event ``ak.max``/``ak.sum``.
Only where the data are no longer jagged (the Poisson-binomial counts over the
first-n padded jets and leptons, the per-event KDE histograms, the likelihood) it
calls the same dense JAX functions as the jit path. Gradients come from ``jax.grad``
through awkward.

awkward cannot ``jit`` jagged arrays, so every operation is dispatched eagerly: this
path is slow. It is the reference the jit path is checked against (same values and
gradients, tested) and timed against (``benchmarks/agc.py``).

awkward's JAX backend needs JAX's configuration set by the caller (corrax never
changes it): ``ak.jax.register_and_check()``, which registers awkward's arrays with
JAX and switches on x64 and the CPU as the default device for the whole process
(``load_eager_batch`` refuses to run before it). And CPU dispatch must be synchronous: awkward's
kernels read and write JAX buffers through raw pointers without waiting for pending
computations, and with JAX's default asynchronous dispatch ``ak.combinations``,
``ak.argmax`` and jagged indexing gave wrong, run-to-run different results on 10^5
events (awkward 2.14.0, jax 0.10.2). JAX reads that setting once, when it creates its
CPU client, so the caller sets it first thing:
``jax.config.update("jax_cpu_enable_async_dispatch", False)``; ``load_eager_batch``
refuses to run without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
import vector.backends.awkward as vector_awkward

from .. import definition, model
from ..corrections import RealCorrections
from ..definition import REGIONS, RESOLUTION_WIDTH, SCALE_UP, Cuts
from .pipeline import (
    MAX_JETS,
    MAX_LEPTONS,
    Smoothing,
    concatenate_samples,
    default_systematics,
    jet_columns,
    lepton_columns,
    read_datasets,
    region_histograms,
    sample_histograms,
    templates_from_soft,
    weight_factors,
)

__all__ = ["EagerBatch", "load_eager_batch", "soft_histograms", "ttbar_norm_uncertainty"]


@dataclass
class EagerBatch:
    """Events of several samples as awkward arrays on the JAX backend.

    ``jets``: jagged records (see ``pipeline.jet_columns``), the first
    ``MAX_JETS`` of each event; ``leptons``: jagged (pt, ok, factor), the first
    ``MAX_LEPTONS`` by decreasing pt; ``rho``, ``event``, ``weight``: per event;
    ``sample``: each event's index in ``samples`` (a JAX array).
    """

    jets: ak.Array
    leptons: ak.Array
    rho: ak.Array
    event: ak.Array
    weight: ak.Array
    sample: jax.Array
    samples: tuple[str, ...]
    fixed: tuple[tuple[str, float], ...] = Cuts().fixed()  # as ``pipeline.Batch.fixed``

    def __len__(self) -> int:
        return len(self.weight)


def load_eager_batch(
    datasets: Mapping[str, tuple[Sequence[str], float]],
    split: str | None = None,
    real: RealCorrections | None = None,
    cuts: Cuts | None = None,
) -> EagerBatch:
    """Read the datasets (as ``pipeline.load_batch``) into one ``EagerBatch``: one
    batch, so that JAX compiles each eager operation for one set of shapes only.
    Needs ``ak.jax.register_and_check()`` and synchronous CPU dispatch, set by the
    caller (see the module docstring)."""
    if jax.config.read("jax_cpu_enable_async_dispatch"):
        raise RuntimeError(
            "awkward's JAX backend gives wrong results with asynchronous CPU dispatch: call "
            'jax.config.update("jax_cpu_enable_async_dispatch", False) at the start of the '
            "process, before any JAX computation"
        )
    try:
        ak.jax.assert_registered()
    except RuntimeError as error:
        raise RuntimeError(
            "the eager path uses awkward's JAX backend: call ak.jax.register_and_check() "
            "first (it switches on x64 and the CPU device for the process)"
        ) from error
    ev, norm, sample = concatenate_samples(read_datasets(datasets, split))
    real = real or RealCorrections()
    pileup = real.pileup_weight(ak.to_numpy(ev.Pileup_nTrueInt))
    cuts = cuts or Cuts()
    jets = jet_columns(ev, cuts)
    jets = jets[jets.base > 0][:, :MAX_JETS]  # as the jit path: jets that can be selected
    per_jet = [name for name in jets.fields if name not in ("rho", "event")]

    def jax_backend(array):  # in double precision, as the jit path (NanoAOD stores float32)
        return ak.to_backend(ak.values_astype(array, np.float64), "jax")

    return EagerBatch(
        jets=jax_backend(jets[per_jet]),
        leptons=jax_backend(lepton_columns(ev, cuts, real)[:, :MAX_LEPTONS]),
        rho=jax_backend(ev.fixedGridRhoFastjetAll),
        event=ak.to_backend(ak.values_astype(ev.event, np.int64), "jax"),
        weight=jax_backend(norm * ev.genWeight * pileup),
        sample=jnp.asarray(sample, dtype=jnp.int32),
        samples=tuple(datasets),
        fixed=cuts.fixed(),
    )


def _sigmoid(x: ak.Array) -> ak.Array:
    # the tanh form: 1/(1 + exp(−x)) overflows, and its gradient is NaN, for x ≪ 0
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _log_sigmoid(x: ak.Array) -> ak.Array:
    return np.minimum(x, 0.0) - np.log1p(np.exp(-abs(x)))


def _padded(values: ak.Array, width: int) -> jax.Array:
    """The first ``width`` values per event as a dense ``[E, width]`` JAX array (0-padded)."""
    return ak.to_jax(ak.fill_none(ak.pad_none(values, width, axis=1, clip=True), 0.0))


def _corrected(sample: EagerBatch, corrector: Any) -> tuple[ak.Array, ak.Array]:
    jets = sample.jets
    if corrector is None:
        return jets.pt_stored, jets.mass_stored
    corrected = corrector(
        jets, sample.rho, sample.event, jets.pt_gen,
        pt_raw=jets.pt_raw, mass_raw=jets.mass_raw,
    )  # fmt: skip
    return corrected.pt, corrected.mass


def _soft_mbjj(jets: ak.Array, log_selected: ak.Array, tag_z: ak.Array, temperature) -> ak.Array:
    """Per event: trijet masses averaged with softmax weights of ``pt/T + log P(a, b, c
    selected, ≥ 1 tag)`` (as ``pipeline._soft_mbjj``), with awkward and vector."""
    candidates = ak.zip(
        {
            "pt": jets.pt, "eta": jets.eta, "phi": jets.phi, "mass": jets.mass,
            "log_selected": log_selected, "tag_z": tag_z,
        },
        with_name="Momentum4D",
        behavior=vector_awkward.behavior,
    )  # fmt: skip
    a, b, c = ak.unzip(ak.combinations(candidates, 3))
    trijet = a + b + c
    log_none_tagged = _log_sigmoid(-a.tag_z) + _log_sigmoid(-b.tag_z) + _log_sigmoid(-c.tag_z)
    exact = np.log(-np.expm1(np.minimum(log_none_tagged, -1e-300)))
    # where every tag probability is tiny: log Σ t = logsumexp of the logits
    largest = np.maximum(np.maximum(a.tag_z, b.tag_z), c.tag_z)
    small = largest + np.log(
        np.exp(a.tag_z - largest) + np.exp(b.tag_z - largest) + np.exp(c.tag_z - largest)
    )
    log_has_b = ak.where(log_none_tagged < -1e-6, exact, small)
    score = trijet.pt / temperature + a.log_selected + b.log_selected + c.log_selected + log_has_b
    shifted = np.exp(score - ak.fill_none(ak.max(score, axis=1, keepdims=True), 0.0))
    softmax = shifted / ak.sum(shifted, axis=1, keepdims=True)
    return ak.sum(softmax * trijet.mass, axis=1)


def _event_quantities(cuts, batch, pt_factor, smoothing, corrected):
    """As ``pipeline._event_quantities``, jagged: observables and region weights
    per region, and the dense selection probabilities and pt of the jets."""
    cuts.check_fixed(batch.fixed)
    pt, mass = corrected
    pt = pt * pt_factor
    jets = ak.zip({"pt": pt, "eta": batch.jets.eta, "phi": batch.jets.phi, "mass": mass})
    jet_z = (pt - cuts.jet_pt) / smoothing.pt_width
    tag_z = (batch.jets.btag - cuts.btag) / smoothing.btag_width
    base = batch.jets.base
    selected = base * _sigmoid(jet_z)
    tagged = selected * _sigmoid(tag_z)
    log_selected = ak.where(base > 0, _log_sigmoid(jet_z), -1e30)
    leptons = batch.leptons
    lepton_p = leptons.ok * _sigmoid((leptons.pt - cuts.lepton_pt) / smoothing.pt_width)

    dense_selected = _padded(selected, MAX_JETS)
    regions = definition.region_probabilities(
        _padded(lepton_p, MAX_LEPTONS),
        dense_selected,
        _padded(tagged, MAX_JETS),
        _padded(leptons.factor, MAX_LEPTONS),
    )
    ht = ak.to_jax(ak.sum(selected * pt, axis=1))
    mbjj = ak.to_jax(_soft_mbjj(jets, log_selected, tag_z, smoothing.trijet_temperature))
    observables = {"4j1b": ht, "4j2b": mbjj}
    weights = {region: ak.to_jax(batch.weight) * regions[region] for region in REGIONS}
    return observables, weights, dense_selected, _padded(pt, MAX_JETS)


def soft_histograms(
    cuts: Cuts,
    batch: EagerBatch,
    corrector: Any = None,
    pt_factor: Any = 1.0,
    smoothing: Smoothing | None = None,
) -> dict[str, tuple[jax.Array, jax.Array]]:
    """Soft histograms per region: (contents, sums of squared weights), each
    ``[n_samples, 25]`` (as ``pipeline.soft_histograms``; ``pt_factor``: a
    number or jagged, per jet; ``smoothing``: its default ``Smoothing()``)."""
    smoothing = smoothing or Smoothing()
    corrected = _corrected(batch, corrector)
    observables, weights, _, _ = _event_quantities(cuts, batch, pt_factor, smoothing, corrected)
    n_samples = len(batch.samples)
    return {
        region: sample_histograms(
            observables[region], weights[region], batch.sample, n_samples, smoothing.bandwidth
        )
        for region in REGIONS
    }


def ttbar_norm_uncertainty(
    cuts: Cuts,
    batch: EagerBatch,
    corrector: Any = None,
    smoothing: Smoothing | None = None,
    systematics: Any = None,
) -> jax.Array:
    """``pipeline.ttbar_norm_uncertainty`` on the eager path: the soft
    histograms of each jet pass (nominal, ``pt_scale_up``, ``pt_res_up``) with the
    weight variations, then the same templates and model."""
    smoothing = smoothing or Smoothing()
    systematics = systematics if systematics is not None else default_systematics()
    corrected = _corrected(batch, corrector)
    # the jet passes of definition.JET_VARIATIONS, per jet on the jagged jets
    jet_passes = (1.0, SCALE_UP, 1.0 + RESOLUTION_WIDTH * batch.jets.resolution_noise)
    histograms = []
    for pt_factor in jet_passes:
        observables, weights, selected, pt = _event_quantities(
            cuts, batch, pt_factor, smoothing, corrected
        )
        factors = weight_factors(selected, pt, systematics)
        histograms.append(
            region_histograms(
                observables, weights, factors, batch.sample, len(batch.samples), smoothing.bandwidth
            )
        )
    templates = templates_from_soft(jnp.stack(histograms), batch.samples)
    return model.expected_uncertainty(templates)
