"""Alignment against width as a fitted law: Song's two-layer ReLU task, untracked, by the authors' stop rule, at several
widths and seeds, with and without L2 on the readout; log-log slopes with bootstrap intervals, the slope the conservation law gives, and the
slope of the authors' published table on the same grid."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ...alignment import cosine
from ...theory import song
from ...theory.song_tables import published_alignment
from ...training.two_layer import StopRule, prepared_trials, train_until_settled
from .profiles import ACTIVATION, LR

WIDTH_DTYPE = torch.float32  # the authors' precision; nothing here is an identity tested to rounding
BOOTSTRAP = 2000  # resamples of the seeds of every width
AUTHORS_TRIALS = 50


def width_runs(config: Mapping[str, Any], seeds: Mapping[str, Sequence[int]], device: str = "cpu") -> list[dict[str, Any]]:
    """FA on Song's two-layer task at every width of ``config`` (a profile's ``width`` entry: ``widths``, ``lams``), each
    network run by the authors' stop rule (at least ``T_min(p)`` steps, then until the loss settles), the draws
    ``seeds["width p=<p>"]`` shared by the lambdas (a paired comparison). One row per network: ``p``, ``lam``, ``seed``,
    final ``alignment`` cos(beta, b), ``alignment_init``, ``w2_change`` (``||W(T)||^2 - ||W(0)||^2``, in the inputs' row
    space), ``norms`` (``||beta(T)|| ||b||``), ``steps``, ``settled`` and ``diverged``."""
    rows = []
    for p in config["widths"]:
        for lam in config["lams"]:
            x, y, weights, b = prepared_trials(ACTIVATION, p, seeds[f"width p={p}"], song.N_SAMPLES, song.INPUT_DIM, WIDTH_DTYPE, device)
            run = train_until_settled(weights, x, y, rule="fa", activation=ACTIVATION, lr=LR, lam=lam, stop=StopRule.for_width(p),
                                      feedback=[None, b], keep_weights=True, progress=True, desc=f"synthesis width p={p} λ={lam:g}")
            w0, (w1, beta) = weights[0].double(), [w.double() for w in run.weights]
            change = ((w1**2).sum(dim=(1, 2)) - (w0**2).sum(dim=(1, 2))).cpu().numpy()
            norms = (beta.flatten(1).norm(dim=1) * b.double().flatten(1).norm(dim=1)).cpu().numpy()
            start = cosine(weights[1], b, dims=2).cpu().numpy()
            rows += [{"p": p, "lam": lam, "seed": int(s), "alignment": float(run.alignment[i]), "alignment_init": float(start[i]),
                      "w2_change": float(change[i]), "norms": float(norms[i]), "steps": int(run.steps[i]),
                      "settled": bool(run.settled[i]), "diverged": bool(run.diverged[i])}
                     for i, s in enumerate(seeds[f"width p={p}"])]
    return rows


def _slope(widths: np.ndarray, values: np.ndarray) -> float:
    return float(np.polyfit(np.log(widths), np.log(values), 1)[0])


def width_fits(rows: Sequence[Mapping[str, Any]], seed: int) -> dict[float, dict[str, Any]]:
    """Per lambda: the log-log slopes against ``p`` of the mean final alignment (``alignment``), of the mean ``w2_change``
    and of the mean ``norms``, and of the law's alignment ``(mean w2_change / 2) / mean norms`` (``law``); ``difference``
    = alignment slope - law slope; each with a 95% interval (``*_interval``) from ``BOOTSTRAP`` resamples of the seeds
    within every width (numpy, seeded from ``seed``). ``authors``: the slope of the authors' table on the widths they
    published among those run, with its standard error from their sds over 50 trials (``None`` with fewer than two),
    beside ours on the same widths (``alignment_on_authors_grid`` and its bootstrap ``_se``); the counts of ``diverged``
    and ``unsettled`` (capped) networks; the fits use every network that did not diverge."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4, 5]))
    fits = {}
    for lam in sorted({r["lam"] for r in rows}):
        mine = [r for r in rows if r["lam"] == lam and not r["diverged"]]
        widths = np.array(sorted({r["p"] for r in mine}), dtype=float)
        table = {key: [np.array([r[key] for r in mine if r["p"] == p]) for p in widths] for key in ("alignment", "w2_change", "norms")}

        published = [(p, published_alignment(ACTIVATION, lam, int(p))) for p in widths]
        published = [(p, v) for p, v in published if v is not None]
        on_grid = np.isin(widths, [p for p, _ in published])

        def slopes(pick: Sequence[np.ndarray]) -> dict[str, float]:
            means = {key: np.array([v[i].mean() for v, i in zip(table[key], pick)]) for key in table}
            out = {key: _slope(widths, means[key]) for key in table}
            out["law"] = _slope(widths, means["w2_change"] / 2 / means["norms"])
            out["difference"] = out["alignment"] - out["law"]
            if on_grid.sum() >= 2:
                out["alignment_on_authors_grid"] = _slope(widths[on_grid], means["alignment"][on_grid])
            return out

        point = slopes([np.arange(len(v)) for v in table["alignment"]])
        draws = [slopes([rng.integers(0, len(v), len(v)) for v in table["alignment"]]) for _ in range(BOOTSTRAP)]
        fit = dict(point, widths=widths.astype(int).tolist(), seeds=min(len(v) for v in table["alignment"]),
                   diverged=sum(r["diverged"] for r in rows if r["lam"] == lam),
                   unsettled=sum(not r["settled"] and not r["diverged"] for r in rows if r["lam"] == lam))
        for key in point:
            fit[f"{key}_interval"] = [float(np.quantile([d[key] for d in draws], q)) for q in (0.025, 0.975)]
        fit["authors"] = None
        if len(published) >= 2:
            fit["alignment_on_authors_grid_se"] = float(np.std([d["alignment_on_authors_grid"] for d in draws], ddof=1))
            x = np.log([p for p, _ in published])
            weights = (x - x.mean()) / ((x - x.mean()) ** 2).sum()
            log_sd = np.array([sd / (mean * np.sqrt(AUTHORS_TRIALS)) for _, (mean, sd) in published])
            fit["authors"] = {"widths": [int(p) for p, _ in published],
                              "slope": _slope(np.array([p for p, _ in published]), np.array([m for _, (m, _) in published])),
                              "se": float(np.sqrt((weights**2 * log_sd**2).sum()))}
        fits[lam] = fit
    return fits
