"""Chu & Bacho's mathematics (fa_lib.theory.fixed_points): fixed points of FA/DFA, the update's Jacobian and its eigenvalues, the perturbation test, the scalar toy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import fa_lib as F
from fa_lib.theory import fixed_points as fp
from fa_lib.training.stability import perturbation_growth

DT = torch.float64
SEEDS = [0, 1, 2]


def _zero_error(widths, activation, n_samples=1, seeds=SEEDS):
    return fp.random_zero_error_point(widths, seeds, n_samples, activation=activation)


def _feedback(widths, rule, seeds=SEEDS, scale=1.0):
    if rule == "bp":
        return None
    stds = [scale / np.sqrt(n) for n in widths[:-1]] if rule == "fa" else [scale] * (len(widths) - 1)
    return F.init_feedback(widths, seeds, rule=rule, std=stds, dtype=DT)


NETWORKS = [[4, 6, 1], [4, 6, 5, 1], [4, 7, 6, 3]]


# --------------------------------------------------------------------------- parameter vectors
def test_flatten_round_trip_and_layout():
    w = F.init_weights([3, 4, 2], SEEDS, dtype=DT)
    flat = fp.flatten_weights(w)
    assert flat.shape == (3, 3 * 4 + 4 * 2)
    torch.testing.assert_close(flat[1, :12], w[0][1].flatten())
    for a, b in zip(fp.unflatten_weights(flat, w), w):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="expected \\(S, 20\\)"):
        fp.unflatten_weights(flat[:, :-1], w)
    with pytest.raises(ValueError, match="\\(S, n_out, n_in\\)"):
        fp.flatten_weights([t[0] for t in w])


# --------------------------------------------------------------------------- Jacobians
@pytest.mark.parametrize("activation", ["linear", "tanh", "sigmoid"])
def test_bp_update_jacobian_is_the_hessian(activation):
    widths = [3, 4, 2]
    w = F.init_weights(widths, SEEDS, dtype=DT)
    x, y = F.teacher_data(5, widths, SEEDS, activation="tanh", dtype=DT)
    jac = fp.update_jacobian(w, x, y, rule="bp", activation=activation)
    for s in range(len(SEEDS)):
        def loss(flat, s=s):
            ws = [t.unsqueeze(0) for t in fp.unflatten_weights(flat.unsqueeze(0), [v[s : s + 1] for v in w])]
            out = F.forward([t[0] for t in ws], x[s], activation).output
            return 0.5 * ((out - y[s]) ** 2).sum() / x.shape[1]

        hess = torch.autograd.functional.hessian(loss, fp.flatten_weights(w)[s])
        torch.testing.assert_close(jac[s], hess, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation", ["linear", "tanh", "relu"])
@pytest.mark.parametrize("widths", NETWORKS)
def test_bp_output_jacobian_is_df_dw(activation, widths):
    w = F.init_weights(widths, SEEDS, dtype=DT)
    x = F.gaussian_inputs(3, widths[0], SEEDS, dtype=DT)
    got = fp.output_jacobian(w, x, rule="bp", activation=activation)

    def outputs(flat):
        return F.forward(fp.unflatten_weights(flat, w), x, activation).output.sum(0)

    expected = torch.func.jacrev(outputs)(fp.flatten_weights(w)).permute(2, 0, 1, 3)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_fa_pseudo_jacobian_by_hand():
    """Two-layer linear net, one sample: g~ = (b x h-part, h) with W2^T replaced by B2."""
    w1 = torch.tensor([[[1.0, 2.0], [0.5, -1.0]]], dtype=DT)  # (1, 2, 2)
    w2 = torch.tensor([[[3.0, -2.0]]], dtype=DT)  # (1, 1, 2)
    b2 = torch.tensor([[[0.7, 0.1]]], dtype=DT)
    x = torch.tensor([[2.0, -1.0]], dtype=DT)
    h = w1[0] @ x[0]  # hidden activations
    pseudo = fp.output_jacobian([w1, w2], x, rule="fa", activation="linear", feedback=[None, b2])
    exact = fp.output_jacobian([w1, w2], x, rule="bp", activation="linear")
    expected_pseudo = torch.cat([torch.outer(b2[0, 0], x[0]).flatten(), h])
    expected_exact = torch.cat([torch.outer(w2[0, 0], x[0]).flatten(), h])
    torch.testing.assert_close(pseudo[0, 0, 0], expected_pseudo)
    torch.testing.assert_close(exact[0, 0, 0], expected_exact)
    lam = fp.stability_eigenvalues([w1, w2], x, rule="fa", activation="linear", feedback=[None, b2])
    torch.testing.assert_close(lam[0, 0].real, expected_pseudo @ expected_exact)


@pytest.mark.parametrize("rule,activation,widths", [
    (r, a, w) for r, a, w in itertools.product(["fa", "dfa"], ["linear", "tanh", "relu"], NETWORKS) if not (r == "dfa" and len(w) == 3)
])
def test_jacobian_at_zero_error_point_is_pseudo_times_exact(rule, activation, widths):
    n_samples = 1 if widths[-1] == 1 else 4
    w, x, y = _zero_error(widths, activation, n_samples)
    fb = _feedback(widths, rule)
    jac = fp.update_jacobian(w, x, y, rule=rule, activation=activation, feedback=fb)
    pseudo = fp.output_jacobian(w, x, rule=rule, activation=activation, feedback=fb).flatten(1, 2)
    exact = fp.output_jacobian(w, x, rule="bp", activation=activation).flatten(1, 2)
    torch.testing.assert_close(jac, pseudo.transpose(-1, -2) @ exact / n_samples, rtol=1e-9, atol=1e-12)
    # its non-zero eigenvalues are those of the reduced K x K matrix
    lam = fp.stability_eigenvalues(w, x, rule=rule, activation=activation, feedback=fb)
    top = fp.largest_eigenvalues(jac, lam.shape[-1])
    assert fp.eigenvalue_mismatch(lam, top).max() < 1e-9


def test_the_update_is_affine_in_the_error():
    widths = [4, 6, 5, 2]
    w = F.init_weights(widths, SEEDS, dtype=DT)
    x, y = F.teacher_data(3, widths, SEEDS, activation="tanh", dtype=DT)
    fb = _feedback(widths, "fa")
    pseudo = fp.output_jacobian(w, x, rule="fa", activation="tanh", feedback=fb)  # (S, N, n_L, P)
    err = F.forward(w, x, "tanh").output - y
    expected = torch.einsum("snkp,snk->sp", pseudo, err) / 3
    torch.testing.assert_close(fp.update_direction(w, x, y, rule="fa", activation="tanh", feedback=fb), expected)


def test_eigenvalue_tools_by_hand():
    m = torch.tensor([[[2.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1e-14]]], dtype=DT)
    top = fp.largest_eigenvalues(m, 2)
    torch.testing.assert_close(top.real, torch.tensor([[-1.0, 2.0]], dtype=DT))
    a = torch.tensor([[1 + 1j, 1 - 1j, 3.0]], dtype=torch.complex128)
    b = torch.tensor([[3.0, 1 - 1j, 1 + 1.03j]], dtype=torch.complex128)
    torch.testing.assert_close(fp.eigenvalue_mismatch(a, b), torch.tensor([0.01], dtype=DT))
    with pytest.raises(ValueError, match="differ in shape"):
        fp.eigenvalue_mismatch(a, b[:, :2])
    with pytest.raises(ValueError, match="k=0"):
        fp.largest_eigenvalues(m, 0)


# --------------------------------------------------------------------------- fixed points
@pytest.mark.parametrize("activation", ["linear", "tanh", "relu"])
@pytest.mark.parametrize("widths", [[4, 8, 1], [4, 8, 8, 1], [4, 8, 8, 3]])
def test_every_rule_vanishes_at_a_zero_error_point(activation, widths):
    n_samples = 1 if widths[-1] == 1 else 3  # a linear net fits at most n_0 = 4 samples
    w, x, y = _zero_error(widths, activation, n_samples)
    start = F.init_weights(widths, SEEDS, dtype=DT)  # the random point before its readout was fitted
    assert all(torch.equal(a, b) for a, b in zip(w[:-1], start[:-1]))
    assert (F.forward(w, x, activation).output - y).abs().max() < 1e-12
    for rule in ("bp", "fa", "dfa"):
        fb = _feedback(widths, rule)
        moved = fp.update_direction(w, x, y, rule=rule, activation=activation, feedback=fb).norm(dim=-1)
        before = fp.update_direction(start, x, y, rule=rule, activation=activation, feedback=fb).norm(dim=-1)
        assert torch.all(moved < 1e-12 * before)
        # ... but not away from it
        away = fp.update_direction(fp.perturb(w, SEEDS, scale=1e-2), x, y, rule=rule, activation=activation, feedback=fb)
        assert away.abs().amax(-1).min() > 1e-6


def test_zero_error_readout_is_the_nearest_fit_and_needs_enough_units():
    widths = [3, 6, 2]
    w = F.init_weights(widths, SEEDS, dtype=DT)
    x = F.gaussian_inputs(4, 3, SEEDS, dtype=DT)
    y = torch.randn(3, 4, 2, dtype=DT, generator=torch.Generator().manual_seed(0))
    fitted = fp.zero_error_readout(w, x, y, activation="tanh")
    torch.testing.assert_close(fitted[0], w[0])
    change = fitted[1] - w[1]
    h = torch.tanh(x @ w[0].transpose(-1, -2))
    # minimum norm: the change lies in the row space of the hidden activations
    proj = h.transpose(-1, -2) @ torch.linalg.pinv(h.transpose(-1, -2))
    torch.testing.assert_close(change @ proj, change)
    with pytest.raises(ValueError, match="3 units < N=4"):
        fp.zero_error_readout(F.init_weights([3, 3, 2], SEEDS, dtype=DT), x, y, activation="tanh")
    dead = F.init_weights([3, 6, 2], SEEDS, dtype=DT)
    dead[0][:, 2:] = 0.0  # four dead relu units: rank 2 < N = 4
    with pytest.raises(ValueError, match="rank < N=4"):
        fp.zero_error_readout(dead, x, y, activation="relu")


def test_linear_bottleneck_minimum_is_a_bp_minimum_but_not_an_fa_fixed_point():
    widths, seeds = [6, 2, 4], [0, 1]
    x, y = F.teacher_data(30, [6, 6, 4], seeds, activation="linear", dtype=DT)
    y = y + 0.5 * F.seeded_normal([(30, 4)], seeds, [1.0], stream="noise", dtype=DT)[0]
    w = fp.linear_bottleneck_minimum(x, y, 2)
    assert fp.update_direction(w, x, y, rule="bp", activation="linear").abs().max() < 1e-11
    fb = F.init_feedback(widths, seeds, rule="fa", dtype=DT)
    assert fp.update_direction(w, x, y, rule="fa", activation="linear", feedback=fb).norm(dim=-1).min() > 0.1
    loss = F.backward_pass(w, x, y, rule="bp", activation="linear").loss
    # global minimum: gradient descent from a random start gets no lower
    trained = F.train(F.init_weights(widths, seeds, dtype=DT), x, y, rule="bp", activation="linear", lr=0.05,
                      steps=4000, record_every=4000, progress=False)
    assert np.all(trained.metrics["loss"][-1] >= loss.numpy() - 1e-9) and loss.min() > 0.1
    # a width that does not bind gives least squares, where the FA update of a linear net vanishes too
    full = fp.linear_bottleneck_minimum(x, y, 4)
    fb4 = F.init_feedback([6, 4, 4], seeds, rule="fa", dtype=DT)
    assert fp.update_direction(full, x, y, rule="fa", activation="linear", feedback=fb4).abs().max() < 1e-11
    with pytest.raises(ValueError, match="hidden=0"):
        fp.linear_bottleneck_minimum(x, y, 0)
    with pytest.raises(ValueError, match="same S and N"):
        fp.linear_bottleneck_minimum(x, y[:, :5], 2)


# --------------------------------------------------------------------------- stability experiments
def test_perturbation_grows_or_decays_with_the_sign_of_g_tilde_dot_g():
    widths, seeds = [4, 8, 8, 1], list(range(24))
    w, x, y = _zero_error(widths, "tanh", seeds=seeds)
    fb = _feedback(widths, "fa", seeds=seeds, scale=8.0)
    lam = fp.stability_eigenvalues(w, x, rule="fa", activation="tanh", feedback=fb)[:, 0]
    align = fp.update_alignment(w, x, rule="fa", activation="tanh", feedback=fb)
    assert torch.all(torch.sign(align) == torch.sign(lam.real)) and (lam.real < 0).any() and (lam.real > 0).any()
    kw = dict(rule="fa", activation="tanh", feedback=fb, steps=40, scale=1e-6, seeds=seeds)
    growth = perturbation_growth(w, x, y, lr=0.05 / lam.abs(), **kw)
    torch.testing.assert_close(growth, 2 * 20 * torch.log(torch.abs(1 - 0.05 * torch.sign(lam.real))), rtol=0.02, atol=0)
    # beyond lr = 2 / |lambda| a stable point loses its stability; below it, it keeps it (few steps:
    # |1 - lr lambda|^steps must stay small enough for the linearisation to hold)
    kw.update(steps=10, scale=1e-8)
    assert torch.all(perturbation_growth(w, x, y, lr=2.5 / lam.abs(), **kw) > 0)
    assert torch.all((perturbation_growth(w, x, y, lr=1.5 / lam.abs(), **kw) > 0) == (lam.real < 0))


def test_perturb_is_seeded_and_of_the_given_size():
    w = F.init_weights([3, 4, 2], SEEDS, dtype=DT)
    moved = fp.perturb(w, SEEDS, scale=0.1)
    dist = (fp.flatten_weights(moved) - fp.flatten_weights(w)).norm(dim=-1)
    torch.testing.assert_close(dist, torch.full((3,), 0.1, dtype=DT))
    alone = fp.perturb([t[1:2] for t in w], [1], scale=0.1)
    torch.testing.assert_close(alone[0][0], moved[0][1])
    with pytest.raises(ValueError, match="scale"):
        fp.perturb(w, SEEDS, scale=0.0)
    with pytest.raises(ValueError, match="2 seeds for 3 networks"):
        fp.perturb(w, SEEDS[:2], scale=0.1)


def test_perturbation_growth_counts_divergence_as_growth():
    widths = [4, 8, 1]
    w, x, y = _zero_error(widths, "linear")
    fb = _feedback(widths, "fa")
    growth = perturbation_growth(w, x, y, rule="fa", activation="linear", feedback=fb, lr=1e6, steps=40, scale=1.0, seeds=SEEDS)
    assert torch.all(torch.isinf(growth) & (growth > 0))
    with pytest.raises(ValueError, match="steps=1"):
        perturbation_growth(w, x, y, rule="fa", activation="linear", feedback=fb, lr=0.1, steps=1, scale=1.0, seeds=SEEDS)


def test_descent_contributions_are_the_first_order_loss_change():
    widths = [6, 8, 5, 3]
    w = F.init_weights(widths, SEEDS, dtype=DT)
    fb = _feedback(widths, "fa")
    x = F.gaussian_inputs(10, 6, SEEDS, dtype=DT)
    y = torch.randint(0, 3, (3, 10), generator=torch.Generator().manual_seed(0))
    parts = fp.descent_contributions(w, x, y, rule="fa", activation="tanh", loss="ce", feedback=fb)
    assert parts.shape == (3, 3)
    lr = 1e-6
    grads = F.gradients(w, x, y, rule="fa", activation="tanh", loss="ce", feedback=fb)
    loss = lambda ws: F.backward_pass(ws, x, y, rule="bp", activation="tanh", loss="ce").loss
    for layer in range(3):  # step one layer only: the loss changes by -lr * its term
        moved = [v - lr * g if i == layer else v for i, (v, g) in enumerate(zip(w, grads))]
        torch.testing.assert_close((loss(w) - loss(moved)) / lr, parts[:, layer], rtol=1e-4, atol=1e-8)
    exact = F.gradients(w, x, y, rule="bp", activation="tanh", loss="ce")
    torch.testing.assert_close(parts[:, -1], (exact[-1] ** 2).sum(dim=(-1, -2)))  # FA's output layer is exact
    bp = fp.descent_contributions(w, x, y, rule="bp", activation="tanh", loss="ce")
    torch.testing.assert_close(bp, torch.stack([(g**2).sum(dim=(-1, -2)) for g in exact], dim=-1))


# --------------------------------------------------------------------------- degenerate feedback, accuracy
def test_rank_one_feedback():
    widths, seeds = [20, 30, 25, 10], list(range(40))
    fb = fp.rank_one_feedback(widths, seeds, dtype=DT)
    full = F.init_feedback(widths, seeds, rule="fa", dtype=DT)
    assert fb[0] is None and [b.shape for b in fb[1:]] == [b.shape for b in full[1:]]
    for b, n_in in zip(fb[1:], widths[1:-1]):
        assert torch.all(torch.linalg.matrix_rank(b) == 1)
        assert abs(float(b.var()) * n_in - 1) < 0.15  # entry variance 1/n_in, like a full-rank draw
    torch.testing.assert_close(fp.rank_one_feedback(widths, [7], dtype=DT)[2][0], fb[2][7])
    assert fp.rank_one_feedback(widths, [0], std=2.0)[1].abs().max() > 0
    with pytest.raises(ValueError, match="no hidden layer"):
        fp.rank_one_feedback([5, 3], [0])
    with pytest.raises(ValueError, match="std"):
        fp.rank_one_feedback(widths, [0], std=-1.0)


# --------------------------------------------------------------------------- the scalar toy
def _toy_run(w1, w2, b, x, y, lr, steps):
    s = w1.shape[0]
    weights = [w1.reshape(s, 1, 1), w2.reshape(s, 1, 1)]
    xx, yy = torch.full((1, 1), x, dtype=DT), torch.full((1, 1), y, dtype=DT)
    hist = F.train(weights, xx, yy, rule="fa", activation="linear", lr=lr, steps=steps, feedback=[None, b.reshape(s, 1, 1)],
                   record_every=steps, progress=False)
    return hist.weights[0].flatten(), hist.weights[1].flatten()


def test_toy_is_the_core_fa_rule_and_conserves_c_to_first_order():
    gen = torch.Generator().manual_seed(1)
    w1, w2, b = (torch.rand(50, generator=gen, dtype=DT) * 4 - 2 for _ in range(3))
    x, y, lr = 1.5, 0.8, 1e-3
    e = w2 * w1 * x - y
    one1, one2 = _toy_run(w1, w2, b, x, y, lr, 1)
    torch.testing.assert_close(one1, w1 - lr * e * b * x)  # dw1 = -lr e b x
    torch.testing.assert_close(one2, w2 - lr * e * w1 * x)  # dw2 = -lr e w1 x
    # per step, C drops by exactly lr^2 e^2 b^2 x^2 / 2
    torch.testing.assert_close(fp.toy_conserved(one1, one2, b) - fp.toy_conserved(w1, w2, b), -0.5 * (lr * e * b * x) ** 2)


def test_toy_landing_point_by_hand_and_by_simulation():
    # b = x = y = 1 from (-0.5, -2): C = -2.125, q = w^3 - 4.25 w - 2 = (w + 0.5)(w^2 - 0.5 w - 4)
    roots = (0.25 + np.sqrt(0.0625 + 4), 0.25 - np.sqrt(0.0625 + 4))
    w1 = torch.tensor([-0.5 + 1e-3, -0.5 - 1e-3], dtype=DT)
    w2 = (fp.toy_conserved(torch.tensor(-0.5, dtype=DT), torch.tensor(-2.0, dtype=DT), 1.0) + w1**2 / 2)
    land1, land2 = fp.toy_landing_point(w1, w2, torch.ones(2, dtype=DT), 1.0, 1.0)
    torch.testing.assert_close(land1, torch.tensor(roots, dtype=DT), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(land1 * land2, torch.ones(2, dtype=DT))
    assert torch.all(fp.toy_eigenvalue(land1, land2, torch.ones(2, dtype=DT), 1.0) > 0)
    # simulation: the landing error is O(lr), from the O(lr^2) per-step loss of C
    gen = torch.Generator().manual_seed(2)
    w1, w2 = (torch.rand(40, generator=gen, dtype=DT) * 4 - 2 for _ in range(2))
    b = (torch.rand(40, generator=gen, dtype=DT) + 0.5) * torch.where(torch.arange(40) % 2 == 0, 1.0, -1.0).to(DT)
    pred1, _ = fp.toy_landing_point(w1, w2, b, 1.0, 1.0)
    errors = [(_toy_run(w1, w2, b, 1.0, 1.0, lr, int(30 / lr))[0] - pred1).abs().max() for lr in (2e-2, 4e-3)]
    assert errors[0] < 5 * 2e-2 and 3 < errors[0] / errors[1] < 7


def test_toy_eigenvalue_is_the_jacobian_eigenvalue_and_the_stable_branch():
    w1 = torch.tensor([1.3, -0.4, -2.0], dtype=DT)
    b = torch.tensor([0.8, 1.0, -0.6], dtype=DT)
    x, y = 1.2, 0.9
    w2 = fp.toy_fixed_w2(w1, x, y)
    weights = [w1.reshape(3, 1, 1), w2.reshape(3, 1, 1)]
    xx, yy = torch.full((1, 1), x, dtype=DT), torch.full((3, 1, 1), y, dtype=DT)
    jac = fp.update_jacobian(weights, xx, yy, rule="fa", activation="linear", feedback=[None, b.reshape(3, 1, 1)])
    top = fp.largest_eigenvalues(jac, 1)[:, 0]
    torch.testing.assert_close(top.real, fp.toy_eigenvalue(w1, w2, b, x))
    # b w2 + w1^2 > 0 <=> cos(FA update, gradient) > 0
    align = fp.update_alignment(weights, xx, rule="fa", activation="linear", feedback=[None, b.reshape(3, 1, 1)])
    assert torch.all(torch.sign(align) == torch.sign(b * w2 + w1**2))


def test_linearised_growth_predicts_perturbation_growth():
    seeds = list(range(6))
    widths = [4, 12, 12, 2]
    w, x, y = _zero_error(widths, "tanh", n_samples=3, seeds=seeds)
    fb = _feedback(widths, "fa", seeds=seeds, scale=8.0)
    lam = fp.stability_eigenvalues(w, x, rule="fa", activation="tanh", feedback=fb)
    kw = dict(rule="fa", activation="tanh", feedback=fb, lr=0.02 / lam.abs().amax(-1), steps=200, scale=1e-10, seeds=seeds)
    predicted = fp.linearised_growth(w, x, y, **kw)
    measured = perturbation_growth(w, x, y, **kw)
    torch.testing.assert_close(measured, predicted, rtol=1e-4, atol=1e-4)
    assert predicted.abs().min() > 1e-3  # the comparison is not between two zeros
    assert ((predicted > 0) == (lam.real[:, 0] < 0)).any()  # the same signs the eigenvalue criterion gives, mostly


# --------------------------------------------------------------------------- the chapter's bookkeeping
