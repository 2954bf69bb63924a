"""Backward passes of BP, FA and DFA; seeded construction; argument checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import fa_lib as F

DT = torch.float64


def _reference(weights, x, y, rule, activation, loss, feedback):
    """Independent per-sample, column-vector implementation of notation.md (one seed, numpy)."""
    sig, dsig = {
        "linear": (lambda a: a, lambda a: np.ones_like(a)),
        "relu": (lambda a: np.maximum(a, 0), lambda a: (a > 0).astype(float)),
        "tanh": (np.tanh, lambda a: 1 - np.tanh(a) ** 2),
        "sigmoid": (lambda a: 1 / (1 + np.exp(-a)), lambda a: np.exp(-a) / (1 + np.exp(-a)) ** 2),
    }[activation]
    n_layers, n = len(weights), len(x)
    grads = [np.zeros_like(w) for w in weights]
    for k in range(n):
        hs, pre = [x[k]], []
        for i, w in enumerate(weights):
            pre.append(w @ hs[-1])
            if i < n_layers - 1:
                hs.append(sig(pre[-1]))
        f = pre[-1]
        if loss == "mse":
            err = (f - y[k]) / n
        else:
            p = np.exp(f - f.max())
            p /= p.sum()
            err = (p - np.eye(len(f))[y[k]]) / n
        deltas = [None] * n_layers
        deltas[-1] = err
        for i in range(n_layers - 2, -1, -1):
            if rule == "bp":
                back = weights[i + 1].T @ deltas[i + 1]
            elif rule == "fa":
                back = feedback[i + 1].T @ deltas[i + 1]
            else:
                back = feedback[i].T @ err
            deltas[i] = back * dsig(pre[i])
        for i in range(n_layers):
            grads[i] += np.outer(deltas[i], hs[i])
    return grads


def _problem(hidden: int, loss: str, seeds=(0, 1), shared_x=False):
    widths = [4] + [5, 3, 6][:hidden] + [3]
    w = F.init_weights(widths, list(seeds), dtype=DT)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(8, 4, generator=gen, dtype=DT) if shared_x else torch.randn(len(seeds), 8, 4, generator=gen, dtype=DT)
    if loss == "mse":
        y = torch.randn(len(seeds), 8, 3, generator=gen, dtype=DT)
    else:
        y = torch.randint(0, 3, (len(seeds), 8), generator=gen)
    return widths, w, x, y


@pytest.mark.parametrize("activation,loss,hidden", list(itertools.product(F.ACTIVATIONS, F.LOSSES, [1, 2, 3])))
@pytest.mark.parametrize("seed_dim", [True, False])
def test_bp_equals_autograd(activation, loss, hidden, seed_dim):
    widths, w, x, y = _problem(hidden, loss)
    if not seed_dim:
        w, x, y = [t[0] for t in w], x[0], y[0]
    params = [t.clone().requires_grad_() for t in w]
    out = F.forward(params, x, activation).output
    if loss == "mse":
        value = 0.5 * ((out - y) ** 2).sum(dim=(-1, -2)) / x.shape[-2]
    else:
        value = torch.nn.functional.cross_entropy(out.reshape(-1, 3), y.reshape(-1), reduction="none").reshape(y.shape).mean(-1)
    expected = torch.autograd.grad(value.sum(), params)
    got = F.gradients(w, x, y, rule="bp", activation=activation, loss=loss)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        torch.testing.assert_close(g, e, rtol=0, atol=1e-10)


@pytest.mark.parametrize("rule,activation,loss,hidden", list(itertools.product(F.RULES, F.ACTIVATIONS, F.LOSSES, [1, 2, 3])))
def test_rules_equal_independent_reference(rule, activation, loss, hidden):
    widths, w, x, y = _problem(hidden, loss)
    fb = F.init_feedback(widths, [0, 1], rule=rule, dtype=DT)
    got = F.gradients(w, x, y, rule=rule, activation=activation, loss=loss, feedback=fb)
    for s in range(2):
        ref = _reference(
            [t[s].numpy() for t in w], x[s].numpy(), y[s].numpy(), rule, activation, loss,
            None if fb is None else [None if b is None else b[s].numpy() for b in fb],
        )
        for g, r in zip(got, ref):
            np.testing.assert_allclose(g[s].numpy(), r, rtol=0, atol=1e-12)


@pytest.mark.parametrize("rule", ["fa", "dfa"])
def test_output_layer_gradient_is_exact(rule):
    widths, w, x, y = _problem(2, "mse")
    fb = F.init_feedback(widths, [0, 1], rule=rule, dtype=DT)
    bp = F.gradients(w, x, y, rule="bp", activation="tanh")
    other = F.gradients(w, x, y, rule=rule, activation="tanh", feedback=fb)
    torch.testing.assert_close(other[-1], bp[-1], rtol=0, atol=1e-14)
    assert (other[0] - bp[0]).abs().max() > 1e-3  # hidden layers do differ


@pytest.mark.parametrize("rule", F.RULES)
def test_seed_batch_equals_seeds_one_by_one(rule):
    seeds = [3, 11, 42]
    widths = [6, 7, 5, 2]
    w = F.init_weights(widths, seeds, dtype=DT)
    fb = F.init_feedback(widths, seeds, rule=rule, dtype=DT)
    x = F.gaussian_inputs(9, 6, seeds, dtype=DT)
    y = F.gaussian_inputs(9, 2, [s + 100 for s in seeds], dtype=DT)
    batched = F.gradients(w, x, y, rule=rule, activation="relu", feedback=fb)
    for s, seed in enumerate(seeds):
        w1 = F.init_weights(widths, [seed], dtype=DT)
        fb1 = F.init_feedback(widths, [seed], rule=rule, dtype=DT)
        alone = F.gradients(w1, x[s : s + 1], y[s : s + 1], rule=rule, activation="relu", feedback=fb1)
        for b, a in zip(batched, alone):
            torch.testing.assert_close(b[s : s + 1], a, rtol=0, atol=1e-13)


def test_shared_inputs_broadcast_over_seeds():
    widths, w, x, y = _problem(2, "mse", shared_x=True)
    batched = F.gradients(w, x, y, rule="bp", activation="tanh")
    per_seed = F.gradients(w, x.expand(2, -1, -1), y, rule="bp", activation="tanh")
    for a, b in zip(batched, per_seed):
        torch.testing.assert_close(a, b)


def test_layer_scales_and_biases_match_autograd():
    widths, w, x, y = _problem(2, "mse")
    scales = [1.0, 0.5, 1 / np.sqrt(6)]
    biases = [torch.randn(2, n, dtype=DT, generator=torch.Generator().manual_seed(n)) for n in widths[1:]]
    params = [t.clone().requires_grad_() for t in w + biases]
    out = F.forward(params[:3], x, "tanh", biases=params[3:], layer_scales=scales).output
    value = (0.5 * ((out - y) ** 2).sum(dim=(-1, -2)) / 8).sum()
    expected = torch.autograd.grad(value, params)
    result = F.backward_pass(w, x, y, rule="bp", activation="tanh", biases=biases, layer_scales=scales)
    for g, e in zip(result.grads + result.bias_grads, expected):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-12)


def test_seeded_construction_is_per_seed_and_per_stream():
    a = F.init_weights([5, 4, 3], [0, 1, 2])
    b = F.init_weights([5, 4, 3], [1])
    torch.testing.assert_close(a[0][1:2], b[0])
    torch.testing.assert_close(a[1][1:2], b[1])
    assert not torch.equal(a[0][0], a[0][1])
    fb = F.init_feedback([5, 4, 3], [1], rule="fa")
    assert fb[0] is None and fb[1].shape == (1, 3, 4)
    assert not torch.allclose(fb[1], b[1])  # the feedback stream is not the weight stream
    dfa = F.init_feedback([5, 4, 3], [1], rule="dfa")
    assert dfa[0].shape == (1, 3, 4) and dfa[1] is None
    assert F.init_feedback([5, 4, 3], [1], rule="bp") is None


def test_lecun_and_fixed_std():
    w = F.init_weights([400, 300, 10], list(range(4)), dtype=DT)
    assert abs(w[0].std().item() - 1 / np.sqrt(400)) < 0.02 / np.sqrt(400) * 5
    w = F.init_weights([400, 300], [0], std=2.0, dtype=DT)
    assert abs(w[0].std().item() - 2.0) < 0.05


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(rule="sgd"), "rule='sgd'"),
        (dict(activation="gelu"), "activation='gelu'"),
        (dict(loss="l1"), "loss='l1'"),
        (dict(rule="fa"), "needs feedback"),
        (dict(rule="dfa", feedback=[None, None, None]), r"feedback\[0\]"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    widths, w, x, y = _problem(2, "mse")
    args = dict(rule="bp", activation="relu", loss="mse") | kwargs
    with pytest.raises(ValueError, match=match):
        F.gradients(w, x, y, **args)


def test_bad_shapes_raise():
    widths, w, x, y = _problem(2, "mse")
    with pytest.raises(ValueError, match="x has shape"):
        F.gradients(w, x[..., :3], y, rule="bp", activation="relu")
    with pytest.raises(ValueError, match="y has shape"):
        F.gradients(w, x, y[..., :2], rule="bp", activation="relu")
    with pytest.raises(ValueError, match=r"weights\[1\] has 4 inputs"):
        F.gradients([w[0], w[0][..., :4], w[2]], x, y, rule="bp", activation="relu")
    with pytest.raises(ValueError, match="int64 class indices"):
        F.gradients(w, x, y, rule="bp", activation="relu", loss="ce")
    fb = F.init_feedback(widths, [0, 1], rule="fa", dtype=DT)
    with pytest.raises(ValueError, match=r"feedback\[2\]"):
        F.gradients(w, x, y, rule="fa", activation="relu", feedback=[None, fb[1], fb[1]])
    with pytest.raises(ValueError, match="widths"):
        F.init_weights([5], [0])
    with pytest.raises(ValueError, match="seeds"):
        F.init_weights([5, 3], [])
    with pytest.raises(ValueError, match="std"):
        F.init_weights([5, 3], [0], std="xavier")


def test_error_carrier_names_the_matrix_each_rule_sends_the_error_through():
    widths, w, x, y = _problem(2, "mse")
    fa = F.init_feedback(widths, [0, 1], rule="fa", dtype=DT)
    dfa = F.init_feedback(widths, [0, 1], rule="dfa", dtype=DT)
    assert F.error_carrier("bp", w, None, 0) is w[1]
    assert F.error_carrier("fa", w, fa, 1) is fa[2]
    assert F.error_carrier("dfa", w, dfa, 0) is dfa[0] and dfa[0].shape[-2] == widths[-1]
    with pytest.raises(ValueError, match="rule='sgd'"):
        F.error_carrier("sgd", w, fa, 0)


def test_check_inputs_is_the_check_every_pass_runs():
    widths, w, x, y = _problem(2, "mse")
    F.check_inputs(w, x, y, rule="bp", activation="relu")  # valid: no error
    with pytest.raises(ValueError, match="x has shape"):
        F.check_inputs(w, x[..., :3], y, rule="bp", activation="relu")
    with pytest.raises(ValueError, match=r"biases\[0\] has shape"):
        F.check_inputs(w, x, y, rule="bp", activation="relu", biases=[torch.zeros(2, 9, dtype=DT)] * len(w))
