"""``chimes.regression``: fit system + solver settings -> ChIMES parameter file + statistics (``chimes-solve``)."""

from __future__ import annotations

from aiida import orm
from aiida.engine import CalcJob

from ..data.fit_system import FitSystemData
from ..data.potential import ChimesPotentialData
from .base import add_script_exit_codes, script_calcinfo, set_default_options, unknown_keys_message

SYSTEM_FILE = "fit_system.npz"
PARAMS_FILE = "params.txt"
STATS_FILE = "fit_stats.json"
COEFFICIENTS_FILE = "test_suite_params.txt"
ALGORITHMS = ("svd", "ridge", "lasso", "lassolars", "lars", "dlasso", "dlars")
DEFAULTS = {"algorithm": "svd", "eps": 1.0e-5, "alpha": 1.0e-4, "normalize": False}


def validate_parameters(parameters, _):
    """Known algorithm, positive eps/alpha, no unknown keys."""
    if parameters is None:
        return None
    p = parameters.get_dict()
    message = unknown_keys_message(p, DEFAULTS)
    if message:
        return message
    if p.get("algorithm", "svd") not in ALGORITHMS:
        return f"parameters: algorithm {p.get('algorithm')!r} is not one of {list(ALGORITHMS)}"
    for key in ("eps", "alpha"):
        if key in p and not (isinstance(p[key], (int, float)) and p[key] > 0):
            return f"parameters: {key} must be a positive number, got {p[key]!r}"
    if "normalize" in p and not isinstance(p["normalize"], bool):
        return f"parameters: normalize must be true or false, got {p['normalize']!r}"
    return None


def solver_cmdline(parameters: dict) -> list[str]:
    """``chimes-solve`` arguments for a parameters dict (defaults filled in)."""
    p = {**DEFAULTS, **parameters}
    return ["--system", SYSTEM_FILE, "--algorithm", p["algorithm"], "--eps", repr(float(p["eps"])),
            "--alpha", repr(float(p["alpha"])), "--normalize", str(bool(p["normalize"])).lower(),
            "--output", PARAMS_FILE, "--stats", STATS_FILE, "--test_suite", "true"]


class RegressionCalculation(CalcJob):
    """Solve the regularised least-squares problem of a fit system; outputs the parameter file."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("fit_system", valid_type=FitSystemData, help="Compact fit system from chimes.design_matrix.")
        spec.input("parameters", valid_type=orm.Dict, required=False, validator=validate_parameters,
                   help=f"Solver settings {DEFAULTS} (algorithm one of {ALGORITHMS}).")
        set_default_options(spec, "chimes.regression")
        spec.output("potential", valid_type=ChimesPotentialData, help="The fitted ChIMES parameter file.")
        spec.output("statistics", valid_type=orm.Dict, help="RMSE per class (unweighted), BIC, non-zero count.")
        spec.output("coefficients", valid_type=orm.ArrayData, required=False,
                    help="The solution vector x (array 'x', fit-system column order), for errors on other systems.")
        add_script_exit_codes(spec)
        spec.exit_code(310, "ERROR_NONFINITE_COEFFICIENTS", invalidates_cache=True,
                       message="The solution holds non-finite coefficients.")

    def prepare_for_submission(self, folder):
        node = self.inputs.fit_system
        params = self.inputs.parameters.get_dict() if "parameters" in self.inputs else {}
        return script_calcinfo(self.inputs.code, solver_cmdline(params), [PARAMS_FILE, STATS_FILE, COEFFICIENTS_FILE],
                               local_copy_list=[(node.uuid, node.FILENAME, SYSTEM_FILE)])
