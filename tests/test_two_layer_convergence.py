"""Unit tests of fa_lib.chapters.two_layer_convergence (float64 theory checks on hand-made and tiny cases)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fa_lib.data import ClassificationData, gaussian_inputs
from fa_lib.networks import backward_pass, forward, init_weights
from fa_lib.chapters.two_layer_convergence import (
    AlignmentCell,
    StopRule,
    TwoLayerStep,
    alignment_rows,
    batch_size,
    cache_block,
    compare_with_authors,
    cost_per_unit,
    paper_cost_hours,
    plateau_rows,
    rate_rows,
    run_alignment_cell,
    run_curve_cell,
    sweep_jobs,
    tolerance_against_authors,
    train_until_settled,
    LAMBDAS,
    LEARNING_RATES,
    PUBLISHED_ALIGNMENT,
    WIDTHS,
    arccos_kernel,
    core_hyperparameters,
    error_signal_alignment,
    init_two_layer,
    kernel_step,
    kernels,
    predicted_log_mse_slope,
    published_alignment,
    readout_scales,
    ridge_plateau,
    ridge_residual,
    row_space_coordinates,
    run_real_data,
    steps_for_width,
    synthetic_data,
    tail_fit,
    train_two_layer,
    trial_seeds,
)

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny float64 problems run faster (and steadier on a shared machine) on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_problem(activation="relu", n=6, d=9, p=7, seeds=(3, 4), dtype=F64):
    x, y = synthetic_data(activation, n, d, p, list(seeds), dtype=dtype)
    weights, feedback = init_two_layer(d, p, list(seeds), dtype=dtype)
    return x, y, weights, feedback


def outputs(weights, x, activation):
    return forward(weights, x, activation, layer_scales=readout_scales(weights[0].shape[-2])).output


# --------------------------------------------------------------------------- protocol and data
def test_protocol_constants_match_the_authors_code():
    assert [steps_for_width(p) for p in WIDTHS] == [5050, 7142, 10101, 14285, 20203, 28571, 40406]
    assert LEARNING_RATES["linear"] == 1e-3 and LEARNING_RATES["relu"] == 1e-2 and LEARNING_RATES["tanh"] == 0.1
    assert LAMBDAS["relu"] == (0.0, 0.02, 0.05, 0.2)
    assert published_alignment("relu", 0.0, 200) == (0.220, 0.051)
    assert published_alignment("relu", 0.2, 12800) == (0.846, 0.042)
    assert published_alignment("linear", 0.0, 800) == (0.059, 0.033)
    assert published_alignment("linear", 0.2, 200) == (0.790, 0.027)
    assert published_alignment("linear", 0.5, 12800) == (0.866, 0.018)
    assert published_alignment("tanh", 0.0, 200) == (0.260, 0.055)
    assert published_alignment("tanh", 0.005, 3200) == (0.533, 0.019)
    assert published_alignment("sigmoid", 0.0, 200) is None  # kept back by the specification
    assert LEARNING_RATES["sigmoid"] == 0.1 and LAMBDAS["sigmoid"] == (0.0, 0.001, 0.003, 0.01)
    assert len(PUBLISHED_ALIGNMENT) == 12 and all(len(row) == len(WIDTHS) for row in PUBLISHED_ALIGNMENT.values())
    assert set(PUBLISHED_ALIGNMENT) == {(a, lam) for a in ("linear", "relu", "tanh") for lam in LAMBDAS[a]}


def test_synthetic_targets_follow_the_authors_teachers():
    seeds = [11, 12]
    x, y = synthetic_data("linear", 5, 8, 30, seeds, dtype=F64)
    theta = init_weights([8, 1], seeds, std=1.0, dtype=F64, stream="teacher")[0]
    torch.testing.assert_close(y, x @ theta.transpose(-1, -2))
    x, y = synthetic_data("tanh", 5, 8, 30, seeds, dtype=F64)
    teacher = init_weights([8, 30, 1], seeds, std=1.0, dtype=F64, stream="teacher")
    expected = (torch.tanh(x @ teacher[0].transpose(-1, -2)) @ teacher[1].transpose(-1, -2)) / math.sqrt(30)
    torch.testing.assert_close(y, expected)
    assert torch.equal(x, gaussian_inputs(5, 8, seeds, dtype=F64))


def test_init_is_standard_normal_and_feedback_independent():
    weights, feedback = init_two_layer(150, 4000, [1], dtype=F64)
    assert weights[0].shape == (1, 4000, 150) and weights[1].shape == (1, 1, 4000) and feedback[1].shape == (1, 1, 4000)
    assert feedback[0] is None
    assert abs(weights[0].std().item() - 1) < 0.01 and abs(weights[1].std().item() - 1) < 0.05
    assert abs(feedback[1].std().item() - 1) < 0.05
    assert abs(torch.corrcoef(torch.stack([weights[1].flatten(), feedback[1].flatten()]))[0, 1]) < 0.06


def test_trial_seeds_are_distinct_and_reproducible():
    a = trial_seeds(0, "relu", 200, 5)
    assert a == trial_seeds(0, "relu", 200, 5) and len(set(a)) == 5
    assert not set(a) & set(trial_seeds(0, "relu", 400, 5))
    assert not set(a) & set(trial_seeds(0, "tanh", 200, 5))
    assert not set(a) & set(trial_seeds(1, "relu", 200, 5))
    # every lambda and each experiment has its own draws, as in the authors' loop
    assert not set(a) & set(trial_seeds(0, "relu", 200, 5, lam=0.02))
    assert not set(a) & set(trial_seeds(0, "relu", 200, 5, experiment="curves"))
    assert trial_seeds(0, "relu", 200, 5, lam=0.0) == a


# --------------------------------------------------------------------------- conventions
@pytest.mark.parametrize("activation", ["linear", "relu", "tanh"])
def test_bp_step_is_pytorch_mseloss_sgd_with_l2_on_beta(activation):
    """One step of train_two_layer(bp) equals lr * (autograd of nn.MSELoss + lam beta) on beta, plain on W."""
    x, y, weights, feedback = tiny_problem(activation)
    lr, lam = 0.01, 0.3
    w, beta = (t.clone().requires_grad_(True) for t in weights)
    p = w.shape[-2]
    f = (torch.relu if activation == "relu" else torch.tanh if activation == "tanh" else (lambda a: a))(x @ w.transpose(-1, -2)) @ beta.transpose(-1, -2) / math.sqrt(p)
    losses = [torch.nn.MSELoss()(f[s], y[s]) for s in range(x.shape[0])]
    sum(losses).backward()
    run = train_two_layer(weights, x, y, rule="bp", activation=activation, lr=lr, lam=lam, steps=1, feedback=feedback)
    np.testing.assert_allclose(run.mse[0], [v.item() for v in losses], rtol=1e-12)
    torch.testing.assert_close(run.weights[0], weights[0] - lr * w.grad)
    torch.testing.assert_close(run.weights[1], weights[1] - lr * (beta.grad + lam * weights[1]))


@pytest.mark.parametrize("activation", ["linear", "relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("rule", ["fa", "bp"])
def test_two_layer_step_is_the_core_backward_pass(activation, rule):
    """TwoLayerStep's in-place arithmetic equals fa_lib.networks.backward_pass's update, per-seed lambda included."""
    x, y, weights, feedback = tiny_problem(activation, seeds=(3, 4, 5))
    lr, lam = 0.01, torch.tensor([0.0, 0.1, 0.3], dtype=F64)
    reference = backward_pass(weights, x, y, rule=rule, activation=activation, feedback=feedback if rule == "fa" else None,
                              layer_scales=readout_scales(weights[0].shape[-2]))
    eta, l2 = core_hyperparameters(lr, lam)
    stepper = TwoLayerStep(x, y, weights, feedback[1], rule=rule, activation=activation, lr=lr, lam=lam)
    torch.testing.assert_close(stepper.mse(), 2 * reference.loss)
    torch.testing.assert_close(stepper.step(), 2 * reference.loss)
    current = stepper.weights()  # nonlinear networks: recovered from the pre-activations they are trained on
    torch.testing.assert_close(current[0], weights[0] - eta * reference.grads[0], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(current[1], weights[1] - eta * (reference.grads[1] + l2.reshape(3, 1, 1) * weights[1]),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_training_on_the_pre_activations_follows_the_weights_trajectory(activation):
    """Many steps on A = x W^T (one product per step) stay on the trajectory of many backward_pass steps."""
    x, y, weights, feedback = tiny_problem(activation, n=5, d=12, p=20)
    lr, lam, steps = 0.05, torch.tensor([0.0, 0.2], dtype=F64), 200
    eta, l2 = core_hyperparameters(lr, lam)
    reference = [w.clone() for w in weights]
    for _ in range(steps):
        grads = backward_pass(reference, x, y, rule="fa", activation=activation, feedback=feedback,
                              layer_scales=readout_scales(20)).grads
        reference = [reference[0] - eta * grads[0], reference[1] - eta * (grads[1] + l2.reshape(2, 1, 1) * reference[1])]
    stepper = TwoLayerStep(x, y, weights, feedback[1], rule="fa", activation=activation, lr=lr, lam=lam)
    for _ in range(steps):
        stepper.step()
    torch.testing.assert_close(stepper.weights()[0], reference[0], rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(stepper.weights()[1], reference[1], rtol=1e-9, atol=1e-11)


def test_two_layer_step_keeps_and_loads_networks():
    x, y, weights, feedback = tiny_problem("relu", seeds=(3, 4, 5))
    stepper = TwoLayerStep(x, y, weights, feedback[1], rule="fa", activation="relu", lr=0.01, lam=0.1)
    stepper.keep(torch.tensor([2, 0]))
    alone = TwoLayerStep(x[2:], y[2:], [w[2:] for w in weights], feedback[1][2:], rule="fa", activation="relu",
                         lr=0.01, lam=0.1)
    torch.testing.assert_close(stepper.step()[0], alone.step()[0])
    stepper.load(1, x[1], y[1], [w[1] for w in weights], feedback[1][1], 0.1)
    fresh = TwoLayerStep(x[1:2], y[1:2], [w[1:2] for w in weights], feedback[1][1:2], rule="fa",
                         activation="relu", lr=0.01, lam=0.1)
    torch.testing.assert_close(stepper.step()[1], fresh.step()[0])
    torch.testing.assert_close(stepper.weights()[0][1], fresh.weights()[0][0])


def test_fa_step_sends_the_error_through_b():
    x, y, weights, feedback = tiny_problem("relu")
    lr = 0.01
    b = feedback[1]
    w = weights[0].clone().requires_grad_(True)
    p = w.shape[-2]
    e = (outputs(weights, x, "relu") - y).detach()
    f_b = torch.relu(x @ w.transpose(-1, -2)) @ b.transpose(-1, -2) / math.sqrt(p)  # beta replaced by b
    (2.0 / x.shape[1] * (e * f_b).sum()).backward()  # d/dW of this is dMSE/dW with b in place of beta
    run = train_two_layer(weights, x, y, rule="fa", activation="relu", lr=lr, lam=0.0, steps=1, feedback=feedback)
    torch.testing.assert_close(run.weights[0], weights[0] - lr * w.grad)


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


# --------------------------------------------------------------------------- training
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


def test_divergence_is_detected_and_masked():
    x, y, weights, feedback = tiny_problem("relu")
    run = train_two_layer(weights, x, y, rule="fa", activation="relu", lr=1e3, lam=0.0, steps=40, feedback=feedback)
    assert run.diverged.all() and np.all(run.diverged_step > 0)
    assert np.isnan(run.alignment).all()
    for s, step in enumerate(run.diverged_step):
        assert np.isfinite(run.mse[:step, s]).all() and np.isnan(run.mse[step:, s]).all()
    calm = train_two_layer(weights, x, y, rule="fa", activation="relu", lr=1e-3, lam=0.0, steps=5, feedback=feedback)
    assert not calm.diverged.any() and np.all(calm.diverged_step == -1) and np.isfinite(calm.mse).all()


def test_tail_fit_recovers_an_exponential_and_stops_at_the_floor():
    steps = np.arange(1001)
    curve = np.stack([10 * np.exp(-0.01 * steps), 5 * np.exp(-0.05 * steps), np.full(1001, np.nan)], axis=1)
    slope, r2, window = tail_fit(curve)
    np.testing.assert_allclose(slope[:2], [-0.01, -0.05], rtol=1e-9)
    np.testing.assert_allclose(r2[:2], 1.0)
    assert np.isnan(slope[2]) and np.isnan(r2[2])
    end = int(np.flatnonzero(curve[:, 1] < 5e-7)[0])  # 7 decades below the start
    assert window[0].tolist() == [500, 1000] and window[1].tolist() == [end // 2, end]


def test_curve_cell_is_one_batch_of_independent_trials():
    kw = dict(lams=(0.0, 0.3), steps=30, n=6, d=9)
    cell = run_curve_cell("relu", 16, 2, dtype=F64, block="all", **kw)
    assert cell.mse.shape == (31, 4) and cell.lam.tolist() == [0.0, 0.0, 0.3, 0.3] and cell.trial.tolist() == [0, 1, 0, 1]
    assert len(set(cell.seeds.tolist())) == 4  # every lambda draws its own trials
    assert cell.seeds.tolist() == trial_seeds(0, "relu", 16, 2, experiment="curves") + trial_seeds(0, "relu", 16, 2, lam=0.3, experiment="curves")
    blocked = run_curve_cell("relu", 16, 2, dtype=F64, block=3, **kw)
    np.testing.assert_allclose(blocked.mse, cell.mse, rtol=1e-10)
    np.testing.assert_allclose(blocked.ridge_mse_final, cell.ridge_mse_final, rtol=1e-10)
    np.testing.assert_allclose(cell.mse[0, :], 2 * backward_pass(*_full_model(cell, 16), rule="bp", activation="relu", layer_scales=readout_scales(16)).loss.numpy())
    assert np.all(cell.ridge_mse[:2] == 0.0) and np.all(cell.ridge_mse[2:] > 0)
    assert cell.steps == 30 and cell.lr == LEARNING_RATES["relu"] and not cell.diverged.any()
    assert cell.select(0.3).tolist() == [False, False, True, True]
    bp = run_curve_cell("relu", 16, 2, rule="bp", dtype=F64, lams=(0.0,), steps=30, n=6, d=9)
    assert bp.seeds.tolist() == cell.seeds[:2].tolist()  # BP starts from the FA lambda = 0 networks
    np.testing.assert_allclose(bp.mse[0], cell.mse[0, :2], rtol=1e-12)


def test_summary_rows():
    fa = run_curve_cell("relu", 16, 3, lams=(0.0, 0.02), steps=40, n=6, d=9, dtype=F64)
    bp = run_curve_cell("relu", 16, 3, rule="bp", lams=(0.0,), steps=40, n=6, d=9, dtype=F64)
    fa.diverged[1] = True  # pretend trial 1 diverged at lam = 0
    rates = rate_rows([fa, bp])
    assert [(r["rule"], r["trials"], r["diverged"]) for r in rates] == [("fa", 2, 1), ("bp", 3, 0)]
    assert rates[0]["measured_slope"] == pytest.approx(np.mean(fa.measured_slope[[0, 2]]))
    assert rates[1]["ratio"] == pytest.approx(np.mean(bp.measured_slope) / np.mean(bp.predicted_slope))
    plateaus = plateau_rows([fa, bp])
    assert len(plateaus) == 1 and plateaus[0]["lam"] == 0.02
    assert plateaus[0]["ratio"] == pytest.approx(np.mean(fa.mse[-1, 3:] / fa.ridge_mse[3:]))


# --------------------------------------------------------------------------- the authors' run length
def test_stop_rule_against_hand_computed_checks():
    rule = StopRule(5050)  # checks at t = 999, 1999, ...: after 1000, 2000, ... updates
    # settled at the very first check (|0.0005 - 0| < 1e-3): still runs to T_min
    assert rule.stop_step([0.0005, 0.0004]) == 5050
    # settled early, before T_min (checks 2 and 3 differ by < 1e-3): stops at T_min
    assert rule.stop_step([0.5, 0.3, 0.2995, 0.2, 0.1]) == 5050
    # not settled until the third check after T_min (checks 5, 6, 7 are after 5050): stops there
    falling = [1.0 - 0.01 * k for k in range(7)] + [0.9395]
    assert rule.stop_step(falling) == 8000
    assert rule.stop_step(falling[:-1]) is None  # not yet stopped
    # the change is compared with the previous check, not with the best so far; and it is absolute
    assert rule.stop_step([2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.9995]) == 8000
    assert StopRule(3000).stop_step([0.5, 0.49, 0.4895]) == 3000  # settles at the check that ends at T_min


def test_stop_rule_events():
    rule = StopRule(5050, max_steps=20000)
    done = np.array([0, 999, 1000, 4500, 5000, 5050, 19990])
    assert rule.steps_to_event(done).tolist() == [1000, 1, 1000, 500, 50, 950, 10]
    assert StopRule.for_width(200) == StopRule(5050, max_steps=101000)
    with pytest.raises(ValueError, match="max_steps"):
        StopRule(5050, max_steps=100)


def _settling_problem(n_networks=4):
    """Tiny FA problems whose networks settle at different checks under a short rule."""
    x, y, weights, feedback = tiny_problem("relu", n=6, d=9, p=12, seeds=tuple(range(20, 20 + n_networks)))
    lam = torch.linspace(0.0, 0.6, n_networks, dtype=F64)
    return x, y, weights, feedback, lam, StopRule(25, every=10, tolerance=2e-4, max_steps=4000)


def test_train_until_settled_stops_each_network_by_the_rule():
    x, y, weights, feedback, lam, rule = _settling_problem()
    runs = train_until_settled(weights, x, y, rule="fa", activation="relu", lr=0.05, lam=lam, stop=rule, feedback=feedback)
    assert runs.settled.all() and not runs.diverged.any()
    assert len(set(runs.steps.tolist())) > 1, "the test needs networks that stop at different steps"
    for k in range(len(lam)):
        checks = runs.check_mse[:, k][np.isfinite(runs.check_mse[:, k])]
        assert rule.stop_step(checks.tolist()) == runs.steps[k]  # the batched runner follows the reference rule
    # the alignment and MSE are those of each network's own stop
    alone = train_two_layer([w[:1] for w in weights], x[:1], y[:1], rule="fa", activation="relu", lr=0.05, lam=lam[:1],
                            steps=int(runs.steps[0]), feedback=[None, feedback[1][:1]])
    assert runs.alignment[0] == pytest.approx(alone.alignment[0], rel=1e-10)
    assert runs.mse[0] == pytest.approx(alone.mse[-1, 0], rel=1e-10)
    at_min = train_two_layer([w[:1] for w in weights], x[:1], y[:1], rule="fa", activation="relu", lr=0.05, lam=lam[:1],
                             steps=rule.min_steps, feedback=[None, feedback[1][:1]])
    assert runs.alignment_at_min[0] == pytest.approx(at_min.alignment[0], rel=1e-10)


@pytest.mark.parametrize("block", [1, 2, 3, None])
def test_mixed_stop_times_equal_each_network_alone(block):
    x, y, weights, feedback, lam, rule = _settling_problem()
    kw = dict(rule="fa", activation="relu", lr=0.05, stop=rule)
    batch = train_until_settled(weights, x, y, lam=lam, feedback=feedback, block=block, **kw)
    for k in range(len(lam)):
        one = train_until_settled([w[k : k + 1] for w in weights], x[k : k + 1], y[k : k + 1], lam=lam[k : k + 1],
                                  feedback=[None, feedback[1][k : k + 1]], **kw)
        assert one.steps[0] == batch.steps[k]
        assert one.alignment[0] == pytest.approx(batch.alignment[k], rel=1e-10)
        assert one.mse[0] == pytest.approx(batch.mse[k], rel=1e-10)
        assert one.alignment_at_min[0] == pytest.approx(batch.alignment_at_min[k], rel=1e-10)


def test_train_until_settled_reports_divergence_and_the_cap():
    x, y, weights, feedback, lam, rule = _settling_problem(2)
    wild = train_until_settled(weights, x, y, rule="fa", activation="relu", lr=1e3, lam=0.0, stop=rule, feedback=feedback)
    assert wild.diverged.all() and not wild.settled.any() and np.isnan(wild.alignment).all() and np.all(wild.steps < 4000)
    strict = StopRule(25, every=10, tolerance=1e-30, max_steps=60)
    capped = train_until_settled(weights, x, y, rule="fa", activation="relu", lr=0.05, lam=lam, stop=strict, feedback=feedback)
    assert capped.steps.tolist() == [60, 60] and not capped.settled.any() and not capped.diverged.any()
    assert np.isfinite(capped.alignment).all()


def test_alignment_cell_draws_every_lambda_independently():
    rule = StopRule(25, every=10, tolerance=1e-3, max_steps=400)
    cell = run_alignment_cell("relu", 12, 2, lams=(0.0, 0.3), stop=rule, n=6, d=9, dtype=F64)
    assert isinstance(cell, AlignmentCell) and cell.lam.tolist() == [0.0, 0.0, 0.3, 0.3] and cell.trial.tolist() == [0, 1, 0, 1]
    assert cell.seeds.tolist() == trial_seeds(0, "relu", 12, 2) + trial_seeds(0, "relu", 12, 2, lam=0.3)
    assert len(set(cell.alignment_init.tolist())) == 4 and cell.min_steps == 25
    rows = alignment_rows([cell])
    assert [r["lam"] for r in rows] == [0.0, 0.3] and rows[0]["authors_mean"] is None  # p = 12: no published cell
    mask = cell.select(0.3)
    assert rows[1]["mean"] == pytest.approx(np.mean(cell.alignment[mask]))
    assert rows[1]["mean_at_min"] == pytest.approx(np.mean(cell.alignment_at_min[mask]))
    assert rows[1]["steps_mean"] == pytest.approx(np.mean(cell.steps[mask])) and rows[1]["steps_max"] == cell.steps[mask].max()
    assert set(rows[0]) >= {"activation", "lam", "p", "mean", "sd", "trials", "steps_mean", "steps_max"}


def test_sigmoid_cells_use_the_authors_settings():
    cell = run_alignment_cell("sigmoid", 12, 1, stop=StopRule(25, every=10, max_steps=100), n=6, d=9, dtype=F64)
    assert cell.lr == 0.1 and cell.lams == (0.0, 0.001, 0.003, 0.01) and np.isfinite(cell.alignment).all()
    rows = alignment_rows([cell])
    assert all(r["authors_mean"] is None and r["difference"] is None for r in rows)  # their table is kept back
    assert compare_with_authors(rows, "sigmoid", regularised=True) == {}


def test_comparison_with_the_authors_uses_the_specified_tolerances():
    rows = [
        {"activation": "relu", "lam": 0.0, "p": 200, "mean": 0.25, "trials": 10, "diverged": 0, "unsettled": 0,
         "authors_mean": 0.220, "authors_sd": 0.051, "difference": 0.03},
        {"activation": "relu", "lam": 0.2, "p": 200, "mean": 0.77, "trials": 10, "diverged": 0, "unsettled": 0,
         "authors_mean": 0.858, "authors_sd": 0.061, "difference": 0.77 - 0.858},
        {"activation": "relu", "lam": 0.05, "p": 200, "mean": 0.70, "trials": 10, "diverged": 0, "unsettled": 1,
         "authors_mean": 0.682, "authors_sd": 0.048, "difference": 0.018},
    ]
    assert tolerance_against_authors(rows[0]) == pytest.approx(2 * 0.051 / math.sqrt(10) + 0.02)
    assert tolerance_against_authors(rows[1]) == 0.08
    zero = compare_with_authors(rows, "relu", regularised=False)
    assert list(zero) == ["lam=0 p=200"] and zero["lam=0 p=200"]["ok"]  # 0.03 <= 0.052
    aligned = compare_with_authors(rows, "relu", regularised=True)
    assert not aligned["lam=0.2 p=200"]["ok"]  # 0.088 > 0.08
    assert not aligned["lam=0.05 p=200"]["ok"]  # within 0.08, but a trial never settled
    assert compare_with_authors(rows, "tanh", regularised=True) == {}


def test_batch_sizes_and_jobs():
    assert cache_block(200) == 16 and cache_block(800) == 6 and cache_block(3200) == 2
    assert batch_size("auto", "relu", 800, 40) == 6 and batch_size("auto", "linear", 800, 40) == 40
    assert batch_size("all", "relu", 800, 40) == 40 and batch_size(3, "relu", 800, 2) == 2
    with pytest.raises(ValueError, match="block='some'"):
        batch_size("some", "relu", 800, 40)
    with pytest.raises(ValueError, match="block=0"):
        batch_size(0, "relu", 800, 40)
    jobs = sweep_jobs(("linear", "relu"), (200, 800), 2, curve_width=3200, curve_trials=4, seed=1)
    kinds = [(fn.__name__, kw["activation"], kw["p"], kw.get("rule")) for fn, kw in jobs]
    assert len(jobs) == 8 and kinds[0] == ("run_curve_cell", "relu", 3200, "fa")  # the longest first
    assert {k for k in kinds if k[0] == "run_alignment_cell"} == {("run_alignment_cell", a, p, None) for a in ("linear", "relu") for p in (200, 800)}
    with_real = sweep_jobs(("relu",), (200,), 2, curve_width=200, curve_trials=1, seed=1,
                           real=dict(seeds=[5], epochs=10, records=4))
    assert with_real[0][0].__name__ == "run_real_data_on" and with_real[0][1]["seeds"] == [5] and len(with_real) == 4
    with pytest.raises(ValueError, match="activations"):
        sweep_jobs(("softplus",), (200,), 1, curve_width=200, curve_trials=1, seed=0)


def test_cost_estimates_scale_with_the_work():
    rule = StopRule(25, every=10, tolerance=1e-3, max_steps=400)
    cell = run_alignment_cell("relu", 12, 2, lams=(0.0, 0.3), stop=rule, n=6, d=9, dtype=F64)
    unit = cost_per_unit([cell])
    assert unit["relu"] == pytest.approx(cell.seconds / (cell.steps.sum() * 12))
    hours = paper_cost_hours([cell], unit)
    multiples = [np.mean(cell.steps[cell.select(lam)]) / 25 for lam in (0.0, 0.3)]
    expected = sum(m for m in multiples) * sum(50 * steps_for_width(p) * p for p in WIDTHS) * unit["relu"] / 3600
    assert hours["alignment"] == pytest.approx(expected)
    assert hours["curves"] == pytest.approx(3 * 50 * 5000 * 3200 * unit["relu"] / 3600)


def _full_model(cell, p):
    x, y = synthetic_data("relu", 6, 9, p, cell.seeds, dtype=F64)
    weights, _ = init_two_layer(9, p, cell.seeds, dtype=F64)
    return weights, x, y


def test_bp_cell_predicts_with_beta_squared():
    cell = run_curve_cell("linear", 12, 1, rule="bp", lams=(0.0,), steps=20, n=4, d=6, dtype=F64)
    x, _ = synthetic_data("linear", 4, 6, 12, cell.seeds.tolist(), dtype=F64)
    weights, _ = init_two_layer(6, 12, cell.seeds.tolist(), dtype=F64)
    g, h = kernels(weights, x, "linear", weights[1])
    np.testing.assert_allclose(cell.predicted_slope, predicted_log_mse_slope(g, h, 1e-3, 4).numpy(), rtol=1e-10)
    assert np.all(np.linalg.eigvalsh(h.numpy()) >= -1e-10)  # BP's H is positive semi-definite


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


def test_run_real_data_shares_initialisation_across_lambdas():
    gen = torch.Generator().manual_seed(0)
    data = ClassificationData(
        name="random", directory=None, sha256={},
        x_train=torch.randn(120, 20, generator=gen), y_train=torch.randint(0, 10, (120,), generator=gen),
        x_test=torch.randn(40, 20, generator=gen), y_test=torch.randint(0, 10, (40,), generator=gen),
    )
    result = run_real_data(data, [1, 2], lams=(0.0, 0.5), epochs=2, batch_size=30, hidden=16, records=4, n_probe=30)
    history = result.history
    assert result.lam.tolist() == [0.0, 0.5, 0.0, 0.5] and result.run.tolist() == [0, 0, 1, 1]
    assert history.steps.tolist() == [0, 2, 4, 6, 8] and result.epochs.tolist() == [0, 0.5, 1, 1.5, 2]
    alignment = history.metrics["error_alignment"]
    assert alignment.shape == (5, 4) and alignment[0, 0] == alignment[0, 1] and alignment[0, 0] != alignment[0, 2]
    assert history.metrics["test_accuracy"].shape == (5, 4) and not history.diverged.any()
    assert alignment[-1, 0] != alignment[-1, 1]  # lambda acts on the second layer


# --------------------------------------------------------------------------- bad arguments
def test_bad_arguments_raise():
    x, y, weights, feedback = tiny_problem("relu")
    with pytest.raises(ValueError, match="rule"):
        train_two_layer(weights, x, y, rule="dfa", activation="relu", lr=0.1, lam=0.0, steps=1, feedback=feedback)
    with pytest.raises(ValueError, match="activation"):
        train_two_layer(weights, x, y, rule="fa", activation="softplus", lr=0.1, lam=0.0, steps=1, feedback=feedback)
    with pytest.raises(ValueError, match="lam"):
        train_two_layer(weights, x, y, rule="fa", activation="relu", lr=0.1, lam=torch.zeros(3), steps=1, feedback=feedback)
    with pytest.raises(ValueError, match="steps"):
        train_two_layer(weights, x, y, rule="fa", activation="relu", lr=0.1, lam=0.0, steps=-1, feedback=feedback)
    with pytest.raises(ValueError, match="lr"):
        train_two_layer(weights, x, y, rule="fa", activation="relu", lr=-0.1, lam=0.0, steps=1, feedback=feedback)
    with pytest.raises(ValueError, match="feedback"):
        train_two_layer(weights, x, y, rule="fa", activation="relu", lr=0.1, lam=0.0, steps=1, feedback=None)
    with pytest.raises(ValueError, match="x has shape"):
        train_two_layer(weights, x[..., :3], y, rule="fa", activation="relu", lr=0.1, lam=0.0, steps=1, feedback=feedback)
    with pytest.raises(ValueError, match="partner"):
        kernels(weights, x, "relu", feedback[1][..., :3])
    with pytest.raises(ValueError, match="layers"):
        kernels(weights[:1], x, "relu", feedback[1])
    with pytest.raises(ValueError, match="p="):
        steps_for_width(0)
    with pytest.raises(ValueError, match="activation"):
        synthetic_data("softplus", 5, 4, 3, [0])
    with pytest.raises(ValueError, match="activation"):
        run_curve_cell("elu", 10, 1)
    with pytest.raises(ValueError, match="rule"):
        run_curve_cell("relu", 10, 1, rule="dfa")
    with pytest.raises(ValueError, match="lams"):
        run_curve_cell("relu", 10, 1, lams=(-0.1,))
    with pytest.raises(ValueError, match="block=0"):
        run_curve_cell("relu", 10, 1, block=0)
    with pytest.raises(ValueError, match="activation"):
        run_alignment_cell("elu", 10, 1)
    with pytest.raises(ValueError, match="trials"):
        run_alignment_cell("relu", 10, 0)
    with pytest.raises(ValueError, match="lams"):
        run_alignment_cell("relu", 10, 1, lams=())
    with pytest.raises(ValueError, match="trials"):
        trial_seeds(0, "relu", 200, 0)
    with pytest.raises(ValueError, match="experiment"):
        trial_seeds(0, "relu", 200, 1, experiment="loss")
    with pytest.raises(ValueError, match="lam has shape"):
        train_until_settled(weights, x, y, rule="fa", activation="relu", lr=0.1, lam=torch.zeros(3), stop=StopRule(10),
                            feedback=feedback)
    with pytest.raises(ValueError, match="y has shape"):
        TwoLayerStep(x, y[..., :3, :], weights, feedback[1], rule="fa", activation="relu", lr=0.1, lam=0.0)
    with pytest.raises(ValueError, match="first_layer"):
        row_space_coordinates(x, weights[0][..., :3])


# --------------------------------------------------------------------------- the chapter's notebook helpers
import dataclasses  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fa_lib.chapters import two_layer_convergence as song  # noqa: E402
from fa_lib.results import Results  # noqa: E402


def _results(tmp_path):
    return Results("03_test", profile="ci", parameters={}, seeds=[], results_dir=tmp_path, paper="song2021convergence")


def _row(activation, lam, p, mean, *, sd=0.01, trials=10, unsettled=0):
    """A hand-made :func:`alignment_rows` row (the authors' values from their table, where published)."""
    published = published_alignment(activation, lam, p)
    return {"activation": activation, "lam": lam, "p": p, "mean": mean, "sd": sd, "mean_at_min": mean / 2, "trials": trials,
            "steps_mean": 6000.0, "steps_min": 5050, "steps_max": 7000, "min_steps": steps_for_width(p), "lr": 0.01,
            "diverged": 0, "unsettled": unsettled,
            "authors_mean": None if published is None else published[0], "authors_sd": None if published is None else published[1],
            "difference": None if published is None else mean - published[0]}


def _authors_rows(activation, p, shift=0.0):
    return [_row(activation, lam, p, PUBLISHED_ALIGNMENT[activation, lam][p][0] + shift) for lam in LAMBDAS[activation]]


@pytest.fixture(scope="module")
def tiny_outcomes():
    """Tiny alignment and curve cells (ReLU, p = 12 and 16) and a tiny real-data run, in a job order."""
    stop = StopRule(25, every=10, tolerance=1e-3, max_steps=200)
    align = [run_alignment_cell("relu", p, 2, lams=(0.0, 0.3), stop=stop, n=6, d=9, dtype=F64) for p in (16, 12)]
    fa = run_curve_cell("relu", 16, 2, lams=(0.0, 0.3), steps=30, n=6, d=9, dtype=F64)
    bp = run_curve_cell("relu", 16, 2, rule="bp", lams=(0.0,), steps=30, n=6, d=9, dtype=F64)
    gen = torch.Generator().manual_seed(0)
    data = ClassificationData(
        name="random", directory=None, sha256={"train": "abc"},
        x_train=torch.randn(120, 20, generator=gen), y_train=torch.randint(0, 10, (120,), generator=gen),
        x_test=torch.randn(40, 20, generator=gen), y_test=torch.randint(0, 10, (40,), generator=gen),
    )
    real = run_real_data(data, [1], epochs=2, batch_size=30, hidden=16, records=4, n_probe=30)
    return [fa, align[0], dataclasses.replace(real, dataset="mnist"), align[1], bp]


def test_profiles_and_chapter_parameters():
    assert set(song.PROFILES) == {"ci", "default", "paper"}
    assert song.PROFILES["ci"]["widths"] == (200,) and song.PROFILES["paper"]["trials"] == 50
    assert song.check_chapter_parameters(workers=3, block="auto", activations=["tanh", "linear"]) == (3, ("linear", "tanh"))
    assert song.check_chapter_parameters(workers=3, block=4, activations=("relu",), device="cuda")[0] == 1
    assert song.check_chapter_parameters(workers=0, block="all", activations=["relu"])[0] >= 1
    for kwargs, message in [(dict(workers=-1), "workers=-1"), (dict(block="some"), "block='some'"),
                            (dict(activations=["relu", "elu"]), "activations='elu'"), (dict(activations=[]), "activations"),
                            (dict(activations=["relu", "relu"]), "distinct"), (dict(activations="relu"), "activations")]:
        with pytest.raises(ValueError, match=message):
            song.check_chapter_parameters(**{"workers": 1, "block": "auto", "activations": ["relu"], **kwargs})


def test_plan_runs_lists_every_job_and_seed():
    config = song.PROFILES["ci"]
    jobs, seeds = song.plan_runs(config, activations=("relu",), seed=3)
    assert sorted(fn.__name__ for fn, _ in jobs) == ["run_alignment_cell", "run_curve_cell", "run_curve_cell", "run_real_data_on"]
    real = next(kw for fn, kw in jobs if fn.__name__ == "run_real_data_on")
    assert real["seeds"] == song.real_data_seeds(3, 1) and real["n_train"] == 1200 and real["epochs"] == 2
    expected = {s for lam in LAMBDAS["relu"] for s in trial_seeds(3, "relu", 200, 5, lam=lam)} | set(real["seeds"])
    assert seeds == sorted(expected) and len(seeds) == 4 * 5 + 1
    assert song.real_data_seeds(3, 2)[0] == song.real_data_seeds(3, 1)[0] != song.real_data_seeds(4, 1)[0]
    numbers = song.run_numbers(song.PROFILES["default"], 7)["numbers"]
    assert numbers == dict(song_p_min=200, song_p_max=800, song_trials=10, song_workers=7, song_curve_p=3200, song_curve_trials=3)


def test_record_puts_numbers_metrics_and_texts_in_the_results(tmp_path):
    results = _results(tmp_path)
    song.record(results, numbers={"a": np.float64(1.5)}, metrics={"t": [{"x": np.int64(2)}]}, texts={"name": "MNIST"})
    assert results.metrics == {"name": "MNIST", "t": [{"x": 2}], "a": 1.5} and type(results.metrics["a"]) is float
    song.record(results)
    assert len(results.metrics) == 3


def test_kernel_check_fits_the_exponents_of_its_rows():
    rows, records = song.kernel_check(0, widths=(200, 800), draws=2)
    assert [r["p"] for r in rows] == [200, 800] and records["metrics"]["kernel_check"] is rows
    numbers = records["numbers"]
    slope = math.log(rows[1]["H(0) (FA)"] / rows[0]["H(0) (FA)"]) / math.log(4)
    assert numbers["song_h_exponent"] == pytest.approx(slope) and -0.9 < slope < -0.1  # about p^(-1/2)
    assert numbers["song_g_exponent"] < 0 and rows[1]["G(0) vs arc-cosine"] < rows[0]["G(0) vs arc-cosine"]
    assert numbers["song_relu_lambda_min_ginf"] == pytest.approx(np.mean([r["lambda_min(G_inf)"] for r in rows]))
    assert len(song.plot_kernel_check(rows).axes) == 1
    plt.close("all")


def test_protocol_and_display_rows():
    protocol = song.protocol_rows(("linear", "relu"))
    assert [r["activation"] for r in protocol] == ["linear", "relu"] and protocol[1]["fa_lib eta = 2 lr"] == 0.02
    assert protocol[1]["lambda grid (MSELoss)"] == "0, 0.02, 0.05, 0.2" and protocol[1]["fa_lib l2 = lambda/2"] == "0, 0.01, 0.025, 0.1"
    assert song.width_rows((200, 800), 5) == [{"width p": 200, "T_min": 5050, "trials per cell": 5},
                                              {"width p": 800, "T_min": 10101, "trials per cell": 5}]
    table = [_row("relu", 0.0, 200, 0.25), _row("relu", 0.2, 12, 0.5)]
    steps = song.steps_rows(table)
    assert steps[0]["steps (min-max)"] == "5050-7000" and steps[0]["steps (mean)"] == 6000 and steps[1]["λ"] == "0.2"
    shown = song.alignment_display_rows(table)
    assert shown[0]["ours"] == "0.250 ± 0.010" and shown[0]["ours − authors"] == f"{0.25 - table[0]['authors_mean']:+.3f}"
    assert shown[0]["bound"] == f"{tolerance_against_authors(table[0]):.3f}" and shown[1]["authors"] == shown[1]["bound"] == "—"


def test_linear_step_numbers_use_the_smallest_width():
    table = [_row("linear", lam, p, 0.1 + lam) for p in (400, 200) for lam in LAMBDAS["linear"]]
    table[-1]["steps_max"] = 30000
    numbers = song.linear_step_numbers(table)["numbers"]
    assert numbers["song_linear_steps_max"] == 30000 and numbers["song_linear_multiple_max"] == 30000 / 5050
    assert numbers["song_linear_full_0p5"] == pytest.approx(0.6) and numbers["song_linear_at_min_0p5"] == pytest.approx(0.3)
    assert "song_linear_full_0" not in numbers
    assert song.linear_step_numbers([_row("relu", 0.2, 200, 0.5)]) == {"numbers": {}}


def test_split_and_sweep_records_keep_the_job_order(tiny_outcomes):
    align, curves, real = song.split_outcomes(tiny_outcomes)
    assert [c.p for c in align] == [12, 16] and set(curves) == {("relu", "fa"), ("relu", "bp")} and real is tiny_outcomes[2]
    tiny_outcomes[1].diverged[0] = True
    try:
        records = song.sweep_records(tiny_outcomes)
    finally:
        tiny_outcomes[1].diverged[0] = False
    seconds = records["metrics"]["cell_seconds"]
    assert [(r["cell"], r["p"]) for r in seconds] == [("curves fa", 16), ("alignment", 16), ("alignment", 12), ("curves bp", 16)]
    assert seconds[1]["networks"] == 4 and seconds[1]["seconds"] == tiny_outcomes[1].seconds
    assert records["metrics"]["diverged_per_cell"] == {"relu p=12": 0, "relu p=16": 1, "relu p=16 curves fa": 0, "relu p=16 curves bp": 0}
    assert records["numbers"]["song_diverged_total"] == 1
    assert [r["p"] for r in records["metrics"]["trial_steps"]] == [12, 16]
    unsettled = sum(int((~c.settled & ~c.diverged).sum()) for c in align) - int(~tiny_outcomes[1].settled[0])
    assert records["numbers"]["song_unsettled_total"] == unsettled


def test_plots_have_one_panel_per_activation(tiny_outcomes):
    align, curves, real = song.split_outcomes(tiny_outcomes)
    table = alignment_rows(align)
    assert len(song.plot_steps(align, ("relu",)).axes) == 1
    fig = song.plot_alignment(table + [_row("tanh", lam, 12, 0.1 * k) for k, lam in enumerate(LAMBDAS["tanh"])], ("relu", "tanh"))
    assert len(fig.axes) == 2 and fig.axes[0].get_ylabel() == r"final $\cos(\beta, b)$"
    assert len(song.plot_loss_curves(curves, ("relu",)).axes) == 1
    assert [ax.get_title() for ax in song.plot_real_data(real).axes] == ["MNIST: error-signal alignment", "MNIST: test accuracy"]
    plt.close("all")


def test_alignment_claims_skip_what_needs_several_widths(tmp_path):
    results = _results(tmp_path)
    song.alignment_claims(results, _authors_rows("relu", 200), ("relu",))
    claims = {c["id"]: c for c in results.claims}
    assert list(claims) == ["S2a_relu", "S3a_relu", "S2b", "S3b", "S3c"]
    assert claims["S2a_relu"]["passed"] and claims["S3a_relu"]["passed"] and claims["S3b"]["passed"]
    assert claims["S3b"]["measured"] == {"relu p=200": [PUBLISHED_ALIGNMENT["relu", lam][200][0] for lam in LAMBDAS["relu"]]}
    for claim_id in ("S2b", "S3c"):
        assert claims[claim_id]["verdict"] == "not evaluated" and claims[claim_id]["reason"] == song.SEVERAL_WIDTHS


def test_alignment_claims_fail_outside_their_bounds(tmp_path):
    table = _authors_rows("relu", 200, shift=0.09) + _authors_rows("relu", 400)
    table[1], table[2] = dict(table[2], lam=table[1]["lam"]), dict(table[1], lam=table[2]["lam"])  # not increasing at p=200
    results = _results(tmp_path)
    song.alignment_claims(results, table, ("relu",))
    claims = {c["id"]: c for c in results.claims}
    assert not claims["S2a_relu"]["passed"] and not claims["S3a_relu"]["passed"]  # 0.09 > both bounds
    assert not claims["S3b"]["passed"]
    assert claims["S2b"]["passed"] == (table[0]["mean"] > table[4]["mean"])
    ratio = claims["S3c"]["measured"]["ratio p_max / p_min"]
    assert set(ratio) == {"relu λ=0.02", "relu λ=0.05", "relu λ=0.2"} and claims["S3c"]["passed"] == all(v > 0.5 for v in ratio.values())
    numbers = song.alignment_numbers(table, ("relu",))["numbers"]
    assert numbers["song_relu_s2_max_diff"] == pytest.approx(0.09) and numbers["song_relu_align0_pmin"] == table[0]["mean"]


def test_alignment_numbers_linear_np():
    table = _authors_rows("linear", 200) + _authors_rows("linear", 400)
    for r in table:
        if r["lam"] == 0:
            r["mean"] = 0.5 * song.N_SAMPLES / r["p"]
    records = song.alignment_numbers(table, ("linear",))
    assert records["metrics"]["linear_alignment_times_p_over_n"] == {200: pytest.approx(0.5), 400: pytest.approx(0.5)}
    assert records["numbers"]["song_linear_np_pmax"] == pytest.approx(0.5)
    assert records["numbers"]["song_linear_align0_authors_pmin"] == published_alignment("linear", 0.0, 200)[0]


def _rate(activation, rule, measured, predicted, r2=0.99, diverged=0):
    return {"activation": activation, "p": 200, "rule": rule, "trials": 2, "diverged": diverged, "measured_slope": measured,
            "predicted_slope": predicted, "predicted_slope_g": 2 * predicted, "predicted_slope_final": 3 * predicted,
            "ratio": measured / predicted, "r2_min": r2}


def test_convergence_claims_follow_the_bounds(tmp_path):
    rates = [_rate("relu", "fa", -1.0, -1.0), _rate("relu", "bp", -2.0, -1.5),
             _rate("tanh", "fa", -1.0, 0.5, r2=0.9), _rate("tanh", "bp", -0.5, -1.0)]
    results = _results(tmp_path)
    song.convergence_claims(results, rates, ("relu", "tanh"))
    claims = {c["id"]: c for c in results.claims}
    assert claims["S1a_relu"]["passed"] and not claims["S1a_tanh"]["passed"]
    assert claims["S1a_tanh"]["measured"] == {"fa": 0.9, "bp": 0.99}
    assert claims["S1b_relu"]["passed"] and not claims["S1b_tanh"]["passed"]  # a positive prediction predicts nothing
    assert claims["S1b_relu"]["measured"] == {"ratio": 1.0, "predicted_slope": -1.0, "measured_slope": -1.0}
    assert not claims["S1c"]["passed"] and claims["S1c"]["measured"]["tanh"] == {"bp": -0.5, "fa": -1.0}
    numbers = song.convergence_numbers(rates, ("relu", "tanh"))["numbers"]
    assert numbers["song_s1_in_band"] == 1 and numbers["song_s1_fa_rows"] == 2 and numbers["song_tanh_r2_min"] == 0.9
    assert numbers["song_relu_ratio_bp"] == pytest.approx(2 / 1.5) and numbers["song_relu_fa_kernel_change"] == 3
    assert numbers["song_relu_fa_predicted_g_ratio"] == 0.5


def test_plateau_claims_use_a_factor_two(tmp_path):
    plateaus = [{"activation": "relu", "lam": lam, "ratio": ratio, "ratio_final_kernel": 1.0 + ratio}
                for lam, ratio in ((0.02, 0.5), (0.05, 2.0))] + [{"activation": "tanh", "lam": 0.1, "ratio": 0.49, "ratio_final_kernel": 1.1}]
    results = _results(tmp_path)
    song.plateau_claims(results, plateaus, ("relu", "tanh"))
    claims = {c["id"]: c for c in results.claims}
    assert claims["S4_relu"]["passed"] and claims["S4_relu"]["measured"] == {"λ=0.02": 0.5, "λ=0.05": 2.0}
    assert not claims["S4_tanh"]["passed"]
    assert song.plateau_numbers(plateaus)["numbers"] == dict(song_plateau_ratio_min=0.49, song_plateau_ratio_max=2.0,
                                                            song_plateau_final_kernel_min=1.1, song_plateau_final_kernel_max=3.0)


def test_real_data_records_numbers_and_claims(tiny_outcomes, tmp_path):
    _, _, real = song.split_outcomes(tiny_outcomes)
    records = song.real_data_records(real, song.PROFILES["ci"])
    assert records["texts"] == {"song_real_dataset": "MNIST"} and records["metrics"]["real_data_sha256"] == {"train": "abc"}
    assert records["numbers"]["song_real_steps"] == int(real.history.steps[-1]) and records["numbers"]["song_real_epochs"] == 2
    alignment, accuracy = song.real_data_finals(real)
    numbers = song.real_data_numbers(real)
    assert set(numbers["metrics"]["real_final_alignment"]) == {"0", "0.1", "0.3"}
    assert numbers["numbers"]["song_real_align_0p3"] == alignment[0.3]["mean"] == real.history.final("error_alignment")[2]
    assert numbers["numbers"]["song_real_acc_0p1"] == pytest.approx(100 * real.history.final("test_accuracy")[1])
    skipped = _results(tmp_path)
    song.real_data_claims(skipped, real, evaluate=False)
    assert [(c["id"], c["verdict"], c["reason"]) for c in skipped.claims] == [(k, "not evaluated", song.SHORT_REAL_RUN) for k in ("S5a", "S5b", "S5c")]
    results = _results(tmp_path)
    song.real_data_claims(results, real, evaluate=True)
    claims = {c["id"]: c for c in results.claims}
    assert claims["S5a"]["measured"] == alignment[0.0]["mean"] and claims["S5a"]["passed"] == (alignment[0.0]["mean"] < 0.1)
    ratios = claims["S5b"]["measured"]["ratio to lambda = 0"]
    assert ratios["0.3"] == pytest.approx(alignment[0.3]["mean"] / alignment[0.0]["mean"])
    assert claims["S5b"]["passed"] == all(v >= 2 for v in ratios.values())
    a0 = accuracy[0.0]["mean"]
    assert claims["S5c"]["measured"]["margin"] == pytest.approx(2 * math.sqrt(2 * a0 * (1 - a0) / real.n_test))


def test_cost_records_scale_with_the_measured_time(tiny_outcomes):
    align, curves, real = song.split_outcomes(tiny_outcomes)
    records = song.cost_records(align, curves, real)
    unit = cost_per_unit([*align, *curves.values()])
    assert records["metrics"]["cost_per_network_step_unit"] == unit
    assert records["numbers"]["song_cost_ns"] == pytest.approx(1e9 * unit["relu"])
    per_step = real.seconds / (len(real.lam) * int(real.history.steps[-1]))
    assert records["numbers"]["song_real_ms_per_network_step"] == pytest.approx(1e3 * per_step)
    assert records["numbers"]["song_paper_real_hours"] == pytest.approx(per_step * 10 * 3 * 300 * 100 / 3600)
    assert records["numbers"]["song_paper_alignment_hours"] == paper_cost_hours(align, unit)["alignment"]
