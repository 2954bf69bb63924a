"""The why-align chapter's profiles, constants and papermill parameters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ...data import DATASETS
from ...plotting import RULE_COLORS
from ...validation import check_choice

PROFILES = {
    # n_feedback: seeds (random feedbacks) of the theory checks C1-C3a; n_rows: of them, the seeds whose full
    # (P, P) Jacobian is computed; n_toy: random starts of the scalar model; n_train/n_test: images;
    # epochs/n_seeds: the C4/C5 runs; sweep_epochs/n_sweep_seeds: the C3b weight-decay sweep.
    "ci":      dict(n_feedback=64,   n_rows=3,  n_toy=64,   n_train=10000, n_test=2000,  epochs=2,  n_seeds=3,
                    sweep_epochs=1,  n_sweep_seeds=2, records_per_epoch=2),
    "default": dict(n_feedback=256,  n_rows=6,  n_toy=256,  n_train=60000, n_test=10000, epochs=2,  n_seeds=5,
                    sweep_epochs=1,  n_sweep_seeds=3, records_per_epoch=4),
    "paper":   dict(n_feedback=1024, n_rows=12, n_toy=1024, n_train=60000, n_test=10000, epochs=20, n_seeds=10,
                    sweep_epochs=10, n_sweep_seeds=5, records_per_epoch=2),
}
DT = torch.float64  # theory checks (C1, C2, C3a) run in float64; the real-data runs in float32
ACTIVATIONS = ("linear", "tanh", "relu")
# C1a and C2: (widths, samples) of the zero-error points; the first two have a scalar output and one sample
ZERO_ERROR_NETWORKS = (([5, 16, 1], 1), ([5, 16, 16, 1], 1), ([5, 16, 16, 3], 4))
MULTI_WIDTHS = [5, 16, 16, 3]  # C2b, C2e, C2f: three outputs, four samples
FEEDBACK_SCALE = 8.0  # C2/C3a feedback std, in units of the default (LeCun) std: makes both signs of alignment common
STEP = 0.1  # C2c: lr = STEP / (||g~|| ||g||), so that lr * lambda = STEP * cos(theta); C3a: lr max(||g||^2, ||g~|| ||g||) = STEP
SCALAR_STEPS, SCALAR_SCALE = 100, 1e-8  # C2c, C3a: steps and displacement of the perturbation runs
MULTI_STEP, MULTI_STEPS = 0.02, 1000  # C2f: lr = MULTI_STEP / max|lambda|, MULTI_STEPS steps from a 1e-10 displacement
MULTI_SCALE = 1e-10
TOY_LR, TOY_STEPS = 0.01, 3000  # C2d: FA on f = w2 w1 x with b = x = y = 1
TOY_NEAR = (-0.3, -0.6, -0.85)  # C2d: w1 on the unstable branch (-1 < w1 < 0 for b = y/x = 1), started at w2 = 1/w1 +- 0.05
# real data: 784-128-10 ReLU network, plain SGD on the mean cross-entropy, mini-batches of 50
WIDTHS = [784, 128, 10]
LR, BATCH = 0.02, 50
L2_SWEEP = (0.0, 0.003, 0.01, 0.03, 0.1, 0.3)  # weight decay: W <- W - lr (G + l2 W), i.e. (l2/2)||W||^2 added to the loss
EARLY_STEPS, EARLY_PROBE = 40, 256  # C4: steps recorded one by one, on the first 256 training images
GROUPS = {"fa": "FA", "rank1": "FA, rank-1 feedback", "frozen": "readout only (hidden frozen)"}  # C4/C5 FA variants
GROUP_COLORS = {"fa": RULE_COLORS["fa"], "rank1": "C4", "frozen": "0.4"}
# tolerances that also classify what the runs measure (claims.py holds the others)
PSD_BOUND, NEG_BOUND = 1e-10, 1e-6  # C2e: BP's round-off; a genuinely negative real part of FA's spectrum
NEAR_ZERO, SHARE = 0.1, 0.10  # C4: "unaligned" is a hidden-layer alignment below 0.1; its largest share of the descent


def chapter_parameters(dataset: str) -> dict[str, Any]:
    """Check the chapter's own papermill parameter and return what its results record besides the profile.

    Raises ``ValueError`` naming ``dataset`` and the allowed values (``"auto"`` or one of ``DATASETS``).
    """
    check_choice("dataset", dataset, ("auto", *DATASETS))
    return dict(dataset=dataset, widths=WIDTHS, lr=LR, batch_size=BATCH, l2_sweep=L2_SWEEP, multi_step=MULTI_STEP,
                multi_steps=MULTI_STEPS, early_steps=EARLY_STEPS, early_probe=EARLY_PROBE, feedback_scale=FEEDBACK_SCALE)


def chapter_seeds(seed: int, config: Mapping[str, Any]) -> dict[str, list[int]]:
    """The seeds of each part: ``theory`` (C1-C3a, one random feedback each), ``rows`` (its first ``n_rows``:
    full Jacobians, C1b), ``real`` (C4, C5) and ``sweep`` (C3b, the first ``n_sweep_seeds`` real seeds)."""
    theory = list(range(seed, seed + config["n_feedback"]))
    real = list(range(seed, seed + config["n_seeds"]))
    return dict(theory=theory, rows=theory[: config["n_rows"]], real=real, sweep=real[: config["n_sweep_seeds"]])


def _network_name(rule: str, activation: str, widths: Sequence[int]) -> str:
    return f"{rule.upper()} {activation} {'-'.join(map(str, widths))}"
