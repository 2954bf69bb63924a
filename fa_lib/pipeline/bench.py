"""``python -m fa_lib.pipeline.bench`` (``make bench``): speed measured as ratios within one run.

The machines this runs on are shared and noisy, so every result is a ratio of two timings
taken side by side in the same run (interleaved, median of repeats), never an absolute
time on its own:

* FA vs BP: time per training step on the same network (FA does the same matrix products);
* batched vs separate: one batched run of S networks against S one-network runs of the
  two-layer step (:class:`fa_lib.training.two_layer.TwoLayerStep`), S in {1, 8, 32};
* the two-layer step against the general loop: seconds per step of :class:`~fa_lib.training.two_layer.TwoLayerStep`
  and of :func:`fa_lib.training.train` doing the same FA ReLU update on the same networks, p in {200, 800, 3200};
* against the authors' method: time per network-step of their way of training (one network
  at a time, autograd, d = 150) and of ours, for p in {200, 800, 3200}, and our float32
  GFLOP/s against the machine's own matrix product, all timed in the same run;
* the wall time of each chapter at each profile, from the results files that exist.

Results go to ``results/benchmark.json`` and, through :func:`fa_lib.pipeline.pages.performance_markdown`,
to the book's Performance page.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..networks import backward_pass, init_feedback, init_weights
from ..results import git_commit, to_jsonable
from ..theory.song import INPUT_DIM, LEARNING_RATES, N_SAMPLES, core_hyperparameters, readout_scales
from ..training import train
from ..training.two_layer import TwoLayerStep, cache_block, init_two_layer, prepared_trials, synthetic_data

REPEATS = 7


def _median_times(fns: dict[str, Callable[[], Any]], repeats: int = REPEATS) -> dict[str, float]:
    """Median seconds of each function, the functions interleaved within every repeat."""
    for fn in fns.values():  # warm-up
        fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(v) for name, v in samples.items()}


def fa_vs_bp_step(widths=(784, 256, 256, 10), seeds: int = 8, batch: int = 100, steps: int = 20) -> dict[str, Any]:
    """Seconds per training step (backward pass + update) of BP, FA and DFA on one network."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, widths[0], generator=gen)
    y = torch.randint(0, widths[-1], (batch,), generator=gen)

    def runner(rule: str) -> Callable[[], None]:
        weights = init_weights(widths, range(seeds))
        feedback = init_feedback(widths, range(seeds), rule=rule)

        def run() -> None:
            with torch.no_grad():
                for _ in range(steps):
                    grads = backward_pass(weights, x, y, rule=rule, activation="relu", loss="ce", feedback=feedback, validate=False).grads
                    for w, g in zip(weights, grads):
                        w.sub_(1e-3 * g)

        return run

    times = _median_times({rule: runner(rule) for rule in ("bp", "fa", "dfa")})
    per_step = {rule: t / steps for rule, t in times.items()}
    return {"widths": list(widths), "seeds": seeds, "batch": batch, "seconds_per_step": per_step,
            "fa_over_bp": per_step["fa"] / per_step["bp"], "dfa_over_bp": per_step["dfa"] / per_step["bp"]}


def _two_layer_step(activation: str, p: int, networks: int, steps: int) -> Callable[[], Any]:
    """``steps`` updates of the two-layer step (:class:`fa_lib.training.two_layer.TwoLayerStep`, row-space form) on a batch."""
    x, y, weights, b = prepared_trials(activation, p, list(range(networks)), N_SAMPLES, INPUT_DIM, torch.float32, "cpu")
    stepper = TwoLayerStep(x, y, weights, b, rule="fa", activation=activation, lr=LEARNING_RATES[activation], lam=0.02)

    def run() -> None:
        with torch.no_grad():
            for _ in range(steps):
                stepper.step()

    return run


def batched_vs_separate(p: int = 200, steps: int = 200, sizes=(1, 8, 32), activation: str = "relu") -> list[dict[str, Any]]:
    """Wall time of S separate one-network runs over one batched S-network run of the two-layer step."""
    rows = []
    for size in sizes:
        batched = _two_layer_step(activation, p, size, steps)
        separate = [_two_layer_step(activation, p, 1, steps) for _ in range(size)]
        times = _median_times({"batched": batched, "separate": lambda: [run() for run in separate]}, repeats=3)
        rows.append({"S": size, "p": p, "steps": steps, "batched_s": times["batched"], "separate_s": times["separate"],
                     "speedup": times["separate"] / times["batched"]})
    return rows


class _ReadoutThroughFeedback(torch.autograd.Function):
    """The authors' readout: ``h beta^T`` forward; backward sends the error to ``h`` through ``b`` and
    adds ``lam beta`` to ``beta``'s gradient (their custom ``Function``, written here after their method)."""

    @staticmethod
    def forward(ctx, h, beta, b, lam):  # noqa: D102
        ctx.save_for_backward(h, beta, b)
        ctx.lam = lam
        return h @ beta.t()

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        h, beta, b = ctx.saved_tensors
        return grad @ b, grad.t() @ h + ctx.lam * beta, None, None


class AuthorsMethodNetwork(torch.nn.Module):
    """One two-layer FA network the way the authors' code trains it: ``d``-dimensional inputs (no
    row-space reduction), autograd through a custom function, one network per module."""

    def __init__(self, d: int, p: int, lam: float, seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.first = torch.nn.Parameter(torch.randn(p, d, generator=gen))
        self.beta = torch.nn.Parameter(torch.randn(1, p, generator=gen))
        self.register_buffer("b", torch.randn(1, p, generator=gen))
        self.lam, self.scale = lam, 1.0 / p**0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return _ReadoutThroughFeedback.apply(torch.relu(x @ self.first.t()), self.beta, self.b, self.lam) * self.scale


def _authors_method(p: int, steps: int, d: int = 150, n: int = 50) -> Callable[[], Any]:
    """``steps`` updates of one :class:`AuthorsMethodNetwork` with ``nn.MSELoss`` and ``torch.optim.SGD``."""
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, d, generator=gen), torch.randn(n, 1, generator=gen)
    net = AuthorsMethodNetwork(d, p, lam=0.02, seed=0)
    optimizer, loss_fn = torch.optim.SGD(net.parameters(), lr=1e-2), torch.nn.MSELoss()

    def run() -> None:
        for _ in range(steps):
            loss = loss_fn(net(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    return run


def matmul_gflops(size: int = 1024) -> float:
    """The machine's own float32 matrix-product rate (GFLOP/s) at the current thread count."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=gen), torch.randn(size, size, generator=gen)
    seconds = _median_times({"mm": lambda: torch.mm(a, b)})["mm"]
    return 2 * size**3 / seconds / 1e9


def two_layer_flops_per_step(seeds: int, n: int, p: int) -> int:
    """Floating-point operations (multiply-adds x 2) of one step of :class:`fa_lib.training.two_layer.TwoLayerStep` on a
    nonlinear network: the product ``(K diag e)(psi' b)`` that updates the pre-activations (``n n p``),
    the output ``h beta^T`` and ``dMSE/dbeta = e^T h`` (``n p`` each). The elementwise passes are not counted."""
    return 2 * seeds * (n * n * p + 2 * n * p)


def against_authors_method(widths=(200, 800, 3200), activation: str = "relu") -> list[dict[str, Any]]:
    """Per network-step time of the authors' method (one network at a time, autograd, d = 150) and of
    ours (a cache-sized batch, :func:`fa_lib.training.two_layer.cache_block`), interleaved in one run; their ratio;
    our GFLOP/s against the machine's float32 matrix product measured in the same run."""

    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(1024, 1024, generator=gen), torch.randn(1024, 1024, generator=gen)
    rows = []
    for p in widths:
        networks = cache_block(p)
        steps = max(20, round(5e9 / two_layer_flops_per_step(networks, N_SAMPLES, p)))
        times = _median_times({"authors": _authors_method(p, steps), "ours": _two_layer_step(activation, p, networks, steps),
                               "matmul": lambda: torch.mm(a, b)}, repeats=5)
        authors, ours = times["authors"] / steps, times["ours"] / (steps * networks)
        peak = 2 * 1024**3 / times["matmul"] / 1e9
        gflops = two_layer_flops_per_step(1, N_SAMPLES, p) / ours / 1e9
        rows.append({"p": p, "networks": networks, "steps": steps, "authors_ms": 1e3 * authors, "ours_ms": 1e3 * ours,
                     "speedup": authors / ours, "gflops": gflops, "matmul_gflops": peak, "fraction_of_matmul": gflops / peak})
    return rows


def two_layer_step_vs_train(widths=(200, 800, 3200), networks: int = 8, n: int = N_SAMPLES, d: int = INPUT_DIM,
                            steps: int | None = None, lr: float = LEARNING_RATES["relu"], lam: float = 0.02) -> list[dict[str, Any]]:
    """Seconds per step of :class:`fa_lib.training.two_layer.TwoLayerStep` and of :func:`fa_lib.training.train`
    doing the same FA ReLU update (the authors' ``lr``, ``lam`` on ``beta``; ``train`` with ``eta = 2 lr``,
    ``l2 = [0, lam / 2]``, ``record_every=steps``) on the same ``networks`` networks of Song's task
    (``n`` samples, ``d`` inputs, no row-space reduction for either), interleaved in one run; ``ratio`` is
    train's time over the step's. ``steps``: per timing (default: about 4 GFLOP of the step's work, at least 20)."""
    eta, l2 = core_hyperparameters(lr, lam)
    seeds = list(range(networks))
    rows = []
    for p in widths:
        x, y = synthetic_data("relu", n, d, p, seeds)
        weights, feedback = init_two_layer(d, p, seeds)
        count = steps or max(20, round(4e9 / two_layer_flops_per_step(networks, n, p)))
        stepper = TwoLayerStep(x, y, weights, feedback[1], rule="fa", activation="relu", lr=lr, lam=lam)

        def ours() -> None:
            with torch.no_grad():
                for _ in range(count):
                    stepper.step()

        def general() -> None:
            train(weights, x, y, rule="fa", activation="relu", lr=eta, steps=count, loss="mse", feedback=feedback,
                  l2=[0.0, l2], layer_scales=readout_scales(p), record_every=count, progress=False)

        times = _median_times({"two_layer_step": ours, "train": general}, repeats=3)
        per_step = {name: t / count for name, t in times.items()}
        rows.append({"p": p, "networks": networks, "n": n, "d": d, "steps": count,
                     "two_layer_step_s": per_step["two_layer_step"], "train_s": per_step["train"],
                     "ratio": per_step["train"] / per_step["two_layer_step"]})
    return rows


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "platform": platform.platform(),
            "python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__, "git_commit": git_commit(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def run_benchmark(threads: int = 1) -> dict[str, Any]:
    torch.set_num_threads(threads)
    print("FA vs BP step time ...", flush=True)
    step = fa_vs_bp_step()
    print(f"  FA/BP = {step['fa_over_bp']:.2f}, DFA/BP = {step['dfa_over_bp']:.2f}", flush=True)
    print("batched vs separate networks (two-layer step) ...", flush=True)
    batching = batched_vs_separate()
    for row in batching:
        print(f"  S={row['S']:3d}: separate/batched = {row['speedup']:.1f}", flush=True)
    print("two-layer step against the authors' method (ReLU, per network-step) ...", flush=True)
    sweep = against_authors_method()
    for row in sweep:
        print(f"  p={row['p']:5d}: authors {row['authors_ms']:.3f} ms, ours {row['ours_ms']:.3f} ms ({row['networks']} batched): "
              f"{row['speedup']:.1f}x; ours {row['gflops']:.1f} GFLOP/s = {row['fraction_of_matmul']:.2f} of matmul "
              f"({row['matmul_gflops']:.1f})", flush=True)
    print("two-layer step against fa_lib.training.train (FA ReLU, 8 networks) ...", flush=True)
    general = two_layer_step_vs_train()
    for row in general:
        print(f"  p={row['p']:5d}: train {1e3 * row['train_s']:.3f} ms, two-layer step {1e3 * row['two_layer_step_s']:.3f} ms "
              f"per step: {row['ratio']:.1f}x", flush=True)
    return {"machine": machine(), "fa_vs_bp": step, "batched_vs_separate": batching, "against_authors": sweep,
            "two_layer_vs_train": general}


def main() -> int:
    result = run_benchmark()
    out = Path(__file__).resolve().parents[2] / "results" / "benchmark.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(to_jsonable(result), indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
