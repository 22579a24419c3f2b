"""``chimes.design_matrix``: input files, real runs (1 and 2 MPI ranks, folding into an earlier system), exit codes."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.common.folders import SandboxFolder
from aiida.engine import run_get_node
from aiida.engine.utils import instantiate_process
from aiida.manage.manager import get_manager

from aiida_chimes.calculations.design_matrix import DesignMatrixCalculation
from aiida_chimes.chimes.fit_build import build_fit_system
from aiida_chimes.chimes.fit_settings import setup_from_settings
from aiida_chimes.chimes.solvers import solve
from aiida_chimes.data.training_set import TrainingSetData

from .conftest import CN_SETTINGS, run_options

WEIGHTS = {"force": 1.0, "energy": 0.5, "stress": 20.0}


def _inputs(code, training_set, **extra):
    inputs = {"code": code, "training_set": training_set, "settings": orm.Dict(CN_SETTINGS),
              "metadata": run_options()}
    inputs.update(extra)
    return inputs


def _direct_system(training_set, tmp_path, frames=None, weights=None):
    """The same system built directly with the core library (no AiiDA, no subprocess)."""
    fs = training_set.get_frameset()
    if frames is not None:
        fs = fs.subset(frames)
    fs.write_xyzf(tmp_path / "direct.xyzf")
    setup = setup_from_settings(CN_SETTINGS, [("direct.xyzf", len(fs))], base_dir=str(tmp_path))
    system, _ = build_fit_system(setup, weights=weights)
    return system


def _same_solution(a, b, rtol=1e-12):
    """Same normal equations (Gram and A^T b, per class) to ``rtol``, hence the same fit."""
    for c in range(3):
        ga, ca = a.gram(c)
        gb, cb = b.gram(c)
        scale = np.abs(ga).max() or 1.0
        assert np.abs(ga - gb).max() <= rtol * scale, f"class {c}: Gram differs"
        assert np.abs(ca - cb).max() <= rtol * max(np.abs(ca).max(), 1e-300), f"class {c}: A^T b differs"
    xa = solve(a, "svd", eps=1e-5).x
    xb = solve(b, "svd", eps=1e-5).x
    assert np.max(np.abs(xa - xb)) <= 1e-8 * np.max(np.abs(xa))
    return xa


def test_input_files(chimes_code, cn_training_set, file_regression):
    """fm_setup.in, weights.json and the command line are what chimes-lsq needs (file regression)."""
    code = chimes_code("chimes-lsq", "chimes.design_matrix")
    inputs = _inputs(code, cn_training_set, weights=orm.Dict(WEIGHTS))
    process = instantiate_process(get_manager().get_runner(), DesignMatrixCalculation, **inputs)
    with SandboxFolder() as folder:
        calcinfo = process.prepare_for_submission(folder)
        names = sorted(folder.get_content_list())
        setup_text = folder.get_abs_path("fm_setup.in")
        with open(setup_text) as handle:
            text = handle.read()
        xyzf = TrainingSetData.from_xyzf(folder.get_abs_path("training.xyzf")).get_frameset()
    assert names == ["fm_setup.in", "training.xyzf", "weights.json"]
    assert calcinfo.codes_info[0].cmdline_params == ["fm_setup.in", "--output", "fit_system.npz", "--compact-only",
                                                     "--weights", "weights.json"]
    assert "fit_system.npz" in calcinfo.retrieve_list
    file_regression.check(text, extension=".in")
    ref = cn_training_set.get_frameset()
    np.testing.assert_allclose(xyzf.forces, ref.forces, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(xyzf.stress, ref.stress, rtol=1e-13, atol=1e-16)


def test_run_matches_core_library(chimes_code, cn_training_set, tmp_path):
    """The FitSystemData equals the system the core library builds from the same frames and weights."""
    code = chimes_code("chimes-lsq", "chimes.design_matrix")
    results, node = run_get_node(DesignMatrixCalculation, **_inputs(code, cn_training_set, weights=orm.Dict(WEIGHTS)))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    system = results["fit_system"].get_fit_system()
    direct = _direct_system(cn_training_set, tmp_path, weights=WEIGHTS)
    assert system.ncols == direct.ncols
    _same_solution(system, direct)
    assert system.metadata["nframes"] == 2


def test_two_ranks_equal_one(chimes_code, cn_training_set):
    """withmpi and 2 ranks give the same fit system as 1 rank (to round-off)."""
    code = chimes_code("chimes-lsq", "chimes.design_matrix")
    _, one = run_get_node(DesignMatrixCalculation, **_inputs(code, cn_training_set))
    _, two = run_get_node(DesignMatrixCalculation, **_inputs(code, cn_training_set,
                                                              metadata=run_options(nprocs=2, withmpi=True)))
    assert one.is_finished_ok and two.is_finished_ok, (two.exit_status, two.exit_message)
    _same_solution(one.outputs.fit_system.get_fit_system(), two.outputs.fit_system.get_fit_system(), rtol=1e-12)


def test_fold_into_previous_system(chimes_code, cn_training_set):
    """Frame 0, then frame 1 folded into it, equals both frames built at once (active-learning update)."""
    from aiida_chimes.calculations.functions.training_sets import subset_training_set

    code = chimes_code("chimes-lsq", "chimes.design_matrix")
    first = subset_training_set(cn_training_set, orm.List([0]))
    second = subset_training_set(cn_training_set, orm.List([1]))
    _, n1 = run_get_node(DesignMatrixCalculation, **_inputs(code, first))
    _, n2 = run_get_node(DesignMatrixCalculation, **_inputs(code, second,
                                                             previous_fit_system=n1.outputs.fit_system))
    _, nall = run_get_node(DesignMatrixCalculation, **_inputs(code, cn_training_set))
    assert n2.is_finished_ok, (n2.exit_status, n2.exit_message)
    folded = n2.outputs.fit_system.get_fit_system()
    assert folded.metadata["nframes"] == 2
    _same_solution(folded, nall.outputs.fit_system.get_fit_system(), rtol=1e-12)


def test_previous_system_with_other_basis_is_rejected(chimes_code, cn_training_set):
    """Folding into a system of another basis: chimes-lsq refuses, exit code 301 with its message."""
    code = chimes_code("chimes-lsq", "chimes.design_matrix")
    _, n1 = run_get_node(DesignMatrixCalculation, **_inputs(code, cn_training_set))
    other = dict(CN_SETTINGS, orders=[6, 4, 0])
    _, n2 = run_get_node(DesignMatrixCalculation, **_inputs(code, cn_training_set, settings=orm.Dict(other),
                                                             previous_fit_system=n1.outputs.fit_system))
    assert n2.exit_status == 301
    assert "basis" in n2.exit_message


@pytest.mark.parametrize("change, message", [
    ({"orders": [8, 4]}, None),
    ({"pairs": {"C-C": {"s_minim": 0.98, "s_maxim": 4.5, "morse_lambda": 1.4}}}, "missing pair"),
    ({"bogus": 1}, "unknown fit setting"),
    ({"types": ["C"]}, "not atom types"),
])
def test_invalid_settings_rejected_before_running(chimes_code, cn_training_set, change, message):
    """Bad settings fail at launch, with a message naming the setting; nothing runs."""
    code = chimes_code("chimes-lsq", "chimes.design_matrix")
    settings = dict(CN_SETTINGS, **change)
    if message is None:  # a valid variant (orders given for 2- and 3-body only)
        process = instantiate_process(get_manager().get_runner(), DesignMatrixCalculation,
                                      **_inputs(code, cn_training_set, settings=orm.Dict(settings)))
        assert process is not None
        return
    with pytest.raises(ValueError, match=message):
        run_get_node(DesignMatrixCalculation, **_inputs(code, cn_training_set, settings=orm.Dict(settings)))


def test_missing_stress_rejected(chimes_code):
    """fit_stress on frames without stresses is an input error naming the fix."""
    from aiida_chimes.chimes.frames import FrameSet
    from tests.helpers import DATA_DIR

    fs = FrameSet.from_xyzf(DATA_DIR / "xyzf" / "CN_2frames.xyzf")
    fs.stress[:] = np.nan
    code = chimes_code("chimes-lsq", "chimes.design_matrix")
    with pytest.raises(ValueError, match="no stress"):
        run_get_node(DesignMatrixCalculation, **_inputs(code, TrainingSetData.from_frameset(fs)))


@pytest.mark.parametrize("body, status", [
    ("echo 'nothing to see' >&2", 300),
    ("echo 'Traceback (most recent call last):' >&2; echo 'ZeroDivisionError: boom' >&2; exit 1", 302),
    ("echo garbage > fit_system.npz", 303),
])
def test_exit_codes(chimes_code, fake_script, cn_training_set, body, status):
    """Missing output (300), a crash (302) and an unreadable system (303) each give their exit code."""
    code = chimes_code("fake", "chimes.design_matrix", executable=fake_script(body))
    _, node = run_get_node(DesignMatrixCalculation, **_inputs(code, cn_training_set))
    assert node.exit_status == status, node.exit_message
