"""Fully connected networks with a leading seed dimension, and their backward passes.

Conventions (the book's notation page, ``book/notation.md``):

* ``weights[i]`` has shape ``(*S, n_{i+1}, n_i)`` (out x in, like ``nn.Linear``); ``*S``
  is an optional leading seed dimension shared by every tensor of one call.
* Rows are samples: ``a_i = c_i * h_i @ weights[i]^T`` with ``h_0 = x`` and
  ``h_{i+1} = act(a_i)`` for hidden layers; the output ``f = a_{L-1}`` is linear.
  ``c_i`` is an optional per-layer scale (``layer_scales``; Song et al. use
  ``1/sqrt(p)`` on the readout), a property of the model, not of the rule.
* ``biases[i]`` (optional) has shape ``(*S, n_{i+1})`` and is added to ``a_i``.
* Losses: ``"mse"`` is ``(1/N) sum_n 1/2 ||f_n - y_n||^2``; ``"ce"`` is the mean softmax
  cross-entropy with class-index targets.
* Rules: ``"bp"`` sends the error back through ``weights``; ``"fa"`` through
  ``feedback[i]`` (shaped like ``weights[i]``, used when the error crosses layer i
  backwards; ``feedback[0]`` unused); ``"dfa"`` projects the output error straight to
  hidden layer i with ``feedback[i]`` of shape ``(*S, n_L, n_{i+1})`` (``feedback[L-1]``
  unused). Every rule's weight "gradient" is ``G_i = c_i * delta_i^T h_i``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .validation import check_choice

RULES = ("bp", "fa", "dfa")
ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")
LOSSES = ("mse", "ce")

Tensor = torch.Tensor


def _relu_grad(a: Tensor) -> Tensor:
    return (a > 0).to(a.dtype)


def _tanh_grad(a: Tensor) -> Tensor:
    return 1 - torch.tanh(a) ** 2


def _sigmoid_grad(a: Tensor) -> Tensor:
    s = torch.sigmoid(a)
    return s * (1 - s)


_ACTIVATION_FUNCTIONS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "linear": (lambda a: a, torch.ones_like),
    "relu": (torch.relu, _relu_grad),
    "tanh": (torch.tanh, _tanh_grad),
    "sigmoid": (torch.sigmoid, _sigmoid_grad),
}


def _derivative(name: str, a: Tensor, h: Tensor) -> Tensor:
    """``sigma'(a)`` given also ``h = sigma(a)``: tanh and sigmoid reuse ``h`` instead of recomputing it."""
    if name == "tanh":
        return 1 - h * h
    if name == "sigmoid":
        return h * (1 - h)
    return _ACTIVATION_FUNCTIONS[name][1](a)


def activation_function(name: str) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
    """``(sigma, sigma')`` for an activation name (``sigma'`` of relu at 0 is 0)."""
    check_choice("activation", name, ACTIVATIONS)
    return _ACTIVATION_FUNCTIONS[name]


# --------------------------------------------------------------------------- seeding
def seeded_generator(seed: int, stream: str, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch generator for one seed and one named stream ("weights", "feedback", ...).

    Different streams of the same seed are independent (numpy's SeedSequence mixes the
    seed with a hash of the stream name), so drawing feedback never shifts weights.
    """
    key = [int(seed)] + list(stream.encode())
    state = int(np.random.SeedSequence(key).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    return torch.Generator(device=device).manual_seed(state)


def seeded_normal(
    shapes: Sequence[Sequence[int]],
    seeds: Sequence[int],
    stds: Sequence[float],
    *,
    stream: str,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> list[Tensor]:
    """Draw one ``N(0, std^2)`` tensor per shape for every seed; returns ``(S, *shape)`` tensors.

    Seed s of a batch draws exactly what it draws alone: each seed has its own generator
    (the loop over seeds is construction only, the computation itself is batched).
    """
    if len(seeds) == 0:
        raise ValueError("seeds must name at least one seed")
    per_seed = []
    for seed in seeds:
        gen = seeded_generator(seed, stream)
        per_seed.append([torch.randn(tuple(shape), generator=gen, dtype=torch.float64) * std for shape, std in zip(shapes, stds)])
    return [torch.stack([draws[i] for draws in per_seed]).to(dtype=dtype, device=device) for i in range(len(shapes))]


def _layer_stds(widths: Sequence[int], std: float | str | Sequence[float]) -> list[float]:
    if isinstance(std, str):
        check_choice("std", std, ("lecun",))
        return [1.0 / np.sqrt(n_in) for n_in in widths[:-1]]
    if isinstance(std, (int, float)):
        return [float(std)] * (len(widths) - 1)
    if len(std) != len(widths) - 1:
        raise ValueError(f"std has {len(std)} entries; expected one per layer ({len(widths) - 1})")
    return [float(s) for s in std]


def _check_widths(widths: Sequence[int]) -> None:
    if len(widths) < 2 or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in widths):
        raise ValueError(f"widths={list(widths)!r} must list at least two positive integers (n_0, ..., n_L)")


def init_weights(
    widths: Sequence[int],
    seeds: Sequence[int],
    *,
    std: float | str | Sequence[float] = "lecun",
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    stream: str = "weights",
) -> list[Tensor]:
    """Forward weights ``W_i ~ N(0, std_i^2)``, shapes ``(S, n_{i+1}, n_i)``.

    ``std="lecun"`` uses ``1/sqrt(n_i)``; a number applies to every layer; a sequence
    gives one std per layer.
    """
    _check_widths(widths)
    shapes = [(widths[i + 1], widths[i]) for i in range(len(widths) - 1)]
    return seeded_normal(shapes, seeds, _layer_stds(widths, std), stream=stream, dtype=dtype, device=device)


def init_feedback(
    widths: Sequence[int],
    seeds: Sequence[int],
    *,
    rule: str,
    std: float | str | Sequence[float] = "lecun",
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> list[Tensor | None] | None:
    """Fixed random feedback for ``rule`` (``None`` for ``"bp"``), drawn from the "feedback" stream.

    ``"fa"``: ``B_i`` shaped like ``W_i`` for i >= 1 (``B_0`` is ``None``), std as in
    :func:`init_weights` (``"lecun"``: ``1/sqrt(n_i)``). ``"dfa"``: ``D_i`` of shape
    ``(S, n_L, n_{i+1})`` for hidden layers (``D_{L-1}`` is ``None``), ``"lecun"`` std
    ``1/sqrt(n_L)``.
    """
    check_choice("rule", rule, RULES)
    _check_widths(widths)
    n_layers = len(widths) - 1
    if rule == "bp":
        return None
    if rule == "fa":
        stds = _layer_stds(widths, std)[1:]
        shapes = [(widths[i + 1], widths[i]) for i in range(1, n_layers)]
        return [None, *seeded_normal(shapes, seeds, stds, stream="feedback", dtype=dtype, device=device)]
    n_out = widths[-1]
    stds = [1.0 / np.sqrt(n_out)] * (n_layers - 1) if std == "lecun" else _layer_stds(widths, std)[: n_layers - 1]
    shapes = [(n_out, widths[i + 1]) for i in range(n_layers - 1)]
    return [*seeded_normal(shapes, seeds, stds, stream="feedback", dtype=dtype, device=device), None]


# --------------------------------------------------------------------------- passes
@dataclass
class Forward:
    """Cached forward pass: ``inputs[i]`` is h_i (input to layer i), ``pre[i]`` is a_i."""

    inputs: list[Tensor]
    pre: list[Tensor]

    @property
    def output(self) -> Tensor:
        return self.pre[-1]


@dataclass
class Backward:
    """Result of one backward pass under a rule.

    ``loss``: ``(*S,)``; ``deltas[i]``: ``(*S, N, n_{i+1})``; ``grads[i]`` shaped like
    ``weights[i]``; ``bias_grads`` like ``biases`` (``None`` without biases).
    """

    loss: Tensor
    output: Tensor
    deltas: list[Tensor]
    grads: list[Tensor]
    bias_grads: list[Tensor] | None


def _scales(layer_scales: Sequence[float] | None, n_layers: int) -> list[float]:
    if layer_scales is None:
        return [1.0] * n_layers
    if len(layer_scales) != n_layers:
        raise ValueError(f"layer_scales has {len(layer_scales)} entries; expected one per layer ({n_layers})")
    return [float(c) for c in layer_scales]


def forward(
    weights: Sequence[Tensor],
    x: Tensor,
    activation: str,
    *,
    biases: Sequence[Tensor] | None = None,
    layer_scales: Sequence[float] | None = None,
) -> Forward:
    """Run the network; ``x`` is ``(*S, N, n_0)`` or ``(N, n_0)`` (shared by all seeds)."""
    sigma, _ = activation_function(activation)
    scales = _scales(layer_scales, len(weights))
    inputs, pre = [x], []
    for i, w in enumerate(weights):
        a = torch.matmul(inputs[-1], w.transpose(-1, -2))
        if scales[i] != 1.0:
            a = scales[i] * a
        if biases is not None:
            a = a + biases[i].unsqueeze(-2)
        pre.append(a)
        if i < len(weights) - 1:
            inputs.append(sigma(a))
    return Forward(inputs, pre)


def loss_and_output_delta(output: Tensor, y: Tensor, loss: str) -> tuple[Tensor, Tensor]:
    """Per-seed loss ``(*S,)`` and ``delta_L = dL/df`` (``(*S, N, n_L)``) for ``"mse"`` or ``"ce"``."""
    n = output.shape[-2]
    if loss == "mse":
        err = output - y
        return 0.5 * (err**2).sum(dim=(-1, -2)) / n, err / n
    logp = torch.log_softmax(output, dim=-1)
    target = y.expand(output.shape[:-1]).unsqueeze(-1)
    nll = -torch.gather(logp, -1, target).squeeze(-1)
    onehot = torch.zeros_like(output).scatter_(-1, target, 1.0)
    return nll.mean(dim=-1), (torch.exp(logp) - onehot) / n


def check_biases(biases: Sequence[Tensor] | None, weights: Sequence[Tensor]) -> None:
    """``biases`` is ``None`` or one ``(*S, n_{i+1})`` tensor per layer; else ``ValueError``."""
    if biases is None:
        return
    if len(biases) != len(weights):
        raise ValueError(f"biases has {len(biases)} entries; expected {len(weights)}")
    for i, (b, w) in enumerate(zip(biases, weights)):
        if b.shape != w.shape[:-1]:
            raise ValueError(f"biases[{i}] has shape {tuple(b.shape)}; expected {tuple(w.shape[:-1])}")


def error_carrier(rule: str, weights: Sequence[Tensor], feedback: Sequence[Tensor | None] | None, layer: int) -> Tensor:
    """The matrix that carries the error back to hidden layer ``layer`` (the output of ``weights[layer]``).

    ``"bp"``: ``weights[layer + 1]`` (the transposed forward weights); ``"fa"``: ``feedback[layer + 1]``,
    shaped like it; ``"dfa"``: ``feedback[layer]`` ``(*S, n_L, n_{layer+1})``, which takes the
    *output* error straight to the layer. The delta is ``(source @ matrix) * sigma'(a)`` with
    source the next layer's delta (BP, FA) or the output delta (DFA).
    """
    check_choice("rule", rule, RULES)
    if rule == "bp":
        return weights[layer + 1]
    return feedback[layer + 1] if rule == "fa" else feedback[layer]


def check_inputs(
    weights: Sequence[Tensor],
    x: Tensor,
    y: Tensor,
    *,
    rule: str,
    activation: str,
    loss: str = "mse",
    feedback: Sequence[Tensor | None] | None = None,
    biases: Sequence[Tensor] | None = None,
) -> None:
    """Check every argument of a pass or a training run before any computation; ``ValueError``
    naming the argument and what was expected (shapes as in the module docstring)."""
    check_choice("rule", rule, RULES)
    check_choice("activation", activation, ACTIVATIONS)
    check_choice("loss", loss, LOSSES)
    if len(weights) == 0:
        raise ValueError("weights must hold at least one layer")
    batch = weights[0].shape[:-2]
    for i, w in enumerate(weights):
        if w.dim() < 2 or w.shape[:-2] != batch:
            raise ValueError(f"weights[{i}] has shape {tuple(w.shape)}; expected (*S, n_out, n_in) with *S={tuple(batch)}")
        if i > 0 and w.shape[-1] != weights[i - 1].shape[-2]:
            raise ValueError(
                f"weights[{i}] has {w.shape[-1]} inputs but weights[{i - 1}] has {weights[i - 1].shape[-2]} outputs"
            )
    n_in, n_out = weights[0].shape[-1], weights[-1].shape[-2]
    if x.dim() < 2 or x.shape[-1] != n_in or x.shape[:-2] not in ((), batch):
        raise ValueError(f"x has shape {tuple(x.shape)}; expected (*S, N, {n_in}) or (N, {n_in}) with *S={tuple(batch)}")
    n = x.shape[-2]
    if loss == "mse":
        if y.shape[-2:] != (n, n_out) or y.shape[:-2] not in ((), batch) or not y.is_floating_point():
            raise ValueError(f"y has shape {tuple(y.shape)}; expected floats (*S, {n}, {n_out}) or ({n}, {n_out}) for loss='mse'")
    else:
        if y.shape[-1:] != (n,) or y.shape[:-1] not in ((), batch) or y.dtype != torch.int64:
            raise ValueError(f"y has shape {tuple(y.shape)} dtype {y.dtype}; expected int64 class indices (*S, {n}) or ({n},) for loss='ce'")
    check_biases(biases, weights)
    if rule == "bp":
        return
    if feedback is None or len(feedback) != len(weights):
        raise ValueError(f"rule={rule!r} needs feedback: a list of {len(weights)} entries aligned with weights")
    for i in range(len(weights) - 1):
        if rule == "fa":
            fb, expected = feedback[i + 1], tuple(weights[i + 1].shape)
        else:
            fb, expected = feedback[i], (*batch, n_out, weights[i].shape[-2])
        index = i + 1 if rule == "fa" else i
        if fb is None or tuple(fb.shape) != expected:
            shape = None if fb is None else tuple(fb.shape)
            raise ValueError(f"feedback[{index}] has shape {shape}; expected {expected} for rule={rule!r}")


def backward_pass(
    weights: Sequence[Tensor],
    x: Tensor,
    y: Tensor,
    *,
    rule: str,
    activation: str,
    loss: str = "mse",
    feedback: Sequence[Tensor | None] | None = None,
    biases: Sequence[Tensor] | None = None,
    layer_scales: Sequence[float] | None = None,
    validate: bool = True,
) -> Backward:
    """Loss, error signals and weight "gradients" of ``rule`` (see the module docstring)."""
    if validate:
        check_inputs(weights, x, y, rule=rule, activation=activation, loss=loss, feedback=feedback, biases=biases)
    scales = _scales(layer_scales, len(weights))
    fwd = forward(weights, x, activation, biases=biases, layer_scales=scales)
    value, delta = loss_and_output_delta(fwd.output, y, loss)
    n_layers = len(weights)
    deltas: list[Tensor] = [delta] * n_layers
    for i in range(n_layers - 2, -1, -1):
        matrix = error_carrier(rule, weights, feedback, i)
        if rule == "dfa":
            back = torch.matmul(deltas[-1], matrix)
        else:
            back = torch.matmul(deltas[i + 1], matrix)
            if scales[i + 1] != 1.0:
                back = scales[i + 1] * back
        # sigma' from the forward pass's own outputs (no second tanh or sigmoid)
        deltas[i] = back * _derivative(activation, fwd.pre[i], fwd.inputs[i + 1])
    grads = [torch.matmul(deltas[i].transpose(-1, -2), fwd.inputs[i]) for i in range(n_layers)]
    grads = [g if c == 1.0 else c * g for g, c in zip(grads, scales)]
    bias_grads = None if biases is None else [d.sum(dim=-2) for d in deltas]
    return Backward(value, fwd.output, deltas, grads, bias_grads)


def gradients(
    weights: Sequence[Tensor],
    x: Tensor,
    y: Tensor,
    *,
    rule: str,
    activation: str,
    loss: str = "mse",
    feedback: Sequence[Tensor | None] | None = None,
    layer_scales: Sequence[float] | None = None,
) -> list[Tensor]:
    """One weight "gradient" per layer under ``rule``, each shaped like ``weights[i]``.

    For ``rule="bp"`` this equals autograd's gradient of the loss. Bad arguments raise
    ``ValueError`` naming the argument and what was expected.
    """
    return backward_pass(
        weights, x, y, rule=rule, activation=activation, loss=loss, feedback=feedback, layer_scales=layer_scales
    ).grads
