"""The chapters wing: one package per chapter of the book, named after it.

* :mod:`~fa_lib.chapters.primer`: "Feedback alignment in one page" (Lillicrap et al. 2016; Nokland 2016);
* :mod:`~fa_lib.chapters.why_align`: "Why do they align?" (Chu & Bacho, 2024);
* :mod:`~fa_lib.chapters.conservation_laws`: "Conservation laws" (Robertson & Koyejo, 2023);
* :mod:`~fa_lib.chapters.two_layer_convergence`: "Two-layer convergence" (Song, Xu & Lafferty, 2021);
* :mod:`~fa_lib.chapters.synthesis`: "Three theories on one network" (the three papers on the same runs).

Each package opens with its chapter's notebook; its ``profiles``, ``experiments``, ``claims`` and ``figures``
modules hold the settings, the runs, the claims and the plots, and its ``__init__`` is what the notebook calls.
The mathematics is in :mod:`fa_lib.theory`; no chapter imports another.
"""

from . import conservation_laws, primer, synthesis, two_layer_convergence, why_align

__all__ = ["conservation_laws", "primer", "synthesis", "two_layer_convergence", "why_align"]
