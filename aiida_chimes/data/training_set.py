"""``TrainingSetData``: labelled frames (a :class:`FrameSet`) stored as the repository file ``frames.npz``.

Units are those of ``frames.npz`` (eV, Angstrom, eV/A, ASE stress); conversion to ChIMES units happens only
when ``.xyzf`` files are written.  The file content is deterministic, so equal frame sets hash equal.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
from collections import Counter

import numpy as np
from aiida import orm
from aiida.common import exceptions

from aiida_chimes.chimes.frames import FrameSet, FrameSetError

__all__ = ("UNITS", "TrainingSetData")

#: Units of the stored observables (the ``units`` attribute).
UNITS = {"energy": "eV", "forces": "eV/Angstrom", "stress": "eV/Angstrom^3 (ASE Voigt, tension positive)",
         "electronic_temperature": "K"}
#: ``atoms.info`` key under which extxyz export keeps a diagonal-only stress (eV/A^3, ASE sign).
DIAGONAL_STRESS_KEY = "chimes_diagonal_stress"


def _tag_value(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _tags_summary(tags: list[dict]) -> dict:
    """For each tag key, how many frames carry each distinct value (non-string values as JSON text)."""
    counts: dict[str, Counter] = {}
    for tag in tags:
        for key, value in tag.items():
            counts.setdefault(str(key), Counter())[_tag_value(value)] += 1
    return {key: dict(sorted(c.items())) for key, c in sorted(counts.items())}


class TrainingSetData(orm.Data):
    """Frames with their reference energies, forces, stresses and electronic temperatures (eV units).

    Attributes: ``nframes``, ``natoms`` (total), ``natoms_per_frame`` ([min, max]), ``elements``,
    ``observables`` (frames carrying each observable), ``units``, ``tags_summary`` (``{key: {value: count}}``).
    """

    FILENAME = "frames.npz"

    def __init__(self, frameset: FrameSet | None = None, **kwargs):
        super().__init__(**kwargs)
        if frameset is not None:
            self.set_frameset(frameset)

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_frameset(cls, frameset: FrameSet, **kwargs) -> TrainingSetData:
        return cls(frameset, **kwargs)

    @classmethod
    def from_atoms(cls, atoms, electronic_temperature=None, tags=None, **kwargs) -> TrainingSetData:
        """From ASE Atoms whose calculators hold the observables (eV units); see :meth:`FrameSet.from_atoms`."""
        return cls(FrameSet.from_atoms(atoms, electronic_temperature=electronic_temperature, tags=tags), **kwargs)

    @classmethod
    def from_xyzf(cls, path, temps_path=None, tags=None, **kwargs) -> TrainingSetData:
        """From a ChIMES ``.xyzf`` file and optional ``.temps`` file (converted to eV units)."""
        return cls(FrameSet.from_xyzf(path, temps_path=temps_path, tags=tags), **kwargs)

    @classmethod
    def from_extxyz(cls, path, **kwargs) -> TrainingSetData:
        """From an extended XYZ file: observables from its calculator results, ``electronic_temperature``/``tags``
        from the frame info."""
        import ase.io

        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FrameSetError(f"{path}: no such file")
        try:
            frames = ase.io.read(path, index=":", format="extxyz")
        except Exception as exc:  # ASE raises many types (XYZError, ValueError, IndexError...) for malformed files
            raise FrameSetError(f"{path}: not a valid extended XYZ file ({type(exc).__name__}: {exc})") from exc
        for i, atoms in enumerate(frames):
            tags = atoms.info.get("tags", {})
            if not isinstance(tags, dict):
                raise FrameSetError(f"{path}: frame {i}: 'tags' must be a JSON dict, found {tags!r}")
        fs = FrameSet.from_atoms(frames)
        for i, atoms in enumerate(frames):
            diag = atoms.info.get(DIAGONAL_STRESS_KEY)
            if diag is not None and not np.isfinite(fs.stress[i, :3]).all():
                fs.stress[i] = [*np.asarray(diag, dtype=float).reshape(3), np.nan, np.nan, np.nan]
        return cls(fs, **kwargs)

    def set_frameset(self, frameset: FrameSet) -> None:
        """Store the frames as ``frames.npz`` and set the summary attributes (only before the node is stored)."""
        if not isinstance(frameset, FrameSet):
            raise TypeError(f"expected a FrameSet, got {type(frameset).__name__}")
        self.base.repository.put_object_from_bytes(frameset.to_npz_bytes(), self.FILENAME)
        natoms = frameset.natoms
        self.base.attributes.set_many({
            "nframes": len(frameset),
            "natoms": int(natoms.sum()),
            "natoms_per_frame": [int(natoms.min()), int(natoms.max())] if len(natoms) else None,
            "elements": frameset.elements,
            "observables": frameset.observables(),
            "units": dict(UNITS),
            "tags_summary": _tags_summary(frameset.tags),
        })

    def _validate(self):
        super()._validate()
        if self.FILENAME not in self.base.repository.list_object_names():
            raise exceptions.ValidationError(f"a TrainingSetData needs its {self.FILENAME}: pass a FrameSet")

    # -- attributes ---------------------------------------------------------------------------------------
    @property
    def nframes(self) -> int:
        return self.base.attributes.get("nframes")

    @property
    def natoms(self) -> int:
        return self.base.attributes.get("natoms")

    @property
    def natoms_per_frame(self) -> list[int] | None:
        return self.base.attributes.get("natoms_per_frame")

    @property
    def elements(self) -> list[str]:
        return self.base.attributes.get("elements")

    @property
    def observables(self) -> dict:
        return self.base.attributes.get("observables")

    @property
    def units(self) -> dict:
        return self.base.attributes.get("units")

    @property
    def tags_summary(self) -> dict:
        return self.base.attributes.get("tags_summary")

    # -- content ------------------------------------------------------------------------------------------
    def get_frameset(self) -> FrameSet:
        """A fresh copy of the stored frames."""
        content = self.base.repository.get_object_content(self.FILENAME, mode="rb")
        return FrameSet.load(io.BytesIO(content))

    def to_atoms(self) -> list:
        """The frames as ASE Atoms with single-point calculators (eV units)."""
        return self.get_frameset().to_atoms()

    def export_xyzf(self, path, temps_path=None) -> None:
        """Write a ChIMES ``.xyzf`` (and ``.temps`` when ``temps_path`` is given; every frame then needs one)."""
        fs = self.get_frameset()
        if temps_path is not None:
            missing = np.flatnonzero(~np.isfinite(fs.electronic_temperature))
            if len(missing):
                raise FrameSetError(f"frames {missing.tolist()[:10]} have no electronic temperature: cannot write "
                                    f"{temps_path} (leave out the .temps file)")
        fs.write_xyzf(path, temps_path=temps_path)

    def export_extxyz(self, path) -> None:
        """Write an extended XYZ file (positions and forces with ASE's 8 decimals; energy and stress exact)."""
        import ase.io

        fs = self.get_frameset()
        frames = fs.to_atoms()
        for i, atoms in enumerate(frames):
            s = fs.stress[i]
            if not np.isfinite(s).all() and np.isfinite(s[:3]).all():
                atoms.info[DIAGONAL_STRESS_KEY] = s[:3].copy()
        ase.io.write(pathlib.Path(path), frames, format="extxyz")
