"""End-to-end fit builds: chimes-lsq (serial and ``mpiexec -n 2``), chimes-solve, and the fitted potential.

The setup is a small hierarchical C/N cross-tile fit (exclusions, SPECIFIC many-body cutoffs, Tersoff cutoff,
stresses for the first frame, energies for all) on two 216-atom frames of the al_driver example.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from aiida_chimes.chimes.design import DesignBuilder
from aiida_chimes.chimes.evaluate import ChimesModel
from aiida_chimes.chimes.fit_basis import build_basis
from aiida_chimes.chimes.fit_build import build_fit_system, frame_range
from aiida_chimes.chimes.fit_setup import read_fm_setup
from aiida_chimes.chimes.fit_system import FitSystem
from aiida_chimes.chimes.io.lsq_files import fill_coefficients, read_A, read_b_txt, read_dim_txt
from aiida_chimes.chimes.solvers import solve
from tests.helpers import DATA_DIR

SETUP = os.path.join(DATA_DIR, "fit_build", "CN_hierarchical.fm_setup.in")
FRAMES = os.path.join(DATA_DIR, "xyzf", "CN_2frames.xyzf")
BIN = os.path.dirname(sys.executable)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cn_fit")
    shutil.copy(SETUP, d / "fm_setup.in")
    shutil.copy(FRAMES, d / "CN_2frames.xyzf")
    return d


def _run(cmd, cwd):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def serial(workdir):
    _run([os.path.join(BIN, "chimes-lsq"), "-q"], workdir)
    return workdir


def test_frame_range_splits_contiguously():
    parts = [frame_range(7, r, 3) for r in range(3)]
    assert [list(p) for p in parts] == [[0, 1, 2], [3, 4], [5, 6]]
    assert list(frame_range(1, 1, 2)) == []


def test_interop_files(serial):
    ncols, nrows = read_dim_txt(serial / "dim.txt")
    A = read_A(serial / "A.npy")
    b = read_b_txt(serial / "b.txt")
    assert A.shape == (nrows, ncols) and len(b) == nrows
    # frame 0: 648 force + 9 stress (FIRSTALL 1) + 3 energy rows; frame 1: 648 + 3
    assert nrows == 660 + 651
    labels = (serial / "b-labeled.txt").read_text().split()[::2]
    assert labels[648:657] == ["s_xx", "s_xy", "s_xz", "s_yx", "s_yy", "s_yz", "s_zx", "s_zy", "s_zz"]
    assert labels[657:660] == ["+1"] * 3
    # hierarchical exclusions: no CC pair block, no C energy offset, only N has an offset column
    header = (serial / "params.header").read_text()
    assert "EXCLD1B: 0 \n" in header and "EXCLD2B: 0 \n" in header
    assert np.all(A[:648, -1] == 0.0) and A[657, -1] == np.sum(np.array(labels[:648:3]) == "N")


def test_mpi_two_ranks_equal_serial(serial, tmp_path):
    mpiexec = os.path.join(BIN, "mpiexec")
    if not os.path.exists(mpiexec):
        pytest.skip("mpiexec (mpich wheel) is not installed next to the Python interpreter")
    shutil.copy(serial / "fm_setup.in", tmp_path)
    shutil.copy(serial / "CN_2frames.xyzf", tmp_path)
    _run([mpiexec, "-n", "2", os.path.join(BIN, "chimes-lsq"), "-q"], tmp_path)
    one = FitSystem.load(serial / "fit_system.npz")
    two = FitSystem.load(tmp_path / "fit_system.npz")
    assert two.metadata["ranks"] == 2
    np.testing.assert_array_equal(read_A(tmp_path / "A.npy"), read_A(serial / "A.npy"))
    x1 = solve(one, "svd", eps=1e-5).x
    x2 = solve(two, "svd", eps=1e-5).x
    assert np.max(np.abs(x1 - x2)) <= 1e-10 * np.max(np.abs(x1))


def test_solve_compact_equals_interop(serial):
    _run([os.path.join(BIN, "chimes-solve"), "--output", "compact.params.txt", "--stats", "compact.json"], serial)
    _run([os.path.join(BIN, "chimes-solve"), "--A", "A.npy", "--test_suite", "true"], serial)
    a = (serial / "compact.params.txt").read_text().split("USECOUL")[1]
    b = (serial / "params.txt").read_text().split("USECOUL")[1]
    va = np.array([float(t) for t in a.split() if _is_float(t)])
    vb = np.array([float(t) for t in b.split() if _is_float(t)])
    assert len(va) == len(vb)
    np.testing.assert_allclose(va, vb, rtol=1e-9, atol=1e-9 * np.abs(vb).max())
    stats = json.loads((serial / "fit_stats.json").read_text())
    assert set(stats["rmse_by_class"]) >= {"force", "energy", "stress"}
    assert "force" in stats["mae_by_class"]
    # force.txt is A x of the written coefficients, printed like chimes_lsq.py (7 significant digits)
    x = np.loadtxt(serial / "test_suite_params.txt")[:, 1]
    np.testing.assert_allclose(np.loadtxt(serial / "force.txt"), read_A(serial / "A.npy") @ x, rtol=6e-7,
                               atol=1e-6)


def _is_float(t):
    try:
        float(t)
    except ValueError:
        return False
    return True


def test_fitted_potential_reproduces_Ax(serial):
    """The solved parameter file, evaluated by the ChIMES evaluator, gives A x for every training row."""
    setup = read_fm_setup(serial / "fm_setup.in")
    basis = build_basis(setup)
    builder = DesignBuilder(basis, setup.fit_energy)
    system, _ = build_fit_system(setup)
    x = solve(system, "svd", eps=1e-5).x
    model = ChimesModel(fill_coefficients(basis, x))
    for index, _src, frame in setup.iter_frames():
        rows = builder.frame_rows(frame, setup.stress_mode(index), setup.fits_energy(index))
        y = rows.A @ x
        res = model.evaluate(frame.symbols, frame.positions, frame.cell)
        # every pair of these frames lies above the 2-body inner cutoffs (no penalty, no extrapolation)
        assert res.penalty_pairs == 0
        n = rows.natoms
        scale = np.abs(y[: 3 * n]).max()
        np.testing.assert_allclose(res.forces.ravel(), y[: 3 * n], rtol=0, atol=1e-9 * scale)
        assert res.energy == pytest.approx(y[-1], rel=1e-10)
        if setup.stress_mode(index) == "all":
            np.testing.assert_allclose(res.stress.ravel(), y[3 * n: 3 * n + 9], rtol=0,
                                       atol=1e-9 * np.abs(res.stress).max())


def test_frame_order_does_not_change_solution(serial):
    setup = read_fm_setup(serial / "fm_setup.in")
    basis = build_basis(setup)
    builder = DesignBuilder(basis, setup.fit_energy)
    rows = [builder.frame_rows(f, setup.stress_mode(i), setup.fits_energy(i)) for i, _s, f in setup.iter_frames()]
    fwd, rev = FitSystem(builder.ncols), FitSystem(builder.ncols)
    for r in rows:
        fwd.add_rows(r.A, r.b, r.classes)
    for r in rows[::-1]:
        rev.add_rows(r.A, r.b, r.classes)
    x1, x2 = solve(fwd, "svd").x, solve(rev, "svd").x
    assert np.max(np.abs(x1 - x2)) <= 1e-9 * np.max(np.abs(x1))


def test_bad_setup_gives_located_error(tmp_path):
    text = open(SETUP).read().replace("CHEBYSHEV 12 6 3 -1 1", "CHEBYSHEV 12 6 3 -1 1 7")
    (tmp_path / "fm_setup.in").write_text(text)
    proc = subprocess.run([os.path.join(BIN, "chimes-lsq")], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "fm_setup.in:" in proc.stderr and "error" in proc.stderr
