"""Unit tests of the chapter package fa_lib.chapters.two_layer_convergence (tiny cases; the theory and the
two-layer engine have their own tests, tests/test_theory_song.py and tests/test_two_layer_training.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_two_layer_training import F64, one_thread  # noqa: F401 (one_thread: autouse fixture)

from fa_lib.chapters.two_layer_convergence.claims import (
    SEVERAL_WIDTHS,
    SHORT_REAL_RUN,
    compare_with_authors,
    tolerance_against_authors,
)
from fa_lib.chapters.two_layer_convergence.experiments import (
    AlignmentCell,
    alignment_rows,
    cost_per_unit,
    paper_cost_hours,
    plateau_rows,
    rate_rows,
    run_alignment_cell,
    run_curve_cell,
    sweep_jobs,
    tail_fit,
    trial_seeds,
)
from fa_lib.chapters.two_layer_convergence.figures import alignment_display_rows
from fa_lib.theory.song_tables import PUBLISHED_ALIGNMENT, published_alignment
from fa_lib.chapters.two_layer_convergence.real_data import alignment_crossings, real_data_finals, real_data_seeds, run_real_data
from fa_lib.data import ClassificationData
from fa_lib.networks import backward_pass, init_weights
from fa_lib.theory.song import (
    LAMBDAS,
    LEARNING_RATES,
    N_SAMPLES,
    WIDTHS,
    kernels,
    predicted_log_mse_slope,
    readout_scales,
    steps_for_width,
)
from fa_lib.training.two_layer import StopRule, init_two_layer, synthetic_data


# --------------------------------------------------------------------------- the authors' tables and the draws
def test_published_tables_match_the_authors_code():
    assert published_alignment("relu", 0.0, 200) == (0.220, 0.051)
    assert published_alignment("relu", 0.2, 12800) == (0.846, 0.042)
    assert published_alignment("linear", 0.0, 800) == (0.059, 0.033)
    assert published_alignment("linear", 0.2, 200) == (0.790, 0.027)
    assert published_alignment("linear", 0.5, 12800) == (0.866, 0.018)
    assert published_alignment("tanh", 0.0, 200) == (0.260, 0.055)
    assert published_alignment("tanh", 0.005, 3200) == (0.533, 0.019)
    assert published_alignment("sigmoid", 0.0, 200) is None  # kept back by the specification
    assert len(PUBLISHED_ALIGNMENT) == 12 and all(len(row) == len(WIDTHS) for row in PUBLISHED_ALIGNMENT.values())
    assert set(PUBLISHED_ALIGNMENT) == {(a, lam) for a in ("linear", "relu", "tanh") for lam in LAMBDAS[a]}


def test_trial_seeds_are_distinct_and_reproducible():
    a = trial_seeds(0, "relu", 200, 5)
    assert a == trial_seeds(0, "relu", 200, 5) and len(set(a)) == 5
    assert not set(a) & set(trial_seeds(0, "relu", 400, 5))
    assert not set(a) & set(trial_seeds(0, "tanh", 200, 5))
    assert not set(a) & set(trial_seeds(1, "relu", 200, 5))
    # every lambda and each experiment has its own draws, as in the authors' loop
    assert not set(a) & set(trial_seeds(0, "relu", 200, 5, lam=0.02))
    assert not set(a) & set(trial_seeds(0, "relu", 200, 5, experiment="curves"))
    assert trial_seeds(0, "relu", 200, 5, lam=0.0) == a


# --------------------------------------------------------------------------- cells and rows
def test_tail_fit_recovers_an_exponential_and_stops_at_the_floor():
    steps = np.arange(1001)
    curve = np.stack([10 * np.exp(-0.01 * steps), 5 * np.exp(-0.05 * steps), np.full(1001, np.nan)], axis=1)
    slope, r2, window = tail_fit(curve)
    np.testing.assert_allclose(slope[:2], [-0.01, -0.05], rtol=1e-9)
    np.testing.assert_allclose(r2[:2], 1.0)
    assert np.isnan(slope[2]) and np.isnan(r2[2])
    end = int(np.flatnonzero(curve[:, 1] < 5e-7)[0])  # 7 decades below the start
    assert window[0].tolist() == [500, 1000] and window[1].tolist() == [end // 2, end]


def test_curve_cell_is_one_batch_of_independent_trials():
    kw = dict(lams=(0.0, 0.3), steps=30, n=6, d=9)
    cell = run_curve_cell("relu", 16, 2, dtype=F64, block="all", **kw)
    assert cell.mse.shape == (31, 4) and cell.lam.tolist() == [0.0, 0.0, 0.3, 0.3] and cell.trial.tolist() == [0, 1, 0, 1]
    assert len(set(cell.seeds.tolist())) == 4  # every lambda draws its own trials
    assert cell.seeds.tolist() == trial_seeds(0, "relu", 16, 2, experiment="curves") + trial_seeds(0, "relu", 16, 2, lam=0.3, experiment="curves")
    blocked = run_curve_cell("relu", 16, 2, dtype=F64, block=3, **kw)
    np.testing.assert_allclose(blocked.mse, cell.mse, rtol=1e-10)
    np.testing.assert_allclose(blocked.ridge_mse_final, cell.ridge_mse_final, rtol=1e-10)
    np.testing.assert_allclose(cell.mse[0, :], 2 * backward_pass(*_full_model(cell, 16), rule="bp", activation="relu", layer_scales=readout_scales(16)).loss.numpy())
    assert np.all(cell.ridge_mse[:2] == 0.0) and np.all(cell.ridge_mse[2:] > 0)
    assert cell.steps == 30 and cell.lr == LEARNING_RATES["relu"] and not cell.diverged.any()
    assert cell.select(0.3).tolist() == [False, False, True, True]
    bp = run_curve_cell("relu", 16, 2, rule="bp", dtype=F64, lams=(0.0,), steps=30, n=6, d=9)
    assert bp.seeds.tolist() == cell.seeds[:2].tolist()  # BP starts from the FA lambda = 0 networks
    np.testing.assert_allclose(bp.mse[0], cell.mse[0, :2], rtol=1e-12)


def test_summary_rows():
    fa = run_curve_cell("relu", 16, 3, lams=(0.0, 0.02), steps=40, n=6, d=9, dtype=F64)
    bp = run_curve_cell("relu", 16, 3, rule="bp", lams=(0.0,), steps=40, n=6, d=9, dtype=F64)
    fa.diverged[1] = True  # pretend trial 1 diverged at lam = 0
    rates = rate_rows([fa, bp])
    assert [(r["rule"], r["trials"], r["diverged"]) for r in rates] == [("fa", 2, 1), ("bp", 3, 0)]
    assert rates[0]["measured_slope"] == pytest.approx(np.mean(fa.measured_slope[[0, 2]]))
    assert rates[1]["ratio"] == pytest.approx(np.mean(bp.measured_slope) / np.mean(bp.predicted_slope))
    plateaus = plateau_rows([fa, bp])
    assert len(plateaus) == 1 and plateaus[0]["lam"] == 0.02
    assert plateaus[0]["ratio"] == pytest.approx(np.mean(fa.mse[-1, 3:] / fa.ridge_mse[3:]))


def test_alignment_cell_draws_every_lambda_independently():
    rule = StopRule(25, every=10, tolerance=1e-3, max_steps=400)
    cell = run_alignment_cell("relu", 12, 2, lams=(0.0, 0.3), stop=rule, n=6, d=9, dtype=F64)
    assert isinstance(cell, AlignmentCell) and cell.lam.tolist() == [0.0, 0.0, 0.3, 0.3] and cell.trial.tolist() == [0, 1, 0, 1]
    assert cell.seeds.tolist() == trial_seeds(0, "relu", 12, 2) + trial_seeds(0, "relu", 12, 2, lam=0.3)
    assert len(set(cell.alignment_init.tolist())) == 4 and cell.min_steps == 25
    rows = alignment_rows([cell])
    assert [r["lam"] for r in rows] == [0.0, 0.3] and rows[0]["authors_mean"] is None  # p = 12: no published cell
    mask = cell.select(0.3)
    assert rows[1]["mean"] == pytest.approx(np.mean(cell.alignment[mask]))
    assert rows[1]["mean_at_min"] == pytest.approx(np.mean(cell.alignment_at_min[mask]))
    assert rows[1]["steps_mean"] == pytest.approx(np.mean(cell.steps[mask])) and rows[1]["steps_max"] == cell.steps[mask].max()
    assert set(rows[0]) >= {"activation", "lam", "p", "mean", "sd", "trials", "steps_mean", "steps_max"}


def test_sigmoid_cells_use_the_authors_settings():
    cell = run_alignment_cell("sigmoid", 12, 1, stop=StopRule(25, every=10, max_steps=100), n=6, d=9, dtype=F64)
    assert cell.lr == 0.1 and cell.lams == (0.0, 0.001, 0.003, 0.01) and np.isfinite(cell.alignment).all()
    rows = alignment_rows([cell])
    assert all(r["authors_mean"] is None and r["difference"] is None for r in rows)  # their table is kept back
    assert compare_with_authors(rows, "sigmoid", regularised=True) == {}


def test_comparison_with_the_authors_uses_the_specified_tolerances():
    rows = [
        {"activation": "relu", "lam": 0.0, "p": 200, "mean": 0.25, "trials": 10, "diverged": 0, "unsettled": 0,
         "authors_mean": 0.220, "authors_sd": 0.051, "difference": 0.03},
        {"activation": "relu", "lam": 0.2, "p": 200, "mean": 0.77, "trials": 10, "diverged": 0, "unsettled": 0,
         "authors_mean": 0.858, "authors_sd": 0.061, "difference": 0.77 - 0.858},
        {"activation": "relu", "lam": 0.05, "p": 200, "mean": 0.70, "trials": 10, "diverged": 0, "unsettled": 1,
         "authors_mean": 0.682, "authors_sd": 0.048, "difference": 0.018},
    ]
    assert tolerance_against_authors(rows[0]) == pytest.approx(2 * 0.051 / math.sqrt(10) + 0.02)
    assert tolerance_against_authors(rows[1]) == 0.08
    zero = compare_with_authors(rows, "relu", regularised=False)
    assert list(zero) == ["lam=0 p=200"] and zero["lam=0 p=200"]["ok"]  # 0.03 <= 0.052
    aligned = compare_with_authors(rows, "relu", regularised=True)
    assert not aligned["lam=0.2 p=200"]["ok"]  # 0.088 > 0.08
    assert not aligned["lam=0.05 p=200"]["ok"]  # within 0.08, but a trial never settled
    assert compare_with_authors(rows, "tanh", regularised=True) == {}


def test_sweep_jobs():
    jobs = sweep_jobs(("linear", "relu"), (200, 800), 2, curve_width=3200, curve_trials=4, seed=1)
    kinds = [(fn.__name__, kw["activation"], kw["p"], kw.get("rule")) for fn, kw in jobs]
    assert len(jobs) == 8 and kinds[0] == ("run_curve_cell", "relu", 3200, "fa")  # the longest first
    assert {k for k in kinds if k[0] == "run_alignment_cell"} == {("run_alignment_cell", a, p, None) for a in ("linear", "relu") for p in (200, 800)}
    with_real = sweep_jobs(("relu",), (200,), 2, curve_width=200, curve_trials=1, seed=1,
                           real=dict(seeds=[5], epochs=10, records=4))
    assert with_real[0][0].__name__ == "run_real_data_on" and with_real[0][1]["seeds"] == [5] and len(with_real) == 4
    with pytest.raises(ValueError, match="activations"):
        sweep_jobs(("softplus",), (200,), 1, curve_width=200, curve_trials=1, seed=0)


def test_cost_estimates_scale_with_the_work():
    rule = StopRule(25, every=10, tolerance=1e-3, max_steps=400)
    cell = run_alignment_cell("relu", 12, 2, lams=(0.0, 0.3), stop=rule, n=6, d=9, dtype=F64)
    unit = cost_per_unit([cell])
    assert unit["relu"] == pytest.approx(cell.seconds / (cell.steps.sum() * 12))
    hours = paper_cost_hours([cell], unit)
    multiples = [np.mean(cell.steps[cell.select(lam)]) / 25 for lam in (0.0, 0.3)]
    expected = sum(m for m in multiples) * sum(50 * steps_for_width(p) * p for p in WIDTHS) * unit["relu"] / 3600
    assert hours["alignment"] == pytest.approx(expected)
    assert hours["curves"] == pytest.approx(3 * 50 * 5000 * 3200 * unit["relu"] / 3600)


def _full_model(cell, p):
    x, y = synthetic_data("relu", 6, 9, p, cell.seeds, dtype=F64)
    weights, _ = init_two_layer(9, p, cell.seeds, dtype=F64)
    return weights, x, y


def test_bp_cell_predicts_with_beta_squared():
    cell = run_curve_cell("linear", 12, 1, rule="bp", lams=(0.0,), steps=20, n=4, d=6, dtype=F64)
    x, _ = synthetic_data("linear", 4, 6, 12, cell.seeds.tolist(), dtype=F64)
    weights, _ = init_two_layer(6, 12, cell.seeds.tolist(), dtype=F64)
    g, h = kernels(weights, x, "linear", weights[1])
    np.testing.assert_allclose(cell.predicted_slope, predicted_log_mse_slope(g, h, 1e-3, 4).numpy(), rtol=1e-10)
    assert np.all(np.linalg.eigvalsh(h.numpy()) >= -1e-10)  # BP's H is positive semi-definite


# --------------------------------------------------------------------------- real data
def test_run_real_data_shares_initialisation_across_lambdas():
    gen = torch.Generator().manual_seed(0)
    data = ClassificationData(
        name="random", directory=None, sha256={},
        x_train=torch.randn(120, 20, generator=gen), y_train=torch.randint(0, 10, (120,), generator=gen),
        x_test=torch.randn(40, 20, generator=gen), y_test=torch.randint(0, 10, (40,), generator=gen),
    )
    result = run_real_data(data, [1, 2], lams=(0.0, 0.5), epochs=2, batch_size=30, hidden=16, records=4, n_probe=30)
    history = result.history
    assert result.lam.tolist() == [0.0, 0.5, 0.0, 0.5] and result.run.tolist() == [0, 0, 1, 1]
    assert history.steps.tolist() == [0, 2, 4, 6, 8] and result.epochs.tolist() == [0, 0.5, 1, 1.5, 2]
    alignment = history.metrics["error_alignment"]
    assert alignment.shape == (5, 4) and alignment[0, 0] == alignment[0, 1] and alignment[0, 0] != alignment[0, 2]
    assert history.metrics["test_accuracy"].shape == (5, 4) and not history.diverged.any()
    assert alignment[-1, 0] != alignment[-1, 1]  # lambda acts on the second layer


def test_run_real_data_applies_l2_to_the_readout_only():
    """S5b's runs (the paper: "lambda on the second layer"): after one SGD step the first layers of the lambda = 0 and
    lambda = 0.5 columns are equal, and their readouts differ by exactly -lr lambda beta(0)."""
    gen = torch.Generator().manual_seed(0)
    data = ClassificationData(
        name="random", directory=None, sha256={},
        x_train=torch.randn(120, 20, generator=gen), y_train=torch.randint(0, 10, (120,), generator=gen),
        x_test=torch.randn(40, 20, generator=gen), y_test=torch.randint(0, 10, (40,), generator=gen),
    )
    lr = 0.05
    result = run_real_data(data, [3], lams=(0.0, 0.5), epochs=0.25, lr=lr, batch_size=30, hidden=16, records=1, n_probe=30)
    assert result.history.steps.tolist() == [0, 1]
    first, readout = result.history.weights
    torch.testing.assert_close(first[0], first[1], rtol=0, atol=0)
    beta0 = init_weights([20, 16, 10], [3], std=1.0)[1][0]
    torch.testing.assert_close(readout[1] - readout[0], -lr * 0.5 * beta0, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- bad arguments
def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="activation"):
        run_curve_cell("elu", 10, 1)
    with pytest.raises(ValueError, match="rule"):
        run_curve_cell("relu", 10, 1, rule="dfa")
    with pytest.raises(ValueError, match="lams"):
        run_curve_cell("relu", 10, 1, lams=(-0.1,))
    with pytest.raises(ValueError, match="block=0"):
        run_curve_cell("relu", 10, 1, block=0)
    with pytest.raises(ValueError, match="activation"):
        run_alignment_cell("elu", 10, 1)
    with pytest.raises(ValueError, match="trials"):
        run_alignment_cell("relu", 10, 0)
    with pytest.raises(ValueError, match="lams"):
        run_alignment_cell("relu", 10, 1, lams=())
    with pytest.raises(ValueError, match="trials"):
        trial_seeds(0, "relu", 200, 0)
    with pytest.raises(ValueError, match="experiment"):
        trial_seeds(0, "relu", 200, 1, experiment="loss")


# --------------------------------------------------------------------------- the chapter's notebook helpers
import dataclasses  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fa_lib.chapters import two_layer_convergence as song  # noqa: E402
from fa_lib.results import Results  # noqa: E402


def _results(tmp_path, profile="ci"):
    return Results("03_test", profile=profile, parameters={}, seeds=[], results_dir=tmp_path, paper="song2021convergence")


def _row(activation, lam, p, mean, *, sd=0.01, trials=10, unsettled=0):
    """A hand-made :func:`alignment_rows` row (the authors' values from their table, where published)."""
    published = published_alignment(activation, lam, p)
    return {"activation": activation, "lam": lam, "p": p, "mean": mean, "sd": sd, "mean_at_min": mean / 2, "trials": trials,
            "steps_mean": 6000.0, "steps_min": 5050, "steps_max": 7000, "min_steps": steps_for_width(p), "lr": 0.01,
            "diverged": 0, "unsettled": unsettled,
            "authors_mean": None if published is None else published[0], "authors_sd": None if published is None else published[1],
            "difference": None if published is None else mean - published[0]}


def _authors_rows(activation, p, shift=0.0):
    return [_row(activation, lam, p, PUBLISHED_ALIGNMENT[activation, lam][p][0] + shift) for lam in LAMBDAS[activation]]


@pytest.fixture(scope="module")
def tiny_outcomes():
    """Tiny alignment and curve cells (ReLU, p = 12 and 16) and a tiny real-data run, in a job order."""
    stop = StopRule(25, every=10, tolerance=1e-3, max_steps=200)
    align = [run_alignment_cell("relu", p, 2, lams=(0.0, 0.3), stop=stop, n=6, d=9, dtype=F64) for p in (16, 12)]
    fa = run_curve_cell("relu", 16, 2, lams=(0.0, 0.3), steps=30, n=6, d=9, dtype=F64)
    bp = run_curve_cell("relu", 16, 2, rule="bp", lams=(0.0,), steps=30, n=6, d=9, dtype=F64)
    gen = torch.Generator().manual_seed(0)
    data = ClassificationData(
        name="random", directory=None, sha256={"train": "abc"},
        x_train=torch.randn(120, 20, generator=gen), y_train=torch.randint(0, 10, (120,), generator=gen),
        x_test=torch.randn(40, 20, generator=gen), y_test=torch.randint(0, 10, (40,), generator=gen),
    )
    real = run_real_data(data, [1], epochs=2, batch_size=30, hidden=16, records=4, n_probe=30)
    return [fa, align[0], dataclasses.replace(real, dataset="mnist"), align[1], bp]


def test_profiles_and_chapter_parameters():
    assert set(song.PROFILES) == {"ci", "default", "paper"}
    assert song.PROFILES["ci"]["widths"] == (200,) and song.PROFILES["paper"]["trials"] == 50
    assert song.check_chapter_parameters(workers=3, block="auto", activations=["tanh", "linear"]) == (3, ("linear", "tanh"))
    assert song.check_chapter_parameters(workers=3, block=4, activations=("relu",), device="cuda")[0] == 1
    assert song.check_chapter_parameters(workers=0, block="all", activations=["relu"])[0] >= 1
    for kwargs, message in [(dict(workers=-1), "workers=-1"), (dict(block="some"), "block='some'"),
                            (dict(activations=["relu", "elu"]), "activations='elu'"), (dict(activations=[]), "activations"),
                            (dict(activations=["relu", "relu"]), "distinct"), (dict(activations="relu"), "activations")]:
        with pytest.raises(ValueError, match=message):
            song.check_chapter_parameters(**{"workers": 1, "block": "auto", "activations": ["relu"], **kwargs})


def test_plan_runs_lists_every_job_and_seed():
    config = song.PROFILES["ci"]
    jobs, seeds = song.plan_runs(config, activations=("relu",), seed=3)
    assert sorted(fn.__name__ for fn, _ in jobs) == ["run_alignment_cell", "run_curve_cell", "run_curve_cell", "run_real_data_on"]
    real = next(kw for fn, kw in jobs if fn.__name__ == "run_real_data_on")
    assert real["seeds"] == real_data_seeds(3, 1) and real["n_train"] == 1200 and real["epochs"] == 2
    expected = {s for lam in LAMBDAS["relu"] for s in trial_seeds(3, "relu", 200, 5, lam=lam)} | set(real["seeds"])
    assert seeds == sorted(expected) and len(seeds) == 4 * 5 + 1
    assert real_data_seeds(3, 2)[0] == real_data_seeds(3, 1)[0] != real_data_seeds(4, 1)[0]
    numbers = song.run_numbers(song.PROFILES["default"], 7)["numbers"]
    assert numbers == dict(song_p_min=200, song_p_max=800, song_trials=10, song_workers=7, song_curve_p=3200, song_curve_trials=3)


def test_record_puts_numbers_metrics_and_texts_in_the_results(tmp_path):
    results = _results(tmp_path)
    song.record(results, numbers={"a": np.float64(1.5)}, metrics={"t": [{"x": np.int64(2)}]}, texts={"name": "MNIST"})
    assert results.metrics == {"name": "MNIST", "t": [{"x": 2}], "a": 1.5} and type(results.metrics["a"]) is float
    song.record(results)
    assert len(results.metrics) == 3


def test_kernel_check_fits_the_exponents_of_its_rows():
    rows, records = song.kernel_check(0, widths=(200, 800), draws=2)
    assert [r["p"] for r in rows] == [200, 800] and records["metrics"]["kernel_check"] is rows
    numbers = records["numbers"]
    slope = math.log(rows[1]["H(0) (FA)"] / rows[0]["H(0) (FA)"]) / math.log(4)
    assert numbers["song_h_exponent"] == pytest.approx(slope) and -0.9 < slope < -0.1  # about p^(-1/2)
    assert numbers["song_g_exponent"] < 0 and rows[1]["G(0) vs arc-cosine"] < rows[0]["G(0) vs arc-cosine"]
    assert numbers["song_relu_lambda_min_ginf"] == pytest.approx(np.mean([r["lambda_min(G_inf)"] for r in rows]))
    assert len(song.plot_kernel_check(rows).axes) == 1
    plt.close("all")


def test_protocol_and_display_rows():
    protocol = song.protocol_rows(("linear", "relu"))
    assert [r["activation"] for r in protocol] == ["linear", "relu"] and protocol[1]["fa_lib eta = 2 lr"] == 0.02
    assert protocol[1]["lambda grid (MSELoss)"] == "0, 0.02, 0.05, 0.2" and protocol[1]["fa_lib l2 = lambda/2"] == "0, 0.01, 0.025, 0.1"
    assert song.width_rows((200, 800), 5) == [{"width p": 200, "T_min": 5050, "trials per cell": 5},
                                              {"width p": 800, "T_min": 10101, "trials per cell": 5}]
    table = [_row("relu", 0.0, 200, 0.25), _row("relu", 0.2, 12, 0.5)]
    steps = song.steps_rows(table)
    assert steps[0]["steps (min-max)"] == "5050-7000" and steps[0]["steps (mean)"] == 6000 and steps[1]["λ"] == "0.2"
    shown = alignment_display_rows(table)
    assert shown[0]["ours"] == "0.250 ± 0.010" and shown[0]["ours − authors"] == f"{0.25 - table[0]['authors_mean']:+.3f}"
    assert shown[0]["bound"] == f"{tolerance_against_authors(table[0]):.3f}" and shown[1]["authors"] == shown[1]["bound"] == "—"


def test_linear_step_numbers_use_the_smallest_width():
    table = [_row("linear", lam, p, 0.1 + lam) for p in (400, 200) for lam in LAMBDAS["linear"]]
    table[-1]["steps_max"] = 30000
    numbers = song.linear_step_numbers(table)["numbers"]
    assert numbers["song_linear_steps_max"] == 30000 and numbers["song_linear_multiple_max"] == 30000 / 5050
    assert numbers["song_linear_full_0p5"] == pytest.approx(0.6) and numbers["song_linear_at_min_0p5"] == pytest.approx(0.3)
    assert "song_linear_full_0" not in numbers
    assert song.linear_step_numbers([_row("relu", 0.2, 200, 0.5)]) == {"numbers": {}}


def test_split_and_sweep_records_keep_the_job_order(tiny_outcomes):
    align, curves, real = song.split_outcomes(tiny_outcomes)
    assert [c.p for c in align] == [12, 16] and set(curves) == {("relu", "fa"), ("relu", "bp")} and real is tiny_outcomes[2]
    tiny_outcomes[1].diverged[0] = True
    try:
        records = song.sweep_records(tiny_outcomes)
    finally:
        tiny_outcomes[1].diverged[0] = False
    seconds = records["metrics"]["cell_seconds"]
    assert [(r["cell"], r["p"]) for r in seconds] == [("curves fa", 16), ("alignment", 16), ("alignment", 12), ("curves bp", 16)]
    assert seconds[1]["networks"] == 4 and seconds[1]["seconds"] == tiny_outcomes[1].seconds
    assert records["metrics"]["diverged_per_cell"] == {"relu p=12": 0, "relu p=16": 1, "relu p=16 curves fa": 0, "relu p=16 curves bp": 0}
    assert records["numbers"]["song_diverged_total"] == 1
    assert [r["p"] for r in records["metrics"]["trial_steps"]] == [12, 16]
    unsettled = sum(int((~c.settled & ~c.diverged).sum()) for c in align) - int(~tiny_outcomes[1].settled[0])
    assert records["numbers"]["song_unsettled_total"] == unsettled


def test_plots_have_one_panel_per_activation(tiny_outcomes):
    align, curves, real = song.split_outcomes(tiny_outcomes)
    table = alignment_rows(align)
    assert len(song.plot_steps(align, ("relu",)).axes) == 1
    fig = song.plot_alignment(table + [_row("tanh", lam, 12, 0.1 * k) for k, lam in enumerate(LAMBDAS["tanh"])], ("relu", "tanh"))
    assert len(fig.axes) == 2 and fig.axes[0].get_ylabel() == r"final $\cos(\beta, b)$"
    assert len(song.plot_loss_curves(curves, ("relu",)).axes) == 1
    assert [ax.get_title() for ax in song.plot_real_data(real).axes] == ["MNIST: error-signal alignment", "MNIST: test accuracy"]
    plt.close("all")


def test_alignment_claims_skip_what_needs_several_widths(tmp_path):
    results = _results(tmp_path)
    song.alignment_claims(results, _authors_rows("relu", 200), ("relu",))
    claims = {c["id"]: c for c in results.claims}
    assert list(claims) == ["S2a_relu", "S3a_relu", "S2b", "S3b", "S3c"]
    assert claims["S2a_relu"]["passed"] and claims["S3a_relu"]["passed"] and claims["S3b"]["passed"]
    assert claims["S3b"]["measured"] == {"relu p=200": [PUBLISHED_ALIGNMENT["relu", lam][200][0] for lam in LAMBDAS["relu"]]}
    for claim_id in ("S2b", "S3c"):
        assert claims[claim_id]["verdict"] == "not evaluated" and claims[claim_id]["reason"] == SEVERAL_WIDTHS


def test_alignment_claims_fail_outside_their_bounds(tmp_path):
    table = _authors_rows("relu", 200, shift=0.09) + _authors_rows("relu", 400)
    table[1], table[2] = dict(table[2], lam=table[1]["lam"]), dict(table[1], lam=table[2]["lam"])  # not increasing at p=200
    results = _results(tmp_path)
    song.alignment_claims(results, table, ("relu",))
    claims = {c["id"]: c for c in results.claims}
    assert not claims["S2a_relu"]["passed"] and not claims["S3a_relu"]["passed"]  # 0.09 > both bounds
    assert not claims["S3b"]["passed"]
    assert claims["S2b"]["passed"] == (table[0]["mean"] > table[4]["mean"])
    ratio = claims["S3c"]["measured"]["ratio p_max / p_min"]
    assert set(ratio) == {"relu λ=0.02", "relu λ=0.05", "relu λ=0.2"} and claims["S3c"]["passed"] == all(v > 0.5 for v in ratio.values())
    numbers = song.alignment_numbers(table, ("relu",))["numbers"]
    assert numbers["song_relu_s2_max_diff"] == pytest.approx(0.09) and numbers["song_relu_align0_pmin"] == table[0]["mean"]


def test_alignment_numbers_linear_np():
    table = _authors_rows("linear", 200) + _authors_rows("linear", 400)
    for r in table:
        if r["lam"] == 0:
            r["mean"] = 0.5 * N_SAMPLES / r["p"]
    records = song.alignment_numbers(table, ("linear",))
    assert records["metrics"]["linear_alignment_times_p_over_n"] == {200: pytest.approx(0.5), 400: pytest.approx(0.5)}
    assert records["numbers"]["song_linear_np_pmax"] == pytest.approx(0.5)
    assert records["numbers"]["song_linear_align0_authors_pmin"] == published_alignment("linear", 0.0, 200)[0]


def _rate(activation, rule, measured, predicted, r2=0.99, diverged=0, predicted_g=None):
    predicted_g = 2 * predicted if predicted_g is None else predicted_g
    return {"activation": activation, "p": 200, "rule": rule, "trials": 2, "diverged": diverged, "measured_slope": measured,
            "predicted_slope": predicted, "predicted_slope_g": predicted_g, "predicted_slope_final": 3 * predicted,
            "ratio": measured / predicted, "ratio_g": measured / predicted_g, "lambda_min_g": 1.0, "lambda_min_gh": -0.5,
            "indefinite": 2, "h_over_lambda_min_g": 1.5, "r2_min": r2}


def test_convergence_claims_follow_the_bounds(tmp_path):
    rates = [_rate("relu", "fa", -1.0, -1.0, predicted_g=-1.0), _rate("relu", "bp", -2.0, -1.5),
             _rate("tanh", "fa", -1.0, 0.5, r2=0.9, predicted_g=-1.0), _rate("tanh", "bp", -0.5, -1.0)]
    results = _results(tmp_path)
    song.convergence_claims(results, rates, ("relu", "tanh"))
    claims = {c["id"]: c for c in results.claims}
    assert claims["S1a_relu"]["passed"] and not claims["S1a_tanh"]["passed"]
    assert claims["S1a_tanh"]["measured"] == {"fa": 0.9, "bp": 0.99}
    # S1b uses lambda_min(G(0)): an indefinite G(0) + H(0) (a positive G + H prediction) no longer decides it
    assert claims["S1b_relu"]["passed"] and claims["S1b_tanh"]["passed"]
    assert claims["S1b_tanh"]["measured"]["ratio"] == 1.0 and claims["S1b_tanh"]["measured"]["ratio with G(0)+H(0)"] == -2.0
    assert claims["S1b_tanh"]["measured"]["trials with G(0)+H(0) indefinite"] == 2
    slow, flat = _rate("relu", "fa", -0.8, -1.0, predicted_g=-1.0), _rate("relu", "fa", -1.0, -1.0, predicted_g=0.1)
    for fa, why in ((slow, "slower than G(0) predicts"), (flat, "lambda_min(G(0)) <= 0 predicts nothing")):
        failing = _results(tmp_path)
        song.convergence_claims(failing, [fa, _rate("relu", "bp", -2.0, -1.5)], ("relu",))
        assert not {c["id"]: c for c in failing.claims}["S1b_relu"]["passed"], why
    assert not claims["S1c"]["passed"] and claims["S1c"]["measured"]["tanh"] == {"bp": -0.5, "fa": -1.0}
    numbers = song.convergence_numbers(rates, ("relu", "tanh"))["numbers"]
    assert numbers["song_s1_in_band"] == 2 and numbers["song_s1_fa_rows"] == 2 and numbers["song_tanh_r2_min"] == 0.9
    assert numbers["song_relu_ratio_bp"] == pytest.approx(2 / 1.5) and numbers["song_relu_fa_kernel_change"] == 3
    assert numbers["song_relu_fa_predicted_g_ratio"] == 1.0 and numbers["song_tanh_h_over_g"] == 1.5


def _plateau(activation, lam, ratio, *, growth=1.0, predicted=0.9, drift=0.1, growing=3):
    return {"activation": activation, "lam": lam, "p": 200, "trials": 3, "ratio": ratio, "ratio_final_kernel": 1.0 + ratio,
            "window_fall": 0.1, "w2_relative_growth": 0.01, "w2_growth": growth, "predicted_growth": predicted,
            "overlap_drift": drift, "growth_ratio": growth / predicted, "trials_growing": growing}


def test_plateau_claims_use_a_factor_two_and_diagnose_a_deviation(tmp_path):
    plateaus = [_plateau("relu", lam, ratio) for lam, ratio in ((0.02, 0.5), (0.05, 2.0))] + [_plateau("tanh", 0.1, 0.49)]
    results = _results(tmp_path)
    song.plateau_claims(results, plateaus, ("relu", "tanh"))
    claims = {c["id"]: c for c in results.claims}
    assert claims["S4_relu"]["passed"] and claims["S4_relu"]["measured"] == {"λ=0.02": 0.5, "λ=0.05": 2.0}
    assert claims["S4_relu"].get("diagnosis", "") == ""
    assert not claims["S4_tanh"]["passed"]
    assert "final / ridge(G(T)) = 1.5" in claims["S4_tanh"]["diagnosis"] and claims["S4_tanh"]["discussion"] == "s4-moving-plateau"
    assert claims["S4w"]["kind"] == "prediction" and claims["S4w"]["passed"]
    assert set(claims["S4w"]["measured"]) == {"relu λ=0.02", "relu λ=0.05"}  # tanh: the law needs psi'(z) z = psi(z)
    numbers = song.plateau_numbers(plateaus)["numbers"]
    assert numbers["song_plateau_ratio_min"] == 0.49 and numbers["song_plateau_final_kernel_max"] == 3.0
    assert numbers["song_growth_ratio_min"] == pytest.approx(1 / 0.9) and numbers["song_tanh_growth_ratio_max"] == pytest.approx(1 / 0.9)


@pytest.mark.parametrize("change, why", [
    (dict(growth=1.1), "growth 10% off the law"),
    (dict(growing=2), "one trial's ||W||^2 did not grow"),
    (dict(predicted=0.4, drift=0.6), "growth mostly the transient d<beta, b>/dt"),
])
def test_growth_prediction_can_fail(tmp_path, change, why):
    results = _results(tmp_path)
    song.plateau_claims(results, [_plateau("relu", 0.02, 1.0), _plateau("linear", 0.2, 1.0, **change)], ("linear", "relu"))
    assert not {c["id"]: c for c in results.claims}["S4w"]["passed"], why


def test_real_data_records_numbers_and_claims(tiny_outcomes, tmp_path):
    _, _, real = song.split_outcomes(tiny_outcomes)
    records = song.real_data_records(real, song.PROFILES["ci"])
    assert records["texts"] == {"song_real_dataset": "MNIST"} and records["metrics"]["real_data_sha256"] == {"train": "abc"}
    assert records["numbers"]["song_real_steps"] == int(real.history.steps[-1]) and records["numbers"]["song_real_epochs"] == 2
    alignment, accuracy = real_data_finals(real)
    numbers = song.real_data_numbers(real)
    assert set(numbers["metrics"]["real_final_alignment"]) == {"0", "0.1", "0.3"}
    assert numbers["numbers"]["song_real_align_0p3"] == alignment[0.3]["mean"] == real.history.final("error_alignment")[2]
    assert numbers["numbers"]["song_real_acc_0p1"] == pytest.approx(100 * real.history.final("test_accuracy")[1])
    skipped = _results(tmp_path)
    song.real_data_claims(skipped, real, evaluate=False)
    assert [(c["id"], c["verdict"], c["reason"]) for c in skipped.claims] == [(k, "not evaluated", SHORT_REAL_RUN) for k in ("S5a", "S5b", "S5c")]
    results = _results(tmp_path)
    song.real_data_claims(results, real, evaluate=True)
    claims = {c["id"]: c for c in results.claims}
    assert claims["S5a"]["measured"] == alignment[0.0]["mean"] and claims["S5a"]["passed"] == (alignment[0.0]["mean"] < 0.1)
    ratios = claims["S5b"]["measured"]["ratio to lambda = 0"]
    assert ratios["0.3"] == pytest.approx(alignment[0.3]["mean"] / alignment[0.0]["mean"])
    assert claims["S5b"]["passed"] == all(v >= 2 for v in ratios.values())
    a0 = accuracy[0.0]["mean"]
    assert claims["S5c"]["measured"]["margin"] == pytest.approx(2 * math.sqrt(2 * a0 * (1 - a0) / real.n_test))


def test_cost_records_scale_with_the_measured_time(tiny_outcomes):
    align, curves, real = song.split_outcomes(tiny_outcomes)
    records = song.cost_records(align, curves, real)
    unit = cost_per_unit([*align, *curves.values()])
    assert records["metrics"]["cost_per_network_step_unit"] == unit
    assert records["numbers"]["song_cost_ns"] == pytest.approx(1e9 * unit["relu"])
    per_step = real.seconds / (len(real.lam) * int(real.history.steps[-1]))
    assert records["numbers"]["song_real_ms_per_network_step"] == pytest.approx(1e3 * per_step)
    assert records["numbers"]["song_paper_real_hours"] == pytest.approx(per_step * 10 * 3 * 300 * 100 / 3600)
    assert records["numbers"]["song_paper_alignment_hours"] == paper_cost_hours(align, unit)["alignment"]


def _with_alignment(real, alignment):
    """``real`` with its error-signal alignment replaced by ``alignment`` ``(records, 3)`` (columns lambda = 0, 0.1, 0.3)."""
    records = alignment.shape[0]
    history = dataclasses.replace(real.history, steps=np.arange(records) * 100,
                                  metrics={**real.history.metrics, "error_alignment": alignment,
                                           "test_accuracy": np.full((records, 3), 0.8)})
    return dataclasses.replace(real, history=history, epochs=np.arange(records, dtype=float))


def test_alignment_crossings_and_the_s5b_diagnosis(tiny_outcomes, tmp_path):
    _, _, real = song.split_outcomes(tiny_outcomes)
    rising = np.array([[0.01, 0.01, 0.01], [0.01, 0.015, 0.03], [0.01, 0.025, 0.05], [0.01, 0.03, 0.06]])
    crossings = alignment_crossings(_with_alignment(real, rising), 2.0)
    assert crossings == {0.1: 2.0, 0.3: 1.0}
    assert alignment_crossings(_with_alignment(real, rising[:2]), 2.0) == {0.1: None, 0.3: 1.0}
    numbers = song.real_data_numbers(_with_alignment(real, rising[:2]))
    assert numbers["texts"]["song_real_cross_0p1"] == "not within this run"
    assert numbers["texts"]["song_real_cross_0p3"] == "epoch 1 (0.3 time constants)"  # 100 steps x lr 0.01 x lambda 0.3
    results = _results(tmp_path, profile="default")
    song.real_data_claims(results, _with_alignment(real, rising[:3]), evaluate=True)  # lambda = 0.1 ends at 2.5x: passes
    assert {c["id"]: c for c in results.claims}["S5b"]["passed"]
    short = _results(tmp_path, profile="default")
    song.real_data_claims(short, _with_alignment(real, rising[:2]), evaluate=True)  # 1.5x: deviates, with its diagnosis
    s5b = {c["id"]: c for c in short.claims}["S5b"]
    assert not s5b["passed"] and s5b["discussion"] == "s5-forgetting"
    assert "lasted 0.1, 0.3 forgetting time constants" in s5b["diagnosis"] and "1.50, 3.00 against 1.50, 3.00" in s5b["diagnosis"]
