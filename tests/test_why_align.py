"""Fixed points of FA/DFA, the update's Jacobian and its eigenvalues, and the scalar toy (float64)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import fa_lib as F
from fa_lib.chapters import why_align as fp

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
    growth = fp.perturbation_growth(w, x, y, lr=0.05 / lam.abs(), **kw)
    torch.testing.assert_close(growth, 2 * 20 * torch.log(torch.abs(1 - 0.05 * torch.sign(lam.real))), rtol=0.02, atol=0)
    # beyond lr = 2 / |lambda| a stable point loses its stability; below it, it keeps it (few steps:
    # |1 - lr lambda|^steps must stay small enough for the linearisation to hold)
    kw.update(steps=10, scale=1e-8)
    assert torch.all(fp.perturbation_growth(w, x, y, lr=2.5 / lam.abs(), **kw) > 0)
    assert torch.all((fp.perturbation_growth(w, x, y, lr=1.5 / lam.abs(), **kw) > 0) == (lam.real < 0))


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
    growth = fp.perturbation_growth(w, x, y, rule="fa", activation="linear", feedback=fb, lr=1e6, steps=40, scale=1.0, seeds=SEEDS)
    assert torch.all(torch.isinf(growth) & (growth > 0))
    with pytest.raises(ValueError, match="steps=1"):
        fp.perturbation_growth(w, x, y, rule="fa", activation="linear", feedback=fb, lr=0.1, steps=1, scale=1.0, seeds=SEEDS)


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
    measured = fp.perturbation_growth(w, x, y, **kw)
    torch.testing.assert_close(measured, predicted, rtol=1e-4, atol=1e-4)
    assert predicted.abs().min() > 1e-3  # the comparison is not between two zeros
    assert ((predicted > 0) == (lam.real[:, 0] < 0)).any()  # the same signs the eigenvalue criterion gives, mostly


# --------------------------------------------------------------------------- the chapter's bookkeeping
from pathlib import Path  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _results(tmp_path):
    return F.Results("01_why_align", profile="ci", parameters={}, seeds=[], results_dir=tmp_path, paper="chu2024why")


def _claim(results, cid):
    return next(c for c in results.claims if c["id"] == cid)


def _history(metrics, steps=None, diverged=None):
    n_seeds = next(iter(metrics.values())).shape[1]
    steps = np.arange(next(iter(metrics.values())).shape[0]) if steps is None else np.asarray(steps)
    diverged = np.zeros(n_seeds, bool) if diverged is None else np.asarray(diverged)
    return F.History(steps=steps, metrics=metrics, diverged=diverged, diverged_step=np.where(diverged, 1, -1), weights=[])


def test_profiles_parameters_and_seeds():
    assert set(fp.PROFILES) == set(F.PROFILES)
    assert all(set(p) == set(fp.PROFILES["ci"]) for p in fp.PROFILES.values())
    params = fp.chapter_parameters("auto")
    assert params["dataset"] == "auto" and params["widths"] == [784, 128, 10] and params["feedback_scale"] == 8.0
    with pytest.raises(ValueError, match="dataset='cifar10' is not allowed"):
        fp.chapter_parameters("cifar10")
    seeds = fp.chapter_seeds(5, fp.PROFILES["ci"])
    assert seeds["theory"] == list(range(5, 69)) and seeds["rows"] == [5, 6, 7]
    assert seeds["real"] == [5, 6, 7] and seeds["sweep"] == [5, 6]


def test_scaled_feedback_and_scalar_networks():
    fa = fp.scaled_feedback([5, 16, 16, 1], list(range(200)), "fa")
    assert fa[0] is None
    assert abs(float(fa[1].std()) - 8.0 / 4.0) < 0.1 and abs(float(fa[2].std()) - 8.0 / 4.0) < 0.1  # 8 / sqrt(16)
    dfa = fp.scaled_feedback([5, 16, 16, 3], list(range(200)), "dfa")
    assert all(abs(float(d.std()) - 8.0 / np.sqrt(3)) < 0.2 for d in dfa if d is not None)
    nets = fp.scalar_networks()
    assert len(nets) == 9 and ("dfa", "tanh", [5, 16, 1]) not in nets and ("dfa", "tanh", [5, 16, 16, 1]) in nets


def test_fixed_point_rows_and_claim(tmp_path):
    points = fp.zero_error_points(SEEDS)
    assert set(points) == {(a, tuple(w)) for w, _ in fp.ZERO_ERROR_NETWORKS for a in fp.ACTIVATIONS}
    rows = fp.fixed_point_rows(points, SEEDS)
    assert len(rows) == 18 and max(r["worst_ratio"] for r in rows) < 1e-10
    results = _results(tmp_path)
    fp.record_fixed_points(results, rows, n_seeds=3)
    assert _claim(results, "C1a")["passed"] and _claim(results, "C1a")["measured"]["n_networks"] == 9
    bad = [dict(r, worst_ratio=1e-3) if i == 0 else r for i, r in enumerate(rows)]
    results = _results(tmp_path)
    fp.record_fixed_points(results, bad, n_seeds=3)
    assert not _claim(results, "C1a")["passed"] and results.metrics["why_c1_worst_ratio"] == 1e-3


def test_stationary_rows_and_claim(tmp_path):
    points = fp.stationary_points(SEEDS)
    rows, least_squares = fp.stationary_rows(points, SEEDS)
    assert [r["point"] for r in rows] == ["linear 6-2-4, bottleneck minimum", "tanh 5-16-1, origin"]
    assert all(r["worst_ratio"] < 1e-10 and r["min_fa_update"] > 1e-3 and r["min_loss"] > 0 for r in rows)
    assert float(least_squares) < 1e-10  # without a binding bottleneck FA's update vanishes too
    results = _results(tmp_path)
    fp.record_stationary_points(results, rows, least_squares)
    assert _claim(results, "C1b")["passed"]
    results = _results(tmp_path)
    fp.record_stationary_points(results, [dict(rows[0], min_loss=0.0), rows[1]], least_squares)
    assert not _claim(results, "C1b")["passed"]


def test_scalar_and_multi_output_stability_record_passing_claims(tmp_path):
    seeds = list(range(12))
    points = fp.zero_error_points(seeds)
    jac_rows, cases = fp.scalar_stability(points, seeds, n_rows=2)
    assert len(jac_rows) == 9 * 2 and len(cases) == 9 and all(c["growth"].shape == (12,) for c in cases)
    reduced, psd, multi = fp.multi_output_stability(points, seeds, n_rows=2)
    assert len(reduced) == len(psd) == len(multi) == 6 and all(r["n_eigenvalues"] == 12 for r in reduced)
    results = _results(tmp_path)
    fp.record_jacobian_check(results, jac_rows, n_rows=2)
    fp.record_reduced_matrix(results, reduced, psd)
    fp.record_sign_rule(results, cases)
    fp.record_psd(results, psd)
    fp.record_same_step(results, cases)
    for cid in ("C2a", "C2b", "C2c", "C2e", "C3a"):
        assert _claim(results, cid)["passed"], cid
    assert results.metrics["why_jac_rows"] == 18
    plt.close(fp.alignment_growth_figure(cases))


def _case(alignment, growth, **extra):
    return dict(network="n", alignment=np.asarray(alignment, float), growth=np.asarray(growth, float), **extra)


def test_sign_rule_fails_on_one_wrong_case(tmp_path):
    results = _results(tmp_path)
    fp.record_sign_rule(results, [_case([0.5, -0.5], [-1.0, 1.0]), _case([0.2], [0.3])])
    c = _claim(results, "C2c")
    assert not c["passed"] and c["measured"]["agreement"] == pytest.approx(2 / 3) and c["measured"]["cases"] == 3
    assert results.metrics["why_unstable_fraction"] == pytest.approx(1 / 3)


def test_same_step_needs_bp_to_decay_everywhere(tmp_path):
    case = _case([0.5, -0.5], [0, 0], same_fa=np.array([-1.0, 1.0]), same_bp=np.array([-1.0, -1.0]))
    results = _results(tmp_path)
    fp.record_same_step(results, [case])
    assert _claim(results, "C3a")["passed"] and results.metrics["why_same_n_unaligned"] == 1
    results = _results(tmp_path)
    fp.record_same_step(results, [dict(case, same_bp=np.array([-1.0, 1.0]))])
    assert not _claim(results, "C3a")["passed"]


def test_multi_output_misses_must_be_explained(tmp_path):
    n = 40
    stable = np.ones(n, bool)
    growth = -np.ones(n)
    growth[0] = 1.0  # a miss
    case = dict(network="n", stable=stable, growth=growth, linear=growth.copy(), resolution=np.full(n, 0.5), cosine=np.ones(n))
    results = _results(tmp_path)
    fp.record_multi_output(results, [case])
    c = _claim(results, "C2f")
    assert c["passed"] and c["measured"]["misses"] == 1 and c["measured"]["unexplained_misses"] == 0
    results = _results(tmp_path)
    fp.record_multi_output(results, [dict(case, linear=-np.ones(n))])  # the linearisation decays: the miss is unexplained
    assert not _claim(results, "C2f")["passed"]


def test_psd_claim_needs_a_negative_real_part_in_every_network(tmp_path):
    row = dict(network="n", bp_asymmetry=1e-14, bp_min_over_max=-1e-15, fa_min_real_over_max=-0.2, fa_negative_fraction=0.5)
    results = _results(tmp_path)
    fp.record_psd(results, [row, row])
    assert _claim(results, "C2e")["passed"]
    results = _results(tmp_path)
    fp.record_psd(results, [row, dict(row, fa_negative_fraction=0.0)])
    assert not _claim(results, "C2e")["passed"]


def test_toy_runs_land_where_predicted(tmp_path):
    toy = fp.toy_runs(0, 8, "cpu")
    assert len(toy["w1"]) == 8 + 6 and set(toy["history"].metrics) >= {"w1", "w2", "loss"}
    torch.testing.assert_close(toy["w1"][8:11], torch.tensor(fp.TOY_NEAR, dtype=DT))
    results = _results(tmp_path)
    fp.record_toy(results, toy)
    assert _claim(results, "C2d")["passed"] and results.metrics["why_toy_landing_error"] <= fp.TOY_BOUND
    toy["land_w1"] = toy["land_w1"] + 1.0  # a wrong prediction
    results = _results(tmp_path)
    fp.record_toy(results, toy)
    assert not _claim(results, "C2d")["passed"]
    plt.close(fp.toy_phase_plane_figure(toy))
    w = fp.toy_weights([torch.full((2, 1, 1), 3.0), torch.full((2, 1, 1), 4.0)])
    assert w["w1"].tolist() == [3.0, 3.0] and w["w2"].tolist() == [4.0, 4.0]


def _tiny_data(n_train=100, n_test=40):
    g = torch.Generator().manual_seed(0)
    return F.ClassificationData(name="mnist", directory=Path("/nowhere"), x_train=torch.randn(n_train, 784, generator=g),
                                y_train=torch.randint(0, 10, (n_train,), generator=g), x_test=torch.randn(n_test, 784, generator=g),
                                y_test=torch.randint(0, 10, (n_test,), generator=g), sha256={"train": "x"})


def test_record_data(tmp_path):
    results = _results(tmp_path)
    text = fp.record_data(results, _tiny_data())
    assert results.metrics["why_dataset"] == "MNIST" and results.metrics["why_n_train"] == 100
    assert "**MNIST**" in text and "100 training and 40 test images" in text


def test_decay_sweep_is_one_paired_batch(tmp_path):
    sweep = fp.decay_sweep(_tiny_data(), [0, 1], seed=0, epochs=1, records_per_epoch=2)
    assert list(sweep) == fp.sweep_names() and all(h.diverged.shape == (2,) for h in sweep.values())
    first = [sweep[n].weights[0] for n in fp.sweep_names()]
    assert not torch.equal(first[0], first[-1])  # weight decay changed the run
    rows = fp.sweep_rows(sweep)
    assert [r["l2"] for r in rows] == list(fp.L2_SWEEP) and all(r["n"] == 2 for r in rows)
    results = _results(tmp_path)
    table = fp.record_sweep(results, sweep, epochs=1)
    assert len(table) == 6 and results.metrics["why_sweep_steps"] == 2 and results.metrics["why_n_sweep_seeds"] == 2
    plt.close(fp.sweep_figure(table, "MNIST"))


def _sweep_histories(grad, accuracy):
    """grad, accuracy: (settings, seeds) final values."""
    out = {}
    for name, g, a in zip(fp.sweep_names(), grad, accuracy):
        out[name] = _history({"grad_alignment": np.asarray(g, float)[None, :, None],
                              "weight_alignment": np.asarray(g, float)[None, :, None],
                              "test_accuracy": np.asarray(a, float)[None, :]}, steps=[10])
    return out


def test_record_sweep_claim_by_hand(tmp_path):
    grad = [[0.1 * i, 0.1 * i + 0.01] for i in range(6)]
    accuracy = [[0.80, 0.81], [0.85, 0.86], [0.90, 0.89], [0.88, 0.87], [0.70, 0.72], [0.50, 0.52]]
    results = _results(tmp_path)
    fp.record_sweep(results, _sweep_histories(grad, accuracy), epochs=1)
    c = _claim(results, "C3b")
    assert c["passed"] and c["measured"]["most_accurate_l2"] == 0.01
    assert c["measured"]["accuracy_loss_past_best_points"] == pytest.approx([40.0, 37.0])
    results = _results(tmp_path)  # the most accurate setting is the most aligned one: alignment suffices, the claim fails
    fp.record_sweep(results, _sweep_histories(grad, sorted(accuracy)), epochs=1)
    assert not _claim(results, "C3b")["passed"]


def test_early_descent_by_hand(tmp_path):
    # 4 records, 2 seeds; seed 0 reaches 0.1 at record 2 (window: records 0-1), seed 1 never (window: all)
    align = np.array([[0.0, 0.0], [0.05, 0.02], [0.2, 0.03], [0.3, 0.04]])[..., None]
    loss = np.array([[2.0, 2.0], [1.5, 1.8], [1.0, 1.6], [0.5, 1.0]])
    descent_fa = np.stack([np.full((4, 2), 1.0), np.full((4, 2), 9.0)], -1)  # hidden 1, readout 9: share 10%
    descent_frozen = np.stack([np.zeros((4, 2)), np.full((4, 2), 3.0)], -1)
    descent_bp = np.stack([np.full((4, 2), 1.0), np.full((4, 2), 1.0)], -1)
    runs = {"fa": _history({"grad_alignment": align, "loss": loss, "descent": descent_fa}),
            "frozen": _history({"loss": loss / 2, "descent": descent_frozen}),
            "bp": _history({"descent": descent_bp})}
    s = fp.early_descent(runs)
    assert s["window_end"].tolist() == [1, 3]
    np.testing.assert_allclose(s["drop_fa"], [0.25, 0.5])
    np.testing.assert_allclose(s["hidden_share"], [0.1, 0.1])
    np.testing.assert_allclose(s["readout_gain"], [3.0, 3.0])
    np.testing.assert_allclose(s["bp_share"], [0.5, 0.5])
    assert s["max_alignment"] == 0.05 and s["min_alignment"] == 0.0
    results = _results(tmp_path)
    fp.record_early_descent(results, s)
    assert _claim(results, "C4")["passed"] and results.metrics["why_hidden_share_mean"] == pytest.approx(10.0)
    results = _results(tmp_path)
    fp.record_early_descent(results, dict(s, hidden_share=np.array([0.1, 0.2])))
    assert not _claim(results, "C4")["passed"]


def test_variant_runs_share_starts_and_split_by_group(tmp_path):
    data = _tiny_data()
    early = fp.variant_runs(data, [0, 1], seed=0, steps=2, early=True)
    assert set(early) == {"fa", "rank1", "frozen", "bp"}
    assert all(h.metrics["descent"].shape == (3, 2, 2) for h in early.values())
    # frozen: B = 0, so the hidden layer never moves; the readout does
    start = F.init_weights(fp.WIDTHS, [0, 1])
    torch.testing.assert_close(early["frozen"].weights[0], start[0])
    assert not torch.equal(early["frozen"].weights[1], start[1])
    assert not torch.equal(early["fa"].weights[0], early["rank1"].weights[0])
    full = fp.variant_runs(data, [0, 1], seed=0, steps=4, early=False, record_every=2)
    assert full["fa"].steps.tolist() == [0, 2, 4] and "test_accuracy" in full["bp"].metrics
    results = _results(tmp_path)
    fp.record_learning(results, full, epochs=2)
    assert set(results.metrics["final_test_accuracy"]) == {"fa", "rank1", "frozen", "bp"} and results.metrics["why_n_seeds"] == 2
    plt.close(fp.learning_figure(full, steps_per_epoch=2, dataset_name="MNIST"))
    plt.close(fp.early_descent_figure(early, fp.early_descent(early)))


def test_record_learning_claims_by_hand(tmp_path):
    def runs(acc, align):
        return {g: _history({"test_accuracy": np.asarray(acc[g], float)[None],
                             "grad_alignment": np.asarray(align.get(g, [0.0, 0.0]), float)[None, :, None]}) for g in acc}

    acc = {"fa": [0.90, 0.92], "rank1": [0.80, 0.85], "frozen": [0.70, 0.70], "bp": [0.93, 0.95]}
    align = {"fa": [0.5, 0.6], "rank1": [0.2, 0.3]}
    results = _results(tmp_path)
    fp.record_learning(results, runs(acc, align), epochs=1)
    assert _claim(results, "C5a")["passed"] and _claim(results, "C5b")["passed"]
    assert results.metrics["why_gap_fa"] == pytest.approx(3.0)
    results = _results(tmp_path)
    fp.record_learning(results, runs(dict(acc, fa=[0.80, 0.84]), dict(align, rank1=[0.2, 0.7])), epochs=1)
    assert not _claim(results, "C5a")["passed"] and not _claim(results, "C5b")["passed"]


def test_descent_tracker_matches_descent_contributions():
    w = F.init_weights([6, 5, 3], SEEDS)
    probe = (torch.randn(8, 6, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
    fb = F.init_feedback([6, 5, 3], SEEDS, rule="fa")
    got = fp.descent_tracker(probe, rule="fa", feedback=fb)(w)["descent"]
    want = fp.descent_contributions(w, *probe, rule="fa", activation="relu", loss="ce", feedback=fb)
    torch.testing.assert_close(got, want)
    assert got.shape == (3, 2)
