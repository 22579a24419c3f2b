"""Tests of ``TrainingSetData`` (xyzf/extxyz import and export, attributes, hashing) and its calcfunctions."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.common import exceptions
from aiida.common.links import LinkType
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_chimes.calculations.functions.training_sets import concatenate_training_sets, subset_training_set
from aiida_chimes.chimes.frames import FrameSet, FrameSetError
from aiida_chimes.chimes.io.xyzf import XyzfFormatError, read_xyzf
from aiida_chimes.chimes.units import EV_PER_KCALMOL, GPA_PER_EV_A3
from aiida_chimes.data import TrainingSetData
from tests.helpers import DATA_DIR

XYZF = DATA_DIR / "xyzf"
CN_XYZF, CN_TEMPS = XYZF / "CN_2frames.xyzf", XYZF / "CN_2frames.temps"
ARRAYS = ("numbers", "natoms", "positions", "cells", "pbc", "energy", "forces", "stress", "electronic_temperature")


def assert_framesets_close(a: FrameSet, b: FrameSet, rtol=1e-12, atol=0.0):
    for name in ARRAYS:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=atol, err_msg=name)
    assert a.tags == b.tags


def random_atoms(n_frames=3, seed=0):
    """Small labelled C/N frames with tags and electronic temperatures in ``info``."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_frames):
        n = 3 + i
        atoms = Atoms(["C", "N"] * n, positions=rng.uniform(0, 6, (2 * n, 3)), cell=np.diag([6.0, 6.5, 7.0]) +
                      0.1 * rng.standard_normal((3, 3)), pbc=True)
        atoms.calc = SinglePointCalculator(atoms, energy=float(rng.normal(-50, 5)),
                                           forces=rng.standard_normal((2 * n, 3)), stress=rng.standard_normal(6) / 100)
        atoms.info["electronic_temperature"] = 1000.0 * (i + 1)
        atoms.info["tags"] = {"origin": "md" if i else "ALC-0", "state": "T=2000.0K", "cycle": i % 2}
        frames.append(atoms)
    return frames


def test_xyzf_import_matches_the_file_and_sets_attributes():
    node = TrainingSetData.from_xyzf(CN_XYZF, temps_path=CN_TEMPS)
    fs = node.get_frameset()
    frames = read_xyzf(CN_XYZF)
    assert node.nframes == 2 and node.natoms == 432 and node.natoms_per_frame == [216, 216]
    assert node.elements == ["C", "N"]
    assert node.observables == {"energy": 2, "forces": 2, "stress": 2, "electronic_temperature": 2}
    assert node.units == {"energy": "eV", "forces": "eV/Angstrom",
                          "stress": "eV/Angstrom^3 (ASE Voigt, tension positive)", "electronic_temperature": "K"}
    assert node.tags_summary == {}
    assert fs.energy[0] == pytest.approx(-36267.306061951596 * EV_PER_KCALMOL, rel=1e-15)
    np.testing.assert_allclose(fs.forces[:216], frames[0].forces * EV_PER_KCALMOL, rtol=1e-15)
    sxx, syy, szz, sxy, sxz, syz = frames[0].stress  # GPa, pressure positive
    np.testing.assert_allclose(fs.stress[0], -np.array([sxx, syy, szz, syz, sxz, sxy]) / GPA_PER_EV_A3, rtol=1e-15)
    np.testing.assert_array_equal(fs.electronic_temperature, [6000.0, 6000.0])


@pytest.mark.parametrize("name", ["CN_2frames.xyzf", "C64_2frames.xyzf", "fitstrs_1frame.xyzf"])
def test_xyzf_round_trip(tmp_path, name):
    temps = CN_TEMPS if name.startswith("CN") else None
    node = TrainingSetData.from_xyzf(XYZF / name, temps_path=temps)
    out, out_temps = tmp_path / "out.xyzf", (tmp_path / "out.temps" if temps else None)
    node.export_xyzf(out, temps_path=out_temps)
    again = TrainingSetData.from_xyzf(out, temps_path=out_temps)
    assert_framesets_close(again.get_frameset(), node.get_frameset(), rtol=1e-12, atol=1e-15)
    for orig, back in zip(read_xyzf(XYZF / name), read_xyzf(out), strict=True):
        np.testing.assert_allclose(back.forces, orig.forces, rtol=1e-12, atol=1e-15)
        assert (back.stress is None) == (orig.stress is None) and (back.energy is None) == (orig.energy is None)
        if orig.stress is not None:
            np.testing.assert_allclose(back.stress, orig.stress, rtol=1e-12)


def test_diagonal_stress_and_missing_temperatures():
    node = TrainingSetData.from_xyzf(XYZF / "fitstrs_1frame.xyzf")
    assert node.observables == {"energy": 0, "forces": 1, "stress": 1, "electronic_temperature": 0}
    with pytest.raises(FrameSetError, match="no electronic temperature"):
        node.export_xyzf("unused.xyzf", temps_path="unused.temps")


def test_extxyz_round_trip(tmp_path):
    frames = random_atoms()
    node = TrainingSetData.from_atoms(frames)
    assert node.tags_summary == {"cycle": {"0": 2, "1": 1}, "origin": {"ALC-0": 1, "md": 2},
                                 "state": {"T=2000.0K": 3}}
    node.export_extxyz(tmp_path / "set.extxyz")
    again = TrainingSetData.from_extxyz(tmp_path / "set.extxyz")
    a, b = node.get_frameset(), again.get_frameset()
    for name in ("energy", "stress", "electronic_temperature", "cells"):
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)
    np.testing.assert_allclose(b.positions, a.positions, atol=1e-8)  # ASE writes 8 decimals
    np.testing.assert_allclose(b.forces, a.forces, atol=1e-8)
    assert b.tags == a.tags and again.tags_summary == node.tags_summary
    assert list(b.numbers) == list(a.numbers)


def test_extxyz_keeps_a_diagonal_only_stress(tmp_path):
    node = TrainingSetData.from_xyzf(XYZF / "fitstrs_1frame.xyzf")
    node.export_extxyz(tmp_path / "diag.xyz")
    again = TrainingSetData.from_extxyz(tmp_path / "diag.xyz")
    np.testing.assert_array_equal(again.get_frameset().stress, node.get_frameset().stress)


def test_from_atoms_arguments_override_info():
    node = TrainingSetData.from_atoms(random_atoms(2), electronic_temperature=300.0, tags=[{"a": 1}, {"a": 2}])
    fs = node.get_frameset()
    np.testing.assert_array_equal(fs.electronic_temperature, [300.0, 300.0])
    assert fs.tags == [{"a": 1}, {"a": 2}]
    back = node.to_atoms()
    assert back[1].info["tags"] == {"a": 2} and back[0].get_potential_energy() == fs.energy[0]


def test_hash_depends_on_content():
    frames = random_atoms()
    a = TrainingSetData.from_atoms(frames).store()
    b = TrainingSetData.from_frameset(FrameSet.from_atoms(frames)).store()
    c = TrainingSetData.from_atoms(random_atoms(seed=1)).store()
    assert a.base.caching.get_hash() == b.base.caching.get_hash()
    assert a.base.caching.get_hash() != c.base.caching.get_hash()


def test_immutable_once_stored():
    node = TrainingSetData.from_atoms(random_atoms(1)).store()
    with pytest.raises(exceptions.ModificationNotAllowed):
        node.set_frameset(FrameSet.from_atoms(random_atoms(2)))
    with pytest.raises(exceptions.ValidationError, match="needs its frames.npz"):
        TrainingSetData().store()


def test_concatenate_provenance_and_order():
    first = TrainingSetData.from_atoms(random_atoms(2, seed=3))
    second = TrainingSetData.from_atoms(random_atoms(3, seed=4))
    result, calc = concatenate_training_sets.run_get_node(b_second=second, a_first=first)
    merged = result
    assert calc.is_finished_ok and isinstance(merged, TrainingSetData)
    assert merged.nframes == 5
    expected = FrameSet.concatenate([first.get_frameset(), second.get_frameset()])
    assert_framesets_close(merged.get_frameset(), expected, rtol=0)
    incoming = calc.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all()
    assert {(link.link_label, link.node.pk) for link in incoming} == {("a_first", first.pk), ("b_second", second.pk)}
    assert merged.creator.pk == calc.pk
    assert calc.process_type == "aiida.calculations:chimes.concatenate_training_sets"  # the entry point


def test_subset_provenance():
    source = TrainingSetData.from_atoms(random_atoms(3, seed=5))
    subset, calc = subset_training_set.run_get_node(source, orm.List([2, 0]))
    assert subset.nframes == 2
    expected = source.get_frameset().subset([2, 0])
    expected.tags = [{**t, "source_index": i} for t, i in zip(expected.tags, [2, 0], strict=True)]
    assert_framesets_close(subset.get_frameset(), expected, rtol=0)
    labels = {link.link_label for link in calc.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all()}
    assert labels == {"training_set", "indices"}
    assert subset.creator.pk == calc.pk


def test_subset_rejects_bad_indices():
    source = TrainingSetData.from_atoms(random_atoms(2))
    with pytest.raises(FrameSetError, match="out of range"):
        subset_training_set(source, orm.List([5]))


def test_bad_files_name_file_and_line(tmp_path):
    lines = CN_XYZF.read_text().splitlines()
    lines[4] = "C 0.1 0.2 zero 0.0 0.0 0.0"
    bad = tmp_path / "bad.xyzf"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(XyzfFormatError, match="bad.xyzf:5: expected a number"):
        TrainingSetData.from_xyzf(bad)
    garbage = tmp_path / "bad.extxyz"
    garbage.write_text("2\nLattice=\"1 0 0 0 1 0 0 0 1\" Properties=species:S:1:pos:R:3\nC 0 0\n")
    with pytest.raises(FrameSetError, match="bad.extxyz: not a valid extended XYZ"):
        TrainingSetData.from_extxyz(garbage)
    with pytest.raises(FrameSetError, match="missing.xyz: no such file"):
        TrainingSetData.from_extxyz(tmp_path / "missing.xyz")
