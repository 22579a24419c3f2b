"""The official chimes_calculator short test cases: energy, stress and forces against the expected outputs.

Tolerance per value: 1e-6 relative or 1e-5 absolute (kcal/mol units; stress in GPa as stored), widened only
to half a unit of the last digit printed in the expected file (e.g. stresses stored as ``22.6100`` carry
5e-5 of rounding).  Two properties of the official serial interface are accounted for, each checked here:

* ``small = 1`` cases: the official code replicates the cell (n+1)^3 times, divides energy (and the stress
  is intensive) but sums the forces of all replicas, so its forces are (n+1)^3 times the physical forces
  (n = ceil(max 2-body cutoff / shortest cell vector) - 1).  We compare (n+1)^3 x our forces.
* ``small = 0`` with a cell shorter than twice the cutoff (TiO2): the official code counts clusters holding
  several images of one atom more than once; ``serial_counting=True`` reproduces that counting, and the
  physically correct default is checked against a supercell.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from aiida_chimes.chimes import ChimesModel
from aiida_chimes.chimes.io.configuration import read_chimes_configuration
from aiida_chimes.chimes.units import GPA_PER_KCALMOL_A3
from tests.helpers import CHIMES_CALCULATOR_DIR, force_field_path

#: Stored expected output of liqC 2b differs from the current official calculator itself: the official
#: executable prints E = 2731.45733 (shared/notes/chimes.md section 6.2), the file holds 2731.4572600; our
#: value is 2731.457332.  Forces differ from the file by up to 2.4e-4 (2.8e-6 relative); still 4x tighter
#: than the official 1e-3 test tolerance.
OUTDATED_EXPECTED = {"published_params.liqC.2b.cubic.txt": 5e-4}


def _cases():
    cases = []
    for line in (CHIMES_CALCULATOR_DIR / "test_list.dat").read_text().splitlines():
        if not line.strip():
            continue
        ff, cfg, small, kind = (x.strip() for x in line.split(";"))
        if kind in ("short", "minimal"):
            cases.append(pytest.param(ff, cfg, int(small), id=f"{ff}|{cfg}"))
    return cases


def read_expected(path):
    texts = path.read_text().split()
    values = np.array([float(t) for t in texts])
    half_unit = np.array([0.5 * 10.0 ** -(len(t.split(".")[1]) if "." in t else 0) for t in texts])
    return values, half_unit


def _tolerance(expected, half_unit):
    return np.maximum(np.maximum(1e-5, 1e-6 * np.abs(expected)), half_unit)


_MODELS: dict[str, ChimesModel] = {}


def model(name: str) -> ChimesModel:
    if name not in _MODELS:
        _MODELS[name] = ChimesModel(force_field_path(name))
    return _MODELS[name]


def official_replicas(m: ChimesModel, cell) -> int:
    """(n+1)^3 of the official small=true replication (serial_chimes_interface.cpp ``init``)."""
    shortest = min(np.linalg.norm(cell, axis=1))
    n = math.ceil(m.p_rout.max() / shortest) - 1
    return (max(n, 0) + 1) ** 3


@pytest.mark.parametrize(("ff", "cfg", "small"), _cases())
def test_official_case(ff, cfg, small):
    m = model(ff)
    symbols, pos, cell = read_chimes_configuration(CHIMES_CALCULATOR_DIR / "configurations" / cfg)
    expected, half_unit = read_expected(CHIMES_CALCULATOR_DIR / "expected_output" / f"{ff}.{cfg}.dat")
    assert len(expected) == 7 + 3 * len(symbols)
    heights = abs(np.linalg.det(cell)) / np.array(
        [np.linalg.norm(np.cross(cell[(a + 1) % 3], cell[(a + 2) % 3])) for a in range(3)])
    serial = not small and heights.min() < 2 * m.rcut
    res = m.evaluate(symbols, pos, cell, serial_counting=serial)
    s = res.stress * GPA_PER_KCALMOL_A3
    force_factor = official_replicas(m, cell) if small else 1
    got = np.concatenate([[res.energy], [s[0, 0], s[1, 1], s[2, 2], s[0, 1], s[0, 2], s[1, 2]],
                          force_factor * res.forces.ravel()])
    tol = _tolerance(expected, half_unit)
    if ff in OUTDATED_EXPECTED:
        tol = np.maximum(tol, OUTDATED_EXPECTED[ff])
    bad = np.abs(got - expected) > tol
    labels = ["E", "sxx", "syy", "szz", "sxy", "sxz", "syz"] + [f"F{i // 3}{'xyz'[i % 3]}" for i in
                                                                 range(3 * len(symbols))]
    report = [f"{labels[k]}: got {got[k]:.8f} expected {expected[k]:.8f} (tol {tol[k]:.1e})"
              for k in np.nonzero(bad)[0][:10]]
    assert not bad.any(), "\n".join(report)


def test_small_case_force_factor_is_real():
    """The liqCO small cell is replicated 2x2x2 by the official code: its stored forces are 8x ours."""
    m = model("published_params.liqCO.2+3b.cubic.txt")
    cfg = "CO.2.5gcc_6500K.OUTCAR_#000.xyz"
    symbols, pos, cell = read_chimes_configuration(CHIMES_CALCULATOR_DIR / "configurations" / cfg)
    assert official_replicas(m, cell) == 8
    expected, _ = read_expected(CHIMES_CALCULATOR_DIR / "expected_output" /
                                f"published_params.liqCO.2+3b.cubic.txt.{cfg}.dat")
    res = m.evaluate(symbols, pos, cell)
    ratio = expected[7:] / res.forces.ravel()
    big = np.abs(res.forces.ravel()) > 1.0
    assert np.allclose(ratio[big], 8.0, rtol=1e-5)


def test_tio2_physical_value_matches_supercell():
    """Without serial counting the small triclinic TiO2 cell gives exactly 1/27 of its 3x3x3 supercell."""
    m = model("validated_params.TiO2.2+3b.Tersoff.txt")
    config = CHIMES_CALCULATOR_DIR / "configurations" / "TiO2.unitcell_arbrot_#000.xyz"
    symbols, pos, cell = read_chimes_configuration(config)
    res = m.evaluate(symbols, pos, cell)
    shifts = np.array([(a, b, c) for a in range(3) for b in range(3) for c in range(3)], dtype=float)
    big_pos = np.concatenate([pos + s @ cell for s in shifts])
    big = m.evaluate(symbols * 27, big_pos, 3 * cell)
    assert big.energy / 27 == pytest.approx(res.energy, rel=1e-10)
    np.testing.assert_allclose(big.forces[: len(symbols)], res.forces, atol=1e-8)
    np.testing.assert_allclose(big.stress, res.stress, atol=1e-10)
    # and the official double counting is a real, sizeable difference for this cell
    official = m.evaluate(symbols, pos, cell, serial_counting=True)
    assert official.energy - res.energy == pytest.approx(12.52, abs=0.01)
