"""``aiida-chimes potential show`` / ``provenance`` and the provenance queries on a real C/N campaign.

The campaign is the session fixture of ``tests/workflows/conftest.py``: tiles C and N,
then CN on their residuals, each by active learning with xTB labels, merged.  Expected numbers come from direct
queries of the graph, independent of the code under test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node
from click.testing import CliRunner

from aiida_chimes.cli import cmd_root
from aiida_chimes.tools.queries import (
    campaign_of,
    potentials_using_tile,
    reference_calculations,
    reference_calculations_below,
)
from tests.workflows.campaign import campaign_builder

DOCS = Path(__file__).parents[2] / "docs" / "provenance.md"
TILES = ("C", "CN", "N")


@pytest.fixture
def cli(aiida_profile):
    """``aiida-chimes potential <command> ARGS`` on the test profile; returns the output."""

    def run(command, *args):
        result = CliRunner().invoke(cmd_root, ["-p", aiida_profile.name, "potential", command, *map(str, args)])
        assert result.exit_code == 0, result.output
        return result.output

    return run


def _called(process, label: str):
    """The process ``process`` called with call link ``label``."""
    links = process.base.links.get_outgoing(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK), link_label_filter=label)
    return links.one().node


def _label_count(al) -> int:
    """LabelXtbCalculations of an active-learning run: AL -> ReferenceWorkChain -> CalcJob, in one query."""
    qb = orm.QueryBuilder()
    qb.append(orm.WorkflowNode, filters={"id": al.pk}, tag="al")
    qb.append(
        orm.WorkflowNode,
        with_incoming="al",
        filters={"attributes.process_label": "ReferenceWorkChain"},
        tag="reference",
    )
    qb.append(
        orm.CalcJobNode,
        with_incoming="reference",
        filters={"process_type": "aiida.calculations:chimes.label_xtb"},
        project="id",
    )
    return qb.count()


def _expected(results, node) -> dict:
    """Per tile: the run, its last fit and the figures potential show must print."""
    out = {}
    for name in TILES:
        tile = results["tile_potentials"][name]
        al = _called(node, f"tile_{name}")
        fit = tile.creator.caller
        summary = al.outputs.summary.get_dict()
        last = summary["cycles"][-1]
        out[name] = {
            "tile": tile,
            "al": al,
            "fit": fit,
            "fit_label": _called(al, "fit_cycle_001").pk == fit.pk,
            "cycles": summary["cycles_done"],
            "converged": summary["converged"],
            "labels": _label_count(al),
            "frames": fit.outputs.fit_system.nframes,
            "fit_system": fit.outputs.fit_system,
            "residual_set": al.outputs.training_set,
            "before": last["errors_before"]["force_rmse"],
            "after": last["errors_after"]["force_rmse"],
        }
    return out


def test_show_campaign_text(campaign, cli):  # noqa: F811
    results, node = campaign
    merged = results["potential"]
    expected = _expected(results, node)
    out = cli("show", merged.pk)
    lines = out.splitlines()
    assert lines[0] == f"ChimesPotentialData<{merged.pk}>  tiles C CN N"
    total = len(reference_calculations(merged))
    assert total == sum(e["labels"] for e in expected.values())
    assert lines[1] == (
        f"├── campaign: HierarchicalFitWorkChain<{node.pk}>  [finished 0]  mode full; tiles C (fitted), "
        f"CN (fitted), N (fitted); {total} reference calculations fed this potential  "
        f"(verdi process report {node.pk})"
    )
    assert lines[2] == f"└── merge_tiles<{merged.creator.pk}>  [finished 0]"
    for name, e in expected.items():
        assert e["fit_label"] and e["cycles"] == 1 and e["frames"] == 6
        link = "new_fit" if name == "CN" else name
        head = next(
            i for i, line in enumerate(lines) if f"{link}: ChimesPotentialData<{e['tile'].pk}>  tiles {name}" in line
        )
        block = [line.lstrip("│ ├└─") for line in lines[head + 1 : head + 5]]
        assert block == [
            f"origin: fitted by active learning in ActiveLearningWorkChain<{e['al'].pk}>  [finished 0]  "
            f"(tile_{name} of HierarchicalFitWorkChain<{node.pk}>)",
            f"1 cycle, {'converged' if e['converged'] else 'not converged'}; {e['labels']} reference calculations; "
            f"{e['frames']} training frames",
            f"force RMSE of cycle 1 on its new frames: {e['before']:.4f} eV/A before the refit, {e['after']:.4f} "
            "eV/A after",
            f"inspect: verdi process report {e['al'].pk}, FitWorkChain<{e['fit'].pk}> (fit_cycle_001), "
            f"FitSystemData<{e['fit_system'].pk}> (fit system), TrainingSetData<{e['residual_set'].pk}> (residual set)",
        ]
        # the regression of the last cycle and its data stay in the tree
        assert f"RegressionCalculation<{e['tile'].creator.pk}>  [finished 0]" in out
    residual = _called(expected["CN"]["al"], "residual_cycle_001")
    assert (
        f"training_set: TrainingSetData<{residual.outputs.result.pk}>  2 frames, 20 atoms  (residual of "
        f"C<{expected['C']['tile'].pk}>, N<{expected['N']['tile'].pk}> by residual_training_set<{residual.pk}>)"
    ) in out


def test_show_campaign_json_and_dot(campaign, cli):  # noqa: F811
    results, node = campaign
    merged = results["potential"]
    expected = _expected(results, node)
    tree = json.loads(cli("show", "-F", "json", merged.pk))
    assert tree["campaign"]["pk"] == node.pk and tree["campaign"]["mode"] == "full"
    assert tree["campaign"]["reference_calculations"] == len(reference_calculations(merged))
    assert {n: t["origin"] for n, t in tree["campaign"]["tiles"].items()} == dict.fromkeys(TILES, "fitted")
    parts = {p["tile_name"]: p for p in tree["parts"]}
    assert sorted(parts) == list(TILES) and parts["CN"]["link"] == "new_fit"
    for name, e in expected.items():
        part = parts[name]
        assert part["pk"] == e["tile"].pk and part["tile_origin"] == "active_learning"
        al = part["active_learning"]
        assert (al["pk"], al["call_link"], al["campaign"]["pk"]) == (e["al"].pk, f"tile_{name}", node.pk)
        assert (al["cycles_done"], al["converged"], al["reference_calculations"], al["training_frames"]) == (
            e["cycles"],
            e["converged"],
            e["labels"],
            e["frames"],
        )
        assert (al["force_rmse_before"], al["force_rmse_after"]) == (e["before"], e["after"])
        assert (al["fit"]["pk"], al["fit"]["call_link"]) == (e["fit"].pk, "fit_cycle_001")
        assert (al["fit_system"]["pk"], al["residual_set"]["pk"]) == (e["fit_system"].pk, e["residual_set"].pk)
    assert json.loads(cli("provenance", merged.pk)) == tree

    dot = cli("provenance", "-F", "dot", merged.pk)
    assert dot == cli("show", "-F", "dot", merged.pk)
    assert f'n{node.pk} -> n{merged.pk} [label="potential", style=dashed];' in dot
    assert f'n{node.pk} -> n{merged.creator.pk} [label="merge_tiles", style=dashed];' in dot
    for name, e in expected.items():
        al = e["al"].pk
        assert f'n{node.pk} -> n{al} [label="tile_{name}", style=dashed];' in dot
        assert f'n{al} -> n{e["fit"].pk} [label="fit_cycle_001", style=dashed];' in dot
        assert f'n{e["fit"].pk} -> n{e["tile"].creator.pk} [label="call", style=dashed];' in dot
        assert f"{e['labels']} reference calculations\\n{e['frames']} training frames" in dot


def test_queries_on_the_campaign(campaign):  # noqa: F811
    results, node = campaign
    merged = results["potential"]
    labels = sorted(n.pk for n in node.called_descendants if n.process_label == "LabelXtbCalculation")
    assert len(labels) == 6  # ALC-0 and cycle 1 of three tiles
    found = reference_calculations(merged)
    assert [n.pk for n in found] == labels and all(isinstance(n, orm.CalcJobNode) for n in found)
    assert [n.pk for n in reference_calculations_below(node)] == labels
    c_tile = results["tile_potentials"]["C"]
    users = {p.pk for p in potentials_using_tile(c_tile)}
    assert merged.pk in users and results["tile_potentials"]["CN"].pk in users  # CN fitted on residuals of C
    merges = {p.pk for p in potentials_using_tile(c_tile, merged_only=True)}
    assert merged.pk in merges and results["tile_potentials"]["CN"].pk not in merges
    assert all(orm.load_node(pk).creator.process_label == "merge_tiles" for pk in merges)
    assert campaign_of(merged).pk == node.pk
    assert campaign_of(c_tile).pk == node.pk  # a tile output of the campaign
    assert campaign_of(results["reference_sets"]["C"]) is None


def test_docs_recipes_run(campaign):  # noqa: F811
    """Every python block of docs/provenance.md runs on the campaign and agrees with the query functions."""
    results, node = campaign
    merged, tile = results["potential"], results["tile_potentials"]["C"]
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert len(blocks) >= 4
    namespace = {"MERGED_PK": merged.pk, "TILE_PK": tile.pk}
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), namespace)  # our own documentation
    assert namespace["reference_pks"] == [n.pk for n in reference_calculations(merged)]
    assert merged.pk in namespace["merged_pks"] and namespace["campaigns"][merged.pk].pk == node.pk
    assert namespace["merge_inputs"] == {
        "new_fit": results["tile_potentials"]["CN"].pk,
        "C": tile.pk,
        "N": results["tile_potentials"]["N"].pk,
    }
    assert sorted(namespace["runs"]) == list(TILES)
    assert tile.pk in [pk for pk, _, _ in namespace["registered_c"]]


def _second_campaign(codes, campaign, how):  # noqa: F811
    """A campaign that makes no tile: all taken from the registry, given as inputs, or taken over by a restart."""
    results, node = campaign
    inputs = {
        "reused": {"reuse_tiles": orm.Bool(True)},
        "given": {"tiles": dict(results["tile_potentials"])},
        "restart": {"restart_from": node},
    }[how]
    again, second = run_get_node(campaign_builder(codes, **inputs))
    assert second.is_finished_ok, (second.exit_status, second.exit_message)
    assert not [c for c in second.called_descendants if isinstance(c, orm.CalcJobNode)]
    return again, second


@pytest.mark.parametrize("how", ["reused", "given"])
def test_show_tiles_made_elsewhere(campaign, codes, cli, how):  # noqa: F811
    """Tiles not fitted by the campaign: its origin, registry extras and the run and campaign that fitted it."""
    results, node = _second_campaign(codes, campaign, how)
    merged = results["potential"]
    assert campaign_of(merged).pk == node.pk
    out = cli("show", merged.pk)
    tree = json.loads(cli("show", "-F", "json", merged.pk))
    assert tree["campaign"]["pk"] == node.pk
    parts = {p["tile_name"]: p for p in tree["parts"]}
    assert sorted(parts) == list(TILES)
    for name in TILES:
        tile = results["tile_potentials"][name]
        al = tile.creator.caller.caller  # the run that fitted it, in an earlier campaign
        original = al.caller
        assert original.pk != node.pk and campaign_of(tile).pk == original.pk
        part = parts[name]
        raw = {"reused": f"reused {tile.pk}", "given": "given"}[how]
        assert part["tile_origin"] == how and part["campaign_origin"] == raw
        assert tree["campaign"]["tiles"][name] == {"origin": raw, "potential": tile.pk, "active_learning": None}
        extras = tile.base.extras
        assert part["registry"] == {
            "tile": name,
            "signature_sha256": extras.get("chimes_tile_signature_sha256"),
            "project": extras.get("chimes_tile_project"),
        }
        assert part["fitted_in"]["pk"] == original.pk and part["active_learning"]["pk"] == al.pk
        sig = extras.get("chimes_tile_signature_sha256")[:12]
        by = f"HierarchicalFitWorkChain<{node.pk}>"
        line = {
            "reused": f"origin: reused from the tile registry by {by} (group chimes/tiles, signature {sig})",
            "given": f"origin: given to {by} as tiles.{name}",
        }[how]
        assert f"{line}; made in HierarchicalFitWorkChain<{original.pk}>\n" in out
        assert (
            f"active learning: ActiveLearningWorkChain<{al.pk}>  [finished 0]  (tile_{name} of "
            f"HierarchicalFitWorkChain<{original.pk}>)\n" in out
        )
        assert f"[registry: tile {name}, signature {sig}, project test-campaign]" in out
    # the reference calculations are those of the campaign that fitted the tiles
    assert tree["campaign"]["reference_calculations"] == len(reference_calculations(merged)) == 6


def test_show_restarted_campaign(campaign, codes, cli):  # noqa: F811
    """A restart continues every tile's active learning; done at the cycle limit, the runs return the old fits."""
    results, node = _second_campaign(codes, campaign, "restart")
    old = campaign[1]
    merged = results["potential"]
    out = cli("show", merged.pk)
    dot = cli("provenance", "-F", "dot", merged.pk)
    tree = json.loads(cli("show", "-F", "json", merged.pk))
    assert tree["campaign"]["pk"] == node.pk == campaign_of(merged).pk
    parts = {p["tile_name"]: p for p in tree["parts"]}
    for name in TILES:
        tile = results["tile_potentials"][name]
        run, earlier = _called(node, f"tile_{name}"), _called(old, f"tile_{name}")
        assert tile.creator.caller.caller.pk == earlier.pk  # the fit was made by the earlier run
        assert tree["campaign"]["tiles"][name] == {"origin": "fitted", "potential": tile.pk, "active_learning": run.pk}
        al = parts[name]["active_learning"]
        assert parts[name]["tile_origin"] == "active_learning"
        assert (al["pk"], al["campaign"]["pk"], al["restarted_from"]["pk"]) == (run.pk, node.pk, earlier.pk)
        labels = _label_count(earlier)
        assert al["reference_calculations"] == labels == 2 and _label_count(run) == 0
        assert (
            f"origin: fitted by active learning in ActiveLearningWorkChain<{run.pk}>  [finished 0]  (tile_{name} of "
            f"HierarchicalFitWorkChain<{node.pk}>)\n"
        ) in out
        assert (
            f"1 cycle, restarted from ActiveLearningWorkChain<{earlier.pk}>, not converged; {labels} reference "
            f"calculations; 6 training frames\n"
        ) in out
        fit = tile.creator.caller
        assert f"FitWorkChain<{fit.pk}> (fit_cycle_001 of ActiveLearningWorkChain<{earlier.pk}>)" in out
        assert al["fit"]["called_by"]["pk"] == earlier.pk
        assert f'n{run.pk} -> n{earlier.pk} [label="restart_from", style=dashed];' in dot
        assert f'n{earlier.pk} -> n{fit.pk} [label="fit_cycle_001", style=dashed];' in dot
    assert [n.pk for n in reference_calculations_below(node)] == [n.pk for n in reference_calculations(merged)]


def test_vasp_reference_calculations(cn_structures, vasp_inputs):
    """VASP labelling: the VaspCalculations under a ReferenceWorkChain, and behind its labelled set."""
    from aiida_chimes.workflows.reference import ReferenceWorkChain

    builder = ReferenceWorkChain.get_builder()
    builder.structures = cn_structures
    builder.method = orm.Str("vasp")
    builder.vasp.vasp = vasp_inputs
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_status
    calcs = sorted(n.pk for n in node.called_descendants if n.process_type == "aiida.calculations:vasp.vasp")
    assert len(calcs) == 3
    assert [n.pk for n in reference_calculations(results["training_set"])] == calcs
    assert [n.pk for n in reference_calculations_below(node)] == calcs
