"""The chapter's figures and tables."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ...plotting import seed_band, table_style, width_label
from ...theory.song import LAMBDAS, LEARNING_RATES, REAL_LAMBDAS, steps_for_width
from .claims import REAL_ALIGNED_FACTOR, tolerance_against_authors
from .experiments import AlignmentCell
from .profiles import KERNEL_CHECK_DRAWS
from ...theory.song_tables import PUBLISHED_ALIGNMENT
from .real_data import RealDataRun, dataset_name, mean_alignment

# Shown in the rate table (:func:`rate_rows` keys).
RATE_COLUMNS = ("activation", "p", "rule", "trials", "diverged", "measured_slope", "predicted_slope_g", "ratio_g",
                "predicted_slope", "ratio", "lambda_min_g", "lambda_min_gh", "indefinite", "h_over_lambda_min_g",
                "predicted_slope_final", "r2_min")


def plot_kernel_check(rows: Sequence[dict]):
    """Log-log figure of :func:`kernel_check`'s rows against the width, with a ``p^(-1/2)`` guide."""
    import matplotlib.pyplot as plt

    p = np.array([r["p"] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    ax.loglog(p, [r["G(0) vs arc-cosine"] for r in rows], "o-", label=r"$\|G(0) - G^\infty\|_F / \|G^\infty\|_F$")
    ax.loglog(p, [r["H(0) (FA)"] for r in rows], "s-", label=r"$\|H(0)\|_F / \|G^\infty\|_F$ (FA)")
    ax.loglog(p, rows[0]["H(0) (FA)"] * np.sqrt(p[0] / p), "k:", label=r"$\propto p^{-1/2}$")
    ax.set(xlabel="width $p$", ylabel="relative Frobenius norm",
           title=f"ReLU kernels at initialisation (mean of {KERNEL_CHECK_DRAWS} draws)")
    ax.legend()
    return fig


def protocol_rows(activations: Sequence[str]) -> list[dict]:
    """One row per activation: the authors' lr and lambda grid (MSELoss) and fa_lib's eta = 2 lr and l2 = lambda/2."""
    return [{"activation": a, "lr (MSELoss)": LEARNING_RATES[a], "fa_lib eta = 2 lr": 2 * LEARNING_RATES[a],
             "lambda grid (MSELoss)": ", ".join(f"{v:g}" for v in LAMBDAS[a]),
             "fa_lib l2 = lambda/2": ", ".join(f"{v / 2:g}" for v in LAMBDAS[a])} for a in activations]


def width_rows(widths: Sequence[int], trials: int) -> list[dict]:
    """One row per width: ``T_min`` (:func:`steps_for_width`) and the trials per cell."""
    return [{"width p": p, "T_min": steps_for_width(p), "trials per cell": trials} for p in widths]


def plot_steps(cells: Sequence[AlignmentCell], activations: Sequence[str]):
    """Every alignment trial's steps / ``T_min`` per lambda (x) and width (grey level), one panel per activation."""
    import matplotlib.pyplot as plt

    widths = sorted({c.p for c in cells})
    fig, axes = plt.subplots(1, len(activations), figsize=(3.6 * len(activations), 3.4), sharey=True, squeeze=False)
    for ax, activation in zip(axes[0], activations):
        for k, lam in enumerate(LAMBDAS[activation]):
            for j, cell in enumerate(c for c in cells if c.activation == activation):
                ratio = cell.steps[cell.select(lam)] / cell.min_steps
                shade = 0.65 - 0.55 * j / max(1, len(widths) - 1)  # greys, light to dark with p: the colours C0, C1, ... mean lambda
                ax.plot(np.full(ratio.size, k + 0.25 * (j - (len(widths) - 1) / 2)), ratio, "o", ms=3, alpha=0.7,
                        color=str(shade), label=f"p={cell.p}" if k == 0 else None)
        ax.set_xticks(range(len(LAMBDAS[activation])), [f"{v:g}" for v in LAMBDAS[activation]])
        ax.set(xlabel="λ", title=activation)
    axes[0][0].set_ylabel("steps / T_min")
    axes[0][0].legend(fontsize="small")
    return fig


def steps_rows(table: Sequence[dict]) -> list[dict]:
    """The step counts of :func:`alignment_rows`' rows, for display."""
    return [{"activation": r["activation"], "λ": f"{r['lam']:g}", "p": r["p"], "T_min": r["min_steps"],
             "steps (mean)": round(r["steps_mean"]), "steps (min-max)": f"{r['steps_min']}-{r['steps_max']}"} for r in table]


def plot_alignment(table: Sequence[dict], activations: Sequence[str], *, all_published: bool = False):
    """Final ``cos(beta, b)`` against the width (ours: mean +/- sd band; the authors': open markers), one panel per
    activation. The authors' cells are shown within the widths run, or all of them with ``all_published``."""
    import matplotlib.pyplot as plt

    widths = sorted({r["p"] for r in table})
    fig, axes = plt.subplots(1, len(activations), figsize=(3.9 * len(activations), 3.8), sharey=True, squeeze=False)
    for ax, activation in zip(axes[0], activations):
        for k, lam in enumerate(LAMBDAS[activation]):
            rows = [r for r in table if r["activation"] == activation and r["lam"] == lam]
            p, mean, sd = (np.array([r[key] for r in rows], dtype=float) for key in ("p", "mean", "sd"))
            ax.plot(p, mean, "-s", ms=4, color=f"C{k}", label=f"λ={lam:g}")
            ax.fill_between(p, mean - sd, mean + sd, color=f"C{k}", alpha=0.15, linewidth=0)
            published = PUBLISHED_ALIGNMENT.get((activation, lam), {})
            shown = list(published) if all_published else [q for q in published if min(widths) <= q <= max(widths)]
            if shown:
                ax.errorbar(shown, [published[q][0] for q in shown], yerr=[published[q][1] for q in shown], fmt="o",
                            mfc="none", color=f"C{k}", capsize=3, ms=6)
        ax.set_xscale("log")
        ax.set_xticks(widths, [width_label(p) for p in widths])
        ax.minorticks_off()
        ax.set(xlabel="width p", title=f"{activation}, lr={LEARNING_RATES[activation]:g}")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=2)
    axes[0][0].set_ylabel(r"final $\cos(\beta, b)$")
    fig.suptitle("filled squares and bands: ours (mean ± sd over trials); open circles: the authors' published mean ± sd")
    return fig


def alignment_display_rows(table: Sequence[dict]) -> list[dict]:
    """:func:`alignment_rows`' rows for display: ours and the authors' mean +/- sd, the difference, ours stopped
    at ``T_min`` and the bound of :func:`tolerance_against_authors` (a dash where the authors published none)."""
    return [{"activation": r["activation"], "λ": f"{r['lam']:g}", "p": r["p"], "trials": r["trials"],
             "ours": f"{r['mean']:.3f} ± {r['sd']:.3f}",
             "authors": "—" if r["authors_mean"] is None else f"{r['authors_mean']:.3f} ± {r['authors_sd']:.3f}",
             "ours − authors": "—" if r["difference"] is None else f"{r['difference']:+.3f}",
             "ours, stopped at T_min": f"{r['mean_at_min']:.3f}",
             "bound": "—" if r["authors_mean"] is None else f"{tolerance_against_authors(r):.3f}"} for r in table]


AGREEMENT_COLORS = ((0.5, "#d4edda"), (1.0, "#fff3cd"), (math.inf, "#f8d7da"))
"""Background of the "ours − authors" cell by ``|ours − authors| / bound``: within half the bound, within it, beyond it."""


def alignment_comparison_table(table: Sequence[dict]):
    """:func:`alignment_display_rows` as a pandas Styler without index, each "ours − authors" cell coloured by
    ``|ours − authors| / bound`` (:data:`AGREEMENT_COLORS`; no colour where the authors published no value)."""
    import pandas as pd

    def color(row: dict) -> str:
        if row["authors_mean"] is None:
            return ""
        ratio = abs(row["difference"]) / tolerance_against_authors(row)
        return "background-color: " + next(c for bound, c in AGREEMENT_COLORS if ratio < bound)

    frame = pd.DataFrame(alignment_display_rows(table))
    colors = [color(r) for r in table]
    return table_style(frame).apply(lambda _: colors, subset=["ours − authors"], axis=0)


def plot_loss_curves(curve_cells: dict, activations: Sequence[str]):
    """log10 MSE against the step (mean +/- sd over trials): FA per lambda and BP at lambda = 0, one panel per activation."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(activations), figsize=(3.9 * len(activations), 3.6), sharex=True, squeeze=False)
    for ax, activation in zip(axes[0], activations):
        cell, bp = curve_cells[activation, "fa"], curve_cells[activation, "bp"]
        steps_axis = np.arange(cell.steps + 1)
        for k, lam in enumerate(cell.lams):
            mask = cell.select(lam)
            seed_band(ax, steps_axis, np.log10(cell.mse[:, mask]), cell.diverged[mask], label=f"FA, λ={lam:g}", color=f"C{k}")
        seed_band(ax, steps_axis, np.log10(bp.mse), bp.diverged, label="BP, λ=0", color="k")
        ax.set(xlabel="step", title=f"{activation}, p={cell.p}, lr={cell.lr:g}")
        ax.legend(fontsize="small")
    axes[0][0].set_ylabel(r"$\log_{10}$ MSE (mean ± sd)")
    return fig


def real_data_note(real: RealDataRun, config: dict) -> str:
    """One Markdown line saying what the real-data experiment ran and how many of its networks diverged."""
    runs, epochs = config["real"]["runs"], config["real"]["epochs"]
    diverged = int(real.history.diverged.sum())
    return (f"{dataset_name(real)}: {real.n_train} training and {real.n_test} test images, {epochs} "
            f"epoch{'s' * (epochs != 1)}, {runs} run{'s' * (runs != 1)}; "
            f"{'no network' if diverged == 0 else f'{diverged} networks'} diverged.")


def plot_real_data(real: RealDataRun):
    """Error-signal alignment and test accuracy against the epoch, one band per lambda; the alignment panel draws
    ``REAL_ALIGNED_FACTOR`` times lambda = 0's mean dashed (S5b's threshold)."""
    import matplotlib.pyplot as plt

    history, name = real.history, dataset_name(real)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for k, lam in enumerate(REAL_LAMBDAS):
        mask = np.isclose(real.lam, lam)
        seed_band(axes[0], real.epochs, history.metrics["error_alignment"][:, mask], history.diverged[mask],
                  label=f"λ={lam:g}", color=f"C{k}")
        seed_band(axes[1], real.epochs, 100 * history.metrics["test_accuracy"][:, mask], history.diverged[mask],
                  label=f"λ={lam:g}", color=f"C{k}")
    axes[0].plot(real.epochs, REAL_ALIGNED_FACTOR * mean_alignment(real)[0.0], color="C0", linestyle="--", label=f"{REAL_ALIGNED_FACTOR:g} × λ=0 (S5b)")
    axes[0].set(xlabel="epoch", ylabel=r"mean $\cos(e_i^\top B, e_i^\top \beta)$", title=f"{name}: error-signal alignment")
    axes[1].set(xlabel="epoch", ylabel="test accuracy (%)", title=f"{name}: test accuracy")
    for ax in axes:
        ax.legend()
    return fig
