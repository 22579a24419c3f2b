"""The compact fit system: a weighted linear least-squares problem kept as triangular factors, never as A.

A ChIMES fit minimises ``sum_i w_i^2 (a_i . x - b_i)^2`` over the rows i (force components, energies,
stresses) of the training frames (``shared/DESIGN.md`` section 4).  Rows are folded into the system as they
are built, so the memory is O(M^2) whatever the number of rows N, rows of new frames can be added to an old
system, and two systems built from different rows combine exactly (:meth:`FitSystem.merge`,
:meth:`FitSystem.reduce` over MPI).

Representation
--------------
For every observable class (``force``, ``energy``, ``stress``) the system keeps the upper-triangular factor
F (K x K, K = M + 2) of the augmented matrix ``[1 | A | b]`` of the rows of that class: ``[1 | A | b] = Q F``
with Q orthonormal.  F is updated by a streaming (TSQR) QR: buffered rows are stacked under F and the stack is
re-triangularised with LAPACK ``dtpqrt`` (triangular-pentagonal QR, 2 K^2 flops per row).  A class with at most
K/2 rows (energies, stresses) is re-factorised instead from the meaningful rows of F and the new rows (``dgeqrf``,
2 m^2 K flops for m rows): its F keeps at most one non-zero row per data row, without the rounding debris a
rank-deficient ``dtpqrt`` fold spreads over all K rows (:mod:`.factor_debris`), and the count of its leading rows
that may be non-zero is kept with it, so that the Gram matrix, saved files (format 3) and MPI messages touch only
those rows.  From F:

* ``F[:, 1:]`` re-triangularised (it is triangular plus the dense first row: O(M^2) work) is the factor
  T ((M+1) x (M+1)) of ``[A | b]``: ``T[:M, :M]`` is R, ``T[:M, M]`` is Q^T b and ``|T[M, M]|`` the residual
  norm of the least-squares solution (:meth:`FitSystem.R`, :meth:`FitSystem.qtb`);
* ``F[1:, 1:]`` is directly the factor of the column-centred ``[A - mean | b - mean]`` (the leading column
  of ones projects the means out), which the ``normalize`` option of the solvers uses (``centred=True``);
* ``||A x - b||^2 = ||F[:, 1:] (x, -1)||^2`` exactly, for any x: per-class errors need no A;
* ``F[0, 0]^2 = N`` and ``F^T F`` is the Gram matrix of ``[1 | A | b]``.

Two factors are kept per class: of the weighted rows ``[1 | wA | wb]`` (the ones column is not weighted: it
centres the weighted columns) for solving, and of the unweighted rows for exact unweighted errors.  While all
rows of a class carry the same weight w > 0 (the usual case: one weight per class) the weighted factor is not
stored: it equals the unweighted one with its columns 1: scaled by w.  It is created from that scaling the
first time a different weight arrives.

A fourth, unweighted stream ``energy_per_atom`` holds the energy rows divided by their atom counts when the
caller passes ``natoms`` (for the customary per-atom energy error); it never enters the fit.

Memory: per stream one or two K x K factors plus a row buffer of at most ``block_rows`` x K (allocated on
demand), plus cached derived factors (cleared whenever rows are added).  Nothing grows with N.

Threads: each fold is a LAPACK call on a K x K triangle and a block of rows.  For small M, many BLAS threads
on a busy machine slow it down many times (measured 15x for M = 100 on 2 shared cores); MPI builds should
run one BLAS thread per rank (``OPENBLAS_NUM_THREADS=1`` or ``threadpoolctl``).

Weights follow ``chimes_lsq.py --weights``: row i is multiplied by w_i, so w_i^2 weights its squared residual.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.linalg.lapack import dgeqrf, dtpqrt

from .factor_debris import leading_rows, meaningful_rows

__all__ = ["CLASSES", "FORMAT_VERSION", "FitSystem", "predict"]

#: Observable classes; the row class codes are the indices in this tuple.  ``constraint``: the charge-constraint
#: rows of a FITCOUL fit (chimes_lsq appends them after the frames' rows).
CLASSES = ("force", "energy", "stress", "constraint")
#: Extra unweighted stream of the energy rows divided by the atom count (only filled when natoms is given).
PER_ATOM = "energy_per_atom"
STREAMS = CLASSES + (PER_ATOM,)
_NSTREAMS = len(STREAMS)
_PA = STREAMS.index(PER_ATOM)
_ENERGY = CLASSES.index("energy")

#: 2: the ``constraint`` class was added (files of version 1 load with it empty); 3: a factor is written as its
#: leading rows that may be non-zero (a class of few rows: a few rows, not K x K).
FORMAT_VERSION = 3
_FORMAT_NAME = "aiida-chimes-fit-system"
#: LAPACK block size of dtpqrt (measured: 32 is the fastest for M from 100 to 1000).
_QR_BLOCK = 32
_MIN_BLOCK_ROWS = 512


def predict(A, x):
    """Predictions ``A @ x`` of a coefficient vector for rows the caller holds (the solvers never need A)."""
    return np.asarray(A, dtype=np.float64) @ np.asarray(x, dtype=np.float64)


def _fold(F, B, triangular=False):
    """Return the triangular factor of ``[F; B]`` (all K rows may be non-zero).  F (K x K, Fortran order) is
    overwritten."""
    if B.shape[0] == 0:
        return F
    K = F.shape[0]
    ell = K if triangular else 0
    out, _, _, info = dtpqrt(ell, min(_QR_BLOCK, K), F, B, overwrite_a=1, overwrite_b=1)
    if info != 0:  # pragma: no cover - LAPACK argument errors only
        raise RuntimeError(f"LAPACK dtpqrt failed (info={info})")
    return out


_TINY = 1.0e-300


def _fold_few(F, B, top):
    """(factor, leading rows) of ``[F; B]`` when fewer rows than columns are behind it: the QR of the meaningful
    rows of F (all in its leading ``top`` rows, the others zero) and the rows B, m <= K / 2 rows by m reflectors
    (2 m^2 K flops, LAPACK ``dgeqrf`` in place), written into F's array (its rows from m on zero); with more
    rows an ordinary fold.

    Folding them into the K x K triangle instead (``_fold``) would run K reflectors through the rank-deficient
    block, which leaves rounding debris in every row, decaying to subnormal numbers: merging two energy (stress)
    classes of the benchmark system took 0.7 s (1.7 s) through their debris, 0.08 s (0.23 s) this way, and
    every later fold, merge and Gram matrix has to work through it.  Memory: two m x K blocks besides F.
    """
    K = F.shape[0]
    old = meaningful_rows(F[:top])
    if old.shape[0] and not old[0].any():  # the first fold: F (and so its row 0) is zero
        old = old[1:]
    m = old.shape[0] + B.shape[0]
    if 2 * m > K:
        return _fold(F, np.asfortranarray(B)), K
    C = np.empty((m, K), order="F")
    C[: old.shape[0]] = old
    C[old.shape[0] :] = B
    del old
    C, _, _, info = dgeqrf(C, overwrite_a=1)
    if info != 0:  # pragma: no cover - LAPACK argument errors only
        raise RuntimeError(f"LAPACK dgeqrf failed (info={info})")
    F[: max(top, m)] = 0.0  # the rows from top on are zeros already
    F[:m] = C
    for j in range(m - 1):  # the reflectors below the diagonal
        F[j + 1 : m, j] = 0.0
    return F, m


def _combine(F1, n1, top1, F2, n2, top2):
    """(factor, leading rows) of the rows behind F1 (n1 rows, non-zero in its leading top1 rows) and F2.

    Only the meaningful rows of a factor carry information (R^T R is the Gram matrix), and a class with fewer rows
    than columns (energies, stresses) has at most that many of them among K rows of rounding debris
    (:func:`~aiida_chimes.chimes.factor_debris.meaningful_rows`), so those are folded as ordinary rows (2 K^2
    flops each) instead of merging two full triangles ((2/3) K^3 flops).
    """
    K = F1.shape[0]
    if n1 < K and n2 < K:
        return _fold_few(F1, meaningful_rows(F2[:top2]), top1)
    if n2 < K:
        return (_fold(F1, meaningful_rows(F2[:top2])), K) if n2 else (F1, top1)
    if n1 < K:
        base = np.array(F2, order="F", copy=True)
        return (_fold(base, meaningful_rows(F1[:top1])), K) if n1 else (base, top2)
    # subnormal entries (|v| < 1e-300, far below any meaningful digit) make LAPACK folds very slow: flush them
    F2 = np.where(np.abs(F2) < _TINY, 0.0, F2)
    return _fold(F1, np.array(F2, order="F", copy=True), triangular=True), K


def _padded(rows, K):
    """K x K Fortran-ordered factor whose leading rows are ``rows`` and the others zero."""
    F = np.zeros((K, K), order="F")
    F[: rows.shape[0]] = rows
    return F


def _scaled(Fu, w):
    """Weighted factor of rows that all carry weight w: the columns of ``[A | b]`` scale, the ones column not."""
    Fw = np.array(Fu, order="F", copy=True)
    Fw[:, 1:] *= w
    return Fw


class _Stream:
    """Factors, sums and the row buffer of one class of rows."""

    __slots__ = (
        "K",
        "block",
        "nrows",
        "Fu",
        "Fw",
        "wuni",
        "colsum_u",
        "colsum_w",
        "bsum_u",
        "bsum_w",
        "buf",
        "wbuf",
        "fill",
        "top",
    )

    def __init__(self, K, block):
        self.K = K
        self.block = block
        self.nrows = 0
        self.Fu = np.zeros((K, K), order="F")
        self.Fw = None  # None while the weights are uniform (see wuni)
        self.wuni = 0.0  # 0: nothing folded yet; > 0: every folded row had this weight; nan: general weights
        self.colsum_u = np.zeros(K - 2)
        self.colsum_w = np.zeros(K - 2)
        self.bsum_u = 0.0
        self.bsum_w = 0.0
        self.buf = None  # (capacity, K) Fortran-ordered rows [1 | A | b], grown up to `block` rows
        self.wbuf = None
        self.fill = 0
        self.top = 0  # Fu and Fw are zero from this row on (None: not known, see leading())

    # -- adding rows ----------------------------------------------------------------------------------------
    def push(self, A, b, w):
        n = b.shape[0]
        if n == 0:
            return
        M = self.K - 2
        self.nrows += n
        self.colsum_u += A.sum(axis=0)
        self.colsum_w += w @ A
        self.bsum_u += float(b.sum())
        self.bsum_w += float(w @ b)
        pos = 0
        while pos < n:
            cap = 0 if self.buf is None else self.buf.shape[0]
            if self.fill == cap:
                self._grow(max(2 * cap, self.fill + (n - pos), 64))
                cap = self.buf.shape[0]
            take = min(cap - self.fill, n - pos)
            rows = slice(self.fill, self.fill + take)
            self.buf[rows, 0] = 1.0
            self.buf[rows, 1 : M + 1] = A[pos : pos + take]
            self.buf[rows, M + 1] = b[pos : pos + take]
            self.wbuf[rows] = w[pos : pos + take]
            self.fill += take
            pos += take
            if self.fill == self.block:
                self.flush()

    def _grow(self, cap):
        cap = min(cap, self.block)
        buf = np.empty((cap, self.K), order="F")
        wbuf = np.empty(cap)
        if self.fill:
            buf[: self.fill] = self.buf[: self.fill]
            wbuf[: self.fill] = self.wbuf[: self.fill]
        self.buf, self.wbuf = buf, wbuf

    def flush(self):
        k = self.fill
        if k == 0:
            return
        B = self.buf if k == self.buf.shape[0] else np.asfortranarray(self.buf[:k])
        w = self.wbuf[:k]
        w0 = w[0]
        uniform = bool(np.all(w == w0)) and w0 > 0.0
        if uniform and self.wuni == 0.0 and self.Fw is None:
            self.wuni = float(w0)
        elif not (uniform and w0 == self.wuni):
            self.general()
        few = self.nrows < self.K  # nrows: these rows included
        top = self.leading()
        tops = []
        if self.Fw is not None:
            Bw = B * w[:, None]
            Bw[:, 0] = 1.0
            Bw = np.asfortranarray(Bw)
            self.Fw, t = _fold_few(self.Fw, Bw, top) if few else (_fold(self.Fw, Bw), self.K)
            tops.append(t)
        self.Fu, t = _fold_few(self.Fu, B, top) if few else (_fold(self.Fu, B), self.K)
        self.top = max(tops + [t])
        self.fill = 0

    def leading(self):
        """Number of leading rows of the factors that may be non-zero (the others are zeros): at most one per row
        of a class with few rows, K for a whole triangle.  Found by a scan once after loading a file written
        before it was kept."""
        if self.top is None:
            self.top = max(leading_rows(F) for F in (self.Fu, self.Fw) if F is not None)
        return self.top

    def general(self):
        """Switch to an explicit weighted factor (weights are no longer uniform)."""
        if self.Fw is None:
            self.Fw = _scaled(self.Fu, self.wuni) if self.wuni > 0.0 else np.zeros_like(self.Fu, order="F")
        self.wuni = np.nan

    def release_buffer(self):
        self.flush()
        self.buf = None
        self.wbuf = None

    # -- access ---------------------------------------------------------------------------------------------
    def factor(self, weighted):
        self.flush()
        if not weighted:
            return self.Fu
        if self.Fw is not None:
            return self.Fw
        if self.wuni > 0.0:
            return _scaled(self.Fu, self.wuni)
        return self.Fu  # no rows: zeros

    def merge(self, other):
        self.flush()
        other.flush()
        if other.nrows == 0 and other.wuni == 0.0:
            return
        both_uniform = self.Fw is None and other.Fw is None
        top, other_top = self.leading(), other.leading()
        tops = []
        if both_uniform and (self.wuni == 0.0 or other.wuni == 0.0 or self.wuni == other.wuni):
            self.wuni = self.wuni if self.wuni != 0.0 else other.wuni
        else:
            self.general()
            self.Fw, t = _combine(self.Fw, self.nrows, top, other.factor(True), other.nrows, other_top)
            tops.append(t)
        self.Fu, t = _combine(self.Fu, self.nrows, top, other.Fu, other.nrows, other_top)
        self.top = max(tops + [t])
        self.nrows += other.nrows
        self.colsum_u += other.colsum_u
        self.colsum_w += other.colsum_w
        self.bsum_u += other.bsum_u
        self.bsum_w += other.bsum_w

    # -- packing (save, MPI) --------------------------------------------------------------------------------
    def pack(self):
        self.flush()
        empty = self.nrows == 0 and self.wuni == 0.0 and self.Fw is None  # nothing folded: Fu is zero, not sent
        flag = 2.0 if empty else (0.0 if self.Fw is None else 1.0)
        top = 0 if empty else self.leading()
        head = np.array([self.nrows, self.wuni, self.bsum_u, self.bsum_w, flag, top])
        parts = [head, self.colsum_u, self.colsum_w]
        if not empty:  # only the leading rows: a class of few rows sends a few rows, not K x K
            parts.append(self.Fu[:top].ravel(order="F"))
        if self.Fw is not None:
            parts.append(self.Fw[:top].ravel(order="F"))
        return np.concatenate(parts)

    @classmethod
    def unpack(cls, data, K, block):
        st = cls(K, block)
        M = K - 2
        st.nrows = int(data[0])
        st.wuni = float(data[1])
        st.bsum_u, st.bsum_w = float(data[2]), float(data[3])
        has_w = data[4] == 1.0
        top = int(data[5])
        pos = 6
        st.colsum_u = data[pos : pos + M].copy()
        st.colsum_w = data[pos + M : pos + 2 * M].copy()
        pos += 2 * M
        if data[4] == 2.0:  # an empty stream: zero factor
            return st, pos
        st.top = top
        st.Fu = _padded(data[pos : pos + top * K].reshape((top, K), order="F"), K)
        pos += top * K
        if has_w:
            st.Fw = _padded(data[pos : pos + top * K].reshape((top, K), order="F"), K)
            pos += top * K
        return st, pos


class FitSystem:
    """Weighted linear least-squares system of M columns, folded row block by row block (see module doc).

    Parameters
    ----------
    ncols:
        Number of columns M (coefficients).
    block_rows:
        Rows of one class buffered before they are folded into the factors (default 512).
        The buffers grow on demand, so classes with few rows (energies, stresses) stay small.
    """

    def __init__(self, ncols: int, block_rows: int | None = None):
        ncols = int(ncols)
        if ncols < 1:
            raise ValueError("ncols must be >= 1")
        self.ncols = ncols
        K = ncols + 2
        # a fixed block (not ~M rows): the buffers of small classes (energies, stresses) then stay small, so the
        # memory reaches its bound after a few hundred rows per class instead of growing towards M rows
        self.block_rows = int(block_rows) if block_rows is not None else _MIN_BLOCK_ROWS
        if self.block_rows < 1:
            raise ValueError("block_rows must be >= 1")
        #: Free-form JSON-serialisable information stored with the system by :meth:`save`.
        self.metadata: dict = {}
        self._streams = [_Stream(K, self.block_rows) for _ in STREAMS]
        self._cache: dict = {}

    # ------------------------------------------------------------------------------------------------------
    # building
    # ------------------------------------------------------------------------------------------------------
    def add_rows(self, A, b, classes, weights=None, natoms=None) -> None:
        """Fold rows into the system.

        A: (n, M) design rows; b: (n,) reference values; classes: (n,) codes 0/1/2/3
        (force/energy/stress/constraint) or a single code for all rows; weights: (n,) or scalar row weights w
        (row multiplied by w, None = 1);
        natoms: (n,) or scalar atom counts, used only for the energy rows (per-atom energy errors).
        """
        M = self.ncols
        A = np.asarray(A, dtype=np.float64)
        if A.ndim == 1 and A.shape[0] == M:
            A = A.reshape(1, M)
        if A.ndim != 2 or A.shape[1] != M:
            raise ValueError(f"A must have shape (n, {M}), got {A.shape}")
        n = A.shape[0]
        b = np.asarray(b, dtype=np.float64).reshape(-1)
        if b.shape[0] != n:
            raise ValueError(f"b has {b.shape[0]} rows, A has {n}")
        if n == 0:
            return
        classes = np.asarray(classes)
        if classes.ndim == 0:
            classes = np.full(n, int(classes), dtype=np.int64)
        classes = classes.reshape(-1)
        if classes.shape[0] != n:
            raise ValueError(f"classes has {classes.shape[0]} entries, A has {n} rows")
        if classes.dtype.kind not in "iu" or classes.min() < 0 or classes.max() >= len(CLASSES):
            raise ValueError(f"row class codes must be integers 0..{len(CLASSES) - 1}")
        if weights is None:
            w = np.ones(n)
        else:
            w = np.broadcast_to(np.asarray(weights, dtype=np.float64), (n,))
            if not np.all(np.isfinite(w)):
                raise ValueError("weights must be finite")
        if not (np.all(np.isfinite(A)) and np.all(np.isfinite(b))):
            raise ValueError("A and b must be finite")
        nat = None
        if natoms is not None:
            nat = np.broadcast_to(np.asarray(natoms, dtype=np.float64), (n,))
            if np.any(nat[classes == _ENERGY] <= 0):
                raise ValueError("natoms must be positive for energy rows")
        self._cache.clear()
        c0 = int(classes[0])
        if np.all(classes == c0):
            groups = [(c0, None)]
        else:
            groups = [(c, classes == c) for c in range(len(CLASSES))]
        for c, mask in groups:
            if mask is None:
                Ac, bc, wc = A, b, w
            else:
                if not mask.any():
                    continue
                Ac, bc, wc = A[mask], b[mask], w[mask]
            self._streams[c].push(Ac, bc, np.ascontiguousarray(wc))
            if c == _ENERGY and nat is not None:
                nc = nat if mask is None else nat[mask]
                self._streams[_PA].push(Ac / nc[:, None], bc / nc, np.ones(bc.shape[0]))

    def merge(self, other: FitSystem) -> None:
        """Add the rows of another system (built from different rows) to this one, exactly."""
        if not isinstance(other, FitSystem) or other.ncols != self.ncols:
            raise ValueError("can only merge a FitSystem with the same number of columns")
        self._cache.clear()
        for mine, theirs in zip(self._streams, other._streams, strict=True):
            mine.merge(theirs)

    def finalize(self) -> None:
        """Fold the buffered rows into the factors (idempotent; every accessor calls it)."""
        for st in self._streams:
            st.flush()

    def release_buffers(self) -> None:
        """Finalize and free the row buffers (they are re-created if more rows are added)."""
        for st in self._streams:
            st.release_buffer()

    # ------------------------------------------------------------------------------------------------------
    # accessors
    # ------------------------------------------------------------------------------------------------------
    @staticmethod
    def _class_index(c):
        if c is None:
            return None
        if isinstance(c, str):
            if c not in STREAMS:
                raise ValueError(f"unknown class {c!r}; expected one of {STREAMS}")
            return STREAMS.index(c)
        c = int(c)
        if not 0 <= c < _NSTREAMS:
            raise ValueError(f"class code must be 0..{_NSTREAMS - 1}")
        return c

    @property
    def nrows(self) -> dict:
        """Number of rows per class name (plus ``energy_per_atom``) and ``total`` (all classes)."""
        out = {name: st.nrows for name, st in zip(STREAMS, self._streams, strict=True)}
        out["total"] = sum(out[name] for name in CLASSES)
        return out

    @property
    def nrows_total(self) -> int:
        return sum(st.nrows for st in self._streams[: len(CLASSES)])

    def scaled_factor(self, c, leading=False) -> tuple[np.ndarray, float]:
        """(F, w) with the weighted factor of class ``c`` equal to F with its columns 1: times w.

        While all rows of a class carry one weight w only the unweighted factor is stored, and
        :meth:`factor` would return a scaled copy (K^2 doubles); this returns the stored one and w instead.
        leading: only the leading rows that may be non-zero (see :meth:`factor`).
        """
        st = self._streams[self._class_index(c)]
        F = st.factor(False)  # also folds buffered rows
        if not (st.Fw is None and st.wuni > 0.0):
            F, w = st.factor(True), 1.0
        else:
            w = float(st.wuni)
        return (F[: st.leading()] if leading else F), w

    def class_factors(self, weighted=True):
        """(class index, rows, F, w) for every class with rows: the factor of ``[1 | wA | wb]`` is F with its
        columns 1: times w (:meth:`scaled_factor`; unweighted: the stored factor, w = 1).  F holds only the
        leading rows that may be non-zero (all K of a whole triangle, at most one per row of a class with fewer
        rows than columns): the rows below are zeros, so every sum over F's rows is unchanged."""
        for c, st in enumerate(self._streams[: len(CLASSES)]):
            if st.nrows:
                if weighted:
                    F, w = self.scaled_factor(c, leading=True)
                else:
                    F, w = st.factor(False)[: st.leading()], 1.0
                yield c, st.nrows, F, w

    def factor(self, c=None, weighted=True, leading=False) -> np.ndarray:
        """Upper-triangular (M+2, M+2) factor F of ``[1 | A | b]`` (weighted: ``[1 | wA | wb]``); read-only view.

        leading: of a class, only its leading rows that may be non-zero (the rows below are zeros): a class with
        fewer rows than columns has at most one per row.
        """
        i = self._class_index(c)
        if i is not None:
            st = self._streams[i]
            F = st.factor(weighted)
            if leading:
                F = F[: st.leading()]
        else:
            key = ("total", bool(weighted))
            F = self._cache.get(key)
            if F is None:
                F = self._combined_factor(bool(weighted))
                self._cache[key] = F
        view = F.view()
        view.flags.writeable = False
        return view

    def _combined_factor(self, weighted):
        """Factor of all classes together: the class with the most rows is the base (copied, scaled), the
        meaningful rows of the classes with fewer rows than columns are folded into it in one block, and any other
        class with a whole triangle is merged as one."""
        K = self.ncols + 2
        parts = sorted(self.class_factors(weighted), key=lambda part: part[1], reverse=True)
        if not parts:
            return np.zeros((K, K), order="F")
        rows = []
        F, nF = None, 0
        for _, n, Fi, w in parts:
            if n < K or Fi.shape[0] < K:  # few rows (or rank-deficient rows that fold into few)
                B = meaningful_rows(Fi)
                if w != 1.0:
                    B[:, 1:] *= w
                rows.append(B)
            elif F is None:
                F, nF = _scaled(Fi, w), n
            else:
                F = _combine(F, nF, K, _scaled(Fi, w), n, K)[0]
                nF += n
        if F is None:  # every class has fewer rows than columns
            return _fold_few(np.zeros((K, K), order="F"), np.vstack(rows), 0)[0]
        return _fold(F, np.asfortranarray(np.vstack(rows))) if rows else F

    def _triangle(self, c=None, weighted=True, centred=False):
        """(M+1, M+1) upper-triangular factor T of ``[A | b]`` (or of its column-centred version).

        ``T[:M, :M]`` = R, ``T[:M, M]`` = Q^T b, ``|T[M, M]|`` = residual norm of the least-squares solution.
        """
        key = ("tri", c if c is None else self._class_index(c), bool(weighted), bool(centred))
        T = self._cache.get(key)
        if T is None:
            F = self.factor(c, weighted)
            T = np.array(F[1:, 1:], order="F", copy=True)
            if not centred:
                # put the ones column back out: fold the first row of F into the trailing triangle (O(M^2))
                T = _fold(T, np.array(F[0:1, 1:], order="F", copy=True))
            self._cache[key] = T
        return T

    def R(self, c=None, weighted=True, centred=False) -> np.ndarray:
        """(M, M) upper-triangular factor R of A (``A = Q R``); ``centred``: of the column-centred A."""
        return self._triangle(c, weighted, centred)[: self.ncols, : self.ncols].copy()

    def qtb(self, c=None, weighted=True, centred=False) -> np.ndarray:
        """Q^T b (M,) matching :meth:`R`."""
        return self._triangle(c, weighted, centred)[: self.ncols, self.ncols].copy()

    def bnorm2(self, c=None, weighted=True) -> float:
        """||b||^2 (weighted: ||wb||^2) of the rows of class c (all classes when c is None)."""
        F = self.factor(c, weighted)
        return float(F[:, -1] @ F[:, -1])

    def colsum(self, c=None, weighted=True) -> np.ndarray:
        """Column sums of A (weighted: of wA), i.e. ``1^T A``."""
        self.finalize()
        sts = self._streams[: len(CLASSES)] if c is None else [self._streams[self._class_index(c)]]
        out = np.zeros(self.ncols)
        for st in sts:
            out += st.colsum_w if weighted else st.colsum_u
        return out

    def bsum(self, c=None, weighted=True) -> float:
        """Sum of b (weighted: of wb)."""
        sts = self._streams[: len(CLASSES)] if c is None else [self._streams[self._class_index(c)]]
        return float(sum(st.bsum_w if weighted else st.bsum_u for st in sts))

    def gram(self, c=None, weighted=True) -> tuple[np.ndarray, np.ndarray]:
        """(A^T A, A^T b) (weighted: of wA, wb), computed from the factor."""
        F = self.factor(c, weighted)
        M = self.ncols
        Fa = F[:, 1 : M + 1]
        return Fa.T @ Fa, Fa.T @ F[:, M + 1]

    def residual_sumsq(self, x, c=None, weighted=False) -> float:
        """Exact ``||A x - b||^2`` (weighted: ``||w (A x - b)||^2``) over the rows of class c (None: all)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if x.shape[0] != self.ncols:
            raise ValueError(f"x must have {self.ncols} entries")
        v = np.append(x, -1.0)
        idx = range(len(CLASSES)) if c is None else [self._class_index(c)]
        total = 0.0
        for i in idx:
            st = self._streams[i]
            if st.nrows == 0:
                continue
            F = st.factor(weighted)
            r = F[:, 1:] @ v
            total += float(r @ r)
        return total

    def rmse(self, x) -> dict:
        """Unweighted root-mean-square error per class name (nan for a class without rows).

        Also holds ``total`` (all rows of all classes) and ``energy_per_atom`` (energy errors divided by
        the atom count, when ``natoms`` was given for the energy rows; nan otherwise).
        """
        out = {}
        for i, name in enumerate(STREAMS):
            n = self._streams[i].nrows
            out[name] = float(np.sqrt(self.residual_sumsq(x, i) / n)) if n else float("nan")
        n = self.nrows_total
        out["total"] = float(np.sqrt(self.residual_sumsq(x) / n)) if n else float("nan")
        return out

    @property
    def nbytes(self) -> int:
        """Bytes held in numpy arrays (factors, sums, buffers, cache)."""
        total = 0
        for st in self._streams:
            for name in ("Fu", "Fw", "colsum_u", "colsum_w", "buf", "wbuf"):
                arr = getattr(st, name)
                if arr is not None:
                    total += arr.nbytes
        for val in self._cache.values():
            total += val.nbytes
        return total

    # ------------------------------------------------------------------------------------------------------
    # persistence and MPI
    # ------------------------------------------------------------------------------------------------------
    def _pack(self) -> np.ndarray:
        parts = [np.array([float(self.ncols), float(_NSTREAMS)])]
        for st in self._streams:
            data = st.pack()
            parts.append(np.array([float(data.shape[0])]))
            parts.append(data)
        return np.concatenate(parts)

    @classmethod
    def _unpack(cls, data, block_rows=None) -> FitSystem:
        ncols = int(data[0])
        nstreams = int(data[1])
        if nstreams != _NSTREAMS:
            raise ValueError(f"packed system has {nstreams} streams, expected {_NSTREAMS}")
        system = cls(ncols, block_rows)
        K = ncols + 2
        pos = 2
        for i in range(nstreams):
            length = int(data[pos])
            pos += 1
            st, used = _Stream.unpack(data[pos : pos + length], K, system.block_rows)
            if used != length:
                raise ValueError("corrupt packed fit system")
            system._streams[i] = st
            pos += length
        return system

    def save(self, path) -> None:
        """Write the system to a compressed ``.npz`` file (format version, factors, sums, metadata as JSON)."""
        self.finalize()
        arrays = {
            "format": np.array(_FORMAT_NAME),
            "format_version": np.array(FORMAT_VERSION),
            "ncols": np.array(self.ncols),
            "block_rows": np.array(self.block_rows),
            "classes": np.array(STREAMS),
            "metadata": np.array(json.dumps(self.metadata)),
        }
        for name, st in zip(STREAMS, self._streams, strict=True):
            arrays[f"{name}.nrows"] = np.array(st.nrows)
            arrays[f"{name}.wuni"] = np.array(st.wuni)
            top = st.leading()  # the rows below are zeros: not written (version 3)
            arrays[f"{name}.Fu"] = st.Fu[:top]
            if st.Fw is not None:
                arrays[f"{name}.Fw"] = st.Fw[:top]
            arrays[f"{name}.colsum_u"] = st.colsum_u
            arrays[f"{name}.colsum_w"] = st.colsum_w
            arrays[f"{name}.bsum"] = np.array([st.bsum_u, st.bsum_w])
        path = Path(path)
        with path.open("wb") as handle:
            np.savez_compressed(handle, **arrays)

    @classmethod
    def load(cls, path) -> FitSystem:
        """Read a system written by :meth:`save`."""
        with np.load(Path(path), allow_pickle=False) as data:
            if "format" not in data or str(data["format"]) != _FORMAT_NAME:
                raise ValueError(f"{path} is not an aiida-chimes fit system file")
            version = int(data["format_version"])
            if version > FORMAT_VERSION:
                raise ValueError(f"fit system format version {version} is newer than supported ({FORMAT_VERSION})")
            ncols = int(data["ncols"])
            system = cls(ncols, int(data["block_rows"]))
            system.metadata = json.loads(str(data["metadata"]))
            names = [str(n) for n in data["classes"]]
            if not set(names) <= set(STREAMS):
                raise ValueError(f"unexpected classes {names} in {path}")
            for name, st in zip(STREAMS, system._streams, strict=True):
                if name not in names:  # a class added after this file was written: no rows
                    continue
                st.nrows = int(data[f"{name}.nrows"])
                st.wuni = float(data[f"{name}.wuni"])
                K = ncols + 2
                Fu = data[f"{name}.Fu"]
                if Fu.ndim != 2 or Fu.shape[1] != K or Fu.shape[0] > K:
                    raise ValueError(f"{path}: the {name} factor has shape {Fu.shape}, expected at most ({K}, {K})")
                # version 3 writes the leading rows that may be non-zero; older files the whole K x K factor
                st.top = Fu.shape[0] if Fu.shape[0] < K else None
                st.Fu = _padded(Fu, K) if Fu.shape[0] < K else np.asfortranarray(Fu, dtype=np.float64)
                key = f"{name}.Fw"
                if key in data:
                    Fw = data[key]
                    if Fw.shape != Fu.shape:
                        raise ValueError(f"{path}: the {name} factors have shapes {Fu.shape} and {Fw.shape}")
                    st.Fw = _padded(Fw, K) if Fw.shape[0] < K else np.asfortranarray(Fw, dtype=np.float64)
                else:
                    st.Fw = None
                st.colsum_u = np.array(data[f"{name}.colsum_u"], dtype=np.float64)
                st.colsum_w = np.array(data[f"{name}.colsum_w"], dtype=np.float64)
                st.bsum_u, st.bsum_w = (float(v) for v in data[f"{name}.bsum"])
        return system

    def reduce(self, comm, root: int = 0) -> FitSystem | None:
        """Combine the systems of all ranks of an mpi4py communicator by a binary-tree reduction.

        Every rank calls this with its own system (built from its own rows).  Returns the combined system on
        ``root`` and None elsewhere; this rank's system is not modified.  Metadata of the root is kept.
        """
        size = comm.Get_size()
        rank = comm.Get_rank()
        rel = (rank - root) % size
        acc = FitSystem._unpack(self._pack(), self.block_rows)
        step = 1
        while step < size:
            if rel % (2 * step) == step:
                data = acc._pack()
                dest = (rel - step + root) % size
                comm.send(int(data.shape[0]), dest=dest, tag=71)
                comm.Send(data, dest=dest, tag=72)
                return None
            if rel % (2 * step) == 0 and rel + step < size:
                src = (rel + step + root) % size
                length = comm.recv(source=src, tag=71)
                data = np.empty(int(length))
                comm.Recv(data, source=src, tag=72)
                acc.merge(FitSystem._unpack(data, self.block_rows))
            step *= 2
        acc.metadata = dict(self.metadata)
        return acc
