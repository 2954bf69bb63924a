"""Chapter "Feedback alignment in one page" (``notebooks/00_primer.ipynb``; book page ``generated/00_primer``).

BP, FA and DFA train the same two-hidden-layer network on a real data set, many seeds at once
(Lillicrap et al. 2016; Nokland 2016). Conventions are the book's notation page: ``weights[i]``
is ``(S, n_{i+1}, n_i)`` with one leading seed dimension ``S``; a :class:`~fa_lib.training.History`
metric is ``(R, S, ...)`` over ``R`` records.

* :mod:`.profiles`: the profiles, the network and its step, the chapter's parameters;
* :mod:`.experiments`: the data record and the paired runs of the three rules;
* :mod:`.figures`: accuracy and alignment against epoch;
* :mod:`.claims`: claims P1-P3 with their tolerances.
"""

from .claims import END, GAP, START, record_claims
from .experiments import divergence_note, record_data, train_rules
from .figures import accuracy_figure, gradient_alignment_figure, weight_alignment_figure
from .profiles import BATCH, LR, PROFILES, WIDTHS, chapter_parameters

__all__ = ["BATCH", "END", "GAP", "LR", "PROFILES", "START", "WIDTHS", "accuracy_figure", "chapter_parameters",
           "divergence_note", "gradient_alignment_figure", "record_claims", "record_data", "train_rules", "weight_alignment_figure"]
