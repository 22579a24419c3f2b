"""Calcfunctions of hierarchical fitting: residual training data and merged potentials, with full provenance.

Lower tiles come in as dynamic keyword inputs keyed by tile name (:func:`tile_link_label`: ``C``, ``N``, ``C_CN_N``
for a merged lower potential), so every lower tile potential gets its own provenance link.

Failure mode: an inconsistent input (a :class:`~aiida_chimes.chimes.hierarchy.HierarchyError`: the message names
the tile, the setting and the fix) makes the calcfunction return exit code :data:`ERROR_INCONSISTENT_TILES`
(``Finished [320]``, the message as ``exit_message``), so a WorkChain can test ``node.is_finished_ok`` after
``run_get_node``; such a node is never used as a cache source.  Wrong input types raise (programming errors).
"""

from aiida import orm
from aiida.engine import ExitCode, Process, calcfunction

from aiida_chimes.chimes.hierarchy import HierarchyError, residual_frames
from aiida_chimes.chimes.hierarchy import merge_tiles as _merge_params
from aiida_chimes.data.potential import ChimesPotentialData
from aiida_chimes.data.training_set import TrainingSetData

__all__ = ("ERROR_INCONSISTENT_TILES", "merge_tiles", "residual_training_set", "tile_link_label")

#: Exit status of a refused merge or residual (inconsistent tiles); ``exit_message`` holds the reason.
ERROR_INCONSISTENT_TILES = 320


def tile_link_label(potential: ChimesPotentialData) -> str:
    """Input link label of a lower tile: its tile names joined by ``_`` (``C``; ``C_CN_N`` for a merged file)."""
    tiles = potential.tiles or []
    if not tiles:
        raise ValueError(f"{type(potential).__name__}<{potential.pk}> holds no tile (every coefficient is zero)")
    return "_".join("".join(sorted(t)) for t in tiles)


def _lower_params(lower_tiles: dict) -> list:
    """Parsed lower potentials in the order of their sorted link labels; each one named by its label and content."""
    out = []
    for key in sorted(lower_tiles):
        node = lower_tiles[key]
        if not isinstance(node, ChimesPotentialData):
            raise TypeError(f"lower tile {key!r} is a {type(node).__name__}, expected a ChimesPotentialData")
        out.append(_named_params(node, key))
    return out


def _named_params(node: ChimesPotentialData, key: str):
    """The parameters of ``node`` named ``key [sha256 ...]``: deterministic, so equal inputs give equal files."""
    params = node.get_params()
    params.source = f"{key} [sha256 {node.sha256[:12]}]"
    return params


def _refused(exc: HierarchyError, inputs: dict) -> ExitCode:
    """Exit code of an inconsistent input; the message lists the input nodes; the node is no cache source."""
    nodes = ", ".join(f"{k}={type(v).__name__}<{v.pk}>" for k, v in sorted(inputs.items()))
    process = Process.current()
    if process is not None:
        process.node.base.caching.is_valid_cache = False
    return ExitCode(ERROR_INCONSISTENT_TILES, f"inconsistent tiles: {exc} [inputs: {nodes}]")


@calcfunction
def residual_training_set(training_set: TrainingSetData, **lower_tiles: ChimesPotentialData) -> TrainingSetData:
    """Frames labelled with the reference minus the lower tiles' contributions (the training data of a higher tile)."""
    if not isinstance(training_set, TrainingSetData):
        raise TypeError(f"training_set is a {type(training_set).__name__}, expected a TrainingSetData")
    if not lower_tiles:
        raise ValueError("residual_training_set needs at least one lower tile (keyword inputs keyed by tile name)")
    lower = _lower_params(lower_tiles)
    try:
        frames = residual_frames(training_set.get_frameset(), lower)
    except HierarchyError as exc:
        return _refused(exc, {"training_set": training_set, **lower_tiles})
    return TrainingSetData(frames)


@calcfunction
def merge_tiles(
    new_fit: ChimesPotentialData,
    penalty: orm.List | None = None,
    lower_blocks: orm.Str | None = None,
    **lower_tiles: ChimesPotentialData,
) -> ChimesPotentialData:
    """One parameter file holding the new (higher-tile) fit and its lower tiles; the model is the sum of the parts.

    ``penalty``: optional [dist, scaling] of the merged file (needed when the parts disagree); ``lower_blocks``:
    ``strict`` (default: refuse a new fit holding lower-tile coefficients) or ``replace`` (discard them).
    """
    if not isinstance(new_fit, ChimesPotentialData):
        raise TypeError(f"new_fit is a {type(new_fit).__name__}, expected a ChimesPotentialData")
    if not lower_tiles:
        raise ValueError("merge_tiles needs at least one lower tile (keyword inputs keyed by tile name)")
    pen = None
    if penalty is not None:
        pen = penalty.get_list()
        if len(pen) != 2:
            raise ValueError(f"penalty must be [dist, scaling], got {pen}")
    mode = "strict" if lower_blocks is None else lower_blocks.value
    lower = _lower_params(lower_tiles)
    try:
        merged = _merge_params(_named_params(new_fit, "new_fit"), lower, penalty=pen, lower_blocks=mode)
    except HierarchyError as exc:
        return _refused(exc, {"new_fit": new_fit, **lower_tiles})
    return ChimesPotentialData.from_params(merged)
