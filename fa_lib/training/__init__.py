"""Training loops of the core.

* :mod:`~fa_lib.training.loop`: :func:`train`, the one loop for any depth, rule, loss and optimizer,
  with per-seed divergence detection and its :class:`History`;
* :mod:`~fa_lib.training.two_layer`: the two-layer engine of Song, Xu & Lafferty's task
  (:class:`TwoLayerStep`, :func:`train_two_layer`, :func:`train_until_settled` with per-network
  stopping and slot refill, and the task's seeded draws), kept apart from :func:`train` for speed
  (its module docstring gives the measured ratio);
* :mod:`~fa_lib.training.stability`: :func:`perturbation_growth`, stability measured by letting a rule run from
  a perturbed zero-error point (what :mod:`fa_lib.theory.fixed_points` linearises).
"""

from .loop import History, all_finite, stack_settings, steps_per_epoch, summarize_seeds, train
from .stability import perturbation_growth
from .two_layer import (
    SettledRuns,
    StopRule,
    TwoLayerRun,
    TwoLayerStep,
    batch_size,
    cache_block,
    init_two_layer,
    prepared_trials,
    synthetic_data,
    train_two_layer,
    train_until_settled,
)

__all__ = [
    "History", "SettledRuns", "StopRule", "TwoLayerRun", "TwoLayerStep", "all_finite", "batch_size", "cache_block",
    "init_two_layer", "perturbation_growth", "prepared_trials", "stack_settings", "steps_per_epoch", "summarize_seeds", "synthetic_data",
    "train", "train_two_layer", "train_until_settled",
]
