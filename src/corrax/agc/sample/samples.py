"""The AGC processes and how each is generated with Pythia 8 (13 TeV).

Cross sections and luminosity are the AGC's (pb, /pb). The AGC's alternative ttbar
samples come from other generators or settings; here each is a documented change of
Pythia settings:

* ``scaleup`` / ``scaledown``: renormalisation and factorisation scales of the hard
  process and of both showers × 2 / × 0.5;
* ``ME_var`` (the AGC: another matrix-element generator): another PDF set
  (``PDF:pSet = 8``, CTEQ6L1) and the hard-process αs at 0.118 instead of the PDF's;
* ``PS_var`` (the AGC: another parton shower): final- and initial-state shower αs
  lowered to 0.118 and 0.125 (from 0.1365 and 0.127) and the shower's
  matrix-element corrections off.

Decays are restricted to what the selection (exactly one e or μ) can use, and the
cross section scaled by the fraction kept (``Process.decays``): ttbar and tW in
their e/μ + jets modes (one W → eν or μν, the other → quarks; the two charge
configurations alternate between files), single top and W+jets with W → eν, μν.
Dileptonic and τ decays, about 15 % of the AGC's selected ttbar, are not simulated.
The fraction kept is measured with Pythia (its cross section with and without the
restriction, hard process only, ``generate.kept_fraction``), so a process is
normalised to ``σ_AGC · Σ_configurations σ_restricted/σ_inclusive``.

Pythia 8 has no gb → tW process, so ``single_top_tW`` is generated as ttbar with one
top's b quark and its shower removed (a W W b final state, the tW signature), and
normalised with the tW cross section. W+jets is ``qqbar2Wg`` + ``qg2Wq`` with
p̂T > 20 GeV and a "power" initial-state shower
(``SpaceShower:pTmaxMatch = 2``): the default shower, limited to the hard scale,
gives almost no W + 4-jet events (< 10⁻⁴ of them), the power shower fills that
phase space as a W + jets matrix element would (measured: ~2× the AGC's W+jets
yield after selection; the default shower gives almost none, one with
``SpaceShower:pTmaxFudge = 2`` about 0.6×). Its reference cross section is Pythia's inclusive ``ffbar2W`` with W → eν, μν, τν (the
AGC's W → ℓν), so the normalisation also carries the fraction of W production that
the p̂T > 20 GeV phase space holds. A p̂T-biased, weighted W+jets sample was tried
and rejected: its few low-p̂T events with large weights dominate the selected yield
(effective sample size below 10).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LUMINOSITY", "PROCESSES", "Process"]

LUMINOSITY = 3378.0  # /pb

_COMMON = (
    "Beams:eCM = 13000.",
    "PartonLevel:MPI = off",
    "HadronLevel:all = off",
    "Next:numberCount = 0",
    "Print:quiet = on",
)
_TTBAR = ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on")
_WJETS = (
    "WeakBosonAndParton:qqbar2Wg = on",
    "WeakBosonAndParton:qg2Wq = on",
    "PhaseSpace:pTHatMin = 20.",
    "SpaceShower:pTmaxMatch = 2",
)
# Pythia's inclusive W → ℓν process, for the W+jets normalisation (see the docstring).
WJETS_INCLUSIVE = ("WeakSingleBoson:ffbar2W = on", "24:onMode = off", "24:onIfAny = 11 13 15")
# decay configurations: one W → e/μ ν and (for two W) the other → quarks
_ONE_LEPTONIC_W = (("24:onMode = off", "24:onIfAny = 11 13"),)
_SEMILEPTONIC = (
    ("24:onMode = off", "24:onPosIfAny = 11 13", "24:onNegIfAny = 1 2 3 4 5"),
    ("24:onMode = off", "24:onNegIfAny = 11 13", "24:onPosIfAny = 1 2 3 4 5"),
)

_VARIATION_SETTINGS = {
    "nominal": (),
    "scaleup": (
        "SigmaProcess:renormMultFac = 2.",
        "SigmaProcess:factorMultFac = 2.",
        "TimeShower:renormMultFac = 2.",
        "SpaceShower:renormMultFac = 2.",
    ),
    "scaledown": (
        "SigmaProcess:renormMultFac = 0.5",
        "SigmaProcess:factorMultFac = 0.5",
        "TimeShower:renormMultFac = 0.5",
        "SpaceShower:renormMultFac = 0.5",
    ),
    "ME_var": ("PDF:pSet = 8", "SigmaProcess:alphaSvalue = 0.118"),
    "PS_var": (
        "TimeShower:alphaSvalue = 0.118",
        "SpaceShower:alphaSvalue = 0.125",
        "TimeShower:MEcorrections = off",
        "SpaceShower:MEcorrections = off",
    ),
}


@dataclass(frozen=True)
class Process:
    """One AGC process: its Pythia settings, cross section (pb) and relative size.

    ``share``: events generated per unit of sample size (ttbar nominal = 1);
    ``decays``: alternative decay settings (files alternate between them);
    ``remove_b``: drop one top's b quark (the tW emulation); ``reference``: the
    settings whose cross section ``cross_section`` is (default: no decay settings).
    """

    name: str
    settings: tuple[str, ...]
    cross_section: float
    share: float
    variations: tuple[str, ...] = ("nominal",)
    decays: tuple[tuple[str, ...], ...] = ((),)
    remove_b: bool = False
    reference: tuple[str, ...] | None = None

    def settings_for(self, variation: str, decay: int = 0) -> tuple[str, ...]:
        return _COMMON + self.settings + _VARIATION_SETTINGS[variation] + self.decays[decay]


PROCESSES: dict[str, Process] = {
    process.name: process
    for process in (
        Process(
            "ttbar",
            _TTBAR,
            396.87 + 332.97,
            1.0,
            variations=("nominal", "scaledown", "scaleup", "ME_var", "PS_var"),
            decays=_SEMILEPTONIC,
        ),
        Process(
            "single_top_s_chan",
            ("Top:ffbar2tqbar(s:W) = on",),
            2.0268 + 1.2676,
            0.1,
            decays=_ONE_LEPTONIC_W,
        ),
        Process(
            "single_top_t_chan",
            ("Top:qq2tq(t:W) = on",),
            (36.993 + 22.175) / 0.252,
            0.3,
            decays=_ONE_LEPTONIC_W,
        ),
        Process("single_top_tW", _TTBAR, 37.936 + 37.906, 0.3, decays=_SEMILEPTONIC, remove_b=True),
        Process(
            "wjets", _WJETS, 61457 * 0.252, 2.0, decays=_ONE_LEPTONIC_W, reference=WJETS_INCLUSIVE
        ),
    )
}
