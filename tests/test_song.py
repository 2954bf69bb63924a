"""Unit tests of fa_lib.song (float64 theory checks on hand-made and tiny cases)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fa_lib.data import ClassificationData, gaussian_inputs
from fa_lib.networks import backward_pass, forward, init_weights
from fa_lib.song import (
    alignment_rows,
    plateau_rows,
    rate_rows,
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
    run_cell,
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
def test_protocol_constants_match_the_paper_file():
    assert [steps_for_width(p) for p in WIDTHS] == [5050, 7142, 10101, 14285, 20203, 28571, 40406]
    assert LEARNING_RATES["linear"] == 1e-3 and LEARNING_RATES["relu"] == 1e-2 and LEARNING_RATES["tanh"] == 0.1
    assert LAMBDAS["relu"] == (0.0, 0.02, 0.05, 0.2)
    assert published_alignment("relu", 0.0, 200) == (0.220, 0.051)
    assert published_alignment("relu", 0.2, 12800) == (0.846, 0.042)
    assert published_alignment("linear", 0.0, 800) == (0.059, 0.033)
    assert published_alignment("linear", 0.2, 200) is None
    assert published_alignment("tanh", 0.0, 200) is None
    assert all(len(row) == len(WIDTHS) for row in PUBLISHED_ALIGNMENT.values())


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


def test_run_cell_is_one_batch_of_independent_trials():
    kw = dict(lams=(0.0, 0.3), steps=30, n=6, d=9)
    cell = run_cell("relu", 16, [5, 6], dtype=F64, **kw)
    assert cell.mse.shape == (31, 4) and cell.lam.tolist() == [0.0, 0.3, 0.0, 0.3] and cell.trial.tolist() == [0, 0, 1, 1]
    assert cell.alignment_init[0] == cell.alignment_init[1] and cell.predicted_slope[2] == cell.predicted_slope[3]
    alone = run_cell("relu", 16, [6], dtype=F64, **kw)
    np.testing.assert_allclose(alone.mse, cell.mse[:, 2:], rtol=1e-10)
    np.testing.assert_allclose(alone.alignment, cell.alignment[2:], rtol=1e-10)
    blocked = run_cell("relu", 16, [5, 6], dtype=F64, block=3, **kw)
    np.testing.assert_allclose(blocked.mse, cell.mse, rtol=1e-10)
    np.testing.assert_allclose(blocked.ridge_mse_final, cell.ridge_mse_final, rtol=1e-10)
    np.testing.assert_allclose(cell.mse[0, :], 2 * backward_pass(*_full_model(cell, 16), rule="bp", activation="relu", layer_scales=readout_scales(16)).loss.numpy().repeat(2))
    assert cell.ridge_mse[0] == 0.0 and cell.ridge_mse[1] > 0
    assert cell.steps == 30 and cell.lr == LEARNING_RATES["relu"] and not cell.diverged.any()
    assert cell.select(0.3).tolist() == [False, True, False, True]


def test_summary_rows():
    fa = run_cell("relu", 16, [5, 6, 7], lams=(0.0, 0.02), steps=40, n=6, d=9, dtype=F64)
    bp = run_cell("relu", 16, [5, 6, 7], rule="bp", lams=(0.0,), steps=40, n=6, d=9, dtype=F64)
    fa.diverged[2] = True  # pretend trial 1 diverged at lam = 0
    rows = alignment_rows([fa, bp])
    assert [(r["lam"], r["trials"], r["diverged"]) for r in rows] == [(0.0, 2, 1), (0.02, 3, 0)]
    assert rows[0]["mean"] == pytest.approx(np.mean(fa.alignment[[0, 4]]))
    assert rows[0]["authors_mean"] == 0.220 or rows[0]["p"] != 200
    assert rows[1]["authors_mean"] is None  # p = 16 is not in the authors' table
    rates = rate_rows([fa, bp])
    assert [(r["rule"], r["trials"], r["diverged"]) for r in rates] == [("fa", 2, 1), ("bp", 3, 0)]
    assert rates[1]["ratio"] == pytest.approx(np.mean(bp.measured_slope) / np.mean(bp.predicted_slope))
    plateaus = plateau_rows([fa, bp])
    assert len(plateaus) == 1 and plateaus[0]["lam"] == 0.02
    assert plateaus[0]["ratio"] == pytest.approx(np.mean(fa.mse[-1, 1::2] / fa.ridge_mse[1::2]))


def _full_model(cell, p):
    x, y = synthetic_data("relu", 6, 9, p, cell.seeds, dtype=F64)
    weights, _ = init_two_layer(9, p, cell.seeds, dtype=F64)
    return weights, x, y


def test_bp_cell_predicts_with_beta_squared():
    cell = run_cell("linear", 12, [1], rule="bp", lams=(0.0,), steps=20, n=4, d=6, dtype=F64)
    x, _ = synthetic_data("linear", 4, 6, 12, [1], dtype=F64)
    weights, _ = init_two_layer(6, 12, [1], dtype=F64)
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
        run_cell("elu", 10, [0])
    with pytest.raises(ValueError, match="rule"):
        run_cell("relu", 10, [0], rule="dfa")
    with pytest.raises(ValueError, match="lams"):
        run_cell("relu", 10, [0], lams=(-0.1,))
    with pytest.raises(ValueError, match="block=0"):
        run_cell("relu", 10, [0], block=0)
    with pytest.raises(ValueError, match="trials"):
        trial_seeds(0, "relu", 200, 0)
    with pytest.raises(ValueError, match="first_layer"):
        row_space_coordinates(x, weights[0][..., :3])
