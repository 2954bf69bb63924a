"""What the chapter runs: the alignment sweep (run until settled) and the loss curves (fixed length) of
Song, Xu & Lafferty's synthetic task, their summary rows, the infinite-width kernel check, the plan of the
sweep's jobs for :func:`fa_lib.parallel.run_parallel`, and the run's bookkeeping and costs.

The job functions (:func:`run_alignment_cell`, :func:`run_curve_cell`,
:func:`~fa_lib.chapters.two_layer_convergence.real_data.run_real_data_on`) are module-level so that worker
processes can import them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...alignment import cosine
from ...networks import error_carrier
from ...theory.song import (
    INPUT_DIM,
    LAMBDAS,
    LEARNING_RATES,
    LOSS_CURVE_STEPS,
    LOSS_CURVE_WIDTH,
    N_SAMPLES,
    REAL_BATCH_SIZE,
    REAL_EPOCHS,
    REAL_LAMBDAS,
    REAL_RUNS,
    SYNTHETIC_ACTIVATIONS,
    TRIALS,
    WIDTHS,
    arccos_kernel,
    kernels,
    predicted_log_mse_slope,
    readout_only_l2_growth,
    ridge_plateau,
    steps_for_width,
)
from ...training import steps_per_epoch, summarize_seeds
from ...training.two_layer import (
    StopRule,
    batch_size,
    init_two_layer,
    prepared_trials,
    synthetic_data,
    train_two_layer,
    train_until_settled,
)
from ...validation import check_choice, check_int, check_positive
from .profiles import EXPERIMENTS, FIT_DECADES, KERNEL_CHECK_DRAWS, TAIL_WINDOW
from ...theory.song_tables import published_alignment
from .real_data import RealDataRun, real_data_seeds, run_real_data_on

Tensor = torch.Tensor


def tail_fit(mse: np.ndarray, *, decades: float = FIT_DECADES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares fit of ``ln MSE`` against the step on the tail of each seed's curve.

    The window ends at the first step whose MSE is ``decades`` orders of magnitude below the
    initial MSE (or at the last step) and starts halfway there. ``mse``: ``(steps + 1, S)``.
    Returns ``(slope, r2, window)`` with ``slope`` and ``r2`` ``(S,)`` (NaN for a diverged
    seed) and ``window`` ``(S, 2)``.
    """
    mse = np.asarray(mse, dtype=float)
    n_steps, n_seeds = mse.shape
    slope, r2 = np.full(n_seeds, np.nan), np.full(n_seeds, np.nan)
    window = np.zeros((n_seeds, 2), dtype=int)
    for s in range(n_seeds):
        curve = mse[:, s]
        if not np.all(np.isfinite(curve)) or n_steps < 3:
            continue
        below = np.flatnonzero(curve < curve[0] * 10.0 ** (-decades))
        end = int(below[0]) if below.size else n_steps - 1
        begin = end // 2
        if end - begin < 2:
            continue
        t = np.arange(begin, end + 1, dtype=float)
        log_mse = np.log(np.maximum(curve[begin : end + 1], np.finfo(float).tiny))
        coef = np.polyfit(t, log_mse, 1)
        residual = log_mse - np.polyval(coef, t)
        spread = np.sum((log_mse - log_mse.mean()) ** 2)
        slope[s] = coef[0]
        r2[s] = 1.0 - np.sum(residual**2) / spread if spread > 0 else 1.0
        window[s] = (begin, end)
    return slope, r2, window


# --------------------------------------------------------------------------- sweep cells
def trial_seeds(seed: int, activation: str, p: int, trials: int, *, lam: float = 0.0, experiment: str = "alignment") -> list[int]:
    """Distinct seeds of the ``trials`` trials of one (experiment, activation, lambda, width) cell, derived from ``seed``.

    As in the authors' loop, every cell draws its own data, teacher, ``W(0)``, ``beta(0)`` and
    ``b``: no two cells share a trial. ``experiment`` is ``"alignment"`` (the stop-rule sweep)
    or ``"curves"`` (the fixed-length loss-curve runs).
    """
    check_int("seed", seed, minimum=0)
    check_int("trials", trials, minimum=1)
    check_choice("activation", activation, SYNTHETIC_ACTIVATIONS)
    check_choice("experiment", experiment, EXPERIMENTS)
    key = [seed, EXPERIMENTS.index(experiment), SYNTHETIC_ACTIVATIONS.index(activation), int(p), round(float(lam) * 1e6)]
    return [int(v) for v in np.random.SeedSequence(key).generate_state(trials, dtype=np.uint32)]


def _cell_settings(activation: str, p: int, trials: int, lams: Sequence[float] | None,
                   lr: float | None) -> tuple[tuple[float, ...], float]:
    """Check a cell's arguments; return its lambda grid and learning rate (the authors' where ``None``)."""
    check_choice("activation", activation, SYNTHETIC_ACTIVATIONS)
    check_int("p", p, minimum=1)
    check_int("trials", trials, minimum=1)
    lams = tuple(float(v) for v in (LAMBDAS[activation] if lams is None else lams))
    if not lams or any(not math.isfinite(v) or v < 0 for v in lams):
        raise ValueError(f"lams={lams!r} must be a non-empty list of finite numbers >= 0")
    return lams, LEARNING_RATES[activation] if lr is None else check_positive("lr", lr)


class _SelectByLambda:
    """A cell's networks by lambda: ``lam`` ``(N,)`` is each network's lambda."""

    lam: np.ndarray

    def select(self, lam: float) -> np.ndarray:
        """Boolean mask ``(N,)`` of the networks trained with ``lam``."""
        return np.isclose(self.lam, lam)


@dataclass
class AlignmentCell(_SelectByLambda):
    """The stop-rule sweep of one (activation, width): every lambda, ``trials`` independent trials each.

    Per network ``(N,)``, lambda-major (``lam``, ``trial``): ``alignment`` at the stop,
    ``alignment_at_min`` after ``T_min`` steps and ``alignment_init``, ``steps``, ``settled``, ``diverged``, ``mse`` at the stop;
    ``check_mse`` ``(checks, N)``; ``min_steps`` is the rule's ``T_min``.
    """

    activation: str
    p: int
    lr: float
    lams: tuple[float, ...]
    min_steps: int
    lam: np.ndarray
    trial: np.ndarray
    seeds: np.ndarray
    alignment: np.ndarray
    alignment_at_min: np.ndarray
    alignment_init: np.ndarray
    steps: np.ndarray
    settled: np.ndarray
    diverged: np.ndarray
    mse: np.ndarray
    check_mse: np.ndarray
    seconds: float


def run_alignment_cell(
    activation: str,
    p: int,
    trials: int,
    *,
    seed: int = 0,
    lams: Sequence[float] | None = None,
    lr: float | None = None,
    stop: StopRule | None = None,
    n: int = N_SAMPLES,
    d: int = INPUT_DIM,
    block: int | str = "auto",
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> AlignmentCell:
    """The authors' alignment protocol for one (activation, width): each lambda's ``trials`` trials run until settled.

    Defaults: the authors' ``lr``, lambda grid and :meth:`StopRule.for_width`. Every trial of
    every lambda has its own draws (:func:`trial_seeds`); training runs in row-space
    coordinates, :func:`batch_size` networks at a time (:func:`train_until_settled`).
    """
    lams, lr = _cell_settings(activation, p, trials, lams, lr)
    stop = StopRule.for_width(p) if stop is None else stop
    seeds = [s for lam in lams for s in trial_seeds(seed, activation, p, trials, lam=lam)]
    x, y, weights, b = prepared_trials(activation, p, seeds, n, d, dtype, device)
    lam = np.repeat(lams, trials)
    runs = train_until_settled(weights, x, y, rule="fa", activation=activation, lr=lr,
                               lam=torch.tensor(lam, dtype=dtype, device=device), stop=stop, feedback=[None, b],
                               block=batch_size(block, activation, p, len(seeds)), progress=progress,
                               desc=f"{activation} p={p}")
    return AlignmentCell(
        activation=activation, p=p, lr=lr, lams=lams, min_steps=stop.min_steps, lam=lam,
        trial=np.tile(np.arange(trials), len(lams)), seeds=np.asarray(seeds),
        alignment=runs.alignment, alignment_at_min=runs.alignment_at_min,
        alignment_init=_numpy(cosine(weights[1], b, dims=2)), steps=runs.steps,
        settled=runs.settled, diverged=runs.diverged, mse=runs.mse, check_mse=runs.check_mse, seconds=runs.seconds,
    )


@dataclass
class CurveCell(_SelectByLambda):
    """Fixed-length loss-curve runs of one (activation, width, rule): every lambda, independent trials.

    Per network ``(N,)``, lambda-major: ``lam``, ``trial``, final ``alignment`` and initial
    ``alignment_init`` (``cos(beta, b)``), ``diverged``; ``predicted_slope`` (kernel
    prediction of ``d ln MSE/d step`` from ``G(0) + H(0)``), ``predicted_slope_g`` (from
    ``G(0)`` alone) and ``predicted_slope_final`` (from ``G + H`` of the final weights),
    ``measured_slope`` and ``r2`` (:func:`tail_fit`), ``ridge_mse`` (the kernel-ridge plateau
    with ``G(0)``) and ``ridge_mse_final`` (with the final ``G``); ``lambda_min_g`` and
    ``lambda_min_gh`` (of ``G(0)`` and ``G(0) + H(0)``) and ``h_norm`` (``||H(0)||_2``). Over the last
    ``TAIL_WINDOW`` of the steps, from ``window_start``: ``window_slope`` (of ln MSE, least squares),
    ``w2_growth`` (of ``||W||_F^2`` per step), ``predicted_growth`` (:func:`readout_only_l2_growth` of
    the window's mean ``<beta, b>``) and ``overlap_drift`` (``2 Delta<beta, b>`` per step);
    ``w2_relative_growth``: ``||W(T)||^2 / ||W(0)||^2 - 1`` (``W`` in the inputs' row space, the part
    the data sees). ``mse``: ``(steps + 1, N)``.
    """

    activation: str
    p: int
    rule: str
    lr: float
    steps: int
    lams: tuple[float, ...]
    seeds: np.ndarray
    lam: np.ndarray
    trial: np.ndarray
    mse: np.ndarray
    alignment: np.ndarray
    alignment_init: np.ndarray
    diverged: np.ndarray
    predicted_slope: np.ndarray
    predicted_slope_g: np.ndarray
    predicted_slope_final: np.ndarray
    measured_slope: np.ndarray
    r2: np.ndarray
    ridge_mse: np.ndarray
    ridge_mse_final: np.ndarray
    lambda_min_g: np.ndarray
    lambda_min_gh: np.ndarray
    h_norm: np.ndarray
    window_start: int
    window_slope: np.ndarray
    w2_growth: np.ndarray
    predicted_growth: np.ndarray
    overlap_drift: np.ndarray
    w2_relative_growth: np.ndarray
    seconds: float


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def run_curve_cell(
    activation: str,
    p: int,
    trials: int,
    *,
    seed: int = 0,
    rule: str = "fa",
    lams: Sequence[float] | None = None,
    lr: float | None = None,
    steps: int = LOSS_CURVE_STEPS,
    n: int = N_SAMPLES,
    d: int = INPUT_DIM,
    block: int | str = "auto",
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> CurveCell:
    """The authors' loss-curve protocol for one (activation, width): ``steps`` updates, the MSE at every step.

    Each lambda's ``trials`` trials have their own draws (``trial_seeds(..., experiment="curves")``);
    a BP cell uses the draws of the FA cell's lambda = 0 trials, so BP and FA start from the same
    networks. Kernels are computed in float64. ``block``: see :func:`batch_size` (the results do
    not depend on it).
    """
    lams, lr = _cell_settings(activation, p, trials, lams, lr)
    check_choice("rule", rule, ("bp", "fa"))
    check_int("steps", steps, minimum=1)
    seeds = [s for lam in lams for s in trial_seeds(seed, activation, p, trials, lam=lam, experiment="curves")]
    x, y, weights, b = prepared_trials(activation, p, seeds, n, d, dtype, device)
    lam = torch.tensor(np.repeat(lams, trials), dtype=torch.float64)
    n_columns = len(seeds)
    block = batch_size(block, activation, p, n_columns)
    window_start = steps - max(1, round(TAIL_WINDOW * steps))
    runs = [
        train_two_layer([w[part] for w in weights], x[part], y[part], rule=rule, activation=activation, lr=lr,
                        lam=lam[part].to(device=device, dtype=dtype), steps=steps, feedback=[None, b[part]],
                        keep_weights_at=window_start, progress=progress, desc=f"{activation} p={p} {rule} curves")
        for part in (slice(i, i + block) for i in range(0, n_columns, block))
    ]
    final_weights = [torch.cat([r.weights[i] for r in runs]) for i in range(2)]
    overlap = np.concatenate([r.overlap for r in runs], axis=1)
    squared_norm = {name: torch.cat([w[0].double().square().sum(dim=(1, 2)) for w in ws]).cpu().numpy()
                    for name, ws in (("start", [weights]), ("window", [r.kept_weights for r in runs]), ("end", [r.weights for r in runs]))}
    x64, y64, lam64 = x.double(), y.double(), lam.to(device)
    g0, h0 = kernels([w.double() for w in weights], x64, activation, error_carrier(rule, weights, [None, b], 0).double())
    g_final, h_final = kernels([w.double() for w in final_weights], x64, activation,
                               error_carrier(rule, final_weights, [None, b], 0).double())
    mse = np.concatenate([r.mse for r in runs], axis=1)
    slope, r2, _ = tail_fit(mse)
    finite, window_slope = np.isfinite(mse[window_start:]).all(axis=0), np.full(n_columns, np.nan)
    if finite.any():
        log_mse = np.log(np.maximum(mse[window_start:, finite], np.finfo(float).tiny))
        window_slope[finite] = np.polyfit(np.arange(window_start, steps + 1), log_mse, 1)[0]
    window_steps = steps - window_start
    lam_min = {name: _numpy(torch.linalg.eigvalsh(k)[..., 0]) for name, k in (("g", g0), ("gh", g0 + h0))}
    return CurveCell(
        activation=activation, p=p, rule=rule, lr=lr, steps=steps, lams=lams, seeds=np.asarray(seeds),
        lam=lam.numpy(), trial=np.tile(np.arange(trials), len(lams)), mse=mse,
        alignment=np.concatenate([r.alignment for r in runs]), alignment_init=_numpy(cosine(weights[1], b, dims=2)),
        diverged=np.concatenate([r.diverged for r in runs]),
        predicted_slope=_numpy(predicted_log_mse_slope(g0, h0, lr, n)),
        predicted_slope_g=_numpy(predicted_log_mse_slope(g0, torch.zeros_like(g0), lr, n)),
        predicted_slope_final=_numpy(predicted_log_mse_slope(g_final, h_final, lr, n)),
        measured_slope=slope, r2=r2,
        ridge_mse=_numpy(ridge_plateau(g0, y64, lam64)), ridge_mse_final=_numpy(ridge_plateau(g_final, y64, lam64)),
        lambda_min_g=lam_min["g"], lambda_min_gh=lam_min["gh"], h_norm=_numpy(torch.linalg.matrix_norm(h0, ord=2)),
        window_start=window_start, window_slope=window_slope,
        w2_growth=(squared_norm["end"] - squared_norm["window"]) / window_steps,
        predicted_growth=_numpy(readout_only_l2_growth(torch.from_numpy(overlap[window_start:steps].mean(axis=0)), lr, lam)),
        overlap_drift=2 * (overlap[steps] - overlap[window_start]) / window_steps,
        w2_relative_growth=squared_norm["end"] / squared_norm["start"] - 1,
        seconds=sum(r.seconds for r in runs),
    )


# --------------------------------------------------------------------------- summaries
def alignment_rows(cells: Sequence[AlignmentCell]) -> list[dict]:
    """One row per (activation, lam, p), by activation, then width, then lambda: final ``cos(beta, b)`` over the non-diverged trials
    (``mean``, ``sd``, ``trials`` kept; ``mean_at_min``: stopped at ``T_min`` instead), the step counts (``steps_mean``, ``steps_min``,
    ``steps_max``, ``min_steps`` = T_min), ``diverged`` and ``unsettled`` counts, and the authors'
    ``(authors_mean, authors_sd)`` with ``difference`` = ours - theirs (``None`` where they published none)."""
    rows = []
    for cell in sorted(cells, key=lambda c: (SYNTHETIC_ACTIVATIONS.index(c.activation), c.p)):
        for lam in cell.lams:
            mask = cell.select(lam)
            stats = summarize_seeds(cell.alignment[mask], cell.diverged[mask])
            published = published_alignment(cell.activation, lam, cell.p)
            steps = cell.steps[mask]
            rows.append({
                "activation": cell.activation, "lam": lam, "p": cell.p, "mean": stats["mean"], "sd": stats["sd"],
                "mean_at_min": summarize_seeds(cell.alignment_at_min[mask], cell.diverged[mask])["mean"],
                "trials": stats["n"], "steps_mean": float(np.mean(steps)), "steps_min": int(np.min(steps)),
                "steps_max": int(np.max(steps)), "min_steps": cell.min_steps, "lr": cell.lr,
                "diverged": stats["diverged"], "unsettled": int(np.sum(~cell.settled[mask] & ~cell.diverged[mask])),
                "authors_mean": None if published is None else published[0],
                "authors_sd": None if published is None else published[1],
                "difference": None if published is None else stats["mean"] - published[0],
            })
    return rows


def rate_rows(cells: Sequence[CurveCell]) -> list[dict]:
    """One row per (activation, p, rule) at ``lam = 0``: mean measured tail slope of ln MSE and
    mean kernel prediction from ``G(0) + H(0)`` (``predicted_slope``), from ``G(0)`` alone and
    from the final ``G + H``, the ratios measured / predicted (``ratio`` with ``G(0) + H(0)``,
    ``ratio_g`` with ``G(0)``), the means of ``lambda_min(G(0))``, ``lambda_min(G(0) + H(0))`` and
    ``||H(0)||_2 / lambda_min(G(0))`` with the count of trials whose ``G(0) + H(0)`` is indefinite,
    the smallest tail ``r2_min``, trials and divergences."""
    rows = []
    for cell in cells:
        mask = cell.select(0.0) & ~cell.diverged
        if not cell.select(0.0).any():
            continue
        measured, predicted = float(np.mean(cell.measured_slope[mask])), float(np.mean(cell.predicted_slope[mask]))
        rows.append(
            {
                "activation": cell.activation,
                "p": cell.p,
                "rule": cell.rule,
                "trials": int(mask.sum()),
                "diverged": int((cell.select(0.0) & cell.diverged).sum()),
                "measured_slope": measured,
                "measured_sd": float(np.std(cell.measured_slope[mask], ddof=1)) if mask.sum() > 1 else 0.0,
                "predicted_slope": predicted,
                "predicted_slope_g": float(np.mean(cell.predicted_slope_g[mask])),
                "predicted_slope_final": float(np.mean(cell.predicted_slope_final[mask])),
                "ratio": measured / predicted,
                "ratio_g": measured / float(np.mean(cell.predicted_slope_g[mask])),
                "lambda_min_g": float(np.mean(cell.lambda_min_g[mask])),
                "lambda_min_gh": float(np.mean(cell.lambda_min_gh[mask])),
                "indefinite": int(np.sum(cell.lambda_min_gh[mask] <= 0)),
                "h_over_lambda_min_g": float(np.mean(cell.h_norm[mask] / cell.lambda_min_g[mask])),
                "r2_min": float(np.min(cell.r2[mask])),
            }
        )
    return rows


def plateau_rows(cells: Sequence[CurveCell]) -> list[dict]:
    """One row per FA (activation, lam > 0, p): mean final MSE, mean kernel-ridge plateau with
    ``G(0)`` and with the final ``G``, and the mean per-trial ratios final / prediction; over the last
    ``TAIL_WINDOW`` of the steps the mean slope of ln MSE (``window_slope``) and the fraction the MSE
    falls there (``window_fall``), the mean growth of ``||W||_F^2`` per step, its prediction
    ``2 lr lam <beta, b>`` and their per-trial ratio (smallest: ``growth_ratio_min``), ``overlap_drift``
    (``2 Delta<beta, b>`` per step), the fewest trials whose ``||W||^2`` grew, and ``w2_relative_growth``."""
    rows = []
    for cell in cells:
        if cell.rule != "fa":
            continue
        for lam in cell.lams:
            mask = cell.select(lam) & ~cell.diverged
            if lam == 0 or not mask.any():
                continue
            final = cell.mse[-1, mask]
            rows.append(
                {
                    "activation": cell.activation,
                    "lam": lam,
                    "p": cell.p,
                    "trials": int(mask.sum()),
                    "final_mse": float(np.mean(final)),
                    "ridge_mse": float(np.mean(cell.ridge_mse[mask])),
                    "ratio": float(np.mean(final / cell.ridge_mse[mask])),
                    "ridge_mse_final_kernel": float(np.mean(cell.ridge_mse_final[mask])),
                    "ratio_final_kernel": float(np.mean(final / cell.ridge_mse_final[mask])),
                    "tail_slope": float(np.mean(cell.measured_slope[mask])),
                    "window_slope": float(np.mean(cell.window_slope[mask])),
                    "window_fall": float(np.mean(1 - np.exp(cell.window_slope[mask] * (cell.steps - cell.window_start)))),
                    "w2_growth": float(np.mean(cell.w2_growth[mask])),
                    "predicted_growth": float(np.mean(cell.predicted_growth[mask])),
                    "growth_ratio": float(np.mean(cell.w2_growth[mask] / cell.predicted_growth[mask])),
                    "growth_ratio_min": float(np.min(cell.w2_growth[mask] / cell.predicted_growth[mask])),
                    "overlap_drift": float(np.mean(cell.overlap_drift[mask])),
                    "trials_growing": int(np.sum(cell.w2_growth[mask] > 0)),
                    "w2_relative_growth": float(np.mean(cell.w2_relative_growth[mask])),
                }
            )
    return rows


# --------------------------------------------------------------------------- the sweep's jobs and costs
def sweep_jobs(activations: Sequence[str], widths: Sequence[int], trials: int, *, curve_width: int, curve_trials: int,
               seed: int, block: int | str = "auto", device: str = "cpu", real: dict | None = None) -> list[tuple]:
    """The chapter's runs as independent jobs for :func:`fa_lib.parallel.run_parallel`, longest first.

    One alignment job per (activation, width) (:func:`run_alignment_cell`), at ``curve_width``
    one FA and one BP (lambda = 0) loss-curve job per activation (:func:`run_curve_cell`), and
    with ``real`` (the keyword arguments of :func:`run_real_data_on`) the real-data experiment.
    The order uses a rough cost (networks x steps x the hidden layer's size in synthetic units;
    linear networks never form it); it changes nothing but the wall time.
    """
    for activation in activations:
        check_choice("activations", activation, SYNTHETIC_ACTIVATIONS)
    common = dict(seed=seed, block=block, device=device)
    jobs, costs = [], []
    for activation in activations:
        size = (lambda p: p / N_SAMPLES) if activation == "linear" else (lambda p: p)
        grid = len(LAMBDAS[activation])
        for p in widths:
            jobs.append((run_alignment_cell, dict(activation=activation, p=p, trials=trials, **common)))
            costs.append(grid * trials * 1.5 * steps_for_width(p) * size(p))
        for rule, lams in (("fa", None), ("bp", (0.0,))):
            jobs.append((run_curve_cell, dict(activation=activation, p=curve_width, trials=curve_trials, rule=rule,
                                              lams=lams, **common)))
            costs.append((grid if lams is None else 1) * curve_trials * LOSS_CURVE_STEPS * size(curve_width))
    if real is not None:
        jobs.append((run_real_data_on, dict(real, device=device)))
        # a network-step (784-1000-10, batches of 600) measured about 150 times a p = 800 synthetic one
        runs, epochs = len(real.get("seeds", [0])), real.get("epochs", REAL_EPOCHS)
        per_epoch = steps_per_epoch(real.get("n_train") or 60000, real.get("batch_size", REAL_BATCH_SIZE))
        costs.append(len(real.get("lams", REAL_LAMBDAS)) * runs * epochs * per_epoch * 150 * 800)
    return [jobs[i] for i in np.argsort(costs, kind="stable")[::-1]]


def cost_per_unit(cells: Sequence[AlignmentCell | CurveCell]) -> dict[str, float]:
    """Measured seconds per network, step and hidden unit, per activation, over the cells given."""
    seconds: dict[str, float] = {}
    work: dict[str, float] = {}
    for cell in cells:
        steps = cell.steps.sum() if isinstance(cell, AlignmentCell) else cell.steps * len(cell.lam)
        seconds[cell.activation] = seconds.get(cell.activation, 0.0) + cell.seconds
        work[cell.activation] = work.get(cell.activation, 0.0) + float(steps) * cell.p
    return {a: seconds[a] / work[a] for a in seconds}


def paper_cost_hours(cells: Sequence[AlignmentCell], unit: dict[str, float]) -> dict[str, float]:
    """Single-thread hours of the authors' full grid (``WIDTHS``, ``TRIALS``) at the cost ``unit``
    (:func:`cost_per_unit`): the alignment sweep, with each (activation, lambda)'s step count
    taken as the multiple of ``T_min`` measured at the largest width of ``cells``, and the loss
    curves (every lambda and BP at ``LOSS_CURVE_WIDTH``)."""
    alignment = curves = 0.0
    for activation in {c.activation for c in cells}:
        widest = max((c for c in cells if c.activation == activation), key=lambda c: c.p)
        for lam in widest.lams:
            multiple = float(np.mean(widest.steps[widest.select(lam)])) / widest.min_steps
            alignment += sum(TRIALS * multiple * steps_for_width(p) * p for p in WIDTHS) * unit[activation]
        curves += (len(widest.lams) + 1) * TRIALS * LOSS_CURVE_STEPS * LOSS_CURVE_WIDTH * unit[activation]
    return {"alignment": alignment / 3600, "curves": curves / 3600}


# --------------------------------------------------------------------------- the chapter's notebook
def plan_runs(config: dict, *, activations: Sequence[str], seed: int, block: int | str = "auto",
              device: str = "cpu") -> tuple[list[tuple], list[int]]:
    """The profile's runs as :func:`sweep_jobs` jobs (real data included) and the seeds they use: every
    alignment trial's (:func:`trial_seeds`) and the real-data runs' (:func:`real_data_seeds`), sorted."""
    widths, trials, real = tuple(config["widths"]), config["trials"], config["real"]
    real_seeds = real_data_seeds(seed, real["runs"])
    jobs = sweep_jobs(activations, widths, trials, curve_width=config["curve_width"], curve_trials=config["curve_trials"],
                      seed=seed, block=block, device=device,
                      real=dict(n_train=real["n_train"], n_test=real["n_test"], seeds=real_seeds,
                                epochs=real["epochs"], records=real["records"]))
    seeds = sorted({s for a in activations for p in widths for lam in LAMBDAS[a]
                    for s in trial_seeds(seed, a, p, trials, lam=lam)} | set(real_seeds))
    return jobs, seeds


def run_numbers(config: dict, workers: int) -> dict:
    """The run's sizes for the prose: ``{"numbers": {song_p_min, song_p_max, song_trials, ...}}``."""
    return {"numbers": dict(song_p_min=min(config["widths"]), song_p_max=max(config["widths"]), song_trials=config["trials"],
                            song_workers=workers, song_curve_p=config["curve_width"], song_curve_trials=config["curve_trials"])}


def kernel_check(seed: int, widths: Sequence[int] = WIDTHS, draws: int = KERNEL_CHECK_DRAWS) -> tuple[list[dict], dict]:
    """ReLU kernels at initialisation on the authors' inputs (float64), ``draws`` per width.

    Returns ``(rows, records)``: one row per width with the mean relative Frobenius distances
    ``||G(0) - G_inf|| / ||G_inf||`` and ``||H(0)|| / ||G_inf||`` (FA) and the mean ``lambda_min(G_inf)``;
    ``records`` holds the fitted log-log exponents and the mean ``lambda_min`` (``numbers``) and the rows.
    """
    rows = []
    for p in widths:
        seeds = trial_seeds(seed + 1, "relu", p, draws)
        x, _ = synthetic_data("relu", N_SAMPLES, INPUT_DIM, p, seeds, dtype=torch.float64)
        weights, feedback = init_two_layer(INPUT_DIM, p, seeds, dtype=torch.float64)
        g0, h0 = kernels(weights, x, "relu", feedback[1])
        g_inf = arccos_kernel(x)
        scale = torch.linalg.matrix_norm(g_inf)
        rows.append({
            "p": p,
            "G(0) vs arc-cosine": (torch.linalg.matrix_norm(g0 - g_inf) / scale).mean().item(),
            "H(0) (FA)": (torch.linalg.matrix_norm(h0) / scale).mean().item(),
            "lambda_min(G_inf)": torch.linalg.eigvalsh(g_inf)[:, 0].mean().item(),
        })
    log_p = np.log(np.array([r["p"] for r in rows], dtype=float))
    numbers = dict(
        song_g_exponent=np.polyfit(log_p, np.log([r["G(0) vs arc-cosine"] for r in rows]), 1)[0],
        song_h_exponent=np.polyfit(log_p, np.log([r["H(0) (FA)"] for r in rows]), 1)[0],
        song_relu_lambda_min_ginf=np.mean([r["lambda_min(G_inf)"] for r in rows]),
    )
    return rows, {"numbers": numbers, "metrics": {"kernel_check": rows}}


def split_outcomes(outcomes: Sequence) -> tuple[list[AlignmentCell], dict[tuple[str, str], CurveCell], RealDataRun]:
    """The results of :func:`plan_runs`' jobs as ``(alignment cells by activation and width,
    {(activation, rule): curve cell}, the real-data run)``."""
    real = next(o for o in outcomes if isinstance(o, RealDataRun))
    align_cells = sorted((c for c in outcomes if isinstance(c, AlignmentCell)),
                         key=lambda c: (SYNTHETIC_ACTIVATIONS.index(c.activation), c.p))
    curve_cells = {(c.activation, c.rule): c for c in outcomes if isinstance(c, CurveCell)}
    return align_cells, curve_cells, real


def sweep_records(outcomes: Sequence) -> dict:
    """Bookkeeping of the sweep: per cell (in job order) its wall time (``cell_seconds``), per alignment trial
    its steps, settled and diverged flags (``trial_steps``), divergences per cell (never averaged), and the
    totals of diverged and of unsettled (capped) networks (``numbers``)."""
    align_cells, curve_cells, _ = split_outcomes(outcomes)
    cell_seconds = [{"cell": "alignment" if isinstance(c, AlignmentCell) else f"curves {c.rule}",
                     "activation": c.activation, "p": c.p, "networks": len(c.lam), "seconds": c.seconds}
                    for c in outcomes if not isinstance(c, RealDataRun)]
    trial_steps = [{"activation": c.activation, "p": c.p, "lam": c.lam, "steps": c.steps,
                    "settled": c.settled, "diverged": c.diverged} for c in align_cells]
    diverged = {f"{c.activation} p={c.p}": int(c.diverged.sum()) for c in align_cells}
    diverged |= {f"{a} p={c.p} curves {rule}": int(c.diverged.sum()) for (a, rule), c in curve_cells.items()}
    numbers = dict(song_diverged_total=sum(diverged.values()),
                   song_unsettled_total=int(sum((~c.settled & ~c.diverged).sum() for c in align_cells)))
    return {"metrics": dict(cell_seconds=cell_seconds, trial_steps=trial_steps, diverged_per_cell=diverged), "numbers": numbers}


def cost_records(align_cells: Sequence[AlignmentCell], curve_cells: dict, real: RealDataRun) -> dict:
    """What the run cost and what the paper profile would: seconds per network, step and hidden unit per
    activation (metric), the authors' alignment grid and loss curves in CPU-thread hours, ns per unit, the
    real-data ms per network and step, and its hours for the authors' 300 epochs x 10 runs x 3 lambdas."""
    unit = cost_per_unit([*align_cells, *curve_cells.values()])
    hours = paper_cost_hours(align_cells, unit)
    per_network_step = real.seconds / (len(real.lam) * int(real.history.steps[-1]))
    return {"metrics": {"cost_per_network_step_unit": unit},
            "numbers": dict(song_paper_alignment_hours=hours["alignment"], song_paper_curve_hours=hours["curves"],
                            song_cost_ns=1e9 * float(np.mean(list(unit.values()))),
                            song_real_ms_per_network_step=1e3 * per_network_step,
                            song_paper_real_hours=per_network_step * REAL_RUNS * len(REAL_LAMBDAS) * REAL_EPOCHS
                            * steps_per_epoch(60000, REAL_BATCH_SIZE) / 3600)}
