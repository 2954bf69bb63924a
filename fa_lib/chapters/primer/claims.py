"""The primer's claims P1 (accuracy gap), P2 (alignment at the start) and P3 (alignment at the end)."""

from __future__ import annotations

from collections.abc import Mapping

from ...plotting import RULE_LABELS
from ...training import History, summarize_seeds

GAP = 5.0  # P1: percentage points
START = 0.1  # P2: bound on |alignment| at initialisation
END = 0.2  # P3: least final alignment


def record_claims(results, histories: Mapping[str, History]) -> None:
    """Record the final accuracies and alignments and claims P1 (accuracy gap), P2 (start) and P3 (end).

    Statistics are over the seeds that did not diverge.
    """
    final_acc = {rule: summarize_seeds(100 * h.final("test_accuracy"), h.diverged) for rule, h in histories.items()}
    for rule, s in final_acc.items():
        results.number(f"primer_acc_{rule}", s["mean"])
        results.number(f"primer_acc_sd_{rule}", s["sd"])
    results.metric("final_test_accuracy", final_acc)

    for rule, claim_id in (("fa", "P1a"), ("dfa", "P1b")):
        gap = final_acc["bp"]["mean"] - final_acc[rule]["mean"]
        results.number(f"primer_gap_{rule}", gap)
        results.claim(
            claim_id,
            statement=f"{RULE_LABELS[rule]} ends within a few points of BP's test accuracy.",
            expected=f"mean BP accuracy - mean {RULE_LABELS[rule]} accuracy <= {GAP} points",
            measured={"bp": final_acc["bp"]["mean"], rule: final_acc[rule]["mean"], "gap": gap},
            tolerance=(f"{GAP} percentage points: 'a few points' (FA and DFA reach BP's accuracy up to about a point "
                       "after long training in Lillicrap et al. 2016 and Nokland 2016); our budgets are short, and the "
                       "gap is still closing at the end of training, so a few points is the claim we can test."),
            passed=bool(gap <= GAP) and not histories[rule].diverged.all(),
        )

    for rule, claim_id in (("fa", "P2a"), ("dfa", "P2b")):
        h = histories[rule]
        start = [summarize_seeds(h.metrics["grad_alignment"][0, :, k], h.diverged)["mean"] for k in range(2)]
        for k, v in enumerate(start):
            results.number(f"primer_align0_{rule}_l{k + 1}", v)
        results.claim(
            claim_id,
            statement=f"{RULE_LABELS[rule]}: hidden-layer gradient alignment starts near 0.",
            expected=f"|mean over seeds| <= {START} for both hidden layers at step 0",
            measured={"layer_1": start[0], "layer_2": start[1]},
            tolerance=(f"{START}: the feedback is drawn independently of the forward weights, so the expected cosine "
                       "at initialisation is exactly 0; the bound leaves room for the sampling noise of a mean over "
                       "a few seeds of cosines between high-dimensional, low-rank updates."),
            passed=all(abs(v) <= START for v in start),
        )

    for rule, claim_id in (("fa", "P3a"), ("dfa", "P3b")):
        h = histories[rule]
        stats = [summarize_seeds(h.metrics["grad_alignment"][-1, :, k], h.diverged) for k in range(2)]
        for k, s in enumerate(stats):
            results.number(f"primer_align_{rule}_l{k + 1}", s["mean"])
            results.number(f"primer_align_min_{rule}_l{k + 1}", s["min"])
        results.claim(
            claim_id,
            statement=f"{RULE_LABELS[rule]}: hidden-layer gradient alignment becomes clearly positive.",
            expected=f"final mean >= {END} and every seed > 0, in both hidden layers",
            measured={f"layer_{k + 1}": {"mean": s["mean"], "worst_seed": s["min"]} for k, s in enumerate(stats)},
            tolerance=(f"{END}: twice the bound on the start value (P2), so 'clearly positive' cannot be met by "
                       "sampling noise; and no seed may end misaligned (worst seed > 0)."),
            passed=all(s["mean"] >= END and s["min"] > 0 for s in stats),
        )
