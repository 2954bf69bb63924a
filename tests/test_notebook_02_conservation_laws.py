"""The conservation-laws chapter at the ci profile: its claims hold, its metrics are complete, its parameters are checked."""

import pytest
from conftest import assert_claims_pass, assert_rejects_parameter

pytestmark = pytest.mark.notebook

STEM = "02_conservation_laws"
CLAIMS = {"K1", "K1b", "K2", "K3a", "K3b", "K4", "K4b", "K5a", "K5b", "K5c", "K6a", "K6b", "K6c", "K6d"}


def test_conservation_ci_claims_and_metrics(ci_results):
    results = ci_results(STEM)
    assert_claims_pass(results, CLAIMS)
    assert results["profile"] == "ci"
    metrics = results["metrics"]

    rows = metrics["law_residuals"]
    assert {"law", "depth", "width", "activation", "max_relative_residual"} <= set(rows[0])
    laws = {r["law"] for r in rows}
    assert {"fa_matrix", "fa_matrix_bias", "fa_neuron", "fa_neuron_bias", "gd_matrix", "gd_neuron"} <= laws
    assert len({r["depth"] for r in rows}) >= 2 and len({r["width"] for r in rows}) >= 2
    assert all(r["max_relative_residual"] <= 1e-10 for r in rows)

    ratio = metrics["drift_ratio_half_lr"]
    assert 1.8 <= ratio["min"] <= ratio["max"] <= 2.2

    align = metrics["alignment_final"]
    assert {(r["rule"], r["layer"]) for r in align} == {(rule, layer) for rule in ("fa", "bp") for layer in (2, 3, 4)}
    assert all(set(r) == {"rule", "layer", "mean", "min"} for r in align)
    assert all(r["min"] > 0 for r in align if r["rule"] == "fa")

    assert 0 <= metrics["min_norm_relative_error"] <= 1e-8
    assert len(results["provenance"]["seeds"]) == 8


@pytest.mark.parametrize("name,value,message", [
    ("profile", "fast", "profile='fast' is not allowed"),
    ("seed", -1, "seed=-1"),
    ("threads", 0, "threads=0"),
    ("device", "tpu", "device='tpu' is not allowed"),
])
def test_conservation_rejects_bad_parameters_before_computing(tmp_path, name, value, message):
    assert_rejects_parameter(STEM, tmp_path, name, value, message)
