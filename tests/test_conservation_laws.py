"""Conservation laws of FA and GD, one plain step of train, the alignment identity and the minimum-norm interpolant (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fa_lib as F
from fa_lib.chapters import conservation_laws as CL
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



# --------------------------------------------------------------------------- the chapter's experiments
def _results(tmp_path):
    return F.Results("02_test", profile="ci", parameters={}, seeds=[], results_dir=str(tmp_path), paper="test")


def _claims(results):
    return {c["id"]: c for c in results.claims}


def test_chapter_parameters_seeds_and_settings():
    params = CL.chapter_parameters("ci")
    assert params["norm_lr"] == 2.0 / 40 and CL.chapter_parameters("paper")["norm_lr"] == 2.0 / 100
    assert params["prac_lrs"] == CL.PRAC_LRS and params["init_scales"] == CL.INIT_SCALES
    assert not set(params) & set(CL.PROFILES["ci"])  # start_chapter records both: no name twice
    with pytest.raises(ValueError, match="profile='fast' is not allowed"):
        CL.chapter_parameters("fast")
    assert set(CL.PROFILES) == set(F.PROFILES)
    assert all(set(c) == set(CL.PROFILES["ci"]) for c in CL.PROFILES.values())
    assert CL.chapter_seeds(0, CL.PROFILES["ci"]) == list(range(8))
    assert CL.chapter_seeds(3, CL.PROFILES["default"]) == list(range(3, 19))
    numbers = CL.setting_numbers(CL.PROFILES["ci"])
    assert numbers["cons_align_hidden"] == 3 and numbers["cons_horizon"] == 0.5 and numbers["cons_norm_d"] == 40
    assert numbers["cons_small_scale"] == CL.SMALL_SCALE and numbers["cons_drift_width"] == 16
    assert CL.horizon_steps(0.5, 0.001) == 500 and CL.horizon_steps(1.0, 0.003) == 333
    assert CL.norm_lr(40) == 0.05
    assert CL._short(1e-8) == "1e-8" and CL._short(1e-10) == "1e-10"


def _law_row(law, residual, change=1e-3, diverged=0):
    return dict(law=law, depth=2, width=4, activation="relu", lr=0.03, max_relative_residual=residual,
                max_residual_over_change=residual / change, min_change_over_terms=change / 10, max_change_over_terms=change,
                diverged=diverged, n_seeds=2)


def test_one_step_law_summary():
    rows = [_law_row("fa_neuron", 1e-15), _law_row("fa_neuron_bias", 3e-15, change=1e-2, diverged=1), _law_row("gd_neuron", 1.0),
            _law_row("fa_neuron", float("nan"))]
    s = CL.one_step_law_summary(rows, ["fa_neuron", "fa_neuron_bias"])
    assert s == {"worst": 3e-15, "worst_relative_to_change": 1e-12, "min_change_over_terms": 1e-4,
                 "max_change_over_terms_smallest_run": 1e-3, "diverged": 1}
    with pytest.raises(ValueError, match="no rows"):
        CL.one_step_law_summary(rows, ["fa_matrix"])


def test_one_step_law_rows_and_claims(tmp_path):
    rows = CL.one_step_law_rows([0, 1], depths=(2, 3), widths=(4,), steps=3)
    assert len(rows) == 2 * 2 * 1 * 4
    assert {r["law"] for r in rows} == {law + bias for law in CL.LAWS.values() for bias in ("", "_bias")}
    assert {(r["depth"], r["lr"]) for r in rows} == {(2, 0.03), (3, 0.02)}
    assert max(r["max_relative_residual"] for r in rows) < 1e-13 and min(r["max_change_over_terms"] for r in rows) > 1e-8
    assert all(r["n_seeds"] == 2 and r["diverged"] == 0 for r in rows)
    assert CL.law_table(rows).data.shape == (16, 11)
    results = _results(tmp_path)
    CL.record_one_step_laws(results, rows, depths=(2, 3), widths=(4,))
    claims = _claims(results)
    assert list(claims) == ["K1", "K2", "K1b"] and all(c["kind"] == "implementation" for c in claims.values())
    assert all(c["verdict"] == "reproduced" for c in claims.values())
    assert results.metrics["cons_K2_worst"] == max(r["max_relative_residual"] for r in rows if r["law"].startswith("fa_neuron"))
    assert "[2, 3]" in claims["K1"]["expected"] and "1e-12" in claims["K2"]["expected"]
    # A missing second-order term leaves a residual of the size of the change: the claim fails.
    broken = [dict(r, max_relative_residual=r["max_change_over_terms"]) if r["law"] == "fa_neuron" else r for r in rows]
    results = _results(tmp_path)
    CL.record_one_step_laws(results, broken, depths=(2, 3), widths=(4,))
    assert {k: c["verdict"] for k, c in _claims(results).items()} == {"K1": "reproduced", "K2": "deviates", "K1b": "reproduced"}


def _fake_trajectory(drift_fa, drift_bp, *, min_change=0.0, change_range=(-1e-6, 1e-6), records=3):
    """A Trajectory whose final drifts are ``drift_fa``, ``drift_bp`` ``(S, L-1)`` (linear in time before)."""
    drift_fa, drift_bp = np.asarray(drift_fa, float), np.asarray(drift_bp, float)
    ramp = np.linspace(0, 1, records)[:, None, None]
    s, layers = drift_fa.shape
    zeros = np.zeros((records, s, layers))
    per_step = np.zeros((s, layers))
    return CL.Trajectory(
        steps=np.arange(records), loss=np.ones((records, s)), drift={"fa": ramp * drift_fa, "bp": ramp * drift_bp},
        fa_neuron_change=zeros, weight_alignment=zeros, feedback_inner=zeros, incoming_squares=zeros, identity_residual=zeros,
        law_residual=per_step, law_residual_of_change=per_step, change_to_terms=per_step, max_change_to_terms=per_step,
        min_neuron_change=per_step + min_change, neuron_change_range=np.stack([per_step + change_range[0], per_step + change_range[1]], -1),
        diverged=np.zeros(s, bool), weights=[], biases=None)


def _fake_drift_runs(own=lambda eta: eta, other=lambda eta: 1.0, gd_range=(-1e-6, 1e-6), fa_min=0.0):
    """Runs keyed like drift_runs: the trained rule's own drift own(eta), the other rule's other(eta)."""
    runs = {}
    for activation in ("relu", "linear"):
        for rule in ("fa", "bp"):
            for eta in CL.ETAS if activation == "relu" else (CL.ETAS[0], CL.ETAS[-1]):
                own_drift, other_drift = np.full((2, 2), own(eta)), np.full((2, 2), other(eta))
                fa, bp = (own_drift, other_drift) if rule == "fa" else (other_drift, own_drift)
                runs[activation, rule, eta] = _fake_trajectory(fa, bp, min_change=fa_min if rule == "fa" else -1.0,
                                                               change_range=gd_range if rule == "bp" else (0.0, 1e-6))
    return runs


def test_drift_claims_follow_the_scaling(tmp_path):
    results = _results(tmp_path)
    CL.record_drift_scaling(results, _fake_drift_runs(), horizon=0.5)
    CL.record_cross_drift(results, _fake_drift_runs(), horizon=0.5)
    claims = _claims(results)
    assert list(claims) == ["K3a", "K3b", "K3c", "K4"] and all(c["verdict"] == "reproduced" for c in claims.values())
    assert claims["K3a"]["measured"]["min"] == pytest.approx(2.0) and claims["K3a"]["measured"]["eta_half_over_eta_tenth"]["max"] == pytest.approx(5.0)
    assert results.metrics["cons_k4_relu_fa"] == pytest.approx(1 / CL.ETAS[0]) and results.metrics["cons_k4_low"] == pytest.approx(1.0)
    # A law broken at first order (drift independent of eta), a decreasing c, a one-signed GD change: each claim fails.
    results = _results(tmp_path)
    CL.record_drift_scaling(results, _fake_drift_runs(own=lambda eta: 1.0, gd_range=(0.0, 1e-6), fa_min=-1e-9), horizon=0.5)
    CL.record_cross_drift(results, _fake_drift_runs(own=lambda eta: 1.0), horizon=0.5)
    assert {k: c["verdict"] for k, c in _claims(results).items()} == {k: "deviates" for k in ("K3a", "K3b", "K3c", "K4")}


def test_drift_runs_are_plain_trajectories():
    runs, problems = CL.drift_runs([0, 1], width=4, horizon=0.02)
    assert set(runs) == {(a, r, e) for r in ("fa", "bp") for a, etas in (("relu", CL.ETAS), ("linear", (CL.ETAS[0], CL.ETAS[-1])))
                         for e in etas}
    assert runs["relu", "fa", CL.ETAS[2]].steps[-1] == 20 and runs["relu", "fa", CL.ETAS[0]].steps.tolist() == [0, 1, 2]
    assert problems["relu"].weights[1].shape == (2, 4, 4) and problems["linear"].x.shape == (2, CL.N_SAMPLES, CL.N_IN)
    own = runs["relu", "fa", CL.ETAS[0]]
    again = CL.conservation_trajectory(problems["relu"].weights, problems["relu"].x, problems["relu"].y, rule="fa", activation="relu",
                                       lr=CL.ETAS[0], steps=2, feedback=problems["relu"].feedback, per_neuron=True)
    np.testing.assert_array_equal(own.drift["fa"][-1], again.drift["fa"][-1])


def test_variant_kwargs():
    assert CL.variant_kwargs("plain", 0.01) == {"lr": 0.01}
    assert CL.variant_kwargs("weight decay", 0.01) == {"lr": 0.01, "l2": CL.WEIGHT_DECAY}
    momentum = CL.variant_kwargs("momentum", 0.01)
    assert momentum["lr"] / (1 - momentum["momentum"]) == pytest.approx(0.01)  # the effective step is eta
    fixed = CL.variant_kwargs("momentum, fixed memory time", 0.005)
    assert fixed["momentum"] == pytest.approx(0.95) and fixed["lr"] / (1 - fixed["momentum"]) == pytest.approx(0.005)
    assert CL.variant_kwargs("Adam", 0.01) == {"lr": CL.ADAM_LR_RATIO * 0.01, "optimizer": "adam"}
    with pytest.raises(ValueError, match="name='nesterov'"):
        CL.variant_kwargs("nesterov", 0.01)
    assert [CL.variant_key(v) for v in CL.BREAKING_VARIANTS] == ["plain", "weight_decay", "momentum", "momentum_fixed_time", "Adam"]


def _fake_history(metrics, *, diverged=None):
    """A History from ``{name: (R, S, ...)}`` arrays."""
    s = next(iter(metrics.values())).shape[1]
    return F.History(steps=np.arange(next(iter(metrics.values())).shape[0]), metrics=metrics,
                     diverged=np.zeros(s, bool) if diverged is None else diverged, diverged_step=np.full(s, -1), weights=[])


def test_breaking_claims(tmp_path):
    drift = {"plain": lambda eta: eta, "weight decay": lambda eta: 1.0, "momentum": lambda eta: 0.1 + eta,
             "momentum, fixed memory time": lambda eta: 0.5, "Adam": lambda eta: 100 * eta}  # Adam keeps the law here: K4c fails
    runs = {(name, eta): _fake_history({"drift_fa": np.full((2, 3, 2), f(eta)), "loss": np.ones((2, 3))})
            for name, f in drift.items() for eta in CL.ETAS[:2]}
    rows = CL.breaking_rows(runs)
    assert rows["plain"]["over_plain"] == {"min": 1.0, "max": 1.0, "mean": 1.0}
    assert rows["weight decay"]["ratio_half_lr"]["min"] == 1.0 and rows["weight decay"]["over_plain"]["max"] == pytest.approx(100)
    results = _results(tmp_path)
    CL.record_breaking(results, runs, horizon=0.5)
    assert {k: c["verdict"] for k, c in _claims(results).items()} == {"K4b": "reproduced", "K4c": "deviates", "K4d": "reproduced"}
    assert results.metrics["cons_Adam_half_min"] == pytest.approx(2.0) and results.metrics["cons_weight_decay_over_plain_min"] == pytest.approx(100)
    assert set(results.metrics["breaking_runs"]) == set(CL.BREAKING_VARIANTS)


def test_breaking_runs_track_the_drift():
    problem = CL.teacher_problem([0, 1], [CL.N_IN, 4, 4, CL.N_OUT], activation="relu")
    runs = CL.breaking_runs(problem, horizon=0.1)
    assert set(runs) == {(name, eta) for name in CL.BREAKING_VARIANTS for eta in CL.ETAS[:2]}
    assert runs["plain", CL.ETAS[1]].steps[-1] == 20 and runs["Adam", CL.ETAS[0]].final("drift_fa").shape == (2, 2)
    rows = CL.breaking_rows(runs)
    assert 1.9 < rows["plain"]["ratio_half_lr"]["min"] < 2.1  # plain steps keep the law: the drift is O(eta)
    for name in ("weight decay", "Adam"):  # these break it at first order: the drift does not shrink with eta
        assert rows[name]["ratio_half_lr"]["max"] < 1.1 and rows[name]["over_plain"]["min"] > 1.5


def test_split_and_stacked_trajectories():
    weights, feedback, _, x, y = _problem([5, 6, 6, 3], activation="relu")
    starts = {"a": weights, "b": [0.1 * w for w in weights]}
    kw = dict(rule="fa", activation="relu", lr=0.05, steps=4, per_neuron=True, record_every=2)
    parts = CL.stacked_trajectories(starts, x, y, feedback, **kw)
    assert list(parts) == ["a", "b"]
    for name, start in starts.items():
        alone = conservation_trajectory(start, x, y, feedback=feedback, **kw)
        part = parts[name]
        assert part.steps.tolist() == alone.steps.tolist() and part.diverged.shape == (3,)
        for field in ("loss", "weight_alignment", "feedback_inner", "incoming_squares", "identity_residual", "min_neuron_change",
                      "neuron_change_range", "law_residual"):
            np.testing.assert_allclose(getattr(part, field), getattr(alone, field), rtol=1e-9, atol=1e-15, err_msg=field)
        np.testing.assert_allclose(part.drift["bp"], alone.drift["bp"], rtol=1e-9, atol=1e-15)
        torch.testing.assert_close(part.weights[1], alone.weights[1])
    with pytest.raises(ValueError, match="cannot be split"):
        CL.split_trajectory(parts["a"], ["x", "y"])


def test_alignment_blocks():
    weights, feedback, _, _, _ = _problem([5, 6, 6, 3])
    blocks = CL.alignment_blocks(weights, feedback)
    assert list(blocks) == [CL.scale_block(s) for s in CL.INIT_SCALES] + [CL.BOUNDARY, CL.ANTI_ALIGNED]
    assert CL.scale_block(CL.SMALL_SCALE) == "scale 0.01"
    torch.testing.assert_close(blocks["scale 0.001"][1], 1e-3 * weights[1])
    sums = torch.stack([q.sum(-1) for q in conserved_quantities(blocks[CL.BOUNDARY], rule="fa", feedback=feedback, per_neuron=True)], -1)
    torch.testing.assert_close(sums, torch.zeros_like(sums), atol=1e-12, rtol=0)
    assert (feedback_inner_products(blocks[CL.ANTI_ALIGNED], feedback) < 0).all()


def test_alignment_runs_rows_and_claims(tmp_path):
    runs = CL.alignment_runs([0, 1], depth=3, width=6, steps=40)
    assert list(runs["fa"]) == list(CL.alignment_blocks(*_problem([5, 6, 3])[:2])) and len(runs["bp"]) == len(CL.INIT_SCALES)
    small = runs["fa"][CL.scale_block(CL.SMALL_SCALE)]
    assert small.weight_alignment.shape == (41, 2, 2) and small.identity_residual is not None
    assert runs["bp"]["scale 1"].identity_residual is None
    rows, by_block = CL.alignment_rows(runs)
    assert len(rows) == 2 * 2 and len(by_block) == (6 + 4) * 2
    fa2 = next(r for r in rows if r["rule"] == "fa" and r["layer"] == 2)
    assert fa2["min"] == float(small.weight_alignment[-1][:, 0].min())
    assert CL.alignment_table(by_block).data.shape == (10, 2)
    results = _results(tmp_path)
    CL.record_alignment_growth(results, runs, steps=40)
    CL.record_alignment_condition(results, runs, steps=40)
    claims = _claims(results)
    assert list(claims) == ["K5a", "K5b", "K5c", "K5d", "K5e"]
    assert claims["K5c"]["verdict"] == "reproduced" and claims["K5c"]["kind"] == "implementation"
    assert claims["K5b"]["measured"]["bounds"] == pytest.approx([4 / np.sqrt(36), 4 / np.sqrt(30)])
    assert results.metrics["cons_false_alarm"] == pytest.approx(CL.gd_false_alarm(4 * 2 * 2))
    assert claims["K5d"]["measured"]["min_alignment"] == float(np.nanmin(runs["fa"][CL.BOUNDARY].weight_alignment))
    assert claims["K5a"]["measured"]["fa_slope_min"] == float(np.nanmin(fitted_slope(small.incoming_squares, small.feedback_inner)))
    assert results.metrics["cons_fa_small_loss_end"] < results.metrics["cons_fa_small_loss_start"]


def test_gd_false_alarm():
    assert CL.gd_false_alarm(1) == pytest.approx(6.334e-5, rel=1e-3)
    assert CL.gd_false_alarm(100) == pytest.approx(100 * CL.gd_false_alarm(1))


def test_min_norm_runs_by_scale_and_claims(tmp_path):
    runs = CL.min_norm_runs([0, 1], n=10, d=40, h=16, steps=1500)
    assert not any(h.diverged.any() for h in runs.values())
    assert list(runs) == list(CL.NORM_RUNS)
    by_scale = CL.min_norm_by_scale(runs)
    k = len(CL.NORM_SCALES)
    assert by_scale["fa"]["min_norm_distance"].shape == (k, 2) and by_scale["bp"]["diverged"].shape == (k, 2)
    np.testing.assert_array_equal(by_scale["fa"]["min_norm_relative_error"].ravel(), runs["fa"].final("min_norm_relative_error"))
    assert max(float(w.abs().max()) for w in runs["bp_zero"].weights) == 0.0
    assert float(runs["fa"].weights[0][0].abs().max()) > 0  # W_1(0) = 0 moves under FA
    results = _results(tmp_path)
    CL.record_min_norm(results, runs, steps=1500)
    claims = _claims(results)
    assert list(claims) == ["K6a", "K6b", "K6c", "K6d"] and claims["K6b"]["kind"] == "implementation"
    assert claims["K6a"]["measured"]["worst"] == float(np.nanmax(by_scale["fa"]["min_norm_relative_error"][0]))
    assert all(c["verdict"] == "reproduced" for c in claims.values()) and claims["K6d"]["measured"]["gd_max_abs_weight"] == 0.0
    assert 9 < claims["K6c"]["measured"]["min"] <= claims["K6c"]["measured"]["max"] < 11
    assert "1e-8" in claims["K6a"]["expected"] and set(results.metrics["min_norm_distance_by_scale"]) == {"0", "0.0001", "0.001", "0.01", "0.1"}


def _practical(share, bp_share, align_gain, acc_gain):
    """PracticalRuns from made-up records: one record after the start, two seeds, two hidden layers."""
    def law(value):
        return _fake_history({"drift_fa": np.stack([np.zeros((2, 2)), np.full((2, 2), value)]), "incoming_change": np.ones((2, 2, 2)),
                              "test_accuracy": np.full((2, 2), 0.8)})

    def run(align, acc):
        return _fake_history({"grad_alignment": np.full((2, 2, 2), align), "test_accuracy": np.full((2, 2), acc)})

    classes = {n: {"lecun": run(0.2, 0.7), "small": run(0.2 + align_gain, 0.7 + acc_gain[n])} for n in CL.CLASS_COUNTS}
    return CL.PracticalRuns(law={f"{lr:g}": law(share) for lr in CL.PRAC_LRS} | {"bp": law(bp_share)}, classes=classes,
                            flipped=0.2, per_epoch=80)


def test_practical_claims(tmp_path):
    results = _results(tmp_path)
    CL.record_practical(results, _practical(0.05, 1.0, 0.3, {2: -0.01, 5: 0.02, 10: 0.01}), epochs=2)
    claims = _claims(results)
    assert {k: c["verdict"] for k, c in claims.items()} == {"K7a": "reproduced", "K7b": "reproduced"}
    assert claims["K7a"]["measured"]["max_by_lr"] == {"0.01": 0.05, "0.03": 0.05, "0.1": 0.05}
    assert results.metrics["cons_acc_gain_2"] == pytest.approx(-1.0) and results.metrics["cons_class_acc_5"] == pytest.approx(70.0)
    assert results.metrics["cons_prac_acc_1"] == pytest.approx(80.0) and results.metrics["cons_unmatched_bp"] == 1.0
    results = _results(tmp_path)
    CL.record_practical(results, _practical(0.5, 1.0, 0.3, {2: 0.01, 5: -0.02, 10: 0.01}), epochs=2)
    assert {k: c["verdict"] for k, c in _claims(results).items()} == {"K7a": "deviates", "K7b": "deviates"}


def test_unmatched_share_and_class_gains():
    h = _fake_history({"drift_fa": np.array([[[0.0]], [[1.0]], [[3.0]]]), "incoming_change": np.array([[[0.0]], [[2.0]], [[4.0]]])})
    np.testing.assert_allclose(CL.unmatched_share(h), [[[0.5]], [[0.75]]])
    gains = CL.class_gains(_practical(0.1, 1.0, 0.25, {2: 0.1, 5: 0.1, 10: 0.1}).classes[5])
    np.testing.assert_allclose(gains["alignment_gain"], [0.25, 0.25])
    np.testing.assert_allclose(gains["accuracy_gain_points"], [10.0, 10.0])


def test_practical_runs(monkeypatch):
    monkeypatch.setattr(CL, "PRAC_N", 100)
    monkeypatch.setattr(CL, "PRAC_HIDDEN", 8)
    gen = torch.Generator().manual_seed(0)
    y_train = torch.arange(600) % 10
    data = F.ClassificationData(name="mnist", directory=None, x_train=torch.randn(600, 784, generator=gen), y_train=y_train,
                                x_test=torch.randn(50, 784, generator=gen), y_test=torch.arange(50) % 10, sha256={})
    runs = CL.practical_runs(data, [0, 1], epochs=1, seed=0)
    assert runs.per_epoch == 2 and runs.flipped == pytest.approx(0.2)
    assert list(runs.law) == ["0.01", "0.03", "0.1", "bp"] and list(runs.classes) == list(CL.CLASS_COUNTS)
    assert all(h.diverged.shape == (2,) for h in runs.law.values())
    assert runs.classes[2]["small"].weights[-1].shape == (2, 2, 8)
    assert CL.unmatched_share(runs.law["0.01"]).shape == (1, 2, 2)  # one record (one epoch) after the start
    # a step size of the batch trains exactly as it does alone
    x10, y10, _ = F.noisy_subset(data.x_train, data.y_train, 100, n_classes=10, noise=CL.PRAC_NOISE, seed=0)
    widths = [784, 8, 8, 10]
    alone = F.train(F.init_weights(widths, [0, 1]), x10, y10, rule="fa", activation="relu", loss="ce", lr=0.1, steps=2, batch_size=50,
                    feedback=F.init_feedback(widths, [0, 1], rule="fa"), shuffle_seed=0, progress=False)
    torch.testing.assert_close(runs.law["0.1"].weights[0], alone.weights[0])
    # the small start is the LeCun draw scaled: same seed, same B
    assert (runs.classes[5]["small"].final("grad_alignment") > -2).all()


def test_report_diverged(capsys):
    ok = _fake_history({"loss": np.ones((2, 3))})
    bad = _fake_history({"loss": np.ones((2, 3))}, diverged=np.array([True, False, True]))
    CL._report_diverged({"ok": ok, ("fa", 0.1): bad})
    assert capsys.readouterr().out.strip() == "('fa', 0.1): 2 of 3 seeds diverged and are excluded"


@pytest.mark.parametrize("widths", [[5, 7, 1], [5, 8, 6, 3]])
@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_l2_law_is_the_exact_one_step_change_and_first_order(widths, activation):
    seeds = [0, 1, 2]
    weights = F.init_weights(widths, seeds, dtype=torch.float64)
    feedback = F.init_feedback(widths, seeds, rule="fa", dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 10, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(3, 10, widths[-1], generator=gen, dtype=torch.float64)
    lr = 0.05
    l2 = [torch.tensor([0.0, 0.1, 0.3], dtype=torch.float64)] + [torch.tensor([0.0, 0.2, 0.0], dtype=torch.float64)] * (len(widths) - 2)
    result = F.backward_pass(weights, x, y, rule="fa", activation=activation, feedback=feedback)
    law = CL.step_change_with_l2(weights, result.grads, feedback, lr=lr, l2=l2)
    after = [w - lr * (g + d.reshape(-1, 1, 1) * w) for w, g, d in zip(weights, result.grads, l2)]
    before_c = CL.conserved_quantities(weights, rule="fa", feedback=feedback, per_neuron=True)
    after_c = CL.conserved_quantities(after, rule="fa", feedback=feedback, per_neuron=True)
    plain = CL.step_change(result.grads, rule="fa", lr=lr, per_neuron=True)
    for k, (c0, c1, predicted) in enumerate(zip(before_c, after_c, law)):
        assert torch.allclose(c1 - c0, predicted, rtol=0, atol=1e-13)
        assert torch.allclose(predicted[0], plain[k][0], rtol=0, atol=1e-15)  # seed 0 has no L2: the plain law
        # with L2 the change is first order: it takes both signs, where the plain law is never negative
        assert (predicted[1:] < 0).any() and (plain[k] >= 0).all()
    with pytest.raises(ValueError, match="one entry per layer"):
        CL.step_change_with_l2(weights, result.grads, feedback, lr=lr, l2=l2[:1])
