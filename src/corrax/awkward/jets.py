"""Corrected jets: JEC, JES uncertainty as a nuisance parameter, JER hybrid smearing.

``JetCorrector`` applies, on jagged jets (awkward CPU or JAX backend), the CMS chain
as coffea's ``CorrectedJetsFactory`` does, with every correction evaluated by corrax
(the chain itself, on flat arrays, is ``corrax.jets.JetCorrectionChain``):

1. JEC: ``pt_jec = JEC(area, eta, pt_raw, rho) · pt_raw`` (``pt_raw = pt·(1 − rawFactor)``
   for NanoAOD jets); the mass scales with the same factor.
2. JER, hybrid method: with ``σ = PtResolution(eta, pt_jec, rho)`` and
   ``s = ScaleFactor(eta)``, a jet matched to a generator jet (``pt_gen > 0`` and
   ``|pt_jec − pt_gen| < 3 σ pt_jec``) is scaled by ``1 + (s − 1)(pt_jec − pt_gen)/pt_jec``;
   any other jet by ``1 + √max(s² − 1, 0) · σ · z`` with ``z`` a standard normal number
   from correctionlib's HashPRNG seeded by (event, pt_raw, eta): reproducible, and
   without gradient (the reparameterisation trick: gradients flow through σ, s, pt).
   A factor that would bring the jet below 0.01 GeV energy is raised to it.
3. JES: ``pt = pt_jer · (1 + θ_JES · Δ(eta, pt_jer))`` with ``Δ`` the uncertainty
   (e.g. ``..._Total_AK4PFchs``): θ = ±1 are the usual up/down variations, and θ is a
   continuous nuisance parameter. The JER scale factor has one too (``θ_JER``,
   HistFactory interpolation between its down, nominal and up values).

The result is an array of scikit-hep vector ``Momentum4D`` records (pt, eta, phi, mass,
plus ``pt_raw``, ``pt_jec``, ``pt_jer`` and the factors), so ΔR and invariant masses
are recomputed from the corrected momenta; it uses vector's behavior dictionary
without registering anything globally.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import awkward as ak
import numpy as np
import vector.backends.awkward as vector_awkward

from .._columnar import map_columns
from ..errors import InvalidArgumentError
from ..jets import JetCorrectionChain

__all__ = ["DEFAULT_NAME_MAP", "JetCorrector"]

# the jet fields read, by role, with coffea's ``name_map`` keys (``CorrectedJetsFactory``):
# NanoAOD's field names by default. ``ptRaw``/``massRaw``, where the jets have them,
# are used as they are; otherwise the raw values come from ``rawFactor``
DEFAULT_NAME_MAP = {
    "JetPt": "pt",
    "JetMass": "mass",
    "JetEta": "eta",
    "JetPhi": "phi",
    "JetA": "area",
    "ptRaw": "pt_raw",
    "massRaw": "mass_raw",
    "rawFactor": "rawFactor",
}


class JetCorrector(JetCorrectionChain):
    """The JEC → JER → JES chain on jagged jets (see the module docstring).

    The corrections as for ``JetCorrectionChain``; ``name_map``: the jets' field
    names by role where they differ from ``DEFAULT_NAME_MAP``, with coffea's keys
    (``JetPt``, ``JetMass``, ``JetEta``, ``JetPhi``, ``JetA``, ``ptRaw``, ``massRaw``;
    and ``rawFactor``); other keys of a coffea name map (``Rho``, ``ptGenJet``, MET
    fields) are not jet fields here and are ignored.
    """

    def __init__(
        self,
        jec: Any,
        uncertainty: Any = None,
        resolution: Any = None,
        scale_factor: Any = None,
        name_map: Mapping[str, str] | None = None,
    ):
        super().__init__(jec, uncertainty, resolution, scale_factor)
        given = {k: v for k, v in (name_map or {}).items() if k in DEFAULT_NAME_MAP}
        self.name_map = {**DEFAULT_NAME_MAP, **given}

    def _field(self, jets: ak.Array, role: str) -> Any:
        name = self.name_map[role]
        if name not in jets.fields:
            raise InvalidArgumentError(
                f"the jets have no field {name!r} ({role} in the name map); fields: "
                f"{', '.join(jets.fields)}"
            )
        return jets[name]

    def __call__(
        self,
        jets: ak.Array,
        rho: Any,
        event: Any = None,
        pt_gen: Any = None,
        *,
        jes: Any = 0.0,
        jer: Any = 0.0,
        pt_raw: Any = None,
        mass_raw: Any = None,
    ) -> ak.Array:
        """Corrected jagged jets as ``Momentum4D`` records.

        ``jets``: records with pt, eta, phi, mass, area (and rawFactor, unless
        ``pt_raw``/``mass_raw`` are given), named as in ``name_map``; ``rho``: per event; ``event``: the event
        number per event (seeds the stochastic smearing; required with JER);
        ``pt_gen``: the matched generator-jet pt per jet, 0 where unmatched (None:
        stochastic smearing for every jet); ``jes``, ``jer``: nuisance parameters θ.
        """
        for role, given in (("ptRaw", pt_raw), ("massRaw", mass_raw)):
            if given is None and self.name_map[role] in jets.fields:
                if role == "ptRaw":
                    pt_raw = jets[self.name_map[role]]
                else:
                    mass_raw = jets[self.name_map[role]]
        if pt_raw is None:
            pt_raw = self._field(jets, "JetPt") * (1.0 - self._field(jets, "rawFactor"))
        if mass_raw is None:
            mass_raw = self._field(jets, "JetMass") * (1.0 - self._field(jets, "rawFactor"))
        if event is not None:
            event = ak.values_astype(event, np.int64)
        eta, area = self._field(jets, "JetEta"), self._field(jets, "JetA")
        inputs = [pt_raw, mass_raw, eta, area, rho, event, pt_gen, jes, jer]
        columns = map_columns(self.correct_flat, inputs)
        fields = {"pt": columns.pop("pt"), "eta": eta, "phi": self._field(jets, "JetPhi")}
        fields["mass"] = columns.pop("mass")
        return ak.zip(
            {**fields, **columns}, with_name="Momentum4D", behavior=vector_awkward.behavior
        )
