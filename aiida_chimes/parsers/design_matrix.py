"""Parser of ``chimes.design_matrix``: the retrieved ``fit_system.npz`` becomes a FitSystemData node."""

from __future__ import annotations

from ..calculations.design_matrix import OUTPUT_FILE
from ..data.fit_system import FitSystemData
from .base import ScriptParser


class DesignMatrixParser(ScriptParser):
    """Store the compact fit system; a missing or unreadable file gives a 3xx exit code."""

    def parse(self, **kwargs):
        if not self.has(OUTPUT_FILE):
            return self.missing(OUTPUT_FILE)
        try:
            with self.local_copy(OUTPUT_FILE) as path:
                node = FitSystemData.from_file(path)
        except (OSError, ValueError, KeyError) as exc:
            return self.exit_codes.ERROR_CORRUPT_OUTPUT.format(filename=OUTPUT_FILE, error=exc)
        self.out("fit_system", node)
        return None
