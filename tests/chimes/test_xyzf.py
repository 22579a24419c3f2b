""".xyzf / .temps training data: layouts, unit conversion to ASE, round trips and clear errors."""

import numpy as np
import pytest

from aiida_chimes.chimes.io.xyzf import XyzfFormatError, read_temps, read_xyzf, write_temps, write_xyzf
from aiida_chimes.chimes.units import EV_PER_KCALMOL, GPA_PER_EV_A3
from tests.helpers import DATA_DIR

XYZF = DATA_DIR / "xyzf"


def test_non_ortho_with_stress_and_energy():
    frames = read_xyzf(XYZF / "CN_2frames.xyzf")
    assert len(frames) == 2
    f = frames[0]
    assert f.non_ortho and len(f.symbols) == 216
    assert set(f.symbols) == {"C", "N"}
    np.testing.assert_allclose(f.cell, np.eye(3) * 10.838)
    np.testing.assert_allclose(f.stress, [64.310869, 59.911741, 59.474947, 1.299859, 0.99958, 6.80576])
    assert f.energy == -36267.306061951596
    # forces are Hartree/Bohr in the file, kcal/mol/A in memory (chimes_lsq's factor)
    np.testing.assert_allclose(f.forces[0], np.array([0.038120858166797736, -0.0646719008011348,
                                                      0.02041734326275017]) * 627.50960803 * 1.889725989)
    atoms = f.to_atoms()
    assert atoms.get_potential_energy() == pytest.approx(-36267.306061951596 / 23.0605478, rel=1e-8)
    np.testing.assert_allclose(atoms.get_forces()[0], f.forces[0] * EV_PER_KCALMOL)
    # ASE stress: tension positive, eV/A^3, Voigt xx yy zz yz xz xy
    s = atoms.get_stress()
    np.testing.assert_allclose(s, -np.array([64.310869, 59.911741, 59.474947, 6.80576, 0.99958, 1.299859])
                               / GPA_PER_EV_A3, rtol=1e-12)
    np.testing.assert_allclose(read_temps(XYZF / "CN_2frames.temps", nframes=2), [6000.0, 6000.0])


def test_orthorhombic_layouts():
    e_frames = read_xyzf(XYZF / "C64_2frames.xyzf")
    assert [len(f.symbols) for f in e_frames] == [64, 64]
    assert e_frames[0].stress is None and e_frames[0].energy == -99432.2785459
    s_frame = read_xyzf(XYZF / "fitstrs_1frame.xyzf")[0]
    assert s_frame.energy is None
    np.testing.assert_allclose(s_frame.stress, [1.98016, 0.89831, -2.07543])
    np.testing.assert_allclose(np.diag(s_frame.cell), [9.855] * 3)
    assert s_frame.to_atoms().info["chimes_diagonal_stress_gpa"].shape == (3,)


@pytest.mark.parametrize("name", ["CN_2frames.xyzf", "C64_2frames.xyzf", "fitstrs_1frame.xyzf"])
def test_round_trip(name, tmp_path):
    frames = read_xyzf(XYZF / name)
    write_xyzf(tmp_path / name, frames)
    again = read_xyzf(tmp_path / name)
    for a, b in zip(frames, again, strict=True):
        assert a.symbols == b.symbols and a.non_ortho == b.non_ortho and a.energy == b.energy
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.cell, b.cell)
        np.testing.assert_allclose(a.forces, b.forces, rtol=1e-15)
        if a.stress is not None:
            np.testing.assert_array_equal(a.stress, b.stress)


def test_atoms_round_trip(tmp_path):
    atoms = [f.to_atoms() for f in read_xyzf(XYZF / "CN_2frames.xyzf")]
    write_xyzf(tmp_path / "a.xyzf", atoms)
    back = [f.to_atoms() for f in read_xyzf(tmp_path / "a.xyzf")]
    for a, b in zip(atoms, back, strict=True):
        assert a.get_potential_energy() == pytest.approx(b.get_potential_energy(), rel=1e-14)
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a.get_stress(), b.get_stress(), rtol=1e-12)
    write_temps(tmp_path / "a.temps", [6000, 5000.5])
    np.testing.assert_array_equal(read_temps(tmp_path / "a.temps"), [6000.0, 5000.5])


def _broken(tmp_path, text):
    path = tmp_path / "bad.xyzf"
    path.write_text(text)
    with pytest.raises(XyzfFormatError) as info:
        read_xyzf(path)
    assert info.value.filename == str(path)
    return info.value


def test_errors(tmp_path):
    atom = "C 0 0 0 0.1 0.2 0.3\n"
    err = _broken(tmp_path, "2\n10 10 10\n" + atom)
    assert "announces 2 atoms" in err.message
    err = _broken(tmp_path, "1\n10 10 10 1 2\n" + atom)
    assert err.lineno == 2 and "5 numbers" in err.message
    err = _broken(tmp_path, "1\nNON-ORTHO 10 0 0 0 10 0 0 0 10\n" + atom)
    assert err.lineno == 2 and "NON_ORTHO" in err.message
    err = _broken(tmp_path, "1\n10 10 10\nC 0 0 0 0.1 0.2\n")
    assert err.lineno == 3 and "symbol x y z fx fy fz" in err.message
    err = _broken(tmp_path, "1\n10 10 ten\n" + atom)
    assert err.lineno == 2 and "'ten'" in err.message
    err = _broken(tmp_path, "x\n10 10 10\n" + atom)
    assert err.lineno == 1 and "number of atoms" in err.message
    with pytest.raises(XyzfFormatError, match="1 temperatures for 2 frames"):
        (tmp_path / "t.temps").write_text("6000\n")
        read_temps(tmp_path / "t.temps", nframes=2)
