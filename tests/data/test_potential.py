"""Tests of ``ChimesPotentialData``: attributes, content, calculator, hashing and de-duplication."""

from __future__ import annotations

import copy
import hashlib

import numpy as np
import pytest
from aiida import orm
from aiida.common import exceptions
from ase.build import bulk

from aiida_chimes.chimes.calculator import ChimesCalculator
from aiida_chimes.chimes.params import ParamsFormatError, format_params, read_params
from aiida_chimes.data import ChimesPotentialData
from tests.helpers import force_field_path, hierarch_params_path, read_text

LIQC_2B = "published_params.liqC.2b.cubic.txt"
CN_MERGED = "published_params.CN-hierarch.2+3+4b.Tersoff.txt"
TIO2 = "validated_params.TiO2.2+3b.Tersoff.txt"


def nonzero_count(params) -> int:
    """Non-zero 2/3/4-body coefficients counted directly on the parsed model."""
    n = sum(int(np.count_nonzero(c)) for c in params.pair_coeffs)
    return n + sum(int(np.count_nonzero(b.values)) for b in params.triplets + params.quadruplets)


def test_from_path_stores_decompressed_content_and_attributes():
    path = force_field_path(LIQC_2B)
    node = ChimesPotentialData(path)
    text = read_text(path)
    params = read_params(path)
    assert node.filename == "params.txt"
    assert node.get_content("r") == text
    assert node.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert node.elements == ["C"]
    assert node.orders == {"2b": params.orders[0], "3b": 0, "4b": 0}
    pair = params.pairs[0]
    assert node.cutoffs == {"CC": {"rmin": pair.s_minim, "rmax": pair.s_maxim, "morse_lambda": pair.morse_lambda,
                                   "fcut_type": "CUBIC", "fcut_var": None}}
    assert node.tiles == [["C"]]
    assert node.excluded_interactions == []
    assert node.n_nonzero == nonzero_count(params) == 12
    assert node.energy_offsets is None
    assert node.get_params().same_model(params)


def test_merged_hierarchical_file_vs_single_tile():
    merged = ChimesPotentialData(force_field_path(CN_MERGED))
    tile = ChimesPotentialData(hierarch_params_path("C.params.txt.reduced"))
    merged_params = read_params(force_field_path(CN_MERGED))
    tile_params = read_params(hierarch_params_path("C.params.txt.reduced"))

    assert merged.elements == ["C", "N"]
    assert merged.tiles == [["C"], ["C", "N"], ["N"]]
    assert merged.excluded_interactions == []
    assert merged.orders == {"2b": 25, "3b": 10, "4b": 4}
    assert sorted(merged.cutoffs) == ["CC", "CN", "NN"]
    assert merged.cutoffs["CN"]["rmax"] == 5.0 and merged.cutoffs["NN"]["rmax"] == 8.0
    assert merged.cutoffs["CN"]["fcut_type"] == "TERSOFF" and merged.cutoffs["CN"]["fcut_var"] == 0.75
    assert merged.n_nonzero == nonzero_count(merged_params)
    np.testing.assert_allclose(list(merged.energy_offsets.values()), merged_params.energy_offsets, rtol=1e-13)
    assert list(merged.energy_offsets) == ["C", "N"]

    assert tile.elements == ["C"]
    assert tile.tiles == [["C"]]
    assert tile.orders == {"2b": 20, "3b": 10, "4b": 4}
    assert tile.n_nonzero == nonzero_count(tile_params)
    assert tile.energy_offsets == {"C": -61.53443323069}


def test_cross_tile_only_file_lists_excluded_interactions():
    """Zeroed single-element clusters and EXCLUDED blocks leave only the {C, N} tile."""
    params = copy.deepcopy(read_params(force_field_path(CN_MERGED)))
    for i, pair in enumerate(params.pairs):
        if pair.atom1 == pair.atom2:
            params.pair_coeffs[i] = np.zeros_like(params.pair_coeffs[i])
    for block in params.triplets + params.quadruplets:
        if len(set(block.atoms)) == 1:
            if len(block.atoms) == 3:
                block.values = np.zeros_like(block.values)  # zero coefficients
            else:
                block.excluded, block.unique = True, 0  # an EXCLUDED: block
                block.powers = np.zeros((0, 6), dtype=np.int64)
                block.equiv = block.param = np.zeros(0, dtype=np.int64)
                block.values = np.zeros(0)
    params.energy_offsets = np.zeros(2)
    node = ChimesPotentialData.from_params(params)
    assert "EXCLUDED:" in node.get_content("r")
    assert node.tiles == [["C", "N"]]
    assert node.excluded_interactions == ["CC", "NN", "CCC", "NNN", "CCCC", "NNNN", "C", "N"]
    assert node.n_nonzero == nonzero_count(params)


def test_real_file_with_all_zero_interactions():
    node = ChimesPotentialData(force_field_path(TIO2))
    assert node.elements == read_params(force_field_path(TIO2)).symbols == ["O", "Ti"]
    assert node.tiles == [["O", "Ti"], ["Ti"]]
    assert node.excluded_interactions == ["OO", "OOO", "OOTi"]


def test_from_params_and_text_give_the_same_content():
    params = read_params(force_field_path(CN_MERGED))
    a = ChimesPotentialData.from_params(params)
    b = ChimesPotentialData.from_text(format_params(params))
    assert a.get_content("r") == format_params(params)
    assert a.sha256 == b.sha256
    assert a.get_params().same_model(params)


def test_calculator_matches_the_core_calculator():
    path = force_field_path(CN_MERGED)
    atoms = bulk("C", "diamond", a=3.6, cubic=True).repeat((2, 1, 1))
    atoms.symbols[::3] = "N"
    atoms.rattle(0.05, seed=1)
    node = ChimesPotentialData(path).store()
    ours = atoms.copy()
    ours.calc = node.get_calculator()
    ref = atoms.copy()
    ref.calc = ChimesCalculator(str(path))
    assert ours.get_potential_energy() == ref.get_potential_energy()
    np.testing.assert_array_equal(ours.get_forces(), ref.get_forces())
    np.testing.assert_array_equal(ours.get_stress(), ref.get_stress())


def test_export_writes_the_stored_bytes(tmp_path):
    path = force_field_path(LIQC_2B)
    node = ChimesPotentialData(path).store()
    out = node.export(tmp_path / "params.txt")
    assert out.read_text() == read_text(path)
    with pytest.raises(FileExistsError, match="exists already"):
        node.export(out)
    node.export(out, overwrite=True)


def test_hash_depends_only_on_content(tmp_path):
    plain = tmp_path / "some_other_name.txt"
    plain.write_text(read_text(force_field_path(LIQC_2B)))
    a = ChimesPotentialData(force_field_path(LIQC_2B)).store()
    b = ChimesPotentialData(plain).store()
    c = ChimesPotentialData(force_field_path("published_params.liqC.2bsig.cubic.txt")).store()
    assert a.base.caching.get_hash() == b.base.caching.get_hash() == a.base.caching.compute_hash()
    assert a.base.caching.get_hash() != c.base.caching.get_hash()
    assert set(a.base.caching.get_objects_to_hash()) == {"class", "sha256"}


def test_get_or_create_deduplicates(aiida_profile_clean, tmp_path):
    plain = tmp_path / "copy.txt"
    plain.write_text(read_text(force_field_path(LIQC_2B)))
    first = ChimesPotentialData.get_or_create(force_field_path(LIQC_2B))
    assert first.is_stored
    again = ChimesPotentialData.get_or_create(plain)
    assert again.pk == first.pk
    other = ChimesPotentialData.get_or_create(force_field_path("published_params.liqC.2bsig.cubic.txt"))
    assert other.pk != first.pk
    unstored = ChimesPotentialData.get_or_create(force_field_path(CN_MERGED), store=False)
    assert not unstored.is_stored
    assert orm.QueryBuilder().append(ChimesPotentialData).count() == 2


def test_immutable_once_stored():
    node = ChimesPotentialData(force_field_path(LIQC_2B)).store()
    with pytest.raises(exceptions.ModificationNotAllowed):
        node.set_file(force_field_path("published_params.liqC.2bsig.cubic.txt"))


def test_bad_file_names_file_and_line(tmp_path):
    text = read_text(force_field_path(LIQC_2B)).replace("ATOM TYPES: 1", "ATOM TYPES: one")
    bad = tmp_path / "bad_params.txt"
    bad.write_text(text)
    lineno = text.splitlines().index("ATOM TYPES: one") + 1
    with pytest.raises(ParamsFormatError, match=f"bad_params.txt:{lineno}: expected an integer"):
        ChimesPotentialData(bad)


def test_binary_and_missing_files_are_rejected(tmp_path):
    binary = tmp_path / "params.txt"
    binary.write_bytes(force_field_path(LIQC_2B).read_bytes())  # gzip bytes without the .gz name
    with pytest.raises(ValueError, match="params.txt: not a text file"):
        ChimesPotentialData(binary)
    with pytest.raises(ValueError, match="missing.txt: cannot read"):
        ChimesPotentialData(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="always named"):
        ChimesPotentialData(force_field_path(LIQC_2B), filename="other.txt")
    with pytest.raises(exceptions.ValidationError, match="needs a parameter file"):
        ChimesPotentialData().store()
