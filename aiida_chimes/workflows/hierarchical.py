"""``chimes.hierarchical``: a ChIMES potential of several elements fitted tile by tile, row by row, then merged.

Modes (al_driver's hierarchical fitting, shared/notes/chimes.md section 5.1):

* ``full``: every tile is its own fit: row 1 the single elements, row 2 the pairs' cross terms, ...; tiles of one
  row run in parallel, each a ``chimes.active_learning`` run on residual data (its lower tiles subtracted).  Tiles
  given as ``tiles.<name>`` (pre-fitted, e.g. every single-element tile) are used as they are.
* ``partial``: the given tiles are used as they are and everything else (the missing elements and all cross
  terms) is fitted together in one active-learning run that excludes the given tiles' interactions.

Every consistency rule is checked against the given tiles before anything is launched.  Converged tiles are
registered (group ``chimes/tiles``) with their signature; ``reuse_tiles`` takes a registered tile instead of fitting
it again.  ``restart_from`` continues an earlier campaign: finished tiles are reused, an unfinished tile's
active-learning run goes on after its last completed cycle.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ToContext, WorkChain, if_, while_

from ..calculations.functions.active_learning import prediction_errors
from ..calculations.functions.hierarchy import merge_tiles
from ..calculations.functions.training_sets import subset_training_set
from ..chimes import hierarchy
from ..chimes.hierarchy import HierarchyError
from ..data.potential import ChimesPotentialData
from ..data.training_set import TrainingSetData
from .active_learning import ActiveLearningWorkChain, state_point_elements, validate_state_points

__all__ = ("MODES", "PROTOCOLS", "HierarchicalFitWorkChain", "plan_fits")

MODES = ("full", "partial")
#: Settings of the active-learning runs per protocol (get_builder_from_protocol).
PROTOCOLS = {
    "fast": {"md_parameters": {"ensemble": "nvt", "thermostat": "langevin", "timestep": 0.5, "steps": 200,
                               "output_interval": 20, "thermo_interval": 10},
             "selection": {"method": "evenly", "n_select": 3, "max_penalty": 2},
             "initial": {"n_frames": 6, "rattle": 0.08, "strain": 0.02},
             "max_cycles": 2, "solver": {"algorithm": "svd", "eps": 1.0e-5}, "selection_fit": "bic"},
    "moderate": {"md_parameters": {"ensemble": "nvt", "thermostat": "langevin", "timestep": 0.5, "steps": 2000,
                                   "output_interval": 50, "thermo_interval": 20},
                 "selection": {"method": "evenly", "n_select": 6, "max_penalty": 4},
                 "initial": {"n_frames": 12, "rattle": 0.1, "strain": 0.03},
                 "max_cycles": 5, "force_threshold": 0.5,
                 "solver": {"algorithm": "lassolars", "alphas": [1.0e-5, 1.0e-4, 1.0e-3]}, "selection_fit": "bic"},
    "precise": {"md_parameters": {"ensemble": "nvt", "thermostat": "langevin", "timestep": 0.5, "steps": 10000,
                                  "output_interval": 100, "thermo_interval": 50},
                "selection": {"method": "evenly", "n_select": 10, "max_penalty": 10},
                "initial": {"n_frames": 20, "rattle": 0.1, "strain": 0.03},
                "max_cycles": 10, "force_threshold": 0.3,
                "solver": {"algorithm": "lassolars", "alphas": [1.0e-6, 1.0e-5, 1.0e-4, 1.0e-3]},
                "selection_fit": "validation"},
}


# ===================================================================== planning (pure functions)
def _types(settings: dict) -> list[str]:
    return [t if isinstance(t, str) else t[0] for t in settings.get("types", [])]


def max_body(settings: dict) -> int:
    """Highest body order the settings fit (2, 3 or 4)."""
    orders = list(settings.get("orders", [])) + [0, 0, 0]
    return 4 if orders[2] > 0 else 3 if orders[1] > 0 else 2


def _covered(elements: frozenset, given: list[frozenset], body: int) -> bool:
    """Whether every interaction of ``elements`` (every sub-tile up to ``body`` elements) is in a given tile."""
    return all(tile in given for tile in hierarchy.tiles_for(sorted(elements), body))


def plan_fits(settings: dict, given: list[frozenset], mode: str) -> list[list[frozenset]]:
    """The fits to run, row by row: each a tile (full) or the combined remainder (partial).

    Raises HierarchyError when no single top tile holds all elements (more elements than the highest body
    order: the tiles could not be merged into one file) or a given tile is not a tile of the system.
    """
    types = _types(settings)
    body = max_body(settings)
    if len(types) > body:
        raise HierarchyError(f"settings: {len(types)} elements {types} need {len(types)}-body terms to be merged "
                             f"into one potential, but the orders {settings.get('orders')} stop at {body}-body; "
                             "raise the orders or fit fewer elements")
    tiles = set(hierarchy.tiles_for(types, body))
    for tile in given:
        if tile not in tiles:
            raise HierarchyError(f"tiles: {hierarchy.tile_name(tile)} is not a tile of {types} (up to {body}-body)")
    if mode == "partial":
        top = frozenset(types)
        return [] if _covered(top, given, body) else [[top]]
    return [[t for t in row if t not in given] for row in hierarchy.tile_rows(types, body)
            if any(t not in given for t in row)]


def fit_frames_filter(unit: frozenset, given: list[frozenset], mode: str, body: int):
    """Predicate on an element set: whether frames (or state points) of those elements belong to the fit."""
    if mode == "full":
        return lambda elements: frozenset(elements) == unit
    return lambda elements: frozenset(elements) <= unit and not _covered(frozenset(elements), given, body)


def _given_tiles(tiles: dict) -> dict[frozenset, ChimesPotentialData]:
    """Given tile potentials by tile; ValueError if a key does not name the one tile the potential holds."""
    out = {}
    for key, node in tiles.items():
        held = [frozenset(t) for t in (node.tiles or [])]
        if len(held) != 1:
            raise HierarchyError(f"tiles.{key}: {type(node).__name__}<{node.pk}> holds tiles "
                                 f"{[hierarchy.tile_name(t) for t in held]}; give one potential per tile")
        if hierarchy.tile_name(held[0]) != key and "".join(sorted(held[0])) != key:
            raise HierarchyError(f"tiles.{key}: the potential holds tile {hierarchy.tile_name(held[0])}, not {key}; "
                                 f"use the key tiles.{hierarchy.tile_name(held[0])}")
        out[held[0]] = node
    return out


def _tile_settings(settings: dict, overrides: dict, unit: frozenset) -> dict:
    """Global settings with the unit's overrides (``tile_settings.<name>``)."""
    return {**settings, **overrides.get(hierarchy.tile_name(unit), {})}


def validate_inputs(inputs, _):
    """Modes, given tiles and every consistency rule that the given tiles allow to check before launching."""
    settings = inputs["settings"].get_dict()
    mode = inputs["mode"].value if "mode" in inputs else "full"
    if mode not in MODES:
        return f"mode: must be one of {list(MODES)}, got {mode!r}"
    types = _types(settings)
    if "elements" in inputs and inputs["elements"].get_list() != types:
        return (f"elements {inputs['elements'].get_list()} differ from the settings' types {types}; give the same "
                "elements in the same order")
    overrides = {k: v.get_dict() for k, v in inputs.get("tile_settings", {}).items()}
    for key, override in overrides.items():
        bad = sorted(set(override) & {"types", "pairs", "exclude", "hierarchical"})
        if bad:
            return f"tile_settings.{key}: {bad} cannot differ per tile (they must be consistent across tiles)"
    try:
        given = _given_tiles(dict(inputs.get("tiles", {})))
        lower_params = {t: node.get_params() for t, node in given.items()}
        plan = plan_fits(settings, list(given), mode)
        hierarchy.check_given_tiles(settings, list(lower_params.values()))
        if "exclude" in settings or settings.get("hierarchical"):
            hierarchy.check_consistency(types, settings, list(lower_params.values()))
        for row in plan:
            for unit in row:
                lower = [p for t, p in lower_params.items() if t < unit]
                hierarchy.settings_for_tile(_tile_settings(settings, overrides, unit), unit, lower)
    except ValueError as exc:  # HierarchyError is a ValueError
        return str(exc)
    fits = [hierarchy.tile_name(u) for row in plan for u in row]
    for key in overrides:
        if key not in fits:
            return f"tile_settings.{key}: no such fit in this campaign (fits: {fits})"
    points = inputs["state_points"].get_dict() if "state_points" in inputs else {}
    structures = dict(inputs.get("structures", {}))
    message = validate_state_points(points, structures, set(types))
    if message:
        return message
    frames = inputs.get("training_set")
    body = max_body(settings)
    for row in plan:
        for unit in row:
            belongs = fit_frames_filter(unit, list(given), mode, body)
            if not any(belongs(state_point_elements(p, structures.get(n))) for n, p in points.items()):
                return (f"tile {hierarchy.tile_name(unit)}: no state point for this fit; add one whose composition "
                        f"has {'exactly the elements ' if mode == 'full' else 'elements of '}"
                        f"{sorted(unit)}")
    if frames is not None and not set(frames.elements) <= set(types):
        return f"training_set: elements {sorted(set(frames.elements) - set(types))} are not in the settings' types"
    restart = inputs.get("restart_from")
    if restart is not None and restart.process_class is not HierarchicalFitWorkChain:
        return f"restart_from: {restart.process_label}<{restart.pk}> is not a chimes.hierarchical run"
    return None


class HierarchicalFitWorkChain(WorkChain):
    """Fit a multi-element ChIMES potential tile by tile (active learning per tile) and merge the tiles."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("elements", valid_type=orm.List, required=False,
                   help="Element symbols in type order (must equal the settings' types).")
        spec.input("settings", valid_type=orm.Dict,
                   help="Global fit settings of all elements (types, pairs, orders, special, ...).")
        spec.input_namespace("tile_settings", valid_type=orm.Dict, dynamic=True, required=False,
                             help="Per-tile overrides of the global settings (e.g. orders), keyed by tile name.")
        spec.input_namespace("tiles", valid_type=ChimesPotentialData, dynamic=True, required=False,
                             help="Pre-fitted tile potentials keyed by tile name (C, N, CN, ...).")
        spec.input("mode", valid_type=orm.Str, default=lambda: orm.Str("full"),
                   help="'full': every missing tile its own fit, row by row; 'partial': all missing "
                        "interactions in one fit on top of the given tiles.")
        spec.input("training_set", valid_type=TrainingSetData, required=False,
                   help="Reference-labelled frames; each fit takes the frames of its elements.")
        spec.input("state_points", valid_type=orm.Dict,
                   help="All state points; each fit takes those of its elements (see chimes.active_learning).")
        spec.input_namespace("structures", valid_type=orm.StructureData, dynamic=True, required=False,
                             help="Starting structures keyed by state point name.")
        spec.input("test_set", valid_type=TrainingSetData, required=False,
                   help="Held-out labelled frames: the merged potential's errors on them are an output.")
        spec.input("reuse_tiles", valid_type=orm.Bool, default=lambda: orm.Bool(False),
                   help="Use a registered tile with the same signature instead of fitting it.")
        spec.input("register_tiles", valid_type=orm.Bool, default=lambda: orm.Bool(True),
                   help="Register every fitted tile (group chimes/tiles) for reuse by later campaigns.")
        spec.input("project", valid_type=orm.Str, required=False, help="Project name stored with registered tiles.")
        spec.input("restart_from", valid_type=orm.WorkflowNode, required=False, non_db=True,
                   help="An earlier chimes.hierarchical run to continue: each tile's active learning goes on after "
                        "its last completed cycle (not a link: its uuid goes to the extra `restart_from`).")
        spec.expose_inputs(ActiveLearningWorkChain, namespace="active_learning",
                           exclude=("training_set", "settings", "lower_tiles", "state_points", "structures",
                                    "restart_from"),
                           namespace_options={"help": "MD, selection, reference, fit and loop settings of every "
                                                      "tile's active learning."})
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            while_(cls.has_row)(cls.run_row, cls.inspect_row),
            cls.merge,
            if_(cls.has_test_set)(cls.test_errors),
            cls.results,
        )
        spec.output("potential", valid_type=ChimesPotentialData, help="The merged potential of all tiles.")
        spec.output_namespace("tile_potentials", valid_type=ChimesPotentialData, dynamic=True,
                              help="Every tile (given, reused or fitted) by name.")
        spec.output_namespace("residual_sets", valid_type=TrainingSetData, dynamic=True,
                              help="Per fitted tile: the frames it was fitted to (reference minus lower tiles).")
        spec.output_namespace("reference_sets", valid_type=TrainingSetData, dynamic=True,
                              help="Per fitted tile: its frames with the raw reference labels.")
        spec.output("test_errors", valid_type=orm.Dict, required=False, help="Errors of `potential` on test_set.")
        spec.output("summary", valid_type=orm.Dict, help="The tile tree: origin, run, cycles, frames, errors.")
        spec.exit_code(410, "ERROR_TILE_FAILED",
                       message="The active learning of tile {tile} (ActiveLearningWorkChain<{pk}>) failed ({status}): "
                               "{message}")
        spec.exit_code(411, "ERROR_INCONSISTENT_TILES", message="tile {tile}: {message}")

    # ================================================================== plan
    def setup(self):
        """The plan (fits per row), given and restarted tiles."""
        settings = self.inputs.settings.get_dict()
        self.ctx.mode = self.inputs.mode.value
        given = _given_tiles(dict(self.inputs.get("tiles", {})))
        self.ctx.tiles = {hierarchy.tile_name(t): node for t, node in given.items()}  # name -> potential node
        self.ctx.origin = {name: "given" for name in self.ctx.tiles}
        self.ctx.runs = {}  # name -> ActiveLearningWorkChain pk
        self.ctx.rows = [[hierarchy.tile_name(u) for u in row] for row in plan_fits(settings, list(given),
                                                                                     self.ctx.mode)]
        self.ctx.row = 0
        self.ctx.resume = {}
        if "restart_from" in self.inputs:
            self._restart(self.inputs.restart_from)
        for name, node in self.ctx.tiles.items():  # outputs as soon as known: a failed campaign keeps them
            self.out(f"tile_potentials.{name}", node)
        plan = " | ".join(", ".join(row) for row in self.ctx.rows) or "nothing (all tiles given)"
        names = sorted(hierarchy.tile_name(t) for t in given) or "none"
        self.report(f"{self.ctx.mode} mode for {_types(settings)}: given tiles {names}; "
                    f"fits row by row: {plan}")

    def _restart(self, previous):
        """Each tile's active-learning run of ``previous`` is continued (see :meth:`_resumable`)."""
        self.node.base.extras.set("restart_from", previous.uuid)
        for link in previous.base.links.get_outgoing().all():
            if link.link_label.startswith("tile_") and isinstance(link.node, orm.WorkflowNode):
                self.ctx.resume[link.link_label[len("tile_"):]] = link.node
        self.report(f"restart from {previous.process_label}<{previous.pk}>: active learning of tiles "
                    f"{sorted(self.ctx.resume) or 'none'} can be continued")

    def _resumable(self, name: str, settings: dict, lower: dict) -> orm.WorkflowNode | None:
        """The earlier run of tile ``name`` if it used the same settings and lower tiles (else its cycles are void)."""
        previous = self.ctx.resume.get(name)
        if previous is None:
            return None
        inputs = {link.link_label: link.node for link in previous.base.links.get_incoming().all()}
        before = {k.split("__", 1)[1]: n.sha256 for k, n in inputs.items() if k.startswith("lower_tiles__")}
        if before != {k: n.sha256 for k, n in lower.items()}:
            self.report(f"tile {name}: not continuing ActiveLearningWorkChain<{previous.pk}>: its lower tiles "
                        f"{sorted(before)} differ from the current ones (they were refitted); fitting anew")
            return None
        if inputs.get("settings") is None or inputs["settings"].get_dict() != settings:
            self.report(f"tile {name}: not continuing ActiveLearningWorkChain<{previous.pk}>: other fit settings")
            return None
        return previous

    def has_row(self):
        """Whether a row of fits is left."""
        return self.ctx.row < len(self.ctx.rows)

    # ================================================================== one row
    def _reference_signature(self) -> dict:
        """The reference method and its settings (plain values) for tile signatures."""
        return {"method": self.inputs.active_learning.reference.method.value,
                **_plain(self.inputs.active_learning.reference, skip=("method", "metadata", "code", "batch_size"))}

    def run_row(self):
        """One active-learning run per fit of the row (in parallel); reused tiles need none."""
        from ..tools.tiles import find_tile, tile_signature

        settings = self.inputs.settings.get_dict()
        overrides = {k: v.get_dict() for k, v in self.inputs.get("tile_settings", {}).items()}
        body = max_body(settings)
        given = [tile for name, tile in self._tile_sets().items() if self.ctx.origin.get(name) == "given"]
        futures = {}
        self.ctx.signatures = {}
        for name in self.ctx.rows[self.ctx.row]:
            if name in self.ctx.tiles:
                continue  # finished in the campaign restarted from
            unit = hierarchy.tile_from_name(name)
            lower_nodes = {n: node for n, node in self.ctx.tiles.items() if hierarchy.tile_from_name(n) < unit}
            lower_params = [node.get_params() for node in lower_nodes.values()]
            unit_settings = _tile_settings(settings, overrides, unit)
            try:
                fit_settings = hierarchy.settings_for_tile(unit_settings, unit, lower_params)
                signature = tile_signature(unit, unit_settings, self._reference_signature(),
                                           lower_tiles=list(lower_nodes.values()))
            except (HierarchyError, ValueError) as exc:
                return self.exit_codes.ERROR_INCONSISTENT_TILES.format(tile=name, message=str(exc))
            self.ctx.signatures[name] = signature.content
            if self.inputs.reuse_tiles.value:
                found = find_tile(signature)
                if found is not None:
                    self.ctx.tiles[name] = found
                    self.ctx.origin[name] = f"reused {found.pk}"
                    self.out(f"tile_potentials.{name}", found)
                    self.report(f"tile {name}: reusing registered ChimesPotentialData<{found.pk}> (project "
                                f"{found.base.extras.get('chimes_tile_project', '-')}, signature "
                                f"{signature.sha256[:12]})")
                    continue
            inputs = self.exposed_inputs(ActiveLearningWorkChain, namespace="active_learning")
            belongs = fit_frames_filter(unit, given, self.ctx.mode, body)
            structures = dict(self.inputs.get("structures", {}))
            points = {n: p for n, p in self.inputs.state_points.get_dict().items()
                      if belongs(state_point_elements(p, structures.get(n)))}
            inputs.update(settings=orm.Dict(fit_settings), state_points=orm.Dict(points),
                          structures={n: s for n, s in structures.items() if n in points})
            if lower_nodes:
                inputs["lower_tiles"] = lower_nodes
            frames = self._frames_of(belongs, name)
            if frames is not None:
                inputs["training_set"] = frames
            previous = self._resumable(name, fit_settings, lower_nodes)
            if previous is not None:
                inputs["restart_from"] = previous
            inputs["metadata"] = {**inputs.get("metadata", {}), "call_link_label": f"tile_{name}"}
            node = self.submit(ActiveLearningWorkChain, **inputs)
            self.ctx.runs[name] = node.pk
            futures[f"tile_{name}"] = node
            self.report(f"tile {name}: ActiveLearningWorkChain<{node.pk}> on top of {sorted(lower_nodes) or 'nothing'}"
                        f", state points {sorted(points)}, "
                        f"{frames.nframes if frames is not None else 0} initial frames")
        return ToContext(**futures)

    def _tile_sets(self) -> dict:
        return {name: hierarchy.tile_from_name(name) for name in self.ctx.tiles}

    def _frames_of(self, belongs, name: str):
        """The frames of the training set that belong to a fit (subset calcfunction), or None."""
        if "training_set" not in self.inputs:
            return None
        frames = self.inputs.training_set.get_frameset()
        indices = [i for i in range(len(frames)) if belongs(set(frames.symbols(i)))]
        if not indices:
            return None
        if len(indices) == len(frames):
            return self.inputs.training_set
        return subset_training_set(self.inputs.training_set, orm.List(indices),
                                   metadata={"call_link_label": f"frames_{name}"})

    def inspect_row(self):
        """Every fit of the row must finish; register converged tiles."""
        from ..tools.tiles import register_tile

        for name in self.ctx.rows[self.ctx.row]:
            if f"tile_{name}" not in self.ctx or name in self.ctx.tiles:
                continue
            node = self.ctx[f"tile_{name}"]
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_TILE_FAILED.format(
                    tile=name, pk=node.pk, status=node.exit_status,
                    message=node.exit_message or node.process_state.value)
            self.ctx.tiles[name] = node.outputs.potential
            self.ctx.origin[name] = "fitted"
            self.out(f"tile_potentials.{name}", node.outputs.potential)
            self.out(f"residual_sets.{name}", node.outputs.training_set)
            self.out(f"reference_sets.{name}", node.outputs.reference_set)
            summary = node.outputs.summary.get_dict()
            if self.inputs.register_tiles.value:
                project = self.inputs.project.value if "project" in self.inputs else None
                register_tile(node.outputs.potential, self.ctx.signatures[name], project=project)
            last = summary["cycles"][-1] if summary["cycles"] else {}
            self.report(f"tile {name}: {summary['cycles_done']} cycle(s), "
                        f"{'converged' if summary['converged'] else 'not converged'}, "
                        f"{node.outputs.fit_system.nframes} frames; last force RMSE on new frames "
                        f"{(last.get('errors_before') or last.get('errors_after') or {}).get('force_rmse')} eV/A")
        self.ctx.row += 1
        return None

    # ================================================================== merge and results
    def merge(self):
        """One parameter file: the top fit merged with every other tile (calcfunction)."""
        names = sorted(self.ctx.tiles, key=lambda n: (len(hierarchy.tile_from_name(n)), n))
        top = names[-1]
        if len(names) == 1:
            self.ctx.potential = self.ctx.tiles[top]
            return None
        lower = {n: self.ctx.tiles[n] for n in names[:-1]}
        kwargs = {}
        if "penalty" in self.inputs.active_learning:
            kwargs["penalty"] = self.inputs.active_learning.penalty
        merged, node = merge_tiles.run_get_node(self.ctx.tiles[top], **kwargs, **lower,
                                                metadata={"call_link_label": "merge_tiles"})
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_INCONSISTENT_TILES.format(tile=top, message=node.exit_message)
        self.ctx.potential = merged
        self.report(f"merged tiles {names} into ChimesPotentialData<{merged.pk}>")
        return None

    def has_test_set(self):
        return "test_set" in self.inputs

    def test_errors(self):
        """Errors of the merged potential on the held-out frames."""
        errors = prediction_errors(self.inputs.test_set, self.ctx.potential,
                                   metadata={"call_link_label": "test_errors"})
        self.out("test_errors", errors)
        e = errors.get_dict()
        self.report(f"held-out set ({e['nframes']} frames): force RMSE {e['force_rmse']:.4f} eV/A, energy RMSE "
                    f"{e['energy_rmse_per_atom']} eV/atom")

    def results(self):
        """Outputs: merged potential, every tile, residual and reference sets, the tile tree."""
        self.out("potential", self.ctx.potential)
        tree = {}
        for name, node in self.ctx.tiles.items():
            entry = {"origin": self.ctx.origin[name], "potential": node.pk, "sha256": node.sha256}
            run = self.ctx.get(f"tile_{name}")
            if run is not None and self.ctx.origin[name] == "fitted":
                summary = run.outputs.summary.get_dict()
                entry.update(active_learning=run.pk, cycles=summary["cycles_done"], converged=summary["converged"],
                             frames=run.outputs.fit_system.nframes, errors=summary["cycles"][-1].get("errors_after"))
            tree[name] = entry
        summary = {"mode": self.ctx.mode, "potential": self.ctx.potential.pk, "tiles": tree}
        self.out("summary", orm.Dict(summary).store())
        self.report(f"done: ChimesPotentialData<{self.ctx.potential.pk}> from tiles "
                    + ", ".join(f"{n} ({e['origin']})" for n, e in sorted(tree.items())))

    # ================================================================== protocols
    @classmethod
    def get_protocol_names(cls) -> list[str]:
        return list(PROTOCOLS)

    @classmethod
    def get_builder_from_protocol(cls, codes: dict, settings, state_points: dict, protocol: str = "fast",
                                  tiles: dict | None = None, mode: str = "full", structures: dict | None = None,
                                  training_set=None, test_set=None, xtb_parameters: dict | None = None):
        """A builder for an xTB-labelled campaign; ``codes``: {'design_matrix', 'regression', 'md', 'label'}.

        For VASP labelling set ``builder.active_learning.reference`` (method 'vasp' and its namespace) afterwards.
        """
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol: {protocol!r} is not one of {list(PROTOCOLS)}")
        missing = sorted({"design_matrix", "regression", "md", "label"} - set(codes))
        if missing:
            raise ValueError(f"codes: missing {missing}; run `aiida-chimes setup` and pass "
                             "aiida_chimes.tools.localhost.load_chimes_code(...) for each")
        p = PROTOCOLS[protocol]
        builder = cls.get_builder()
        builder.settings = settings if isinstance(settings, orm.Dict) else orm.Dict(settings)
        builder.state_points = orm.Dict(state_points)
        builder.mode = orm.Str(mode)
        if tiles:
            builder.tiles = tiles
        if structures:
            builder.structures = structures
        if training_set is not None:
            builder.training_set = training_set
        if test_set is not None:
            builder.test_set = test_set
        al = builder.active_learning
        al.md_parameters = orm.Dict(p["md_parameters"])
        al.selection = orm.Dict(p["selection"])
        al.initial = orm.Dict(p["initial"])
        al.max_cycles = orm.Int(p["max_cycles"])
        if "force_threshold" in p:
            al.force_threshold = orm.Float(p["force_threshold"])
        al.md.code = codes["md"]
        al.reference.method = orm.Str("xtb")
        al.reference.xtb.code = codes["label"]
        if xtb_parameters is not None:
            al.reference.xtb.parameters = orm.Dict(xtb_parameters)
        al.fit.design_matrix.code = codes["design_matrix"]
        al.fit.regression.code = codes["regression"]
        al.fit.solver = orm.Dict(p["solver"])
        al.fit.selection = orm.Str(p["selection_fit"])
        return builder


def _plain(namespace, skip=()) -> dict:
    """Plain values of the Dict/List/base-type inputs of a namespace, recursively (for signatures)."""
    out = {}
    for key, value in namespace.items():
        if key in skip:
            continue
        if isinstance(value, orm.Dict):
            out[key] = value.get_dict()
        elif isinstance(value, orm.List):
            out[key] = value.get_list()
        elif isinstance(value, orm.BaseType):
            out[key] = value.value
        elif isinstance(value, orm.KpointsData):
            try:
                out[key] = list(value.get_kpoints_mesh()[0])
            except AttributeError:
                out[key] = value.get_kpoints().tolist()
        elif hasattr(value, "items") and not isinstance(value, orm.Data):
            nested = _plain(value, skip)
            if nested:
                out[key] = nested
    return out
