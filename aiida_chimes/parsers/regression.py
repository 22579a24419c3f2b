"""Parser of ``chimes.regression``: ``params.txt`` -> ChimesPotentialData, ``fit_stats.json`` -> Dict."""

from __future__ import annotations

import json

import numpy as np
from aiida import orm

from ..calculations.regression import COEFFICIENTS_FILE, PARAMS_FILE, STATS_FILE
from ..chimes.params import ParamsFormatError
from ..data.potential import ChimesPotentialData
from .base import ScriptParser


class RegressionParser(ScriptParser):
    """Store the fitted parameter file and the fit statistics; non-finite coefficients are an error."""

    def parse(self, **kwargs):
        for name in (PARAMS_FILE, STATS_FILE):
            if not self.has(name):
                return self.missing(name)
        text = self.retrieved.base.repository.get_object_content(PARAMS_FILE)
        try:
            stats = json.loads(self.retrieved.base.repository.get_object_content(STATS_FILE))
            potential = ChimesPotentialData.from_text(text)
        except (ValueError, ParamsFormatError) as exc:
            if "finite" in str(exc):
                return self.exit_codes.ERROR_NONFINITE_COEFFICIENTS
            return self.exit_codes.ERROR_CORRUPT_OUTPUT.format(filename=PARAMS_FILE, error=exc)
        self.out("statistics", orm.Dict(stats))
        if not _all_finite(potential):
            return self.exit_codes.ERROR_NONFINITE_COEFFICIENTS
        self.out("potential", potential)
        if self.has(COEFFICIENTS_FILE):
            text = self.retrieved.base.repository.get_object_content(COEFFICIENTS_FILE)
            x = np.array([float(line.split()[1]) for line in text.splitlines() if line.strip()])
            coefficients = orm.ArrayData()
            coefficients.set_array("x", x)
            self.out("coefficients", coefficients)
        return None


def _all_finite(potential) -> bool:
    p = potential.get_params()
    arrays = [*p.pair_coeffs, *(b.values for b in p.triplets), *(b.values for b in p.quadruplets)]
    if p.energy_offsets is not None:
        arrays.append(p.energy_offsets)
    return all(np.isfinite(np.asarray(a, dtype=float)).all() for a in arrays)
