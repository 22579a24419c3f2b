"""The Gram matrix of the weighted fit system from its class factors, against A^T A of the explicit rows."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_chimes.chimes.gram import GramRows, _triangle_gram, cached_gram_rows, weighted_gram
from aiida_chimes.chimes.solvers import _centred_sumsq
from tests.chimes.test_solvers import Problem


def _upper(G):
    return np.triu(np.ones(G.shape, dtype=bool))


def _check(p, centred, rng):
    """G and the means equal those of the explicit weighted rows (upper triangle; the lower one is zero)."""
    Ab = np.column_stack([p.Aw, p.bw])
    mean_ref = Ab.mean(axis=0)
    if centred:
        Ab = Ab - mean_ref
    G, mean = weighted_gram(p.system, centred)
    ref = Ab.T @ Ab
    up = _upper(G)
    assert G.flags.c_contiguous and G.shape == ref.shape
    assert np.max(np.abs(G - ref)[up]) < 1e-12 * np.max(np.abs(ref))
    assert not np.any(G[~up])
    assert np.allclose(mean, mean_ref, rtol=1e-12, atol=1e-12)
    return G


@pytest.mark.parametrize("centred", [False, True])
def test_gram_triangle_and_few_row_classes(centred):
    """One class with more rows than columns (its whole triangle, by dlauum) and two with few rows (their non-zero
    factor rows, stacked), per-row weights."""
    rng = np.random.default_rng(8)
    N, M = 700, 90
    A = rng.standard_normal((N, M)) * rng.uniform(0.1, 5.0, M) + rng.uniform(-3.0, 3.0, M)
    b = A @ rng.standard_normal(M) + rng.standard_normal(N) + 4.0
    classes = np.zeros(N, dtype=int)
    classes[:7] = 1  # 7 energy rows: fewer than K / 3 factor rows
    classes[7:40] = 2  # 33 stress rows
    w = rng.uniform(0.3, 3.0, N)
    p = Problem(A, b, classes, w)
    _check(p, centred, rng)
    x = rng.standard_normal(M)
    r = p.Aw @ x - p.bw
    assert _centred_sumsq(p.system, x) == pytest.approx(np.sum((r - r.mean()) ** 2), rel=1e-11)


@pytest.mark.parametrize("centred", [False, True])
def test_gram_two_triangles_class_weights(centred):
    """Two classes with more rows than columns, each with one weight per class (the stored factor is unweighted
    and scaled on the fly): the first triangle by dlauum, the second added by blocks."""
    rng = np.random.default_rng(21)
    N, M = 1100, 70
    A = rng.standard_normal((N, M)) * rng.uniform(0.1, 5.0, M) + rng.uniform(-2.0, 2.0, M)
    b = A @ rng.standard_normal(M) + rng.standard_normal(N) - 3.0
    classes = np.zeros(N, dtype=int)
    classes[300:600] = 1
    classes[600:650] = 2
    w = np.choose(classes, [1.7, 0.4, 2.5]).astype(float)
    _check(Problem(A, b, classes, w), centred, rng)


def test_gram_only_few_row_classes():
    """No class has as many rows as columns: everything is stacked rows (dsyrk)."""
    rng = np.random.default_rng(5)
    N, M = 40, 150
    A = rng.standard_normal((N, M))
    b = rng.standard_normal(N)
    classes = np.repeat([0, 1, 2], [20, 12, 8])
    _check(Problem(A, b, classes, rng.uniform(0.5, 2.0, N)), False, rng)


@pytest.mark.parametrize("n", [1, 2, 3, 63, 64, 65, 129, 200])
def test_triangle_gram_sizes(n):
    """``scale * T^T T`` of an upper triangle through the reversed dlauum and the tiled anti-transpose, for sizes
    around the tile (64): odd, even, one tile, one past it."""
    rng = np.random.default_rng(n)
    T = np.asfortranarray(np.triu(rng.standard_normal((n, n))))
    G = _triangle_gram(T, 2.5)
    ref = 2.5 * T.T @ T
    up = _upper(G)
    assert G.flags.c_contiguous
    np.testing.assert_allclose(G[up], ref[up], rtol=1e-13, atol=1e-13 * np.abs(ref).max())
    assert not np.any(G[~up])


def test_cached_gram_rows_are_kept_until_rows_are_added():
    rng = np.random.default_rng(3)
    N, M = 300, 20
    A = rng.standard_normal((N, M))
    p = Problem(A, rng.standard_normal(N), np.zeros(N, dtype=int), np.ones(N))
    R1 = cached_gram_rows(p.system, False, 0.0)
    assert cached_gram_rows(p.system, False, 0.0) is R1
    R1.fetch(0, np.zeros(M))  # rows are formed from the factors in place: valid until rows are added
    p.system.add_rows(A[:5], np.ones(5), np.zeros(5, dtype=int))
    R2 = cached_gram_rows(p.system, False, 0.0)
    assert R2 is not R1
    R2.fetch(0, np.zeros(M))
    assert R2.store[R2.slot[0], 0] == pytest.approx(R1.store[R1.slot[0], 0] + np.sum(A[:5, 0] ** 2), rel=1e-12)


@pytest.mark.parametrize("normalize", [False, True])
def test_gram_rows_equal_the_rows_of_the_whole_matrix(normalize):
    """Rows formed in batches (triangle rows by blocks of :func:`_add_triangle_rows`, few-row classes and class
    means stacked) equal the rows of the whole (scaled) Gram matrix, whatever order the batches come in; past
    ``full_fraction`` the whole matrix replaces them."""
    rng = np.random.default_rng(8)
    M = 1100  # more than two row blocks of 512
    N = 1300
    A = rng.standard_normal((N, M)) * rng.uniform(0.1, 10.0, M) + rng.uniform(-1, 1, M)
    A[:, 7] = 2.5  # a constant column (zero under normalize)
    classes = np.repeat([0, 1, 2], [N - 90, 30, 60])
    w = np.choose(classes, [1.0, 4.0, 0.3]).astype(float)
    p = Problem(A, rng.standard_normal(N), classes, w)
    G, mean = weighted_gram(p.system, normalize)
    G = np.triu(G) + np.triu(G, 1).T
    if normalize:
        norms = np.sqrt(np.diag(G)[:M])
        const = norms <= 1e-10 * np.sqrt(np.diag(G)[:M] + N * mean[:M] ** 2)
        scale = np.append(np.where(const, 1.0, norms), 1.0)
        G = G / scale / scale[:, None]
        G[:M, :M][const, :] = 0.0
        G[:M, :M][:, const] = 0.0
    rows = GramRows(p.system, normalize, 1e-10)
    assert rows.c0 == pytest.approx(G[M, :M], abs=1e-13 * np.abs(G).max())
    assert rows.yy == pytest.approx(G[M, M], rel=1e-13)
    rank = rng.permutation(M).astype(float)
    for j in (1000, 3, 512, 511):
        rows.fetch(j, rank)
        assert rows.slot[j] >= 0
    formed = np.flatnonzero(rows.slot >= 0)
    assert formed.size == 1 + 4 * rows.batch and not rows.full
    tol = 1e-12 * np.abs(G).max()
    # the path reads columns :M of the rows (c0 and yy stand for column M)
    np.testing.assert_allclose(rows.store[rows.slot[formed], :M], G[formed, :M], rtol=0, atol=tol)
    rows.limit = rows.count  # the next batch passes the limit: the whole matrix
    rows.fetch(int(np.flatnonzero(rows.slot < 0)[0]), rank)
    assert rows.full
    np.testing.assert_allclose(rows.store[rows.slot[:M], :M], G[:M, :M], rtol=0, atol=tol)


def test_triangle_gram_premapped_work_array():
    """n = 1500 (18 MB): the work array is pre-mapped (``MAP_POPULATE`` where Linux offers it) and dlauum works
    on it in place."""
    from aiida_chimes.chimes.gram import _prefaulted_empty

    n = 1500
    work = _prefaulted_empty(n)
    assert work.shape == (n, n) and work.flags.f_contiguous and work.flags.writeable
    rng = np.random.default_rng(0)
    T = np.asfortranarray(np.triu(rng.standard_normal((n, n))))
    G = _triangle_gram(T, 1.0)
    up = _upper(G)
    ref = T.T @ T
    assert np.max(np.abs(G - ref)[up]) < 1e-13 * np.abs(ref).max()
    assert not np.any(G[~up])
