"""Training loops of the core.

* :mod:`~fa_lib.training.loop`: :func:`train`, the one loop for any depth, rule, loss and optimizer,
  with per-seed divergence detection and its :class:`History`.
"""

from .loop import History, all_finite, stack_settings, steps_per_epoch, summarize_seeds, train

__all__ = ["History", "all_finite", "stack_settings", "steps_per_epoch", "summarize_seeds", "train"]
