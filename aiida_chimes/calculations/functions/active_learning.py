"""Calcfunctions of the active-learning loop: starting structures, initial frames, candidate selection, errors.

Each one turns stored nodes into new nodes inside the provenance graph, so that every frame the reference method
labels and every number a convergence decision used can be traced back (DESIGN: science in ``chimes/``,
provenance here).
"""

from aiida import orm
from aiida.engine import calcfunction

from aiida_chimes.data.fit_system import FitSystemData
from aiida_chimes.data.potential import ChimesPotentialData
from aiida_chimes.data.training_set import TrainingSetData

__all__ = (
    "SELECTION_DEFAULTS",
    "generate_structure",
    "initial_frames",
    "prediction_errors",
    "select_candidates",
    "selection_settings",
)

#: Candidate selection settings and their defaults (``selection`` input of ``chimes.active_learning``).
SELECTION_DEFAULTS = {"method": "evenly", "n_select": 4, "include_penalty": True, "max_penalty": 4,
                      "threshold": None}
SELECTION_METHODS = ("evenly", "leverage")


def selection_settings(parameters: dict) -> dict:
    """Complete and check the selection settings; ValueError naming the key and the fix."""
    unknown = sorted(set(parameters) - set(SELECTION_DEFAULTS))
    if unknown:
        raise ValueError(f"selection: unknown key(s) {unknown}; allowed: {list(SELECTION_DEFAULTS)}")
    out = {**SELECTION_DEFAULTS, **parameters}
    if out["method"] not in SELECTION_METHODS:
        raise ValueError(f"selection: method must be one of {list(SELECTION_METHODS)}, got {out['method']!r}")
    for key in ("n_select", "max_penalty"):
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"selection: {key} must be a non-negative integer (frames per state point), got "
                             f"{value!r}")
    if out["n_select"] == 0 and not out["include_penalty"]:
        raise ValueError("selection: n_select is 0 and include_penalty is false, so no frame would ever be "
                         "selected; set n_select >= 1")
    if out["threshold"] is not None and not isinstance(out["threshold"], (int, float)):
        raise ValueError(f"selection: threshold must be a number (leverage) or null, got {out['threshold']!r}")
    return out


@calcfunction
def generate_structure(state_point: orm.Dict, seed: orm.Int) -> orm.StructureData:
    """A random periodic starting structure of a state point's ``composition`` at its ``density`` (g/cm^3) or
    ``cell``, no two atoms closer than ``min_distance`` (default 1.0 A)."""
    from aiida_chimes.chimes.structures import random_structure

    point = state_point.get_dict()
    atoms = random_structure(point["composition"], density=point.get("density"), cell=point.get("cell"),
                             seed=seed.value, min_distance=point.get("min_distance", 1.0))
    return orm.StructureData(ase=atoms)


@calcfunction
def initial_frames(structure: orm.StructureData, parameters: orm.Dict) -> TrainingSetData:
    """Unlabelled frames for a first fit: ``n_frames`` rattled (``rattle`` A) and strained copies of a structure."""
    from aiida_chimes.chimes.structures import rattled_frames

    p = parameters.get_dict()
    frames = rattled_frames(structure.get_ase(), int(p.get("n_frames", 8)), rattle=float(p.get("rattle", 0.1)),
                            strain=float(p.get("strain", 0.02)), seed=int(p.get("seed", 0)),
                            min_distance=p.get("min_distance"))
    return TrainingSetData(frames)


@calcfunction
def select_candidates(trajectory: TrainingSetData, parameters: orm.Dict, settings: orm.Dict | None = None,
                      fit_system: FitSystemData | None = None):
    """Frames of an MD trajectory to label next (``candidates``) and why each was chosen (``report``).

    ``evenly``: ``n_select`` evenly spaced frames plus up to ``max_penalty`` frames that entered the penalty
    region; ``leverage``: the ``n_select`` frames of highest leverage against ``fit_system`` (built with
    ``settings``) plus the penalty frames.  Candidate tags gain ``source_index`` and ``selected_because``.
    """
    import numpy as np

    from aiida_chimes.chimes import selection

    p = selection_settings(parameters.get_dict())
    frames = trajectory.get_frameset()
    scores = None
    if p["method"] == "evenly":
        indices, reasons = selection.select_evenly(frames, p["n_select"], p["include_penalty"], p["max_penalty"])
    else:
        if settings is None or fit_system is None:
            raise ValueError("selection method 'leverage' needs the fit settings and the current fit system")
        scores = selection.leverage_scores(frames, settings.get_dict(), fit_system.get_fit_system())
        chosen = selection.select_by_leverage(scores, p["n_select"], p["threshold"])
        reasons = {int(i): f"leverage {scores[i]:.3g}" for i in chosen}
        if p["include_penalty"]:
            _, pen = selection.select_evenly(frames, 0, True, p["max_penalty"])
            for i in pen:
                reasons[int(i)] = f"{reasons[int(i)]}, penalty region" if int(i) in reasons else "penalty region"
        indices = np.array(sorted(reasons), dtype=np.int64)
    subset = frames.subset([int(i) for i in indices])
    subset.tags = [{**t, "source_index": int(i), "selected_because": reasons[int(i)]}
                   for t, i in zip(subset.tags, indices, strict=True)]
    report = {"method": p["method"], "n_frames": len(frames), "selected": [int(i) for i in indices],
              "reasons": [reasons[int(i)] for i in indices],
              "penalty_frames": int(len(selection.penalty_frames(frames)))}
    if scores is not None:
        report["leverage"] = {"max": float(np.max(scores)) if len(scores) else None,
                              "median": float(np.median(scores)) if len(scores) else None,
                              "selected": [float(scores[i]) for i in indices]}
    return {"candidates": TrainingSetData(subset), "report": orm.Dict(report)}


@calcfunction
def prediction_errors(training_set: TrainingSetData, potential: ChimesPotentialData) -> orm.Dict:
    """Errors of a potential on labelled frames: force RMSE/MAE/max (eV/A), energy RMSE (eV/atom), stress (GPa)."""
    from aiida_chimes.chimes.errors import prediction_errors as errors

    return orm.Dict(errors(training_set.get_frameset(), potential.get_params()))
