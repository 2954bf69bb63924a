"""Where L2 puts FA at rest, and where it does not: Song's two-layer ReLU task with the same L2 ``lambda`` on ``W`` and
on ``beta``, trained until the weights stop moving, against the resting relation this chapter derives
(:func:`fa_lib.theory.conservation.l2_rest_residual`); and Song's readout-only L2 taken far past ``T_min``, against the
growth of ``||W||^2`` that has no rest (:func:`fa_lib.theory.song.readout_only_l2_growth`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from ...alignment import cosine
from ...theory import conservation, song
from ...training.two_layer import TwoLayerStep, prepared_trials, train_two_layer
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
# The readout-only runs are measured over their last fifth, as chapter 03's S4w.
TAIL = 0.2


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
    alignment = cosine(beta, b, dims=2)
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


def readout_only_rows(config: Mapping[str, Any], seeds: Mapping[str, Sequence[int]], device: str = "cpu") -> list[dict[str, Any]]:
    """Song's setting taken far past ``T_min``: FA with L2 ``lam`` on the readout alone (``config``: a profile's ``drift``
    entry, ``widths``, ``lam``, ``multiple``), ``multiple x T_min(p)`` steps, the draws ``seeds["drift p=<p>"]``. One row
    per network, over the last ``TAIL`` of the steps: ``growth`` of ``||W||_F^2`` per step, ``stationary``
    (:func:`~fa_lib.theory.song.readout_only_l2_growth` of the window's mean ``<beta, b>``), ``drift`` (``2 Delta<beta,
    b>`` per step), ``overlap_ratio`` (``<beta, b>`` at the end over at half the run), ``mse_half`` and ``mse_end``, and
    ``diverged``."""
    rows = []
    for p in config["widths"]:
        steps = config["multiple"] * song.steps_for_width(p)
        start = steps - round(TAIL * steps)
        x, y, weights, b = prepared_trials(ACTIVATION, p, seeds[f"drift p={p}"], song.N_SAMPLES, song.INPUT_DIM, torch.float32, device)
        run = train_two_layer(weights, x, y, rule="fa", activation=ACTIVATION, lr=LR, lam=config["lam"], steps=steps,
                              feedback=[None, b], keep_weights_at=start, progress=True, desc=f"synthesis readout-only p={p}")
        squared = [(w[0].double() ** 2).sum(dim=(1, 2)).cpu().numpy() for w in (run.kept_weights, run.weights)]
        stationary = song.readout_only_l2_growth(torch.from_numpy(run.overlap[start:steps].mean(axis=0)), LR, config["lam"]).numpy()
        rows += [{"p": p, "seed": int(s), "lam": config["lam"], "steps": steps, "growth": float((squared[1][i] - squared[0][i]) / (steps - start)),
                  "stationary": float(stationary[i]), "drift": float(2 * (run.overlap[steps, i] - run.overlap[start, i]) / (steps - start)),
                  "overlap_ratio": float(run.overlap[steps, i] / run.overlap[steps // 2, i]),
                  "mse_half": float(run.mse[steps // 2, i]), "mse_end": float(run.mse[steps, i]), "diverged": bool(run.diverged[i])}
                 for i, s in enumerate(seeds[f"drift p={p}"])]
    return rows
