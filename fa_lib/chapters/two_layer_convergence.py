"""Chapter "Two-layer convergence" (``notebooks/03_two_layer_convergence.ipynb``; book page ``generated/03_two_layer_convergence``).

Song, Xu & Lafferty (NeurIPS 2021): two-layer networks trained with random backpropagation weights.

Model (the paper's section 2 and the authors' simulation code): ``f(x) = (1/sqrt(p)) sum_r beta_r psi(w_r^T x)``,
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

from ..alignment import cosine
from ..data import ClassificationData, load_dataset, teacher_data
from ..networks import (
    ACTIVATIONS,
    activation_function,
    error_carrier,
    forward,
    init_feedback,
    init_weights,
    loss_and_output_delta,
)
from ..parallel import resolve_workers
from ..plotting import table_style, width_label
from ..training import History, steps_per_epoch, summarize_seeds, train
from ..validation import check_choice, check_int, check_positive

Tensor = torch.Tensor

# --------------------------------------------------------------------------- the authors' protocol
N_SAMPLES = 50
INPUT_DIM = 150
WIDTHS = (200, 400, 800, 1600, 3200, 6400, 12800)
TRIALS = 50
# Activations the authors ran; the paper shows the first three (sigmoid only when asked for).
SYNTHETIC_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")
PAPER_ACTIVATIONS = ("linear", "relu", "tanh")
# Learning rates of the authors' code, MSELoss convention (the paper's text prints values ten times smaller).
LEARNING_RATES = {"linear": 1e-3, "relu": 1e-2, "tanh": 0.1, "sigmoid": 0.1}
# L2 strengths on beta, MSELoss convention.
LAMBDAS = {
    "linear": (0.0, 0.2, 0.3, 0.5),
    "relu": (0.0, 0.02, 0.05, 0.2),
    "tanh": (0.0, 0.001, 0.002, 0.005),
    "sigmoid": (0.0, 0.001, 0.003, 0.01),
}
# The two synthetic experiments, with their own draws: alignment (run until settled) and loss curves (fixed length).
EXPERIMENTS = ("alignment", "curves")
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

# The authors' final alignment cos(beta, b): mean and sd over their 50 trials, as published with
# their code (linear lr 1e-3, ReLU lr 1e-2, tanh lr 0.1). Keys (activation, lam) -> {p: (mean, sd)}.
# Their sigmoid table is deliberately not used: sigmoid is a case this chapter was not tuned on,
# run as a check, so it has no entry.
def _table(rows: dict[float, list[tuple[float, float]]], activation: str) -> dict:
    return {(activation, lam): dict(zip(WIDTHS, cells)) for lam, cells in rows.items()}


PUBLISHED_ALIGNMENT: dict[tuple[str, float], dict[int, tuple[float, float]]] = {
    **_table({
        0.0: [(0.220, 0.051), (0.136, 0.043), (0.073, 0.027), (0.043, 0.022), (0.022, 0.019), (0.009, 0.013), (0.006, 0.008)],
        0.02: [(0.401, 0.057), (0.381, 0.045), (0.411, 0.041), (0.443, 0.040), (0.493, 0.027), (0.507, 0.034), (0.513, 0.031)],
        0.05: [(0.682, 0.048), (0.671, 0.043), (0.687, 0.034), (0.710, 0.029), (0.719, 0.026), (0.719, 0.022), (0.721, 0.028)],
        0.2: [(0.858, 0.061), (0.857, 0.049), (0.860, 0.045), (0.852, 0.047), (0.846, 0.041), (0.840, 0.042), (0.846, 0.042)],
    }, "relu"),
    **_table({
        0.0: [(0.206, 0.068), (0.119, 0.048), (0.059, 0.033), (0.031, 0.025), (0.012, 0.018), (0.009, 0.012), (0.004, 0.009)],
        0.2: [(0.790, 0.027), (0.774, 0.030), (0.757, 0.031), (0.738, 0.032), (0.713, 0.039), (0.657, 0.086), (0.551, 0.133)],
        0.3: [(0.867, 0.019), (0.861, 0.013), (0.854, 0.020), (0.836, 0.022), (0.818, 0.021), (0.799, 0.030), (0.770, 0.049)],
        0.5: [(0.920, 0.014), (0.919, 0.013), (0.913, 0.008), (0.904, 0.011), (0.895, 0.011), (0.882, 0.014), (0.866, 0.018)],
    }, "linear"),
    **_table({
        0.0: [(0.260, 0.055), (0.173, 0.041), (0.112, 0.034), (0.076, 0.022), (0.050, 0.016), (0.030, 0.010), (0.020, 0.008)],
        0.001: [(0.328, 0.071), (0.259, 0.043), (0.228, 0.033), (0.217, 0.030), (0.258, 0.027), (0.322, 0.022), (0.397, 0.024)],
        0.002: [(0.371, 0.048), (0.371, 0.042), (0.392, 0.035), (0.434, 0.029), (0.467, 0.024), (0.475, 0.021), (0.488, 0.021)],
        0.005: [(0.517, 0.046), (0.521, 0.035), (0.523, 0.025), (0.539, 0.022), (0.533, 0.019), (0.531, 0.018), (0.532, 0.018)],
    }, "tanh"),
}

# ln MSE is fitted only while it stays within FIT_DECADES decades of its initial value:
# float32 keeps about 7 significant digits, so rounding puts a floor under the loss that
# scales with the outputs' magnitude (the authors' ReLU curves flatten near 1e-10 from ~1e2).
FIT_DECADES = 7.0


def steps_for_width(p: int) -> int:
    """The authors' minimum step count ``T_min = floor(5000 sqrt(p) / 14)`` (5050 steps at p = 200)."""
    check_int("p", p, minimum=1)
    return math.floor(5000 * math.sqrt(p) / 14)


def published_alignment(activation: str, lam: float, p: int) -> tuple[float, float] | None:
    """The authors' published (mean, sd) of the final ``cos(beta, b)``, or ``None`` (sigmoid, or a width they did not run)."""
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


# --------------------------------------------------------------------------- the step
# Activations written into ``out`` and their derivatives from the activation's own output (h = psi(a)), in
# place: relu' = [h > 0], tanh' = 1 - h^2, sigmoid' = h (1 - h); each is one pass over the hidden layer.
# tanh is computed as 2 sigmoid(2a) - 1: torch's CPU tanh measured 2.2 times slower than this,
# which agrees with it to 2e-7 in float32 (and to rounding in float64).
_ACTIVATE = {
    "relu": lambda a, out: torch.clamp(a, min=0, out=out),
    "tanh": lambda a, out: torch.mul(a, 2, out=out).sigmoid_().mul_(2).sub_(1),
    "sigmoid": lambda a, out: torch.sigmoid(a, out=out),
}
_DERIVATIVE_IN_PLACE = {
    "relu": lambda h: h.gt_(0),
    "tanh": lambda h: torch.addcmul(torch.ones((), dtype=h.dtype, device=h.device), h, h, value=-1, out=h),
    "sigmoid": lambda h: torch.addcmul(h, h, h, value=-1, out=h),
}


class TwoLayerStep:
    """Full-batch steps of S two-layer networks, the authors' update (MSELoss convention).

    ``x`` ``(S, n, k)``, ``y`` ``(S, n, 1)``, ``weights = [W (S, p, k), beta (S, 1, p)]``, ``b``
    ``(S, 1, p)`` the fixed feedback vector, ``lam`` a number or ``(S,)``. :meth:`step` does
    ``beta <- beta (1 - lr lam) - lr dMSE/dbeta`` and ``W <- W - lr dMSE/dW`` with the error
    carried back through ``b`` (``rule="fa"``) or ``beta`` (``"bp"``); :meth:`weights` returns the
    current ``[W, beta]``.

    The arithmetic of :func:`fa_lib.networks.backward_pass` (the unit tests compare them),
    arranged for speed. The outputs see ``W`` only through the pre-activations ``A = x W^T``
    ``(S, n, p)``, and one step changes them by ``x dW^T = -lr c (K diag(e)) (psi'(A) b)`` with
    the constant kernel ``K = x x^T`` ``(S, n, n)`` and ``e = dMSE/df``. So nonlinear networks
    are trained on ``A`` itself: one batched product of size ``n n p`` per step instead of the
    two of size ``n k p`` (forward and gradient), plus a few elementwise passes over one
    reused hidden-layer buffer (``make bench`` times the step against the machine's matrix
    product; ``torch.compile`` of the elementwise part measured no faster). ``W`` is recovered
    when asked, ``W = W(0) + (x^T K^-1 (A - A(0)))^T``, exact because every update of ``W`` lies
    in the row space of ``x`` (``K`` must be invertible: ``n <= k`` and inputs in general
    position, as in the authors' protocol). Linear networks never form the hidden layer:
    ``f = c x (beta W)^T`` and ``dMSE/dbeta = c (e^T x) W^T`` cost ``O(p k)``, and ``W`` is
    updated directly.
    """

    def __init__(self, x: Tensor, y: Tensor, weights: Sequence[Tensor], b: Tensor, *, rule: str, activation: str,
                 lr: float, lam: float | Tensor) -> None:
        check_choice("rule", rule, ("bp", "fa"))
        check_choice("activation", activation, ACTIVATIONS)
        check_positive("lr", lr)
        w, beta = weights
        n_seeds, width = w.shape[0], w.shape[1]
        expected = {"x": (n_seeds, x.shape[1], w.shape[2]), "y": (n_seeds, x.shape[1], 1), "beta": (n_seeds, 1, width),
                    "b": (n_seeds, 1, width)}
        for name, tensor in {"x": x, "y": y, "beta": beta, "b": b}.items():
            if tuple(tensor.shape) != expected[name]:
                raise ValueError(f"{name} has shape {tuple(tensor.shape)}; expected {expected[name]} (W is {tuple(w.shape)})")
        lam = torch.as_tensor(lam, dtype=w.dtype, device=w.device)
        if lam.dim() == 0:
            lam = lam.expand(n_seeds)
        if lam.shape != (n_seeds,):
            raise ValueError(f"lam has shape {tuple(lam.shape)}; expected a number or ({n_seeds},)")
        self.rule, self.activation, self.lr = rule, activation, float(lr)
        self.scale = 1.0 / math.sqrt(width)
        self.x, self.y, self.w, self.beta, self.b = x.clone(), y.clone(), w.clone(), beta.clone(), b.clone()
        self.decay = (1.0 - self.lr * lam).reshape(n_seeds, 1, 1).clone()
        if activation != "linear":
            self.pre = torch.bmm(self.x, self.w.transpose(1, 2))  # A, (S, n, p)
            self.pre_init = self.pre.clone()
            self.kernel = torch.bmm(self.x, self.x.transpose(1, 2))  # K = x x^T, (S, n, n)
            self.hidden = torch.empty_like(self.pre)

    @property
    def partner(self) -> Tensor:
        """The vector that carries the error back (:func:`fa_lib.networks.error_carrier`): ``b`` (FA) or ``beta`` (BP), ``(S, 1, p)``."""
        return error_carrier(self.rule, [self.w, self.beta], [None, self.b], 0)

    def weights(self) -> list[Tensor]:
        """The current ``[W (S, p, k), beta (S, 1, p)]`` (copies)."""
        if self.activation == "linear":
            return [self.w.clone(), self.beta.clone()]
        change = torch.linalg.solve(self.kernel.double(), (self.pre - self.pre_init).double())  # K^-1 (A - A(0))
        w = self.w.double() + torch.bmm(self.x.double().transpose(1, 2), change).transpose(1, 2)
        return [w.to(self.w.dtype), self.beta.clone()]

    def _output(self) -> tuple[Tensor, Tensor | None]:
        """``f`` ``(S, n, 1)`` and the activated hidden layer (``None`` for linear networks)."""
        if self.activation == "linear":
            return torch.bmm(self.x, torch.bmm(self.beta, self.w).transpose(1, 2)).mul_(self.scale), None
        hidden = _ACTIVATE[self.activation](self.pre, self.hidden)
        return torch.bmm(hidden, self.beta.transpose(1, 2)).mul_(self.scale), hidden

    def mse(self) -> Tensor:
        """The authors' MSE of the current weights, ``(S,)`` (no update)."""
        return (self._output()[0] - self.y).square_().mean(dim=(1, 2))

    def step(self) -> Tensor:
        """One update of every network; returns the MSE ``(S,)`` of the weights before it."""
        x, beta, c, lr = self.x, self.beta, self.scale, self.lr
        output, hidden = self._output()
        error = output.sub_(self.y)
        mse = error.square().mean(dim=(1, 2))
        error.mul_(2.0 / x.shape[1])  # e = dMSE/df
        if hidden is None:
            error_x = torch.bmm(error.transpose(1, 2), x)  # (S, 1, k)
            grad_beta = torch.bmm(error_x, self.w.transpose(1, 2)).mul_(c)
            self.w.baddbmm_(self.partner.transpose(1, 2), error_x, alpha=-lr * c)
        else:
            grad_beta = torch.bmm(error.transpose(1, 2), hidden).mul_(c)
            carried = _DERIVATIVE_IN_PLACE[self.activation](hidden).mul_(self.partner)  # psi'(a_ir) b_r
            self.pre.baddbmm_(self.kernel * error.transpose(1, 2), carried, alpha=-lr * c)  # A += x dW^T
        beta.mul_(self.decay).add_(grad_beta, alpha=-lr)
        return mse

    def _state(self) -> tuple[str, ...]:
        return ("x", "y", "w", "beta", "b", "decay") + (() if self.activation == "linear" else ("pre", "pre_init", "kernel"))

    def keep(self, slots: Tensor) -> None:
        """Drop every network but ``slots`` (indices) from the batch."""
        for name in self._state():
            setattr(self, name, getattr(self, name).index_select(0, slots))
        if self.activation != "linear":
            self.hidden = torch.empty_like(self.pre)

    def load(self, slot: int, x: Tensor, y: Tensor, weights: Sequence[Tensor], b: Tensor, lam: float) -> None:
        """Put a new network (``x`` ``(n, k)``, ``y``, ``[W, beta]``, ``b`` without the seed dimension) into ``slot``."""
        for target, source in zip((self.x, self.y, self.w, self.beta, self.b), (x, y, *weights, b)):
            target[slot].copy_(source)
        self.decay[slot] = 1.0 - self.lr * lam
        if self.activation != "linear":
            self.pre[slot] = x @ weights[0].transpose(0, 1)
            self.pre_init[slot] = self.pre[slot]
            self.kernel[slot] = x @ x.transpose(0, 1)


def cache_block(p: int, n: int = N_SAMPLES) -> int:
    """Networks per batch on a CPU: enough for the batched products to run well, few enough that the
    ``(block, n, p)`` hidden layer (about 1 MB at most) stays in cache; 2 to 16."""
    check_int("p", p, minimum=1)
    return max(2, min(16, 2**18 // (n * p)))


def batch_size(block: int | str, activation: str, p: int, networks: int) -> int:
    """Networks trained at once for a ``block`` setting: an int, ``"all"`` (one batch: a GPU), or
    ``"auto"`` (:func:`cache_block`; linear networks, which never form the hidden layer, in one batch)."""
    if isinstance(block, str) and block not in ("auto", "all"):
        raise ValueError(f"block={block!r} is not allowed; expected 'auto', 'all' or an integer >= 1")
    if block == "all" or (block == "auto" and activation == "linear"):
        return networks
    if block == "auto":
        return min(cache_block(p), networks)
    return min(check_int("block", block, minimum=1), networks)


# --------------------------------------------------------------------------- fixed-length runs
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


def _check_two_layer(weights: Sequence[Tensor], feedback: Sequence[Tensor | None] | None) -> None:
    if len(weights) != 2 or feedback is None or len(feedback) != 2 or feedback[1] is None:
        raise ValueError("weights must be [W, beta] and feedback [None, b] (see init_two_layer)")


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
    """``steps`` full-batch updates (:class:`TwoLayerStep`) of a batch of two-layer models, the MSE at every step.

    ``lam`` is a number or one value per seed ``(S,)``. ``feedback`` is always ``[None, b]``:
    the alignment is measured against ``b`` for both rules.
    """
    check_int("steps", steps, minimum=0)
    _check_two_layer(weights, feedback)
    stepper = TwoLayerStep(x, y, weights, feedback[1], rule=rule, activation=activation, lr=lr, lam=lam)
    mse = torch.empty(steps + 1, weights[0].shape[0], dtype=weights[0].dtype, device=weights[0].device)
    start = time.perf_counter()
    with torch.no_grad():
        for step in tqdm(range(steps), desc=desc or f"train {rule}", disable=not progress, mininterval=2.0):
            mse[step] = stepper.step()
        mse[steps] = stepper.mse()
        weights = stepper.weights()
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


# --------------------------------------------------------------------------- the authors' run length
@dataclass(frozen=True)
class StopRule:
    """The authors' run length (their loop, exactly), plus a safety cap of ours.

    Steps are counted from 0. At every step ``t`` with ``t % every == every - 1``, before that
    step's update, the MSE is compared with the MSE of the previous check (0 before the first);
    once ``|change| < tolerance`` the run is *settled* for good. The loop runs while
    ``t < min_steps or not settled``: a run that settled earlier stops after ``min_steps``
    updates, otherwise after the update of the first check that settles it.
    ``max_steps`` (not in the authors' code, which has no cap) stops a run that never settles;
    such a run is reported as not settled.
    """

    min_steps: int
    every: int = 1000
    tolerance: float = 1e-3
    max_steps: int | None = None

    def __post_init__(self) -> None:
        check_int("min_steps", self.min_steps, minimum=1)
        check_int("every", self.every, minimum=1)
        check_positive("tolerance", self.tolerance)
        if self.max_steps is not None:
            check_int("max_steps", self.max_steps, minimum=self.min_steps)

    @classmethod
    def for_width(cls, p: int, *, max_factor: int | None = 20) -> StopRule:
        """The authors' rule at width ``p``: ``min_steps = floor(5000 sqrt(p) / 14)``, capped at ``max_factor`` times that."""
        minimum = steps_for_width(p)
        return cls(minimum, max_steps=None if max_factor is None else max_factor * minimum)

    def steps_to_event(self, done: np.ndarray) -> np.ndarray:
        """Updates until each run's next event (its next check has been taken, ``min_steps`` reached,
        or the cap), from ``done`` updates; ``(S,)`` ints >= 1."""
        to_check = self.every - done % self.every  # the check is step done + to_check - 1
        steps = np.where(done < self.min_steps, np.minimum(to_check, self.min_steps - done), to_check)
        return steps if self.max_steps is None else np.minimum(steps, self.max_steps - done)

    def stop_step(self, check_mse: Sequence[float]) -> int | None:
        """Reference: the number of updates after which the authors' loop stops, given the MSE at its
        checks ``check_mse[k]`` (taken at step ``k * every + every - 1``); ``None`` if it has not stopped
        by the last check given. The cap is ignored."""
        previous, settled = 0.0, False
        for k, value in enumerate(check_mse):
            settled = settled or abs(value - previous) < self.tolerance
            previous = value
            last_update = k * self.every + self.every  # updates done once check k's step has run
            if settled:
                return max(self.min_steps, last_update)
        return None


@dataclass
class SettledRuns:
    """What :func:`train_until_settled` returns, one entry per network ``(N,)``.

    ``steps``: updates run; ``settled``: the stop rule was met (False: capped or diverged);
    ``diverged``; ``alignment``: ``cos(beta, b)`` at the stop (NaN if diverged) and
    ``alignment_at_min`` after ``min_steps`` updates (what stopping every run there would give);
    ``mse``: the authors' MSE at the stop; ``check_mse``: ``(checks, N)``, the MSE at each check
    (NaN-padded after the run's last); ``seconds``: wall time.
    """

    steps: np.ndarray
    settled: np.ndarray
    diverged: np.ndarray
    alignment: np.ndarray
    alignment_at_min: np.ndarray
    mse: np.ndarray
    check_mse: np.ndarray
    seconds: float


def train_until_settled(
    weights: Sequence[Tensor],
    x: Tensor,
    y: Tensor,
    *,
    rule: str,
    activation: str,
    lr: float,
    lam: float | Tensor,
    stop: StopRule,
    feedback: Sequence[Tensor | None],
    block: int | None = None,
    progress: bool = False,
    desc: str | None = None,
) -> SettledRuns:
    """Train N two-layer networks, each until the authors' stop rule ends it, at most ``block`` at a time.

    Inputs as :func:`train_two_layer` (``lam`` a number or ``(N,)``). Each network stops on its
    own: its alignment, MSE and step count are taken at its own stop, and its slot in the
    batch is given to the next waiting network (``block=None``: all N in one batch, which
    shrinks as they stop). A network whose MSE becomes NaN/inf stops at once, diverged.
    Every network's arithmetic is independent of the others', so the result does not
    depend on ``block`` or on the order of the batch.
    """
    _check_two_layer(weights, feedback)
    n_networks = weights[0].shape[0]
    lam = torch.as_tensor(lam, dtype=weights[0].dtype, device=weights[0].device)
    lam = lam.expand(n_networks) if lam.dim() == 0 else lam
    if lam.shape != (n_networks,):
        raise ValueError(f"lam has shape {tuple(lam.shape)}; expected a number or ({n_networks},)")
    block = n_networks if block is None else min(check_int("block", block, minimum=1), n_networks)
    b = feedback[1]
    pending = list(range(block, n_networks))
    stepper = TwoLayerStep(x[:block], y[:block], [w[:block] for w in weights], b[:block], rule=rule,
                           activation=activation, lr=lr, lam=lam[:block])
    owner = np.arange(block)  # network in each slot
    done = np.zeros(block, dtype=np.int64)
    previous = np.zeros(block)
    settled = np.zeros(block, dtype=bool)
    out_steps = np.zeros(n_networks, dtype=np.int64)
    out_settled = np.zeros(n_networks, dtype=bool)
    out_diverged = np.zeros(n_networks, dtype=bool)
    out_alignment = np.full(n_networks, np.nan)
    out_at_min = np.full(n_networks, np.nan)
    out_mse = np.full(n_networks, np.nan)
    checks: list[list[float]] = [[] for _ in range(n_networks)]
    start = time.perf_counter()
    bar = tqdm(total=n_networks, desc=desc or f"train {rule} until settled", disable=not progress, mininterval=2.0)
    with torch.no_grad():
        while owner.size:
            length = int(stop.steps_to_event(done).min())
            for _ in range(length):
                last = stepper.step()
            done += length
            last = last.cpu().numpy().astype(np.float64)
            checked = (done - 1) % stop.every == stop.every - 1
            for s in np.flatnonzero(checked):
                checks[owner[s]].append(last[s])
            settled |= checked & (np.abs(last - previous) < stop.tolerance)
            previous = np.where(checked, last, previous)
            diverged = ~np.isfinite(last)
            at_min = np.flatnonzero((done == stop.min_steps) & ~diverged)
            if at_min.size:
                values = cosine(stepper.beta, stepper.b, dims=2).cpu().numpy().astype(np.float64)
                out_at_min[owner[at_min]] = values[at_min]
            capped = done >= (stop.max_steps or np.iinfo(np.int64).max)
            finished = diverged | (settled & (done >= stop.min_steps)) | capped
            if not finished.any():
                continue
            final_mse = stepper.mse().cpu().numpy().astype(np.float64)
            final_alignment = cosine(stepper.beta, stepper.b, dims=2).cpu().numpy().astype(np.float64)
            for s in np.flatnonzero(finished):
                k = owner[s]
                out_steps[k], out_settled[k], out_diverged[k] = done[s], settled[s] and not diverged[s], diverged[s]
                out_mse[k] = np.nan if diverged[s] else final_mse[s]
                out_alignment[k] = np.nan if diverged[s] else final_alignment[s]
                bar.update(1)
                if pending:
                    k = pending.pop(0)
                    stepper.load(int(s), x[k], y[k], [w[k] for w in weights], b[k], float(lam[k]))
                    owner[s], done[s], previous[s], settled[s] = k, 0, 0.0, False
                    finished[s] = False
            if finished.any():
                keep = np.flatnonzero(~finished)
                stepper.keep(torch.as_tensor(keep, device=stepper.w.device))
                owner, done, previous, settled = owner[keep], done[keep], previous[keep], settled[keep]
    bar.close()
    width = max((len(c) for c in checks), default=0)
    check_mse = np.full((width, n_networks), np.nan)
    for k, values in enumerate(checks):
        check_mse[: len(values), k] = values
    return SettledRuns(out_steps, out_settled, out_diverged, out_alignment, out_at_min, out_mse, check_mse,
                       time.perf_counter() - start)


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


def prepared_trials(activation: str, p: int, seeds: Sequence[int], n: int, d: int, dtype: torch.dtype, device) -> tuple:
    """Data and initialisation of the trials ``seeds``, in row-space coordinates: ``(x, y, [W, beta], b)``."""
    x, y = synthetic_data(activation, n, d, p, seeds, dtype=dtype, device=device)
    weights, feedback = init_two_layer(d, p, seeds, dtype=dtype, device=device)
    x, first_layer = row_space_coordinates(x, weights[0])
    return x, y, [first_layer, weights[1]], feedback[1]


def _check_lams(lams: Sequence[float]) -> tuple[float, ...]:
    lams = tuple(float(v) for v in lams)
    if not lams or any(not math.isfinite(v) or v < 0 for v in lams):
        raise ValueError(f"lams={lams!r} must be a non-empty list of finite numbers >= 0")
    return lams


@dataclass
class AlignmentCell:
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

    def select(self, lam: float) -> np.ndarray:
        """Boolean mask ``(N,)`` of the networks trained with ``lam``."""
        return np.isclose(self.lam, lam)


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
    check_choice("activation", activation, SYNTHETIC_ACTIVATIONS)
    check_int("p", p, minimum=1)
    check_int("trials", trials, minimum=1)
    lams = _check_lams(LAMBDAS[activation] if lams is None else lams)
    lr = LEARNING_RATES[activation] if lr is None else check_positive("lr", lr)
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
class CurveCell:
    """Fixed-length loss-curve runs of one (activation, width, rule): every lambda, independent trials.

    Per network ``(N,)``, lambda-major: ``lam``, ``trial``, final ``alignment`` and initial
    ``alignment_init`` (``cos(beta, b)``), ``diverged``; ``predicted_slope`` (kernel
    prediction of ``d ln MSE/d step`` from ``G(0) + H(0)``), ``predicted_slope_g`` (from
    ``G(0)`` alone) and ``predicted_slope_final`` (from ``G + H`` of the final weights),
    ``measured_slope`` and ``r2`` (:func:`tail_fit`), ``ridge_mse`` (the kernel-ridge plateau
    with ``G(0)``) and ``ridge_mse_final`` (with the final ``G``). ``mse``: ``(steps + 1, N)``.
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
    seconds: float

    def select(self, lam: float) -> np.ndarray:
        """Boolean mask ``(N,)`` of the networks trained with ``lam``."""
        return np.isclose(self.lam, lam)


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
    check_choice("activation", activation, SYNTHETIC_ACTIVATIONS)
    check_choice("rule", rule, ("bp", "fa"))
    check_int("p", p, minimum=1)
    check_int("trials", trials, minimum=1)
    check_int("steps", steps, minimum=1)
    lams = _check_lams(LAMBDAS[activation] if lams is None else lams)
    lr = LEARNING_RATES[activation] if lr is None else check_positive("lr", lr)
    seeds = [s for lam in lams for s in trial_seeds(seed, activation, p, trials, lam=lam, experiment="curves")]
    x, y, weights, b = prepared_trials(activation, p, seeds, n, d, dtype, device)
    lam = torch.tensor(np.repeat(lams, trials), dtype=torch.float64)
    n_columns = len(seeds)
    block = batch_size(block, activation, p, n_columns)
    runs = [
        train_two_layer([w[part] for w in weights], x[part], y[part], rule=rule, activation=activation, lr=lr,
                        lam=lam[part].to(device=device, dtype=dtype), steps=steps, feedback=[None, b[part]],
                        progress=progress, desc=f"{activation} p={p} {rule} curves")
        for part in (slice(i, i + block) for i in range(0, n_columns, block))
    ]
    final_weights = [torch.cat([r.weights[i] for r in runs]) for i in range(2)]
    x64, y64, lam64 = x.double(), y.double(), lam.to(device)
    g0, h0 = kernels([w.double() for w in weights], x64, activation, error_carrier(rule, weights, [None, b], 0).double())
    g_final, h_final = kernels([w.double() for w in final_weights], x64, activation,
                               error_carrier(rule, final_weights, [None, b], 0).double())
    mse = np.concatenate([r.mse for r in runs], axis=1)
    slope, r2, _ = tail_fit(mse)
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


def plateau_rows(cells: Sequence[CurveCell]) -> list[dict]:
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


# Tolerances against the authors' tables (the chapter gives their reasons beside each claim).
# lambda > 0: 0.08, about two of the authors' per-trial sds (0.01-0.07), for float32 and data differences.
ALIGNED_TOLERANCE = 0.08
# lambda = 0: two standard errors of our mean if our spread equals theirs, + 0.02 for their own
# sampling error (50 trials) and float32 differences.
UNALIGNED_SLACK = 0.02


def tolerance_against_authors(row: dict) -> float:
    """The bound on ``|ours - authors|`` for one :func:`alignment_rows` row (``lam > 0``: 0.08;
    ``lam = 0``: ``2 sd_authors / sqrt(trials) + 0.02``)."""
    if row["lam"] > 0:
        return ALIGNED_TOLERANCE
    return 2 * row["authors_sd"] / math.sqrt(max(row["trials"], 1)) + UNALIGNED_SLACK


def compare_with_authors(rows: Sequence[dict], activation: str, *, regularised: bool) -> dict[str, dict]:
    """For every row of ``activation`` with ``lam > 0`` (``regularised``) or ``lam = 0``, that the
    authors published: ours, theirs, the bound, and ``ok`` (within it, nothing diverged or unsettled).
    Keys ``"lam=0.2 p=200"``."""
    out = {}
    for r in rows:
        if r["activation"] != activation or (r["lam"] > 0) != regularised or r["authors_mean"] is None:
            continue
        bound = tolerance_against_authors(r)
        out[f"lam={r['lam']:g} p={r['p']}"] = {
            "ours": r["mean"], "authors": r["authors_mean"], "difference": r["difference"], "bound": bound,
            "ok": bool(abs(r["difference"]) <= bound and r["diverged"] == 0 and r["unsettled"] == 0),
        }
    return out


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
    :func:`error_signal_alignment` on the probe batch; ``epochs`` done per record; the data it
    ran on (``dataset`` name, ``sha256`` of the files read, ``n_train`` and ``n_test``)."""

    history: History
    lam: np.ndarray
    run: np.ndarray
    epochs: np.ndarray
    seconds: float
    dataset: str
    sha256: dict
    n_train: int
    n_test: int


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
        dataset=data.name,
        sha256=dict(data.sha256),
        n_train=int(data.y_train.shape[0]),
        n_test=int(data.y_test.shape[0]),
    )


def run_real_data_on(dataset: str = "auto", *, n_train: int | None = None, n_test: int | None = None,
                     device: str | torch.device = "cpu", **kwargs) -> RealDataRun:
    """Load ``dataset`` (:func:`fa_lib.data.load_dataset`, offline) and run :func:`run_real_data` on it
    (``kwargs``): one job for :func:`fa_lib.parallel.run_parallel`."""
    data = load_dataset(dataset, n_train=n_train, n_test=n_test, device=device)
    return run_real_data(data, device=device, **kwargs)


# --------------------------------------------------------------------------- the chapter's notebook
# The run sizes per profile (``config`` of :func:`fa_lib.start_chapter`): ``widths`` and ``trials`` of the
# stop-rule sweep, ``curve_width`` and ``curve_trials`` of the loss-curve runs, and ``real`` (training and
# test images, ``None``: all; epochs, runs, records per run) of the real-data experiment.
PROFILES = {
    # p = 200 with the full run-length rule, 5 trials per cell; loss curves at p = 200, 2 trials.
    "ci": dict(widths=(200,), trials=5, curve_width=200, curve_trials=2,
               real=dict(n_train=1200, n_test=500, epochs=2, runs=1, records=4)),
    # Three widths, 10 trials per cell; loss curves at the authors' p = 3200 with 3 trials; real data shortened.
    "default": dict(widths=(200, 400, 800), trials=10, curve_width=LOSS_CURVE_WIDTH, curve_trials=3,
                    real=dict(n_train=None, n_test=2000, epochs=10, runs=1, records=10)),
    # The authors' full grid.
    "paper": dict(widths=WIDTHS, trials=TRIALS, curve_width=LOSS_CURVE_WIDTH, curve_trials=TRIALS,
                  real=dict(n_train=None, n_test=None, epochs=REAL_EPOCHS, runs=REAL_RUNS, records=50)),
}
KERNEL_CHECK_DRAWS = 5  # draws per width of the infinite-width kernel check (float64, ReLU)
# S1a: a straight line in ln MSE on the tail (R^2 above this) is exponential convergence.
R2_MIN = 0.95
# S1b: the theorem bounds the rate from below; 0.85 is the lower end of the band RATIO_BAND, which allows for the
# tail fit seeing the slowest modes only approximately (the band is shown, the claim uses its lower end).
RATIO_MIN, RATIO_BAND = 0.85, (0.85, 2.5)
# S4: the ridge formula freezes the features at initialisation, which holds only approximately at finite width.
PLATEAU_FACTOR = 2.0
# S3c: a lambda > 0 alignment keeps at least this fraction of its p_min value at p_max.
KEPT_FRACTION = 0.5
# S5a: the authors report that lambda = 0 stays below 0.1.
REAL_UNALIGNED_MAX = 0.1
# S5b: our reading of the authors' "far more" (the paper gives no number).
REAL_ALIGNED_FACTOR = 2
# Shown in the rate table (:func:`rate_rows` keys).
RATE_COLUMNS = ("activation", "p", "rule", "trials", "diverged", "measured_slope", "predicted_slope", "ratio",
                "predicted_slope_g", "predicted_slope_final", "r2_min")
SEVERAL_WIDTHS = "needs several widths; this profile runs one"
SHORT_REAL_RUN = "the ci run of the real-data experiment is a few steps long"


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


def record(results, *, numbers: dict | None = None, metrics: dict | None = None, texts: dict | None = None) -> None:
    """Record ``numbers`` (glued scalars), ``metrics`` (tables) and ``texts`` (glued strings) in ``results``."""
    for name, value in (texts or {}).items():
        results.text(name, value)
    for name, value in (metrics or {}).items():
        results.metric(name, value)
    for name, value in (numbers or {}).items():
        results.number(name, value)


def real_data_seeds(seed: int, runs: int) -> list[int]:
    """The ``runs`` seeds of the real-data experiment, derived from the root ``seed``."""
    return [int(s) for s in np.random.SeedSequence([seed, 784]).generate_state(runs, dtype=np.uint32)]


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


def plot_kernel_check(rows: Sequence[dict]):
    """Log-log figure of :func:`kernel_check`'s rows against the width, with a ``p^(-1/2)`` guide."""
    import matplotlib.pyplot as plt

    p = np.array([r["p"] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    ax.loglog(p, [r["G(0) vs arc-cosine"] for r in rows], "o-", label=r"$\|G(0) - G^\infty\|_F / \|G^\infty\|_F$")
    ax.loglog(p, [r["H(0) (FA)"] for r in rows], "s-", label=r"$\|H(0)\|_F / \|G^\infty\|_F$ (FA)")
    ax.loglog(p, rows[0]["H(0) (FA)"] * np.sqrt(p[0] / p), "k:", label=r"$\propto p^{-1/2}$")
    ax.set(xlabel="width $p$", ylabel="relative Frobenius norm",
           title=f"ReLU kernels at initialisation (mean of {KERNEL_CHECK_DRAWS} draws)")
    ax.legend()
    return fig


def protocol_rows(activations: Sequence[str]) -> list[dict]:
    """One row per activation: the authors' lr and lambda grid (MSELoss) and fa_lib's eta = 2 lr and l2 = lambda/2."""
    return [{"activation": a, "lr (MSELoss)": LEARNING_RATES[a], "fa_lib eta = 2 lr": 2 * LEARNING_RATES[a],
             "lambda grid (MSELoss)": ", ".join(f"{v:g}" for v in LAMBDAS[a]),
             "fa_lib l2 = lambda/2": ", ".join(f"{v / 2:g}" for v in LAMBDAS[a])} for a in activations]


def width_rows(widths: Sequence[int], trials: int) -> list[dict]:
    """One row per width: ``T_min`` (:func:`steps_for_width`) and the trials per cell."""
    return [{"width p": p, "T_min": steps_for_width(p), "trials per cell": trials} for p in widths]


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


def plot_steps(cells: Sequence[AlignmentCell], activations: Sequence[str]):
    """Every alignment trial's steps / ``T_min`` per lambda (x) and width (grey level), one panel per activation."""
    import matplotlib.pyplot as plt

    widths = sorted({c.p for c in cells})
    fig, axes = plt.subplots(1, len(activations), figsize=(3.6 * len(activations), 3.4), sharey=True, squeeze=False)
    for ax, activation in zip(axes[0], activations):
        for k, lam in enumerate(LAMBDAS[activation]):
            for j, cell in enumerate(c for c in cells if c.activation == activation):
                ratio = cell.steps[cell.select(lam)] / cell.min_steps
                shade = 0.65 - 0.55 * j / max(1, len(widths) - 1)  # greys, light to dark with p: the colours C0, C1, ... mean lambda
                ax.plot(np.full(ratio.size, k + 0.25 * (j - (len(widths) - 1) / 2)), ratio, "o", ms=3, alpha=0.7,
                        color=str(shade), label=f"p={cell.p}" if k == 0 else None)
        ax.set_xticks(range(len(LAMBDAS[activation])), [f"{v:g}" for v in LAMBDAS[activation]])
        ax.set(xlabel="λ", title=activation)
    axes[0][0].set_ylabel("steps / T_min")
    axes[0][0].legend(fontsize="small")
    return fig


def steps_rows(table: Sequence[dict]) -> list[dict]:
    """The step counts of :func:`alignment_rows`' rows, for display."""
    return [{"activation": r["activation"], "λ": f"{r['lam']:g}", "p": r["p"], "T_min": r["min_steps"],
             "steps (mean)": round(r["steps_mean"]), "steps (min-max)": f"{r['steps_min']}-{r['steps_max']}"} for r in table]


def linear_step_numbers(table: Sequence[dict]) -> dict:
    """For the linear lambda > 0 cells at the smallest width: the range of steps and of steps / ``T_min``, and
    each lambda's mean alignment at the stop and at ``T_min`` (``numbers``; empty without such cells)."""
    p_min = min(r["p"] for r in table)
    rows = [r for r in table if r["activation"] == "linear" and r["lam"] > 0 and r["p"] == p_min]
    if not rows:
        return {"numbers": {}}
    numbers = dict(song_linear_steps_min=min(r["steps_min"] for r in rows), song_linear_steps_max=max(r["steps_max"] for r in rows),
                   song_linear_multiple_min=min(r["steps_min"] for r in rows) / rows[0]["min_steps"],
                   song_linear_multiple_max=max(r["steps_max"] for r in rows) / rows[0]["min_steps"])
    for r in rows:
        numbers[f"song_linear_full_{r['lam']:g}".replace(".", "p")] = r["mean"]
        numbers[f"song_linear_at_min_{r['lam']:g}".replace(".", "p")] = r["mean_at_min"]
    return {"numbers": numbers}


def plot_alignment(table: Sequence[dict], activations: Sequence[str], *, all_published: bool = False):
    """Final ``cos(beta, b)`` against the width (ours: mean +/- sd band; the authors': open markers), one panel per
    activation. The authors' cells are shown within the widths run, or all of them with ``all_published``."""
    import matplotlib.pyplot as plt

    widths = sorted({r["p"] for r in table})
    fig, axes = plt.subplots(1, len(activations), figsize=(3.9 * len(activations), 3.8), sharey=True, squeeze=False)
    for ax, activation in zip(axes[0], activations):
        for k, lam in enumerate(LAMBDAS[activation]):
            rows = [r for r in table if r["activation"] == activation and r["lam"] == lam]
            p, mean, sd = (np.array([r[key] for r in rows], dtype=float) for key in ("p", "mean", "sd"))
            ax.plot(p, mean, "-s", ms=4, color=f"C{k}", label=f"λ={lam:g}")
            ax.fill_between(p, mean - sd, mean + sd, color=f"C{k}", alpha=0.15, linewidth=0)
            published = PUBLISHED_ALIGNMENT.get((activation, lam), {})
            shown = list(published) if all_published else [q for q in published if min(widths) <= q <= max(widths)]
            if shown:
                ax.errorbar(shown, [published[q][0] for q in shown], yerr=[published[q][1] for q in shown], fmt="o",
                            mfc="none", color=f"C{k}", capsize=3, ms=6)
        ax.set_xscale("log")
        ax.set_xticks(widths, [width_label(p) for p in widths])
        ax.minorticks_off()
        ax.set(xlabel="width p", title=f"{activation}, lr={LEARNING_RATES[activation]:g}")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=2)
    axes[0][0].set_ylabel(r"final $\cos(\beta, b)$")
    fig.suptitle("filled squares and bands: ours (mean ± sd over trials); open circles: the authors' published mean ± sd")
    return fig


def alignment_display_rows(table: Sequence[dict]) -> list[dict]:
    """:func:`alignment_rows`' rows for display: ours and the authors' mean +/- sd, the difference, ours stopped
    at ``T_min`` and the bound of :func:`tolerance_against_authors` (a dash where the authors published none)."""
    return [{"activation": r["activation"], "λ": f"{r['lam']:g}", "p": r["p"], "trials": r["trials"],
             "ours": f"{r['mean']:.3f} ± {r['sd']:.3f}",
             "authors": "—" if r["authors_mean"] is None else f"{r['authors_mean']:.3f} ± {r['authors_sd']:.3f}",
             "ours − authors": "—" if r["difference"] is None else f"{r['difference']:+.3f}",
             "ours, stopped at T_min": f"{r['mean_at_min']:.3f}",
             "bound": "—" if r["authors_mean"] is None else f"{tolerance_against_authors(r):.3f}"} for r in table]


AGREEMENT_COLORS = ((0.5, "#d4edda"), (1.0, "#fff3cd"), (math.inf, "#f8d7da"))
"""Background of the "ours − authors" cell by ``|ours − authors| / bound``: within half the bound, within it, beyond it."""


def alignment_comparison_table(table: Sequence[dict]):
    """:func:`alignment_display_rows` as a pandas Styler without index, each "ours − authors" cell coloured by
    ``|ours − authors| / bound`` (:data:`AGREEMENT_COLORS`; no colour where the authors published no value)."""
    import pandas as pd

    def color(row: dict) -> str:
        if row["authors_mean"] is None:
            return ""
        ratio = abs(row["difference"]) / tolerance_against_authors(row)
        return "background-color: " + next(c for bound, c in AGREEMENT_COLORS if ratio < bound)

    frame = pd.DataFrame(alignment_display_rows(table))
    colors = [color(r) for r in table]
    return table_style(frame).apply(lambda _: colors, subset=["ours − authors"], axis=0)


def alignment_numbers(table: Sequence[dict], activations: Sequence[str]) -> dict:
    """For the prose: per paper activation the largest ``|ours - authors|`` at lambda = 0 and > 0; for linear and
    ReLU the lambda = 0 alignment at the smallest width, ours and the authors'; and the linear lambda = 0
    alignment times ``p / n`` per width (metric ``linear_alignment_times_p_over_n``)."""
    numbers, metrics = {}, {}
    for activation in (a for a in PAPER_ACTIVATIONS if a in activations):
        s3 = compare_with_authors(table, activation, regularised=True)
        s2 = compare_with_authors(table, activation, regularised=False)
        numbers[f"song_{activation}_s3_max_diff"] = max(abs(v["difference"]) for v in s3.values())
        numbers[f"song_{activation}_s2_max_diff"] = max(abs(v["difference"]) for v in s2.values())
    p_min, p_max = min(r["p"] for r in table), max(r["p"] for r in table)
    zero = [r for r in table if r["lam"] == 0.0]
    for activation in ("linear", "relu"):
        row = next((r for r in zero if r["activation"] == activation and r["p"] == p_min), None)
        if row:
            numbers[f"song_{activation}_align0_pmin"] = row["mean"]
            numbers[f"song_{activation}_align0_authors_pmin"] = row["authors_mean"]
    linear_np = {r["p"]: r["mean"] * r["p"] / N_SAMPLES for r in zero if r["activation"] == "linear"}
    if linear_np:
        metrics["linear_alignment_times_p_over_n"] = linear_np
        numbers["song_linear_np_pmin"], numbers["song_linear_np_pmax"] = linear_np[p_min], linear_np[p_max]
    return {"numbers": numbers, "metrics": metrics}


def alignment_claims(results, table: Sequence[dict], activations: Sequence[str]) -> None:
    """Record S2a/S3a per paper activation (every cell against the authors' tables, :func:`compare_with_authors`),
    S2b (lambda = 0 falls with p), S3b (increasing in lambda) and S3c (lambda > 0 kept in p); S2b and S3c are
    recorded as not evaluated when ``table`` has one width."""
    widths = sorted({r["p"] for r in table})
    for activation in (a for a in PAPER_ACTIVATIONS if a in activations):
        s2 = compare_with_authors(table, activation, regularised=False)
        results.claim(
            f"S2a_{activation}",
            statement=f"{activation}, lambda = 0: the final cos(beta, b) matches the authors' table in every width run.",
            expected="|ours - authors| <= 2 sd_authors / sqrt(trials) + 0.02 in every cell, no trial diverged or unsettled",
            measured=s2,
            tolerance=("2 sd/sqrt(trials): two standard errors of our mean if our spread equals theirs; + 0.02 for their own "
                       "sampling error (50 trials) and float32 differences."),
            passed=bool(s2) and all(v["ok"] for v in s2.values()),
        )
        s3 = compare_with_authors(table, activation, regularised=True)
        results.claim(
            f"S3a_{activation}",
            statement=f"{activation}, lambda > 0: the final cos(beta, b) matches the authors' table in every cell run.",
            expected=f"|ours - authors| <= {ALIGNED_TOLERANCE} in every cell, no trial diverged or unsettled",
            measured=s3,
            tolerance=f"{ALIGNED_TOLERANCE}: about two of the authors' per-trial sds, for float32 and data differences.",
            passed=bool(s3) and all(v["ok"] for v in s3.values()),
        )
    zero = [r for r in table if r["lam"] == 0.0]
    falls = {a: [r["mean"] for r in zero if r["activation"] == a] for a in activations}
    s2b = "Without regularisation the final alignment falls as the width grows (every activation run)."
    if len(widths) > 1:
        results.claim(
            "S2b", statement=s2b, expected="mean cos(beta, b) at lambda = 0 strictly decreasing in p", measured=falls,
            tolerance="strict monotonicity of the means: the theory predicts cos(beta, b) = O(1/p) -> 0; needs several widths.",
            passed=all(np.all(np.diff(v) < 0) for v in falls.values()),
        )
    else:
        results.skip_claim("S2b", statement=s2b, reason=SEVERAL_WIDTHS)
    increasing = {f"{a} p={p}": [r["mean"] for r in table if r["activation"] == a and r["p"] == p] for a in activations for p in widths}
    results.claim(
        "S3b",
        statement="The final alignment increases with lambda (every activation and width run).",
        expected="mean cos(beta, b) strictly increasing along each lambda grid, lambda = 0 included",
        measured=increasing,
        tolerance="strict monotonicity of the means, as in the authors' tables and the theory (a larger lambda forgets beta(0) faster).",
        passed=all(np.all(np.diff(v) > 0) for v in increasing.values()),
    )
    s3c = "With lambda > 0 the alignment stays bounded away from zero as the width grows."
    if len(widths) > 1:
        kept = {f"{a} λ={lam:g}": [r["mean"] for r in table if r["activation"] == a and r["lam"] == lam]
                for a in activations for lam in LAMBDAS[a][1:]}
        ratio = {k: v[-1] / v[0] for k, v in kept.items()}
        results.claim(
            "S3c", statement=s3c,
            expected=(f"mean cos(beta, b) at p={max(widths)} at least half of that at p={min(widths)}, "
                      "for every activation and lambda > 0"),
            measured={"ratio p_max / p_min": ratio, "lambda = 0 for contrast": {a: v[-1] / v[0] for a, v in falls.items()}},
            tolerance=(f"ratio > 1/2: a decay like 1/sqrt(p) would give (p_min/p_max)^(1/2) = "
                       f"{math.sqrt(min(widths) / max(widths)):.2f} here, and lambda = 0's O(1/p) decay {min(widths) / max(widths):.2f}; "
                       "needs several widths."),
            passed=all(v > KEPT_FRACTION for v in ratio.values()),
        )
    else:
        results.skip_claim("S3c", statement=s3c, reason=SEVERAL_WIDTHS)


def plot_loss_curves(curve_cells: dict, activations: Sequence[str]):
    """log10 MSE against the step (mean +/- sd over trials): FA per lambda and BP at lambda = 0, one panel per activation."""
    import matplotlib.pyplot as plt

    from ..plotting import seed_band

    fig, axes = plt.subplots(1, len(activations), figsize=(3.9 * len(activations), 3.6), sharex=True, squeeze=False)
    for ax, activation in zip(axes[0], activations):
        cell, bp = curve_cells[activation, "fa"], curve_cells[activation, "bp"]
        steps_axis = np.arange(cell.steps + 1)
        for k, lam in enumerate(cell.lams):
            mask = cell.select(lam)
            seed_band(ax, steps_axis, np.log10(cell.mse[:, mask]), cell.diverged[mask], label=f"FA, λ={lam:g}", color=f"C{k}")
        seed_band(ax, steps_axis, np.log10(bp.mse), bp.diverged, label="BP, λ=0", color="k")
        ax.set(xlabel="step", title=f"{activation}, p={cell.p}, lr={cell.lr:g}")
        ax.legend(fontsize="small")
    axes[0][0].set_ylabel(r"$\log_{10}$ MSE (mean ± sd)")
    return fig


def convergence_numbers(rates: Sequence[dict], activations: Sequence[str]) -> dict:
    """For the prose, from :func:`rate_rows`: per activation the smallest tail R^2, measured / predicted per rule,
    final-kernel / initial-kernel prediction and measured / G(0)-only prediction (FA); the count of FA ratios
    inside ``RATIO_BAND`` and of FA rows."""
    row = {(r["activation"], r["rule"]): r for r in rates}
    numbers = {}
    for activation in activations:
        rows = [r for r in rates if r["activation"] == activation]
        numbers[f"song_{activation}_r2_min"] = min(r["r2_min"] for r in rows)
        for r in rows:
            numbers[f"song_{activation}_ratio_{r['rule']}"] = r["ratio"]
    numbers["song_s1_in_band"] = len([r for r in rates if r["rule"] == "fa" and RATIO_BAND[0] <= r["ratio"] <= RATIO_BAND[1]])
    numbers["song_s1_fa_rows"] = sum(r["rule"] == "fa" for r in rates)
    for activation in activations:
        fa = row[activation, "fa"]
        numbers[f"song_{activation}_fa_kernel_change"] = fa["predicted_slope_final"] / fa["predicted_slope"]
        numbers[f"song_{activation}_fa_predicted_g_ratio"] = fa["measured_slope"] / fa["predicted_slope_g"]
    return {"numbers": numbers}


def convergence_claims(results, rates: Sequence[dict], activations: Sequence[str]) -> None:
    """Record S1a (tail R^2 > ``R2_MIN``, FA and BP) and S1b (FA slope / kernel prediction >= ``RATIO_MIN``) per
    activation, and S1c (BP's tail slope steeper than FA's for every activation), from :func:`rate_rows`."""
    for activation in activations:
        rows = [r for r in rates if r["activation"] == activation]
        results.claim(
            f"S1a_{activation}",
            statement=f"{activation}, lambda = 0: ln MSE is linear in the step on the tail (FA and BP).",
            expected=f"R^2 > {R2_MIN} for every lambda = 0 trial, none diverged",
            measured={r["rule"]: r["r2_min"] for r in rows},
            tolerance=f"R^2 > {R2_MIN} on the tail: a straight line in ln MSE is exponential convergence.",
            passed=all(r["r2_min"] > R2_MIN and r["diverged"] == 0 for r in rows),
        )
        fa_row = next(r for r in rows if r["rule"] == "fa")
        results.claim(
            f"S1b_{activation}",
            statement=f"{activation}, lambda = 0: FA converges at least at the kernel rate -4 lr lambda_min(G(0)+H(0))/n of the same networks.",
            expected=f"mean measured tail slope / mean predicted slope >= {RATIO_MIN} (a positive prediction, i.e. lambda_min > 0, is required)",
            measured={"ratio": fa_row["ratio"], "predicted_slope": fa_row["predicted_slope"], "measured_slope": fa_row["measured_slope"]},
            tolerance=(f"ratio >= {RATIO_MIN}: the theorem bounds the rate from below; the lower end of the band "
                       f"[{RATIO_BAND[0]}, {RATIO_BAND[1]}] allows for the tail fit seeing the slowest modes only approximately."),
            passed=fa_row["predicted_slope"] < 0 and fa_row["ratio"] >= RATIO_MIN,
        )
    speed = {a: {rule: next(r["measured_slope"] for r in rates if r["activation"] == a and r["rule"] == rule) for rule in ("bp", "fa")}
             for a in activations}
    results.claim(
        "S1c",
        statement="BP converges faster than FA from the same initialisation (lambda = 0).",
        expected="mean tail slope of ln MSE more negative for BP than for FA, for every activation",
        measured=speed,
        tolerance="strict inequality of the means: BP's H(0) is positive semi-definite while FA's has zero mean, so lambda_min(G+H) is larger for BP.",
        passed=all(v["bp"] < v["fa"] for v in speed.values()),
    )


def plateau_numbers(plateaus: Sequence[dict]) -> dict:
    """The range over :func:`plateau_rows` of final MSE / ridge MSE, with ``G(0)`` and with the final kernel."""
    return {"numbers": dict(song_plateau_ratio_min=min(r["ratio"] for r in plateaus),
                            song_plateau_ratio_max=max(r["ratio"] for r in plateaus),
                            song_plateau_final_kernel_min=min(r["ratio_final_kernel"] for r in plateaus),
                            song_plateau_final_kernel_max=max(r["ratio_final_kernel"] for r in plateaus))}


def plateau_claims(results, plateaus: Sequence[dict], activations: Sequence[str]) -> None:
    """Record S4 per activation: every lambda > 0's mean final MSE / kernel-ridge MSE of ``G(0)`` within a factor
    ``PLATEAU_FACTOR`` (:func:`plateau_rows`)."""
    for activation in activations:
        rows = [r for r in plateaus if r["activation"] == activation]
        results.claim(
            f"S4_{activation}",
            statement=f"{activation}, lambda > 0: the loss settles within a factor 2 of the kernel-ridge plateau computed from G(0).",
            expected=f"mean over trials of final MSE / ridge MSE(G(0)) in [1/{PLATEAU_FACTOR:g}, {PLATEAU_FACTOR:g}] for every lambda > 0",
            measured={f"λ={r['lam']:g}": r["ratio"] for r in rows},
            tolerance=f"factor {PLATEAU_FACTOR:g}: the ridge formula freezes the features at initialisation, which holds only approximately at finite width.",
            passed=all(1 / PLATEAU_FACTOR <= r["ratio"] <= PLATEAU_FACTOR for r in rows),
        )


def dataset_name(real: RealDataRun) -> str:
    """The display name of the real-data run's dataset."""
    return {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}[real.dataset]


def real_data_records(real: RealDataRun, config: dict) -> dict:
    """What ran in the real-data experiment: dataset name (``texts``), the files' sha256 (``metrics``), images,
    epochs, runs, steps and seconds (``numbers``)."""
    return {"texts": {"song_real_dataset": dataset_name(real)}, "metrics": {"real_data_sha256": real.sha256},
            "numbers": dict(song_real_n_train=real.n_train, song_real_n_test=real.n_test, song_real_epochs=config["real"]["epochs"],
                            song_real_runs=config["real"]["runs"], song_real_steps=int(real.history.steps[-1]),
                            song_real_seconds=real.seconds)}


def real_data_note(real: RealDataRun, config: dict) -> str:
    """One Markdown line saying what the real-data experiment ran and how many of its networks diverged."""
    runs, epochs = config["real"]["runs"], config["real"]["epochs"]
    diverged = int(real.history.diverged.sum())
    return (f"{dataset_name(real)}: {real.n_train} training and {real.n_test} test images, {epochs} "
            f"epoch{'s' * (epochs != 1)}, {runs} run{'s' * (runs != 1)}; "
            f"{'no network' if diverged == 0 else f'{diverged} networks'} diverged.")


def plot_real_data(real: RealDataRun):
    """Error-signal alignment and test accuracy against the iteration, one band per lambda."""
    import matplotlib.pyplot as plt

    from ..plotting import seed_band

    history, name = real.history, dataset_name(real)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for k, lam in enumerate(REAL_LAMBDAS):
        mask = np.isclose(real.lam, lam)
        seed_band(axes[0], history.steps, history.metrics["error_alignment"][:, mask], history.diverged[mask],
                  label=f"λ={lam:g}", color=f"C{k}")
        seed_band(axes[1], history.steps, 100 * history.metrics["test_accuracy"][:, mask], history.diverged[mask],
                  label=f"λ={lam:g}", color=f"C{k}")
    axes[0].set(xlabel="iteration", ylabel=r"mean $\cos(e_i^\top B, e_i^\top \beta)$", title=f"{name}: error-signal alignment")
    axes[1].set(xlabel="iteration", ylabel="test accuracy (%)", title=f"{name}: test accuracy")
    for ax in axes:
        ax.legend()
    return fig


def real_data_finals(real: RealDataRun) -> tuple[dict[float, dict], dict[float, dict]]:
    """Final error-signal alignment and test accuracy per lambda, each :func:`fa_lib.summarize_seeds` over the runs."""
    history = real.history
    finals = [{lam: summarize_seeds(history.final(key)[np.isclose(real.lam, lam)], history.diverged[np.isclose(real.lam, lam)])
               for lam in REAL_LAMBDAS} for key in ("error_alignment", "test_accuracy")]
    return finals[0], finals[1]


def real_data_numbers(real: RealDataRun) -> dict:
    """:func:`real_data_finals` as metrics (keyed ``"0"``, ``"0.1"``, ...) and the means for the prose
    (``song_real_align_0p1``, ``song_real_acc_0p1`` in %)."""
    alignment, accuracy = real_data_finals(real)
    numbers = {}
    for lam in REAL_LAMBDAS:
        numbers[f"song_real_align_{lam:g}".replace(".", "p")] = alignment[lam]["mean"]
        numbers[f"song_real_acc_{lam:g}".replace(".", "p")] = 100 * accuracy[lam]["mean"]
    return {"metrics": {"real_final_alignment": {f"{k:g}": v for k, v in alignment.items()},
                        "real_final_test_accuracy": {f"{k:g}": v for k, v in accuracy.items()}}, "numbers": numbers}


def real_data_claims(results, real: RealDataRun, *, evaluate: bool) -> None:
    """Record S5a (lambda = 0 stays below ``REAL_UNALIGNED_MAX``), S5b (each lambda > 0 aligns at least
    ``REAL_ALIGNED_FACTOR`` times more) and S5c (accuracy no worse, within two binomial standard errors of a
    difference); with ``evaluate`` false (the ci run, a few steps long) all three are not evaluated."""
    statements = {
        "S5a": "Without regularisation the hidden error signals stay unaligned on real data.",
        "S5b": "With lambda > 0 the hidden error signals align far more than with lambda = 0.",
        "S5c": "With lambda > 0 the test accuracy is at least as good as with lambda = 0.",
    }
    if not evaluate:
        for claim_id, statement in statements.items():
            results.skip_claim(claim_id, statement=statement, reason=SHORT_REAL_RUN)
        return
    final_alignment, final_accuracy = real_data_finals(real)
    a0 = final_alignment[0.0]["mean"]
    results.claim(
        "S5a", statement=statements["S5a"],
        expected=f"final mean cos(e B, e beta) at lambda = 0 below {REAL_UNALIGNED_MAX:g}",
        measured=a0, tolerance=f"{REAL_UNALIGNED_MAX:g}: the authors report that lambda = 0 stays below 0.1.",
        passed=a0 < REAL_UNALIGNED_MAX,
    )
    ratios = {f"{lam:g}": final_alignment[lam]["mean"] / a0 for lam in REAL_LAMBDAS[1:]}
    results.claim(
        "S5b", statement=statements["S5b"],
        expected="final mean alignment of each lambda > 0 at least twice that of lambda = 0",
        measured={"alignment": {f"{k:g}": v["mean"] for k, v in final_alignment.items()}, "ratio to lambda = 0": ratios},
        tolerance=f"factor {REAL_ALIGNED_FACTOR}: our reading of the authors' 'far more' (the paper gives no number).",
        passed=all(v >= REAL_ALIGNED_FACTOR for v in ratios.values()),
    )
    acc0, n_test = final_accuracy[0.0]["mean"], real.n_test
    margin = 2 * math.sqrt(2 * acc0 * (1 - acc0) / n_test)
    results.claim(
        "S5c", statement=statements["S5c"],
        expected="final test accuracy of each lambda > 0 >= that of lambda = 0 minus two binomial standard errors",
        measured={"accuracy": {f"{k:g}": v["mean"] for k, v in final_accuracy.items()}, "margin": margin},
        tolerance=f"2 sqrt(2 a (1 - a) / n_test) = {margin:.4f}: two standard errors of a difference of accuracies on {n_test} test images.",
        passed=all(final_accuracy[lam]["mean"] >= acc0 - margin for lam in REAL_LAMBDAS[1:]),
    )


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
