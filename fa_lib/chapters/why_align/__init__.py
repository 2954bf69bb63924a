"""Chapter "Why do they align?" (``notebooks/01_why_align.ipynb``; book page ``generated/01_why_align``).

Fixed points of the FA and DFA updates and their stability (Chu & Bacho, 2024).

The mathematics (parameter vectors, update Jacobians, the reduced matrix, stability eigenvalues, zero-error points,
the scalar toy) is :mod:`fa_lib.theory.fixed_points`; the perturbation test is :mod:`fa_lib.training.stability`.

* :mod:`.profiles`: profiles, constants, the chapter's parameters and seeds;
* :mod:`.experiments`: the runs and their rows;
* :mod:`.claims`: claims C1-C5 with their tolerance constants;
* :mod:`.figures`: figures.
"""
from .claims import record_data, record_early_descent, record_fixed_points, record_jacobian_check, record_learning, record_multi_output, record_psd, record_reduced_matrix, record_same_step, record_sign_rule, record_stationary_points, record_sweep, record_toy
from .experiments import decay_sweep, early_descent, fixed_point_rows, multi_output_stability, scalar_stability, stationary_points, stationary_rows, toy_runs, variant_runs, zero_error_points
from .figures import alignment_growth_figure, early_descent_figure, learning_figure, sweep_figure, toy_phase_plane_figure
from .profiles import BATCH, EARLY_STEPS, FEEDBACK_SCALE, PROFILES, chapter_parameters, chapter_seeds

__all__ = ["BATCH", "EARLY_STEPS", "FEEDBACK_SCALE", "PROFILES", "alignment_growth_figure", "chapter_parameters", "chapter_seeds", "decay_sweep", "early_descent", "early_descent_figure", "fixed_point_rows", "learning_figure", "multi_output_stability", "record_data", "record_early_descent", "record_fixed_points", "record_jacobian_check", "record_learning", "record_multi_output", "record_psd", "record_reduced_matrix", "record_same_step", "record_sign_rule", "record_stationary_points", "record_sweep", "record_toy", "scalar_stability", "stationary_points", "stationary_rows", "sweep_figure", "toy_phase_plane_figure", "toy_runs", "variant_runs", "zero_error_points"]
