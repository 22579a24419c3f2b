"""Science core of aiida-chimes: ChIMES parameter files, evaluator, fitting.  No AiiDA imports here."""

import os

# numba's OpenMP threads spin while idle by default, which makes every call crawl when the machine is busy
# (measured: 2.7 ms -> 88 ms per liquid-carbon evaluation under load).  Users can still override this.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .calculator import ChimesCalculator
from .evaluate import ChimesModel, EvaluationResult
from .params import ChimesParams, ParamsFormatError, read_params

__all__ = ["ChimesCalculator", "ChimesModel", "ChimesParams", "EvaluationResult", "ParamsFormatError", "read_params"]
