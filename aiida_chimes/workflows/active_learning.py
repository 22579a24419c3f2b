"""``chimes.active_learning``: the active-learning loop of one tile (ChIMES al_driver's cycles, as a WorkChain).

ALC-0 fits the initial frames (given, or rattled copies of the state points' structures labelled by the
reference).  Every later cycle merges the tile fit with its lower tiles, runs MD at every state point in
parallel, selects candidate frames, labels them, subtracts the lower tiles, measures the current fit's errors on
them (the convergence test: these frames were never fitted), folds them into the fit system and refits.  Each cycle
stores its fit, fit system and frames under ``history.cycle_NNN`` so that a failed or finished run can be
continued with ``restart_from``.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ToContext, WorkChain, if_, while_

from ..calculations.functions.active_learning import (
    generate_structure,
    initial_frames,
    prediction_errors,
    select_candidates,
    selection_settings,
)
from ..calculations.functions.hierarchy import merge_tiles, residual_training_set
from ..calculations.functions.training_sets import concatenate_training_sets
from ..calculations.md import MdCalculation
from ..calculations.md import validate_parameters as validate_md_parameters
from ..data.fit_system import FitSystemData
from ..data.potential import ChimesPotentialData
from ..data.training_set import TrainingSetData
from .fit import FitWorkChain
from .reference import ReferenceWorkChain

__all__ = ("MD_DEFAULTS", "ActiveLearningWorkChain", "state_point_elements", "validate_state_points")

#: MD settings used unless ``md_parameters`` says otherwise (temperature, pressure and seed come per state point).
MD_DEFAULTS = {"ensemble": "nvt", "thermostat": "langevin", "timestep": 0.5, "steps": 400, "output_interval": 20,
               "thermo_interval": 10}
#: Keys a state point may hold (others are refused).
STATE_POINT_KEYS = ("temperature", "pressure", "composition", "density", "cell", "min_distance", "steps")
#: Settings of the initial frames when no training set is given.
INITIAL_DEFAULTS = {"n_frames": 8, "n_structures": 4, "rattle": 0.1, "strain": 0.02, "seed": 0, "min_distance": None}
SAMPLING = ("parallel", "periodic")


def state_point_elements(point: dict, structure: orm.StructureData | None) -> set[str]:
    """Elements of a state point: those of its structure, else of its composition."""
    if structure is not None:
        return set(structure.get_symbols_set())
    return set(point.get("composition", {}))


def validate_state_points(points: dict, structures: dict, elements: set[str] | None, where: str = "state_points"):
    """Error message for the first bad state point (name, key and fix), or None."""
    if not points:
        return f"{where}: give at least one state point, e.g. {{'liquid': {{'temperature': 3000, " \
               "'composition': {'C': 16}, 'density': 2.2}}"
    for name, point in points.items():
        if not isinstance(point, dict):
            return f"{where}.{name}: must be a dict of {list(STATE_POINT_KEYS)}"
        unknown = sorted(set(point) - set(STATE_POINT_KEYS))
        if unknown:
            return f"{where}.{name}: unknown key(s) {unknown}; allowed: {list(STATE_POINT_KEYS)}"
        temperature = point.get("temperature")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0:
            return f"{where}.{name}: 'temperature' (K) must be a positive number, got {temperature!r}"
        structure = structures.get(name)
        if structure is None:
            composition = point.get("composition")
            if not isinstance(composition, dict) or not composition:
                return (f"{where}.{name}: give a starting structure (structures.{name}) or a 'composition' such as "
                        "{'C': 8, 'N': 8}")
            if ("density" in point) == ("cell" in point):
                return f"{where}.{name}: give either 'density' (g/cm^3) or 'cell' (Angstrom) with the composition"
            bad = [k for k, v in composition.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1]
            if bad:
                return f"{where}.{name}: composition counts must be positive integers, bad: {bad}"
        found = state_point_elements(point, structure)
        if elements is not None and not found <= elements:
            return (f"{where}.{name}: elements {sorted(found - elements)} are not types of the fit "
                    f"{sorted(elements)}; use a structure of the tile's elements")
    extra = sorted(set(structures) - set(points))
    if extra:
        return f"structures: {extra} have no entry in {where}; add a state point (temperature, ...) for each"
    return None


def _settings_elements(settings: orm.Dict) -> set[str]:
    return {t if isinstance(t, str) else t[0] for t in settings.get_dict().get("types", [])}


def validate_inputs(inputs, namespace):
    """State points, MD parameters, selection, sampling, cycle limits and a source of initial frames."""
    settings = inputs.get("settings")
    elements = _settings_elements(settings) if settings is not None else None
    if "state_points" in inputs:
        message = validate_state_points(inputs["state_points"].get_dict(), dict(inputs.get("structures", {})),
                                        elements)
        if message:
            return message
    if "md_parameters" in inputs:
        # temperature, pressure and seed come per state point: placeholders for the check of the rest
        md = {**MD_DEFAULTS, **inputs["md_parameters"].get_dict(), "temperature": 1.0, "seed": 0}
        if md.get("ensemble") == "npt":
            md.setdefault("pressure", 0.0)
        message = validate_md_parameters(orm.Dict(md), None)
        if message:
            return f"md_parameters: {message}"
        if md.get("ensemble") == "npt":
            missing = [n for n, p in inputs.get("state_points", orm.Dict()).get_dict().items() if "pressure" not in p]
            if missing:
                return f"md_parameters: ensemble npt needs a 'pressure' (GPa) in state points {missing}"
    if "selection" in inputs:
        try:
            selection_settings(inputs["selection"].get_dict())
        except ValueError as exc:
            return str(exc)
    if "sampling" in inputs and inputs["sampling"].value not in SAMPLING:
        return f"sampling: must be one of {list(SAMPLING)}, got {inputs['sampling'].value!r}"
    if "max_cycles" in inputs and inputs["max_cycles"].value < 0:
        return f"max_cycles: must be >= 0, got {inputs['max_cycles'].value}"
    if "force_threshold" in inputs and not inputs["force_threshold"].value > 0:
        return f"force_threshold: must be a positive force RMSE (eV/A), got {inputs['force_threshold'].value}"
    if "initial" in inputs:
        unknown = sorted(set(inputs["initial"].get_dict()) - set(INITIAL_DEFAULTS))
        if unknown:
            return f"initial: unknown key(s) {unknown}; allowed: {list(INITIAL_DEFAULTS)}"
    if elements is not None and "training_set" in inputs:
        extra = sorted(set(inputs["training_set"].elements) - elements)
        if extra:
            return f"training_set: holds elements {extra} that are not types of the fit settings {sorted(elements)}"
    restart = inputs.get("restart_from")
    if restart is not None:
        if restart.process_class is not ActiveLearningWorkChain:
            return f"restart_from: {restart.process_label}<{restart.pk}> is not a chimes.active_learning run"
        earlier = restart.base.links.get_incoming(link_label_filter="settings").all_nodes()
        if settings is not None and earlier and earlier[0].get_dict() != settings.get_dict():
            return (f"restart_from: ActiveLearningWorkChain<{restart.pk}> was run with other fit settings; its fit "
                    "system cannot be extended with these (start anew without restart_from)")
    return None


class ActiveLearningWorkChain(WorkChain):
    """Fit one tile by active learning: fit, MD, select, label, residualise, fold in, refit, until converged."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("training_set", valid_type=TrainingSetData, required=False,
                   help="Reference-labelled frames of the tile's elements (raw labels; the lower tiles are "
                        "subtracted here).  Without it, ALC-0 labels rattled copies of the state points' structures.")
        spec.input("settings", valid_type=orm.Dict,
                   help="Fit settings of the tile (aiida_chimes.chimes.fit_settings), with the lower tiles' "
                        "interactions excluded when lower tiles are given.")
        spec.input_namespace("lower_tiles", valid_type=ChimesPotentialData, dynamic=True, required=False,
                             help="The lower tile potentials this tile builds on, keyed by tile name.")
        spec.input("state_points", valid_type=orm.Dict,
                   help="{name: {temperature (K), pressure (GPa, npt), composition {el: n} with density (g/cm^3) "
                        "or cell (A), min_distance, steps}}; a structure in `structures.<name>` replaces the "
                        "composition.")
        spec.input_namespace("structures", valid_type=orm.StructureData, dynamic=True, required=False,
                             help="Starting structures keyed by state point name.")
        spec.input("md_parameters", valid_type=orm.Dict, default=lambda: orm.Dict(MD_DEFAULTS),
                   help=f"chimes.md settings of every run (temperature/pressure/seed come per state point); "
                        f"defaults {MD_DEFAULTS}.")
        spec.input("md_seed", valid_type=orm.Int, default=lambda: orm.Int(1),
                   help="Base seed: run i of cycle k uses md_seed + 1000 k + i (reproducible, cacheable MD).")
        spec.input("sampling", valid_type=orm.Str, default=lambda: orm.Str("parallel"),
                   help="'parallel': every cycle starts from the state points' structures; 'periodic': each "
                        "trajectory continues from the last frame of the previous cycle.")
        spec.input("selection", valid_type=orm.Dict, default=lambda: orm.Dict({}),
                   help="{method: evenly|leverage, n_select, include_penalty, max_penalty, threshold} per state "
                        "point.")
        spec.input("initial", valid_type=orm.Dict, default=lambda: orm.Dict({}),
                   help=f"Initial frames when no training_set is given; defaults {INITIAL_DEFAULTS}.")
        spec.input("max_cycles", valid_type=orm.Int, default=lambda: orm.Int(3),
                   help="Active-learning cycles after ALC-0 (0: fit the initial data only).")
        spec.input("force_threshold", valid_type=orm.Float, required=False,
                   help="Converged when the force RMSE (eV/A) of a cycle's new frames, before they are fitted, is "
                        "below this; without it the loop runs max_cycles cycles.")
        spec.input("penalty", valid_type=orm.List, required=False,
                   help="[dist, scaling] of the merged potential's penalty (when the parts disagree).")
        spec.input("restart_from", valid_type=orm.WorkflowNode, required=False, non_db=True,
                   help="An earlier chimes.active_learning run: continue after its last completed cycle (not a "
                        "link: a process node cannot be an input; its uuid goes to the extra `restart_from`).")
        spec.expose_inputs(MdCalculation, namespace="md", exclude=("potential", "structure", "velocities",
                                                                   "parameters"),
                           namespace_options={"help": "code and metadata of the chimes.md CalcJobs."})
        spec.expose_inputs(ReferenceWorkChain, namespace="reference", exclude=("structures",),
                           namespace_options={"help": "Reference method and its inputs (chimes.reference)."})
        spec.expose_inputs(FitWorkChain, namespace="fit",
                           exclude=("training_set", "training_sets", "settings", "previous_fit_system"),
                           namespace_options={"help": "Codes, weights, solver scan and selection of the fits."})
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            if_(cls.is_new_run)(
                if_(cls.needs_initial_frames)(cls.run_initial_labels, cls.inspect_labels),
                cls.residualise,
                cls.run_fit,
                cls.inspect_fit,
            ),
            while_(cls.should_run_cycle)(
                cls.merge,
                cls.run_md,
                cls.inspect_md,
                cls.select,
                cls.run_labels,
                cls.inspect_labels,
                cls.residualise,
                cls.errors_before_refit,
                cls.run_fit,
                cls.inspect_fit,
            ),
            cls.results,
        )
        spec.output("potential", valid_type=ChimesPotentialData, help="The tile fit of the last cycle.")
        spec.output("merged_potential", valid_type=ChimesPotentialData, required=False,
                    help="The tile fit merged with its lower tiles (when lower tiles are given).")
        spec.output("fit_system", valid_type=FitSystemData, help="Fit system of all frames fitted.")
        spec.output("statistics", valid_type=orm.Dict, help="Regression statistics of the last fit.")
        spec.output("training_set", valid_type=TrainingSetData,
                    help="All frames fitted, as fitted (residuals when lower tiles are given).")
        spec.output("reference_set", valid_type=TrainingSetData, help="All frames labelled, with raw labels.")
        spec.output("summary", valid_type=orm.Dict,
                    help="Per cycle: frames added, errors before/after the refit, MD stability; converged flag.")
        spec.output_namespace("history", dynamic=True,
                              help="Per cycle (cycle_NNN): potential, fit_system, reference_set, residual_set.")
        spec.exit_code(401, "ERROR_LABELLING_FAILED", message="ReferenceWorkChain<{pk}> failed ({status}): {message}")
        spec.exit_code(402, "ERROR_FIT_FAILED", message="FitWorkChain<{pk}> failed ({status}): {message}")
        spec.exit_code(403, "ERROR_ALL_MD_FAILED", message="No MD run of cycle {cycle} produced frames: {failed}")
        spec.exit_code(404, "ERROR_INCONSISTENT_TILES", message="{what} refused: {message}")
        spec.exit_code(405, "ERROR_NO_CANDIDATES", message="Cycle {cycle}: no candidate frame was selected")
        spec.exit_code(406, "ERROR_RESTART_NOTHING_DONE",
                       message="restart_from {process}<{pk}> completed no cycle (no history output); start anew")

    # ================================================================== setup and restart
    def setup(self):
        """State-point structures (given or generated), and the state of a restarted run."""
        self.ctx.cycle = 0
        self.ctx.summary = {"cycles": [], "converged": False}
        self.ctx.reference_sets, self.ctx.residual_sets = {}, {}
        self.ctx.fit_system = None
        self.ctx.points = self.inputs.state_points.get_dict()
        self.ctx.names = sorted(self.ctx.points)
        given = dict(self.inputs.get("structures", {}))
        self.ctx.structures = {}
        for i, name in enumerate(self.ctx.names):
            if name in given:
                self.ctx.structures[name] = given[name]
            else:
                self.ctx.structures[name] = generate_structure(
                    orm.Dict(self.ctx.points[name]), orm.Int(self.inputs.md_seed.value + i),
                    metadata={"call_link_label": f"structure_{name}"})
        self.ctx.continue_from = {}  # periodic sampling: name -> (structure, velocities)
        self.ctx.converged = False
        if "restart_from" in self.inputs:
            return self._restart(self.inputs.restart_from)
        self.report(f"tile of {sorted(_settings_elements(self.inputs.settings))}: {len(self.ctx.names)} state "
                    f"point(s) {self.ctx.names}, lower tiles {sorted(self.inputs.get('lower_tiles', {}))}, "
                    f"up to {self.inputs.max_cycles.value} cycle(s), sampling {self.inputs.sampling.value}")
        return None

    def _restart(self, previous):
        """Take every completed cycle of ``previous``; the loop goes on after the last one."""
        self.node.base.extras.set("restart_from", previous.uuid)
        history = _history(previous)
        if not history:
            return self.exit_codes.ERROR_RESTART_NOTHING_DONE.format(process=previous.process_label, pk=previous.pk)
        last = max(history)
        for k in sorted(history):
            entry = history[k]
            self.ctx.reference_sets[_key(k)] = entry["reference_set"]
            self.ctx.residual_sets[_key(k)] = entry["residual_set"]
            if "summary" in entry:
                self.ctx.summary["cycles"].append(entry["summary"].get_dict())
        self.ctx.cycle = last
        self.ctx.converged = bool(self.ctx.summary["cycles"] and self.ctx.summary["cycles"][-1].get("converged"))
        self.ctx.potential = history[last]["potential"]
        self.ctx.fit_system = history[last]["fit_system"]
        self.ctx.statistics = history[last].get("statistics")
        self._history_out_restart(history)
        if self.inputs.sampling.value == "periodic":
            self.ctx.continue_from = _last_md_states(previous, last)
        self.report(f"restart from {previous.process_label}<{previous.pk}>: cycles 0-{last} done, tile fit "
                    f"{type(self.ctx.potential).__name__}<{self.ctx.potential.pk}>; continuing with cycle {last + 1}")
        return None

    def _history_out_restart(self, history):
        """Re-link the earlier cycles' nodes so that this run's history is complete."""
        for k, entry in history.items():
            for name, node in entry.items():
                self.out(f"history.{_key(k)}.{name}", node)

    def is_new_run(self):
        """Whether ALC-0 still has to run (not a restart)."""
        return "restart_from" not in self.inputs

    def needs_initial_frames(self):
        """Whether ALC-0 labels generated frames (no training set given)."""
        return "training_set" not in self.inputs

    # ================================================================== labelling
    def run_initial_labels(self):
        """Rattled copies of independent random structures of each state point (of its given structure when it
        has one), labelled by the reference method: ``n_frames`` per state point over ``n_structures`` cells."""
        parameters = {**INITIAL_DEFAULTS, **self.inputs.initial.get_dict()}
        given = dict(self.inputs.get("structures", {}))
        n_frames = int(parameters.pop("n_frames"))
        n_structures = max(1, min(int(parameters.pop("n_structures")), n_frames))
        sets = {}
        for i, name in enumerate(self.ctx.names):
            cells = [self.ctx.structures[name]]
            if name not in given:  # more independent cells: rattled copies of one cell sample too little
                cells += [generate_structure(orm.Dict(self.ctx.points[name]),
                                             orm.Int(self.inputs.md_seed.value + i + 7919 * k),
                                             metadata={"call_link_label": f"initial_structure_{name}_{k}"})
                          for k in range(1, n_structures)]
            for k, cell in enumerate(cells):
                count = n_frames // len(cells) + (1 if k < n_frames % len(cells) else 0)
                p = {**parameters, "n_frames": count, "seed": int(parameters["seed"]) + 100 * i + k}
                sets[f"{name}_{k}"] = initial_frames(cell, orm.Dict(p),
                                                     metadata={"call_link_label": f"initial_frames_{name}_{k}"})
        frames = next(iter(sets.values())) if len(sets) == 1 else concatenate_training_sets(
            **sets, metadata={"call_link_label": "initial_frames"})
        self.report(f"ALC-0: no training set given; labelling {frames.nframes} rattled frames of {len(sets)} "
                    f"cell(s) ({n_frames} per state point)")
        return self._submit_labels(frames)

    def run_labels(self):
        """Label this cycle's candidates."""
        return self._submit_labels(self.ctx.candidates)

    def _submit_labels(self, frames):
        inputs = self.exposed_inputs(ReferenceWorkChain, namespace="reference")
        inputs["structures"] = frames
        inputs["metadata"] = {**inputs.get("metadata", {}), "call_link_label": f"reference_{_key(self.ctx.cycle)}"}
        node = self.submit(ReferenceWorkChain, **inputs)
        self.report(f"{_key(self.ctx.cycle)}: labelling {frames.nframes} frames with "
                    f"{self.inputs.reference.method.value} in ReferenceWorkChain<{node.pk}>")
        return ToContext(reference=node)

    def inspect_labels(self):
        """The labelled frames of the cycle (frames that failed are reported and left out)."""
        node = self.ctx.reference
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_LABELLING_FAILED.format(
                pk=node.pk, status=node.exit_status, message=node.exit_message or node.process_state.value)
        self.ctx.new_raw = node.outputs.training_set
        failed = node.outputs.failed_frames.get_list()
        if failed:
            self.report(f"{_key(self.ctx.cycle)}: {len(failed)} frame(s) could not be labelled and are left out: "
                        + "; ".join(f"#{f['index']}: {f['message'][:80]}" for f in failed[:5]))
        return None

    # ================================================================== residuals and fits
    def residualise(self):
        """Subtract the lower tiles from the new frames (calcfunction; nothing to do without lower tiles)."""
        raw = self.inputs.training_set if self.ctx.cycle == 0 and "training_set" in self.inputs else self.ctx.new_raw
        self.ctx.new_raw = raw
        lower = dict(self.inputs.get("lower_tiles", {}))
        if not lower:
            self.ctx.new_residual = raw
            return None
        residual, node = residual_training_set.run_get_node(
            raw, **lower, metadata={"call_link_label": f"residual_{_key(self.ctx.cycle)}"})
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_INCONSISTENT_TILES.format(what="residual_training_set",
                                                                   message=node.exit_message)
        self.ctx.new_residual = residual
        return None

    def errors_before_refit(self):
        """The current fit's errors on the new frames: the convergence test (these frames were not fitted)."""
        errors = prediction_errors(self.ctx.new_residual, self.ctx.potential,
                                   metadata={"call_link_label": f"errors_before_{_key(self.ctx.cycle)}"})
        self.ctx.errors_before = errors.get_dict()
        return None

    def run_fit(self):
        """Fold the new frames into the fit system (ALC-0: a new system) and refit."""
        inputs = self.exposed_inputs(FitWorkChain, namespace="fit")
        inputs.update(training_set=self.ctx.new_residual, settings=self.inputs.settings)
        if self.ctx.fit_system is not None:
            inputs["previous_fit_system"] = self.ctx.fit_system
        inputs["metadata"] = {**inputs.get("metadata", {}), "call_link_label": f"fit_{_key(self.ctx.cycle)}"}
        node = self.submit(FitWorkChain, **inputs)
        self.report(f"{_key(self.ctx.cycle)}: fitting {self.ctx.new_residual.nframes} new frames in "
                    f"FitWorkChain<{node.pk}>")
        return ToContext(fit=node)

    def inspect_fit(self):
        """Keep the new fit; record the cycle in the history and report its errors."""
        node = self.ctx.fit
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_FIT_FAILED.format(
                pk=node.pk, status=node.exit_status, message=node.exit_message or node.process_state.value)
        k = self.ctx.cycle
        self.ctx.potential = node.outputs.potential
        self.ctx.fit_system = node.outputs.fit_system
        self.ctx.statistics = node.outputs.statistics
        self.ctx.reference_sets[_key(k)] = self.ctx.new_raw
        self.ctx.residual_sets[_key(k)] = self.ctx.new_residual
        after = prediction_errors(self.ctx.new_residual, self.ctx.potential,
                                  metadata={"call_link_label": f"errors_after_{_key(k)}"}).get_dict()
        entry = {"cycle": k, "frames_added": self.ctx.new_residual.nframes,
                 "frames_total": self.ctx.fit_system.nframes, "errors_after": _brief(after),
                 "potential": self.ctx.potential.pk, "fit": node.pk}
        if k > 0:
            before = self.ctx.errors_before
            entry["errors_before"] = _brief(before)
            entry["md"] = self.ctx.md_report
            threshold = self.inputs.get("force_threshold")
            if threshold is not None and before["force_rmse"] < threshold.value:
                self.ctx.converged = True
            entry["converged"] = self.ctx.converged
        summary = orm.Dict(entry).store()
        self.ctx.summary["cycles"].append(entry)
        for name, value in (("potential", self.ctx.potential), ("fit_system", self.ctx.fit_system),
                            ("statistics", self.ctx.statistics), ("reference_set", self.ctx.new_raw),
                            ("residual_set", self.ctx.new_residual), ("summary", summary)):
            self.out(f"history.{_key(k)}.{name}", value)
        stats = self.ctx.statistics.get_dict()
        line = (f"{_key(k)}: fitted {entry['frames_added']} new frames ({entry['frames_total']} in all), "
                f"{stats.get('nonzero')} non-zero coefficients; force RMSE on the new frames "
                f"after the refit {after['force_rmse']:.4f} eV/A")
        if k > 0:
            line += f", before {self.ctx.errors_before['force_rmse']:.4f} eV/A"
            if self.ctx.converged:
                line += f" < threshold {self.inputs.force_threshold.value} eV/A: converged"
        self.report(line)
        return None

    # ================================================================== the loop
    def should_run_cycle(self):
        """Another cycle unless converged or at the cycle limit."""
        if self.ctx.converged:
            return False
        if self.ctx.cycle >= self.inputs.max_cycles.value:
            if self.inputs.max_cycles.value and "force_threshold" in self.inputs:
                self.report(f"cycle limit {self.inputs.max_cycles.value} reached before the force RMSE fell below "
                            f"{self.inputs.force_threshold.value} eV/A")
            return False
        self.ctx.cycle += 1
        return True

    def merge(self):
        """The MD potential: the tile fit merged with its lower tiles (calcfunction), or the tile fit alone."""
        lower = dict(self.inputs.get("lower_tiles", {}))
        if not lower:
            self.ctx.md_potential = self.ctx.potential
            return None
        kwargs = {"penalty": self.inputs.penalty} if "penalty" in self.inputs else {}
        merged, node = merge_tiles.run_get_node(
            self.ctx.potential, **kwargs, **lower, metadata={"call_link_label": f"merge_{_key(self.ctx.cycle)}"})
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_INCONSISTENT_TILES.format(what="merge_tiles", message=node.exit_message)
        self.ctx.md_potential = merged
        return None

    def run_md(self):
        """One chimes.md run per state point, all at once."""
        inputs = self.exposed_inputs(MdCalculation, namespace="md")
        base = {**MD_DEFAULTS, **self.inputs.md_parameters.get_dict()}
        futures = {}
        for i, name in enumerate(self.ctx.names):
            point = self.ctx.points[name]
            parameters = {**base, "temperature": float(point["temperature"]),
                          "seed": self.inputs.md_seed.value + 1000 * self.ctx.cycle + i,
                          "tags": {"state_point": name, "cycle": self.ctx.cycle}}
            if "pressure" in point:
                parameters["pressure"] = float(point["pressure"])
            if "steps" in point:
                parameters["steps"] = int(point["steps"])
            run = {**inputs, "potential": self.ctx.md_potential, "parameters": orm.Dict(parameters),
                   "structure": self.ctx.structures[name]}
            if name in self.ctx.continue_from:
                run["structure"], run["velocities"] = self.ctx.continue_from[name]
            key = f"md_{_key(self.ctx.cycle)}_{name}"
            run["metadata"] = {**inputs.get("metadata", {}), "call_link_label": key}
            futures[key] = self.submit(MdCalculation, **run)
        self.report(f"{_key(self.ctx.cycle)}: MD at {len(futures)} state point(s) with "
                    f"{type(self.ctx.md_potential).__name__}<{self.ctx.md_potential.pk}>: "
                    + ", ".join(f"{key} <{node.pk}>" for key, node in futures.items()))
        return ToContext(**futures)

    def inspect_md(self):
        """Keep every run's frames (a blow-up keeps those before it); report MD stability."""
        self.ctx.trajectories, report, failed = {}, {}, []
        periodic = self.inputs.sampling.value == "periodic"
        for name in self.ctx.names:
            calc = self.ctx[f"md_{_key(self.ctx.cycle)}_{name}"]
            summary = calc.outputs.summary.get_dict() if "summary" in calc.outputs else {}
            steps = summary.get("steps_done")
            report[name] = {"pk": calc.pk, "exit_status": calc.exit_status, "steps_done": steps,
                            "status": summary.get("status"), "penalty_frames": len(summary.get("penalty_frames", [])),
                            "mean_temperature": summary.get("mean_temperature"),
                            "nve_drift": summary.get("nve_drift_meV_per_atom_per_ps")}
            if "trajectory" in calc.outputs and calc.outputs.trajectory.nframes:
                self.ctx.trajectories[name] = calc.outputs.trajectory
            else:
                failed.append(f"{name}: MdCalculation<{calc.pk}> {calc.exit_status} {calc.exit_message or ''}")
            if periodic:
                if calc.is_finished_ok and "final_structure" in calc.outputs:
                    self.ctx.continue_from[name] = (calc.outputs.final_structure, calc.outputs.final_velocities)
                else:
                    self.ctx.continue_from.pop(name, None)  # restart from the state point's structure
        self.ctx.md_report = report
        stable = [n for n in self.ctx.names if self.ctx[f"md_{_key(self.ctx.cycle)}_{n}"].is_finished_ok]
        self.report(f"{_key(self.ctx.cycle)}: MD stable at {len(stable)}/{len(self.ctx.names)} state point(s); "
                    + "; ".join(f"{n}: {r['steps_done']} steps, {r['status']}, {r['penalty_frames']} penalty frames"
                                for n, r in report.items()))
        if not self.ctx.trajectories:
            return self.exit_codes.ERROR_ALL_MD_FAILED.format(cycle=self.ctx.cycle, failed="; ".join(failed))
        return None

    def select(self):
        """Candidates of every trajectory (select_candidates calcfunction), joined into one set to label."""
        extra = {}
        if selection_settings(self.inputs.selection.get_dict())["method"] == "leverage":
            extra = {"settings": self.inputs.settings, "fit_system": self.ctx.fit_system}
        picked = {}
        for name, trajectory in self.ctx.trajectories.items():
            result = select_candidates(trajectory, self.inputs.selection, **extra,
                                       metadata={"call_link_label": f"select_{_key(self.ctx.cycle)}_{name}"})
            if result["candidates"].nframes:
                picked[name] = result["candidates"]
            self.ctx.md_report[name]["selected"] = result["report"]["selected"]
        if not picked:
            return self.exit_codes.ERROR_NO_CANDIDATES.format(cycle=self.ctx.cycle)
        self.ctx.candidates = next(iter(picked.values())) if len(picked) == 1 else concatenate_training_sets(
            **picked, metadata={"call_link_label": f"candidates_{_key(self.ctx.cycle)}"})
        return None

    # ================================================================== results
    def results(self):
        """The last fit, merged potential, all frames and the cycle summary."""
        k = self.ctx.cycle
        self.ctx.summary["converged"] = self.ctx.converged
        self.ctx.summary["cycles_done"] = k
        self.out("potential", self.ctx.potential)
        self.out("fit_system", self.ctx.fit_system)
        self.out("statistics", self.ctx.statistics)
        for output, sets in (("reference_set", self.ctx.reference_sets), ("training_set", self.ctx.residual_sets)):
            node = next(iter(sets.values())) if len(sets) == 1 else concatenate_training_sets(
                **sets, metadata={"call_link_label": f"all_{output}"})
            self.out(output, node)
        if self.inputs.get("lower_tiles"):
            kwargs = {"penalty": self.inputs.penalty} if "penalty" in self.inputs else {}
            merged = merge_tiles(self.ctx.potential, **kwargs, **self.inputs.lower_tiles,
                                 metadata={"call_link_label": "merge_final"})
            self.out("merged_potential", merged)
        self.out("summary", orm.Dict(self.ctx.summary).store())
        state = "converged" if self.ctx.converged else "not converged (cycle limit)" if k else "ALC-0 only"
        self.report(f"done after {k} cycle(s), {state}: tile fit {type(self.ctx.potential).__name__}"
                    f"<{self.ctx.potential.pk}>, {self.ctx.fit_system.nframes} frames fitted")


def _key(cycle: int) -> str:
    return f"cycle_{cycle:03d}"


def _brief(errors: dict) -> dict:
    """The error figures a report needs (no per-frame lists)."""
    return {k: errors.get(k) for k in ("nframes", "force_rmse", "force_max", "energy_rmse_per_atom",
                                       "stress_rmse_gpa")}


def _history(node) -> dict[int, dict]:
    """Completed cycles of an earlier run: cycle -> {output name: node}, from its ``history`` outputs."""
    out: dict[int, dict] = {}
    for link in node.base.links.get_outgoing().all():
        label = link.link_label
        if not label.startswith("history__cycle_"):
            continue
        cycle_part, _, name = label[len("history__"):].partition("__")
        out.setdefault(int(cycle_part.split("_")[1]), {})[name] = link.node
    required = {"potential", "fit_system", "reference_set", "residual_set"}
    return {k: v for k, v in out.items() if required <= set(v)}


def _last_md_states(node, cycle: int) -> dict:
    """Periodic sampling: the final structures and velocities of an earlier run's MD of ``cycle``."""
    states = {}
    prefix = f"md_{_key(cycle)}_"
    for link in node.base.links.get_outgoing().all():
        calc = link.node
        if link.link_label.startswith(prefix) and isinstance(calc, orm.CalcJobNode) and calc.is_finished_ok:
            states[link.link_label[len(prefix):]] = (calc.outputs.final_structure, calc.outputs.final_velocities)
    return states
