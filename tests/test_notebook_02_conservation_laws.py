"""The conservation-laws chapter at the ci profile: every claim's measured values, its metrics, its parameter checks."""

import pytest
from conftest import assert_claims_pass, assert_notebook_is_thin, assert_rejects_parameter

from fa_lib import to_jsonable
from fa_lib.chapters import conservation_laws as CL

pytestmark = pytest.mark.notebook

STEM = "02_conservation_laws"
CLAIMS = {"K1", "K1b", "K2", "K3a", "K3b", "K3c", "K4", "K4b", "K4c", "K4d", "K5a", "K5b", "K5c", "K5d", "K5e",
          "K6a", "K6b", "K6c", "K6d", "K7a", "K7b", "K7c"}
IMPLEMENTATION_CHECKS = {"K1", "K1b", "K2", "K5c", "K6b", "K7c"}
DEVIATING = {"K7a", "K7b"}  # deviate at ci (K7a at default too; see the chapter): their verdicts are recomputed from the values below


def test_conservation_ci_claims_and_metrics(ci_results):
    results = ci_results(STEM)
    claims = {c["id"]: c for c in results["claims"]}
    assert set(claims) == CLAIMS
    assert_claims_pass({"claims": [c for k, c in claims.items() if k not in DEVIATING]}, CLAIMS - DEVIATING)
    assert {k for k, c in claims.items() if c["kind"] == "implementation"} == IMPLEMENTATION_CHECKS
    assert results["profile"] == "ci"
    m = {k: c["measured"] for k, c in claims.items()}

    # implementation checks: rounding-level residuals, while the predicted change is far above them
    assert m["K1"]["worst"] <= 1e-10 and m["K1b"]["worst"] <= 1e-10 and m["K2"]["worst"] <= 1e-12
    assert min(m[k]["max_change_over_terms_smallest_run"] for k in ("K1", "K1b", "K2")) > 1e-8
    assert m["K5c"]["worst"] <= 1e-10 and m["K6b"]["worst"] <= 1e-10
    # K3: O(eta) drift, FA one-signed, GD both signs beyond rounding
    assert 1.8 <= m["K3a"]["min"] <= m["K3a"]["max"] <= 2.2
    assert 4.5 <= m["K3a"]["eta_half_over_eta_tenth"]["min"] <= m["K3a"]["eta_half_over_eta_tenth"]["max"] <= 5.5
    assert m["K3b"]["min_relative_one_step_change"] >= -1e-12
    assert m["K3c"]["largest_most_negative"] < -1e-12 and m["K3c"]["smallest_most_positive"] > 1e-12
    # K4: eta x (cross drift / own drift) constant within 10% over a decade; K4b-d: first-order breaks
    assert 0.9 <= m["K4"]["low"] <= m["K4"]["high"] <= 1.1
    for k in ("K4b", "K4c", "K4d"):
        assert 0.9 <= m[k]["ratio_half_lr"]["min"] <= m[k]["ratio_half_lr"]["max"] <= 1.1 and m[k]["over_plain"]["min"] > 2
    # K5: slope 1/2, GD at chance, the sufficient condition and its counter-example
    assert 0.45 <= m["K5a"]["fa_slope_min"] <= m["K5a"]["fa_slope_max"] <= 0.55
    assert m["K5b"]["max_abs_cos_over_bound"] <= 1
    assert m["K5d"]["min_alignment"] >= 0
    assert m["K5e"]["largest_per_seed_min_final_alignment"] < 0 and m["K5e"]["largest_loss_ratio_end_over_start"] < 1
    # K6: minimum norm
    assert m["K6a"]["worst"] <= 1e-8 and 9 <= m["K6c"]["min"] <= m["K6c"]["max"] <= 11
    assert m["K6d"]["gd_max_abs_weight"] == 0.0 and m["K6d"]["fa_worst_relative_error"] <= 1e-8
    # K7a: the law holds at the smallest usual step, BP has none; the verdict is the bound applied to every step size
    shares = m["K7a"]["max_by_lr"]
    assert shares["0.01"] <= 0.1 and m["K7a"]["bp_control_min"] > 0.5 and shares["0.1"] > shares["0.01"]
    assert claims["K7a"]["passed"] == (max(shares.values()) <= 0.1)
    # K7c: the flow law's remainder is the discrete term (the shares agree), to float32 rounding
    for lr, share in shares.items():
        assert m["K7a"]["discrete_share_max_by_lr"][lr] == pytest.approx(share, rel=1e-3)
    assert m["K7c"]["worst"] <= 1e-4
    assert claims["K7a"]["passed"] or "discrete term" in claims["K7a"]["diagnosis"]
    # K7b: the small start is better aligned in every seed; the verdict follows the accuracy gains
    assert min(m["K7b"]["min_alignment_gain"].values()) > 0
    gains = m["K7b"]["mean_accuracy_gain_points"]
    assert claims["K7b"]["passed"] == (gains["5"] > 0 and gains["10"] > 0)

    metrics = results["metrics"]
    laws = {r["law"] for r in metrics["law_residuals"]}
    assert {"fa_matrix", "fa_matrix_bias", "fa_neuron", "fa_neuron_bias", "gd_matrix", "gd_neuron"} <= laws
    assert {(r["rule"], r["layer"]) for r in metrics["alignment_final"]} == {(rule, layer) for rule in ("fa", "bp") for layer in (2, 3, 4)}
    assert set(metrics["breaking_runs"]) == {"plain", "weight decay", "momentum", "momentum, fixed memory time", "Adam"}
    assert metrics["cons_dataset"] in {"MNIST", "Fashion-MNIST"} and abs(metrics["cons_prac_flipped"] - 0.2) < 1e-9
    assert len(results["provenance"]["seeds"]) == 8
    expected = {"profile": "ci", "seed": 0, "device": "cpu", "threads": 1} | CL.chapter_parameters("ci") | CL.PROFILES["ci"]
    assert results["parameters"] == to_jsonable(expected)


def test_conservation_notebook_is_thin():
    assert_notebook_is_thin(STEM, 410)


@pytest.mark.parametrize("name,value,message", [
    ("profile", "fast", "profile='fast' is not allowed"),
    ("seed", -1, "seed=-1"),
    ("threads", 0, "threads=0"),
    ("device", "tpu", "device='tpu' is not allowed"),
])
def test_conservation_rejects_bad_parameters_before_computing(tmp_path, name, value, message):
    assert_rejects_parameter(STEM, tmp_path, name, value, message)
