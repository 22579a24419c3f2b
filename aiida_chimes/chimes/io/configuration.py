"""Configurations in the chimes_calculator test format: natoms; 9 cell numbers (rows a, b, c); ``sym x y z``."""

from __future__ import annotations

import os

import numpy as np
from ase import Atoms


def read_chimes_configuration(path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(symbols, positions (n, 3), cell (3, 3) with rows a, b, c) of a chimes_calculator configuration."""
    path = os.fspath(path)
    with open(path) as handle:
        lines = handle.read().splitlines()
    try:
        n = int(lines[0].split()[0])
        cell = np.array(lines[1].split()[:9], dtype=float).reshape(3, 3)
    except (IndexError, ValueError):
        raise ValueError(f"{path}: expected the number of atoms on line 1 and 9 cell numbers on line 2") from None
    symbols, positions = [], []
    for lineno in range(3, 3 + n):
        toks = lines[lineno - 1].split() if lineno <= len(lines) else []
        if len(toks) < 4:
            raise ValueError(f"{path}:{lineno}: expected 'symbol x y z' for atom {lineno - 2} of {n}")
        symbols.append(toks[0])
        positions.append([float(x) for x in toks[1:4]])
    return symbols, np.array(positions), cell


def read_chimes_configuration_atoms(path) -> Atoms:
    """The same configuration as periodic ASE Atoms."""
    symbols, positions, cell = read_chimes_configuration(path)
    return Atoms(symbols, positions=positions, cell=cell, pbc=True)
