"""Hierarchical fitting: tiles, exclusions, consistency rules, residual data and merging (hierarchy.py).

Oracles: the al_driver hierarchical C/N example (its fm_setup.in EXCLUDE lines and SPECIFIC cutoffs, the C and N
tiles, the new cross-tile fit ALC-3.params.txt) and the official merged C/N file of chimes_calculator.
"""

import copy

import numpy as np
import pytest

from aiida_chimes.chimes.evaluate import ChimesModel
from aiida_chimes.chimes.fit_settings import settings_from_setup, validate_settings
from aiida_chimes.chimes.fit_setup import read_fm_setup
from aiida_chimes.chimes.frames import FrameSet
from aiida_chimes.chimes.hierarchy import (
    HierarchyError,
    check_consistency,
    exclusions_for,
    held_tiles,
    interactions_of,
    merge_tiles,
    residual_frames,
    settings_for_tile,
    tile_contribution,
    tile_name,
    tile_of,
    tile_rows,
    tiles_for,
)
from aiida_chimes.chimes.params import ChimesParams, SpecialCutoffs, read_params
from aiida_chimes.chimes.units import EV_PER_KCALMOL
from tests.helpers import DATA_DIR, force_field_path, hierarch_params_path

HIER = DATA_DIR / "hierarchy"
C, N, CN = frozenset("C"), frozenset("N"), frozenset("CN")


@pytest.fixture(scope="module")
def tiles():
    """The pre-fitted al_driver C and N tiles."""
    return [read_params(hierarch_params_path(f"{s}.params.txt.reduced")) for s in "CN"]


@pytest.fixture(scope="module")
def alc3():
    return read_params(HIER / "ALC-3.params.txt.gz")


@pytest.fixture(scope="module")
def published():
    return read_params(force_field_path("published_params.CN-hierarch.2+3+4b.Tersoff.txt"))


@pytest.fixture(scope="module")
def al_setup():
    return read_fm_setup(HIER / "al_driver.fm_setup.in")


@pytest.fixture(scope="module")
def frames():
    return FrameSet.from_xyzf(DATA_DIR / "xyzf" / "CN_2frames.xyzf")


@pytest.fixture(scope="module")
def clean_fit(alc3):
    """ALC-3 with the CC/NN pair terms and the energy offsets zeroed: a new fit holding only the CN tile."""
    fit = copy.deepcopy(alc3)
    fit.pair_coeffs[0][:] = 0.0
    fit.pair_coeffs[1][:] = 0.0
    fit.energy_offsets[:] = 0.0
    return fit


@pytest.fixture(scope="module")
def small_config(frames):
    """Every third atom of the first C/N frame (72 atoms, same cell): cheap, still with C-N clusters."""
    sl = frames.frame_slice(0)
    keep = np.arange(sl.stop - sl.start) % 3 == 0
    symbols = [s for s, k in zip(frames.symbols(0), keep, strict=True) if k]
    return symbols, frames.positions[sl][keep], frames.cells[0]


def _global_settings(al_setup):
    """Global settings of the C/N system: the al_driver setup without its tile-specific parts, SPECIAL as ALL."""
    g = settings_from_setup(al_setup)
    g.update(hierarchical=False, exclude={}, special={"3B S_MAXIM": 5.0, "4B S_MAXIM": 4.5})
    return g


# ===================================================================== tiles
def test_tiles_two_elements():
    assert tile_rows(["C", "N"]) == [[C, N], [CN]]
    assert tiles_for(["C", "N"]) == [C, N, CN]
    assert tile_of(("C", "C", "N")) == CN
    assert [tile_name(t) for t in tiles_for(["N", "C"])] == ["N", "C", "CN"]
    assert interactions_of(CN, 2) == [("C", "N")]
    assert interactions_of(CN, 4) == [("C", "C", "C", "N"), ("C", "C", "N", "N"), ("C", "N", "N", "N")]
    assert interactions_of(C, 3) == [("C", "C", "C")]


def test_tiles_three_elements():
    rows = tile_rows(["C", "N", "O"])
    assert [[tile_name(t) for t in row] for row in rows] == [["C", "N", "O"], ["CN", "CO", "NO"], ["CNO"]]
    assert len(tile_rows(["C", "N", "O"], max_body=2)) == 2
    assert interactions_of(frozenset("CNO"), 3) == [("C", "N", "O")]
    assert interactions_of(frozenset("CNO"), 4) == [("C", "C", "N", "O"), ("C", "N", "N", "O"), ("C", "N", "O", "O")]
    assert interactions_of(frozenset("CNO"), 2) == []


def test_held_tiles(tiles, alc3, published, clean_fit):
    assert [held_tiles(t) for t in tiles] == [[C], [N]]
    assert held_tiles(published) == [C, N, CN]
    assert held_tiles(clean_fit) == [CN]
    assert held_tiles(alc3) == [C, N, CN]  # ALC-3 carries non-zero CC/NN pair terms and an N offset


# ===================================================================== exclusions and settings
def test_exclusions_full_mode_match_al_driver(al_setup):
    assert exclusions_for(al_setup.types, [C, N], al_setup.orders) == al_setup.exclude


def test_exclusions_partial_mode_match_fit_build_setup():
    setup = read_fm_setup(DATA_DIR / "fit_build" / "CN_hierarchical.fm_setup.in")
    assert exclusions_for(setup.types, ["C"], setup.orders) == setup.exclude


def test_exclusions_row_two_tile_and_orders():
    got = exclusions_for(["C", "N", "O"], [CN, "O"], (12, 6, 0))
    assert got == {1: [("O",)], 2: [("O", "O"), ("C", "N")], 3: [("O", "O", "O"), ("C", "C", "N"), ("C", "N", "N")]}
    with pytest.raises(HierarchyError, match="tile CS: elements"):
        exclusions_for(["C", "N"], [frozenset("CS")])


def test_settings_for_tile_reproduce_al_driver_setup(al_setup, tiles):
    out = settings_for_tile(_global_settings(al_setup), CN, tiles)
    setup = validate_settings(out)
    assert out["hierarchical"] is True
    assert setup.exclude == al_setup.exclude
    assert setup.special == al_setup.special  # SPECIFIC, non-excluded clusters only, al_driver's keys and order
    assert [(p.atom1, p.atom2, p.s_minim, p.s_maxim, p.morse_lambda) for p in setup.pairs] == \
        [(p.atom1, p.atom2, p.s_minim, p.s_maxim, p.morse_lambda) for p in al_setup.pairs]
    report = check_consistency(al_setup.types, al_setup, tiles)  # the official setup passes every rule
    assert len(report) == 7 and any("exclusions" in line for line in report)


def test_settings_for_tile_partial_mode_takes_tile_pairs(al_setup, tiles):
    g = _global_settings(al_setup)
    g["pairs"]["C-C"] = {"s_minim": 1.0, "s_maxim": 4.0, "morse_lambda": 1.2}
    out = settings_for_tile(g, CN, tiles[:1])  # C given; N and the cross terms fitted together
    assert out["pairs"]["C-C"] == {"s_minim": 0.98, "s_maxim": 5.0, "morse_lambda": 1.4}  # from the C tile
    assert out["exclude"] == {"1": ["C"], "2": ["C C"], "3": ["C C C"], "4": ["C C C C"]}
    assert [e[0] for e in out["special"]["3B S_MAXIM"]] == ["CCCNCN", "CNCNNN", "NNNNNN"]
    with pytest.raises(HierarchyError, match="tile N is already given by tile N"):
        settings_for_tile(g, N, tiles)
    single = settings_for_tile(g, N, tiles[:1])  # a row-1 tile: the C tile is ignored, nothing excluded
    assert single["hierarchical"] is False and single["exclude"] == {} and list(single["pairs"]) == ["N-N"]


# ===================================================================== consistency rules, one error per rule
def _set(path, value):
    def edit(settings):
        *keys, last = path
        d = settings
        for k in keys:
            d = d[k]
        d[last] = value
    return edit


def _drop_exclusion(settings):
    settings["exclude"]["3"] = [e for e in settings["exclude"]["3"] if e != "N N N"]


def _extra_exclusion(settings):
    settings["exclude"]["2"].append("C N")


def _lower_entry(settings):
    settings["special"]["3B S_MAXIM"].append(["NNNNNN", ["NN", "NN", "NN"], [4.0, 4.0, 4.0]])


RULES = [
    ("pair S_MAXIM", _set(("pairs", "C-C", "s_maxim"), 4.5),
     r"tile C \(C\.params.*pair CC has S_MAXIM 5\.0 in the tile but 4\.5"),
    ("pair S_MINIM", _set(("pairs", "N-N", "s_minim"), 0.9), r"tile N \(N\.params.*pair NN has S_MINIM 0\.86"),
    ("Morse lambda", _set(("pairs", "N-N", "morse_lambda"), 1.0), r"tile N \(.*MORSE_LAMBDA 1\.09"),
    ("cutoff type", _set(("fcut_type",), "CUBIC"), r"tile C \(.*FCUTTYP TERSOFF 0\.75 differs from CUBIC"),
    ("cutoff parameter", _set(("fcut_var",), 0.5), r"tile C \(.*FCUTTYP TERSOFF 0\.75 differs from TERSOFF 0\.5"),
    ("orders", _set(("orders",), [19, 10, 4]), r"tile C \(.*PAIRTYP O2B 20 is higher than O2B 19"),
    ("4-body order", _set(("orders",), [25, 10, 3]), r"tile C \(.*PAIRTYP O4B 4 is higher than O4B 3"),
    ("HIERARC", _set(("hierarchical",), False), r"lower tiles C, N are given but HIERARC is false"),
    ("missing exclusion", _drop_exclusion, r"tile N \(.*interaction N N N is not excluded.*EXCLUDE 3B"),
    ("extra exclusion", _extra_exclusion, r"tile CN: EXCLUDE 2B INTERACTION .* lists C N, but no given lower tile"),
    ("SPECIAL ALL", _set(("special", "3B S_MAXIM"), 5.0), r"SPECIAL 3B S_MAXIM: ALL 5\.0 .*tiles C, N"),
    ("SPECIFIC of a lower cluster", _lower_entry, r"tile N \(.*SPECIAL 3B S_MAXIM of cluster N N N is \[5\.0"),
]


@pytest.mark.parametrize("edit,message", [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_consistency_errors_name_tile_and_setting(al_setup, tiles, edit, message):
    settings = copy.deepcopy(settings_for_tile(_global_settings(al_setup), CN, tiles))
    edit(settings)
    with pytest.raises(HierarchyError, match=message):
        check_consistency(["C", "N"], settings, tiles)


def test_consistency_errors_of_the_lower_tiles(al_setup, tiles, published):
    settings = settings_for_tile(_global_settings(al_setup), CN, tiles)
    with pytest.raises(HierarchyError, match=r"tile C\+N\+CN \(published.*type order C N differs from .*N C"):
        check_consistency(["N", "C"], {**settings, "types": ["N", "C"]}, [published])
    with pytest.raises(HierarchyError, match=r"tile C is given twice, by tile C \(C.params"):
        check_consistency(["C", "N"], settings, [tiles[0], tiles[0]])
    long_c = copy.deepcopy(tiles[0])
    long_c.special[("3B", "S_MAXIM")] = SpecialCutoffs("ALL", 5.5)
    with pytest.raises(HierarchyError, match=r"tile C \(.*SPECIAL 3B S_MAXIM 5\.5 of cluster C C C exceeds"):
        check_consistency(["C", "N"], settings, [long_c, tiles[1]])


# ===================================================================== residual data
@pytest.fixture(scope="module")
def residual(frames, tiles):
    return residual_frames(frames, tiles)


def _by_hand(frames, i, tile):
    """The tile's energy, forces (on its atoms) and ASE-Voigt stress on frame i's sub-configuration, in eV."""
    sl = frames.frame_slice(i)
    mask = np.array([s in tile.symbols for s in frames.symbols(i)])
    symbols = [s for s, m in zip(frames.symbols(i), mask, strict=True) if m]
    res = ChimesModel(tile).evaluate(symbols, frames.positions[sl][mask], frames.cells[i])
    s = -res.stress * EV_PER_KCALMOL
    return res.energy * EV_PER_KCALMOL, mask, res.forces * EV_PER_KCALMOL, \
        np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def test_residual_frames_against_explicit_subtraction(frames, tiles, residual):
    assert len(residual) == 2 and np.array_equal(residual.positions, frames.positions)
    for i in range(2):
        sl = frames.frame_slice(i)
        energy, forces, stress = frames.energy[i], frames.forces[sl].copy(), frames.stress[i].copy()
        for tile in tiles:
            e, mask, f, s = _by_hand(frames, i, tile)
            energy -= e
            forces[mask] -= f
            stress -= s
        assert residual.energy[i] == pytest.approx(energy, rel=1e-12)
        np.testing.assert_allclose(residual.forces[sl], forces, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(residual.stress[i], stress, rtol=1e-12, atol=1e-15)
        assert residual.tags[i] == {"residual_of": ["C", "N"]}
    # the tiles hold the offsets: what is left is a small cross-term energy, not the -1.5 keV total
    assert np.all(np.abs(residual.energy) < 0.1 * np.abs(frames.energy))


def test_tile_contribution_and_frames_without_the_tile(frames, tiles):
    sl = frames.frame_slice(0)
    n_only = np.array([s == "N" for s in frames.symbols(0)])
    pure_n = FrameSet(frames.numbers[sl][n_only], [int(n_only.sum())], frames.positions[sl][n_only], frames.cells[:1],
                      frames.pbc[:1], [0.0], np.zeros((int(n_only.sum()), 3)), np.zeros((1, 6)), [np.nan],
                      [{"case": 0}])
    part = tile_contribution(pure_n, tiles[0])
    assert not part["energy"].any() and not part["forces"].any() and not part["stress"].any()
    out = residual_frames(pure_n, tiles)
    e, _, f, s = _by_hand(pure_n, 0, tiles[1])
    assert out.energy[0] == pytest.approx(-e, rel=1e-12)
    np.testing.assert_allclose(out.forces, -f, rtol=1e-12, atol=1e-12)
    assert out.tags == [{"case": 0, "residual_of": ["C", "N"]}]


# ===================================================================== merging
@pytest.fixture(scope="module")
def merged_oracle(alc3, tiles):
    return merge_tiles(alc3, tiles, lower_blocks="replace")


def test_merge_oracle_structure_matches_published(merged_oracle, published):
    m, p = merged_oracle, published
    assert (m.orders, m.fcut_type, m.fcut_var, m.penalty) == (p.orders, p.fcut_type, p.fcut_var, p.penalty)
    assert [(t.symbol, t.mass) for t in m.types] == [(t.symbol, t.mass) for t in p.types]
    # S_DELTA differs by format only: hierarch.py writes 8-token pair lines with 0.01, ALC-3 has 7-token lines
    assert [(q.name, q.s_minim, q.s_maxim, q.morse_lambda) for q in m.pairs] == \
        [(q.name, q.s_minim, q.s_maxim, q.morse_lambda) for q in p.pairs]
    assert m.special == p.special  # new fit's SPECIFIC entries, then the C and N tiles' (al_driver order)
    assert (m.pairmaps, m.tripmaps, m.quadmaps) == (p.pairmaps, p.tripmaps, p.quadmaps)  # -1 labels restored
    assert (m.n_triplets, m.n_quadruplets) == (p.n_triplets, p.n_quadruplets)
    assert [(b.index, b.atoms, b.pairs, b.excluded) for b in (*m.triplets, *m.quadruplets)] == \
        [(b.index, b.atoms, b.pairs, b.excluded) for b in (*p.triplets, *p.quadruplets)]
    np.testing.assert_array_equal(m.energy_offsets, p.energy_offsets)


def test_merge_oracle_lower_tile_coefficients_match_published(merged_oracle, published):
    m, p = merged_oracle, published
    for k in (0, 1):  # CC (C tile, O2B 20, zero-padded to 25) and NN
        np.testing.assert_array_equal(m.pair_coeffs[k], p.pair_coeffs[k])
    for mine, theirs in ((m.triplets[0], p.triplets[0]), (m.triplets[3], p.triplets[3]),
                         (m.quadruplets[0], p.quadruplets[0]), (m.quadruplets[4], p.quadruplets[4])):
        assert mine.unique == theirs.unique
        for name in ("powers", "equiv", "param", "values"):
            np.testing.assert_array_equal(getattr(mine, name), getattr(theirs, name))


def test_merge_oracle_cross_terms_come_from_the_new_fit(merged_oracle, alc3, published):
    """The cross terms are ALC-3's, unreduced; the published file holds a later fit's cross terms.

    The published file is pruned (|c| <= 1e-6 rows dropped, UNIQUE -1) and its CN coefficients differ from
    ALC-3's (e.g. the first CN pair coefficient is 14.157 there, 0 in ALC-3; 811 CCN rows there, 547 non-zero
    in ALC-3): it was merged from another active-learning cycle, so only the structure compares.
    """
    m, p = merged_oracle, published
    np.testing.assert_array_equal(m.pair_coeffs[2], alc3.pair_coeffs[2])
    for k in (1, 2):
        np.testing.assert_array_equal(m.triplets[k].values, alc3.triplets[k].values)
        assert m.triplets[k].total == alc3.triplets[k].total
    assert p.triplets[1].total == 811 and int(np.sum(np.abs(alc3.triplets[1].values) > 1e-6)) == 547
    assert not np.array_equal(m.pair_coeffs[2], p.pair_coeffs[2])


def test_merge_strict_refuses_a_new_fit_holding_lower_interactions(alc3, tiles):
    with pytest.raises(HierarchyError, match=r"tile C \(C.params.*also holds interactions of tile C \(pair CC"):
        merge_tiles(alc3, tiles)


def test_merge_refuses_inconsistent_inputs(clean_fit, tiles):
    with pytest.raises(HierarchyError, match=r"tile N: cluster N N N is EXCLUDED .* no lower tile provides it"):
        merge_tiles(clean_fit, tiles[:1])
    cubic = copy.deepcopy(tiles[0])
    cubic.fcut_type, cubic.fcut_var = "CUBIC", None
    with pytest.raises(HierarchyError, match=r"tile C \(.*FCUTTYP CUBIC differs from TERSOFF 0.75"):
        merge_tiles(clean_fit, [cubic, tiles[1]])
    other = copy.deepcopy(tiles[1])
    other.penalty_scaling = 1.0e5
    with pytest.raises(HierarchyError, match=r"penalty settings differ .* pass penalty=\(dist, scaling\)"):
        merge_tiles(clean_fit, [tiles[0], other])
    assert merge_tiles(clean_fit, [tiles[0], other], penalty=(0.02, 1.0e6)).penalty == (0.02, 1.0e6)


def _sum_of_parts(new_fit, lower, config):
    symbols, positions, cell = config
    res = ChimesModel(new_fit).evaluate(symbols, positions, cell)
    energy, forces, stress, npen = res.energy, res.forces.copy(), res.stress.copy(), res.penalty_pairs
    for tile in lower:
        mask = np.array([s in tile.symbols for s in symbols])
        part = ChimesModel(tile).evaluate([s for s, k in zip(symbols, mask, strict=True) if k], positions[mask], cell)
        energy += part.energy
        forces[mask] += part.forces
        stress += part.stress
        npen += part.penalty_pairs
    return energy, forces, stress, npen


def _assert_same(result, energy, forces, stress):
    assert result.energy == pytest.approx(energy, rel=1e-10)
    np.testing.assert_allclose(result.forces, forces, rtol=1e-10, atol=1e-10 * np.abs(forces).max())
    np.testing.assert_allclose(result.stress, stress, rtol=1e-10, atol=1e-10 * np.abs(stress).max())


@pytest.fixture(scope="module")
def merged_clean(clean_fit, tiles):
    return merge_tiles(clean_fit, tiles)


def test_merged_equals_sum_of_parts(merged_clean, clean_fit, tiles, small_config):
    symbols, positions, cell = small_config
    assert {"C", "N"} <= set(symbols)
    energy, forces, stress, npen = _sum_of_parts(clean_fit, tiles, small_config)
    result = ChimesModel(merged_clean).evaluate(symbols, positions, cell)
    assert npen == 0 and result.penalty_pairs == 0  # the penalty (one setting per file) is not in play
    _assert_same(result, energy, forces, stress)


def test_merged_file_round_trip_evaluates_identically(merged_clean, small_config):
    text = merged_clean.to_string()
    again = ChimesParams.from_string(text, "merged.params.txt")
    assert again.same_model(merged_clean) and again.to_string() == text
    a = ChimesModel(merged_clean).evaluate(*small_config)
    b = ChimesModel(again).evaluate(*small_config)
    assert a.energy == b.energy
    np.testing.assert_array_equal(a.forces, b.forces)
    np.testing.assert_array_equal(a.stress, b.stress)


def test_merge_carries_special_inner_cutoffs(clean_fit, tiles, small_config):
    """SPECIAL S_MINIM of a tile survives the merge (al_driver drops it), so the sum of parts still holds.

    The C tile gets 3B S_MINIM ALL and a 4B S_MINIM SPECIFIC list: the merged file must list the new fit's quads
    with their default inner cutoffs, because chimesFF gives unlisted quads an inner cutoff of -1.
    """
    c_tile = copy.deepcopy(tiles[0])
    c_tile.special[("3B", "S_MINIM")] = SpecialCutoffs("ALL", 1.05)
    c_tile.special[("4B", "S_MINIM")] = SpecialCutoffs("SPECIFIC", entries=[("CCCCCCCCCCCC", ("CC",) * 6, (1.1,) * 6)])
    merged = merge_tiles(clean_fit, [c_tile, tiles[1]])
    assert merged.special[("3B", "S_MINIM")].entries == [("CCCCCC", ("CC", "CC", "CC"), (1.05, 1.05, 1.05))]
    quads = [e[0] for e in merged.special[("4B", "S_MINIM")].entries]
    assert quads == ["CCCCCNCCCNCN", "CCCNCNCNCNNN", "CNCNCNNNNNNN", "CCCCCCCCCCCC", "NNNNNNNNNNNN"]
    energy, forces, stress, _ = _sum_of_parts(clean_fit, [c_tile, tiles[1]], small_config)
    _assert_same(ChimesModel(merged).evaluate(*small_config), energy, forces, stress)


def test_merge_with_a_two_body_only_tile(clean_fit, tiles, small_config):
    """A lower tile without 3/4-body terms: its clusters stay EXCLUDED (map label -1) in the merged file."""
    c2b = copy.deepcopy(tiles[0])
    c2b.orders = (c2b.orders[0], 0, 0)
    c2b.triplets, c2b.quadruplets, c2b.tripmaps, c2b.quadmaps, c2b.special = [], [], [], [], {}
    c2b.n_triplets, c2b.n_quadruplets = 0, None
    merged = merge_tiles(clean_fit, [c2b, tiles[1]])
    assert merged.triplets[0].excluded and merged.quadruplets[0].excluded
    assert (-1, "CCCCCC") in merged.tripmaps and (3, "NNNNNN") in merged.tripmaps
    assert [e[0] for e in merged.special[("3B", "S_MAXIM")].entries] == ["CCCNCN", "CNCNNN", "NNNNNN"]
    energy, forces, stress, _ = _sum_of_parts(clean_fit, [c2b, tiles[1]], small_config)
    _assert_same(ChimesModel(merged).evaluate(*small_config), energy, forces, stress)
