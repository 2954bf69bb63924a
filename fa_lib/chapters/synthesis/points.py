"""Chu & Bacho's criterion at zero-error points FA did not choose: from the two-layer runs without L2 that reached zero
error, the same weights with the feedback flipped (``b -> -b``) and the same function moved along the zero-error
manifold (``(c W, beta / c)``, exact for ReLU); the criterion's verdict on each, stated before FA is run from it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ...networks import forward
from ...theory import song
from ...training.stability import perturbation_growth
from .experiments import PERTURB_SCALE, Run
from .profiles import ACTIVATION, LAMBDA, LR

# The points, as (name, scale c of W, sign of b): the reached point, its flipped feedback, and two moves along the
# zero-error manifold. c < 1 shrinks G (which scales as c^2) against H (as 1/c); c > 1 grows G past the step size's reach.
POINTS = (("reached", 1.0, 1.0), ("b -> -b", 1.0, -1.0), ("(W/3, 3 beta)", 1 / 3, 1.0), ("(3 W, beta/3)", 3.0, 1.0))


def criterion(weights: Sequence[torch.Tensor], x: torch.Tensor, b: torch.Tensor, eta: float) -> dict[str, torch.Tensor]:
    """At a zero-error point of the two-layer model: the least eigenvalue of ``G/N`` (``margin_g``, the readout's exact
    gradient alone) and of ``(G + H)/N`` (``margin``), the largest ``|1 - eta lambda|`` (``radius``) and the verdict
    ``stays`` (``margin > 0`` and ``radius < 1``), each ``(S,)``."""
    g, _ = song.kernels(weights, x, ACTIVATION, b)
    eig = torch.linalg.eigvalsh(song.stability_matrix(weights, x, ACTIVATION, b))
    margin_g = torch.linalg.eigvalsh(g / x.shape[-2])[..., 0]
    radius = (1 - eta * eig).abs().amax(-1)
    return dict(margin_g=margin_g, margin=eig[..., 0], radius=radius, stays=(eig[..., 0] > 0) & (radius < 1))


def point_rows(run: Run, perturb_steps: int, zero_error: float) -> list[dict[str, Any]]:
    """For every seed of ``run`` (two-layer) whose run without L2 reached ``MSE <= zero_error`` and every point of
    :data:`POINTS`: the point's MSE, :func:`criterion` (``predicted_stays``), then FA run from the perturbed point
    (:func:`perturbation_growth`, ``perturb_steps`` steps) and its verdict ``stays`` (``growth < 0``)."""
    none = run.setting("none")
    weights = [w[none] for w in run.history.weights]
    x, y, b = run.x[none], run.y[none], run.feedback[1][none]
    reached = (2 * run.history.final("loss")[none] <= zero_error).nonzero()[0]
    if reached.size == 0:
        return []
    pick = torch.as_tensor(reached)
    weights, x, y, b = [w[pick] for w in weights], x[pick], y[pick], b[pick]
    seeds = [run.seeds[i] for i in reached]
    eta, _ = song.core_hyperparameters(LR, LAMBDA)
    rows = []
    for name, c, sign in POINTS:
        point, feedback = [c * weights[0], weights[1] / c], sign * b
        mse = ((forward(point, x, ACTIVATION, layer_scales=run.layer_scales).output - y) ** 2).mean(dim=(1, 2))
        verdict = criterion(point, x, feedback, eta)  # the prediction, before the run
        growth = perturbation_growth(point, x, y, rule="fa", activation=ACTIVATION, feedback=[None, feedback], lr=eta,
                                     steps=perturb_steps, scale=PERTURB_SCALE, seeds=seeds, layer_scales=run.layer_scales)
        rows += [{"point": name, "p": run.p, "seed": seed, "mse": float(mse[i]), "margin_g": float(verdict["margin_g"][i]),
                  "margin": float(verdict["margin"][i]), "radius": float(verdict["radius"][i]),
                  "predicted_stays": bool(verdict["stays"][i]), "growth": float(growth[i]), "stays": bool(growth[i] < 0)}
                 for i, seed in enumerate(seeds)]
    return rows
