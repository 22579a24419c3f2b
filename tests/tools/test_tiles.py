"""Tile reuse: signatures (what defines a tile fit, key-order independent) and the ``chimes/tiles`` registry."""

import copy

import pytest
from aiida import orm

from aiida_chimes.chimes.fit_settings import settings_from_setup
from aiida_chimes.chimes.fit_setup import read_fm_setup
from aiida_chimes.chimes.hierarchy import HierarchyError, merge_tiles
from aiida_chimes.chimes.params import read_params
from aiida_chimes.data import ChimesPotentialData
from aiida_chimes.tools.tiles import GROUP_LABEL, find_tile, register_tile, signature_hash, tile_signature
from tests.helpers import DATA_DIR, hierarch_params_path

XTB = {"method": "xtb", "parameters": {"method": "GFN1-xTB", "accuracy": 1.0, "electronic_temperature": 300}}
#: The fit settings of the al_driver C tile (C.params.txt.reduced).
C_SETTINGS = {
    "types": ["C"],
    "orders": [20, 10, 4],
    "pairs": {"C-C": {"s_minim": 0.98, "s_maxim": 5.0, "morse_lambda": 1.4}},
    "special": {"3B S_MAXIM": 5.0, "4B S_MAXIM": 4.5},
    "fcut_type": "TERSOFF",
    "fcut_var": 0.75,
    "fit_energy": True,
}


def c_tile():
    return ChimesPotentialData(hierarch_params_path("C.params.txt.reduced"))


def test_signature_content_and_key_order_independence():
    sig = tile_signature(["C"], C_SETTINGS, XTB)
    assert sig.content == {
        "version": 1,
        "tile": "C",
        "types": ["C"],
        "orders": [20, 10, 4],
        "pairs": {"C-C": {"s_minim": 0.98, "s_maxim": 5, "morse_lambda": 1.4}},
        "special": {
            "3B S_MAXIM": [["CCCCCC", ["CC", "CC", "CC"], [5, 5, 5]]],
            "4B S_MAXIM": [["CCCCCCCCCCCC", ["CC"] * 6, [4.5] * 6]],
        },
        "fcut": {"type": "TERSOFF", "var": 0.75},
        "cheby_range": [-1, 1],
        "reference": {
            "method": "xtb",
            "parameters": {"accuracy": 1, "electronic_temperature": 300, "method": "GFN1-xTB"},
        },
        "lower_tiles": [],
        "lower_tile_names": [],
    }
    assert len(sig.sha256) == 64 and sig.sha256 == signature_hash(sig.content)
    # the same fit written differently: reversed keys, ALL as SPECIFIC, 300.0 for 300, types as [symbol, q, m],
    # a fit-only setting changed (not part of the tile's definition)
    other = {
        "fcut_var": 0.75,
        "fcut_type": "TERSOFF",
        "fit_energy": False,
        "special": {"4B S_MAXIM": [["CCCCCCCCCCCC", ["CC"] * 6, [4.5] * 6]], "3B S_MAXIM": 5.0},
        "pairs": {"C-C": {"morse_lambda": 1.4, "s_maxim": 5.0, "s_minim": 0.98}},
        "orders": (20, 10, 4),
        "types": [["C", 0.0, 12.0107]],
    }
    reference = {"parameters": {"electronic_temperature": 300.0, "accuracy": 1, "method": "GFN1-xTB"}, "method": "xtb"}
    assert tile_signature("C", other, reference) == sig


@pytest.mark.parametrize(
    "change",
    [
        lambda s, r: s["pairs"]["C-C"].update(s_maxim=5.5),
        lambda s, r: s["special"].update({"3B S_MAXIM": 4.0}),
        lambda s, r: s.update(orders=[20, 12, 4]),
        lambda s, r: s.update(fcut_var=0.5),
        lambda s, r: r["parameters"].update(accuracy=0.1),
        lambda s, r: r.update(method="vasp"),
    ],
)
def test_signature_changes_with_what_defines_the_tile(change):
    settings, reference = copy.deepcopy(C_SETTINGS), copy.deepcopy(XTB)
    change(settings, reference)
    assert tile_signature(["C"], settings, reference).sha256 != tile_signature(["C"], C_SETTINGS, XTB).sha256


def test_signature_of_a_cross_tile_depends_on_its_lower_tiles():
    settings = settings_from_setup(read_fm_setup(DATA_DIR / "hierarchy" / "al_driver.fm_setup.in"))
    tiles = [read_params(hierarch_params_path(f"{s}.params.txt.reduced")) for s in "CN"]
    vasp = {"method": "vasp", "incar": {"ENCUT": 500, "ISMEAR": 0}, "kpoints": [1, 1, 1], "potential_family": "PBE"}
    sig = tile_signature(["N", "C"], settings, vasp, lower_tiles=tiles)
    assert sig.content["tile"] == "CN" and sig.content["types"] == ["C", "N"]
    assert sig.content["lower_tile_names"] == ["C", "N"] and len(sig.content["lower_tiles"]) == 2
    assert sorted(sig.content["special"]["3B S_MAXIM"]) == sig.content["special"]["3B S_MAXIM"]
    assert [e[0] for e in sig.content["special"]["3B S_MAXIM"]] == ["CCCNCN", "CNCNNN"]  # only the CN clusters
    nodes = [ChimesPotentialData.from_params(p) for p in reversed(tiles)]  # nodes or params, any order
    assert tile_signature("CN", settings, vasp, lower_tiles=nodes).sha256 == sig.sha256
    refit = copy.deepcopy(tiles[0])
    refit.pair_coeffs[0][0] += 1.0
    assert tile_signature("CN", settings, vasp, lower_tiles=[refit, tiles[1]]).sha256 != sig.sha256


def test_signature_input_errors():
    with pytest.raises(ValueError, match="reference must be a dict with a 'method'"):
        tile_signature("C", C_SETTINGS, {"parameters": {}})
    with pytest.raises(HierarchyError, match=r"tile O: elements \['O'\] are not in the global types"):
        tile_signature("O", C_SETTINGS, XTB)
    with pytest.raises(ValueError, match=r"key 'a.b' of signature.reference.parameters contains '.'"):
        tile_signature("C", C_SETTINGS, {"method": "xtb", "parameters": {"a.b": 1}})
    with pytest.raises(ValueError, match="not a tile name"):
        tile_signature("cn", C_SETTINGS, XTB)
    with pytest.raises(ValueError, match="give a finite number"):
        tile_signature("C", C_SETTINGS, {"method": "xtb", "parameters": {"x": float("nan")}})


def test_register_and_find_across_projects():
    # project A fits and registers the C tile
    sig_a = tile_signature(["C"], C_SETTINGS, XTB)
    first = register_tile(c_tile(), sig_a, project="A")
    assert first.is_stored and first.base.extras.get("chimes_tile") == "C"
    assert first.base.extras.get("chimes_tile_signature") == sig_a.content
    assert first.base.extras.get("chimes_tile_signature_sha256") == sig_a.sha256
    assert first.base.extras.get("chimes_tile_project") == "A"
    group = orm.load_group(GROUP_LABEL)
    assert first.uuid in {n.uuid for n in group.nodes}
    assert register_tile(first, sig_a) is first  # idempotent

    # project B builds its settings in another order and finds the tile
    settings_b = dict(reversed(list(C_SETTINGS.items())))
    sig_b = tile_signature(["C"], settings_b, dict(reversed(list(XTB.items()))))
    assert find_tile(sig_b).uuid == first.uuid
    assert find_tile(sig_b.sha256).uuid == first.uuid and find_tile(sig_b.content).uuid == first.uuid

    # another cutoff or other reference settings: no match
    other_cut = copy.deepcopy(C_SETTINGS)
    other_cut["pairs"]["C-C"]["s_maxim"] = 5.5
    assert find_tile(tile_signature(["C"], other_cut, XTB)) is None
    assert find_tile(tile_signature(["C"], C_SETTINGS, {**XTB, "parameters": {"method": "GFN2-xTB"}})) is None

    # a newer registration with the same signature wins
    newer = register_tile(c_tile(), sig_b, project="B")
    assert find_tile(sig_a).uuid == newer.uuid != first.uuid


def test_register_refuses_a_potential_that_does_not_fit_the_signature():
    sig = tile_signature(["C"], C_SETTINGS, XTB)
    node = c_tile()
    other = copy.deepcopy(C_SETTINGS)
    other["orders"] = [12, 10, 4]
    with pytest.raises(ValueError, match=r"tile C: ChimesPotentialData<unstored> has orders \[20, 10, 4\]"):
        register_tile(node, tile_signature(["C"], other, XTB))
    other = copy.deepcopy(C_SETTINGS)
    other["pairs"]["C-C"]["morse_lambda"] = 1.5
    with pytest.raises(ValueError, match="tile C: pair CC of .* S_MINIM/S_MAXIM/MORSE_LAMBDA"):
        register_tile(node, tile_signature(["C"], other, XTB))
    n_tile = ChimesPotentialData(hierarch_params_path("N.params.txt.reduced"))
    with pytest.raises(ValueError, match=r"has atom types \['N'\], the signature \['C'\]"):
        register_tile(n_tile, sig)
    register_tile(node, sig)
    with pytest.raises(ValueError, match="already registered with signature"):
        register_tile(node, tile_signature(["C"], C_SETTINGS, {"method": "vasp"}))


def test_register_a_cross_tile_fit_but_not_the_merged_potential():
    settings = settings_from_setup(read_fm_setup(DATA_DIR / "hierarchy" / "al_driver.fm_setup.in"))
    tiles = [ChimesPotentialData(hierarch_params_path(f"{s}.params.txt.reduced")) for s in "CN"]
    sig = tile_signature("CN", settings, XTB, lower_tiles=tiles)
    fit = read_params(DATA_DIR / "hierarchy" / "ALC-3.params.txt.gz")
    for k in (0, 1):  # the CC and NN pairs: the cross fit holds only the CN tile
        fit.pair_coeffs[k][:] = 0.0
    fit.energy_offsets[:] = 0.0
    merged = ChimesPotentialData.from_params(merge_tiles(fit, [t.get_params() for t in tiles]))
    with pytest.raises(ValueError, match=r"tile CN: .* also holds the lower tiles \['C', 'N'\]"):
        register_tile(merged, sig)
    node = register_tile(ChimesPotentialData.from_params(fit), sig, project="CN study")
    assert find_tile(tile_signature("CN", settings, XTB, lower_tiles=tiles)).uuid == node.uuid
    assert find_tile(tile_signature("CN", settings, XTB)) is None  # partial mode (no lower tiles): another fit
