"""``chimes.active_learning``: real runs of a single-element C tile (xTB reference, tiny MD) and input errors.

Three runs in all (module fixtures): periodic sampling over two cycles (MD continues from the previous cycle's
final structure and velocities), leverage selection and a force threshold that converges after the first cycle.
The restart test would continue the periodic run; input validation is checked without running anything.
"""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager

from aiida_chimes.chimes.hierarchy import settings_for_tile
from aiida_chimes.data.training_set import TrainingSetData
from aiida_chimes.workflows.active_learning import ActiveLearningWorkChain
from tests.workflows.campaign import SETTINGS, XTB, make_codes

#: The fit settings of the C tile alone (no lower tiles).
C_SETTINGS = settings_for_tile(SETTINGS, {"C"}, [])
STATE_POINTS = {"C": {"temperature": 1500.0, "composition": {"C": 8}, "density": 2.0, "min_distance": 1.2}}
MD = {"ensemble": "nvt", "thermostat": "langevin", "timestep": 0.25, "steps": 40, "output_interval": 10,
      "thermo_interval": 10}
SELECTION = {"method": "evenly", "n_select": 2, "max_penalty": 1}
INITIAL = {"n_frames": 4, "rattle": 0.05, "strain": 0.02}


@pytest.fixture(scope="module")
def codes(tmp_path_factory):
    """The four codes on their own localhost computer (module-scoped runs need module-scoped codes)."""
    return make_codes(str(tmp_path_factory.mktemp("active_learning")), label="active-learning-localhost")


def al_builder(codes, *, max_cycles=1, selection=SELECTION, md_parameters=MD, state_points=STATE_POINTS, **inputs):
    """A tiny active-learning run of the C tile; ``inputs`` are set on the builder (plain values wrapped)."""
    b = ActiveLearningWorkChain.get_builder()
    b.settings = orm.Dict(C_SETTINGS)
    b.state_points = orm.Dict(state_points)
    b.md_parameters = orm.Dict(md_parameters)
    b.selection = orm.Dict(selection)
    b.initial = orm.Dict(INITIAL)
    b.max_cycles = orm.Int(max_cycles)
    b.md.code = codes["md"]
    b.reference.method = orm.Str("xtb")
    b.reference.xtb.code = codes["label"]
    b.reference.xtb.parameters = orm.Dict(XTB)
    b.fit.design_matrix.code = codes["design_matrix"]
    b.fit.regression.code = codes["regression"]
    b.fit.solver = orm.Dict({"algorithm": "svd", "eps": 1.0e-5})
    b.fit.selection = orm.Str("bic")
    for key, value in inputs.items():
        b[key] = orm.to_aiida_type(value) if isinstance(value, (str, int, float)) else value
    return b


def _called(node, label):
    """The process ``node`` called with this call link label."""
    return node.base.links.get_outgoing(link_label_filter=label).one().node


def _calls(node) -> set[str]:
    """Call link labels of the processes ``node`` called."""
    links = node.base.links.get_outgoing(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).all()
    return {link.link_label for link in links}


def _input(node, label):
    return node.base.links.get_incoming(link_label_filter=label).one().node


def _finished(builder):
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    return results, node


@pytest.fixture(scope="module")
def periodic_run(codes):
    return _finished(al_builder(codes, max_cycles=2, sampling="periodic"))


@pytest.fixture(scope="module")
def leverage_run(codes):
    """Leverage selection, and a force threshold so large that the first cycle converges (max_cycles 3)."""
    selection = {"method": "leverage", "n_select": 2, "max_penalty": 1}
    return _finished(al_builder(codes, max_cycles=3, selection=selection, force_threshold=100.0))


# ===================================================================== periodic sampling
def test_periodic_md_continues_from_the_previous_cycle(periodic_run):
    _, node = periodic_run
    first, second = _called(node, "md_cycle_001_C"), _called(node, "md_cycle_002_C")
    assert first.is_finished_ok  # (cycle 2's MD of this crude 9-coefficient fit may blow up: its frames are kept)
    # cycle 1 starts from the generated state-point structure, without velocities
    assert _input(first, "structure").pk == _called(node, "structure_C").outputs.result.pk
    assert "velocities" not in first.inputs
    # cycle 2 continues from cycle 1's last frame: its structure and velocities are cycle 1's outputs (links)
    assert _input(second, "structure").pk == first.outputs.final_structure.pk
    assert _input(second, "velocities").pk == first.outputs.final_velocities.pk
    assert second.inputs.parameters["seed"] != first.inputs.parameters["seed"]


def test_periodic_run_summary_and_history(periodic_run):
    results, node = periodic_run
    summary = results["summary"].get_dict()
    assert summary["cycles_done"] == 2 and summary["converged"] is False
    assert [c["cycle"] for c in summary["cycles"]] == [0, 1, 2]
    for entry in summary["cycles"]:
        assert entry["errors_after"]["force_rmse"] is not None
    for entry in summary["cycles"][1:]:
        assert entry["errors_before"]["force_rmse"] > 0
        assert 0 < entry["md"]["C"]["steps_done"] <= MD["steps"]
        assert entry["frames_added"] >= 1 and entry["converged"] is False
    totals = [c["frames_total"] for c in summary["cycles"]]
    assert totals[0] == INITIAL["n_frames"] and totals == sorted(totals)
    assert totals[-1] == results["fit_system"].nframes == sum(c["frames_added"] for c in summary["cycles"])
    history = results["history"]
    assert sorted(history) == ["cycle_000", "cycle_001", "cycle_002"]
    for key in history:
        assert {"potential", "fit_system", "statistics", "reference_set", "residual_set", "summary"} <= set(
            history[key])
    assert history["cycle_002"]["potential"].pk == results["potential"].pk
    assert results["reference_set"].nframes == totals[-1]
    assert [_called(node, f"fit_cycle_{k:03d}").process_label for k in range(3)] == ["FitWorkChain"] * 3


def test_periodic_run_errors_before_refit_are_prediction_errors(periodic_run):
    """errors_before of cycle k: the cycle k-1 fit on cycle k's new frames (never fitted)."""
    results, node = periodic_run
    calc = _called(node, "errors_before_cycle_002")
    assert _input(calc, "potential").pk == results["history"]["cycle_001"]["potential"].pk
    assert _input(calc, "training_set").pk == results["history"]["cycle_002"]["residual_set"].pk
    before = results["summary"]["cycles"][2]["errors_before"]
    assert before["force_rmse"] == pytest.approx(calc.outputs.result["force_rmse"])


# ===================================================================== restart
def test_restart_runs_exactly_one_more_cycle(codes, periodic_run):
    """Continue the 2-cycle periodic run with max_cycles 3: one more cycle (3), history 0-3, frames add up."""
    previous_results, previous = periodic_run
    results, node = _finished(al_builder(codes, max_cycles=3, sampling="periodic", restart_from=previous))
    assert sorted(label for label in _calls(node) if label.startswith("fit_")) == ["fit_cycle_003"]
    new = results["history"]["cycle_003"]["residual_set"].nframes
    assert results["fit_system"].nframes == previous_results["fit_system"].nframes + new
    assert sorted(results["history"]) == ["cycle_000", "cycle_001", "cycle_002", "cycle_003"]
    assert results["history"]["cycle_001"]["potential"].pk == previous_results["history"]["cycle_001"]["potential"].pk
    assert node.base.extras.get("restart_from") == previous.uuid
    assert results["summary"]["cycles_done"] == 3
    assert [c["cycle"] for c in results["summary"]["cycles"]] == [0, 1, 2, 3]
    # periodic: cycle 3 continues from the previous run's cycle-2 MD, or from the state point if that blew up
    last = _called(previous, "md_cycle_002_C")
    start = _input(_called(node, "md_cycle_003_C"), "structure")
    if last.is_finished_ok:
        assert start.pk == last.outputs.final_structure.pk
    else:
        assert start.pk == _called(node, "structure_C").outputs.result.pk


# ===================================================================== leverage selection and convergence
def test_leverage_selection_reports_leverage(leverage_run):
    _, node = leverage_run
    select = _called(node, "select_cycle_001_C")
    assert select.process_label == "select_candidates"
    assert {"settings", "fit_system"} <= {link.link_label for link in select.base.links.get_incoming(
        link_type=LinkType.INPUT_CALC).all()}
    report = select.outputs.report.get_dict()
    assert report["method"] == "leverage"
    leverage = report["leverage"]
    assert leverage["max"] >= leverage["median"] >= 0
    assert len(leverage["selected"]) == len(report["selected"]) >= 1
    assert all(r.startswith("leverage") or r == "penalty region" for r in report["reasons"])
    assert max(leverage["selected"]) == pytest.approx(leverage["max"])
    candidates = select.outputs.candidates.get_frameset()
    assert [t["source_index"] for t in candidates.tags] == report["selected"]


def test_force_threshold_converges_after_the_first_cycle(leverage_run):
    results, node = leverage_run
    summary = results["summary"].get_dict()
    assert summary["converged"] is True and summary["cycles_done"] == 1
    assert summary["cycles"][1]["converged"] is True
    assert summary["cycles"][1]["errors_before"]["force_rmse"] < 100.0
    assert sorted(results["history"]) == ["cycle_000", "cycle_001"]
    assert "md_cycle_001_C" in _calls(node) and not [c for c in _calls(node) if "cycle_002" in c]


# ===================================================================== input errors (nothing runs)
def refused(b) -> str:
    with pytest.raises(ValueError) as info:
        instantiate_process(get_manager().get_runner(), b)
    return str(info.value)


def test_valid_inputs_are_accepted(codes):
    assert instantiate_process(get_manager().get_runner(), al_builder(codes)).node.process_state.value == "created"


@pytest.mark.parametrize("inputs,message", [
    ({"sampling": "sequential"}, "sampling: must be one of ['parallel', 'periodic'], got 'sequential'"),
    ({"selection": {"method": "random"}}, "selection: method must be one of ['evenly', 'leverage'], got 'random'"),
    ({"selection": {"n_select": -1}}, "selection: n_select must be a non-negative integer"),
    ({"selection": {"nselect": 2}}, "selection: unknown key(s) ['nselect']"),
    ({"max_cycles": -1}, "max_cycles: must be >= 0, got -1"),
    ({"force_threshold": 0.0}, "force_threshold: must be a positive force RMSE (eV/A), got 0.0"),
    ({"initial": {"n_frame": 3}}, "initial: unknown key(s) ['n_frame']"),
    ({"md_parameters": {**MD, "timestep": -1.0}},
     "md_parameters: parameters: 'timestep' must be a positive number, got -1.0"),
    ({"state_points": {"C": {"temperature": 0, "composition": {"C": 8}, "density": 2.0}}},
     "state_points.C: 'temperature' (K) must be a positive number, got 0"),
    ({"state_points": {"CN": {"temperature": 1000.0, "composition": {"C": 4, "N": 4}, "density": 2.0}}},
     "state_points.CN: elements ['N'] are not types of the fit ['C']"),
], ids=["sampling", "selection method", "n_select", "selection key", "max_cycles", "force_threshold", "initial",
        "md timestep", "temperature", "foreign element"])
def test_input_errors(codes, inputs, message):
    assert message in refused(al_builder(codes, **inputs))


def test_npt_needs_pressures(codes):
    text = refused(al_builder(codes, md_parameters={**MD, "ensemble": "npt", "thermostat": "berendsen"}))
    assert "ensemble npt needs a 'pressure' (GPa) in state points ['C']" in text


def test_npt_with_state_point_pressures_is_accepted(codes):
    points = {"C": {**STATE_POINTS["C"], "pressure": 1.0}}
    b = al_builder(codes, md_parameters={**MD, "ensemble": "npt", "thermostat": "berendsen"}, state_points=points)
    assert instantiate_process(get_manager().get_runner(), b).node.process_state.value == "created"


def test_training_set_elements(codes):
    from ase.build import bulk

    frames = TrainingSetData.from_atoms([bulk("N", "sc", a=2.0)])
    assert "training_set: holds elements ['N'] that are not types of the fit settings ['C']" in refused(
        al_builder(codes, training_set=frames))


def test_restart_from_must_be_an_active_learning_run(codes):
    from aiida_chimes.workflows.hierarchical import HierarchicalFitWorkChain

    other = orm.WorkflowNode()
    other.set_process_type("aiida.workflows:chimes.hierarchical")  # the wrong process type
    other.set_process_label(HierarchicalFitWorkChain.__name__)
    other.store()
    text = refused(al_builder(codes, restart_from=other))
    assert f"restart_from: HierarchicalFitWorkChain<{other.pk}> is not a chimes.active_learning run" in text
