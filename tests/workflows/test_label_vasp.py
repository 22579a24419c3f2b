"""LabelVaspWorkChain against the mock VASP: labels equal EMT evaluated directly, provenance, failed runs."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory, WorkflowFactory
from aiida.tools.graph.graph_traversers import traverse_graph
from ase.calculators.emt import EMT
from ase.units import kB

from aiida_chimes.calculations.functions.vasp_labels import electronic_temperature, vasp_stress_to_ase
from tests.workflows.conftest import INCAR, cn_atoms

LabelVaspWorkChain = WorkflowFactory("chimes.label_vasp")
VaspCalculation = CalculationFactory("vasp.vasp")


def run_label_vasp(structures, vasp_inputs):
    builder = LabelVaspWorkChain.get_builder()
    builder.structures = structures
    builder.vasp = vasp_inputs
    return run_get_node(builder)


def vasp_calcs_behind(node) -> set[int]:
    """Pks of the VaspCalculations that ``node`` was derived from (backward CREATE / INPUT_CALC links)."""
    found = traverse_graph([node.pk], links_backward=[LinkType.CREATE, LinkType.INPUT_CALC])["nodes"]
    qb = orm.QueryBuilder().append(VaspCalculation, filters={"id": {"in": list(found)}}, project="id")
    return set(qb.all(flat=True))


def test_label_vasp_matches_direct_emt(cn_structures, vasp_inputs):
    results, node = run_label_vasp(cn_structures, vasp_inputs)
    assert node.is_finished_ok, node.exit_status
    assert results["failed_frames"].get_list() == []
    labelled = results["training_set"].get_frameset()
    assert len(labelled) == 3
    for i, atoms in enumerate(cn_atoms()):
        atoms.calc = EMT()
        sl = labelled.frame_slice(i)
        np.testing.assert_allclose(labelled.positions[sl], atoms.positions, atol=1e-12)
        # free energy (e_fr_energy), not the mock's shifted energy_extrapolated / energy_no_entropy
        np.testing.assert_allclose(labelled.energy[i], atoms.get_potential_energy(), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(labelled.forces[sl], atoms.get_forces(), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(labelled.stress[i], atoms.get_stress(), rtol=1e-6, atol=1e-10)
        assert labelled.electronic_temperature[i] == pytest.approx(INCAR["sigma"] / kB)
        assert labelled.tags[i] == {"origin": "test", "seed": i, "reference": "VASP", "source_index": i}

    # provenance: training_set <- collect_vasp_labels <- misc <- VaspCalculation (x3) <- StructureData <- input set
    calcs = {c.pk for wc in node.called if wc.process_label == "VaspWorkChain" for c in wc.called}
    assert len(calcs) == 3
    assert vasp_calcs_behind(results["training_set"]) == calcs
    qb = orm.QueryBuilder()
    qb.append(orm.Data, filters={"id": results["training_set"].pk}, tag="labels")
    qb.append(orm.CalcFunctionNode, with_outgoing="labels", tag="collect", project="attributes.process_label")
    qb.append(orm.Dict, with_outgoing="collect", edge_filters={"label": {"like": "misc_%"}}, tag="misc")
    qb.append(VaspCalculation, with_outgoing="misc", project="id")
    rows = qb.all()
    assert {r[0] for r in rows} == {"collect_vasp_labels"} and {r[1] for r in rows} == calcs
    ancestors = traverse_graph([results["training_set"].pk],
                               links_backward=[LinkType.CREATE, LinkType.INPUT_CALC])["nodes"]
    assert cn_structures.pk in ancestors
    call_labels = [link.link_label for link in node.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()]
    assert sorted(call_labels) == ["frame_0000", "frame_0001", "frame_0002"]


def test_failed_vasp_run_is_reported(overlapping_structures, vasp_inputs):
    results, node = run_label_vasp(overlapping_structures, vasp_inputs)
    assert node.is_finished_ok, node.exit_status
    failed = results["failed_frames"].get_list()
    assert [f["index"] for f in failed] == [1]
    assert failed[0]["exit_status"] != 0 and orm.load_node(failed[0]["pk"]).process_label == "VaspWorkChain"
    assert "critical is missing" in failed[0]["message"]  # the VaspCalculation's reason (no vasprun.xml, OUTCAR)
    labelled = results["training_set"].get_frameset()
    assert len(labelled) == 1 and labelled.tags[0]["source_index"] == 0
    assert len(vasp_calcs_behind(results["training_set"])) == 1


def test_no_successful_run_is_an_error(overlapping_structures, vasp_inputs):
    vasp_inputs["parameters"] = orm.Dict({"incar": {**INCAR, "system": "mock-fail"}})
    results, node = run_label_vasp(overlapping_structures, vasp_inputs)
    assert node.exit_status == LabelVaspWorkChain.exit_codes.ERROR_NO_FRAME_LABELLED.status
    assert "None of the 2 VASP runs succeeded" in node.exit_message
    assert [f["index"] for f in results["failed_frames"].get_list()] == [0, 1]
    assert "training_set" not in results


def test_kpoints_are_required(cn_structures, vasp_inputs):
    del vasp_inputs["kpoints_spacing"]
    with pytest.raises(ValueError, match="kpoints_spacing"):
        run_label_vasp(cn_structures, vasp_inputs)


def test_unit_conversions():
    # 10 kbar compression along x in VASP = -1 GPa in ASE (tension positive); off-diagonals in Voigt order
    s = vasp_stress_to_ase([[10.0, 3.0, 2.0], [3.0, 0.0, 1.0], [2.0, 1.0, 0.0]])
    np.testing.assert_allclose(s * 160.21766208, [-1.0, 0.0, 0.0, -0.1, -0.2, -0.3])
    assert electronic_temperature({"ISMEAR": -1, "SIGMA": 0.05}) == pytest.approx(0.05 / kB)
    assert np.isnan(electronic_temperature({"ismear": 0, "sigma": 0.05}))
    assert np.isnan(electronic_temperature({}))
