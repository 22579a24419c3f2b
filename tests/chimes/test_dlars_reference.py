"""``dlars``/``dlasso`` against the official DLARS test cases (64 x 32 problem, ``tests/data/dlars``).

DLARS (the distributed LARS/LASSO program of chimes_lsq, ``contrib/dlars``) prints the coefficients of the
normalised problem after every iteration, so these outputs check the whole LAR and LASSO paths step by step
(entering order, step lengths, the LASSO drop of column 9) and the program's stopping rule: with ``--lambda``
it stops at the first breakpoint whose objective ``||y - X b||^2 / (2N) + lambda |b|_1`` rose, and returns that
breakpoint (``dlasso.64.32.lam.txt``: iteration 21 of the LASSO path).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from aiida_chimes.chimes.design import FORCE
from aiida_chimes.chimes.fit_system import FitSystem
from aiida_chimes.chimes.solvers import solve

DATA = Path(__file__).resolve().parents[1] / "data" / "dlars"
NPROPS, NDATA = 32, 64


def _read_text(name: str) -> str:
    path = DATA / name
    return gzip.open(path, "rt").read() if name.endswith(".gz") else path.read_text()


def _betas(name: str) -> list[np.ndarray]:
    """Every ``Beta:`` block of a DLARS output, in order (the last one is ``Final values``); ``index value``
    lines, all properties (older format) or the non-zero ones (newer format)."""
    lines = _read_text(name).splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "Beta:":
            beta = np.zeros(NPROPS)
            i += 2  # the "[" line
            while lines[i].strip() != "]":
                idx, val = lines[i].split()
                beta[int(idx)] = float(val)
                i += 1
            blocks.append(beta)
        i += 1
    return blocks


@pytest.fixture(scope="module")
def problem():
    """The fit system of X.64.32 / Y.64.32 (unweighted) and the norms of the centred columns (DLARS's scale)."""
    X = np.loadtxt(gzip.open(DATA / "X.64.32.txt.gz", "rt")).reshape(NDATA, NPROPS)
    y = np.loadtxt(DATA / "Y.64.32.txt")
    system = FitSystem(NPROPS)
    system.add_rows(X, y, np.full(NDATA, FORCE))
    scale = np.linalg.norm(X - X.mean(axis=0), axis=0)
    return system, scale


def _scaled(result, scale):
    """Our coefficients in the units DLARS prints (those of the normalised columns)."""
    return result.x * scale


@pytest.mark.parametrize(
    "name, algorithm",
    [("dlars.64.32.txt.gz", "dlars"), ("dlasso.64.32.txt.gz", "dlasso")],
)
def test_every_step_of_the_path(problem, name, algorithm):
    """After k iterations (k = 1 .. end) our path equals DLARS's printed coefficients (7 significant digits,
    measured 3e-7 of max|b|): the LAR path (32 steps; one coefficient crosses zero and its column stays active,
    as in textbook LAR) and the LASSO path (34 steps: column 9 is dropped at its zero crossing and enters
    again); the end of both is the least-squares solution (13 digits)."""
    system, scale = problem
    blocks = _betas(name)
    steps = blocks[:-1]
    assert len(steps) == (32 if algorithm == "dlars" else 34)
    for k, ref in enumerate(steps, start=1):
        got = _scaled(solve(system, algorithm, alpha=0.0, normalize=True, max_iter=k), scale)
        np.testing.assert_allclose(got, ref, rtol=6e-7, atol=1e-9, err_msg=f"iteration {k}")  # 7 printed digits
    final = solve(system, algorithm, alpha=0.0, normalize=True)
    np.testing.assert_allclose(_scaled(final, scale), blocks[-1], rtol=1e-10, atol=1e-12)
    key = "drops" if algorithm == "dlasso" else "zero_crossings"
    assert final.info[key] == 1


def test_lambda_stops_where_the_objective_rises(problem):
    """``--lambda=5.0e-03``: DLARS stops at iteration 22 because the objective of breakpoint 21 exceeds that of
    breakpoint 20, and returns breakpoint 21 (13 printed digits); the correlation level there is not 5e-3."""
    system, scale = problem
    blocks = _betas("dlasso.64.32.lam.txt.gz")
    assert "Stopping: Objective function increased" in _read_text("dlasso.64.32.lam.txt.gz")
    result = solve(system, "dlasso", alpha=5.0e-3, normalize=True)
    np.testing.assert_allclose(_scaled(result, scale), blocks[-1], rtol=1e-11, atol=1e-12)
    np.testing.assert_array_equal(blocks[-1], blocks[20])
    assert result.info["iterations"] == 21 and result.info["objective_stop"]
    assert result.info["alpha_reached"] != pytest.approx(5.0e-3, rel=1e-3)
    # the interpolated LASSO solution at alpha = 5e-3 is a different point
    exact = solve(system, "lassolars", alpha=5.0e-3, normalize=True)
    assert np.abs(_scaled(exact, scale) - blocks[-1]).max() > 1e-3


def test_iteration_limit(problem):
    """``--iterations=10``: the coefficients after 10 steps (13 printed digits)."""
    system, scale = problem
    blocks = _betas("dlasso.64.32.its.txt.gz")
    result = solve(system, "dlasso", alpha=0.0, normalize=True, max_iter=10)
    np.testing.assert_allclose(_scaled(result, scale), blocks[-1], rtol=1e-11, atol=1e-12)
