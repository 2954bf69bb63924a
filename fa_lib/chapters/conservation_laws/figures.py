"""The tables of chapter "Conservation laws" (its figures are drawn in the notebook's cells, from the runs of
:mod:`.experiments`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ...plotting import table_style


def law_table(rows: Sequence[Mapping[str, Any]]):
    """The rows of :func:`one_step_law_rows` as a formatted table (a pandas ``Styler``, for ``display``)."""
    formats = {"lr": "{:.4f}"} | {k: "{:.1e}" for k in ("max_relative_residual", "max_residual_over_change",
                                                       "min_change_over_terms", "max_change_over_terms")}
    return table_style(pd.DataFrame(rows), formats)


def alignment_table(by_block: Sequence[Mapping[str, Any]]):
    """The worst seed's final alignment per rule, block and layer (second output of :func:`alignment_rows`), formatted."""
    pivot = pd.DataFrame(list(by_block)).pivot_table(index=["rule", "init"], columns="layer", values="min", sort=False)
    return table_style(pivot, index=True).set_caption("worst seed's final weight alignment")
