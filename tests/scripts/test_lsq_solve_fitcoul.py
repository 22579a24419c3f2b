"""``chimes-lsq`` then ``chimes-solve`` in one folder, as a user of the official tools runs them, on the official
FITCOUL water test (h2o-2bcheby: 2-body Chebyshev + fitted charge products + charge constraints)."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from aiida_chimes.chimes.io.lsq_files import read_b_txt, read_force_txt, read_test_suite_params

DATA = Path(__file__).parent.parent / "data"
REF = DATA / "chimes_lsq" / "h2o-2bcheby" / "correct_output"


def _tool(name):
    from tests.calculations.conftest import script_path  # our console scripts next to the running interpreter

    return script_path(name)


def test_lsq_then_solve_reproduces_official_fitcoul_outputs(tmp_path):
    shutil.copyfile(DATA / "fm_setup" / "h2o-2bcheby" / "fm_setup.in", tmp_path / "fm_setup.in")
    with gzip.open(DATA / "chimes_lsq" / "h2o-2bcheby" / "inputs" / "input.xyzf.gz", "rb") as fin, \
            open(tmp_path / "input.xyzf", "wb") as fout:
        shutil.copyfileobj(fin, fout)
    subprocess.run([_tool("chimes-lsq"), "fm_setup.in"], cwd=tmp_path, check=True, capture_output=True)
    subprocess.run([_tool("chimes-solve"), "--algorithm", "svd", "--eps", "1e-5", "--test_suite", "true"],
                   cwd=tmp_path, check=True, capture_output=True)
    # b: 28512 force rows + 2 charge-constraint rows (one per CHARGE CONSTRAINTS line), equal to the official file
    b_ref = read_b_txt(REF / "b.txt.gz")
    np.testing.assert_array_equal(read_b_txt(tmp_path / "b.txt"), b_ref)
    assert len(b_ref) == 28514
    # A x (force.txt, printed %13.6e as chimes_lsq.py): equal to its printed precision
    y, y_ref = read_force_txt(tmp_path / "force.txt"), read_force_txt(REF / "force.txt.gz")
    np.testing.assert_allclose(y, y_ref, rtol=1e-6, atol=1e-6 * np.abs(y_ref).max())
    x, x_ref = read_test_suite_params(tmp_path / "test_suite_params.txt"), read_test_suite_params(
        REF / "test_suite_params.txt")
    np.testing.assert_allclose(x, x_ref, rtol=0, atol=1e-10 * np.abs(x_ref).max())
    text = (tmp_path / "params.txt").read_text()
    for line in ("USECOUL: true", "FITCOUL: true", "0\t\tO\t\t-\t\t15.9994"):
        assert line in text
    charges = [float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith("q_")]
    np.testing.assert_allclose(charges, [73.661612941453, 18.415406762994, -36.830814346015], rtol=1e-10)

    # ridgecv (chimes_lsq.py: RidgeCV(8 alphas, fit_intercept=False, cv=4) on A): the same alpha and x as sklearn
    import warnings

    from sklearn.linear_model import RidgeCV

    from aiida_chimes.chimes.solvers import RIDGECV_ALPHAS

    solve = _tool("chimes-solve")
    subprocess.run([solve, "--algorithm", "ridgecv", "--test_suite", "true", "--output", "params.ridgecv.txt",
                    "--stats", "ridgecv.json"], cwd=tmp_path, check=True, capture_output=True)
    A = np.load(tmp_path / "A.npy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about the conditioning of its normal equations
        ref = RidgeCV(alphas=RIDGECV_ALPHAS, fit_intercept=False, cv=4).fit(A, b_ref)
    text = (tmp_path / "params.ridgecv.txt").read_text()
    assert "! ridge CV regression used" in text and f"! ridge CV alpha = {ref.alpha_:11.4e}" in text
    x = read_test_suite_params(tmp_path / "test_suite_params.txt")
    np.testing.assert_allclose(x, ref.coef_, rtol=0, atol=1e-7 * np.abs(ref.coef_).max())
    # the compact system no longer knows the row order the folds need: a clear error, exit 2
    run = subprocess.run([solve, "--system", "fit_system.npz", "--algorithm", "ridgecv"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 2 and "ridgecv needs the rows in their order" in run.stderr


def test_two_mpi_ranks_give_the_same_fitcoul_system(tmp_path):
    """Frames split over 2 ranks, the charge-constraint rows added by the last rank: the same system as 1 rank."""
    from aiida_chimes.chimes.fit_system import FitSystem
    from aiida_chimes.chimes.solvers import solve

    shutil.copyfile(DATA / "fm_setup" / "h2o-2bcheby" / "fm_setup.in", tmp_path / "fm_setup.in")
    with gzip.open(DATA / "chimes_lsq" / "h2o-2bcheby" / "inputs" / "input.xyzf.gz", "rb") as fin, \
            open(tmp_path / "input.xyzf", "wb") as fout:
        shutil.copyfileobj(fin, fout)
    lsq = _tool("chimes-lsq")
    subprocess.run([lsq, "fm_setup.in", "--compact-only", "-o", "one.npz"], cwd=tmp_path, check=True,
                   capture_output=True)
    subprocess.run([_tool("mpiexec"), "-n", "2", lsq, "fm_setup.in", "--compact-only", "-o", "two.npz"],
                   cwd=tmp_path, check=True, capture_output=True)
    one, two = FitSystem.load(tmp_path / "one.npz"), FitSystem.load(tmp_path / "two.npz")
    assert one.nrows == two.nrows and one.nrows["constraint"] == 2 and one.nrows["force"] == 28512
    x1, x2 = solve(one, "svd").x, solve(two, "svd").x
    np.testing.assert_allclose(x2, x1, rtol=0, atol=1e-11 * np.abs(x1).max())


def test_fitcoul_refuses_non_orthorhombic_frames(tmp_path):
    """chimes_lsq's Ewald sum takes box lengths only: a tilted cell is refused, naming file and frame."""
    import dataclasses

    from aiida_chimes.chimes.fit_build import build_fit_system
    from aiida_chimes.chimes.fit_setup import read_fm_setup

    shutil.copyfile(DATA / "fm_setup" / "h2o-2bcheby" / "fm_setup.in", tmp_path / "fm_setup.in")
    with gzip.open(DATA / "chimes_lsq" / "h2o-2bcheby" / "inputs" / "input.xyzf.gz", "rb") as fin, \
            open(tmp_path / "input.xyzf", "wb") as fout:
        shutil.copyfileobj(fin, fout)
    setup = read_fm_setup(tmp_path / "fm_setup.in")
    frames = list(setup.iter_frames())[:2]
    tilted = np.array(frames[1][2].cell, dtype=float)
    tilted[0, 1] = 0.5
    frames[1] = (frames[1][0], frames[1][1], dataclasses.replace(frames[1][2], cell=tilted))
    setup = dataclasses.replace(setup, nframes=2)
    setup.iter_frames = lambda: iter(frames)
    with pytest.raises(ValueError, match=r"input.xyzf: training frame 2: FITCOUL true needs orthorhombic cells"):
        build_fit_system(setup)
