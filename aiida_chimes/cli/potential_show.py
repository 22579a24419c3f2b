"""``aiida-chimes potential show PK``: the tile tree of a potential read from its provenance (text, JSON or dot).

The tree follows the creator of each potential: a ``merge_tiles`` calcfunction (its new fit and lower tiles, each
shown the same way), a regression CalcJob (its fit system, the design-matrix CalcJob that built it and that job's
training set), or nothing ("imported").  Tile-registry extras (``aiida_chimes.tools.tiles``) are shown when set.
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
    """Input nodes of a process by link label."""
    return {link.link_label: link.node for link in process.base.links.get_incoming().all()}


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


def potential_tree(node) -> dict:
    """The tile tree of a ChimesPotentialData as JSON-able dicts (``origin``: merge, regression, imported, other)."""
    from aiida_chimes.data.potential import ChimesPotentialData

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
    creator = node.creator
    if creator is None:
        return entry
    entry["creator"] = _process(creator)
    entry["created_as"] = node.base.links.get_incoming(link_type=LinkType.CREATE).one().link_label
    if _is_function(creator, "merge_tiles"):
        entry["origin"] = "merge"
        inputs = _inputs(creator)
        order = sorted(inputs, key=lambda k: (k != "new_fit", k))
        entry["parts"] = [
            {"link": k, **potential_tree(inputs[k])} for k in order if isinstance(inputs[k], ChimesPotentialData)
        ]
        entry["settings"] = {
            k: inputs[k].value if k == "lower_blocks" else inputs[k].get_list()
            for k in ("penalty", "lower_blocks")
            if k in inputs
        }
    elif creator.process_type == REGRESSION:
        entry["origin"] = "regression"
        entry["fit"] = _fit(creator)
    else:
        entry["origin"] = "other"
    return entry


# ===================================================================== text
def _frames(n) -> str:
    return f"{n} frame{'' if n == 1 else 's'}"


def _name(entry: dict) -> str:
    return f"{entry.get('process_label') or entry['type']}<{entry['pk']}>"


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


def _display(entry: dict, link: str | None = None) -> tuple[str, list]:
    """(line, children) of a potential for the text tree."""
    line = (f"{link}: " if link else "") + _potential_line(entry)
    if entry["creator"] is None:
        return line, []
    proc = entry["creator"]
    if entry["origin"] == "merge":
        settings = "  ".join(f"{k} {v}" for k, v in entry.get("settings", {}).items())
        kids = [_display(p, p["link"]) for p in entry["parts"]]
        return line, [(f"{_process_line(proc)}{'  ' + settings if settings else ''}", kids)]
    if entry["origin"] == "regression":
        return line, [(_process_line(proc), _fit_children(entry["fit"]))]
    return line, [(_process_line(proc), [])]


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
    """The tile tree as a graphviz digraph (data as boxes, processes as ellipses, edges along the provenance)."""
    nodes: dict[int, str] = {}
    edges: set[tuple[int, int, str]] = set()

    def add(ref: dict, label: str, shape: str, final: bool = False) -> int:
        line = f"  n{ref['pk']} [label={_quote(label)}, shape={shape}];"
        nodes[ref["pk"]] = line if final else nodes.get(ref["pk"], line)
        return ref["pk"]

    def walk(entry: dict) -> int:
        me = add(
            entry,
            f"{entry['type']}<{entry['pk']}>\ntiles {' '.join(entry['tiles'])}"
            + ("\nimported" if entry["origin"] == "imported" else ""),
            "box",
            final=True,
        )
        proc = entry["creator"]
        if proc is None:
            return me
        p = add(proc, _name(proc), "ellipse")
        edges.add((p, me, entry.get("created_as") or "result"))
        for part in entry.get("parts", []):
            edges.add((walk(part), p, part["link"]))
        fit = entry.get("fit") or {}
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
