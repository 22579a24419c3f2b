"""``chimes-solve``: regression on a ChIMES fit system; writes ``params.txt`` and fit statistics.

Reads either the compact system written by ``chimes-lsq`` (``--system``; ``fit_system.npz`` by default when the
folder holds no interop A) or the chimes_lsq interop files (``--A A.txt|A.npy --b b.txt --header params.header
--map ff_groups.map``; the default when ``A.npy`` or ``A.txt`` is in the folder, as ``chimes_lsq.py``), with
the flags and outputs of the official ``chimes_lsq.py``: ``params.txt``, ``force.txt`` (A x, one value per
row, only when A is available) and, with ``--test_suite true``, ``test_suite_params.txt``.  ``fit_stats.json``
holds RMSE (and MAE when A is available) per class, unweighted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys

import numpy as np

_STRESS = re.compile(r"s_[xyz]{2}$")


def _bool(text: str) -> bool:
    t = str(text).strip().lower()
    if t in ("true", "t", "yes", "y", "1"):
        return True
    if t in ("false", "f", "no", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="chimes-solve", description=__doc__.splitlines()[0])
    ap.add_argument("--system", default=None, help="compact fit system from chimes-lsq (default: fit_system.npz "
                                                   "when the folder holds no A.npy / A.txt and --A is not given)")
    ap.add_argument("--A", default=None, help="design matrix (A.npy, A.txt or A.txt.gz; interop mode)")
    ap.add_argument("--b", default="b.txt", help="right-hand side (interop mode; default %(default)s)")
    ap.add_argument("--header", default="params.header", help="params.header (interop mode)")
    ap.add_argument("--map", default="ff_groups.map", help="ff_groups.map (interop mode)")
    ap.add_argument("--labels", default="b-labeled.txt", help="row labels giving the class of each row "
                                                               "(interop mode; all rows are forces if absent)")
    ap.add_argument("--natoms", default="natoms.txt", help="atoms per row (interop mode, optional)")
    ap.add_argument("--weights", default=None, help="one weight per row (chimes_lsq.py --weights; interop mode)")
    ap.add_argument("--algorithm", default="svd",
                    help="svd | ridge | ridgecv | lasso | lassolars | lars | dlasso | dlars (ridgecv: interop mode)")
    ap.add_argument("--folds", type=int, default=4, help="ridgecv: contiguous row folds of the cross-validation "
                                                         "(chimes_lsq.py --folds; default %(default)s)")
    ap.add_argument("--eps", type=float, default=1.0e-5, help="relative singular-value cutoff for svd")
    ap.add_argument("--alpha", type=float, default=1.0e-4, help="regularisation for ridge/lasso/lars")
    ap.add_argument("--normalize", type=_bool, default=False, help="centre and unit-scale columns (DLARS style)")
    ap.add_argument("--test_suite", type=_bool, default=False, help="also write test_suite_params.txt")
    ap.add_argument("--output", default="params.txt", help="parameter file to write (default %(default)s)")
    ap.add_argument("--stats", default="fit_stats.json", help="fit statistics JSON (default %(default)s)")
    return ap


def _classes_from_labels(labels) -> np.ndarray:
    """Row classes from b-labeled.txt labels: '<flag>+1' energy, '<flag>s_xy' stress, anything else force."""
    out = np.zeros(len(labels), dtype=np.int8)
    for i, lab in enumerate(labels):
        if lab.endswith("+1"):
            out[i] = 1
        elif _STRESS.search(lab):
            out[i] = 2
    return out


def _ridgecv(system, A, b, classes, w, natoms, folds, source):
    """chimes_lsq.py ``ridgecv``: ridge with the alpha of RIDGECV_ALPHAS that K-fold cross-validation over
    contiguous row blocks prefers (rows weighted when --weights is given; chimes_lsq.py ignores weights here)."""
    from aiida_chimes.chimes.fit_system import FitSystem
    from aiida_chimes.chimes.solvers import RIDGECV_ALPHAS, kfold_bounds, ridge_cv_alpha, solve

    if A is None:
        raise ValueError(f"ridgecv needs the rows in their order (its folds are contiguous row blocks, as in "
                         f"chimes_lsq.py), which the compact system {source} no longer holds: run chimes-solve "
                         "where chimes-lsq wrote its interop files (A.npy), or pass --A")
    fold_systems = []
    for start, stop in kfold_bounds(len(b), folds):
        fs = FitSystem(A.shape[1])
        rows = slice(start, stop)
        fs.add_rows(A[rows], b[rows], classes[rows], weights=None if w is None else w[rows],
                    natoms=None if natoms is None else natoms[rows])
        fold_systems.append(fs)
    alpha, scores = ridge_cv_alpha(fold_systems)
    result = solve(system, "ridge", alpha=alpha)
    result.algorithm = "ridgecv"
    result.info["cv_folds"] = len(fold_systems)
    means = scores.mean(axis=1)
    result.info["cv_mean_r2"] = {f"{a:.1e}": float(m) for a, m in zip(RIDGECV_ALPHAS, means, strict=True)}
    return result


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from aiida_chimes.chimes.fit_system import CLASSES, FitSystem
    from aiida_chimes.chimes.io import lsq_files as lf
    from aiida_chimes.chimes.solvers import solve

    A = b = classes = natoms = w = None
    try:
        # an explicit --system, or no interop A in the folder: the compact system; otherwise (as chimes_lsq.py) A
        a_path = args.A
        if a_path is None and args.system is None:
            a_path = next((f for f in ("A.npy", "A.txt", "A.txt.gz") if os.path.exists(f)), None)
        if a_path is None and (args.system or os.path.exists("fit_system.npz")):
            path = args.system or "fit_system.npz"
            system = FitSystem.load(path)
            meta = system.metadata
            skeleton = lf.parse_params_header(meta["params_header"], meta["ff_groups_map"], filename=path)
            source = path
        else:
            a_path = a_path or "A.txt"
            A = lf.read_A(a_path)
            b = lf.read_b_txt(args.b)
            if A.shape[0] != len(b):
                raise ValueError(f"{a_path} has {A.shape[0]} rows but {args.b} has {len(b)} values")
            skeleton = lf.read_params_header(args.header, args.map)
            labels = lf.read_b_labeled(args.labels)[0] if os.path.exists(args.labels) else None
            natoms = np.asarray(lf.read_natoms_txt(args.natoms)) if os.path.exists(args.natoms) else None
            # FITCOUL: chimes_lsq appends the charge-constraint rows after the frames, without label or atom count
            ncon = len(b) - len(labels) if labels is not None else 0
            if ncon < 0 or (ncon > 0 and not lf.fits_charges(skeleton)):
                raise ValueError(f"{args.labels} has {len(labels)} rows but {args.b} has {len(b)}")
            classes = np.concatenate([_classes_from_labels(labels if labels is not None else ["F"] * len(b)),
                                      np.full(ncon, 3, dtype=np.int8)])
            if natoms is not None:
                if len(natoms) not in (len(b), len(b) - ncon):
                    raise ValueError(f"{args.natoms} has {len(natoms)} rows but {args.b} has {len(b)}")
                natoms = np.concatenate([natoms, np.ones(len(b) - len(natoms), dtype=natoms.dtype)])
            w = np.loadtxt(args.weights, ndmin=1) if args.weights else None
            if w is not None and len(w) != len(b):
                raise ValueError(f"{args.weights} has {len(w)} weights but {args.b} has {len(b)} rows")
            system = FitSystem(A.shape[1])
            system.add_rows(A, b, classes, weights=w, natoms=natoms)
            source = a_path
        if args.algorithm.lower() == "ridgecv":
            result = _ridgecv(system, A, b, classes, w, natoms, args.folds, source)
        else:
            result = solve(system, args.algorithm, eps=args.eps, alpha=args.alpha, normalize=args.normalize)
        model = lf.fill_coefficients(skeleton, result.x)
    except (OSError, ValueError, KeyError) as exc:
        print(f"chimes-solve: error: {exc}", file=sys.stderr)
        return 2

    x = result.x
    comments = lf.solver_comment_lines(
        nvars=len(x), nequations=result.nrows, algorithm=result.algorithm, parameter=result.parameter,
        rmse=result.rmse, max_abs=float(np.abs(x).max()) if len(x) else 0.0,
        nonzero=int(result.info.get("nvars", result.nonzero)),  # chimes_lsq.py prints the SVD rank here
        bic=result.bic, date=datetime.date.today().isoformat(), weights_file=args.weights,
        eps_abs=result.info.get("eps_smax"),
    )
    with open(args.output, "w") as fh:
        fh.write(lf.format_solved_params(model, comments))
    stats = result.summary()
    stats["source"] = os.path.abspath(source)
    if A is not None:
        y = A @ x
        lf.write_force_txt("force.txt", y)
        stats["mae_by_class"] = {}
        for code, name in enumerate(CLASSES):
            sel = classes == code
            if sel.any():
                stats["mae_by_class"][name] = float(np.mean(np.abs(y[sel] - b[sel])))
        if natoms is not None and (classes == 1).any():
            sel = classes == 1
            stats["mae_by_class"]["energy_per_atom"] = float(np.mean(np.abs((y[sel] - b[sel]) / natoms[sel])))
    if args.test_suite:
        lf.write_test_suite_params("test_suite_params.txt", x)
    with open(args.stats, "w") as fh:
        json.dump(stats, fh, indent=2)
    print(f"chimes-solve: {result.algorithm} on {result.nrows} rows x {result.ncols} columns: RMSE "
          f"{result.rmse:.6g}, {result.nonzero} non-zero -> {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
