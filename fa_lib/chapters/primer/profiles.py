"""The primer's profiles, network, step size and papermill parameters."""

from __future__ import annotations

from typing import Any

from ...data import DATASETS
from ...networks import ACTIVATIONS
from ...validation import check_choice

PROFILES = {
    "ci":      dict(n_train=6000,  n_test=2000,  epochs=4,  n_seeds=5,  records_per_epoch=2),
    "default": dict(n_train=60000, n_test=10000, epochs=6,  n_seeds=5,  records_per_epoch=3),
    "paper":   dict(n_train=60000, n_test=10000, epochs=50, n_seeds=10, records_per_epoch=2),
}
WIDTHS = [784, 128, 128, 10]
LR, BATCH = 0.05, 50  # plain SGD on the mean cross-entropy (no momentum, no weight decay)


def chapter_parameters(dataset: str, activation: str) -> dict[str, Any]:
    """Check the chapter's own papermill parameters and return what its results record besides the profile.

    Raises ``ValueError`` naming ``dataset`` (``"auto"`` or one of ``DATASETS``) or ``activation``
    (one of ``ACTIVATIONS``) and the allowed values.
    """
    check_choice("dataset", dataset, ("auto", *DATASETS))
    check_choice("activation", activation, ACTIVATIONS)
    return dict(dataset=dataset, activation=activation, widths=WIDTHS, lr=LR, batch_size=BATCH)
