"""Training many seeds at once with BP, FA or DFA, and per-seed divergence detection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from ..alignment import gradient_alignment, signal_alignment, weight_alignment
from ..networks import Backward, backward_pass, check_inputs, forward, loss_and_output_delta
from ..validation import check_choice, check_int, check_positive

Tensor = torch.Tensor
PerSeed = float | Tensor
OPTIMIZERS = ("sgd", "adam")


@dataclass
class History:
    """What :func:`train` recorded.

    ``steps``: ``(R,)`` step numbers of the records (0 = before the first update).
    ``metrics[name]``: ``(R, S, ...)`` numpy arrays; NaN for a seed from the record at
    which it diverged onwards. ``diverged``: ``(S,)`` bool; ``diverged_step``: ``(S,)``,
    the first step whose loss was NaN/inf (-1 if never). ``weights``: the final weights;
    ``biases``: the final biases (``None`` when none were trained).
    """

    steps: np.ndarray
    metrics: dict[str, np.ndarray]
    diverged: np.ndarray
    diverged_step: np.ndarray
    weights: list[Tensor] = field(repr=False)
    biases: list[Tensor] | None = field(default=None, repr=False)

    def final(self, name: str) -> np.ndarray:
        """The last record of a metric, ``(S, ...)``."""
        return self.metrics[name][-1]

    def split(self, names: Sequence[str]) -> dict[str, History]:
        """One :class:`History` per setting of a batch that stacked ``len(names)`` settings of equal
        seed count along the seed axis, setting-major (as :func:`stack_settings` builds it)."""
        n_settings = len(names)
        n_seeds = self.diverged.shape[0]
        if n_settings == 0 or n_seeds % n_settings:
            raise ValueError(f"{n_seeds} seeds cannot be split into {n_settings} equal settings {list(names)}")
        size = n_seeds // n_settings
        parts = [slice(i * size, (i + 1) * size) for i in range(n_settings)]
        return {
            name: History(steps=self.steps, metrics={k: v[:, part] for k, v in self.metrics.items()},
                          diverged=self.diverged[part], diverged_step=self.diverged_step[part],
                          weights=[w[part] for w in self.weights],
                          biases=None if self.biases is None else [b[part] for b in self.biases])
            for name, part in zip(names, parts)
        }


def stack_settings(settings: Sequence[Sequence[Tensor | None]]) -> list[Tensor | None]:
    """Stack several settings (each a list of per-layer ``(S, ...)`` tensors: weights, feedback, biases)
    into one batch along the seed axis, setting-major; ``None`` entries (FA's unused ``feedback[0]``) stay
    ``None``. Train the batch once, then :meth:`History.split` it by setting."""
    if not settings:
        raise ValueError("settings must hold at least one setting")
    layers = {len(s) for s in settings}
    if len(layers) != 1:
        raise ValueError(f"settings have different numbers of layers {sorted(layers)}")
    return [None if parts[0] is None else torch.cat(parts) for parts in zip(*settings)]


def steps_per_epoch(n_samples: int, batch_size: int | None) -> int:
    """Update steps in one epoch (incomplete last batches are dropped)."""
    return 1 if batch_size is None else n_samples // batch_size


def _per_seed(value: PerSeed, like: Tensor) -> Tensor | float:
    """Broadcast a scalar or a ``(S,)`` tensor against a ``(S, ...)`` weight or bias."""
    if isinstance(value, Tensor):
        return value.to(like).reshape(*value.shape, *([1] * (like.dim() - value.dim())))
    return float(value)


def all_finite(tensors: Sequence[Tensor], seed_dims: int) -> Tensor:
    """Per seed, whether every entry of every tensor is finite: ``(*S,)`` bool (``seed_dims = len(S)``)."""
    return torch.stack([torch.isfinite(t).flatten(seed_dims).all(-1) for t in tensors]).all(0)


def _select(t: Tensor, idx: Tensor, sample_dim: int) -> Tensor:
    return t.index_select(t.dim() + sample_dim, idx)


def train(
    weights: Sequence[Tensor],
    x: Tensor,
    y: Tensor,
    *,
    rule: str,
    activation: str,
    lr: PerSeed,
    steps: int,
    loss: str = "mse",
    feedback: Sequence[Tensor | None] | None = None,
    biases: Sequence[Tensor] | None = None,
    batch_size: int | None = None,
    l2: PerSeed | Sequence[PerSeed] = 0.0,
    momentum: float = 0.0,
    optimizer: str = "sgd",
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    layer_scales: Sequence[float] | None = None,
    record_every: int = 1,
    probe: tuple[Tensor, Tensor] | None = None,
    test: tuple[Tensor, Tensor] | None = None,
    shuffle_seed: int = 0,
    extra_metrics: Callable[..., dict[str, Tensor]] | None = None,
    on_step: Callable[[int, list[Tensor], list[Tensor] | None, Backward, Tensor], None] | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> History:
    """Train a batch of networks (leading seed dimension S) and record metrics.

    Update: ``W_l <- W_l - lr (G_l + l2_l W_l)`` with ``G_l`` from :func:`backward_pass`
    (heavy-ball momentum when ``momentum > 0``); ``biases`` (optional, ``(S, n_{l+1})`` per layer)
    are trained by the same optimizer without L2. ``optimizer="adam"`` feeds the same
    direction ``d = G_l + l2_l W_l`` to Adam instead (``torch.optim.Adam``'s update with its
    L2 ``weight_decay``, ``betas``, ``eps``; written out so that ``lr`` can differ per seed):
    ``m <- b1 m + (1-b1) d``, ``v <- b2 v + (1-b2) d^2``,
    ``W <- W - lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)``. ``lr`` and each ``l2_l`` are a number or
    an ``(S,)`` tensor (one value per seed: sweeps run as one batch). ``batch_size=None``
    is full-batch; otherwise each epoch visits a permutation drawn from ``shuffle_seed``
    (shared by the seed batch, so a seed trained alone with the same ``shuffle_seed``
    follows the same trajectory).

    Records at step 0, every ``record_every`` steps and at the end, on ``probe`` (default:
    the training set if full-batch, else its first 1000 samples): ``loss``; for ``"ce"``
    ``accuracy``; for FA/DFA the hidden layers' ``grad_alignment`` and ``signal_alignment``
    ``(R, S, L-1)``; for FA ``weight_alignment`` of layers 1..L-1; with ``test``:
    ``test_loss`` (and ``test_accuracy``) from a forward pass alone; plus whatever ``extra_metrics(weights)`` returns
    (``extra_metrics(weights, biases)`` when biases are trained). After every update
    ``on_step(step, weights, biases, result, alive)`` is called with the backward pass ``result``
    that made the update (at the weights before it) and ``alive`` ``(S,)``, the seeds whose loss
    and weights are still finite: how a chapter checks a law step by step.
    A seed whose loss becomes NaN/inf is marked diverged; its later records are NaN.
    """
    check_inputs(weights, x, y, rule=rule, activation=activation, loss=loss, feedback=feedback, biases=biases)
    check_int("steps", steps, minimum=0)
    check_int("record_every", record_every, minimum=1)
    n_samples = x.shape[-2]
    if batch_size is not None:
        check_int("batch_size", batch_size, minimum=1)
        if batch_size > n_samples:
            raise ValueError(f"batch_size={batch_size} exceeds the {n_samples} training samples")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum={momentum!r} must lie in [0, 1)")
    check_choice("optimizer", optimizer, OPTIMIZERS)
    if optimizer == "adam":
        if momentum:
            raise ValueError(f"momentum={momentum!r} applies to optimizer='sgd' only; Adam's momentum is betas[0]")
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas={betas!r} must be two numbers in [0, 1)")
        check_positive("eps", eps)
    n_layers = len(weights)
    l2_layers = list(l2) if isinstance(l2, (list, tuple)) else [l2] * n_layers
    if len(l2_layers) != n_layers:
        raise ValueError(f"l2 has {len(l2_layers)} entries; expected a number, an (S,) tensor or one per layer ({n_layers})")
    y_dim = -1 if loss == "ce" else -2
    if probe is None:
        probe = (x, y) if batch_size is None else (x[..., :1000, :], _select(y, torch.arange(min(1000, n_samples)), y_dim))

    weights = [w.detach().clone() for w in weights]
    biases = None if biases is None else [b.detach().clone() for b in biases]
    params = weights + ([] if biases is None else biases)  # updated in place, in this order
    velocity = [torch.zeros_like(w) for w in params]  # momentum's velocity, or Adam's first moment
    second = [torch.zeros_like(w) for w in params] if optimizer == "adam" else None
    lrs = [_per_seed(lr, w) for w in params]
    l2s = [_per_seed(v, w) for v, w in zip(l2_layers, weights)] + [0.0] * (len(params) - n_layers)
    seed_shape = weights[0].shape[:-2]
    finite = torch.ones(seed_shape, dtype=torch.bool, device=weights[0].device)
    first_bad = torch.full(seed_shape, -1, dtype=torch.int64, device=weights[0].device)
    kw = dict(activation=activation, loss=loss, biases=biases, layer_scales=layer_scales, validate=False)

    records: dict[str, list[np.ndarray]] = {}
    record_steps: list[int] = []

    def record(step: int) -> None:
        px, py = probe
        current = backward_pass(weights, px, py, rule=rule, feedback=feedback, **kw)
        values = {"loss": current.loss}
        if loss == "ce":
            values["accuracy"] = (current.output.argmax(-1) == py).to(current.loss.dtype).mean(-1)
        if rule != "bp":
            exact = backward_pass(weights, px, py, rule="bp", **kw)
            values["grad_alignment"] = gradient_alignment(current.grads[:-1], exact.grads[:-1])
            values["signal_alignment"] = signal_alignment(current.deltas[:-1], exact.deltas[:-1])
            if rule == "fa":
                values["weight_alignment"] = weight_alignment(weights, feedback)
        if test is not None:  # evaluation only: a forward pass, no error signals
            test_output = forward(weights, test[0], activation, biases=biases, layer_scales=layer_scales).output
            values["test_loss"], _ = loss_and_output_delta(test_output, test[1], loss)
            if loss == "ce":
                values["test_accuracy"] = (test_output.argmax(-1) == test[1]).to(test_output.dtype).mean(-1)
        if extra_metrics is not None:
            values.update(extra_metrics(weights) if biases is None else extra_metrics(weights, biases))
        ok = finite & all_finite(params, len(seed_shape)) & torch.isfinite(current.loss)
        for name, value in values.items():
            mask = ok.reshape(*seed_shape, *([1] * (value.dim() - len(seed_shape))))
            value = torch.where(mask, value, torch.full_like(value, float("nan")))
            records.setdefault(name, []).append(value.detach().cpu().numpy())
        record_steps.append(step)

    generator = torch.Generator().manual_seed(int(shuffle_seed))
    per_epoch = steps_per_epoch(n_samples, batch_size)
    order = None
    with torch.no_grad():
        record(0)
        for step in tqdm(range(1, steps + 1), desc=desc or f"train {rule}", disable=not progress, mininterval=1.0):
            if batch_size is None:
                bx, by = x, y
            else:
                k = (step - 1) % per_epoch
                if k == 0:
                    order = torch.randperm(n_samples, generator=generator).to(x.device)
                idx = order[k * batch_size : (k + 1) * batch_size]
                bx, by = _select(x, idx, -2), _select(y, idx, y_dim)
            result = backward_pass(weights, bx, by, rule=rule, feedback=feedback, **kw)
            bad = ~torch.isfinite(result.loss) & finite
            first_bad = torch.where(bad, torch.full_like(first_bad, step), first_bad)
            finite &= ~bad
            grads = result.grads + ([] if biases is None else result.bias_grads)
            for i, (w, g) in enumerate(zip(params, grads)):
                direction = g + l2s[i] * w
                if optimizer == "adam":
                    velocity[i].mul_(betas[0]).add_(direction, alpha=1 - betas[0])
                    second[i].mul_(betas[1]).addcmul_(direction, direction, value=1 - betas[1])
                    direction = (velocity[i] / (1 - betas[0] ** step)) / ((second[i] / (1 - betas[1] ** step)).sqrt() + eps)
                elif momentum:
                    velocity[i].mul_(momentum).add_(direction)
                    direction = velocity[i]
                w.sub_(lrs[i] * direction)
            if on_step is not None:
                on_step(step, weights, biases, result, finite & all_finite(params, len(seed_shape)))
            if step % record_every == 0 or step == steps:
                record(step)
    # A seed whose weights overflowed on the very last step is caught here too.
    ends_finite = all_finite(params, len(seed_shape))
    first_bad = torch.where(finite & ~ends_finite, torch.full_like(first_bad, steps), first_bad)
    return History(
        steps=np.asarray(record_steps),
        metrics={name: np.stack(values) for name, values in records.items()},
        diverged=(first_bad >= 0).cpu().numpy(),
        diverged_step=first_bad.cpu().numpy(),
        weights=weights,
        biases=biases,
    )


def summarize_seeds(values: np.ndarray, diverged: np.ndarray) -> dict[str, float | int]:
    """Mean, sd, min and max over the seeds that did not diverge, and how many did.

    ``values``: ``(S,)`` (or ``(S, ...)``, reduced over everything). Diverged seeds are
    counted, never averaged; with no finite seed the statistics are NaN.
    """
    values = np.asarray(values, dtype=float)
    kept = values[~np.asarray(diverged, dtype=bool)]
    n = int(kept.shape[0]) if kept.ndim else 0
    stats = {"n": n, "diverged": int(np.sum(diverged))}
    if n == 0:
        return stats | {"mean": float("nan"), "sd": float("nan"), "min": float("nan"), "max": float("nan")}
    return stats | {
        "mean": float(np.mean(kept)),
        "sd": float(np.std(kept, ddof=1)) if n > 1 else 0.0,
        "min": float(np.min(kept)),
        "max": float(np.max(kept)),
    }
