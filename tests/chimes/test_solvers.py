"""Solvers on the compact fit system against scikit-learn / numpy on the explicit weighted matrix."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.linear_model import Lasso, LassoLars, Ridge, lars_path

from aiida_chimes.chimes.fit_system import CLASSES, FitSystem
from aiida_chimes.chimes.solvers import ALGORITHMS, NONZERO_THRESHOLD, predict, solve

try:  # installed with scikit-learn
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None


@pytest.fixture(autouse=True)
def _single_blas_thread():
    """Small matrix products run much faster on one BLAS thread, above all on a busy machine."""
    if threadpool_limits is None:
        yield
    else:
        with threadpool_limits(limits=1, user_api="blas"):
            yield


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


class Problem:
    """Explicit rows (A, b, classes, w) and the fit system built from them in chunks."""

    def __init__(self, A, b, classes, w):
        self.A, self.b, self.classes, self.w = A, b, classes, w
        self.Aw = w[:, None] * A
        self.bw = w * b
        self.N, self.M = A.shape
        self.system = FitSystem(self.M, block_rows=257)
        for start in range(0, self.N, 301):
            sl = slice(start, start + 301)
            self.system.add_rows(A[sl], b[sl], classes[sl], w[sl])

    def normalized(self):
        """Explicitly centred, unit-norm weighted columns, centred b, and the column norms."""
        Ac = self.Aw - self.Aw.mean(axis=0)
        norms = np.linalg.norm(Ac, axis=0)
        return Ac / norms, self.bw - self.bw.mean(), norms

    def lasso_objective(self, x, alpha):
        return 0.5 / self.N * np.sum((self.Aw @ x - self.bw) ** 2) + alpha * np.abs(x).sum()


def _rows(rng, N, M):
    classes = rng.choice(3, size=N, p=[0.8, 0.1, 0.1])
    w = rng.uniform(0.3, 3.0, N)
    return classes, w


@pytest.fixture(scope="module")
def wellcond():
    rng = np.random.default_rng(11)
    N, M = 2000, 60
    A = rng.standard_normal((N, M)) * rng.uniform(0.5, 3.0, M) + rng.uniform(-0.5, 0.5, M)
    x = rng.standard_normal(M) * (rng.random(M) < 0.4)
    b = A @ x + 0.5 * rng.standard_normal(N) + 1.0
    return Problem(A, b, *_rows(rng, N, M))


@pytest.fixture(scope="module")
def correlated():
    """Strongly correlated columns: the LASSO path drops variables on the way."""
    rng = np.random.default_rng(0)
    N, M = 2000, 120
    A = rng.standard_normal((N, 20)) @ rng.standard_normal((20, M)) + 0.3 * rng.standard_normal((N, M))
    b = A @ rng.standard_normal(M) + 2.0 * rng.standard_normal(N)
    return Problem(A, b, *_rows(rng, N, M))


@pytest.fixture(scope="module")
def deficient():
    """Rank 50 of 80 columns, with an exact duplicate and a zero column."""
    rng = np.random.default_rng(2)
    N, M, r = 2000, 80, 50
    A = rng.standard_normal((N, r)) @ rng.standard_normal((r, M))
    A[:, 5] = A[:, 3]
    A[:, 7] = 0.0
    b = A @ rng.standard_normal(M) + rng.standard_normal(N)
    return Problem(A, b, *_rows(rng, N, M))


@pytest.fixture(scope="module")
def wide():
    """300 strongly correlated columns of very different scales: a LASSO-LARS path of some 250 steps."""
    rng = np.random.default_rng(6)
    N, M = 3000, 300
    A = rng.standard_normal((N, 30)) @ rng.standard_normal((30, M)) + 0.2 * rng.standard_normal((N, M))
    A *= rng.uniform(0.1, 10.0, M)
    b = A @ (rng.standard_normal(M) * (rng.random(M) < 0.5)) + 5.0 * rng.standard_normal(N)
    return Problem(A, b, *_rows(rng, N, M))


# ------------------------------------------------------------------------------------------------------------
# SVD and ridge
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["wellcond", "deficient"])
@pytest.mark.parametrize("eps", [1e-5, 1e-2])
def test_svd_matches_lstsq(request, name, eps):
    p = request.getfixturevalue(name)
    res = solve(p.system, "svd", eps=eps)
    ref = np.linalg.lstsq(p.Aw, p.bw, rcond=eps)[0]  # LAPACK gelsd: s <= rcond * smax dropped, as chimes_lsq
    assert rel(res.x, ref) < 1e-10
    s = np.linalg.svd(p.Aw, compute_uv=False)
    assert res.info["eps_smax"] == pytest.approx(eps * s[0], rel=1e-12)
    assert res.info["rank"] == int(np.sum(s > eps * s[0]))
    assert res.info["nvars"] == res.info["rank"]
    if name == "deficient":
        assert res.info["rank"] <= 50


@pytest.mark.parametrize(("name", "alpha"), [("wellcond", 3.0), ("deficient", 1e-2), ("correlated", 1e-3)])
def test_ridge_matches_sklearn(request, name, alpha):
    p = request.getfixturevalue(name)
    res = solve(p.system, "ridge", alpha=alpha)
    ref = Ridge(alpha=alpha, fit_intercept=False, solver="svd").fit(p.Aw, p.bw).coef_
    assert rel(res.x, ref) < 1e-8
    assert res.info["nvars"] == p.M


# ------------------------------------------------------------------------------------------------------------
# LASSO (coordinate descent) and LARS
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "alpha"), [("wellcond", 0.05), ("wellcond", 0.002), ("correlated", 0.1)])
def test_lasso_matches_sklearn(request, name, alpha):
    p = request.getfixturevalue(name)
    res = solve(p.system, "lasso", alpha=alpha)
    ref = Lasso(alpha=alpha, fit_intercept=False, tol=1e-12, max_iter=10**6).fit(p.Aw, p.bw).coef_
    assert res.info["converged"]
    assert rel(res.x, ref) < 1e-6
    assert res.info["objective"] == pytest.approx(p.lasso_objective(ref, alpha), rel=1e-9)


@pytest.mark.parametrize(
    ("name", "alpha"), [("wellcond", 0.05), ("wellcond", 0.002), ("correlated", 1.0), ("correlated", 0.01)]
)
def test_lassolars_matches_sklearn(request, name, alpha):
    p = request.getfixturevalue(name)
    res = solve(p.system, "lassolars", alpha=alpha)
    ref = LassoLars(alpha=alpha, fit_intercept=False, max_iter=100000).fit(p.Aw, p.bw).coef_
    assert res.info["converged"]
    assert rel(res.x, ref) < 1e-8
    if name == "correlated":
        assert res.info["drops"] > 0  # the LASSO modification was exercised
    # the LARS-LASSO point and coordinate descent solve the same problem
    cd = solve(p.system, "lasso", alpha=alpha, tol=1e-12)
    assert rel(cd.x, res.x) < 1e-6


def _kkt_violation(p, x, alpha):
    """Largest violation of the LASSO optimality conditions, relative to N alpha."""
    c = p.Aw.T @ (p.bw - p.Aw @ x) / (p.N * alpha)
    on = x != 0
    return max(np.max(np.abs(c)) - 1.0, np.max(np.abs(c[on] - np.sign(x[on]))) if on.any() else 0.0)


def test_lassolars_long_path_matches_sklearn(wide):
    """The Gram-matrix path (incremental Cholesky, drops by Givens downdates) over a few hundred steps."""
    p = wide
    alpha = 1e-5 * np.max(np.abs(p.Aw.T @ p.bw)) / p.N
    res = solve(p.system, "lassolars", alpha=alpha)
    ref = LassoLars(alpha=alpha, fit_intercept=False, max_iter=100000).fit(p.Aw, p.bw)
    assert res.info["converged"] and res.info["degenerate_skipped"] == 0
    assert res.info["iterations"] == ref.n_iter_ >= 200
    assert res.info["drops"] >= 20 and res.info["active"] == np.count_nonzero(ref.coef_) >= 150
    assert np.array_equal(res.x != 0, ref.coef_ != 0)
    assert rel(res.x, ref.coef_) < 1e-8
    assert _kkt_violation(p, res.x, alpha) < 1e-8
    # the same path with normalize=True against sklearn on the explicitly centred and scaled columns
    An, bc, norms = p.normalized()
    alpha_n = 3e-5 * np.max(np.abs(An.T @ bc)) / p.N
    res = solve(p.system, "lassolars", alpha=alpha_n, normalize=True)
    ref = LassoLars(alpha=alpha_n, fit_intercept=False, max_iter=100000).fit(An, bc)
    assert res.info["iterations"] == ref.n_iter_ >= 100
    assert rel(res.x, ref.coef_ / norms) < 1e-8


@pytest.mark.parametrize(("eps", "skipped"), [(0.0, True), (1e-7, True), (1e-3, False)])
def test_lars_skips_degenerate_columns(eps, skipped):
    """Column 1 is a1 = sqrt(2) a2 - a0 (+ eps times a unit vector orthogonal to all): once a0 and a2 are active
    it is next to enter; within rounding of the Gram matrix of their span (eps <= 1e-6) it is skipped."""
    from aiida_chimes.chimes.gram import GramRows
    from aiida_chimes.chimes.solvers import _solve_lars

    s = 1.0 / math.sqrt(2.0)
    G = np.array([[1.0, 0.0, s], [0.0, 1.0 + eps**2, s], [s, s, 1.0]])
    x, info = _solve_lars(GramRows.from_matrix(G, np.array([1.0, 0.6, 0.9])), 1.0, 0.0, False, 100)
    assert info["converged"]
    assert info["degenerate_skipped"] == int(skipped)
    assert info["active"] == (2 if skipped else 3)
    assert (x[1] == 0.0) == skipped


@pytest.mark.parametrize("alpha", [0.1, 0.003])
def test_lassolars_rank_deficient(deficient, alpha):
    p = deficient
    res = solve(p.system, "lassolars", alpha=alpha)
    assert res.info["converged"]
    assert _kkt_violation(p, res.x, alpha) < 1e-8  # an optimality certificate: no reference solver needed
    # the LASSO objective has one minimum value even when x is not unique: coordinate descent (slow on this
    # problem at small alpha) never goes below it and reaches it at the larger alpha
    cd = solve(p.system, "lasso", alpha=alpha)
    best = p.lasso_objective(res.x, alpha)
    assert cd.info["objective"] >= best * (1 - 1e-12)
    if alpha == 0.1:
        assert cd.info["objective"] == pytest.approx(best, rel=1e-10)
    assert res.x[7] == 0.0  # the zero column never enters


@pytest.mark.parametrize(("name", "alpha"), [("wellcond", 0.05), ("wellcond", 0.01), ("wellcond", 0.002)])
def test_lars_matches_sklearn_before_sign_changes(request, name, alpha):
    p = request.getfixturevalue(name)
    res = solve(p.system, "lars", alpha=alpha)
    # sklearn's method='lar' flips the sign of a column whose coefficient crosses zero (it then deviates from
    # textbook LAR, as used by DLARS); compare where no crossing happened
    assert res.info["zero_crossings"] == 0
    _, _, coefs = lars_path(p.Aw, p.bw, method="lar", alpha_min=alpha, max_iter=100000)
    assert rel(res.x, coefs[:, -1]) < 1e-8


@pytest.mark.parametrize("name", ["correlated", "deficient"])
def test_lars_equicorrelation(request, name):
    """Textbook LAR: active columns share |correlation| = N alpha, the others stay below."""
    p = request.getfixturevalue(name)
    alpha = 0.01
    res = solve(p.system, "lars", alpha=alpha)
    assert res.info["converged"] and res.info["zero_crossings"] > 0
    c = p.Aw.T @ (p.bw - p.Aw @ res.x) / (p.N * alpha)
    on = res.x != 0
    assert np.max(np.abs(np.abs(c[on]) - 1.0)) < 1e-8
    assert np.max(np.abs(c)) < 1.0 + 1e-8


# ------------------------------------------------------------------------------------------------------------
# normalize=True (DLARS --normalize=y)
# ------------------------------------------------------------------------------------------------------------
def test_normalize_matches_explicit(wellcond):
    p = wellcond
    An, bc, norms = p.normalized()
    alpha = 2e-3
    refs = {
        "svd": np.linalg.lstsq(An, bc, rcond=1e-5)[0],
        "ridge": Ridge(alpha=0.5, fit_intercept=False, solver="svd").fit(An, bc).coef_,
        "lasso": Lasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=10**6).fit(An, bc).coef_,
        "lassolars": LassoLars(alpha=alpha, fit_intercept=False, max_iter=100000).fit(An, bc).coef_,
        "lars": lars_path(An, bc, method="lar", alpha_min=alpha, max_iter=100000)[2][:, -1],
    }
    tols = {"svd": 1e-10, "ridge": 1e-8, "lasso": 1e-6, "lassolars": 1e-8, "lars": 1e-8}
    for alg, ref in refs.items():
        res = solve(p.system, alg, eps=1e-5, alpha=0.5 if alg == "ridge" else alpha, normalize=True)
        assert rel(res.x, ref / norms) < tols[alg], alg
        intercept = p.bw.mean() - p.Aw.mean(axis=0) @ res.x
        assert res.info["intercept"] == pytest.approx(intercept, rel=1e-8, abs=1e-10)
        with_icpt = np.sqrt(np.mean((p.Aw @ res.x + intercept - p.bw) ** 2))
        assert res.info["rmse_weighted_with_intercept"] == pytest.approx(with_icpt, rel=1e-9)
        # the reported errors are those of the model A x without intercept
        assert res.rmse == pytest.approx(np.sqrt(np.mean((p.A @ res.x - p.b) ** 2)), rel=1e-10)


def test_normalize_constant_column():
    rng = np.random.default_rng(4)
    N, M = 500, 8
    A = rng.standard_normal((N, M))
    A[:, 2] = 1.7
    b = A @ rng.standard_normal(M)
    system = FitSystem(M)
    system.add_rows(A, b, 0)
    for alg in ALGORITHMS:
        res = solve(system, alg, alpha=1e-3, normalize=True)
        assert res.x[2] == 0.0 and res.info["constant_columns"] == 1
        assert np.all(np.isfinite(res.x))


# ------------------------------------------------------------------------------------------------------------
# weights, reported numbers, API
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("normalize", [False, True])
def test_weights_honoured_by_every_algorithm(wellcond, normalize):
    p = wellcond
    scaled = FitSystem(p.M)
    scaled.add_rows(p.Aw, p.bw, p.classes)  # rows pre-multiplied by w, no weights given
    unweighted = FitSystem(p.M)
    unweighted.add_rows(p.A, p.b, p.classes)
    for alg in ALGORITHMS:
        kw = {"eps": 1e-5, "alpha": 0.01, "normalize": normalize}
        res = solve(p.system, alg, **kw)
        assert rel(res.x, solve(scaled, alg, **kw).x) < 1e-9, alg
        assert rel(res.x, solve(unweighted, alg, **kw).x) > 1e-3, alg


def test_reported_numbers(wellcond):
    p = wellcond
    for alg in ALGORITHMS:
        res = solve(p.system, alg, eps=1e-5, alpha=0.01)
        r = p.A @ res.x - p.b
        assert res.nrows == p.N and res.ncols == p.M
        assert res.rmse == pytest.approx(np.sqrt(np.mean(r**2)), rel=1e-10)
        assert res.rmse_weighted == pytest.approx(np.sqrt(np.mean((p.w * r) ** 2)), rel=1e-10)
        for c, name in enumerate(CLASSES):
            m = p.classes == c
            if not m.any():  # no rows of this class (charge constraints): reported as nan
                assert np.isnan(res.rmse_by_class[name])
                continue
            assert res.rmse_by_class[name] == pytest.approx(np.sqrt(np.mean(r[m] ** 2)), rel=1e-10)
        assert res.nonzero == int(np.sum(np.abs(res.x) > NONZERO_THRESHOLD))
        nvars = {"svd": res.info.get("rank"), "ridge": p.M}.get(alg, res.nonzero)
        assert res.info["nvars"] == nvars
        Z = float(np.sum(r**2))
        assert res.bic == pytest.approx(p.N * math.log(Z / p.N) + nvars * math.log(p.N), rel=1e-10)
        assert np.allclose(predict(p.A, res.x), p.A @ res.x)
        summary = res.summary()
        assert summary["algorithm"] == alg and "singular_values" not in summary["info"]


def test_aliases_and_errors(wellcond):
    p = wellcond
    # dlasso / dlars: the lassolars / lars path stopped as DLARS stops it: at the first breakpoint whose objective
    # 1/(2N)||w(Ax - b)||^2 + alpha |x|_1 (evaluated here on the explicit rows) exceeds the previous one
    alpha = 0.05 * np.abs(p.Aw.T @ p.bw).max() / p.N  # stops half-way along the path
    for name, method in (("dlasso", "lassolars"), ("DLARS", "lars")):
        a = solve(p.system, name, alpha=alpha)
        k = a.info["iterations"]
        assert a.algorithm == name.lower() and a.info["method"] == method and a.info["objective_stop"]
        objective = [p.lasso_objective(solve(p.system, name, alpha=0.0, max_iter=i).x, alpha) for i in range(k + 1)]
        assert objective[k] > objective[k - 1] + 1e-10
        assert all(objective[i] <= objective[i - 1] + 1e-10 for i in range(1, k))
        np.testing.assert_array_equal(a.x, solve(p.system, name, alpha=0.0, max_iter=k).x)
        # a breakpoint past the LASSO solution at alpha, not the interpolated point
        assert a.info["alpha_reached"] < alpha
        assert not np.allclose(a.x, solve(p.system, method, alpha=alpha).x, rtol=0, atol=1e-6)
    with pytest.raises(ValueError):
        solve(p.system, "owlqn")
    with pytest.raises(ValueError):
        solve(FitSystem(3), "svd")
    with pytest.raises(ValueError):
        solve(p.system, "ridge", alpha=-1.0)


def test_lars_stops_at_max_iter(correlated):
    res = solve(correlated.system, "lassolars", alpha=1e-4, max_iter=5)
    assert not res.info["converged"] and res.info["iterations"] == 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = solve(correlated.system, "lasso", alpha=1e-4, max_iter=3)
    assert not res.info["converged"] and res.info["iterations"] == 3


def test_gram_rows_kept_for_later_lars_solves(wellcond):
    """The Gram rows a LARS solve formed stay with the system (an alpha scan forms each row once), unchanged by the
    solves that use them, and are dropped when rows are added."""
    p = wellcond
    system = FitSystem(p.M)
    system.add_rows(p.A, p.b, p.classes, p.w)
    first = solve(system, "lassolars", alpha=0.01)
    rows = system._cache[("gram_rows", False)]
    formed = np.flatnonzero(rows.slot >= 0)
    G = rows.store[rows.slot[formed]].copy()
    for normalize in (False, True):
        for alpha in (0.03, 0.01):
            solve(system, "lassolars", alpha=alpha, normalize=normalize)
    assert system._cache[("gram_rows", False)] is rows
    np.testing.assert_array_equal(rows.store[rows.slot[formed]], G)
    np.testing.assert_array_equal(solve(system, "lassolars", alpha=0.01).x, first.x)
    half = len(p.b) // 2
    part = FitSystem(p.M)
    part.add_rows(p.A[:half], p.b[:half], p.classes[:half], p.w[:half])
    solve(part, "lars", alpha=0.01)
    part.add_rows(p.A[half:], p.b[half:], p.classes[half:], p.w[half:])
    assert ("gram_rows", False) not in part._cache
    np.testing.assert_allclose(
        solve(part, "lassolars", alpha=0.01).x, first.x, rtol=0, atol=1e-9 * np.abs(first.x).max()
    )
