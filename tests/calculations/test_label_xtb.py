"""``chimes.label_xtb``: labels equal a direct tblite calculation; unconverged frames are reported, never kept."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.build import bulk

from aiida_chimes.calculations.label_xtb import LabelXtbCalculation
from aiida_chimes.data.training_set import TrainingSetData

from .conftest import run_options


def cn_cell(seed: int):
    """8-atom C6N2 diamond-like cell with small random displacements (periodic, stress defined)."""
    atoms = bulk("C", "diamond", a=3.57, cubic=True)
    atoms.numbers[::4] = 7
    atoms.positions += np.random.default_rng(seed).normal(0.0, 0.1, atoms.positions.shape)
    return atoms


@pytest.fixture
def structures():
    return TrainingSetData.from_atoms([cn_cell(0), cn_cell(1), cn_cell(2)],
                                      tags=[{"state_point": "a"}, {"state_point": "a"}, {"state_point": "b"}])


def test_input_files(chimes_code, structures, file_regression):
    from aiida.common.folders import SandboxFolder
    from aiida.engine.utils import instantiate_process
    from aiida.manage.manager import get_manager

    from aiida_chimes.chimes.frames import FrameSet

    code = chimes_code("chimes-label", "chimes.label_xtb")
    process = instantiate_process(get_manager().get_runner(), LabelXtbCalculation, code=code, structures=structures,
                                  parameters=orm.Dict({"electronic_temperature": 1000.0}), metadata=run_options())
    with SandboxFolder() as folder:
        calcinfo = process.prepare_for_submission(folder)
        assert sorted(folder.get_content_list()) == ["label.json", "structures.npz"]
        with open(folder.get_abs_path("label.json")) as handle:
            file_regression.check(handle.read(), extension=".json")
        frames = FrameSet.load(folder.get_abs_path("structures.npz"))
    assert calcinfo.codes_info[0].cmdline_params == ["label.json"]
    assert frames.to_npz_bytes() == structures.get_frameset().to_npz_bytes()


def test_labels_equal_direct_tblite(chimes_code, structures):
    from tblite.ase import TBLite

    code = chimes_code("chimes-label", "chimes.label_xtb")
    params = {"method": "GFN1-xTB", "electronic_temperature": 1000.0}
    results, node = run_get_node(LabelXtbCalculation, code=code, structures=structures,
                                 parameters=orm.Dict(params), metadata=run_options())
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    fs = results["training_set"].get_frameset()
    assert len(fs) == 3 and results["failed_frames"].get_list() == []
    for i in range(3):
        atoms = cn_cell(i)
        atoms.calc = TBLite(method="GFN1-xTB", electronic_temperature=1000.0, verbosity=0)
        assert fs.energy[i] == pytest.approx(atoms.get_potential_energy(), abs=1e-7)
        np.testing.assert_allclose(fs.forces[fs.frame_slice(i)], atoms.get_forces(), atol=1e-7)
        np.testing.assert_allclose(fs.stress[i], atoms.get_stress(), atol=1e-9)
    assert np.all(fs.electronic_temperature == 1000.0)
    assert [t["state_point"] for t in fs.tags] == ["a", "a", "b"]


def test_unconverged_frames_reported(chimes_code, structures):
    """One SCF iteration converges nothing: exit code 330 and every frame listed with its message."""
    code = chimes_code("chimes-label", "chimes.label_xtb")
    _, node = run_get_node(LabelXtbCalculation, code=code, structures=structures,
                           parameters=orm.Dict({"max_iterations": 1}), metadata=run_options())
    assert node.exit_status == 330, node.exit_message
    failed = node.outputs.failed_frames.get_list()
    assert [f["index"] for f in failed] == [0, 1, 2] and all(f["message"] for f in failed)
    assert "training_set" not in node.outputs


def test_invalid_parameters(chimes_code, structures):
    code = chimes_code("chimes-label", "chimes.label_xtb")
    for bad, message in (({"method": "DFT"}, "method"), ({"electronic_temperature": -5}, "electronic"),
                         ({"smearing": 1}, "unknown")):
        with pytest.raises(ValueError, match=message):
            run_get_node(LabelXtbCalculation, code=code, structures=structures, parameters=orm.Dict(bad),
                         metadata=run_options())
