"""A set of labelled (or unlabelled) atomic frames as flat numpy arrays, in eV units.

This is the one exchange format between our console scripts (``chimes-md``, ``chimes-label``), the parsers
and ``TrainingSetData``: a ``frames.npz`` file with fixed array names, so identical frame sets give
identical files (and identical AiiDA hashes).  Units are ASE's: Angstrom, eV, eV/A, stress eV/A^3 in ASE
Voigt order (xx yy zz yz xz xy) and sign (tension positive).  Missing observables are NaN per frame.
Per-frame tags (state point, origin, ...) are JSON-able dicts.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers, chemical_symbols

from .io.xyzf import XyzfFrame, read_temps, read_xyzf, write_temps, write_xyzf
from .units import EV_PER_KCALMOL, GPA_PER_EV_A3

#: Array names of a ``frames.npz`` file, in the order they are written.
ARRAY_NAMES = ("numbers", "natoms", "positions", "cells", "pbc", "energy", "forces", "stress",
               "electronic_temperature", "tags_json")
FORMAT_VERSION = 1


class FrameSetError(ValueError):
    """Inconsistent frame data; the message names the frame and the fix."""


@dataclass
class FrameSet:
    """Frames with per-atom arrays concatenated (``natoms`` gives the split) and per-frame arrays."""

    numbers: np.ndarray  # (Ntot,) int32 atomic numbers
    natoms: np.ndarray  # (F,) int64
    positions: np.ndarray  # (Ntot, 3) Angstrom
    cells: np.ndarray  # (F, 3, 3) Angstrom, rows are cell vectors
    pbc: np.ndarray  # (F, 3) bool
    energy: np.ndarray  # (F,) eV, NaN when absent
    forces: np.ndarray  # (Ntot, 3) eV/A, NaN rows for frames without forces
    stress: np.ndarray  # (F, 6) eV/A^3 ASE Voigt/sign, NaN when absent
    electronic_temperature: np.ndarray  # (F,) K, NaN when absent
    tags: list[dict] = field(default_factory=list)  # one JSON-able dict per frame

    def __post_init__(self):
        self.numbers = np.ascontiguousarray(self.numbers, dtype=np.int32)
        self.natoms = np.ascontiguousarray(self.natoms, dtype=np.int64)
        nf, nt = len(self.natoms), int(self.natoms.sum())
        self.positions = np.ascontiguousarray(self.positions, dtype=float).reshape(nt, 3)
        self.cells = np.ascontiguousarray(self.cells, dtype=float).reshape(nf, 3, 3)
        self.pbc = np.ascontiguousarray(self.pbc, dtype=bool).reshape(nf, 3)
        self.energy = np.ascontiguousarray(self.energy, dtype=float).reshape(nf)
        self.forces = np.ascontiguousarray(self.forces, dtype=float).reshape(nt, 3)
        self.stress = np.ascontiguousarray(self.stress, dtype=float).reshape(nf, 6)
        self.electronic_temperature = np.ascontiguousarray(self.electronic_temperature, dtype=float).reshape(nf)
        if not self.tags:
            self.tags = [{} for _ in range(nf)]
        if len(self.numbers) != nt:
            raise FrameSetError(f"{len(self.numbers)} atomic numbers for natoms summing to {nt}")
        if len(self.tags) != nf:
            raise FrameSetError(f"{len(self.tags)} tag dicts for {nf} frames")
        if np.any(self.natoms < 1):
            raise FrameSetError(f"frame {int(np.argmin(self.natoms))} has no atoms")

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def empty(cls) -> FrameSet:
        return cls(np.zeros(0), np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3, 3)), np.zeros((0, 3)),
                   np.zeros(0), np.zeros((0, 3)), np.zeros((0, 6)), np.zeros(0), [])

    @classmethod
    def from_atoms(cls, frames, electronic_temperature=None, tags=None) -> FrameSet:
        """From ASE Atoms; energy/forces/stress come from ``atoms.calc.results`` when present (eV units).

        ``atoms.info['electronic_temperature']`` and ``atoms.info['tags']`` are used when the arguments are None.
        """
        frames = list(frames)
        nf = len(frames)
        if nf == 0:
            return cls.empty()
        natoms = np.array([len(a) for a in frames])
        numbers = np.concatenate([a.numbers for a in frames])
        positions = np.concatenate([a.positions for a in frames])
        cells = np.array([a.cell.array for a in frames])
        pbc = np.array([a.pbc for a in frames])
        energy = np.full(nf, np.nan)
        stress = np.full((nf, 6), np.nan)
        forces = np.full((int(natoms.sum()), 3), np.nan)
        temps = np.full(nf, np.nan)
        tag_list = []
        start = 0
        for i, a in enumerate(frames):
            results = a.calc.results if a.calc is not None else {}
            if "energy" in results:
                energy[i] = results["energy"]
            if "forces" in results:
                forces[start:start + len(a)] = results["forces"]
            if "stress" in results:
                s = np.asarray(results["stress"], dtype=float)
                if s.shape == (3, 3):
                    s = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
                stress[i] = s
            temps[i] = a.info.get("electronic_temperature", np.nan)
            tag_list.append(dict(a.info.get("tags", {})))
            start += len(a)
        if electronic_temperature is not None:
            temps = np.broadcast_to(np.asarray(electronic_temperature, dtype=float), (nf,)).copy()
        if tags is not None:
            tag_list = [dict(t) for t in tags]
        return cls(numbers, natoms, positions, cells, pbc, energy, forces, stress, temps, tag_list)

    @classmethod
    def from_xyzf(cls, path, temps_path=None, tags=None) -> FrameSet:
        """From a ChIMES ``.xyzf`` (and optional ``.temps``); converts kcal/mol, GPa to eV units."""
        xframes = read_xyzf(path)
        atoms = []
        for fr in xframes:
            a = fr.to_atoms()
            if fr.stress is not None and len(fr.stress) == 3:
                # diagonal-only stress: keep xx yy zz, off-diagonals unknown
                s = -np.asarray(fr.stress, dtype=float) / GPA_PER_EV_A3
                res = dict(a.calc.results)
                res["stress"] = np.array([s[0], s[1], s[2], np.nan, np.nan, np.nan])
                a.calc = SinglePointCalculator(a, **res)
            atoms.append(a)
        temps = read_temps(temps_path, len(xframes)) if temps_path is not None else None
        return cls.from_atoms(atoms, electronic_temperature=temps, tags=tags)

    # -- access -----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.natoms)

    @property
    def offsets(self) -> np.ndarray:
        """Index of each frame's first atom in the per-atom arrays (length F + 1)."""
        return np.concatenate([[0], np.cumsum(self.natoms)])

    @property
    def elements(self) -> list[str]:
        """Chemical symbols present, in order of atomic number."""
        return [chemical_symbols[z] for z in sorted(set(self.numbers.tolist()))]

    def symbols(self, i: int) -> list[str]:
        o = self.offsets
        return [chemical_symbols[z] for z in self.numbers[o[i]:o[i + 1]]]

    def frame_slice(self, i: int) -> slice:
        o = self.offsets
        return slice(int(o[i]), int(o[i + 1]))

    def has_forces(self) -> np.ndarray:
        """(F,) bool: frames whose forces are all finite."""
        finite = np.isfinite(self.forces).all(axis=1)
        return np.array([bool(finite[self.frame_slice(i)].all()) for i in range(len(self))], dtype=bool)

    def has_energy(self) -> np.ndarray:
        return np.isfinite(self.energy)

    def has_stress(self) -> np.ndarray:
        """(F,) bool: frames with at least the diagonal stress."""
        return np.isfinite(self.stress[:, :3]).all(axis=1)

    def observables(self) -> dict[str, int]:
        """How many frames carry each observable."""
        return {"energy": int(self.has_energy().sum()), "forces": int(self.has_forces().sum()),
                "stress": int(self.has_stress().sum()),
                "electronic_temperature": int(np.isfinite(self.electronic_temperature).sum())}

    def atoms(self, i: int) -> Atoms:
        """Frame ``i`` as ASE Atoms with a single-point calculator holding the observables present."""
        sl = self.frame_slice(i)
        a = Atoms(numbers=self.numbers[sl], positions=self.positions[sl], cell=self.cells[i], pbc=self.pbc[i])
        results = {}
        if np.isfinite(self.energy[i]):
            results["energy"] = results["free_energy"] = float(self.energy[i])
        f = self.forces[sl]
        if np.isfinite(f).all():
            results["forces"] = f.copy()
        if np.isfinite(self.stress[i]).all():
            results["stress"] = self.stress[i].copy()
        if results:
            a.calc = SinglePointCalculator(a, **results)
        if np.isfinite(self.electronic_temperature[i]):
            a.info["electronic_temperature"] = float(self.electronic_temperature[i])
        if self.tags[i]:
            a.info["tags"] = dict(self.tags[i])
        return a

    def to_atoms(self) -> list[Atoms]:
        return [self.atoms(i) for i in range(len(self))]

    # -- combination ------------------------------------------------------------------------------------
    def subset(self, indices) -> FrameSet:
        """The frames at ``indices`` (any order, repeats allowed)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise FrameSetError(f"frame index out of range for {len(self)} frames: {idx.tolist()}")
        idx = idx % max(len(self), 1)
        o = self.offsets
        atom_idx = np.concatenate([np.arange(o[i], o[i + 1]) for i in idx]) if len(idx) else np.zeros(0, int)
        return FrameSet(self.numbers[atom_idx], self.natoms[idx], self.positions[atom_idx], self.cells[idx],
                        self.pbc[idx], self.energy[idx], self.forces[atom_idx], self.stress[idx],
                        self.electronic_temperature[idx], [dict(self.tags[i]) for i in idx])

    @classmethod
    def concatenate(cls, sets) -> FrameSet:
        sets = [s for s in sets if len(s)]
        if not sets:
            return cls.empty()
        return cls(np.concatenate([s.numbers for s in sets]), np.concatenate([s.natoms for s in sets]),
                   np.concatenate([s.positions for s in sets]), np.concatenate([s.cells for s in sets]),
                   np.concatenate([s.pbc for s in sets]), np.concatenate([s.energy for s in sets]),
                   np.concatenate([s.forces for s in sets]), np.concatenate([s.stress for s in sets]),
                   np.concatenate([s.electronic_temperature for s in sets]),
                   [dict(t) for s in sets for t in s.tags])

    # -- files ------------------------------------------------------------------------------------------
    def to_npz_bytes(self) -> bytes:
        """Deterministic ``frames.npz`` content (no compression timestamps: ``np.savez`` stores fixed dates)."""
        buf = io.BytesIO()
        np.savez(buf, format_version=np.array(FORMAT_VERSION), numbers=self.numbers, natoms=self.natoms,
                 positions=self.positions, cells=self.cells, pbc=self.pbc, energy=self.energy, forces=self.forces,
                 stress=self.stress, electronic_temperature=self.electronic_temperature,
                 tags_json=np.array(json.dumps(self.tags, sort_keys=True)))
        return buf.getvalue()

    def save(self, path) -> None:
        with open(path, "wb") as handle:
            handle.write(self.to_npz_bytes())

    @classmethod
    def load(cls, source) -> FrameSet:
        """From a ``frames.npz`` path or binary file handle."""
        name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "<stream>")
        try:
            with np.load(source, allow_pickle=False) as z:
                missing = [k for k in ARRAY_NAMES if k not in z.files]
                if missing:
                    raise FrameSetError(f"{name}: not a frames.npz file (missing arrays {missing})")
                version = int(z["format_version"]) if "format_version" in z.files else 1
                if version > FORMAT_VERSION:
                    raise FrameSetError(f"{name}: frames format version {version} is newer than this "
                                        f"aiida-chimes understands ({FORMAT_VERSION}); upgrade aiida-chimes")
                data = {k: z[k] for k in ARRAY_NAMES}
        except (OSError, ValueError) as exc:
            if isinstance(exc, FrameSetError):
                raise
            raise FrameSetError(f"{name}: cannot read frames ({exc})") from exc
        tags = json.loads(str(data.pop("tags_json")))
        return cls(**data, tags=tags)

    def write_xyzf(self, path, temps_path=None) -> None:
        """ChIMES ``.xyzf`` (forces Hartree/Bohr, stress GPa, energy kcal/mol); every frame needs forces.

        Frames whose stress or energy is missing are written without them (chimes_lsq then needs FITSTRS /
        FITENER settings that do not ask for them).  ``temps_path`` writes the ``.temps`` file.
        """
        bad = np.flatnonzero(~self.has_forces())
        if len(bad):
            raise FrameSetError(f"frames {bad.tolist()[:10]} have no forces; .xyzf needs forces for every frame "
                                "(label them first or take a subset)")
        frames = []
        for i in range(len(self)):
            sl = self.frame_slice(i)
            cell = self.cells[i]
            non_ortho = bool(np.any(np.abs(cell - np.diag(np.diag(cell))) > 0))
            s = None
            if np.isfinite(self.stress[i]).all():
                v = -self.stress[i] * GPA_PER_EV_A3
                s = np.array([v[0], v[1], v[2], v[5], v[4], v[3]])
            elif np.isfinite(self.stress[i, :3]).all():
                s = -self.stress[i, :3] * GPA_PER_EV_A3
            e = float(self.energy[i]) / EV_PER_KCALMOL if np.isfinite(self.energy[i]) else None
            frames.append(XyzfFrame(self.symbols(i), self.positions[sl], cell, self.forces[sl] / EV_PER_KCALMOL,
                                    s, e, non_ortho))
        write_xyzf(path, frames)
        if temps_path is not None:
            write_temps(temps_path, self.electronic_temperature)


def symbols_to_numbers(symbols) -> np.ndarray:
    """Atomic numbers for chemical symbols (clear error for unknown ones)."""
    try:
        return np.array([atomic_numbers[s] for s in symbols], dtype=np.int32)
    except KeyError as exc:
        raise FrameSetError(f"unknown chemical symbol {exc.args[0]!r}") from None


__all__ = ["FrameSet", "FrameSetError", "symbols_to_numbers"]
