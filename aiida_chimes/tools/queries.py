"""Provenance questions users ask about potentials, answered from the AiiDA graph (see docs/provenance.md).

Two kinds of walk: along the *data* provenance (``CREATE`` and ``INPUT_CALC`` links, what a node was computed from;
one recursive ``QueryBuilder`` join, ``with_descendants`` / ``with_ancestors``) and along the *call* hierarchy
(``CALL_CALC`` / ``CALL_WORK`` links, which processes a workflow ran; one query per level).
"""

from __future__ import annotations

from aiida import orm
from aiida.common.links import LinkType

#: process types of the reference (QM) calculations that label training frames
REFERENCE_PROCESS_TYPES = ("aiida.calculations:chimes.label_xtb", "aiida.calculations:vasp.vasp")
#: process type of the hierarchical campaign (``chimes.hierarchical``)
HIERARCHICAL_PROCESS_TYPE = "aiida.workflows:chimes.hierarchical"
#: process type of the active-learning run of one tile (``chimes.active_learning``)
ACTIVE_LEARNING_PROCESS_TYPE = "aiida.workflows:chimes.active_learning"
#: process type of the ``merge_tiles`` calcfunction
MERGE_PROCESS_TYPE = "aiida.calculations:chimes.merge_tiles"
_CALL_LINKS = (LinkType.CALL_CALC.value, LinkType.CALL_WORK.value)


def _sorted(nodes) -> list:
    """Unique nodes sorted by pk."""
    return sorted({n.pk: n for n in nodes}.values(), key=lambda n: n.pk)


def ancestors(node) -> set[int]:
    """Pks of everything ``node`` was computed from (data and calculations, through CREATE and INPUT_CALC)."""
    qb = orm.QueryBuilder().append(orm.Node, filters={"id": node.pk}, tag="node")
    qb.append(orm.Node, with_descendants="node", project="id")
    return set(qb.all(flat=True)) - {node.pk}


def descendants(node) -> set[int]:
    """Pks of everything computed from ``node`` (through INPUT_CALC and CREATE)."""
    qb = orm.QueryBuilder().append(orm.Node, filters={"id": node.pk}, tag="node")
    qb.append(orm.Node, with_ancestors="node", project="id")
    return set(qb.all(flat=True)) - {node.pk}


def reference_calculations(potential) -> list:
    """The reference calculations (xTB labelling CalcJobs, VASP calculations) whose labels fed ``potential``.

    Every reference CalcJob among the data-provenance ancestors: for a merged potential that is every labelling
    of every tile's active learning (ALC-0 and each cycle), since each cycle's frames are folded into the fit.
    """
    qb = orm.QueryBuilder().append(orm.Node, filters={"id": potential.pk}, tag="potential")
    qb.append(orm.CalcJobNode, with_descendants="potential", project="*",
              filters={"process_type": {"in": list(REFERENCE_PROCESS_TYPES)}})
    return _sorted(qb.all(flat=True))


def potentials_using_tile(tile, *, merged_only: bool = False) -> list:
    """Every ChIMES potential computed from the tile potential ``tile`` (merged with it, or fitted on its residuals).

    ``merged_only``: only the potentials made by ``merge_tiles`` (the tile an input of the merge or of a fit
    that went into it).
    """
    from aiida_chimes.data.potential import ChimesPotentialData

    qb = orm.QueryBuilder().append(orm.Node, filters={"id": tile.pk}, tag="tile")
    qb.append(ChimesPotentialData, with_ancestors="tile", tag="potential", project="*")
    if merged_only:
        qb.append(orm.CalcFunctionNode, with_outgoing="potential", filters={"process_type": MERGE_PROCESS_TYPE})
    return _sorted(qb.all(flat=True))


def _callers(process) -> list[int]:
    """Pks of the callers of ``process``, innermost first."""
    out = []
    while process is not None:
        process = process.caller
        if process is not None:
            out.append(process.pk)
    return out


def campaign_of(potential):
    """The ``chimes.hierarchical`` run (HierarchicalFitWorkChain node) that output ``potential``, or None.

    Its merged ``potential`` output or one of its ``tile_potentials``.  Several campaigns can output the same node
    (a tile reused from the registry, or taken over by a restart); then the one that made it is returned (the
    node's creator was called by it), else the one that returned it as its merged potential, else the first.
    """
    qb = orm.QueryBuilder().append(orm.Node, filters={"id": potential.pk}, tag="potential")
    qb.append(orm.WorkflowNode, with_outgoing="potential", project=["*"], edge_project=["label"],
              filters={"process_type": HIERARCHICAL_PROCESS_TYPE},
              edge_filters={"type": LinkType.RETURN.value})
    rows = [(node, label) for node, label in qb.all() if label == "potential" or label.startswith("tile_potentials__")]
    if not rows:
        return None
    creator = potential.creator
    made_by = set(_callers(creator)) if creator is not None else set()
    rows.sort(key=lambda r: (r[0].pk not in made_by, r[1] != "potential", r[0].pk))
    return rows[0][0]


def called_descendants(process, process_types=None) -> list:
    """Every process called below ``process`` (through CALL links, all levels), optionally of ``process_types``."""
    found, frontier = {}, [process.pk]
    while frontier:
        qb = orm.QueryBuilder().append(orm.ProcessNode, filters={"id": {"in": frontier}}, tag="caller")
        qb.append(orm.ProcessNode, with_incoming="caller", edge_filters={"type": {"in": list(_CALL_LINKS)}},
                  project="*")
        called = [n for n in qb.all(flat=True) if n.pk not in found]
        found.update((n.pk, n) for n in called)
        frontier = [n.pk for n in called]
    nodes = found.values()
    if process_types is not None:
        nodes = [n for n in nodes if n.process_type in process_types]
    return _sorted(nodes)


def restarted_from(process):
    """The run that ``process`` continued (its ``restart_from``), or None.

    ``restart_from`` is not a link (a process node cannot be an input): the restarted run keeps the uuid of the
    earlier one in its extra ``restart_from``.  An input link of that name is followed too.
    """
    from aiida.common.exceptions import NotExistent

    link = process.base.links.get_incoming(link_label_filter="restart_from").first()
    if link is not None:
        return link.node
    uuid = process.base.extras.get("restart_from", None)
    if not uuid:
        return None
    try:
        return orm.load_node(uuid)
    except NotExistent:
        return None


def reference_calculations_below(process, *, follow_restarts: bool = True) -> list:
    """The reference CalcJobs (xTB, VASP) run below ``process`` (an active-learning run, a campaign, ...).

    Failed ones included.  ``follow_restarts``: also those of the run it continued (``restarted_from``, and so
    on), whose cycles a restarted run took over.
    """
    runs, seen = [process], {process.pk}
    while follow_restarts:
        process = restarted_from(process)
        if process is None or process.pk in seen:
            break
        runs.append(process)
        seen.add(process.pk)
    return _sorted(c for run in runs for c in called_descendants(run, REFERENCE_PROCESS_TYPES))


__all__ = [
    "ancestors",
    "called_descendants",
    "campaign_of",
    "descendants",
    "potentials_using_tile",
    "reference_calculations",
    "reference_calculations_below",
    "restarted_from",
]
