"""What every chapter notebook does first: check its parameters, set up torch and the plots, open its results.

A notebook's set-up is one call::

    config, results = F.start_chapter("01_why_align", paper="chu2024why", profiles=chapter.PROFILES,
                                      profile=profile, seed=seed, results_dir=results_dir, device=device, threads=threads)

``profiles`` maps every profile (``"ci"``, ``"default"``, ``"paper"``) to that profile's settings; the
chapter's module owns it, so the notebook does not repeat it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .plotting import set_style
from .results import Results
from .validation import check_int, check_parameters, select_profile


def start_chapter(
    notebook: str,
    *,
    paper: str,
    profiles: Mapping[str, Mapping[str, Any]],
    profile: str,
    seed: int,
    results_dir: str,
    device: str = "cpu",
    threads: int = 1,
    parameters: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], Results]:
    """Check the shared parameters, use ``threads`` torch threads, set the plot style, and return
    ``(settings of profile, Results)``.

    Bad parameters raise ``ValueError`` naming the parameter and the allowed values before any
    computation. The results record ``profile``, ``seed``, ``device``, ``threads``, the chapter's own
    ``parameters`` (already checked by the caller) and the profile's settings; seeds are added with
    :meth:`~fa_lib.results.Results.add_seeds` as the chapter draws them.
    """
    check_parameters(profile=profile, seed=seed, results_dir=results_dir, device=device)
    check_int("threads", threads, minimum=1)
    config = dict(select_profile(profile, profiles))
    torch.set_num_threads(threads)
    set_style()
    recorded = dict(profile=profile, seed=seed, device=device, threads=threads, **(parameters or {}), **config)
    results = Results(notebook, profile=profile, parameters=recorded, seeds=[], results_dir=results_dir, paper=paper)
    return config, results
