"""The AGC analysis as one differentiable JAX function, on the jit path for jagged data.

Every hard step of ``corrax.agc.analysis`` has a smooth counterpart with a width
(``Smoothing``); as the widths go to 0 the soft yields and histograms become the hard
ones (tested):

* **cuts**: a threshold ``x > c`` becomes ``σ((x − c)/w)`` (logistic), with ``w`` =
  ``pt_width`` (GeV) for lepton and jet pt and ``btag_width`` for the b-tag score; the
  cuts that are not optimised (η, IDs, isolation) stay hard 0/1 factors;
* **counts and regions**: each jet is independently selected (probability ``w_j``) and
  b-tagged (``t_j``); "exactly one lepton" is the probability of exactly one success
  among the leptons, and the regions are probabilities of (≥ 4 jets, exactly 1 / ≥ 2
  b tags), computed exactly by dynamic programming over the jets (a Poisson-binomial
  distribution): with 0/1 probabilities they are the hard indicators;
* **observables**: HT = Σ w_j pt_j; m_bjj = the masses of all trijets of the first
  ``MAX_JETS`` jets, averaged with softmax weights ``exp(pt/T) · w_a w_b w_c ·
  P(≥ 1 b tag)`` (in log space), temperature ``T`` = ``trijet_temperature`` (GeV);
* **histograms**: a binned kernel density estimate (Gaussian kernel, bandwidth
  ``bandwidth`` GeV): each event adds its weight times the kernel's probability in
  each bin.

Each of these is an operation of the general toolkit ``corrax.soft`` (``cut``,
``exactly``, ``joint_count_probabilities``, ``choose``, ``histogram``,
``cramer_rao_uncertainty``); this module only says which AGC quantities go in.

Corrections: the jets are corrected by ``JetCorrector.correct_flat`` inside the
jitted function (JEC, JER hybrid smearing, JES as a continuous nuisance parameter θ),
each correction evaluated by corrax. Without the real files the JES nuisance is the
AGC's jet-pt scale, pt × (1 + 0.03 θ).

The figure of merit is the expected uncertainty on ``ttbar_norm`` (Cramér–Rao,
inverse Hessian of −log L on Asimov data, the same HistFactory conventions as
``corrax.agc.model``) of a model with samples ttbar, W+jets and single top, the
luminosity, the JES nuisance and the ttbar ME and PS variations, and MC statistics:
a JAX function of the analysis parameters (``Thresholds``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import awkward as ak
import evermore as evm
import jax
import jax.numpy as jnp
import numpy as np

from .. import soft
from ..jagged import Jagged, capacity_for
from .analysis import BINS

__all__ = [
    "MAX_JETS",
    "Batch",
    "Smoothing",
    "Thresholds",
    "jet_columns",
    "lepton_columns",
    "load_batch",
    "read_datasets",
    "rebin",
    "region_probabilities",
    "sample_histograms",
    "soft_histograms",
    "ttbar_norm_uncertainty",
]

MAX_JETS = 10  # trijets and b-tag counting use the first 10 jets of an event
MAX_LEPTONS = 4
MC_SAMPLES = ("ttbar", "wjets", "single_top")


@jax.tree_util.register_dataclass
@dataclass
class Thresholds:
    """The optimised analysis parameters (GeV for pt)."""

    lepton_pt: jax.Array | float = 30.0
    jet_pt: jax.Array | float = 30.0
    btag: jax.Array | float = 0.5

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Smoothing:
    """Widths of the relaxations (see the module docstring)."""

    pt_width: float = 2.0  # GeV
    btag_width: float = 0.03
    trijet_temperature: float = 5.0  # GeV
    bandwidth: float = 10.0  # GeV, half the 20 GeV bin width

    def scaled(self, factor: float) -> Smoothing:
        """Every width × ``factor``, the trijet temperature × √factor (it must vanish
        more slowly than the cut widths for the trijet choice to become the hard one)."""
        return Smoothing(
            self.pt_width * factor,
            self.btag_width * factor,
            self.trijet_temperature * factor**0.5,
            self.bandwidth * factor,
        )


@jax.tree_util.register_dataclass
@dataclass
class Batch:
    """Events of several samples as padded arrays (leaves) for the jitted pipeline.

    ``jets``: a ``Jagged`` of raw jet fields; ``lepton_pt`` and hard selection flags
    ``lepton_ok``: ``[E, 4]``; ``weight``: per event (0 for padding); ``sample``: the
    index of each event's sample in ``samples`` (static).
    """

    jets: Jagged
    lepton_pt: jax.Array
    lepton_ok: jax.Array
    weight: jax.Array
    sample: jax.Array
    samples: tuple[str, ...] = field(metadata={"static": True}, default=())
    n_events: int = field(metadata={"static": True}, default=0)


_BRANCHES = [
    "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_rawFactor", "Jet_area", "Jet_btagCSVV2",
    "Jet_jetId", "Jet_genJetIdx", "GenJet_pt", "Electron_pt", "Electron_eta",
    "Electron_cutBased", "Electron_sip3d", "Muon_pt", "Muon_eta", "Muon_tightId", "Muon_sip3d",
    "Muon_pfRelIso04_all", "fixedGridRhoFastjetAll", "event", "genWeight",
]  # fmt: skip


def read_datasets(
    datasets: Mapping[str, tuple[Sequence[str], float]], split: str | None = None
) -> dict[str, tuple[ak.Array, float]]:
    """The NanoAOD columns the soft analysis uses, per sample (uproot):
    ``{sample: (columns, norm)}``. ``split``: ``"even"``/``"odd"`` keeps events with
    that parity of the event number (norm × 2: the half stands for the whole sample)."""
    import uproot

    out = {}
    for name, (paths, norm) in datasets.items():
        arrays = ak.concatenate([uproot.open(p)["Events"].arrays(_BRANCHES) for p in paths])
        if split is not None:
            arrays = arrays[arrays.event % 2 == (0 if split == "even" else 1)]
        out[name] = (arrays, norm if split is None else 2.0 * norm)
    return out


def load_batch(
    datasets: Mapping[str, tuple[Sequence[str], float]],
    split: str | None = None,
    capacities: tuple[int, int] | None = None,
) -> Batch:
    """Read NanoAOD files into one ``Batch``: ``datasets`` maps a sample name to
    (files, norm); ``split`` as in ``read_datasets``. ``capacities``: padded (events,
    jets) sizes, the same for every chunk of a distributed run so that one
    compilation serves them all."""
    ev, norm, sample = concatenate_samples(read_datasets(datasets, split))
    return batch_from_arrays(ev, norm, sample, tuple(datasets), capacities)


def concatenate_samples(
    columns: Mapping[str, tuple[ak.Array, float]],
) -> tuple[ak.Array, np.ndarray, np.ndarray]:
    """The samples of ``read_datasets`` as one array of events, with each event's norm
    and sample index."""
    values = list(columns.values())
    return (
        ak.concatenate([arrays for arrays, _ in values]),
        np.concatenate([np.full(len(arrays), norm) for arrays, norm in values]),
        np.concatenate([np.full(len(arrays), i) for i, (arrays, _) in enumerate(values)]),
    )


def jet_columns(ev: ak.Array) -> ak.Array:
    """Jagged jet records (NumPy backend) for the soft analysis: raw and stored pt and
    mass, eta, phi, area, b-tag score, ``base`` (1 where the jet passes the cuts that
    are not relaxed: |η| < 2.4 and the tight jet ID), matched generator-jet pt (0 where
    none), and the event's ρ and event number per jet."""
    index = ev.Jet_genJetIdx
    valid = (index >= 0) & (index < ak.num(ev.GenJet_pt))
    gen = ak.fill_none(ak.pad_none(ev.GenJet_pt, 1)[ak.where(valid, index, 0)], 0.0)
    return ak.zip(
        {
            "pt_raw": ev.Jet_pt * (1 - ev.Jet_rawFactor),
            "mass_raw": ev.Jet_mass * (1 - ev.Jet_rawFactor),
            "pt_stored": ev.Jet_pt,
            "mass_stored": ev.Jet_mass,
            "eta": ev.Jet_eta,
            "phi": ev.Jet_phi,
            "area": ev.Jet_area,
            "btag": ev.Jet_btagCSVV2,
            "base": ((abs(ev.Jet_eta) < 2.4) & ((ev.Jet_jetId & 4) != 0)) * 1.0,
            "pt_gen": ak.where(valid, gen, 0.0),
            "rho": ak.broadcast_arrays(ev.fixedGridRhoFastjetAll, ev.Jet_pt)[0],
            "event": ak.broadcast_arrays(ak.values_astype(ev.event, np.int64), ev.Jet_pt)[0],
        }
    )


def lepton_columns(ev: ak.Array) -> ak.Array:
    """Jagged lepton records (electrons and muons, by decreasing pt): ``pt`` and ``ok``
    (1 where the lepton passes the cuts that are not relaxed: η, ID, sip3d, isolation)."""
    electrons_ok = (
        (abs(ev.Electron_eta) < 2.1) & (ev.Electron_cutBased == 4) & (ev.Electron_sip3d < 4)
    )
    muons_ok = (
        (abs(ev.Muon_eta) < 2.1)
        & ev.Muon_tightId
        & (ev.Muon_sip3d < 4)
        & (ev.Muon_pfRelIso04_all < 0.15)
    )
    pt = ak.concatenate([ev.Electron_pt, ev.Muon_pt], axis=1)
    ok = ak.concatenate([electrons_ok, muons_ok], axis=1) * 1.0
    order = ak.argsort(pt, ascending=False)
    return ak.zip({"pt": pt[order], "ok": ok[order]})


def batch_from_arrays(
    ev: ak.Array,
    norm: np.ndarray | float,
    sample: np.ndarray | int = 0,
    samples: tuple[str, ...] = ("sample",),
    capacities: tuple[int, int] | None = None,
) -> Batch:
    """A ``Batch`` from NanoAOD-named columns (outside jit)."""
    n = len(ev)
    n_jets = int(ak.sum(ak.num(ev.Jet_pt)))
    slots, jet_slots = capacities or (capacity_for(n), capacity_for(n_jets))
    collection = Jagged.from_awkward(
        jet_columns(ev), event_capacity=slots, object_capacity=jet_slots
    )
    leptons = lepton_columns(ev)

    def dense(values, width):
        padded = ak.fill_none(ak.pad_none(values, width, clip=True), 0.0)
        out = np.zeros((slots, width))
        out[:n] = ak.to_numpy(padded).astype(np.float64)
        return jnp.asarray(out)

    def per_event(values, dtype=np.float64):
        out = np.zeros(slots, dtype=dtype)
        out[:n] = values
        return jnp.asarray(out)

    weight = np.asarray(norm) * ak.to_numpy(ev.genWeight).astype(np.float64)
    return Batch(
        jets=collection,
        lepton_pt=dense(leptons.pt, MAX_LEPTONS),
        lepton_ok=dense(leptons.ok, MAX_LEPTONS),
        weight=per_event(weight),
        sample=per_event(np.broadcast_to(sample, (n,)), np.int32),
        samples=samples,
        n_events=n,
    )


def region_probabilities(selected: jax.Array, tagged: jax.Array) -> tuple[jax.Array, jax.Array]:
    """P(≥ 4 jets, exactly 1 tag) and P(≥ 4 jets, ≥ 2 tags) per event (``selected``,
    ``tagged``: ``[E, N]`` probabilities, tagged ⊂ selected), Poisson-binomial."""
    counts = soft.joint_count_probabilities(selected, tagged, 4, 2)
    return counts[..., 4, 1], counts[..., 4, 2]


_TRIPLES = np.array(
    [
        (a, b, c)
        for a in range(MAX_JETS)
        for b in range(a + 1, MAX_JETS)
        for c in range(b + 1, MAX_JETS)
    ]
)
# [jet, trijet] 0/1 matrix: v @ _TRIJET_SUM sums a per-jet quantity over each trijet's
# jets. XLA's CPU gathers (v[:, a] + v[:, b] + v[:, c]) are ~10× slower than this matmul
_TRIJET_SUM = np.zeros((MAX_JETS, len(_TRIPLES)))
_TRIJET_SUM[_TRIPLES, np.arange(len(_TRIPLES))[:, None]] = 1.0


def _soft_mbjj(pt, eta, phi, mass, log_selected, tag_z, temperature):
    """Softmax-weighted trijet mass; scores ``pt/T + log P(a, b, c selected, ≥ 1 tag)``
    computed in log space, so that as the widths → 0 an excluded trijet's score goes
    to −∞ faster than any pt/T (``log_selected`` and the b-tag logit ``tag_z``: per jet,
    ``[E, MAX_JETS]``)."""
    trijet_sum = jnp.asarray(_TRIJET_SUM, dtype=pt.dtype)

    def total(v):
        return v @ trijet_sum

    px, py, pz = pt * jnp.cos(phi), pt * jnp.sin(phi), pt * jnp.sinh(eta)
    energy = jnp.sqrt(px**2 + py**2 + pz**2 + mass**2)
    sx, sy, sz, se = total(px), total(py), total(pz), total(energy)
    tri_pt = jnp.sqrt(sx**2 + sy**2 + 1e-12)
    tri_mass = jnp.sqrt(jnp.maximum(se**2 - sx**2 - sy**2 - sz**2, 1e-12))
    # log P(≥ 1 tag) = log(1 − Π(1 − t)), exact while the tag probabilities t do not
    # underflow; beyond (narrow widths), log Σ t: logsumexp of the logits, shifted by
    # the event's largest logit, or, where even that underflows, the mean logit of the
    # trijet (a lower bound: such trijets are excluded anyway)
    log_none_tagged = total(jax.nn.log_sigmoid(-tag_z))
    exact = jnp.log(-jnp.expm1(jnp.minimum(log_none_tagged, -1e-300)))
    top = jax.lax.stop_gradient(jnp.max(tag_z, axis=-1, keepdims=True))
    shifted_sum = total(jnp.exp(tag_z - top))
    small = jnp.where(
        shifted_sum > 1e-300,
        top + jnp.log(jnp.maximum(shifted_sum, 1e-300)),
        total(tag_z) / 3.0,
    )
    log_has_b = jnp.where(log_none_tagged < -1e-6, exact, small)
    return soft.choose(tri_mass, tri_pt, temperature, total(log_selected) + log_has_b)


EDGES = np.linspace(BINS[1], BINS[2], BINS[0] + 1)


def sample_histograms(values, weights, sample, n_samples, bandwidth):
    """Soft histograms of ``values`` ``[E]`` per sample: (contents, sums of squared
    weights), ``[n_samples, bins]`` (``sample``: each event's sample index)."""
    onehot = jax.nn.one_hot(sample, n_samples, dtype=weights.dtype)  # [E, samples]
    return soft.histogram(values, EDGES, bandwidth, (onehot * weights[:, None]).T)


def corrected_jets(
    batch: Batch, corrector: Any, jes: jax.Array | float
) -> tuple[jax.Array, jax.Array]:
    """Corrected jet pt and mass (flat, ``[capacity]``) at the JES nuisance ``jes``."""
    jets = batch.jets
    if corrector is None:
        scale = 1.0 + 0.03 * jes
        return jets["pt_stored"] * scale, jets["mass_stored"] * scale
    out = corrector.correct_flat(
        jets["pt_raw"], jets["mass_raw"], jets["eta"], jets["area"], jets["rho"],
        jets["event"].astype(jnp.int64), jets["pt_gen"], jes=jes,
    )  # fmt: skip
    return out["pt"], out["mass"]


@functools.partial(jax.jit, static_argnames=("corrector",))
def soft_histograms(
    thresholds: Thresholds,
    batch: Batch,
    corrector: Any = None,
    jes: jax.Array | float = 0.0,
    smoothing: Smoothing = Smoothing(),
) -> dict[str, tuple[jax.Array, jax.Array]]:
    """Soft histograms per region: (contents, sums of squared weights), each
    ``[n_samples, 25]`` (the samples of ``batch``)."""
    jets = batch.jets
    pt, mass = corrected_jets(batch, corrector, jes)
    dense = {
        "pt": jets.first(pt, MAX_JETS),
        "mass": jets.first(mass, MAX_JETS),
        "eta": jets.first(jets["eta"], MAX_JETS),
        "phi": jets.first(jets["phi"], MAX_JETS),
        "btag": jets.first(jets["btag"], MAX_JETS),
        "base": jets.first(jets["base"], MAX_JETS),
    }
    jet_z = (dense["pt"] - thresholds.jet_pt) / smoothing.pt_width
    tag_z = (dense["btag"] - thresholds.btag) / smoothing.btag_width
    selected = dense["base"] * jax.nn.sigmoid(jet_z)
    tag = jax.nn.sigmoid(tag_z)
    # log P(selected): −∞ (a large negative number) for jets failing the hard cuts
    log_selected = jnp.where(dense["base"] > 0, jax.nn.log_sigmoid(jet_z), -1e30)
    one_lepton = soft.exactly(
        batch.lepton_ok * soft.cut(batch.lepton_pt, thresholds.lepton_pt, smoothing.pt_width), 1
    )
    p1b, p2b = region_probabilities(selected, selected * tag)
    ht = jnp.sum(selected * dense["pt"], axis=-1)
    mbjj = _soft_mbjj(
        dense["pt"], dense["eta"], dense["phi"], dense["mass"], log_selected,
        tag_z, smoothing.trijet_temperature,
    )  # fmt: skip
    n_samples = max(len(batch.samples), 1)
    return {
        "4j1b": sample_histograms(
            ht, batch.weight * one_lepton * p1b, batch.sample, n_samples, smoothing.bandwidth
        ),
        "4j2b": sample_histograms(
            mbjj, batch.weight * one_lepton * p2b, batch.sample, n_samples, smoothing.bandwidth
        ),
    }


# ---------------------------------------------------------------- figure of merit


def rebin(values: jax.Array) -> jax.Array:
    """25 bins from 50 GeV → 11 bins from 110 GeV (the model's binning), last axis."""
    return values[..., 3:].reshape(*values.shape[:-1], -1, 2).sum(axis=-1)


JES_VALUES = (0.0, 1.0, -1.0)


@functools.partial(jax.jit, static_argnames=("corrector",))
def _rebinned_templates(thresholds, batch, corrector, smoothing):
    """Rebinned soft templates at θ_JES = 0, +1, −1: contents and variances,
    ``[3, 2 regions, n_samples, 11 bins]`` each (one compilation per capacity)."""

    def one(jes):
        h = soft_histograms(thresholds, batch, corrector, jes, smoothing)
        return jnp.stack([jnp.stack([rebin(h[r][0]), rebin(h[r][1])]) for r in ("4j1b", "4j2b")])

    stacked = jax.vmap(one)(jnp.asarray(JES_VALUES))  # [jes, region, kind, sample, bins]
    return stacked[:, :, 0], stacked[:, :, 1]


def templates_for(
    thresholds: Thresholds,
    batch: Batch,
    corrector: Any = None,
    smoothing: Smoothing = Smoothing(),
) -> dict[tuple[str, str, float], tuple[jax.Array, jax.Array]]:
    """Soft, rebinned templates ``{(sample, region, θ_JES): (contents, variances)}``;
    samples named ``single_top*`` are summed into ``single_top``."""
    contents, variances = _rebinned_templates(thresholds, batch, corrector, smoothing)
    templates: dict[tuple[str, str, float], Any] = {}
    for i, jes in enumerate(JES_VALUES):
        for r, region in enumerate(("4j1b", "4j2b")):
            for k, name in enumerate(batch.samples):
                add_template(templates, name, region, jes, contents[i, r, k], variances[i, r, k])
    return templates


def add_template(templates: dict, sample: str, region: str, jes: float, contents, variances):
    """Add rebinned contents and variances to ``templates`` under (sample, region,
    θ_JES); samples named ``single_top*`` are summed into ``single_top``."""
    key = ("single_top" if sample.startswith("single_top") else sample, region, jes)
    previous = templates.get(key, (0.0, 0.0))
    templates[key] = (previous[0] + contents, previous[1] + variances)


@functools.partial(jax.jit, static_argnames=("corrector",))
def ttbar_norm_uncertainty(
    thresholds: Thresholds,
    batch: Batch,
    corrector: Any = None,
    smoothing: Smoothing = Smoothing(),
) -> jax.Array:
    """Expected uncertainty on ``ttbar_norm`` (Asimov, Cramér–Rao; μ = 1).

    ``batch``: samples ``ttbar``, ``ttbar_ME_var``, ``ttbar_PS_var``, ``wjets`` and
    ``single_top_*`` (see ``load_batch``). Differentiable in ``thresholds``.
    """
    return fisher_uncertainty(templates_for(thresholds, batch, corrector, smoothing))


@jax.jit
def fisher_uncertainty(
    templates: Mapping[tuple[str, str, float], tuple[jax.Array, jax.Array]],
) -> jax.Array:
    regions = ("4j1b", "4j2b")
    n_bins = templates[("ttbar", "4j1b", 0.0)][0].shape[0]

    def expected(x):
        mu = evm.Parameter(x[0])
        lumi, jes, me, ps = (evm.NormalParameter(x[i]) for i in range(1, 5))
        out = []
        for r, region in enumerate(regions):
            gamma = evm.Parameter(x[5 + r * n_bins : 5 + (r + 1) * n_bins])
            total = 0.0
            for sample in MC_SAMPLES:
                nominal = templates[(sample, region, 0.0)][0]
                modifiers = [
                    lumi.scale_log_symmetric(1.03),
                    gamma.scale(),
                    jes.morphing(
                        templates[(sample, region, 1.0)][0], templates[(sample, region, -1.0)][0]
                    ),
                ]
                if sample == "ttbar":
                    modifiers.append(mu.scale())
                    for parameter, variation in ((me, "ttbar_ME_var"), (ps, "ttbar_PS_var")):
                        up = templates[(variation, region, 0.0)][0]
                        modifiers.append(parameter.morphing(up, 2 * nominal - up))
                total = total + _apply(modifiers, nominal)
            out.append(total)
        return jnp.concatenate(out)

    variance = jnp.concatenate(
        [sum(templates[(s, r, 0.0)][1] for s in MC_SAMPLES) for r in regions]
    )
    nominal_total = jnp.concatenate(
        [sum(templates[(s, r, 0.0)][0] for s in MC_SAMPLES) for r in regions]
    )
    relative = jnp.sqrt(variance) / jnp.maximum(nominal_total, 1e-9)
    x0 = jnp.concatenate([jnp.ones(1), jnp.zeros(4), jnp.ones(2 * n_bins)])
    asimov = expected(x0)  # Asimov data: the expectation at the nominal parameters

    def nll(x):
        lam = jnp.maximum(expected(x), 1e-9)
        poisson = -(asimov * jnp.log(lam) - lam).sum()
        constraints = 0.5 * jnp.sum(x[1:5] ** 2)
        gamma = x[5:]
        return (
            poisson
            + constraints
            + 0.5 * jnp.sum(((gamma - 1.0) / jnp.maximum(relative, 1e-6)) ** 2)
        )

    return soft.cramer_rao_uncertainty(nll, x0)[0]


def _apply(modifiers, nominal):
    offset, scale = jnp.zeros_like(nominal), jnp.ones_like(nominal)
    for modifier in modifiers:
        effect = modifier.offset_and_scale(nominal)
        offset, scale = offset + effect.offset, scale * effect.scale
    return scale * (nominal + offset)
