"""What the synthesis chapter runs: the three settings of each family stacked on the same draws, the law tracked
at every step, and the stability of the points reached."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...data import load_dataset
from ...networks import Backward, init_feedback, init_weights, seeded_normal
from ...theory import conservation, fixed_points, song
from ...training import History, stack_settings, steps_per_epoch, train
from ...training.stability import perturbation_growth
from ...training.two_layer import prepared_trials
from ...validation import check_choice
from .profiles import (ACTIVATION, DTYPE, FAMILIES, LAMBDA, LR, REAL_BATCH, REAL_LAMBDA, REAL_LR, REAL_RECORDS, REAL_WIDTHS,
                       RECORDS, SETTINGS, SONG_FAMILIES, chapter_seeds)

Tensor = torch.Tensor
PERTURB_SCALE = 1e-2  # Y7: size of the perturbation (norm in parameter space)


def l2_per_layer(family: str, n_seeds: int) -> list[Tensor]:
    """fa_lib's ``l2`` of every layer for the stacked settings: one ``(3 n_seeds,)`` tensor per layer, setting-major."""
    l2 = REAL_LAMBDA if family == "real" else song.core_hyperparameters(LR, LAMBDA)[1]
    depth = {"two-layer": 2, "three-layer": 3, "real": len(REAL_WIDTHS) - 1}[family]
    on = {"none": [0.0] * depth, "readout": [0.0] * (depth - 1) + [l2], "all": [l2] * depth}
    return [torch.tensor([on[s][layer] for s in SETTINGS for _ in range(n_seeds)], dtype=DTYPE) for layer in range(depth)]


class AlignmentLaw:
    """A per-step tracker (``train``'s ``on_step``) of the per-neuron law with L2 and of the alignment it predicts.

    After each step it compares the change of every hidden neuron's ``c_{k,j} = ||W_k[j,:]||^2 - 2 <B_{k+1}[:,j],
    W_{k+1}[:,j]>`` with :func:`~fa_lib.theory.conservation.step_change_with_l2` (``worst_residual`` ``(S,)``:
    max over steps, layers and neurons of ``|change - law| / (||W_k[j,:]||^2 + 2 |<B_{k+1}[:,j], W_{k+1}[:,j]>|)``;
    ``least_change`` ``(S,)``: min of ``change / terms``), and advances the prediction ``u`` ``(S, L-1)`` of
    ``<W_{k+1}, B_{k+1}>`` from layer ``k`` alone: summed over ``j`` the law says ``||W_k||^2 - 2 u`` changes by the
    law's total, so ``u(t+1) = u(t) + 1/2 (||W_k(t+1)||^2 - ||W_k(t)||^2 - sum_j law_j)``, the recursion of the module
    docstring written with the law's terms. :meth:`metrics` is ``train``'s
    ``extra_metrics``: ``predicted_alignment = u / (||W_{k+1}|| ||B_{k+1}||)`` and ``c_drift``, the mean over the
    neurons of each hidden layer of ``|c_{k,j}(t) - c_{k,j}(0)|``, both ``(S, L-1)``.
    """

    def __init__(self, weights: Sequence[Tensor], feedback: Sequence[Tensor | None], *, lr: float, l2: Sequence[Tensor]):
        self.feedback, self.lr, self.l2 = feedback, lr, l2
        self.previous = [w.clone() for w in weights]
        self.terms = self._terms(weights)
        self.c0 = [incoming - outgoing for incoming, outgoing in self.terms]
        self.u = conservation.feedback_inner_products(weights, feedback)
        n_seeds = weights[0].shape[0]
        self.worst_residual = torch.zeros(n_seeds, dtype=weights[0].dtype, device=weights[0].device)
        self.least_change = torch.full((n_seeds,), float("inf"), dtype=weights[0].dtype, device=weights[0].device)

    def _terms(self, weights: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
        """Per hidden layer: ``(||W_k[j,:]||^2, 2 <B_{k+1}[:,j], W_{k+1}[:,j]>)``, each ``(S, n_k)``; ``c_{k,j}`` is their difference."""
        return conservation.law_terms(weights, "fa", self.feedback, None, per_neuron=True)

    def update(self, step: int, weights: list[Tensor], biases, result: Backward, alive: Tensor) -> None:
        laws = conservation.step_change_with_l2(self.previous, result.grads, self.feedback, lr=self.lr, l2=self.l2)
        terms = self._terms(weights)
        residual, change, u = [], [], []
        for k, ((incoming, outgoing), (before_in, before_out), law) in enumerate(zip(terms, self.terms, laws)):
            size = before_in + before_out.abs()
            delta = (incoming - outgoing) - (before_in - before_out)
            residual.append(((delta - law).abs() / size).amax(-1))
            change.append((delta / size).amin(-1))
            # sum over j of c_kj = ||W_k||^2 - 2 u_{k+1}: the summed law moves u by half the growth of ||W_k||^2 beyond it
            u.append(self.u[:, k] + 0.5 * (incoming.sum(-1) - before_in.sum(-1) - law.sum(-1)))
        worst, least = torch.stack(residual, -1).amax(-1), torch.stack(change, -1).amin(-1)
        self.worst_residual = torch.where(alive, torch.maximum(self.worst_residual, worst), self.worst_residual)
        self.least_change = torch.where(alive, torch.minimum(self.least_change, least), self.least_change)
        self.u = torch.stack(u, -1)
        self.terms = terms
        for previous, w in zip(self.previous, weights):
            previous.copy_(w)

    def metrics(self, weights: list[Tensor]) -> dict[str, Tensor]:
        norms = torch.stack([weights[k].norm(dim=(-1, -2)) * self.feedback[k].norm(dim=(-1, -2)) for k in range(1, len(weights))], -1)
        drift = torch.stack([(incoming - outgoing - c0).abs().mean(-1) for (incoming, outgoing), c0 in zip(self.terms, self.c0)], -1)
        return {"predicted_alignment": self.u / norms, "c_drift": drift}


@dataclass
class Run:
    """The three settings of one family at one width: ``history`` (stacked, setting-major) and the ``law`` tracker;
    for Song's tasks also the data ``x`` ``(S, n, n)``, ``y`` ``(S, n, 1)``, ``feedback`` and ``layer_scales`` of the
    stacked batch (``None`` for real data, where no stability is computed)."""

    family: str
    p: int
    seeds: list[int]
    history: History
    law: AlignmentLaw
    x: Tensor | None = None
    y: Tensor | None = None
    feedback: list[Tensor | None] | None = None
    layer_scales: list[float] | None = None

    def setting(self, name: str) -> slice:
        """The batch positions of setting ``name``."""
        k, n = list(SETTINGS).index(name), len(self.seeds)
        return slice(k * n, (k + 1) * n)


def song_task(family: str, p: int, seeds: Sequence[int], device: str = "cpu") -> tuple:
    """``(x, y, weights, feedback, layer_scales)`` of Song's task for ``family`` (``"two-layer"`` or ``"three-layer"``)
    at width ``p``: the two-layer draws are the Song chapter's; the three-layer network inserts ``W_2`` and ``B_2``
    ``(S, p, p)`` from their own streams."""
    check_choice("family", family, SONG_FAMILIES)
    x, y, (w, beta), b = prepared_trials(ACTIVATION, p, seeds, song.N_SAMPLES, song.INPUT_DIM, DTYPE, device)
    if family == "two-layer":
        return x, y, [w, beta], [None, b], song.readout_scales(p)
    w2 = seeded_normal([(p, p)], seeds, [1.0], stream="second hidden layer", dtype=DTYPE, device=device)[0]
    b2 = seeded_normal([(p, p)], seeds, [1.0], stream="second hidden feedback", dtype=DTYPE, device=device)[0]
    return x, y, [w, w2, beta], [None, b2, b], [1.0, 1.0 / math.sqrt(p), 1.0 / math.sqrt(p)]


def run_song(family: str, p: int, seeds: Sequence[int], device: str = "cpu") -> Run:
    """Train the three settings of Song's task at width ``p`` for the authors' ``T_min(p)`` steps, as one batch."""
    x, y, weights, feedback, scales = song_task(family, p, seeds, device)
    n_settings = len(SETTINGS)
    batch, feedback = stack_settings([weights] * n_settings), stack_settings([feedback] * n_settings)
    x, y = x.repeat(n_settings, 1, 1), y.repeat(n_settings, 1, 1)
    eta, _ = song.core_hyperparameters(LR, LAMBDA)
    l2 = [v.to(device) for v in l2_per_layer(family, len(seeds))]
    law = AlignmentLaw(batch, feedback, lr=eta, l2=l2)
    steps = song.steps_for_width(p)
    history = train(batch, x, y, rule="fa", activation=ACTIVATION, lr=eta, steps=steps, feedback=feedback, l2=l2,
                    layer_scales=scales, record_every=max(1, steps // RECORDS), on_step=law.update,
                    extra_metrics=law.metrics, desc=f"synthesis {family} p={p}")
    return Run(family, p, list(seeds), history, law, x, y, feedback, scales)


def run_real(dataset: str, seeds: Sequence[int], config: Mapping[str, Any], device: str = "cpu") -> Run:
    """The primer's network and data (``config``: ``n_train``, ``n_test``, ``epochs``), FA, the three settings as one
    batch from the same weights and mini-batch order, in float64 with the law tracked at every step."""
    data = load_dataset(dataset, n_train=config["n_train"], n_test=config["n_test"], dtype=DTYPE, device=device)
    n_settings = len(SETTINGS)
    weights = stack_settings([init_weights(REAL_WIDTHS, seeds, dtype=DTYPE, device=device)] * n_settings)
    feedback = stack_settings([init_feedback(REAL_WIDTHS, seeds, rule="fa", dtype=DTYPE, device=device)] * n_settings)
    l2 = [v.to(device) for v in l2_per_layer("real", len(seeds))]
    law = AlignmentLaw(weights, feedback, lr=REAL_LR, l2=l2)
    steps = config["epochs"] * steps_per_epoch(len(data.y_train), REAL_BATCH)
    history = train(weights, data.x_train, data.y_train, rule="fa", activation=ACTIVATION, loss="ce", lr=REAL_LR,
                    steps=steps, batch_size=REAL_BATCH, feedback=feedback, l2=l2, record_every=max(1, steps // REAL_RECORDS),
                    test=(data.x_test, data.y_test), shuffle_seed=seeds[0], on_step=law.update, extra_metrics=law.metrics,
                    desc=f"synthesis real ({data.name})")
    return Run("real", REAL_WIDTHS[1], list(seeds), history, law)


def stability_at_end(run: Run, perturb_steps: int) -> dict[str, Tensor]:
    """At the end of the runs without L2: ``margin`` (least real part of the reduced matrix's eigenvalues), ``radius``
    (largest ``|1 - eta lambda|``: < 1 is stable for the step used), the Jacobian alignment ``cos(G, G~)`` and the
    perturbation test's ``growth`` (:func:`~fa_lib.training.stability.perturbation_growth`: < 0 decays), each ``(S_none,)``.
    Two-layer runs use the kernel form (:func:`fa_lib.theory.song.stability_matrix`), three-layer ones automatic differentiation."""
    none = run.setting("none")
    weights = [w[none] for w in run.history.weights]
    feedback = [None if f is None else f[none] for f in run.feedback]
    x, y = run.x[none], run.y[none]
    eta, _ = song.core_hyperparameters(LR, LAMBDA)
    if run.family == "two-layer":
        eig = torch.linalg.eigvalsh(song.stability_matrix(weights, x, ACTIVATION, feedback[1])).to(torch.complex128)
        alignment = song.kernel_jacobian_alignment(weights, x, ACTIVATION, feedback[1])
    else:
        kwargs = dict(rule="fa", activation=ACTIVATION, feedback=feedback, layer_scales=run.layer_scales)
        eig = fixed_points.stability_eigenvalues(weights, x, **kwargs)
        alignment = fixed_points.update_alignment(weights, x, **kwargs)
    growth = perturbation_growth(weights, x, y, rule="fa", activation=ACTIVATION, feedback=feedback, lr=eta,
                                 steps=perturb_steps, scale=PERTURB_SCALE, seeds=run.seeds, layer_scales=run.layer_scales)
    return dict(margin=eig.real.amin(-1), radius=(1 - eta * eig).abs().amax(-1), jacobian_alignment=alignment, growth=growth)


def end_rows(run: Run, perturb_steps: int) -> list[dict[str, Any]]:
    """One row per run: family, width, setting, seed, divergence, the final loss (Song's MSE; cross-entropy and test
    accuracy for real data), measured and predicted alignment of the readout (``alignment``, ``predicted``) and of the
    layer below it (``hidden_alignment``, ``hidden_predicted``; three-layer and real), the law's worst residual and least
    change; for Song's runs without L2 also :func:`stability_at_end` (perturbation test of ``perturb_steps`` steps)."""
    h = run.history
    stability = stability_at_end(run, perturb_steps) if run.family in SONG_FAMILIES else None
    measured, predicted = h.final("weight_alignment"), h.final("predicted_alignment")
    rows = []
    for k, name in enumerate(SETTINGS):
        for i, seed in enumerate(run.seeds):
            s = k * len(run.seeds) + i
            row = dict(family=run.family, p=run.p, setting=name, seed=seed, diverged=bool(h.diverged[s]),
                       alignment=float(measured[s, -1]), predicted=float(predicted[s, -1]),
                       law_residual=float(run.law.worst_residual[s]), least_change=float(run.law.least_change[s]))
            if measured.shape[-1] > 1:
                row |= dict(hidden_alignment=float(measured[s, -2]), hidden_predicted=float(predicted[s, -2]))
            if run.family == "real":
                row |= dict(loss=float(h.final("loss")[s]), test_accuracy=float(h.final("test_accuracy")[s]))
            else:
                row |= dict(mse=2 * float(h.final("loss")[s]))
            if stability is not None and name == "none":
                row |= {key: float(value[i]) for key, value in stability.items()}
            rows.append(row)
    return rows


def reduced_matrix_check(run: Run, n_seeds: int = 2) -> dict[str, float]:
    """At the reached points of the first ``n_seeds`` two-layer runs without L2: the largest relative distance
    ``||M - (G + H)/N|| / ||M||`` with ``M`` Chu & Bacho's reduced matrix by automatic differentiation, and the largest
    difference of :func:`fa_lib.theory.song.kernel_jacobian_alignment` from :func:`fixed_points.update_alignment` (Y6)."""
    none = run.setting("none")
    weights = [w[none][:n_seeds] for w in run.history.weights]
    b, x = run.feedback[1][none][:n_seeds], run.x[none][:n_seeds]
    kwargs = dict(rule="fa", activation=ACTIVATION, feedback=[None, b], layer_scales=run.layer_scales)
    reduced = fixed_points.reduced_matrix(weights, x, **kwargs)
    kernel = song.stability_matrix(weights, x, ACTIVATION, b)
    alignment_gap = (song.kernel_jacobian_alignment(weights, x, ACTIVATION, b) - fixed_points.update_alignment(weights, x, **kwargs)).abs().max()
    return dict(matrix=float(((reduced - kernel).norm(dim=(-1, -2)) / reduced.norm(dim=(-1, -2))).max()),
                alignment=float(alignment_gap))


def measure(family: str, p: int, seeds: Sequence[int], perturb_steps: int, check_reduced: bool,
            dataset: str = "auto", real: Mapping[str, Any] | None = None, device: str = "cpu") -> tuple:
    """One job of the chapter: a run (:func:`run_song` or, for ``family="real"``, :func:`run_real` with ``dataset`` and
    the profile's ``real`` settings), its :func:`end_rows` and, with ``check_reduced``, the :func:`reduced_matrix_check`;
    returns ``(Run, rows, check or None)``."""
    run = run_real(dataset, seeds, real, device) if family == "real" else run_song(family, p, seeds, device)
    return run, end_rows(run, perturb_steps), reduced_matrix_check(run) if check_reduced else None


def job_cost(family: str, p: int, real: Mapping[str, Any]) -> float:
    """A job's relative cost for scheduling, in units of one two-layer step per hidden unit: steps x p, times p / 50 for
    the three-layer network's ``p x p`` layer; a real-data step counts as 3000 (measured on a 2-core laptop)."""
    if family == "real":
        return 3000.0 * real["epochs"] * steps_per_epoch(real["n_train"], REAL_BATCH)
    return song.steps_for_width(p) * p * (p / song.N_SAMPLES if family == "three-layer" else 1.0)


def plan(config: Mapping[str, Any], seed: int, dataset: str, device: str = "cpu") -> tuple[list, dict[str, list[int]]]:
    """The :func:`measure` jobs for ``fa_lib.run_parallel``, longest first (:func:`job_cost`), and the seeds."""
    seeds = chapter_seeds(seed, config)
    smallest = min(config["widths"]["two-layer"])
    jobs = [(measure, dict(family=family, p=p, seeds=seeds[f"{family} p={p}"], perturb_steps=config["perturb_steps"],
                           check_reduced=family == "two-layer" and p == smallest, device=device))
            for family in SONG_FAMILIES for p in config["widths"][family]]
    jobs.append((measure, dict(family="real", p=REAL_WIDTHS[1], seeds=seeds["real"], perturb_steps=config["perturb_steps"],
                               check_reduced=False, dataset=dataset, real=config["real"], device=device)))
    jobs.sort(key=lambda job: -job_cost(job[1]["family"], job[1]["p"], config["real"]))
    return jobs, seeds


def collect(outcomes: Sequence[tuple]) -> tuple[dict[tuple[str, int], Run], list[dict[str, Any]], dict[str, float]]:
    """``({(family, p): Run}, every run's row, the reduced-matrix check)`` from :func:`measure`'s outcomes, by family and width."""
    outcomes = sorted(outcomes, key=lambda o: (FAMILIES.index(o[0].family), o[0].p))
    check = next(c for _, _, c in outcomes if c is not None)
    return {(run.family, run.p): run for run, _, _ in outcomes}, [r for _, rows, _ in outcomes for r in rows], check


def _select(rows: Sequence[Mapping[str, Any]], **where: Any) -> list[Mapping[str, Any]]:
    return [r for r in rows if all(r.get(k) == v for k, v in where.items()) and not r["diverged"]]


def _mean(rows: Sequence[Mapping[str, Any]], key: str, **where: Any) -> float:
    values = [r[key] for r in _select(rows, **where) if key in r]
    return float(np.mean(values)) if values else float("nan")


def _ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks of ``values`` (their correlation is Spearman's rho)."""
    return np.argsort(np.argsort(values))


def widths_run(rows: Sequence[Mapping[str, Any]], family: str) -> list[int]:
    """The widths of ``family`` in ``rows``, ascending."""
    return sorted({r["p"] for r in rows if r["family"] == family})
