"""What the primer runs: BP, FA and DFA from the same start on the same mini-batches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...data import ClassificationData
from ...networks import RULES, init_feedback, init_weights
from ...plotting import RULE_LABELS
from ...training import History, steps_per_epoch, train
from .profiles import BATCH, LR, WIDTHS


def record_data(results, data: ClassificationData, config: Mapping[str, Any], n_seeds: int) -> str:
    """Record the data set's name, checksum and sizes, the epochs and seeds; return a Markdown line about the data."""
    results.text("primer_dataset", data.title)
    results.metric("data_sha256", data.sha256)
    results.number("primer_n_train", len(data.y_train))
    results.number("primer_n_test", len(data.y_test))
    results.number("primer_epochs", config["epochs"])
    results.number("primer_n_seeds", n_seeds)
    return (f"Dataset: **{data.title}**; {len(data.y_train)} training and {len(data.y_test)} "
            "test images.")


def train_rules(data: ClassificationData, seeds: Sequence[int], config: Mapping[str, Any], *, activation: str, seed: int,
                device: str = "cpu") -> dict[str, History]:
    """Train BP, FA and DFA from the same weights, learning rate and mini-batch order (a paired comparison).

    Returns ``{rule: History}``; each history records the test accuracy and the alignments
    ``records_per_epoch`` times an epoch.
    """
    per_epoch = steps_per_epoch(len(data.y_train), BATCH)
    histories = {}
    for rule in RULES:
        weights = init_weights(WIDTHS, seeds, device=device)
        feedback = init_feedback(WIDTHS, seeds, rule=rule, device=device)
        histories[rule] = train(
            weights, data.x_train, data.y_train, rule=rule, activation=activation, loss="ce", feedback=feedback,
            lr=LR, steps=config["epochs"] * per_epoch, batch_size=BATCH,
            record_every=per_epoch // config["records_per_epoch"], test=(data.x_test, data.y_test),
            shuffle_seed=seed, desc=f"primer {rule}",
        )
    return histories


def divergence_note(histories: Mapping[str, History]) -> str:
    """A Markdown line per rule with diverged seeds (excluded from every statistic); empty when none diverged."""
    return "\n\n".join(f"{RULE_LABELS[rule]}: {int(h.diverged.sum())} of {h.diverged.size} seeds diverged and are "
                       "excluded from every statistic." for rule, h in histories.items() if h.diverged.any())
