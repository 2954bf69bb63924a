"""Chapter "Conservation laws" (``notebooks/02_conservation_laws.ipynb``; book page ``generated/02_conservation_laws``).

Layer-wise conservation laws of feedback alignment (Robertson & Koyejo, 2023) and GD's balancedness. The
mathematics (the conserved quantities, their exact one-step changes, the alignment identity, the minimum-norm
interpolant) is :mod:`fa_lib.theory.conservation`; this package runs and checks it:

* :mod:`.profiles`: the profiles (:data:`PROFILES`) and the chapter's constants;
* :mod:`.trackers`: :class:`LawTracker`, :class:`Trajectory`, :func:`conservation_trajectory`, :class:`DiscreteTerm` and the
  ``extra_metrics`` :func:`drift_tracker` and :func:`min_norm_tracker` for :func:`fa_lib.training.train`;
* :mod:`.experiments`: one function per group of claims that runs it (``one_step_law_rows``, ``drift_runs``,
  ``breaking_runs``, ``alignment_runs``, ``min_norm_runs``, ``practical_runs``) and the rows it reduces them to;
* :mod:`.claims`: ``record_*`` functions that record each group's numbers (glued for the prose) and its claims,
  each with its tolerance, on a :class:`fa_lib.results.Results`;
* :mod:`.figures`: the chapter's tables.

This module re-exports what the notebook calls (``from fa_lib.chapters import conservation_laws as CL``).
"""

from .claims import (
    UNMATCHED,
    record_alignment_condition,
    record_alignment_growth,
    record_breaking,
    record_cross_drift,
    record_drift_scaling,
    record_min_norm,
    record_one_step_laws,
    record_practical,
)
from .experiments import (
    PracticalRuns,
    alignment_rows,
    alignment_runs,
    breaking_runs,
    class_gains,
    discrete_share,
    drift_runs,
    min_norm_by_scale,
    min_norm_runs,
    one_step_law_rows,
    practical_runs,
    unmatched_share,
)
from .figures import alignment_table, law_table
from .profiles import (
    BREAKING_VARIANTS,
    ETAS,
    NORM_SCALES,
    PRAC_LRS,
    PROFILES,
    SMALL_INIT,
    chapter_parameters,
    chapter_seeds,
    setting_numbers,
)
from .trackers import LawTracker, Trajectory, conservation_trajectory

__all__ = [
    "BREAKING_VARIANTS", "ETAS", "LawTracker", "NORM_SCALES", "PRAC_LRS", "PROFILES", "PracticalRuns",
    "SMALL_INIT", "Trajectory", "UNMATCHED", "alignment_rows", "alignment_runs", "alignment_table", "breaking_runs",
    "chapter_parameters", "chapter_seeds", "class_gains", "conservation_trajectory", "discrete_share", "drift_runs", "law_table",
    "min_norm_by_scale", "min_norm_runs", "one_step_law_rows", "practical_runs", "record_alignment_condition",
    "record_alignment_growth", "record_breaking", "record_cross_drift", "record_drift_scaling", "record_min_norm",
    "record_one_step_laws", "record_practical", "setting_numbers", "unmatched_share",
]
