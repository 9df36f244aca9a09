"""The AGC processes and how each is generated with Pythia 8 (13 TeV).

Cross sections and luminosity are the AGC's (pb, /pb). Events are generated at hadron
level: parton showers, Lund string hadronisation and hadron decays (particles with
cτ > 10 mm stable, as CMS's generator-level definition), τ leptons decayed by
Pythia; multiparton interactions are off (generation time, see the README).

The AGC's alternative ttbar samples come from other generators or settings. Here they
are event weights on the nominal events (``WeightVariation``), written as the AGC's
variation datasets — the nominal events again with ``genWeight`` times the variation's
weight — so that the AGC's own processor reads them unchanged, and carried in the
nominal files as ``VariationWeight_<name>`` (a ratio to ``genWeight``, like NanoAOD's
``PSWeight``). Each variation's datasets are normalised to the same cross section as
the nominal (``Σ genWeight`` over every generated event), so only acceptance and shape
change:

* ``scaleup`` / ``scaledown``: both showers' renormalisation scales × 2 / × 0.5
  (Pythia's ``UncertaintyBands`` weights; final-state emissions varied above 5 GeV,
  initial-state ones as in CMS's PS weights, see ``_SHOWER_WEIGHTS``) times the hard
  process's renormalisation and factorisation scales × 2 / × 0.5 (αs and PDF ratios
  at the varied scales, ``variations``);
* ``ME_var`` (the AGC: another matrix-element generator): the hard process with
  another PDF set (CTEQ6L1, ``PDF:pSet = 8``) and αs(m_Z) = 0.118 instead of 0.130
  (PDF and αs ratios; the showers keep the nominal's);
* ``PS_var`` (the AGC: another parton shower): both showers' non-singular terms
  (``cNS = 2``, the part of the splitting kernels that the soft and collinear limits do
  not fix), an ``UncertaintyBands`` weight.

Weights cost no second sample, and a variation's effect carries only the MC noise of
its weights' spread, not that of two independent samples (``results/summary.json``,
``validation.ttbar_variations``).

Decays: every W decay in which at least one W of the event decays to a lepton (e, μ
or τ, the τ decayed by Pythia): fully hadronic ttbar (and tW) cannot give the
isolated lepton the selection asks for, so it is not generated. Pythia's decay
switches cannot say "at least one", so a two-boson process is generated in two
disjoint configurations (``Decay``): W⁺ → ℓν with W⁻ → anything, and W⁺ → qq̄′ with
W⁻ → ℓν; files alternate between them, and each event carries a weight (its
configuration's share of the branching fraction over its share of the events, with
Pythia's own W table after initialisation: ``generate``), so that equal numbers of
events represent unequal cross sections. The fraction kept is measured with Pythia (its
cross section with and without the restriction, hard process only,
``generate.kept_fraction``): a process is normalised to
``σ_AGC · Σ_configurations σ_restricted/σ_inclusive``.

Pythia 8 has no gb → tW process: ``single_top_tW`` is g b → t W⁻ and its conjugate at
leading order, a semi-internal process written with the two tree diagrams (``tw``),
its spectator b̄ from Pythia's initial-state g → b b̄ splitting. It is normalised to
the AGC's tW cross section; its decays are ttbar's (two W bosons, at least one
leptonic).

W+jets is ``qqbar2Wg`` + ``qg2Wq`` with p̂T > 50 GeV and a damped power shower
(``SpaceShower:pTmaxMatch = 2``, ``SpaceShower:pTdampMatch = 1``: emissions may
exceed the hard scale but are damped above it, Pythia's recommendation for a W + 1
jet matrix element; the undamped power shower double-counts hard emissions and gave
4× more W + ≥ 4-jet events with too hard an HT spectrum, the default shower almost
none). A parton shower on W + 1 jet cannot predict the W + ≥ 4-jet rate that the
AGC's multi-leg W+jets sample has, so only the shape is kept from Pythia: its
reference cross section is Pythia's inclusive ``ffbar2W`` with W → eν, μν, τν (the
AGC's W → ℓν) times ``WJETS_NORMALISATION``, a factor measured once so that the
W + ≥ 4-jet yield (4j1b + 4j2b, in the histograms' range) equals the AGC's. The
p̂T > 50 GeV start triples the effective number of MC events in those regions at
equal cost (the damped shower rarely adds three jets above 30 GeV to a softer hard
jet); what p̂T < 50 GeV contributes is part of the measured factor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LUMINOSITY",
    "PROCESSES",
    "WEIGHT_VARIATIONS",
    "WJETS_NORMALISATION",
    "Decay",
    "Process",
    "WeightVariation",
]

LUMINOSITY = 3378.0  # /pb

_COMMON = (
    "Beams:eCM = 13000.",
    "PartonLevel:MPI = off",
    "ParticleDecays:limitTau0 = on",
    "ParticleDecays:tau0Max = 10.",
    "Next:numberCount = 0",
    "Print:quiet = on",
)
_TTBAR = ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on")
_WJETS = (
    "WeakBosonAndParton:qqbar2Wg = on",
    "WeakBosonAndParton:qg2Wq = on",
    "PhaseSpace:pTHatMin = 50.",
    "SpaceShower:pTmaxMatch = 2",
    "SpaceShower:pTdampMatch = 1",
)
# the AGC's W + ≥ 4-jet yield (4j1b + 4j2b: 5,152 + 1,592) over ours with the factor
# 1 (see the docstring), 3,789 ± 543 (MC stat), measured on independent samples (seeds
# 2 and 3 at size 10,000: 2 × 20,000 W+jets events): 1.78 ± 0.26
WJETS_NORMALISATION = 1.78
# Pythia's inclusive W → ℓν process, for the W+jets normalisation (see the docstring).
WJETS_INCLUSIVE = ("WeakSingleBoson:ffbar2W = on", "24:onMode = off", "24:onIfAny = 11 13 15")
LEPTONS = (11, 13, 15)
QUARKS = (1, 2, 3, 4, 5)
ANY = LEPTONS + QUARKS


@dataclass(frozen=True)
class Decay:
    """One decay configuration: per boson of the event, the decay products allowed.

    ``bosons``: ``(particle id, products)`` pairs, one per boson (a channel is open
    when it contains any of ``products``, by absolute id); ``settings``: the Pythia
    lines that open exactly those channels.
    """

    settings: tuple[str, ...]
    bosons: tuple[tuple[int, tuple[int, ...]], ...]

    def fraction(self, branching: Mapping[int, Mapping[tuple[int, ...], float]]) -> float:
        """Branching fraction of this configuration; ``branching[id][products]`` is the
        summed branching ratio of ``id``'s channels with any of ``products``."""
        value = 1.0
        for particle, products in self.bosons:
            value *= branching[particle][products]
        return value


def _one_boson(particle: int) -> Decay:
    return Decay(
        (f"{particle}:onMode = off", f"{particle}:onIfAny = 11 13 15"),
        ((particle, LEPTONS),),
    )


# W⁺ → ℓν with W⁻ → anything; W⁺ → qq̄′ with W⁻ → ℓν: disjoint, together every event
# with at least one leptonic W. Pythia's onPos/onNeg switches overwrite each other,
# so channels open for both charges use onIfAny.
_TTBAR_DECAYS = (
    Decay(
        ("24:onMode = off", "24:onIfAny = 11 13 15", "24:onNegIfAny = 1 2 3 4 5"),
        ((24, LEPTONS), (24, ANY)),
    ),
    Decay(
        ("24:onMode = off", "24:onPosIfAny = 1 2 3 4 5", "24:onNegIfAny = 11 13 15"),
        ((24, QUARKS), (24, LEPTONS)),
    ),
)


@dataclass(frozen=True)
class WeightVariation:
    """An alternative sample as a weight on the nominal events (see the docstring).

    ``shower``: Pythia ``UncertaintyBands`` keywords of the shower variation, or None;
    ``hard_scale``: factor on the hard process's renormalisation and factorisation
    scales (μ, not μ²), or None; ``pdf_set``: the hard process's PDF (Pythia's
    ``PDF:pSet``), or None; ``alpha_s``: the hard process's αs(m_Z), or None.
    """

    shower: str | None = None
    hard_scale: float | None = None
    pdf_set: int | None = None
    alpha_s: float | None = None


WEIGHT_VARIATIONS = {
    "scaledown": WeightVariation("isr:muRfac=0.5 fsr:muRfac=0.5", hard_scale=0.5),
    "scaleup": WeightVariation("isr:muRfac=2.0 fsr:muRfac=2.0", hard_scale=2.0),
    "ME_var": WeightVariation(pdf_set=8, alpha_s=0.118),
    "PS_var": WeightVariation("isr:cNS=2.0 fsr:cNS=2.0"),
}
# The final-state shower is varied only above pT = 5 GeV (100 × its 0.5 GeV cut-off
# squared; CMS's PS weights, CMSSW's PythiaPSweightsSettings, use 20: 2.2 GeV): this
# halves the spread of scaledown's weights (std 1.07 → 0.58, max 19 → 6, 1,500 ttbar
# events); the initial-state shower as CMS. Pythia's default over-sampling: CMS's × 10
# changed the spread by < 10 % at 2.7× the generation time.
_SHOWER_WEIGHTS = (
    "UncertaintyBands:doVariations = on",
    "UncertaintyBands:FSRpTmin2Fac = 100",
    "UncertaintyBands:ISRpTmin2Fac = 1",
)


@dataclass(frozen=True)
class Process:
    """One AGC process: its Pythia settings, cross section (pb) and relative size.

    ``share``: events generated per unit of sample size (ttbar nominal = 1);
    ``decays``: its decay configurations (files alternate between them);
    ``variations``: the nominal, then the ``WEIGHT_VARIATIONS`` written as weights on
    its events; ``strong_order``: the power of αs in the hard process (for the hard
    process's weights); ``reference``: the settings whose cross section
    ``cross_section`` is (default: the process settings without decay restrictions);
    ``normalisation``: a factor on the cross section (W+jets, see the docstring);
    ``add_process``: registers a semi-internal process with a ``pythia8mc.Pythia``
    before its ``init`` (tW, see the docstring), or None.
    """

    name: str
    settings: tuple[str, ...]
    cross_section: float
    share: float
    decays: tuple[Decay, ...]
    variations: tuple[str, ...] = ("nominal",)
    strong_order: int = 0
    reference: tuple[str, ...] | None = None
    normalisation: float = 1.0
    add_process: Callable[[Any], None] | None = None

    def settings_for(self, decay: int = 0) -> tuple[str, ...]:
        """Pythia's settings for one decay configuration, with the shower weights of
        the process's variations."""
        return _COMMON + self.settings + self._shower_weights() + self.decays[decay].settings

    def _shower_weights(self) -> tuple[str, ...]:
        showers = [
            f"{name} {WEIGHT_VARIATIONS[name].shower}"
            for name in self.variations[1:]
            if WEIGHT_VARIATIONS[name].shower is not None
        ]
        if not showers:
            return ()
        return (*_SHOWER_WEIGHTS, "UncertaintyBands:List = {" + ", ".join(showers) + "}")


def _add_gb_to_tw(pythia: Any) -> None:
    from .tw import add_to  # imports pythia8mc: only where events are generated

    add_to(pythia)


PROCESSES: dict[str, Process] = {
    process.name: process
    for process in (
        Process(
            "ttbar",
            _TTBAR,
            396.87 + 332.97,
            1.0,
            _TTBAR_DECAYS,
            variations=("nominal", *WEIGHT_VARIATIONS),
            strong_order=2,
        ),
        Process(
            "single_top_s_chan",
            ("Top:ffbar2tqbar(s:W) = on",),
            2.0268 + 1.2676,
            0.1,
            (_one_boson(24),),
        ),
        Process(
            "single_top_t_chan",
            ("Top:qq2tq(t:W) = on",),
            (36.993 + 22.175) / 0.252,
            0.3,
            (_one_boson(24),),
        ),
        Process(
            "single_top_tW",
            (),
            37.936 + 37.906,
            0.3,
            _TTBAR_DECAYS,
            add_process=_add_gb_to_tw,
        ),
        Process(
            "wjets",
            _WJETS,
            61457 * 0.252,
            4.0,
            (_one_boson(24),),
            reference=WJETS_INCLUSIVE,
            normalisation=WJETS_NORMALISATION,
        ),
    )
}
