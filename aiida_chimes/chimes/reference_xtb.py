"""Reference labels from GFN-xTB through tblite's ASE calculator: energy, forces and stress of frames.

The engine behind ``chimes-label``.  :class:`LabelSettings` validates the ``label.json`` dictionary;
:func:`label_frames` runs one fresh ``tblite.ase.TBLite`` single point per frame (so a label never depends on
the frames before it) and keeps only frames whose SCF converged; a frame tblite rejects (no SCF convergence
within ``max_iterations``, a bad geometry) is reported with tblite's message and left out.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

import numpy as np

from .frames import FrameSet

#: Methods tblite offers that we accept (canonical spelling; matched case-insensitively).
METHODS = ("GFN1-xTB", "GFN2-xTB")
#: Keys of ``label.json``.
LABEL_KEYS = ("method", "electronic_temperature", "accuracy", "max_iterations", "stress", "num_threads")
#: Exit codes of ``chimes-label``.
EXIT_OK, EXIT_INPUT, EXIT_NONE_CONVERGED = 0, 2, 4


class LabelInputError(ValueError):
    """Invalid labelling input; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class LabelSettings:
    """Validated ``label.json`` content; ``stress`` True means stress for every fully periodic frame."""

    method: str = "GFN1-xTB"
    electronic_temperature: float = 300.0  # K
    accuracy: float = 1.0
    max_iterations: int = 250
    stress: bool = True
    num_threads: int | None = None

    @classmethod
    def from_dict(cls, data, source: str = "label.json") -> LabelSettings:
        """Check every key of ``data`` (a parsed ``label.json``) and fill the defaults."""
        if not isinstance(data, dict):
            raise LabelInputError(f"{source}: expected a JSON object with keys {list(LABEL_KEYS)}")
        unknown = [k for k in data if k not in LABEL_KEYS]
        if unknown:
            raise LabelInputError(f"{source}: unknown key {unknown[0]!r} (allowed: {', '.join(LABEL_KEYS)})")

        def fail(key, what):
            raise LabelInputError(f"{source}: key '{key}' {what}")

        kwargs = {}
        if "method" in data:
            names = {m.lower(): m for m in METHODS}
            value = data["method"]
            if not isinstance(value, str) or value.lower() not in names:
                fail("method", f"must be one of {list(METHODS)}, got {value!r}")
            kwargs["method"] = names[value.lower()]
        for key, positive in (("electronic_temperature", False), ("accuracy", True)):
            if key in data:
                value = data[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                        or value < 0 or (positive and value == 0):
                    fail(key, f"must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
                kwargs[key] = float(value)
        for key in ("max_iterations", "num_threads"):
            if key in data:
                value = data[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    fail(key, f"must be an integer >= 1, got {value!r}")
                kwargs[key] = value
        if "stress" in data:
            if not isinstance(data["stress"], bool):
                fail("stress", f"must be true or false, got {data['stress']!r}")
            kwargs["stress"] = data["stress"]
        return cls(**kwargs)


class XtbFailure(RuntimeError):
    """tblite could not label a frame (SCF not converged, rejected geometry, non-finite result)."""


def xtb_calculator(settings: LabelSettings):
    """A fresh, silent ``tblite.ase.TBLite`` calculator for ``settings``."""
    from tblite.ase import TBLite

    return TBLite(method=settings.method, electronic_temperature=settings.electronic_temperature,
                  accuracy=settings.accuracy, max_iterations=settings.max_iterations, verbosity=0)


def label_atoms(atoms, settings: LabelSettings) -> dict:
    """Energy (eV), forces (eV/A) and, for fully periodic frames when asked, stress (eV/A^3 ASE Voigt/sign)."""
    from ase.calculators.calculator import CalculationFailed, InputError

    atoms = atoms.copy()
    atoms.calc = xtb_calculator(settings)
    want_stress = settings.stress and bool(atoms.pbc.all())
    try:
        out = {"energy": float(atoms.get_potential_energy()), "forces": np.array(atoms.get_forces())}
        if want_stress:
            out["stress"] = np.array(atoms.get_stress(voigt=True))
    except (CalculationFailed, InputError) as exc:
        raise XtbFailure(" ".join(str(exc).split()) or type(exc).__name__) from exc
    if not all(np.isfinite(v).all() for v in out.values()):
        raise XtbFailure("tblite returned non-finite energy, forces or stress")
    return out


def label_frames(frames: FrameSet, settings: LabelSettings, log=None, checkpoint=None):
    """Label every frame; return ``(labelled FrameSet of the converged frames, report dict)``.

    Tags of each kept frame are the input tags plus ``reference`` (the method) and ``source_index`` (its index in
    ``frames``, or the ``source_index`` the input tags already hold).  ``checkpoint(labelled, report)``, when
    given, is called about every 10 % of the frames.
    """
    log = sys.stdout if log is None else log
    t0 = time.perf_counter()
    labelled, failed = [], []
    n = len(frames)
    every = max(1, n // 10)

    def report() -> dict:
        wall = time.perf_counter() - t0
        done = len(labelled) + len(failed)
        return {"method": settings.method, "n_input": n, "n_converged": len(labelled), "failed": list(failed),
                "seconds_per_frame": wall / done if done else None, "wall_seconds": wall,
                "tblite_version": _tblite_version()}

    for i in range(n):
        atoms = frames.atoms(i)
        atoms.calc = None
        try:
            res = label_atoms(atoms, settings)
        except XtbFailure as exc:
            failed.append({"index": i, "message": str(exc)})
        else:
            tags = {**frames.tags[i], "reference": settings.method,
                    "source_index": frames.tags[i].get("source_index", i)}
            labelled.append(_frame(frames, i, res, settings, tags))
        if (i + 1) % every == 0 or i + 1 == n:
            print(f"chimes-label: {i + 1}/{n} frames, {len(labelled)} converged, {len(failed)} failed "
                  f"({time.perf_counter() - t0:.1f} s)", file=log, flush=True)
            if checkpoint is not None and i + 1 < n:
                checkpoint(FrameSet.concatenate(labelled), report())
    return FrameSet.concatenate(labelled), report()


def _frame(frames: FrameSet, i: int, res: dict, settings: LabelSettings, tags: dict) -> FrameSet:
    one = frames.subset([i])
    stress = res.get("stress", np.full(6, np.nan))
    return FrameSet(one.numbers, one.natoms, one.positions, one.cells, one.pbc, [res["energy"]], res["forces"],
                    stress, [settings.electronic_temperature], [tags])


def _tblite_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tblite")
    except PackageNotFoundError:  # pragma: no cover - tblite built from source without metadata
        return None


__all__ = ["EXIT_INPUT", "EXIT_NONE_CONVERGED", "EXIT_OK", "LABEL_KEYS", "METHODS", "LabelInputError",
           "LabelSettings", "XtbFailure", "label_atoms", "label_frames", "xtb_calculator"]
