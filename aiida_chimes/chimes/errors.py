"""Prediction errors of a ChIMES potential on labelled frames, and parity plots.

Everything here is in the eV units of :class:`~aiida_chimes.chimes.frames.FrameSet` (eV, eV/A, eV/A^3 with the
ASE stress sign); stress errors are reported in GPa.  Missing labels (NaN) are skipped component by component
(forces, stresses) or frame by frame (energies).
"""

from __future__ import annotations

import os

import numpy as np
from ase.units import GPa

from .frames import FrameSet
from .params import ChimesParams


def predict(frames: FrameSet, params: ChimesParams) -> dict:
    """The potential's energy (F,), forces (Ntot, 3) and stress (F, 6) of every frame, eV units, ASE sign.

    Also returns ``natoms`` (F,), so that the dict can be passed to :func:`parity_plot` as it is.
    """
    missing = sorted(set(frames.elements) - set(params.symbols))
    if missing:
        raise ValueError(f"the frames hold elements {missing} that the potential {os.path.basename(str(params.source))}"
                         f" lacks (types: {' '.join(params.symbols)}); use a potential for every element of the "
                         "frames or drop those frames")
    from .hierarchy import tile_contribution

    # every element of every frame is in the potential: its "tile contribution" is the full evaluation
    out = tile_contribution(frames, params)
    out["natoms"] = frames.natoms.copy()
    return out


def _rmse(err: np.ndarray) -> float | None:
    return float(np.sqrt(np.mean(err**2))) if err.size else None


def prediction_errors(frames: FrameSet, params: ChimesParams, *, predicted: dict | None = None) -> dict:
    """JSON-able error summary of ``params`` on the labelled ``frames`` (NaN labels are skipped).

    Keys: ``nframes``, ``natoms`` (total), ``force_rmse``, ``force_mae``, ``force_max`` (eV/A, over every force
    component with a finite label; None when there is none), ``energy_rmse_per_atom`` (eV/atom, frames with a
    finite energy; None if none), ``stress_rmse_gpa`` (GPa, finite stress components; None if none) and
    ``frame_force_rmse`` (per frame, None for frames without finite force labels).  ``predicted``: the output of
    :func:`predict` for these frames, to avoid evaluating twice.
    """
    pred = predict(frames, params) if predicted is None else predicted
    ferr = np.asarray(pred["forces"], dtype=float) - frames.forces
    fmask = np.isfinite(ferr)
    fvals = ferr[fmask]
    per_frame = []
    for i in range(len(frames)):
        sl = frames.frame_slice(i)
        e = ferr[sl][fmask[sl]]
        per_frame.append(_rmse(e))
    eerr = (np.asarray(pred["energy"], dtype=float) - frames.energy) / frames.natoms
    eerr = eerr[np.isfinite(eerr)]
    serr = (np.asarray(pred["stress"], dtype=float) - frames.stress) / GPa
    serr = serr[np.isfinite(serr)]
    return {
        "nframes": len(frames),
        "natoms": int(frames.natoms.sum()),
        "force_rmse": _rmse(fvals),
        "force_mae": float(np.mean(np.abs(fvals))) if fvals.size else None,
        "force_max": float(np.max(np.abs(fvals))) if fvals.size else None,
        "energy_rmse_per_atom": _rmse(eerr),
        "stress_rmse_gpa": _rmse(serr),
        "frame_force_rmse": per_frame,
    }


def _parity_panel(ax, ref: np.ndarray, pred: np.ndarray, xlabel: str, ylabel: str, unit: str) -> None:
    lo = float(min(ref.min(), pred.min()))
    hi = float(max(ref.max(), pred.max()))
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1, label="y = x")
    rmse = float(np.sqrt(np.mean((pred - ref) ** 2)))
    ax.scatter(ref, pred, s=6, alpha=0.6, label=f"RMSE {rmse:.4g} {unit}")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper left")


def parity_plot(reference: dict, predicted: dict, path, title: str = ""):
    """PNG parity plot: all force components, and energy per atom when the reference has energies.

    ``reference`` and ``predicted`` hold ``energy`` (F,), ``forces`` (Ntot, 3) and ``natoms`` (F,) (taken from
    the other dict when one lacks it), in eV units.  Entries with a NaN on either side are left out.
    Returns ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    natoms = reference.get("natoms", predicted.get("natoms"))
    if natoms is None:
        raise ValueError("parity_plot needs 'natoms' (atoms per frame) in reference or predicted")
    natoms = np.asarray(natoms, dtype=float)
    fr = np.asarray(reference["forces"], dtype=float).ravel()
    fp = np.asarray(predicted["forces"], dtype=float).ravel()
    if fr.shape != fp.shape:
        raise ValueError(f"reference and predicted forces differ in shape: {fr.shape} vs {fp.shape}")
    keep = np.isfinite(fr) & np.isfinite(fp)
    panels = []
    if keep.any():
        panels.append((fr[keep], fp[keep], "reference force (eV/A)", "predicted force (eV/A)", "eV/A"))
    er = reference.get("energy")
    ep = predicted.get("energy")
    if er is not None and ep is not None:
        er = np.asarray(er, dtype=float) / natoms
        ep = np.asarray(ep, dtype=float) / natoms
        ekeep = np.isfinite(er) & np.isfinite(ep)
        if ekeep.any():
            panels.append((er[ekeep], ep[ekeep], "reference energy (eV/atom)", "predicted energy (eV/atom)",
                           "eV/atom"))
    if not panels:
        raise ValueError("nothing to plot: no finite force or energy pairs in reference and predicted")
    # an Agg canvas of its own: no pyplot state, no change of the global backend
    fig = Figure(figsize=(5.0 * len(panels), 5.0))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        _parity_panel(ax, *panel)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    return path


__all__ = ["parity_plot", "predict", "prediction_errors"]
