"""Calcfunctions of the active-learning loop run directly: structures, initial frames, selection, errors."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers

from aiida_chimes.calculations.functions.active_learning import (
    SELECTION_DEFAULTS,
    generate_structure,
    initial_frames,
    prediction_errors,
    select_candidates,
    selection_settings,
)
from aiida_chimes.chimes import selection
from aiida_chimes.chimes.errors import prediction_errors as core_prediction_errors
from aiida_chimes.data.potential import ChimesPotentialData
from aiida_chimes.data.training_set import TrainingSetData
from tests.calculations.conftest import CN_SETTINGS
from tests.helpers import force_field_path

#: g/cm^3 of 1 amu per A^3.
G_CM3_PER_AMU_A3 = 1.66053906660


def _density(structure: orm.StructureData) -> float:
    masses = sum(atomic_masses[atomic_numbers[s]] for s in structure.get_ase().get_chemical_symbols())
    return masses / structure.get_cell_volume() * G_CM3_PER_AMU_A3


# ===================================================================== starting structures and initial frames
def test_generate_structure_is_deterministic_and_has_the_density():
    point = {"temperature": 1500.0, "composition": {"C": 5, "N": 3}, "density": 1.9, "min_distance": 1.2}
    first = generate_structure(orm.Dict(point), orm.Int(7))
    again = generate_structure(orm.Dict(point), orm.Int(7))
    other = generate_structure(orm.Dict(point), orm.Int(8))
    assert isinstance(first, orm.StructureData) and first.creator.process_label == "generate_structure"
    atoms = first.get_ase()
    assert atoms.get_chemical_symbols() == ["C"] * 5 + ["N"] * 3 and atoms.pbc.all()
    np.testing.assert_array_equal(again.get_ase().positions, atoms.positions)
    assert not np.allclose(other.get_ase().positions, atoms.positions)
    assert _density(first) == pytest.approx(1.9, rel=1e-7)  # (CODATA amu constants differ in the 8th digit)
    cell = np.asarray(atoms.cell)
    assert np.allclose(cell, np.diag(np.diag(cell))) and np.allclose(np.diag(cell), cell[0, 0])  # cubic box
    distances = atoms.get_all_distances(mic=True)[np.triu_indices(len(atoms), 1)]
    assert distances.min() >= 1.2


def test_generate_structure_in_a_given_cell():
    point = {"temperature": 1000.0, "composition": {"C": 4}, "cell": [4.0, 5.0, 6.0]}
    atoms = generate_structure(orm.Dict(point), orm.Int(0)).get_ase()
    np.testing.assert_allclose(atoms.cell.array, np.diag([4.0, 5.0, 6.0]))
    assert len(atoms) == 4
    assert atoms.get_all_distances(mic=True)[np.triu_indices(4, 1)].min() >= 1.0  # the default min_distance


def test_initial_frames_are_unlabelled_copies():
    point = {"temperature": 1500.0, "composition": {"C": 8}, "density": 2.0, "min_distance": 1.2}
    structure = generate_structure(orm.Dict(point), orm.Int(1))
    parameters = {"n_frames": 5, "rattle": 0.05, "strain": 0.02, "seed": 3}
    frames = initial_frames(structure, orm.Dict(parameters))
    assert isinstance(frames, TrainingSetData) and frames.nframes == 5 and frames.elements == ["C"]
    fs = frames.get_frameset()
    assert np.isnan(fs.energy).all() and np.isnan(fs.forces).all() and np.isnan(fs.stress).all()
    assert [t["copy"] for t in fs.tags] == list(range(5))
    assert all(t["origin"] == "rattled" and t["rattle"] == 0.05 and t["strain"] == 0.02 for t in fs.tags)
    base = structure.get_ase()
    for i in range(5):
        cell = fs.cells[i]
        assert not np.allclose(cell, base.cell.array) and np.allclose(cell, base.cell.array, atol=0.1 * 8)
    again = initial_frames(structure, orm.Dict(parameters)).get_frameset()
    np.testing.assert_array_equal(again.positions, fs.positions)
    assert initial_frames(structure, orm.Dict({})).nframes == 8  # the default n_frames


# ===================================================================== candidate selection
def _trajectory(penalty: dict[int, int], n_frames: int = 10) -> TrainingSetData:
    """A fake MD trajectory: ``n_frames`` small C cells, tags as chimes-md writes them (penalty_pairs, step)."""
    frames, tags = [], []
    rng = np.random.default_rng(0)
    for i in range(n_frames):
        frames.append(Atoms("C4", positions=rng.random((4, 3)) * 3.0, cell=[3.0, 3.0, 3.0], pbc=True))
        tags.append({"step": 10 * i, "penalty_pairs": penalty.get(i, 0), "state_point": "C"})
    return TrainingSetData.from_atoms(frames, tags=tags)


def test_select_evenly_with_penalty_frames():
    trajectory = _trajectory({1: 2, 4: 1, 7: 3})
    parameters = {"method": "evenly", "n_select": 3, "max_penalty": 2}
    result = select_candidates(trajectory, orm.Dict(parameters))
    report = result["report"].get_dict()
    # evenly spaced ending at the last frame: 3, 6, 9; penalty frames 1, 4, 7 thinned evenly to 2 of them: 4, 7
    assert report["selected"] == [3, 4, 6, 7, 9]
    assert report["reasons"] == ["evenly spaced", "penalty region", "evenly spaced", "penalty region",
                                 "evenly spaced"]
    assert report["method"] == "evenly" and report["n_frames"] == 10 and report["penalty_frames"] == 3
    assert "leverage" not in report
    indices, reasons = selection.select_evenly(trajectory.get_frameset(), 3, True, 2)  # the core oracle
    assert report["selected"] == indices.tolist() and report["reasons"] == [reasons[i] for i in indices]
    candidates = result["candidates"].get_frameset()
    source = trajectory.get_frameset()
    assert [t["source_index"] for t in candidates.tags] == [3, 4, 6, 7, 9]
    assert [t["selected_because"] for t in candidates.tags] == report["reasons"]
    assert [t["step"] for t in candidates.tags] == [30, 40, 60, 70, 90]  # the trajectory's tags are kept
    for k, i in enumerate([3, 4, 6, 7, 9]):
        np.testing.assert_array_equal(candidates.positions[candidates.frame_slice(k)],
                                      source.positions[source.frame_slice(i)])


def test_select_evenly_penalty_and_even_frame_coincide():
    report = select_candidates(_trajectory({6: 5}), orm.Dict({"n_select": 3}))["report"].get_dict()
    assert report["selected"] == [3, 6, 9]
    assert report["reasons"] == ["evenly spaced", "evenly spaced, penalty region", "evenly spaced"]


def test_select_evenly_without_penalty_frames():
    result = select_candidates(_trajectory({1: 2, 4: 1}), orm.Dict({"n_select": 2, "include_penalty": False}))
    report = result["report"].get_dict()
    assert report["selected"] == [4, 9] and report["reasons"] == ["evenly spaced"] * 2
    assert report["penalty_frames"] == 2  # counted, not selected
    # n_select 0: only the penalty frames
    report = select_candidates(_trajectory({1: 2, 4: 1}), orm.Dict({"n_select": 0}))["report"].get_dict()
    assert report["selected"] == [1, 4] and report["reasons"] == ["penalty region"] * 2


def test_select_by_leverage(cn_training_set, cn_fit_system):
    trajectory = cn_training_set.store()
    result = select_candidates(trajectory, orm.Dict({"method": "leverage", "n_select": 1}),
                               settings=orm.Dict(CN_SETTINGS), fit_system=cn_fit_system)
    report = result["report"].get_dict()
    scores = selection.leverage_scores(trajectory.get_frameset(), CN_SETTINGS, cn_fit_system.get_fit_system())
    best = int(np.argmax(scores))
    assert report["selected"] == [best] and report["reasons"] == [f"leverage {scores[best]:.3g}"]
    assert report["leverage"]["max"] == pytest.approx(float(scores.max()))
    assert report["leverage"]["median"] == pytest.approx(float(np.median(scores)))
    assert report["leverage"]["selected"] == pytest.approx([float(scores[best])])
    assert result["candidates"].get_frameset().tags[0]["source_index"] == best


def test_select_by_leverage_needs_the_fit_system():
    with pytest.raises(ValueError, match="selection method 'leverage' needs the fit settings and the current fit"):
        select_candidates(_trajectory({}), orm.Dict({"method": "leverage"}))


# ===================================================================== selection settings
def test_selection_settings_defaults():
    assert selection_settings({}) == SELECTION_DEFAULTS
    assert selection_settings({"n_select": 0})["n_select"] == 0  # penalty frames only
    assert selection_settings({"method": "leverage", "threshold": 0.5})["threshold"] == 0.5


@pytest.mark.parametrize("parameters,message", [
    ({"nselect": 3}, r"selection: unknown key\(s\) \['nselect'\]; allowed: \['method', 'n_select'"),
    ({"method": "random"}, r"selection: method must be one of \['evenly', 'leverage'\], got 'random'"),
    ({"n_select": -1}, r"selection: n_select must be a non-negative integer \(frames per state point\), got -1"),
    ({"n_select": 2.5}, r"selection: n_select must be a non-negative integer .*got 2\.5"),
    ({"n_select": True}, r"selection: n_select must be a non-negative integer .*got True"),
    ({"max_penalty": "4"}, r"selection: max_penalty must be a non-negative integer .*got '4'"),
    ({"n_select": 0, "include_penalty": False}, r"selection: n_select is 0 and include_penalty is false"),
    ({"threshold": "high"}, r"selection: threshold must be a number \(leverage\) or null, got 'high'"),
], ids=["unknown key", "method", "negative", "float", "bool", "string", "nothing selected", "threshold"])
def test_selection_settings_errors(parameters, message):
    with pytest.raises(ValueError, match=message):
        selection_settings(parameters)


# ===================================================================== prediction errors
def test_prediction_errors_equal_the_core_function(cn_training_set):
    training_set = TrainingSetData(cn_training_set.get_frameset().subset([0])).store()
    potential = ChimesPotentialData.get_or_create(force_field_path("published_params.CHON.2+3b.Tersoff.txt"))
    errors = prediction_errors(training_set, potential)
    assert errors.creator.process_label == "prediction_errors"
    expected = core_prediction_errors(training_set.get_frameset(), potential.get_params())
    got = errors.get_dict()
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    assert got["nframes"] == 1 and got["force_rmse"] > 0 and got["stress_rmse_gpa"] is not None
