"""Robertson & Koyejo (2023): the layer-wise conservation laws of feedback alignment, as pure functions of tensors.

Implements ``shared/papers/robertson_koyejo_2023.md``, section "Laws": the conserved quantities of FA (and GD's
balancedness, the known counterpart), their exact one-step changes under plain steps and with L2, the
alignment identity that follows from them, and the minimum-norm result for two-layer linear networks.
No training, plotting or results recording here; the chapter ``fa_lib.chapters.conservation_laws`` runs
and checks them.

Index conventions. The paper numbers the weights ``W_1, ..., W_L``; the library's
``weights[i]`` is the paper's ``W_{i+1}`` and FA's ``feedback[i]`` (shaped like
``weights[i]``) is the paper's ``B_{i+1}``. Hidden layer ``k`` (``k = 1, ..., L-1``, width
``n_k``) is the output of ``weights[k-1]``; its quantities involve its incoming weights
``weights[k-1]`` (and bias ``biases[k-1]``) and its outgoing weights ``weights[k]`` with
their feedback ``feedback[k]``. Every function returns one entry per hidden layer, in
order: entry ``k-1`` belongs to hidden layer ``k``.

The laws (with ``G_k`` the update direction of ``W_k``, ``g_k`` that of ``b_k``, and plain steps
``W <- W - lr G``):

* FA, linear networks ("Linear networks"): ``C_k = W_k W_k^T + b_k b_k^T - (W_{k+1}^T B_{k+1} + B_{k+1}^T W_{k+1})``;
  one step changes it by exactly ``lr^2 (G_k G_k^T + g_k g_k^T)`` ("Discrete steps").
* FA, ReLU (any positively homogeneous activation), per neuron ``j`` ("ReLU / leaky ReLU"): the diagonal
  ``c_{k,j} = ||W_k[j,:]||^2 + b_{k,j}^2 - 2 <B_{k+1}[:,j], W_{k+1}[:,j]>``; one step changes it by
  ``lr^2 (||G_k[j,:]||^2 + g_{k,j}^2) >= 0``.
* GD's balancedness (Du et al. 2018; Arora et al. 2018): the same with ``B`` replaced by ``W``,
  ``W_k W_k^T + b_k b_k^T - W_{k+1}^T W_{k+1}``; one step changes it by
  ``lr^2 (G_k G_k^T + g_k g_k^T - G_{k+1}^T G_{k+1})``.

All tensors keep the leading seed dimension ``*S`` of :mod:`fa_lib.networks`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..networks import check_biases, error_carrier
from ..validation import check_choice

Tensor = torch.Tensor
LAW_RULES = ("fa", "bp")  # FA's law and GD's balancedness


def check_law_arguments(weights: Sequence[Tensor], rule: str, feedback, biases) -> None:
    """``ValueError`` unless ``weights`` (``(*S, n_{i+1}, n_i)`` each, at least two, each following the one below),
    ``feedback`` (``rule="fa"``: one entry per layer, ``feedback[i]`` shaped like ``weights[i]`` for ``i >= 1``) and
    ``biases`` (``None`` or ``(*S, n_{i+1})`` per layer) fit the laws of section "Laws" of ``robertson_koyejo_2023.md``."""
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


def law_terms(
    weights: Sequence[Tensor], rule: str, feedback, biases, per_neuron: bool
) -> list[tuple[Tensor, Tensor]]:
    """``(incoming, outgoing)`` per hidden layer, the two terms whose difference is the quantity.

    ``robertson_koyejo_2023.md``, "Laws", paragraphs "Linear networks" (the matrices) and "ReLU / leaky ReLU"
    (their diagonals): incoming ``W_k W_k^T + b_k b_k^T``; outgoing ``W_{k+1}^T B_{k+1} + B_{k+1}^T W_{k+1}``
    (FA) or ``W_{k+1}^T W_{k+1}`` (GD). Each term ``(*S, n_k, n_k)``, or its diagonal ``(*S, n_k)`` when
    ``per_neuron``. The arguments are not checked (see :func:`conserved_quantities`).
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

    ``robertson_koyejo_2023.md``, "Laws", paragraphs "Linear networks" (``C_l``, and GD's balancedness) and
    "ReLU / leaky ReLU" (``c_{l,j}``, the diagonal).

    ``rule="fa"``: ``C_k = W_k W_k^T + b_k b_k^T - (W_{k+1}^T B_{k+1} + B_{k+1}^T W_{k+1})``
    with ``W_k = weights[k-1]``, ``W_{k+1} = weights[k]``, ``B_{k+1} = feedback[k]``,
    ``b_k = biases[k-1]``. ``rule="bp"``: GD's balancedness
    ``W_k W_k^T + b_k b_k^T - W_{k+1}^T W_{k+1}``. Entry ``k-1`` has shape ``(*S, n_k, n_k)``;
    with ``per_neuron=True`` only the diagonal ``(*S, n_k)`` is computed (the per-neuron
    ``c_{k,j}`` conserved in ReLU networks).
    """
    check_law_arguments(weights, rule, feedback, biases)
    return [incoming - outgoing for incoming, outgoing in law_terms(weights, rule, feedback, biases, per_neuron)]


def _lr_like(lr: float | Tensor, q: Tensor, per_neuron: bool) -> float | Tensor:
    """A step size (a number, or ``(S,)`` per seed) shaped to multiply ``q``: ``(S, 1)`` for a per-neuron
    ``q`` ``(S, n)``, ``(S, 1, 1)`` for a matrix ``(S, n, m)``; a number stays a float."""
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

    ``robertson_koyejo_2023.md``, "Laws", paragraph "Discrete steps (what code actually runs)".

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


def step_change_with_l2(
    weights: Sequence[Tensor],
    grads: Sequence[Tensor],
    feedback: Sequence[Tensor | None],
    *,
    lr: float | Tensor,
    l2: Sequence[float | Tensor],
) -> list[Tensor]:
    """The exact change of FA's per-neuron ``c_{k,j}`` in one step with L2, ``W_k <- W_k - lr (G_k + l2_k W_k)``.

    ``robertson_koyejo_2023.md``, "Laws", paragraph "Discrete steps" ("weight decay break[s] the laws"), made exact;
    the step with L2 is that of ``notation.md``, "Learning rules". ``weights``, ``grads``: ``(*S, n_{i+1}, n_i)``
    per layer; ``feedback`` as in :func:`conserved_quantities`.

    ReLU or linear FA without biases, at the weights before the step (``weights``, their FA
    update directions ``grads``), ``(*S, n_k)`` per hidden layer ``k``:

        lr^2 ||G_k[j,:] + l2_k W_k[j,:]||^2 - 2 lr l2_k ||W_k[j,:]||^2 + 2 lr l2_{k+1} <B_{k+1}[:,j], W_{k+1}[:,j]>.

    Derived in the synthesis chapter from ``<W_k[j,:], G_k[j,:]> = <B_{k+1}[:,j], G_{k+1}[:,j]>`` (FA,
    homogeneous activation); with ``l2 = 0`` it is :func:`step_change`'s ``lr^2 ||G_k[j,:]||^2``. The
    last term is first order in ``lr``: L2 breaks the law at first order, by ``2 lr l2_{k+1}`` times the
    neuron's own alignment term. ``lr`` and every ``l2_k`` (one per layer) are numbers or ``(S,)`` tensors.
    """
    check_law_arguments(weights, "fa", feedback, None)
    if len(grads) != len(weights) or len(l2) != len(weights):
        raise ValueError(f"grads and l2 need one entry per layer ({len(weights)}); got {len(grads)} and {len(l2)}")
    out = []
    for k in range(1, len(weights)):
        w_in, w_out = weights[k - 1], weights[k]
        eta, decay_in, decay_out = (_lr_like(v, w_in, per_neuron=True) for v in (lr, l2[k - 1], l2[k]))
        step_in = grads[k - 1] + _lr_like(l2[k - 1], w_in, per_neuron=False) * w_in
        out.append(eta**2 * (step_in**2).sum(dim=-1) - 2 * eta * decay_in * (w_in**2).sum(dim=-1)
                   + 2 * eta * decay_out * (w_out * feedback[k]).sum(dim=-2))
    return out


def l2_rest_residual(weights: Sequence[Tensor], feedback: Sequence[Tensor | None], l2: Sequence[float]) -> list[Tensor]:
    """Per hidden neuron, how far the weights are from the resting relation of FA with L2 on every layer.

    Derived in this book (none of the papers states it): at a fixed point of ``W_k <- W_k - lr (G_k + l2_k W_k)``,
    ``G_k = -l2_k W_k`` in every layer, and the FA identity ``<W_k[j,:], G_k[j,:]> = <B_{k+1}[:,j], G_{k+1}[:,j]>``
    (ReLU or linear, no biases; :func:`step_change_with_l2`) gives, for every hidden neuron ``j`` of layer ``k``,

        l2_k ||W_k[j,:]||^2 = l2_{k+1} <B_{k+1}[:,j], W_{k+1}[:,j]>,

    so each neuron's outgoing weights lean towards its feedback (their inner product is ``>= 0``). Returns per
    hidden layer ``(*S, n_k)``: ``l2_k ||W_k[j,:]||^2 - l2_{k+1} <B_{k+1}[:,j], W_{k+1}[:,j]>``. ``l2``: one
    positive number per layer.
    """
    check_law_arguments(weights, "fa", feedback, None)
    if len(l2) != len(weights) or any(v <= 0 for v in l2):
        raise ValueError(f"l2={list(l2)} needs one positive strength per layer ({len(weights)})")
    return [l2[k - 1] * (weights[k - 1] ** 2).sum(dim=-1) - l2[k] * (weights[k] * feedback[k]).sum(dim=-2)
            for k in range(1, len(weights))]


def l2_rest_alignment(weights: Sequence[Tensor], feedback: Sequence[Tensor | None], l2: Sequence[float]) -> Tensor:
    """The readout's alignment that :func:`l2_rest_residual`'s relation implies for a two-layer network, ``(*S,)``:

        cos(W_2, B_2) = (l2_1 / l2_2) ||W_1||_F^2 / (||W_2|| ||B_2||),

    the relation summed over the neurons and divided by the norms; ``weights = [W_1, W_2]``, ``feedback[1] = B_2``.
    """
    if len(weights) != 2:
        raise ValueError(f"weights has {len(weights)} layers; the resting alignment is stated for two")
    l2_rest_residual(weights, feedback, l2)  # checks the arguments
    norms = weights[1].flatten(-2).norm(dim=-1) * feedback[1].flatten(-2).norm(dim=-1)
    return l2[0] / l2[1] * (weights[0] ** 2).sum(dim=(-1, -2)) / norms


def feedback_inner_products(weights: Sequence[Tensor], feedback: Sequence[Tensor | None]) -> Tensor:
    """``<W_{k+1}, B_{k+1}>_F`` for every hidden layer ``k`` (``weights[k]`` with ``feedback[k]``): ``(*S, L-1)``.

    The left-hand side of the alignment identity, ``robertson_koyejo_2023.md``, "Laws", paragraph "Alignment follows";
    ``weights`` ``(*S, n_{i+1}, n_i)`` per layer, ``feedback[i]`` shaped like ``weights[i]`` (``feedback[0]`` unused).
    """
    check_law_arguments(weights, "fa", feedback, None)
    return torch.stack([(weights[k] * feedback[k]).sum(dim=(-1, -2)) for k in range(1, len(weights))], dim=-1)


def alignment_identity(
    weights: Sequence[Tensor],
    *,
    initial_sums: Tensor,
    accumulated_change: Tensor,
    biases: Sequence[Tensor] | None = None,
) -> Tensor:
    """The alignment identity's prediction of ``<W_{k+1}, B_{k+1}>_F`` under FA, ``(*S, L-1)``.

    ``robertson_koyejo_2023.md``, "Laws", paragraph "Alignment follows" (with biases and the discrete term):

    ``1/2 (||W_k||_F^2 + ||b_k||^2 - sum_j c_{k,j}(0) - sum_s lr^2 (||G_k(s)||_F^2 + ||g_k(s)||^2))``
    (ReLU or linear FA with plain steps): ``initial_sums`` is ``sum_j c_{k,j}(0)`` and
    ``accumulated_change`` the summed one-step changes (:func:`step_change` summed over
    neurons and steps), both ``(*S, L-1)``. Compare with :func:`feedback_inner_products`.
    """
    return 0.5 * (incoming_squares(weights, biases) - initial_sums - accumulated_change)


def incoming_squares(weights: Sequence[Tensor], biases: Sequence[Tensor] | None) -> Tensor:
    """``||W_k||_F^2 + ||b_k||^2`` for every hidden layer ``k``: ``(*S, L-1)``.

    The layer's summed incoming term (the trace of :func:`law_terms`' incoming), the ``||W_l||^2_F`` of
    ``robertson_koyejo_2023.md``, "Laws", paragraph "Alignment follows". ``weights`` ``(*S, n_{i+1}, n_i)``, ``biases``
    ``None`` or ``(*S, n_{i+1})`` per layer.
    """
    sq = torch.stack([(weights[k - 1] ** 2).sum(dim=(-1, -2)) for k in range(1, len(weights))], dim=-1)
    if biases is not None:
        sq = sq + torch.stack([(biases[k - 1] ** 2).sum(dim=-1) for k in range(1, len(weights))], dim=-1)
    return sq


def feedback_shift(weights: Sequence[Tensor], feedback: Sequence[Tensor | None], *, target: float) -> list[Tensor]:
    """Weights with ``sum_j c_{k,j} = target * ||W_k||_F^2`` for every hidden layer ``k`` (bias-free FA).

    Starts on either side of the sufficient condition of ``robertson_koyejo_2023.md``, "Laws", paragraph "Alignment
    follows". ``weights`` ``(*S, n_{i+1}, n_i)`` per layer, ``feedback`` as in :func:`conserved_quantities`;
    returns new weights of the same shapes.

    Adds ``mu_k B_{k+1}`` to ``W_{k+1}`` (``weights[k]``), layer by layer from the first hidden
    layer up, with ``mu_k = (||W_k||^2 - 2 <W_{k+1}, B_{k+1}> - target ||W_k||^2) / (2 ||B_{k+1}||^2)``
    per seed (``W_k`` is final when layer ``k`` is reached). ``target=0``: the boundary of the
    sufficient condition ``sum_j c_{k,j}(0) <= 0``; ``target=2``: ``<W_{k+1}, B_{k+1}> = -||W_k||^2 / 2``
    (anti-aligned, the condition violated). The input layer ``weights[0]`` is unchanged.
    """
    check_law_arguments(weights, "fa", feedback, None)
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not np.isfinite(target):
        raise ValueError(f"target={target!r} must be a finite number")
    out = [w.clone() for w in weights]
    for k in range(1, len(out)):
        incoming = (out[k - 1] ** 2).sum(dim=(-1, -2))
        b = feedback[k]
        mu = (incoming - 2 * (out[k] * b).sum(dim=(-1, -2)) - target * incoming) / (2 * (b**2).sum(dim=(-1, -2)))
        out[k] = out[k] + mu[..., None, None] * b
    return out


def min_norm_interpolant(x: Tensor, y: Tensor) -> Tensor:
    """The minimum-norm linear interpolant ``M* = (X^+ Y)^T``, ``(*S, n_out, d)``.

    ``robertson_koyejo_2023.md``, "Laws", paragraph "Minimum norm (two-layer linear, d > n samples)": the limit of
    ``W_2 W_1`` from ``W_1(0) = 0``.

    ``x``: ``(*S, N, d)`` samples as rows; ``y``: ``(*S, N, n_out)``. For ``d > N`` and ``X`` of
    full row rank, ``x @ M*^T = y`` exactly and ``M*`` has the least Frobenius norm among
    all such maps (its rows lie in the row space of ``X``).
    """
    if x.dim() < 2 or y.dim() < 2 or x.shape[-2] != y.shape[-2]:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must be (*S, N, d) and (*S, N, n_out) with the same N")
    return (torch.linalg.pinv(x) @ y).transpose(-1, -2)


def null_space_projector(x: Tensor) -> Tensor:
    """``P = I - X^+ X``, ``(*S, d, d)``: the projector onto the null space of ``X`` (``(*S, N, d)``).

    ``robertson_koyejo_2023.md``, "Laws", paragraph "Minimum norm": ``W_1(t) P = W_1(0) P`` at every FA or GD step.
    """
    if x.dim() < 2:
        raise ValueError(f"x has shape {tuple(x.shape)}; expected (*S, N, d)")
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    return eye - torch.linalg.pinv(x) @ x

