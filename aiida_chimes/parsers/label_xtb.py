"""Parser of ``chimes.label_xtb``: labelled frames, the list of frames that failed, and the report."""

from __future__ import annotations

import io
import json

from aiida import orm

from ..calculations.label_xtb import LABELLED_FILE, REPORT_FILE
from ..chimes.frames import FrameSet, FrameSetError
from ..data.training_set import TrainingSetData
from .base import ScriptParser


class LabelXtbParser(ScriptParser):
    """Failed frames are an output (never silently dropped); no converged frame at all is an error."""

    def parse(self, **kwargs):
        if not self.has(REPORT_FILE):
            return self.missing(REPORT_FILE)
        try:
            report = json.loads(self.retrieved.base.repository.get_object_content(REPORT_FILE))
        except ValueError as exc:
            return self.exit_codes.ERROR_CORRUPT_OUTPUT.format(filename=REPORT_FILE, error=exc)
        failed = list(report.get("failed", []))
        self.out("report", orm.Dict(report))
        self.out("failed_frames", orm.List(failed))
        if not self.has(LABELLED_FILE) or report.get("n_converged", 0) == 0:
            first = failed[0]["message"] if failed else "-"
            return self.exit_codes.ERROR_NO_FRAME_CONVERGED.format(n=len(failed), message=first)
        try:
            with self.retrieved.base.repository.open(LABELLED_FILE, "rb") as handle:
                frames = FrameSet.load(io.BytesIO(handle.read()))
        except FrameSetError as exc:
            return self.exit_codes.ERROR_CORRUPT_OUTPUT.format(filename=LABELLED_FILE, error=exc)
        self.out("training_set", TrainingSetData.from_frameset(frames))
        return None
