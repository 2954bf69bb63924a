"""Chapter "Conservation laws": the trajectories that track both laws, the drift and minimum-norm trackers, and the
chapter's experiments and claims (float64). The mathematics itself is tested in test_theory_conservation.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_theory_conservation import SEEDS, _problem

import fa_lib as F
from fa_lib.chapters import conservation_laws as CL
from fa_lib.chapters.conservation_laws import claims as CLC
from fa_lib.chapters.conservation_laws import experiments as CLX
from fa_lib.chapters.conservation_laws import profiles as CLP
from fa_lib.chapters.conservation_laws import trackers as CLT
from fa_lib.chapters.conservation_laws.experiments import fitted_slope, ratio_summary
from fa_lib.chapters.conservation_laws.trackers import conservation_trajectory, drift_tracker, min_norm_tracker
from fa_lib.theory.conservation import (
    alignment_identity,
    conserved_quantities,
    feedback_inner_products,
    incoming_squares,
    min_norm_interpolant,
    null_space_projector,
)

DT = torch.float64


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



def test_ratio_summary_ignores_nan():
    assert ratio_summary(np.array([2.0, 6.0, np.nan]), np.array([1.0, 2.0, 1.0])) == {"min": 2.0, "max": 3.0, "mean": 2.5}


def test_fitted_slope():
    x = np.arange(5.0)[:, None] * np.ones((1, 2))
    y = np.stack([3 * np.arange(5.0) + 1, -0.5 * np.arange(5.0)], -1)
    np.testing.assert_allclose(fitted_slope(x, y), [3.0, -0.5])



# --------------------------------------------------------------------------- minimum norm
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
def test_bad_trajectory_and_tracker_arguments_raise():
    weights, feedback, _, x, y = _problem([5, 6, 3], biases=True)
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
    assert params["prac_lrs"] == CL.PRAC_LRS and params["init_scales"] == CLP.INIT_SCALES
    assert not set(params) & set(CL.PROFILES["ci"])  # start_chapter records both: no name twice
    with pytest.raises(ValueError, match="profile='fast' is not allowed"):
        CL.chapter_parameters("fast")
    assert set(CL.PROFILES) == set(F.PROFILES)
    assert all(set(c) == set(CL.PROFILES["ci"]) for c in CL.PROFILES.values())
    assert CL.chapter_seeds(0, CL.PROFILES["ci"]) == list(range(8))
    assert CL.chapter_seeds(3, CL.PROFILES["default"]) == list(range(3, 19))
    numbers = CL.setting_numbers(CL.PROFILES["ci"])
    assert numbers["cons_align_hidden"] == 3 and numbers["cons_horizon"] == 0.5 and numbers["cons_norm_d"] == 40
    assert numbers["cons_small_scale"] == CLP.SMALL_SCALE and numbers["cons_drift_width"] == 16
    assert CLX.horizon_steps(0.5, 0.001) == 500 and CLX.horizon_steps(1.0, 0.003) == 333
    assert CLP.norm_lr(40) == 0.05
    assert CLC._short(1e-8) == "1e-8" and CLC._short(1e-10) == "1e-10"


def _law_row(law, residual, change=1e-3, diverged=0):
    return dict(law=law, depth=2, width=4, activation="relu", lr=0.03, max_relative_residual=residual,
                max_residual_over_change=residual / change, min_change_over_terms=change / 10, max_change_over_terms=change,
                diverged=diverged, n_seeds=2)


def test_one_step_law_summary():
    rows = [_law_row("fa_neuron", 1e-15), _law_row("fa_neuron_bias", 3e-15, change=1e-2, diverged=1), _law_row("gd_neuron", 1.0),
            _law_row("fa_neuron", float("nan"))]
    s = CLX.one_step_law_summary(rows, ["fa_neuron", "fa_neuron_bias"])
    assert s == {"worst": 3e-15, "worst_relative_to_change": 1e-12, "min_change_over_terms": 1e-4,
                 "max_change_over_terms_smallest_run": 1e-3, "diverged": 1}
    with pytest.raises(ValueError, match="no rows"):
        CLX.one_step_law_summary(rows, ["fa_matrix"])


def test_one_step_law_rows_and_claims(tmp_path):
    rows = CL.one_step_law_rows([0, 1], depths=(2, 3), widths=(4,), steps=3)
    assert len(rows) == 2 * 2 * 1 * 4
    assert {r["law"] for r in rows} == {law + bias for law in CLX.LAWS.values() for bias in ("", "_bias")}
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
    assert problems["relu"].weights[1].shape == (2, 4, 4) and problems["linear"].x.shape == (2, CLP.N_SAMPLES, CLP.N_IN)
    own = runs["relu", "fa", CL.ETAS[0]]
    again = CL.conservation_trajectory(problems["relu"].weights, problems["relu"].x, problems["relu"].y, rule="fa", activation="relu",
                                       lr=CL.ETAS[0], steps=2, feedback=problems["relu"].feedback, per_neuron=True)
    np.testing.assert_array_equal(own.drift["fa"][-1], again.drift["fa"][-1])


def test_variant_kwargs():
    assert CLX.variant_kwargs("plain", 0.01) == {"lr": 0.01}
    assert CLX.variant_kwargs("weight decay", 0.01) == {"lr": 0.01, "l2": CLP.WEIGHT_DECAY}
    momentum = CLX.variant_kwargs("momentum", 0.01)
    assert momentum["lr"] / (1 - momentum["momentum"]) == pytest.approx(0.01)  # the effective step is eta
    fixed = CLX.variant_kwargs("momentum, fixed memory time", 0.005)
    assert fixed["momentum"] == pytest.approx(0.95) and fixed["lr"] / (1 - fixed["momentum"]) == pytest.approx(0.005)
    assert CLX.variant_kwargs("Adam", 0.01) == {"lr": CLP.ADAM_LR_RATIO * 0.01, "optimizer": "adam"}
    with pytest.raises(ValueError, match="name='nesterov'"):
        CLX.variant_kwargs("nesterov", 0.01)
    assert [CLC.variant_key(v) for v in CL.BREAKING_VARIANTS] == ["plain", "weight_decay", "momentum", "momentum_fixed_time", "Adam"]


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
    rows = CLX.breaking_rows(runs)
    assert rows["plain"]["over_plain"] == {"min": 1.0, "max": 1.0, "mean": 1.0}
    assert rows["weight decay"]["ratio_half_lr"]["min"] == 1.0 and rows["weight decay"]["over_plain"]["max"] == pytest.approx(100)
    results = _results(tmp_path)
    CL.record_breaking(results, runs, horizon=0.5)
    assert {k: c["verdict"] for k, c in _claims(results).items()} == {"K4b": "reproduced", "K4c": "deviates", "K4d": "reproduced"}
    assert results.metrics["cons_Adam_half_min"] == pytest.approx(2.0) and results.metrics["cons_weight_decay_over_plain_min"] == pytest.approx(100)
    assert set(results.metrics["breaking_runs"]) == set(CL.BREAKING_VARIANTS)


def test_breaking_runs_track_the_drift():
    problem = CLX.teacher_problem([0, 1], [CLP.N_IN, 4, 4, CLP.N_OUT], activation="relu")
    runs = CL.breaking_runs(problem, horizon=0.1)
    assert set(runs) == {(name, eta) for name in CL.BREAKING_VARIANTS for eta in CL.ETAS[:2]}
    assert runs["plain", CL.ETAS[1]].steps[-1] == 20 and runs["Adam", CL.ETAS[0]].final("drift_fa").shape == (2, 2)
    rows = CLX.breaking_rows(runs)
    assert 1.9 < rows["plain"]["ratio_half_lr"]["min"] < 2.1  # plain steps keep the law: the drift is O(eta)
    for name in ("weight decay", "Adam"):  # these break it at first order: the drift does not shrink with eta
        assert rows[name]["ratio_half_lr"]["max"] < 1.1 and rows[name]["over_plain"]["min"] > 1.5


def test_split_and_stacked_trajectories():
    weights, feedback, _, x, y = _problem([5, 6, 6, 3], activation="relu")
    starts = {"a": weights, "b": [0.1 * w for w in weights]}
    kw = dict(rule="fa", activation="relu", lr=0.05, steps=4, per_neuron=True, record_every=2)
    parts = CLT.stacked_trajectories(starts, x, y, feedback, **kw)
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
        CLT.split_trajectory(parts["a"], ["x", "y"])


def test_alignment_blocks():
    weights, feedback, _, _, _ = _problem([5, 6, 6, 3])
    blocks = CLX.alignment_blocks(weights, feedback)
    assert list(blocks) == [CLX.scale_block(s) for s in CLP.INIT_SCALES] + [CLP.BOUNDARY, CLP.ANTI_ALIGNED]
    assert CLX.scale_block(CLP.SMALL_SCALE) == "scale 0.01"
    torch.testing.assert_close(blocks["scale 0.001"][1], 1e-3 * weights[1])
    sums = torch.stack([q.sum(-1) for q in conserved_quantities(blocks[CLP.BOUNDARY], rule="fa", feedback=feedback, per_neuron=True)], -1)
    torch.testing.assert_close(sums, torch.zeros_like(sums), atol=1e-12, rtol=0)
    anti = blocks[CLP.ANTI_ALIGNED]
    with pytest.raises(ValueError, match="at least three"):
        CLX.alignment_blocks(*_problem([5, 6, 3])[:2])
    assert (feedback_inner_products(anti, feedback)[..., :-1] < 0).all()  # every hidden-to-hidden layer anti-aligned
    assert anti[-1] is weights[-1]  # the LeCun readout, unshifted
    sums = torch.stack([q.sum(-1) for q in conserved_quantities(anti, rule="fa", feedback=feedback, per_neuron=True)], -1)
    torch.testing.assert_close(sums[..., :-1], 2 * incoming_squares(anti, None)[..., :-1], atol=1e-12, rtol=1e-12)


def test_alignment_runs_rows_and_claims(tmp_path):
    runs = CL.alignment_runs([0, 1], depth=3, width=6, steps=40)
    assert list(runs["fa"]) == list(CLX.alignment_blocks(*_problem([5, 6, 6, 3])[:2])) and len(runs["bp"]) == len(CLP.INIT_SCALES)
    small = runs["fa"][CLX.scale_block(CLP.SMALL_SCALE)]
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
    assert results.metrics["cons_false_alarm"] == pytest.approx(CLC.gd_false_alarm(4 * 2 * 2))
    assert claims["K5d"]["measured"]["min_alignment"] == float(np.nanmin(runs["fa"][CLP.BOUNDARY].weight_alignment))
    assert claims["K5a"]["measured"]["fa_slope_min"] == float(np.nanmin(fitted_slope(small.incoming_squares, small.feedback_inner)))
    assert results.metrics["cons_fa_small_loss_end"] < results.metrics["cons_fa_small_loss_start"]


def test_gd_false_alarm():
    assert CLC.gd_false_alarm(1) == pytest.approx(6.334e-5, rel=1e-3)
    assert CLC.gd_false_alarm(100) == pytest.approx(100 * CLC.gd_false_alarm(1))


def test_min_norm_runs_by_scale_and_claims(tmp_path):
    runs = CL.min_norm_runs([0, 1], n=10, d=40, h=16, steps=1500)
    assert not any(h.diverged.any() for h in runs.values())
    assert list(runs) == list(CLX.NORM_RUNS)
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
                              "discrete_term": np.stack([np.zeros((2, 2)), np.full((2, 2), value)]),
                              "discrete_remainder": np.full((2, 2, 2), 1e-7), "test_accuracy": np.full((2, 2), 0.8)})

    def run(align, acc):
        return _fake_history({"grad_alignment": np.full((2, 2, 2), align), "test_accuracy": np.full((2, 2), acc)})

    classes = {n: {"lecun": run(0.2, 0.7), "small": run(0.2 + align_gain, 0.7 + acc_gain[n])} for n in CLP.CLASS_COUNTS}
    return CL.PracticalRuns(law={f"{lr:g}": law(share) for lr in CL.PRAC_LRS} | {"bp": law(bp_share)}, classes=classes,
                            flipped=0.2, per_epoch=80)


def test_practical_claims(tmp_path):
    results = _results(tmp_path)
    CL.record_practical(results, _practical(0.05, 1.0, 0.3, {2: -0.01, 5: 0.02, 10: 0.01}), epochs=2)
    claims = _claims(results)
    assert {k: c["verdict"] for k, c in claims.items()} == {"K7a": "reproduced", "K7b": "reproduced", "K7c": "reproduced"}
    assert claims["K7a"]["measured"]["max_by_lr"] == {"0.01": 0.05, "0.03": 0.05, "0.1": 0.05}
    assert claims["K7c"]["kind"] == "implementation" and "diagnosis" not in claims["K7a"]
    assert results.metrics["cons_acc_gain_2"] == pytest.approx(-1.0) and results.metrics["cons_class_acc_5"] == pytest.approx(70.0)
    assert results.metrics["cons_prac_acc_1"] == pytest.approx(80.0) and results.metrics["cons_unmatched_bp"] == 1.0
    results = _results(tmp_path)
    CL.record_practical(results, _practical(0.5, 1.0, 0.3, {2: 0.01, 5: -0.02, 10: 0.01}), epochs=2)
    claims = _claims(results)
    assert {k: c["verdict"] for k, c in claims.items()} == {"K7a": "deviates", "K7b": "deviates", "K7c": "reproduced"}
    assert "lr 0.01, 0.03, 0.1" in claims["K7a"]["diagnosis"] and claims["K7a"]["discussion"] == "k7-discrete-term"
    results = _results(tmp_path)  # a discrete law that does not add up fails K7c
    runs = _practical(0.05, 1.0, 0.3, {2: -0.01, 5: 0.02, 10: 0.01})
    runs.law["0.1"].metrics["discrete_remainder"][:] = 1.0
    CL.record_practical(results, runs, epochs=2)
    assert _claims(results)["K7c"]["verdict"] == "deviates"


def test_discrete_term_is_the_change_of_c_along_mini_batch_training():
    """The accumulated eta^2 ||G_l[j,:]||^2 equals the change of c_{l,j} (float64: to ~1e-15), with cross-entropy, mini-batches
    and one step size per seed; and it is not zero (the check has something to match)."""
    weights, feedback, _, x, _ = _problem([5, 6, 6, 3])
    y = torch.arange(x.shape[-2]).remainder(3).expand(x.shape[:-1])
    lr = torch.linspace(0.05, 0.2, len(SEEDS), dtype=DT)
    tracker = CLT.DiscreteTerm(weights, feedback, lr=lr)
    hist = F.train(weights, x, y, rule="fa", activation="relu", loss="ce", lr=lr, steps=12, batch_size=4, feedback=feedback,
                   extra_metrics=tracker, on_step=tracker.on_step, progress=False)
    assert hist.metrics["discrete_remainder"].max() < 1e-13
    assert (hist.metrics["discrete_term"][-1] > 1e-6).all() and (hist.metrics["discrete_term"][0] == 0).all()
    change = [q - q0 for q, q0 in zip(conserved_quantities(hist.weights, rule="fa", feedback=feedback, per_neuron=True), tracker.initial)]
    for c, d in zip(change, tracker.total):
        torch.testing.assert_close(c, d, rtol=1e-9, atol=1e-15)


def test_unmatched_share_and_class_gains():
    h = _fake_history({"drift_fa": np.array([[[0.0]], [[1.0]], [[3.0]]]), "incoming_change": np.array([[[0.0]], [[2.0]], [[4.0]]])})
    np.testing.assert_allclose(CL.unmatched_share(h), [[[0.5]], [[0.75]]])
    gains = CL.class_gains(_practical(0.1, 1.0, 0.25, {2: 0.1, 5: 0.1, 10: 0.1}).classes[5])
    np.testing.assert_allclose(gains["alignment_gain"], [0.25, 0.25])
    np.testing.assert_allclose(gains["accuracy_gain_points"], [10.0, 10.0])


def test_practical_runs(monkeypatch):
    monkeypatch.setattr(CLX, "PRAC_N", 100)
    monkeypatch.setattr(CLX, "PRAC_HIDDEN", 8)
    gen = torch.Generator().manual_seed(0)
    y_train = torch.arange(600) % 10
    data = F.ClassificationData(name="mnist", directory=None, x_train=torch.randn(600, 784, generator=gen), y_train=y_train,
                                x_test=torch.randn(50, 784, generator=gen), y_test=torch.arange(50) % 10, sha256={})
    runs = CL.practical_runs(data, [0, 1], epochs=1, seed=0)
    assert runs.per_epoch == 2 and runs.flipped == pytest.approx(0.2)
    assert list(runs.law) == ["0.01", "0.03", "0.1", "bp"] and list(runs.classes) == list(CLP.CLASS_COUNTS)
    assert all(h.diverged.shape == (2,) for h in runs.law.values())
    assert runs.classes[2]["small"].weights[-1].shape == (2, 2, 8)
    assert CL.unmatched_share(runs.law["0.01"]).shape == (1, 2, 2)  # one record (one epoch) after the start
    assert runs.law["0.1"].metrics["discrete_remainder"].max() < 1e-5  # float32: the discrete law to rounding
    # a step size of the batch trains exactly as it does alone
    x10, y10, _ = F.noisy_subset(data.x_train, data.y_train, 100, n_classes=10, noise=CLP.PRAC_NOISE, seed=0)
    widths = [784, 8, 8, 10]
    alone = F.train(F.init_weights(widths, [0, 1]), x10, y10, rule="fa", activation="relu", loss="ce", lr=0.1, steps=2, batch_size=50,
                    feedback=F.init_feedback(widths, [0, 1], rule="fa"), shuffle_seed=0, progress=False)
    torch.testing.assert_close(runs.law["0.1"].weights[0], alone.weights[0])
    # the small start is the LeCun draw scaled: same seed, same B
    assert (runs.classes[5]["small"].final("grad_alignment") > -2).all()


def test_report_diverged(capsys):
    ok = _fake_history({"loss": np.ones((2, 3))})
    bad = _fake_history({"loss": np.ones((2, 3))}, diverged=np.array([True, False, True]))
    CLX._report_diverged({"ok": ok, ("fa", 0.1): bad})
    assert capsys.readouterr().out.strip() == "('fa', 0.1): 2 of 3 seeds diverged and are excluded"


