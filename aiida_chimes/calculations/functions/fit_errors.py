"""Calcfunctions that score fits: errors of coefficients on another fit system, and the choice within a scan.

Both work on the compact fit system (``shared/DESIGN.md`` section 4): the errors of any coefficient vector are
exact from its per-class factors, so no design matrix is rebuilt.  Errors are in the fit system's units (ChIMES
units, as the ``statistics`` of ``chimes.regression``).
"""

from __future__ import annotations

import math

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_chimes.data.fit_system import FitSystemData

__all__ = ("SELECTIONS", "errors_of", "select_fit", "validation_errors")

#: How a FitWorkChain chooses among its regularisation values.
SELECTIONS = ("bic", "validation")


def _finite_or_none(value):
    """JSON-safe float: NaN and infinities (no rows, perfect fits) become None."""
    value = float(value)
    return value if math.isfinite(value) else None


def errors_of(system, x) -> dict:
    """RMSE of ``x`` on a :class:`FitSystem`: unweighted per class (and per atom, total) and weighted over all rows.

    The keys mirror the regression ``statistics``: ``rmse``, ``rmse_weighted``, ``rmse_by_class``, plus ``nrows``.
    """
    rmse = system.rmse(x)
    nrows = system.nrows
    total = nrows["total"]
    weighted = math.sqrt(system.residual_sumsq(x, weighted=True) / total) if total else math.nan
    return {
        "rmse": _finite_or_none(rmse["total"]),
        "rmse_weighted": _finite_or_none(weighted),
        "rmse_by_class": {name: _finite_or_none(value) for name, value in rmse.items()},
        "nrows": {name: int(n) for name, n in nrows.items()},
    }


@calcfunction
def validation_errors(fit_system: FitSystemData, coefficients: orm.ArrayData) -> orm.Dict:
    """Errors of the coefficients (array ``x``) on the rows of ``fit_system`` (held-out frames), from its factors."""
    if "x" not in coefficients.get_arraynames():
        raise ValueError(f"coefficients: ArrayData<{coefficients.pk}> has no array 'x' (the chimes.regression "
                         f"output 'coefficients' has it); found {coefficients.get_arraynames()}")
    x = np.asarray(coefficients.get_array("x"), dtype=np.float64).reshape(-1)
    if x.shape[0] != fit_system.ncols:
        raise ValueError(f"coefficients: {x.shape[0]} values but fit_system has {fit_system.ncols} columns; both "
                         "must come from the same fit settings (basis)")
    errors = errors_of(fit_system.get_fit_system(), x)
    if fit_system.nframes is not None:
        errors["nframes"] = int(fit_system.nframes)
    return orm.Dict(errors)


def _indices(results: dict, prefix: str) -> list[int]:
    return sorted(int(key[len(prefix):]) for key in results if key.startswith(prefix))


@calcfunction
def select_fit(selection: orm.Str, **results) -> orm.Dict:
    """Summarise a regularisation scan and choose its fit: minimum BIC, or minimum weighted validation RMSE.

    ``results``: ``statistics_<i>`` (regression statistics) and, for 'validation', ``validation_<i>``
    (:func:`validation_errors`) of candidate i.  Ties go to the lowest i; NaN never wins.
    """
    mode = selection.value
    if mode not in SELECTIONS:
        raise ValueError(f"selection: must be one of {list(SELECTIONS)}, got {mode!r}")
    indices = _indices(results, "statistics_")
    if not indices:
        raise ValueError("select_fit needs at least one statistics_<i> input")
    candidates, scores = [], []
    for i in indices:
        stats = results[f"statistics_{i}"].get_dict()
        entry = {"index": i, "algorithm": stats.get("algorithm"), "parameter": stats.get("parameter"),
                 "bic": _finite_or_none(stats.get("bic", math.nan)), "rmse": stats.get("rmse"),
                 "rmse_by_class": stats.get("rmse_by_class"), "nonzero": stats.get("nonzero")}
        if mode == "bic":
            score = float(stats.get("bic", math.nan))
        else:
            key = f"validation_{i}"
            if key not in results:
                raise ValueError(f"selection 'validation' needs {key} for statistics_{i}")
            entry["validation"] = results[key].get_dict()
            score = entry["validation"].get("rmse_weighted")
            score = math.nan if score is None else float(score)
        candidates.append(entry)
        scores.append(math.inf if math.isnan(score) else score)
    best = int(np.argmin(scores))
    return orm.Dict({
        "selection": mode,
        "criterion": "bic" if mode == "bic" else "validation rmse_weighted",
        "chosen": indices[best],
        "chosen_parameter": candidates[best]["parameter"],
        "candidates": candidates,
    })
