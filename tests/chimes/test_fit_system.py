"""Tests of the compact fit system (streaming QR factors per row class), against dense references."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from aiida_chimes.chimes.fit_system import CLASSES, FitSystem
from aiida_chimes.chimes.solvers import solve
from tests.chimes import mpi_fit_system_check as mpi_check

try:  # installed with scikit-learn (a test dependency)
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None


@pytest.fixture(autouse=True)
def _single_blas_thread():
    """Small QR updates run much faster on one BLAS thread, above all on a busy machine."""
    if threadpool_limits is None:
        yield
    else:
        with threadpool_limits(limits=1, user_api="blas"):
            yield


def make_problem(seed=0, nrows=2000, ncols=50, uniform_weights=False):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((nrows, ncols)) * rng.uniform(0.2, 5.0, ncols) + rng.uniform(-1, 1, ncols)
    b = A @ rng.standard_normal(ncols) + rng.standard_normal(nrows) + 3.0
    classes = rng.choice(4, size=nrows, p=[0.79, 0.1, 0.1, 0.01])  # 3: charge-constraint rows (FITCOUL)
    if uniform_weights:
        w = np.array([1.0, 0.1, 250.0, 1.0])[classes]
    else:
        w = rng.uniform(0.3, 3.0, nrows)
    natoms = rng.integers(2, 20, nrows)
    return A, b, classes, w, natoms


def build(A, b, classes, w, natoms=None, block_rows=None, chunk=173, order=None):
    system = FitSystem(A.shape[1], block_rows=block_rows)
    idx = np.arange(A.shape[0]) if order is None else order
    for start in range(0, len(idx), chunk):
        sl = idx[start : start + chunk]
        system.add_rows(
            A[sl], b[sl], classes[sl], None if w is None else w[sl], natoms=None if natoms is None else natoms[sl]
        )
    return system


def rel(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b))


def test_factors_match_dense():
    A, b, classes, w, natoms = make_problem()
    system = build(A, b, classes, w, natoms, block_rows=300)
    Aw, bw = w[:, None] * A, w * b
    assert system.nrows == {
        "force": int(np.sum(classes == 0)),
        "energy": int(np.sum(classes == 1)),
        "stress": int(np.sum(classes == 2)),
        "constraint": int(np.sum(classes == 3)),
        "energy_per_atom": int(np.sum(classes == 1)),
        "total": A.shape[0],
    }
    for c in (None, 0, 1, 2, "force"):
        m = np.ones(len(b), bool) if c is None else classes == (CLASSES.index(c) if isinstance(c, str) else c)
        for weighted in (True, False):
            Ac, bc = (Aw[m], bw[m]) if weighted else (A[m], b[m])
            R = system.R(c, weighted)
            assert np.allclose(np.tril(R, -1), 0.0)
            assert rel(R.T @ R, Ac.T @ Ac) < 1e-12
            assert rel(R.T @ system.qtb(c, weighted), Ac.T @ bc) < 1e-12
            G, q = system.gram(c, weighted)
            assert rel(G, Ac.T @ Ac) < 1e-12 and rel(q, Ac.T @ bc) < 1e-12
            assert system.bnorm2(c, weighted) == pytest.approx(bc @ bc, rel=1e-12)
            assert rel(system.colsum(c, weighted), Ac.sum(axis=0)) < 1e-12
            assert system.bsum(c, weighted) == pytest.approx(bc.sum(), rel=1e-12)
            # centred factor = factor of the column-centred matrix
            Rc = system.R(c, weighted, centred=True)
            Acc = Ac - Ac.mean(axis=0)
            assert rel(Rc.T @ Rc, Acc.T @ Acc) < 1e-11
            assert rel(Rc.T @ system.qtb(c, weighted, centred=True), Acc.T @ (bc - bc.mean())) < 1e-11


def test_residuals_and_rmse_exact():
    A, b, classes, w, natoms = make_problem(seed=1)
    system = build(A, b, classes, w, natoms)
    rng = np.random.default_rng(5)
    x = np.linalg.lstsq(w[:, None] * A, w * b, rcond=None)[0] + 0.01 * rng.standard_normal(A.shape[1])
    r = A @ x - b
    worst = 0.0
    for c in range(len(CLASSES)):
        m = classes == c
        worst = max(worst, abs(system.residual_sumsq(x, c) / np.sum(r[m] ** 2) - 1))
        worst = max(worst, abs(system.residual_sumsq(x, c, weighted=True) / np.sum((w[m] * r[m]) ** 2) - 1))
    worst = max(worst, abs(system.residual_sumsq(x) / np.sum(r**2) - 1))
    worst = max(worst, abs(system.residual_sumsq(x, weighted=True) / np.sum((w * r) ** 2) - 1))
    assert worst < 1e-10
    rmse = system.rmse(x)
    for c, name in enumerate(CLASSES):
        m = classes == c
        assert rmse[name] == pytest.approx(np.sqrt(np.mean(r[m] ** 2)), rel=1e-10)
    assert rmse["total"] == pytest.approx(np.sqrt(np.mean(r**2)), rel=1e-10)
    m = classes == 1
    assert rmse["energy_per_atom"] == pytest.approx(np.sqrt(np.mean((r[m] / natoms[m]) ** 2)), rel=1e-10)
    # an empty class gives nan
    only_forces = build(A[classes == 0], b[classes == 0], classes[classes == 0], w[classes == 0])
    out = only_forces.rmse(x)
    assert np.isnan(out["energy"]) and np.isnan(out["stress"]) and np.isnan(out["energy_per_atom"])


@pytest.mark.parametrize("uniform", [False, True])
def test_order_block_and_chunk_invariance(uniform):
    A, b, classes, w, natoms = make_problem(seed=2, uniform_weights=uniform)
    ref = solve(build(A, b, classes, w, chunk=A.shape[0]), "svd", eps=1e-12).x
    dense = np.linalg.lstsq(w[:, None] * A, w * b, rcond=1e-12)[0]
    assert rel(ref, dense) < 1e-10
    rng = np.random.default_rng(3)
    for block_rows, chunk in ((7, 1), (64, 50), (None, 999), (5000, 311)):
        order = rng.permutation(A.shape[0])
        system = build(A, b, classes, w, block_rows=block_rows, chunk=chunk, order=order)
        assert rel(solve(system, "svd", eps=1e-12).x, ref) < 1e-10
    if uniform:
        assert all(st.Fw is None for st in system._streams)  # uniform weights: no separate weighted factor


def test_merge_equals_single_system():
    A, b, classes, w, natoms = make_problem(seed=4)
    whole = build(A, b, classes, w, natoms)
    half = A.shape[0] // 3
    first = build(A[:half], b[:half], classes[:half], w[:half], natoms[:half], block_rows=100)
    second = build(A[half:], b[half:], classes[half:], w[half:], natoms[half:], block_rows=37)
    first.merge(second)
    assert first.nrows == whole.nrows
    x = solve(whole, "svd").x
    assert rel(solve(first, "svd").x, x) < 1e-10
    for c in range(3):
        assert first.residual_sumsq(x, c) == pytest.approx(whole.residual_sumsq(x, c), rel=1e-10)
        assert rel(first.colsum(c), whole.colsum(c)) < 1e-12
    assert first.rmse(x)["energy_per_atom"] == pytest.approx(whole.rmse(x)["energy_per_atom"], rel=1e-10)
    # merging systems with different uniform weights, and into an empty system
    u1 = build(A[:half], b[:half], np.zeros(half, int), np.full(half, 2.0))
    u2 = build(A[half:], b[half:], np.zeros(len(b) - half, int), np.full(len(b) - half, 0.5))
    empty = FitSystem(A.shape[1])
    empty.merge(u1)
    empty.merge(u2)
    ww = np.where(np.arange(len(b)) < half, 2.0, 0.5)
    dense = np.linalg.lstsq(ww[:, None] * A, ww * b, rcond=None)[0]
    assert rel(solve(empty, "svd", eps=1e-12).x, dense) < 1e-10
    with pytest.raises(ValueError):
        empty.merge(FitSystem(A.shape[1] + 1))


def test_weights_switch_from_uniform_to_general():
    A, b, classes, w, natoms = make_problem(seed=6)
    n = A.shape[0]
    ww = np.where(np.arange(n) < n // 2, 1.5, w)  # uniform first half, then varying weights
    system = build(A, b, np.zeros(n, int), ww, chunk=500, block_rows=200)
    dense = np.linalg.lstsq(ww[:, None] * A, ww * b, rcond=None)[0]
    assert rel(solve(system, "svd", eps=1e-12).x, dense) < 1e-10
    assert system._streams[0].Fw is not None


def test_save_load_round_trip(tmp_path):
    A, b, classes, w, natoms = make_problem(seed=7)
    system = build(A[:1500], b[:1500], classes[:1500], w[:1500], natoms[:1500])
    system.metadata = {"tile": ["C", "N"], "alc": 3}
    path = tmp_path / "system.npz"
    system.save(path)
    loaded = FitSystem.load(path)
    assert loaded.metadata == {"tile": ["C", "N"], "alc": 3}
    assert loaded.nrows == system.nrows and loaded.ncols == system.ncols
    for c in range(len(CLASSES)):
        for weighted in (True, False):
            assert np.array_equal(loaded.factor(c, weighted), system.factor(c, weighted))
        assert np.array_equal(loaded.colsum(c), system.colsum(c))
    # keep folding after a reload: same as building everything at once
    loaded.add_rows(A[1500:], b[1500:], classes[1500:], w[1500:], natoms=natoms[1500:])
    whole = build(A, b, classes, w, natoms)
    assert rel(solve(loaded, "svd").x, solve(whole, "svd").x) < 1e-10
    bad = tmp_path / "other.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(ValueError):
        FitSystem.load(bad)


def _held_bytes(obj, seen=None):
    """Bytes of every numpy array reachable from obj's attributes (independent of FitSystem.nbytes)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(_held_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_held_bytes(v, seen) for v in obj)
    total = 0
    for name in getattr(type(obj), "__slots__", ()):
        total += _held_bytes(getattr(obj, name, None), seen)
    if hasattr(obj, "__dict__"):
        total += _held_bytes(vars(obj), seen)
    return total


def test_memory_independent_of_rows():
    M = 100
    K = M + 2
    rng = np.random.default_rng(8)
    system = FitSystem(M)
    x_true = rng.standard_normal(M)
    sizes = []
    for i in range(40):  # 200k rows in chunks of 5000
        A = rng.standard_normal((5000, M))
        b = A @ x_true
        classes = rng.choice(3, 5000, p=[0.9, 0.05, 0.05])
        system.add_rows(A, b, classes, rng.uniform(0.5, 2.0, 5000), natoms=8)
        if i in (3, 39):
            system.finalize()
            system.rmse(x_true)
            sizes.append(_held_bytes(system))
    assert system.nrows["total"] == 200_000
    assert sizes[0] == sizes[1] == system.nbytes
    # 4 row streams x 2 factors (K x K) + row buffers of at most block_rows x K, + total-factor cache
    bound = 8 * (4 * 2 * K * K + 4 * system.block_rows * (K + 1) + 4 * K * K + 16 * K)
    assert sizes[1] <= bound
    assert rel(solve(system, "svd").x, x_true) < 1e-10


def test_invalid_input():
    system = FitSystem(3)
    with pytest.raises(ValueError):
        system.add_rows(np.zeros((2, 4)), np.zeros(2), [0, 0])
    with pytest.raises(ValueError):
        system.add_rows(np.zeros((2, 3)), np.zeros(3), [0, 0])
    with pytest.raises(ValueError):
        system.add_rows(np.zeros((2, 3)), np.zeros(2), [0, 4])
    with pytest.raises(ValueError):
        system.add_rows(np.zeros((2, 3)), np.zeros(2), [1, 1], natoms=[0, 1])
    with pytest.raises(ValueError):
        system.add_rows(np.full((1, 3), np.nan), np.zeros(1), 0)
    with pytest.raises(ValueError):
        FitSystem(0)
    system.add_rows(np.ones(3), 1.0, 0)  # a single row as a 1-D array
    assert system.nrows["force"] == 1


# ------------------------------------------------------------------------------------------------------------
# reduction: in-process tree with a thread-based fake communicator, then the real thing under mpiexec
# ------------------------------------------------------------------------------------------------------------
class _FakeComm:
    def __init__(self, rank, size, boxes):
        self.rank, self.size, self.boxes = rank, size, boxes

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def send(self, obj, dest, tag):
        self.boxes[(self.rank, dest, tag)].put(obj)

    def recv(self, source, tag):
        return self.boxes[(source, self.rank, tag)].get(timeout=60)

    def Send(self, buf, dest, tag):
        self.boxes[(self.rank, dest, tag)].put(np.array(buf, copy=True))

    def Recv(self, buf, source, tag):
        buf[...] = self.boxes[(source, self.rank, tag)].get(timeout=60)


@pytest.mark.parametrize(("size", "root"), [(1, 0), (3, 0), (5, 2)])
def test_tree_reduce_in_process(size, root):
    frames = mpi_check.make_frames()
    serial = mpi_check.build(frames, range(len(frames)))
    boxes = {(s, d, t): queue.Queue() for s in range(size) for d in range(size) for t in (71, 72)}
    results = [None] * size

    def work(rank):
        system = mpi_check.build(frames, range(rank, len(frames), size))
        system.metadata = {"rank": rank}
        results[rank] = system.reduce(_FakeComm(rank, size, boxes), root=root)

    threads = [threading.Thread(target=work, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[r] is None for r in range(size) if r != root)
    reduced = results[root]
    assert reduced.metadata == {"rank": root}
    assert reduced.nrows == serial.nrows
    assert rel(solve(reduced, "svd").x, solve(serial, "svd").x) < 1e-10


def test_mpi_reduce(tmp_path):
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        pytest.skip(f"mpiexec not found next to the Python interpreter ({mpiexec})")
    script = Path(__file__).with_name("mpi_fit_system_check.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run(
        [str(mpiexec), "-n", "2", sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reduced = FitSystem.load(tmp_path / "reduced.npz")
    frames = mpi_check.make_frames()
    serial = mpi_check.build(frames, range(len(frames)))
    assert reduced.metadata == {"rank": 0, "size": 2}
    assert reduced.nrows == serial.nrows
    x = solve(serial, "svd").x
    assert rel(solve(reduced, "svd").x, x) < 1e-10
    assert reduced.rmse(x)["energy_per_atom"] == pytest.approx(serial.rmse(x)["energy_per_atom"], rel=1e-10)


def test_version_1_files_load_without_constraint_class(tmp_path):
    """Systems saved before the charge-constraint class existed (format 1) load with that class empty."""
    A, b, classes, w, natoms = make_problem(seed=8)
    keep = classes < 3
    system = build(A[keep], b[keep], classes[keep], w[keep], natoms[keep])
    system.save(tmp_path / "new.npz")
    with np.load(tmp_path / "new.npz") as data:
        old = {k: data[k] for k in data.files if not k.startswith("constraint.")}
    old["format_version"] = np.array(1)
    old["classes"] = np.array(("force", "energy", "stress", "energy_per_atom"))
    np.savez_compressed(tmp_path / "old.npz", **old)
    loaded = FitSystem.load(tmp_path / "old.npz")
    assert loaded.nrows == system.nrows and loaded.nrows["constraint"] == 0
    assert rel(solve(loaded, "svd").x, solve(system, "svd").x) < 1e-12
