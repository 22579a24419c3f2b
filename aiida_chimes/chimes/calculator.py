"""ASE calculator for ChIMES potentials, over the numba evaluator (``evaluate.py``).

``ChimesCalculator("params.txt")`` gives energy / free_energy (eV), forces (eV/A), stress (ASE Voigt order,
eV/A^3, ASE sign: the negative of the ChIMES pressure-positive stress) and per-atom energies (eV).
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from .evaluate import DEFAULT_CHUNKS, ChimesModel, set_num_threads
from .params import ChimesParams, read_params
from .units import EV_PER_KCALMOL


class ChimesCalculator(Calculator):
    """ASE calculator for a ChIMES parameter file (path) or a :class:`ChimesParams` model."""

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]
    nolabel = True

    def __init__(self, params: str | ChimesParams | ChimesModel, num_threads: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(params, ChimesModel):
            self.model = params
        else:
            self.model = ChimesModel(params if isinstance(params, ChimesParams) else read_params(params))
        self.num_threads = num_threads
        #: Number of pairs inside the 2-body penalty region at the last evaluation (a sign of bad sampling).
        self.penalty_pairs = 0

    @property
    def params(self) -> ChimesParams:
        return self.model.params

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if self.num_threads is not None:
            set_num_threads(self.num_threads)
        pbc = atoms.pbc
        if pbc.any() and not pbc.all():
            raise ValueError("ChimesCalculator supports fully periodic or fully open systems, not mixed pbc "
                             f"{pbc.tolist()}")
        cell = atoms.cell.array if pbc.all() else None
        res = self.model.evaluate(atoms.get_chemical_symbols(), atoms.positions, cell, pbc=bool(pbc.all()),
                                  chunks=DEFAULT_CHUNKS)
        self.penalty_pairs = res.penalty_pairs
        energy = res.energy * EV_PER_KCALMOL
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["forces"] = res.forces * EV_PER_KCALMOL
        self.results["energies"] = res.energies * EV_PER_KCALMOL
        if res.stress is not None:
            s = -res.stress * EV_PER_KCALMOL  # ASE sign: negative of the pressure-positive ChIMES stress
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        elif "stress" in properties:
            raise ValueError("stress needs a periodic cell (atoms.pbc all True)")
