"""``aiida-chimes potential show``: the tile tree of a merged potential from its provenance (text, JSON, dot).

The graph is built in the test: imported C and N tiles, a cross fit made by a (hand-linked) regression CalcJob from
a fit system of a design-matrix CalcJob on a residual training set, and a real ``merge_tiles`` call.
"""

import json

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import ProcessState
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from click.testing import CliRunner

from aiida_chimes.calculations.functions.hierarchy import merge_tiles, residual_training_set
from aiida_chimes.chimes.fit_system import FitSystem
from aiida_chimes.chimes.params import read_params
from aiida_chimes.cli import cmd_root
from aiida_chimes.cli.potential import cmd_potential
from aiida_chimes.cli.potential_show import cmd_potential_show
from aiida_chimes.data import ChimesPotentialData, TrainingSetData
from aiida_chimes.data.fit_system import FitSystemData
from aiida_chimes.tools.tiles import register_tile, tile_signature
from tests.helpers import DATA_DIR, hierarch_params_path

C_SETTINGS = {
    "types": ["C"],
    "orders": [20, 10, 4],
    "special": {"3B S_MAXIM": 5.0, "4B S_MAXIM": 4.5},
    "pairs": {"C-C": {"s_minim": 0.98, "s_maxim": 5.0, "morse_lambda": 1.4}},
    "fcut_type": "TERSOFF",
    "fcut_var": 0.75,
}


@pytest.fixture
def run_cli(aiida_profile):
    """Invoke ``aiida-chimes potential show`` on the test profile (registering the command if the lead has not)."""
    if "show" not in cmd_potential.commands:
        cmd_potential.add_command(cmd_potential_show)

    def run(*args):
        result = CliRunner().invoke(cmd_root, ["-p", aiida_profile.name, "potential", "show", *map(str, args)])
        assert result.exit_code == 0, result.output
        return result.output

    run.profile = aiida_profile.name
    return run


def _calcjob(computer, plugin: str, label: str, inputs: dict) -> orm.CalcJobNode:
    """A finished CalcJobNode of ``plugin`` linked to ``inputs`` (stands in for a real run)."""
    node = orm.CalcJobNode(computer=computer, process_type=f"aiida.calculations:{plugin}")
    node.set_process_label(label)
    for key, value in inputs.items():
        node.base.links.add_incoming(value, LinkType.INPUT_CALC, key)
    node.store()
    node.set_process_state(ProcessState.FINISHED)
    node.set_exit_status(0)
    return node


def _small_training_set() -> TrainingSetData:
    """Four C/N atoms in a 12 A box with zero labels: cheap to evaluate."""
    atoms = Atoms("C2N2", positions=[[0, 0, 0], [1.4, 0, 0], [0, 1.4, 0], [1.4, 1.4, 0.3]], cell=[12] * 3, pbc=True)
    atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=np.zeros((4, 3)), stress=np.zeros(6))
    return TrainingSetData.from_atoms([atoms]).store()


@pytest.fixture
def merged_graph(aiida_localhost, tmp_path):
    tiles = {
        s: ChimesPotentialData(hierarch_params_path(f"{s}.params.txt.reduced"), label=f"{s} tile").store() for s in "CN"
    }
    register_tile(tiles["C"], tile_signature("C", C_SETTINGS, {"method": "xtb"}), project="carbon")
    residual = residual_training_set(training_set=_small_training_set(), **tiles)
    design = _calcjob(aiida_localhost, "chimes.design_matrix", "DesignMatrixCalculation", {"training_set": residual})
    system = FitSystem(3)
    system.add_rows(np.eye(3), np.ones(3), 0)
    system.metadata = {"nframes": 1}
    system.save(tmp_path / "fit_system.npz")
    fit_system = FitSystemData(tmp_path / "fit_system.npz")
    fit_system.base.links.add_incoming(design, LinkType.CREATE, "fit_system")
    fit_system.store()
    regression = _calcjob(aiida_localhost, "chimes.regression", "RegressionCalculation", {"fit_system": fit_system})
    fit = read_params(DATA_DIR / "hierarchy" / "ALC-3.params.txt.gz")
    for k in (0, 1):
        fit.pair_coeffs[k][:] = 0.0
    fit.energy_offsets[:] = 0.0
    new_fit = ChimesPotentialData.from_params(fit)
    new_fit.base.links.add_incoming(regression, LinkType.CREATE, "potential")
    new_fit.store()
    merged = merge_tiles(new_fit=new_fit, penalty=orm.List([0.01, 1.0e4]), **tiles)
    return {
        "merged": merged,
        "new_fit": new_fit,
        "regression": regression,
        "fit_system": fit_system,
        "design": design,
        "residual": residual,
        **tiles,
    }


def test_show_text_tree(run_cli, merged_graph):
    g = merged_graph
    out = run_cli(g["merged"].pk)
    lines = out.splitlines()
    assert lines[0] == f"ChimesPotentialData<{g['merged'].pk}>  tiles C CN N"
    assert lines[1].startswith(f"└── merge_tiles<{g['merged'].creator.pk}>  [finished 0]  penalty [0.01, 10000.0]")
    assert f"├── new_fit: ChimesPotentialData<{g['new_fit'].pk}>  tiles CN" in out
    assert f"RegressionCalculation<{g['regression'].pk}>  [finished 0]" in out
    assert f"fit_system: FitSystemData<{g['fit_system'].pk}>  ncols 3, nframes 1" in out
    assert f"design_matrix: DesignMatrixCalculation<{g['design'].pk}>" in out
    assert (
        f"training_set: TrainingSetData<{g['residual'].pk}>  1 frame, 4 atoms  (residual of "
        f"C<{g['C'].pk}>, N<{g['N'].pk}> by residual_training_set<{g['residual'].creator.pk}>)"
    ) in out
    c_line = next(line for line in lines if f"C: ChimesPotentialData<{g['C'].pk}>" in line)
    assert c_line.endswith(
        "tiles C  'C tile'  [registry: tile C, signature "
        f"{g['C'].base.extras.get('chimes_tile_signature_sha256')[:12]}, project carbon]  imported"
    )
    assert lines[-1].endswith(f"└── N: ChimesPotentialData<{g['N'].pk}>  tiles N  'N tile'  imported")


def test_show_json_and_dot(run_cli, merged_graph):
    g = merged_graph
    tree = json.loads(run_cli("--format", "json", g["merged"].uuid))
    assert tree["origin"] == "merge" and tree["tiles"] == ["C", "CN", "N"]
    assert tree["settings"] == {"penalty": [0.01, 1.0e4]}
    assert [(p["link"], p["pk"], p["origin"]) for p in tree["parts"]] == [
        ("new_fit", g["new_fit"].pk, "regression"),
        ("C", g["C"].pk, "imported"),
        ("N", g["N"].pk, "imported"),
    ]
    fit = tree["parts"][0]["fit"]
    assert fit["fit_system"]["pk"] == g["fit_system"].pk and fit["design_matrix"]["pk"] == g["design"].pk
    assert fit["training_set"]["nframes"] == 1 and fit["training_set"]["origin"] == "residual_training_set"
    assert tree["parts"][1]["registry"]["tile"] == "C" and tree["parts"][2]["registry"] is None

    dot = run_cli("-F", "dot", g["merged"].pk)
    assert dot.startswith("digraph potential {") and dot.rstrip().endswith("}")
    merge_pk = g["merged"].creator.pk
    for edge in (
        f'n{merge_pk} -> n{g["merged"].pk} [label="result"]',
        f'n{g["C"].pk} -> n{merge_pk} [label="C"]',
        f'n{g["new_fit"].pk} -> n{merge_pk} [label="new_fit"]',
        f'n{g["regression"].pk} -> n{g["new_fit"].pk} [label="potential"]',
        f"n{g['fit_system'].pk} -> n{g['regression'].pk}",
        f"n{g['N'].pk} -> n{g['residual'].creator.pk}",
        f'n{g["residual"].pk} -> n{g["design"].pk} [label="training_set"]',
    ):
        assert edge in dot
    assert f'n{g["C"].pk} [label="ChimesPotentialData<{g["C"].pk}>\\ntiles C\\nimported", shape=box];' in dot

    # `potential provenance` gives the same graph (json by default, dot on request)
    def provenance(*args):
        result = CliRunner().invoke(cmd_root, ["-p", run_cli.profile, "potential", "provenance", *map(str, args)])
        assert result.exit_code == 0, result.output
        return result.output

    assert json.loads(provenance(g["merged"].pk)) == tree
    assert provenance("-F", "dot", g["merged"].pk) == dot


def test_show_an_imported_potential(run_cli):
    node = ChimesPotentialData(hierarch_params_path("N.params.txt.reduced")).store()
    assert run_cli(node.pk).strip() == f"ChimesPotentialData<{node.pk}>  tiles N  imported"
    tree = json.loads(run_cli("--format", "json", node.pk))
    assert tree["origin"] == "imported" and tree["creator"] is None and tree["sha256"] == node.sha256
