"""``chimes.design_matrix``: training set + fit settings -> compact fit system, by ``chimes-lsq`` (MPI-capable)."""

from __future__ import annotations

import json

from aiida import orm
from aiida.engine import CalcJob

from ..chimes.fit_settings import setup_from_settings, validate_settings
from ..chimes.fit_setup import FitSetupError, TrajectorySource
from ..data.fit_system import FitSystemData
from ..data.training_set import TrainingSetData
from .base import add_script_exit_codes, script_calcinfo, set_default_options

SETUP_FILE = "fm_setup.in"
TRAINING_FILE = "training.xyzf"
WEIGHTS_FILE = "weights.json"
PREVIOUS_FILE = "previous_fit_system.npz"
OUTPUT_FILE = "fit_system.npz"


def validate_inputs(inputs, _):
    """Fit settings must be valid and consistent with the observables the training set carries."""
    settings = inputs.get("settings")
    if settings is None:
        return None
    try:
        setup = validate_settings(settings.get_dict(), source="settings")
    except FitSetupError as exc:
        return str(exc)
    training = inputs.get("training_set")
    if training is None:
        return None
    obs = training.base.attributes.get("observables", {})
    nframes = training.base.attributes.get("nframes", 0)
    if obs.get("forces", 0) != nframes:
        return f"training_set: {nframes - obs.get('forces', 0)} of {nframes} frames have no forces; label them first"
    if setup.fit_energy and setup.fit_energy_first is None and obs.get("energy", 0) != nframes:
        return (f"settings: fit_energy is true but {nframes - obs.get('energy', 0)} of {nframes} frames have no energy;"
                " set fit_energy to false or label energies")
    if setup.fit_stress != "none" and setup.fit_stress_first is None and obs.get("stress", 0) != nframes:
        return (f"settings: fit_stress is {setup.fit_stress!r} but {nframes - obs.get('stress', 0)} of {nframes} "
                "frames have no stress; set fit_stress to 'none' or label stresses")
    missing = sorted(set(training.base.attributes.get("elements", [])) - set(setup.types))
    if missing:
        return f"training_set holds elements {missing} that are not atom types of the fit settings {setup.types}"
    return None


class DesignMatrixCalculation(CalcJob):
    """Build the weighted compact fit system (per-class triangular factors) of a training set."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("training_set", valid_type=TrainingSetData, help="Labelled frames to fit (eV units).")
        spec.input("settings", valid_type=orm.Dict,
                   help="Fit settings: types, pairs, orders, exclusions, SPECIAL cutoffs, fit_energy, fit_stress, "
                        "fcut_type... (see aiida_chimes.chimes.fit_settings).")
        spec.input("weights", valid_type=orm.Dict, required=False,
                   help="Row weights per class, al_driver styles allowed, e.g. {'force': 1, 'energy': 0.1}.")
        spec.input("previous_fit_system", valid_type=FitSystemData, required=False,
                   help="An earlier system with the same basis and weights: the new frames are folded into it.")
        spec.inputs.validator = validate_inputs
        set_default_options(spec, "chimes.design_matrix")
        spec.output("fit_system", valid_type=FitSystemData, help="The compact fit system.")
        add_script_exit_codes(spec)

    def prepare_for_submission(self, folder):
        frames = self.inputs.training_set.get_frameset()
        frames.write_xyzf(folder.get_abs_path(TRAINING_FILE))
        setup = setup_from_settings(self.inputs.settings.get_dict(), [TrajectorySource(TRAINING_FILE, len(frames))],
                                    source="settings")
        with folder.open(SETUP_FILE, "w") as handle:
            handle.write(setup.to_string())
        cmdline = [SETUP_FILE, "--output", OUTPUT_FILE, "--compact-only"]
        if "weights" in self.inputs:
            with folder.open(WEIGHTS_FILE, "w") as handle:
                json.dump(self.inputs.weights.get_dict(), handle, indent=1, sort_keys=True)
            cmdline += ["--weights", WEIGHTS_FILE]
        copies = []
        if "previous_fit_system" in self.inputs:
            node = self.inputs.previous_fit_system
            copies.append((node.uuid, node.FILENAME, PREVIOUS_FILE))
            cmdline += ["--add-to", PREVIOUS_FILE]
        return script_calcinfo(self.inputs.code, cmdline, [OUTPUT_FILE], local_copy_list=copies)
