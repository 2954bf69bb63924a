"""The mathematics of Robertson & Koyejo (2023) in fa_lib.theory.conservation: FA's and GD's conserved quantities,
their exact one-step changes (plain and with L2) along one plain step of train, the anti-aligned construction and
the minimum-norm interpolant (float64)."""

from __future__ import annotations

import pytest
import torch

import fa_lib as F
from fa_lib.theory import conservation
from fa_lib.theory.conservation import (
    alignment_identity,
    conserved_quantities,
    feedback_inner_products,
    feedback_shift,
    incoming_squares,
    law_terms,
    min_norm_interpolant,
    null_space_projector,
    step_change,
    step_change_with_l2,
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



@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_alignment_identity_is_the_summed_one_step_laws(activation):
    weights, feedback, b, x, y = _problem([5, 7, 6, 3], activation=activation, biases=True)
    lr, changes = 0.05, []
    history = F.train(weights, x, y, rule="fa", activation=activation, lr=lr, steps=15, feedback=feedback, biases=b,
                      on_step=lambda step, w, bias, result, alive: changes.append(
                          step_change(result.grads, rule="fa", lr=lr, bias_grads=result.bias_grads, per_neuron=True)),
                      progress=False)
    c0 = torch.stack([q.sum(-1) for q in conserved_quantities(weights, rule="fa", feedback=feedback, biases=b, per_neuron=True)], -1)
    accumulated = sum(torch.stack([p.sum(-1) for p in change], -1) for change in changes)
    predicted = alignment_identity(history.weights, initial_sums=c0, accumulated_change=accumulated, biases=history.biases)
    inner = feedback_inner_products(history.weights, feedback)
    assert inner.shape == (3, 2) and float((inner - predicted).abs().max()) < 1e-12 * float(inner.abs().max())
    # the identity's pieces: ||W_k||^2 + ||b_k||^2, and the law's two terms, whose difference is the quantity
    squares = incoming_squares(history.weights, history.biases)
    torch.testing.assert_close(squares[..., 1], (history.weights[1] ** 2).sum((-1, -2)) + (history.biases[1] ** 2).sum(-1))
    for per_neuron in (False, True):
        terms = law_terms(history.weights, "fa", feedback, history.biases, per_neuron)
        quantities = conserved_quantities(history.weights, rule="fa", feedback=feedback, biases=history.biases, per_neuron=per_neuron)
        for (incoming, outgoing), q in zip(terms, quantities):
            torch.testing.assert_close(incoming - outgoing, q, rtol=0, atol=0)


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
    with pytest.raises(ValueError, match="same N"):
        min_norm_interpolant(x, y[..., :-1, :])
    with pytest.raises(ValueError, match="x has shape"):
        null_space_projector(torch.zeros(3, dtype=DT))


# --------------------------------------------------------------------------- the law with L2
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
    law = step_change_with_l2(weights, result.grads, feedback, lr=lr, l2=l2)
    after = [w - lr * (g + d.reshape(-1, 1, 1) * w) for w, g, d in zip(weights, result.grads, l2)]
    before_c = conserved_quantities(weights, rule="fa", feedback=feedback, per_neuron=True)
    after_c = conserved_quantities(after, rule="fa", feedback=feedback, per_neuron=True)
    plain = step_change(result.grads, rule="fa", lr=lr, per_neuron=True)
    for k, (c0, c1, predicted) in enumerate(zip(before_c, after_c, law)):
        assert torch.allclose(c1 - c0, predicted, rtol=0, atol=1e-13)
        assert torch.allclose(predicted[0], plain[k][0], rtol=0, atol=1e-15)  # seed 0 has no L2: the plain law
        # with L2 the change is first order: it takes both signs, where the plain law is never negative
        assert (predicted[1:] < 0).any() and (plain[k] >= 0).all()
    with pytest.raises(ValueError, match="one entry per layer"):
        step_change_with_l2(weights, result.grads, feedback, lr=lr, l2=l2[:1])


def test_l2_rest_relation_and_the_alignment_it_implies():
    """Weights built to satisfy l2_1 ||w_j||^2 = l2_2 b_j beta_j have zero residual, and their cos(beta, b) is the
    implied one; a readout weight of the wrong sign shows in the residual; bad strengths are refused."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(2, 1, 5, generator=gen, dtype=torch.float64)
    l2 = [0.2, 0.5]
    beta = l2[0] * (w**2).sum(-1).unsqueeze(1) / (l2[1] * b)
    residual = conservation.l2_rest_residual([w, beta], [None, b], l2)
    assert len(residual) == 1 and residual[0].shape == (2, 5)
    torch.testing.assert_close(residual[0], torch.zeros(2, 5, dtype=torch.float64), rtol=0, atol=1e-12)
    cos = (beta * b).sum(dim=(1, 2)) / (beta.flatten(1).norm(dim=1) * b.flatten(1).norm(dim=1))
    torch.testing.assert_close(conservation.l2_rest_alignment([w, beta], [None, b], l2), cos, rtol=1e-12, atol=0)
    flipped = beta.clone()
    flipped[0, 0, 0] *= -1
    assert conservation.l2_rest_residual([w, flipped], [None, b], l2)[0][0, 0] == pytest.approx(2 * l2[0] * (w[0, 0] ** 2).sum().item())
    with pytest.raises(ValueError, match="needs one positive strength per layer"):
        conservation.l2_rest_residual([w, beta], [None, b], [0.2, 0.0])
    with pytest.raises(ValueError, match="stated for two"):
        conservation.l2_rest_alignment([w, w, beta], [None, w, beta], [1, 1, 1])
