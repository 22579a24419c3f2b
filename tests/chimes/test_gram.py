"""The Gram matrix of the weighted fit system from its class factors, against A^T A of the explicit rows."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_chimes.chimes.gram import _triangle_gram, cached_gram, weighted_gram
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


def test_cached_gram_is_kept_until_rows_are_added():
    rng = np.random.default_rng(3)
    N, M = 300, 20
    A = rng.standard_normal((N, M))
    p = Problem(A, rng.standard_normal(N), np.zeros(N, dtype=int), np.ones(N))
    G1, m1 = cached_gram(p.system, False)
    G2, _ = cached_gram(p.system, False)
    assert G2 is G1
    p.system.add_rows(A[:5], np.ones(5), np.zeros(5, dtype=int))
    G3, _ = cached_gram(p.system, False)
    assert G3 is not G1
    assert G3[0, 0] == pytest.approx(G1[0, 0] + np.sum(A[:5, 0] ** 2), rel=1e-12)


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
