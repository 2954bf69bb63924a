"""Chapter "Three theories on one network" (``notebooks/04_synthesis.ipynb``; book page ``generated/04_synthesis``).

Robertson & Koyejo's per-neuron law, Song, Xu & Lafferty's alignment against width and Chu &
Bacho's stability criterion, measured on the same FA runs, each with no L2, L2 on the readout
(Song's) and L2 on every layer, stacked setting-major on the same draws (a paired comparison).
Three families of runs (:data:`FAMILIES`):

* ``two-layer``: Song's ReLU model ``[W (S, p, k), beta (S, 1, p)]`` on Song's synthetic teacher task, in
  row-space coordinates (``k = n``), feedback ``[None, b]``, readout scale ``1/sqrt(p)``;
* ``three-layer``: the same task with a second hidden layer ``W_2 (S, p, p)`` (scale ``1/sqrt(p)``, feedback
  ``B_2``), everything N(0, 1);
* ``real``: the primer's network (784-128-128-10 ReLU, LeCun initialisation, cross-entropy, SGD in
  mini-batches) on the primer's data set.

Song's tasks use the authors' ReLU learning rate and ``lambda`` in their MSELoss convention
(fa_lib's ``eta = 2 lr``, ``l2 = lam / 2``) and run the authors' ``T_min(p)`` steps. The two
identities the chapter derives and tests:

* the per-neuron law with L2 (:func:`~fa_lib.chapters.conservation_laws.step_change_with_l2`); summed
  over the neurons of hidden layer ``k`` it predicts the alignment of the layer above from the layer
  below alone, ``u(t+1) = (1 - eta l2_{k+1}) u(t) + 1/2 (||W_k(t+1)||^2 - ||W_k(t)||^2
  + 2 eta l2_k ||W_k(t)||^2 - eta^2 ||G_k(t) + l2_k W_k(t)||^2)`` with ``u = <W_{k+1}, B_{k+1}>``
  (:class:`AlignmentLaw`);
* at a zero-error point of the two-layer model Chu & Bacho's reduced matrix ``(1/N) G_m . G~_n`` is Song's
  FA kernel ``(G + H)/N`` with partner ``b`` (:func:`stability_matrix`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data import DATASETS, load_dataset
from ..networks import Backward, init_feedback, init_weights, seeded_normal
from ..plotting import table_style, width_label
from ..training import History, stack_settings, steps_per_epoch, train
from ..validation import check_choice
from . import conservation_laws as CL
from . import primer
from . import two_layer_convergence as song
from . import why_align

Tensor = torch.Tensor

FAMILIES = ("two-layer", "three-layer", "real")  # Song's task at two depths; the primer's network on real data
SONG_FAMILIES = ("two-layer", "three-layer")
PROFILES = {
    # widths p per family of Song's task; seeds per width (each seed: its own data, teacher, weights and feedback);
    # steps of the perturbation test; the real-data runs (the primer's network at its width). default fits about
    # 2.5 minutes on two cores: every step of every run tracks the law in float64, and the two-layer p = 800 runs
    # (10101 steps) alone would take two of them.
    "ci":      dict(widths={"two-layer": [100, 200], "three-layer": [100]}, seeds=3, perturb_steps=1000,
                    real=dict(n_train=6000, n_test=1000, epochs=1, seeds=2)),
    "default": dict(widths={"two-layer": [200, 400], "three-layer": [200]}, seeds=3, perturb_steps=2000,
                    real=dict(n_train=20000, n_test=1000, epochs=2, seeds=3)),
    "paper":   dict(widths={"two-layer": [200, 800, 3200], "three-layer": [200, 400, 800]}, seeds=10, perturb_steps=4000,
                    real=dict(n_train=60000, n_test=10000, epochs=10, seeds=10)),
}
ACTIVATION = "relu"
LR = song.LEARNING_RATES[ACTIVATION]  # the authors' ReLU learning rate (MSELoss convention)
LAMBDA = 0.05  # the middle of the authors' ReLU grid (0.02, 0.05, 0.2), MSELoss convention
REAL_LAMBDA = song.REAL_LAMBDAS[1]  # the authors' smallest real-data lambda (cross-entropy: fa_lib's l2 itself)
SETTINGS = {"none": "no L2", "readout": "L2 on the readout (Song's)", "all": "L2 on every layer"}
RECORDS = 60  # records per run of Song's task
REAL_RECORDS = 20  # records per real-data run (each evaluates the test images)
DTYPE = torch.float64  # the laws are identities: float64 so that rounding stays far below every bound
LAW_BOUND = 1e-10  # Y1: relative residual of the one-step law
PREDICTION_BOUND = 1e-8  # Y2: |predicted - measured| of the final alignments
NEURON_ROUNDING = 1e-12  # Y5: a change of c_j above -NEURON_ROUNDING x its terms counts as >= 0
ZERO_ERROR = 1e-8  # Y7: the runs without L2 whose final MSE is below this reached a zero-error point
KERNEL_BOUND = 1e-10  # Y6: relative distance of the reduced matrix from (G + H) / N
PERTURB_SCALE = 1e-2  # Y7: size of the perturbation (norm in parameter space)


def chapter_parameters(dataset: str) -> dict[str, Any]:
    """Check the chapter's own papermill parameter ``dataset`` (``"auto"`` or one of ``DATASETS``, the real-data runs)."""
    check_choice("dataset", dataset, ("auto", *DATASETS))
    return dict(dataset=dataset, activation=ACTIVATION, lr=LR, lam=LAMBDA, real_lam=REAL_LAMBDA,
                real_widths=primer.WIDTHS, real_lr=primer.LR, real_batch=primer.BATCH)


def chapter_seeds(seed: int, config: Mapping[str, Any]) -> dict[str, list[int]]:
    """``{"<family> p=<p>": seeds, "real": seeds}``: every family and width has its own draws, derived from ``seed``."""
    seeds = {f"{family} p={p}": [int(v) for v in np.random.SeedSequence([seed, 4, k, p]).generate_state(config["seeds"], dtype=np.uint32)]
             for k, family in enumerate(SONG_FAMILIES) for p in config["widths"][family]}
    seeds["real"] = [int(v) for v in np.random.SeedSequence([seed, 4, 2]).generate_state(config["real"]["seeds"], dtype=np.uint32)]
    return seeds


def l2_per_layer(family: str, n_seeds: int) -> list[Tensor]:
    """fa_lib's ``l2`` of every layer for the stacked settings: one ``(3 n_seeds,)`` tensor per layer, setting-major."""
    l2 = REAL_LAMBDA if family == "real" else song.core_hyperparameters(LR, LAMBDA)[1]
    depth = {"two-layer": 2, "three-layer": 3, "real": len(primer.WIDTHS) - 1}[family]
    on = {"none": [0.0] * depth, "readout": [0.0] * (depth - 1) + [l2], "all": [l2] * depth}
    return [torch.tensor([on[s][layer] for s in SETTINGS for _ in range(n_seeds)], dtype=DTYPE) for layer in range(depth)]


class AlignmentLaw:
    """A per-step tracker (``train``'s ``on_step``) of the per-neuron law with L2 and of the alignment it predicts.

    After each step it compares the change of every hidden neuron's ``c_{k,j} = ||W_k[j,:]||^2 - 2 <B_{k+1}[:,j],
    W_{k+1}[:,j]>`` with :func:`~fa_lib.chapters.conservation_laws.step_change_with_l2` (``worst_residual`` ``(S,)``:
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
        self.u = CL.feedback_inner_products(weights, feedback)
        n_seeds = weights[0].shape[0]
        self.worst_residual = torch.zeros(n_seeds, dtype=weights[0].dtype, device=weights[0].device)
        self.least_change = torch.full((n_seeds,), float("inf"), dtype=weights[0].dtype, device=weights[0].device)

    def _terms(self, weights: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
        """Per hidden layer: ``(||W_k[j,:]||^2, 2 <B_{k+1}[:,j], W_{k+1}[:,j]>)``, each ``(S, n_k)``; ``c_{k,j}`` is their difference."""
        return CL.law_terms(weights, "fa", self.feedback, None, per_neuron=True)

    def update(self, step: int, weights: list[Tensor], biases, result: Backward, alive: Tensor) -> None:
        laws = CL.step_change_with_l2(self.previous, result.grads, self.feedback, lr=self.lr, l2=self.l2)
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
    x, y, (w, beta), b = song.prepared_trials(ACTIVATION, p, seeds, song.N_SAMPLES, song.INPUT_DIM, DTYPE, device)
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
    weights = stack_settings([init_weights(primer.WIDTHS, seeds, dtype=DTYPE, device=device)] * n_settings)
    feedback = stack_settings([init_feedback(primer.WIDTHS, seeds, rule="fa", dtype=DTYPE, device=device)] * n_settings)
    l2 = [v.to(device) for v in l2_per_layer("real", len(seeds))]
    law = AlignmentLaw(weights, feedback, lr=primer.LR, l2=l2)
    steps = config["epochs"] * steps_per_epoch(len(data.y_train), primer.BATCH)
    history = train(weights, data.x_train, data.y_train, rule="fa", activation=ACTIVATION, loss="ce", lr=primer.LR,
                    steps=steps, batch_size=primer.BATCH, feedback=feedback, l2=l2, record_every=max(1, steps // REAL_RECORDS),
                    test=(data.x_test, data.y_test), shuffle_seed=seeds[0], on_step=law.update, extra_metrics=law.metrics,
                    desc=f"synthesis real ({data.name})")
    return Run("real", primer.WIDTHS[1], list(seeds), history, law)


def stability_matrix(weights: Sequence[Tensor], x: Tensor, b: Tensor) -> Tensor:
    """Song's FA kernel over the sample count, ``(G + H) / N`` ``(S, N, N)`` with partner ``b``: at a
    zero-error point of the two-layer model, Chu & Bacho's reduced matrix of the FA update (:func:`why_align.reduced_matrix`)."""
    g, h = song.kernels(weights, x, ACTIVATION, b)
    return (g + h) / x.shape[-2]


def kernel_jacobian_alignment(weights: Sequence[Tensor], x: Tensor, b: Tensor) -> Tensor:
    """Two-layer ``cos(G, G~)`` ``(S,)``: the Frobenius cosine of the output Jacobian and FA's pseudo-Jacobian over all
    samples, from the kernels' traces (:func:`why_align.update_alignment` without automatic differentiation)."""
    def trace(w: Sequence[Tensor], partner: Tensor) -> Tensor:
        g, h = song.kernels(w, x, ACTIVATION, partner)
        return torch.diagonal(g + h, dim1=-2, dim2=-1).sum(-1)

    w, beta = weights
    return trace(weights, b) / (trace(weights, beta) * trace([w, b], b)).sqrt()


def stability_at_end(run: Run, perturb_steps: int) -> dict[str, Tensor]:
    """At the end of the runs without L2: ``margin`` (least real part of the reduced matrix's eigenvalues), ``radius``
    (largest ``|1 - eta lambda|``: < 1 is stable for the step used), the Jacobian alignment ``cos(G, G~)`` and the
    perturbation test's ``growth`` (:func:`why_align.perturbation_growth`: < 0 decays), each ``(S_none,)``.
    Two-layer runs use the kernel form (:func:`stability_matrix`), three-layer ones automatic differentiation."""
    none = run.setting("none")
    weights = [w[none] for w in run.history.weights]
    feedback = [None if f is None else f[none] for f in run.feedback]
    x, y = run.x[none], run.y[none]
    eta, _ = song.core_hyperparameters(LR, LAMBDA)
    if run.family == "two-layer":
        eig = torch.linalg.eigvalsh(stability_matrix(weights, x, feedback[1])).to(torch.complex128)
        alignment = kernel_jacobian_alignment(weights, x, feedback[1])
    else:
        kwargs = dict(rule="fa", activation=ACTIVATION, feedback=feedback, layer_scales=run.layer_scales)
        eig = why_align.stability_eigenvalues(weights, x, **kwargs)
        alignment = why_align.update_alignment(weights, x, **kwargs)
    growth = why_align.perturbation_growth(weights, x, y, rule="fa", activation=ACTIVATION, feedback=feedback, lr=eta,
                                           steps=perturb_steps, scale=PERTURB_SCALE, seeds=run.seeds,
                                           layer_scales=run.layer_scales)
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
    difference of :func:`kernel_jacobian_alignment` from :func:`why_align.update_alignment` (Y6)."""
    none = run.setting("none")
    weights = [w[none][:n_seeds] for w in run.history.weights]
    b, x = run.feedback[1][none][:n_seeds], run.x[none][:n_seeds]
    kwargs = dict(rule="fa", activation=ACTIVATION, feedback=[None, b], layer_scales=run.layer_scales)
    reduced = why_align.reduced_matrix(weights, x, **kwargs)
    kernel = stability_matrix(weights, x, b)
    alignment_gap = (kernel_jacobian_alignment(weights, x, b) - why_align.update_alignment(weights, x, **kwargs)).abs().max()
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
        return 3000.0 * real["epochs"] * steps_per_epoch(real["n_train"], primer.BATCH)
    return song.steps_for_width(p) * p * (p / song.N_SAMPLES if family == "three-layer" else 1.0)


def plan(config: Mapping[str, Any], seed: int, dataset: str, device: str = "cpu") -> tuple[list, dict[str, list[int]]]:
    """The :func:`measure` jobs for ``fa_lib.run_parallel``, longest first (:func:`job_cost`), and the seeds."""
    seeds = chapter_seeds(seed, config)
    smallest = min(config["widths"]["two-layer"])
    jobs = [(measure, dict(family=family, p=p, seeds=seeds[f"{family} p={p}"], perturb_steps=config["perturb_steps"],
                           check_reduced=family == "two-layer" and p == smallest, device=device))
            for family in SONG_FAMILIES for p in config["widths"][family]]
    jobs.append((measure, dict(family="real", p=primer.WIDTHS[1], seeds=seeds["real"], perturb_steps=config["perturb_steps"],
                               check_reduced=False, dataset=dataset, real=config["real"], device=device)))
    jobs.sort(key=lambda job: -job_cost(job[1]["family"], job[1]["p"], config["real"]))
    return jobs, seeds


def collect(outcomes: Sequence[tuple]) -> tuple[dict[tuple[str, int], Run], list[dict[str, Any]], dict[str, float]]:
    """``({(family, p): Run}, every run's row, the reduced-matrix check)`` from :func:`measure`'s outcomes, by family and width."""
    outcomes = sorted(outcomes, key=lambda o: (FAMILIES.index(o[0].family), o[0].p))
    check = next(c for _, _, c in outcomes if c is not None)
    return {(run.family, run.p): run for run, _, _ in outcomes}, [r for _, rows, _ in outcomes for r in rows], check


# --------------------------------------------------------------------------- records, claims, figures
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


def record_runs(results, rows: Sequence[Mapping[str, Any]], real: Mapping[str, Any]) -> None:
    """Record every run's row (``metrics.runs``) and the glued numbers the prose quotes (keys present at every profile);
    ``real`` is the profile's real-data settings."""
    real_n_train = real["n_train"]
    real_steps = real["epochs"] * steps_per_epoch(real_n_train, primer.BATCH)
    results.metric("runs", list(rows))
    eta, l2 = song.core_hyperparameters(LR, LAMBDA)
    two, three = widths_run(rows, "two-layer"), widths_run(rows, "three-layer")
    for name, value in dict(syn_lr=LR, syn_lambda=LAMBDA, syn_eta=eta, syn_l2=l2, syn_n=song.N_SAMPLES, syn_d=song.INPUT_DIM,
                            syn_real_lambda=REAL_LAMBDA, syn_real_lr=primer.LR, syn_real_width=primer.WIDTHS[1],
                            syn_runs=len(rows), syn_diverged=sum(r["diverged"] for r in rows),
                            syn_min_steps=song.steps_for_width(min(two)), syn_max_steps=song.steps_for_width(max(two)),
                            syn_three_p=max(three), syn_three_widths=len(three), syn_two_widths=len(two),
                            syn_real_steps=real_steps, syn_real_n_train=real_n_train).items():
        results.number(name, value)
    for end, p in (("first", min(two)), ("last", max(two))):  # the prose quotes the smallest and largest width
        results.number(f"syn_p_{end}", p)
        for setting in SETTINGS:
            results.number(f"syn_align_{setting}_{end}", _mean(rows, "alignment", family="two-layer", p=p, setting=setting))
        results.number(f"syn_margin_{end}", _mean(rows, "margin", family="two-layer", p=p, setting="none"))
        results.number(f"syn_jacobian_alignment_{end}", _mean(rows, "jacobian_alignment", family="two-layer", p=p, setting="none"))
    for setting in SETTINGS:
        for family, tag in (("three-layer", "three"), ("real", "real")):
            p = max(widths_run(rows, family))
            results.number(f"syn_{tag}_align_{setting}", _mean(rows, "alignment", family=family, p=p, setting=setting))
            results.number(f"syn_{tag}_hidden_align_{setting}", _mean(rows, "hidden_alignment", family=family, p=p, setting=setting))
        results.number(f"syn_real_accuracy_{setting}", 100 * _mean(rows, "test_accuracy", family="real", setting=setting))
    results.number("syn_three_margin", _mean(rows, "margin", family="three-layer", p=max(three), setting="none"))
    stable = [r for r in rows if "margin" in r and not r["diverged"]]
    rho = float(np.corrcoef(_ranks([r["margin"] for r in stable]), _ranks([r["jacobian_alignment"] for r in stable]))[0, 1])
    results.number("syn_margin_alignment_rho", rho)
    results.number("syn_stability_runs", len(stable))


def record_claims(results, rows: Sequence[Mapping[str, Any]], reduced: Mapping[str, float]) -> None:
    """Claims Y1-Y7, each naming the paper whose prediction it tests."""
    live = _select(rows)
    by_family = {family: len([r for r in live if r["family"] == family]) for family in FAMILIES}
    worst = max(r["law_residual"] for r in live)
    results.claim(
        "Y1", paper="robertson2023layerwise",
        statement="Per-neuron law with L2 (derived here): one FA step with L2 changes c_{k,j} by exactly "
                  "lr^2 ||G_k[j,:] + l2_k W_k[j,:]||^2 - 2 lr l2_k ||W_k[j,:]||^2 + 2 lr l2_{k+1} <B_{k+1}[:,j], W_{k+1}[:,j]>, "
                  "in every hidden layer of the two-layer, three-layer and real-data networks.",
        expected=f"max over every step, layer, neuron, run and setting of |change - law| / terms <= {LAW_BOUND:g}",
        measured={"worst_relative_residual": worst, "runs": by_family, "diverged": len(rows) - len(live)},
        tolerance=f"{LAW_BOUND:g}: the law is exact algebra for ReLU networks without biases, so only float64 rounding (about "
                  "1e-16 of the terms per operation, summed over a row of W) separates the two sides, as in chapter 02's K2.",
        passed=worst <= LAW_BOUND and len(live) == len(rows),
    )
    gaps = {family: max(max(abs(r["predicted"] - r["alignment"]),
                            abs(r.get("hidden_predicted", 0.0) - r.get("hidden_alignment", 0.0))) for r in live if r["family"] == family)
            for family in FAMILIES}
    results.claim(
        "Y2", paper="robertson2023layerwise",
        statement="The law predicts each layer's alignment with its feedback from the layer below alone: u(t+1) = "
                  "(1 - lr l2_{k+1}) u(t) + 1/2 (change of ||W_k||^2 + 2 lr l2_k ||W_k(t)||^2 - lr^2 ||G_k + l2_k W_k||^2), "
                  "cos(W_{k+1}, B_{k+1}) = u / (||W_{k+1}|| ||B_{k+1}||), at every width and in every setting.",
        expected=f"|predicted - measured final alignment| <= {PREDICTION_BOUND:g} in every layer above the first, every run",
        measured={f"worst_difference ({family})": v for family, v in gaps.items()},
        tolerance=f"{PREDICTION_BOUND:g}: the recursion is exact; float64 rounding accumulated over up to "
                  f"{song.steps_for_width(max(widths_run(rows, 'two-layer')))} steps stays orders of magnitude below it.",
        passed=max(gaps.values()) <= PREDICTION_BOUND,
    )
    for sub, family in (("a", "two-layer"), ("b", "three-layer")):
        widths = widths_run(rows, family)
        fade = [_mean(rows, "alignment", family=family, p=p, setting="none") for p in widths]
        statement = (f"{family}: without L2 the readout's alignment cos(beta, b) fades as the width grows (Song et al.: no "
                     "alignment without regularisation).")
        if len(widths) < 2:
            results.skip_claim(f"Y3{sub}", statement=statement, reason="needs several widths; this profile runs one",
                               paper="song2021convergence")
            continue
        results.claim(
            f"Y3{sub}", paper="song2021convergence", statement=statement,
            expected="mean final cos(beta, b) without L2 strictly decreasing over the widths run",
            measured={f"p={p}": v for p, v in zip(widths, fade)},
            tolerance="a trend, no bound: Song et al. predict a decrease with p, and their tables show one at every step of "
                      "their width grid (chapter 03, S2b).",
            passed=all(a > b for a, b in zip(fade, fade[1:])),
        )
    pairs = {(family, setting): [(r["alignment"], n["alignment"]) for r in live for n in live
                                 if r["family"] == n["family"] == family and r["setting"] == setting and n["setting"] == "none"
                                 and r["seed"] == n["seed"] and r["p"] == n["p"]]
             for family in FAMILIES for setting in ("readout", "all")}
    results.claim(
        "Y4", paper="song2021convergence",
        statement="L2 makes the readout align: on the same draws, the final cos(beta, b) with L2 (on the readout; on every "
                  "layer) exceeds the one without, at every width, in all three families.",
        expected="in every paired run: readout alignment with L2 > without",
        measured={f"{family}, {setting}": {"pairs": len(v), "smallest_gain": min(a - b for a, b in v)} for (family, setting), v in pairs.items()},
        tolerance="a sign, no bound: Song et al.'s regularised theorem gives alignment bounded away from zero, and their "
                  "tables increase with lambda in every row (chapter 03, S3b).",
        passed=all(v for v in pairs.values()) and all(a > b for v in pairs.values() for a, b in v),
    )
    plain = {family: min(r["least_change"] for r in live if r["setting"] == "none" and r["family"] == family) for family in FAMILIES}
    broken = {family: max(r["least_change"] for r in live if r["setting"] == "readout" and r["family"] == family) for family in FAMILIES}
    results.claim(
        "Y5", paper="robertson2023layerwise",
        statement="Without L2 no neuron's c_{k,j} ever decreases (the law's drift is lr^2 ||G_k[j,:]||^2 >= 0); L2 on the readout "
                  "breaks the law at first order: in every run some c_j decreases (the term 2 lr l2 <b_j, beta_j> takes both signs).",
        expected=f"least one-step change / terms >= -{NEURON_ROUNDING:g} in every run without L2, and < -{NEURON_ROUNDING:g} "
                 "in every run with L2 on the readout, in every family",
        measured={"least_change_without_l2": plain, "largest_least_change_with_l2": broken},
        tolerance=f"{NEURON_ROUNDING:g} of the terms: float64 rounding of c_j's two terms; a decrease beyond it is real.",
        passed=min(plain.values()) >= -NEURON_ROUNDING and max(broken.values()) < -NEURON_ROUNDING,
    )
    results.claim(
        "Y6", paper="chu2024why", kind="implementation",
        statement="At a zero-error point of the two-layer model Chu & Bacho's reduced matrix (1/N) G_m . G~_n of the FA update "
                  "is Song et al.'s FA kernel (G + H)/N with partner b, and cos(G, G~) follows from the kernels' traces.",
        expected=f"||M - (G + H)/N|| / ||M|| <= {KERNEL_BOUND:g} and |cos from traces - cos by autodiff| <= {KERNEL_BOUND:g} at the "
                 "reached points (smallest two-layer width, two runs; M by automatic differentiation)",
        measured={"relative_distance": reduced["matrix"], "alignment_difference": reduced["alignment"]},
        tolerance=f"{KERNEL_BOUND:g}: an identity, computed two ways in float64.",
        passed=reduced["matrix"] <= KERNEL_BOUND and reduced["alignment"] <= KERNEL_BOUND,
    )
    for sub, family in (("a", "two-layer"), ("b", "three-layer")):
        none = [r for r in live if r["family"] == family and r["setting"] == "none"]
        reached = [r for r in none if r["mse"] <= ZERO_ERROR]
        stable = [r["margin"] > 0 and r["radius"] < 1 for r in reached]
        decays = [r["growth"] < 0 for r in reached]
        aligned = [r["jacobian_alignment"] > 0 for r in reached]
        results.claim(
            f"Y7{sub}", paper="chu2024why",
            statement=f"{family}: where FA converges without L2 the point reached is stable: every eigenvalue of the reduced "
                      "matrix has a positive real part and |1 - lr lambda| < 1, a perturbation of the point decays under FA, "
                      "and the update is aligned with the gradient there (cos(G, G~) > 0).",
            expected=f"at least one run without L2 reaches MSE <= {ZERO_ERROR:g} within T_min(p) steps; in every one that does, "
                     "the criterion says stable, the perturbation's loss falls over the second half of the test and cos(G, G~) > 0",
            measured={"runs": len(none), "reached": len(reached), "criterion_stable": int(sum(stable)),
                      "perturbation_decays": int(sum(decays)), "aligned": int(sum(aligned)),
                      "smallest_margin": min((r["margin"] for r in reached), default=float("nan")),
                      "largest_radius": max((r["radius"] for r in reached), default=float("nan"))},
            tolerance=f"signs, no bound: the criterion is exact for the linearised map at a zero-error point (MSE <= {ZERO_ERROR:g} "
                      "stands for zero), and the perturbation test's sign is what it predicts. Reaching the point is not this "
                      "claim's prediction (none of the three theories bounds the time a three-layer network takes).",
            passed=bool(reached) and all(stable) and all(decays) and all(aligned),
        )


SETTING_COLORS = {"none": "C0", "readout": "C1", "all": "C2"}
FAMILY_MARKERS = {"two-layer": ("o", "-"), "three-layer": ("s", "--")}


def alignment_figure(rows: Sequence[Mapping[str, Any]]):
    """Final ``cos(beta, b)`` against the width per setting on Song's task: runs as markers (mean +/- sd; circles
    two-layer, squares three-layer), the law's prediction from the layer below as a line."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for family, (marker, line) in FAMILY_MARKERS.items():
        widths = widths_run(rows, family)
        for setting, label in SETTINGS.items():
            measured = [[r["alignment"] for r in _select(rows, family=family, p=p, setting=setting)] for p in widths]
            predicted = [_mean(rows, "predicted", family=family, p=p, setting=setting) for p in widths]
            ax.errorbar(widths, [np.mean(v) for v in measured], yerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for v in measured],
                        fmt=marker, ms=7, mfc="none", capsize=3, color=SETTING_COLORS[setting],
                        label=f"{label}, {family}" if family == "two-layer" or len(widths) == 1 else None)
            ax.plot(widths, predicted, line, marker=".", color=SETTING_COLORS[setting])
    ticks = sorted({r["p"] for r in rows if r["family"] in FAMILY_MARKERS})
    ax.set_xscale("log")
    ax.set_xticks(ticks, [width_label(p) for p in ticks])
    ax.minorticks_off()
    ax.set(xlabel="width p", ylabel=r"final $\cos(\beta, b)$", ylim=(0, 1),
           title="markers: runs (○ two-layer, □ three-layer); lines: the law's prediction")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize="small")
    return fig


def drift_figure(runs: Mapping[tuple[str, int], Run]):
    """Mean over the last hidden layer's neurons (the layer below the readout, where the readout's L2 enters the law) of
    ``|c_j(t) - c_j(0)|`` against the step, per setting (mean over seeds): one panel per family, Song's tasks at their
    largest width."""
    import matplotlib.pyplot as plt

    chosen = [max((run for run in runs.values() if run.family == family), key=lambda run: run.p) for family in FAMILIES]
    fig, axes = plt.subplots(1, len(chosen), figsize=(9.6, 3.6))
    for ax, run in zip(axes, chosen):
        steps = run.history.steps
        keep = steps > 0
        for setting, label in SETTINGS.items():
            drift = np.nanmean(run.history.metrics["c_drift"][:, run.setting(setting), -1], axis=1)
            ax.loglog(steps[keep], drift[keep], color=SETTING_COLORS[setting], label=label)
        ax.set(xlabel="step", title=f"{run.family}, p = {run.p}")
    axes[0].set_ylabel(r"mean $|c_j(t) - c_j(0)|$")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3)
    fig.suptitle("drift of the last hidden layer's c_j (the layer below the readout)")
    return fig


def stability_figure(rows: Sequence[Mapping[str, Any]]):
    """Stability margin (least real part of the reduced matrix's eigenvalues) against the Jacobian alignment, runs of
    Song's task without L2; widths in greys, circles two-layer, squares three-layer."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    widths = sorted({r["p"] for r in rows if "margin" in r})
    for family, (marker, _) in FAMILY_MARKERS.items():
        for p in widths_run(rows, family):
            mine = [r for r in _select(rows, family=family, p=p, setting="none") if "margin" in r]
            shade = 0.65 - 0.55 * widths.index(p) / max(1, len(widths) - 1)
            ax.plot([r["jacobian_alignment"] for r in mine], [r["margin"] for r in mine], marker, ls="none", color=str(shade),
                    mfc="none" if family == "three-layer" else str(shade), label=f"{family}, p={p}")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set(xlabel=r"Jacobian alignment $\cos(G, \tilde G)$", ylabel=r"margin $\min \mathrm{Re}\,\lambda(M)$")
    ax.legend(fontsize="small")
    return fig


def runs_table(rows: Sequence[Mapping[str, Any]]):
    """Per family, width and setting: the final loss (MSE, or test accuracy for real data), readout alignment and the
    law's prediction, the layer below's alignment, and (Song's task without L2) margin and Jacobian alignment."""
    import pandas as pd

    table = []
    for family in FAMILIES:
        for p in widths_run(rows, family):
            for setting, label in SETTINGS.items():
                where = dict(family=family, p=p, setting=setting)
                table.append({"network": family, "p": p, "setting": label,
                              "final MSE": _mean(rows, "mse", **where), "test accuracy (%)": 100 * _mean(rows, "test_accuracy", **where),
                              "cos(β, b)": _mean(rows, "alignment", **where), "law's prediction": _mean(rows, "predicted", **where),
                              "cos(W₂, B₂)": _mean(rows, "hidden_alignment", **where),
                              "margin": _mean(rows, "margin", **where), "Jacobian alignment": _mean(rows, "jacobian_alignment", **where)})
    formats = {"final MSE": "{:.2e}", "test accuracy (%)": "{:.1f}", "margin": "{:.3f}"}
    frame = pd.DataFrame(table)
    formats = {c: _or_dash(formats.get(c, "{:.4f}")) for c in frame.columns if frame[c].dtype.kind == "f"}
    return table_style(frame, formats)


def _or_dash(spec: str):
    """A cell formatter: ``spec`` for a number, a dash where the quantity does not apply (NaN)."""
    def formatter(value: float) -> str:
        return "—" if np.isnan(value) else spec.format(value)

    return formatter


def theory_table(results) -> str:
    """The closing Markdown table: what each theory predicts on these runs, the claims that test it and their verdicts,
    and what the theory misses on these runs."""
    verdict = {c["id"]: c["verdict"] for c in results.claims}

    def row(theory: str, predicts: str, ids: Sequence[str], missed: str) -> str:
        return f"| {theory} | {predicts} | " + ", ".join(f"{i}: {verdict.get(i, 'not run')}" for i in ids) + f" | {missed} |"

    return "\n".join([
        "| theory | predicts on these runs | claims | what it misses |", "| --- | --- | --- | --- |",
        row("Robertson & Koyejo", "c_kj conserved up to lr² terms; each layer's alignment from the layer below's norm; "
            "L2 breaks the law at first order (derived here)", ("Y1", "Y2", "Y5"),
            "how much W_k grows: the law turns growth into alignment but does not predict the growth"),
        row("Song, Xu & Lafferty", "no readout alignment without L2 as p grows; L2 aligns", ("Y3a", "Y3b", "Y4"),
            "the mechanism: alignment is half the growth of the layer below over ‖β‖ ‖b‖; the hidden layers of deeper networks"),
        row("Chu & Bacho", "the point FA reaches is stable, with the update aligned; stability set by the reduced matrix",
            ("Y6", "Y7a", "Y7b"), "points with residual error (every run with L2, the real-data runs), where the criterion does not apply"),
    ])
