"""ChIMES training data files: ``.xyzf`` frames and ``.temps`` electronic temperatures.

Format (chimes_lsq ``FRAME::READ_XYZF``, al_driver ``modify_FES.get_format``; shared/notes/chimes.md 3.3)::

    <natoms>
    [NON_ORTHO ax ay az bx by bz cx cy cz | Lx Ly Lz] [sxx syy szz [sxy sxz syz]] [E]
    <sym> x y z fx fy fz          (natoms lines)

Positions in Angstrom, forces in Hartree/Bohr, stress in GPa (pressure positive), energy in kcal/mol.
Frames convert to ASE Atoms with a single-point calculator in eV, eV/A and ASE stress (eV/A^3, tension
positive, Voigt xx yy zz yz xz xy).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from ..units import EV_PER_KCALMOL, GPA_PER_EV_A3, KCALMOL_A_PER_HARTREE_BOHR


class XyzfFormatError(ValueError):
    """A malformed .xyzf/.temps file: names the file, the line and what was expected."""

    def __init__(self, filename: str, lineno: int | None, message: str):
        self.filename, self.lineno, self.message = filename, lineno, message
        super().__init__(f"{filename}:{lineno}: {message}" if lineno else f"{filename}: {message}")


@dataclass
class XyzfFrame:
    """One frame in ChIMES units: forces kcal/mol/A, stress GPa (xx yy zz xy xz yz), energy kcal/mol."""

    symbols: list[str]
    positions: np.ndarray
    cell: np.ndarray
    forces: np.ndarray  # kcal/mol/A
    stress: np.ndarray | None = None  # GPa, 3 or 6 components, pressure positive
    energy: float | None = None  # kcal/mol
    non_ortho: bool = False

    def to_atoms(self) -> Atoms:
        atoms = Atoms(self.symbols, positions=self.positions, cell=self.cell, pbc=True)
        results = {"forces": self.forces * EV_PER_KCALMOL}
        if self.energy is not None:
            results["energy"] = self.energy * EV_PER_KCALMOL
            results["free_energy"] = results["energy"]
        if self.stress is not None and len(self.stress) == 6:
            s = -np.asarray(self.stress) / GPA_PER_EV_A3
            results["stress"] = np.array([s[0], s[1], s[2], s[5], s[4], s[3]])
        atoms.calc = SinglePointCalculator(atoms, **results)
        if self.stress is not None and len(self.stress) == 3:
            atoms.info["chimes_diagonal_stress_gpa"] = np.asarray(self.stress, dtype=float)
        return atoms

    @classmethod
    def from_atoms(cls, atoms: Atoms, stress: bool = True, energy: bool = True) -> XyzfFrame:
        calc = atoms.calc
        if calc is None or "forces" not in calc.results:
            raise ValueError("the Atoms object carries no forces: a .xyzf frame needs reference forces")
        forces = calc.results["forces"] / EV_PER_KCALMOL
        e = calc.results.get("energy") if energy else None
        s = None
        if stress and "stress" in calc.results:
            v = -np.asarray(calc.results["stress"]) * GPA_PER_EV_A3
            s = np.array([v[0], v[1], v[2], v[5], v[4], v[3]])
        cell = atoms.cell.array
        non_ortho = bool(np.any(np.abs(cell - np.diag(np.diag(cell))) > 0))
        return cls(atoms.get_chemical_symbols(), atoms.positions.copy(), cell.copy(), forces, s,
                   None if e is None else e / EV_PER_KCALMOL, non_ortho)


# layouts by number of comment tokens (after NON_ORTHO has been removed): (n_cell, n_stress, has_energy)
_ORTHO = {3: (3, 0, False), 4: (3, 0, True), 6: (3, 3, False), 7: (3, 3, True), 9: (3, 6, False),
          10: (3, 6, True)}
_NON_ORTHO = {9: (9, 0, False), 10: (9, 0, True), 12: (9, 3, False), 13: (9, 3, True), 15: (9, 6, False),
              16: (9, 6, True)}


def read_xyzf(path) -> list[XyzfFrame]:
    """All frames of an .xyzf file."""
    path = os.fspath(path)
    with open(path) as handle:
        lines = handle.read().splitlines()
    frames = []
    pos = 0
    while pos < len(lines):
        if not lines[pos].strip():
            pos += 1
            continue
        frames.append(_read_frame(lines, pos, path))
        pos += 2 + len(frames[-1].symbols)
    return frames


def _number(tok: str, path: str, lineno: int, what: str) -> float:
    try:
        return float(tok)
    except ValueError:
        raise XyzfFormatError(path, lineno, f"expected a number for {what}, found {tok!r}") from None


def _read_frame(lines: list[str], pos: int, path: str) -> XyzfFrame:
    try:
        natoms = int(lines[pos].split()[0])
    except (ValueError, IndexError):
        raise XyzfFormatError(path, pos + 1, f"expected the number of atoms, found {lines[pos].strip()!r}") from None
    if natoms < 1:
        raise XyzfFormatError(path, pos + 1, f"number of atoms must be positive, found {natoms}")
    if pos + 1 >= len(lines):
        raise XyzfFormatError(path, pos + 2, "missing the comment line with the cell")
    toks = lines[pos + 1].split()
    non_ortho = bool(toks) and toks[0] == "NON_ORTHO"
    if toks and toks[0] in ("NON-ORTHO", "NON_ORTHOGONAL"):
        raise XyzfFormatError(path, pos + 2, f"the keyword is spelled NON_ORTHO (with an underscore), found {toks[0]}")
    body = toks[1:] if non_ortho else toks
    layout = (_NON_ORTHO if non_ortho else _ORTHO).get(len(body))
    if layout is None:
        allowed = sorted(_NON_ORTHO if non_ortho else _ORTHO)
        raise XyzfFormatError(path, pos + 2, f"{len(body)} numbers on the cell line; expected one of {allowed} "
                              "(cell, optional 3 or 6 stresses in GPa, optional energy in kcal/mol)")
    ncell, nstress, has_e = layout
    vals = [_number(t, path, pos + 2, "the cell/stress/energy line") for t in body]
    cell = np.array(vals[:9]).reshape(3, 3) if ncell == 9 else np.diag(vals[:3])
    stress = np.array(vals[ncell:ncell + nstress]) if nstress else None
    energy = vals[-1] if has_e else None
    if pos + 2 + natoms > len(lines):
        raise XyzfFormatError(path, len(lines), f"frame starting at line {pos + 1} announces {natoms} atoms but "
                              f"the file ends after {len(lines) - pos - 2}")
    symbols = []
    data = np.empty((natoms, 6))
    for k in range(natoms):
        ln = pos + 3 + k
        t = lines[ln - 1].split()
        if len(t) < 7:
            raise XyzfFormatError(path, ln, f"expected 'symbol x y z fx fy fz' for atom {k + 1} of {natoms}, "
                                  f"found {lines[ln - 1].strip()!r}")
        symbols.append(t[0])
        data[k] = [_number(x, path, ln, "a coordinate or force") for x in t[1:7]]
    return XyzfFrame(symbols, data[:, :3], cell, data[:, 3:] * KCALMOL_A_PER_HARTREE_BOHR, stress, energy, non_ortho)


def write_xyzf(path, frames, mode: str = "w") -> None:
    """Write frames (XyzfFrame or ASE Atoms with a calculator) in the .xyzf format chimes_lsq reads."""
    with open(path, mode) as handle:
        for frame in frames:
            if isinstance(frame, Atoms):
                frame = XyzfFrame.from_atoms(frame)
            handle.write(f"{len(frame.symbols)}\n")
            if frame.non_ortho:
                head = ["NON_ORTHO"] + [repr(float(x)) for x in np.asarray(frame.cell).ravel()]
            else:
                head = [repr(float(x)) for x in np.diag(frame.cell)]
            if frame.stress is not None:
                head += [repr(float(x)) for x in frame.stress]
            if frame.energy is not None:
                head.append(repr(float(frame.energy)))
            handle.write(" ".join(head) + "\n")
            forces = np.asarray(frame.forces) / KCALMOL_A_PER_HARTREE_BOHR
            for s, r, f in zip(frame.symbols, frame.positions, forces, strict=True):
                handle.write(" ".join([s, *(repr(float(x)) for x in (*r, *f))]) + "\n")


def read_temps(path, nframes: int | None = None) -> np.ndarray:
    """Electronic temperatures (K), one per frame, from a ``.temps`` file."""
    path = os.fspath(path)
    values = []
    with open(path) as handle:
        for lineno, line in enumerate(handle, 1):
            if line.strip():
                values.append(_number(line.split()[0], path, lineno, "a temperature"))
    if nframes is not None and len(values) != nframes:
        raise XyzfFormatError(path, None, f"{len(values)} temperatures for {nframes} frames")
    return np.array(values)


def write_temps(path, temperatures) -> None:
    with open(path, "w") as handle:
        for t in temperatures:
            handle.write(f"{float(t)!r}\n")
