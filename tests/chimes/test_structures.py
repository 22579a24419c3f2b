"""Random periodic boxes and rattled/strained copies (structures.py)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.data import atomic_masses
from ase.units import _amu

from aiida_chimes.chimes.structures import random_structure, rattled_frames


def _min_mic_distance(atoms) -> float:
    d = atoms.get_all_distances(mic=True)
    return float(d[np.triu_indices(len(atoms), 1)].min())


def test_random_structure_density_order_and_distances():
    atoms = random_structure({"N": 12, "C": 20}, density=2.3, seed=5, min_distance=1.3)
    assert atoms.get_chemical_symbols() == ["N"] * 12 + ["C"] * 20
    assert atoms.pbc.all()
    cell = atoms.cell.array
    np.testing.assert_allclose(cell, np.eye(3) * cell[0, 0], atol=0)  # cubic
    density = atomic_masses[atoms.numbers].sum() * _amu * 1e3 / (atoms.get_volume() * 1e-24)
    assert density == pytest.approx(2.3, rel=1e-12)
    assert _min_mic_distance(atoms) >= 1.3
    frac = atoms.get_scaled_positions(wrap=False)
    assert frac.min() >= 0.0 and frac.max() < 1.0


def test_random_structure_explicit_cells():
    ortho = random_structure({"C": 10}, cell=[5.0, 6.0, 7.0], seed=1, min_distance=1.5)
    np.testing.assert_allclose(ortho.cell.array, np.diag([5.0, 6.0, 7.0]))
    assert _min_mic_distance(ortho) >= 1.5
    tri = [[6.0, 0.0, 0.0], [2.0, 5.5, 0.0], [1.0, 1.5, 6.5]]
    skew = random_structure({"C": 6, "N": 6}, cell=tri, seed=2, min_distance=1.6)
    np.testing.assert_allclose(skew.cell.array, tri)
    assert _min_mic_distance(skew) >= 1.6


def test_random_structure_is_deterministic():
    a = random_structure({"C": 8, "N": 8}, density=2.0, seed=3)
    b = random_structure({"C": 8, "N": 8}, density=2.0, seed=3)
    c = random_structure({"C": 8, "N": 8}, density=2.0, seed=4)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert not np.allclose(a.positions, c.positions)


@pytest.mark.parametrize("kwargs, match", [
    ({"composition": {}, "density": 1.0}, "composition is empty"),
    ({"composition": {"C": 0}, "density": 1.0}, "positive integer"),
    ({"composition": {"C": -2}, "density": 1.0}, "positive integer"),
    ({"composition": {"Xx": 2}, "density": 1.0}, "unknown chemical symbol 'Xx'"),
    ({"composition": {"C": 2}}, "exactly one of density"),
    ({"composition": {"C": 2}, "density": 1.0, "cell": [5, 5, 5]}, "exactly one of density"),
    ({"composition": {"C": 2}, "density": -1.0}, "density must be a positive"),
    ({"composition": {"C": 2}, "cell": [0.8, 5, 5]}, "shortest lattice vector"),
    ({"composition": {"C": 64}, "density": 3.5, "min_distance": 2.0, "max_attempts": 50},
     "lower the density or min_distance"),
])
def test_random_structure_errors(kwargs, match):
    composition = kwargs.pop("composition")
    with pytest.raises(ValueError, match=match):
        random_structure(composition, **kwargs)


def test_rattled_frames_unlabelled_with_tags():
    base = random_structure({"C": 32, "N": 32}, density=2.0, seed=0, min_distance=1.3)
    frames = rattled_frames(base, 8, rattle=0.04, seed=1)
    assert len(frames) == 8
    assert frames.observables() == {"energy": 0, "forces": 0, "stress": 0, "electronic_temperature": 0}
    assert np.isnan(frames.forces).all() and np.isnan(frames.energy).all() and np.isnan(frames.stress).all()
    assert frames.tags[3] == {"origin": "rattled", "rattle": 0.04, "strain": 0.0, "copy": 3}
    assert all(frames.symbols(i) == base.get_chemical_symbols() for i in range(8))
    np.testing.assert_array_equal(frames.cells, np.broadcast_to(base.cell.array, (8, 3, 3)))
    disp = frames.positions - np.tile(base.positions, (8, 1))
    assert abs(disp.mean()) < 0.005
    assert disp.std() == pytest.approx(0.04, rel=0.05)  # 1536 samples: ~2 % statistical error
    again = rattled_frames(base, 8, rattle=0.04, seed=1)
    np.testing.assert_array_equal(again.positions, frames.positions)
    other = rattled_frames(base, 8, rattle=0.04, seed=2)
    assert not np.allclose(other.positions, frames.positions)


def test_rattled_frames_strain_scales_positions_with_the_cell():
    base = random_structure({"C": 16}, density=2.0, seed=0)
    frames = rattled_frames(base, 6, rattle=0.0, strain=0.03, seed=7)
    assert frames.tags[0]["strain"] == 0.03
    inv = np.linalg.inv(base.cell.array)
    for i in range(6):
        deform = inv @ frames.cells[i]
        eps = deform - np.eye(3)
        np.testing.assert_allclose(eps, eps.T, atol=1e-12)  # symmetric strain
        assert np.abs(eps).max() <= 0.03 + 1e-12 and np.abs(eps).max() > 1e-4
        # no rattle: fractional coordinates are those of the base structure
        frac = frames.positions[frames.frame_slice(i)] @ np.linalg.inv(frames.cells[i])
        np.testing.assert_allclose(frac, base.positions @ inv, atol=1e-12)


def test_rattled_frames_min_distance():
    base = random_structure({"C": 24}, density=2.0, seed=0, min_distance=1.4)
    frames = rattled_frames(base, 10, rattle=0.15, seed=3, min_distance=1.2)
    for a in frames.to_atoms():
        assert _min_mic_distance(a) >= 1.2
    with pytest.raises(ValueError, match="lower rattle, strain or min_distance"):
        rattled_frames(base, 2, rattle=0.05, seed=3, min_distance=5.0)
