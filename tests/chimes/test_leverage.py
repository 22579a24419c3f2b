"""Leverage scores of frames against a compact fit system built with given settings (selection.leverage_scores)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from aiida_chimes.chimes.design import FORCE, DesignBuilder
from aiida_chimes.chimes.fit_basis import build_basis
from aiida_chimes.chimes.fit_build import build_fit_system
from aiida_chimes.chimes.fit_settings import setup_from_settings
from aiida_chimes.chimes.fit_system import FitSystem
from aiida_chimes.chimes.frames import FrameSet
from aiida_chimes.chimes.selection import LeverageScorer, leverage_scores
from aiida_chimes.chimes.structures import rattled_frames
from tests.calculations.conftest import CN_SETTINGS
from tests.helpers import DATA_DIR


@pytest.fixture(scope="module")
def training():
    """The 2 C/N frames (216 atoms each) as a FrameSet."""
    return FrameSet.from_xyzf(DATA_DIR / "xyzf" / "CN_2frames.xyzf")


@pytest.fixture(scope="module")
def built(tmp_path_factory, training):
    """(setup, FitSystem) of the 2 C/N frames with CN_SETTINGS, built as the fit CalcJobs build it."""
    folder = tmp_path_factory.mktemp("leverage")
    training.write_xyzf(folder / "cn.xyzf")
    setup = setup_from_settings(CN_SETTINGS, [("cn.xyzf", len(training))], base_dir=str(folder))
    system, _ = build_fit_system(setup)
    return setup, system


def test_frames_in_the_system_have_leverage_at_most_one(training, built):
    setup, system = built
    scores = leverage_scores(training, CN_SETTINGS, system)
    assert scores.shape == (2,)
    # h_i is a diagonal element of the hat matrix of rows that are in the system: 0 <= h_i <= 1
    assert np.all(scores > 0.0) and np.all(scores <= 1.0 + 1e-9)
    # the same as the scorer on the force rows chimes_lsq builds from the .xyzf frames (cells, units agree)
    builder = DesignBuilder(build_basis(setup), setup.fit_energy)
    scorer = LeverageScorer(system)
    for index, _source, frame in setup.iter_frames():
        rows = builder.frame_rows(frame, setup.stress_mode(index), setup.fits_energy(index))
        assert scores[index] == pytest.approx(scorer.frame_score(rows.A[rows.classes == FORCE]), rel=1e-10)


def test_out_of_distribution_frame_scores_higher(training, built):
    _, system = built
    base = training.atoms(0)
    base.calc = None
    near = rattled_frames(base, 1, rattle=0.02, seed=1)
    squeezed = base.copy()
    squeezed.set_cell(base.cell.array * 0.85, scale_atoms=True)
    scores = leverage_scores(FrameSet.concatenate([near, FrameSet.from_atoms([squeezed])]), CN_SETTINGS, system)
    assert scores[1] > 1.0  # extrapolation
    assert scores[1] > 100.0 * scores[0]


def test_skewed_cell_of_the_same_lattice_gives_the_same_score(training, built):
    """General 3x3 cells: c' = c + a describes the same periodic structure, so the rows are the same."""
    _, system = built
    sub = training.subset([1])
    cell = sub.cells[0].copy()
    cell[2] += cell[0]
    skewed = FrameSet(sub.numbers, sub.natoms, sub.positions, cell[None], sub.pbc, sub.energy, sub.forces,
                      sub.stress, sub.electronic_temperature, sub.tags)
    scores = leverage_scores(FrameSet.concatenate([sub, skewed]), CN_SETTINGS, system)
    assert scores[1] == pytest.approx(scores[0], rel=1e-8)


def test_leverage_scores_errors(training, built):
    _, system = built
    other = dict(CN_SETTINGS, orders=[6, 4, 0])
    with pytest.raises(ValueError, match="the fit system was built with other settings"):
        leverage_scores(training, other, system)
    with pytest.raises(ValueError, match="other settings"):
        leverage_scores(training, CN_SETTINGS, FitSystem(5))
    molecule = Atoms("CN", positions=[[0, 0, 0], [1.2, 0, 0]])
    with pytest.raises(ValueError, match="not fully periodic"):
        leverage_scores(FrameSet.from_atoms([molecule]), CN_SETTINGS, system)
    oxide = Atoms("CO", positions=[[0, 0, 0], [1.2, 0, 0]], cell=[8, 8, 8], pbc=True)
    with pytest.raises(ValueError, match=r"elements \['O'\]"):
        leverage_scores(FrameSet.from_atoms([oxide]), CN_SETTINGS, system)
