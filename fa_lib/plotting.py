"""One figure and table style for the whole book, and the seed-band plot every chapter uses."""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.text
import numpy as np
import seaborn as sns
from matplotlib.font_manager import FontProperties

RULE_COLORS = {"bp": "#0173b2", "fa": "#de8f05", "dfa": "#029e73"}
RULE_LABELS = {"bp": "BP", "fa": "FA", "dfa": "DFA"}
PAGE_PIXELS = 730  # width of the book's text column at 1400 px (and less on narrower screens)
SAVE_DPI = 120  # figures are saved at this resolution
MIN_TEXT_PT = 9  # least text size a reader sees at the column's width (pt at 96 px per inch)


def set_style() -> None:
    """Seaborn's whitegrid theme with the colour-blind palette, sized for the book."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": SAVE_DPI, "figure.figsize": (6.4, 4.0), "axes.titlesize": "medium"})


def fit_to_page(fig) -> None:
    """Enlarge every text of ``fig`` (ticks, labels, legends, titles) that would read smaller than
    ``MIN_TEXT_PT`` once the figure, saved at ``SAVE_DPI``, is scaled to the book's column
    (``PAGE_PIXELS``); wider figures are scaled down more, so they need larger text. Lays the
    figure out again (constrained layout) so that the larger text does not overlap."""
    scale = min(1.0, PAGE_PIXELS / (fig.get_figwidth() * SAVE_DPI))
    least = MIN_TEXT_PT * (96 / 72) * 72 / (SAVE_DPI * scale)  # pt in the figure that render as MIN_TEXT_PT
    for text in fig.findobj(matplotlib.text.Text):
        if text.get_text() and text.get_fontsize() < least:
            text.set_fontsize(least)
    for ax in fig.axes:  # ticks made at draw time take the axes' tick size, not the size of the texts above
        for axis in ("x", "y"):
            size = FontProperties(size=plt.rcParams[f"{axis}tick.labelsize"]).get_size_in_points()
            if size < least:
                ax.tick_params(axis=axis, which="both", labelsize=least)
    if fig.get_layout_engine() is None:
        fig.set_layout_engine("constrained")


def table_style(frame, formats=None, *, precision: int = 3, significant: int | None = None, index: bool = False):
    """A pandas DataFrame as every table of the book shows it (a ``Styler``, for ``display``): column names
    with spaces for underscores, booleans as yes/no, floats to ``precision`` decimals (or ``significant``
    digits) unless ``formats`` (column -> format string) says otherwise, and no index unless ``index``."""
    columns = {c: frame[c].dtype for c in frame.columns}
    bools = {c: (lambda v: "yes" if v else "no") for c, dtype in columns.items() if dtype == bool}
    digits = {} if significant is None else {c: f"{{:.{significant}g}}" for c, dtype in columns.items() if dtype.kind == "f"}
    style = frame.style.format(precision=precision).format({**bools, **digits, **(formats or {})})
    style = style.format_index(lambda c: str(c).replace("_", " "), axis="columns")
    return style if index else style.hide(axis="index")


def width_label(p: int) -> str:
    """A short tick label for a width: ``800``, ``1.6k``, ``12.8k`` (log-width ticks that do not collide)."""
    return str(p) if p < 1000 else f"{p / 1000:g}k"


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
