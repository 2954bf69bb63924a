"""The primer chapter's module: parameter checks, the divergence note and the claims' verdicts."""

import numpy as np
import pytest

from fa_lib import Results
from fa_lib.chapters import primer
from fa_lib.training import History


def _history(final_acc, align0, align_end, diverged=(False, False)):
    """A two-record, two-seed history with the given final accuracies and (start, end) gradient alignments."""
    acc = np.array([[0.1, 0.1], final_acc])
    grad = np.stack([np.full((2, 2), align0), np.full((2, 2), align_end)])
    return History(steps=np.array([0, 10]), metrics={"test_accuracy": acc, "grad_alignment": grad},
                   diverged=np.array(diverged), diverged_step=np.array([-1, -1]), weights=[])


def test_parameters_are_checked_before_anything_runs():
    assert primer.chapter_parameters("auto", "tanh")["widths"] == primer.WIDTHS
    with pytest.raises(ValueError, match="dataset='cifar10' is not allowed"):
        primer.chapter_parameters("cifar10", "tanh")
    with pytest.raises(ValueError, match="activation='gelu' is not allowed"):
        primer.chapter_parameters("auto", "gelu")


def test_divergence_note_names_only_rules_with_diverged_seeds():
    ok = _history([0.9, 0.9], 0.0, 0.5)
    bad = _history([0.9, 0.9], 0.0, 0.5, diverged=(True, False))
    assert primer.divergence_note({"bp": ok, "fa": ok}) == ""
    assert primer.divergence_note({"bp": ok, "fa": bad}) == ("FA: 1 of 2 seeds diverged and are excluded from every "
                                                          "statistic.")


@pytest.mark.parametrize("fa_acc,align0,align_end,failing", [
    (0.88, 0.0, 0.5, set()),
    (0.80, 0.0, 0.5, {"P1a"}),  # 10 points behind BP
    (0.88, 0.15, 0.5, {"P2a", "P2b"}),  # not near 0 at the start
    (0.88, 0.0, 0.15, {"P3a", "P3b"}),  # not clearly positive at the end
])
def test_each_claim_can_fail(tmp_path, fa_acc, align0, align_end, failing):
    bp = _history([0.9, 0.9], 0.0, 1.0)
    histories = {"bp": bp, "fa": _history([fa_acc, fa_acc], align0, align_end),
                 "dfa": _history([0.88, 0.88], align0, align_end)}
    results = Results("00_primer", profile="ci", parameters={}, seeds=[0, 1], results_dir=tmp_path, paper="lillicrap2016random")
    primer.record_claims(results, histories)
    verdicts = {c["id"]: c["passed"] for c in results.claims}
    assert set(verdicts) == {"P1a", "P1b", "P2a", "P2b", "P3a", "P3b"}
    assert {k for k, v in verdicts.items() if not v} == failing
