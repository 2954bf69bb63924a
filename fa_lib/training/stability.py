"""Stability measured by simulation: perturb a zero-error point and let the rule run (the test that
:mod:`fa_lib.theory.fixed_points`' linearisation predicts)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..theory.fixed_points import perturb
from ..validation import check_int
from .loop import train

Tensor = torch.Tensor


def perturbation_growth(
    weights: Sequence[Tensor],
    x: Tensor,
    y: Tensor,
    *,
    rule: str,
    activation: str,
    feedback: Sequence[Tensor | None] | None,
    lr: float | Tensor,
    steps: int,
    scale: float,
    seeds: Sequence[int],
    layer_scales: Sequence[float] | None = None,
) -> Tensor:
    """Perturb a zero-error point by ``scale`` (:func:`perturb`), run the rule, and measure growth.

    Returns ``log(L_T / L_{T/2})`` per seed (``(S,)``, float64): the change of the log-loss
    over the second half of ``steps`` steps (fast modes have died out by then, so its sign
    is that of the slowest mode: > 0 the perturbation grows, < 0 it decays). A seed that
    diverges (NaN/inf) counts as ``+inf`` (it grew without bound).
    """
    check_int("steps", steps, minimum=2)
    start = perturb(weights, seeds, scale=scale)
    history = train(
        start, x, y, rule=rule, activation=activation, lr=lr, steps=steps, feedback=feedback,
        layer_scales=layer_scales, record_every=steps // 2, progress=False,
    )
    loss = torch.as_tensor(history.metrics["loss"], dtype=torch.float64)
    middle = int((history.steps == (steps // 2)).nonzero()[0][0])
    growth = torch.log(loss[-1]) - torch.log(loss[middle])
    return torch.where(torch.as_tensor(history.diverged), torch.full_like(growth, float("inf")), growth)
