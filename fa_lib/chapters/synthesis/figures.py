"""The synthesis chapter's figures and tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...plotting import table_style, width_label
from .experiments import Run, _mean, _select, widths_run
from .profiles import FAMILIES, SETTINGS

SETTING_COLORS = {"none": "C0", "readout": "C1", "all": "C2"}
FAMILY_MARKERS = {"two-layer": ("o", "-"), "three-layer": ("s", "--")}


def alignment_figure(rows: Sequence[Mapping[str, Any]]):
    """Final ``cos(beta, b)`` against the width per setting on Song's task: runs as markers (mean +/- sd; circles
    two-layer, squares three-layer), the law's prediction from the layer below as a line."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for family, (marker, line) in FAMILY_MARKERS.items():
        widths = widths_run(rows, family)
        for setting, label in SETTINGS.items():
            measured = [[r["alignment"] for r in _select(rows, family=family, p=p, setting=setting)] for p in widths]
            predicted = [_mean(rows, "predicted", family=family, p=p, setting=setting) for p in widths]
            ax.errorbar(widths, [np.mean(v) for v in measured], yerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for v in measured],
                        fmt=marker, ms=7, mfc="none", capsize=3, color=SETTING_COLORS[setting],
                        label=f"{label}, {family}" if family == "two-layer" or len(widths) == 1 else None)
            ax.plot(widths, predicted, line, marker=".", color=SETTING_COLORS[setting])
    ticks = sorted({r["p"] for r in rows if r["family"] in FAMILY_MARKERS})
    ax.set_xscale("log")
    ax.set_xticks(ticks, [width_label(p) for p in ticks])
    ax.minorticks_off()
    ax.set(xlabel="width p", ylabel=r"final $\cos(\beta, b)$", ylim=(0, 1),
           title="markers: runs (○ two-layer, □ three-layer); lines: the law's prediction")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize="small")
    return fig


def width_figure(rows: Sequence[Mapping[str, Any]], fits: Mapping[float, Mapping[str, Any]]):
    """The width law, log-log: mean final ``cos(beta, b)`` per width and lambda (markers, +/- one standard error over the
    seeds), the fitted line with its slope, the law's ``(mean Delta||W||^2 / 2) / mean ||beta|| ||b||`` without L2 (dashed)
    and the authors' published means (open squares)."""
    import matplotlib.pyplot as plt

    from ...theory.song_tables import published_alignment
    from .profiles import ACTIVATION

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for k, (lam, fit) in enumerate(fits.items()):
        widths = np.array(fit["widths"], dtype=float)
        values = [np.array([r["alignment"] for r in rows if r["lam"] == lam and r["p"] == p and not r["diverged"]]) for p in widths]
        means = np.array([v.mean() for v in values])
        ax.errorbar(widths, means, yerr=[v.std(ddof=1) / np.sqrt(len(v)) for v in values], fmt="o", color=f"C{k}", capsize=3,
                    label=f"λ={lam:g}: slope {fit['alignment']:.2f} [{fit['alignment_interval'][0]:.2f}, {fit['alignment_interval'][1]:.2f}]")
        line = np.exp(np.polyval(np.polyfit(np.log(widths), np.log(means), 1), np.log(widths)))
        ax.plot(widths, line, "-", color=f"C{k}")
        if lam == 0:
            law = [np.mean([r["w2_change"] for r in rows if r["lam"] == lam and r["p"] == p and not r["diverged"]]) / 2
                   / np.mean([r["norms"] for r in rows if r["lam"] == lam and r["p"] == p and not r["diverged"]]) for p in widths]
            ax.plot(widths, law, "--", color=f"C{k}", label=f"λ=0, law: slope {fit['law']:.2f}")
        published = [(p, published_alignment(ACTIVATION, lam, int(p))) for p in widths]
        published = [(p, v[0]) for p, v in published if v is not None]
        if published:
            ax.plot(*zip(*published), "s", mfc="none", color=f"C{k}", label=f"λ={lam:g}: authors' table")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = sorted({r["p"] for r in rows})
    ax.set_xticks(ticks, [width_label(p) for p in ticks])
    ax.minorticks_off()
    ax.set(xlabel="width p", ylabel=r"mean final $\cos(\beta, b)$", title="alignment against width (untracked runs, the authors' stop rule)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize="small")
    return fig


def drift_figure(runs: Mapping[tuple[str, int], Run]):
    """Mean over the last hidden layer's neurons (the layer below the readout, where the readout's L2 enters the law) of
    ``|c_j(t) - c_j(0)|`` against the step, per setting (mean over seeds): one panel per family, Song's tasks at their
    largest width."""
    import matplotlib.pyplot as plt

    chosen = [max((run for run in runs.values() if run.family == family), key=lambda run: run.p) for family in FAMILIES]
    fig, axes = plt.subplots(1, len(chosen), figsize=(9.6, 3.6))
    for ax, run in zip(axes, chosen):
        steps = run.history.steps
        keep = steps > 0
        for setting, label in SETTINGS.items():
            drift = np.nanmean(run.history.metrics["c_drift"][:, run.setting(setting), -1], axis=1)
            ax.loglog(steps[keep], drift[keep], color=SETTING_COLORS[setting], label=label)
        ax.set(xlabel="step", title=f"{run.family}, p = {run.p}")
    axes[0].set_ylabel(r"mean $|c_j(t) - c_j(0)|$")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3)
    fig.suptitle("drift of the last hidden layer's c_j (the layer below the readout)")
    return fig


def stability_figure(rows: Sequence[Mapping[str, Any]]):
    """Stability margin (least real part of the reduced matrix's eigenvalues) against the Jacobian alignment, runs of
    Song's task without L2; widths in greys, circles two-layer, squares three-layer."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    widths = sorted({r["p"] for r in rows if "margin" in r})
    for family, (marker, _) in FAMILY_MARKERS.items():
        for p in widths_run(rows, family):
            mine = [r for r in _select(rows, family=family, p=p, setting="none") if "margin" in r]
            shade = 0.65 - 0.55 * widths.index(p) / max(1, len(widths) - 1)
            ax.plot([r["jacobian_alignment"] for r in mine], [r["margin"] for r in mine], marker, ls="none", color=str(shade),
                    mfc="none" if family == "three-layer" else str(shade), label=f"{family}, p={p}")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set(xlabel=r"Jacobian alignment $\cos(G, \tilde G)$", ylabel=r"margin $\min \mathrm{Re}\,\lambda(M)$")
    ax.legend(fontsize="small")
    return fig


def runs_table(rows: Sequence[Mapping[str, Any]]):
    """Per family, width and setting: the final loss (MSE, or test accuracy for real data), readout alignment and the
    law's prediction, the layer below's alignment, and (Song's task without L2) margin and Jacobian alignment."""
    import pandas as pd

    table = []
    for family in FAMILIES:
        for p in widths_run(rows, family):
            for setting, label in SETTINGS.items():
                where = dict(family=family, p=p, setting=setting)
                table.append({"network": family, "p": p, "setting": label,
                              "final MSE": _mean(rows, "mse", **where), "test accuracy (%)": 100 * _mean(rows, "test_accuracy", **where),
                              "cos(β, b)": _mean(rows, "alignment", **where), "law's prediction": _mean(rows, "predicted", **where),
                              "cos(W₂, B₂)": _mean(rows, "hidden_alignment", **where),
                              "margin": _mean(rows, "margin", **where), "Jacobian alignment": _mean(rows, "jacobian_alignment", **where)})
    formats = {"final MSE": "{:.2e}", "test accuracy (%)": "{:.1f}", "margin": "{:.3f}"}
    frame = pd.DataFrame(table)
    formats = {c: _or_dash(formats.get(c, "{:.4f}")) for c in frame.columns if frame[c].dtype.kind == "f"}
    return table_style(frame, formats)


def _or_dash(spec: str):
    """A cell formatter: ``spec`` for a number, a dash where the quantity does not apply (NaN)."""
    def formatter(value: float) -> str:
        return "—" if np.isnan(value) else spec.format(value)

    return formatter


def theory_table(results) -> str:
    """The closing Markdown table: what each theory predicts on these runs, the claims that test it and their verdicts,
    and what the theory misses on these runs."""
    verdict = {c["id"]: c["verdict"] for c in results.claims}

    def row(theory: str, predicts: str, ids: Sequence[str], missed: str) -> str:
        return f"| {theory} | {predicts} | " + ", ".join(f"{i}: {verdict.get(i, 'not run')}" for i in ids) + f" | {missed} |"

    return "\n".join([
        "| theory | predicts on these runs | claims | what it misses |", "| --- | --- | --- | --- |",
        row("Robertson & Koyejo", "c_kj conserved up to lr² terms; each layer's alignment from the layer below's norm; "
            "L2 breaks the law at first order (derived here)", ("Y1", "Y2", "Y5"),
            "how much W_k grows: the law turns growth into alignment but does not predict the growth"),
        row("Robertson & Koyejo, with L2 on every layer (derived here)", "at rest every neuron's b_j β_j = ‖w_j‖² > 0, so "
            "cos(β, b) = ‖W‖²/(‖β‖ ‖b‖) from the final norms alone", ("Y8a", "Y8b"),
            "where the rest lies: the relation fixes the alignment given the norms, not the norms"),
        row("Song, Xu & Lafferty", "no readout alignment without L2 as p grows; L2 aligns", ("Y3a", "Y3b", "Y4"),
            "the mechanism: alignment is half the growth of the layer below over ‖β‖ ‖b‖; the hidden layers of deeper networks"),
        row("Chu & Bacho", "the point FA reaches is stable, with the update aligned; stability set by the reduced matrix",
            ("Y6", "Y7a", "Y7b"), "points with residual error (every run with L2, the real-data runs), where the criterion does not apply"),
    ])
