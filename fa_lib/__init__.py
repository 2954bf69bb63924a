"""fa_lib: the feedback-alignment library behind the fa-repro book.

Four wings:

* :mod:`fa_lib.theory`, one module per paper: its mathematics as pure functions of tensors;
* the core (this package's modules: ``networks``, ``alignment``, ``training``, ``data``,
  ``validation``, ``results``, ``plotting``, ``parallel``, ``preamble``), which every chapter uses;
* :mod:`fa_lib.chapters`, one package per chapter of the book, named after it;
* :mod:`fa_lib.pipeline`, which runs the chapters and builds the book (never imported by them).

Networks carry a leading seed dimension (many independent networks at once); the book's
notation page (``book/notation.md``) gives the conventions every function follows.
"""

from .alignment import cosine, gradient_alignment, signal_alignment, weight_alignment
from .preamble import start_chapter
from .data import (
    DATASETS,
    ClassificationData,
    download_dataset,
    find_dataset,
    gaussian_inputs,
    load_dataset,
    load_idx,
    noisy_subset,
    resolve_dataset,
    search_dirs,
    teacher_data,
)
from .networks import (
    ACTIVATIONS,
    LOSSES,
    RULES,
    Backward,
    Forward,
    activation_function,
    backward_pass,
    check_inputs,
    error_carrier,
    forward,
    gradients,
    init_feedback,
    init_weights,
    loss_and_output_delta,
    seeded_generator,
    seeded_normal,
)
from .parallel import available_cores, resolve_workers, run_parallel
from .plotting import RULE_COLORS, RULE_LABELS, seed_band, set_style, table_style
from .results import Results, claims_html, format_measured, load_results, to_jsonable, verdict_badge
from .training import History, stack_settings, steps_per_epoch, summarize_seeds, train
from .validation import PROFILES, check_choice, check_int, check_parameters, check_positive, select_profile

__all__ = [name for name in dir() if not name.startswith("_")]
__version__ = "0.1.0"

# The chapters' own modules (imported last: they build on the core above).
from . import theory  # noqa: E402  (the papers' mathematics; it imports only the core above)
from . import chapters  # noqa: E402
