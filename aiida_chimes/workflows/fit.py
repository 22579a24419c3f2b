"""``chimes.fit``: training frames -> compact fit system -> regressions over a regularisation scan -> chosen fit.

One ``chimes.design_matrix`` CalcJob builds the system of the training frames (folded into an earlier system in an
active-learning cycle), one ``chimes.regression`` CalcJob per regularisation value runs in parallel, and the fit
is chosen by BIC or by the errors on held-out frames (their own, equally weighted, fit system).
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import ToContext, WorkChain, if_

from ..calculations.design_matrix import DesignMatrixCalculation
from ..calculations.design_matrix import validate_inputs as validate_design_inputs
from ..calculations.functions.fit_errors import SELECTIONS, select_fit, validation_errors
from ..calculations.functions.training_sets import concatenate_training_sets, subset_training_set
from ..calculations.regression import ALGORITHMS, DEFAULTS, RegressionCalculation
from ..data.fit_system import FitSystemData
from ..data.potential import ChimesPotentialData
from ..data.training_set import TrainingSetData

__all__ = ("PROTOCOLS", "FitWorkChain", "solver_candidates", "validation_split")

SOLVER_KEYS = ("algorithm", "eps", "alpha", "eps_values", "alphas", "normalize")
#: Solver and selection of each protocol (``get_builder_from_protocol``).
PROTOCOLS = {
    "fast": {"solver": {"algorithm": "svd", "eps": 1.0e-5}, "selection": "bic"},
    "moderate": {"solver": {"algorithm": "lassolars", "alphas": [1.0e-5, 1.0e-4, 1.0e-3]}, "selection": "bic"},
    "precise": {"solver": {"algorithm": "lassolars", "alphas": [1.0e-6, 1.0e-5, 1.0e-4, 1.0e-3]},
                "selection": "validation", "validation_fraction": 0.1},
}


def solver_candidates(solver: dict) -> list[dict]:
    """The ``chimes.regression`` parameters of every regularisation value of ``solver``; ValueError if invalid."""
    unknown = sorted(set(solver) - set(SOLVER_KEYS))
    if unknown:
        raise ValueError(f"solver: unknown key(s) {unknown}; allowed: {list(SOLVER_KEYS)}")
    algorithm = solver.get("algorithm", DEFAULTS["algorithm"])
    if algorithm not in ALGORITHMS:
        raise ValueError(f"solver: algorithm {algorithm!r} is not one of {list(ALGORITHMS)}")
    key, scan, foreign = ("eps", "eps_values", ("alpha", "alphas")) if algorithm == "svd" else (
        "alpha", "alphas", ("eps", "eps_values"))
    misplaced = [name for name in foreign if name in solver]
    if misplaced:
        raise ValueError(f"solver: {algorithm} is regularised by {key} (one value) or {scan} (a scan); remove "
                         f"{misplaced}")
    if key in solver and scan in solver:
        raise ValueError(f"solver: give either {key} or {scan}, not both")
    values = solver[scan] if scan in solver else [solver.get(key, DEFAULTS[key])]
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"solver: {scan} must be a non-empty list of positive numbers, got {values!r}")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"solver: {scan if scan in solver else key} must be positive, got {value!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"solver: {scan} repeats values: {values}")
    extra = {}
    if "normalize" in solver:
        if not isinstance(solver["normalize"], bool):
            raise ValueError(f"solver: normalize must be true or false, got {solver['normalize']!r}")
        extra["normalize"] = solver["normalize"]
    return [{"algorithm": algorithm, key: float(value), **extra} for value in values]


def validation_split(nframes: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(training, validation) frame indices: round(fraction * nframes) frames (at least 1) drawn with ``seed``."""
    nval = max(1, int(round(fraction * nframes)))
    if nval >= nframes:
        raise ValueError(f"validation_fraction: {fraction} of {nframes} frames leaves no training frame; use more "
                         "frames or a smaller fraction")
    held = sorted(int(i) for i in np.random.default_rng(seed).choice(nframes, size=nval, replace=False))
    return [i for i in range(nframes) if i not in set(held)], held


def _training_nodes(inputs) -> dict:
    if "training_set" in inputs:
        return {"training_set": inputs["training_set"]}
    return {f"training_sets.{key}": node for key, node in (inputs.get("training_sets") or {}).items()}


def validate_inputs(inputs, namespace):
    """One source of frames, frames consistent with the settings, a valid solver scan and validation split.

    Ports that a parent workchain excluded when exposing these inputs are not checked (it supplies them itself).
    """
    if namespace is None or {"training_set", "training_sets"} <= set(namespace):
        if ("training_set" in inputs) == bool(inputs.get("training_sets")):
            return "give the training frames either as `training_set` or as the namespace `training_sets`, not both"
    nodes = _training_nodes(inputs)
    if "settings" in inputs:
        for name, node in nodes.items():
            message = validate_design_inputs({"settings": inputs["settings"], "training_set": node}, None)
            if message:
                return message if name == "training_set" else f"{name}: {message}"
    if "solver" in inputs:
        try:
            solver_candidates(inputs["solver"].get_dict())
        except ValueError as exc:
            return str(exc)
    selection = inputs["selection"].value if "selection" in inputs else "bic"
    if selection not in SELECTIONS:
        return f"selection: must be one of {list(SELECTIONS)}, got {selection!r}"
    fraction = inputs["validation_fraction"].value if "validation_fraction" in inputs else 0.1
    if not 0.0 < fraction < 1.0:
        return f"validation_fraction: must lie strictly between 0 and 1, got {fraction}"
    if selection == "validation" and nodes:
        seed = inputs["validation_seed"].value if "validation_seed" in inputs else 0
        try:
            validation_split(sum(node.nframes for node in nodes.values()), fraction, seed)
        except ValueError as exc:
            return str(exc)
    return None


class FitWorkChain(WorkChain):
    """Fit a ChIMES potential: one fit system, a parallel regularisation scan, the best fit by BIC or validation."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("training_set", valid_type=TrainingSetData, required=False, help="Labelled frames to fit.")
        spec.input_namespace("training_sets", valid_type=TrainingSetData, dynamic=True, required=False,
                             help="Several training sets, concatenated (calcfunction) in the order of their keys.")
        spec.input("settings", valid_type=orm.Dict, help="Fit settings (see aiida_chimes.chimes.fit_settings).")
        spec.input("weights", valid_type=orm.Dict, required=False,
                   help="Row weights per class, e.g. {'force': 1, 'energy': 0.1}; the same for the validation "
                        "system.")
        spec.input("previous_fit_system", valid_type=FitSystemData, required=False,
                   help="Fit system of an earlier cycle (same settings and weights): the frames are folded into it.")
        spec.input("solver", valid_type=orm.Dict, default=lambda: orm.Dict({"algorithm": "svd"}),
                   help=f"{{algorithm, eps | eps_values (svd), alpha | alphas (others), normalize}}: one regression "
                        f"per value; algorithm one of {list(ALGORITHMS)}.")
        spec.input("selection", valid_type=orm.Str, default=lambda: orm.Str("bic"),
                   help="'bic': minimum BIC of the training fit; 'validation': minimum weighted RMSE on held-out "
                        "frames.")
        spec.input("validation_fraction", valid_type=orm.Float, default=lambda: orm.Float(0.1),
                   help="Fraction of the (new) frames held out when selection is 'validation' (at least 1 frame).")
        spec.input("validation_seed", valid_type=orm.Int, default=lambda: orm.Int(0),
                   help="Seed of the random choice of held-out frames (reproducible split).")
        spec.expose_inputs(DesignMatrixCalculation, namespace="design_matrix",
                           exclude=("training_set", "settings", "weights", "previous_fit_system"),
                           namespace_options={"help": "code and metadata of the chimes.design_matrix CalcJobs."})
        spec.expose_inputs(RegressionCalculation, namespace="regression", exclude=("fit_system", "parameters"),
                           namespace_options={"help": "code and metadata of the chimes.regression CalcJobs."})
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            cls.run_design_matrices,
            cls.inspect_design_matrices,
            cls.run_regressions,
            cls.inspect_regressions,
            if_(cls.uses_validation)(cls.compute_validation_errors),
            cls.select,
        )
        spec.output("potential", valid_type=ChimesPotentialData, help="The chosen fit's parameter file.")
        spec.output("statistics", valid_type=orm.Dict, help="The chosen regression's statistics (training rows).")
        spec.output("coefficients", valid_type=orm.ArrayData, required=False, help="The chosen solution x.")
        spec.output("fit_system", valid_type=FitSystemData,
                    help="System of the training frames (held-out frames not included): the previous_fit_system "
                         "of the next cycle.")
        spec.output("validation_fit_system", valid_type=FitSystemData, required=False,
                    help="System of the held-out frames (selection 'validation').")
        spec.output("validation", valid_type=orm.Dict,
                    help="Per regularisation value its BIC, RMSE and validation errors, and which was chosen.")
        spec.exit_code(401, "ERROR_DESIGN_MATRIX_FAILED",
                       message="DesignMatrixCalculation<{pk}> ({which} frames) failed ({status}): {message}")
        spec.exit_code(402, "ERROR_ALL_REGRESSIONS_FAILED",
                       message="All RegressionCalculations failed: {failed}")
        spec.exit_code(403, "ERROR_MISSING_COEFFICIENTS",
                       message="RegressionCalculation<{pk}> has no coefficients output, needed for validation errors")

    # -- steps --------------------------------------------------------------------------------------------------
    def setup(self):
        """Gather the frames (concatenated if several), the scan, and the held-out split (subset calcfunctions)."""
        if "training_set" in self.inputs:
            frames = self.inputs.training_set
        elif len(self.inputs.training_sets) == 1:
            frames = next(iter(self.inputs.training_sets.values()))
        else:
            frames = concatenate_training_sets(**self.inputs.training_sets,
                                               metadata={"call_link_label": "concatenate"})
            self.report(f"concatenated training sets {sorted(self.inputs.training_sets)} into "
                        f"TrainingSetData<{frames.pk}>")
        self.ctx.candidates = solver_candidates(self.inputs.solver.get_dict())
        self.ctx.training_set = frames
        if self.uses_validation():
            train, held = validation_split(frames.nframes, self.inputs.validation_fraction.value,
                                           self.inputs.validation_seed.value)
            self.ctx.training_set = subset_training_set(frames, orm.List(train),
                                                        metadata={"call_link_label": "training_frames"})
            self.ctx.validation_set = subset_training_set(frames, orm.List(held),
                                                          metadata={"call_link_label": "validation_frames"})
            self.report(f"{frames.nframes} frames: {len(train)} for training, held out {held} for validation "
                        f"(seed {self.inputs.validation_seed.value})")
        else:
            self.report(f"{frames.nframes} frames for training")

    def uses_validation(self):
        """Whether the fit is chosen on held-out frames."""
        return self.inputs.selection.value == "validation"

    def run_design_matrices(self):
        """The training system (folded into previous_fit_system if given) and, if needed, the validation system."""
        inputs = self.exposed_inputs(DesignMatrixCalculation, namespace="design_matrix")
        common = {**inputs, "settings": self.inputs.settings}
        if "weights" in self.inputs:
            common["weights"] = self.inputs.weights
        train = {**common, "training_set": self.ctx.training_set,
                 "metadata": {**inputs.get("metadata", {}), "call_link_label": "design_matrix"}}
        if "previous_fit_system" in self.inputs:
            train["previous_fit_system"] = self.inputs.previous_fit_system
            self.report(f"folding into FitSystemData<{self.inputs.previous_fit_system.pk}> "
                        f"({self.inputs.previous_fit_system.nframes} frames)")
        futures = {"design_matrix": self.submit(DesignMatrixCalculation, **train)}
        if self.uses_validation():
            held = {**common, "training_set": self.ctx.validation_set,
                    "metadata": {**inputs.get("metadata", {}), "call_link_label": "validation_design_matrix"}}
            futures["validation_design_matrix"] = self.submit(DesignMatrixCalculation, **held)
        self.report("launched " + ", ".join(f"DesignMatrixCalculation<{n.pk}> ({k})" for k, n in futures.items()))
        return ToContext(**futures)

    def inspect_design_matrices(self):
        """Both systems must exist; report their frames, columns and rows."""
        for key, which in (("design_matrix", "training"), ("validation_design_matrix", "validation")):
            if key not in self.ctx:
                continue
            calc = self.ctx[key]
            if not calc.is_finished_ok:
                return self.exit_codes.ERROR_DESIGN_MATRIX_FAILED.format(
                    pk=calc.pk, which=which, status=calc.exit_status,
                    message=calc.exit_message or calc.process_state.value)
            system = calc.outputs.fit_system
            self.report(f"{which} system FitSystemData<{system.pk}>: {system.nframes} frames, {system.ncols} "
                        f"columns, rows {system.nrows}")
        self.ctx.fit_system = self.ctx.design_matrix.outputs.fit_system
        return None

    def run_regressions(self):
        """One regression per regularisation value, all at once."""
        inputs = self.exposed_inputs(RegressionCalculation, namespace="regression")
        futures = {}
        for i, parameters in enumerate(self.ctx.candidates):
            key = f"regression_{i}"
            futures[key] = self.submit(RegressionCalculation, **{
                **inputs, "fit_system": self.ctx.fit_system, "parameters": orm.Dict(parameters),
                "metadata": {**inputs.get("metadata", {}), "call_link_label": key}})
        self.report(f"launched {len(futures)} RegressionCalculation(s): "
                    + ", ".join(f"<{node.pk}> {_value(p)}" for node, p in zip(futures.values(), self.ctx.candidates,
                                                                              strict=True)))
        return ToContext(**futures)

    def inspect_regressions(self):
        """Keep the regressions that finished; report each value's BIC and RMSE (an error if none finished)."""
        self.ctx.finished = []
        failed = []
        for i, parameters in enumerate(self.ctx.candidates):
            calc = self.ctx[f"regression_{i}"]
            if not calc.is_finished_ok:
                failed.append(f"RegressionCalculation<{calc.pk}> ({_value(parameters)}): {calc.exit_status} "
                              f"{calc.exit_message or calc.process_state.value}")
                self.report(f"{_value(parameters)}: {failed[-1]}; left out of the selection")
                continue
            self.ctx.finished.append(i)
            stats = calc.outputs.statistics.get_dict()
            self.report(f"{_value(parameters)}: BIC {_g(stats.get('bic'))}, RMSE {_g(stats.get('rmse'))}, "
                        f"{stats.get('nonzero')} non-zero")
        if not self.ctx.finished:
            return self.exit_codes.ERROR_ALL_REGRESSIONS_FAILED.format(failed="; ".join(failed))
        return None

    def compute_validation_errors(self):
        """Errors of every finished fit on the held-out system (calcfunction, from its factors)."""
        held = self.ctx.validation_design_matrix.outputs.fit_system
        for i in self.ctx.finished:
            calc = self.ctx[f"regression_{i}"]
            if "coefficients" not in calc.outputs:
                return self.exit_codes.ERROR_MISSING_COEFFICIENTS.format(pk=calc.pk)
            errors = validation_errors(held, calc.outputs.coefficients,
                                       metadata={"call_link_label": f"validation_errors_{i}"})
            self.ctx[f"errors_{i}"] = errors
            rmse = errors.get_dict()
            by_class = ", ".join(f"{k} {_g(v)}" for k, v in rmse["rmse_by_class"].items() if v is not None)
            self.report(f"{_value(self.ctx.candidates[i])}: validation RMSE weighted {_g(rmse['rmse_weighted'])}; "
                        f"unweighted {by_class}")
        return None

    def select(self):
        """Choose the fit (select_fit calcfunction) and output it with the training system."""
        results = {f"statistics_{i}": self.ctx[f"regression_{i}"].outputs.statistics for i in self.ctx.finished}
        if self.uses_validation():
            results.update({f"validation_{i}": self.ctx[f"errors_{i}"] for i in self.ctx.finished})
        summary = select_fit(self.inputs.selection, **results, metadata={"call_link_label": "select_fit"})
        chosen = summary["chosen"]
        calc = self.ctx[f"regression_{chosen}"]
        self.out("potential", calc.outputs.potential)
        self.out("statistics", calc.outputs.statistics)
        if "coefficients" in calc.outputs:
            self.out("coefficients", calc.outputs.coefficients)
        self.out("fit_system", self.ctx.fit_system)
        if self.uses_validation():
            self.out("validation_fit_system", self.ctx.validation_design_matrix.outputs.fit_system)
        self.out("validation", summary)
        self.report(f"chose {_value(self.ctx.candidates[chosen])} (RegressionCalculation<{calc.pk}>) by "
                    f"{summary['criterion']} among {len(self.ctx.finished)} fit(s)")

    # -- protocols ----------------------------------------------------------------------------------------------
    @classmethod
    def get_protocol_names(cls) -> list[str]:
        return list(PROTOCOLS)

    @classmethod
    def get_builder_from_protocol(cls, codes: dict, training_set, settings, protocol: str = "fast", weights=None):
        """Builder for ``codes`` ({'design_matrix': code, 'regression': code}); the protocol sets the solver scan."""
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol: {protocol!r} is not one of {list(PROTOCOLS)}")
        missing = sorted({"design_matrix", "regression"} - set(codes))
        if missing:
            raise ValueError(f"codes: missing {missing}; give {{'design_matrix': <chimes-lsq code>, "
                             "'regression': <chimes-solve code>}")
        choice = PROTOCOLS[protocol]
        builder = cls.get_builder()
        builder.training_set = training_set
        builder.settings = settings if isinstance(settings, orm.Dict) else orm.Dict(settings)
        if weights is not None:
            builder.weights = weights if isinstance(weights, orm.Dict) else orm.Dict(weights)
        builder.design_matrix.code = codes["design_matrix"]
        builder.regression.code = codes["regression"]
        builder.solver = orm.Dict(choice["solver"])
        builder.selection = orm.Str(choice["selection"])
        if "validation_fraction" in choice:
            builder.validation_fraction = orm.Float(choice["validation_fraction"])
        return builder


def _g(value) -> str:
    """A number for reports ('None' when absent)."""
    return f"{value:.6g}" if isinstance(value, (int, float)) else str(value)


def _value(parameters: dict) -> str:
    """'svd eps=1e-05' / 'lassolars alpha=0.001' for reports."""
    key = "eps" if parameters["algorithm"] == "svd" else "alpha"
    return f"{parameters['algorithm']} {key}={parameters[key]:g}"
