"""The hierarchy calcfunctions: provenance of merged potentials and residual data, caching, refused inputs."""

import copy

import numpy as np
import pytest
from aiida import orm
from aiida.manage.caching import enable_caching

from aiida_chimes.calculations.functions.hierarchy import (
    ERROR_INCONSISTENT_TILES,
    merge_tiles,
    residual_training_set,
    tile_link_label,
)
from aiida_chimes.chimes import hierarchy
from aiida_chimes.chimes.frames import FrameSet
from aiida_chimes.chimes.params import read_params
from aiida_chimes.data import ChimesPotentialData, TrainingSetData
from tests.helpers import DATA_DIR, hierarch_params_path

MERGE_ID = "aiida.calculations:chimes.merge_tiles"


def clean_fit_params():
    """ALC-3 (the al_driver C/N cross fit) with CC/NN pairs and offsets zeroed: it holds only the CN tile."""
    fit = read_params(DATA_DIR / "hierarchy" / "ALC-3.params.txt.gz")
    fit.pair_coeffs[0][:] = 0.0
    fit.pair_coeffs[1][:] = 0.0
    fit.energy_offsets[:] = 0.0
    return fit


@pytest.fixture
def tile_nodes():
    """Stored C and N tile potentials, keyed by their link label."""
    nodes = [ChimesPotentialData(hierarch_params_path(f"{s}.params.txt.reduced")).store() for s in "CN"]
    return {tile_link_label(n): n for n in nodes}


@pytest.fixture
def new_fit():
    return ChimesPotentialData.from_params(clean_fit_params()).store()


def test_merge_tiles_provenance_and_content(new_fit, tile_nodes):
    assert sorted(tile_nodes) == ["C", "N"]
    merged, node = merge_tiles.run_get_node(new_fit=new_fit, **tile_nodes)
    assert node.is_finished_ok and node.process_type == MERGE_ID
    assert merged.tiles == [["C"], ["C", "N"], ["N"]]

    qb = orm.QueryBuilder()
    qb.append(ChimesPotentialData, filters={"id": merged.pk}, tag="merged")
    qb.append(orm.CalcFunctionNode, with_outgoing="merged", tag="merge", project="attributes.function_name")
    qb.append(ChimesPotentialData, with_outgoing="merge", project="id", edge_project="label")
    rows = {(name, pk, label) for name, pk, label in qb.all()}
    assert rows == {
        ("merge_tiles", new_fit.pk, "new_fit"),
        ("merge_tiles", tile_nodes["C"].pk, "C"),
        ("merge_tiles", tile_nodes["N"].pk, "N"),
    }

    direct = hierarchy.merge_tiles(new_fit.get_params(), [tile_nodes[k].get_params() for k in ("C", "N")])
    assert merged.get_params().same_model(direct)
    assert f"sha256 {new_fit.sha256[:12]}" in merged.get_content()  # the file names its parts by content, not pk


def test_merge_tiles_caching(new_fit, tile_nodes):
    _, first = merge_tiles.run_get_node(new_fit=new_fit, **tile_nodes)
    again = {k: ChimesPotentialData(hierarch_params_path(f"{k}.params.txt.reduced")) for k in tile_nodes}
    with enable_caching(identifier=MERGE_ID):
        _, second = merge_tiles.run_get_node(new_fit=ChimesPotentialData.from_params(clean_fit_params()), **again)
    assert second.base.caching.is_created_from_cache
    assert second.base.caching.get_cache_source() in {first.uuid, *_merge_sources(first)}
    assert second.outputs.result.sha256 == first.outputs.result.sha256
    assert second.outputs.result.pk != first.outputs.result.pk


def _merge_sources(node):
    """UUIDs of merge_tiles nodes with the same hash (an earlier test may have made an equal one)."""
    qb = orm.QueryBuilder().append(
        orm.CalcFunctionNode, filters={"extras._aiida_hash": node.base.caching.get_hash()}, project="uuid"
    )
    return set(qb.all(flat=True))


def test_merge_tiles_penalty_and_lower_blocks(tile_nodes):
    alc3 = ChimesPotentialData(DATA_DIR / "hierarchy" / "ALC-3.params.txt.gz")
    _, refused = merge_tiles.run_get_node(new_fit=alc3, **tile_nodes)
    assert refused.exit_status == ERROR_INCONSISTENT_TILES and "lower_blocks='replace'" in refused.exit_message
    merged = merge_tiles(new_fit=alc3, penalty=orm.List([0.02, 2.0e6]), lower_blocks=orm.Str("replace"), **tile_nodes)
    assert merged.get_params().penalty == (0.02, 2.0e6)


def test_merge_tiles_refuses_inconsistent_tiles(new_fit, tile_nodes):
    """A missing N tile: exit code 320, the message names tile and fix, and the failure is never reused."""
    with enable_caching(identifier=MERGE_ID):
        for _ in range(2):
            result, node = merge_tiles.run_get_node(new_fit=new_fit, C=tile_nodes["C"])
            assert result == {} and not node.is_finished_ok and node.exit_status == ERROR_INCONSISTENT_TILES
            assert "tile N: cluster N N N is EXCLUDED" in node.exit_message
            assert f"new_fit=ChimesPotentialData<{new_fit.pk}>" in node.exit_message
            assert not node.base.caching.is_created_from_cache and not node.base.caching.is_valid_cache
    with pytest.raises(ValueError, match="at least one lower tile"):
        merge_tiles(new_fit=new_fit)


def test_residual_training_set_equals_direct_subtraction(tile_nodes):
    frames = FrameSet.from_xyzf(DATA_DIR / "xyzf" / "CN_2frames.xyzf").subset([1])  # one frame: fast enough
    training_set = TrainingSetData(frames).store()
    residual, node = residual_training_set.run_get_node(training_set=training_set, **tile_nodes)
    assert node.is_finished_ok and residual.nframes == 1
    links = {(lk.link_label, lk.node.pk) for lk in node.base.links.get_incoming().all()}
    assert links == {("training_set", training_set.pk), ("C", tile_nodes["C"].pk), ("N", tile_nodes["N"].pk)}

    direct = hierarchy.residual_frames(frames, [tile_nodes[k].get_params() for k in ("C", "N")])
    got = residual.get_frameset()
    np.testing.assert_array_equal(got.energy, direct.energy)
    np.testing.assert_array_equal(got.forces, direct.forces)
    np.testing.assert_array_equal(got.stress, direct.stress)
    assert got.tags == direct.tags == [{"residual_of": ["C", "N"]}]


def test_residual_training_set_refuses_a_tile_given_twice(tile_nodes):
    c_again = ChimesPotentialData(hierarch_params_path("C.params.txt.reduced"))
    training_set = TrainingSetData(FrameSet.from_xyzf(DATA_DIR / "xyzf" / "CN_2frames.xyzf"))
    _, node = residual_training_set.run_get_node(training_set=training_set, C=tile_nodes["C"], C_again=c_again)
    assert node.exit_status == ERROR_INCONSISTENT_TILES and "tile C is given twice" in node.exit_message


def test_tile_link_label_of_a_merged_potential(new_fit, tile_nodes):
    merged = merge_tiles(new_fit=new_fit, **tile_nodes)
    assert tile_link_label(merged) == "C_CN_N"
    empty = copy.deepcopy(clean_fit_params())
    empty.pair_coeffs[2][:] = 0.0
    for blk in (*empty.triplets, *empty.quadruplets):
        blk.values[:] = 0.0
    with pytest.raises(ValueError, match="holds no tile"):
        tile_link_label(ChimesPotentialData.from_params(empty))
