"""chimes_calculator configuration files (the official test-case format)."""

import numpy as np
import pytest

from aiida_chimes.chimes.io.configuration import read_chimes_configuration, read_chimes_configuration_atoms
from tests.helpers import CHIMES_CALCULATOR_DIR


def test_triclinic_configuration():
    path = CHIMES_CALCULATOR_DIR / "configurations" / "TiO2.unitcell_arbrot_#000.xyz"
    symbols, positions, cell = read_chimes_configuration(path)
    assert symbols == ["Ti", "Ti", "O", "O", "O", "O"]
    np.testing.assert_allclose(cell[0], [1.897, 1.897, 4.825])
    np.testing.assert_allclose(positions[0], [0.008160703973609, 3.785807359098570, -0.000073353679465])
    atoms = read_chimes_configuration_atoms(path)
    assert atoms.pbc.all() and len(atoms) == 6


def test_truncated_configuration(tmp_path):
    path = tmp_path / "bad.xyz"
    path.write_text("3\n10 0 0 0 10 0 0 0 10\nC 0 0 0\nC 1 1 1\n")
    with pytest.raises(ValueError, match=r"bad.xyz:5: expected 'symbol x y z' for atom 3 of 3"):
        read_chimes_configuration(path)
