"""Corrected jagged jets: the JEC → JER → JES chain of ``corrax.jets`` on awkward jets.

``JetCorrector`` applies, on jagged jets (awkward CPU or JAX backend), the CMS chain
as coffea's ``CorrectedJetsFactory`` does, with every correction evaluated by corrax;
the chain itself (JEC, JER hybrid smearing with HashPRNG noise, JES and JER as
nuisance parameters θ) is written once, on flat arrays, in
``corrax.jets.JetCorrectionChain`` (see its docstring), and applied here to the flat
buffers of the jagged fields.

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
        ``pt_raw``/``mass_raw`` are given), named as in ``name_map``; ``rho``: per
        event; ``event``: the event number per event (seeds the stochastic smearing;
        required with JER); ``pt_gen``: the matched generator-jet pt per jet, 0 where
        unmatched (None: stochastic smearing for every jet); ``jes``, ``jer``: nuisance
        parameters θ.
        """
        shifts = {"": (jes, jer)}
        raw = {"pt_raw": pt_raw, "mass_raw": mass_raw}
        return self.variations(jets, rho, event, pt_gen, shifts, **raw)[""]

    def variations(
        self,
        jets: ak.Array,
        rho: Any,
        event: Any = None,
        pt_gen: Any = None,
        shifts: Mapping[str, tuple[Any, Any]] | None = None,
        *,
        pt_raw: Any = None,
        mass_raw: Any = None,
    ) -> dict[str, ak.Array]:
        """``{name: corrected jets}`` for each (θ_JES, θ_JER) of ``shifts`` (default
        ``corrax.jets.DEFAULT_SHIFTS``: nominal, ``jes_up/down``, ``jer_up/down``),
        the corrections shared between them (``JetCorrectionChain.shifted_flat``);
        the other arguments as for calling the corrector."""
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
        phi = self._field(jets, "JetPhi")

        def flat(*inputs: Any) -> dict[tuple[str, str], Any]:
            shifted = self.shifted_flat(*inputs, shifts=shifts)
            return {(name, k): v for name, values in shifted.items() for k, v in values.items()}

        columns = map_columns(flat, [pt_raw, mass_raw, eta, area, rho, event, pt_gen])
        by_shift: dict[str, dict[str, ak.Array]] = {}
        for (name, field), values in columns.items():
            by_shift.setdefault(name, {})[field] = values
        return {
            name: ak.zip(
                {
                    "pt": fields.pop("pt"),
                    "eta": eta,
                    "phi": phi,
                    "mass": fields.pop("mass"),
                    **fields,
                },
                with_name="Momentum4D",
                behavior=vector_awkward.behavior,
            )
            for name, fields in by_shift.items()
        }
