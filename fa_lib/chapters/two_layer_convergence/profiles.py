"""The chapter's settings in one place: the run sizes per profile, the chapter's own constants, and the check of
its papermill parameters. The paper's protocol constants are :mod:`fa_lib.theory.song`'s."""

from __future__ import annotations

from ...parallel import resolve_workers
from ...theory.song import (LOSS_CURVE_WIDTH, REAL_BATCH_SIZE, REAL_EPOCHS, REAL_LAMBDAS, REAL_LR, REAL_RUNS,
                             SYNTHETIC_ACTIVATIONS, TRIALS, WIDTHS)
from ...training.two_layer import batch_size
from ...validation import check_choice, check_int

# The default real-data run: four forgetting time constants 1/(lr lambda) of the smallest lambda > 0 (1000 steps
# at lr 0.01, lambda 0.1; 100 steps per epoch of 60000 images in batches of 600), after which beta(0) is down to
# exp(-4), about 2%, in every lambda > 0 run.
REAL_DEFAULT_EPOCHS = round(4 / (REAL_LR * min(REAL_LAMBDAS[1:])) / (60000 // REAL_BATCH_SIZE))

# The run sizes per profile (``config`` of :func:`fa_lib.start_chapter`): ``widths`` and ``trials`` of the
# stop-rule sweep, ``curve_width`` and ``curve_trials`` of the loss-curve runs, and ``real`` (training and
# test images, ``None``: all; epochs, runs, records per run) of the real-data experiment.
PROFILES = {
    # p = 200 with the full run-length rule, 5 trials per cell; loss curves at p = 200, 2 trials.
    "ci": dict(widths=(200,), trials=5, curve_width=200, curve_trials=2,
               real=dict(n_train=1200, n_test=500, epochs=2, runs=1, records=4)),
    # Three widths, 10 trials per cell; loss curves at the authors' p = 3200 with 3 trials; real data shortened to
    # REAL_DEFAULT_EPOCHS, one record per epoch.
    "default": dict(widths=(200, 400, 800), trials=10, curve_width=LOSS_CURVE_WIDTH, curve_trials=3,
                    real=dict(n_train=None, n_test=2000, epochs=REAL_DEFAULT_EPOCHS, runs=1, records=REAL_DEFAULT_EPOCHS)),
    # The authors' full grid.
    "paper": dict(widths=WIDTHS, trials=TRIALS, curve_width=LOSS_CURVE_WIDTH, curve_trials=TRIALS,
                  real=dict(n_train=None, n_test=None, epochs=REAL_EPOCHS, runs=REAL_RUNS, records=50)),
}
KERNEL_CHECK_DRAWS = 5  # draws per width of the infinite-width kernel check (float64, ReLU)
# The two synthetic experiments, with their own draws: alignment (run until settled) and loss curves (fixed length).
EXPERIMENTS = ("alignment", "curves")

# ln MSE is fitted only while it stays within FIT_DECADES decades of its initial value:
# float32 keeps about 7 significant digits, so rounding puts a floor under the loss that
# scales with the outputs' magnitude (the authors' ReLU curves flatten near 1e-10 from ~1e2).
FIT_DECADES = 7.0
# The last fifth of a loss curve: where S4 measures whether the loss and ||W||^2 are still moving.
TAIL_WINDOW = 0.2


def check_chapter_parameters(*, workers, block, activations, device: str = "cpu") -> tuple[int, tuple[str, ...]]:
    """Check the notebook's own parameters before any computation; return ``(workers, activations)``.

    ``workers``: an int >= 0 (0: one process per core), resolved to a count (1 on a GPU);
    ``block``: see :func:`batch_size`; ``activations``: a non-empty list of distinct names from
    :data:`SYNTHETIC_ACTIVATIONS`, returned in that order. Raises ``ValueError`` naming the parameter.
    """
    check_int("workers", workers, minimum=0)
    batch_size(block, "relu", 200, 1)  # validates block
    if not isinstance(activations, (list, tuple)) or not activations or len(set(activations)) != len(activations):
        raise ValueError(f"activations={activations!r} must be a non-empty list of distinct names from {list(SYNTHETIC_ACTIVATIONS)}")
    for name in activations:
        check_choice("activations", name, SYNTHETIC_ACTIVATIONS)
    return (1 if device != "cpu" else resolve_workers(workers)), tuple(a for a in SYNTHETIC_ACTIVATIONS if a in activations)
