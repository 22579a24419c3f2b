"""``chimes.md``: ChIMES potential + structure + MD settings -> trajectory, thermodynamic log (``chimes-md``)."""

from __future__ import annotations

import io
import json

import numpy as np
from aiida import orm
from aiida.engine import CalcJob

from ..chimes.frames import FrameSet
from ..data.potential import ChimesPotentialData
from ..data.training_set import TrainingSetData
from .base import add_script_exit_codes, script_calcinfo, set_default_options, unknown_keys_message

SETTINGS_FILE = "md.json"
PARAMS_FILE = "params.txt"
STRUCTURE_FILE = "structure.npz"
VELOCITIES_FILE = "velocities.npy"
TRAJECTORY_FILE = "trajectory.npz"
THERMO_FILE = "thermo.npz"
FINAL_FILE = "final.npz"
FINAL_VELOCITIES_FILE = "final_velocities.npy"
SUMMARY_FILE = "md_summary.json"

#: Keys of ``md.json`` that the parameters Dict may hold (the file names are set by the CalcJob).
PARAMETER_KEYS = ("ensemble", "thermostat", "temperature", "pressure", "timestep", "steps", "output_interval",
                  "thermo_interval", "seed", "friction", "tau", "tau_p", "compressibility", "penalty", "blowup",
                  "num_threads", "tags")


def validate_parameters(parameters, _):
    """Known keys, an ensemble, a positive time step and step count, and a seed (MD must be reproducible)."""
    if parameters is None:
        return None
    p = parameters.get_dict()
    message = unknown_keys_message(p, PARAMETER_KEYS)
    if message:
        return message
    if p.get("ensemble") not in (None, "nve", "nvt", "npt"):
        return f"parameters: ensemble must be nve, nvt or npt, got {p.get('ensemble')!r}"
    required = ("timestep", "steps") if p.get("ensemble") == "nve" else ("timestep", "steps", "temperature")
    for key in required:
        if key not in p:
            return f"parameters: '{key}' is required"
    for key in ("timestep", "steps", "temperature"):
        if key in p and (not isinstance(p[key], (int, float)) or p[key] <= 0):
            return f"parameters: '{key}' must be a positive number, got {p[key]!r}"
    if "ensemble" not in p:
        return "parameters: 'ensemble' is required (nve, nvt or npt)"
    if "seed" not in p:
        return "parameters: 'seed' is required (velocities and thermostat noise must be reproducible and cacheable)"
    if p.get("ensemble") == "npt" and "pressure" not in p:
        return "parameters: npt needs 'pressure' (GPa)"
    return None


def validate_inputs(inputs, _):
    """The structure's elements must all be types of the potential."""
    potential, structure = inputs.get("potential"), inputs.get("structure")
    if potential is None or structure is None:
        return None
    missing = sorted(set(structure.get_symbols_set()) -
                     set(potential.base.attributes.get("elements", [])))
    if missing:
        return f"structure holds elements {missing} that the potential does not describe"
    velocities = inputs.get("velocities")
    if velocities is not None:
        shape = velocities.get_shape("velocities") if "velocities" in velocities.get_arraynames() else None
        if shape != (len(structure.sites), 3):
            return f"velocities: need an array 'velocities' of shape ({len(structure.sites)}, 3), got {shape}"
    return None


class MdCalculation(CalcJob):
    """Molecular dynamics with a ChIMES potential by our numba engine (ASE integrators)."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("potential", valid_type=ChimesPotentialData, help="ChIMES parameter file (merged potential).")
        spec.input("structure", valid_type=orm.StructureData, help="Starting structure.")
        spec.input("velocities", valid_type=orm.ArrayData, required=False,
                   help="Starting velocities (array 'velocities', Angstrom/fs); default Maxwell-Boltzmann from seed.")
        spec.input("parameters", valid_type=orm.Dict, validator=validate_parameters,
                   help=f"MD settings, keys {PARAMETER_KEYS}; timestep fs, temperature K, pressure GPa.")
        spec.inputs.validator = validate_inputs
        set_default_options(spec, "chimes.md")
        spec.output("trajectory", valid_type=TrainingSetData,
                    help="Stored frames (no labels); tags hold step, time and penalty-pair counts.")
        spec.output("thermo", valid_type=orm.ArrayData, help="Thermodynamic log (eV, K, GPa, Angstrom^3).")
        spec.output("final_structure", valid_type=orm.StructureData, required=False,
                    help="Last good frame, to continue from.")
        spec.output("final_velocities", valid_type=orm.ArrayData, required=False,
                    help="Velocities of the last good frame (Angstrom/fs).")
        spec.output("summary", valid_type=orm.Dict, help="Status, penalty frames, drift, timings.")
        add_script_exit_codes(spec)
        spec.exit_code(320, "ERROR_MD_BLOWUP", invalidates_cache=True,
                       message="The trajectory blew up at step {step}: {reason}. Frames up to it are kept.")
        spec.exit_code(321, "ERROR_MD_INTERRUPTED", invalidates_cache=True,
                       message="The run stopped at step {step} with status {status} (killed or out of wall time); "
                               "the frames written so far are kept.")

    def prepare_for_submission(self, folder):
        settings = self.inputs.parameters.get_dict()
        with folder.open(SETTINGS_FILE, "w") as handle:
            json.dump(settings, handle, indent=1, sort_keys=True)
        with folder.open(PARAMS_FILE, "w") as handle:
            handle.write(self.inputs.potential.get_content())
        frames = FrameSet.from_atoms([self.inputs.structure.get_ase()])
        with folder.open(STRUCTURE_FILE, "wb") as handle:
            handle.write(frames.to_npz_bytes())
        if "velocities" in self.inputs:
            buf = io.BytesIO()
            np.save(buf, self.inputs.velocities.get_array("velocities"))
            with folder.open(VELOCITIES_FILE, "wb") as handle:
                handle.write(buf.getvalue())
        retrieve = [TRAJECTORY_FILE, THERMO_FILE, FINAL_FILE, FINAL_VELOCITIES_FILE, SUMMARY_FILE]
        return script_calcinfo(self.inputs.code, [SETTINGS_FILE], retrieve)
