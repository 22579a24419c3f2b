"""Provenance questions users ask about potentials, answered from the AiiDA graph (see docs/provenance.md)."""

from __future__ import annotations

from aiida import orm
from aiida.common.links import LinkType
from aiida.tools.graph.graph_traversers import traverse_graph

#: process types of the reference (QM) calculations that label training frames
REFERENCE_PROCESS_TYPES = ("aiida.calculations:chimes.label_xtb", "aiida.calculations:vasp.vasp")


def _nodes(pks, cls, **filters):
    if not pks:
        return []
    qb = orm.QueryBuilder().append(cls, filters={"id": {"in": sorted(pks)}, **filters}, project="*")
    return sorted(qb.all(flat=True), key=lambda n: n.pk)


def ancestors(node) -> set[int]:
    """Pks of everything ``node`` was computed from (data and calculations, through CREATE and INPUT_CALC)."""
    res = traverse_graph([node.pk], links_backward=[LinkType.CREATE, LinkType.INPUT_CALC])
    return set(res["nodes"]) - {node.pk}


def descendants(node) -> set[int]:
    """Pks of everything computed from ``node`` (through INPUT_CALC and CREATE)."""
    res = traverse_graph([node.pk], links_forward=[LinkType.INPUT_CALC, LinkType.CREATE])
    return set(res["nodes"]) - {node.pk}


def reference_calculations(potential) -> list:
    """The reference calculations (xTB labelling CalcJobs, VASP calculations) whose labels fed ``potential``."""
    return _nodes(ancestors(potential), orm.CalcJobNode, process_type={"in": list(REFERENCE_PROCESS_TYPES)})


def potentials_using_tile(tile) -> list:
    """Every ChIMES potential computed (merged, or fitted on residuals) from the tile potential ``tile``."""
    from aiida_chimes.data.potential import ChimesPotentialData

    return _nodes(descendants(tile), ChimesPotentialData)


__all__ = ["ancestors", "descendants", "potentials_using_tile", "reference_calculations"]
