"""Parser of ``chimes.md``: trajectory, thermodynamic log, last frame, summary; blow-ups keep their frames."""

from __future__ import annotations

import io
import json

import numpy as np
from aiida import orm

from ..calculations.md import FINAL_FILE, FINAL_VELOCITIES_FILE, SUMMARY_FILE, THERMO_FILE, TRAJECTORY_FILE
from ..chimes.frames import FrameSet, FrameSetError
from ..data.training_set import TrainingSetData
from .base import ScriptParser


class MdParser(ScriptParser):
    """Outputs every stored frame even when the run blew up; then returns ERROR_MD_BLOWUP."""

    def _frames(self, name: str) -> FrameSet:
        with self.retrieved.base.repository.open(name, "rb") as handle:
            return FrameSet.load(io.BytesIO(handle.read()))

    def parse(self, **kwargs):
        if not self.has(SUMMARY_FILE):
            return self.missing(SUMMARY_FILE)
        try:
            summary = json.loads(self.retrieved.base.repository.get_object_content(SUMMARY_FILE))
            trajectory = self._frames(TRAJECTORY_FILE) if self.has(TRAJECTORY_FILE) else FrameSet.empty()
        except (ValueError, FrameSetError) as exc:
            return self.exit_codes.ERROR_CORRUPT_OUTPUT.format(filename=TRAJECTORY_FILE, error=exc)
        self.out("summary", orm.Dict(summary))
        if len(trajectory):
            self.out("trajectory", TrainingSetData.from_frameset(trajectory))
        if self.has(THERMO_FILE):
            thermo = orm.ArrayData()
            with self.retrieved.base.repository.open(THERMO_FILE, "rb") as handle:
                with np.load(io.BytesIO(handle.read())) as z:
                    for key in z.files:
                        thermo.set_array(key, z[key])
            self.out("thermo", thermo)
        if self.has(FINAL_FILE):
            final = self._frames(FINAL_FILE)
            if len(final):
                self.out("final_structure", orm.StructureData(ase=final.atoms(0)))
        if self.has(FINAL_VELOCITIES_FILE):
            with self.retrieved.base.repository.open(FINAL_VELOCITIES_FILE, "rb") as handle:
                vel = orm.ArrayData()
                vel.set_array("velocities", np.load(io.BytesIO(handle.read())))
            self.out("final_velocities", vel)
        if summary.get("status") == "blowup":
            return self.exit_codes.ERROR_MD_BLOWUP.format(step=summary.get("steps_done"), reason=summary.get("reason"))
        if summary.get("status") in ("running", "interrupted"):
            return self.exit_codes.ERROR_MD_INTERRUPTED.format(step=summary.get("steps_done"),
                                                               status=summary.get("status"))
        if summary.get("status") != "completed":
            return self.missing(SUMMARY_FILE)
        if not len(trajectory):
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(filename=TRAJECTORY_FILE, stderr="no frames stored")
        return None
