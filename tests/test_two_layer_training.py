"""Unit tests of fa_lib.training.two_layer: the two-layer engine of Song's task (float64, hand-made and tiny cases)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fa_lib.data import gaussian_inputs
from fa_lib.networks import backward_pass, forward, init_weights
from fa_lib.theory.song import core_hyperparameters, readout_scales
from fa_lib.training.two_layer import (
    StopRule,
    TwoLayerStep,
    batch_size,
    cache_block,
    init_two_layer,
    synthetic_data,
    train_two_layer,
    train_until_settled,
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


# --------------------------------------------------------------------------- the task's draws
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


# --------------------------------------------------------------------------- the step
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


def test_divergence_is_detected_and_masked():
    x, y, weights, feedback = tiny_problem("relu")
    run = train_two_layer(weights, x, y, rule="fa", activation="relu", lr=1e3, lam=0.0, steps=40, feedback=feedback)
    assert run.diverged.all() and np.all(run.diverged_step > 0)
    assert np.isnan(run.alignment).all()
    for s, step in enumerate(run.diverged_step):
        assert np.isfinite(run.mse[:step, s]).all() and np.isnan(run.mse[step:, s]).all()
    calm = train_two_layer(weights, x, y, rule="fa", activation="relu", lr=1e-3, lam=0.0, steps=5, feedback=feedback)
    assert not calm.diverged.any() and np.all(calm.diverged_step == -1) and np.isfinite(calm.mse).all()


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


def test_batch_sizes():
    assert cache_block(200) == 16 and cache_block(800) == 6 and cache_block(3200) == 2
    assert batch_size("auto", "relu", 800, 40) == 6 and batch_size("auto", "linear", 800, 40) == 40
    assert batch_size("all", "relu", 800, 40) == 40 and batch_size(3, "relu", 800, 2) == 2
    with pytest.raises(ValueError, match="block='some'"):
        batch_size("some", "relu", 800, 40)
    with pytest.raises(ValueError, match="block=0"):
        batch_size(0, "relu", 800, 40)


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
    with pytest.raises(ValueError, match="activation"):
        synthetic_data("softplus", 5, 4, 3, [0])
    with pytest.raises(ValueError, match="lam has shape"):
        train_until_settled(weights, x, y, rule="fa", activation="relu", lr=0.1, lam=torch.zeros(3), stop=StopRule(10),
                            feedback=feedback)
    with pytest.raises(ValueError, match="y has shape"):
        TwoLayerStep(x, y[..., :3, :], weights, feedback[1], rule="fa", activation="relu", lr=0.1, lam=0.0)


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_l2_on_the_first_layer_is_plain_weight_decay(activation):
    """lam_first: three steps of train_two_layer(bp) with L2 on W equal three autograd SGD steps of MSELoss + L2 on both
    layers (square inputs, so W is recovered from the pre-activations); non-square inputs are refused for ReLU."""
    x, y, weights, feedback = tiny_problem(activation, n=6, d=6, p=7)
    lr, lam, lam_first = 0.01, 0.3, 0.2
    w, beta = (t.clone() for t in weights)
    psi = torch.relu if activation == "relu" else (lambda a: a)
    for _ in range(3):
        w.requires_grad_(True), beta.requires_grad_(True)
        f = psi(x @ w.transpose(-1, -2)) @ beta.transpose(-1, -2) / math.sqrt(w.shape[-2])
        sum(torch.nn.MSELoss()(f[s], y[s]) for s in range(x.shape[0])).backward()
        with torch.no_grad():
            w, beta = w - lr * (w.grad + lam_first * w), beta - lr * (beta.grad + lam * beta)
    run = train_two_layer(weights, x, y, rule="bp", activation=activation, lr=lr, lam=lam, lam_first=lam_first, steps=3,
                          feedback=feedback)
    torch.testing.assert_close(run.weights[0], w, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(run.weights[1], beta, rtol=1e-10, atol=1e-12)
    x_wide, y_wide, weights_wide, feedback_wide = tiny_problem("relu", n=6, d=9, p=7)
    with pytest.raises(ValueError, match="lam_first needs square inputs"):
        train_two_layer(weights_wide, x_wide, y_wide, rule="fa", activation="relu", lr=lr, lam=0.0, lam_first=0.1, steps=1,
                        feedback=feedback_wide)


def test_train_until_settled_keeps_each_networks_weights_at_its_own_stop():
    x, y, weights, feedback, lam, rule = _settling_problem()
    runs = train_until_settled(weights, x, y, rule="fa", activation="relu", lr=0.05, lam=lam, stop=rule, feedback=feedback,
                               block=2, keep_weights=True)
    assert len(set(runs.steps.tolist())) > 1
    for k in range(len(lam)):  # networks 2 and 3 ran in reloaded slots
        alone = train_two_layer([w[k : k + 1] for w in weights], x[k : k + 1], y[k : k + 1], rule="fa", activation="relu",
                                lr=0.05, lam=lam[k : k + 1], steps=int(runs.steps[k]), feedback=[None, feedback[1][k : k + 1]])
        for kept, single in zip(runs.weights, alone.weights):
            torch.testing.assert_close(kept[k], single[0], rtol=1e-9, atol=1e-11)
    assert train_until_settled(weights, x, y, rule="fa", activation="relu", lr=0.05, lam=lam, stop=rule,
                               feedback=feedback).weights is None
