"""Corrections on awkward arrays: jagged layouts in and out, both backends, dask,
behaviors on records and NanoEvents collections. Oracle: correctionlib on the same
jagged arrays (it evaluates CPU awkward arrays natively) and finite differences."""

from __future__ import annotations

import functools
import warnings

import awkward as ak
import correctionlib
import jax
import numpy as np
import pytest
from conftest import CORRECTIONS_DIR, SHARED_DATA, require_shared
from documents import REAL, STRING, binning, category, document, formula, text, variables
from oracle import oracle_set

import corrax
import corrax.awkward as cak
from corrax import _columnar as columns  # the columnar layer (private: internals checked)

INPUTS = variables(("syst", STRING), ("eta", REAL), ("pt", REAL))
DOC = document(
    category(
        "syst",
        {
            "nom": binning(
                "eta",
                [-2.5, 0.0, 2.5],
                [formula("[0]+[1]*log(x)", ["pt"], [0.9, 0.02]), formula("[0]*x", ["pt"], [0.01])],
                "error",
            ),
            "up": binning("pt", [0.0, 50.0, 1000.0], [1.1, 1.2], "clamp"),
            "down": 0.9,
        },
    ),
    INPUTS,
)
ETA = ak.Array([[0.3, -1.7], [], [2.0, 0.1, -0.4]])
PT = ak.Array([[35.0, 60.0], [], [25.0, 80.0, 120.0]])


@pytest.fixture(name="pair")
def pair_fixture():
    return corrax.CorrectionSet(DOC)["c"], oracle_set(text(DOC))["c"]


@pytest.fixture(scope="module", autouse=True)
def _jax_backend():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the backend's own notice
        ak.jax.register_and_check()


def _jax(array):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return ak.to_backend(array, "jax")


def test_jagged_values_and_layout_equal_correctionlib(pair):
    corr, reference = pair
    got, want = corr.evaluate("nom", ETA, PT), reference.evaluate("nom", ETA, PT)
    assert isinstance(got, ak.Array) and got.type == want.type
    assert got.tolist() == want.tolist()


def test_event_level_inputs_broadcast_against_objects(pair):
    corr, reference = pair
    event_eta = np.array([0.5, -1.0, 1.5])  # one value per event
    got = corr.evaluate("nom", ak.Array(event_eta), PT)
    assert got.tolist() == reference.evaluate("nom", ak.Array(event_eta), PT).tolist()
    assert corr.evaluate("nom", 0.5, PT).tolist() == reference.evaluate("nom", 0.5, PT).tolist()


def test_missing_values_stay_missing_and_are_not_evaluated(pair):
    corr, reference = pair
    eta = ak.mask(ETA, ak.Array([[True, False], [], [True, True, False]]))
    pt = ak.Array([[35.0, 60.0], [], [25.0, None, 120.0]])
    got = corr.evaluate("nom", eta, pt)
    assert got.tolist() == [
        [reference.evaluate("nom", 0.3, 35.0), None],
        [],
        [reference.evaluate("nom", 2.0, 25.0), None, None],
    ]
    # a masked-out value outside the bins would fail: masked, it is never evaluated
    outside = ak.mask(ak.Array([[0.3, 99.0]]), ak.Array([[True, False]]))
    assert corr.evaluate("nom", outside, ak.Array([[30.0, 30.0]])).tolist()[0][1] is None


def test_sliced_nested_and_indexed_layouts(pair):
    corr, reference = pair
    sliced = PT[[2, 0]][PT[[2, 0]] > 30.0]
    eta = ETA[[2, 0]][PT[[2, 0]] > 30.0]
    assert (
        corr.evaluate("nom", eta, sliced).tolist()
        == reference.evaluate("nom", eta, sliced).tolist()
    )
    nested = ak.Array([[[0.3], [1.0, -1.0]], [], [[2.0]]])
    got = corr.evaluate("nom", nested, 40.0)
    assert got.tolist() == reference.evaluate("nom", nested, 40.0).tolist()


def test_lists_sharing_offsets_in_any_form(pair):
    """Lists of one collection take a path without awkward's broadcasting: offsets
    not starting at 0, 32-bit offsets, per-event NumPy and awkward numbers, float32."""
    corr, reference = pair
    counts = ak.num(PT)
    per_event = np.array([0.5, -1.0, 1.5])
    int32 = ak.Array(
        ak.contents.ListOffsetArray(
            ak.index.Index32(PT.layout.offsets.data.astype(np.int32)), PT.layout.content
        )
    )
    index = ak.index.Index64(np.array([2, 0]))  # NanoEvents' form of an event selection
    records = ak.zip({"eta": ETA, "pt": PT})
    selected = records[records.pt > 30.0]  # indexed contents
    cases = [
        (ETA[1:], PT[1:]),  # offsets start at 2
        (ETA, int32),
        (per_event, PT),
        (ak.Array(per_event), ak.values_astype(PT, np.float32)),
        (selected.eta, selected.pt),
        (ak.Array(per_event)[[2, 0, 1]], selected.pt),
        (per_event[1:], int32[1:]),  # repeated against offsets starting at 2
        (ETA[[True, False, True]], PT[[True, False, True]]),  # event selections
        (per_event[[2, 0]], PT[[2, 0]]),
        (ak.Array(per_event)[[2, 0]], ak.Array(ak.contents.IndexedArray(index, PT.layout))),
    ]
    for eta, pt in cases:
        got, want = corr.evaluate("nom", eta, pt), reference.evaluate("nom", eta, pt)
        assert got.type == want.type
        assert got.tolist() == want.tolist()
        # these take the path without broadcasting (the speed of the common case)
        assert columns._one_collection([ak.Array(eta), pt]) is not None
    # lists with parameters: broadcast by awkward, whose result type correctionlib has
    named = ak.with_parameter(PT, "__list__", "Named")
    for eta, pt in [(per_event, named), (ETA, named)]:
        got, want = corr.evaluate("nom", eta, pt), reference.evaluate("nom", eta, pt)
        assert got.type == want.type and got.tolist() == want.tolist()
    assert ak.all(ak.num(corr.evaluate("nom", ETA, PT)) == counts)
    before = ak.to_list(PT)
    corr.evaluate("nom", ETA, PT)
    assert ak.to_list(PT) == before  # inputs untouched
    with pytest.raises(ValueError, match="broadcast"):
        corr.evaluate("nom", ETA, PT[[0, 2, 1]])  # other counts: awkward's error
    with pytest.raises(ValueError, match="broadcast"):
        corr.evaluate("nom", per_event[:2], PT)


def test_every_correction_type_takes_jagged_input(pair):
    corr, reference = pair
    want = reference.evaluate("nom", ETA, PT).tolist()
    assert corr.lower("nom").evaluate(ETA, PT).tolist() == want
    assert corr.bind("nom")(ETA, PT).tolist() == want
    assert corr.relaxed("straight_through").evaluate("nom", ETA, PT).tolist() == want
    nuisance = corr.nuisance("syst", nominal="nom")
    for theta, key in [(0.0, "nom"), (1.0, "up"), (-1.0, "down")]:
        np.testing.assert_allclose(
            ak.flatten(nuisance.evaluate(theta, ETA, PT)),
            ak.flatten(reference.evaluate(key, ETA, PT)),
            rtol=1e-15,
        )


def test_jagged_errors_name_the_value(pair):
    corr, _ = pair
    with pytest.raises(corrax.OutOfBoundsError, match="'eta' = 3.0 is above"):
        corr.evaluate("nom", ak.Array([[0.1], [3.0]]), ak.Array([[30.0], [30.0]]))


def test_jax_backend_values_and_gradients(pair):
    corr, reference = pair
    eta, pt = _jax(ETA), _jax(PT)
    values = corr.evaluate("nom", eta, pt)
    assert ak.backend(values) == "jax"
    np.testing.assert_allclose(
        ak.flatten(ak.to_backend(values, "cpu")), ak.flatten(reference.evaluate("nom", ETA, PT))
    )

    def total(pt):
        return ak.sum(pt * corr.evaluate("nom", eta, pt))

    grad = ak.flatten(ak.to_backend(jax.grad(total)(pt), "cpu")).to_numpy()
    flat_eta, flat_pt = ak.flatten(ETA).to_numpy(), ak.flatten(PT).to_numpy()
    step = 1e-5
    numeric = [
        (
            (p + step) * reference.evaluate("nom", e, p + step)
            - (p - step) * reference.evaluate("nom", e, p - step)
        )
        / (2 * step)
        for e, p in zip(flat_eta, flat_pt, strict=True)
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-7)


def test_gradient_with_respect_to_correction_numbers_through_jagged_input(pair):
    corr, _ = pair
    bound = corr.bind("nom")
    eta, pt = _jax(ETA), _jax(PT)
    jagged = jax.grad(lambda b: ak.sum(b.evaluate(eta, pt)))(bound)
    flat = jax.grad(
        lambda b: b.evaluate(ak.flatten(ETA).to_numpy(), ak.flatten(PT).to_numpy()).sum()
    )(bound)
    for name, leaf in jagged.leaves_by_name().items():
        np.testing.assert_allclose(leaf, flat.leaves_by_name()[name], rtol=1e-14, err_msg=name)


def test_dask_awkward_partitions_equal_eager(pair):
    dak = pytest.importorskip("dask_awkward")
    corr, reference = pair
    lazy = corr.evaluate(
        "nom", dak.from_awkward(ETA, npartitions=2), dak.from_awkward(PT, npartitions=2)
    )
    assert isinstance(lazy, dak.Array)
    assert lazy.compute().tolist() == reference.evaluate("nom", ETA, PT).tolist()


def _muons(backend="cpu"):
    records = ak.zip({"pt": PT, "eta": ETA}, with_name="Muon")
    return records if backend == "cpu" else _jax(records)


@pytest.mark.parametrize("backend", ["cpu", "jax"])
def test_behaviors_on_plain_records(pair, backend):
    corr, reference = pair
    binding = cak.Binding(corr, syst=cak.argument("nom"), eta="eta", pt=lambda m: m.pt)
    before = dict(ak.behavior)
    muons = cak.with_corrections(_muons(backend), sf=binding)
    assert dict(ak.behavior) == before and "Muon" not in ak.behavior  # nothing global
    for result, key in [
        (muons.sf(), "nom"),
        (muons.sf("up"), "up"),
        (muons.sf(syst="down"), "down"),
    ]:
        got = ak.to_backend(result, "cpu")
        assert got.tolist() == reference.evaluate(key, ETA, PT).tolist()
    selected = muons[muons.pt > 30.0]
    want = reference.evaluate("nom", ETA[PT > 30.0], PT[PT > 30.0]).tolist()
    assert ak.to_backend(selected.sf(), "cpu").tolist() == want
    with pytest.raises(AttributeError):
        _ = _muons(backend).sf  # the input array is unchanged


def test_binding_checks_its_sources(pair):
    corr, _ = pair
    with pytest.raises(corrax.InvalidArgumentError, match="missing \\['pt'\\]"):
        cak.Binding(corr, syst="nom", eta="eta")
    binding = cak.Binding(corr, syst="nom", eta="eta", pt="pt")
    with pytest.raises(corrax.InvalidArgumentError, match="named records"):
        cak.with_corrections(PT, sf=binding)
    assert (
        cak.with_corrections(_muons(), sf=binding).sf.tolist()
        == corr.evaluate("nom", ETA, PT).tolist()
    )


NANOAOD = SHARED_DATA / "nanoaod"
MUON_FILE = CORRECTIONS_DIR / "MUO__2018_UL__muon_Z.json.gz"
JEC_FILE = CORRECTIONS_DIR / "JME__2018_UL__jet_jerc.json.gz"
JEC = "Summer19UL18_V5_MC_L1L2L3Res_AK4PFchs"
NANO_FILES = [
    "nano_dy.root",
    "nano_dimuon.root",
    "nano_tree.root",
    "nanoAOD_2015_CMS_Open_Data_ttbar.root",
    "cmsopendata2015_ttbar_19980_NANOAOD_RNTupleImporter_rntuple_v1-0-0-1.root",
]


PILEUP_FILE = CORRECTIONS_DIR / "LUM__2018_UL__puWeights.json.gz"


@functools.cache
def _sets(path):
    """(corrax, correctionlib) correction sets of a real file, loaded once."""
    return corrax.CorrectionSet.from_file(path), correctionlib.CorrectionSet.from_file(str(path))


def _events(name):
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    path = require_shared(NANOAOD / name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # coffea's notes on missing cross-references
        return NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager"
        ).events()


@pytest.mark.parametrize("name", NANO_FILES)
def test_real_nanoaod_objects_equal_correctionlib(name):
    events = _events(name)
    ours, theirs = _sets(require_shared(JEC_FILE))
    jec, reference = ours.compound[JEC], theirs.compound[JEC]
    jets = events.Jet
    raw_pt = jets.pt * (1 - jets.rawFactor)
    args = (jets.area, jets.eta, raw_pt, events.fixedGridRhoFastjetAll)
    got, want = jec.evaluate(*args), reference.evaluate(*args)
    assert got.type == want.type
    np.testing.assert_allclose(ak.flatten(got), ak.flatten(want), rtol=1e-12)
    selected = events[ak.num(events.Jet) >= 2]  # an event selection: indexed layouts
    jets = selected.Jet[selected.Jet.pt > 20]
    raw_pt = jets.pt * (1 - jets.rawFactor)
    args = (jets.area, jets.eta, raw_pt, selected.fixedGridRhoFastjetAll)
    assert columns._one_collection(list(args)) is not None  # without awkward's broadcast
    got, want = jec.evaluate(*args), reference.evaluate(*args)
    assert got.type == want.type
    np.testing.assert_allclose(ak.flatten(got), ak.flatten(want), rtol=1e-12)

    ours, theirs = _sets(MUON_FILE)
    muon_sf = ours["NUM_TightID_DEN_TrackerMuons"]
    muon_reference = theirs[muon_sf.name]
    binding = cak.Binding(
        muon_sf, year="2018_UL", abseta=lambda m: abs(m.eta), pt="pt", ValType=cak.argument("sf")
    )
    muons = events.Muon[(events.Muon.pt > 15) & (abs(events.Muon.eta) < 2.4)]
    muons = cak.with_corrections(muons, id_sf=binding)
    for key in ("sf", "systup"):
        want = muon_reference.evaluate("2018_UL", abs(muons.eta), muons.pt, key)
        assert muons.id_sf(key).tolist() == want.tolist()
    tight = muons[muons.tightId]  # a selection keeps the behavior
    assert ak.num(tight.id_sf(), axis=0) == len(events)
    np.testing.assert_allclose(
        cak.product(tight.id_sf()),
        [
            np.prod(event)
            for event in muon_reference.evaluate("2018_UL", abs(tight.eta), tight.pt, "sf").tolist()
        ],
        rtol=1e-15,
    )
    if "Pileup" in events.fields:  # simulation: the pileup weight of each event
        ours, theirs = _sets(PILEUP_FILE)
        name = "Collisions18_UltraLegacy_goldenJSON"
        n_true = events.Pileup.nTrueInt
        for variation in ("nominal", "up", "down"):
            np.testing.assert_array_equal(
                ours[name].evaluate(n_true, variation), theirs[name].evaluate(n_true, variation)
            )


def _loop_weights(sf, eff, tagged):
    """The fixed-WP weight written out event by event (independent of awkward)."""
    weights = []
    for event_sf, event_eff, event_tag in zip(sf, eff, tagged, strict=True):
        weight = 1.0
        for s, e, t in zip(event_sf, event_eff, event_tag, strict=True):
            weight *= s if t else (1.0 - s * e) / (1.0 - e)
        weights.append(weight)
    return np.array(weights)


def test_event_weights_from_per_object_factors(pair):
    corr, reference = pair
    sf = corr.evaluate("nom", ETA, PT)
    want = [np.prod(event) for event in reference.evaluate("nom", ETA, PT).tolist()]
    np.testing.assert_allclose(cak.product(sf), want, rtol=1e-15)
    assert cak.product(ak.Array([[], [None, 2.0]])).tolist() == [1.0, 2.0]
    eff = ak.Array([[0.7, 0.1], [], [0.65, 0.6, 0.02]])
    tagged = ak.Array([[True, False], [], [False, True, False]])
    np.testing.assert_allclose(
        cak.btag_fixed_wp(sf, eff, tagged),
        _loop_weights(sf.tolist(), eff.tolist(), tagged.tolist()),
        rtol=1e-14,
    )


def test_event_weight_gradients_on_the_jax_backend(pair):
    corr, _ = pair
    eta, pt = _jax(ETA), _jax(PT)
    relaxed = corr.relaxed("straight_through")

    def log_weight_sum(pt):
        return ak.sum(np.log(cak.product(relaxed.evaluate("nom", eta, pt))))

    grad = ak.flatten(ak.to_backend(jax.grad(log_weight_sum)(pt), "cpu")).to_numpy()
    # d/dpt of sum_events log prod_i SF_i = sum over objects of SF'_i / SF_i
    flat_eta, flat_pt = ak.flatten(ETA).to_numpy(), ak.flatten(PT).to_numpy()
    sf = relaxed.evaluate("nom", flat_eta, flat_pt)
    slope = jax.vmap(jax.grad(lambda e, p: relaxed.evaluate("nom", e, p), argnums=1))(
        flat_eta, flat_pt
    )
    np.testing.assert_allclose(grad, slope / sf, rtol=1e-12)
