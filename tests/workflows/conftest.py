"""Fixtures for the workflow tests: a mock VASP code with a fake potential family, small C/N frames."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.calculations.conftest import chimes_code  # noqa: F401  (the chimes-label code for the xTB path)
from tests.helpers import DATA_DIR

MOCK_VASP = Path(__file__).parent / "mock_vasp.py"
POTCAR_DIR = DATA_DIR / "vasp" / "potcars"
POTENTIAL_FAMILY = "chimes-test-fake"
#: Fermi smearing at 0.1 eV: the collected frames carry T = 0.1 eV / k_B.
INCAR = {"encut": 300, "ismear": -1, "sigma": 0.1, "ibrion": -1, "nsw": 0, "isif": 2, "nelm": 60}


def cn_atoms():
    """Three small periodic C/N cells (8, 4 and 6 atoms; orthorhombic, fcc-primitive and hexagonal), rattled."""
    from ase.build import bulk

    a = bulk("C", "diamond", a=3.57, cubic=True)
    a.symbols[[1, 6]] = "N"
    b = bulk("C", "diamond", a=3.6).repeat((2, 1, 1))
    b.symbols[[3]] = "N"
    c = bulk("C", "hcp", a=2.5, c=4.1).repeat((1, 1, 3))
    c.symbols[[0, 3]] = "N"
    frames = [a, b, c]
    for seed, atoms in enumerate(frames):
        atoms.rattle(0.05, seed=seed)
        atoms.info["tags"] = {"origin": "test", "seed": seed}
    return frames


@pytest.fixture
def cn_structures():
    """The three C/N frames as an unlabelled TrainingSetData (stored)."""
    from aiida_chimes.data.training_set import TrainingSetData

    return TrainingSetData.from_atoms(cn_atoms()).store()


@pytest.fixture
def overlapping_structures():
    """Frame 0 fine, frame 1 with two atoms 0.3 A apart (mock VASP then crashes)."""
    from aiida_chimes.data.training_set import TrainingSetData

    good, bad = cn_atoms()[1], cn_atoms()[1]
    bad.positions[1] = bad.positions[0] + np.array([0.3, 0.0, 0.0])
    return TrainingSetData.from_atoms([good, bad]).store()


@pytest.fixture(scope="session")
def mock_vasp_wrapper(tmp_path_factory):
    """Executable wrapper that runs ``mock_vasp.py`` with this interpreter (an InstalledCode needs one file)."""
    path = tmp_path_factory.mktemp("mock_vasp") / "mock-vasp"
    path.write_text(f'#!/bin/bash\nexec "{sys.executable}" "{MOCK_VASP}" "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.fixture
def mock_vasp_code(aiida_code_installed, mock_vasp_wrapper):
    """InstalledCode of the mock VASP for the ``vasp.vasp`` plugin on the test localhost."""
    return aiida_code_installed(label="mock-vasp", default_calc_job_plugin="vasp.vasp",
                                filepath_executable=mock_vasp_wrapper)


@pytest.fixture
def potential_family():
    """The fake C/N POTCAR family (uploaded once per profile)."""
    from aiida_vasp.data.potcar import PotcarData

    if PotcarData.get_potcar_group(POTENTIAL_FAMILY) is None:
        PotcarData.upload_potcar_family(str(POTCAR_DIR), POTENTIAL_FAMILY, "fake C/N POTCARs (aiida-chimes tests)",
                                        stop_if_existing=False)
    return POTENTIAL_FAMILY


@pytest.fixture
def vasp_inputs(mock_vasp_code, potential_family):
    """The ``vasp`` namespace of LabelVaspWorkChain for the mock code (one try per frame, no monitors)."""
    from aiida import orm

    return {
        "code": mock_vasp_code,
        "potential_family": orm.Str(potential_family),
        "potential_mapping": orm.Dict({"C": "C", "N": "N"}),
        "parameters": orm.Dict({"incar": dict(INCAR)}),
        "kpoints_spacing": orm.Float(0.5),
        "settings": orm.Dict({"no_default_monitors": True}),
        "max_iterations": orm.Int(1),
        "calc": {"metadata": {"options": {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1},
                                          "withmpi": False, "max_wallclock_seconds": 300}}},
    }


@pytest.fixture(scope="session")
def codes(tmp_path_factory):
    """The four codes of the shared C/N campaign (tests/workflows/campaign.py)."""
    from tests.workflows.campaign import make_codes

    return make_codes(str(tmp_path_factory.mktemp("campaign")))


@pytest.fixture(scope="session")
def campaign(codes):
    """The tiny C/N hierarchical campaign, run once per session: (outputs, node)."""
    from aiida import orm
    from aiida.engine import run_get_node

    from tests.workflows.campaign import campaign_builder

    results, node = run_get_node(campaign_builder(codes, project=orm.Str("test-campaign")))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    return results, node
