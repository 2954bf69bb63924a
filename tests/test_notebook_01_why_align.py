"""The why-align chapter (Chu & Bacho 2024) at the ci profile: every claim's measured values, its metrics, its parameter checks."""

import re

import nbformat
import pytest
from conftest import NOTEBOOKS, assert_claims_pass, assert_rejects_parameter

pytestmark = pytest.mark.notebook

CLAIMS = {"C1a", "C1b", "C2a", "C2b", "C2c", "C2d", "C2e", "C2f", "C3a", "C3b", "C4", "C5a", "C5b"}
IMPLEMENTATION_CHECKS = {"C1a", "C2a", "C2b"}


def test_why_align_ci_claims_and_metrics(ci_results):
    results = ci_results("01_why_align")
    assert_claims_pass(results, CLAIMS)
    claims = {c["id"]: c for c in results["claims"]}
    assert set(claims) == CLAIMS
    assert all(c["tolerance"] and c["paper"] == "chu2024why" for c in claims.values())
    assert {k for k, c in claims.items() if c["kind"] == "implementation"} == IMPLEMENTATION_CHECKS
    m = {k: c["measured"] for k, c in claims.items()}

    # implementation checks: exact up to float64 round-off
    assert m["C1a"]["worst_ratio"] <= 1e-10
    assert m["C2a"]["worst_relative_error"] <= 1e-6 and m["C2a"]["signs_match"]
    assert m["C2b"]["worst_mismatch"] <= 1e-6
    # C1b: BP stationary, FA not, error non-zero
    assert m["C1b"]["worst_bp_over_fa"] <= 1e-10 and m["C1b"]["min_fa_update"] > 0.1 and m["C1b"]["min_loss"] > 0
    # C2c, C3a: the sign of the alignment decides, at the same step BP always decays; both signs occur
    assert m["C2c"]["agreement"] == 1.0 and 0.1 < m["C2c"]["negative_alignment_fraction"] < 0.9
    assert m["C3a"]["bp_decay_fraction"] == m["C3a"]["fa_aligned_decay_fraction"] == m["C3a"]["fa_anti_aligned_growth_fraction"] == 1.0
    assert m["C3a"]["anti_aligned_cases"] > 0
    # C2e: BP's Jacobian PSD to round-off, FA's has negative real parts for every network
    assert m["C2e"]["bp_worst_asymmetry"] <= 1e-10 and m["C2e"]["bp_smallest_over_largest"] >= -1e-10
    assert m["C2e"]["fa_most_negative_real_over_modulus"] < -1e-6 and min(m["C2e"]["fa_fraction_with_negative_real_part"]) > 0
    # C2f: >= 95%, every miss shared by the linearised dynamics; the whole-network cosine does much worse
    assert m["C2f"]["agreement"] >= 0.95 and m["C2f"]["unexplained_misses"] == 0
    assert m["C2f"]["agreement_of_whole_network_cosine"] < 0.8
    # C2d: the landing point within 5 lr
    assert m["C2d"]["worst_landing_error"] <= 0.05 and m["C2d"]["worst_final_loss"] < 1e-10
    # C3b: alignment rises at every step in every seed; accuracy peaks before the largest decay
    assert m["C3b"]["smallest_rise_grad"] > 0 and m["C3b"]["smallest_rise_weight"] > 0
    assert m["C3b"]["most_accurate_l2"] < 0.3 and min(m["C3b"]["accuracy_loss_past_best_points"]) > 0
    # C4: the hidden layer's share of FA's early descent <= 10% in every seed, BP's far above
    assert max(m["C4"]["hidden_share_pct"]) <= 10 and min(m["C4"]["bp_hidden_share_same_steps_pct"]) > 10
    # C5: FA close to BP, rank-1 feedback worse in every seed
    assert m["C5a"]["gap"] <= 5.0
    assert min(m["C5b"]["alignment_gap"]) > 0 and min(m["C5b"]["accuracy_gap_points"]) > 0

    metrics = results["metrics"]
    rows = metrics["jacobian_check"]
    assert len(rows) >= 9 and all(r["stable"] == (r["alignment_sign"] > 0) for r in rows)
    assert {r["alignment_sign"] for r in rows} == {-1, 1}  # both outcomes are exercised
    sweep = metrics["accuracy_vs_alignment"]
    assert [r["l2"] for r in sweep] == [0.0, 0.003, 0.01, 0.03, 0.1, 0.3]
    assert all(0.0 <= r["accuracy"] <= 100.0 and -1.0 <= r["alignment"] <= 1.0 for r in sweep)
    assert len(metrics["psd_check"]) == 6 and len(metrics["multi_output_agreement"]) == 6
    assert metrics["why_dataset"] in {"MNIST", "Fashion-MNIST"}
    assert set(metrics["final_test_accuracy"]) == {"fa", "rank1", "frozen", "bp"}
    assert results["profile"] == "ci" and len(results["provenance"]["seeds"]) == 64

    # every number the prose glues is recorded (why_stability_agreement is stability_agreement, glued under that name)
    glued = {n for c in _notebook().cells if c.cell_type == "markdown" for n in re.findall(r"\{glue:text\}`([^`:]+)", c.source)}
    recorded = set(metrics) | {f"{c}_verdict" for c in claims} | {"why_stability_agreement"}
    assert glued and glued <= recorded, sorted(glued - recorded)


def _notebook():
    return nbformat.read(NOTEBOOKS / "01_why_align.ipynb", as_version=4)


def test_why_align_notebook_is_thin():
    """Issue 12: one preamble call, no definitions, short cells, committed without outputs."""
    code = [c for c in _notebook().cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    lines = [len(c.source.splitlines()) for c in code]
    assert sum(lines) <= 364 and max(lines) <= 40
    source = "\n".join(c.source for c in code)
    assert not re.search(r"^\s*(def|class) |lambda\b", source, re.M)
    assert source.count("F.start_chapter(") == 1 and "why_align.PROFILES" in source
    assert "np.split" not in source and all(not c.outputs for c in code)


@pytest.mark.parametrize("name,value,message", [
    ("profile", "fast", "profile='fast' is not allowed"),
    ("seed", -1, "seed=-1"),
    ("dataset", "cifar10", "dataset='cifar10' is not allowed"),
    ("threads", 0, "threads=0"),
])
def test_why_align_rejects_bad_parameters_before_computing(tmp_path, name, value, message):
    assert_rejects_parameter("01_why_align", tmp_path, name, value, message)
