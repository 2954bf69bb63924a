"""The primer chapter at the ci profile: its claims hold and its parameters are checked."""

import pytest
from conftest import assert_claims_pass, assert_rejects_parameter

pytestmark = pytest.mark.notebook


def test_primer_ci_claims(ci_results):
    results = ci_results("00_primer")
    assert_claims_pass(results, {"P1a", "P1b", "P2a", "P2b", "P3a", "P3b"})
    assert results["profile"] == "ci" and results["parameters"]["activation"] == "tanh"
    acc = results["metrics"]["final_test_accuracy"]
    assert set(acc) == {"bp", "fa", "dfa"} and all(a["n"] == 5 and a["diverged"] == 0 for a in acc.values())
    assert results["metrics"]["primer_dataset"] in {"MNIST", "Fashion-MNIST"}
    assert len(results["provenance"]["seeds"]) == 5


@pytest.mark.parametrize("name,value,message", [
    ("profile", "fast", "profile='fast' is not allowed"),
    ("seed", -1, "seed=-1"),
    ("dataset", "cifar10", "dataset='cifar10' is not allowed"),
    ("activation", "gelu", "activation='gelu' is not allowed"),
])
def test_primer_rejects_bad_parameters_before_computing(tmp_path, name, value, message):
    assert_rejects_parameter("00_primer", tmp_path, name, value, message)
