"""Chapter "Two-layer convergence" (``notebooks/03_two_layer_convergence.ipynb``; book page ``generated/03_two_layer_convergence``).

Song, Xu & Lafferty (NeurIPS 2021): two-layer networks trained with random backpropagation weights.
The paper's mathematics and protocol constants are :mod:`fa_lib.theory.song`; the two-layer training
engine (the authors' step, fixed-length runs, per-network stopping) is :mod:`fa_lib.training.two_layer`.
Every ``lr`` and ``lam`` of this chapter is in the authors' MSELoss convention, and every loss it reports
is their MSE.

* :mod:`.profiles`: the run sizes per profile, the chapter's constants, the check of its parameters;
* the authors' published alignment tables are :mod:`fa_lib.theory.song_tables`;
* :mod:`.experiments`: the alignment and loss-curve cells, their summary rows, the kernel check, the
  sweep's jobs, bookkeeping and costs;
* :mod:`.real_data`: the real-data experiment;
* :mod:`.claims`: the claims with their tolerances and the numbers the prose quotes;
* :mod:`.figures`: the figures and tables.

This package re-exports the names the notebook calls.
"""

from .claims import (
    alignment_claims,
    alignment_numbers,
    convergence_claims,
    convergence_numbers,
    linear_step_numbers,
    plateau_claims,
    plateau_numbers,
    real_data_claims,
    real_data_numbers,
    real_data_records,
    record,
)
from .experiments import (
    alignment_rows,
    cost_records,
    kernel_check,
    plan_runs,
    plateau_rows,
    rate_rows,
    run_numbers,
    split_outcomes,
    sweep_records,
)
from .figures import (
    RATE_COLUMNS,
    alignment_comparison_table,
    plot_alignment,
    plot_kernel_check,
    plot_loss_curves,
    plot_real_data,
    plot_steps,
    protocol_rows,
    real_data_note,
    steps_rows,
    width_rows,
)
from .profiles import PROFILES, check_chapter_parameters

__all__ = [
    "PROFILES", "RATE_COLUMNS", "alignment_claims", "alignment_comparison_table",
    "alignment_numbers", "alignment_rows", "check_chapter_parameters", "convergence_claims", "convergence_numbers",
    "cost_records", "kernel_check", "linear_step_numbers", "plan_runs", "plateau_claims", "plateau_numbers",
    "plateau_rows", "plot_alignment", "plot_kernel_check", "plot_loss_curves", "plot_real_data", "plot_steps",
    "protocol_rows", "rate_rows", "real_data_claims", "real_data_note", "real_data_numbers",
    "real_data_records", "record", "run_numbers", "split_outcomes", "steps_rows", "sweep_records", "width_rows",
]
