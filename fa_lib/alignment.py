"""Alignment measures of the book's notation page (``book/notation.md``), per layer and batched over seeds.

All functions keep the leading seed dimension ``*S`` and return one value per seed
(and per layer where a list of layers goes in).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Tensor = torch.Tensor


def cosine(a: Tensor, b: Tensor, *, dims: int) -> Tensor:
    """Cosine of ``a`` and ``b`` flattened over their last ``dims`` dimensions.

    Shapes ``(*S, ...)`` -> ``(*S,)``. A zero vector has cosine 0 with everything.
    """
    a, b = a.flatten(-dims), b.flatten(-dims)
    norms = a.norm(dim=-1) * b.norm(dim=-1)
    dot = (a * b).sum(dim=-1)
    return torch.where(norms > 0, dot / torch.where(norms > 0, norms, 1), torch.zeros_like(dot))


def gradient_alignment(grads_rule: Sequence[Tensor], grads_bp: Sequence[Tensor]) -> Tensor:
    """``cos(G_l^rule, G_l^BP)`` per layer, computed at the same weights on the same batch.

    Inputs: lists of ``(*S, n_out, n_in)``; output ``(*S, L)``. The output layer (last
    column) is 1 for FA and DFA; report the hidden layers ``[..., :-1]``.
    """
    return torch.stack([cosine(g, h, dims=2) for g, h in zip(grads_rule, grads_bp)], dim=-1)


def weight_alignment(weights: Sequence[Tensor], feedback: Sequence[Tensor | None]) -> Tensor:
    """``cos(W_l, B_l)`` for every layer with an FA feedback matrix (``feedback[l]`` not None).

    Output ``(*S, number of such layers)``, in layer order (for FA: layers 1..L-1).
    """
    return torch.stack([cosine(w, b, dims=2) for w, b in zip(weights, feedback) if b is not None], dim=-1)


def signal_alignment(deltas_rule: Sequence[Tensor], deltas_bp: Sequence[Tensor]) -> Tensor:
    """``cos(delta_l^rule, delta_l^BP)`` per sample, averaged over samples; ``(*S, L)``.

    ``deltas`` are ``(*S, N, n_l)`` error signals of the same batch at the same weights.
    """
    return torch.stack([cosine(d, e, dims=1).mean(dim=-1) for d, e in zip(deltas_rule, deltas_bp)], dim=-1)
