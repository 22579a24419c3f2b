"""Factors of classes with fewer rows than columns: only their meaningful rows are kept, folded and combined."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_chimes.chimes.factor_debris import leading_rows, meaningful_rows
from aiida_chimes.chimes.fit_system import FitSystem, _combine, _fold
from aiida_chimes.chimes.solvers import solve
from tests.chimes.test_fit_system import build


def _rank_deficient(rng, n, M, rank):
    """n rows of [1 | A | b] spanning only ``rank`` directions of A (energies of a few frames repeat)."""
    basis = rng.standard_normal((rank, M)) * rng.uniform(0.2, 5.0, M)
    A = rng.standard_normal((n, rank)) @ basis + rng.uniform(-1, 1, M)
    b = A @ rng.standard_normal(M) + 3.0
    return A, b


def _augmented(A, b, w=1.0):
    return np.column_stack([np.ones(len(b)), w * A, w * b])


def _old_style_factor(C, block=16):
    """The factor of the rows C folded block by block into a K x K triangle (how few-row classes were folded
    before): rank-deficient blocks leave rounding debris in every row, down to subnormal numbers."""
    K = C.shape[1]
    F = np.zeros((K, K), order="F")
    for start in range(0, len(C), block):
        F = _fold(F, np.asfortranarray(C[start : start + block]))
    return F


def test_meaningful_rows_of_a_debris_factor():
    """Of a factor with debris in most of its K = 152 rows, far fewer come back (the rows with an entry above 1e-16
    of its column's largest: the data rows and the largest debris), debris entries zeroed, and their Gram matrix
    is that of the rows to rounding."""
    rng = np.random.default_rng(2)
    M, n, rank = 150, 40, 12
    A, b = _rank_deficient(rng, n, M, rank)
    C = _augmented(A, b)
    F = _old_style_factor(C)
    assert np.count_nonzero(np.any(F != 0.0, axis=1)) > 100  # debris in most rows
    B = meaningful_rows(F)
    assert B.flags.f_contiguous and B.shape[1] == M + 2
    assert rank + 1 <= B.shape[0] <= 2 * n  # row 0 (ones column, means), the data rows, the largest debris
    ref = C.T @ C
    assert np.max(np.abs(B.T @ B - ref)) < 1e-12 * np.max(np.abs(ref))
    tiny = (B != 0.0) & (np.abs(B) < 1e-280)
    assert not tiny.any()


@pytest.mark.parametrize("block_rows", [7, 64])
def test_few_row_classes_keep_only_meaningful_rows(block_rows):
    """Energy and stress classes with fewer rows than columns, rank deficient, folded in blocks: their factors hold
    at most one non-zero row per data row (no debris), and every factor, the merge of two systems and the combined
    factor give the Gram matrix of the explicit weighted rows."""
    rng = np.random.default_rng(block_rows)
    M = 120
    Af = rng.standard_normal((400, M)) * rng.uniform(0.2, 5.0, M)
    bf = Af @ rng.standard_normal(M) + rng.standard_normal(400)
    Ae, be = _rank_deficient(rng, 45, M, 9)
    As, bs = _rank_deficient(rng, 60, M, 30)
    A = np.vstack([Af, Ae, As])
    b = np.concatenate([bf, be, bs])
    classes = np.repeat([0, 1, 2], [400, 45, 60])
    w = np.choose(classes, [1.0, 0.1, 250.0]).astype(float)
    order = rng.permutation(len(b))
    whole = build(A, b, classes, w, block_rows=block_rows, chunk=23, order=order)
    half = len(b) // 2
    first = build(A, b, classes, w, block_rows=block_rows, order=order[:half])
    second = build(A, b, classes, w, block_rows=block_rows, order=order[half:])
    first.merge(second)
    for system in (whole, first):
        for c, n in ((1, 45), (2, 60)):
            F = np.asarray(system.factor(c, weighted=False))
            assert np.count_nonzero(np.any(F != 0.0, axis=1)) <= n
            assert not np.any((F != 0.0) & (np.abs(F) < 1e-280))
            C = _augmented(A[classes == c], b[classes == c])
            ref = C.T @ C
            assert np.max(np.abs(F.T @ F - ref)) < 1e-11 * np.max(np.abs(ref))
        Ft = np.asarray(system.factor(None, weighted=True))
        C = _augmented(w[:, None] * A, w * b)
        C[:, 0] = 1.0
        ref = C.T @ C
        assert np.max(np.abs(Ft.T @ Ft - ref)) < 1e-11 * np.max(np.abs(ref))
    x = np.linalg.lstsq(w[:, None] * A, w * b, rcond=None)[0]
    for system in (whole, first):
        res = solve(system, "svd", eps=1e-12)
        assert np.linalg.norm(res.x - x) < 1e-8 * np.linalg.norm(x)


def test_combine_factors_with_debris():
    """Factors written before (debris in every row of a few-row class) still combine exactly: with a whole
    triangle, and with each other."""
    rng = np.random.default_rng(11)
    M = 90
    K = M + 2
    Cf = _augmented(rng.standard_normal((300, M)), rng.standard_normal(300))
    Ce = _augmented(*_rank_deficient(rng, 30, M, 7))
    Cs = _augmented(*_rank_deficient(rng, 40, M, 20))
    Ff = _fold(np.zeros((K, K), order="F"), np.asfortranarray(Cf))
    Fe, Fs = _old_style_factor(Ce), _old_style_factor(Cs)
    both, top = _combine(Fe.copy(order="F"), 30, K, Fs, 40, K)  # debris: every row may be non-zero
    assert not np.any(both[top:])
    ref = Ce.T @ Ce + Cs.T @ Cs
    assert np.max(np.abs(both.T @ both - ref)) < 1e-12 * np.max(np.abs(ref))
    for F1, n1, F2, n2 in ((Ff.copy(order="F"), 300, Fe, 30), (Fe.copy(order="F"), 30, Ff, 300)):
        out, top = _combine(F1, n1, K, F2, n2, K)
        assert top == K
        ref = Cf.T @ Cf + Ce.T @ Ce
        assert np.allclose(np.tril(out, -1), 0.0)
        assert np.max(np.abs(out.T @ out - ref)) < 1e-12 * np.max(np.abs(ref))


def test_system_from_old_factors_solves_the_same(tmp_path):
    """A saved system whose few-row factors carry debris (as files written before did) solves as one without."""
    rng = np.random.default_rng(4)
    M = 60
    A = np.vstack([rng.standard_normal((200, M)), *(_rank_deficient(rng, 20, M, 5)[0] for _ in range(1))])
    b = np.concatenate([A[:200] @ rng.standard_normal(M), rng.standard_normal(20)])
    classes = np.repeat([0, 1], [200, 20])
    system = build(A, b, classes, None)
    system.release_buffers()  # every row folded
    st = system._streams[1]
    st.Fu = _old_style_factor(_augmented(A[200:], b[200:]), block=6)
    st.top = None  # not known, as after loading a file of format version 2
    assert np.count_nonzero(np.any(st.Fu != 0.0, axis=1)) > 20
    path = tmp_path / "old.npz"
    system.save(path)
    loaded = FitSystem.load(path)
    x = np.linalg.lstsq(A, b, rcond=None)[0]
    for s in (system, loaded):
        assert np.linalg.norm(solve(s, "svd", eps=1e-13).x - x) < 1e-9 * np.linalg.norm(x)


@pytest.mark.parametrize(("n_energy", "n_stress"), [(30, 40), (60, 50)])
def test_combined_factor_of_few_row_classes_only(n_energy, n_stress):
    """No class with a whole triangle: the combined factor is the QR of their meaningful rows (fewer rows than
    columns in all), or an ordinary fold once they reach K rows together (K = 82)."""
    rng = np.random.default_rng(n_energy)
    M = 80
    A = rng.standard_normal((n_energy + n_stress, M)) * rng.uniform(0.2, 5.0, M)
    b = rng.standard_normal(n_energy + n_stress)
    classes = np.repeat([1, 2], [n_energy, n_stress])
    w = np.choose(classes - 1, [0.1, 250.0]).astype(float)
    system = build(A, b, classes, w, block_rows=16)
    F = np.asarray(system.factor(None, weighted=True))
    C = _augmented(w[:, None] * A, w * b)
    C[:, 0] = 1.0
    ref = C.T @ C
    assert np.allclose(np.tril(F, -1), 0.0)
    assert np.max(np.abs(F.T @ F - ref)) < 1e-12 * np.max(np.abs(ref))


def test_leading_rows_of_factors():
    """``leading_rows``: one past the last row holding a non-zero entry, for square and rectangular factors."""
    rng = np.random.default_rng(5)
    K = 40
    F = np.triu(rng.standard_normal((K, K)))
    assert leading_rows(np.asfortranarray(F)) == K
    F[17:] = 0.0
    F[16, 30] = 0.0  # a zero inside the last non-zero row does not end it
    assert leading_rows(np.asfortranarray(F)) == 17
    assert leading_rows(np.asfortranarray(F[:25])) == 17
    assert leading_rows(np.zeros((K, K), order="F")) == 0
    F[:] = 0.0
    F[3, K - 1] = 1e-310  # a subnormal entry is an entry
    assert leading_rows(np.asfortranarray(F)) == 4


def test_few_row_factors_are_saved_sent_and_loaded_as_their_rows(tmp_path):
    """A class with few rows is written (format 3) and packed for MPI as its leading rows only; the loaded and the
    unpacked systems equal the original, and a file of format 2 (whole K x K factors) still loads the same."""
    rng = np.random.default_rng(6)
    M = 70
    K = M + 2
    A = np.vstack([rng.standard_normal((150, M)), _rank_deficient(rng, 12, M, 12)[0], rng.standard_normal((9, M))])
    b = rng.standard_normal(len(A))
    classes = np.repeat([0, 1, 2], [150, 12, 9])
    system = build(A, b, classes, np.choose(classes, [1.0, 3.0, 0.5]).astype(float), block_rows=5)
    system.finalize()
    tops = [st.leading() for st in system._streams[:3]]
    assert tops[0] == K and tops[1] <= 13 and tops[2] <= 10
    path = tmp_path / "system.npz"
    system.save(path)
    with np.load(path) as data:
        assert data["force.Fu"].shape == (K, K)
        assert data["energy.Fu"].shape == (tops[1], K) and data["stress.Fu"].shape == (tops[2], K)
        arrays = {key: data[key] for key in data.files}
    old = dict(arrays, format_version=np.array(2))
    for name in ("energy", "stress"):  # as format 2 wrote them
        old[f"{name}.Fu"] = np.zeros((K, K))
        old[f"{name}.Fu"][: arrays[f"{name}.Fu"].shape[0]] = arrays[f"{name}.Fu"]
    old_path = tmp_path / "old.npz"
    np.savez_compressed(old_path, **old)
    unpacked = FitSystem._unpack(system._pack())
    x = np.linalg.lstsq(
        A * np.choose(classes, [1.0, 3.0, 0.5])[:, None], b * np.choose(classes, [1.0, 3.0, 0.5]), rcond=None
    )[0]
    for other in (FitSystem.load(path), FitSystem.load(old_path), unpacked):
        for c in range(3):
            for weighted in (False, True):
                assert np.array_equal(other.factor(c, weighted), system.factor(c, weighted))
        assert [st.leading() for st in other._streams[:3]] == tops
        assert np.linalg.norm(solve(other, "svd", eps=1e-13).x - x) < 1e-9 * np.linalg.norm(x)
    with pytest.raises(ValueError, match="energy factor has shape"):
        np.savez_compressed(old_path, **dict(arrays, **{"energy.Fu": np.zeros((3, K + 1))}))
        FitSystem.load(old_path)
