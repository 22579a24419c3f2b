"""The Gram matrix ``[wA | wb]^T [wA | wb]`` of a fit system, formed from its class factors.

The LARS/LASSO-LARS path (:mod:`.solvers`) needs only G = (wA)^T wA and (wA)^T wb.  They are formed from the
per-class triangular factors of the :class:`~aiida_chimes.chimes.fit_system.FitSystem` without combining the
classes into one triangle first: a class with many rows contributes ``T^T T`` of its whole triangle T, by the
LAPACK triangular product ``dlauum`` (n^3/3 flops at about 130 GFLOP/s on 2 cores, the speed of a general
matrix product: 0.13 s for n = 3748, against 0.17 s for the same product by blocks of general products), a class
with few rows contributes its few meaningful factor rows B as ``B^T B`` (``dsyrk``).

The path itself reads only the rows of the columns that enter its active set: :class:`GramRows` forms those rows
in batches, as the path asks for them (a tenth of the rows for the benchmark LASSO, 0.08 s against 0.22 s for the
whole matrix), and the whole matrix only when a fifth of the rows would be needed.
"""

from __future__ import annotations

import math
import mmap

import numpy as np
from numba import get_num_threads, njit, prange
from scipy.linalg.blas import dsyrk
from scipy.linalg.lapack import dlauum

from .factor_debris import _DEBRIS_ENTRY, _DEBRIS_ROW, _factor_rows, _gather_rows

__all__ = ["GramRows", "cached_gram_rows", "weighted_gram"]

#: A class with at least as many rows as columns is taken as a whole triangle unless its factor holds entries
#: below this magnitude (then it is cleaned as above).
_TINY = 1.0e-150
#: Column block of the products adding a second triangle (BLAS-3 calls on the non-zero rows of each block).
_GRAM_BLOCK = 384
#: Rows of a triangle per matrix product when single Gram rows are formed (:func:`_add_triangle_rows`).
_ROW_BLOCK = 512
#: Tile of the in-place index reflection after ``dlauum`` (two tiles of doubles stay in the L1/L2 caches).
_TILE = 64


@njit(cache=True, parallel=True)
def _count_tiny(F, tiny):  # pragma: no cover - numba
    """Number of non-zero entries below ``tiny`` in magnitude in the upper triangle of F (Fortran order)."""
    count = 0
    for j in prange(F.shape[1]):
        col = F[: j + 1, j]
        c = 0
        for i in range(j + 1):
            v = abs(col[i])
            c += (v != 0.0) & (v < tiny)
        count += c
    return count


@njit(cache=True, parallel=True)
def _reversed_lower(T, factor, out):  # pragma: no cover - numba
    """``out = factor * P T P`` (P reverses the index order; T upper triangular, so the result is lower
    triangular) with the strictly upper part zeroed; out is Fortran-ordered, filled column by column."""
    n = T.shape[0]
    for j in prange(n):
        src = n - 1 - j
        for i in range(j):
            out[i, j] = 0.0
        for i in range(j, n):
            out[i, j] = factor * T[n - 1 - i, src]


@njit(cache=True, parallel=True)
def _anti_transpose_upper(X, tile):  # pragma: no cover - numba
    """In place, on the upper triangle of the C-ordered square X: ``X[a, b] <-> X[n-1-b, n-1-a]`` (the
    reflection about the anti-diagonal, which maps the upper triangle onto itself).

    With ``Y[a, c] = X[a, n-1-c]`` it is the transpose of Y on the region a + c <= n - 1; done in square tiles
    (both tiles of a swap stay in cache), the tile rows interleaved so that the two threads get equal work.
    """
    n = X.shape[0]
    nt = (n + tile - 1) // tile
    for p in prange(nt):
        ti = p // 2 if p % 2 == 0 else nt - 1 - p // 2
        a0 = ti * tile
        a1 = min(n, a0 + tile)
        for tj in range(ti, nt):
            c0 = tj * tile
            if a0 + c0 > n - 1:
                break
            c1 = min(n, c0 + tile)
            for a in range(a0, a1):
                first = c0 if tj > ti else a + 1
                last = min(c1, n - a)  # c <= n - 1 - a
                for c in range(first, last):
                    b = n - 1 - c
                    v = X[a, b]
                    X[a, b] = X[c, n - 1 - a]
                    X[c, n - 1 - a] = v


def _prefaulted_empty(n):
    """Uninitialised (n, n) Fortran-ordered doubles whose pages the kernel maps at once (Linux ``MAP_POPULATE``).

    The Gram matrix is a fresh 112 MB for M = 3747; touching its pages one fault at a time from two threads took
    0.14-0.23 s right after a fit system was loaded (0.01-0.02 s on a warm heap), pre-mapped 0.03 s every time.
    Elsewhere a plain ``np.empty``.
    """
    populate = getattr(mmap, "MAP_POPULATE", 0)
    nbytes = n * n * 8
    if not populate or nbytes < (1 << 24):
        return np.empty((n, n), order="F")
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)
    return np.frombuffer(buf, dtype=np.float64).reshape((n, n), order="F")


def _triangle_gram(T, scale):
    """``scale * T^T T`` for the upper-triangular T (n x n): a new C-ordered array, upper triangle formed
    (the strictly lower one holds zeros).

    LAPACK forms ``L^T L`` for a lower-triangular L (``dlauum``, n^3/3 flops); with P the index reversal,
    L = P T P is lower triangular and ``T^T T = P (L^T L) P``.  ``dlauum`` leaves ``L^T L`` in the lower triangle
    of the Fortran-ordered work array, i.e. in the upper triangle of its C-ordered transpose, where the
    reflection ``P . P`` becomes the anti-transpose (:func:`_anti_transpose_upper`), done in place.
    """
    n = T.shape[0]
    work = _prefaulted_empty(n)
    _reversed_lower(T, math.sqrt(scale), work)  # scale = w^2 >= 0
    out, info = dlauum(work, lower=1, overwrite_c=1)
    if info != 0:  # pragma: no cover - LAPACK argument errors only
        raise RuntimeError(f"LAPACK dlauum failed (info={info})")
    G = out.T  # C-ordered view: the upper triangle holds L^T L
    _anti_transpose_upper(G, _TILE)
    return G


def _add_triangle_blocks(G, T, scale):
    """Add ``scale * T^T T`` (T upper triangular) to the upper triangle of the C-ordered G, block row by block
    row: block [b0, b1) of T's columns has non-zero rows < b1 only (n^3/3 flops)."""
    n = G.shape[1]
    buf = np.empty((_GRAM_BLOCK, n))
    for b0 in range(0, n, _GRAM_BLOCK):
        b1 = min(n, b0 + _GRAM_BLOCK)
        P = buf[: b1 - b0, : n - b0]
        np.matmul(T[:b1, b0:b1].T, T[:b1, b0:], out=P)
        if scale != 1.0:
            P *= scale
        m = b1 - b0
        G[b0:b1, b1:] += P[:, m:]
        G[b0:b1, b0:b1] += np.triu(P[:, :m])  # the strictly lower triangle of G stays zero


def _add_rows(G, B):
    """Add ``B^T B`` to the upper triangle of the C-ordered G (``dsyrk`` on its Fortran-ordered transpose)."""
    if B.shape[0] == 0:
        return
    out = dsyrk(1.0, np.asfortranarray(B), beta=1.0, c=G.T, trans=1, lower=1, overwrite_c=1)
    if not np.shares_memory(out, G):  # pragma: no cover - f2py copies only non-contiguous arrays
        G.T[...] = np.tril(out)


def _gram_parts(system, centred):
    """The terms of the weighted Gram matrix ``G = sum_t s_t T_t^T T_t + B^T B`` and the column means.

    Each triangle term is (T, s) with T upper triangular ((M+1) x (M+1), Fortran order or a view of a class
    factor); B (Fortran order) stacks the meaningful factor rows of the classes with few rows and the rows of the
    class means (see :func:`weighted_gram`).  Returns (terms, B, mean), or None when the system has no rows.
    """
    n1 = system.ncols + 1
    triangles, stacked, counts, means = [], [], [], []
    for _, n, F, w in system.class_factors():
        if F.strides[0] != F.itemsize:  # pragma: no cover - the fit system keeps Fortran-ordered factors
            F = np.asfortranarray(F)
        counts.append(float(n))
        means.append(w * (F[0, 1:] / F[0, 0]))
        T = F[1:, 1:]
        whole = T.shape[0] == n1  # F: all K rows (class_factors gives only the leading rows that may be non-zero)
        if whole and n >= n1 and not _count_tiny(F, _TINY):
            triangles.append((T, w * w))  # as many rows as columns and no debris: the whole triangle
            continue
        cmax, live, flushed = _factor_rows(F, _DEBRIS_ROW, _DEBRIS_ENTRY, get_num_threads())
        rows = np.flatnonzero(live)
        if 3 * rows.size < n1 or not whole:  # rows.size n1^2 flops instead of n1^3 / 3
            B = _gather_rows(T, rows, cmax, _DEBRIS_ENTRY)
            if w != 1.0:
                B *= w
            stacked.append(B)
        else:
            if flushed:
                T = _gather_rows(T, np.arange(n1), cmax, _DEBRIS_ENTRY)
            triangles.append((T, w * w))
    if not counts:
        return None
    counts = np.asarray(counts)
    means = np.asarray(means)
    mean = counts @ means / counts.sum()
    stacked.append((means - mean if centred else means) * np.sqrt(counts)[:, None])
    return triangles, np.asfortranarray(np.vstack(stacked)), mean


def _full_gram(triangles, B, n1):
    """The upper triangle of ``sum_t s_t T_t^T T_t + B^T B`` (C order, strictly lower triangle zero)."""
    if triangles:
        G = _triangle_gram(*triangles[0])
        for T, scale in triangles[1:]:
            _add_triangle_blocks(G, T, scale)
    else:
        G = np.zeros((n1, n1))
    _add_rows(G, B)
    return G


def weighted_gram(system, centred):
    """Gram matrix ((M+1) x (M+1), C order) of the weighted ``[wA | wb]`` of all rows, and the column means.

    Only the upper triangle is meaningful (the strictly lower one holds zeros).  For the factor F_c of
    ``[1 | wA | wb]`` of class c (n_c rows), ``F_c[1:, 1:]`` is the factor of the class-centred columns and
    ``F_c[0, 1:] / F_c[0, 0]`` their class means m_c, so
    ``[wA | wb]^T [wA | wb] = sum_c F_c[1:, 1:]^T F_c[1:, 1:] + sum_c n_c m_c m_c^T``, and with the columns
    centred over all rows (mean m) the second sum becomes ``sum_c n_c (m_c - m)(m_c - m)^T`` (no cancellation).
    A class with few rows has few meaningful factor rows (see ``_DEBRIS_ROW``): those are stacked with the rows
    ``sqrt(n_c) (m_c - m)`` into one matrix B and added as B^T B; the other classes as whole triangles.
    """
    n1 = system.ncols + 1
    parts = _gram_parts(system, centred)
    if parts is None:
        return np.zeros((n1, n1)), np.zeros(n1)
    triangles, B, mean = parts
    return _full_gram(triangles, B, n1), mean


@njit(cache=True, parallel=True)
def _mirror_upper(G, tile):  # pragma: no cover - numba
    """Copy the upper triangle of the C-ordered square G onto its lower one, in place, tile by tile."""
    n = G.shape[0]
    nt = (n + tile - 1) // tile
    for ti in prange(nt):
        a0 = ti * tile
        a1 = min(n, a0 + tile)
        for tj in range(ti + 1):
            c0 = tj * tile
            c1 = min(n, c0 + tile)
            for a in range(a0, a1):
                for c in range(c0, min(c1, a)):
                    G[a, c] = G[c, a]


def _add_triangle_rows(out, T, S, scale):
    """``out += scale * T[:, S]^T T`` for the upper-triangular T and sorted columns S, by blocks of T's rows.

    Row j of ``T^T T`` is ``sum_{i <= j} T[i, j] T[i, :]`` and ``T[i, :]`` is zero before column i, so a block of
    rows [r0, r1) adds to the rows j >= r0 of S, columns >= r0 only: (2/3) n^2 flops per row on average, one
    matrix product per block (0.12 ms a row in batches of 128 for n = 3748 on 2 cores).
    """
    n = T.shape[0]
    for r0 in range(0, n, _ROW_BLOCK):
        first = int(np.searchsorted(S, r0))
        if first == S.size:
            break
        r1 = min(n, r0 + _ROW_BLOCK)
        P = T[r0:r1, S[first:]]
        if scale != 1.0:
            P *= scale
        out[first:, r0:] += P.T @ T[r0:r1, r0:]


class GramRows:
    """Rows of the Gram matrix of the weighted ``[wA | wb]`` of a fit system, formed when the LARS path needs them.

    The path reads only the rows of the columns that enter its active set (at most 415 of 3747 for the LASSO of the
    benchmark: 565 steps, 150 of them drops).  Row j of ``s T^T T`` is ``s T[:, j]^T T``
    (:func:`_add_triangle_rows`), (2/3) K^2 flops a row against K^3 / 3 for the whole matrix.  The rows are formed
    in batches: the entering column together with the ``batch - 1`` columns that the last step ranked next (the
    smallest step lengths to entry, :func:`~aiida_chimes.chimes.solvers._lars_path`).  Once ``full_fraction`` of
    the rows would be formed, the whole matrix is formed instead (:func:`weighted_gram`).

    ``normalize``: the rows of the centred Gram matrix with every column scaled to unit norm (columns whose
    centred norm is at most ``constant_tol`` times their norm are constant: zero rows and columns, scale 1).

    Attributes the path uses: ``store`` (rows, C order), ``slot`` (row of ``store`` per column, -1 when not formed),
    ``c0`` (= (wA)^T wb, scaled) and ``yy`` (= ||wb||^2, centred under normalize).

    The rows are formed from the system's class factors in place: an instance is valid until rows are added to the
    system (which drops the one kept by :func:`cached_gram_rows`).
    """

    #: Rows formed per batch.  The benchmark LASSO (n = 3748, 2 cores; 565 steps) took 0.205 s with batches of 32
    #: rows (513 rows formed, 0.16 ms each), 0.225 s with 64 (769 rows), 0.234 s with 128 (1025 rows), 0.227 s with
    #: 16 (433 rows); with the whole matrix (0.22 s to form) 0.38 s.
    batch = 32
    #: Fraction of the rows beyond which the whole matrix is formed instead (at most ~0.15 s of rows formed before
    #: it for n = 3748).
    full_fraction = 0.2

    def __init__(self, system, normalize=False, constant_tol=0.0):
        M = system.ncols
        n1 = M + 1
        self.M = M
        self.nrows = system.nrows_total
        parts = _gram_parts(system, bool(normalize))
        if parts is None:
            parts = ([], np.zeros((0, n1), order="F"), np.zeros(n1))
        self._triangles, self._B, self.mean = parts
        self.scale = np.ones(M)
        self.const = np.zeros(M, dtype=bool)
        if normalize:
            diag = self._diagonal()[:M]
            norms = np.sqrt(np.maximum(diag, 0.0))
            full = np.sqrt(np.maximum(diag + self.nrows * self.mean[:M] ** 2, 0.0))  # uncentred column norms
            self.const = norms <= constant_tol * full
            self.scale = np.where(self.const, 1.0, norms)
        self._normalize = bool(normalize)
        self.slot = np.full(n1, -1, dtype=np.int64)
        self.limit = max(self.batch, int(self.full_fraction * n1))
        self.store = np.empty((min(n1, self.limit + self.batch), n1))
        self.count = 0
        self.batches = 0
        self.full = False
        self._add(np.array([M]))
        last = self.store[self.slot[M]]
        self.c0 = last[:M].copy()
        self.yy = float(last[M])

    @classmethod
    def from_matrix(cls, G, c0, yy=0.0):
        """Rows of a given symmetric Gram matrix G (M x M, upper triangle read) with ``c0 = A^T b``."""
        self = cls.__new__(cls)
        M = len(c0)
        self.M = M
        self.store = np.ascontiguousarray(np.triu(G) + np.triu(G, 1).T, dtype=np.float64)
        self.slot = np.arange(M, dtype=np.int64)
        self.c0 = np.ascontiguousarray(c0, dtype=np.float64)
        self.yy = float(yy)
        self.count = M
        self.batches = 0
        self.full = True
        return self

    def _diagonal(self):
        """diag(G) (unscaled): the squared column norms of every term."""
        d = np.einsum("ij,ij->j", self._B, self._B)
        for T, s in self._triangles:
            d += s * np.einsum("ij,ij->j", T, T)
        return d

    def _form(self, S):
        """Rows S (sorted) of G (len(S) x (M+1), C order), scaled under ``normalize``."""
        R = np.zeros((S.size, self.M + 1))
        for T, s in self._triangles:
            _add_triangle_rows(R, T, S, s)
        if self._B.shape[0]:
            R += self._B[:, S].T @ self._B
        if self._normalize:
            self._scale_rows(R, S)
        return R

    def _scale_rows(self, R, S):
        M = self.M
        R[:, :M] /= self.scale
        inner = S < M
        R[inner, :M] /= self.scale[S[inner], None]
        R[:, :M][:, self.const] = 0.0
        R[inner & np.append(self.const, False)[S], :M] = 0.0

    def _add(self, S):
        S = np.sort(S)
        rows = self._form(S)
        self.store[self.count : self.count + S.size] = rows
        self.slot[S] = np.arange(self.count, self.count + S.size)
        self.count += S.size
        self.batches += 1

    def fetch(self, j, rank):
        """Form row j and the ``batch - 1`` columns without a row that rank lowest (``rank``: one value per column,
        inf for columns that cannot enter), or the whole matrix when that would pass ``full_fraction``."""
        if self.full or self.slot[j] >= 0:
            return
        if self.count + self.batch > self.limit:
            self._form_all()
            return
        key = np.array(rank[: self.M], dtype=np.float64)
        key[self.slot[: self.M] >= 0] = np.inf
        key[j] = -np.inf
        m = min(self.batch, self.M)
        pick = np.argpartition(key, m - 1)[:m]
        pick = np.unique(pick[np.isfinite(key[pick]) | (pick == j)])
        self._add(pick)

    def _form_all(self):
        """Replace the row store by the whole (scaled) Gram matrix."""
        n1 = self.M + 1
        G = _full_gram(self._triangles, self._B, n1)
        _mirror_upper(G, _TILE)
        if self._normalize:
            self._scale_rows(G, np.arange(n1))
        self.store = G
        self.slot = np.arange(n1, dtype=np.int64)
        self.count = n1
        self.batches += 1
        self.full = True


def cached_gram_rows(system, normalize, constant_tol):
    """The :class:`GramRows` of ``system`` kept in its cache (dropped when rows are added): an alpha scan or a
    second LARS solve reuses the rows already formed."""
    key = ("gram_rows", bool(normalize))
    cache = system._cache
    if key not in cache:
        cache[key] = GramRows(system, normalize, constant_tol)
    return cache[key]
