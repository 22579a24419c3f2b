"""End to end: a C/N hierarchical active-learning campaign with real CalcJobs (xTB reference, tiny protocol).

One campaign (session fixture, tests/workflows/conftest.py) fits tiles C and N (row 1), then the CN cross
tile on residuals (row 2), and merges them.  The tests check its outputs against direct evaluation, the
provenance links merged -> tiles -> residual sets -> reference calculations, the reports, tile reuse, caching
and restart.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node

from aiida_chimes.chimes.errors import predict
from aiida_chimes.chimes.hierarchy import tile_contribution
from tests.workflows.campaign import campaign_builder


def test_outputs_and_tiles(campaign):
    results, node = campaign
    assert sorted(results["tile_potentials"]) == ["C", "CN", "N"]
    merged = results["potential"]
    assert merged.elements == ["C", "N"]
    assert sorted("".join(sorted(t)) for t in merged.tiles) == ["C", "CN", "N"]
    summary = results["summary"].get_dict()
    assert {name: entry["origin"] for name, entry in summary["tiles"].items()} == {
        "C": "fitted",
        "N": "fitted",
        "CN": "fitted",
    }
    assert all(entry["cycles"] == 1 for entry in summary["tiles"].values())
    # the CN fit holds cross terms only
    cn = results["tile_potentials"]["CN"]
    assert ["C", "N"] in cn.tiles and len(cn.tiles) == 1


def test_merged_equals_sum_of_tiles(campaign):
    """The merged file evaluates to the sum of its tiles, each on its own elements (the hierarchical model)."""
    results, _ = campaign
    frames = results["reference_sets"]["CN"].get_frameset()
    merged = predict(frames, results["potential"].get_params())
    total = {"energy": 0.0, "forces": 0.0, "stress": 0.0}
    for name in ("C", "N", "CN"):
        part = tile_contribution(frames, results["tile_potentials"][name].get_params())
        for key in total:
            total[key] = total[key] + part[key]
    np.testing.assert_allclose(merged["energy"], total["energy"], rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(merged["forces"], total["forces"], rtol=1e-9, atol=1e-8)


def test_residual_sets_are_reference_minus_lower_tiles(campaign):
    results, _ = campaign
    raw = results["reference_sets"]["CN"].get_frameset()
    residual = results["residual_sets"]["CN"].get_frameset()
    lower = [tile_contribution(raw, results["tile_potentials"][n].get_params()) for n in ("C", "N")]
    np.testing.assert_allclose(residual.energy, raw.energy - lower[0]["energy"] - lower[1]["energy"], atol=1e-8)
    np.testing.assert_allclose(residual.forces, raw.forces - lower[0]["forces"] - lower[1]["forces"], atol=1e-8)


def _ancestors(node, cls):
    qb = orm.QueryBuilder()
    qb.append(orm.Node, filters={"id": node.pk}, tag="node")
    qb.append(cls, with_descendants="node")
    return qb.all(flat=True)


def test_provenance_merged_to_reference_calculations(campaign):
    """merged <- merge_tiles <- tile fits <- fit systems <- residual sets <- reference (xTB) CalcJobs."""
    results, _ = campaign
    merged = results["potential"]
    creator = merged.creator
    assert creator.process_label == "merge_tiles"
    inputs = {
        link.link_label: link.node for link in creator.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all()
    }
    assert {n.pk for n in inputs.values()} == {p.pk for p in results["tile_potentials"].values()}
    residual_creator = results["residual_sets"]["CN"]
    assert any(n.process_label == "residual_training_set" for n in _ancestors(merged, orm.CalcFunctionNode))
    labels = {n.pk for n in _ancestors(merged, orm.CalcJobNode) if n.process_label == "LabelXtbCalculation"}
    assert len(labels) >= 6  # initial + cycle-1 labelling of each of the three tiles
    # the CN residual-set output joins the residual sets of its cycles, and every one of those fed the merged file
    parts = residual_creator.creator.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all_nodes()
    assert residual_creator.creator.process_label == "concatenate_training_sets" and len(parts) == 2
    ancestors = {n.pk for n in _ancestors(merged, orm.Data)}
    assert all(part.pk in ancestors and part.creator.process_label == "residual_training_set" for part in parts)


def test_reports(campaign):
    from aiida.cmdline.utils.common import get_workchain_report

    _, node = campaign
    text = get_workchain_report(node, "REPORT", max_depth=None)
    assert "fits row by row: C, N | CN" in text
    assert "cycle_001: MD stable at" in text
    assert "before" in text and "after the refit" in text
    assert "merged tiles" in text


def test_tiles_registered_and_reused(campaign, codes):
    from aiida_chimes.tools.tiles import GROUP_LABEL

    results, _ = campaign
    group = orm.load_group(GROUP_LABEL)
    registered = {n.pk for n in group.nodes}
    assert {p.pk for p in results["tile_potentials"].values()} <= registered
    again, node = run_get_node(campaign_builder(codes, reuse_tiles=orm.Bool(True)))
    assert node.is_finished_ok, node.exit_status
    origins = {k: v["origin"] for k, v in again["summary"].get_dict()["tiles"].items()}
    assert all(o.startswith("reused") for o in origins.values()), origins
    assert not [c for c in node.called_descendants if isinstance(c, orm.CalcJobNode)]
    assert again["potential"].sha256 == results["potential"].sha256


def test_rerun_with_caching_launches_no_calcjob(campaign, codes):
    """With caching on, an identical campaign (MD seeds are inputs) creates every CalcJob from the cache."""
    from aiida.manage.caching import enable_caching

    results, _ = campaign
    with enable_caching():
        again, node = run_get_node(campaign_builder(codes, project=orm.Str("test-campaign")))
    assert node.is_finished_ok, node.exit_status
    calcjobs = [c for c in node.called_descendants if isinstance(c, orm.CalcJobNode)]
    assert len(calcjobs) >= 15
    launched = [c for c in calcjobs if not c.base.caching.is_created_from_cache]
    assert not launched, [(c.process_label, c.pk) for c in launched]
    assert again["potential"].sha256 == results["potential"].sha256


def _tile_runs(node) -> dict:
    return {link.link_label[len("tile_"):]: link.node
            for link in node.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()
            if link.link_label.startswith("tile_")}


def test_restart_reuses_every_cycle_done(campaign, codes):
    """restart_from a finished campaign: same inputs launch no CalcJob; one more cycle continues C and N from
    their last cycle, and CN (whose lower tiles changed) is fitted anew."""
    results, first = campaign
    same, node = run_get_node(campaign_builder(codes, restart_from=first, register_tiles=orm.Bool(False)))
    assert node.is_finished_ok, node.exit_status
    assert not [c for c in node.called_descendants if isinstance(c, orm.CalcJobNode)]
    assert same["potential"].sha256 == results["potential"].sha256

    more, node = run_get_node(campaign_builder(codes, max_cycles=2, restart_from=first,
                                               register_tiles=orm.Bool(False)))
    assert node.is_finished_ok, node.exit_status
    old, new = _tile_runs(first), _tile_runs(node)
    for name in ("C", "N"):
        assert new[name].base.extras.get("restart_from") == old[name].uuid
        fits = [link.link_label for link in new[name].base.links.get_outgoing().all()
                if link.link_label.startswith("fit_cycle")]
        assert fits == ["fit_cycle_002"]
        history = {link.link_label.split("__")[1] for link in new[name].base.links.get_outgoing().all()
                   if link.link_label.startswith("history__")}
        assert history == {"cycle_000", "cycle_001", "cycle_002"}
        added = new[name].outputs.history.cycle_002.residual_set.nframes
        assert new[name].outputs.fit_system.nframes == old[name].outputs.fit_system.nframes + added
    assert node.base.extras.get("restart_from") == first.uuid
    assert new["CN"].base.extras.get("restart_from", None) is None
    assert new["CN"].outputs.summary["cycles_done"] == 2


def test_partial_mode_fits_the_rest_with_the_cross_terms(campaign, codes):
    """Partial mode with only the C tile given: one active-learning fit holds N and the CN cross terms."""
    results, _ = campaign
    c_tile = results["tile_potentials"]["C"]
    partial, node = run_get_node(campaign_builder(codes, mode=orm.Str("partial"), tiles={"C": c_tile},
                                                  register_tiles=orm.Bool(False)))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    assert sorted(partial["tile_potentials"]) == ["C", "CN"]
    assert partial["tile_potentials"]["C"].pk == c_tile.pk
    fitted = partial["tile_potentials"]["CN"]
    assert sorted("".join(sorted(t)) for t in fitted.tiles) == ["CN", "N"]  # N and the cross terms, never C
    runs = _tile_runs(node)
    assert sorted(runs) == ["CN"]
    assert sorted(runs["CN"].inputs.state_points.get_dict()) == ["CN", "N"]  # the pure-C point has nothing to fit
    excluded = runs["CN"].inputs.settings.get_dict()["exclude"]
    assert excluded == {"1": ["C"], "2": ["C C"], "3": ["C C C"]}
    assert sorted("".join(sorted(t)) for t in partial["potential"].tiles) == ["C", "CN", "N"]
