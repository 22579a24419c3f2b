"""``aiida-chimes potential show PK``: the tile tree of a potential read from its provenance (text, JSON or dot).

The tree follows the creator of each potential: a ``merge_tiles`` calcfunction (its new fit and lower tiles, each
shown the same way), a regression CalcJob (its fit system, the design-matrix CalcJob that built it and that job's
training set), or nothing ("imported").  Tile-registry extras (``aiida_chimes.tools.tiles``) are shown when set.

A potential of a ``chimes.hierarchical`` campaign also shows the campaign, and each tile its origin in it (fitted
by active learning, given, reused from the registry, taken over from a restarted campaign).  A tile fitted by a
``chimes.active_learning`` run (regression <- FitWorkChain ``fit_cycle_NNN`` <- ActiveLearningWorkChain) shows
that run: cycles, convergence, reference calculations run, training frames, the force RMSE of its cycle before
and after the refit, and the pks to inspect.
"""

import json

import click
from aiida import orm
from aiida.cmdline.params import types
from aiida.cmdline.utils import decorators
from aiida.common.links import LinkType

__all__ = ("cmd_potential_show", "potential_tree")

POTENTIAL = types.DataParamType(sub_classes=("aiida.data:chimes.potential",))
REGRESSION = "aiida.calculations:chimes.regression"
DESIGN_MATRIX = "aiida.calculations:chimes.design_matrix"
FIT = "aiida.workflows:chimes.fit"
#: tile_origin values and their text
ORIGINS = {
    "active_learning": "fitted by active learning",
    "given": "given",
    "reused": "reused from the tile registry",
    "restart": "taken over from the restarted campaign",
    "fit": "fitted",
    "merge": "merged",
    "imported": "imported",
    "other": "made by another process",
}


# ===================================================================== the tree (JSON-able dicts)
def _ref(node) -> dict:
    """pk, uuid, class and label of any node."""
    return {"pk": node.pk, "uuid": node.uuid, "type": type(node).__name__, "label": node.label}


def _process(node) -> dict:
    """A process node: its reference, label, state, exit status and cache source."""
    source = node.base.caching.get_cache_source()
    return {
        **_ref(node),
        "process_label": node.process_label,
        "process_state": getattr(node.process_state, "value", None),
        "exit_status": node.exit_status,
        "cached_from": source,
    }


def _inputs(process) -> dict:
    """Input nodes of a process by link label (not its caller)."""
    links = process.base.links.get_incoming(link_type=(LinkType.INPUT_CALC, LinkType.INPUT_WORK)).all()
    return {link.link_label: link.node for link in links}


def _outputs(process) -> dict:
    """Output nodes (created or returned) of a process by link label (namespaces joined by ``__``)."""
    links = process.base.links.get_outgoing(link_type=(LinkType.CREATE, LinkType.RETURN)).all()
    return {link.link_label: link.node for link in links}


def _call_label(process) -> str | None:
    """The call link label of a called process (e.g. ``fit_cycle_001``), None for a top-level one."""
    link = process.base.links.get_incoming(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).first()
    return link.link_label if link is not None else None


def _is_function(creator, name: str) -> bool:
    """Whether ``creator`` is a run of our calcfunction ``name``."""
    return isinstance(creator, orm.CalcFunctionNode) and creator.process_label == name


def _registry(node) -> dict | None:
    """The tile-registry extras of a potential, if it is registered."""
    from aiida_chimes.tools.tiles import EXTRA_HASH, EXTRA_PROJECT, EXTRA_TILE

    extras = node.base.extras
    if extras.get(EXTRA_HASH, None) is None:
        return None
    return {
        "tile": extras.get(EXTRA_TILE, None),
        "signature_sha256": extras.get(EXTRA_HASH),
        "project": extras.get(EXTRA_PROJECT, None),
    }


def _training_set(node) -> dict:
    """A training set: size and where it came from (a residual of lower tiles, another process, or imported)."""
    entry = {
        **_ref(node),
        "nframes": node.base.attributes.get("nframes", None),
        "natoms": node.base.attributes.get("natoms", None),
        "origin": "imported",
    }
    creator = node.creator
    if creator is not None:
        entry["origin"] = creator.process_label
        entry["creator"] = _process(creator)
        if _is_function(creator, "residual_training_set"):
            entry["residual_of"] = [
                {"link": k, **_ref(v), "tiles": v.base.attributes.get("tiles", None)}
                for k, v in sorted(_inputs(creator).items())
                if k != "training_set"
            ]
    return entry


def _fit(regression) -> dict:
    """Fit system, design-matrix CalcJob and training set behind a regression CalcJob."""
    inputs = _inputs(regression)
    out = {"fit_system": None, "design_matrix": None, "training_set": None, "parameters": None}
    if "parameters" in inputs:
        out["parameters"] = inputs["parameters"].get_dict()
    system = inputs.get("fit_system")
    if system is None:
        return out
    attrs = system.base.attributes
    out["fit_system"] = {
        **_ref(system),
        "ncols": attrs.get("ncols", None),
        "nframes": attrs.get("nframes", None),
        "nrows": attrs.get("nrows", {}).get("total"),
    }
    design = system.creator
    if design is None:
        out["design_matrix"] = "imported"
        return out
    out["design_matrix"] = _process(design)
    design_inputs = _inputs(design)
    if "training_set" in design_inputs:
        out["training_set"] = _training_set(design_inputs["training_set"])
    if "previous_fit_system" in design_inputs:
        out["design_matrix"]["previous_fit_system"] = _ref(design_inputs["previous_fit_system"])
    return out


def _frames_ref(node) -> dict | None:
    """A training set or fit system: its reference and number of frames."""
    if node is None:
        return None
    return {**_ref(node), "nframes": node.base.attributes.get("nframes", None)}


def _active_learning(regression, run=None) -> dict | None:
    """The chimes.active_learning run of a tile fit made by ``regression``, with its figures; None if none.

    The run is ``run`` (the one a campaign names for the tile: a restarted run returns the fit of the run it
    continued), else the one whose FitWorkChain called ``regression``.
    """
    from aiida_chimes.tools.queries import (
        ACTIVE_LEARNING_PROCESS_TYPE,
        HIERARCHICAL_PROCESS_TYPE,
        reference_calculations_below,
        restarted_from,
    )

    fit = regression.caller
    if fit is None or fit.process_type != FIT:
        return None
    al = run if run is not None and run.process_type == ACTIVE_LEARNING_PROCESS_TYPE else fit.caller
    if al is None or al.process_type != ACTIVE_LEARNING_PROCESS_TYPE:
        return None
    outputs, fit_outputs = _outputs(al), _outputs(fit)
    summary = outputs["summary"].get_dict() if "summary" in outputs else {}
    cycles = summary.get("cycles", [])
    fit_label = _call_label(fit)
    # the cycle of this fit (the last one for the run's final potential)
    cycle = next((c for c in cycles if c.get("fit") == fit.pk), None)
    if cycle is None and fit_label and fit_label.startswith("fit_cycle_"):
        cycle = {"cycle": int(fit_label.rsplit("_", 1)[1])}
    cycle = cycle or {}
    before, after = cycle.get("errors_before") or {}, cycle.get("errors_after") or {}
    fit_system = fit_outputs.get("fit_system") or _inputs(regression).get("fit_system")
    caller = al.caller
    restart = restarted_from(al)
    return {
        **_process(al),
        "call_link": _call_label(al),
        "campaign": _process(caller) if caller is not None and caller.process_type == HIERARCHICAL_PROCESS_TYPE
        else None,
        "restarted_from": _process(restart) if restart is not None else None,
        "cycles_done": summary.get("cycles_done"),
        "converged": summary.get("converged"),
        "reference_calculations": len(reference_calculations_below(al)),
        "training_frames": fit_system.base.attributes.get("nframes", None) if fit_system is not None else None,
        "cycle": cycle.get("cycle"),
        "force_rmse_before": before.get("force_rmse"),
        "force_rmse_after": after.get("force_rmse"),
        "errors_before": cycle.get("errors_before"),
        "errors_after": cycle.get("errors_after"),
        "fit": {**_process(fit), "call_link": fit_label,
                "called_by": _process(fit.caller) if fit.caller is not None and fit.caller.pk != al.pk else None},
        "fit_system": _frames_ref(fit_system),
        "residual_set": _frames_ref(outputs.get("training_set")),
        "reference_set": _frames_ref(outputs.get("reference_set")),
    }


def _campaign(process) -> dict:
    """A chimes.hierarchical run: mode, tiles with their origin, reference calculations that fed its potential."""
    outputs = _outputs(process)
    summary = outputs["summary"].get_dict() if "summary" in outputs else {}
    tiles = {name: {"origin": e.get("origin"), "potential": e.get("potential"),
                    "active_learning": e.get("active_learning")}
             for name, e in summary.get("tiles", {}).items()}
    for label, node in outputs.items():  # a campaign without summary (failed): the tiles it returned
        if label.startswith("tile_potentials__") and label.split("__", 1)[1] not in tiles:
            name = label.split("__", 1)[1]
            run = process.base.links.get_outgoing(link_label_filter=f"tile_{name}").first()
            potential = _outputs(run.node).get("potential") if run is not None else None
            fitted = potential is not None and potential.pk == node.pk
            tiles[name] = {"origin": "fitted" if fitted else None, "potential": node.pk,
                           "active_learning": run.node.pk if fitted else None}
    mode = summary.get("mode") or getattr(_inputs(process).get("mode"), "value", None)
    return {**_process(process), "mode": mode, "tiles": dict(sorted(tiles.items()))}


def _context_tile(context: dict | None, pk: int) -> tuple[str | None, dict | None]:
    """(name, entry) of the tile ``pk`` in a campaign ``context``, or (None, None)."""
    if context is None:
        return None, None
    return next(((n, t) for n, t in context["tiles"].items() if t["potential"] == pk), (None, None))


def _classify(entry: dict, raw: str | None) -> str:
    """The tile_origin of a potential entry from the campaign's origin string (fitted, given, reused PK, ...)."""
    if raw == "fitted":
        return "active_learning"
    if raw == "given":
        return "given"
    if raw and raw.startswith("reused"):
        return "reused"
    if raw and raw.startswith("restart"):
        return "restart"
    if entry.get("active_learning"):
        return "active_learning"
    return {"regression": "fit"}.get(entry["origin"], entry["origin"])


def potential_tree(node, context: dict | None = None, _root: bool = True) -> dict:
    """The tile tree of a ChimesPotentialData as JSON-able dicts.

    ``origin`` (what created the node): merge, regression, imported, other; ``tile_origin`` (how the tile came
    to be in its campaign): active_learning, given, reused, restart, fit, merge, imported, other.  ``context``: the
    campaign (as made by the tree) to classify the node in; the root finds its own (``campaign_of``).
    """
    from aiida_chimes.data.potential import ChimesPotentialData
    from aiida_chimes.tools.queries import HIERARCHICAL_PROCESS_TYPE, campaign_of, reference_calculations

    attrs = node.base.attributes
    entry = {
        **_ref(node),
        "elements": attrs.get("elements", None),
        "tiles": ["".join(t) for t in attrs.get("tiles", None) or []],
        "sha256": attrs.get("sha256", None),
        "registry": _registry(node),
        "origin": "imported",
        "creator": None,
    }
    if _root:
        found = campaign_of(node)
        if found is not None:
            context = _campaign(found)
            context["reference_calculations"] = len(reference_calculations(node))
            entry["campaign"] = context
    name, in_context = _context_tile(context, node.pk)
    raw = in_context["origin"] if in_context else None
    creator = node.creator
    if creator is not None:
        entry["creator"] = _process(creator)
        entry["created_as"] = node.base.links.get_incoming(link_type=LinkType.CREATE).one().link_label
        if _is_function(creator, "merge_tiles"):
            entry["origin"] = "merge"
            inputs = _inputs(creator)
            caller = creator.caller
            entry["called_by"] = {**_process(caller), "call_link": _call_label(creator)} if caller else None
            parts_context = context
            if caller is not None and caller.process_type == HIERARCHICAL_PROCESS_TYPE:
                parts_context = context if context and context["pk"] == caller.pk else _campaign(caller)
            elif not _root:
                parts_context = None
            order = sorted(inputs, key=lambda k: (k != "new_fit", k))
            entry["parts"] = [
                {"link": k, **potential_tree(inputs[k], parts_context, _root=False)}
                for k in order
                if isinstance(inputs[k], ChimesPotentialData)
            ]
            entry["settings"] = {
                k: inputs[k].value if k == "lower_blocks" else inputs[k].get_list()
                for k in ("penalty", "lower_blocks")
                if k in inputs
            }
        elif creator.process_type == REGRESSION:
            entry["origin"] = "regression"
            entry["fit"] = _fit(creator)
            run = in_context.get("active_learning") if in_context and raw == "fitted" else None
            entry["active_learning"] = _active_learning(creator, orm.load_node(run) if run else None)
        else:
            entry["origin"] = "other"
    entry["tile_origin"] = _classify(entry, raw)
    if in_context is not None:
        entry["tile_name"] = name
        entry["campaign_origin"] = raw
        entry["in_campaign"] = {k: context[k] for k in ("pk", "uuid", "type", "label", "process_label")}
    if entry["tile_origin"] in ("given", "reused", "restart"):
        # the campaign that made the tile: that of its active-learning run, else the one campaign_of finds
        al = entry.get("active_learning") or {}
        made_in = al.get("campaign")
        if made_in is None:
            found = campaign_of(node)
            if found is not None and (context is None or found.pk != context["pk"]):
                made_in = _process(found)
        entry["fitted_in"] = made_in
    return entry


# ===================================================================== text
def _frames(n) -> str:
    return f"{n} frame{'' if n == 1 else 's'}"


def _plural(n, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _name(entry: dict) -> str:
    return f"{entry.get('process_label') or entry['type']}<{entry['pk']}>"


def _rmse(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _potential_line(entry: dict) -> str:
    """One line of a potential: name, tiles, label, registry, or 'imported'."""
    parts = [f"{entry['type']}<{entry['pk']}>", f"tiles {' '.join(entry['tiles']) or '-'}"]
    if entry["label"]:
        parts.append(f"'{entry['label']}'")
    reg = entry["registry"]
    if reg:
        proj = f", project {reg['project']}" if reg.get("project") else ""
        parts.append(f"[registry: tile {reg['tile']}, signature {reg['signature_sha256'][:12]}{proj}]")
    if entry["origin"] == "imported":
        parts.append("imported")
    return "  ".join(parts)


def _process_line(proc: dict) -> str:
    status = f"[{proc['process_state']}" + (f" {proc['exit_status']}]" if proc["exit_status"] is not None else "]")
    cached = f"  cached from {proc['cached_from'][:8]}" if proc.get("cached_from") else ""
    return f"{_name(proc)}  {status}{cached}"


def _fit_children(fit: dict) -> list:
    """Display children of a regression: fit system, design matrix, training set."""
    out = []
    sys_ = fit["fit_system"]
    if sys_ is not None:
        out.append((f"fit_system: {_name(sys_)}  ncols {sys_['ncols']}, nframes {sys_['nframes']}", []))
    dm = fit["design_matrix"]
    if dm == "imported":
        out.append(("design_matrix: imported", []))
    elif dm is not None:
        prev = dm.get("previous_fit_system")
        extra = f"  (folded into {_name(prev)})" if prev else ""
        out.append((f"design_matrix: {_process_line(dm)}{extra}", []))
    ts = fit["training_set"]
    if ts is not None:
        line = f"training_set: {_name(ts)}  {_frames(ts['nframes'])}, {ts['natoms']} atoms"
        if ts.get("residual_of"):
            tiles = ", ".join(f"{r['link']}<{r['pk']}>" for r in ts["residual_of"])
            line += f"  (residual of {tiles} by {_name(ts['creator'])})"
        else:
            line += f"  ({ts['origin']})"
        out.append((line, []))
    return out


def _al_display(al: dict, head: str = "active learning: ") -> tuple[str, list]:
    """The active-learning run of a tile: cycles, reference calculations, frames, errors, pks to inspect."""
    where = ""
    if al["call_link"]:
        where = f"  ({al['call_link']}" + (f" of {_name(al['campaign'])})" if al["campaign"] else ")")
    restart = f", restarted from {_name(al['restarted_from'])}" if al["restarted_from"] else ""
    converged = {True: "converged", False: "not converged"}.get(al["converged"], "convergence unknown")
    figures = (f"{_plural(al['cycles_done'], 'cycle')}{restart}, {converged}; "
               f"{_plural(al['reference_calculations'], 'reference calculation')}; "
               f"{al['training_frames']} training frames")
    errors = (f"force RMSE of cycle {al['cycle']} on its new frames: {_rmse(al['force_rmse_before'])} eV/A before "
              f"the refit, {_rmse(al['force_rmse_after'])} eV/A after")
    fit_of = f" of {_name(al['fit']['called_by'])}" if al["fit"].get("called_by") else ""
    inspect = [f"verdi process report {al['pk']}", f"{_name(al['fit'])} ({al['fit']['call_link']}{fit_of})"]
    inspect += [f"{_name(al[k])} ({k.replace('_', ' ')})" for k in ("fit_system", "residual_set") if al[k]]
    kids = [(figures, []), (errors, []), ("inspect: " + ", ".join(inspect), [])]
    return f"{head}{_process_line(al)}{where}", kids


def _origin_display(entry: dict) -> tuple[str, list] | None:
    """The origin line of a tile in a campaign, or of a tile fitted by active learning; None otherwise."""
    origin = entry["tile_origin"]
    al = entry.get("active_learning")
    if origin not in ("active_learning", "given", "reused", "restart"):
        return None
    if origin == "active_learning" and al is not None:
        return _al_display(al, f"origin: {ORIGINS[origin]} in ")
    by = _name(entry["in_campaign"]) if entry.get("in_campaign") else "the campaign"
    if origin == "given":
        line = f"origin: given to {by} as tiles.{entry.get('tile_name') or ''.join(entry['tiles'])}"
    elif origin == "reused":
        signature = entry["registry"]["signature_sha256"][:12] if entry["registry"] else "?"
        line = f"origin: reused from the tile registry by {by} (group chimes/tiles, signature {signature})"
    elif origin == "restart":
        line = f"origin: taken over by {by} from the campaign it restarted (restart_from)"
    else:
        line = f"origin: {ORIGINS[origin]} (its active-learning run was not found)"
    made_in = entry.get("fitted_in")
    if made_in is not None:
        line += f"; made in {_name(made_in)}"
    elif al is None and origin in ("reused", "restart"):
        line += "; the campaign that fitted it was not found"
    return line, [_al_display(al)] if al else []


def _campaign_line(campaign: dict) -> str:
    tiles = ", ".join(f"{name} ({t['origin'] or '?'})" for name, t in campaign["tiles"].items())
    return (f"campaign: {_process_line(campaign)}  mode {campaign['mode']}; tiles {tiles}; "
            f"{_plural(campaign['reference_calculations'], 'reference calculation')} fed this potential  "
            f"(verdi process report {campaign['pk']})")


def _display(entry: dict, link: str | None = None) -> tuple[str, list]:
    """(line, children) of a potential for the text tree."""
    line = (f"{link}: " if link else "") + _potential_line(entry)
    kids = []
    if entry.get("campaign"):
        kids.append((_campaign_line(entry["campaign"]), []))
    origin = _origin_display(entry)
    if origin is not None:
        kids.append(origin)
    if entry["creator"] is None:
        return line, kids
    proc = entry["creator"]
    if entry["origin"] == "merge":
        settings = "  ".join(f"{k} {v}" for k, v in entry.get("settings", {}).items())
        caller = entry.get("called_by")
        if caller and caller["pk"] != (entry.get("campaign") or {}).get("pk"):
            settings += f"{'  ' if settings else ''}({caller['call_link']} of {_name(caller)})"
        parts = [_display(p, p["link"]) for p in entry["parts"]]
        return line, [*kids, (f"{_process_line(proc)}{'  ' + settings if settings else ''}", parts)]
    if entry["origin"] == "regression":
        return line, [*kids, (_process_line(proc), _fit_children(entry["fit"]))]
    return line, [*kids, (_process_line(proc), [])]


def _render(item: tuple[str, list], prefix: str = "", last: bool = True, root: bool = True) -> list[str]:
    line, kids = item
    lines = [line if root else f"{prefix}{'└── ' if last else '├── '}{line}"]
    child_prefix = "" if root else prefix + ("    " if last else "│   ")
    for i, kid in enumerate(kids):
        lines += _render(kid, child_prefix, i == len(kids) - 1, False)
    return lines


def format_text(tree: dict) -> str:
    """The tile tree as indented text."""
    return "\n".join(_render(_display(tree)))


# ===================================================================== graphviz dot
def _quote(text: str) -> str:
    """A dot string; newlines become dot line breaks."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def format_dot(tree: dict) -> str:
    """The tile tree as a graphviz digraph.

    Data as boxes, processes as ellipses; solid edges along the data provenance, dashed edges for calls (campaign ->
    active learning -> fit -> regression) and returned outputs.
    """
    nodes: dict[int, str] = {}
    edges: set[tuple[int, int, str]] = set()
    calls: set[tuple[int, int, str]] = set()

    def add(ref: dict, label: str, shape: str, final: bool = False) -> int:
        line = f"  n{ref['pk']} [label={_quote(label)}, shape={shape}];"
        nodes[ref["pk"]] = line if final else nodes.get(ref["pk"], line)
        return ref["pk"]

    def campaign(c: dict) -> int:
        label = _name(c)
        if "tiles" in c:
            tiles = ", ".join(f"{name} ({t['origin'] or '?'})" for name, t in c["tiles"].items())
            label += f"\nmode {c['mode']}\n{tiles}"
        if "reference_calculations" in c:
            label += f"\n{_plural(c['reference_calculations'], 'reference calculation')}"
        return add(c, label, "ellipse", final="reference_calculations" in c)

    def active_learning(al: dict, regression: int, me: int) -> None:
        converged = {True: "converged", False: "not converged"}.get(al["converged"], "convergence unknown")
        a = add(al, f"{_name(al)}\n{_plural(al['cycles_done'], 'cycle')}, {converged}\n"
                    f"{_plural(al['reference_calculations'], 'reference calculation')}\n"
                    f"{al['training_frames']} training frames\n"
                    f"force RMSE {_rmse(al['force_rmse_before'])} -> {_rmse(al['force_rmse_after'])} eV/A", "ellipse",
                final=True)
        f = add(al["fit"], _name(al["fit"]), "ellipse")
        fit_caller = al["fit"].get("called_by")
        calls.add((add(fit_caller, _name(fit_caller), "ellipse") if fit_caller else a, f,
                   al["fit"]["call_link"] or "call"))
        if al["restarted_from"]:
            calls.add((a, add(al["restarted_from"], _name(al["restarted_from"]), "ellipse"), "restart_from"))
        calls.add((f, regression, "call"))
        calls.add((a, me, "potential"))
        if al["residual_set"]:
            calls.add((a, add(al["residual_set"], f"{_name(al['residual_set'])}\n"
                                                  f"{_frames(al['residual_set']['nframes'])}", "box"), "residual set"))
        if al["campaign"]:
            calls.add((campaign(al["campaign"]), a, al["call_link"] or "call"))

    def walk(entry: dict) -> int:
        origin = entry["tile_origin"]
        extra = "\nimported" if entry["origin"] == "imported" else ""
        if origin not in ("imported", "fit", "merge", "other"):
            extra += f"\n{ORIGINS[origin]}"
        me = add(entry, f"{entry['type']}<{entry['pk']}>\ntiles {' '.join(entry['tiles'])}{extra}", "box", final=True)
        if entry.get("campaign"):
            calls.add((campaign(entry["campaign"]), me, "potential"))
        proc = entry["creator"]
        if proc is None:
            return me
        p = add(proc, _name(proc), "ellipse")
        edges.add((p, me, entry.get("created_as") or "result"))
        caller = entry.get("called_by")
        if caller:
            calls.add((campaign(caller), p, caller["call_link"] or "call"))
        for part in entry.get("parts", []):
            edges.add((walk(part), p, part["link"]))
        fit = entry.get("fit") or {}
        if entry.get("active_learning"):
            active_learning(entry["active_learning"], p, me)
        if fit.get("fit_system"):
            fs = add(fit["fit_system"], f"{_name(fit['fit_system'])}\nncols {fit['fit_system']['ncols']}", "box")
            edges.add((fs, p, "fit_system"))
            if isinstance(fit.get("design_matrix"), dict):
                dm = add(fit["design_matrix"], _name(fit["design_matrix"]), "ellipse")
                edges.add((dm, fs, "fit_system"))
                ts = fit.get("training_set")
                if ts:
                    t = add(ts, f"{_name(ts)}\n{_frames(ts['nframes'])}", "box")
                    edges.add((t, dm, "training_set"))
                    if ts.get("creator"):
                        r = add(ts["creator"], _name(ts["creator"]), "ellipse")
                        edges.add((r, t, "result"))
                        for lower in ts.get("residual_of", []):
                            edges.add((add(lower, _name(lower), "box"), r, lower["link"]))
        return me

    walk(tree)
    lines = ["digraph potential {", "  rankdir=LR;", *nodes.values()]
    lines += [f"  n{a} -> n{b} [label={_quote(lbl)}];" for a, b, lbl in sorted(edges)]
    lines += [f"  n{a} -> n{b} [label={_quote(lbl)}, style=dashed];" for a, b, lbl in sorted(calls)]
    return "\n".join([*lines, "}"])


# ===================================================================== the command
@click.command("show")
@click.argument("potential", type=POTENTIAL)
@click.option(
    "-F",
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "dot"]),
    default="text",
    show_default=True,
    help="text: an indented tree; json: the same tree as JSON; dot: a graphviz digraph.",
)
@decorators.with_dbenv()
def cmd_potential_show(potential, fmt):
    """Tile tree of POTENTIAL (pk, uuid or label): merges, tile fits and their data, from the provenance."""
    tree = potential_tree(potential)
    if fmt == "json":
        click.echo(json.dumps(tree, indent=2))
    elif fmt == "dot":
        click.echo(format_dot(tree))
    else:
        click.echo(format_text(tree))


@click.command("provenance")
@click.argument("potential", type=POTENTIAL)
@click.option("-F", "--format", "fmt", type=click.Choice(["json", "dot"]), default="json", show_default=True,
              help="json: the tile tree as JSON; dot: a graphviz digraph (render with `dot -Tpng`).")
@decorators.with_dbenv()
def cmd_potential_provenance(potential, fmt):
    """The tile tree of POTENTIAL as a graph (the same content as `show`), for tools and plots."""
    tree = potential_tree(potential)
    click.echo(json.dumps(tree, indent=2) if fmt == "json" else format_dot(tree))
