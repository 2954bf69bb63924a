"""Where L2 on every layer puts FA at rest: Song's two-layer ReLU task with the same L2 ``lambda`` on ``W`` and on
``beta``, trained until the weights stop moving, against the resting relation this chapter derives
(:func:`fa_lib.theory.conservation.l2_rest_residual`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from ...theory import conservation, song
from ...training.two_layer import TwoLayerStep, prepared_trials
from ...validation import check_int, check_positive
from .profiles import ACTIVATION, DTYPE, LR

# A run is at rest once its weights' net relative change per step, over a chunk of REST_CHUNK steps, is below
# REST_CHANGE: ReLU kinks make single steps chatter (about 2e-4 of the weights per step in a trial run) while the net
# drift goes to zero, so the criterion averages over a chunk.
REST_CHUNK = 1000
REST_CHANGE = 1e-6
# A neuron whose ||w_j||^2 is below this fraction of the largest has decayed away (a unit no sample activates decays
# like (1 - lr lambda)^t, and so does its beta_j): the relation holds for it as 0 = 0 and its sign says nothing.
LIVE_FRACTION = 1e-6


def relative_change(after: Sequence[torch.Tensor], before: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per network ``(S,)``: the larger over the layers of ``||after - before|| / ||after||``."""
    return torch.stack([(a - b).flatten(1).norm(dim=1) / a.flatten(1).norm(dim=1) for a, b in zip(after, before)]).amax(0)


def run_to_rest(p: int, seeds: Sequence[int], *, lam: float, max_steps: int, lr: float = LR,
                device: str = "cpu", progress: bool = True) -> list[dict[str, Any]]:
    """Song's two-layer task at width ``p`` (the draws of ``seeds``), FA with L2 ``lam`` (MSELoss convention) on both
    layers, in chunks of ``REST_CHUNK`` steps until every network is at rest (``REST_CHANGE``) or ``max_steps``.

    One row per network: ``steps`` run, ``rested``, ``net_change`` (the last chunk's net relative change per step),
    ``chatter`` (the relative change of its last single step),
    ``live`` neurons, ``sign_agreement`` (fraction of the live neurons with ``b_j beta_j > 0``), ``residual``
    (``sum_j |residual_j| / sum_j (lam ||w_j||^2 + lam |b_j beta_j|)`` of :func:`l2_rest_residual`), final
    ``alignment`` ``cos(beta, b)``, ``predicted`` (:func:`l2_rest_alignment` of the final weights), ``mse`` and
    ``diverged``."""
    check_positive("lam", lam)
    check_int("max_steps", max_steps, minimum=REST_CHUNK)
    x, y, weights, b = prepared_trials(ACTIVATION, p, seeds, song.N_SAMPLES, song.INPUT_DIM, DTYPE, device)
    stepper = TwoLayerStep(x, y, weights, b, rule="fa", activation=ACTIVATION, lr=lr, lam=lam, lam_first=lam)
    before = stepper.weights()
    rested_at = torch.full((len(seeds),), -1, dtype=torch.long)
    net = torch.full((len(seeds),), float("inf"), dtype=DTYPE)
    steps = 0
    with torch.no_grad(), tqdm(total=max_steps, desc=f"synthesis rest p={p}", disable=not progress, mininterval=2.0) as bar:
        while steps < max_steps and bool((rested_at < 0).any()):
            for _ in range(REST_CHUNK - 1):
                stepper.step()
            last = stepper.weights()
            stepper.step()
            steps += REST_CHUNK
            bar.update(REST_CHUNK)
            after = stepper.weights()
            net = relative_change(after, before) / REST_CHUNK
            chatter = relative_change(after, last)
            rested_at = torch.where((rested_at < 0) & (net < REST_CHANGE), torch.tensor(steps), rested_at)
            before = after
        mse = stepper.mse()
    w, beta = before
    feedback = [None, b]
    residual = conservation.l2_rest_residual([w, beta], feedback, [lam, lam])[0]
    incoming, outgoing = lam * (w**2).sum(-1), lam * (beta * b)[:, 0, :]
    live = incoming >= LIVE_FRACTION * incoming.amax(-1, keepdim=True)
    diverged = ~torch.isfinite(mse)
    alignment = (beta * b).sum(dim=(1, 2)) / (beta.flatten(1).norm(dim=1) * b.flatten(1).norm(dim=1))
    predicted = conservation.l2_rest_alignment([w, beta], feedback, [lam, lam])
    return [{"p": p, "seed": int(s), "lam": lam, "steps": steps, "rested": bool(rested_at[i] >= 0),
             "net_change": float(net[i]), "chatter": float(chatter[i]), "live": int(live[i].sum()),
             "sign_agreement": float(((outgoing[i] > 0) & live[i]).sum() / live[i].sum()),
             "residual": float(residual[i].abs().sum() / (incoming[i] + outgoing[i].abs()).sum()),
             "alignment": float(alignment[i]), "predicted": float(predicted[i]), "mse": float(mse[i]), "diverged": bool(diverged[i])}
            for i, s in enumerate(seeds)]


def rest_rows(config: Mapping[str, Any], seeds: Mapping[str, Sequence[int]], device: str = "cpu") -> list[dict[str, Any]]:
    """:func:`run_to_rest` at every width of ``config`` (``widths``, ``lam``, ``max_steps``: a profile's ``rest`` entry)
    with the draws ``seeds["rest p=<p>"]`` (:func:`~fa_lib.chapters.synthesis.profiles.chapter_seeds`), the rows of
    every width in order."""
    return [row for p in config["widths"]
            for row in run_to_rest(p, seeds[f"rest p={p}"], lam=config["lam"], max_steps=config["max_steps"], device=device)]
