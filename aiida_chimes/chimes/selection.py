"""Candidate selection for active learning: which MD frames to label next.

Two strategies (shared/DESIGN.md section 1, issue 5):

* ``evenly``: frames evenly spaced along each trajectory, plus every frame that entered the 2-body penalty
  region (what the official al_driver does: those frames show the model where it has no data).
* ``leverage``: the statistical leverage of each frame's force rows against the current fit system,
  h = a^T (A^T A)^+ a.  For a linear model this is the variance of the prediction in units of the noise
  variance: h << 1 inside the training data, h > 1 means extrapolation.  A frame scores the largest h of its
  rows; the highest-scoring frames are chosen.  Needs only the compact system (its triangular factor), never A.
"""

from __future__ import annotations

import numpy as np

from .fit_system import FitSystem
from .frames import FrameSet


def evenly_spaced(n_frames: int, n_select: int) -> np.ndarray:
    """``n_select`` indices spread evenly over ``range(n_frames)``, the last frame always included."""
    if n_frames <= 0 or n_select <= 0:
        return np.zeros(0, dtype=np.int64)
    if n_select >= n_frames:
        return np.arange(n_frames, dtype=np.int64)
    # the interval ends at the last frame: the latest, most decorrelated configuration is always taken
    picks = np.round(np.linspace(n_frames - 1, 0, n_select, endpoint=False)[::-1]).astype(np.int64)
    return np.unique(picks)


def penalty_frames(frames: FrameSet, key: str = "penalty_pairs", max_pairs: int = 0) -> np.ndarray:
    """Frames whose tag ``key`` (pairs inside the penalty region, written by chimes-md) exceeds ``max_pairs``."""
    return np.array([i for i, t in enumerate(frames.tags) if int(t.get(key, 0) or 0) > max_pairs], dtype=np.int64)


def select_evenly(frames: FrameSet, n_select: int, include_penalty: bool = True,
                  max_penalty: int | None = None) -> tuple[np.ndarray, dict]:
    """Evenly spaced frames plus penalty-region frames; returns (sorted indices, {index: reason})."""
    reasons = {int(i): "evenly spaced" for i in evenly_spaced(len(frames), n_select)}
    if include_penalty:
        pen = penalty_frames(frames)
        if max_penalty is not None and len(pen) > max_penalty:
            pen = pen[evenly_spaced(len(pen), max_penalty)]
        for i in pen:
            reasons[int(i)] = "penalty region" if int(i) not in reasons else "evenly spaced, penalty region"
    return np.array(sorted(reasons), dtype=np.int64), reasons


class LeverageScorer:
    """Leverage of design rows against a fit system: h = ||S^-1 V^T a||^2 from the SVD of the factor.

    Singular values below ``rcond`` times the largest are dropped (directions the data do not determine
    would give infinite leverage; they are also the directions SVD fits leave at zero).
    """

    def __init__(self, system: FitSystem, rcond: float = 1.0e-8, weighted: bool = False):
        F = np.asarray(system.factor(None, weighted))
        m = system.ncols
        # the factor of [1 | A | b]: its A columns carry A^T A exactly (A^T A = Fa^T Fa)
        fa = F[:, 1 : m + 1]
        _, s, vt = np.linalg.svd(fa, full_matrices=False)
        keep = s > rcond * (s[0] if len(s) and s[0] > 0 else 1.0)
        self.projector = (vt[keep] / s[keep][:, None]).T  # (M, r): a @ P gives S^-1 V^T a
        self.rank = int(keep.sum())
        self.ncols = m

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """Leverage of each row of ``rows`` (n, M)."""
        rows = np.asarray(rows, dtype=float)
        if rows.shape[-1] != self.ncols:
            raise ValueError(f"rows have {rows.shape[-1]} columns, the fit system {self.ncols}")
        z = rows @ self.projector
        return np.einsum("ij,ij->i", z, z)

    def frame_score(self, force_rows: np.ndarray) -> float:
        """A frame's score: the largest leverage of its force rows."""
        return float(self.rows(force_rows).max()) if len(force_rows) else 0.0


def select_by_leverage(scores, n_select: int, threshold: float | None = None) -> np.ndarray:
    """Indices of the ``n_select`` highest scores (ties by index), optionally only those above ``threshold``."""
    scores = np.asarray(scores, dtype=float)
    order = np.lexsort((np.arange(len(scores)), -scores))
    if threshold is not None:
        order = order[scores[order] > threshold]
    return np.sort(order[: max(n_select, 0)])


def leverage_scores(frames: FrameSet, settings: dict, system: FitSystem) -> np.ndarray:
    """Per frame the leverage score (largest h of its force rows) against ``system``, built with ``settings``.

    The force rows are chimes_lsq's (kcal/mol/A per coefficient), built from the frames' positions (Angstrom)
    and full 3x3 cells with the basis of the fit settings dict; labels are not needed.  Frames must be fully
    periodic (the design rows are periodic only).
    """
    from .design import DesignBuilder
    from .fit_basis import build_basis
    from .fit_settings import validate_settings

    setup = validate_settings(settings)
    builder = DesignBuilder(build_basis(setup), setup.fit_energy)
    if builder.ncols != system.ncols:
        raise ValueError(f"the fit system has {system.ncols} columns but the settings give {builder.ncols}: the fit "
                         "system was built with other settings; pass the settings it was built with")
    known = set(setup.types)
    scorer = LeverageScorer(system)
    scores = np.zeros(len(frames))
    for i in range(len(frames)):
        if not frames.pbc[i].all():
            raise ValueError(f"frame {i} is not fully periodic (pbc {frames.pbc[i].tolist()}); leverage scores need "
                             "periodic frames with a cell")
        symbols = frames.symbols(i)
        unknown = sorted(set(symbols) - known)
        if unknown:
            raise ValueError(f"frame {i} holds elements {unknown} that are not atom types of the fit settings "
                             f"({' '.join(setup.types)}); drop the frame or fit those elements too")
        dF, _, _ = builder.derivatives(symbols, frames.positions[frames.frame_slice(i)], frames.cells[i])
        scores[i] = scorer.frame_score(dF.reshape(3 * len(symbols), builder.ncols))
    return scores


__all__ = ["LeverageScorer", "evenly_spaced", "leverage_scores", "penalty_frames", "select_by_leverage",
           "select_evenly"]
