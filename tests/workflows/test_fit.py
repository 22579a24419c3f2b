"""``chimes.fit``: real FitWorkChain runs on the 2 C/N frames against the core library; scoring; input errors."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_chimes.calculations.functions.fit_errors import errors_of, validation_errors
from aiida_chimes.chimes.design import DesignBuilder
from aiida_chimes.chimes.fit_basis import build_basis
from aiida_chimes.chimes.fit_build import attach_metadata, build_fit_system
from aiida_chimes.chimes.fit_settings import setup_from_settings
from aiida_chimes.chimes.io.lsq_files import fill_coefficients, parse_params_header
from aiida_chimes.chimes.solvers import solve
from aiida_chimes.chimes.weights import row_weights
from aiida_chimes.data.fit_system import FitSystemData
from aiida_chimes.data.training_set import TrainingSetData
from aiida_chimes.workflows.fit import FitWorkChain, validation_split
from tests.calculations import conftest as calculation_fixtures
from tests.calculations.conftest import CN_SETTINGS, run_options

WEIGHTS = {"force": 1.0, "energy": 0.5, "stress": 20.0}
#: The 2 C/N frames fixture of the CalcJob tests (shared, not duplicated).
cn_training_set = calculation_fixtures.cn_training_set
fake_script = calculation_fixtures.fake_script


def _core_system(training_set, folder, frames=None, weights=None):
    """(FitSystem, setup) of the frames built directly with the core library (no AiiDA, no subprocess)."""
    fs = training_set.get_frameset()
    if frames is not None:
        fs = fs.subset(frames)
    name = "frames_" + "_".join(map(str, frames or ["all"])) + ".xyzf"
    fs.write_xyzf(folder / name)
    setup = setup_from_settings(CN_SETTINGS, [(name, len(fs))], base_dir=str(folder))
    system, _ = build_fit_system(setup, weights=weights)
    attach_metadata(system, setup, weights)
    return system, setup


def _node(system, path) -> FitSystemData:
    system.save(path)
    return FitSystemData.from_file(path)


def _frames(training_set, frames) -> TrainingSetData:
    return TrainingSetData(training_set.get_frameset().subset(frames))


def _builder(chimes_code, **inputs):
    builder = FitWorkChain.get_builder()
    builder.settings = orm.Dict(CN_SETTINGS)
    builder.design_matrix.code = chimes_code("chimes-lsq", "chimes.design_matrix")
    builder.design_matrix.metadata = run_options()
    builder.regression.code = chimes_code("chimes-solve", "chimes.regression")
    builder.regression.metadata = run_options()
    for key, value in inputs.items():
        setattr(builder, key, value)
    return builder


def _close(x, ref, rtol):
    assert np.max(np.abs(x - ref)) <= rtol * np.max(np.abs(ref))


def _called(node, label):
    """The process the workchain called with this call link label."""
    return node.base.links.get_outgoing(link_label_filter=label).one().node


def test_svd_fit_equals_core_solver(chimes_code, cn_training_set, tmp_path):
    """Two training sets (concatenated) fit with SVD: the potential is the core solver's on the same system."""
    parts = {"part_a": _frames(cn_training_set, [0]), "part_b": _frames(cn_training_set, [1])}
    results, node = run_get_node(_builder(chimes_code, training_sets=parts,
                                          solver=orm.Dict({"algorithm": "svd", "eps": 1e-5})))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    assert _called(node, "concatenate").process_label == "concatenate_training_sets"
    system = results["fit_system"].get_fit_system()
    assert system.metadata["nframes"] == 2
    own = solve(system, "svd", eps=1e-5)
    x = results["coefficients"].get_array("x")
    _close(x, own.x, 1e-12)
    core, _ = _core_system(cn_training_set, tmp_path)
    _close(x, solve(core, "svd", eps=1e-5).x, 1e-8)
    meta = system.metadata
    expected = fill_coefficients(parse_params_header(meta["params_header"], meta["ff_groups_map"]), own.x)
    got = results["potential"].get_params()
    _close(np.concatenate(got.pair_coeffs), np.concatenate(expected.pair_coeffs), 1e-12)
    for a, b in zip(got.triplets, expected.triplets, strict=True):
        _close(np.asarray(a.values), np.asarray(b.values), 1e-12)
    summary = results["validation"].get_dict()
    assert summary["chosen"] == 0 and len(summary["candidates"]) == 1
    assert results["statistics"].get_dict()["bic"] == pytest.approx(own.bic, rel=1e-10)
    logs = [log.message for log in orm.Log.collection.get_logs_for(node)]
    assert any("124 columns" in m for m in logs) and any("chose svd eps=1e-05" in m for m in logs)


def test_bic_scan_chooses_minimum(chimes_code, cn_training_set):
    """Three lassolars alphas in parallel: the chosen fit is the one of minimum BIC (the core's BIC too)."""
    alphas = [1e-4, 1e-2, 1e-3]
    results, node = run_get_node(_builder(chimes_code, training_set=cn_training_set,
                                          solver=orm.Dict({"algorithm": "lassolars", "alphas": alphas})))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    summary = results["validation"].get_dict()
    bics = [c["bic"] for c in summary["candidates"]]
    assert [c["parameter"] for c in summary["candidates"]] == alphas
    system = results["fit_system"].get_fit_system()
    for alpha, bic in zip(alphas, bics, strict=True):
        assert bic == pytest.approx(solve(system, "lassolars", alpha=alpha).bic, rel=1e-10)
    assert summary["chosen"] == int(np.argmin(bics)) == 1
    assert summary["selection"] == "bic"
    chosen = _called(node, "regression_1")
    assert results["potential"].uuid == chosen.outputs.potential.uuid
    assert results["statistics"].uuid == chosen.outputs.statistics.uuid


def test_validation_errors_equal_explicit_design_matrix(cn_training_set, tmp_path):
    """Errors from the compact system equal those of the explicit (weighted) rows of the held-out frame."""
    train, _ = _core_system(cn_training_set, tmp_path, frames=[0], weights=WEIGHTS)
    x = solve(train, "svd", eps=1e-5).x
    held, setup = _core_system(cn_training_set, tmp_path, frames=[1], weights=WEIGHTS)
    coefficients = orm.ArrayData()
    coefficients.set_array("x", x)
    errors = validation_errors(_node(held, tmp_path / "held.npz"), coefficients).get_dict()

    design = DesignBuilder(build_basis(setup), setup.fit_energy)
    parts = []
    for index, source, frame in setup.iter_frames():
        rows = design.frame_rows(frame, setup.stress_mode(index), setup.fits_energy(index), flags=source.flags)
        w = row_weights(rows.classes, rows.b, np.full(len(rows.b), rows.natoms), WEIGHTS)
        parts.append((rows.A @ x - rows.b, rows.classes, np.full(len(rows.b), rows.natoms), w))
    r, classes, natoms, w = (np.concatenate(p) for p in zip(*parts, strict=True))
    for code, name in enumerate(("force", "energy", "stress")):
        sel = classes == code
        assert errors["nrows"][name] == sel.sum() > 0
        assert errors["rmse_by_class"][name] == pytest.approx(np.sqrt(np.mean(r[sel] ** 2)), rel=1e-10)
    energy = classes == 1
    per_atom = np.sqrt(np.mean((r[energy] / natoms[energy]) ** 2))
    assert errors["rmse_by_class"]["energy_per_atom"] == pytest.approx(per_atom, rel=1e-10)
    assert errors["rmse"] == pytest.approx(np.sqrt(np.mean(r**2)), rel=1e-10)
    assert errors["rmse_weighted"] == pytest.approx(np.sqrt(np.mean((w * r) ** 2)), rel=1e-10)
    assert errors["nframes"] == 1

    short = orm.ArrayData()
    short.set_array("x", x[:-1])
    with pytest.raises(ValueError, match="same fit settings"):
        validation_errors(_node(held, tmp_path / "held2.npz"), short)


def test_fold_into_previous_system(chimes_code, cn_training_set, tmp_path):
    """Frame 1 folded into the system of frame 0 fits as both frames at once (an active-learning cycle)."""
    first, _ = _core_system(cn_training_set, tmp_path, frames=[0])
    results, node = run_get_node(_builder(chimes_code, training_set=_frames(cn_training_set, [1]),
                                          previous_fit_system=_node(first, tmp_path / "first.npz")))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    assert results["fit_system"].nframes == 2
    both, _ = _core_system(cn_training_set, tmp_path)
    _close(results["coefficients"].get_array("x"), solve(both, "svd", eps=1e-5).x, 1e-8)


def test_validation_selection(chimes_code, cn_training_set, tmp_path):
    """Held-out frame chosen by the seed (subset calcfunction), weighted errors on it pick the fit."""
    results, node = run_get_node(_builder(
        chimes_code, training_set=cn_training_set, weights=orm.Dict(WEIGHTS), selection=orm.Str("validation"),
        validation_fraction=orm.Float(0.5), validation_seed=orm.Int(7),
        solver=orm.Dict({"algorithm": "lassolars", "alphas": [1e-4, 1e-2]})))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    train_frames, held_frames = validation_split(2, 0.5, 7)
    assert _called(node, "validation_frames").inputs.indices.get_list() == held_frames
    assert _called(node, "training_frames").inputs.indices.get_list() == train_frames
    assert results["fit_system"].nframes == results["validation_fit_system"].nframes == 1
    summary = results["validation"].get_dict()
    scores = [c["validation"]["rmse_weighted"] for c in summary["candidates"]]
    assert summary["chosen"] == int(np.argmin(scores))
    held, _ = _core_system(cn_training_set, tmp_path, frames=held_frames, weights=WEIGHTS)
    for i, entry in enumerate(summary["candidates"]):
        x = _called(node, f"regression_{i}").outputs.coefficients.get_array("x")
        assert entry["validation"]["rmse_weighted"] == pytest.approx(errors_of(held, x)["rmse_weighted"], rel=1e-8)


def test_failed_design_matrix(chimes_code, fake_script, cn_training_set):
    """A crashed design-matrix CalcJob ends the workchain with 401, naming its pk; no regression runs."""
    builder = _builder(chimes_code, training_set=cn_training_set)
    crash = fake_script("echo 'Traceback (most recent call last):' >&2; echo 'RuntimeError: boom' >&2; exit 1")
    builder.design_matrix.code = chimes_code("fake-lsq", "chimes.design_matrix", executable=crash)
    _, node = run_get_node(builder)
    calc = _called(node, "design_matrix")
    assert node.exit_status == FitWorkChain.exit_codes.ERROR_DESIGN_MATRIX_FAILED.status == 401
    assert f"DesignMatrixCalculation<{calc.pk}> (training frames) failed ({calc.exit_status})" in node.exit_message
    assert not node.base.links.get_outgoing(link_label_filter="regression_0").all()


@pytest.mark.parametrize("change, message", [
    ({"training_sets": "both"}, "either as `training_set`"),
    ({"solver": {"algorithm": "svd", "alphas": [1e-3]}}, "svd is regularised by eps"),
    ({"solver": {"algorithm": "magic"}}, "algorithm 'magic'"),
    ({"solver": {"algorithm": "lasso", "alphas": [1e-3, -1.0]}}, "alphas must be positive"),
    ({"selection": "magic"}, "selection: must be one of"),
    ({"validation_fraction": 1.0}, "validation_fraction: must lie strictly between"),
    ({"selection": "validation", "training_set": "one frame"}, "leaves no training frame"),
    ({"settings": dict(CN_SETTINGS, types=["C"])}, "elements"),
])
def test_invalid_inputs_rejected(chimes_code, cn_training_set, change, message):
    """Input errors name the input and are raised before any CalcJob runs."""
    inputs = {"training_set": cn_training_set}
    for key, value in change.items():
        if value == "both":
            value = {"a": cn_training_set}
        elif value == "one frame":
            value = _frames(cn_training_set, [0])
        elif isinstance(value, dict):
            value = orm.Dict(value)
        elif isinstance(value, str):
            value = orm.Str(value)
        elif isinstance(value, float):
            value = orm.Float(value)
        inputs[key] = value
    builder = _builder(chimes_code, **inputs)
    with pytest.raises(ValueError, match=message):
        run_get_node(builder)


def test_protocols(chimes_code, cn_training_set):
    """Each protocol gives a valid builder (its solver scan and selection); an unknown one is refused."""
    codes = {"design_matrix": chimes_code("chimes-lsq", "chimes.design_matrix"),
             "regression": chimes_code("chimes-solve", "chimes.regression")}
    for protocol in FitWorkChain.get_protocol_names():
        builder = FitWorkChain.get_builder_from_protocol(codes, cn_training_set, CN_SETTINGS, protocol=protocol)
        assert builder.settings.get_dict() == CN_SETTINGS
    assert builder.selection.value == "validation" and builder.solver.get_dict()["algorithm"] == "lassolars"
    with pytest.raises(ValueError, match="protocol"):
        FitWorkChain.get_builder_from_protocol(codes, cn_training_set, CN_SETTINGS, protocol="sloppy")
