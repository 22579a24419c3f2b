"""The provenance recipes of docs/provenance.md on a small graph: label -> residual -> fit -> merge."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import ProcessState
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_chimes.calculations.functions.hierarchy import merge_tiles, residual_training_set
from aiida_chimes.chimes.params import read_params
from aiida_chimes.data.potential import ChimesPotentialData
from aiida_chimes.data.training_set import TrainingSetData
from aiida_chimes.tools.queries import potentials_using_tile, reference_calculations
from tests.helpers import DATA_DIR, hierarch_params_path


def _calcjob(computer, plugin, inputs):
    """A finished CalcJobNode standing in for a real run of ``plugin``."""
    node = orm.CalcJobNode(computer=computer, process_type=f"aiida.calculations:{plugin}")
    for key, value in inputs.items():
        node.base.links.add_incoming(value, LinkType.INPUT_CALC, key)
    node.store()
    node.set_process_state(ProcessState.FINISHED)
    node.set_exit_status(0)
    return node


def _output(node, creator, label):
    node.base.links.add_incoming(creator, LinkType.CREATE, label)
    return node.store()


def test_reference_calculations_and_tile_users(aiida_localhost):
    atoms = Atoms("C2N2", positions=[[0, 0, 0], [1.4, 0, 0], [0, 1.4, 0], [1.4, 1.4, 0.3]], cell=[12] * 3, pbc=True)
    structures = TrainingSetData.from_atoms([atoms]).store()
    label = _calcjob(aiida_localhost, "chimes.label_xtb", {"structures": structures})
    atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=np.zeros((4, 3)), stress=np.zeros(6))
    labelled = _output(TrainingSetData.from_atoms([atoms]), label, "training_set")
    tiles = {s: ChimesPotentialData(hierarch_params_path(f"{s}.params.txt.reduced")).store() for s in "CN"}
    residual = residual_training_set(training_set=labelled, **tiles)
    design = _calcjob(aiida_localhost, "chimes.design_matrix", {"training_set": residual})
    fit_system = _output(orm.Int(1), design, "fit_system")  # stands in for the FitSystemData
    regression = _calcjob(aiida_localhost, "chimes.regression", {"fit_system": fit_system})
    fit = read_params(DATA_DIR / "hierarchy" / "ALC-3.params.txt.gz")
    for k in (0, 1):
        fit.pair_coeffs[k][:] = 0.0
    fit.energy_offsets[:] = 0.0
    new_fit = _output(ChimesPotentialData.from_params(fit), regression, "potential")
    merged = merge_tiles(new_fit=new_fit, **tiles)
    other_label = _calcjob(aiida_localhost, "chimes.label_xtb", {"structures": structures})  # unrelated

    assert [n.pk for n in reference_calculations(merged)] == [label.pk]
    assert other_label.pk not in {n.pk for n in reference_calculations(merged)}
    # the cross-term fit was made on residuals of the C tile, and the merge used both
    assert [n.pk for n in potentials_using_tile(tiles["C"])] == [new_fit.pk, merged.pk]
    assert [n.pk for n in potentials_using_tile(new_fit)] == [merged.pk]
    assert potentials_using_tile(merged) == []
