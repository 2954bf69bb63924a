"""The synthesis chapter's profiles, settings and papermill parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ...data import DATASETS
from ...theory import song
from ...validation import check_choice

FAMILIES = ("two-layer", "three-layer", "real")  # Song's task at two depths; the primer's network on real data
SONG_FAMILIES = ("two-layer", "three-layer")
LAMBDA = 0.05  # the middle of the authors' ReLU grid (0.02, 0.05, 0.2), MSELoss convention
PROFILES = {
    # widths p per family of Song's task; seeds per width (each seed: its own data, teacher, weights and feedback);
    # steps of the perturbation test; the real-data runs (the primer's network at its width). default fits about
    # 2.5 minutes on two cores: every step of every run tracks the law in float64, and the two-layer p = 800 runs
    # (10101 steps) alone would take two of them.
    "ci":      dict(widths={"two-layer": [100, 200], "three-layer": [100]}, seeds=3, perturb_steps=1000,
                    real=dict(n_train=6000, n_test=1000, epochs=1, seeds=2),
                    rest=dict(widths=[100], seeds=2, lam=0.2, max_steps=40000),
                    width=dict(widths=[50, 100, 200, 400], seeds=4, lams=(0.0, LAMBDA)),
                    drift=dict(widths=[100], seeds=2, lam=LAMBDA, multiple=4)),
    "default": dict(widths={"two-layer": [200, 400], "three-layer": [200]}, seeds=3, perturb_steps=2000,
                    real=dict(n_train=20000, n_test=1000, epochs=2, seeds=3),
                    rest=dict(widths=[300, 600, 1200], seeds=5, lam=0.1, max_steps=60000),
                    width=dict(widths=[200, 400, 800, 1600], seeds=10, lams=(0.0, LAMBDA)),
                    drift=dict(widths=[200, 400], seeds=5, lam=LAMBDA, multiple=10)),
    "paper":   dict(widths={"two-layer": [200, 800, 3200], "three-layer": [200, 400, 800]}, seeds=10, perturb_steps=4000,
                    real=dict(n_train=60000, n_test=10000, epochs=10, seeds=10),
                    rest=dict(widths=[300, 600, 1200, 2400], seeds=10, lam=0.1, max_steps=200000),
                    width=dict(widths=[200, 400, 800, 1600, 3200, 6400], seeds=20, lams=(0.0, LAMBDA)),
                    drift=dict(widths=[200, 400, 800, 1600], seeds=10, lam=LAMBDA, multiple=20)),
}
# ``rest``: the runs taken to rest with L2 on both layers (:mod:`.rest`): widths, seeds per width, lambda (MSELoss
# convention, on W and on beta) and the step cap. ``width``: the untracked runs of the width law (:mod:`.width`): widths,
# seeds per width, the lambdas (on the readout; the same draws for each). ``drift``: Song's readout-only L2 run for
# ``multiple`` x T_min(p) steps (:func:`.rest.readout_only_rows`). Chosen apart from the trial run the derivation was checked on
# (p = 200, lambda = 0.05, four other seeds).
ACTIVATION = "relu"
LR = song.LEARNING_RATES[ACTIVATION]  # the authors' ReLU learning rate (MSELoss convention)
REAL_LAMBDA = song.REAL_LAMBDAS[1]  # the authors' smallest real-data lambda (cross-entropy: fa_lib's l2 itself)
SETTINGS = {"none": "no L2", "readout": "L2 on the readout (Song's)", "all": "L2 on every layer"}
# The real-data family is the primer's network and batch (chapter 00), written here so that this chapter imports no
# other chapter; tests/test_synthesis.py checks that they stay equal. Its step is not the primer's: the primer's 0.05
# is for tanh, and ReLU FA at 0.05 ended at cross-entropy 4-31 in a trial (20000 images, 2 epochs, 3 seeds, untracked);
# 0.02 / 0.01 / 0.005 ended at 0.64-0.84 / 0.60-0.66 / 0.72-0.74, so the family uses 0.01.
REAL_WIDTHS = [784, 128, 128, 10]
REAL_LR, REAL_BATCH = 0.01, 50
RECORDS = 60  # records per run of Song's task
REAL_RECORDS = 20  # records per real-data run (each evaluates the test images)
DTYPE = torch.float64  # the laws are identities: float64 so that rounding stays far below every bound


def chapter_parameters(dataset: str) -> dict[str, Any]:
    """Check the chapter's own papermill parameter ``dataset`` (``"auto"`` or one of ``DATASETS``, the real-data runs)."""
    check_choice("dataset", dataset, ("auto", *DATASETS))
    return dict(dataset=dataset, activation=ACTIVATION, lr=LR, lam=LAMBDA, real_lam=REAL_LAMBDA,
                real_widths=REAL_WIDTHS, real_lr=REAL_LR, real_batch=REAL_BATCH)


def chapter_seeds(seed: int, config: Mapping[str, Any]) -> dict[str, list[int]]:
    """``{"<family> p=<p>": seeds, "real": seeds, "rest p=<p>": seeds}``: every family and width (and every width of the
    resting runs) has its own draws, derived from ``seed``."""
    seeds = {f"{family} p={p}": [int(v) for v in np.random.SeedSequence([seed, 4, k, p]).generate_state(config["seeds"], dtype=np.uint32)]
             for k, family in enumerate(SONG_FAMILIES) for p in config["widths"][family]}
    seeds["real"] = [int(v) for v in np.random.SeedSequence([seed, 4, 2]).generate_state(config["real"]["seeds"], dtype=np.uint32)]
    for p in config["width"]["widths"]:
        seeds[f"width p={p}"] = [int(v) for v in np.random.SeedSequence([seed, 4, 4, p]).generate_state(config["width"]["seeds"], dtype=np.uint32)]
    for p in config["drift"]["widths"]:
        seeds[f"drift p={p}"] = [int(v) for v in np.random.SeedSequence([seed, 4, 6, p]).generate_state(config["drift"]["seeds"], dtype=np.uint32)]
    for p in config["rest"]["widths"]:
        seeds[f"rest p={p}"] = [int(v) for v in np.random.SeedSequence([seed, 4, 3, p]).generate_state(config["rest"]["seeds"], dtype=np.uint32)]
    return seeds
