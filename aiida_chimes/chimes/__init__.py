"""Science core of aiida-chimes: ChIMES parameter files, evaluator, fitting.  No AiiDA imports here.

The evaluator and calculator (numba) are imported on first use, so that reading a parameter file (what the
AiiDA daemon does for data nodes) does not load numba.
"""

import importlib
import os

# numba's OpenMP threads spin while idle by default, which makes every call crawl when the machine is busy
# (measured: 2.7 ms -> 88 ms per liquid-carbon evaluation under load).  Users can still override this.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_LAZY = {
    "ChimesCalculator": ".calculator",
    "ChimesModel": ".evaluate",
    "EvaluationResult": ".evaluate",
    "ChimesParams": ".params",
    "ParamsFormatError": ".params",
    "read_params": ".params",
}

__all__ = ["ChimesCalculator", "ChimesModel", "ChimesParams", "EvaluationResult", "ParamsFormatError", "read_params"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
