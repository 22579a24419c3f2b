"""Prediction errors and parity plots of a ChIMES potential on labelled frames (errors.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.units import GPa

from aiida_chimes.chimes.errors import parity_plot, predict, prediction_errors
from aiida_chimes.chimes.evaluate import ChimesModel
from aiida_chimes.chimes.frames import FrameSet
from aiida_chimes.chimes.params import read_params
from aiida_chimes.chimes.structures import random_structure, rattled_frames
from aiida_chimes.chimes.units import EV_PER_KCALMOL
from tests.helpers import force_field_path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def params():
    return read_params(force_field_path("published_params.CN-hierarch.2+3+4b.Tersoff.txt"))


@pytest.fixture(scope="module")
def frames():
    base = random_structure({"C": 8, "N": 8}, density=2.0, seed=1, min_distance=1.2)
    return rattled_frames(base, 3, rattle=0.05, strain=0.02, seed=2)


@pytest.fixture(scope="module")
def predicted(frames, params):
    return predict(frames, params)


def _labelled(frames, energy, forces, stress):
    return FrameSet(frames.numbers, frames.natoms, frames.positions, frames.cells, frames.pbc, energy, forces,
                    stress, frames.electronic_temperature, frames.tags)


def _energy(model, positions, cell, symbols):
    return model.evaluate(symbols, positions, cell).energy * EV_PER_KCALMOL


def test_predict_is_the_full_model_in_ev(frames, params, predicted):
    assert predicted["energy"].shape == (3,) and predicted["forces"].shape == (48, 3)
    assert predicted["stress"].shape == (3, 6)
    np.testing.assert_array_equal(predicted["natoms"], [16, 16, 16])
    model = ChimesModel(params)
    sl = frames.frame_slice(1)
    symbols, pos, cell = frames.symbols(1), frames.positions[sl], frames.cells[1]
    res = model.evaluate(symbols, pos, cell)
    assert predicted["energy"][1] == pytest.approx(res.energy * EV_PER_KCALMOL, rel=1e-12)
    np.testing.assert_allclose(predicted["forces"][sl], res.forces * EV_PER_KCALMOL, rtol=1e-12, atol=1e-12)
    # forces and ASE stress (tension positive, (1/V) dE/d eps) against finite differences of the energy
    h = 1e-5
    moved = pos.copy()
    moved[3, 1] += h
    e_plus = _energy(model, moved, cell, symbols)
    moved[3, 1] -= 2 * h
    e_minus = _energy(model, moved, cell, symbols)
    assert predicted["forces"][sl][3, 1] == pytest.approx(-(e_plus - e_minus) / (2 * h), rel=1e-5, abs=1e-7)
    volume = abs(np.linalg.det(cell))
    for voigt, (a, b) in ((0, (0, 0)), (5, (0, 1))):
        es = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[a, b] = eps[b, a] = sign * h / (1 if a == b else 2)
            deform = np.eye(3) + eps
            es.append(_energy(model, pos @ deform, cell @ deform, symbols))
        expect = (es[0] - es[1]) / (2 * h) / volume
        assert predicted["stress"][1, voigt] == pytest.approx(expect, rel=1e-5, abs=1e-8)


def test_errors_of_own_labels_are_zero(frames, params, predicted):
    labelled = _labelled(frames, predicted["energy"], predicted["forces"], predicted["stress"])
    err = prediction_errors(labelled, params)
    json.dumps(err)  # JSON-able
    assert err["nframes"] == 3 and err["natoms"] == 48
    for key in ("force_rmse", "force_mae", "force_max", "energy_rmse_per_atom", "stress_rmse_gpa"):
        assert err[key] < 1e-10, key
    assert len(err["frame_force_rmse"]) == 3 and max(err["frame_force_rmse"]) < 1e-10


def test_errors_of_shifted_labels(frames, params, predicted):
    delta, e_shift, s_shift = 0.37, 0.012, 0.004  # eV/A, eV/atom, eV/A^3
    energy = predicted["energy"] - e_shift * frames.natoms
    forces = predicted["forces"] + delta
    stress = predicted["stress"] - s_shift
    err = prediction_errors(_labelled(frames, energy, forces, stress), params, predicted=predicted)
    assert err["force_rmse"] == pytest.approx(delta, rel=1e-12)
    assert err["force_mae"] == pytest.approx(delta, rel=1e-12)
    assert err["force_max"] == pytest.approx(delta, rel=1e-12)
    assert err["frame_force_rmse"] == pytest.approx([delta] * 3, rel=1e-12)
    assert err["energy_rmse_per_atom"] == pytest.approx(e_shift, rel=1e-9)
    assert err["stress_rmse_gpa"] == pytest.approx(s_shift / GPa, rel=1e-9)
    assert prediction_errors(_labelled(frames, energy, forces, stress), params) == err


def test_errors_skip_missing_labels(frames, params, predicted):
    forces = predicted["forces"] + 0.5
    forces[frames.frame_slice(0)] = np.nan  # frame 0 without forces
    forces[frames.frame_slice(1).start, 2] -= 0.5 + 2.0  # one component of frame 1 off by 2 (the others by 0.5)
    energy = np.array([np.nan, predicted["energy"][1] + 16 * 0.1, np.nan])  # only frame 1 has an energy
    stress = np.full((3, 6), np.nan)
    err = prediction_errors(_labelled(frames, energy, forces, stress), params, predicted=predicted)
    n = 2 * 16 * 3
    assert err["force_rmse"] == pytest.approx(np.sqrt(((n - 1) * 0.25 + 4.0) / n), rel=1e-12)
    assert err["force_max"] == pytest.approx(2.0, rel=1e-12)
    assert err["frame_force_rmse"][0] is None
    assert err["frame_force_rmse"][2] == pytest.approx(0.5, rel=1e-12)
    assert err["energy_rmse_per_atom"] == pytest.approx(0.1, rel=1e-9)
    assert err["stress_rmse_gpa"] is None
    unlabelled = prediction_errors(frames, params, predicted=predicted)
    assert unlabelled["force_rmse"] is None and unlabelled["energy_rmse_per_atom"] is None
    json.dumps(unlabelled)


def test_predict_refuses_foreign_elements(params):
    atoms = Atoms("CO", positions=[[0, 0, 0], [1.2, 0, 0]], cell=[8, 8, 8], pbc=True)
    with pytest.raises(ValueError, match=r"elements \['O'\]"):
        predict(FrameSet.from_atoms([atoms]), params)


def test_parity_plot_writes_png(tmp_path, frames, predicted):
    reference = {"energy": predicted["energy"] + 0.1, "forces": predicted["forces"] + 0.05,
                 "natoms": frames.natoms}
    path = parity_plot(reference, predicted, tmp_path / "parity.png", title="C/N test")
    assert path == tmp_path / "parity.png"
    assert path.read_bytes()[:8] == PNG_MAGIC
    # forces only (no reference energies), natoms taken from the predicted dict
    forces_only = {"energy": np.full(3, np.nan), "forces": predicted["forces"] - 0.02}
    other = parity_plot(forces_only, predicted, tmp_path / "forces.png")
    assert other.read_bytes()[:8] == PNG_MAGIC
