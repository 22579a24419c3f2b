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
``lassolars`` (alias ``dlasso``), ``lars`` (alias ``dlars``)
    The least-angle-regression path (Efron, Hastie, Johnstone, Tibshirani 2004) with (``lassolars``) or
    without (``lars``) the LASSO modification, followed down to ``alpha`` and interpolated there, as sklearn
    ``lars_path(..., alpha_min=alpha)`` / ``LassoLars(alpha, fit_intercept=False)``: alpha is the common
    absolute correlation of the active columns divided by N, so the ``lassolars`` result minimises the same
    objective as ``lasso``.  The active set is kept as a QR factorisation (classical Gram-Schmidt with
    re-orthogonalisation, Givens rotations when a column leaves), so no Gram matrix is formed.  Plain LAR
    keeps a column whose coefficient crosses zero (textbook LAR, as DLARS); sklearn's ``method='lar'``
    instead flips the sign of that column and pauses the next entry, so the two agree only up to the first
    zero crossing (``info['zero_crossings']``).  A column that enters (numerically) in the span of the active
    columns is skipped while the active set is unchanged (``info['degenerate_skipped']``).

``normalize=True`` (DLARS/DLASSO ``--normalize=y``): every column of the weighted A is centred (its mean over
all rows subtracted) and scaled to unit Euclidean norm, and wb is centred; the solver runs on that problem
and the coefficients are mapped back to the original columns, ``x_j = x'_j / ||wA_j - mean_j||``.  The
intercept this implies, ``c = mean(wb) - mean(wA) . x`` (in weighted units, i.e. row i is predicted as
``a_i . x + c / w_i``) is NOT part of the ChIMES model: it is reported in ``info['intercept']`` together with
``info['rmse_weighted_with_intercept']`` (the weighted RMSE of the centred fit, as DLARS's un-shifted
predictions ``Ax.txt`` give), while all ``rmse*`` fields and the BIC are those of the model ``A x`` without
intercept, which is what a parameter file built from x predicts.  Columns that are constant over all rows
(zero norm after centring) get x_j = 0.  The centred factor comes for free from the fit system, which keeps
a column of ones in front of A.

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
from scipy.linalg.blas import dtrmv
from scipy.linalg.lapack import dtpqrt

__all__ = ["ALGORITHMS", "ALIASES", "FitResult", "NONZERO_THRESHOLD", "predict", "solve"]

ALGORITHMS = ("svd", "ridge", "lasso", "lassolars", "lars")
ALIASES = {"dlasso": "lassolars", "dlars": "lars"}
#: chimes_lsq.py ``count_nonzero_vars`` threshold.
NONZERO_THRESHOLD = 1.0e-5
#: A column enters the LARS active set only if its component orthogonal to the active columns is larger than
#: this fraction of its norm.
LARS_DEGENERATE_TOL = 1.0e-10
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
            "rmse_by_class": {k: float(v) for k, v in self.rmse_by_class.items()},
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

    algorithm: svd | ridge | lasso | lassolars | lars (aliases dlasso -> lassolars, dlars -> lars);
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

    T = system._triangle(None, weighted=True, centred=bool(normalize))
    R = np.array(T[:M, :M], order="F", copy=True)
    z = T[:M, M].copy()
    rho = float(T[M, M])
    info: dict = {"method": method}
    scale = np.ones(M)
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
        xs, extra = _solve_lars(R, z, rho, N, param, method == "lassolars", int(max_iter))
        nvars = None
    info.update(extra)
    x = xs / scale
    if normalize:
        x[const] = 0.0

    nonzero = int(np.count_nonzero(np.abs(x) > NONZERO_THRESHOLD))
    if nvars is None:
        nvars = nonzero
    info["nvars"] = int(nvars)
    z_u = system.residual_sumsq(x, weighted=False)
    z_w = system.residual_sumsq(x, weighted=True)
    with np.errstate(divide="ignore"):
        bic = N * math.log(z_u / N) + nvars * math.log(N) if z_u > 0 else -math.inf
        info["bic_weighted"] = N * math.log(z_w / N) + nvars * math.log(N) if z_w > 0 else -math.inf
    if normalize:
        mean_a = system.colsum(None, weighted=True) / N
        mean_b = system.bsum(None, weighted=True) / N
        info["intercept"] = float(mean_b - mean_a @ x)
        v = T @ np.append(x, -1.0)
        info["rmse_weighted_with_intercept"] = float(math.sqrt(float(v @ v) / N))
    return FitResult(
        x=x,
        algorithm=name,
        parameter=param,
        nonzero=nonzero,
        rmse=math.sqrt(z_u / N),
        rmse_weighted=math.sqrt(z_w / N),
        rmse_by_class=system.rmse(x),
        bic=bic,
        nrows=N,
        ncols=M,
        normalize=bool(normalize),
        info=info,
    )


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


# ----------------------------------------------------------------------------------------------------------
# LARS / LASSO-LARS
# ----------------------------------------------------------------------------------------------------------
@njit(cache=True)
def _qr_remove_column(U, Q, p, k):  # pragma: no cover - numba
    """Remove column p of the k-column factorisation X_A = Q[:, :k] U[:k, :k] (Givens rotations)."""
    for jj in range(p, k - 1):
        for i in range(jj + 2):
            U[i, jj] = U[i, jj + 1]
    for i in range(k):
        U[i, k - 1] = 0.0
    nrow = Q.shape[0]
    for i in range(p, k - 1):
        a = U[i, i]
        b = U[i + 1, i]
        r = math.hypot(a, b)
        if r == 0.0:
            continue
        cs = a / r
        sn = b / r
        for jj in range(i, k - 1):
            t1 = U[i, jj]
            t2 = U[i + 1, jj]
            U[i, jj] = cs * t1 + sn * t2
            U[i + 1, jj] = -sn * t1 + cs * t2
        U[i + 1, i] = 0.0
        for m in range(nrow):
            t1 = Q[m, i]
            t2 = Q[m, i + 1]
            Q[m, i] = cs * t1 + sn * t2
            Q[m, i + 1] = -sn * t1 + cs * t2
    for jj in range(k):
        U[k - 1, jj] = 0.0
    for m in range(nrow):
        Q[m, k - 1] = 0.0


@njit(cache=True)
def _normal_solve(U, k, s, y, w):  # pragma: no cover - numba
    """w = (U^T U)^{-1} s for the leading k x k block of the upper-triangular U (Fortran order); y = U^{-T} s."""
    for i in range(k):
        acc = s[i]
        for j in range(i):
            acc -= U[j, i] * y[j]
        y[i] = acc / U[i, i]
    for i in range(k):
        w[i] = y[i]
    for j in range(k - 1, -1, -1):
        w[j] /= U[j, j]
        wj = w[j]
        for i in range(j):
            w[i] -= U[i, j] * wj


def _solve_lars(R, z, rho, N, alpha_min, lasso, max_iter):
    """LARS (lasso=False) or LASSO-LARS path of min 1/(2N)||R x - z||^2 + alpha |x|_1 down to alpha_min.

    Each iteration adds the column that stopped the previous step (if any), computes the equiangular
    direction of the active set and steps until the next column reaches the common correlation C, the
    correlations reach zero (least-squares solution of the active set) or (lasso) a coefficient reaches zero.
    Ties at the start of a step (numerators within round-off of zero) give zero-length steps; the column just
    dropped may not re-enter at a zero-length step.
    """
    M = R.shape[0]
    x = np.zeros(M)
    U = np.zeros((M, M), order="F")
    Q = np.zeros((M, M), order="F")
    active: list[int] = []
    signs: list[float] = []
    is_active = np.zeros(M, dtype=bool)
    excluded = np.zeros(M, dtype=bool)
    R = np.asfortranarray(R)

    def rmul(v):  # R v
        return dtrmv(R, v)

    def rtmul(v):  # R^T v
        return dtrmv(R, v, trans=1)

    c = rtmul(z)
    prev_x = x.copy()
    prev_alpha = math.inf
    j_next = -1
    just_dropped = -1
    ls_reached = False
    n_iter = n_drops = n_cross = n_degen = 0
    converged = False
    tiny = np.finfo(float).tiny
    tie = 1.0e-12
    while True:
        k = len(active)
        if ls_reached:
            C = 0.0
        elif k:
            C = float(np.max(np.abs(c[active])))
        else:
            cand = ~excluded
            if not cand.any():
                C = 0.0
            else:
                absc = np.where(cand, np.abs(c), -1.0)
                j_next = int(np.argmax(absc))
                C = float(absc[j_next])
        alpha = C / N
        if alpha <= alpha_min:
            if n_iter > 0 and prev_alpha > alpha:
                ss = (prev_alpha - alpha_min) / (prev_alpha - alpha)
                x = prev_x + ss * (x - prev_x)
            alpha = alpha_min
            converged = True
            break
        if n_iter >= max_iter:
            break
        if j_next >= 0:
            col = R[:, j_next]
            cn = float(np.linalg.norm(col))
            if k:
                Qa = Q[:, :k]
                h = Qa.T @ col
                v = col - Qa @ h
                h2 = Qa.T @ v
                v -= Qa @ h2
                h += h2
            else:
                h = np.zeros(0)
                v = col.copy()
            dnorm = float(np.linalg.norm(v))
            if cn == 0.0 or dnorm <= LARS_DEGENERATE_TOL * cn:
                excluded[j_next] = True
                n_degen += 1
            else:
                U[:k, k] = h
                U[k, k] = dnorm
                Q[:, k] = v / dnorm
                active.append(j_next)
                signs.append(1.0 if c[j_next] > 0 else -1.0)
                is_active[j_next] = True
                k += 1
            j_next = -1
        if k == 0:
            if (~excluded).any():
                continue  # the candidate was degenerate: pick the next one
            break  # pragma: no cover - every column is zero
        s = np.asarray(signs)
        y = np.empty(k)
        w = np.empty(k)
        _normal_solve(U, k, s, y, w)
        AA = 1.0 / math.sqrt(float(s @ w))
        d_a = AA * w
        u = Q[:, :k] @ (AA * y)  # = R[:, active] d_a, since U d_a = AA y
        a = rtmul(u)
        gamma = C / AA
        j_star = -1
        cidx = np.flatnonzero(~is_active & ~excluded)
        if cidx.size:
            cc = c[cidx]
            aa = a[cidx]
            n1 = np.maximum(C - cc, 0.0)
            n2 = np.maximum(C + cc, 0.0)
            d1 = AA - aa
            d2 = AA + aa
            with np.errstate(divide="ignore", invalid="ignore"):
                g1 = np.where(d1 > 0.0, n1 / d1, math.inf)
                g2 = np.where(d2 > 0.0, n2 / d2, math.inf)
            if just_dropped >= 0:
                jd = np.flatnonzero(cidx == just_dropped)
                if jd.size:
                    if n1[jd[0]] <= tie * C:
                        g1[jd[0]] = math.inf
                    if n2[jd[0]] <= tie * C:
                        g2[jd[0]] = math.inf
            g = np.minimum(g1, g2)
            m = int(np.argmin(g))
            if g[m] < gamma:
                gamma = float(g[m])
                j_star = int(cidx[m])
        xa = x[active]
        with np.errstate(divide="ignore", invalid="ignore"):
            zc = -xa / d_a
        pos = np.flatnonzero(zc > tiny)
        p_drop = -1
        if pos.size:
            p = int(pos[np.argmin(zc[pos])])
            if zc[p] < gamma:
                if lasso:
                    gamma = float(zc[p])
                    p_drop = p
                else:
                    n_cross += 1
        prev_x = x.copy()
        prev_alpha = alpha
        x[active] = xa + gamma * d_a
        just_dropped = -1
        if p_drop >= 0:
            j_out = active[p_drop]
            x[j_out] = 0.0
            _qr_remove_column(U, Q, p_drop, k)
            del active[p_drop]
            del signs[p_drop]
            is_active[j_out] = False
            excluded[:] = False
            just_dropped = j_out
            n_drops += 1
        elif j_star >= 0:
            j_next = j_star
        else:
            ls_reached = True  # full step: least-squares solution on the active columns
        c = rtmul(z - rmul(x))
        n_iter += 1
    return x, {
        "iterations": int(n_iter),
        "converged": converged,
        "alpha_reached": float(alpha),
        "active": len(active),
        "drops": int(n_drops),
        "zero_crossings": int(n_cross),
        "degenerate_skipped": int(n_degen),
    }
