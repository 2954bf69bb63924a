"""What chapter "Conservation laws" tracks along training: both laws at every step, and the distance to the minimum norm.

:class:`LawTracker` checks the trained rule's one-step law (:func:`fa_lib.theory.conservation.step_change`) at every
step of :func:`fa_lib.training.train` and records the per-record quantities; :func:`conservation_trajectory` runs it
and returns a :class:`Trajectory`. :func:`drift_tracker` and :func:`min_norm_tracker` are ``extra_metrics`` for
:func:`fa_lib.training.train`. Index conventions and shapes are those of :mod:`fa_lib.theory.conservation`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from ...alignment import weight_alignment
from ...networks import Backward
from ...theory.conservation import (
    LAW_RULES,
    alignment_identity,
    check_law_arguments,
    conserved_quantities,
    feedback_inner_products,
    incoming_squares,
    law_terms,
    min_norm_interpolant,
    null_space_projector,
    step_change,
)
from ...training import History, stack_settings, train
from ...validation import check_choice, check_int

Tensor = torch.Tensor


def _norm(q: Tensor, per_neuron: bool) -> Tensor:
    """Frobenius norm of a per-layer quantity: over the last axis (neurons) or the last two (matrix)."""
    return q.flatten(-1 if per_neuron else -2).norm(dim=-1)


def _diagonal(q: Tensor, per_neuron: bool) -> Tensor:
    return q if per_neuron else torch.diagonal(q, dim1=-2, dim2=-1)


def _ratio(a: Tensor, b: Tensor) -> Tensor:
    """``a / b`` for ``b >= 0``; where ``b == 0``: 0 if ``a == 0``, else ``sign(a) * inf``."""
    safe = torch.where(b > 0, b, torch.ones_like(b))
    return torch.where(b > 0, a / safe, torch.where(a == 0, torch.zeros_like(a), torch.sign(a) * float("inf")))


@dataclass
class Trajectory:
    """What :func:`conservation_trajectory` recorded (``R`` records, ``S`` seeds, ``L-1`` hidden layers).

    Records: ``steps`` ``(R,)``; ``loss`` ``(R, S)``; ``drift[law]`` ``(R, S, L-1)``, the
    Frobenius norm ``||Q_k(t) - Q_k(0)||`` of the quantity of ``law`` (``"fa"``: ``C_k``;
    ``"bp"``: GD's balancedness; diagonals only when ``per_neuron``); ``fa_neuron_change``
    ``(R, S, L-1)``: ``sum_j c_{k,j}(t) - c_{k,j}(0)``; ``weight_alignment`` ``(R, S, L-1)``:
    ``cos(W_{k+1}, B_{k+1})``; ``feedback_inner`` ``(R, S, L-1)``: ``<W_{k+1}, B_{k+1}>_F``;
    ``incoming_squares`` ``(R, S, L-1)``: ``||W_k||_F^2 + ||b_k||^2``; ``identity_residual`` ``(R, S, L-1)`` (rule ``"fa"`` only, else
    ``None``): ``|<W_{k+1}, B_{k+1}> -`` :func:`alignment_identity` ``|`` over the size of the
    identity's terms, ``1/2 (||W_k||^2 + ||b_k||^2 + |sum_j c_{k,j}(0)| + accumulated) + |<W_{k+1}, B_{k+1}>|``.

    Over every step, ``(S, L-1)``, for the trained rule's own law with
    ``r = ||Q(t+1) - Q(t) - step_change||``: ``law_residual`` max of ``r / terms`` where
    ``terms = ||incoming|| + ||outgoing||`` is the size of the two terms that make up ``Q(t)``
    (float64 resolves ``Q`` to ~1e-16 of it); ``law_residual_of_change`` max of
    ``r / ||step_change||``; ``change_to_terms`` and ``max_change_to_terms`` min and max of
    ``||step_change|| / terms`` (how far the predicted change lies above that resolution). ``min_neuron_change``: min over steps and
    neurons of the one-step change of FA's ``c_{k,j}`` over the size of its terms (``>= 0`` up
    to roundoff: monotone). ``neuron_change_range`` ``(S, L-1, 2)``: min and max over steps and
    neurons of the one-step change of the trained rule's own per-neuron quantity (the diagonal
    of its ``Q``) over the size of its terms (FA: ``>= 0``; GD: either sign). Records of a seed from the step its loss or weights stop being
    finite are NaN; ``diverged`` ``(S,)`` marks those seeds.
    """

    steps: np.ndarray
    loss: np.ndarray
    drift: dict[str, np.ndarray]
    fa_neuron_change: np.ndarray
    weight_alignment: np.ndarray
    feedback_inner: np.ndarray
    incoming_squares: np.ndarray
    identity_residual: np.ndarray | None
    law_residual: np.ndarray
    law_residual_of_change: np.ndarray
    change_to_terms: np.ndarray
    max_change_to_terms: np.ndarray
    min_neuron_change: np.ndarray
    neuron_change_range: np.ndarray
    diverged: np.ndarray
    weights: list[Tensor] = field(repr=False)
    biases: list[Tensor] | None = field(repr=False)


class LawTracker:
    """Both laws checked at every step of :func:`fa_lib.training.train` (pass :meth:`on_step`) and the
    per-record quantities (pass :meth:`metrics` as ``extra_metrics``); :meth:`trajectory` then assembles
    the :class:`Trajectory`. ``rule`` and ``lr`` are those of the run (plain steps: no momentum, no weight
    decay); ``weights``, ``feedback``, ``biases`` are the start, as in :func:`conservation_trajectory`."""

    def __init__(self, weights: Sequence[Tensor], feedback: Sequence[Tensor | None], *, rule: str, lr: float | Tensor,
                 biases: Sequence[Tensor] | None = None, per_neuron: bool = False) -> None:
        check_choice("rule", rule, LAW_RULES)
        check_law_arguments(weights, "fa", feedback, biases)
        self.rule, self.lr, self.feedback, self.per_neuron = rule, lr, feedback, per_neuron
        self.drift = drift_tracker(weights, feedback, biases=biases, per_neuron=per_neuron)
        fa0 = conserved_quantities(weights, rule="fa", feedback=feedback, biases=biases, per_neuron=per_neuron)
        self.fa_sums0 = torch.stack([_diagonal(q, per_neuron).sum(-1) for q in fa0], dim=-1)  # sum_j c_{k,j}(0)
        self.accumulated = torch.zeros_like(self.fa_sums0)
        self.nan = torch.full_like(self.fa_sums0, float("nan"))
        zeros, inf = torch.zeros_like(self.nan), torch.full_like(self.nan, float("inf"))
        self.law_residual, self.law_residual_of_change, self.max_change = zeros, zeros, zeros
        self.change_to_terms, self.min_change, self.own_min, self.own_max = inf, inf, inf, -inf
        self.terms = self._terms(weights, biases)

    def _terms(self, weights: Sequence[Tensor], biases: Sequence[Tensor] | None) -> dict[str, list[tuple[Tensor, Tensor]]]:
        return {law: law_terms(weights, law, self.feedback, biases, self.per_neuron) for law in LAW_RULES}

    def on_step(self, step: int, weights: list[Tensor], biases: list[Tensor] | None, result: Backward, alive: Tensor) -> None:
        """Compare the step's change of each law's quantity with :func:`step_change` (``result`` made the step)."""
        pn, before = self.per_neuron, self.terms
        self.terms = terms = self._terms(weights, biases)
        own = step_change(result.grads, rule=self.rule, lr=self.lr, bias_grads=result.bias_grads, per_neuron=pn)
        residual, size, predicted, monotone, own_change = [], [], [], [], []
        for (a1, b1), (a0, b0), p in zip(terms[self.rule], before[self.rule], own):
            residual.append(_norm((a1 - b1) - (a0 - b0) - p, pn))
            size.append(_norm(a0, pn) + _norm(b0, pn))
            predicted.append(_norm(p, pn))
            change = _diagonal((a1 - b1) - (a0 - b0), pn)
            own_change.append(_ratio(change, _diagonal(a0, pn).abs() + _diagonal(b0, pn).abs()))
        for (a1, b1), (a0, b0) in zip(terms["fa"], before["fa"]):
            change = _diagonal((a1 - b1) - (a0 - b0), pn)
            monotone.append(_ratio(change, _diagonal(a0, pn).abs() + _diagonal(b0, pn).abs()).amin(-1))
        residual, size, predicted = torch.stack(residual, -1), torch.stack(size, -1), torch.stack(predicted, -1)
        fa_step = step_change(result.grads, rule="fa", lr=self.lr, bias_grads=result.bias_grads, per_neuron=True)
        self.accumulated = self.accumulated + torch.stack([p.sum(-1) for p in fa_step], dim=-1)
        keep, nan = alive.unsqueeze(-1), self.nan
        self.law_residual = torch.where(keep, torch.maximum(self.law_residual, _ratio(residual, size)), nan)
        self.law_residual_of_change = torch.where(keep, torch.maximum(self.law_residual_of_change, _ratio(residual, predicted)), nan)
        self.change_to_terms = torch.where(keep, torch.minimum(self.change_to_terms, _ratio(predicted, size)), nan)
        self.max_change = torch.where(keep, torch.maximum(self.max_change, _ratio(predicted, size)), nan)
        self.min_change = torch.where(keep, torch.minimum(self.min_change, torch.stack(monotone, -1)), nan)
        self.own_min = torch.where(keep, torch.minimum(self.own_min, torch.stack([c.amin(-1) for c in own_change], -1)), nan)
        self.own_max = torch.where(keep, torch.maximum(self.own_max, torch.stack([c.amax(-1) for c in own_change], -1)), nan)

    def metrics(self, weights: Sequence[Tensor], biases: Sequence[Tensor] | None = None) -> dict[str, Tensor]:
        """The per-record quantities of :class:`Trajectory` (each ``(S, L-1)``)."""
        inner = feedback_inner_products(weights, self.feedback)
        values = {"weight_alignment": weight_alignment(weights, self.feedback), "feedback_inner": inner,
                  "incoming_squares": incoming_squares(weights, biases), **self.drift(weights, biases)}
        if self.rule == "fa":
            predicted = alignment_identity(weights, initial_sums=self.fa_sums0, accumulated_change=self.accumulated, biases=biases)
            scale = 0.5 * (incoming_squares(weights, biases) + self.fa_sums0.abs() + self.accumulated) + inner.abs()
            values["identity_residual"] = _ratio((inner - predicted).abs(), scale)
        return values

    def trajectory(self, history: History) -> Trajectory:
        """The run's :class:`Trajectory` from its :class:`fa_lib.training.History`."""
        m = history.metrics
        return Trajectory(
            steps=history.steps, loss=m["loss"], drift={law: m[f"drift_{law}"] for law in LAW_RULES},
            fa_neuron_change=m["fa_neuron_change"], weight_alignment=m["weight_alignment"],
            feedback_inner=m["feedback_inner"], incoming_squares=m["incoming_squares"],
            identity_residual=m.get("identity_residual"),
            law_residual=self.law_residual.cpu().numpy(), law_residual_of_change=self.law_residual_of_change.cpu().numpy(),
            change_to_terms=self.change_to_terms.cpu().numpy(), max_change_to_terms=self.max_change.cpu().numpy(),
            min_neuron_change=self.min_change.cpu().numpy(),
            neuron_change_range=torch.stack([self.own_min, self.own_max], -1).cpu().numpy(),
            diverged=history.diverged, weights=history.weights, biases=history.biases,
        )


def conservation_trajectory(
    weights: Sequence[Tensor],
    x: Tensor,
    y: Tensor,
    *,
    rule: str,
    activation: str,
    lr: float | Tensor,
    steps: int,
    feedback: Sequence[Tensor | None],
    biases: Sequence[Tensor] | None = None,
    per_neuron: bool = False,
    record_every: int = 1,
    loss: str = "mse",
    progress: bool = False,
    desc: str | None = None,
) -> Trajectory:
    """Full-batch plain steps of ``rule`` (``"fa"`` or ``"bp"``) by :func:`fa_lib.training.train`, tracking both laws.

    ``feedback`` (FA's ``B``) is needed for either rule: under GD it is the fixed random
    matrix that FA's quantity and the weight alignment are measured against (a control).
    ``per_neuron=False`` tracks the matrices ``C_k`` (the law of linear networks);
    ``per_neuron=True`` their diagonals (the ReLU law). Every step checks the trained rule's
    own one-step law (:func:`step_change`) and FA's per-neuron monotonicity (:class:`LawTracker`);
    records are taken at step 0, every ``record_every`` steps and at the end. See :class:`Trajectory`.
    """
    check_int("steps", steps, minimum=1)
    tracker = LawTracker(weights, feedback, rule=rule, lr=lr, biases=biases, per_neuron=per_neuron)
    history = train(weights, x, y, rule=rule, activation=activation, lr=lr, steps=steps, loss=loss,
                    feedback=feedback if rule == "fa" else None, biases=biases, record_every=record_every,
                    extra_metrics=tracker.metrics, on_step=tracker.on_step, progress=progress, desc=desc or f"plain {rule}")
    return tracker.trajectory(history)


def drift_tracker(
    weights: Sequence[Tensor],
    feedback: Sequence[Tensor | None],
    *,
    biases: Sequence[Tensor] | None = None,
    per_neuron: bool = False,
) -> Callable[..., dict[str, Tensor]]:
    """How far both laws' quantities have moved from their values at ``weights`` (and ``biases``).

    The returned callable maps ``(weights, biases=None)`` to ``{"drift_fa", "drift_bp",
    "fa_neuron_change", "incoming_change"}``, each ``(S, L-1)``: the first three as in
    :class:`Trajectory`, ``incoming_change`` the norm of the change of the incoming term
    (``W_k W_k^T + b_k b_k^T``, its diagonal when ``per_neuron``), the change that FA's law
    ties to the feedback overlap (``drift_fa / incoming_change``: the share it leaves unmatched). It is also an
    ``extra_metrics`` for :func:`fa_lib.training.train`, which is how the chapter
    shows that momentum and weight decay break the laws.
    """
    kw = dict(feedback=feedback, per_neuron=per_neuron)
    initial = {law: conserved_quantities(weights, rule=law, biases=biases, **kw) for law in LAW_RULES}
    fa_sums0 = torch.stack([_diagonal(q, per_neuron).sum(-1) for q in initial["fa"]], dim=-1)
    incoming0 = [a for a, _ in law_terms(weights, "fa", feedback, biases, per_neuron)]

    def metrics(current: Sequence[Tensor], current_biases: Sequence[Tensor] | None = None) -> dict[str, Tensor]:
        now = {law: conserved_quantities(current, rule=law, biases=current_biases, **kw) for law in LAW_RULES}
        incoming = [a for a, _ in law_terms(current, "fa", feedback, current_biases, per_neuron)]
        out = {
            f"drift_{law}": torch.stack([_norm(q - q0, per_neuron) for q, q0 in zip(now[law], initial[law])], dim=-1)
            for law in LAW_RULES
        }
        out["fa_neuron_change"] = torch.stack([_diagonal(q, per_neuron).sum(-1) for q in now["fa"]], dim=-1) - fa_sums0
        out["incoming_change"] = torch.stack([_norm(a - a0, per_neuron) for a, a0 in zip(incoming, incoming0)], dim=-1)
        return out

    return metrics



class DiscreteTerm:
    """FA's discrete term per hidden neuron, accumulated along plain bias-free steps of :func:`fa_lib.training.train`.

    ``robertson_koyejo_2023.md``, "Discrete steps": each FA step adds ``lr^2 ||G_k[j,:]||^2`` to ``c_{k,j}``
    (:func:`fa_lib.theory.conservation.step_change`), so the whole change of ``c_{k,j}`` from ``weights`` is
    ``D_{k,j}(t) = sum_{s <= t} lr^2 ||G_k[j,:](s)||^2``, whatever the loss and the mini-batches. Pass :meth:`on_step`
    to ``train`` and call the instance at the records (it is an ``extra_metrics``): ``discrete_term`` ``(S, L-1)``,
    ``||D_k||`` (norm over neurons); ``discrete_remainder`` ``(S, L-1)``, ``||Delta c_k - D_k||`` over the size of
    ``c_k``'s two terms (:func:`fa_lib.theory.conservation.law_terms`), the rounding left of the discrete law.
    ``lr``: a number or ``(S,)``, as in ``train``.
    """

    def __init__(self, weights: Sequence[Tensor], feedback: Sequence[Tensor | None], *, lr: float | Tensor):
        check_law_arguments(weights, "fa", feedback, None)
        self.feedback, self.lr = feedback, lr
        self.initial = conserved_quantities(weights, rule="fa", feedback=feedback, per_neuron=True)
        self.total = [torch.zeros_like(q) for q in self.initial]

    def on_step(self, step: int, weights: list[Tensor], biases: list[Tensor] | None, result: Backward, alive: Tensor) -> None:
        """Add this step's ``lr^2 ||G_k[j,:]||^2`` (``result.grads`` made the update)."""
        for total, change in zip(self.total, step_change(result.grads, rule="fa", lr=self.lr, per_neuron=True)):
            total.add_(change)

    def __call__(self, weights: Sequence[Tensor]) -> dict[str, Tensor]:
        now = conserved_quantities(weights, rule="fa", feedback=self.feedback, per_neuron=True)
        terms = law_terms(weights, "fa", self.feedback, None, True)
        remainder = [_norm(q - q0 - d, True) / (_norm(a, True) + _norm(b, True))
                     for q, q0, d, (a, b) in zip(now, self.initial, self.total, terms)]
        return {"discrete_term": torch.stack([_norm(d, True) for d in self.total], dim=-1),
                "discrete_remainder": torch.stack(remainder, dim=-1)}


def min_norm_tracker(x: Tensor, y: Tensor, first_layer: Tensor) -> Callable[[list[Tensor]], dict[str, Tensor]]:
    """An ``extra_metrics`` callable for :func:`fa_lib.training.train` on two-layer linear networks.

    ``first_layer``: ``W_1(0)`` (``weights[0]`` at the start), ``(*S, h, d)``. Returns per seed
    ``min_norm_distance`` ``||W_2 W_1 - M*||_F``, ``min_norm_relative_error`` (that over
    ``||M*||_F``) and ``null_space_change`` ``||(W_1(t) - W_1(0)) P||_F / ||W_1(t) - W_1(0)||_F``
    (the share of W_1's movement outside the row space of X: 0 in exact arithmetic, 0 before
    any movement).
    """
    target = min_norm_interpolant(x, y)
    projector = null_space_projector(x)
    start = first_layer.detach().clone()
    target_norm = target.flatten(-2).norm(dim=-1)

    def metrics(weights: list[Tensor]) -> dict[str, Tensor]:
        if len(weights) != 2:
            raise ValueError(f"min_norm_tracker needs a two-layer network; got {len(weights)} layers")
        distance = (weights[1] @ weights[0] - target).flatten(-2).norm(dim=-1)
        moved = weights[0] - start
        moved_norm = moved.flatten(-2).norm(dim=-1)
        outside = (moved @ projector).flatten(-2).norm(dim=-1)
        share = torch.where(moved_norm > 0, outside / torch.where(moved_norm > 0, moved_norm, 1), torch.zeros_like(outside))
        return {"min_norm_distance": distance, "min_norm_relative_error": distance / target_norm, "null_space_change": share}

    return metrics


def split_trajectory(traj: Trajectory, names: Sequence[str]) -> dict[str, Trajectory]:
    """One :class:`Trajectory` per setting of a run that stacked ``len(names)`` settings of equal seed count along the
    seed axis, setting-major (as :func:`fa_lib.training.stack_settings` builds it); like
    :meth:`fa_lib.training.History.split`."""
    n_seeds = traj.diverged.shape[0]
    if not names or n_seeds % len(names):
        raise ValueError(f"{n_seeds} seeds cannot be split into {len(names)} equal settings {list(names)}")
    size = n_seeds // len(names)
    out = {}
    for i, name in enumerate(names):
        part = slice(i * size, (i + 1) * size)
        records = {k: getattr(traj, k)[:, part] for k in ("loss", "fa_neuron_change", "weight_alignment", "feedback_inner",
                                                           "incoming_squares")}
        per_step = {k: getattr(traj, k)[part] for k in ("law_residual", "law_residual_of_change", "change_to_terms",
                                                         "max_change_to_terms", "min_neuron_change", "neuron_change_range", "diverged")}
        out[name] = replace(
            traj, **records, **per_step, drift={law: v[:, part] for law, v in traj.drift.items()},
            identity_residual=None if traj.identity_residual is None else traj.identity_residual[:, part],
            weights=[w[part] for w in traj.weights], biases=None if traj.biases is None else [b[part] for b in traj.biases])
    return out


def stacked_trajectories(settings: Mapping[str, Sequence[Tensor]], x: Tensor, y: Tensor, feedback: Sequence[Tensor | None],
                         **kwargs: Any) -> dict[str, Trajectory]:
    """:func:`conservation_trajectory` of several starts (``{name: weights}``, each ``(S, ...)`` per layer, all on the same
    data ``x``, ``y`` and ``feedback``) as one batch; one :class:`Trajectory` per name. ``kwargs``: those of
    :func:`conservation_trajectory`."""
    n = len(settings)
    bx, by = stack_settings([[x, y]] * n)
    traj = conservation_trajectory(stack_settings(list(settings.values())), bx, by, feedback=stack_settings([feedback] * n), **kwargs)
    return split_trajectory(traj, list(settings))
