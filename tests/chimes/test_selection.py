"""Candidate selection: evenly spaced + penalty frames, and leverage against the compact fit system."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_chimes.chimes.fit_system import FitSystem
from aiida_chimes.chimes.frames import FrameSet
from aiida_chimes.chimes.selection import (
    LeverageScorer,
    evenly_spaced,
    penalty_frames,
    select_by_leverage,
    select_evenly,
)


def test_evenly_spaced():
    assert evenly_spaced(10, 3).tolist() == [3, 6, 9]  # spacing 10/3, the last frame always taken
    assert evenly_spaced(10, 1).tolist() == [9]
    assert evenly_spaced(4, 10).tolist() == [0, 1, 2, 3]
    assert evenly_spaced(0, 3).tolist() == [] and evenly_spaced(5, 0).tolist() == []
    picks = evenly_spaced(1000, 7)
    assert len(picks) == 7 and np.all(np.diff(picks) >= 142)


def _trajectory(penalties):
    from ase.build import bulk

    atoms = [bulk("C", "diamond", a=3.57) for _ in penalties]
    return FrameSet.from_atoms(atoms, tags=[{"step": 10 * i, "penalty_pairs": p} for i, p in enumerate(penalties)])


def test_penalty_frames_are_added():
    traj = _trajectory([0, 0, 2, 0, 0, 0, 1, 0, 0, 0])
    assert penalty_frames(traj).tolist() == [2, 6]
    idx, reasons = select_evenly(traj, 2)
    assert idx.tolist() == [2, 4, 6, 9]
    assert reasons[2] == "penalty region" and reasons[9] == "evenly spaced"
    idx, _ = select_evenly(traj, 2, include_penalty=False)
    assert idx.tolist() == [4, 9]
    idx, _ = select_evenly(traj, 2, max_penalty=1)
    assert idx.tolist() == [4, 6, 9]


def test_leverage_equals_hat_matrix_diagonal():
    """h_i = diag(A (A^T A)^-1 A^T): exact against the explicit hat matrix, and sum h_i = rank."""
    rng = np.random.default_rng(3)
    A = rng.normal(size=(300, 12)) @ np.diag(np.logspace(0, 3, 12))
    b = rng.normal(size=300)
    system = FitSystem(12)
    system.add_rows(A[:200], b[:200], 0)
    system.add_rows(A[200:], b[200:], 1, natoms=8)
    scorer = LeverageScorer(system)
    hat = np.einsum("ij,ji->i", A, np.linalg.solve(A.T @ A, A.T))
    np.testing.assert_allclose(scorer.rows(A), hat, rtol=1e-9)
    assert scorer.rows(A).sum() == pytest.approx(12.0, rel=1e-9)
    # a row far outside the data extrapolates: h > 1
    assert scorer.rows(10.0 * A[:1]).item() > 1.0


def test_leverage_drops_undetermined_directions():
    """A column the data never touch gives no infinite leverage (it is left out, as SVD leaves it at 0)."""
    rng = np.random.default_rng(4)
    A = rng.normal(size=(100, 5))
    A[:, 3] = 0.0
    system = FitSystem(5)
    system.add_rows(A, rng.normal(size=100), 0)
    scorer = LeverageScorer(system)
    assert scorer.rank == 4
    probe = np.zeros((1, 5))
    probe[0, 3] = 1.0
    assert scorer.rows(probe).item() == pytest.approx(0.0, abs=1e-12)


def test_select_by_leverage():
    scores = [0.1, 2.0, 0.5, 2.0, 0.05]
    assert select_by_leverage(scores, 2).tolist() == [1, 3]
    assert select_by_leverage(scores, 3).tolist() == [1, 2, 3]
    assert select_by_leverage(scores, 5, threshold=0.4).tolist() == [1, 2, 3]
