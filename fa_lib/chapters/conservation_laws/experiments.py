"""What chapter "Conservation laws" runs: one function per group of claims, and the rows it reduces them to.

``one_step_law_rows`` (K1, K2), ``drift_runs`` (K3, K4), ``breaking_runs`` (K4b-d), ``alignment_runs`` (K5),
``min_norm_runs`` (K6) and ``practical_runs`` (K7); :mod:`.claims` records their numbers and claims. Settings
are in :mod:`.profiles`, the trackers in :mod:`.trackers`, the mathematics in :mod:`fa_lib.theory.conservation`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from ...data import noisy_subset, teacher_data
from ...networks import init_feedback, init_weights, seeded_normal
from ...theory.conservation import feedback_shift
from ...training import History, stack_settings, steps_per_epoch, summarize_seeds, train
from ...validation import check_choice
from .profiles import (
    ADAM_LR_RATIO,
    ALIGN_LR,
    ALIGN_RECORDS,
    ANTI_ALIGNED,
    BOUNDARY,
    BREAKING_RECORDS,
    BREAKING_VARIANTS,
    CLASS_COUNTS,
    CLASS_LR,
    DRIFT_RECORDS,
    DT,
    ETAS,
    INIT_SCALES,
    LAW_BIAS_STD,
    LAW_INPUTS,
    LAW_LR_TIMES_DEPTH,
    LAW_OUTPUTS,
    LAW_SAMPLES,
    LAW_TEACHER_HIDDEN,
    MEMORY_TIME,
    MOMENTUM,
    N_IN,
    N_OUT,
    N_SAMPLES,
    NORM_OUTPUTS,
    NORM_RECORDS,
    NORM_SCALES,
    PRAC_BATCH,
    PRAC_HIDDEN,
    PRAC_LRS,
    PRAC_N,
    PRAC_NOISE,
    SMALL_INIT,
    SMALL_SCALE,
    TEACHER_HIDDEN,
    WEIGHT_DECAY,
    norm_lr,
)
from .trackers import DiscreteTerm, Trajectory, conservation_trajectory, drift_tracker, min_norm_tracker, stacked_trajectories

Tensor = torch.Tensor


# --------------------------------------------------------------------------- statistics and shared helpers
def ratio_summary(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """``min``, ``max`` and ``mean`` of ``a / b`` over every entry (NaN entries, from diverged seeds, ignored)."""
    r = np.asarray(a, dtype=float) / np.asarray(b, dtype=float)
    return {"min": float(np.nanmin(r)), "max": float(np.nanmax(r)), "mean": float(np.nanmean(r))}


def fitted_slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of ``y`` on ``x`` along the first axis (records): ``(R, ...) -> (...)``."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    dx, dy = x - x.mean(0), y - y.mean(0)
    return (dx * dy).sum(0) / (dx**2).sum(0)


def horizon_steps(horizon: float, eta: float) -> int:
    """Steps of size ``eta`` that reach the time ``horizon = eta * steps`` (rounded)."""
    return int(round(horizon / eta))


def _report_diverged(runs: Mapping[Any, Any]) -> None:
    """Print how many seeds of each run (a :class:`Trajectory` or :class:`~fa_lib.training.History`) diverged."""
    for key, run in runs.items():
        if run.diverged.any():
            print(f"{key}: {run.diverged.sum()} of {run.diverged.size} seeds diverged and are excluded")


# --------------------------------------------------------------------------- K1, K2: the one-step laws
LAWS = {("linear", "fa"): "fa_matrix", ("relu", "fa"): "fa_neuron", ("linear", "bp"): "gd_matrix", ("relu", "bp"): "gd_neuron"}


def one_step_law_rows(seeds: Sequence[int], *, depths: Sequence[int], widths: Sequence[int], steps: int,
                      device: str = "cpu") -> list[dict[str, Any]]:
    """K1, K2: plain full-batch steps of FA and GD for every activation, depth, width and choice of biases.

    One row per run (``len(seeds)`` seeds each, ``eta = LAW_LR_TIMES_DEPTH / depth``): ``law`` (the key of
    :data:`LAWS`, ``"_bias"`` appended with biases) and, over every step, seed and layer, the worst residual of
    the trained rule's own one-step law relative to the quantity's terms and to the change, and the smallest
    and largest change over the terms (see :class:`Trajectory`); ``diverged`` seeds.
    """
    rows = []
    for activation in ("linear", "relu"):
        for depth in depths:
            for width in widths:
                layer_widths = [LAW_INPUTS] + [width] * (depth - 1) + [LAW_OUTPUTS]
                x, y = teacher_data(LAW_SAMPLES, [LAW_INPUTS, LAW_TEACHER_HIDDEN, LAW_OUTPUTS], seeds, activation=activation,
                                    std="lecun", dtype=DT, device=device)
                weights = init_weights(layer_widths, seeds, dtype=DT, device=device)
                feedback = init_feedback(layer_widths, seeds, rule="fa", dtype=DT, device=device)
                bias_init = seeded_normal([(n,) for n in layer_widths[1:]], seeds, [LAW_BIAS_STD] * depth, stream="biases",
                                          dtype=DT, device=device)
                lr = LAW_LR_TIMES_DEPTH / depth
                for use_biases in (False, True):
                    for rule in ("fa", "bp"):
                        traj = conservation_trajectory(
                            weights, x, y, rule=rule, activation=activation, lr=lr, steps=steps, feedback=feedback,
                            biases=bias_init if use_biases else None, per_neuron=activation == "relu", record_every=steps)
                        rows.append(dict(
                            law=LAWS[activation, rule] + ("_bias" if use_biases else ""), depth=depth, width=width,
                            activation=activation, lr=lr, max_relative_residual=float(np.nanmax(traj.law_residual)),
                            max_residual_over_change=float(np.nanmax(traj.law_residual_of_change)),
                            min_change_over_terms=float(np.nanmin(traj.change_to_terms)),
                            max_change_over_terms=float(np.nanmax(traj.max_change_to_terms)),
                            diverged=int(traj.diverged.sum()), n_seeds=len(seeds)))
    return rows


def one_step_law_summary(rows: Sequence[Mapping[str, Any]], laws: Sequence[str]) -> dict[str, float | int]:
    """The worst of the rows whose ``law`` is in ``laws``: ``worst`` (max relative residual),
    ``worst_relative_to_change``, ``min_change_over_terms``, ``max_change_over_terms_smallest_run`` (the
    smallest of the runs' largest changes: how far above rounding every run's change reaches) and ``diverged``."""
    table = pd.DataFrame(list(rows))
    picked = table[table.law.isin(laws)]
    if picked.empty:
        raise ValueError(f"no rows for the laws {list(laws)}")
    return {"worst": float(picked.max_relative_residual.max()), "worst_relative_to_change": float(picked.max_residual_over_change.max()),
            "min_change_over_terms": float(picked.min_change_over_terms.min()),
            "max_change_over_terms_smallest_run": float(picked.max_change_over_terms.min()), "diverged": int(picked.diverged.sum())}


# --------------------------------------------------------------------------- K3, K4: how fast each law drifts
class Problem(NamedTuple):
    """One experiment's data and start: ``x`` ``(S, N, n_0)``, ``y`` ``(S, N, n_L)``, ``weights``, FA's ``feedback``."""

    x: Tensor
    y: Tensor
    weights: list[Tensor]
    feedback: list[Tensor | None]


def teacher_problem(seeds: Sequence[int], widths: Sequence[int], *, activation: str, device: str = "cpu") -> Problem:
    """``N_SAMPLES`` Gaussian inputs with the targets of an ``N_IN``-``TEACHER_HIDDEN``-``N_OUT`` teacher, and the
    LeCun start and feedback of a network of ``widths`` (float64)."""
    x, y = teacher_data(N_SAMPLES, [N_IN, TEACHER_HIDDEN, N_OUT], seeds, activation=activation, std="lecun", dtype=DT, device=device)
    return Problem(x, y, init_weights(widths, seeds, dtype=DT, device=device),
                   init_feedback(widths, seeds, rule="fa", dtype=DT, device=device))


def drift_runs(seeds: Sequence[int], *, width: int, horizon: float,
               device: str = "cpu") -> tuple[dict[tuple[str, str, float], Trajectory], dict[str, Problem]]:
    """K3, K4: a ``N_IN``-width-width-``N_OUT`` network trained by FA and by GD over the time ``horizon``.

    ReLU (per-neuron laws) at every eta of :data:`ETAS`, linear (matrix laws) at the first and last. Returns
    ``({(activation, rule, eta): Trajectory}, {activation: Problem})``.
    """
    runs, problems = {}, {}
    for activation in ("relu", "linear"):
        problems[activation] = problem = teacher_problem(seeds, [N_IN, width, width, N_OUT], activation=activation, device=device)
        for rule in ("fa", "bp"):
            for eta in ETAS if activation == "relu" else (ETAS[0], ETAS[-1]):
                steps = horizon_steps(horizon, eta)
                runs[activation, rule, eta] = conservation_trajectory(
                    problem.weights, problem.x, problem.y, rule=rule, activation=activation, lr=eta, steps=steps,
                    feedback=problem.feedback, per_neuron=activation == "relu", record_every=max(1, steps // DRIFT_RECORDS),
                    progress=True, desc=f"{activation} {rule} eta={eta:g}")
    _report_diverged(runs)
    return runs, problems


# --------------------------------------------------------------------------- K4b-d: what breaks the law
def variant_kwargs(name: str, eta: float) -> dict[str, Any]:
    """:func:`fa_lib.training.train`'s keyword arguments for variant ``name`` of :data:`BREAKING_VARIANTS` at step size ``eta``.

    Momentum runs step ``eta (1 - beta)`` so that the effective step is ``eta``; with a fixed memory time
    ``beta = 1 - eta / MEMORY_TIME``; Adam's learning rate is ``ADAM_LR_RATIO * eta``.
    """
    check_choice("name", name, BREAKING_VARIANTS)
    return {
        "plain": dict(lr=eta),
        "weight decay": dict(lr=eta, l2=WEIGHT_DECAY),
        "momentum": dict(lr=eta * (1 - MOMENTUM), momentum=MOMENTUM),
        "momentum, fixed memory time": dict(lr=eta * eta / MEMORY_TIME, momentum=1 - eta / MEMORY_TIME),
        "Adam": dict(lr=ADAM_LR_RATIO * eta, optimizer="adam"),
    }[name]


def breaking_runs(problem: Problem, *, horizon: float) -> dict[tuple[str, float], History]:
    """K4b-d: FA on the ReLU ``problem`` with every variant of :data:`BREAKING_VARIANTS` at ``ETAS[0]`` and ``ETAS[1]``
    over the time ``horizon``, tracking both laws (:func:`drift_tracker`, per neuron): ``{(variant, eta): History}``."""
    tracker = drift_tracker(problem.weights, problem.feedback, per_neuron=True)
    runs = {}
    for name in BREAKING_VARIANTS:
        for eta in ETAS[:2]:
            steps = horizon_steps(horizon, eta)
            runs[name, eta] = train(problem.weights, problem.x, problem.y, rule="fa", activation="relu", steps=steps,
                                    feedback=problem.feedback, record_every=max(1, steps // BREAKING_RECORDS), extra_metrics=tracker,
                                    desc=f"FA {name} eta={eta:g}", **variant_kwargs(name, eta))
    _report_diverged(runs)
    return runs


def breaking_rows(runs: Mapping[tuple[str, float], History]) -> dict[str, dict[str, Any]]:
    """Per variant of :func:`breaking_runs`: FA's final drift at ``ETAS[0]`` (``drift_mean``), its ratio to the drift at
    ``ETAS[1]`` (``ratio_half_lr``: 2 for a kept law, 1 for a first-order break) and to plain steps' (``over_plain``),
    the mean final loss and the diverged seeds of both runs."""
    rows = {}
    for name in BREAKING_VARIANTS:
        d0, d1 = runs[name, ETAS[0]].final("drift_fa"), runs[name, ETAS[1]].final("drift_fa")
        rows[name] = dict(drift_mean=float(np.nanmean(d0)), ratio_half_lr=ratio_summary(d0, d1),
                          over_plain=ratio_summary(d0, runs["plain", ETAS[0]].final("drift_fa")),
                          final_loss=float(np.nanmean(runs[name, ETAS[0]].final("loss"))),
                          diverged=int(runs[name, ETAS[0]].diverged.sum() + runs[name, ETAS[1]].diverged.sum()))
    return rows


# --------------------------------------------------------------------------- K5: layer-wise alignment
def scale_block(scale: float) -> str:
    """The name of K5's block that starts from ``scale`` times the LeCun draw."""
    return f"scale {scale:g}"


def alignment_blocks(base: Sequence[Tensor], feedback: Sequence[Tensor | None]) -> dict[str, list[Tensor]]:
    """K5's starts from one LeCun draw ``base``: every scale of :data:`INIT_SCALES`, then :data:`BOUNDARY`
    (``sum_j c_{l,j}(0) = 0`` in every layer) and :data:`ANTI_ALIGNED`, both by :func:`feedback_shift`.

    :data:`ANTI_ALIGNED` shifts the hidden-to-hidden matrices ``W_2 .. W_{L-1}`` only, to ``sum_j c_{l,j}(0) = 2 ||W_l(0)||^2``
    (``l = 1 .. L-2``), and keeps the LeCun readout, whose ``sum_j c_{L-1,j}(0) ~ ||W_{L-1}(0)||^2 > 0`` violates the
    condition too. Shifting the readout as well needs ``|mu| ~ ||W_{L-1}||^2 / (2 ||B_L||^2)`` with ``||B_L||^2 ~ n_L``
    (five outputs), which multiplies ``||W_L||^2`` about eighty-fold at the default widths; every such run diverged at
    ``ALIGN_LR``. The square hidden matrices grow at most twofold."""
    if len(base) < 3:
        raise ValueError(f"base has {len(base)} layers; K5's anti-aligned start needs at least three (a hidden-to-hidden layer)")
    anti = feedback_shift(base[:-1], feedback[:-1], target=2.0) + [base[-1]]
    return {scale_block(s): [s * w for w in base] for s in INIT_SCALES} | {
        BOUNDARY: feedback_shift(base, feedback, target=0.0), ANTI_ALIGNED: anti}


def alignment_runs(seeds: Sequence[int], *, depth: int, width: int, steps: int,
                   device: str = "cpu") -> dict[str, dict[str, Trajectory]]:
    """K5: a ReLU network ``N_IN``-width-...-width-``N_OUT`` (``depth`` weight matrices, no biases) on a ReLU teacher,
    ``steps`` plain steps of ``ALIGN_LR``: ``{rule: {block: Trajectory}}``, FA from every block of
    :func:`alignment_blocks`, GD from the scale blocks. Each rule runs as one batch (same data and B per seed)."""
    problem = teacher_problem(seeds, [N_IN] + [width] * (depth - 1) + [N_OUT], activation="relu", device=device)
    blocks = alignment_blocks(problem.weights, problem.feedback)
    runs = {}
    for rule, names in (("fa", list(blocks)), ("bp", list(blocks)[: len(INIT_SCALES)])):
        runs[rule] = stacked_trajectories(
            {name: blocks[name] for name in names}, problem.x, problem.y, problem.feedback, rule=rule, activation="relu",
            lr=ALIGN_LR, steps=steps, per_neuron=True, record_every=max(1, steps // ALIGN_RECORDS), progress=True, desc=f"align {rule}")
        _report_diverged({f"{rule}, {name}": traj for name, traj in runs[rule].items()})
    return runs


def alignment_rows(runs: Mapping[str, Mapping[str, Trajectory]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The final weight alignment of :func:`alignment_runs` over the seeds that did not diverge, per rule, layer
    (the paper's ``l = 2..L``) and block: ``(rows of the SMALL_SCALE block: rule, layer, mean, min;
    rows of every block: also init, max, diverged)``."""
    rows, by_block = [], []
    for rule in ("fa", "bp"):
        n_layers = next(iter(runs[rule].values())).weight_alignment.shape[-1]
        for j in range(n_layers):
            for name, traj in runs[rule].items():
                s = summarize_seeds(traj.weight_alignment[-1][:, j], traj.diverged)
                row = dict(rule=rule, layer=j + 2, mean=s["mean"], min=s["min"])
                by_block.append(dict(row, init=name, max=s["max"], diverged=s["diverged"]))
                if name == scale_block(SMALL_SCALE):
                    rows.append(row)
    return rows, by_block


# --------------------------------------------------------------------------- K6: minimum-norm solutions
NORM_RUNS = {  # name: (rule, start, description); the first two stack every scale of NORM_SCALES
    "fa": ("fa", "scaled", "FA, W1(0) = s R"),
    "bp": ("bp", "scaled", "GD, W1(0) = s R"),
    "fa_zero": ("fa", "zero", "FA from W1 = W2 = 0"),
    "bp_zero": ("bp", "zero", "GD from W1 = W2 = 0"),
}


def min_norm_runs(seeds: Sequence[int], *, n: int, d: int, h: int, steps: int, device: str = "cpu") -> dict[str, History]:
    """K6: two-layer linear networks ``d``-``h``-``NORM_OUTPUTS`` on ``n < d`` samples of a linear teacher, ``steps``
    full-batch steps of ``norm_lr(d)``, tracked by :func:`min_norm_tracker`: ``{name of NORM_RUNS: History}``.

    ``"fa"``, ``"bp"``: ``W_1(0) = s R`` (``R_ij ~ N(0, 1)``) for every ``s`` of :data:`NORM_SCALES`, scale-major in one
    batch (split with :func:`min_norm_by_scale`), ``W_2(0)`` and ``B_2`` LeCun; ``"fa_zero"``, ``"bp_zero"``: from
    ``W_1 = W_2 = 0``.
    """
    x, y = teacher_data(n, [d, NORM_OUTPUTS], seeds, activation="linear", std="lecun", dtype=DT, device=device)
    r = seeded_normal([(h, d)], seeds, [1.0], stream="first_layer", dtype=DT, device=device)[0]
    w2 = init_weights([h, NORM_OUTPUTS], seeds, dtype=DT, device=device)[0]
    b2 = init_feedback([d, h, NORM_OUTPUTS], seeds, rule="fa", dtype=DT, device=device)[1]
    k = len(NORM_SCALES)
    starts = {"scaled": (stack_settings([[s * r, w2] for s in NORM_SCALES]), stack_settings([[x, y]] * k),
                         stack_settings([[None, b2]] * k)),
              "zero": ([torch.zeros_like(r), torch.zeros_like(w2)], [x, y], [None, b2])}
    runs = {}
    for key, (rule, start, desc) in NORM_RUNS.items():
        weights, (xs, ys), feedback = starts[start]
        runs[key] = train(weights, xs, ys, rule=rule, activation="linear", lr=norm_lr(d), steps=steps,
                          feedback=None if rule == "bp" else feedback, record_every=max(1, steps // NORM_RECORDS),
                          extra_metrics=min_norm_tracker(xs, ys, weights[0]), desc=desc)
    _report_diverged(runs)
    return runs


def min_norm_by_scale(runs: Mapping[str, History]) -> dict[str, dict[str, np.ndarray]]:
    """Final values of the scale sweeps of :func:`min_norm_runs` by scale: ``{rule: {name: (len(NORM_SCALES), S)}}`` for
    ``min_norm_distance``, ``min_norm_relative_error``, ``loss`` and ``diverged``."""
    out = {}
    for rule in ("fa", "bp"):
        parts = runs[rule].split([f"{s:g}" for s in NORM_SCALES])
        out[rule] = {name: np.stack([h.final(name) for h in parts.values()])
                     for name in ("min_norm_distance", "min_norm_relative_error", "loss")}
        out[rule]["diverged"] = np.stack([h.diverged for h in parts.values()])
    return out


# --------------------------------------------------------------------------- K7: practical training
@dataclass
class PracticalRuns:
    """What :func:`practical_runs` trained (float32, ``P`` seeds).

    ``law``: K7a's FA runs by step size (``{f"{lr:g}": History}`` for :data:`PRAC_LRS`, each of the ``P`` seeds from
    the same start and feedback; with :func:`drift_tracker`'s and :class:`DiscreteTerm`'s metrics) and ``"bp"``, BP at ``PRAC_LRS[1]`` (the control); ``classes``: K7b's FA runs by class
    count, ``{n_classes: {"lecun": History, "small": History}}`` (``SMALL_INIT`` x the same LeCun draw, the same B);
    ``flipped``: the share of relabelled training images (ten classes); ``per_epoch``: steps per epoch (one record each).
    """

    law: dict[str, History]
    classes: dict[int, dict[str, History]]
    flipped: float
    per_epoch: int


def practical_runs(data, seeds: Sequence[int], *, epochs: int, seed: int, device: str = "cpu") -> PracticalRuns:
    """K7: ``PRAC_N`` noisy images of ``data`` (a :class:`fa_lib.data.ClassificationData`; subsets, label noise and the
    mini-batch order drawn from ``seed``), a bias-free ReLU MLP 784-``PRAC_HIDDEN``-``PRAC_HIDDEN``-n_classes trained by
    plain SGD on the mean cross-entropy for ``epochs`` epochs of batches of ``PRAC_BATCH``, tested on the clean test
    images of its classes. K7a tracks both laws per neuron (:func:`drift_tracker`); see :class:`PracticalRuns`."""
    per_epoch = steps_per_epoch(PRAC_N, PRAC_BATCH)
    train_kw = dict(activation="relu", loss="ce", steps=epochs * per_epoch, batch_size=PRAC_BATCH, record_every=per_epoch,
                    shuffle_seed=seed)
    x10, y10, flipped = noisy_subset(data.x_train, data.y_train, PRAC_N, n_classes=10, noise=PRAC_NOISE, seed=seed)
    widths10 = [784, PRAC_HIDDEN, PRAC_HIDDEN, 10]
    start, feedback = init_weights(widths10, seeds, device=device), init_feedback(widths10, seeds, rule="fa", device=device)
    # K7a: one FA batch over step sizes x seeds (step-size-major; a seed has the same W(0) and B at every step size), and BP
    w0, b0 = stack_settings([start] * len(PRAC_LRS)), stack_settings([feedback] * len(PRAC_LRS))
    lrs = torch.tensor([lr for lr in PRAC_LRS for _ in seeds], device=device)
    drift, discrete = drift_tracker(w0, b0, per_neuron=True), DiscreteTerm(w0, b0, lr=lrs)
    fa = train(w0, x10, y10, rule="fa", feedback=b0, lr=lrs, test=(data.x_test, data.y_test),
               extra_metrics=lambda weights: drift(weights) | discrete(weights), on_step=discrete.on_step, desc="K7a FA", **train_kw)
    law = fa.split([f"{lr:g}" for lr in PRAC_LRS])
    law["bp"] = train(start, x10, y10, rule="bp", lr=PRAC_LRS[1], test=(data.x_test, data.y_test),
                      extra_metrics=drift_tracker(start, feedback, per_neuron=True), desc="K7a BP (control)", **train_kw)
    classes = {}
    for n_classes in CLASS_COUNTS:  # K7b: one FA batch per class count (the readout's width differs)
        xc, yc, _ = noisy_subset(data.x_train, data.y_train, PRAC_N, n_classes=n_classes, noise=PRAC_NOISE, seed=seed)
        keep = data.y_test < n_classes
        widths = [784, PRAC_HIDDEN, PRAC_HIDDEN, n_classes]
        w = init_weights(widths, seeds, device=device)
        h = train(stack_settings([w, [SMALL_INIT * wl for wl in w]]), xc, yc, rule="fa", lr=CLASS_LR,
                  feedback=stack_settings([init_feedback(widths, seeds, rule="fa", device=device)] * 2),
                  test=(data.x_test[keep], data.y_test[keep]), desc=f"K7b FA, {n_classes} classes", **train_kw)
        classes[n_classes] = h.split(["lecun", "small"])
    _report_diverged({"K7a FA": fa, "K7a BP": law["bp"]}
                     | {f"K7b {n} classes, {start}": h for n, parts in classes.items() for start, h in parts.items()})
    return PracticalRuns(law=law, classes=classes, flipped=float(flipped.double().mean()), per_epoch=per_epoch)


def unmatched_share(history: History) -> np.ndarray:
    """The share of the change of each neuron's incoming norm that FA's law leaves unmatched,
    ``||Delta c_l|| / ||Delta ||W_l[j,:]||^2||`` (norms over neurons), at every record after the start: ``(R-1, S, L-1)``."""
    return history.metrics["drift_fa"][1:] / history.metrics["incoming_change"][1:]


def discrete_share(history: History) -> np.ndarray:
    """The share of the change of each neuron's incoming norm that FA's discrete term accounts for,
    ``||D_l|| / ||Delta ||W_l[j,:]||^2||`` (:class:`DiscreteTerm`), at every record after the start: ``(R-1, S, L-1)``.
    Equal to :func:`unmatched_share` up to the rounding of the discrete law (``discrete_remainder``)."""
    return history.metrics["discrete_term"][1:] / history.metrics["incoming_change"][1:]


def class_gains(runs: Mapping[str, History]) -> dict[str, np.ndarray]:
    """For one class count of :attr:`PracticalRuns.classes`: per seed, the small start's final hidden-layer gradient
    alignment (mean of the layers) and test accuracy (points) minus the LeCun start's, and both starts' values (``(S,)`` each)."""
    align = {k: runs[k].final("grad_alignment").mean(-1) for k in ("lecun", "small")}
    acc = {k: 100 * runs[k].final("test_accuracy") for k in ("lecun", "small")}
    return {"alignment_gain": align["small"] - align["lecun"], "accuracy_gain_points": acc["small"] - acc["lecun"],
            "alignment": align, "accuracy": acc}
