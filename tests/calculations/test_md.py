"""``chimes.md``: input files, a real NVE run checked against the core engine, continuation, blow-up exit code."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.common.folders import SandboxFolder
from aiida.engine import run_get_node
from aiida.engine.utils import instantiate_process
from aiida.manage.manager import get_manager

from aiida_chimes.calculations.md import MdCalculation
from aiida_chimes.chimes.frames import FrameSet
from aiida_chimes.chimes.io.configuration import read_chimes_configuration_atoms
from aiida_chimes.data.potential import ChimesPotentialData
from tests.helpers import CHIMES_CALCULATOR_DIR, force_field_path

from .conftest import run_options

LIQC_PARAMS = "published_params.liqC.2+3b.cubic.txt"
LIQC_CONFIG = CHIMES_CALCULATOR_DIR / "configurations" / "liqC.2.5gcc_6000K.OUTCAR_#000.xyz"
NVE = {"ensemble": "nve", "temperature": 5000.0, "timestep": 0.25, "steps": 200, "output_interval": 20, "seed": 7}


@pytest.fixture
def md_inputs(chimes_code):
    code = chimes_code("chimes-md", "chimes.md")
    atoms = read_chimes_configuration_atoms(LIQC_CONFIG)
    return {"code": code, "potential": ChimesPotentialData(force_field_path(LIQC_PARAMS)),
            "structure": orm.StructureData(ase=atoms), "parameters": orm.Dict(NVE), "metadata": run_options()}


def test_input_files(md_inputs, file_regression):
    process = instantiate_process(get_manager().get_runner(), MdCalculation, **md_inputs)
    with SandboxFolder() as folder:
        calcinfo = process.prepare_for_submission(folder)
        names = sorted(folder.get_content_list())
        frames = FrameSet.load(folder.get_abs_path("structure.npz"))
        with open(folder.get_abs_path("md.json")) as handle:
            file_regression.check(handle.read(), extension=".json")
        with open(folder.get_abs_path("params.txt")) as handle:
            assert handle.read() == md_inputs["potential"].get_content()
    assert names == ["md.json", "params.txt", "structure.npz"]
    assert calcinfo.codes_info[0].cmdline_params == ["md.json"]
    np.testing.assert_allclose(frames.positions, md_inputs["structure"].get_ase().positions, rtol=0, atol=1e-12)


def test_nve_run(md_inputs):
    """200 NVE steps: 11 frames kept, energy conserved (drift bound as the engine's own test), summary complete."""
    results, node = run_get_node(MdCalculation, **md_inputs)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    traj = results["trajectory"]
    assert traj.nframes == 11 and traj.base.attributes.get("observables")["forces"] == 0
    thermo = results["thermo"]
    etot = thermo.get_array("total_energy")
    natoms = len(md_inputs["structure"].sites)
    assert np.abs(etot - etot[0]).max() / natoms < 0.5e-3  # eV/atom: 0.5 meV/atom bound at dt = 0.25 fs
    summary = results["summary"].get_dict()
    assert summary["status"] == "completed" and summary["steps_done"] == 200
    assert abs(summary["nve_drift_meV_per_atom_per_ps"]) < 1.0
    # the parsed trajectory frames carry the tags the engine wrote
    tags = traj.get_frameset().tags
    assert [t["step"] for t in tags] == list(range(0, 201, 20))
    assert "final_structure" in results and "final_velocities" in results


def test_continuation_equals_one_run(md_inputs):
    """100 + 100 steps through final_structure/final_velocities equal 200 steps in one run."""
    _, full = run_get_node(MdCalculation, **md_inputs)
    half = dict(NVE, steps=100)
    _, first = run_get_node(MdCalculation, **{**md_inputs, "parameters": orm.Dict(half)})
    _, second = run_get_node(MdCalculation, **{**md_inputs, "parameters": orm.Dict(half),
                                               "structure": first.outputs.final_structure,
                                               "velocities": first.outputs.final_velocities})
    assert second.is_finished_ok, (second.exit_status, second.exit_message)
    a = full.outputs.final_structure.get_ase().positions
    b = second.outputs.final_structure.get_ase().positions
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-9)


def test_blowup_keeps_frames(md_inputs):
    """A 5 fs step blows up: exit code 320, and the frames written before the failure are outputs."""
    params = dict(NVE, timestep=5.0, steps=400, output_interval=1)
    _, node = run_get_node(MdCalculation, **{**md_inputs, "parameters": orm.Dict(params)})
    assert node.exit_status == 320, node.exit_message
    assert "trajectory" in node.outputs and node.outputs.trajectory.nframes >= 1
    assert node.outputs.summary["status"] == "blowup"


@pytest.mark.parametrize("change, message", [({"ensemble": "nvx"}, "ensemble"), ({"steps": -1}, "steps"),
                                             ({"colour": 1}, "unknown"), ({"seed": None}, "seed")])
def test_invalid_parameters(md_inputs, change, message):
    params = {k: v for k, v in {**NVE, **change}.items() if v is not None}
    with pytest.raises(ValueError, match=message):
        run_get_node(MdCalculation, **{**md_inputs, "parameters": orm.Dict(params)})


def test_structure_with_foreign_element_rejected(md_inputs):
    atoms = md_inputs["structure"].get_ase()
    atoms.numbers[0] = 8
    with pytest.raises(ValueError, match="does not describe"):
        run_get_node(MdCalculation, **{**md_inputs, "structure": orm.StructureData(ase=atoms)})


def test_missing_output_exit_code(chimes_code, fake_script, md_inputs):
    fake = chimes_code("fake", "chimes.md", executable=fake_script("echo 'chimes-md: error: md.json: bad' >&2; exit 2"))
    _, node = run_get_node(MdCalculation, **{**md_inputs, "code": fake})
    assert node.exit_status == 301, node.exit_message
