"""Song, Xu & Lafferty (NeurIPS 2021): the paper's mathematics and protocol (``shared/papers/song_xu_lafferty_2021.md``).

Model ("Model and FA update"): ``f(x) = (1/sqrt(p)) sum_r beta_r psi(w_r^T x)``, no biases, with ``W``
(p x d), ``beta`` (1 x p) and the fixed feedback vector ``b`` (1 x p) all i.i.d. N(0, 1). In fa_lib's
terms it is the network ``[W, beta]`` with ``layer_scales=[1, 1/sqrt(p)]`` and FA feedback ``[None, b]``;
the alignment is ``cos(beta, b)``.

Loss and learning-rate convention. The authors train on PyTorch's ``nn.MSELoss``,
``MSE = (1/n) sum_i (f(x_i) - y_i)^2``, with ``beta <- beta - lr (dMSE/dbeta + lam beta)``
and ``W <- W - lr dMSE/dW`` (FA: ``b`` replaces ``beta`` in the backward pass). fa_lib's
``"mse"`` loss is ``L = (1/n) sum_i 1/2 (f(x_i) - y_i)^2 = MSE / 2`` and its step is
``W_l <- W_l - eta (dL/dW_l + l2_l W_l)``, so the same update has ``eta = 2 lr`` and
``l2 = lam / 2`` on ``beta`` only (:func:`core_hyperparameters`). Every ``lr`` and ``lam``
argument here is in the authors' MSELoss convention.

The constants are the paper's settings ("Protocol of the authors' synthetic experiments (exact)",
"MNIST experiment (authors' protocol)"); the functions are pure functions of tensors ("Theory to
check"): the kernels ``G`` and ``H``, the predicted rate, the kernel-ridge plateau, the growth of
``||W||^2`` that L2 on the readout alone leaves, the arc-cosine kernel, and the real-data alignment measure. The training loops are :mod:`fa_lib.training.two_layer`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..alignment import cosine
from ..networks import activation_function, forward, loss_and_output_delta
from ..validation import check_int, check_positive

Tensor = torch.Tensor

# --------------------------------------------------------------------------- the authors' synthetic protocol
# Paper file, "Protocol of the authors' synthetic experiments (exact)".
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
# Run length: the MSE is compared every STOP_EVERY steps; a change below STOP_TOLERANCE settles the run.
STOP_EVERY = 1000
STOP_TOLERANCE = 1e-3
# Loss-curve protocol: one width, a fixed number of steps.
LOSS_CURVE_WIDTH = 3200
LOSS_CURVE_STEPS = 5000
# Paper file, "MNIST experiment (authors' protocol)": 784 -> 1000 ReLU -> 10, cross-entropy, SGD, L2 on the
# second layer only.
REAL_HIDDEN = 1000
REAL_LR = 0.01
REAL_BATCH_SIZE = 600
REAL_EPOCHS = 300
REAL_LAMBDAS = (0.0, 0.1, 0.3)
REAL_RUNS = 10


def steps_for_width(p: int) -> int:
    """The authors' minimum step count ``T_min = floor(5000 sqrt(p) / 14)`` (5050 steps at p = 200).

    Paper file, "Protocol of the authors' synthetic experiments (exact)" (run length).
    """
    check_int("p", p, minimum=1)
    return math.floor(5000 * math.sqrt(p) / 14)


# --------------------------------------------------------------------------- conventions
def core_hyperparameters(lr: float, lam: float | Tensor) -> tuple[float, float | Tensor]:
    """fa_lib's ``(eta, l2)`` for the authors' MSELoss ``(lr, lam)``: ``eta = 2 lr``, ``l2 = lam / 2``.

    ``W <- W - eta (dL/dW + l2 W)`` with ``L = MSE / 2`` is then exactly
    ``W <- W - lr (dMSE/dW + lam W)`` (paper file, "Model and FA update"). ``lam``: a number or a
    tensor of any shape (returned halved).
    """
    check_positive("lr", lr)
    return 2.0 * lr, lam / 2.0


def kernel_step(lr: float, n: int) -> float:
    """``eta`` of the output dynamics ``f <- f - eta (G + H) e``: ``2 lr / n`` for MSELoss (paper file, "Theory to check")."""
    check_positive("lr", lr)
    check_int("n", n, minimum=1)
    return 2.0 * lr / n


# --------------------------------------------------------------------------- the model
def readout_scales(p: int) -> list[float]:
    """``layer_scales`` of the two-layer model: ``[1, 1/sqrt(p)]`` (paper file, "Model and FA update")."""
    check_int("p", p, minimum=1)
    return [1.0, 1.0 / math.sqrt(p)]


def row_space_coordinates(x: Tensor, first_layer: Tensor) -> tuple[Tensor, Tensor]:
    """Express inputs and first-layer weights in an orthonormal basis of the inputs' row space.

    ``x``: ``(S, n, d)``, ``first_layer``: ``(S, p, d)`` -> ``(x V, W V)`` with ``V`` ``(S, d, k)``,
    ``k = min(n, d)``, orthonormal columns spanning every row of ``x``. Then
    ``(x V)(W V)^T = x W^T`` and the gradient of ``W V`` is the gradient of ``W`` times ``V``,
    so full-batch training of ``[W V, beta]`` on ``x V`` follows exactly the trajectory of
    ``[W, beta]`` on ``x`` (any rule; no L2 on ``W``) at ``k/d`` of the cost; ``x_i^T x_j``
    and hence the kernels are unchanged. Computed in float64, returned in ``x``'s dtype. Not in the paper:
    an exact change of coordinates of its model ("Model and FA update") that the training loops use.
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
    Paper file, "Theory to check".
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
    ``g``, ``h``: ``(S, n, n)``. Paper file, "Theory to check".
    """
    lam_min = torch.linalg.eigvalsh((g + h).double())[..., 0]
    return -2.0 * kernel_step(lr, n) * lam_min


def ridge_residual(g: Tensor, y: Tensor, lam: float | Tensor) -> Tensor:
    """Kernel-ridge residual ``e_inf = -lam' (G + lam' I)^-1 y`` with ``lam' = n lam / 2``.

    The fixed point of the beta-update with features frozen (MSELoss convention; paper file,
    "Theory to check").
    ``g`` ``(S, n, n)``, ``y`` ``(S, n, 1)``, ``lam`` a number or ``(S,)``; returns ``(S, n, 1)``.
    """
    n = g.shape[-1]
    lam_prime = torch.as_tensor(lam, dtype=g.dtype, device=g.device) * n / 2
    lam_prime = lam_prime.reshape(*lam_prime.shape, 1, 1)
    eye = torch.eye(n, dtype=g.dtype, device=g.device)
    return -lam_prime * torch.linalg.solve(g + lam_prime * eye, y.to(g.dtype))


def ridge_plateau(g: Tensor, y: Tensor, lam: float | Tensor) -> Tensor:
    """The MSE of :func:`ridge_residual`, ``|e_inf|^2 / n`` ``(S,)``: the plateau of paper file, "Theory to check"."""
    residual = ridge_residual(g, y, lam)
    return (residual**2).sum(dim=(-1, -2)) / residual.shape[-2]


# Activations with psi'(z) z = psi(z), for which FA's first-layer step and the readout's step share one
# scalar per neuron (:func:`readout_only_l2_growth`).
HOMOGENEOUS_ACTIVATIONS = ("linear", "relu")


# How far a measured growth of ||W||^2 may sit from the law 2 lr lam <beta, b> + 2 Delta<beta, b> (relative): the law's
# one omitted term, lr^2 ||g_r||^2, is second order in the step.
READOUT_GROWTH_TOLERANCE = 0.05


def readout_only_l2_growth(overlap: Tensor, lr: float, lam: float | Tensor) -> Tensor:
    """The per-step growth ``2 lr lam <beta, b>`` of ``||W||_F^2`` under FA with L2 on ``beta`` only.

    Derived here, not stated in the paper. With ``s_r = dMSE/dbeta_r`` and FA's first-layer
    gradient ``g_r = (2/n)(1/sqrt(p)) sum_i e_i b_r psi'(w_r^T x_i) x_i``, an activation with
    ``psi'(z) z = psi(z)`` (:data:`HOMOGENEOUS_ACTIVATIONS`) gives ``w_r^T g_r = b_r s_r``, so one
    step of the paper's update ("Model and FA update") changes, exactly,
    ``||w_r||^2`` by ``2 Delta(b_r beta_r) + 2 lr lam b_r beta_r + lr^2 ||g_r||^2``.
    A resting point would need ``b_r beta_r = 0`` for every ``r``; while ``<beta, b>`` stays
    positive and settled, ``||W||_F^2`` grows by ``2 lr lam <beta, b>`` per step.
    ``overlap``: ``<beta, b>`` ``(S,)``; ``lam`` a number or ``(S,)``; returns ``(S,)``.
    """
    check_positive("lr", lr)
    return 2.0 * lr * torch.as_tensor(lam, dtype=overlap.dtype, device=overlap.device) * overlap


def arccos_kernel(x: Tensor) -> Tensor:
    """ReLU's infinite-width ``G``: ``E_w[relu(w^T x_i) relu(w^T x_j)]``, ``w ~ N(0, I)``.

    ``|x_i| |x_j| (sin t + (pi - t) cos t) / (2 pi)`` with ``t`` the angle between
    ``x_i`` and ``x_j`` (Cho and Saul's first-order arc-cosine kernel over 2). ``(..., n, d)``
    -> ``(..., n, n)``. Paper file, "Theory to check" (closed forms).
    """
    norms = x.norm(dim=-1)
    outer = norms.unsqueeze(-1) * norms.unsqueeze(-2)
    cos = ((x @ x.transpose(-1, -2)) / torch.where(outer > 0, outer, 1)).clamp(-1.0, 1.0)
    angle = torch.arccos(cos)
    return outer * (torch.sin(angle) + (math.pi - angle) * cos) / (2 * math.pi)


# --------------------------------------------------------------------------- real data
def error_signal_alignment(
    weights: Sequence[Tensor], feedback: Sequence[Tensor | None], x: Tensor, y: Tensor, *, activation: str = "relu"
) -> Tensor:
    """The authors' real-data alignment: mean over samples of ``cos(e_i^T B, e_i^T beta)``.

    ``e_i`` is the output error of sample i (``softmax(f(x_i)) - onehot(y_i)``), so the two
    vectors are the hidden error signals of FA and BP before the ``psi'`` mask.
    ``weights = [W (S, p, d), beta (S, k, p)]``, ``feedback[1] = B`` ``(S, k, p)``, ``x`` ``(n, d)``,
    ``y`` ``(n,)`` class indices; returns ``(S,)``. Paper file, "MNIST experiment (authors' protocol)".
    """
    output = forward(weights, x, activation, layer_scales=readout_scales(weights[0].shape[-2])).output
    _, delta = loss_and_output_delta(output, y, "ce")
    return cosine(delta @ feedback[1], delta @ weights[1], dims=1).mean(dim=-1)


def stability_matrix(weights: Sequence[Tensor], x: Tensor, activation: str, b: Tensor) -> Tensor:
    """Song's FA kernel over the sample count, ``(G + H) / N`` ``(S, N, N)`` with partner ``b`` (section "Theory to
    check"): at a zero-error point of the two-layer model it is Chu & Bacho's reduced matrix of the FA update
    (:func:`fa_lib.theory.fixed_points.reduced_matrix`, ``chu_bacho_2024.md``, "Stability")."""
    g, h = kernels(weights, x, activation, b)
    return (g + h) / x.shape[-2]


def kernel_jacobian_alignment(weights: Sequence[Tensor], x: Tensor, activation: str, b: Tensor) -> Tensor:
    """Two-layer ``cos(G, G~)`` ``(S,)``: the Frobenius cosine of the output Jacobian and FA's pseudo-Jacobian over all
    samples, from the kernels' traces (:func:`fa_lib.theory.fixed_points.update_alignment` without automatic
    differentiation); ``weights = [W, beta]``, partner ``b`` shaped like ``beta``."""
    def trace(w: Sequence[Tensor], partner: Tensor) -> Tensor:
        g, h = kernels(w, x, activation, partner)
        return torch.diagonal(g + h, dim1=-2, dim2=-1).sum(-1)

    w, beta = weights
    return trace(weights, b) / (trace(weights, beta) * trace([w, b], b)).sqrt()
