"""``python -m fa_lib.bench`` (``make bench``): speed measured as ratios within one run.

The machines this runs on are shared and noisy, so every result is a ratio of two timings
taken side by side in the same run (interleaved, median of repeats), never an absolute
time on its own:

* FA vs BP: time per training step on the same network (FA does the same matrix products);
* batched vs separate: one batched run of S seeds against S one-seed runs of the Song
  chapter's two-layer protocol, S in {1, 8, 32};
* efficiency: the protocol's achieved float32 GFLOP/s against the machine's own float32
  matrix-product GFLOP/s, measured in the same run, for p in {200, 800, 3200};
* the wall time of each chapter at each profile, from the results files that exist.

Results go to ``results/benchmark.json`` and, through :func:`performance_markdown`, to the
book's Performance page.
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

from .networks import backward_pass, init_feedback, init_weights
from .results import git_commit, to_jsonable

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


def _two_layer_run(activation: str, p: int, seeds: list[int], steps: int) -> Callable[[], Any]:
    """One call of the Song chapter's batched trainer on ``len(seeds)`` trials (row-space form)."""
    from . import song

    x, y = song.synthetic_data(activation, song.N_SAMPLES, song.INPUT_DIM, p, seeds)
    weights, feedback = song.init_two_layer(song.INPUT_DIM, p, seeds)
    x, first_layer = song.row_space_coordinates(x, weights[0])
    lr = song.LEARNING_RATES[activation]
    return lambda: song.train_two_layer([first_layer, weights[1]], x, y, rule="fa", activation=activation, lr=lr,
                                        lam=0.0, steps=steps, feedback=feedback)


def batched_vs_separate(p: int = 200, steps: int = 200, sizes=(1, 8, 32), activation: str = "relu") -> list[dict[str, Any]]:
    """Wall time of S separate one-seed runs over one batched S-seed run of the two-layer protocol."""
    rows = []
    for size in sizes:
        seeds = list(range(size))
        batched = _two_layer_run(activation, p, seeds, steps)
        separate = [_two_layer_run(activation, p, [s], steps) for s in seeds]
        times = _median_times({"batched": batched, "separate": lambda: [run() for run in separate]}, repeats=3)
        rows.append({"S": size, "p": p, "steps": steps, "batched_s": times["batched"], "separate_s": times["separate"],
                     "speedup": times["separate"] / times["batched"]})
    return rows


def matmul_gflops(size: int = 1024) -> float:
    """The machine's own float32 matrix-product rate (GFLOP/s) at the current thread count."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=gen), torch.randn(size, size, generator=gen)
    seconds = _median_times({"mm": lambda: torch.mm(a, b)})["mm"]
    return 2 * size**3 / seconds / 1e9


def two_layer_flops_per_step(seeds: int, n: int, k: int, p: int) -> int:
    """Multiply-adds x 2 of one full-batch step in row-space form (x: n x k, W: p x k, beta: 1 x p):
    forward (n k p + n p), error back through b (n p), gradients of W (p n k) and beta (n p)."""
    return 2 * seeds * (2 * n * k * p + 3 * n * p)


def sweep_efficiency(widths=(200, 800, 3200), trials: int = 10, steps: int = 100, activation: str = "relu") -> list[dict[str, Any]]:
    """Achieved GFLOP/s of one protocol cell (``trials`` x 4 lambdas batched) against matmul's."""
    from . import song

    peak = matmul_gflops()
    rows = []
    lams = len(song.LAMBDAS[activation])
    for p in widths:
        seeds = [s for s in range(trials) for _ in range(lams)]
        run = _two_layer_run(activation, p, seeds, steps)
        seconds = _median_times({"cell": run}, repeats=3)["cell"]
        k = min(song.N_SAMPLES, song.INPUT_DIM)
        flops = two_layer_flops_per_step(len(seeds), song.N_SAMPLES, k, p) * steps
        rows.append({"p": p, "networks": len(seeds), "steps": steps, "seconds": seconds, "gflops": flops / seconds / 1e9,
                     "matmul_gflops": peak, "fraction_of_matmul": flops / seconds / 1e9 / peak})
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
    print("batched vs separate seeds (two-layer protocol) ...", flush=True)
    batching = batched_vs_separate()
    for row in batching:
        print(f"  S={row['S']:3d}: separate/batched = {row['speedup']:.1f}", flush=True)
    print("sweep GFLOP/s against matmul ...", flush=True)
    sweep = sweep_efficiency()
    for row in sweep:
        print(f"  p={row['p']:5d}: {row['gflops']:.1f} GFLOP/s = {row['fraction_of_matmul']:.2f} of matmul ({row['matmul_gflops']:.1f})", flush=True)
    return {"machine": machine(), "fa_vs_bp": step, "batched_vs_separate": batching, "sweep_efficiency": sweep}


def performance_markdown(bench: dict[str, Any] | None, chapter_times: dict[tuple[str, str], dict[str, Any]]) -> str:
    """The book's Performance page, generated from the benchmark JSON and the results files."""
    lines = ["# Performance", ""]
    if bench is None:
        lines += ["No benchmark has been run in this checkout: `make bench` measures it and the next book build shows it here.", ""]
    else:
        m = bench["machine"]
        lines += [
            f"Measured by `make bench` ({bench.get('source', 'this checkout')}) on {m['date']}: {m['cpu']}, {m['cores']} cores, {m['threads']} torch thread(s), "
            f"Python {m['python']}, torch {m['torch']}, commit `{m['git_commit']}`. Every figure below is a ratio of "
            "timings taken side by side in the same run (the median of interleaved repeats), because absolute times "
            "on a shared machine are not a result.", "",
            "## FA costs what BP costs", "",
            "| network | seeds | batch | BP s/step | FA / BP | DFA / BP |", "| --- | --- | --- | --- | --- | --- |",
        ]
        s = bench["fa_vs_bp"]
        lines += [f"| {'-'.join(map(str, s['widths']))} | {s['seeds']} | {s['batch']} | {s['seconds_per_step']['bp']:.2e} | "
                  f"{s['fa_over_bp']:.2f} | {s['dfa_over_bp']:.2f} |", ""]
        lines += ["## Seeds batched in one computation", "",
                  "Two-layer protocol of the Song, Xu & Lafferty chapter (ReLU, n = 50, d = 150).", "",
                  "| S | p | steps | S separate runs / one batched run |", "| --- | --- | --- | --- |"]
        lines += [f"| {r['S']} | {r['p']} | {r['steps']} | {r['speedup']:.1f} |" for r in bench["batched_vs_separate"]]
        lines += ["", "## Sweep throughput against the machine's matrix product", "",
                  "| p | networks in the batch | GFLOP/s | matmul GFLOP/s | fraction |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {r['p']} | {r['networks']} | {r['gflops']:.1f} | {r['matmul_gflops']:.1f} | {r['fraction_of_matmul']:.2f} |"
                  for r in bench["sweep_efficiency"]]
        lines.append("")
    lines += ["## Chapter wall times", "",
              "From the results files of this checkout (each run's own `provenance.seconds`; threads as recorded).", ""]
    if chapter_times:
        lines += ["| chapter | profile | seconds | threads | started |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {stem} | {profile} | {prov['seconds']:.0f} | {prov['threads']} | {prov['started']} |"
                  for (stem, profile), prov in sorted(chapter_times.items())]
    else:
        lines.append("No chapter has been run yet.")
    return "\n".join(lines) + "\n"


def main() -> int:
    result = run_benchmark()
    out = Path(__file__).resolve().parents[1] / "results" / "benchmark.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(to_jsonable(result), indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
