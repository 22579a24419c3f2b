"""Evaluating a FITCOUL model (fitted charge products): the evaluator adds the Ewald Coulomb part.

The model is the official chimes_lsq h2o-2bcheby fit (2-body Chebyshev + q_A q_B per pair type), evaluated on
the first frame of its training set (96-atom water box).  That the evaluator reproduces the fit's A x on every
training frame is tested in ``test_lsq_reference.py``; here: forces and stress are derivatives of the energy,
the Coulomb part is the Ewald sum of the file's products, errors for cells the Ewald sum cannot handle, and
energy conservation in NVE MD.
"""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from ase import Atoms

from aiida_chimes.chimes.calculator import ChimesCalculator
from aiida_chimes.chimes.evaluate import ChimesModel
from aiida_chimes.chimes.ewald import coulomb_pair_terms
from aiida_chimes.chimes.io.xyzf import read_xyzf
from aiida_chimes.chimes.md import MDSettings, run_md
from aiida_chimes.chimes.params import ParamsFormatError, parse_params
from tests.helpers import DATA_DIR

CASE = DATA_DIR / "chimes_lsq" / "h2o-2bcheby"


@pytest.fixture(scope="module")
def text():
    return (CASE / "correct_output" / "params.txt").read_text()


@pytest.fixture(scope="module")
def model(text):
    return ChimesModel(parse_params(text, "params.txt"))


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    path = tmp_path_factory.mktemp("h2o") / "input.xyzf"
    path.write_text(gzip.open(CASE / "inputs" / "input.xyzf.gz", "rt").read())
    return read_xyzf(path)[0]


def test_coulomb_part_is_the_ewald_sum_of_the_fitted_products(model, text, frame):
    """Energy, forces, stress and per-atom energies minus those of the same file with FITCOUL false are the
    Ewald terms times the file's q_A q_B (73.66 / 18.42 / -36.83); the Coulomb part is far from negligible."""
    qq = model.charge_products
    np.testing.assert_array_equal(qq, [7.3661612941453e01, 1.8415406762994e01, -3.6830814346015e01])
    bare = ChimesModel(parse_params(text.replace("FITCOUL: true", "FITCOUL: false", 1), "bare.txt"))
    full = model.evaluate(frame.symbols, frame.positions, frame.cell)
    short = bare.evaluate(frame.symbols, frame.positions, frame.cell)
    terms = coulomb_pair_terms(frame.positions, np.diag(frame.cell), model.types_of(frame.symbols), model.pair_of, 3)
    e_coul = terms.energy @ qq
    assert abs(e_coul) > 100.0
    assert full.energy - short.energy == pytest.approx(e_coul, rel=1e-12)
    np.testing.assert_allclose(full.forces - short.forces, terms.forces @ qq, rtol=0, atol=1e-10)
    volume = np.prod(np.diag(frame.cell))
    np.testing.assert_allclose(full.stress - short.stress, np.tensordot(qq, terms.virial, 1) / volume, atol=1e-10)
    np.testing.assert_allclose(full.energies - short.energies, terms.atom_energy @ qq, atol=1e-10)
    assert full.energies.sum() == pytest.approx(full.energy, rel=1e-12)


def test_forces_are_minus_the_energy_gradient(model, frame):
    """Central differences (h = 1e-5 A) of the total energy, Coulomb included, for 6 atoms: measured 8e-10 of
    max |F| (180 kcal/mol/A)."""
    res = model.evaluate(frame.symbols, frame.positions, frame.cell)
    h = 1e-5
    scale = np.abs(res.forces).max()
    for i in range(0, 96, 17):
        for a in range(3):
            p = frame.positions.copy()
            p[i, a] += h
            ep = model.evaluate(frame.symbols, p, frame.cell).energy
            p[i, a] -= 2 * h
            em = model.evaluate(frame.symbols, p, frame.cell).energy
            assert -(ep - em) / (2 * h) == pytest.approx(res.forces[i, a], abs=1e-8 * scale)


def test_stress_is_the_strain_derivative(model, frame):
    """Diagonal stress against -dE/d(strain)/V (box and coordinates scaled along one axis by 1 +- 1e-5).

    The stress is the derivative at fixed Ewald parameters; the energy is evaluated with the parameters that
    chimes_lsq's recipe gives for the strained box (alpha follows the box length), so the difference measures
    the truncation error of the sum: 3.5e-5 of the stress here.
    """
    res = model.evaluate(frame.symbols, frame.positions, frame.cell)
    volume = np.prod(np.diag(frame.cell))
    h = 1e-5
    for a in range(3):
        s = np.ones(3)
        s[a] = 1 + h
        ep = model.evaluate(frame.symbols, frame.positions * s, frame.cell * s[:, None]).energy
        s[a] = 1 - h
        em = model.evaluate(frame.symbols, frame.positions * s, frame.cell * s[:, None]).energy
        assert -(ep - em) / (2 * h) / volume == pytest.approx(res.stress[a, a], rel=1e-4)


def test_cells_the_ewald_sum_cannot_handle(model, text, frame):
    """A tilted cell, an open system and a FITCOUL file without a charge-product line are refused (the file
    is named); a malformed charge-product line is a format error naming its line."""
    tilted = frame.cell.copy()
    tilted[1, 0] = 0.5
    with pytest.raises(ValueError, match=r"params.txt: the Coulomb part .* orthorhombic cell"):
        model.evaluate(frame.symbols, frame.positions, tilted)
    with pytest.raises(ValueError, match=r"params.txt: .* fully periodic"):
        model.evaluate(frame.symbols, frame.positions, None, pbc=False)
    lines = text.splitlines()
    no_q = "\n".join(ln for ln in lines if not ln.startswith("q_H x q_H")) + "\n"
    with pytest.raises(ValueError, match=r"nocharge.txt: FITCOUL true but no 'q_A x q_B value' line for pair "
                                         r"type\(s\) HH"):
        ChimesModel(parse_params(no_q, "nocharge.txt")).evaluate(frame.symbols, frame.positions, frame.cell)
    bad = text.replace("q_H x q_H", "q_H x q_O", 1)
    with pytest.raises(ParamsFormatError, match=r"bad.txt:\d+: expected 'q_H x q_H value'"):
        parse_params(bad, "bad.txt")


def test_nve_conserves_energy_with_coulomb(frame, tmp_path):
    """Velocity Verlet on the water box (Maxwell-Boltzmann 300 K; the system heats to about 1000 K), 400 steps
    of 0.25 fs: measured drift 0.11-0.14 meV/atom/ps, max |E - E0| 0.30-0.34 meV/atom; doubling the step
    multiplies the fluctuation by 3.98 (dt^2: forces consistent with the energy, Coulomb included)."""
    atoms = Atoms(frame.symbols, positions=frame.positions, cell=frame.cell, pbc=True)
    calc = ChimesCalculator(str(CASE / "correct_output" / "params.txt"))
    std = []
    for dt, steps in ((0.25, 400), (0.5, 200)):
        folder = tmp_path / f"dt{dt}"
        folder.mkdir()
        settings = MDSettings.from_dict({"ensemble": "nve", "temperature": 300.0, "timestep": dt, "steps": steps,
                                         "seed": 1, "output_interval": 100, "thermo_interval": 1},
                                        has_velocities=False)
        summary = run_md(atoms.copy(), calc, settings, outdir=str(folder), log=io.StringIO())
        assert summary["status"] == "completed"
        with np.load(folder / "thermo.npz") as z:
            dev = (z["conserved_energy"] - z["conserved_energy"][0]) / len(atoms) * 1e3  # meV/atom
            assert z["temperature"].std() > 50.0
        if dt == 0.25:
            assert abs(summary["nve_drift_meV_per_atom_per_ps"]) < 0.5 and np.abs(dev).max() < 0.6
        std.append(dev.std())
    assert 3.0 < std[1] / std[0] < 5.0
