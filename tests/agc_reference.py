"""A straightforward, independent AGC v2 implementation for the tests.

Plain awkward + numpy on the NanoAOD branches (read with uproot), corrections
evaluated with correctionlib directly, four-vectors summed by hand: no corrax, no
coffea. Returns ``{region: {variation: (observable, weight)}}`` per file.
"""

from __future__ import annotations

import awkward as ak
import correctionlib
import numpy as np
import uproot


def _hashprng_noise():
    document = {
        "schema_version": 2,
        "corrections": [
            {
                "name": "noise",
                "version": 1,
                "inputs": [
                    {"name": "event", "type": "int"},
                    {"name": "pt", "type": "real"},
                    {"name": "phi", "type": "real"},
                ],
                "output": {"name": "z", "type": "real"},
                "data": {
                    "nodetype": "hashprng",
                    "inputs": ["event", "pt", "phi"],
                    "distribution": "normal",
                },
            }
        ],
    }
    import json

    return correctionlib.CorrectionSet.from_string(json.dumps(document))["noise"]


def _flat_eval(correction, *columns):
    """correctionlib on jagged columns: flatten, evaluate, unflatten."""
    template = next(c for c in columns if isinstance(c, ak.Array) and c.ndim == 2)
    counts = ak.num(template)
    flat = [ak.to_numpy(ak.flatten(c)) if isinstance(c, ak.Array) else c for c in columns]
    return ak.unflatten(correction.evaluate(*flat), counts)


def _trijet_mass(pt, eta, phi, mass, btag, cut):
    px, py = pt * np.cos(phi), pt * np.sin(phi)
    pz = pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    jets = ak.zip({"px": px, "py": py, "pz": pz, "e": e, "btag": btag})
    tri = ak.combinations(jets, 3, fields=["a", "b", "c"])
    sx = tri.a.px + tri.b.px + tri.c.px
    sy = tri.a.py + tri.b.py + tri.c.py
    sz = tri.a.pz + tri.b.pz + tri.c.pz
    se = tri.a.e + tri.b.e + tri.c.e
    tri_pt = np.hypot(sx, sy)
    tri_mass = np.sqrt(np.maximum(se**2 - sx**2 - sy**2 - sz**2, 0))
    has_b = np.maximum(np.maximum(tri.a.btag, tri.b.btag), tri.c.btag) > cut
    tri_pt = ak.where(has_b, tri_pt, -1.0)
    best = ak.argmax(tri_pt, axis=1, keepdims=True)
    return ak.to_numpy(ak.firsts(tri_mass[best]))


def reference_histogram_inputs(path, norm, process, systematics_file, real=None):
    """Per region and variation: (observable values, weights) of the selected events.

    ``systematics_file``: a correctionlib CorrectionSet with ``event_systematics``;
    ``real``: dict of correctionlib corrections (muon, electron, pileup) or None.
    """
    ev = uproot.open(path)["Events"].arrays()
    systematics = systematics_file["event_systematics"]
    base = norm * ak.to_numpy(ev.genWeight).astype(np.float64)

    e_ok = (
        (ev.Electron_pt > 30)
        & (abs(ev.Electron_eta) < 2.1)
        & (ev.Electron_cutBased == 4)
        & (ev.Electron_sip3d < 4)
    )
    m_ok = (
        (ev.Muon_pt > 30)
        & (abs(ev.Muon_eta) < 2.1)
        & ev.Muon_tightId
        & (ev.Muon_sip3d < 4)
        & (ev.Muon_pfRelIso04_all < 0.15)
    )
    n_lep = ak.to_numpy(ak.sum(e_ok, axis=1) + ak.sum(m_ok, axis=1))

    sf = np.ones(len(ev))
    if real is not None:
        mu_pt, mu_eta = ev.Muon_pt[m_ok], ev.Muon_eta[m_ok]
        el_pt, el_eta = ev.Electron_pt[e_ok], ev.Electron_eta[e_ok]
        muon = {
            v: ak.to_numpy(
                ak.prod(_flat_eval(real["muon"], "2018_UL", abs(mu_eta), mu_pt, v), axis=1)
            )
            if ak.sum(ak.num(mu_pt))
            else np.ones(len(ev))
            for v in ("sf", "systup", "systdown")
        }
        elec = {
            v: ak.to_numpy(
                ak.prod(_flat_eval(real["electron"], "2018", v, "Tight", el_eta, el_pt), axis=1)
            )
            if ak.sum(ak.num(el_pt))
            else np.ones(len(ev))
            for v in ("sf", "sfup", "sfdown")
        }
        n_true = ak.to_numpy(ev.Pileup_nTrueInt).astype(np.float64)
        pileup = {v: real["pileup"].evaluate(n_true, v) for v in ("nominal", "up", "down")}
        sf_parts = {
            "muon_id": (muon["sf"], muon["systup"], muon["systdown"]),
            "electron_id": (elec["sf"], elec["sfup"], elec["sfdown"]),
            "pileup": (pileup["nominal"], pileup["up"], pileup["down"]),
        }
    else:
        sf_parts = {}

    jet_pt = ev.Jet_pt
    noise = _hashprng_noise()
    events_per_jet = ak.broadcast_arrays(ak.values_astype(ev.event, np.int64), jet_pt)[0]
    z = _flat_eval(noise, events_per_jet, jet_pt, ev.Jet_phi)
    variations = {
        "nominal": jet_pt,
        "pt_scale_up": jet_pt * 1.03,
        "pt_res_up": jet_pt * (1 + 0.05 * z),
    }
    out = {"4j1b": {}, "4j2b": {}}
    for name, pt in variations.items():
        good = (pt > 30) & (abs(ev.Jet_eta) < 2.4) & ((ev.Jet_jetId & 4) != 0)
        j_pt, j_eta, j_phi, j_mass = pt[good], ev.Jet_eta[good], ev.Jet_phi[good], ev.Jet_mass[good]
        j_btag = ev.Jet_btagCSVV2[good]
        weight_sf = sf.copy()
        if real is not None:
            for nominal, _, _ in sf_parts.values():
                weight_sf = weight_sf * nominal
        weight = base * weight_sf
        n_j = ak.to_numpy(ak.num(j_pt))
        n_b = ak.to_numpy(ak.sum(j_btag > 0.5, axis=1))
        one = (n_lep == 1) & (n_j >= 4) & (n_b == 1)
        two = (n_lep == 1) & (n_j >= 4) & (n_b >= 2)
        ht = ak.to_numpy(ak.sum(j_pt, axis=1))
        mbjj = _trijet_mass(j_pt[two], j_eta[two], j_phi[two], j_mass[two], j_btag[two], 0.5)
        label = name
        out["4j1b"][label] = (ht[one], weight[one])
        out["4j2b"][label] = (mbjj, weight[two])
        if name != "nominal":
            continue
        for region, mask, obs in (("4j1b", one, ht[one]), ("4j2b", two, mbjj)):
            for i in range(4):
                for direction in ("up", "down"):
                    if mask.sum():
                        jets_i = ak.to_numpy(j_pt[mask][:, i]).astype(np.float64)
                        change = systematics.evaluate("btag_var", direction, jets_i)
                    else:
                        change = np.ones(0)
                    out[region][f"btag_var_{i}_{direction}"] = (obs, weight[mask] * change)
            if process == "wjets":
                for direction in ("up", "down"):
                    change = systematics.evaluate("scale_var", direction, np.zeros(int(mask.sum())))
                    out[region][f"scale_var_{direction}"] = (obs, weight[mask] * change)
            if real is not None:
                for pname, (nominal, up, down) in sf_parts.items():
                    for direction, varied in (("up", up), ("down", down)):
                        w = weight / nominal * varied
                        out[region][f"{pname}_{direction}"] = (obs, w[mask])
    return out
