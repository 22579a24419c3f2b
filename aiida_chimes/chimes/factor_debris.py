"""Rounding debris in the triangular factors of classes with few rows, and how to leave it out.

A class of n rows (energies, stresses) has at most n meaningful rows in its K x K factor; the folds leave the
others holding rounding debris, decaying down to subnormal numbers (which make BLAS and LAPACK calls many times
slower).  These kernels find the rows that carry information and copy them with the debris entries zeroed, for
the Gram matrix (:mod:`.gram`) and for combining factors (:func:`.fit_system._combine`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import get_num_threads, njit, prange

#: When the Gram matrix is formed, a factor row whose entries are all at most ``_DEBRIS_ROW`` times the largest
#: entry of their column (which is at most the column's norm |A_j|) is left out, changing ``G_jk`` by at most
#: ``K * 1e-24 |A_j| |A_k|``, and entries at most ``_DEBRIS_ENTRY`` times it are taken as zeros (at most
#: ``sqrt(K) * 1e-20 |A_j| |A_k|``): both far below the rounding error of ``G_jk`` itself, ``~ eps |A_j| |A_k|``.
_DEBRIS_ROW = 1.0e-12
_DEBRIS_ENTRY = 1.0e-20
#: When two factors are combined by a QR fold, a row of a few-row class is left out only if all its entries are
#: at most ``_FOLD_DEBRIS_ROW`` times the largest of their column: the combined triangle then changes by less than
#: the rounding error of the fold itself (~ K eps relative), so the singular values near an SVD cutoff do not move.
_FOLD_DEBRIS_ROW = 1.0e-16


@njit(cache=True)
def _column_chunks(n, nchunks):  # pragma: no cover - numba
    """Bounds of ``nchunks`` ranges of the columns of an n x n upper triangle holding about equal areas."""
    bounds = np.zeros(nchunks + 1, dtype=np.int64)
    for t in range(1, nchunks):
        bounds[t] = min(n, int(n * math.sqrt(t / nchunks)))
    bounds[nchunks] = n
    return bounds


@njit(cache=True, parallel=True)
def _factor_rows(F, row_rel, entry_rel, nchunks):  # pragma: no cover - numba
    """For T = F[1:, 1:] (F the leading r rows of a K x K upper-triangular factor, Fortran order): the largest
    magnitude in each column of T, the rows of T holding an entry above ``row_rel`` times the largest of its
    column, and whether a non-zero entry lies at or below ``entry_rel`` times it.  ``nchunks`` column ranges of
    equal area in parallel, each marking rows in its own array."""
    n = F.shape[1] - 1
    nr = F.shape[0] - 1
    bounds = _column_chunks(n, nchunks)
    cmax = np.zeros(n)
    marks = np.zeros((nchunks, nr), dtype=np.bool_)
    nsmall = np.zeros(nchunks, dtype=np.int64)
    for t in prange(nchunks):
        live = marks[t]
        for j in range(bounds[t], bounds[t + 1]):
            col = F[1 : min(j + 2, nr + 1), j + 1]
            big = 0.0
            for i in range(col.shape[0]):
                big = max(big, abs(col[i]))
            cmax[j] = big
            bound = row_rel * big
            small = entry_rel * big
            count = 0
            for i in range(col.shape[0]):  # the column is still in cache
                v = abs(col[i])
                live[i] = live[i] | (v > bound)
                count += (v != 0.0) & (v <= small)
            nsmall[t] += count
    live = np.zeros(nr, dtype=np.bool_)
    for t in range(nchunks):
        for i in range(nr):
            live[i] = live[i] | marks[t, i]
    return cmax, live, nsmall.sum() > 0


@njit(cache=True, parallel=True)
def leading_rows(F):  # pragma: no cover - numba
    """Number of leading rows of the upper-triangular F that hold non-zero entries (the rows below are zeros).

    Each column is scanned upwards from its diagonal to its first non-zero entry: cheap for a whole triangle
    (or one with debris), one pass over the zeros for a factor of few rows.
    """
    nrows = F.shape[0]
    ncols = F.shape[1]
    last = np.zeros(ncols, dtype=np.int64)
    for j in prange(ncols):
        top = 0
        for i in range(min(j, nrows - 1), -1, -1):
            if F[i, j] != 0.0:
                top = i + 1
                break
        last[j] = top
    return last.max() if ncols else 0


@njit(cache=True)
def _gather_rows(T, rows, cmax, rel):  # pragma: no cover - numba
    """Fortran-ordered copy of the given rows of T, entries at or below ``rel * cmax`` (per column) zeroed."""
    n = T.shape[1]
    m = rows.shape[0]
    B = np.zeros((n, m)).T
    for j in range(n):
        bound = rel * cmax[j]
        for r in range(m):
            v = T[rows[r], j]
            if abs(v) > bound:
                B[r, j] = v
    return B


def meaningful_rows(F, row_rel=_FOLD_DEBRIS_ROW):
    """The rows of the factor F (K x K, or its leading rows when the others are zero) that carry information, as
    a Fortran-ordered block.

    Row 0 (the ones column's norm and the class means) always; of ``T = F[1:, 1:]`` the rows with an entry above
    ``row_rel`` times the largest of its column, with entries at most ``_DEBRIS_ENTRY`` times it zeroed.  Column
    0 of F is zero below row 0.
    """
    if F.shape[0] == 0:  # a zero factor kept as no rows
        return np.zeros((0, F.shape[1]), order="F")
    if F.strides[0] != F.itemsize:  # columns not contiguous; leading rows of a Fortran-ordered factor are read
        F = np.asfortranarray(F)  # in place (a copy would add up to K^2 / 2 doubles to the peak memory of a fold)
    cmax, live, _ = _factor_rows(F, row_rel, _DEBRIS_ENTRY, get_num_threads())
    rows = np.flatnonzero(live)
    B = np.zeros((rows.size + 1, F.shape[1]), order="F")
    B[0] = F[0]
    if rows.size:
        B[1:, 1:] = _gather_rows(F[1:, 1:], rows, cmax, _DEBRIS_ENTRY)
    return B
