"""Starting structures for active learning: random periodic boxes and rattled/strained copies of a structure.

``random_structure`` fills a periodic box (cubic from a density, or any given cell) with atoms at random
positions, keeping every minimum-image distance at least ``min_distance``.  ``rattled_frames`` makes unlabelled
copies of a structure with Gaussian displacements and optional random cell strains, as a :class:`FrameSet`
ready for labelling.  Both are deterministic for a given seed (``numpy.random.default_rng``).

Minimum-image distances in skewed cells are found among the 27 neighbouring images of the wrapped fractional
difference, which is exact for cells that are not extremely skewed (any reduced cell).
"""

from __future__ import annotations

import itertools

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers
from ase.units import _amu

from .frames import FrameSet

#: grams per atomic mass unit
_G_PER_AMU = _amu * 1.0e3
#: cm^3 per Angstrom^3
_CM3_PER_A3 = 1.0e-24
_SHIFTS = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float)  # (27, 3)


def _composition_numbers(composition: dict) -> tuple[list[str], np.ndarray]:
    """(symbols in dict order, atomic numbers of every atom, grouped by symbol) with clear errors."""
    if not isinstance(composition, dict) or not composition:
        raise ValueError("composition is empty; give atom counts per element, e.g. {'C': 32, 'N': 32}")
    symbols, numbers = [], []
    for sym, count in composition.items():
        if sym not in atomic_numbers or sym == "X":
            raise ValueError(f"composition: unknown chemical symbol {sym!r}; use element symbols such as 'C', 'N'")
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count <= 0:
            raise ValueError(f"composition: the count of {sym} must be a positive integer, got {count!r}; "
                             "drop elements with no atoms")
        symbols.append(sym)
        numbers += [atomic_numbers[sym]] * int(count)
    return symbols, np.array(numbers, dtype=np.int64)


def _as_cell(cell) -> np.ndarray:
    """A 3x3 cell (rows are lattice vectors) from 3 lengths or a 3x3 matrix; positive volume required."""
    arr = np.asarray(cell, dtype=float)
    if arr.shape == (3,):
        arr = np.diag(arr)
    if arr.shape != (3, 3) or not np.all(np.isfinite(arr)):
        raise ValueError(f"cell must be 3 lengths or a 3x3 matrix (rows a, b, c) in Angstrom, got shape {arr.shape}")
    if abs(np.linalg.det(arr)) < 1e-9:
        raise ValueError("cell has zero volume; give three independent lattice vectors")
    return arr


def _shortest_lattice_vector(cell: np.ndarray) -> float:
    """Shortest non-zero lattice vector among the 26 neighbouring images (an atom's distance to itself)."""
    vecs = _SHIFTS[np.any(_SHIFTS != 0, axis=1)] @ cell
    return float(np.sqrt((vecs**2).sum(axis=1).min()))


def _mic_distances(point: np.ndarray, others: np.ndarray, cell: np.ndarray, inv: np.ndarray, pbc) -> np.ndarray:
    """Minimum-image distances from ``point`` (3,) to each row of ``others`` (n, 3)."""
    d = others - point
    if not np.any(pbc):
        return np.sqrt((d**2).sum(axis=1))
    frac = d @ inv
    frac[:, pbc] -= np.round(frac[:, pbc])
    shifts = _SHIFTS[np.all(_SHIFTS[:, ~np.asarray(pbc)] == 0, axis=1)]
    cand = (frac[:, None, :] + shifts[None, :, :]) @ cell  # (n, s, 3)
    return np.sqrt((cand**2).sum(axis=2).min(axis=1))


def _min_distance(positions: np.ndarray, cell: np.ndarray, pbc) -> float:
    """Smallest minimum-image distance between two distinct atoms (inf for fewer than two atoms)."""
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    inv = np.linalg.inv(cell) if np.any(pbc) else np.eye(3)
    best = np.inf
    for i in range(len(positions) - 1):
        best = min(best, float(_mic_distances(positions[i], positions[i + 1:], cell, inv, pbc).min()))
    return best


def random_structure(composition: dict[str, int], *, density: float | None = None, cell=None, seed: int = 0,
                     min_distance: float = 1.0, max_attempts: int = 2000) -> Atoms:
    """Periodic box of ``composition`` with atoms at random positions, minimum-image distances >= min_distance.

    Give either ``density`` (g/cm^3: a cubic box of that density, masses from ``ase.data.atomic_masses``) or
    ``cell`` (3 lengths or a 3x3 matrix, rows = lattice vectors, Angstrom).  Atoms are inserted one by one at
    uniform random fractional positions; a position closer than ``min_distance`` to a placed atom is redrawn, up
    to ``max_attempts`` times per atom.  Symbols follow the order of ``composition``.  Deterministic for a seed.
    """
    _, numbers = _composition_numbers(composition)
    if (density is None) == (cell is None):
        raise ValueError("give exactly one of density (g/cm^3, cubic box) or cell (3 lengths or 3x3 matrix)")
    if density is not None:
        density = float(density)
        if not np.isfinite(density) or density <= 0.0:
            raise ValueError(f"density must be a positive number of g/cm^3, got {density}")
        mass_g = float(atomic_masses[numbers].sum()) * _G_PER_AMU
        length = (mass_g / density / _CM3_PER_A3) ** (1.0 / 3.0)
        box = np.eye(3) * length
    else:
        box = _as_cell(cell)
    min_distance = float(min_distance)
    if min_distance < 0.0:
        raise ValueError(f"min_distance must be >= 0, got {min_distance}")
    if int(max_attempts) < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    shortest = _shortest_lattice_vector(box)
    if shortest < min_distance:
        raise ValueError(f"the cell's shortest lattice vector ({shortest:.4g} A) is below min_distance "
                         f"({min_distance:.4g} A): every atom would sit too close to its own image; "
                         "use a larger cell (more atoms or a lower density) or lower min_distance")
    rng = np.random.default_rng(seed)
    inv = np.linalg.inv(box)
    pbc = np.ones(3, dtype=bool)
    positions = np.empty((len(numbers), 3))
    for k in range(len(numbers)):
        for _ in range(int(max_attempts)):
            trial = rng.random(3) @ box
            if k == 0 or _mic_distances(trial, positions[:k], box, inv, pbc).min() >= min_distance:
                positions[k] = trial
                break
        else:
            raise ValueError(f"could not place atom {k + 1} of {len(numbers)} at >= {min_distance:g} A from the "
                             f"others in {int(max_attempts)} attempts; lower the density or min_distance "
                             "(or raise max_attempts)")
    return Atoms(numbers=numbers, positions=positions, cell=box, pbc=True)


def _strain_matrix(rng, strain: float) -> np.ndarray:
    """I + eps with eps symmetric, its 6 independent components uniform in [-strain, strain]."""
    comps = rng.uniform(-strain, strain, size=6)
    eps = np.array([[comps[0], comps[5], comps[4]],
                    [comps[5], comps[1], comps[3]],
                    [comps[4], comps[3], comps[2]]])
    return np.eye(3) + eps


def rattled_frames(atoms: Atoms, n_frames: int, *, rattle: float = 0.05, strain: float = 0.0, seed: int = 0,
                   min_distance: float | None = None) -> FrameSet:
    """``n_frames`` unlabelled copies of ``atoms``, rattled (Gaussian, std ``rattle`` A) and optionally strained.

    With ``strain`` > 0 each copy's cell is deformed by a random symmetric strain (components uniform in
    [-strain, strain]), positions scaled with the cell, before the displacements are added.  With
    ``min_distance`` a copy whose smallest minimum-image distance is below it is redrawn (up to 100 times).
    Energies, forces and stresses are NaN (unlabelled).  Tags: origin, rattle, strain and the copy index.
    """
    n_frames = int(n_frames)
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    rattle, strain = float(rattle), float(strain)
    if rattle < 0.0 or strain < 0.0:
        raise ValueError(f"rattle and strain must be >= 0, got rattle={rattle}, strain={strain}")
    if len(atoms) == 0:
        raise ValueError("atoms has no atoms; give a structure to rattle")
    rng = np.random.default_rng(seed)
    base_cell = np.array(atoms.cell.array, dtype=float)
    base_pos = np.array(atoms.positions, dtype=float)
    pbc = np.array(atoms.pbc, dtype=bool)
    if np.any(pbc) and abs(np.linalg.det(base_cell)) < 1e-9:
        raise ValueError("periodic atoms need a cell with non-zero volume")
    copies, tags = [], []
    for i in range(n_frames):
        for _ in range(100):
            deform = _strain_matrix(rng, strain) if strain > 0.0 else np.eye(3)
            cell = base_cell @ deform
            positions = base_pos @ deform + rng.normal(0.0, rattle, size=base_pos.shape)
            if min_distance is None or _min_distance(positions, cell, pbc) >= min_distance:
                break
        else:
            raise ValueError(f"copy {i}: no draw in 100 kept every distance >= min_distance={min_distance:g} A; "
                             "lower rattle, strain or min_distance")
        copies.append(Atoms(numbers=atoms.numbers, positions=positions, cell=cell, pbc=pbc))
        tags.append({"origin": "rattled", "rattle": rattle, "strain": strain, "copy": i})
    return FrameSet.from_atoms(copies, tags=tags)


__all__ = ["random_structure", "rattled_frames"]
