"""The AGC analysis as one differentiable JAX function, on the jit path for jagged data.

The selection of ``corrax.agc.definition`` — the same predicates the hard analysis
(``corrax.agc.hard``) applies at width 0 — at the widths of ``Smoothing``; as the
widths go to 0 the soft yields and histograms become the hard ones (tested):

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
With the real files the event weights carry the hard analysis's scale factors:
the pileup weight, and the ID scale factor of the selected lepton (softly: Σ_l P(l
is the one selected lepton) · SF_l).

The figure of merit is ``model.expected_uncertainty`` of the soft templates
(``soft_templates``): the same statistical model as the hard fit and the held-out
evaluation — every AGC systematic, the luminosity and MC statistics — a JAX function
of the analysis parameters (``Cuts``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np

from ... import soft
from ...jagged import Jagged, capacity_for
from .. import definition, model
from ..corrections import (
    RealCorrections,
    agc_systematics,
    jet_resolution_noise,
    matched_gen_pt,
)
from ..definition import (
    EDGES,
    JET_VARIATIONS,
    REGIONS,
    RESOLUTION_WIDTH,
    SCALE_UP,
    WEIGHT_VARIATIONS,
    Cuts,
)

__all__ = [
    "MAX_JETS",
    "WEIGHT_SETS",
    "Batch",
    "Smoothing",
    "jet_columns",
    "lepton_columns",
    "load_batch",
    "read_datasets",
    "sample_histograms",
    "soft_histograms",
    "soft_template_histograms",
    "soft_templates",
    "templates_from_soft",
    "ttbar_norm_uncertainty",
    "ttbar_norm_value_and_grad",
    "weight_factors",
]

MAX_JETS = 10  # trijets and b-tag counting use an event's first 10 jets passing |η| and ID
MAX_LEPTONS = 4
_AGC_CUTS = Cuts()  # the cuts that are not relaxed are read from here


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

    ``jets``: a ``Jagged`` of raw jet fields; ``lepton_pt``, hard selection flags
    ``lepton_ok`` and ``lepton_factor`` (the lepton's ID scale factor, the event's
    factor when it is the selected lepton): ``[E, 4]``; ``weight``: per event, the
    pileup weight included (0 for padding); ``sample``: the
    index of each event's sample in ``samples`` (static). Batches of other event
    counts but the same capacities share one compilation.
    """

    jets: Jagged
    lepton_pt: jax.Array
    lepton_ok: jax.Array
    lepton_factor: jax.Array
    weight: jax.Array
    sample: jax.Array
    samples: tuple[str, ...] = field(metadata={"static": True}, default=())
    # the fixed (not optimised) thresholds the hard flags were computed with
    fixed: tuple[tuple[str, float], ...] = field(
        metadata={"static": True}, default_factory=lambda: Cuts().fixed()
    )

    @property
    def n_events(self) -> Any:
        """The number of real (not padding) events."""
        return self.jets.n_events


_BRANCHES = [
    "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_rawFactor", "Jet_area", "Jet_btagCSVV2",
    "Jet_jetId", "Jet_genJetIdx", "GenJet_pt", "Electron_pt", "Electron_eta",
    "Electron_cutBased", "Electron_sip3d", "Muon_pt", "Muon_eta", "Muon_tightId", "Muon_sip3d",
    "Muon_pfRelIso04_all", "fixedGridRhoFastjetAll", "event", "genWeight",
    "Pileup_nTrueInt",
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
    real: RealCorrections | None = None,
    cuts: Cuts | None = None,
) -> Batch:
    """Read NanoAOD files into one ``Batch``: ``datasets`` maps a sample name to
    (files, norm); ``split`` as in ``read_datasets``. ``capacities``: padded (events,
    jets) sizes, the same for every chunk of a distributed run so that one
    compilation serves them all. ``real``: the real scale factors (lepton ID,
    pileup) of the hard analysis's nominal weight, when given. ``cuts``: whose fixed
    thresholds (η, ID, isolation) select the objects (default: the AGC's); the
    pipeline refuses cuts with other fixed thresholds."""
    ev, norm, sample = concatenate_samples(read_datasets(datasets, split))
    return batch_from_arrays(ev, norm, sample, tuple(datasets), capacities, real, cuts)


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


def _collection(ev: ak.Array, name: str) -> ak.Array:
    """The ``<name>_*`` branches of flat NanoAOD columns as records (``Jet_eta`` →
    ``.eta``), for the definition's predicates."""
    prefix = f"{name}_"
    return ak.zip({f[len(prefix) :]: ev[f] for f in ev.fields if f.startswith(prefix)})


def jet_columns(ev: ak.Array, cuts: Cuts = _AGC_CUTS) -> ak.Array:
    """Jagged jet records (NumPy backend) for the soft analysis: raw and stored pt and
    mass, eta, phi, area, b-tag score, ``base`` (1 where the jet passes the cuts that
    are not relaxed: |η| < ``cuts.jet_eta`` and the tight jet ID), matched generator-jet pt (0 where
    none), the event's ρ and event number per jet, and ``resolution_noise``: the
    standard normal number of the AGC's ``pt_res_up`` smearing (``jet_resolution_noise``
    seeded by event, stored pt and φ, as in the hard analysis)."""
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
            "base": definition.jet_identified(_collection(ev, "Jet"), cuts) * 1.0,
            "pt_gen": matched_gen_pt(ev.Jet_genJetIdx, ev.GenJet_pt),
            "rho": ak.broadcast_arrays(ev.fixedGridRhoFastjetAll, ev.Jet_pt)[0],
            "event": event,
            "resolution_noise": noise,
        }
    )


def lepton_columns(
    ev: ak.Array, cuts: Cuts = _AGC_CUTS, real: RealCorrections | None = None
) -> ak.Array:
    """Jagged lepton records (electrons and muons, by decreasing pt): ``pt``, ``ok``
    (1 where the lepton passes the cuts that are not relaxed: the hard analysis's η,
    ID, sip3d and isolation cuts of ``cuts``) and ``factor`` (its ID scale factor from
    ``real``, as in the hard analysis's weight; 1 without the files)."""
    real = real or RealCorrections()
    columns = {"pt": [], "ok": [], "factor": []}
    for flavour, name, identified in (
        ("electron", "Electron", definition.electron_identified),
        ("muon", "Muon", definition.muon_identified),
    ):
        leptons = _collection(ev, name)
        ok = identified(leptons, cuts)
        counts = ak.num(leptons.pt)
        flat = [ak.to_numpy(ak.flatten(x)) for x in (leptons.pt, leptons.eta, ok)]
        factor = real.lepton_id_factors(flavour, *flat)
        columns["pt"].append(leptons.pt)
        columns["ok"].append(ok * 1.0)
        columns["factor"].append(ak.unflatten(factor, counts))
    merged = {k: ak.concatenate(v, axis=1) for k, v in columns.items()}
    order = ak.argsort(merged["pt"], ascending=False)
    return ak.zip({k: v[order] for k, v in merged.items()})


def batch_from_arrays(
    ev: ak.Array,
    norm: np.ndarray | float,
    sample: np.ndarray | int = 0,
    samples: tuple[str, ...] = ("sample",),
    capacities: tuple[int, int] | None = None,
    real: RealCorrections | None = None,
    cuts: Cuts | None = None,
) -> Batch:
    """A ``Batch`` from NanoAOD-named columns (outside jit); ``real`` and ``cuts`` as
    in ``load_batch``."""
    real = real or RealCorrections()
    cuts = cuts or _AGC_CUTS
    n = len(ev)
    n_jets = int(ak.sum(ak.num(ev.Jet_pt)))
    slots, jet_slots = capacities or (capacity_for(n), capacity_for(n_jets))
    jets = jet_columns(ev, cuts)
    # jets failing the fixed cuts (|η|, ID) can never be selected: dropped here, so
    # that MAX_JETS counts jets that can
    jets = jets[jets.base > 0]
    collection = Jagged.from_awkward(jets, event_capacity=slots, object_capacity=jet_slots)
    leptons = lepton_columns(ev, cuts, real)

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
    if real.pileup is not None:
        weight = weight * real.pileup_weight(ak.to_numpy(ev.Pileup_nTrueInt))
    return Batch(
        jets=collection,
        lepton_pt=dense(leptons.pt, MAX_LEPTONS),
        lepton_ok=dense(leptons.ok, MAX_LEPTONS),
        lepton_factor=dense(leptons.factor, MAX_LEPTONS),
        weight=per_event(weight),
        sample=per_event(np.broadcast_to(sample, (n,)), np.int32),
        samples=samples,
        fixed=cuts.fixed(),
    )


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
    """Per jet pass (``JET_VARIATIONS``): the factor on the corrected jet pt, ``[3, ...]``
    (the AGC's: 1, ``SCALE_UP``, 1 + ``RESOLUTION_WIDTH`` · z with z the jet's noise;
    the mass is unchanged, as in the hard analysis)."""
    z = jnp.asarray(resolution_noise)
    return jnp.stack([jnp.ones_like(z), jnp.full_like(z, SCALE_UP), 1.0 + RESOLUTION_WIDTH * z])


def _event_quantities(cuts, batch, corrector, pt_factor, smoothing):
    """Per event of one jet pass: observables and region weights per region, and the
    dense selection probabilities and pt of the first ``MAX_JETS`` jets."""
    cuts.check_fixed(batch.fixed)
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
    width = smoothing.pt_width
    selected = definition.jet_selected(dense["pt"], dense["base"], cuts, width)
    tagged = selected * definition.b_tagged(dense["btag"], cuts, smoothing.btag_width)
    leptons = definition.lepton_selected(batch.lepton_pt, batch.lepton_ok, cuts, width)
    regions = definition.region_probabilities(leptons, selected, tagged, batch.lepton_factor)
    # log P(selected) in log space: −∞ (a large negative number) for jets failing the
    # hard cuts; the b-tag logit for the trijet choice's log P(≥ 1 tag)
    log_selected = jnp.where(
        dense["base"] > 0, soft.log_cut(dense["pt"], cuts.jet_pt, width), -1e30
    )
    tag_z = (dense["btag"] - cuts.btag) / smoothing.btag_width
    ht = jnp.sum(selected * dense["pt"], axis=-1)
    mbjj = _soft_mbjj(
        dense["pt"], dense["eta"], dense["phi"], dense["mass"], log_selected,
        tag_z, smoothing.trijet_temperature,
    )  # fmt: skip
    observables = {"4j1b": ht, "4j2b": mbjj}
    weights = {region: batch.weight * regions[region] for region in REGIONS}
    return observables, weights, selected, dense["pt"]


@functools.partial(jax.jit, static_argnames=("corrector",))
def soft_histograms(
    cuts: Cuts,
    batch: Batch,
    corrector: Any = None,
    pt_factor: jax.Array | float = 1.0,
    smoothing: Smoothing = Smoothing(),
) -> dict[str, tuple[jax.Array, jax.Array]]:
    """Soft histograms per region, nominal event weights: (contents, sums of squared
    weights), each ``[n_samples, 25]`` (the samples of ``batch``). ``pt_factor``
    multiplies the corrected jet pt (a number, or one per jet, ``[capacity]``)."""
    observables, weights, _, _ = _event_quantities(cuts, batch, corrector, pt_factor, smoothing)
    n_samples = max(len(batch.samples), 1)
    return {
        region: sample_histograms(
            observables[region], weights[region], batch.sample, n_samples, smoothing.bandwidth
        )
        for region in REGIONS
    }


@functools.partial(jax.jit, static_argnames=("corrector", "systematics"))
def soft_template_histograms(
    cuts: Cuts,
    batch: Batch,
    corrector: Any = None,
    smoothing: Smoothing = Smoothing(),
    systematics: Any = None,
) -> jax.Array:
    """Every soft histogram the model needs, ``[JET_VARIATIONS, regions, 2 (contents,
    sums of squared weights), WEIGHT_SETS, n_samples, 25]`` (one compilation per
    capacity); ``systematics``: the AGC's ``event_systematics`` correction (default
    the built-in one)."""
    systematics = systematics if systematics is not None else default_systematics()
    n_samples = max(len(batch.samples), 1)

    def one_pass(pt_factor):
        observables, weights, selected, pt = _event_quantities(
            cuts, batch, corrector, pt_factor, smoothing
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
        if variation in JET_VARIATIONS:
            where = JET_VARIATIONS.index(variation), 0, sample
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
    cuts: Cuts,
    batch: Batch,
    corrector: Any = None,
    smoothing: Smoothing = Smoothing(),
    systematics: Any = None,
) -> model.Templates:
    """The model's templates from the soft analysis (a pytree of JAX arrays,
    differentiable in ``cuts``)."""
    histograms = soft_template_histograms(cuts, batch, corrector, smoothing, systematics)
    return templates_from_soft(histograms, batch.samples)


@functools.partial(jax.jit, static_argnames=("corrector", "systematics"))
def ttbar_norm_uncertainty(
    cuts: Cuts,
    batch: Batch,
    corrector: Any = None,
    smoothing: Smoothing = Smoothing(),
    systematics: Any = None,
) -> jax.Array:
    """The figure of merit: ``model.expected_uncertainty`` (expected σ(ttbar_norm) on
    Asimov data, every nuisance parameter profiled) of the soft templates.

    ``batch``: samples ``ttbar``, ``wjets``, ``single_top_*`` and the alternative
    ttbar samples ``ttbar_ME_var``, ``ttbar_PS_var``, ``ttbar_scaleup``,
    ``ttbar_scaledown`` (see ``load_batch``). Differentiable in ``cuts``.
    """
    return model.expected_uncertainty(
        soft_templates(cuts, batch, corrector, smoothing, systematics)
    )


# the value and gradient, compiled once per batch capacity and shared by the gradient
# check, the optimiser and the study (a new jax.grad closure would compile again)
_value_and_grad = jax.jit(
    jax.value_and_grad(ttbar_norm_uncertainty), static_argnames=("corrector", "systematics")
)


def ttbar_norm_value_and_grad(
    cuts: Cuts,
    batch: Batch,
    corrector: Any = None,
    smoothing: Smoothing = Smoothing(),
    systematics: Any = None,
) -> tuple[jax.Array, Cuts]:
    """(``ttbar_norm_uncertainty``, its gradient as a ``Cuts``), jitted once: the
    cuts are made float arrays first (Python numbers are weakly typed, and a
    different type would compile again)."""
    strong = jax.tree_util.tree_map(lambda v: jnp.asarray(v, dtype=float), cuts)
    return _value_and_grad(strong, batch, corrector, smoothing, systematics)
