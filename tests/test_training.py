"""Training loop: updates, batching over seeds, recording, divergence, determinism."""

import numpy as np
import pytest
import torch

import fa_lib as F

DT = torch.float64
SEEDS = [0, 1, 2]
WIDTHS = [6, 8, 3]


def _setup(rule="fa", seeds=SEEDS):
    w = F.init_weights(WIDTHS, seeds, dtype=DT)
    fb = F.init_feedback(WIDTHS, seeds, rule=rule, dtype=DT)
    x, y = F.teacher_data(20, [6, 4, 3], seeds, activation="tanh", dtype=DT)
    return w, fb, x, y


def test_one_step_matches_the_update_rule():
    w, fb, x, y = _setup()
    l2 = [0.0, torch.tensor([0.0, 0.1, 0.5], dtype=DT)]
    lr = torch.tensor([0.1, 0.2, 0.3], dtype=DT)
    hist = F.train(w, x, y, rule="fa", activation="tanh", feedback=fb, lr=lr, l2=l2, steps=1, progress=False)
    grads = F.gradients(w, x, y, rule="fa", activation="tanh", feedback=fb)
    expected0 = w[0] - lr.view(3, 1, 1) * grads[0]
    expected1 = w[1] - lr.view(3, 1, 1) * (grads[1] + l2[1].view(3, 1, 1) * w[1])
    torch.testing.assert_close(hist.weights[0], expected0)
    torch.testing.assert_close(hist.weights[1], expected1)


def test_momentum_is_heavy_ball():
    w, fb, x, y = _setup()
    hist = F.train(w, x, y, rule="bp", activation="tanh", lr=0.1, momentum=0.9, steps=2, progress=False)
    g0 = F.gradients(w, x, y, rule="bp", activation="tanh")
    w1 = [a - 0.1 * g for a, g in zip(w, g0)]
    g1 = F.gradients(w1, x, y, rule="bp", activation="tanh")
    w2 = [a - 0.1 * (0.9 * h + g) for a, h, g in zip(w1, g0, g1)]
    for a, b in zip(hist.weights, w2):
        torch.testing.assert_close(a, b)


def test_adam_is_torch_adam_with_per_seed_learning_rates():
    w, fb, x, y = _setup()
    lr = torch.tensor([0.01, 0.02, 0.05], dtype=DT)
    hist = F.train(w, x, y, rule="fa", activation="tanh", feedback=fb, lr=lr, l2=0.1, optimizer="adam", steps=5, progress=False)
    for s in range(len(SEEDS)):
        params = [p[s].clone().requires_grad_(True) for p in w]
        opt = torch.optim.Adam(params, lr=float(lr[s]), weight_decay=0.1)
        for _ in range(5):
            grads = F.gradients([p.detach() for p in params], x[s], y[s], rule="fa", activation="tanh",
                                feedback=[None if b is None else b[s] for b in fb])
            for p, g in zip(params, grads):
                p.grad = g
            opt.step()
        for ours, theirs in zip(hist.weights, params):
            torch.testing.assert_close(ours[s], theirs.detach(), rtol=1e-12, atol=1e-14)


def test_batch_of_seeds_equals_seeds_alone_minibatch():
    w, fb, x, y = _setup()
    kw = dict(rule="fa", activation="tanh", lr=0.05, steps=12, batch_size=5, record_every=4, progress=False, shuffle_seed=9)
    batched = F.train(w, x, y, feedback=fb, **kw)
    for s, seed in enumerate(SEEDS):
        w1, fb1, x1, y1 = _setup(seeds=[seed])
        alone = F.train(w1, x1, y1, feedback=fb1, **kw)
        for name in alone.metrics:
            np.testing.assert_allclose(batched.metrics[name][:, s], alone.metrics[name][:, 0], rtol=1e-12, atol=1e-14)


def test_records_and_alignment_metrics():
    w, fb, x, y = _setup()
    hist = F.train(w, x, y, rule="fa", activation="tanh", feedback=fb, lr=0.1, steps=10, record_every=4, progress=False)
    np.testing.assert_array_equal(hist.steps, [0, 4, 8, 10])
    assert hist.metrics["loss"].shape == (4, 3)
    assert hist.metrics["grad_alignment"].shape == (4, 3, 1)
    assert hist.metrics["weight_alignment"].shape == (4, 3, 1)
    assert hist.metrics["signal_alignment"].shape == (4, 3, 1)
    assert np.all(hist.metrics["loss"][-1] < hist.metrics["loss"][0])
    bp = F.train(w, x, y, rule="bp", activation="tanh", lr=0.1, steps=2, progress=False)
    assert set(bp.metrics) == {"loss"}


def test_classification_metrics():
    seeds = [0, 1]
    w = F.init_weights([5, 7, 3], seeds)
    x = F.gaussian_inputs(30, 5, [0])[0]
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    hist = F.train(w, x, y, rule="dfa", activation="relu", loss="ce", feedback=F.init_feedback([5, 7, 3], seeds, rule="dfa"),
                   lr=0.5, steps=30, batch_size=10, record_every=10, test=(x, y), progress=False)
    assert hist.metrics["accuracy"].shape == (4, 2)
    assert np.all((hist.metrics["test_accuracy"] >= 0) & (hist.metrics["test_accuracy"] <= 1))
    assert hist.final("test_accuracy").mean() > 0.6


def test_divergence_is_per_seed_and_reported():
    w, fb, x, y = _setup()
    lr = torch.tensor([0.05, 1e6, 0.05], dtype=DT)
    hist = F.train(w, x, y, rule="fa", activation="linear", feedback=fb, lr=lr, steps=40, record_every=10, progress=False)
    np.testing.assert_array_equal(hist.diverged, [False, True, False])
    assert hist.diverged_step[1] > 0 and hist.diverged_step[0] == -1
    assert np.isnan(hist.metrics["loss"][-1, 1]) and np.all(np.isfinite(hist.metrics["loss"][:, [0, 2]]))
    summary = F.summarize_seeds(hist.final("loss"), hist.diverged)
    assert summary["n"] == 2 and summary["diverged"] == 1 and np.isfinite(summary["mean"])
    assert np.isclose(summary["mean"], hist.final("loss")[[0, 2]].mean())


def test_all_diverged_summary_is_nan():
    s = F.summarize_seeds(np.array([np.nan, np.nan]), np.array([True, True]))
    assert s["n"] == 0 and s["diverged"] == 2 and np.isnan(s["mean"])


def test_same_seed_gives_identical_metrics():
    runs = []
    for _ in range(2):
        w, fb, x, y = _setup()
        runs.append(F.train(w, x, y, rule="fa", activation="relu", feedback=fb, lr=0.1, steps=15, batch_size=4,
                            record_every=5, shuffle_seed=3, progress=False))
    for name in runs[0].metrics:
        np.testing.assert_array_equal(runs[0].metrics[name], runs[1].metrics[name])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(steps=-1), "steps"),
        (dict(steps=1.5), "steps"),
        (dict(record_every=0), "record_every"),
        (dict(batch_size=100), "batch_size=100 exceeds"),
        (dict(momentum=1.0), "momentum"),
        (dict(optimizer="rmsprop"), "optimizer='rmsprop' is not allowed"),
        (dict(optimizer="adam", momentum=0.9), "applies to optimizer='sgd' only"),
        (dict(optimizer="adam", betas=(0.9, 1.0)), "betas"),
        (dict(optimizer="adam", eps=0.0), "eps"),
        (dict(l2=[0.0, 0.0, 0.0]), "l2 has 3 entries"),
        (dict(rule="fa", feedback=None), "needs feedback"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    w, fb, x, y = _setup()
    args = dict(rule="bp", activation="tanh", lr=0.1, steps=5, progress=False) | kwargs
    with pytest.raises(ValueError, match=match):
        F.train(w, x, y, **args)


def test_settings_stacked_in_one_batch_split_back_into_their_own_histories():
    w, fb, x, y = _setup()
    kw = dict(rule="fa", activation="tanh", steps=6, record_every=3, progress=False)
    small = [0.1 * t for t in w]
    batch = F.train(F.stack_settings([w, small]), torch.cat([x, x]), torch.cat([y, y]), lr=0.05,
                    feedback=F.stack_settings([fb, fb]), **kw)
    parts = batch.split(["lecun", "small"])
    alone = F.train(small, x, y, lr=0.05, feedback=fb, **kw)
    assert list(parts) == ["lecun", "small"] and parts["small"].diverged.shape == (len(SEEDS),)
    for name in alone.metrics:
        np.testing.assert_allclose(parts["small"].metrics[name], alone.metrics[name], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(parts["small"].weights[1], alone.weights[1])
    with pytest.raises(ValueError, match="cannot be split"):
        batch.split(["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="different numbers of layers"):
        F.stack_settings([w, w[:1]])


def test_on_step_sees_every_update_and_the_seeds_still_alive():
    w, fb, x, y = _setup()
    lr = torch.tensor([0.05, 0.05, 1e6], dtype=DT)  # the last seed overflows
    seen = []
    history = F.train(w, x, y, rule="fa", activation="linear", lr=lr, steps=30, feedback=fb, progress=False,
                      on_step=lambda step, weights, biases, result, alive: seen.append((step, result.loss.clone(), alive.clone())))
    assert [s for s, _, _ in seen] == list(range(1, 31))
    losses = np.stack([loss.numpy() for _, loss, _ in seen])
    np.testing.assert_array_equal(losses[:, :2], history.metrics["loss"][:30, :2])  # the pass that made each step
    alive = np.stack([a.numpy() for _, _, a in seen])
    assert alive[:, :2].all() and not alive[-1, 2] and history.diverged.tolist() == [False, False, True]
    assert alive[:, 2].argmin() <= history.diverged_step[2]


def test_test_set_is_evaluated_by_the_forward_pass_alone():
    """The test records equal a full backward pass's loss and accuracy at the final weights, to the bit,
    with biases and layer scales: the forward-only evaluation changes nothing it measures."""
    seeds = [0, 1]
    widths = [5, 7, 3]
    w = F.init_weights(widths, seeds, dtype=DT)
    biases = [torch.full((2, n), 0.1, dtype=DT) for n in widths[1:]]
    x = F.gaussian_inputs(30, 5, [0], dtype=DT)[0]
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    xt, yt = x[:12] * 1.5, y[:12]
    kw = dict(activation="tanh", loss="ce", biases=biases, layer_scales=[1.0, 0.5])
    hist = F.train(w, x, y, rule="fa", feedback=F.init_feedback(widths, seeds, rule="fa", dtype=DT), lr=0.3, steps=5,
                   batch_size=10, test=(xt, yt), progress=False, **kw)
    kw["biases"] = hist.biases
    full = F.backward_pass(hist.weights, xt, yt, rule="bp", **kw)
    assert np.array_equal(hist.final("test_loss"), full.loss.numpy())
    assert np.array_equal(hist.final("test_accuracy"), (full.output.argmax(-1) == yt).to(DT).mean(-1).numpy())
