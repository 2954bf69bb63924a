"""The real-data experiment (the authors' MNIST protocol, ``shared/papers/song_xu_lafferty_2021.md``,
"MNIST experiment (authors' protocol)"): its run and its summaries."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...data import ClassificationData, load_dataset
from ...networks import init_feedback, init_weights
from ...theory.song import (
    REAL_BATCH_SIZE,
    REAL_EPOCHS,
    REAL_HIDDEN,
    REAL_LAMBDAS,
    REAL_LR,
    error_signal_alignment,
    readout_scales,
)
from ...training import History, steps_per_epoch, summarize_seeds, train
from ...validation import check_int, check_positive

Tensor = torch.Tensor


@dataclass
class RealDataRun:
    """The real-data experiment: ``history`` from :func:`fa_lib.training.train` (columns run-major,
    ``lam[k]`` and ``run[k]`` of column k); ``history.metrics["error_alignment"]`` is
    :func:`error_signal_alignment` on the probe batch; ``epochs`` done per record; the data it
    ran on (``dataset`` name, ``sha256`` of the files read, ``n_train`` and ``n_test``)."""

    history: History
    lam: np.ndarray
    run: np.ndarray
    epochs: np.ndarray
    seconds: float
    dataset: str
    sha256: dict
    n_train: int
    n_test: int


def run_real_data(
    data: ClassificationData,
    seeds: Sequence[int],
    *,
    lams: Sequence[float] = REAL_LAMBDAS,
    epochs: float = REAL_EPOCHS,
    lr: float = REAL_LR,
    batch_size: int = REAL_BATCH_SIZE,
    hidden: int = REAL_HIDDEN,
    records: int = 20,
    n_probe: int = REAL_BATCH_SIZE,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> RealDataRun:
    """The authors' MNIST protocol on ``data``: 784 -> ``hidden`` ReLU -> 10, no biases, FA.

    All weights and ``B`` ~ N(0, 1); logits ``beta h / sqrt(hidden)``; cross-entropy
    (fa_lib's ``"ce"`` is PyTorch's mean ``CrossEntropyLoss``, so ``lr`` and ``lam`` need no
    conversion); SGD with ``batch_size``; L2 ``lam`` on the second layer only. One run per
    seed; the lambdas of a run share its initialisation and its minibatch order. Records
    about ``records`` times: probe (the first ``n_probe`` training samples) loss, accuracy and
    :func:`error_signal_alignment`, and the test accuracy on ``data``'s test split.
    ``epochs`` may be fractional (whole steps are run).
    """
    check_positive("epochs", epochs)
    check_int("records", records, minimum=1)
    check_int("hidden", hidden, minimum=1)
    seeds = [int(s) for s in seeds]
    n_lams = len(lams)
    column_seeds = [s for s in seeds for _ in lams]
    widths = [data.x_train.shape[-1], hidden, 10]
    weights = init_weights(widths, column_seeds, std=1.0, device=device)
    feedback = init_feedback(widths, column_seeds, rule="fa", std=1.0, device=device)
    lam = torch.tensor([float(v) for _ in seeds for v in lams], device=device)
    x, y = data.x_train.to(device), data.y_train.to(device)
    probe = (x[:n_probe], y[:n_probe])
    per_epoch = steps_per_epoch(x.shape[0], batch_size)
    steps = max(1, round(epochs * per_epoch))

    def extra(current: list[Tensor]) -> dict[str, Tensor]:
        return {"error_alignment": error_signal_alignment(current, feedback, *probe)}

    start = time.perf_counter()
    history = train(
        weights,
        x,
        y,
        rule="fa",
        activation="relu",
        lr=lr,
        steps=steps,
        loss="ce",
        feedback=feedback,
        batch_size=batch_size,
        l2=[0.0, lam],
        layer_scales=readout_scales(hidden),
        record_every=max(1, steps // records),
        probe=probe,
        test=(data.x_test.to(device), data.y_test.to(device)),
        shuffle_seed=seeds[0],
        extra_metrics=extra,
        progress=progress,
        desc="real data (FA)",
    )
    return RealDataRun(
        history=history,
        lam=lam.cpu().numpy().astype(np.float64),
        run=np.repeat(np.arange(len(seeds)), n_lams),
        epochs=history.steps / per_epoch,
        seconds=time.perf_counter() - start,
        dataset=data.name,
        sha256=dict(data.sha256),
        n_train=int(data.y_train.shape[0]),
        n_test=int(data.y_test.shape[0]),
    )


def run_real_data_on(dataset: str = "auto", *, n_train: int | None = None, n_test: int | None = None,
                     device: str | torch.device = "cpu", **kwargs) -> RealDataRun:
    """Load ``dataset`` (:func:`fa_lib.data.load_dataset`, offline) and run :func:`run_real_data` on it
    (``kwargs``): one job for :func:`fa_lib.parallel.run_parallel`."""
    data = load_dataset(dataset, n_train=n_train, n_test=n_test, device=device)
    return run_real_data(data, device=device, **kwargs)


def real_data_seeds(seed: int, runs: int) -> list[int]:
    """The ``runs`` seeds of the real-data experiment, derived from the root ``seed``."""
    return [int(s) for s in np.random.SeedSequence([seed, 784]).generate_state(runs, dtype=np.uint32)]


def dataset_name(real: RealDataRun) -> str:
    """The display name of the real-data run's dataset."""
    return {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}[real.dataset]


def real_data_finals(real: RealDataRun) -> tuple[dict[float, dict], dict[float, dict]]:
    """Final error-signal alignment and test accuracy per lambda, each :func:`fa_lib.summarize_seeds` over the runs."""
    history = real.history
    finals = [{lam: summarize_seeds(history.final(key)[np.isclose(real.lam, lam)], history.diverged[np.isclose(real.lam, lam)])
               for lam in REAL_LAMBDAS} for key in ("error_alignment", "test_accuracy")]
    return finals[0], finals[1]


def mean_alignment(real: RealDataRun) -> dict[float, np.ndarray]:
    """Per lambda: the error-signal alignment at every record, mean over the runs that did not diverge ``(records,)``."""
    alignment = real.history.metrics["error_alignment"]
    return {lam: np.nanmean(alignment[:, np.isclose(real.lam, lam)], axis=1) for lam in REAL_LAMBDAS}


def alignment_crossings(real: RealDataRun, factor: float) -> dict[float, float | None]:
    """Per lambda > 0: the first recorded epoch at which its mean error-signal alignment is at least ``factor``
    times lambda = 0's (``None`` if it never is)."""
    check_positive("factor", factor)
    mean = mean_alignment(real)
    crossings = {}
    for lam in REAL_LAMBDAS[1:]:
        above = np.flatnonzero(mean[lam] >= factor * mean[0.0])
        crossings[lam] = float(real.epochs[above[0]]) if above.size else None
    return crossings
