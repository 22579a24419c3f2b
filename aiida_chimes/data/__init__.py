"""AiiDA Data nodes of aiida-chimes: potentials, training sets and compact fit systems."""

from .fit_system import FitSystemData
from .potential import ChimesPotentialData
from .training_set import TrainingSetData

__all__ = ("ChimesPotentialData", "FitSystemData", "TrainingSetData")
