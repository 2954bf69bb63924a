"""The primer's figures: test accuracy and the alignments against epoch, mean over seeds with a band."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt

from ...plotting import RULE_COLORS, RULE_LABELS, seed_band
from ...training import History, steps_per_epoch
from .profiles import BATCH


def _epochs(h: History, n_train: int) -> Any:
    return h.steps / steps_per_epoch(n_train, BATCH)


def accuracy_figure(histories: Mapping[str, History], n_train: int, dataset_name: str):
    """Test accuracy against epoch, mean over seeds with a band of one standard deviation."""
    fig, ax = plt.subplots()
    for rule, h in histories.items():
        seed_band(ax, _epochs(h, n_train), 100 * h.metrics["test_accuracy"], h.diverged,
                  label=RULE_LABELS[rule], color=RULE_COLORS[rule])
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=f"{dataset_name}: test accuracy")
    ax.set_ylim(bottom=max(0, ax.get_ylim()[0]))
    ax.legend()
    return fig


def gradient_alignment_figure(histories: Mapping[str, History], n_train: int):
    """Hidden layers' gradient alignment cos(G^rule, G^BP) of FA and DFA against epoch, one panel a layer."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for layer, ax in enumerate(axes):
        for rule in ("fa", "dfa"):
            h = histories[rule]
            seed_band(ax, _epochs(h, n_train), h.metrics["grad_alignment"][:, :, layer], h.diverged,
                      label=RULE_LABELS[rule], color=RULE_COLORS[rule])
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set(xlabel="epoch", title=f"hidden layer {layer + 1}")
    axes[0].set_ylabel(r"gradient alignment $\cos(G^{rule}, G^{BP})$")
    axes[0].legend()
    return fig


def weight_alignment_figure(fa: History, n_train: int):
    """FA's weight alignment cos(W_l, B_l) of layer 2 and of the output layer against epoch."""
    fig, ax = plt.subplots()
    for k, name in enumerate(["hidden layer 2 ($W_2$, $B_2$)", "output layer ($W_3$, $B_3$)"]):
        seed_band(ax, _epochs(fa, n_train), fa.metrics["weight_alignment"][:, :, k], fa.diverged, label=name)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set(xlabel="epoch", ylabel=r"weight alignment $\cos(W_l, B_l)$", title="FA: weight alignment")
    ax.legend()
    return fig
