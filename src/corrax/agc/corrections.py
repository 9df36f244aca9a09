"""The corrections the AGC analysis uses, as corrax objects.

* ``agc_systematics()``: the AGC's ``event_systematics`` correction (b-tag weight
  variations ``1 ± 0.075 pt/50`` for ``btag_var`` and ``btag_var_1..4``, W+jets scale
  1.025 / 0.975), written here with correctionlib's schema models from the AGC's
  documented definition, so a fresh clone needs no file; the AGC's own
  ``corrections.json`` can be passed instead (``load_systematics(path)``).
* ``RealCorrections.from_folder``: real CMS correction files (2018 UL, the names
  below): JEC compound, JES uncertainty, JER resolution and scale factor, muon and
  electron ID scale factors and pileup weights, each optional.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import correctionlib.schemav2 as schema
import numpy as np

from ..correctionset import CorrectionSet

__all__ = [
    "JEC_NAMES",
    "RealCorrections",
    "agc_systematics",
    "jet_resolution_noise",
    "load_systematics",
    "matched_gen_pt",
]

JEC_FILE = "JME__2018_UL__jet_jerc.json.gz"
JEC_NAMES = {
    "jec": "Summer19UL18_V5_MC_L1L2L3Res_AK4PFchs",
    "uncertainty": "Summer19UL18_V5_MC_Total_AK4PFchs",
    "resolution": "Summer19UL18_JRV2_MC_PtResolution_AK4PFchs",
    "scale_factor": "Summer19UL18_JRV2_MC_ScaleFactor_AK4PFchs",
}
MUON_FILE, MUON_SF = "MUO__2018_UL__muon_Z.json.gz", "NUM_TightID_DEN_TrackerMuons"
ELECTRON_FILE, ELECTRON_SF = "EGM__2018_UL__electron.json.gz", "UL-Electron-ID-SF"
PILEUP_FILE, PILEUP = "LUM__2018_UL__puWeights.json.gz", "Collisions18_UltraLegacy_goldenJSON"
# the fixed inputs of the scale factors, and the lowest pt each file covers (its pt
# binning's flow is "error" below)
MUON_YEAR, MUON_SF_MIN_PT = "2018_UL", 15.0
ELECTRON_YEAR, ELECTRON_WORKING_POINT, ELECTRON_SF_MIN_PT = "2018", "Tight", 10.0


def matched_gen_pt(gen_jet_index: Any, gen_jet_pt: Any) -> Any:
    """Per jet (jagged, awkward): the pt of the generator jet ``Jet_genJetIdx`` points
    to, 0 where it points nowhere (−1, or past the event's generator jets) — the
    input of the JER hybrid smearing."""
    valid = (gen_jet_index >= 0) & (gen_jet_index < ak.num(gen_jet_pt))
    gen_pt = ak.pad_none(gen_jet_pt, 1, axis=1)[ak.where(valid, gen_jet_index, 0)]
    return ak.where(valid, ak.fill_none(gen_pt, 0.0), 0.0)


def _btag_variation() -> schema.Category:
    def formula(sign: str) -> schema.Formula:
        return schema.Formula(
            nodetype="formula",
            expression=f"1.0 {sign} (x*0.075 / 50)",
            parser="TFormula",
            variables=["pt"],
        )

    return schema.Category(
        nodetype="category",
        input="direction",
        content=[
            schema.CategoryItem(key="up", value=formula("+")),
            schema.CategoryItem(key="down", value=formula("-")),
        ],
        default=1.0,
    )


def _systematics_document() -> schema.CorrectionSet:
    scale = schema.Category(
        nodetype="category",
        input="direction",
        content=[
            schema.CategoryItem(key="up", value=1.025),
            schema.CategoryItem(key="down", value=0.975),
        ],
        default=1.0,
    )
    names = ("btag_var", "btag_var_1", "btag_var_2", "btag_var_3", "btag_var_4")
    correction = schema.Correction(
        name="event_systematics",
        description="Multiplicative event weight for a systematic variation (AGC)",
        version=1,
        inputs=[
            schema.Variable(name="syst_name", type="string"),
            schema.Variable(name="direction", type="string"),
            schema.Variable(name="pt", type="real", description="one jet pt per event (GeV)"),
        ],
        output=schema.Variable(name="weight", type="real"),
        data=schema.Category(
            nodetype="category",
            input="syst_name",
            content=[schema.CategoryItem(key="scale_var", value=scale)]
            + [schema.CategoryItem(key=name, value=_btag_variation()) for name in names],
            default=1.0,
        ),
    )
    return schema.CorrectionSet(schema_version=2, corrections=[correction])


def agc_systematics() -> Any:
    """The AGC's ``event_systematics`` correction (inputs syst_name, direction, pt)."""
    document = _systematics_document().model_dump_json(exclude_unset=True)
    return CorrectionSet.from_string(document)["event_systematics"]


def jet_resolution_noise() -> Any:
    """Standard normal numbers from correctionlib's HashPRNG seeded by (event, pt, φ)
    of a jet: the reproducible version of the AGC's ``pt_res_up`` smearing."""
    correction = schema.Correction(
        name="agc_jet_resolution_noise",
        version=1,
        inputs=[
            schema.Variable(name="event", type="int"),
            schema.Variable(name="pt", type="real"),
            schema.Variable(name="phi", type="real"),
        ],
        output=schema.Variable(name="z", type="real"),
        data=schema.HashPRNG(
            nodetype="hashprng", inputs=["event", "pt", "phi"], distribution="normal"
        ),
    )
    document = schema.CorrectionSet(schema_version=2, corrections=[correction])
    return CorrectionSet.from_string(document.model_dump_json(exclude_unset=True))[
        "agc_jet_resolution_noise"
    ]


def load_systematics(path: str | Path | None = None) -> Any:
    """The AGC's systematics correction: from ``path`` (its corrections.json) or built in."""
    if path is None:
        return agc_systematics()
    return CorrectionSet.from_file(str(path))["event_systematics"]


@dataclass
class RealCorrections:
    """Real CMS corrections (corrax objects), each None when its file is absent."""

    jec: Any = None
    uncertainty: Any = None
    resolution: Any = None
    scale_factor: Any = None
    muon_id: Any = None
    electron_id: Any = None
    pileup: Any = None
    jec_file: Path | None = None

    @classmethod
    def from_folder(cls, folder: str | Path | None) -> RealCorrections:
        """Load what exists of the files named in this module from ``folder``."""
        if folder is None:
            return cls()
        folder = Path(folder)
        found: dict[str, Any] = {}
        if (folder / JEC_FILE).exists():
            jerc = CorrectionSet.from_file(str(folder / JEC_FILE))
            found["jec"] = jerc.compound[JEC_NAMES["jec"]]
            for key in ("uncertainty", "resolution", "scale_factor"):
                found[key] = jerc[JEC_NAMES[key]]
            found["jec_file"] = folder / JEC_FILE
        for key, file, name in (
            ("muon_id", MUON_FILE, MUON_SF),
            ("electron_id", ELECTRON_FILE, ELECTRON_SF),
            ("pileup", PILEUP_FILE, PILEUP),
        ):
            if (folder / file).exists():
                found[key] = CorrectionSet.from_file(str(folder / file))[name]
        return cls(**found)

    @property
    def has_jets(self) -> bool:
        return self.jec is not None

    def lepton_id_factors(self, flavour: str, pt: Any, eta: Any, identified: Any) -> np.ndarray:
        """Per lepton (flat arrays): the nominal ID scale factor of an ``identified``
        lepton (``flavour`` ``"electron"`` or ``"muon"``); 1 for the others and without
        the file. Below the file's pt range (``*_SF_MIN_PT``, 15 and 10 GeV) the factor
        is 1 too: the soft analysis gives such leptons a small pass probability, where
        the hard analysis, evaluating the factor of a selected lepton, would raise
        (its lepton pt threshold must stay above the range; the optimiser's box starts
        at 27 GeV)."""
        pt, eta = np.asarray(pt, dtype=np.float64), np.asarray(eta, dtype=np.float64)
        factors = np.ones_like(pt)
        if flavour == "muon":
            correction, minimum = self.muon_id, MUON_SF_MIN_PT
        elif flavour == "electron":
            correction, minimum = self.electron_id, ELECTRON_SF_MIN_PT
        else:
            raise ValueError(f"flavour must be 'electron' or 'muon', not {flavour!r}")
        where = np.asarray(identified, dtype=bool) & (pt >= minimum)
        if correction is None or not where.any():
            return factors
        if flavour == "muon":
            values = correction.evaluate(MUON_YEAR, np.abs(eta[where]), pt[where], "sf")
        else:
            arguments = (ELECTRON_YEAR, "sf", ELECTRON_WORKING_POINT, eta[where], pt[where])
            values = correction.evaluate(*arguments)
        factors[where] = np.asarray(values)
        return factors

    def pileup_weight(self, n_true_interactions: Any) -> np.ndarray:
        """Per event: the nominal pileup weight (1 without the file)."""
        n = np.asarray(n_true_interactions, dtype=np.float64)
        if self.pileup is None:
            return np.ones_like(n)
        return np.asarray(self.pileup.evaluate(n, "nominal"))
