"""Calcfunctions between training sets and aiida-vasp: frames -> StructureData, VASP ``misc`` -> TrainingSetData.

Both run as calcfunctions so that the labelled training set links back, through the VASP calculations that
made each ``misc`` node, to the StructureData of every frame and to the input training set.
"""

from __future__ import annotations

import re

import numpy as np
from aiida import orm
from aiida.engine import calcfunction
from ase.units import kB

from aiida_chimes.chimes.units import GPA_PER_EV_A3
from aiida_chimes.data.training_set import TrainingSetData

__all__ = ("collect_vasp_labels", "electronic_temperature", "frame_key", "frames_to_structures",
           "vasp_stress_to_ase")

#: ``misc['total_energies']`` key we label with (see :func:`collect_vasp_labels`); the parser must be asked
#: for it through ``settings['parser_settings']['energy_type']``.
ENERGY_KEY = "energy_free"
#: 1 kbar in eV/A^3 (0.1 GPa).
EV_A3_PER_KBAR = 0.1 / GPA_PER_EV_A3
_KEY = re.compile(r"^(misc|incar)_(\d+)$")


def frame_key(prefix: str, index: int) -> str:
    """Link label of frame ``index`` (``misc_0003``), also the call link label stem (``frame_0003``)."""
    return f"{prefix}_{index:04d}"


def vasp_stress_to_ase(stress_kbar) -> np.ndarray:
    """VASP 3x3 stress (kbar, positive = compressed) -> ASE Voigt (xx yy zz yz xz xy) in eV/A^3, tension positive.

    The same sign, factor and order as ASE's own vasprun.xml and OUTCAR readers (``-0.1 * GPa``, Voigt order
    ``[0, 4, 8, 5, 2, 1]`` of the flattened tensor).
    """
    s = np.asarray(stress_kbar, dtype=float)
    if s.shape != (3, 3):
        raise ValueError(f"VASP stress must be a 3x3 tensor, got shape {s.shape}")
    return -EV_A3_PER_KBAR * s.reshape(9)[[0, 4, 8, 5, 2, 1]]


def electronic_temperature(incar: dict) -> float:
    """Electronic temperature (K) of Fermi smearing (ISMEAR = -1: T = SIGMA / k_B), NaN for any other smearing.

    Other ISMEAR values (Gaussian, Methfessel-Paxton, tetrahedra) have no physical temperature.  VASP's default
    ISMEAR is 1 and its default SIGMA 0.2 eV; k_B is ASE's (``ase.units.kB``, eV/K).
    """
    p = {str(k).lower(): v for k, v in incar.items()}
    if int(p.get("ismear", 1)) != -1:
        return float("nan")
    return float(p.get("sigma", 0.2)) / kB


@calcfunction
def frames_to_structures(structures: TrainingSetData) -> dict:
    """One StructureData per frame (outputs ``frame_0000``, ...), so each VASP run links back to its frame."""
    fs = structures.get_frameset()
    if len(fs) == 0:
        raise ValueError("the input training set has no frames")
    return {frame_key("frame", i): orm.StructureData(ase=fs.atoms(i)) for i in range(len(fs))}


@calcfunction
def collect_vasp_labels(structures: TrainingSetData, **runs: orm.Dict) -> TrainingSetData:
    """Labelled frames (eV units) from the ``misc`` output of each successful VASP run.

    ``runs`` holds ``misc_<i>`` (the run's ``misc`` Dict) and ``incar_<i>`` (the run's INCAR ``parameters``) for
    each successful frame ``i`` of ``structures``; frames without a run are left out.  Geometry, atomic numbers
    and existing tags come from ``structures``; tags gain ``reference: VASP`` and ``source_index: i``.

    Energy: ``misc['total_energies']['energy_free']``, VASP's free energy TOTEN (``e_fr_energy``).  With
    smearing, VASP's forces and stress are derivatives of this Mermin free energy F = E - TS, not of
    ``energy_extrapolated`` (sigma -> 0) or ``energy_no_entropy``, so it is the energy consistent with the forces
    (ASE's VASP readers call it ``free_energy`` for the same reason).  With PSTRESS set, vasprun.xml's final
    ``e_fr_energy`` includes the PV term; it is removed as ASE does.  Forces: ``misc['forces']`` (eV/A, the
    structure's atom order, which aiida-vasp keeps).  Stress: ``misc['stress']`` (kbar, VASP sign) converted by
    :func:`vasp_stress_to_ase`; NaN when VASP did not compute it (ISIF = 0).  Electronic temperature:
    :func:`electronic_temperature` of the run's INCAR.
    """
    fs = structures.get_frameset()
    indices = {}
    for key, node in runs.items():
        match = _KEY.match(key)
        if match is None:
            raise ValueError(f"unexpected input {key!r}: pass misc_<index> and incar_<index> Dicts")
        if not isinstance(node, orm.Dict):
            raise TypeError(f"input {key!r} is a {type(node).__name__}, expected a Dict")
        indices.setdefault(int(match.group(2)), {})[match.group(1)] = node.get_dict()
    if not indices:
        raise ValueError("collect_vasp_labels needs at least one misc_<index> input (no VASP run succeeded?)")
    order = sorted(indices)
    for i in order:
        if i >= len(fs):
            raise ValueError(f"misc_{i:04d}: frame {i} does not exist ({len(fs)} input frames)")
        missing = {"misc", "incar"} - set(indices[i])
        if missing:
            raise ValueError(f"frame {i}: missing input(s) {sorted(f'{m}_{i:04d}' for m in missing)}")
    out = fs.subset(order)
    for j, i in enumerate(order):
        misc, incar = indices[i]["misc"], indices[i]["incar"]
        sl = out.frame_slice(j)
        energies = misc.get("total_energies", {})
        if ENERGY_KEY not in energies:
            raise ValueError(f"frame {i}: misc has no total_energies[{ENERGY_KEY!r}] (found {sorted(energies)}); "
                             f"add {ENERGY_KEY!r} to settings['parser_settings']['energy_type']")
        pstress = float({k.lower(): v for k, v in incar.items()}.get("pstress", 0.0))
        volume = abs(np.linalg.det(out.cells[j]))
        out.energy[j] = float(energies[ENERGY_KEY]) - pstress * EV_A3_PER_KBAR * volume
        forces = np.asarray(misc.get("forces", []), dtype=float)
        if forces.shape != (sl.stop - sl.start, 3):
            raise ValueError(f"frame {i}: misc forces have shape {forces.shape}, expected ({sl.stop - sl.start}, 3)")
        out.forces[sl] = forces
        out.stress[j] = vasp_stress_to_ase(misc["stress"]) if misc.get("stress") is not None else np.nan
        out.electronic_temperature[j] = electronic_temperature(incar)
        out.tags[j] = {**out.tags[j], "reference": "VASP", "source_index": i}
    return TrainingSetData(out)
