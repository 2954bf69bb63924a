"""The synthesis chapter at the ci profile: every claim's measured values, its metrics, its parameter checks."""

import pytest
from conftest import assert_claims_pass, assert_notebook_is_thin, assert_rejects_parameter

from fa_lib.chapters import synthesis as syn

pytestmark = pytest.mark.notebook

STEM = "04_synthesis"
CLAIMS = {"Y1", "Y2", "Y3a", "Y3b", "Y3c", "Y3d", "Y4", "Y5", "Y6", "Y7a", "Y7b", "Y8a", "Y8b", "Y9", "Y10"}
NOT_EVALUATED = {"Y3b"}  # one three-layer width at ci


def test_synthesis_ci_claims_and_metrics(ci_results):
    results = ci_results(STEM)
    claims = {c["id"]: c for c in results["claims"]}
    assert set(claims) == CLAIMS
    assert {k for k, c in claims.items() if c["verdict"] == "not evaluated"} == NOT_EVALUATED
    assert_claims_pass(results, CLAIMS - NOT_EVALUATED)
    assert {k for k, c in claims.items() if c["kind"] == "implementation"} == {"Y1", "Y2", "Y5", "Y6"}
    assert {k for k, c in claims.items() if c["kind"] == "prediction"} == {"Y3c", "Y8a", "Y8b", "Y9", "Y10"}
    assert {c["paper"] for c in claims.values()} == {"robertson2023layerwise", "song2021convergence", "chu2024why"}
    m = {k: c["measured"] for k, c in claims.items()}
    # the laws hold to rounding, in all three families
    assert m["Y1"]["worst_relative_residual"] <= 1e-13 and m["Y1"]["runs"] == {"two-layer": 18, "three-layer": 9, "real": 6}
    assert max(m["Y2"].values()) <= 1e-11
    # Song: the fade and L2's gain are far from their bounds
    assert m["Y3a"]["p=100"] - m["Y3a"]["p=200"] > 0.1
    assert min(v["smallest_gain"] for k, v in m["Y4"].items() if not k.startswith("real")) > 0.02
    # the ci real-data run is 120 steps at lr 0.01: L2 has decayed beta by only lr lambda t = 0.12, so its gain is small
    assert min(v["smallest_gain"] for k, v in m["Y4"].items() if k.startswith("real")) > 0
    # L2 breaks the law by far more than rounding in every family
    assert max(m["Y5"]["largest_least_change_with_l2"].values()) < -1e-6
    # Chu & Bacho: every two-layer run reached zero error, at least one three-layer run did
    assert m["Y7a"]["reached"] == m["Y7a"]["runs"] == 6 and m["Y7b"]["reached"] >= 1
    assert m["Y7a"]["smallest_margin"] > 0.1 and m["Y7a"]["largest_radius"] < 1
    # the resting relation with L2 on both layers: every ci run rests, every live neuron leans towards its feedback
    assert m["Y8a"]["rested"] == m["Y8a"]["runs"] == 2 and m["Y8a"]["smallest sign agreement"] == 1.0
    assert m["Y8b"]["largest residual"] <= 1e-3 and m["Y8b"]["largest relative error of cos"] <= 1e-3
    # the width law: four ci widths, the law's slope inside the alignment's interval, the authors' grid is 200 and 400
    assert m["Y3c"]["widths"] == [50, 100, 200, 400] and m["Y3c"]["difference interval"][0] <= 0 <= m["Y3c"]["difference interval"][1]
    assert m["Y3c"]["slope of the alignment"] < -0.3 and all(v["widths"] == [200, 400] for v in m["Y3d"].values())
    assert len(results["metrics"]["width_runs"]) == 4 * 4 * 2
    assert m["Y9"]["runs"] == 2 and abs(m["Y9"]["growth / law"][0] - 1) < 0.01 and m["Y9"]["mse end / half"][1] < 1
    points = m["Y10"]
    assert set(points) == {"reached", "b -> -b", "(W/3, 3 beta)", "(3 W, beta/3)"} and points["(3 W, beta/3)"]["stayed"] == 0
    assert points["reached"]["stayed"] == points["reached"]["seeds"] == 3
    rest = results["metrics"]["rest_runs"]
    assert {r["p"] for r in rest} == {100} and all(r["net_change"] < 1e-6 and r["chatter"] > r["net_change"] for r in rest)

    metrics = results["metrics"]
    assert len(metrics["runs"]) == 33 and metrics["syn_diverged"] == 0
    assert {(r["family"], r["p"]) for r in metrics["runs"]} == {("two-layer", 100), ("two-layer", 200), ("three-layer", 100), ("real", 128)}
    assert all("margin" in r for r in metrics["runs"] if r["family"] != "real" and r["setting"] == "none")
    assert metrics["syn_p_first"] == 100 and metrics["syn_p_last"] == 200
    assert results["parameters"]["dataset"] == "auto" and results["parameters"]["widths"] == syn.PROFILES["ci"]["widths"]
    assert len(results["provenance"]["seeds"]) == sum(len(v) for v in syn.chapter_seeds(0, syn.PROFILES["ci"]).values())


def test_synthesis_notebook_is_thin():
    assert_notebook_is_thin(STEM, 80)


@pytest.mark.parametrize("name,value,message", [
    ("profile", "fast", "profile='fast' is not allowed"),
    ("seed", -1, "seed=-1"),
    ("workers", -1, "workers=-1"),
    ("device", "tpu", "device='tpu' is not allowed"),
    ("dataset", "cifar10", "dataset='cifar10' is not allowed"),
])
def test_synthesis_rejects_bad_parameters_before_computing(tmp_path, name, value, message):
    assert_rejects_parameter(STEM, tmp_path, name, value, message)
