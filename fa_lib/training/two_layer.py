"""The two-layer engine of Song, Xu & Lafferty's task (:mod:`fa_lib.theory.song`), for any chapter.

* the task's seeded draws (paper file ``shared/papers/song_xu_lafferty_2021.md``, "Protocol of the
  authors' synthetic experiments (exact)"): :func:`init_two_layer`, :func:`synthetic_data`, and
  :func:`prepared_trials`, the two in row-space coordinates (:func:`fa_lib.theory.song.row_space_coordinates`);
* :class:`TwoLayerStep`, full-batch steps of S networks at once, the authors' update;
* :func:`train_two_layer`: a fixed number of steps, the MSE at every step;
* :class:`StopRule`, :class:`SettledRuns` and :func:`train_until_settled`: the authors' run length,
  each network stopping on its own and its slot in the batch refilled by the next waiting network;
* :func:`cache_block` and :func:`batch_size`: how many networks to train at once.

Every ``lr`` and ``lam`` is in the authors' MSELoss convention and every loss reported is their MSE
(:func:`fa_lib.theory.song.core_hyperparameters` converts to fa_lib's ``eta`` and ``l2``).

Why these loops are not options of :func:`fa_lib.training.loop.train`: the general loop runs the
forward and backward pass of :func:`fa_lib.networks.backward_pass` on the weights every step (two
batched products of size ``n k p``, plus its bookkeeping), while :class:`TwoLayerStep` trains
nonlinear networks on their pre-activations (one product of size ``n n p``, in place) and
:func:`train_until_settled` changes the batch between steps (a network leaves when it stops,
another takes its slot), which ``train``'s fixed batch of seeds has no place for. Folding them in
would change the order of the floating-point operations, hence the numbers, and the speed:
``fa_lib.pipeline.bench.two_layer_step_vs_train`` times one FA ReLU step of 8 networks
(n = 50, d = 150, neither in row-space coordinates) both ways, interleaved in one run: ``train``
took 6.7-7.5, 9.8-11.7 and 10.2-11.3 times as long per step as :class:`TwoLayerStep` at p = 200,
800 and 3200 (two runs; AMD EPYC, 1 thread, 2026-12-07).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ..alignment import cosine
from ..data import teacher_data
from ..networks import ACTIVATIONS, error_carrier, init_feedback, init_weights
from ..theory.song import (
    N_SAMPLES,
    STOP_EVERY,
    STOP_TOLERANCE,
    SYNTHETIC_ACTIVATIONS,
    readout_scales,
    row_space_coordinates,
    steps_for_width,
)
from ..validation import check_choice, check_int, check_positive

Tensor = torch.Tensor


# --------------------------------------------------------------------------- the task's draws
def init_two_layer(
    d: int,
    p: int,
    seeds: Sequence[int],
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> tuple[list[Tensor], list[Tensor | None]]:
    """``([W (S, p, d), beta (S, 1, p)], [None, b (S, 1, p)])``, every entry N(0, 1)."""
    widths = [d, p, 1]
    weights = init_weights(widths, seeds, std=1.0, dtype=dtype, device=device)
    feedback = init_feedback(widths, seeds, rule="fa", std=1.0, dtype=dtype, device=device)
    return weights, feedback


def synthetic_data(
    activation: str,
    n: int,
    d: int,
    p: int,
    seeds: Sequence[int],
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> tuple[Tensor, Tensor]:
    """The authors' data: ``x ~ N(0, I_d)`` ``(S, n, d)`` and targets ``(S, n, 1)``.

    Linear networks learn ``y = X theta*`` with ``theta* ~ N(0, I_d)``; nonlinear ones a
    random teacher of the same form (width ``p``, same activation, N(0, 1) weights, 1/sqrt(p)
    readout).
    """
    check_choice("activation", activation, SYNTHETIC_ACTIVATIONS)
    if activation == "linear":
        return teacher_data(n, [d, 1], seeds, activation="linear", std=1.0, dtype=dtype, device=device)
    return teacher_data(
        n, [d, p, 1], seeds, activation=activation, std=1.0, layer_scales=readout_scales(p), dtype=dtype, device=device
    )


def prepared_trials(activation: str, p: int, seeds: Sequence[int], n: int, d: int, dtype: torch.dtype, device) -> tuple:
    """Data and initialisation of the trials ``seeds``, in row-space coordinates: ``(x, y, [W, beta], b)``."""
    x, y = synthetic_data(activation, n, d, p, seeds, dtype=dtype, device=device)
    weights, feedback = init_two_layer(d, p, seeds, dtype=dtype, device=device)
    x, first_layer = row_space_coordinates(x, weights[0])
    return x, y, [first_layer, weights[1]], feedback[1]


# --------------------------------------------------------------------------- the step
def _per_network_lam(lam: float | Tensor, networks: int, like: Tensor) -> Tensor:
    """``lam`` (a number or ``(networks,)``) as a ``(networks,)`` tensor of ``like``'s dtype and device."""
    lam = torch.as_tensor(lam, dtype=like.dtype, device=like.device)
    lam = lam.expand(networks) if lam.dim() == 0 else lam
    if lam.shape != (networks,):
        raise ValueError(f"lam has shape {tuple(lam.shape)}; expected a number or ({networks},)")
    return lam


# Activations written into ``out`` and their derivatives from the activation's own output (h = psi(a)), in
# place: relu' = [h > 0], tanh' = 1 - h^2, sigmoid' = h (1 - h); each is one pass over the hidden layer.
# tanh is computed as 2 sigmoid(2a) - 1: torch's CPU tanh measured 2.2 times slower than this,
# which agrees with it to 2e-7 in float32 (and to rounding in float64).
_ACTIVATE = {
    "relu": lambda a, out: torch.clamp(a, min=0, out=out),
    "tanh": lambda a, out: torch.mul(a, 2, out=out).sigmoid_().mul_(2).sub_(1),
    "sigmoid": lambda a, out: torch.sigmoid(a, out=out),
}
_DERIVATIVE_IN_PLACE = {
    "relu": lambda h: h.gt_(0),
    "tanh": lambda h: torch.addcmul(torch.ones((), dtype=h.dtype, device=h.device), h, h, value=-1, out=h),
    "sigmoid": lambda h: torch.addcmul(h, h, h, value=-1, out=h),
}


class TwoLayerStep:
    """Full-batch steps of S two-layer networks, the authors' update (MSELoss convention).

    ``x`` ``(S, n, k)``, ``y`` ``(S, n, 1)``, ``weights = [W (S, p, k), beta (S, 1, p)]``, ``b``
    ``(S, 1, p)`` the fixed feedback vector, ``lam`` a number or ``(S,)``. :meth:`step` does
    ``beta <- beta (1 - lr lam) - lr dMSE/dbeta`` and ``W <- W (1 - lr lam_first) - lr dMSE/dW`` with the
    error carried back through ``b`` (``rule="fa"``) or ``beta`` (``"bp"``); ``lam_first`` (L2 on ``W``,
    not in the paper's protocol; default 0) needs square inputs ``k = n`` for nonlinear networks, where
    ``W = (x^-1 A)^T`` is then recovered exactly. :meth:`weights` returns the current ``[W, beta]``.

    The arithmetic of :func:`fa_lib.networks.backward_pass` (the unit tests compare them),
    arranged for speed. The outputs see ``W`` only through the pre-activations ``A = x W^T``
    ``(S, n, p)``, and one step changes them by ``x dW^T = -lr c (K diag(e)) (psi'(A) b)`` with
    the constant kernel ``K = x x^T`` ``(S, n, n)`` and ``e = dMSE/df``. So nonlinear networks
    are trained on ``A`` itself: one batched product of size ``n n p`` per step instead of the
    two of size ``n k p`` (forward and gradient), plus a few elementwise passes over one
    reused hidden-layer buffer (``make bench`` times the step against the machine's matrix
    product and against :func:`fa_lib.training.train`, see the module docstring; ``torch.compile`` of
    the elementwise part measured no faster). ``W`` is recovered
    when asked, ``W = W(0) + (x^T K^-1 (A - A(0)))^T``, exact because every update of ``W`` lies
    in the row space of ``x`` (``K`` must be invertible: ``n <= k`` and inputs in general
    position, as in the authors' protocol). Linear networks never form the hidden layer:
    ``f = c x (beta W)^T`` and ``dMSE/dbeta = c (e^T x) W^T`` cost ``O(p k)``, and ``W`` is
    updated directly.
    """

    def __init__(self, x: Tensor, y: Tensor, weights: Sequence[Tensor], b: Tensor, *, rule: str, activation: str,
                 lr: float, lam: float | Tensor, lam_first: float | Tensor = 0.0) -> None:
        check_choice("rule", rule, ("bp", "fa"))
        check_choice("activation", activation, ACTIVATIONS)
        check_positive("lr", lr)
        w, beta = weights
        n_seeds, width = w.shape[0], w.shape[1]
        expected = {"x": (n_seeds, x.shape[1], w.shape[2]), "y": (n_seeds, x.shape[1], 1), "beta": (n_seeds, 1, width),
                    "b": (n_seeds, 1, width)}
        for name, tensor in {"x": x, "y": y, "beta": beta, "b": b}.items():
            if tuple(tensor.shape) != expected[name]:
                raise ValueError(f"{name} has shape {tuple(tensor.shape)}; expected {expected[name]} (W is {tuple(w.shape)})")
        lam = _per_network_lam(lam, n_seeds, w)
        lam_first = _per_network_lam(lam_first, n_seeds, w)
        if bool((lam_first != 0).any()) and activation != "linear" and x.shape[1] != w.shape[2]:
            raise ValueError(f"lam_first needs square inputs for a nonlinear network: x is {tuple(x.shape)}, use row-space "
                             "coordinates (prepared_trials) with d >= n")
        self.rule, self.activation, self.lr = rule, activation, float(lr)
        self.scale = 1.0 / math.sqrt(width)
        self.x, self.y, self.w, self.beta, self.b = x.clone(), y.clone(), w.clone(), beta.clone(), b.clone()
        self.decay = (1.0 - self.lr * lam).reshape(n_seeds, 1, 1).clone()
        self.decay_first = (1.0 - self.lr * lam_first).reshape(n_seeds, 1, 1).clone() if bool((lam_first != 0).any()) else None
        if activation != "linear":
            self.pre = torch.bmm(self.x, self.w.transpose(1, 2))  # A, (S, n, p)
            self.pre_init = self.pre.clone()
            self.kernel = torch.bmm(self.x, self.x.transpose(1, 2))  # K = x x^T, (S, n, n)
            self.hidden = torch.empty_like(self.pre)

    @property
    def partner(self) -> Tensor:
        """The vector that carries the error back (:func:`fa_lib.networks.error_carrier`): ``b`` (FA) or ``beta`` (BP), ``(S, 1, p)``."""
        return error_carrier(self.rule, [self.w, self.beta], [None, self.b], 0)

    def weights(self) -> list[Tensor]:
        """The current ``[W (S, p, k), beta (S, 1, p)]`` (copies)."""
        if self.activation == "linear":
            return [self.w.clone(), self.beta.clone()]
        if self.decay_first is not None:  # W has left W(0) + row space: recover it from A = x W^T, x square
            return [torch.linalg.solve(self.x.double(), self.pre.double()).transpose(1, 2).to(self.w.dtype), self.beta.clone()]
        change = torch.linalg.solve(self.kernel.double(), (self.pre - self.pre_init).double())  # K^-1 (A - A(0))
        w = self.w.double() + torch.bmm(self.x.double().transpose(1, 2), change).transpose(1, 2)
        return [w.to(self.w.dtype), self.beta.clone()]

    def _output(self) -> tuple[Tensor, Tensor | None]:
        """``f`` ``(S, n, 1)`` and the activated hidden layer (``None`` for linear networks)."""
        if self.activation == "linear":
            return torch.bmm(self.x, torch.bmm(self.beta, self.w).transpose(1, 2)).mul_(self.scale), None
        hidden = _ACTIVATE[self.activation](self.pre, self.hidden)
        return torch.bmm(hidden, self.beta.transpose(1, 2)).mul_(self.scale), hidden

    def mse(self) -> Tensor:
        """The authors' MSE of the current weights, ``(S,)`` (no update)."""
        return (self._output()[0] - self.y).square_().mean(dim=(1, 2))

    def step(self) -> Tensor:
        """One update of every network; returns the MSE ``(S,)`` of the weights before it."""
        x, beta, c, lr = self.x, self.beta, self.scale, self.lr
        output, hidden = self._output()
        error = output.sub_(self.y)
        mse = error.square().mean(dim=(1, 2))
        error.mul_(2.0 / x.shape[1])  # e = dMSE/df
        if hidden is None:
            error_x = torch.bmm(error.transpose(1, 2), x)  # (S, 1, k)
            grad_beta = torch.bmm(error_x, self.w.transpose(1, 2)).mul_(c)
            if self.decay_first is not None:
                self.w.mul_(self.decay_first)
            self.w.baddbmm_(self.partner.transpose(1, 2), error_x, alpha=-lr * c)
        else:
            grad_beta = torch.bmm(error.transpose(1, 2), hidden).mul_(c)
            carried = _DERIVATIVE_IN_PLACE[self.activation](hidden).mul_(self.partner)  # psi'(a_ir) b_r
            if self.decay_first is not None:
                self.pre.mul_(self.decay_first)
            self.pre.baddbmm_(self.kernel * error.transpose(1, 2), carried, alpha=-lr * c)  # A += x dW^T
        beta.mul_(self.decay).add_(grad_beta, alpha=-lr)
        return mse

    def _state(self) -> tuple[str, ...]:
        return (("x", "y", "w", "beta", "b", "decay") + (() if self.decay_first is None else ("decay_first",))
                + (() if self.activation == "linear" else ("pre", "pre_init", "kernel")))

    def keep(self, slots: Tensor) -> None:
        """Drop every network but ``slots`` (indices) from the batch."""
        for name in self._state():
            setattr(self, name, getattr(self, name).index_select(0, slots))
        if self.activation != "linear":
            self.hidden = torch.empty_like(self.pre)

    def load(self, slot: int, x: Tensor, y: Tensor, weights: Sequence[Tensor], b: Tensor, lam: float) -> None:
        """Put a new network (``x`` ``(n, k)``, ``y``, ``[W, beta]``, ``b`` without the seed dimension) into ``slot``
        (steppers without ``lam_first`` only)."""
        if self.decay_first is not None:
            raise ValueError("load() keeps no lam_first per slot; build a new TwoLayerStep for networks with L2 on W")
        for target, source in zip((self.x, self.y, self.w, self.beta, self.b), (x, y, *weights, b)):
            target[slot].copy_(source)
        self.decay[slot] = 1.0 - self.lr * lam
        if self.activation != "linear":
            self.pre[slot] = x @ weights[0].transpose(0, 1)
            self.pre_init[slot] = self.pre[slot]
            self.kernel[slot] = x @ x.transpose(0, 1)


def cache_block(p: int, n: int = N_SAMPLES) -> int:
    """Networks per batch on a CPU: enough for the batched products to run well, few enough that the
    ``(block, n, p)`` hidden layer (about 1 MB at most) stays in cache; 2 to 16."""
    check_int("p", p, minimum=1)
    return max(2, min(16, 2**18 // (n * p)))


def batch_size(block: int | str, activation: str, p: int, networks: int) -> int:
    """Networks trained at once for a ``block`` setting: an int, ``"all"`` (one batch: a GPU), or
    ``"auto"`` (:func:`cache_block`; linear networks, which never form the hidden layer, in one batch)."""
    if isinstance(block, str) and block not in ("auto", "all"):
        raise ValueError(f"block={block!r} is not allowed; expected 'auto', 'all' or an integer >= 1")
    if block == "all" or (block == "auto" and activation == "linear"):
        return networks
    if block == "auto":
        return min(cache_block(p), networks)
    return min(check_int("block", block, minimum=1), networks)


# --------------------------------------------------------------------------- fixed-length runs
@dataclass
class TwoLayerRun:
    """What :func:`train_two_layer` returns.

    ``mse``: ``(steps + 1, S)``, the authors' MSE after 0, 1, ..., steps updates, NaN from
    a seed's divergence on. ``alignment``: final ``cos(beta, b)`` ``(S,)`` (NaN if diverged).
    ``diverged`` ``(S,)`` and ``diverged_step`` ``(S,)`` (-1 if never); ``weights``: the final
    weights; ``seconds``: wall time of the loop. ``overlap``: ``<beta, b>`` after 0, 1, ..., steps
    updates ``(steps + 1, S)``; ``kept_weights``: the weights after ``keep_weights_at`` updates
    (``None`` when not asked for).
    """

    mse: np.ndarray
    alignment: np.ndarray
    diverged: np.ndarray
    diverged_step: np.ndarray
    weights: list[Tensor]
    seconds: float
    overlap: np.ndarray
    kept_weights: list[Tensor] | None = None


def _check_two_layer(weights: Sequence[Tensor], feedback: Sequence[Tensor | None] | None) -> None:
    if len(weights) != 2 or feedback is None or len(feedback) != 2 or feedback[1] is None:
        raise ValueError("weights must be [W, beta] and feedback [None, b] (see init_two_layer)")


def train_two_layer(
    weights: Sequence[Tensor],
    x: Tensor,
    y: Tensor,
    *,
    rule: str,
    activation: str,
    lr: float,
    lam: float | Tensor,
    steps: int,
    feedback: Sequence[Tensor | None],
    lam_first: float | Tensor = 0.0,
    keep_weights_at: int | None = None,
    progress: bool = False,
    desc: str | None = None,
) -> TwoLayerRun:
    """``steps`` full-batch updates (:class:`TwoLayerStep`) of a batch of two-layer models, the MSE and ``<beta, b>``
    at every step.

    ``lam`` (L2 on ``beta``) and ``lam_first`` (on ``W``, see :class:`TwoLayerStep`) are numbers or one value per seed
    ``(S,)``. ``feedback`` is always ``[None, b]``:
    the alignment is measured against ``b`` for both rules. ``keep_weights_at``: a step in
    ``[0, steps]`` whose weights are returned too (reading them does not change the run).
    """
    check_int("steps", steps, minimum=0)
    if keep_weights_at is not None:
        check_int("keep_weights_at", keep_weights_at, minimum=0)
        if keep_weights_at > steps:
            raise ValueError(f"keep_weights_at={keep_weights_at} must be at most steps={steps}")
    _check_two_layer(weights, feedback)
    stepper = TwoLayerStep(x, y, weights, feedback[1], rule=rule, activation=activation, lr=lr, lam=lam, lam_first=lam_first)
    mse = torch.empty(steps + 1, weights[0].shape[0], dtype=weights[0].dtype, device=weights[0].device)
    overlap = torch.empty_like(mse)
    kept = None
    start = time.perf_counter()
    with torch.no_grad():
        for step in tqdm(range(steps), desc=desc or f"train {rule}", disable=not progress, mininterval=2.0):
            if step == keep_weights_at:
                kept = stepper.weights()
            overlap[step] = (stepper.beta * stepper.b).sum(dim=(1, 2))
            mse[step] = stepper.step()
        mse[steps] = stepper.mse()
        overlap[steps] = (stepper.beta * stepper.b).sum(dim=(1, 2))
        weights = stepper.weights()
        kept = weights if keep_weights_at == steps else kept
    seconds = time.perf_counter() - start
    mse_np = mse.cpu().numpy().astype(np.float64)
    bad = ~np.isfinite(mse_np)
    ends_finite = torch.stack([torch.isfinite(w).flatten(1).all(-1) for w in weights]).all(0).cpu().numpy()
    first_bad = np.where(bad.any(axis=0), bad.argmax(axis=0), np.where(ends_finite, -1, steps))
    diverged = first_bad >= 0
    after = np.arange(steps + 1)[:, None] >= np.where(diverged, first_bad, steps + 1)[None, :]
    mse_np[after] = np.nan
    alignment = cosine(weights[1], feedback[1], dims=2).cpu().numpy().astype(np.float64)
    alignment[diverged] = np.nan
    return TwoLayerRun(mse_np, alignment, diverged, first_bad, weights, seconds, overlap.cpu().numpy().astype(np.float64), kept)



# --------------------------------------------------------------------------- the authors' run length
@dataclass(frozen=True)
class StopRule:
    """The authors' run length (their loop, exactly), plus a safety cap of ours.

    Steps are counted from 0. At every step ``t`` with ``t % every == every - 1``, before that
    step's update, the MSE is compared with the MSE of the previous check (0 before the first);
    once ``|change| < tolerance`` the run is *settled* for good. The loop runs while
    ``t < min_steps or not settled``: a run that settled earlier stops after ``min_steps``
    updates, otherwise after the update of the first check that settles it.
    ``max_steps`` (not in the authors' code, which has no cap) stops a run that never settles;
    such a run is reported as not settled.
    """

    min_steps: int
    every: int = STOP_EVERY
    tolerance: float = STOP_TOLERANCE
    max_steps: int | None = None

    def __post_init__(self) -> None:
        check_int("min_steps", self.min_steps, minimum=1)
        check_int("every", self.every, minimum=1)
        check_positive("tolerance", self.tolerance)
        if self.max_steps is not None:
            check_int("max_steps", self.max_steps, minimum=self.min_steps)

    @classmethod
    def for_width(cls, p: int, *, max_factor: int | None = 20) -> StopRule:
        """The authors' rule at width ``p``: ``min_steps = floor(5000 sqrt(p) / 14)``, capped at ``max_factor`` times that."""
        minimum = steps_for_width(p)
        return cls(minimum, max_steps=None if max_factor is None else max_factor * minimum)

    def steps_to_event(self, done: np.ndarray) -> np.ndarray:
        """Updates until each run's next event (its next check has been taken, ``min_steps`` reached,
        or the cap), from ``done`` updates; ``(S,)`` ints >= 1."""
        to_check = self.every - done % self.every  # the check is step done + to_check - 1
        steps = np.where(done < self.min_steps, np.minimum(to_check, self.min_steps - done), to_check)
        return steps if self.max_steps is None else np.minimum(steps, self.max_steps - done)

    def stop_step(self, check_mse: Sequence[float]) -> int | None:
        """Reference: the number of updates after which the authors' loop stops, given the MSE at its
        checks ``check_mse[k]`` (taken at step ``k * every + every - 1``); ``None`` if it has not stopped
        by the last check given. The cap is ignored."""
        previous, settled = 0.0, False
        for k, value in enumerate(check_mse):
            settled = settled or abs(value - previous) < self.tolerance
            previous = value
            last_update = k * self.every + self.every  # updates done once check k's step has run
            if settled:
                return max(self.min_steps, last_update)
        return None


@dataclass
class SettledRuns:
    """What :func:`train_until_settled` returns, one entry per network ``(N,)``.

    ``steps``: updates run; ``settled``: the stop rule was met (False: capped or diverged);
    ``diverged``; ``alignment``: ``cos(beta, b)`` at the stop (NaN if diverged) and
    ``alignment_at_min`` after ``min_steps`` updates (what stopping every run there would give);
    ``mse``: the authors' MSE at the stop; ``check_mse``: ``(checks, N)``, the MSE at each check
    (NaN-padded after the run's last); ``seconds``: wall time; ``weights``: ``[W (N, p, k), beta (N, 1, p)]`` at each
    network's stop when asked for (``keep_weights``), else ``None``.
    """

    steps: np.ndarray
    settled: np.ndarray
    diverged: np.ndarray
    alignment: np.ndarray
    alignment_at_min: np.ndarray
    mse: np.ndarray
    check_mse: np.ndarray
    seconds: float
    weights: list[Tensor] | None = None


def train_until_settled(
    weights: Sequence[Tensor],
    x: Tensor,
    y: Tensor,
    *,
    rule: str,
    activation: str,
    lr: float,
    lam: float | Tensor,
    stop: StopRule,
    feedback: Sequence[Tensor | None],
    block: int | None = None,
    keep_weights: bool = False,
    progress: bool = False,
    desc: str | None = None,
) -> SettledRuns:
    """Train N two-layer networks, each until the authors' stop rule ends it, at most ``block`` at a time.

    Inputs as :func:`train_two_layer` (``lam`` a number or ``(N,)``). Each network stops on its
    own: its alignment, MSE and step count are taken at its own stop, and its slot in the
    batch is given to the next waiting network (``block=None``: all N in one batch, which
    shrinks as they stop). A network whose MSE becomes NaN/inf stops at once, diverged.
    Every network's arithmetic is independent of the others', so the result does not
    depend on ``block`` or on the order of the batch. ``keep_weights``: also return every network's weights at its
    stop (memory ``N p k``).
    """
    _check_two_layer(weights, feedback)
    n_networks = weights[0].shape[0]
    lam = _per_network_lam(lam, n_networks, weights[0])
    block = n_networks if block is None else min(check_int("block", block, minimum=1), n_networks)
    b = feedback[1]
    pending = list(range(block, n_networks))
    stepper = TwoLayerStep(x[:block], y[:block], [w[:block] for w in weights], b[:block], rule=rule,
                           activation=activation, lr=lr, lam=lam[:block])
    owner = np.arange(block)  # network in each slot
    done = np.zeros(block, dtype=np.int64)
    previous = np.zeros(block)
    settled = np.zeros(block, dtype=bool)
    out_steps = np.zeros(n_networks, dtype=np.int64)
    out_settled = np.zeros(n_networks, dtype=bool)
    out_diverged = np.zeros(n_networks, dtype=bool)
    out_alignment = np.full(n_networks, np.nan)
    out_at_min = np.full(n_networks, np.nan)
    out_mse = np.full(n_networks, np.nan)
    out_weights = [torch.full_like(w, float("nan")) for w in weights] if keep_weights else None
    checks: list[list[float]] = [[] for _ in range(n_networks)]
    start = time.perf_counter()
    bar = tqdm(total=n_networks, desc=desc or f"train {rule} until settled", disable=not progress, mininterval=2.0)
    with torch.no_grad():
        while owner.size:
            length = int(stop.steps_to_event(done).min())
            for _ in range(length):
                last = stepper.step()
            done += length
            last = last.cpu().numpy().astype(np.float64)
            checked = (done - 1) % stop.every == stop.every - 1
            for s in np.flatnonzero(checked):
                checks[owner[s]].append(last[s])
            settled |= checked & (np.abs(last - previous) < stop.tolerance)
            previous = np.where(checked, last, previous)
            diverged = ~np.isfinite(last)
            at_min = np.flatnonzero((done == stop.min_steps) & ~diverged)
            if at_min.size:
                values = cosine(stepper.beta, stepper.b, dims=2).cpu().numpy().astype(np.float64)
                out_at_min[owner[at_min]] = values[at_min]
            capped = done >= (stop.max_steps or np.iinfo(np.int64).max)
            finished = diverged | (settled & (done >= stop.min_steps)) | capped
            if not finished.any():
                continue
            final_mse = stepper.mse().cpu().numpy().astype(np.float64)
            final_alignment = cosine(stepper.beta, stepper.b, dims=2).cpu().numpy().astype(np.float64)
            current = stepper.weights() if keep_weights else None
            for s in np.flatnonzero(finished):
                k = owner[s]
                if keep_weights and not diverged[s]:
                    for out, w in zip(out_weights, current):
                        out[k] = w[s]
                out_steps[k], out_settled[k], out_diverged[k] = done[s], settled[s] and not diverged[s], diverged[s]
                out_mse[k] = np.nan if diverged[s] else final_mse[s]
                out_alignment[k] = np.nan if diverged[s] else final_alignment[s]
                bar.update(1)
                if pending:
                    k = pending.pop(0)
                    stepper.load(int(s), x[k], y[k], [w[k] for w in weights], b[k], float(lam[k]))
                    owner[s], done[s], previous[s], settled[s] = k, 0, 0.0, False
                    finished[s] = False
            if finished.any():
                keep = np.flatnonzero(~finished)
                stepper.keep(torch.as_tensor(keep, device=stepper.w.device))
                owner, done, previous, settled = owner[keep], done[keep], previous[keep], settled[keep]
    bar.close()
    width = max((len(c) for c in checks), default=0)
    check_mse = np.full((width, n_networks), np.nan)
    for k, values in enumerate(checks):
        check_mse[: len(values), k] = values
    return SettledRuns(out_steps, out_settled, out_diverged, out_alignment, out_at_min, out_mse, check_mse,
                       time.perf_counter() - start, out_weights)
