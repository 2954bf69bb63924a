"""Chapter "Conservation laws" (``notebooks/02_conservation_laws.ipynb``; book page ``generated/02_conservation_laws``).

Layer-wise conservation laws of feedback alignment (Robertson & Koyejo, 2023) and GD's balancedness.

Index conventions. The paper numbers the weights ``W_1, ..., W_L``; the library's
``weights[i]`` is the paper's ``W_{i+1}`` and FA's ``feedback[i]`` (shaped like
``weights[i]``) is the paper's ``B_{i+1}``. Hidden layer ``k`` (``k = 1, ..., L-1``, width
``n_k``) is the output of ``weights[k-1]``; its quantities involve its incoming weights
``weights[k-1]`` (and bias ``biases[k-1]``) and its outgoing weights ``weights[k]`` with
their feedback ``feedback[k]``. Every function returns one entry per hidden layer, in
order: entry ``k-1`` belongs to hidden layer ``k``.

The laws (derived in chapter 02 from FA's dynamics, with ``G_k`` the update direction of
``W_k``, ``g_k`` that of ``b_k``, and plain steps ``W <- W - lr G``):

* FA, linear networks: ``C_k = W_k W_k^T + b_k b_k^T - (W_{k+1}^T B_{k+1} + B_{k+1}^T W_{k+1})``;
  one step changes it by exactly ``lr^2 (G_k G_k^T + g_k g_k^T)``.
* FA, ReLU (any positively homogeneous activation), per neuron ``j``: the diagonal
  ``c_{k,j} = ||W_k[j,:]||^2 + b_{k,j}^2 - 2 <B_{k+1}[:,j], W_{k+1}[:,j]>``; one step changes it by
  ``lr^2 (||G_k[j,:]||^2 + g_{k,j}^2) >= 0``.
* GD's balancedness (Du et al. 2018; Arora et al. 2018): the same with ``B`` replaced by ``W``,
  ``W_k W_k^T + b_k b_k^T - W_{k+1}^T W_{k+1}``; one step changes it by
  ``lr^2 (G_k G_k^T + g_k g_k^T - G_{k+1}^T G_{k+1})``.

All tensors keep the leading seed dimension ``*S`` of :mod:`fa_lib.networks`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..alignment import weight_alignment
from ..networks import Backward, check_biases, error_carrier
from ..training import History, train
from ..validation import check_choice, check_int

Tensor = torch.Tensor
LAW_RULES = ("fa", "bp")


def _check_law_arguments(weights: Sequence[Tensor], rule: str, feedback, biases) -> None:
    check_choice("rule", rule, LAW_RULES)
    if len(weights) < 2:
        raise ValueError(f"weights has {len(weights)} layer(s); conservation laws need at least one hidden layer (two layers)")
    for i in range(len(weights) - 1):
        if weights[i + 1].shape[-1] != weights[i].shape[-2] or weights[i + 1].shape[:-2] != weights[i].shape[:-2]:
            raise ValueError(f"weights[{i + 1}] has shape {tuple(weights[i + 1].shape)}; it does not follow weights[{i}] {tuple(weights[i].shape)}")
    if rule == "fa":
        if feedback is None or len(feedback) != len(weights):
            raise ValueError(f"rule='fa' needs feedback: a list of {len(weights)} entries aligned with weights (feedback[0] unused)")
        for i in range(1, len(weights)):
            if feedback[i] is None or feedback[i].shape != weights[i].shape:
                shape = None if feedback[i] is None else tuple(feedback[i].shape)
                raise ValueError(f"feedback[{i}] has shape {shape}; expected {tuple(weights[i].shape)} (shaped like weights[{i}])")
    check_biases(biases, weights)


def _law_terms(
    weights: Sequence[Tensor], rule: str, feedback, biases, per_neuron: bool
) -> list[tuple[Tensor, Tensor]]:
    """``(incoming, outgoing)`` per hidden layer, the two terms whose difference is the quantity.

    incoming ``W_k W_k^T + b_k b_k^T``; outgoing ``W_{k+1}^T B_{k+1} + B_{k+1}^T W_{k+1}`` (FA) or
    ``W_{k+1}^T W_{k+1}`` (GD); diagonals only when ``per_neuron``.
    """
    out = []
    for k in range(1, len(weights)):
        w_in, w_out, b = weights[k - 1], weights[k], None if biases is None else biases[k - 1]
        partner = error_carrier(rule, weights, feedback, k - 1)
        if per_neuron:
            incoming = (w_in**2).sum(dim=-1) + (0 if b is None else b**2)
            outgoing = (w_out * partner).sum(dim=-2)
            outgoing = 2 * outgoing if rule == "fa" else outgoing
        else:
            incoming = w_in @ w_in.transpose(-1, -2) + (0 if b is None else b.unsqueeze(-1) * b.unsqueeze(-2))
            outgoing = w_out.transpose(-1, -2) @ partner
            outgoing = outgoing + outgoing.transpose(-1, -2) if rule == "fa" else outgoing
        out.append((incoming, outgoing))
    return out


def conserved_quantities(
    weights: Sequence[Tensor],
    *,
    rule: str,
    feedback: Sequence[Tensor | None] | None = None,
    biases: Sequence[Tensor] | None = None,
    per_neuron: bool = False,
) -> list[Tensor]:
    """The conserved quantity of ``rule`` for every hidden layer ``k = 1..L-1``.

    ``rule="fa"``: ``C_k = W_k W_k^T + b_k b_k^T - (W_{k+1}^T B_{k+1} + B_{k+1}^T W_{k+1})``
    with ``W_k = weights[k-1]``, ``W_{k+1} = weights[k]``, ``B_{k+1} = feedback[k]``,
    ``b_k = biases[k-1]``. ``rule="bp"``: GD's balancedness
    ``W_k W_k^T + b_k b_k^T - W_{k+1}^T W_{k+1}``. Entry ``k-1`` has shape ``(*S, n_k, n_k)``;
    with ``per_neuron=True`` only the diagonal ``(*S, n_k)`` is computed (the per-neuron
    ``c_{k,j}`` conserved in ReLU networks).
    """
    _check_law_arguments(weights, rule, feedback, biases)
    return [incoming - outgoing for incoming, outgoing in _law_terms(weights, rule, feedback, biases, per_neuron)]


def _lr_like(lr: float | Tensor, q: Tensor, per_neuron: bool) -> float | Tensor:
    if isinstance(lr, Tensor):
        return lr.to(q).reshape(*lr.shape, *([1] * (1 if per_neuron else 2)))
    return float(lr)


def step_change(
    grads: Sequence[Tensor],
    *,
    rule: str,
    lr: float | Tensor,
    bias_grads: Sequence[Tensor] | None = None,
    per_neuron: bool = False,
) -> list[Tensor]:
    """The exact change of :func:`conserved_quantities` in one plain step ``W <- W - lr G``.

    ``grads[i]`` (and ``bias_grads[i]``) are the update directions of ``weights[i]``
    (``biases[i]``) under ``rule``. FA: ``lr^2 (G_k G_k^T + g_k g_k^T)``; GD:
    ``lr^2 (G_k G_k^T + g_k g_k^T - G_{k+1}^T G_{k+1})``, one entry per hidden layer ``k``
    (shapes as in :func:`conserved_quantities`). ``lr`` is a number or an ``(S,)`` tensor.
    """
    check_choice("rule", rule, LAW_RULES)
    if len(grads) < 2:
        raise ValueError(f"grads has {len(grads)} entries; expected one per layer (at least two)")
    if bias_grads is not None and len(bias_grads) != len(grads):
        raise ValueError(f"bias_grads has {len(bias_grads)} entries; expected {len(grads)}")
    out = []
    for k in range(1, len(grads)):
        g_in, g_out = grads[k - 1], grads[k]
        if per_neuron:
            q = (g_in**2).sum(dim=-1)
            if bias_grads is not None:
                q = q + bias_grads[k - 1] ** 2
            if rule == "bp":
                q = q - (g_out**2).sum(dim=-2)
        else:
            q = g_in @ g_in.transpose(-1, -2)
            if bias_grads is not None:
                q = q + bias_grads[k - 1].unsqueeze(-1) * bias_grads[k - 1].unsqueeze(-2)
            if rule == "bp":
                q = q - g_out.transpose(-1, -2) @ g_out
        out.append(_lr_like(lr, q, per_neuron) ** 2 * q)
    return out


def feedback_inner_products(weights: Sequence[Tensor], feedback: Sequence[Tensor | None]) -> Tensor:
    """``<W_{k+1}, B_{k+1}>_F`` for every hidden layer ``k`` (``weights[k]`` with ``feedback[k]``): ``(*S, L-1)``."""
    _check_law_arguments(weights, "fa", feedback, None)
    return torch.stack([(weights[k] * feedback[k]).sum(dim=(-1, -2)) for k in range(1, len(weights))], dim=-1)


def alignment_identity(
    weights: Sequence[Tensor],
    *,
    initial_sums: Tensor,
    accumulated_change: Tensor,
    biases: Sequence[Tensor] | None = None,
) -> Tensor:
    """The alignment identity's prediction of ``<W_{k+1}, B_{k+1}>_F`` under FA, ``(*S, L-1)``.

    ``1/2 (||W_k||_F^2 + ||b_k||^2 - sum_j c_{k,j}(0) - sum_s lr^2 (||G_k(s)||_F^2 + ||g_k(s)||^2))``
    (ReLU or linear FA with plain steps): ``initial_sums`` is ``sum_j c_{k,j}(0)`` and
    ``accumulated_change`` the summed one-step changes (:func:`step_change` summed over
    neurons and steps), both ``(*S, L-1)``. Compare with :func:`feedback_inner_products`.
    """
    return 0.5 * (_incoming_squares(weights, biases) - initial_sums - accumulated_change)


def _incoming_squares(weights: Sequence[Tensor], biases: Sequence[Tensor] | None) -> Tensor:
    """``||W_k||_F^2 + ||b_k||^2`` for every hidden layer ``k``: ``(*S, L-1)``."""
    sq = torch.stack([(weights[k - 1] ** 2).sum(dim=(-1, -2)) for k in range(1, len(weights))], dim=-1)
    if biases is not None:
        sq = sq + torch.stack([(biases[k - 1] ** 2).sum(dim=-1) for k in range(1, len(weights))], dim=-1)
    return sq


def feedback_shift(weights: Sequence[Tensor], feedback: Sequence[Tensor | None], *, target: float) -> list[Tensor]:
    """Weights with ``sum_j c_{k,j} = target * ||W_k||_F^2`` for every hidden layer ``k`` (bias-free FA).

    Adds ``mu_k B_{k+1}`` to ``W_{k+1}`` (``weights[k]``), layer by layer from the first hidden
    layer up, with ``mu_k = (||W_k||^2 - 2 <W_{k+1}, B_{k+1}> - target ||W_k||^2) / (2 ||B_{k+1}||^2)``
    per seed (``W_k`` is final when layer ``k`` is reached). ``target=0``: the boundary of the
    sufficient condition ``sum_j c_{k,j}(0) <= 0``; ``target=2``: ``<W_{k+1}, B_{k+1}> = -||W_k||^2 / 2``
    (anti-aligned, the condition violated). The input layer ``weights[0]`` is unchanged.
    """
    _check_law_arguments(weights, "fa", feedback, None)
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not np.isfinite(target):
        raise ValueError(f"target={target!r} must be a finite number")
    out = [w.clone() for w in weights]
    for k in range(1, len(out)):
        incoming = (out[k - 1] ** 2).sum(dim=(-1, -2))
        b = feedback[k]
        mu = (incoming - 2 * (out[k] * b).sum(dim=(-1, -2)) - target * incoming) / (2 * (b**2).sum(dim=(-1, -2)))
        out[k] = out[k] + mu[..., None, None] * b
    return out


def ratio_summary(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """``min``, ``max`` and ``mean`` of ``a / b`` over every entry (NaN entries, from diverged seeds, ignored)."""
    r = np.asarray(a, dtype=float) / np.asarray(b, dtype=float)
    return {"min": float(np.nanmin(r)), "max": float(np.nanmax(r)), "mean": float(np.nanmean(r))}


def fitted_slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of ``y`` on ``x`` along the first axis (records): ``(R, ...) -> (...)``."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    dx, dy = x - x.mean(0), y - y.mean(0)
    return (dx * dy).sum(0) / (dx**2).sum(0)


# --------------------------------------------------------------------------- trajectories
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
        _check_law_arguments(weights, "fa", feedback, biases)
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
        return {law: _law_terms(weights, law, self.feedback, biases, self.per_neuron) for law in LAW_RULES}

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
                  "incoming_squares": _incoming_squares(weights, biases), **self.drift(weights, biases)}
        if self.rule == "fa":
            predicted = alignment_identity(weights, initial_sums=self.fa_sums0, accumulated_change=self.accumulated, biases=biases)
            scale = 0.5 * (_incoming_squares(weights, biases) + self.fa_sums0.abs() + self.accumulated) + inner.abs()
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
    incoming0 = [a for a, _ in _law_terms(weights, "fa", feedback, biases, per_neuron)]

    def metrics(current: Sequence[Tensor], current_biases: Sequence[Tensor] | None = None) -> dict[str, Tensor]:
        now = {law: conserved_quantities(current, rule=law, biases=current_biases, **kw) for law in LAW_RULES}
        incoming = [a for a, _ in _law_terms(current, "fa", feedback, current_biases, per_neuron)]
        out = {
            f"drift_{law}": torch.stack([_norm(q - q0, per_neuron) for q, q0 in zip(now[law], initial[law])], dim=-1)
            for law in LAW_RULES
        }
        out["fa_neuron_change"] = torch.stack([_diagonal(q, per_neuron).sum(-1) for q in now["fa"]], dim=-1) - fa_sums0
        out["incoming_change"] = torch.stack([_norm(a - a0, per_neuron) for a, a0 in zip(incoming, incoming0)], dim=-1)
        return out

    return metrics


# --------------------------------------------------------------------------- minimum norm
def min_norm_interpolant(x: Tensor, y: Tensor) -> Tensor:
    """The minimum-norm linear interpolant ``M* = (X^+ Y)^T``, ``(*S, n_out, d)``.

    ``x``: ``(*S, N, d)`` samples as rows; ``y``: ``(*S, N, n_out)``. For ``d > N`` and ``X`` of
    full row rank, ``x @ M*^T = y`` exactly and ``M*`` has the least Frobenius norm among
    all such maps (its rows lie in the row space of ``X``).
    """
    if x.dim() < 2 or y.dim() < 2 or x.shape[-2] != y.shape[-2]:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must be (*S, N, d) and (*S, N, n_out) with the same N")
    return (torch.linalg.pinv(x) @ y).transpose(-1, -2)


def null_space_projector(x: Tensor) -> Tensor:
    """``P = I - X^+ X``, ``(*S, d, d)``: the projector onto the null space of ``X`` (``(*S, N, d)``)."""
    if x.dim() < 2:
        raise ValueError(f"x has shape {tuple(x.shape)}; expected (*S, N, d)")
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    return eye - torch.linalg.pinv(x) @ x


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
