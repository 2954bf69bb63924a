"""Unit tests of fa_lib.theory.song (float64 theory checks on hand-made and tiny cases)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_two_layer_training import F64, one_thread, outputs, tiny_problem  # noqa: F401 (one_thread: autouse fixture)

from fa_lib.chapters.two_layer_convergence.experiments import tail_fit
from fa_lib.data import gaussian_inputs
from fa_lib.networks import backward_pass
from fa_lib.theory.song import (
    LAMBDAS,
    LEARNING_RATES,
    WIDTHS,
    arccos_kernel,
    core_hyperparameters,
    error_signal_alignment,
    kernel_step,
    kernels,
    predicted_log_mse_slope,
    readout_only_l2_growth,
    readout_scales,
    ridge_plateau,
    ridge_residual,
    row_space_coordinates,
    steps_for_width,
)
from fa_lib.training.two_layer import init_two_layer, train_two_layer


# --------------------------------------------------------------------------- protocol
def test_protocol_constants_match_the_authors_code():
    assert [steps_for_width(p) for p in WIDTHS] == [5050, 7142, 10101, 14285, 20203, 28571, 40406]
    assert LEARNING_RATES["linear"] == 1e-3 and LEARNING_RATES["relu"] == 1e-2 and LEARNING_RATES["tanh"] == 0.1
    assert LAMBDAS["relu"] == (0.0, 0.02, 0.05, 0.2)
    assert LEARNING_RATES["sigmoid"] == 0.1 and LAMBDAS["sigmoid"] == (0.0, 0.001, 0.003, 0.01)


# --------------------------------------------------------------------------- conventions
def test_core_hyperparameters_and_kernel_step():
    assert core_hyperparameters(0.01, 0.2) == (0.02, 0.1)
    assert kernel_step(0.01, 50) == pytest.approx(4e-4)
    with pytest.raises(ValueError, match="lr"):
        core_hyperparameters(0.0, 0.1)
    with pytest.raises(ValueError, match="n"):
        kernel_step(0.1, 0)


# --------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("activation", ["linear", "relu", "tanh"])
def test_kernels_match_their_definition(activation):
    x, _, weights, feedback = tiny_problem(activation, n=4, d=5, p=6)
    g, h = kernels(weights, x, activation, feedback[1])
    psi = {"linear": lambda a: a, "relu": lambda a: max(a, 0.0), "tanh": math.tanh}[activation]
    dpsi = {"linear": lambda a: 1.0, "relu": lambda a: float(a > 0), "tanh": lambda a: 1 - math.tanh(a) ** 2}[activation]
    W, beta, b = weights[0].numpy(), weights[1].numpy(), feedback[1].numpy()
    X = x.numpy()
    for s in range(2):
        for i in range(4):
            for j in range(4):
                a_i, a_j = W[s] @ X[s, i], W[s] @ X[s, j]
                g_ij = sum(psi(a_i[r]) * psi(a_j[r]) for r in range(6)) / 6
                h_ij = sum(beta[s, 0, r] * b[s, 0, r] * dpsi(a_i[r]) * dpsi(a_j[r]) for r in range(6)) / 6 * (X[s, i] @ X[s, j])
                assert g[s, i, j].item() == pytest.approx(g_ij, rel=1e-12, abs=1e-12)
                assert h[s, i, j].item() == pytest.approx(h_ij, rel=1e-12, abs=1e-12)


def test_linear_kernel_is_x_wtw_xt_and_tends_to_xxt():
    x = gaussian_inputs(5, 4, [2], dtype=F64)
    weights, feedback = init_two_layer(4, 200000, [2], dtype=F64)
    g, _ = kernels(weights, x, "linear", feedback[1])
    w = weights[0]
    torch.testing.assert_close(g, x @ w.transpose(-1, -2) @ w @ x.transpose(-1, -2) / 200000)
    torch.testing.assert_close(g, x @ x.transpose(-1, -2), rtol=0.02, atol=0.05)


def test_arccos_kernel_matches_a_monte_carlo_estimate():
    x = gaussian_inputs(5, 7, [5], dtype=F64)[0]
    x[1] = -x[0]  # an antipodal pair (angle pi) and a repeated point (angle 0)
    x[2] = 2 * x[3]
    exact = arccos_kernel(x)
    w = torch.randn(400000, 7, dtype=F64, generator=torch.Generator().manual_seed(0))
    features = torch.relu(x @ w.T)
    estimate = features @ features.T / w.shape[0]
    sd = torch.sqrt((features.unsqueeze(1) * features.unsqueeze(0)).var(dim=-1) / w.shape[0])
    assert torch.all((estimate - exact).abs() < 5 * sd + 1e-12)
    torch.testing.assert_close(exact.diagonal(), (x**2).sum(-1) / 2)
    assert exact[0, 1].item() == pytest.approx(0.0, abs=1e-12)


def test_relu_kernel_tends_to_the_arccos_kernel():
    x = gaussian_inputs(4, 6, [8], dtype=F64)
    weights, feedback = init_two_layer(6, 100000, [8], dtype=F64)
    g, _ = kernels(weights, x, "relu", feedback[1])
    torch.testing.assert_close(g[0], arccos_kernel(x[0]), rtol=0.03, atol=0.05)


@pytest.mark.parametrize("rule", ["fa", "bp"])
@pytest.mark.parametrize("activation", ["linear", "relu", "tanh"])
def test_one_step_output_change_is_minus_eta_g_plus_h_times_e(rule, activation):
    x, y, weights, feedback = tiny_problem(activation, n=5, d=8, p=40)
    lr = 1e-6
    partner = feedback[1] if rule == "fa" else weights[1]
    g, h = kernels(weights, x, activation, partner)
    before = outputs(weights, x, activation)
    run = train_two_layer(weights, x, y, rule=rule, activation=activation, lr=lr, lam=0.0, steps=1, feedback=feedback)
    change = outputs(run.weights, x, activation) - before
    predicted = -kernel_step(lr, x.shape[1]) * (g + h) @ (before - y)
    torch.testing.assert_close(change, predicted, rtol=1e-4, atol=1e-12)


@pytest.mark.parametrize("activation", ["linear", "relu", "tanh"])
def test_readout_only_l2_law_holds_exactly_for_one_step_of_a_homogeneous_activation(activation):
    """FA with L2 on beta only, one float64 step of train_two_layer: Delta||W||^2 - ||Delta W||^2 = 2 Delta<beta, b> + 2 lr lam
    <beta, b> for linear and ReLU (psi'(z) z = psi(z)); tanh misses it by far more than rounding."""
    x, y, weights, feedback = tiny_problem(activation, n=5, d=8, p=40)
    lr, lam = 0.05, 0.3
    run = train_two_layer(weights, x, y, rule="fa", activation=activation, lr=lr, lam=lam, steps=1, feedback=feedback, keep_weights_at=0)
    (w0, beta0), (w1, beta1), b = run.kept_weights, run.weights, feedback[1]
    torch.testing.assert_close(w0, weights[0], rtol=0, atol=0)
    overlap = (beta0 * b).sum(dim=(1, 2))
    np.testing.assert_allclose(run.overlap, torch.stack([overlap, (beta1 * b).sum(dim=(1, 2))]).numpy(), rtol=1e-12)
    left = w1.square().sum(dim=(1, 2)) - w0.square().sum(dim=(1, 2)) - (w1 - w0).square().sum(dim=(1, 2))
    right = 2 * ((beta1 - beta0) * b).sum(dim=(1, 2)) + readout_only_l2_growth(overlap, lr, lam)
    if activation == "tanh":
        assert torch.all((left - right).abs() > 1e-6 * right.abs())
    else:
        torch.testing.assert_close(left, right, rtol=1e-9, atol=1e-12)
    assert readout_only_l2_growth(torch.tensor([2.0], dtype=F64), 0.1, 0.5).item() == pytest.approx(0.2)
    with pytest.raises(ValueError, match="keep_weights_at=2 must be at most steps=1"):
        train_two_layer(weights, x, y, rule="fa", activation=activation, lr=lr, lam=lam, steps=1, feedback=feedback, keep_weights_at=2)


def test_ridge_residual_solves_its_equation():
    g = torch.tensor([[[3.0, 1.0], [1.0, 2.0]]], dtype=F64)
    y = torch.tensor([[[1.0], [-2.0]]], dtype=F64)
    lam = 0.5  # lam' = n lam / 2 = 0.5
    e = ridge_residual(g, y, lam)
    torch.testing.assert_close((g + 0.5 * torch.eye(2, dtype=F64)) @ e, -0.5 * y)
    assert ridge_plateau(g, y, lam).item() == pytest.approx((e**2).mean().item())
    assert ridge_plateau(g, y, 0.0).item() == 0.0
    both = ridge_plateau(g.expand(2, 2, 2), y.expand(2, 2, 1), torch.tensor([0.5, 0.0], dtype=F64))
    np.testing.assert_allclose(both.numpy(), [ridge_plateau(g, y, lam).item(), 0.0])


def test_ridge_plateau_is_the_fixed_point_of_the_beta_update():
    """A long float64 run of the authors' beta-update (features frozen) converges to lam' = n lam / 2."""
    x, y, weights, _ = tiny_problem("relu", n=6, d=9, p=30)
    lr, lam = 0.05, 0.3
    eta, l2 = core_hyperparameters(lr, lam)
    kw = dict(rule="bp", activation="relu", layer_scales=readout_scales(30), validate=False)
    beta = weights[1].clone()
    for _ in range(4000):
        beta -= eta * (backward_pass([weights[0], beta], x, y, **kw).grads[1] + l2 * beta)
    mse = 2 * backward_pass([weights[0], beta], x, y, **kw).loss
    g, _ = kernels(weights, x, "relu", weights[1])
    torch.testing.assert_close(mse, ridge_plateau(g, y, lam), rtol=1e-9, atol=0)
    torch.testing.assert_close(outputs([weights[0], beta], x, "relu") - y, ridge_residual(g, y, lam), rtol=1e-8, atol=1e-12)


def test_predicted_slope_matches_a_run_with_a_frozen_kernel():
    """With features frozen (beta-only steps, lam = 0) ln MSE falls at 2 ln(1 - eta lambda_min(G))."""
    x, y, weights, _ = tiny_problem("relu", n=6, d=9, p=30)
    lr = 0.02
    eta, _ = core_hyperparameters(lr, 0.0)
    kw = dict(rule="bp", activation="relu", layer_scales=readout_scales(30), validate=False)
    beta, mse = weights[1].clone(), []
    for _ in range(3000):
        result = backward_pass([weights[0], beta], x, y, **kw)
        mse.append(2 * result.loss)
        beta -= eta * result.grads[1]
    slope, r2, window = tail_fit(torch.stack(mse).numpy())
    g, _ = kernels(weights, x, "relu", weights[1])
    predicted = predicted_log_mse_slope(g, torch.zeros_like(g), lr, x.shape[1])
    np.testing.assert_allclose(slope, predicted.numpy(), rtol=0.02)
    assert np.all(r2 > 0.999) and np.all(window[:, 1] > window[:, 0])
    lam_min = torch.linalg.eigvalsh(g)[:, 0]
    np.testing.assert_allclose(predicted.numpy(), (-4 * lr * lam_min / x.shape[1]).numpy())


# --------------------------------------------------------------------------- row-space coordinates
@pytest.mark.parametrize("rule", ["fa", "bp"])
def test_row_space_coordinates_give_the_same_trajectory(rule):
    x, y, weights, feedback = tiny_problem("tanh", n=5, d=12, p=20)
    kw = dict(rule=rule, activation="tanh", lr=0.05, lam=torch.tensor([0.0, 0.1], dtype=F64), steps=60, feedback=feedback)
    full = train_two_layer(weights, x, y, **kw)
    x_r, w_r = row_space_coordinates(x, weights[0])
    assert x_r.shape == (2, 5, 5) and w_r.shape == (2, 20, 5)
    reduced = train_two_layer([w_r, weights[1]], x_r, y, **kw)
    np.testing.assert_allclose(reduced.mse, full.mse, rtol=1e-10)
    np.testing.assert_allclose(reduced.alignment, full.alignment, rtol=1e-10)
    torch.testing.assert_close(x_r @ x_r.transpose(-1, -2), x @ x.transpose(-1, -2))


# --------------------------------------------------------------------------- real data
def test_error_signal_alignment_by_hand():
    weights = [torch.eye(2, dtype=F64).unsqueeze(0), torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]], dtype=F64)]
    b = torch.tensor([[[1.0, 0.0], [0.0, -1.0], [2.0, 0.0]]], dtype=F64)
    x = torch.tensor([[0.0, 0.0], [1.0, 2.0]], dtype=F64)
    y = torch.tensor([0, 2])
    value = error_signal_alignment(weights, [None, b], x, y)
    expected = []
    for i in range(2):
        f = torch.relu(x[i] @ weights[0][0].T) @ weights[1][0].T / math.sqrt(2)
        e = torch.softmax(f, 0) - torch.nn.functional.one_hot(y[i], 3)
        expected.append(torch.nn.functional.cosine_similarity(e @ b[0], e @ weights[1][0], dim=0))
    assert value.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-12)


def test_bad_arguments_raise():
    x, y, weights, feedback = tiny_problem("relu")
    with pytest.raises(ValueError, match="partner"):
        kernels(weights, x, "relu", feedback[1][..., :3])
    with pytest.raises(ValueError, match="layers"):
        kernels(weights[:1], x, "relu", feedback[1])
    with pytest.raises(ValueError, match="p="):
        steps_for_width(0)
    with pytest.raises(ValueError, match="first_layer"):
        row_space_coordinates(x, weights[0][..., :3])
