"""Reading then writing every official parameter file gives a model that evaluates to identical numbers."""

import numpy as np
import pytest

from aiida_chimes.chimes import ChimesModel, read_params
from aiida_chimes.chimes.params import parse_params
from tests.helpers import FORCE_FIELDS, force_field_path


@pytest.mark.parametrize("name", FORCE_FIELDS)
def test_written_file_evaluates_identically(name, tmp_path):
    original = read_params(force_field_path(name))
    path = tmp_path / name
    original.write(path)
    rewritten = read_params(path)
    assert rewritten.same_model(original)
    assert parse_params(rewritten.to_string()).same_model(original)

    rng = np.random.default_rng(7)
    symbols = [original.symbols[i % len(original.symbols)] for i in range(6)]
    cell = np.diag([4.2, 4.6, 5.0]) + rng.uniform(-0.3, 0.3, (3, 3))
    positions = rng.uniform(0, 1, (6, 3)) @ cell
    a = ChimesModel(original).evaluate(symbols, positions, cell)
    b = ChimesModel(rewritten).evaluate(symbols, positions, cell)
    assert np.isfinite(a.energy)
    assert a.energy == b.energy
    assert np.array_equal(a.forces, b.forces)
    assert np.array_equal(a.stress, b.stress)
