"""One figure style for the whole book, and the seed-band plot every chapter uses."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

RULE_COLORS = {"bp": "#0173b2", "fa": "#de8f05", "dfa": "#029e73"}
RULE_LABELS = {"bp": "BP", "fa": "FA", "dfa": "DFA"}


def set_style() -> None:
    """Seaborn's whitegrid theme with the colour-blind palette, sized for the book."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 120, "figure.figsize": (6.4, 4.0), "axes.titlesize": "medium"})


def seed_band(ax, x, values, diverged=None, *, label: str, color=None, alpha: float = 0.2):
    """Plot the mean over seeds with a +/- 1 sd band.

    ``values``: ``(R, S)`` for ``R`` points of ``x``; seeds marked in ``diverged`` (``(S,)``
    bool) are left out and counted in the legend label, never averaged.
    """
    values = np.asarray(values, dtype=float)
    keep = np.ones(values.shape[1], bool) if diverged is None else ~np.asarray(diverged, bool)
    n_out = int((~keep).sum())
    if n_out:
        label = f"{label} ({n_out} diverged, excluded)"
    if not keep.any():
        ax.plot([], [], color=color, label=label)
        return
    kept = values[:, keep]
    mean = kept.mean(axis=1)
    sd = kept.std(axis=1, ddof=1) if kept.shape[1] > 1 else np.zeros_like(mean)
    (line,) = ax.plot(x, mean, label=label, color=color)
    ax.fill_between(x, mean - sd, mean + sd, color=line.get_color(), alpha=alpha, linewidth=0)
