"""The why-align chapter (Chu & Bacho 2024) at the ci profile: its claims hold, its metrics exist, its parameters are checked."""

import pytest
from conftest import assert_claims_pass, assert_rejects_parameter

pytestmark = pytest.mark.notebook

CLAIMS = {"C1a", "C1b", "C2a", "C2b", "C2c", "C2d", "C3a", "C3b", "C4", "C5a", "C5b"}


def test_why_align_ci_claims_and_metrics(ci_results):
    results = ci_results("01_why_align")
    assert_claims_pass(results, CLAIMS)
    assert {c["id"] for c in results["claims"]} == CLAIMS
    assert all(c["tolerance"] and c["paper"] == "chu2024why" for c in results["claims"])
    metrics = results["metrics"]

    rows = metrics["jacobian_check"]
    assert len(rows) >= 9 and all({"network", "predicted", "measured", "alignment_sign", "stable"} <= set(r) for r in rows)
    assert all(abs(r["measured"] - r["predicted"]) <= 1e-6 * abs(r["predicted"]) for r in rows)
    assert all(r["stable"] == (r["alignment_sign"] > 0) for r in rows)
    assert {r["alignment_sign"] for r in rows} == {-1, 1}  # both outcomes are exercised

    assert metrics["stability_agreement"] == 1.0

    sweep = metrics["accuracy_vs_alignment"]
    assert len(sweep) == 8 and all({"setting", "alignment", "accuracy"} <= set(r) for r in sweep)
    assert all(0.0 <= r["accuracy"] <= 100.0 and -1.0 <= r["alignment"] <= 1.0 for r in sweep)

    assert metrics["why_dataset"] in {"MNIST", "Fashion-MNIST"}
    assert set(metrics["final_test_accuracy"]) == {"fa", "rank1", "frozen", "bp"}
    assert results["profile"] == "ci" and len(results["provenance"]["seeds"]) == 64


@pytest.mark.parametrize("name,value,message", [
    ("profile", "fast", "profile='fast' is not allowed"),
    ("seed", -1, "seed=-1"),
    ("dataset", "cifar10", "dataset='cifar10' is not allowed"),
    ("threads", 0, "threads=0"),
])
def test_why_align_rejects_bad_parameters_before_computing(tmp_path, name, value, message):
    assert_rejects_parameter("01_why_align", tmp_path, name, value, message)
