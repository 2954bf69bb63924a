"""Song, Xu & Lafferty (NeurIPS 2021): two-layer networks trained with random backpropagation weights.

Model (``shared/papers/song_xu_lafferty_2021.md``): ``f(x) = (1/sqrt(p)) sum_r beta_r psi(w_r^T x)``,
no biases, with ``W`` (p x d), ``beta`` (1 x p) and the fixed feedback vector ``b`` (1 x p)
all i.i.d. N(0, 1). In fa_lib's terms it is the network ``[W, beta]`` with
``layer_scales=[1, 1/sqrt(p)]`` and FA feedback ``[None, b]``; the alignment is
``cos(beta, b)``.

Loss and learning-rate convention. The authors train on PyTorch's ``nn.MSELoss``,
``MSE = (1/n) sum_i (f(x_i) - y_i)^2``, with ``beta <- beta - lr (dMSE/dbeta + lam beta)``
and ``W <- W - lr dMSE/dW`` (FA: ``b`` replaces ``beta`` in the backward pass). fa_lib's
``"mse"`` loss is ``L = (1/n) sum_i 1/2 (f(x_i) - y_i)^2 = MSE / 2`` and its step is
``W_l <- W_l - eta (dL/dW_l + l2_l W_l)``, so the same update has ``eta = 2 lr`` and
``l2 = lam / 2`` on ``beta`` only (:func:`core_hyperparameters`). Every ``lr`` and ``lam``
argument of this module is in the authors' MSELoss convention, and every loss it
reports is their MSE.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .alignment import cosine
from .data import ClassificationData, teacher_data
from .networks import (
    activation_function,
    backward_pass,
    forward,
    init_feedback,
    init_weights,
    loss_and_output_delta,
)
from .training import History, steps_per_epoch, summarize_seeds, train
from .validation import check_choice, check_int, check_positive

Tensor = torch.Tensor

# --------------------------------------------------------------------------- the authors' protocol
N_SAMPLES = 50
INPUT_DIM = 150
WIDTHS = (200, 400, 800, 1600, 3200, 6400, 12800)
TRIALS = 50
SYNTHETIC_ACTIVATIONS = ("linear", "relu", "tanh")
# Learning rates of the authors' code, MSELoss convention (the paper's text prints values ten times smaller).
LEARNING_RATES = {"linear": 1e-3, "relu": 1e-2, "tanh": 0.1}
# L2 strengths on beta, MSELoss convention.
LAMBDAS = {
    "linear": (0.0, 0.2, 0.3, 0.5),
    "relu": (0.0, 0.02, 0.05, 0.2),
    "tanh": (0.0, 0.001, 0.002, 0.005),
}
# Loss-curve protocol: one width, a fixed number of steps.
LOSS_CURVE_WIDTH = 3200
LOSS_CURVE_STEPS = 5000
# MNIST protocol: 784 -> 1000 ReLU -> 10, cross-entropy, SGD, L2 on the second layer only.
REAL_HIDDEN = 1000
REAL_LR = 0.01
REAL_BATCH_SIZE = 600
REAL_EPOCHS = 300
REAL_LAMBDAS = (0.0, 0.1, 0.3)
REAL_RUNS = 10

# The authors' final alignment cos(beta, b): mean and sd over their 50 trials, copied from
# shared/papers/song_xu_lafferty_2021.md (the ReLU table, lr 1e-2, and the linear lambda = 0
# row, lr 1e-3). Keys (activation, lam) -> {p: (mean, sd)}. The linear lambda > 0 rows and
# the tanh table are deliberately not in that file, so they are not here either.
PUBLISHED_ALIGNMENT: dict[tuple[str, float], dict[int, tuple[float, float]]] = {
    ("relu", 0.0): dict(zip(WIDTHS, [(0.220, 0.051), (0.136, 0.043), (0.073, 0.027), (0.043, 0.022), (0.022, 0.019), (0.009, 0.013), (0.006, 0.008)])),
    ("relu", 0.02): dict(zip(WIDTHS, [(0.401, 0.057), (0.381, 0.045), (0.411, 0.041), (0.443, 0.040), (0.493, 0.027), (0.507, 0.034), (0.513, 0.031)])),
    ("relu", 0.05): dict(zip(WIDTHS, [(0.682, 0.048), (0.671, 0.043), (0.687, 0.034), (0.710, 0.029), (0.719, 0.026), (0.719, 0.022), (0.721, 0.028)])),
    ("relu", 0.2): dict(zip(WIDTHS, [(0.858, 0.061), (0.857, 0.049), (0.860, 0.045), (0.852, 0.047), (0.846, 0.041), (0.840, 0.042), (0.846, 0.042)])),
    ("linear", 0.0): dict(zip(WIDTHS, [(0.206, 0.068), (0.119, 0.047), (0.059, 0.033), (0.031, 0.025), (0.012, 0.018), (0.009, 0.012), (0.004, 0.009)])),
}

# ln MSE is fitted only while it stays within FIT_DECADES decades of its initial value:
# float32 keeps about 7 significant digits, so rounding puts a floor under the loss that
# scales with the outputs' magnitude (the authors' ReLU curves flatten near 1e-10 from ~1e2).
FIT_DECADES = 7.0


def steps_for_width(p: int) -> int:
    """The authors' step count ``floor(5000 sqrt(p) / 14)`` (5050 steps at p = 200)."""
    check_int("p", p, minimum=1)
    return math.floor(5000 * math.sqrt(p) / 14)


def published_alignment(activation: str, lam: float, p: int) -> tuple[float, float] | None:
    """The authors' (mean, sd) of the final ``cos(beta, b)``, or ``None`` where the spec lists none."""
    return PUBLISHED_ALIGNMENT.get((activation, float(lam)), {}).get(int(p))


# --------------------------------------------------------------------------- conventions
def core_hyperparameters(lr: float, lam: float | Tensor) -> tuple[float, float | Tensor]:
    """fa_lib's ``(eta, l2)`` for the authors' MSELoss ``(lr, lam)``: ``eta = 2 lr``, ``l2 = lam / 2``.

    ``W <- W - eta (dL/dW + l2 W)`` with ``L = MSE / 2`` is then exactly
    ``W <- W - lr (dMSE/dW + lam W)``.
    """
    check_positive("lr", lr)
    return 2.0 * lr, lam / 2.0


def kernel_step(lr: float, n: int) -> float:
    """``eta`` of the output dynamics ``f <- f - eta (G + H) e``: ``2 lr / n`` for MSELoss."""
    check_positive("lr", lr)
    check_int("n", n, minimum=1)
    return 2.0 * lr / n


# --------------------------------------------------------------------------- the model
def readout_scales(p: int) -> list[float]:
    """``layer_scales`` of the two-layer model: ``[1, 1/sqrt(p)]``."""
    check_int("p", p, minimum=1)
    return [1.0, 1.0 / math.sqrt(p)]


def init_two_layer(
    d: int,
    p: int,
    seeds: Sequence[int],
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> tuple[list[Tensor], list[Tensor | None]]:
    """``([W (S, p, d), beta (S, 1, p)], [None, b (S, 1, p)])``, every entry N(0, 1)."""
    widths = [d, p, 1]
    weights = init_weights(widths, seeds, std=1.0, dtype=dtype, device=device)
    feedback = init_feedback(widths, seeds, rule="fa", std=1.0, dtype=dtype, device=device)
    return weights, feedback


def synthetic_data(
    activation: str,
    n: int,
    d: int,
    p: int,
    seeds: Sequence[int],
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> tuple[Tensor, Tensor]:
    """The authors' data: ``x ~ N(0, I_d)`` ``(S, n, d)`` and targets ``(S, n, 1)``.

    Linear networks learn ``y = X theta*`` with ``theta* ~ N(0, I_d)``; nonlinear ones a
    random teacher of the same form (width ``p``, same activation, N(0, 1) weights, 1/sqrt(p)
    readout).
    """
    check_choice("activation", activation, SYNTHETIC_ACTIVATIONS)
    if activation == "linear":
        return teacher_data(n, [d, 1], seeds, activation="linear", std=1.0, dtype=dtype, device=device)
    return teacher_data(
        n, [d, p, 1], seeds, activation=activation, std=1.0, layer_scales=readout_scales(p), dtype=dtype, device=device
    )


def row_space_coordinates(x: Tensor, first_layer: Tensor) -> tuple[Tensor, Tensor]:
    """Express inputs and first-layer weights in an orthonormal basis of the inputs' row space.

    ``x``: ``(S, n, d)``, ``first_layer``: ``(S, p, d)`` -> ``(x V, W V)`` with ``V`` ``(S, d, k)``,
    ``k = min(n, d)``, orthonormal columns spanning every row of ``x``. Then
    ``(x V)(W V)^T = x W^T`` and the gradient of ``W V`` is the gradient of ``W`` times ``V``,
    so full-batch training of ``[W V, beta]`` on ``x V`` follows exactly the trajectory of
    ``[W, beta]`` on ``x`` (any rule; no L2 on ``W``) at ``k/d`` of the cost; ``x_i^T x_j``
    and hence the kernels are unchanged. Computed in float64, returned in ``x``'s dtype.
    """
    if x.dim() != 3 or first_layer.dim() != 3 or x.shape[0] != first_layer.shape[0] or x.shape[-1] != first_layer.shape[-1]:
        raise ValueError(f"x {tuple(x.shape)} and first_layer {tuple(first_layer.shape)} must be (S, n, d) and (S, p, d)")
    basis = torch.linalg.svd(x.double(), full_matrices=False).Vh.transpose(-1, -2)
    return (x.double() @ basis).to(x.dtype), (first_layer.double() @ basis).to(first_layer.dtype)


# --------------------------------------------------------------------------- kernels and predictions
def kernels(weights: Sequence[Tensor], x: Tensor, activation: str, partner: Tensor) -> tuple[Tensor, Tensor]:
    """The kernels ``G`` and ``H`` ``(S, n, n)`` of the output dynamics at ``weights``.

    ``G_ij = (1/p) sum_r psi(w_r^T x_i) psi(w_r^T x_j)``;
    ``H_ij = (1/p) sum_r beta_r c_r psi'(w_r^T x_i) psi'(w_r^T x_j) x_i^T x_j`` with the
    vector ``c`` (``partner``, ``(S, 1, p)``) that carries the error back: ``b`` for FA,
    ``beta`` itself for BP. ``weights = [W (S, p, d), beta (S, 1, p)]``, ``x`` ``(S, n, d)``.
    """
    if len(weights) != 2:
        raise ValueError(f"weights has {len(weights)} layers; the two-layer model has 2 ([W, beta])")
    width = weights[0].shape[-2]
    if partner.shape != weights[1].shape:
        raise ValueError(f"partner has shape {tuple(partner.shape)}; expected beta's shape {tuple(weights[1].shape)}")
    _, sigma_prime = activation_function(activation)
    fwd = forward(weights, x, activation, layer_scales=readout_scales(width))
    features, slopes = fwd.inputs[1], sigma_prime(fwd.pre[0])
    g = features @ features.transpose(-1, -2) / width
    weighted = slopes * (weights[1] * partner)
    h = (weighted @ slopes.transpose(-1, -2)) / width * (x @ x.transpose(-1, -2))
    return g, h


def predicted_log_mse_slope(g: Tensor, h: Tensor, lr: float, n: int) -> Tensor:
    """Kernel prediction of ``d ln MSE / d step``: ``-4 lr lambda_min(G + H) / n`` ``(S,)``.

    From ``e <- (I - eta (G + H)) e`` with ``eta = 2 lr / n`` the slowest mode of
    ``MSE = |e|^2 / n`` decays by ``-2 eta lambda_min`` per step (``H`` is symmetric).
    """
    lam_min = torch.linalg.eigvalsh((g + h).double())[..., 0]
    return -2.0 * kernel_step(lr, n) * lam_min


def ridge_residual(g: Tensor, y: Tensor, lam: float | Tensor) -> Tensor:
    """Kernel-ridge residual ``e_inf = -lam' (G + lam' I)^-1 y`` with ``lam' = n lam / 2``.

    The fixed point of the beta-update with features frozen (MSELoss convention).
    ``g`` ``(S, n, n)``, ``y`` ``(S, n, 1)``, ``lam`` a number or ``(S,)``; returns ``(S, n, 1)``.
    """
    n = g.shape[-1]
    lam_prime = torch.as_tensor(lam, dtype=g.dtype, device=g.device) * n / 2
    lam_prime = lam_prime.reshape(*lam_prime.shape, 1, 1)
    eye = torch.eye(n, dtype=g.dtype, device=g.device)
    return -lam_prime * torch.linalg.solve(g + lam_prime * eye, y.to(g.dtype))


def ridge_plateau(g: Tensor, y: Tensor, lam: float | Tensor) -> Tensor:
    """The MSE of :func:`ridge_residual`, ``|e_inf|^2 / n`` ``(S,)``."""
    residual = ridge_residual(g, y, lam)
    return (residual**2).sum(dim=(-1, -2)) / residual.shape[-2]


def arccos_kernel(x: Tensor) -> Tensor:
    """ReLU's infinite-width ``G``: ``E_w[relu(w^T x_i) relu(w^T x_j)]``, ``w ~ N(0, I)``.

    ``|x_i| |x_j| (sin t + (pi - t) cos t) / (2 pi)`` with ``t`` the angle between
    ``x_i`` and ``x_j`` (Cho and Saul's first-order arc-cosine kernel over 2). ``(..., n, d)``
    -> ``(..., n, n)``.
    """
    norms = x.norm(dim=-1)
    outer = norms.unsqueeze(-1) * norms.unsqueeze(-2)
    cos = ((x @ x.transpose(-1, -2)) / torch.where(outer > 0, outer, 1)).clamp(-1.0, 1.0)
    angle = torch.arccos(cos)
    return outer * (torch.sin(angle) + (math.pi - angle) * cos) / (2 * math.pi)


# --------------------------------------------------------------------------- training
@dataclass
class TwoLayerRun:
    """What :func:`train_two_layer` returns.

    ``mse``: ``(steps + 1, S)``, the authors' MSE after 0, 1, ..., steps updates, NaN from
    a seed's divergence on. ``alignment``: final ``cos(beta, b)`` ``(S,)`` (NaN if diverged).
    ``diverged`` ``(S,)`` and ``diverged_step`` ``(S,)`` (-1 if never); ``weights``: the final
    weights; ``seconds``: wall time of the loop.
    """

    mse: np.ndarray
    alignment: np.ndarray
    diverged: np.ndarray
    diverged_step: np.ndarray
    weights: list[Tensor]
    seconds: float


def train_two_layer(
    weights: Sequence[Tensor],
    x: Tensor,
    y: Tensor,
    *,
    rule: str,
    activation: str,
    lr: float,
    lam: float | Tensor,
    steps: int,
    feedback: Sequence[Tensor | None],
    progress: bool = False,
    desc: str | None = None,
) -> TwoLayerRun:
    """Full-batch gradient steps on a batch of two-layer models, recording the MSE at every step.

    The authors' update (MSELoss convention): ``beta <- beta - lr (dMSE/dbeta + lam beta)``,
    ``W <- W - lr dMSE/dW`` with the error sent back through ``beta`` (``rule="bp"``) or
    through ``feedback[1] = b`` (``"fa"``); the gradients come from
    :func:`fa_lib.networks.backward_pass`. ``lam`` is a number or one value per seed ``(S,)``.
    ``feedback`` is always ``[None, b]``: the alignment is measured against ``b`` for both rules.
    """
    check_choice("rule", rule, ("bp", "fa"))
    check_int("steps", steps, minimum=0)
    if len(weights) != 2 or feedback is None or len(feedback) != 2 or feedback[1] is None:
        raise ValueError("weights must be [W, beta] and feedback [None, b] (see init_two_layer)")
    eta, l2 = core_hyperparameters(lr, lam)
    weights = [w.detach().clone() for w in weights]
    n_seeds = weights[0].shape[0]
    if isinstance(l2, Tensor):
        if l2.shape != (n_seeds,):
            raise ValueError(f"lam has shape {tuple(l2.shape)}; expected a number or ({n_seeds},)")
        l2 = l2.to(weights[1]).reshape(n_seeds, 1, 1)
    kw = dict(rule=rule, activation=activation, feedback=feedback if rule == "fa" else None,
              layer_scales=readout_scales(weights[0].shape[-2]))
    backward_pass(weights, x, y, **kw)  # validates shapes, rule and activation once; the loop skips the checks
    mse = torch.empty(steps + 1, n_seeds, dtype=weights[0].dtype, device=weights[0].device)
    start = time.perf_counter()
    with torch.no_grad():
        for step in tqdm(range(steps + 1), desc=desc or f"train {rule}", disable=not progress, mininterval=2.0):
            result = backward_pass(weights, x, y, validate=False, **kw)
            mse[step] = 2.0 * result.loss
            if step == steps:
                break
            weights[0].add_(result.grads[0], alpha=-eta)
            weights[1].sub_(eta * (result.grads[1] + l2 * weights[1]))
    seconds = time.perf_counter() - start
    mse_np = mse.cpu().numpy().astype(np.float64)
    bad = ~np.isfinite(mse_np)
    ends_finite = torch.stack([torch.isfinite(w).flatten(1).all(-1) for w in weights]).all(0).cpu().numpy()
    first_bad = np.where(bad.any(axis=0), bad.argmax(axis=0), np.where(ends_finite, -1, steps))
    diverged = first_bad >= 0
    after = np.arange(steps + 1)[:, None] >= np.where(diverged, first_bad, steps + 1)[None, :]
    mse_np[after] = np.nan
    alignment = cosine(weights[1], feedback[1], dims=2).cpu().numpy().astype(np.float64)
    alignment[diverged] = np.nan
    return TwoLayerRun(mse_np, alignment, diverged, first_bad, weights, seconds)


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


# --------------------------------------------------------------------------- one sweep cell
def trial_seeds(seed: int, activation: str, p: int, trials: int) -> list[int]:
    """Distinct seeds of the ``trials`` trials of one (activation, width) cell, derived from ``seed``.

    BP and FA runs of the same cell share them (same data and initialisation).
    """
    check_int("seed", seed, minimum=0)
    check_int("trials", trials, minimum=1)
    check_choice("activation", activation, SYNTHETIC_ACTIVATIONS)
    key = [seed, SYNTHETIC_ACTIVATIONS.index(activation), int(p)]
    return [int(v) for v in np.random.SeedSequence(key).generate_state(trials, dtype=np.uint32)]


@dataclass
class SyntheticCell:
    """All trials and lambdas of one (activation, width, rule) cell, trained as one batch.

    Columns are trial-major: column ``k * len(lams) + j`` is trial ``k`` with ``lams[j]``.
    Per column ``(S,)``: ``lam``, ``trial``, final ``alignment`` and initial
    ``alignment_init`` (``cos(beta, b)``), ``diverged``; ``predicted_slope`` (kernel
    prediction of ``d ln MSE/d step`` from ``G(0) + H(0)``), ``predicted_slope_g`` (from
    ``G(0)`` alone) and ``predicted_slope_final`` (from ``G + H`` of the final weights),
    ``measured_slope`` and ``r2`` (:func:`tail_fit`), ``ridge_mse`` (the kernel-ridge plateau
    with ``G(0)``) and ``ridge_mse_final`` (with the final ``G``).
    ``mse``: ``(steps + 1, S)``.
    """

    activation: str
    p: int
    rule: str
    lr: float
    steps: int
    lams: tuple[float, ...]
    seeds: list[int]
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
    seconds: float

    def select(self, lam: float) -> np.ndarray:
        """Boolean mask ``(S,)`` of the columns trained with ``lam``."""
        return np.isclose(self.lam, lam)


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def run_cell(
    activation: str,
    p: int,
    seeds: Sequence[int],
    *,
    rule: str = "fa",
    lams: Sequence[float] | None = None,
    lr: float | None = None,
    steps: int | None = None,
    n: int = N_SAMPLES,
    d: int = INPUT_DIM,
    block: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> SyntheticCell:
    """Run the authors' protocol for one (activation, width) cell: every trial and lambda batched.

    ``seeds``: one seed per trial (fresh data, teacher, ``W(0)``, ``beta(0)``, ``b``); the
    lambdas of a trial share them. Defaults: the authors' ``lr``, lambda grid and
    ``steps_for_width(p)``. Training runs in row-space coordinates
    (:func:`row_space_coordinates`, exact); kernels are computed in float64.
    ``block=None`` trains all columns as one batch; ``block=k`` trains them in batches of
    ``k`` columns, one after the other: every column's arithmetic is independent of the
    others, so the results are the same, and on a CPU a block whose ``(k, n, p)``
    activations fit in the cache runs faster than one large batch.
    """
    check_choice("activation", activation, SYNTHETIC_ACTIVATIONS)
    check_choice("rule", rule, ("bp", "fa"))
    check_int("p", p, minimum=1)
    lams = tuple(float(v) for v in (LAMBDAS[activation] if lams is None else lams))
    if not lams or any(not math.isfinite(v) or v < 0 for v in lams):
        raise ValueError(f"lams={lams!r} must be a non-empty list of finite numbers >= 0")
    lr = LEARNING_RATES[activation] if lr is None else check_positive("lr", lr)
    steps = steps_for_width(p) if steps is None else check_int("steps", steps, minimum=1)
    seeds = [int(s) for s in seeds]
    n_lams, n_columns = len(lams), len(lams) * len(seeds)
    block = n_columns if block is None else check_int("block", block, minimum=1)

    x, y = synthetic_data(activation, n, d, p, seeds, dtype=dtype, device=device)
    weights, feedback = init_two_layer(d, p, seeds, dtype=dtype, device=device)
    x, first_layer = row_space_coordinates(x, weights[0])
    weights = [first_layer, weights[1]]

    # Kernels at initialisation, per trial (shared by its lambdas), in float64.
    weights64 = [w.double() for w in weights]
    partner = feedback[1].double() if rule == "fa" else weights64[1]
    g0, h0 = kernels(weights64, x.double(), activation, partner)
    predicted = predicted_log_mse_slope(g0, h0, lr, n)
    predicted_g = predicted_log_mse_slope(g0, torch.zeros_like(g0), lr, n)

    def columns(t: Tensor) -> Tensor:
        return t.repeat_interleave(n_lams, dim=0)

    lam = torch.tensor(lams * len(seeds), dtype=torch.float64)
    x_c, y_c, w_c, b_c = columns(x), columns(y), [columns(w) for w in weights], columns(feedback[1])
    runs = [
        train_two_layer(
            [w[part] for w in w_c],
            x_c[part],
            y_c[part],
            rule=rule,
            activation=activation,
            lr=lr,
            lam=lam[part].to(device=device, dtype=dtype),
            steps=steps,
            feedback=[None, b_c[part]],
        )
        for part in (slice(i, i + block) for i in range(0, n_columns, block))
    ]
    mse = np.concatenate([r.mse for r in runs], axis=1)
    final_weights = [torch.cat([r.weights[i] for r in runs]) for i in range(2)]
    slope, r2, _ = tail_fit(mse)
    final_partner = b_c.double() if rule == "fa" else final_weights[1].double()
    g_final, h_final = kernels([w.double() for w in final_weights], x_c.double(), activation, final_partner)
    y64 = y_c.double()
    lam_k = lam.to(g0.device)
    return SyntheticCell(
        activation=activation,
        p=p,
        rule=rule,
        lr=lr,
        steps=steps,
        lams=lams,
        seeds=seeds,
        lam=lam.numpy(),
        trial=np.repeat(np.arange(len(seeds)), n_lams),
        mse=mse,
        alignment=np.concatenate([r.alignment for r in runs]),
        alignment_init=np.repeat(_numpy(cosine(weights[1], feedback[1], dims=2)), n_lams),
        diverged=np.concatenate([r.diverged for r in runs]),
        predicted_slope=np.repeat(_numpy(predicted), n_lams),
        predicted_slope_g=np.repeat(_numpy(predicted_g), n_lams),
        predicted_slope_final=_numpy(predicted_log_mse_slope(g_final, h_final, lr, n)),
        measured_slope=slope,
        r2=r2,
        ridge_mse=_numpy(ridge_plateau(columns(g0), y64, lam_k)),
        ridge_mse_final=_numpy(ridge_plateau(g_final, y64, lam_k)),
        seconds=sum(r.seconds for r in runs),
    )


def alignment_rows(cells: Sequence[SyntheticCell]) -> list[dict]:
    """One row per (activation, lam, p) of the FA cells: final ``cos(beta, b)`` over the
    non-diverged trials (``mean``, ``sd``, ``trials`` kept, ``diverged`` counted) and the
    authors' ``(authors_mean, authors_sd)`` where the spec lists them (else ``None``)."""
    rows = []
    for cell in cells:
        if cell.rule != "fa":
            continue
        for lam in cell.lams:
            mask = cell.select(lam)
            stats = summarize_seeds(cell.alignment[mask], cell.diverged[mask])
            published = published_alignment(cell.activation, lam, cell.p)
            rows.append(
                {
                    "activation": cell.activation,
                    "lam": lam,
                    "p": cell.p,
                    "trials": stats["n"],
                    "diverged": stats["diverged"],
                    "steps": cell.steps,
                    "lr": cell.lr,
                    "mean": stats["mean"],
                    "sd": stats["sd"],
                    "authors_mean": None if published is None else published[0],
                    "authors_sd": None if published is None else published[1],
                }
            )
    return rows


def rate_rows(cells: Sequence[SyntheticCell]) -> list[dict]:
    """One row per (activation, p, rule) at ``lam = 0``: mean measured tail slope of ln MSE and
    mean kernel prediction from ``G(0) + H(0)`` (``predicted_slope``), from ``G(0)`` alone and
    from the final ``G + H``, the ``ratio`` measured / predicted, the smallest tail ``r2_min``,
    trials and divergences."""
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
                "r2_min": float(np.min(cell.r2[mask])),
            }
        )
    return rows


def plateau_rows(cells: Sequence[SyntheticCell]) -> list[dict]:
    """One row per FA (activation, lam > 0, p): mean final MSE, mean kernel-ridge plateau with
    ``G(0)`` and with the final ``G``, and the mean per-trial ratios final / prediction."""
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
                }
            )
    return rows


# --------------------------------------------------------------------------- real data
def error_signal_alignment(
    weights: Sequence[Tensor], feedback: Sequence[Tensor | None], x: Tensor, y: Tensor, *, activation: str = "relu"
) -> Tensor:
    """The authors' real-data alignment: mean over samples of ``cos(e_i^T B, e_i^T beta)``.

    ``e_i`` is the output error of sample i (``softmax(f(x_i)) - onehot(y_i)``), so the two
    vectors are the hidden error signals of FA and BP before the ``psi'`` mask.
    ``weights = [W (S, p, d), beta (S, k, p)]``, ``feedback[1] = B`` ``(S, k, p)``; returns ``(S,)``.
    """
    output = forward(weights, x, activation, layer_scales=readout_scales(weights[0].shape[-2])).output
    _, delta = loss_and_output_delta(output, y, "ce")
    return cosine(delta @ feedback[1], delta @ weights[1], dims=1).mean(dim=-1)


@dataclass
class RealDataRun:
    """The real-data experiment: ``history`` from :func:`fa_lib.training.train` (columns run-major,
    ``lam[k]`` and ``run[k]`` of column k); ``history.metrics["error_alignment"]`` is
    :func:`error_signal_alignment` on the probe batch; ``epochs_done`` per record."""

    history: History
    lam: np.ndarray
    run: np.ndarray
    epochs: np.ndarray
    seconds: float


def run_real_data(
    data: ClassificationData,
    seeds: Sequence[int],
    *,
    lams: Sequence[float] = REAL_LAMBDAS,
    epochs: float = REAL_EPOCHS,
    lr: float = REAL_LR,
    batch_size: int = REAL_BATCH_SIZE,
    hidden: int = REAL_HIDDEN,
    records: int = 20,
    n_probe: int = REAL_BATCH_SIZE,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> RealDataRun:
    """The authors' MNIST protocol on ``data``: 784 -> ``hidden`` ReLU -> 10, no biases, FA.

    All weights and ``B`` ~ N(0, 1); logits ``beta h / sqrt(hidden)``; cross-entropy
    (fa_lib's ``"ce"`` is PyTorch's mean ``CrossEntropyLoss``, so ``lr`` and ``lam`` need no
    conversion); SGD with ``batch_size``; L2 ``lam`` on the second layer only. One run per
    seed; the lambdas of a run share its initialisation and its minibatch order. Records
    about ``records`` times: probe (the first ``n_probe`` training samples) loss, accuracy and
    :func:`error_signal_alignment`, and the test accuracy on ``data``'s test split.
    ``epochs`` may be fractional (whole steps are run).
    """
    check_positive("epochs", epochs)
    check_int("records", records, minimum=1)
    check_int("hidden", hidden, minimum=1)
    seeds = [int(s) for s in seeds]
    n_lams = len(lams)
    column_seeds = [s for s in seeds for _ in lams]
    widths = [data.x_train.shape[-1], hidden, 10]
    weights = init_weights(widths, column_seeds, std=1.0, device=device)
    feedback = init_feedback(widths, column_seeds, rule="fa", std=1.0, device=device)
    lam = torch.tensor([float(v) for _ in seeds for v in lams], device=device)
    x, y = data.x_train.to(device), data.y_train.to(device)
    probe = (x[:n_probe], y[:n_probe])
    per_epoch = steps_per_epoch(x.shape[0], batch_size)
    steps = max(1, round(epochs * per_epoch))

    def extra(current: list[Tensor]) -> dict[str, Tensor]:
        return {"error_alignment": error_signal_alignment(current, feedback, *probe)}

    start = time.perf_counter()
    history = train(
        weights,
        x,
        y,
        rule="fa",
        activation="relu",
        lr=lr,
        steps=steps,
        loss="ce",
        feedback=feedback,
        batch_size=batch_size,
        l2=[0.0, lam],
        layer_scales=readout_scales(hidden),
        record_every=max(1, steps // records),
        probe=probe,
        test=(data.x_test.to(device), data.y_test.to(device)),
        shuffle_seed=seeds[0],
        extra_metrics=extra,
        progress=progress,
        desc="real data (FA)",
    )
    return RealDataRun(
        history=history,
        lam=lam.cpu().numpy().astype(np.float64),
        run=np.repeat(np.arange(len(seeds)), n_lams),
        epochs=history.steps / per_epoch,
        seconds=time.perf_counter() - start,
    )
