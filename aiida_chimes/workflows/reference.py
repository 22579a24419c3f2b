"""``chimes.reference``: label a training set with the chosen reference method, GFN-xTB (``chimes.label_xtb``
CalcJobs, in batches) or VASP (``chimes.label_vasp``), with one interface for the fitting workflows.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ToContext, WorkChain, if_

from ..calculations.functions.training_sets import concatenate_training_sets, subset_training_set
from ..calculations.label_xtb import LabelXtbCalculation
from ..data.training_set import TrainingSetData
from .label_vasp import LabelVaspWorkChain

METHODS = ("xtb", "vasp")


def validate_method(method, _):
    """One of :data:`METHODS`."""
    if method.value not in METHODS:
        return f"method: must be one of {list(METHODS)}, got {method.value!r}"
    return None


def validate_batch_size(batch_size, _):
    """At least one frame per CalcJob."""
    if batch_size.value < 1:
        return f"xtb.batch_size: must be a positive number of frames per CalcJob, got {batch_size.value}"
    return None


def validate_inputs(inputs, _):
    """Frames to label, and the namespace of the chosen method."""
    if "structures" in inputs and not inputs["structures"].nframes:
        return "structures: the training set has no frames"
    method = inputs["method"].value
    if method not in METHODS:
        return None  # reported by the port validator
    if not inputs.get(method):
        example = {"xtb": "xtb.code (a chimes-label code)",
                   "vasp": "vasp.vasp.code, vasp.vasp.potential_family, vasp.vasp.parameters, ..."}[method]
        return f"method {method!r} needs the `{method}` input namespace: set at least {example}"
    return None


def batches(nframes: int, batch_size: int | None) -> list[list[int]]:
    """``[start, stop]`` frame ranges of at most ``batch_size`` frames (one range when None); JSON-able for ctx."""
    size = nframes if batch_size is None else batch_size
    return [[start, min(start + size, nframes)] for start in range(0, nframes, size)]


class ReferenceWorkChain(WorkChain):
    """Reference labels for a set of frames; frames that cannot be labelled are reported in ``failed_frames``."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structures", valid_type=TrainingSetData, help="Frames to label.")
        spec.input("method", valid_type=orm.Str, validator=validate_method,
                   help=f"Reference method, one of {list(METHODS)}; its namespace must be given.")
        spec.expose_inputs(LabelXtbCalculation, namespace="xtb", exclude=("structures",),
                           namespace_options={"required": False, "populate_defaults": False,
                                              "help": "Inputs of the chimes.label_xtb CalcJobs (method 'xtb')."})
        spec.input("xtb.batch_size", valid_type=orm.Int, required=False, validator=validate_batch_size,
                   help="Frames per CalcJob; default all frames in one CalcJob.")
        spec.expose_inputs(LabelVaspWorkChain, namespace="vasp", exclude=("structures",),
                           namespace_options={"required": False, "populate_defaults": False,
                                              "help": "Inputs of the LabelVaspWorkChain (method 'vasp')."})
        spec.inputs.validator = validate_inputs
        spec.outline(
            if_(cls.is_xtb)(cls.run_xtb, cls.inspect_xtb).else_(cls.run_vasp, cls.inspect_vasp),
        )
        spec.output("training_set", valid_type=TrainingSetData, help="The labelled frames (eV units).")
        spec.output("failed_frames", valid_type=orm.List,
                    help="One dict per frame that could not be labelled: `index` (into `structures`), `message`.")
        spec.exit_code(401, "ERROR_SUB_PROCESS_FAILED_XTB",
                       message="LabelXtbCalculation<{pk}> (frames {start}-{stop}) failed ({status}): {message}")
        spec.exit_code(402, "ERROR_SUB_PROCESS_FAILED_VASP",
                       message="LabelVaspWorkChain<{pk}> failed ({status}): {message}")
        spec.exit_code(410, "ERROR_NO_FRAME_LABELLED",
                       message="None of the {n} frames could be labelled with {method}; see the failed_frames output")

    def is_xtb(self):
        """Whether the method is xTB (else VASP)."""
        return self.inputs.method.value == "xtb"

    # -- xTB ------------------------------------------------------------------------------------------------
    def run_xtb(self):
        """One LabelXtbCalculation per batch (``batch_0000``, ...); batches are subsets kept in the provenance."""
        inputs = self.exposed_inputs(LabelXtbCalculation, namespace="xtb")
        inputs.pop("batch_size", None)
        n = self.inputs.structures.nframes
        size = self.inputs.xtb.batch_size.value if "batch_size" in self.inputs.xtb else None
        self.ctx.batches = batches(n, size)
        futures = {}
        for b, (start, stop) in enumerate(self.ctx.batches):
            frames = self.inputs.structures
            key = f"batch_{b:04d}"
            if [start, stop] != [0, n]:
                frames = subset_training_set(frames, orm.List(list(range(start, stop))),
                                             metadata={"call_link_label": f"subset_{key}"})
            metadata = {**inputs.get("metadata", {}), "call_link_label": key}
            futures[key] = self.submit(LabelXtbCalculation, **{**inputs, "structures": frames, "metadata": metadata})
        self.report(f"xTB: {n} frames in {len(futures)} LabelXtbCalculation(s) of up to {size or n} frames")
        return ToContext(**futures)

    def inspect_xtb(self):
        """Merge the batches' labels (concatenate_training_sets) and failed frames (indices into ``structures``)."""
        labelled, failed = {}, []
        for b, (start, stop) in enumerate(self.ctx.batches):
            key = f"batch_{b:04d}"
            calc = self.ctx[key]
            no_frame = LabelXtbCalculation.exit_codes.ERROR_NO_FRAME_CONVERGED.status
            if not calc.is_finished_ok and calc.exit_status != no_frame:
                return self.exit_codes.ERROR_SUB_PROCESS_FAILED_XTB.format(
                    pk=calc.pk, start=start, stop=stop - 1, status=calc.exit_status,
                    message=calc.exit_message or calc.process_state.value)
            if "failed_frames" in calc.outputs:
                failed += [{**entry, "index": entry["index"] + start} for entry in calc.outputs.failed_frames]
            if calc.is_finished_ok:
                labelled[key] = calc.outputs.training_set
        return self._finish(labelled, failed, "xtb")

    # -- VASP -----------------------------------------------------------------------------------------------
    def run_vasp(self):
        """One LabelVaspWorkChain for all frames (it runs them in parallel)."""
        inputs = self.exposed_inputs(LabelVaspWorkChain, namespace="vasp")
        inputs["structures"] = self.inputs.structures
        inputs["metadata"] = {**inputs.get("metadata", {}), "call_link_label": "label_vasp"}
        node = self.submit(LabelVaspWorkChain, **inputs)
        self.report(f"VASP: {self.inputs.structures.nframes} frames in LabelVaspWorkChain<{node.pk}>")
        return ToContext(label_vasp=node)

    def inspect_vasp(self):
        """Pass its labels and failed frames on; a failure other than 'no frame labelled' is an error."""
        node = self.ctx.label_vasp
        no_frame = LabelVaspWorkChain.exit_codes.ERROR_NO_FRAME_LABELLED.status
        if not node.is_finished_ok and node.exit_status != no_frame:
            return self.exit_codes.ERROR_SUB_PROCESS_FAILED_VASP.format(
                pk=node.pk, status=node.exit_status, message=node.exit_message or node.process_state.value)
        failed = node.outputs.failed_frames.get_list() if "failed_frames" in node.outputs else []
        labelled = {"label_vasp": node.outputs.training_set} if node.is_finished_ok else {}
        return self._finish(labelled, failed, "vasp")

    # -- both -----------------------------------------------------------------------------------------------
    def _finish(self, labelled: dict, failed: list, method: str):
        """Output the (merged) training set and the failed frames; an error when nothing was labelled."""
        failed = sorted(failed, key=lambda entry: entry["index"])
        self.out("failed_frames", orm.List(failed).store())
        n = self.inputs.structures.nframes
        if not labelled:
            return self.exit_codes.ERROR_NO_FRAME_LABELLED.format(n=n, method=method)
        merged = next(iter(labelled.values())) if len(labelled) == 1 else concatenate_training_sets(
            **labelled, metadata={"call_link_label": "merge_batches"})
        self.out("training_set", merged)
        self.report(f"{method}: labelled {merged.nframes} of {n} frames, {len(failed)} failed")
        return None
