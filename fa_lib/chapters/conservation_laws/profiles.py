"""The profiles and constants of chapter "Conservation laws" (``notebooks/02_conservation_laws.ipynb``), in one place.

The profile sizes (:data:`PROFILES`), the experiments' settings (step sizes, data, the variants that break the
law, the practical set-up) and what the chapter records of them (:func:`chapter_parameters`,
:func:`setting_numbers`). The claims' tolerance constants are in :mod:`.claims`, next to the claims.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ...validation import select_profile


# --------------------------------------------------------------------------- the chapter's settings
# Profile sizes. law: the one-step checks (K1, K2); drift: K3, K4 and the runs that break the law (K4b-d);
# align: K5; norm: K6; prac: K7 (epochs of mini-batch SGD; prac_test: test images for ten classes).
PROFILES_BY_SETTING = {  # setting: (ci, default, paper)
    "law_depths": ((2, 3, 5), (2, 3, 5), (2, 3, 5, 8)),
    "law_widths": ((8, 32), (16, 64), (16, 64, 128)),
    "law_seeds": (4, 16, 32),
    "law_steps": (20, 30, 50),
    "drift_width": (16, 64, 128),
    "drift_seeds": (8, 8, 32),
    "horizon": (0.5, 1.0, 4.0),
    "align_depth": (4, 4, 6),
    "align_width": (16, 64, 128),
    "align_seeds": (8, 8, 16),
    "align_steps": (600, 1000, 3000),
    "norm_n": (10, 10, 20),
    "norm_d": (40, 40, 100),
    "norm_h": (64, 64, 256),
    "norm_seeds": (8, 16, 32),
    "norm_steps": (1500, 3000, 5000),
    "prac_seeds": (2, 3, 5),
    "prac_epochs": (2, 5, 20),
    "prac_test": (1000, 5000, 10000),
}
PROFILES = {  # {profile: {setting: value}}
    name: {setting: values[i] for setting, values in PROFILES_BY_SETTING.items()} for i, name in enumerate(("ci", "default", "paper"))}
SEED_COUNTS = ("law_seeds", "drift_seeds", "align_seeds", "norm_seeds", "prac_seeds")  # every experiment uses the first seeds
DT = torch.float64  # every check of K1-K6 is a theory check: float64 throughout (K7, practical training, runs in float32)
# Loss "mse" is (1/N) sum_n 1/2 ||f - y||^2 (half of PyTorch's MSELoss): every learning rate below is for that loss.
LAW_LR_TIMES_DEPTH = 0.06  # K1, K2: plain steps with eta = 0.06 / L (L weight matrices; deep GD runs diverge at a fixed eta)
LAW_INPUTS, LAW_TEACHER_HIDDEN, LAW_OUTPUTS, LAW_SAMPLES = 10, 16, 3, 32  # K1, K2 data: 32 Gaussian inputs, a 10-16-3 teacher
LAW_BIAS_STD = 0.1  # K1, K2: biases, when trained, start from N(0, 0.1^2)
DRIFT_LR = 0.01  # K3, K4: eta_0; the runs also use eta_0/2 and eta_0/10 over the same horizon eta * steps
ETAS = (DRIFT_LR, DRIFT_LR / 2, DRIFT_LR / 10)
DRIFT_RECORDS, BREAKING_RECORDS, ALIGN_RECORDS, NORM_RECORDS = 200, 50, 100, 50  # about this many records per run
ALIGN_LR = 0.02  # K5
NORM_LR_TIMES_D = 2.0  # K6: inputs N(0, I_d) have ||x||^2 ~ d, so the stable step scales like 1/d: eta = 2 / d
MOMENTUM, WEIGHT_DECAY = 0.9, 0.01  # the runs that break the law (weight decay: W <- W - lr (G + WEIGHT_DECAY W))
MEMORY_TIME = 0.1  # momentum with a fixed memory time: beta = 1 - eta / MEMORY_TIME (0.9 at eta_0)
ADAM_LR_RATIO = 0.01  # Adam's lr = ADAM_LR_RATIO * eta: Adam moves each weight by ~lr per step, SGD by ~eta |G_ij| ~ eta / 100 here
BREAKING_VARIANTS = ("plain", "weight decay", "momentum", "momentum, fixed memory time", "Adam")  # K4b-d (see variant_kwargs)
# K7, practical training (the later version's set-up; its exact hyper-parameters are not public, these are ours):
PRAC_N, PRAC_NOISE, PRAC_BATCH = 4000, 0.2, 50  # a random 4,000-image subset, 20% of its labels replaced by another class
PRAC_HIDDEN = 128  # ReLU MLP 784-128-128-n_classes, bias-free, LeCun init, FA by plain SGD on the mean cross-entropy
PRAC_LRS = (0.01, 0.03, 0.1)  # usual SGD step sizes for such an MLP (BP, the control, runs at the middle one)
CLASS_COUNTS, CLASS_LR, SMALL_INIT = (2, 5, 10), 0.03, 0.1  # K7b: classes 0..n-1; LeCun init vs SMALL_INIT x LeCun
INIT_SCALES = (1e-3, 1e-2, 1e-1, 1.0)  # K5: multiples of the LeCun std 1/sqrt(n_in)
SMALL_SCALE = 1e-2  # K5's claim: "small initialisation"
BOUNDARY, ANTI_ALIGNED = "sum c(0) = 0", "anti-aligned"  # K5: the blocks built by feedback_shift (target 0 and 2)
NORM_SCALES = (0.0, 1e-4, 1e-3, 1e-2, 1e-1)  # K6: std of W_1(0)
N_IN, TEACHER_HIDDEN, N_OUT, N_SAMPLES = 20, 32, 5, 64  # K3-K5 data: 20-32-5 teacher networks on 64 Gaussian inputs
NORM_OUTPUTS = 3  # K6: outputs of the linear teacher


def norm_lr(d: int) -> float:
    """K6's step size ``NORM_LR_TIMES_D / d`` for inputs in ``R^d``."""
    return NORM_LR_TIMES_D / d


def chapter_parameters(profile: str) -> dict[str, Any]:
    """The chapter's constants recorded with its results (``parameters`` of :func:`fa_lib.start_chapter`).

    Checks ``profile`` first (``ValueError`` naming it), since K6's step size depends on the profile's ``norm_d``.
    """
    config = select_profile(profile, PROFILES)
    return dict(
        law_lr_times_depth=LAW_LR_TIMES_DEPTH, drift_lr=DRIFT_LR, align_lr=ALIGN_LR, norm_lr=norm_lr(config["norm_d"]),
        momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, memory_time=MEMORY_TIME, adam_lr_ratio=ADAM_LR_RATIO, prac_n=PRAC_N,
        prac_noise=PRAC_NOISE, prac_batch=PRAC_BATCH, prac_hidden=PRAC_HIDDEN, prac_lrs=PRAC_LRS, class_counts=CLASS_COUNTS,
        class_lr=CLASS_LR, small_init=SMALL_INIT, init_scales=INIT_SCALES, norm_scales=NORM_SCALES)


def chapter_seeds(seed: int, config: Mapping[str, Any]) -> list[int]:
    """Every seed the chapter uses: ``seed, seed + 1, ...``, as many as its largest experiment (each takes the first ones)."""
    return list(range(seed, seed + max(config[k] for k in SEED_COUNTS)))


def setting_numbers(config: Mapping[str, Any]) -> dict[str, float | int]:
    """The settings the prose quotes, ``{glue name: value}`` (record each with ``results.number``)."""
    names = ("law_seeds", "drift_seeds", "align_seeds", "norm_seeds", "law_steps", "align_steps", "norm_steps", "prac_seeds",
             "prac_epochs", "horizon")
    return {f"cons_{name}": config[name] for name in names} | {
        "cons_small_scale": SMALL_SCALE, "cons_drift_lr": DRIFT_LR, "cons_drift_width": config["drift_width"],
        "cons_weight_decay": WEIGHT_DECAY, "cons_memory_time": MEMORY_TIME, "cons_align_hidden": config["align_depth"] - 1,
        "cons_align_width": config["align_width"], "cons_norm_n": config["norm_n"], "cons_norm_d": config["norm_d"],
        "cons_norm_h": config["norm_h"], "cons_prac_n": PRAC_N, "cons_class_lr": CLASS_LR, "cons_small_init": SMALL_INIT}
