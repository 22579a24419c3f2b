"""``chimes.hierarchical`` input validation: every consistency rule is refused before anything is launched.

The given tiles are the official al_driver C and N tiles (``tests/data/hierarch_params``); the global settings are
those of the al_driver hierarchical C/N example (its ``fm_setup.in``, copied below as constants).  Each wrong input
is checked by building the process (``instantiate_process``: the inputs are validated, nothing runs) and asserting
on the message, which names the offending tile and setting.  ``plan_fits`` and ``fit_frames_filter`` are tested
directly.
"""

from __future__ import annotations

import copy
import gzip

import pytest
from aiida import orm
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager

from aiida_chimes.chimes.hierarchy import HierarchyError, settings_for_tile
from aiida_chimes.chimes.params import read_params
from aiida_chimes.data.potential import ChimesPotentialData
from aiida_chimes.data.training_set import TrainingSetData
from aiida_chimes.workflows.active_learning import ActiveLearningWorkChain
from aiida_chimes.workflows.hierarchical import HierarchicalFitWorkChain, fit_frames_filter, plan_fits
from tests.helpers import DATA_DIR, hierarch_params_path

C, N, O, CN = frozenset("C"), frozenset("N"), frozenset("O"), frozenset("CN")

#: Global C/N settings of the al_driver example (ALL_BASE_FILES/ALC-0_BASEFILES/fm_setup.in) without its
#: tile-specific parts: pair lines, PAIRTYP 25 10 4, FCUTTYP TERSOFF 0.75, many-body cutoffs 5.0 (3B) / 4.5 (4B).
SETTINGS = {
    "types": ["C", "N"],
    "pairs": {
        "C-C": {"s_minim": 0.98, "s_maxim": 5.0, "morse_lambda": 1.4},
        "N-N": {"s_minim": 0.86, "s_maxim": 8.0, "morse_lambda": 1.09},
        "C-N": {"s_minim": 0.90, "s_maxim": 5.0, "morse_lambda": 1.34},
    },
    "orders": [25, 10, 4],
    "fit_energy": True,
    "fit_stress": "all",
    "special": {"3B S_MAXIM": 5.0, "4B S_MAXIM": 4.5},
    "fcut_type": "TERSOFF",
    "fcut_var": 0.75,
}
#: The fm_setup.in's hierarchical part (C and N given): HIERARC true, EXCLUDE 1B-4B, SPECIFIC many-body cutoffs.
EXCLUDE = {"1": ["C", "N"], "2": ["C C", "N N"], "3": ["C C C", "N N N"], "4": ["C C C C", "N N N N"]}
SPECIFIC = {
    "3B S_MAXIM": [["CCCNCN", ["CC", "CN", "CN"], [5.0, 5.0, 5.0]],
                   ["CNCNNN", ["CN", "CN", "NN"], [5.0, 5.0, 5.0]]],
    "4B S_MAXIM": [["CCCCCNCCCNCN", ["CC", "CC", "CN", "CC", "CN", "CN"], [4.5] * 6],
                   ["CCCNCNCNCNNN", ["CC", "CN", "CN", "CN", "CN", "NN"], [4.5] * 6],
                   ["CNCNCNNNNNNN", ["CN", "CN", "CN", "NN", "NN", "NN"], [4.5] * 6]],
}
HIERARCHICAL = {**SETTINGS, "hierarchical": True, "exclude": EXCLUDE, "special": SPECIFIC}
#: One state point per tile of the C/N system.
STATE_POINTS = {
    "C": {"temperature": 2000.0, "composition": {"C": 8}, "density": 2.0},
    "N": {"temperature": 2000.0, "composition": {"N": 8}, "density": 1.6},
    "CN": {"temperature": 2000.0, "composition": {"C": 4, "N": 4}, "density": 1.9},
}
CN_ONLY = {"CN": STATE_POINTS["CN"]}


# ===================================================================== fixtures and helpers
@pytest.fixture(scope="module")
def codes(tmp_path_factory):
    """Four codes on a module-wide localhost (never run: validation only)."""
    computer = orm.Computer(label="hierarchical-inputs-localhost", hostname="localhost", transport_type="core.local",
                            scheduler_type="core.direct",
                            workdir=str(tmp_path_factory.mktemp("hierarchical_inputs"))).store()
    computer.configure()
    spec = {"design_matrix": "chimes.design_matrix", "regression": "chimes.regression", "md": "chimes.md",
            "label": "chimes.label_xtb"}
    return {key: orm.InstalledCode(computer=computer, filepath_executable="/bin/true", label=f"inputs-{key}",
                                   default_calc_job_plugin=plugin).store() for key, plugin in spec.items()}


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    """The official C and N tiles as ChimesPotentialData (from the gunzipped files)."""
    folder = tmp_path_factory.mktemp("tiles")
    out = {}
    for symbol in "CN":
        path = folder / f"{symbol}.params.txt.reduced"
        path.write_bytes(gzip.decompress(hierarch_params_path(path.name).read_bytes()))
        out[symbol] = ChimesPotentialData.get_or_create(path)
    return out


@pytest.fixture(scope="module")
def cn_tile():
    """A cross tile CN only: the al_driver new fit ALC-3 with its CC/NN pair terms and energy offsets zeroed."""
    params = read_params(DATA_DIR / "hierarchy" / "ALC-3.params.txt.gz")
    params.pair_coeffs[0][:] = 0.0
    params.pair_coeffs[1][:] = 0.0
    params.energy_offsets[:] = 0.0
    node = ChimesPotentialData.from_params(params).store()
    assert node.tiles == [["C", "N"]]
    return node


def builder(codes, settings=SETTINGS, state_points=STATE_POINTS, **inputs):
    b = HierarchicalFitWorkChain.get_builder_from_protocol(codes, settings, state_points, protocol="fast")
    for key, value in inputs.items():
        b[key] = value
    return b


def refused(b) -> str:
    """The validation message of a builder that must be refused (the process is never run)."""
    with pytest.raises(ValueError) as info:
        instantiate_process(get_manager().get_runner(), b)
    return str(info.value)


def accepted(b):
    """The node of a process built (and validated) from the builder, not run."""
    node = instantiate_process(get_manager().get_runner(), b).node
    assert node.process_state.value == "created"
    return node


def _edit(settings: dict, path: tuple, value) -> dict:
    out = copy.deepcopy(settings)
    d = out
    for key in path[:-1]:
        d = d[key]
    d[path[-1]] = value
    return out


# ===================================================================== the official settings pass
def test_official_settings_and_tiles_are_accepted(codes, tiles):
    """Global settings (ALL cutoffs, no HIERARC) and the official fm_setup's hierarchical settings both pass."""
    accepted(builder(codes, tiles=tiles))
    accepted(builder(codes, HIERARCHICAL, CN_ONLY, tiles=tiles))
    # the hierarchical part of the official fm_setup.in is what settings_for_tile builds for tile CN
    lower = [tiles[s].get_params() for s in "CN"]
    built = settings_for_tile(SETTINGS, CN, lower)
    assert built["hierarchical"] is True and built["exclude"] == EXCLUDE and built["special"] == SPECIFIC


# ===================================================================== consistency rules
@pytest.mark.parametrize("path,value,message", [
    (("pairs", "C-C", "s_maxim"), 4.5,
     r"tile C (ChimesPotentialData<{C}>:params.txt): pair CC has S_MAXIM 5.0 in the tile but 4.5"),
    (("pairs", "N-N", "s_minim"), 0.9, r"tile N (ChimesPotentialData<{N}>:params.txt): pair NN has S_MINIM 0.86"),
    (("pairs", "N-N", "morse_lambda"), 1.0,
     r"tile N (ChimesPotentialData<{N}>:params.txt): pair NN has MORSE_LAMBDA 1.09 in the tile but 1.0"),
], ids=["pair S_MAXIM", "pair S_MINIM", "Morse lambda"])
def test_pair_settings_differ_from_a_tile(codes, tiles, path, value, message):
    """With HIERARC true the global pair settings are checked against the tiles that have the pair."""
    text = refused(builder(codes, _edit(HIERARCHICAL, path, value), CN_ONLY, tiles=tiles))
    assert message.format(C=tiles["C"].pk, N=tiles["N"].pk) in text


def test_pair_settings_of_a_plain_global_settings_must_equal_the_tiles(codes, tiles):
    """Without HIERARC too, a pair line that differs from a given tile's is refused before anything runs."""
    settings = _edit(SETTINGS, ("pairs", "C-C", "s_maxim"), 4.5)
    text = refused(builder(codes, settings, CN_ONLY, tiles=tiles))
    assert (f"tile C (ChimesPotentialData<{tiles['C'].pk}>:params.txt): pair CC has S_MAXIM 5.0 in the tile but 4.5 "
            "in the global fit settings") in text


def test_pairs_left_out_of_the_settings_come_from_the_tiles(codes, tiles):
    """Pair lines the settings leave out are taken from the given tiles (settings_for_tile, documented)."""
    settings = {**SETTINGS, "pairs": {"C-N": SETTINGS["pairs"]["C-N"]}}
    accepted(builder(codes, settings, CN_ONLY, tiles=tiles))
    built = settings_for_tile(settings, CN, [tiles["C"].get_params(), tiles["N"].get_params()])
    assert built["pairs"]["C-C"]["s_maxim"] == 5.0


@pytest.mark.parametrize("path,value,message", [
    (("fcut_type",), "CUBIC", "tile C (ChimesPotentialData<{C}>:params.txt): FCUTTYP TERSOFF 0.75 differs from CUBIC"),
    (("fcut_var",), 0.5, "tile C (ChimesPotentialData<{C}>:params.txt): FCUTTYP TERSOFF 0.75 differs from TERSOFF 0.5"),
    (("orders",), [20, 10, 4], "tile N (ChimesPotentialData<{N}>:params.txt): PAIRTYP O2B 25 is higher than O2B 20"),
    (("orders",), [25, 10, 3], "tile C (ChimesPotentialData<{C}>:params.txt): PAIRTYP O4B 4 is higher than O4B 3"),
], ids=["cutoff type", "cutoff parameter", "2-body order", "4-body order"])
@pytest.mark.parametrize("base", ["global", "hierarchical"])
def test_cutoff_function_and_orders_differ_from_a_tile(codes, tiles, path, value, message, base):
    """The cutoff function and orders are checked whether or not the settings say HIERARC."""
    settings = _edit(SETTINGS if base == "global" else HIERARCHICAL, path, value)
    text = refused(builder(codes, settings, CN_ONLY, tiles=tiles))
    assert message.format(C=tiles["C"].pk, N=tiles["N"].pk) in text


def test_exclusions_must_cover_exactly_the_given_tiles(codes, tiles):
    only_c = {**HIERARCHICAL, "exclude": {"1": ["C"], "2": ["C C"], "3": ["C C C"], "4": ["C C C C"]}}
    text = refused(builder(codes, only_c, CN_ONLY, tiles=tiles))
    assert f"tile N (ChimesPotentialData<{tiles['N'].pk}>:params.txt): its interaction N is not excluded" in text
    assert "add 'N' to EXCLUDE 1B INTERACTION" in text
    extra = copy.deepcopy(HIERARCHICAL)
    extra["exclude"]["2"].append("C N")
    text = refused(builder(codes, extra, CN_ONLY, tiles=tiles))
    assert "tile CN: EXCLUDE 2B INTERACTION of the fit settings lists C N, but no given lower tile holds it" in text
    text = refused(builder(codes, {**HIERARCHICAL, "hierarchical": False}, CN_ONLY, tiles=tiles))
    assert "lower tiles C, N are given but HIERARC is false" in text


def test_specific_manybody_cutoffs_must_agree_with_the_tiles(codes, tiles):
    lower_entry = copy.deepcopy(HIERARCHICAL)
    lower_entry["special"]["4B S_MAXIM"].append(["NNNNNNNNNNNN", ["NN"] * 6, [4.5] * 6])  # the N tile has 4.0
    text = refused(builder(codes, lower_entry, CN_ONLY, tiles=tiles))
    assert (f"tile N (ChimesPotentialData<{tiles['N'].pk}>:params.txt): SPECIAL 4B S_MAXIM of cluster N N N N is "
            "[4.0, 4.0, 4.0, 4.0, 4.0, 4.0] in the tile but [4.5, 4.5, 4.5, 4.5, 4.5, 4.5]") in text
    text = refused(builder(codes, {**HIERARCHICAL, "special": {**SPECIFIC, "3B S_MAXIM": 5.0}}, CN_ONLY, tiles=tiles))
    assert "SPECIAL 3B S_MAXIM: ALL 5.0 in a hierarchical fit would also set the cutoffs of the lower tiles' " \
           "clusters (tiles C, N)" in text


def test_type_order_of_a_multi_element_tile(codes, cn_tile):
    """A lower tile's type order must follow the fit's: the CN tile (C N) under types N C O is refused."""
    pairs = {"N-N": SETTINGS["pairs"]["N-N"], "N-C": SETTINGS["pairs"]["C-N"], "C-C": SETTINGS["pairs"]["C-C"],
             "N-O": {"s_minim": 0.9, "s_maxim": 5.0, "morse_lambda": 1.2},
             "C-O": {"s_minim": 0.9, "s_maxim": 5.0, "morse_lambda": 1.2},
             "O-O": {"s_minim": 0.9, "s_maxim": 5.0, "morse_lambda": 1.2}}
    settings = {**SETTINGS, "types": ["N", "C", "O"], "pairs": pairs}
    points = {"CNO": {"temperature": 2000.0, "composition": {"C": 3, "N": 3, "O": 2}, "density": 2.0}}
    text = refused(builder(codes, settings, points, tiles={"CN": cn_tile}, mode=orm.Str("partial")))
    assert (f"tile CN (ChimesPotentialData<{cn_tile.pk}>:params.txt): its type order C N differs from the type "
            "order N C O of the global fit settings") in text


def test_type_order_of_single_element_tiles_is_free(codes, tiles):
    """Single-element tiles have no type order: settings types N C with the C and N tiles are consistent.

    (The type-order rule concerns lower tiles of several elements, see the test above.)
    """
    settings = {**SETTINGS, "types": ["N", "C"]}
    accepted(builder(codes, settings, CN_ONLY, tiles=tiles))
    built = settings_for_tile(settings, CN, [tiles["C"].get_params(), tiles["N"].get_params()])
    assert built["types"] == ["N", "C"] and list(built["pairs"]) == ["N-N", "N-C", "C-C"]


def test_given_cross_tile_against_the_tiles_to_fit(codes, cn_tile):
    """Full mode with only CN given: C and N are fitted with C-C S_MAXIM 4.5 but the CN tile was fitted with 5.0."""
    settings = _edit(SETTINGS, ("pairs", "C-C", "s_maxim"), 4.5)
    text = refused(builder(codes, settings, tiles={"CN": cn_tile}))
    assert "CN" in text and "S_MAXIM" in text


# ===================================================================== given tiles, elements, body order
def test_tile_key_must_name_its_tile(codes, tiles):
    text = refused(builder(codes, tiles={"C": tiles["C"], "N": tiles["C"]}))
    assert "tiles.N: the potential holds tile C, not N; use the key tiles.C" in text


def test_tile_must_hold_one_tile(codes):
    from tests.helpers import force_field_path

    merged = ChimesPotentialData.get_or_create(force_field_path("published_params.CN-hierarch.2+3+4b.Tersoff.txt"))
    text = refused(builder(codes, tiles={"CN": merged}))
    assert f"tiles.CN: ChimesPotentialData<{merged.pk}> holds tiles ['C', 'CN', 'N']; give one potential per tile" \
        in text


def test_tile_element_not_in_settings(codes, tiles):
    settings = {**SETTINGS, "types": ["C"], "pairs": {"C-C": SETTINGS["pairs"]["C-C"]}}
    text = refused(builder(codes, settings, {"C": STATE_POINTS["C"]}, tiles=tiles))
    assert "tiles: N is not a tile of ['C'] (up to 4-body)" in text


def test_more_elements_than_body_order(codes):
    settings = {**SETTINGS, "types": ["C", "N", "O"], "orders": [8, 0, 0], "special": {}}
    text = refused(builder(codes, settings))
    assert ("settings: 3 elements ['C', 'N', 'O'] need 3-body terms to be merged into one potential, but the orders "
            "[8, 0, 0] stop at 2-body") in text


def test_bad_mode(codes):
    assert "mode: must be one of ['full', 'partial'], got 'mixed'" in refused(builder(codes, mode=orm.Str("mixed")))


def test_elements_must_equal_types(codes):
    text = refused(builder(codes, elements=orm.List(["N", "C"])))
    assert "elements ['N', 'C'] differ from the settings' types ['C', 'N']; give the same elements in the same " \
           "order" in text
    accepted(builder(codes, elements=orm.List(["C", "N"])))


def test_tile_settings(codes, tiles):
    pairs = {"tile_settings": {"CN": orm.Dict({"pairs": SETTINGS["pairs"]})}}
    text = refused(builder(codes, tiles=tiles, **pairs))
    assert "tile_settings.CN: ['pairs'] cannot differ per tile (they must be consistent across tiles)" in text
    text = refused(builder(codes, tiles=tiles, tile_settings={"C": orm.Dict({"orders": [30, 10, 4]})}))
    assert "tile_settings.C: no such fit in this campaign (fits: ['CN'])" in text
    text = refused(builder(codes, tiles=tiles, tile_settings={"CN": orm.Dict({"orders": [20, 10, 4]})}))
    assert "PAIRTYP O2B 25 is higher than O2B 20" in text
    accepted(builder(codes, tiles=tiles, tile_settings={"CN": orm.Dict({"orders": [25, 12, 4]})}))


# ===================================================================== state points
def test_every_fit_needs_a_state_point(codes, tiles):
    text = refused(builder(codes, state_points={"C": STATE_POINTS["C"]}, tiles=tiles))
    assert "tile CN: no state point for this fit; add one whose composition has exactly the elements ['C', 'N']" \
        in text
    text = refused(builder(codes, state_points=CN_ONLY))
    assert "tile C: no state point for this fit; add one whose composition has exactly the elements ['C']" in text
    # partial mode on top of C: one fit of N and the cross terms; a pure-N state point belongs to it
    partial = builder(codes, state_points={"N": STATE_POINTS["N"]}, tiles={"C": tiles["C"]}, mode=orm.Str("partial"))
    accepted(partial)
    text = refused(builder(codes, state_points={"C": STATE_POINTS["C"]}, tiles={"C": tiles["C"]},
                           mode=orm.Str("partial")))
    assert "tile CN: no state point for this fit; add one whose composition has elements of ['C', 'N']" in text


@pytest.mark.parametrize("point,message", [
    ({"temperature": 1000.0, "composition": {"C": 8}, "density": 2.0, "pressue": 1.0},
     "state_points.bad: unknown key(s) ['pressue']; allowed:"),
    ({"temperature": -5.0, "composition": {"C": 8}, "density": 2.0},
     "state_points.bad: 'temperature' (K) must be a positive number, got -5.0"),
    ({"composition": {"C": 8}, "density": 2.0},
     "state_points.bad: 'temperature' (K) must be a positive number, got None"),
    ({"temperature": 1000.0, "composition": {"C": 8}},
     "state_points.bad: give either 'density' (g/cm^3) or 'cell' (Angstrom) with the composition"),
    ({"temperature": 1000.0, "composition": {"C": 8}, "density": 2.0, "cell": [5, 5, 5]},
     "state_points.bad: give either 'density' (g/cm^3) or 'cell' (Angstrom) with the composition"),
    ({"temperature": 1000.0}, "state_points.bad: give a starting structure (structures.bad) or a 'composition'"),
    ({"temperature": 1000.0, "composition": {"C": 0}, "density": 2.0},
     "state_points.bad: composition counts must be positive integers, bad: ['C']"),
    ({"temperature": 1000.0, "composition": {"O": 8}, "density": 2.0},
     "state_points.bad: elements ['O'] are not types of the fit ['C', 'N']"),
], ids=["unknown key", "negative temperature", "no temperature", "no density", "density and cell", "no composition",
        "zero count", "foreign element"])
def test_state_point_errors(codes, tiles, point, message):
    text = refused(builder(codes, state_points={**CN_ONLY, "bad": point}, tiles=tiles))
    assert message in text


def test_structures_and_training_set(codes, tiles):
    from ase.build import bulk

    carbon = orm.StructureData(ase=bulk("C", "diamond", a=3.57, cubic=True))
    # a structure replaces the composition and gives the state point's elements
    ok = builder(codes, state_points={"C": {"temperature": 1000.0}, "N": STATE_POINTS["N"], "CN": STATE_POINTS["CN"]},
                 structures={"C": carbon})
    accepted(ok)
    text = refused(builder(codes, structures={"extra": carbon}))
    assert "structures: ['extra'] have no entry in state_points" in text
    oxygen = TrainingSetData.from_atoms([bulk("O", "sc", a=2.0)])
    text = refused(builder(codes, tiles=tiles, training_set=oxygen))
    assert "training_set: elements ['O'] are not in the settings' types" in text


def test_restart_from_must_be_a_hierarchical_run(codes, tiles):
    al = ActiveLearningWorkChain.get_builder()  # an active-learning node, built only: the wrong process type
    al.md.code = codes["md"]
    al.reference.method = orm.Str("xtb")
    al.reference.xtb.code = codes["label"]
    al.fit.design_matrix.code = codes["design_matrix"]
    al.fit.regression.code = codes["regression"]
    al.settings = orm.Dict(settings_for_tile(SETTINGS, C, []))
    al.state_points = orm.Dict({"C": STATE_POINTS["C"]})
    node = accepted(al)
    text = refused(builder(codes, tiles=tiles, restart_from=node))
    assert f"restart_from: ActiveLearningWorkChain<{node.pk}> is not a chimes.hierarchical run" in text
    accepted(builder(codes, tiles=tiles, restart_from=accepted(builder(codes, tiles=tiles))))


# ===================================================================== plans
def test_plan_fits_full_and_partial():
    assert plan_fits(SETTINGS, [C, N], "full") == [[CN]]
    assert plan_fits(SETTINGS, [], "full") == [[C, N], [CN]]
    assert plan_fits(SETTINGS, [C], "full") == [[N], [CN]]
    assert plan_fits(SETTINGS, [C, N, CN], "full") == []
    assert plan_fits(SETTINGS, [C], "partial") == [[CN]]
    assert plan_fits(SETTINGS, [], "partial") == [[CN]]
    assert plan_fits(SETTINGS, [C, N, CN], "partial") == []
    three = {**SETTINGS, "types": ["C", "N", "O"]}
    assert plan_fits(three, [C, N, O], "full") == [[CN, frozenset("CO"), frozenset("NO")], [frozenset("CNO")]]
    assert plan_fits(three, [C, N, O, CN], "partial") == [[frozenset("CNO")]]
    # 3-body terms are enough for the CNO tile
    assert plan_fits({**three, "orders": [8, 4, 0]}, [], "full")[-1] == [frozenset("CNO")]
    with pytest.raises(HierarchyError, match=r"tiles: CNO is not a tile of \['C', 'N'\]"):
        plan_fits(SETTINGS, [frozenset("CNO")], "full")
    with pytest.raises(HierarchyError, match=r"stop at 2-body"):
        plan_fits({**three, "orders": [8, 0, 0]}, [], "full")
    assert plan_fits({**SETTINGS, "orders": [8, 0, 0]}, [], "full") == [[C, N], [CN]]


def test_partial_mode_on_top_of_c(codes, tiles):
    """Partial mode with only C given: one fit of N and the cross terms, excluding exactly C's interactions."""
    accepted(builder(codes, tiles={"C": tiles["C"]}, mode=orm.Str("partial")))
    built = settings_for_tile(SETTINGS, CN, [tiles["C"].get_params()])
    assert built["hierarchical"] is True
    assert built["exclude"] == {"1": ["C"], "2": ["C C"], "3": ["C C C"], "4": ["C C C C"]}
    assert built["pairs"]["C-C"] == {"s_minim": 0.98, "s_maxim": 5.0, "morse_lambda": 1.4}
    assert [e[0] for e in built["special"]["3B S_MAXIM"]] == ["CCCNCN", "CNCNNN", "NNNNNN"]


def test_fit_frames_filter():
    full = fit_frames_filter(CN, [C, N], "full", 4)
    assert full({"C", "N"}) and not full({"C"}) and not full({"N"})
    partial = fit_frames_filter(CN, [C], "partial", 4)
    assert partial({"N"}) and partial({"C", "N"}) and partial(["N", "C", "N"]) and not partial({"C"})
    assert not partial({"O"}) and not partial({"C", "N", "O"})
    nothing_given = fit_frames_filter(frozenset("CNO"), [], "partial", 3)
    assert all(nothing_given(e) for e in ({"C"}, {"N", "O"}, {"C", "N", "O"}))
    # partial on top of C, N and CN: only frames with O belong
    on_top = fit_frames_filter(frozenset("CNO"), [C, N, CN], "partial", 3)
    assert on_top({"O"}) and on_top({"C", "O"}) and on_top({"C", "N", "O"})
    assert not on_top({"C", "N"}) and not on_top({"N"})
    single = fit_frames_filter(C, [], "full", 4)
    assert single({"C"}) and not single({"C", "N"})
