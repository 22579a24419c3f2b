"""ReferenceWorkChain: xTB in one or several batches (real chimes-label), VASP through the mock, input checks."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node
from aiida.plugins import WorkflowFactory

from tests.workflows.conftest import cn_atoms

ReferenceWorkChain = WorkflowFactory("chimes.reference")


def xtb_builder(structures, code, batch_size=None):
    builder = ReferenceWorkChain.get_builder()
    builder.structures = structures
    builder.method = orm.Str("xtb")
    builder.xtb.code = code
    builder.xtb.parameters = orm.Dict({"method": "GFN1-xTB", "electronic_temperature": 300.0})
    if batch_size is not None:
        builder.xtb.batch_size = orm.Int(batch_size)
    return builder


def called(node, link_type=LinkType.CALL_CALC, label="LabelXtbCalculation"):
    """Processes called by ``node`` with ``label``, by call link label."""
    links = node.base.links.get_outgoing(link_type=link_type).all()
    return {link.link_label: link.node for link in links if link.node.process_label == label}


def test_xtb_one_batch_and_two_batches(cn_structures, chimes_code):
    code = chimes_code("chimes-label", "chimes.label_xtb")
    results, node = run_get_node(xtb_builder(cn_structures, code))
    assert node.is_finished_ok, node.exit_status
    assert sorted(called(node)) == ["batch_0000"]  # all frames in one CalcJob
    one = results["training_set"]
    assert one.creator.pk == called(node)["batch_0000"].pk
    assert results["failed_frames"].get_list() == []

    results2, node2 = run_get_node(xtb_builder(cn_structures, code, batch_size=2))
    assert node2.is_finished_ok, node2.exit_status
    calcs = called(node2)
    assert sorted(calcs) == ["batch_0000", "batch_0001"]
    assert [c.inputs.structures.nframes for _, c in sorted(calcs.items())] == [2, 1]
    two = results2["training_set"]
    assert two.creator.process_label == "concatenate_training_sets"  # merged with provenance
    merged_from = two.creator.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all_nodes()
    assert {n.creator.pk for n in merged_from} == {c.pk for c in calcs.values()}
    a, b = one.get_frameset(), two.get_frameset()
    assert len(b) == 3
    np.testing.assert_allclose(b.positions, np.concatenate([x.positions for x in cn_atoms()]))
    np.testing.assert_allclose(b.energy, a.energy, rtol=1e-10)
    np.testing.assert_allclose(b.forces, a.forces, rtol=1e-8, atol=1e-10)
    assert np.isfinite(b.stress).all() and np.allclose(b.electronic_temperature, 300.0)
    assert all(tag["reference"] == "GFN1-xTB" for tag in b.tags)
    assert [tag["source_index"] for tag in b.tags] == [0, 1, 2]  # indices into the input set, across batches


def test_vasp_method(overlapping_structures, vasp_inputs):
    builder = ReferenceWorkChain.get_builder()
    builder.structures = overlapping_structures
    builder.method = orm.Str("vasp")
    builder.vasp.vasp = vasp_inputs
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_status
    assert [f["index"] for f in results["failed_frames"].get_list()] == [1]
    labelled = results["training_set"]
    assert labelled.nframes == 1 and labelled.creator.process_label == "collect_vasp_labels"
    assert list(called(node, LinkType.CALL_WORK, "LabelVaspWorkChain")) == ["label_vasp"]


@pytest.mark.parametrize("method", ["xtb", "vasp"])
def test_missing_namespace_is_rejected(cn_structures, method):
    with pytest.raises(ValueError, match=f"method '{method}' needs the `{method}` input namespace"):
        run_get_node(ReferenceWorkChain, structures=cn_structures, method=orm.Str(method))


def test_unknown_method_bad_batch_size_and_no_frames_are_rejected(cn_structures, chimes_code):
    from aiida_chimes.chimes.frames import FrameSet
    from aiida_chimes.data.training_set import TrainingSetData

    with pytest.raises(ValueError, match="method: must be one of"):
        run_get_node(ReferenceWorkChain, structures=cn_structures, method=orm.Str("dft"))
    code = chimes_code("chimes-label", "chimes.label_xtb")
    with pytest.raises(ValueError, match="batch_size: must be a positive"):
        run_get_node(xtb_builder(cn_structures, code, batch_size=0))
    with pytest.raises(ValueError, match="structures: the training set has no frames"):
        run_get_node(xtb_builder(TrainingSetData(FrameSet.empty()), code))
