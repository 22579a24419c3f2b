"""Science core of aiida-chimes: ChIMES parameter files, evaluator, fitting.  No AiiDA imports here."""

from .calculator import ChimesCalculator
from .evaluate import ChimesModel, EvaluationResult
from .params import ChimesParams, ParamsFormatError, read_params

__all__ = ["ChimesCalculator", "ChimesModel", "ChimesParams", "EvaluationResult", "ParamsFormatError", "read_params"]
