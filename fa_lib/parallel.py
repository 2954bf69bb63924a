"""Independent jobs on several CPU cores: one single-threaded process per core.

Small tensor operations run best on one thread, so a sweep of independent cells uses the
machine's cores as separate processes (two one-thread processes beat one two-thread process
for the Song chapter's networks; ``make bench`` measures it). Every job draws its randomness
from its own seeds, so results do not depend on the number of workers or on the order in
which jobs finish.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import torch
from tqdm import tqdm

from .validation import check_int


def available_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_workers(workers: int) -> int:
    """``workers`` processes (``0``: one per available core)."""
    check_int("workers", workers, minimum=0)
    return workers or available_cores()


def _one_thread() -> None:
    torch.set_num_threads(1)


Job = tuple[Callable[..., Any], Mapping[str, Any]]


def run_parallel(jobs: Sequence[Job], *, workers: int, desc: str = "jobs", progress: bool = True) -> list[Any]:
    """``[function(**kwargs) for function, kwargs in jobs]``, by ``workers`` one-thread processes (0: one per core).

    Jobs are started in the order given (put the longest first); results come back in that
    order. With one worker, or one job, everything runs in this process. Each ``function``
    must be importable (a module-level function) and its result picklable.
    """
    workers = min(resolve_workers(workers), max(1, len(jobs)))
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress, mininterval=1.0)
    if workers == 1:
        results = []
        for function, kwargs in jobs:
            results.append(function(**kwargs))
            bar.update(1)
        bar.close()
        return results
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_one_thread) as pool:
        futures = {pool.submit(function, **kwargs): i for i, (function, kwargs) in enumerate(jobs)}
        results: list[Any] = [None] * len(jobs)
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.update(1)
    bar.close()
    return results
