"""Regression solvers on the compact fit system (:class:`~aiida_chimes.chimes.fit_system.FitSystem`).

Every solver works on the triangular factor of the weighted system, never on A.  With ``[wA | wb] = Q [R z]``
(plus the residual ``rho`` orthogonal to Q), ``||w(Ax - b)||^2 = ||R x - z||^2 + rho^2``, ``(wA)^T w(Ax - b)
= R^T (R x - z)`` and the singular values and right singular vectors of wA are those of R.  Semantics follow
``chimes_lsq.py`` (``shared/notes/chimes.md`` section 4.2) and scikit-learn, whose estimators on the explicit
weighted A are the test references:

``svd``
    x = V S^+ U^T wb with the singular values ``s <= eps * max(s)`` dropped (``chimes_lsq.py --algorithm svd
    --eps``).  ``info['eps_smax']`` is the absolute cutoff that chimes_lsq prints as "eps (= args.eps*dmax)".
``ridge``
    min ``||w(Ax - b)||^2 + alpha ||x||^2`` (sklearn ``Ridge(alpha, fit_intercept=False)``), solved by a QR of
    ``[R; sqrt(alpha) I]``.
``lasso``
    min ``1/(2N) ||w(Ax - b)||^2 + alpha ||x||_1`` (sklearn ``Lasso(alpha, fit_intercept=False)``; N = rows),
    by cyclic coordinate descent on the Gram matrix (numba) until the largest coefficient change of a sweep is
    below ``tol`` times the largest coefficient; the duality gap is reported.
``lassolars`` (and ``dlasso``), ``lars`` (and ``dlars``)
    The least-angle-regression path (Efron, Hastie, Johnstone, Tibshirani 2004) with (``lassolars``) or
    without (``lars``) the LASSO modification, followed down to ``alpha`` and interpolated there, as sklearn
    ``lars_path(..., alpha_min=alpha)`` / ``LassoLars(alpha, fit_intercept=False)``: alpha is the common
    absolute correlation of the active columns divided by N, so the ``lassolars`` result minimises the same
    objective as ``lasso``.  ``dlasso`` and ``dlars`` follow the same paths with the stopping rule of the
    official DLARS program (``contrib/dlars`` of chimes_lsq), which ignores the correlation level: at every
    breakpoint x_k it evaluates ``1/(2N) ||w(A x_k - b)||^2 + alpha ||x_k||_1`` and stops at the first breakpoint
    whose objective exceeds the previous one by more than 1e-10, returning that breakpoint (for ``dlasso`` the
    end of the step crossing alpha or the next one; for plain LAR, whose path is not the LASSO path, a point
    unrelated to where the correlation crosses alpha).
    The path runs on the Gram matrix ``G = (wA)^T wA`` and ``c0 = (wA)^T wb``, formed
    once (BLAS-3) from the class factors of the system without combining them into the triangle of A, and
    kept with the system until rows are added (later lars/lassolars calls on it reuse it):
    the correlations ``c = c0 - G x`` are updated from the active rows of G only and the Cholesky factor of
    ``G[active, active]`` is extended by one triangular solve when a column enters and downdated by Givens
    rotations when one leaves, so a step costs O(M k) for k active columns (numba).  Plain LAR
    keeps a column whose coefficient crosses zero (textbook LAR, as DLARS); sklearn's ``method='lar'``
    instead flips the sign of that column and pauses the next entry, so the two agree only up to the first
    zero crossing (``info['zero_crossings']``).  A column that enters (numerically) in the span of the active
    columns (its component orthogonal to them below ``LARS_DEGENERATE_TOL`` = 1e-6 of its norm: from the
    Gram matrix, smaller components are lost in rounding) is skipped while the active set is unchanged
    (``info['degenerate_skipped']``).

``ridgecv`` (chimes_lsq.py; :func:`ridge_cv_alpha`, not a ``solve`` algorithm)
    ridge with the alpha of :data:`RIDGECV_ALPHAS` whose K-fold cross-validation R^2 is best; the folds are
    contiguous row blocks (:func:`kfold_bounds`), so they need the rows in order: ``chimes-solve`` offers it in
    interop mode only.

``normalize=True`` (DLARS/DLASSO ``--normalize=y``): every column of the weighted A is centred (its mean over
all rows subtracted) and scaled to unit Euclidean norm, and wb is centred; the solver runs on that problem
and the coefficients are mapped back to the original columns, ``x_j = x'_j / ||wA_j - mean_j||``.  The
intercept this implies, ``c = mean(wb) - mean(wA) . x`` (in weighted units, i.e. row i is predicted as
``a_i . x + c / w_i``) is NOT part of the ChIMES model: it is reported in ``info['intercept']`` together with
``info['rmse_weighted_with_intercept']`` (the weighted RMSE of the centred fit, as DLARS's un-shifted
predictions ``Ax.txt`` give), while all ``rmse*`` fields and the BIC are those of the model ``A x`` without
intercept, which is what a parameter file built from x predicts.  Columns that are constant over all rows
(zero norm after centring) get x_j = 0.  The centred factor comes for free from the fit system, which keeps
a column of ones in front of A (``lars``/``lassolars``: the centred Gram matrix, from the class factors and
the class means).

Reported quality numbers follow ``chimes_lsq.py``: ``rmse`` over all rows, unweighted; ``nonzero`` = number
of |x_j| > 1e-5; ``bic = N ln(Z/N) + nvars ln N`` with Z the unweighted sum of squared residuals and nvars the
number of kept singular values (svd), M (ridge) or ``nonzero`` (lasso, lars, lassolars), exactly as
``chimes_lsq.py`` counts them.  ``info['bic_weighted']`` uses the weighted Z instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit
from scipy.linalg import solve_triangular, svd
from scipy.linalg.lapack import dtpqrt

from .fit_system import CLASSES, STREAMS, FitSystem
from .gram import cached_gram_rows

__all__ = ["ALGORITHMS", "ALIASES", "FitResult", "NONZERO_THRESHOLD", "predict", "solve"]

ALGORITHMS = ("svd", "ridge", "lasso", "lassolars", "lars")
ALIASES = {"dlasso": "lassolars", "dlars": "lars"}
#: chimes_lsq.py ``count_nonzero_vars`` threshold.
NONZERO_THRESHOLD = 1.0e-5
#: A column enters the LARS active set only if its component orthogonal to the active columns is larger than
#: this fraction of its norm.  The path works on the Gram matrix, where that component is the square root of
#: ``G_jj - ||L^{-1} G_Aj||^2``, which carries a rounding error of order k eps G_jj (k active columns): a
#: column in the span of the active ones shows a relative component of up to ~1e-7, hence 1e-6 (the QR
#: version of the path could resolve 1e-10).
LARS_DEGENERATE_TOL = 1.0e-6
#: ``dlasso``/``dlars`` stop at the first path breakpoint whose objective exceeds the previous one by more than
#: this (absolute; the official DLARS program's ``eps`` in its main loop, ``contrib/dlars/src/dlars.C``).
DLARS_OBJECTIVE_TOL = 1.0e-10
#: Under ``normalize``, a column whose centred norm is below this fraction of its norm is treated as constant.
CONSTANT_COLUMN_TOL = 1.0e-10


def predict(A, x):
    """``A @ x`` for rows the caller holds; the solvers themselves never need A."""
    return np.asarray(A, dtype=np.float64) @ np.asarray(x, dtype=np.float64)


@dataclass
class FitResult:
    """Coefficients and quality numbers of one solve."""

    x: np.ndarray
    algorithm: str
    parameter: float  # eps (svd) or alpha (all others)
    nonzero: int  # |x| > 1e-5
    rmse: float  # unweighted, all rows
    rmse_weighted: float  # weighted, all rows
    rmse_by_class: dict  # unweighted, per class name (+ total, energy_per_atom)
    bic: float
    nrows: int
    ncols: int
    normalize: bool = False
    info: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """JSON-friendly dictionary of everything except the arrays (x, singular values)."""
        out = {
            "algorithm": self.algorithm,
            "parameter": float(self.parameter),
            "normalize": bool(self.normalize),
            "nonzero": int(self.nonzero),
            "rmse": float(self.rmse),
            "rmse_weighted": float(self.rmse_weighted),
            # a class without rows has no error: null (NaN is not JSON and AiiDA cannot store it)
            "rmse_by_class": {k: float(v) if math.isfinite(v) else None for k, v in self.rmse_by_class.items()},
            "bic": float(self.bic),
            "nrows": int(self.nrows),
            "ncols": int(self.ncols),
        }
        info = {}
        for key, val in self.info.items():
            if isinstance(val, np.ndarray):
                continue
            if isinstance(val, np.generic):
                val = val.item()
            info[key] = val
        out["info"] = info
        return out


# ----------------------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------------------
def solve(system, algorithm="svd", eps=1.0e-5, alpha=1.0e-4, normalize=False, max_iter=100000, tol=1.0e-10):
    """Solve the weighted least-squares problem held by ``system`` (a FitSystem).

    algorithm: svd | ridge | lasso | lassolars | lars | dlasso | dlars (the last two: the lassolars and lars
    paths stopped as the official DLARS program stops them, at the first breakpoint whose objective rose);
    eps: relative singular-value cutoff (svd); alpha: regularisation (all others);
    normalize: centre and unit-scale the weighted columns first (see module doc);
    max_iter: coordinate-descent sweeps (lasso) or LARS steps (lars, lassolars);
    tol: coordinate descent stops when the largest change of a sweep is <= tol * max|x|.
    """
    name = str(algorithm).lower()
    method = ALIASES.get(name, name)
    if method not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {ALGORITHMS + tuple(ALIASES)}")
    M = system.ncols
    N = system.nrows_total
    if N == 0:
        raise ValueError("the fit system has no rows")
    param = float(eps) if method == "svd" else float(alpha)
    if param < 0:
        raise ValueError("eps and alpha must be >= 0")

    info: dict = {"method": method}
    scale = np.ones(M)
    if method in ("lassolars", "lars"):
        # the path needs only A^T b and the rows of A^T A of the columns it activates: formed from the class
        # factors as it asks for them (kept with the system), no triangle of A
        G = cached_gram_rows(system, bool(normalize), CONSTANT_COLUMN_TOL)
        if normalize:
            scale, const = G.scale, G.const
            info["constant_columns"] = int(const.sum())
    else:
        T = system._triangle(None, weighted=True, centred=bool(normalize))
        R = np.array(T[:M, :M], order="F", copy=True)
        z = T[:M, M].copy()
        rho = float(T[M, M])
        if normalize:
            norms = np.sqrt(np.einsum("ij,ij->j", R, R))
            F = system.factor(None, weighted=True)
            full = np.sqrt(np.einsum("ij,ij->j", F[:, 1 : M + 1], F[:, 1 : M + 1]))
            const = norms <= CONSTANT_COLUMN_TOL * full
            scale = np.where(const, 1.0, norms)
            R /= scale
            R[:, const] = 0.0
            info["constant_columns"] = int(const.sum())

    if method == "svd":
        xs, extra = _solve_svd(R, z, param)
        nvars = extra["rank"]
    elif method == "ridge":
        xs, extra = _solve_ridge(R, z, param)
        nvars = M
    elif method == "lasso":
        xs, extra = _solve_lasso_cd(R, z, rho, N, param, int(max_iter), float(tol))
        nvars = None
    else:
        if name in ("dlasso", "dlars"):
            # DLARS: the whole path, stopped at the first breakpoint whose objective (with lambda = alpha) rose
            xs, extra = _solve_lars(G, N, 0.0, method == "lassolars", int(max_iter), param, G.yy)
        else:
            xs, extra = _solve_lars(G, N, param, method == "lassolars", int(max_iter))
        nvars = None
    info.update(extra)
    x = xs / scale
    if normalize:
        x[const] = 0.0

    nonzero = int(np.count_nonzero(np.abs(x) > NONZERO_THRESHOLD))
    if nvars is None:
        nvars = nonzero
    info["nvars"] = int(nvars)
    sumsq = _sumsq_by_stream(system, x)
    z_u = sum(sumsq[name] for name in CLASSES)
    z_w = _weighted_sumsq(system, x)
    with np.errstate(divide="ignore"):
        bic = N * math.log(z_u / N) + nvars * math.log(N) if z_u > 0 else -math.inf
        info["bic_weighted"] = N * math.log(z_w / N) + nvars * math.log(N) if z_w > 0 else -math.inf
    if normalize:
        mean_a = system.colsum(None, weighted=True) / N
        mean_b = system.bsum(None, weighted=True) / N
        info["intercept"] = float(mean_b - mean_a @ x)
        info["rmse_weighted_with_intercept"] = float(math.sqrt(_centred_sumsq(system, x) / N))
    return FitResult(
        x=x,
        algorithm=name,
        parameter=param,
        nonzero=nonzero,
        rmse=math.sqrt(z_u / N),
        rmse_weighted=math.sqrt(z_w / N),
        rmse_by_class=_rmse_by_stream(system, sumsq, z_u),
        bic=bic,
        nrows=N,
        ncols=M,
        normalize=bool(normalize),
        info=info,
    )


# ----------------------------------------------------------------------------------------------------------
# ridge alpha by K-fold cross-validation (chimes_lsq.py --algorithm ridgecv)
# ----------------------------------------------------------------------------------------------------------
#: The alphas chimes_lsq.py's ``ridgecv`` chooses among, and its default ``--folds``.
RIDGECV_ALPHAS = (1.0e-6, 3.2e-6, 1.0e-5, 3.2e-5, 1.0e-4, 3.2e-4, 1.0e-3, 3.2e-3)
RIDGECV_FOLDS = 4


def kfold_bounds(nrows: int, folds: int = RIDGECV_FOLDS) -> list[tuple[int, int]]:
    """Row ranges [start, stop) of ``folds`` contiguous folds, the first ``nrows % folds`` one row longer
    (scikit-learn ``KFold(folds)`` without shuffling, which ``RidgeCV(cv=folds)`` uses)."""
    folds = int(folds)
    if folds < 2 or folds > nrows:
        raise ValueError(f"cross-validation needs 2 <= folds <= rows, got {folds} folds for {nrows} rows")
    size, extra = divmod(int(nrows), folds)
    bounds, start = [], 0
    for k in range(folds):
        stop = start + size + (1 if k < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def ridge_cv_alpha(fold_systems, alphas=RIDGECV_ALPHAS) -> tuple[float, np.ndarray]:
    """(best alpha, R^2 scores (len(alphas), folds)) of ridge regression by K-fold cross-validation.

    ``fold_systems``: one FitSystem per fold (the rows of each fold, in the same weighting); fold k is predicted
    by the ridge fit of all other folds and scored by R^2 = 1 - ||A_k x - b_k||^2 / ||b_k - mean(b_k)||^2
    (weighted as the systems are).  The best alpha has the highest mean score, the first one on ties: what
    ``RidgeCV(alphas, fit_intercept=False, cv=K)`` chooses (``GridSearchCV`` with the estimator's R^2 score).
    """
    folds = list(fold_systems)
    if len(folds) < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    alphas = [float(a) for a in alphas]
    M = folds[0].ncols
    scores = np.empty((len(alphas), len(folds)))
    for k, test in enumerate(folds):
        train = FitSystem(M)
        for j, other in enumerate(folds):
            if j != k:
                train.merge(other)
        n = test.nrows_total
        tss = test.bnorm2(weighted=True) - test.bsum(weighted=True) ** 2 / n
        if not tss > 0:
            raise ValueError(f"fold {k + 1} of {len(folds)}: its right-hand side is constant, R^2 is undefined")
        for i, alpha in enumerate(alphas):
            x = solve(train, "ridge", alpha=alpha).x
            scores[i, k] = 1.0 - test.residual_sumsq(x, weighted=True) / tss
    best = int(np.argmax(scores.mean(axis=1)))
    return alphas[best], scores


# ----------------------------------------------------------------------------------------------------------
# SVD and ridge
# ----------------------------------------------------------------------------------------------------------
def _solve_svd(R, z, eps):
    U, s, Vt = svd(R, full_matrices=False, check_finite=False, lapack_driver="gesdd")
    smax = float(s[0]) if s.size else 0.0
    cutoff = eps * smax
    keep = s > cutoff
    coef = (U[:, keep].T @ z) / s[keep]
    x = Vt[keep].T @ coef
    return x, {"eps_smax": cutoff, "smax": smax, "rank": int(keep.sum()), "singular_values": s}


def _solve_ridge(R, z, alpha):
    M = R.shape[0]
    T = np.zeros((M + 1, M + 1), order="F")
    T[:M, :M] = R
    T[:M, M] = z
    B = np.zeros((M + 1, M + 1), order="F")
    B[np.arange(M), np.arange(M)] = math.sqrt(alpha)
    T, _, _, info = dtpqrt(M + 1, min(32, M + 1), T, B, overwrite_a=1, overwrite_b=1)
    if info != 0:  # pragma: no cover
        raise RuntimeError(f"LAPACK dtpqrt failed (info={info})")
    diag = np.abs(np.diag(T)[:M])
    if diag.size and diag.min() <= np.finfo(float).eps * diag.max() * M:
        raise np.linalg.LinAlgError("ridge system is singular (alpha = 0 and rank-deficient A?)")
    x = solve_triangular(T[:M, :M], T[:M, M], check_finite=False)
    return x, {}


# ----------------------------------------------------------------------------------------------------------
# LASSO by coordinate descent
# ----------------------------------------------------------------------------------------------------------
@njit(cache=True)
def _cd_lasso_sweeps(G, q, lam, x, h, max_sweeps, tol):  # pragma: no cover - numba
    """Cyclic coordinate descent for min 1/2 x^T G x - q^T x + lam |x|_1; h = G x is kept up to date.

    Returns (sweeps done, largest change of the last sweep, largest |x|).
    """
    M = q.shape[0]
    dmax = 0.0
    xmax = 0.0
    sweeps = 0
    for _ in range(max_sweeps):
        dmax = 0.0
        xmax = 0.0
        for j in range(M):
            gjj = G[j, j]
            if gjj <= 0.0:
                continue
            xj = x[j]
            t = q[j] - h[j] + gjj * xj
            if t > lam:
                xn = (t - lam) / gjj
            elif t < -lam:
                xn = (t + lam) / gjj
            else:
                xn = 0.0
            d = xn - xj
            if d != 0.0:
                for k in range(M):
                    h[k] += d * G[j, k]
                x[j] = xn
                if abs(d) > dmax:
                    dmax = abs(d)
            if abs(xn) > xmax:
                xmax = abs(xn)
        sweeps += 1
        if dmax <= tol * xmax:
            break
    return sweeps, dmax, xmax


def _lasso_gap(R, z, rho, lam, x):
    """Duality gap of min 1/2 ||R x - z||^2 + 1/2 rho^2 + lam |x|_1 and the primal value."""
    r = z - R @ x
    rr = float(r @ r) + rho * rho
    xtr = R.T @ r
    dual_norm = float(np.max(np.abs(xtr))) if xtr.size else 0.0
    const = lam / dual_norm if dual_norm > lam else 1.0
    yr = rr + float(x @ xtr)  # y.r = (Xx + r).r
    l1 = float(np.abs(x).sum())
    primal = 0.5 * rr + lam * l1
    gap = 0.5 * rr * (1.0 + const * const) + lam * l1 - const * yr
    return gap, primal


def _solve_lasso_cd(R, z, rho, N, alpha, max_iter, tol):
    M = R.shape[0]
    G = np.ascontiguousarray(R.T @ R)
    q = R.T @ z
    lam = alpha * N
    x = np.zeros(M)
    h = np.zeros(M)
    sweeps, dmax, xmax = _cd_lasso_sweeps(G, q, lam, x, h, max_iter, tol)
    gap, primal = _lasso_gap(R, z, rho, lam, x)
    return x, {
        "iterations": int(sweeps),
        "converged": bool(dmax <= tol * xmax),
        "max_change": float(dmax),
        "duality_gap": float(gap / N),
        "objective": float(primal / N),
    }


def _centred_sumsq(system, x):
    """``||w(Ax - b) - mean||^2`` over all rows (weighted residual of the model with the best constant).

    Per class: the class-centred residual from ``F_c[1:, 1:]`` plus the spread of the class means (exact).
    """
    v = np.append(np.asarray(x, dtype=np.float64), -1.0)
    total = 0.0
    counts, means = [], []
    for _, n, F, w in system.class_factors():
        r = F[1:, 1:] @ v
        total += w * w * float(r @ r)
        counts.append(float(n))
        means.append(w * float(F[0, 1:] @ v) / float(F[0, 0]))
    counts = np.asarray(counts)
    means = np.asarray(means)
    if counts.size:
        m = float(counts @ means) / float(counts.sum())
        total += float(counts @ (means - m) ** 2)
    return total


def _sumsq_by_stream(system, x):
    """Unweighted ``||A x - b||^2`` of every stream of rows (the classes and ``energy_per_atom``), as
    :meth:`FitSystem.residual_sumsq`, from the factors but with only the columns of the non-zero x_j."""
    v = np.append(np.asarray(x, dtype=np.float64), -1.0)
    nz = np.flatnonzero(v)
    nrows = system.nrows
    out = {}
    for i, name in enumerate(STREAMS):
        if int(nrows[name]) == 0:
            out[name] = 0.0
            continue
        r = system.factor(i, weighted=False, leading=True)[:, 1 + nz] @ v[nz]
        out[name] = float(r @ r)
    return out


def _rmse_by_stream(system, sumsq, total):
    """The dictionary of :meth:`FitSystem.rmse` (unweighted RMSE per stream, nan without rows, and total)."""
    nrows = system.nrows
    out = {name: math.sqrt(sumsq[name] / nrows[name]) if nrows[name] else math.nan for name in STREAMS}
    out["total"] = math.sqrt(total / nrows["total"]) if nrows["total"] else math.nan
    return out


def _weighted_sumsq(system, x):
    """``||w(Ax - b)||^2`` over all rows, from the class factors (only the columns of the non-zero x_j)."""
    v = np.append(np.asarray(x, dtype=np.float64), -1.0)
    nz = np.flatnonzero(v)
    total = 0.0
    for _, _, F, w in system.class_factors():
        r = F[:, 1 + nz] @ v[nz]
        total += w * w * float(r @ r)
    return total


# ----------------------------------------------------------------------------------------------------------
# LARS / LASSO-LARS on the Gram matrix
# ----------------------------------------------------------------------------------------------------------
@njit(cache=True)
def _chol_remove(L, p, k):  # pragma: no cover - numba
    """Remove active column p from the Cholesky factor L (k x k lower, L L^T = G_AA) by Givens rotations."""
    for i in range(p, k - 1):
        for t in range(i + 2):
            L[i, t] = L[i + 1, t]
    for t in range(k):
        L[k - 1, t] = 0.0
    for i in range(p, k - 1):
        a = L[i, i]
        b = L[i, i + 1]
        r = math.hypot(a, b)
        if r == 0.0:
            continue
        cs = a / r
        sn = b / r
        for row in range(i, k - 1):
            t1 = L[row, i]
            t2 = L[row, i + 1]
            L[row, i] = cs * t1 + sn * t2
            L[row, i + 1] = -sn * t1 + cs * t2
        L[i, i + 1] = 0.0


@njit(cache=True)
def _dot_prefix(L, i, v):  # pragma: no cover - numba
    """``L[i, :i] . v[:i]`` with four partial sums (a single running sum is latency-bound)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    t = 0
    while t + 3 < i:
        s0 += L[i, t] * v[t]
        s1 += L[i, t + 1] * v[t + 1]
        s2 += L[i, t + 2] * v[t + 2]
        s3 += L[i, t + 3] * v[t + 3]
        t += 4
    while t < i:
        s0 += L[i, t] * v[t]
        t += 1
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, error_model="numpy")
def _lars_path(
    store,
    slot,
    c0,
    nrows,
    alpha_min,
    lasso,
    max_iter,
    degenerate_tol,
    lam,
    yy,
    fstate,
    istate,
    x,
    prev_x,
    c,
    a,
    gx,
    rank,
    active,
    signs,
    is_active,
    excluded,
    L,
    h,
    y,
    w,
    d,
):  # pragma: no cover - numba
    """The LARS / LASSO-LARS path on rows of the Gram matrix G, c0 = A^T b; resumable.

    Row j of G is ``store[slot[j], :M]`` (M = len(c0)); only the rows of columns that have entered the active
    set are read.  When the entering column has no row yet (``slot < 0``) the path returns status 1 with that
    column in ``istate[1]`` and ``rank`` holding, per column, the step length at which it would have entered in
    the last step (``-|c_j|`` when the active set is empty; inf for columns that cannot enter), the caller's hint
    for rows to form with it; called again with the same state it repeats that iteration from its start (nothing
    before the entry changes the state).  Status 0: the path has ended.
    ``lam >= 0`` adds the stopping rule of the official DLARS program: at each breakpoint x_k of the path the
    objective ``||b - A x_k||^2 / (2N) + lam |x_k|_1`` (``||b||^2 = yy``) is evaluated, and the path stops at
    the first breakpoint whose objective exceeds the previous one by more than 1e-10, returning that one.

    State: ``fstate`` = (previous alpha, alpha, previous objective); ``istate`` = (active count, entering
    column, column just dropped, least-squares reached, steps, drops, zero crossings, degenerate skips, stopped
    by the objective rule, converged).  Returns (status, L): L (the Cholesky factor of the active Gram matrix)
    grows with the active set.
    """
    M = c0.shape[0]
    prev_alpha = fstate[0]
    alpha = fstate[1]
    f_prev = fstate[2]
    k = istate[0]
    j_next = istate[1]
    just_dropped = istate[2]
    ls_reached = istate[3] != 0
    n_iter = istate[4]
    n_drops = istate[5]
    n_cross = istate[6]
    n_degen = istate[7]
    cap = L.shape[0]
    converged = False
    objective_stop = False
    status = 0
    tiny = np.finfo(np.float64).tiny
    tie = 1.0e-12
    tol2 = degenerate_tol * degenerate_tol
    while True:
        # ---- DLARS: stop at the first breakpoint whose objective increased (x and c = c0 - G x are current)
        if lam >= 0.0:
            r2 = yy
            l1 = 0.0
            for j in range(M):
                xj = x[j]
                if xj != 0.0:
                    r2 -= xj * (c0[j] + c[j])  # ||b - Ax||^2 = yy - 2 x.c0 + x.Gx, x.Gx = x.c0 - x.c
                    l1 += abs(xj)
            f = 0.5 * r2 / nrows + lam * l1
            if f > f_prev + DLARS_OBJECTIVE_TOL:
                objective_stop = True
                alpha = 0.0
                for i in range(k):
                    alpha = max(alpha, abs(c[active[i]]))
                alpha /= nrows
                break
            f_prev = f
        # ---- common correlation C (and the first column when nothing is active)
        if ls_reached:
            C = 0.0
        elif k > 0:
            C = 0.0
            for i in range(k):
                v = abs(c[active[i]])
                if v > C:
                    C = v
        else:
            C = -1.0
            for j in range(M):
                if excluded[j]:
                    rank[j] = np.inf
                else:
                    v = abs(c[j])
                    rank[j] = -v
                    if v > C:
                        C = v
                        j_next = j
            if C < 0.0:
                C = 0.0
        alpha = C / nrows
        if alpha <= alpha_min:
            if n_iter > 0 and prev_alpha > alpha:
                ss = (prev_alpha - alpha_min) / (prev_alpha - alpha)
                for j in range(M):
                    x[j] = prev_x[j] + ss * (x[j] - prev_x[j])
            alpha = alpha_min
            converged = True
            break
        if n_iter >= max_iter:
            break
        # ---- add the entering column: one forward substitution appends a row to L
        if j_next >= 0:
            jn = j_next
            if slot[jn] < 0:
                status = 1  # its row of G is needed first
                break
            gr = store[slot[jn]]
            gjj = gr[jn]
            hh = 0.0
            for i in range(k):
                h[i] = (gr[active[i]] - _dot_prefix(L, i, h)) / L[i, i]
                hh += h[i] * h[i]
            d2 = gjj - hh  # squared norm of the part of the column orthogonal to the active ones
            if gjj <= 0.0 or d2 <= tol2 * gjj:
                excluded[jn] = True
                n_degen += 1
            else:
                if k == cap:
                    cap = min(M, 2 * cap)
                    L2 = np.zeros((cap, cap))
                    L2[:k, :k] = L[:k, :k]
                    L = L2
                for t in range(k):
                    L[k, t] = h[t]
                L[k, k] = math.sqrt(d2)
                active[k] = jn
                signs[k] = 1.0 if c[jn] > 0 else -1.0
                is_active[jn] = True
                k += 1
            j_next = -1
        if k == 0:
            more = False
            for j in range(M):
                if not excluded[j]:
                    more = True
                    break
            if more:
                continue  # the candidate was degenerate: pick the next one
            break
        # ---- equiangular direction: w = G_AA^{-1} s, d = AA w
        for i in range(k):
            y[i] = (signs[i] - _dot_prefix(L, i, y)) / L[i, i]
        for i in range(k):
            w[i] = y[i]
        for jj in range(k - 1, -1, -1):
            w[jj] /= L[jj, jj]
            wj = w[jj]
            for i in range(jj):
                w[i] -= L[jj, i] * wj
        sw = 0.0
        for i in range(k):
            sw += signs[i] * w[i]
        AA = 1.0 / math.sqrt(sw)
        for i in range(k):
            d[i] = AA * w[i]
        # ---- a = G[:, A] d and gx = G[:, A] x_A in one pass over the active rows of G (O(M k)), 4 rows at a time
        for j in range(M):
            a[j] = 0.0
            gx[j] = 0.0
        i = 0
        while i + 3 < k:
            g0r = store[slot[active[i]]]
            g1r = store[slot[active[i + 1]]]
            g2r = store[slot[active[i + 2]]]
            g3r = store[slot[active[i + 3]]]
            d0 = d[i]
            d1 = d[i + 1]
            d2 = d[i + 2]
            d3 = d[i + 3]
            x0 = x[active[i]]
            x1 = x[active[i + 1]]
            x2 = x[active[i + 2]]
            x3 = x[active[i + 3]]
            for j in range(M):
                g0 = g0r[j]
                g1 = g1r[j]
                g2 = g2r[j]
                g3 = g3r[j]
                a[j] += (d0 * g0 + d1 * g1) + (d2 * g2 + d3 * g3)
                gx[j] += (x0 * g0 + x1 * g1) + (x2 * g2 + x3 * g3)
            i += 4
        while i < k:
            gr = store[slot[active[i]]]
            di = d[i]
            xi = x[active[i]]
            for j in range(M):
                g = gr[j]
                a[j] += di * g
                gx[j] += xi * g
            i += 1
        # ---- step length: next column to reach C, full least-squares step, or (lasso) a zero crossing
        gamma = C / AA
        j_star = -1
        best = np.inf
        jbest = -1
        for j in range(M):
            if is_active[j] or excluded[j]:
                rank[j] = np.inf
                continue
            cj = c[j]
            aj = a[j]
            n1 = max(C - cj, 0.0)
            n2 = max(C + cj, 0.0)
            e1 = AA - aj
            e2 = AA + aj
            g1 = n1 / e1 if e1 > 0.0 else np.inf
            g2 = n2 / e2 if e2 > 0.0 else np.inf
            if j == just_dropped:
                if n1 <= tie * C:
                    g1 = np.inf
                if n2 <= tie * C:
                    g2 = np.inf
            g = min(g1, g2)
            rank[j] = g
            if g < best:
                best = g
                jbest = j
        if jbest >= 0 and best < gamma:
            gamma = best
            j_star = jbest
        p_drop = -1
        zbest = np.inf
        p = -1
        for i in range(k):
            zc = -x[active[i]] / d[i]
            if zc > tiny and zc < zbest:
                zbest = zc
                p = i
        if p >= 0 and zbest < gamma:
            if lasso:
                gamma = zbest
                p_drop = p
            else:
                n_cross += 1
        # ---- step
        for j in range(M):
            prev_x[j] = x[j]
        prev_alpha = alpha
        for i in range(k):
            x[active[i]] = x[active[i]] + gamma * d[i]
        for j in range(M):
            c[j] = c0[j] - gx[j] - gamma * a[j]  # = c0 - G x: no drift along the path
        just_dropped = -1
        if p_drop >= 0:
            j_out = active[p_drop]
            xo = x[j_out]
            x[j_out] = 0.0
            if xo != 0.0:
                gr = store[slot[j_out]]
                for j in range(M):
                    c[j] += xo * gr[j]
            _chol_remove(L, p_drop, k)
            for i in range(p_drop, k - 1):
                active[i] = active[i + 1]
                signs[i] = signs[i + 1]
            k -= 1
            is_active[j_out] = False
            for j in range(M):
                excluded[j] = False
            just_dropped = j_out
            n_drops += 1
        elif j_star >= 0:
            j_next = j_star
        else:
            ls_reached = True  # full step: least-squares solution on the active columns
        n_iter += 1
    fstate[0] = prev_alpha
    fstate[1] = alpha
    fstate[2] = f_prev
    istate[0] = k
    istate[1] = j_next
    istate[2] = just_dropped
    istate[3] = 1 if ls_reached else 0
    istate[4] = n_iter
    istate[5] = n_drops
    istate[6] = n_cross
    istate[7] = n_degen
    istate[8] = 1 if objective_stop else 0
    istate[9] = 1 if converged else 0
    return status, L


def _solve_lars(rows, N, alpha_min, lasso, max_iter, lam=-1.0, yy=0.0):
    """LARS (lasso=False) or LASSO-LARS path of min 1/(2N)||A x - b||^2 + alpha |x|_1 down to alpha_min.

    ``rows``: the rows of G = A^T A and c0 = A^T b (:class:`~aiida_chimes.chimes.gram.GramRows`), formed as the
    path asks for them.  Each iteration adds the column that stopped the previous step (if any), computes the
    equiangular direction of the active set and steps until the next column reaches the common correlation C,
    the correlations reach zero (least-squares solution of the active set) or (lasso) a coefficient reaches
    zero.  Ties at the start of a step (numerators within round-off of zero) give zero-length steps; the column
    just dropped may not re-enter at a zero-length step.
    """
    c0 = rows.c0
    M = c0.shape[0]
    x, prev_x, c, a, gx = np.zeros(M), np.zeros(M), c0.copy(), np.zeros(M), np.zeros(M)
    rank = np.full(M, np.inf)
    active = np.zeros(M, dtype=np.int64)
    is_active = np.zeros(M, dtype=np.bool_)
    excluded = np.zeros(M, dtype=np.bool_)
    signs, h, y, w, d = (np.zeros(M) for _ in range(5))
    L = np.zeros((min(M, 64), min(M, 64)))
    fstate = np.array([np.inf, np.inf, np.inf])
    istate = np.array([0, -1, -1, 0, 0, 0, 0, 0, 0, 0], dtype=np.int64)
    args = (float(N), float(alpha_min), bool(lasso), int(max_iter), LARS_DEGENERATE_TOL, float(lam), float(yy))
    while True:
        status, L = _lars_path(
            rows.store,
            rows.slot,
            c0,
            *args,
            fstate,
            istate,
            x,
            prev_x,
            c,
            a,
            gx,
            rank,
            active,
            signs,
            is_active,
            excluded,
            L,
            h,
            y,
            w,
            d,
        )
        if status == 0:
            break
        rows.fetch(int(istate[1]), rank)
    k, _, _, _, n_iter, drops, cross, degen, objective_stop, converged = (int(v) for v in istate)
    return x, {
        "objective_stop": bool(objective_stop),
        "iterations": n_iter,
        "converged": bool(converged),
        "alpha_reached": float(fstate[1]),
        "active": k,
        "drops": drops,
        "zero_crossings": cross,
        "degenerate_skipped": degen,
        "gram_rows_formed": int(rows.count),
        "gram_row_batches": int(rows.batches),
    }
