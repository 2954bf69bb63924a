"""Conservation laws of FA and GD, one plain step of train, the alignment identity and the minimum-norm interpolant (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fa_lib as F
from fa_lib.chapters.conservation_laws import (
    alignment_identity,
    conservation_trajectory,
    conserved_quantities,
    drift_tracker,
    feedback_inner_products,
    feedback_shift,
    fitted_slope,
    ratio_summary,
    min_norm_interpolant,
    min_norm_tracker,
    null_space_projector,
    step_change,
)

DT = torch.float64
SEEDS = [0, 1, 2]


def _problem(widths, activation="linear", biases=False, seeds=SEEDS):
    x, y = F.teacher_data(12, [widths[0], 4, widths[-1]], seeds, activation=activation, std="lecun", dtype=DT)
    weights = F.init_weights(widths, seeds, dtype=DT)
    feedback = F.init_feedback(widths, seeds, rule="fa", dtype=DT)
    b = F.seeded_normal([(n,) for n in widths[1:]], seeds, [0.3] * (len(widths) - 1), stream="biases", dtype=DT) if biases else None
    return weights, feedback, b, x, y


def _rel(a, b):
    return float((a - b).norm() / b.norm())


# --------------------------------------------------------------------------- quantities
def test_quantities_by_hand_and_index_convention():
    # Three layers: widths 2 -> 3 -> 2 -> 1, one seed. Hidden layer 1 uses weights[0], weights[1], feedback[1];
    # hidden layer 2 uses weights[1], weights[2], feedback[2].
    w0 = torch.tensor([[[1.0, 2.0], [0.0, -1.0], [3.0, 1.0]]], dtype=DT)
    w1 = torch.tensor([[[1.0, 0.0, 2.0], [-1.0, 1.0, 0.5]]], dtype=DT)
    w2 = torch.tensor([[[2.0, -3.0]]], dtype=DT)
    b1 = torch.tensor([[[0.5, 1.0, -1.0], [2.0, 0.0, 1.0]]], dtype=DT)
    b2 = torch.tensor([[[1.0, 4.0]]], dtype=DT)
    weights, feedback = [w0, w1, w2], [None, b1, b2]
    c = conserved_quantities(weights, rule="fa", feedback=feedback)
    expected1 = w0[0] @ w0[0].T - (w1[0].T @ b1[0] + b1[0].T @ w1[0])
    expected2 = w1[0] @ w1[0].T - (w2[0].T @ b2[0] + b2[0].T @ w2[0])
    assert [q.shape for q in c] == [(1, 3, 3), (1, 2, 2)]
    torch.testing.assert_close(c[0][0], expected1)
    torch.testing.assert_close(c[1][0], expected2)
    # Per neuron, neuron 0 of hidden layer 1: ||W_1[0,:]||^2 - 2 <B_2[:,0], W_2[:,0]> = 5 - 2 (0.5 - 2) = 8.
    neurons = conserved_quantities(weights, rule="fa", feedback=feedback, per_neuron=True)
    assert float(neurons[0][0, 0]) == pytest.approx(8.0)
    gd = conserved_quantities(weights, rule="bp")
    torch.testing.assert_close(gd[0][0], w0[0] @ w0[0].T - w1[0].T @ w1[0])
    bias = [torch.tensor([[1.0, 2.0, 3.0]], dtype=DT), torch.zeros(1, 2, dtype=DT), torch.zeros(1, 1, dtype=DT)]
    with_bias = conserved_quantities(weights, rule="fa", feedback=feedback, biases=bias)
    torch.testing.assert_close(with_bias[0][0] - c[0][0], torch.outer(bias[0][0], bias[0][0]))


@pytest.mark.parametrize("rule", ["fa", "bp"])
@pytest.mark.parametrize("biases", [False, True])
def test_per_neuron_is_the_diagonal(rule, biases):
    weights, feedback, b, _, _ = _problem([5, 6, 4, 3], biases=biases)
    full = conserved_quantities(weights, rule=rule, feedback=feedback, biases=b)
    diag = conserved_quantities(weights, rule=rule, feedback=feedback, biases=b, per_neuron=True)
    for m, d in zip(full, diag):
        torch.testing.assert_close(torch.diagonal(m, dim1=-2, dim2=-1), d)
    grads = [torch.randn_like(w) for w in weights]
    bias_grads = None if b is None else [torch.randn_like(v) for v in b]
    full = step_change(grads, rule=rule, lr=0.3, bias_grads=bias_grads)
    diag = step_change(grads, rule=rule, lr=0.3, bias_grads=bias_grads, per_neuron=True)
    for m, d in zip(full, diag):
        torch.testing.assert_close(torch.diagonal(m, dim1=-2, dim2=-1), d)


# --------------------------------------------------------------------------- one-step laws
def plain_step(weights, x, y, *, rule, activation, lr, feedback, biases=None):
    """One full-batch plain step of :func:`fa_lib.train`: the new weights, biases and the backward pass that made it."""
    seen = []
    history = F.train(weights, x, y, rule=rule, activation=activation, lr=lr, steps=1, feedback=feedback if rule == "fa" else None,
                      biases=biases, on_step=lambda step, w, b, result, alive: seen.append(result), progress=False)
    return history.weights, history.biases, seen[0]


@pytest.mark.parametrize("rule", ["fa", "bp"])
@pytest.mark.parametrize("biases", [False, True])
@pytest.mark.parametrize("widths", [[5, 7, 3], [6, 8, 5, 7, 2]])
def test_linear_one_step_law(rule, biases, widths):
    weights, feedback, b, x, y = _problem(widths, biases=biases)
    lr = 0.3
    new_w, new_b, result = plain_step(weights, x, y, rule=rule, activation="linear", lr=lr, feedback=feedback, biases=b)
    before = conserved_quantities(weights, rule=rule, feedback=feedback, biases=b)
    after = conserved_quantities(new_w, rule=rule, feedback=feedback, biases=new_b)
    predicted = step_change(result.grads, rule=rule, lr=lr, bias_grads=result.bias_grads)
    for q0, q1, p in zip(before, after, predicted):
        assert float(p.norm()) > 1e-4
        assert _rel(q1 - q0, p) < 1e-10


@pytest.mark.parametrize("rule", ["fa", "bp"])
@pytest.mark.parametrize("biases", [False, True])
def test_relu_per_neuron_law_and_broken_matrix_law(rule, biases):
    weights, feedback, b, x, y = _problem([6, 9, 8, 3], activation="relu", biases=biases)
    lr = 0.5
    new_w, new_b, result = plain_step(weights, x, y, rule=rule, activation="relu", lr=lr, feedback=feedback, biases=b)
    for per_neuron in (True, False):
        before = conserved_quantities(weights, rule=rule, feedback=feedback, biases=b, per_neuron=per_neuron)
        after = conserved_quantities(new_w, rule=rule, feedback=feedback, biases=new_b, per_neuron=per_neuron)
        predicted = step_change(result.grads, rule=rule, lr=lr, bias_grads=result.bias_grads, per_neuron=per_neuron)
        errors = [_rel(q1 - q0, p) for q0, q1, p in zip(before, after, predicted)]
        if per_neuron:
            assert max(errors) < 1e-10
        else:  # only the diagonal is conserved with ReLU: the full matrix law fails at first order
            assert min(errors) > 1e-3


def test_each_rule_breaks_the_other_law():
    weights, feedback, _, x, y = _problem([5, 7, 6, 3])
    for rule, other in (("fa", "bp"), ("bp", "fa")):
        new_w, _, result = plain_step(weights, x, y, rule=rule, activation="linear", lr=0.01, feedback=feedback)
        before = conserved_quantities(weights, rule=other, feedback=feedback)
        after = conserved_quantities(new_w, rule=other, feedback=feedback)
        predicted = step_change(result.grads, rule=other, lr=0.01)
        assert min(_rel(q1 - q0, p) for q0, q1, p in zip(before, after, predicted)) > 10


def test_lr_per_seed_matches_separate_runs():
    weights, feedback, b, x, y = _problem([5, 6, 3], activation="relu", biases=True)
    lrs = torch.tensor([0.1, 0.2, 0.4], dtype=DT)
    new_w, new_b, result = plain_step(weights, x, y, rule="fa", activation="relu", lr=lrs, feedback=feedback, biases=b)
    change = step_change(result.grads, rule="fa", lr=lrs, bias_grads=result.bias_grads, per_neuron=True)
    for s, lr in enumerate(lrs.tolist()):
        torch.testing.assert_close(new_w[0][s], weights[0][s] - lr * result.grads[0][s])
        torch.testing.assert_close(new_b[0][s], b[0][s] - lr * result.bias_grads[0][s])
        one = step_change([g[s : s + 1] for g in result.grads], rule="fa", lr=lr, bias_grads=[g[s : s + 1] for g in result.bias_grads], per_neuron=True)
        torch.testing.assert_close(change[0][s], one[0][0])


def test_train_trains_biases_with_the_plain_update():
    weights, feedback, b, x, y = _problem([5, 6, 4, 3], activation="relu", biases=True)
    exact = F.backward_pass(weights, x, y, rule="fa", activation="relu", feedback=feedback, biases=b)
    new_w, new_b, result = plain_step(weights, x, y, rule="fa", activation="relu", lr=0.1, feedback=feedback, biases=b)
    for before, grad, after in zip(weights + b, exact.grads + exact.bias_grads, new_w + new_b):
        torch.testing.assert_close(after, before - 0.1 * grad, rtol=0, atol=0)
    torch.testing.assert_close(result.loss, exact.loss, rtol=0, atol=0)


def test_gd_from_zero_never_moves_but_fa_does():
    _, _, _, x, y = _problem([6, 5, 2])
    zeros = [torch.zeros(len(SEEDS), 5, 6, dtype=DT), torch.zeros(len(SEEDS), 2, 5, dtype=DT)]
    feedback = F.init_feedback([6, 5, 2], SEEDS, rule="fa", dtype=DT)
    gd = F.gradients(zeros, x, y, rule="bp", activation="linear")
    fa = F.gradients(zeros, x, y, rule="fa", activation="linear", feedback=feedback)
    assert all(float(g.abs().max()) == 0.0 for g in gd)
    assert float(fa[0].abs().max()) > 0


# --------------------------------------------------------------------------- trajectories
@pytest.mark.parametrize("activation,per_neuron", [("linear", False), ("relu", True)])
def test_trajectory_laws_identity_and_monotone(activation, per_neuron):
    weights, feedback, b, x, y = _problem([5, 8, 8, 3], activation=activation, biases=True)
    traj = conservation_trajectory(
        weights, x, y, rule="fa", activation=activation, lr=0.05, steps=30, feedback=feedback, biases=b, per_neuron=per_neuron, record_every=10
    )
    assert traj.steps.tolist() == [0, 10, 20, 30]
    assert traj.loss.shape == (4, 3) and traj.drift["fa"].shape == (4, 3, 2) and traj.weight_alignment.shape == (4, 3, 2)
    assert not traj.diverged.any()
    assert traj.law_residual.max() < 1e-13
    assert traj.change_to_terms.min() > 1e-12
    assert (traj.max_change_to_terms >= traj.change_to_terms).all()
    assert traj.min_neuron_change.min() > -1e-13
    assert np.nanmax(traj.identity_residual) < 1e-12
    assert (np.diff(traj.fa_neuron_change, axis=0) >= -1e-12).all()
    assert traj.loss[-1].max() < traj.loss[0].min() or traj.loss[-1].mean() < traj.loss[0].mean()
    # The identity: <W_{k+1}, B_{k+1}> = 1/2 (||W_k||^2 + ||b_k||^2 - sum_j c(0) - accumulated).
    c0 = torch.stack([q.sum(-1) for q in conserved_quantities(weights, rule="fa", feedback=feedback, biases=b, per_neuron=True)], -1)
    accumulated = torch.as_tensor(traj.fa_neuron_change[-1])
    predicted = alignment_identity(traj.weights, initial_sums=c0, accumulated_change=accumulated, biases=traj.biases)
    torch.testing.assert_close(feedback_inner_products(traj.weights, feedback), predicted)
    np.testing.assert_allclose(traj.feedback_inner[-1], feedback_inner_products(traj.weights, feedback).numpy())
    incoming = torch.stack([(traj.weights[k] ** 2).sum((-1, -2)) + (traj.biases[k] ** 2).sum(-1) for k in range(2)], -1)
    np.testing.assert_allclose(traj.incoming_squares[-1], incoming.numpy())
    assert traj.neuron_change_range.shape == (3, 2, 2) and traj.neuron_change_range[..., 0].min() > -1e-13


def test_trajectory_under_gd_breaks_fa_monotonicity_and_law():
    weights, feedback, _, x, y = _problem([5, 8, 8, 3], activation="relu")
    fa = conservation_trajectory(weights, x, y, rule="fa", activation="relu", lr=0.02, steps=40, feedback=feedback, per_neuron=True)
    gd = conservation_trajectory(weights, x, y, rule="bp", activation="relu", lr=0.02, steps=40, feedback=feedback, per_neuron=True)
    assert gd.identity_residual is None
    assert gd.law_residual.max() < 1e-13  # GD keeps its own (balancedness) law
    assert gd.min_neuron_change.min() < -1e-6  # FA's c is not monotone under GD
    assert fa.neuron_change_range[..., 0].min() >= -1e-13  # FA's own c only grows ...
    assert gd.neuron_change_range[..., 0].max() < -1e-8 < 1e-8 < gd.neuron_change_range[..., 1].min()  # ... GD's moves both ways
    assert (fa.drift["bp"][-1] > 20 * fa.drift["fa"][-1]).all()
    assert (gd.drift["fa"][-1] > 20 * gd.drift["bp"][-1]).all()


def test_trajectory_flags_divergence():
    weights, feedback, _, x, y = _problem([5, 8, 3])
    traj = conservation_trajectory(weights, x, y, rule="fa", activation="linear", lr=50.0, steps=40, feedback=feedback)
    assert traj.diverged.all()
    assert np.isnan(traj.loss[-1]).all() and np.isnan(traj.law_residual).all()


def test_drift_tracker_in_train_matches_trajectory():
    weights, feedback, _, x, y = _problem([5, 7, 6, 3], activation="relu")
    history = F.train(
        weights, x, y, rule="fa", activation="relu", lr=0.05, steps=20, feedback=feedback, record_every=10,
        extra_metrics=drift_tracker(weights, feedback, per_neuron=True), progress=False,
    )
    traj = conservation_trajectory(weights, x, y, rule="fa", activation="relu", lr=0.05, steps=20, feedback=feedback, per_neuron=True, record_every=10)
    np.testing.assert_allclose(history.metrics["drift_fa"], traj.drift["fa"], rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(history.metrics["fa_neuron_change"], traj.fa_neuron_change, rtol=1e-9, atol=1e-15)
    # Weight decay adds a first-order drift: FA's quantity is no longer conserved.
    decayed = F.train(
        weights, x, y, rule="fa", activation="relu", lr=0.05, steps=20, feedback=feedback, l2=0.05, record_every=10,
        extra_metrics=drift_tracker(weights, feedback, per_neuron=True), progress=False,
    )
    assert (decayed.metrics["drift_fa"][-1] > 2 * history.metrics["drift_fa"][-1]).all()
    # incoming_change: the change of ||W_k[j,:]||^2, which FA's law matches by 2 <B_{k+1}[:,j], W_{k+1}[:,j]>.
    moved = torch.stack([((history.weights[k] ** 2).sum(-1) - (weights[k] ** 2).sum(-1)).norm(dim=-1) for k in range(2)], -1)
    np.testing.assert_allclose(history.metrics["incoming_change"][-1], moved.numpy(), rtol=1e-10)
    assert (history.metrics["drift_fa"][-1] < 0.2 * history.metrics["incoming_change"][-1]).all()  # the law matches most of it


@pytest.mark.parametrize("target", [0.0, 2.0, -0.5])
def test_feedback_shift_sets_the_layer_sums(target):
    weights, feedback, _, _, _ = _problem([5, 7, 6, 3])
    shifted = feedback_shift(weights, feedback, target=target)
    torch.testing.assert_close(shifted[0], weights[0])
    sums = torch.stack([q.sum(-1) for q in conserved_quantities(shifted, rule="fa", feedback=feedback, per_neuron=True)], -1)
    incoming = torch.stack([(shifted[k] ** 2).sum((-1, -2)) for k in range(2)], -1)
    torch.testing.assert_close(sums, target * incoming)
    with pytest.raises(ValueError, match="target=nan"):
        feedback_shift(weights, feedback, target=float("nan"))


def test_ratio_summary_ignores_nan():
    assert ratio_summary(np.array([2.0, 6.0, np.nan]), np.array([1.0, 2.0, 1.0])) == {"min": 2.0, "max": 3.0, "mean": 2.5}


def test_fitted_slope():
    x = np.arange(5.0)[:, None] * np.ones((1, 2))
    y = np.stack([3 * np.arange(5.0) + 1, -0.5 * np.arange(5.0)], -1)
    np.testing.assert_allclose(fitted_slope(x, y), [3.0, -0.5])


# --------------------------------------------------------------------------- minimum norm
def test_min_norm_interpolant():
    x, y = F.teacher_data(5, [9, 2], SEEDS, activation="linear", dtype=DT)
    m = min_norm_interpolant(x, y)
    assert m.shape == (3, 2, 9)
    torch.testing.assert_close(x @ m.transpose(-1, -2), y)
    lstsq = torch.linalg.lstsq(x, y, driver="gelsd").solution.transpose(-1, -2)
    torch.testing.assert_close(m, lstsq)
    p = null_space_projector(x)
    torch.testing.assert_close(p @ p, p)
    torch.testing.assert_close(x @ p, torch.zeros_like(x), atol=1e-12, rtol=0)
    other = m + torch.randn(3, 2, 9, dtype=DT) @ p  # another interpolant
    torch.testing.assert_close(x @ other.transpose(-1, -2), y)
    assert (other.flatten(-2).norm(dim=-1) > m.flatten(-2).norm(dim=-1)).all()


def test_min_norm_tracker_by_construction():
    x, y = F.teacher_data(4, [8, 2], SEEDS, activation="linear", dtype=DT)
    m = min_norm_interpolant(x, y)
    w1 = torch.zeros(3, 8, 8, dtype=DT)
    track = min_norm_tracker(x, y, w1)
    exact = track([torch.eye(8, dtype=DT).expand(3, 8, 8), m])
    assert float(exact["min_norm_relative_error"].max()) < 1e-12
    p = null_space_projector(x)
    row_move = torch.randn(3, 8, 4, dtype=DT) @ x  # rows in the row space of X
    null_move = torch.randn(3, 8, 8, dtype=DT) @ p
    assert float(track([row_move, m[..., :8]])["null_space_change"].max()) < 1e-12
    torch.testing.assert_close(track([null_move, m[..., :8]])["null_space_change"], torch.ones(3, dtype=DT))
    torch.testing.assert_close(track([w1, m[..., :8]])["null_space_change"], torch.zeros(3, dtype=DT))


def test_fa_two_layer_linear_reaches_min_norm():
    x, y = F.teacher_data(4, [10, 2], SEEDS, activation="linear", std="lecun", dtype=DT)
    weights = [torch.zeros(3, 12, 10, dtype=DT), F.init_weights([12, 2], SEEDS, dtype=DT)[0]]
    feedback = [None, F.init_feedback([10, 12, 2], SEEDS, rule="fa", dtype=DT)[1]]
    history = F.train(
        weights, x, y, rule="fa", activation="linear", lr=0.1, steps=1500, feedback=feedback, record_every=500,
        extra_metrics=min_norm_tracker(x, y, weights[0]), progress=False,
    )
    assert not history.diverged.any()
    assert history.final("min_norm_relative_error").max() < 1e-8
    assert np.max(history.metrics["null_space_change"]) < 1e-10


# --------------------------------------------------------------------------- bad arguments
def test_bad_arguments_raise():
    weights, feedback, b, x, y = _problem([5, 6, 3], biases=True)
    with pytest.raises(ValueError, match="rule"):
        conserved_quantities(weights, rule="dfa", feedback=feedback)
    with pytest.raises(ValueError, match="feedback"):
        conserved_quantities(weights, rule="fa")
    with pytest.raises(ValueError, match=r"feedback\[1\]"):
        conserved_quantities(weights, rule="fa", feedback=[None, feedback[1][..., :-1]])
    with pytest.raises(ValueError, match="hidden layer"):
        conserved_quantities(weights[:1], rule="bp")
    with pytest.raises(ValueError, match="does not follow"):
        conserved_quantities([weights[0], weights[0]], rule="bp")
    with pytest.raises(ValueError, match="biases"):
        conserved_quantities(weights, rule="bp", biases=b[:1])
    with pytest.raises(ValueError, match=r"biases\[0\]"):
        conserved_quantities(weights, rule="bp", biases=[b[0][..., :-1], b[1]])
    with pytest.raises(ValueError, match="rule"):
        step_change(weights, rule="dfa", lr=0.1)
    with pytest.raises(ValueError, match="grads"):
        step_change(weights[:1], rule="fa", lr=0.1)
    with pytest.raises(ValueError, match="bias_grads"):
        step_change(weights, rule="fa", lr=0.1, bias_grads=b[:1])
    with pytest.raises(ValueError, match="steps"):
        conservation_trajectory(weights, x, y, rule="fa", activation="linear", lr=0.1, steps=0, feedback=feedback)
    with pytest.raises(ValueError, match="record_every"):
        conservation_trajectory(weights, x, y, rule="fa", activation="linear", lr=0.1, steps=2, feedback=feedback, record_every=0)
    with pytest.raises(ValueError, match="rule"):
        conservation_trajectory(weights, x, y, rule="dfa", activation="linear", lr=0.1, steps=2, feedback=feedback)
    with pytest.raises(ValueError, match="feedback"):
        conservation_trajectory(weights, x, y, rule="bp", activation="linear", lr=0.1, steps=2, feedback=None)
    with pytest.raises(ValueError, match="activation"):
        conservation_trajectory(weights, x, y, rule="fa", activation="gelu", lr=0.1, steps=2, feedback=feedback)
    with pytest.raises(ValueError, match="same N"):
        min_norm_interpolant(x, y[..., :-1, :])
    with pytest.raises(ValueError, match="x has shape"):
        null_space_projector(torch.zeros(3, dtype=DT))
    with pytest.raises(ValueError, match="two-layer"):
        min_norm_tracker(x, y, weights[0])(weights + [weights[-1]])
