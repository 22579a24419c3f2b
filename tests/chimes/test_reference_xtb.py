"""GFN-xTB labelling (``aiida_chimes.chimes.reference_xtb``) against tblite's ASE calculator used directly.

Structures: 8-atom C6N2 cells (diamond, 3.57 A, atoms displaced by 0.1 A) and an N2 molecule; one GFN1 single
point of such a cell takes about 0.1 s.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from ase.build import bulk, molecule
from tblite.ase import TBLite

from aiida_chimes.chimes.frames import FrameSet
from aiida_chimes.chimes.reference_xtb import (
    LabelInputError,
    LabelSettings,
    XtbFailure,
    label_atoms,
    label_frames,
)


def cn_cell(seed: int):
    atoms = bulk("C", "diamond", a=3.57, cubic=True)
    atoms.numbers[::4] = 7
    atoms.positions += np.random.default_rng(seed).normal(0.0, 0.1, atoms.positions.shape)
    return atoms


@pytest.fixture(scope="module")
def frames():
    cells = [cn_cell(0), cn_cell(1), molecule("N2")]
    return FrameSet.from_atoms(cells, tags=[{"state_point": "a"}, {"state_point": "b"}, {}])


def direct(atoms, **kwargs):
    atoms = atoms.copy()
    atoms.calc = TBLite(method="GFN1-xTB", verbosity=0, **kwargs)
    return atoms


# ------------------------------------------------------------------------------------------------ settings
def test_settings_defaults():
    s = LabelSettings.from_dict({})
    assert (s.method, s.electronic_temperature, s.accuracy, s.max_iterations, s.stress) == \
        ("GFN1-xTB", 300.0, 1.0, 250, True)
    assert LabelSettings.from_dict({"method": "gfn2-xtb"}).method == "GFN2-xTB"


@pytest.mark.parametrize(("data", "key"), [
    ({"methd": "GFN1-xTB"}, "methd"),
    ({"method": "DFTB"}, "method"),
    ({"electronic_temperature": -1}, "electronic_temperature"),
    ({"accuracy": 0}, "accuracy"),
    ({"max_iterations": 2.5}, "max_iterations"),
    ({"stress": "yes"}, "stress"),
    ({"num_threads": 0}, "num_threads"),
])
def test_settings_errors_name_the_key(data, key):
    with pytest.raises(LabelInputError, match=f"label.json: .*'{key}'"):
        LabelSettings.from_dict(data)


# ------------------------------------------------------------------------------------------------ labels
def test_labels_equal_direct_tblite(frames):
    """Same numbers as tblite's ASE calculator on the same structures (deterministic code path: 1e-8)."""
    labelled, report = label_frames(frames, LabelSettings(), log=io.StringIO())
    assert report["n_input"] == report["n_converged"] == 3 and report["failed"] == []
    assert report["method"] == "GFN1-xTB" and report["seconds_per_frame"] > 0
    for i in range(3):
        ref = direct(frames.atoms(i))
        sl = labelled.frame_slice(i)
        assert labelled.energy[i] == pytest.approx(ref.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(labelled.forces[sl], ref.get_forces(), atol=1e-8)
        np.testing.assert_allclose(labelled.positions[sl], frames.positions[frames.frame_slice(i)])
        if i < 2:  # periodic: stress in ASE Voigt order and sign
            np.testing.assert_allclose(labelled.stress[i], ref.get_stress(), atol=1e-10)
        else:  # molecule: no stress
            assert np.isnan(labelled.stress[i]).all()
    assert labelled.electronic_temperature.tolist() == [300.0] * 3
    assert labelled.tags == [{"state_point": "a", "reference": "GFN1-xTB", "source_index": 0},
                             {"state_point": "b", "reference": "GFN1-xTB", "source_index": 1},
                             {"reference": "GFN1-xTB", "source_index": 2}]
    assert labelled.has_forces().all() and labelled.has_energy().all()


def test_electronic_temperature_is_passed_and_stored(frames):
    settings = LabelSettings(electronic_temperature=5000.0, stress=False)
    labelled, _ = label_frames(frames.subset([0]), settings, log=io.StringIO())
    hot = direct(frames.atoms(0), electronic_temperature=5000.0).get_potential_energy()
    cold = direct(frames.atoms(0)).get_potential_energy()
    assert abs(hot - cold) > 1e-3  # the smearing matters for this cell, so the check below means something
    assert labelled.energy[0] == pytest.approx(hot, abs=1e-8)
    assert labelled.electronic_temperature[0] == 5000.0
    assert np.isnan(labelled.stress[0]).all()  # stress switched off


def test_forces_and_stress_are_energy_derivatives():
    """Central differences of the xTB energy, h = 1e-3 A (strain 1e-4): measured deviations up to 1.4e-4 eV/A
    and 2e-6 eV/A^3 (SCF convergence at accuracy 1 and the h^2 term), so the tolerances are 1e-3 and 2e-5."""
    atoms = cn_cell(0)
    res = label_atoms(atoms, LabelSettings())
    h = 1e-3
    for atom, axis in ((0, 0), (1, 1), (3, 2), (5, 0)):
        energies = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[atom, axis] += sign * h
            energies.append(label_atoms(moved, LabelSettings(stress=False))["energy"])
        assert res["forces"][atom, axis] == pytest.approx(-(energies[0] - energies[1]) / (2 * h), abs=1e-3)
    eps = 1e-4
    energies = []
    for sign in (1, -1):
        strained = atoms.copy()
        strained.set_cell(atoms.cell.array @ np.diag([1 + sign * eps, 1, 1]), scale_atoms=True)
        energies.append(label_atoms(strained, LabelSettings(stress=False))["energy"])
    stress_xx = (energies[0] - energies[1]) / (2 * eps) / atoms.get_volume()
    assert res["stress"][0] == pytest.approx(stress_xx, abs=2e-5)


def test_unconverged_frames_are_reported_and_dropped(frames):
    """With 4 SCF iterations the N2 molecule converges (it needs 3) and the C/N cells do not (they need ~9)."""
    settings = LabelSettings(max_iterations=4)
    with pytest.raises(XtbFailure, match="SCF not converged"):
        label_atoms(frames.atoms(0), settings)
    labelled, report = label_frames(frames, settings, log=io.StringIO())
    assert report["n_converged"] == len(labelled) == 1
    assert [f["index"] for f in report["failed"]] == [0, 1]
    assert all("SCF not converged" in f["message"] for f in report["failed"])
    assert labelled.tags[0]["source_index"] == 2
    assert labelled.energy[0] == pytest.approx(direct(frames.atoms(2)).get_potential_energy(), abs=1e-6)
