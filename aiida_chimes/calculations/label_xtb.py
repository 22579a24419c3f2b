"""``chimes.label_xtb``: a batch of structures -> GFN1-xTB energies, forces, stresses (``chimes-label``, tblite)."""

from __future__ import annotations

import json

from aiida import orm
from aiida.engine import CalcJob

from ..data.training_set import TrainingSetData
from .base import add_script_exit_codes, script_calcinfo, set_default_options, unknown_keys_message

SETTINGS_FILE = "label.json"
STRUCTURES_FILE = "structures.npz"
LABELLED_FILE = "labelled.npz"
REPORT_FILE = "label_report.json"
PARAMETER_KEYS = ("method", "electronic_temperature", "accuracy", "max_iterations", "stress", "num_threads")
METHODS = ("GFN1-xTB", "GFN2-xTB")


def validate_parameters(parameters, _):
    """Known keys, a known method, a positive electronic temperature."""
    if parameters is None:
        return None
    p = parameters.get_dict()
    message = unknown_keys_message(p, PARAMETER_KEYS)
    if message:
        return message
    if p.get("method", "GFN1-xTB") not in METHODS:
        return f"parameters: method must be one of {list(METHODS)}, got {p.get('method')!r}"
    t = p.get("electronic_temperature", 300.0)
    if not isinstance(t, (int, float)) or t <= 0:
        return f"parameters: electronic_temperature must be a positive number (K), got {t!r}"
    return None


class LabelXtbCalculation(CalcJob):
    """Label frames with tblite's GFN-xTB; frames whose SCF does not converge are reported and left out."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structures", valid_type=TrainingSetData, help="Frames to label (existing labels are ignored).")
        spec.input("parameters", valid_type=orm.Dict, required=False, validator=validate_parameters,
                   help=f"Keys {PARAMETER_KEYS}; default GFN1-xTB at 300 K electronic temperature.")
        set_default_options(spec, "chimes.label_xtb")
        spec.output("training_set", valid_type=TrainingSetData, help="The converged frames with their labels (eV).")
        spec.output("failed_frames", valid_type=orm.List,
                    help="Indices (into the input) and messages of frames whose SCF did not converge.")
        spec.output("report", valid_type=orm.Dict, help="Counts and timings.")
        add_script_exit_codes(spec)
        spec.exit_code(330, "ERROR_NO_FRAME_CONVERGED", invalidates_cache=True,
                       message="No frame converged ({n} failed); first message: {message}")

    def prepare_for_submission(self, folder):
        params = self.inputs.parameters.get_dict() if "parameters" in self.inputs else {}
        with folder.open(SETTINGS_FILE, "w") as handle:
            json.dump(params, handle, indent=1, sort_keys=True)
        frames = self.inputs.structures.get_frameset()
        with folder.open(STRUCTURES_FILE, "wb") as handle:
            handle.write(frames.to_npz_bytes())
        return script_calcinfo(self.inputs.code, [SETTINGS_FILE], [LABELLED_FILE, REPORT_FILE])
