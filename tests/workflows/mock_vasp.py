"""Mock VASP for tests: reads POSCAR and INCAR, evaluates ASE's EMT, writes what aiida-vasp 5.1's parser reads.

Outputs (in the working directory): ``vasprun.xml``, ``OUTCAR``, ``CONTCAR`` and the stdout that VaspCalculation
saves as ``vasp_output``.  Numbers follow VASP's conventions: forces eV/A, stress kbar with VASP's sign
(positive = compressed, i.e. minus ASE's stress), printed with VASP's 8 decimals.  The final ``e_fr_energy``
is the EMT energy (plus PSTRESS * V, as VASP adds), ``e_wo_entrp`` and ``e_0_energy`` differ from it by a made-up
entropy term, so a reader that picks the wrong energy key is caught.

Failures (VASP crash: stdout message, exit status 1, no output files): INCAR ``SYSTEM`` containing
``mock-fail``, or two atoms closer than ``MIN_DISTANCE`` (overlapping atoms).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

MIN_DISTANCE = 0.5  # Angstrom
VERSION = "6.4.2"
NSCF = 6  # electronic steps written per run (converged when < NELM)


def read_incar(path="INCAR") -> dict:
    """INCAR tags (upper-case keys, values as text); comments after ``!`` or ``#`` dropped."""
    tags = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("!")[0].split("#")[0]
        for item in line.split(";"):
            if "=" in item:
                key, value = item.split("=", 1)
                tags[key.strip().upper()] = value.strip()
    return tags


def emt_results(atoms):
    """Energy (eV), forces (eV/A) and ASE Voigt stress (eV/A^3) of EMT."""
    from ase.calculators.emt import EMT

    atoms.calc = EMT()
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()


def ase_to_vasp_stress(voigt) -> np.ndarray:
    """ASE Voigt stress (eV/A^3, tension positive) -> VASP 3x3 stress in kbar (compression positive)."""
    from ase.units import GPa

    xx, yy, zz, yz, xz, xy = voigt
    full = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    return -full / (0.1 * GPa)


def _v(rows, fmt="{:16.8f}") -> str:
    return "\n".join("    <v>" + " ".join(fmt.format(x) for x in row) + " </v>" for row in rows)


def _energy(f, wo, e0, indent="   ") -> str:
    return (f"{indent}<energy>\n{indent} <i name=\"e_fr_energy\"> {f:16.8f} </i>\n"
            f"{indent} <i name=\"e_wo_entrp\"> {wo:16.8f} </i>\n{indent} <i name=\"e_0_energy\"> {e0:16.8f} </i>\n"
            f"{indent}</energy>")


def _structure(atoms, name=None) -> str:
    attr = f' name="{name}"' if name else ""
    cell = atoms.cell.array
    return (f" <structure{attr}>\n  <crystal>\n   <varray name=\"basis\">\n{_v(cell)}\n   </varray>\n"
            f"   <i name=\"volume\"> {atoms.get_volume():16.8f} </i>\n   <varray name=\"rec_basis\">\n"
            f"{_v(np.linalg.inv(cell).T)}\n   </varray>\n  </crystal>\n  <varray name=\"positions\">\n"
            f"{_v(atoms.get_scaled_positions(wrap=False))}\n  </varray>\n </structure>")


def write_vasprun(atoms, incar, scf_energies, final_energies, forces, stress_kbar, path="vasprun.xml") -> None:
    """A vasprun.xml with one ionic step (the layout parsevasp's Xml parser reads).

    ``scf_energies`` (free, without entropy, sigma->0) are those of the converged SCF step; ``final_energies``
    the ionic step's, which VASP prints with the PSTRESS * V term added.
    """
    symbols = atoms.get_chemical_symbols()
    species = list(dict.fromkeys(symbols))
    f, wo, e0 = scf_energies
    nelm, nsw = int(incar.get("NELM", 60)), int(incar.get("NSW", 0))
    ismear, sigma = int(incar.get("ISMEAR", 1)), float(incar.get("SIGMA", 0.2))
    rc = "\n".join(f"    <rc><c>{s:2s}</c><c>{species.index(s) + 1:4d}</c></rc>" for s in symbols)
    scsteps = "\n".join(f"  <scstep>\n{_energy(f + d, wo + d, e0 + d)}\n  </scstep>"
                        for d in [*(10.0 ** -np.arange(1, NSCF)), 0.0])
    text = f"""<?xml version="1.0" encoding="ISO-8859-1"?>
<modeling>
 <generator>
  <i name="program" type="string">vasp </i>
  <i name="version" type="string">{VERSION}  </i>
  <i name="subversion" type="string">mock-vasp (aiida-chimes tests, EMT) </i>
  <i name="platform" type="string">mock </i>
 </generator>
 <incar>
{chr(10).join(f'  <i name="{k}">{v}</i>' for k, v in incar.items())}
 </incar>
 <parameters>
  <separator name="electronic">
   <i name="NELM" type="int">{nelm:6d}</i>
   <separator name="electronic smearing">
    <i name="ISMEAR" type="int">{ismear:6d}</i>
    <i name="SIGMA">{sigma:16.8f}</i>
   </separator>
  </separator>
  <separator name="ionic">
   <i name="NSW" type="int">{nsw:6d}</i>
   <i name="IBRION" type="int">{int(incar.get("IBRION", -1)):6d}</i>
  </separator>
 </parameters>
 <atominfo>
  <atoms>{len(atoms):8d} </atoms>
  <types>{len(species):8d} </types>
  <array name="atoms">
   <dimension dim="1">ion</dimension>
   <field type="string">element</field>
   <field type="int">atomtype</field>
   <set>
{rc}
   </set>
  </array>
 </atominfo>
{_structure(atoms, "initialpos")}
 <calculation>
{scsteps}
{_structure(atoms)}
  <varray name="forces">
{_v(forces)}
  </varray>
  <varray name="stress">
{_v(stress_kbar)}
  </varray>
{_energy(*final_energies, indent="  ")}
  <time name="totalsc">    0.01    0.01</time>
 </calculation>
{_structure(atoms, "finalpos")}
</modeling>
"""
    Path(path).write_text(text)


def write_outcar(atoms, incar, energies, path="OUTCAR") -> None:
    """The OUTCAR lines parsevasp's Outcar parser needs: NSW/IBRION/NELM, SCF iterations, timing footer."""
    f, wo, e0 = energies
    lines = [f" vasp.{VERSION} mock-vasp (aiida-chimes tests, EMT)", f"   NIONS = {len(atoms):8d}",
             f"   NSW    = {int(incar.get('NSW', 0)):6d}    number of steps for IOM",
             f"   IBRION = {int(incar.get('IBRION', -1)):6d}    ionic relax: 0-MD 1-quasi-New 2-CG",
             f"   NELM   = {int(incar.get('NELM', 60)):6d};   NELMIN=  2; NELMDL= -5     # of ELM steps"]
    lines += [f"----------------------- Iteration      1({k:4d})  -----------------------" for k in
              range(1, NSCF + 1)]
    lines += ["  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)", "  ---------------------------------------------------",
              f"  free  energy   TOTEN  = {f:18.8f} eV", "",
              f"  energy  without entropy= {wo:18.8f}  energy(sigma->0) = {e0:18.8f}", "",
              " General timing and accounting informations for this job:",
              " ========================================================", "",
              "                  Total CPU time used (sec):        0.010",
              "                            User time (sec):        0.010",
              "                          System time (sec):        0.000",
              "                         Elapsed time (sec):        0.010", ""]
    Path(path).write_text("\n".join(lines) + "\n")


def crash(message: str) -> int:
    print(f" mock-vasp: ERROR: {message}", flush=True)
    return 1


def main() -> int:
    import ase.io

    incar = read_incar()
    atoms = ase.io.read("POSCAR", format="vasp")
    print(f" running on    1 total cores\n vasp.{VERSION} mock-vasp: {len(atoms)} atoms", flush=True)
    if "mock-fail" in incar.get("SYSTEM", ""):
        return crash("SYSTEM asks mock-vasp to fail")
    if len(atoms) > 1:
        d = atoms.get_all_distances(mic=True)[np.triu_indices(len(atoms), 1)]
        if d.min() < MIN_DISTANCE:
            return crash(f"atoms overlap (closest distance {d.min():.3f} A < {MIN_DISTANCE} A)")
    from ase.units import GPa

    energy, forces, stress = emt_results(atoms.copy())
    ts = 0.01 * float(incar.get("SIGMA", 0.2)) * len(atoms)  # made-up electronic entropy term T*S
    scf = np.array([energy, energy + ts, energy + 0.5 * ts])
    pv = float(incar.get("PSTRESS", 0.0)) * 0.1 * GPa * atoms.get_volume()
    write_vasprun(atoms, incar, scf, scf + pv, forces, ase_to_vasp_stress(stress))
    write_outcar(atoms, incar, scf)
    shutil.copyfile("POSCAR", "CONTCAR")
    print(f"   1 F= {scf[0]:.8E} E0= {scf[2]:.8E}  d E =0.000000E+00", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
