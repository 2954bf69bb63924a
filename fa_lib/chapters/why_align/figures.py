"""The why-align chapter's figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ...plotting import RULE_COLORS, seed_band
from ...theory.fixed_points import toy_eigenvalue, toy_fixed_w2
from ...training import History
from .experiments import _joined
from .profiles import EARLY_PROBE, GROUP_COLORS, GROUPS, NEAR_ZERO, STEP


def alignment_growth_figure(cases: Sequence[Mapping[str, Any]]):
    """C2c's scatter: per case the alignment against the log-loss change, with the linear theory's curve."""
    import matplotlib.pyplot as plt

    align = _joined(cases, "alignment")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for c, marker in zip(cases, "os^Dv<>p*"):
        ax.scatter(c["alignment"], c["growth"], s=10, alpha=0.6, marker=marker, label=c["network"])
    curve = np.linspace(align.min(), align.max(), 200)
    ax.plot(curve, 100 * np.log(np.abs(1 - STEP * curve)), color="k", lw=1, ls="--", label=r"linear theory $100\ln(1-0.1\cos\theta)$")
    ax.axvline(0, color="0.3", lw=0.8)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set(xlabel=r"alignment $\cos(\tilde g, g)$ (whole network)", ylabel=r"$\ln L_{100} - \ln L_{50}$ after a perturbation",
           title="Perturbations decay exactly when the update is aligned")
    ax.legend(fontsize=7, ncol=2, markerscale=1.5)
    return fig


def toy_phase_plane_figure(toy: Mapping[str, Any]):
    """C2d's phase plane: the stable and unstable branches of the hyperbola, the trajectories from the starts
    next to the unstable branch and from the first six random starts, and the predicted landing points."""
    import matplotlib.pyplot as plt

    history, n_toy = toy["history"], toy["n_toy"]
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    grid = np.linspace(-3, 3, 2001)
    for branch in (grid[grid > 0.05], grid[grid < -0.05]):
        w2b = toy_fixed_w2(torch.as_tensor(branch), 1.0, 1.0).numpy()
        stable = toy_eigenvalue(torch.as_tensor(branch), torch.as_tensor(w2b), 1.0, 1.0).numpy() > 0  # b w2 + w1^2 > 0
        ax.plot(np.where(stable, branch, np.nan), np.where(stable, w2b, np.nan), color="tab:green", lw=2.5)
        ax.plot(np.where(~stable, branch, np.nan), np.where(~stable, w2b, np.nan), color="tab:red", lw=2.5)
    ax.plot([], [], color="tab:green", lw=2.5, label=r"stable fixed points ($b w_2 + w_1^2 > 0$)")
    ax.plot([], [], color="tab:red", lw=2.5, label="unstable fixed points")
    shown = list(range(n_toy, len(toy["w1"]))) + list(range(6))
    for i in shown:
        ax.plot(history.metrics["w1"][:, i], history.metrics["w2"][:, i], color="0.35", lw=0.9)
        ax.plot(toy["w1"][i].item(), toy["w2"][i].item(), "o", color="0.35", ms=3)
    ax.plot(toy["land_w1"][shown].numpy(), toy["land_w2"][shown].numpy(), "x", color="k", ms=8, mew=2, label="landing point predicted by $C$")
    ax.plot([], [], color="0.35", lw=0.9, label="FA trajectories")
    ax.set(xlim=(-3, 3), ylim=(-4, 4), xlabel="$w_1$", ylabel="$w_2$", title=r"$f = w_2 w_1 x$, $b = x = y = 1$")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def sweep_figure(table: pd.DataFrame, dataset_name: str):
    """C3b's figure: final accuracy against final gradient and weight alignment along the sweep (mean +- sd)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True, layout="constrained")
    for ax, key, label in ((axes[0], "alignment", r"hidden-layer gradient alignment $\cos(G_1^{FA}, G_1^{BP})$"),
                           (axes[1], "weight_alignment", r"weight alignment $\cos(W_2, B_2)$")):
        ax.errorbar(table[key], table["accuracy"], xerr=table[f"{key}_sd"], yerr=table["accuracy_sd"],
                    fmt="o-", color="C0", capsize=3, label=r"weight decay sweep (labels: $\lambda_2$)")
        for _, r in table.iterrows():
            ax.annotate(f"{r['l2']:g}", (r[key], r["accuracy"]), textcoords="offset points", xytext=(5, 4), fontsize=8, color="C0")
        ax.set(xlabel=label)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"FA on {dataset_name}: final alignment against final accuracy (mean ± sd over seeds)")
    return fig


def early_descent_figure(runs: Mapping[str, History], summary: Mapping[str, np.ndarray]):
    """C4's figure: the early training loss of every variant and FA's hidden-layer alignment, with the mean window."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    steps = runs["fa"].steps
    seed_band(axes[0], steps, runs["bp"].metrics["loss"], runs["bp"].diverged, label="BP", color=RULE_COLORS["bp"])
    for group in GROUPS:
        seed_band(axes[0], steps, runs[group].metrics["loss"], runs[group].diverged, label=GROUPS[group], color=GROUP_COLORS[group])
    for group in ("fa", "rank1"):
        seed_band(axes[1], steps, runs[group].metrics["grad_alignment"][..., 0], runs[group].diverged, label=GROUPS[group],
                  color=GROUP_COLORS[group])
    for ax in axes:
        ax.axvspan(0, summary["window_steps"].mean(), color="0.85", zorder=0, label="FA alignment < 0.1 (mean window)")
    axes[1].axhline(NEAR_ZERO, color="0.3", lw=0.8, ls="--")
    axes[1].axhline(0, color="0.5", lw=0.8)
    axes[0].set(xlabel="step", ylabel=f"training loss (cross-entropy, {EARLY_PROBE} images)", title="early loss")
    axes[1].set(xlabel="step", ylabel=r"hidden-layer gradient alignment", title="early alignment")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    return fig


def learning_figure(runs: Mapping[str, History], *, steps_per_epoch: int, dataset_name: str):
    """C5's figure: test accuracy of every variant and BP, and the hidden-layer alignment of FA and rank-1 FA, by epoch."""
    import matplotlib.pyplot as plt

    epochs_axis = runs["bp"].steps / steps_per_epoch
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    seed_band(axes[0], epochs_axis, 100 * runs["bp"].metrics["test_accuracy"], runs["bp"].diverged, label="BP", color=RULE_COLORS["bp"])
    for group in GROUPS:
        h = runs[group]
        seed_band(axes[0], epochs_axis, 100 * h.metrics["test_accuracy"], h.diverged, label=GROUPS[group], color=GROUP_COLORS[group])
        if group != "frozen":
            seed_band(axes[1], epochs_axis, h.metrics["grad_alignment"][..., 0], h.diverged, label=GROUPS[group], color=GROUP_COLORS[group])
    axes[1].axhline(0, color="0.5", lw=0.8)
    axes[0].set(xlabel="epoch", ylabel="test accuracy (%)", title=f"{dataset_name}: test accuracy")
    axes[1].set(xlabel="epoch", ylabel="hidden-layer gradient alignment", title="alignment")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    return fig
