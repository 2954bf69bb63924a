"""The why-align chapter's package: profiles, runs, rows and claims (each claim can fail)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fa_lib as F
from fa_lib.chapters import why_align as fp
from fa_lib.chapters.why_align import claims, experiments, profiles
from fa_lib.theory import fixed_points as FP

DT = torch.float64
SEEDS = [0, 1, 2]

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
    fa = experiments.scaled_feedback([5, 16, 16, 1], list(range(200)), "fa")
    assert fa[0] is None
    assert abs(float(fa[1].std()) - 8.0 / 4.0) < 0.1 and abs(float(fa[2].std()) - 8.0 / 4.0) < 0.1  # 8 / sqrt(16)
    dfa = experiments.scaled_feedback([5, 16, 16, 3], list(range(200)), "dfa")
    assert all(abs(float(d.std()) - 8.0 / np.sqrt(3)) < 0.2 for d in dfa if d is not None)
    nets = experiments.scalar_networks()
    assert len(nets) == 9 and ("dfa", "tanh", [5, 16, 1]) not in nets and ("dfa", "tanh", [5, 16, 16, 1]) in nets


def test_fixed_point_rows_and_claim(tmp_path):
    points = fp.zero_error_points(SEEDS)
    assert set(points) == {(a, tuple(w)) for w, _ in profiles.ZERO_ERROR_NETWORKS for a in profiles.ACTIVATIONS}
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
    torch.testing.assert_close(toy["w1"][8:11], torch.tensor(profiles.TOY_NEAR, dtype=DT))
    results = _results(tmp_path)
    fp.record_toy(results, toy)
    assert _claim(results, "C2d")["passed"] and results.metrics["why_toy_landing_error"] <= claims.TOY_BOUND
    toy["land_w1"] = toy["land_w1"] + 1.0  # a wrong prediction
    results = _results(tmp_path)
    fp.record_toy(results, toy)
    assert not _claim(results, "C2d")["passed"]
    plt.close(fp.toy_phase_plane_figure(toy))
    w = experiments.toy_weights([torch.full((2, 1, 1), 3.0), torch.full((2, 1, 1), 4.0)])
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
    assert list(sweep) == experiments.sweep_names() and all(h.diverged.shape == (2,) for h in sweep.values())
    first = [sweep[n].weights[0] for n in experiments.sweep_names()]
    assert not torch.equal(first[0], first[-1])  # weight decay changed the run
    rows = experiments.sweep_rows(sweep)
    assert [r["l2"] for r in rows] == list(profiles.L2_SWEEP) and all(r["n"] == 2 for r in rows)
    results = _results(tmp_path)
    table = fp.record_sweep(results, sweep, epochs=1)
    assert len(table) == 6 and results.metrics["why_sweep_steps"] == 2 and results.metrics["why_n_sweep_seeds"] == 2
    plt.close(fp.sweep_figure(table, "MNIST"))


def _sweep_histories(grad, accuracy):
    """grad, accuracy: (settings, seeds) final values."""
    out = {}
    for name, g, a in zip(experiments.sweep_names(), grad, accuracy):
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
    start = F.init_weights(profiles.WIDTHS, [0, 1])
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
    got = experiments.descent_tracker(probe, rule="fa", feedback=fb)(w)["descent"]
    want = FP.descent_contributions(w, *probe, rule="fa", activation="relu", loss="ce", feedback=fb)
    torch.testing.assert_close(got, want)
    assert got.shape == (3, 2)
