"""``chimes.label_vasp``: label every frame of a training set with one aiida-vasp ``VaspWorkChain`` (no new CalcJob).

All frames run in parallel.  The labels are collected by the ``collect_vasp_labels`` calcfunction, so the
output training set links back to each VASP calculation; failed runs are reported and left out.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import ToContext, WorkChain
from aiida.plugins import WorkflowFactory

from ..calculations.functions.vasp_labels import ENERGY_KEY, collect_vasp_labels, frame_key, frames_to_structures
from ..data.training_set import TrainingSetData

VaspWorkChain = WorkflowFactory("vasp.vasp")


def validate_inputs(inputs, _):
    """k-points given one way, and every frame in a periodic cell (VASP needs one)."""
    vasp = inputs.get("vasp", {})
    if vasp and "kpoints" not in vasp and "kpoints_spacing" not in vasp:
        return "vasp: give either `vasp.kpoints` (a KpointsData mesh) or `vasp.kpoints_spacing` (Float, 1/A)"
    structures = inputs.get("structures")
    if structures is not None:
        if not structures.nframes:
            return "structures: the training set has no frames"
        cells = structures.get_frameset().cells
        flat = np.flatnonzero(np.abs(np.linalg.det(cells)) < 1e-6)
        if len(flat):
            return (f"structures: frames {flat.tolist()[:10]} have no cell (zero volume); VASP needs a periodic "
                    "cell: put molecules in a box first")
    return None


def parser_settings_with_free_energy(settings: orm.Dict | None) -> orm.Dict | None:
    """``settings`` whose parser also reports the free energy (the labelled energy); None or the node if unchanged."""
    content = settings.get_dict() if settings is not None else {}
    parser = content.setdefault("parser_settings", {})
    energy_types = list(parser.get("energy_type", ["energy_extrapolated"]))
    if ENERGY_KEY in energy_types:
        return settings
    parser["energy_type"] = [*energy_types, ENERGY_KEY]
    return orm.Dict(content)


def failure_message(node) -> str:
    """Why a VaspWorkChain failed: its own exit message plus that of its last VaspCalculation, if that failed."""
    message = node.exit_message or f"process {node.process_state.value}"
    calcs = sorted((c for c in node.called if isinstance(c, orm.CalcJobNode)), key=lambda c: c.ctime)
    if calcs and not calcs[-1].is_finished_ok:
        last = calcs[-1]
        message += (f"; last VaspCalculation<{last.pk}> ({last.exit_status}): "
                    f"{last.exit_message or last.process_state.value}")
    return message


class LabelVaspWorkChain(WorkChain):
    """One ``VaspWorkChain`` per frame (call links ``frame_0000``, ...), then the labels as a TrainingSetData."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structures", valid_type=TrainingSetData,
                   help="Frames to label (existing labels are replaced); each needs a periodic cell.")
        spec.expose_inputs(VaspWorkChain, namespace="vasp", exclude=("structure",),
                           namespace_options={"help": "Inputs of every VaspWorkChain: code, potential_family, "
                                              "potential_mapping, parameters {'incar': {...}}, kpoints or "
                                              "kpoints_spacing, calc.metadata.options, settings (optional)."})
        spec.inputs.validator = validate_inputs
        spec.outline(cls.run_vasp, cls.collect)
        spec.output("training_set", valid_type=TrainingSetData,
                    help="The frames whose VASP run succeeded, with energy/forces/stress in eV units.")
        spec.output("failed_frames", valid_type=orm.List,
                    help="One dict {index, pk, exit_status, message} per frame whose VASP run failed.")
        spec.exit_code(401, "ERROR_NO_FRAME_LABELLED",
                       message="None of the {n} VASP runs succeeded; first failure: {message}")

    def run_vasp(self):
        """Launch all VaspWorkChains at once."""
        structures = frames_to_structures(self.inputs.structures,
                                          metadata={"call_link_label": "frames_to_structures"})
        inputs = self.exposed_inputs(VaspWorkChain, namespace="vasp")
        settings = parser_settings_with_free_energy(inputs.get("settings"))
        if settings is not None:
            inputs["settings"] = settings
        futures = {}
        for i in range(len(structures)):
            key = frame_key("frame", i)
            frame_inputs = dict(inputs)
            frame_inputs["structure"] = structures[key]
            frame_inputs["metadata"] = {**inputs.get("metadata", {}), "call_link_label": key, "label": key}
            futures[key] = self.submit(VaspWorkChain, **frame_inputs)
        self.report(f"launched {len(futures)} VaspWorkChains (frame_0000 ... {key})")
        return ToContext(**futures)

    def collect(self):
        """Collect the successful runs' labels through the calcfunction; report the failed ones."""
        runs, failed = {}, []
        n = self.inputs.structures.nframes
        for i in range(n):
            node = self.ctx[frame_key("frame", i)]
            if node.is_finished_ok and "misc" in node.outputs:
                misc = node.outputs.misc
                runs[frame_key("misc", i)] = misc
                runs[frame_key("incar", i)] = misc.creator.inputs.parameters
            else:
                message = failure_message(node)
                failed.append({"index": i, "pk": node.pk, "exit_status": node.exit_status, "message": message})
                self.report(f"frame {i}: VaspWorkChain<{node.pk}> failed ({node.exit_status}): {message}")
        self.out("failed_frames", orm.List(failed).store())
        if not runs:
            first = failed[0]
            return self.exit_codes.ERROR_NO_FRAME_LABELLED.format(
                n=n, message=f"frame {first['index']} VaspWorkChain<{first['pk']}>: {first['message']}")
        labelled = collect_vasp_labels(self.inputs.structures, **runs,
                                       metadata={"call_link_label": "collect_vasp_labels"})
        self.out("training_set", labelled)
        self.report(f"labelled {labelled.nframes} of {n} frames; {len(failed)} failed")
        return None
