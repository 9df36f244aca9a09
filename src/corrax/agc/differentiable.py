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

* **weight variations**: the AGC's ``btag_var_i`` and ``scale_var`` weights take the
  pt of the i-th selected jet; softly, Σ_j P(jet j is the i-th selected) · w(pt_j)
  (``soft.rank_probabilities``), the weights from the AGC's ``event_systematics``
  correction evaluated by corrax.

Each of these is an operation of the general toolkit ``corrax.soft`` (``cut``,
``exactly``, ``joint_count_probabilities``, ``rank_probabilities``, ``choose``,
``histogram``); this module only says which AGC quantities go in.

Corrections: with the real files the jets are corrected by
``JetCorrector.correct_flat`` inside the jitted function (JEC and JER hybrid
smearing, evaluated by corrax), as the hard analysis's nominal jets. The jet
variations are the hard analysis's: ``pt_scale_up`` (pt × 1.03) and ``pt_res_up``
(pt × (1 + 0.05 z), z the same HashPRNG numbers), each a pass of the pipeline.
The real scale factors (lepton ID, pileup) are not in the soft weights: the
soft figure of merit equals the hard one without the real scale-factor files.

The figure of merit is ``model.expected_uncertainty`` of the soft templates
(``soft_templates``): the same statistical model as the hard fit and the held-out
evaluation — every AGC systematic, the luminosity and MC statistics — a JAX function
of the analysis parameters (``Thresholds``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np

from .. import soft
from ..jagged import Jagged, capacity_for
from . import model
from .analysis import BINS, REGIONS, RESOLUTION_WIDTH, SCALE_UP, Cuts
from .corrections import agc_systematics, jet_resolution_noise

__all__ = [
    "JET_PASSES",
    "MAX_JETS",
    "WEIGHT_SETS",
    "WEIGHT_VARIATIONS",
    "Batch",
    "Smoothing",
    "Thresholds",
    "jet_columns",
    "lepton_columns",
    "load_batch",
    "read_datasets",
    "region_probabilities",
    "sample_histograms",
    "soft_histograms",
    "soft_template_histograms",
    "soft_templates",
    "templates_from_soft",
    "ttbar_norm_uncertainty",
    "ttbar_norm_value_and_grad",
    "weight_factors",
]

MAX_JETS = 10  # trijets and b-tag counting use the first 10 jets of an event
MAX_LEPTONS = 4
_AGC_CUTS = Cuts()  # the hard analysis's thresholds: the cuts not relaxed come from here


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
    index of each event's sample in ``samples`` (static). Batches of other event
    counts but the same capacities share one compilation.
    """

    jets: Jagged
    lepton_pt: jax.Array
    lepton_ok: jax.Array
    weight: jax.Array
    sample: jax.Array
    samples: tuple[str, ...] = field(metadata={"static": True}, default=())

    @property
    def n_events(self) -> Any:
        """The number of real (not padding) events."""
        return self.jets.n_events


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


def jet_columns(ev: ak.Array, cuts: Cuts = _AGC_CUTS) -> ak.Array:
    """Jagged jet records (NumPy backend) for the soft analysis: raw and stored pt and
    mass, eta, phi, area, b-tag score, ``base`` (1 where the jet passes the cuts that
    are not relaxed: |η| < ``cuts.jet_eta`` and the tight jet ID), matched generator-jet pt (0 where
    none), the event's ρ and event number per jet, and ``resolution_noise``: the
    standard normal number of the AGC's ``pt_res_up`` smearing (``jet_resolution_noise``
    seeded by event, stored pt and φ, as in the hard analysis)."""
    index = ev.Jet_genJetIdx
    valid = (index >= 0) & (index < ak.num(ev.GenJet_pt))
    gen = ak.fill_none(ak.pad_none(ev.GenJet_pt, 1)[ak.where(valid, index, 0)], 0.0)
    event = ak.broadcast_arrays(ak.values_astype(ev.event, np.int64), ev.Jet_pt)[0]
    noise = jet_resolution_noise().evaluate(event, ev.Jet_pt, ev.Jet_phi)
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
            "base": ((abs(ev.Jet_eta) < cuts.jet_eta) & ((ev.Jet_jetId & 4) != 0)) * 1.0,
            "pt_gen": ak.where(valid, gen, 0.0),
            "rho": ak.broadcast_arrays(ev.fixedGridRhoFastjetAll, ev.Jet_pt)[0],
            "event": event,
            "resolution_noise": noise,
        }
    )


def lepton_columns(ev: ak.Array, cuts: Cuts = _AGC_CUTS) -> ak.Array:
    """Jagged lepton records (electrons and muons, by decreasing pt): ``pt`` and ``ok``
    (1 where the lepton passes the cuts that are not relaxed: the hard analysis's η,
    ID, sip3d and isolation cuts of ``cuts``)."""
    electrons_ok = (
        (abs(ev.Electron_eta) < cuts.lepton_eta)
        & (ev.Electron_cutBased == 4)
        & (ev.Electron_sip3d < cuts.sip3d)
    )
    muons_ok = (
        (abs(ev.Muon_eta) < cuts.lepton_eta)
        & ev.Muon_tightId
        & (ev.Muon_sip3d < cuts.sip3d)
        & (ev.Muon_pfRelIso04_all < cuts.muon_isolation)
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

# the jet-pt passes of the soft templates: nominal, the AGC's pt_scale_up and pt_res_up
JET_PASSES = ("nominal", "pt_scale_up", "pt_res_up")
# the event-weight variations of the AGC (``event_systematics``): name → (syst_name of
# the correction, direction, rank of the selected jet whose pt it takes)
WEIGHT_VARIATIONS = {
    **{
        f"btag_var_{i}_{direction}": ("btag_var", direction, i)
        for i in range(4)
        for direction in ("up", "down")
    },
    "scale_var_up": ("scale_var", "up", 0),
    "scale_var_down": ("scale_var", "down", 0),
}
WEIGHT_SETS = ("nominal", *WEIGHT_VARIATIONS)


def sample_histograms(values, weights, sample, n_samples, bandwidth):
    """Soft histograms of ``values`` ``[E]`` per sample: (contents, sums of squared
    weights), ``[..., n_samples, bins]`` (``weights``: ``[..., E]``; ``sample``: each
    event's sample index)."""
    onehot = jax.nn.one_hot(sample, n_samples, dtype=values.dtype)  # [E, samples]
    per_sample = jnp.asarray(weights)[..., None, :] * onehot.T  # [..., samples, E]
    return soft.histogram(values, EDGES, bandwidth, per_sample)


def weight_factors(selected: jax.Array, pt: jax.Array, systematics: Any) -> jax.Array:
    """The AGC's event-weight variations as factors on the event weight,
    ``[len(WEIGHT_VARIATIONS), E]``: each takes the ``event_systematics`` correction
    (evaluated by corrax) at the pt of the i-th selected jet, a soft choice:
    Σ_j P(jet j is the i-th selected) · (w(pt_j) − 1) + 1 (``selected``, ``pt``:
    ``[E, MAX_JETS]``). At 0/1 selection probabilities: the hard analysis's weights."""
    ranks = soft.rank_probabilities(selected, 4)  # [E, jets, rank]
    factors = []
    for name, direction, rank in WEIGHT_VARIATIONS.values():
        weight = systematics.evaluate(name, direction, pt)
        factors.append(1.0 + jnp.sum(ranks[..., rank] * (weight - 1.0), axis=-1))
    return jnp.stack(factors)


def region_histograms(
    observables: Mapping[str, jax.Array],
    region_weights: Mapping[str, jax.Array],
    factors: jax.Array,
    sample: jax.Array,
    n_samples: int,
    bandwidth: float,
) -> jax.Array:
    """The soft histograms of one jet pass: ``[regions, 2 (contents, sums of squared
    weights), WEIGHT_SETS, n_samples, 25]``; ``observables`` and ``region_weights``:
    per region ``[E]``; ``factors``: ``weight_factors``."""
    out = []
    for region in REGIONS:
        weights = region_weights[region]
        stacked = jnp.concatenate([weights[None], weights[None] * factors])
        out.append(
            jnp.stack(sample_histograms(observables[region], stacked, sample, n_samples, bandwidth))
        )
    return jnp.stack(out)


def corrected_jets(batch: Batch, corrector: Any) -> tuple[jax.Array, jax.Array]:
    """Corrected jet pt and mass (flat, ``[capacity]``): the JEC chain when
    ``corrector`` is given, else the stored values."""
    jets = batch.jets
    if corrector is None:
        return jets["pt_stored"], jets["mass_stored"]
    out = corrector.correct_flat(
        jets["pt_raw"], jets["mass_raw"], jets["eta"], jets["area"], jets["rho"],
        jets["event"].astype(jnp.int64), jets["pt_gen"],
    )  # fmt: skip
    return out["pt"], out["mass"]


def jet_pt_factors(resolution_noise: Any) -> jax.Array:
    """Per jet pass (``JET_PASSES``): the factor on the corrected jet pt, ``[3, ...]``
    (the AGC's: 1, ``SCALE_UP``, 1 + ``RESOLUTION_WIDTH`` · z with z the jet's noise;
    the mass is unchanged, as in the hard analysis)."""
    z = jnp.asarray(resolution_noise)
    return jnp.stack([jnp.ones_like(z), jnp.full_like(z, SCALE_UP), 1.0 + RESOLUTION_WIDTH * z])


def _event_quantities(thresholds, batch, corrector, pt_factor, smoothing):
    """Per event of one jet pass: observables and region weights per region, and the
    dense selection probabilities and pt of the first ``MAX_JETS`` jets."""
    jets = batch.jets
    pt, mass = corrected_jets(batch, corrector)
    pt = pt * pt_factor
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
    weight = batch.weight * one_lepton
    observables = {"4j1b": ht, "4j2b": mbjj}
    return observables, {"4j1b": weight * p1b, "4j2b": weight * p2b}, selected, dense["pt"]


@functools.partial(jax.jit, static_argnames=("corrector",))
def soft_histograms(
    thresholds: Thresholds,
    batch: Batch,
    corrector: Any = None,
    pt_factor: jax.Array | float = 1.0,
    smoothing: Smoothing = Smoothing(),
) -> dict[str, tuple[jax.Array, jax.Array]]:
    """Soft histograms per region, nominal event weights: (contents, sums of squared
    weights), each ``[n_samples, 25]`` (the samples of ``batch``). ``pt_factor``
    multiplies the corrected jet pt (a number, or one per jet, ``[capacity]``)."""
    observables, weights, _, _ = _event_quantities(
        thresholds, batch, corrector, pt_factor, smoothing
    )
    n_samples = max(len(batch.samples), 1)
    return {
        region: sample_histograms(
            observables[region], weights[region], batch.sample, n_samples, smoothing.bandwidth
        )
        for region in REGIONS
    }


@functools.partial(jax.jit, static_argnames=("corrector", "systematics"))
def soft_template_histograms(
    thresholds: Thresholds,
    batch: Batch,
    corrector: Any = None,
    smoothing: Smoothing = Smoothing(),
    systematics: Any = None,
) -> jax.Array:
    """Every soft histogram the model needs, ``[JET_PASSES, regions, 2 (contents,
    sums of squared weights), WEIGHT_SETS, n_samples, 25]`` (one compilation per
    capacity); ``systematics``: the AGC's ``event_systematics`` correction (default
    the built-in one)."""
    systematics = systematics if systematics is not None else default_systematics()
    n_samples = max(len(batch.samples), 1)

    def one_pass(pt_factor):
        observables, weights, selected, pt = _event_quantities(
            thresholds, batch, corrector, pt_factor, smoothing
        )
        factors = weight_factors(selected, pt, systematics)
        return region_histograms(
            observables, weights, factors, batch.sample, n_samples, smoothing.bandwidth
        )

    return jax.vmap(one_pass)(jet_pt_factors(batch.jets["resolution_noise"]))


@functools.cache
def default_systematics() -> Any:
    """The AGC's ``event_systematics`` correction, built in (see ``corrections``)."""
    return agc_systematics()


def templates_from_soft(histograms: jax.Array, samples: Sequence[str]) -> model.Templates:
    """The model's templates from ``soft_template_histograms`` (rebinned to the model's
    11 bins): the batch's samples ``ttbar``, ``wjets``, ``single_top_*`` are the model's
    samples, ``ttbar_<variation>`` (``ME_var``, ``PS_var``, ``scaleup``,
    ``scaledown``) their variations, as in the hard analysis's histograms. One
    gather per array (the gradient is one scatter, not one per template)."""
    index = {name: k for k, name in enumerate(samples)}
    empty = len(samples)  # a row of zeros for a model sample the batch lacks

    def locate(sample: str, variation: str) -> tuple[int, int, int] | None:
        """(jet pass, weight set, batch sample) of one histogram of the model."""
        if variation == "nominal":
            return 0, 0, index.get(sample, empty)
        if variation in JET_PASSES:
            where = JET_PASSES.index(variation), 0, sample
        elif variation in WEIGHT_VARIATIONS:
            where = 0, WEIGHT_SETS.index(variation), sample
        else:  # an alternative sample (ttbar ME_var, ...)
            where = 0, 0, f"{sample}_{variation}"
        return None if where[2] not in index else (where[0], where[1], index[where[2]])

    found = {}
    for sample in model.SAMPLES:
        if sample not in index:
            continue
        for systematic in model.SYSTEMATICS:
            if not systematic.acts_on(sample):
                continue
            up = locate(sample, systematic.up)
            # symmetrised: the down template is unused, the nominal as in model.Templates
            down = locate(sample, systematic.down or "nominal")
            if up is not None and down is not None:
                found[sample, systematic.name] = (up, down)
    names = tuple(s.name for s in model.SYSTEMATICS if any(key[1] == s.name for key in found))
    n_channels = len(model.CHANNELS)
    regions = np.array([REGIONS.index(c) for c in model.CHANNELS])
    nominal_at = np.array([locate(s, "nominal") for s in model.SAMPLES])  # (S, 3)
    at = np.empty((len(model.SAMPLES), len(names), 2, 3), dtype=int)
    for s, sample in enumerate(model.SAMPLES):
        for k, name in enumerate(names):
            at[s, k] = found.get((sample, name), (nominal_at[s], nominal_at[s]))
    present = tuple(
        tuple(tuple((sample, name) in found for name in names) for sample in model.SAMPLES)
        for _ in range(n_channels)
    )
    padded = jnp.concatenate([histograms, jnp.zeros_like(histograms[..., :1, :])], axis=-2)

    def gather(where: np.ndarray, kind: int) -> jax.Array:
        # where: (..., 3) → padded[pass, region, kind, weight set, sample] per channel
        region = regions.reshape((n_channels,) + (1,) * (where.ndim - 1))
        values = padded[where[..., 0], region, kind, where[..., 1], where[..., 2]]
        return model.rebin(values)

    nominal, up = gather(nominal_at, 0), gather(at[:, :, 0], 0)
    variance, down = gather(nominal_at, 1), gather(at[:, :, 1], 0)
    data = model.pseudodata(nominal, up, names)
    return model.Templates(nominal, variance, up, down, data, names, present)


def soft_templates(
    thresholds: Thresholds,
    batch: Batch,
    corrector: Any = None,
    smoothing: Smoothing = Smoothing(),
    systematics: Any = None,
) -> model.Templates:
    """The model's templates from the soft analysis (a pytree of JAX arrays,
    differentiable in ``thresholds``)."""
    histograms = soft_template_histograms(thresholds, batch, corrector, smoothing, systematics)
    return templates_from_soft(histograms, batch.samples)


@functools.partial(jax.jit, static_argnames=("corrector", "systematics"))
def ttbar_norm_uncertainty(
    thresholds: Thresholds,
    batch: Batch,
    corrector: Any = None,
    smoothing: Smoothing = Smoothing(),
    systematics: Any = None,
) -> jax.Array:
    """The figure of merit: ``model.expected_uncertainty`` (expected σ(ttbar_norm) on
    Asimov data, every nuisance parameter profiled) of the soft templates.

    ``batch``: samples ``ttbar``, ``wjets``, ``single_top_*`` and the alternative
    ttbar samples ``ttbar_ME_var``, ``ttbar_PS_var``, ``ttbar_scaleup``,
    ``ttbar_scaledown`` (see ``load_batch``). Differentiable in ``thresholds``.
    """
    return model.expected_uncertainty(
        soft_templates(thresholds, batch, corrector, smoothing, systematics)
    )


# the value and gradient, compiled once per batch capacity and shared by the gradient
# check, the optimiser and the study (a new jax.grad closure would compile again)
_value_and_grad = jax.jit(
    jax.value_and_grad(ttbar_norm_uncertainty), static_argnames=("corrector", "systematics")
)


def ttbar_norm_value_and_grad(
    thresholds: Thresholds,
    batch: Batch,
    corrector: Any = None,
    smoothing: Smoothing = Smoothing(),
    systematics: Any = None,
) -> tuple[jax.Array, Thresholds]:
    """(``ttbar_norm_uncertainty``, its gradient as a ``Thresholds``), jitted once: the
    thresholds are made float arrays first (Python numbers are weakly typed, and a
    different type would compile again)."""
    strong = jax.tree_util.tree_map(lambda v: jnp.asarray(v, dtype=float), thresholds)
    return _value_and_grad(strong, batch, corrector, smoothing, systematics)
