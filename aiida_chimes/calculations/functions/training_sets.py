"""Calcfunctions on training sets: joining and sub-selecting frames with full provenance."""

from aiida import orm
from aiida.engine import calcfunction

from aiida_chimes.chimes.frames import FrameSet
from aiida_chimes.data.training_set import TrainingSetData

__all__ = ("concatenate_training_sets", "subset_training_set")


@calcfunction
def concatenate_training_sets(**training_sets: TrainingSetData) -> TrainingSetData:
    """The frames of all inputs, in the order of their sorted link labels (one provenance link per input)."""
    if not training_sets:
        raise ValueError("concatenate_training_sets needs at least one training set")
    for key, node in training_sets.items():
        if not isinstance(node, TrainingSetData):
            raise TypeError(f"input {key!r} is a {type(node).__name__}, expected a TrainingSetData")
    return TrainingSetData(FrameSet.concatenate([training_sets[k].get_frameset() for k in sorted(training_sets)]))


@calcfunction
def subset_training_set(training_set: TrainingSetData, indices: orm.List) -> TrainingSetData:
    """The frames at ``indices`` (in that order; repeats and negative indices allowed).

    Each frame's tags gain ``source_index``, its index in ``training_set``, unless they already hold one, so
    labels computed on a subset can be matched with the parent set.
    """
    values = indices.get_list()
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in values):
        raise ValueError(f"indices must be integers, got {values[:10]}")
    parent = training_set.get_frameset()
    subset = parent.subset(values)
    n = len(parent)
    subset.tags = [{**t, "source_index": t.get("source_index", i % n)} for t, i in zip(subset.tags, values,
                                                                                      strict=True)]
    return TrainingSetData(subset)
