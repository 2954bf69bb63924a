"""What the why-align chapter runs: zero-error and stationary points, their stability, the scalar toy and the
real-data runs (C3b weight-decay sweep, C4 early descent, C5 learning)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ...data import teacher_data
from ...networks import backward_pass, init_feedback, init_weights, seeded_generator, seeded_normal
from ...theory.fixed_points import (descent_contributions, eigenvalue_mismatch, largest_eigenvalues, linear_bottleneck_minimum,
                                    linearised_growth, output_jacobian, random_zero_error_point, rank_one_feedback,
                                    stability_eigenvalues, toy_landing_point, update_alignment, update_direction, update_jacobian)
from ...training import History, stack_settings, steps_per_epoch, summarize_seeds, train
from ...training.stability import perturbation_growth
from .profiles import (ACTIVATIONS, BATCH, DT, EARLY_PROBE, FEEDBACK_SCALE, GROUPS, L2_SWEEP, LR, MULTI_SCALE, MULTI_STEP, MULTI_STEPS,
                       MULTI_WIDTHS, NEAR_ZERO, NEG_BOUND, SCALAR_SCALE, SCALAR_STEPS, STEP, TOY_LR, TOY_NEAR, TOY_STEPS, WIDTHS,
                       ZERO_ERROR_NETWORKS, _network_name)

Tensor = torch.Tensor


def zero_error_points(seeds: Sequence[int], device: str = "cpu") -> dict[tuple[str, tuple[int, ...]], tuple[list[Tensor], Tensor, Tensor]]:
    """``(weights, x, y)`` of a random zero-error point (:func:`random_zero_error_point`, float64) for every
    activation and every network of ``ZERO_ERROR_NETWORKS``, keyed ``(activation, tuple(widths))``."""
    return {(act, tuple(widths)): random_zero_error_point(widths, seeds, n, activation=act, device=device)
            for widths, n in ZERO_ERROR_NETWORKS for act in ACTIVATIONS}


def fixed_point_rows(points: Mapping, seeds: Sequence[int], device: str = "cpu") -> list[dict[str, Any]]:
    """C1a: per network and rule (FA, DFA; random feedback per seed), ``||G(w*)|| / ||G(w0)||`` over the seeds
    (``median_ratio``, ``worst_ratio``), ``w0`` the random weights before the readout was fitted."""
    rows = []
    for widths, n in ZERO_ERROR_NETWORKS:
        for act in ACTIVATIONS:
            w, x, y = points[(act, tuple(widths))]
            start = init_weights(widths, seeds, dtype=DT, device=device)  # before the readout was fitted
            for rule in ("fa", "dfa"):
                fb = init_feedback(widths, seeds, rule=rule, dtype=DT, device=device)
                at = update_direction(w, x, y, rule=rule, activation=act, feedback=fb).norm(dim=-1)
                before = update_direction(start, x, y, rule=rule, activation=act, feedback=fb).norm(dim=-1)
                ratio = (at / before).cpu().numpy()
                rows.append(dict(rule=rule.upper(), activation=act, widths=str(widths), samples=n,
                                 median_ratio=float(np.median(ratio)), worst_ratio=float(ratio.max())))
    return rows


def stationary_points(seeds: Sequence[int], device: str = "cpu") -> dict[str, tuple[str, list[int], list[Tensor], Tensor, Tensor]]:
    """C1b: two stationary points of the loss with non-zero error, ``name -> (activation, widths, weights, x, y)``.

    The global minimum of a linear 6-2-4 bottleneck (30 noisy samples of a linear teacher,
    :func:`linear_bottleneck_minimum`) and the origin ``W = 0`` of a tanh 5-16-1 network (20 samples of a
    tanh teacher), a saddle. Also, under ``"least squares"``, the linear minimum without a binding
    bottleneck (6-4-4), where FA's update vanishes too.
    """
    x_lin, y_lin = teacher_data(30, [6, 6, 4], seeds, activation="linear", dtype=DT, device=device)
    y_lin = y_lin + 0.5 * seeded_normal([(30, 4)], seeds, [1.0], stream="noise", dtype=DT, device=device)[0]
    x_tanh, y_tanh = teacher_data(20, [5, 16, 1], seeds, activation="tanh", dtype=DT, device=device)
    origin = [torch.zeros(len(seeds), 16, 5, dtype=DT, device=device), torch.zeros(len(seeds), 1, 16, dtype=DT, device=device)]
    return {
        "linear 6-2-4, bottleneck minimum": ("linear", [6, 2, 4], linear_bottleneck_minimum(x_lin, y_lin, 2), x_lin, y_lin),
        "tanh 5-16-1, origin": ("tanh", [5, 16, 1], origin, x_tanh, y_tanh),
        "least squares": ("linear", [6, 4, 4], linear_bottleneck_minimum(x_lin, y_lin, 4), x_lin, y_lin),
    }


def stationary_rows(points: Mapping, seeds: Sequence[int], device: str = "cpu") -> tuple[list[dict[str, Any]], float]:
    """C1b: per stationary point the largest BP gradient, the smallest FA update (random feedback per seed),
    the worst ratio of the two and the smallest loss; and the largest FA update at the least-squares point."""
    rows, least_squares = [], None
    for name, (act, widths, w, x, y) in points.items():
        fb = init_feedback(widths, seeds, rule="fa", dtype=DT, device=device)
        fa = update_direction(w, x, y, rule="fa", activation=act, feedback=fb).norm(dim=-1)
        if name == "least squares":
            least_squares = fa.max()
            continue
        bp = update_direction(w, x, y, rule="bp", activation=act).norm(dim=-1)
        loss = backward_pass(w, x, y, rule="bp", activation=act).loss
        rows.append(dict(point=name, max_bp_gradient=bp.max().item(), min_fa_update=fa.min().item(),
                         worst_ratio=(bp / fa).max().item(), min_loss=loss.min().item()))
    return rows, least_squares


def scaled_feedback(widths: Sequence[int], seeds: Sequence[int], rule: str, device: str = "cpu") -> list[Tensor | None]:
    """Random feedback with ``FEEDBACK_SCALE`` times the default std (float64): ``1/sqrt(n_in)`` for FA's
    ``B_l``, ``1/sqrt(n_L)`` for DFA's ``D_l``."""
    stds = [FEEDBACK_SCALE / np.sqrt(n_in if rule == "fa" else widths[-1]) for n_in in widths[:-1]]
    return init_feedback(widths, seeds, rule=rule, std=stds, dtype=DT, device=device)


def scalar_networks() -> list[tuple[str, str, list[int]]]:
    """``(rule, activation, widths)`` of the scalar-output cases of C2a, C2c, C3a (two layers: DFA is FA, left out)."""
    return [(rule, act, widths) for widths in ([5, 16, 1], [5, 16, 16, 1]) for act in ACTIVATIONS
            for rule in ("fa", "dfa") if not (rule == "dfa" and len(widths) == 3)]


def _first(tensors: Sequence[Tensor | None], k: int) -> list[Tensor | None]:
    return [None if t is None else t[:k] for t in tensors]


def scalar_stability(points: Mapping, seeds: Sequence[int], *, n_rows: int, device: str = "cpu") -> tuple[list[dict], list[dict]]:
    """C2a, C2c, C3a at the scalar-output zero-error points, for every seed's scaled random feedback.

    Returns ``(jacobian_rows, cases)``. ``jacobian_rows`` (C2a, the first ``n_rows`` seeds of each network):
    the closed-form eigenvalue ``g~.g`` (``predicted``), the largest-modulus eigenvalue of the autodiff
    Jacobian (``measured``, ``measured_imag``), the alignment, its sign, and ``stable`` (the perturbation
    decayed). ``cases``, one per network with ``(S,)`` arrays: ``eigenvalue``, ``alignment``, ``growth``
    (:func:`perturbation_growth` with ``lr = STEP / (||g~|| ||g||)``), ``same_fa``/``same_bp`` (the rule and BP
    with one ``lr = STEP / max(||g||^2, ||g~|| ||g||)``).
    """
    jacobian_rows, cases = [], []
    k = n_rows
    for rule, act, widths in scalar_networks():
        w, x, y = points[(act, tuple(widths))]
        fb = scaled_feedback(widths, seeds, rule, device)
        lam = stability_eigenvalues(w, x, rule=rule, activation=act, feedback=fb)[:, 0].real
        align = update_alignment(w, x, rule=rule, activation=act, feedback=fb)
        norms = (output_jacobian(w, x, rule=rule, activation=act, feedback=fb).flatten(1).norm(dim=-1)
                 * output_jacobian(w, x, rule="bp", activation=act).flatten(1).norm(dim=-1))  # ||g~|| ||g||
        bp_sq = output_jacobian(w, x, rule="bp", activation=act).flatten(1).norm(dim=-1) ** 2  # ||g||^2, BP's eigenvalue
        kw = dict(activation=act, seeds=seeds, steps=SCALAR_STEPS, scale=SCALAR_SCALE)
        growth = perturbation_growth(w, x, y, rule=rule, feedback=fb, lr=STEP / norms, **kw)
        common = STEP / torch.maximum(bp_sq, norms)
        same_fa = perturbation_growth(w, x, y, rule=rule, feedback=fb, lr=common, **kw)
        same_bp = perturbation_growth(w, x, y, rule="bp", feedback=None, lr=common, **kw)
        name = _network_name(rule, act, widths)
        cases.append(dict(network=name, depth=len(widths) - 1, rule=rule, eigenvalue=lam.cpu().numpy(),
                          alignment=align.cpu().numpy(), growth=growth.cpu().numpy(),
                          same_fa=same_fa.cpu().numpy(), same_bp=same_bp.cpu().numpy()))
        jac = update_jacobian(_first(w, k), x[:k], y[:k], rule=rule, activation=act, feedback=_first(fb, k))
        measured = largest_eigenvalues(jac, 1)[:, 0]
        for s in range(k):
            jacobian_rows.append(dict(network=name, seed=seeds[s], predicted=lam[s].item(), measured=measured[s].real.item(),
                                      measured_imag=measured[s].imag.item(), alignment=align[s].item(),
                                      alignment_sign=int(np.sign(align[s].item())), stable=bool(growth[s] < 0)))
    return jacobian_rows, cases


def multi_output_stability(points: Mapping, seeds: Sequence[int], *, n_rows: int, device: str = "cpu") -> tuple[list[dict], list[dict], list[dict]]:
    """C2b, C2e, C2f at the ``MULTI_WIDTHS`` zero-error points (3 outputs, 4 samples), FA and DFA, every activation.

    Returns ``(reduced_rows, psd_rows, cases)``: the worst mismatch between the reduced matrix's spectrum and
    the autodiff Jacobian's largest eigenvalues (first ``n_rows`` seeds) and the fraction predicted stable;
    BP's Jacobian (the Hessian) asymmetry and smallest over largest eigenvalue, and FA's most negative real
    part over the largest modulus and the fraction of feedbacks with a real part below ``-1e-6`` of it; and per
    network ``(S,)`` arrays ``stable`` (``Re lambda_1 > 0``), ``growth`` and ``linear`` (:func:`perturbation_growth`
    and :func:`linearised_growth` with ``lr = MULTI_STEP / max|lambda|``), ``resolution`` (``T lr |Re lambda_1|``)
    and ``cosine`` (:func:`update_alignment`).
    """
    reduced_rows, psd_rows, cases = [], [], []
    k, widths = n_rows, MULTI_WIDTHS
    for rule in ("fa", "dfa"):
        for act in ACTIVATIONS:
            w, x, y = points[(act, tuple(widths))]
            fb = scaled_feedback(widths, seeds, rule, device)
            lam = stability_eigenvalues(w, x, rule=rule, activation=act, feedback=fb)  # (S, 12), sorted by real part
            sub_w, sub_x, sub_y, sub = _first(w, k), x[:k], y[:k], _first(fb, k)
            jac = update_jacobian(sub_w, sub_x, sub_y, rule=rule, activation=act, feedback=sub)
            top = largest_eigenvalues(jac, lam.shape[-1])
            mismatch = eigenvalue_mismatch(lam[:k], top)
            name = f"{rule.upper()} {act} 5-16-16-3, 4 samples"
            reduced_rows.append(dict(network=name, n_eigenvalues=lam.shape[-1], worst_mismatch=mismatch.max().item(),
                                     stable_fraction=(lam.real > 0).all(-1).double().mean().item()))
            # C2e: BP's Jacobian (the Hessian) at the same points, by autodiff: symmetric, eigenvalues >= 0
            jac_bp = update_jacobian(sub_w, sub_x, sub_y, rule="bp", activation=act)
            eig_bp = torch.linalg.eigvalsh(jac_bp)
            asymmetry = (jac_bp - jac_bp.mT).flatten(1).norm(dim=-1) / jac_bp.flatten(1).norm(dim=-1)
            psd_rows.append(dict(network=name, bp_asymmetry=asymmetry.max().item(),
                                 bp_min_over_max=(eig_bp[:, 0] / eig_bp[:, -1]).min().item(),
                                 fa_min_real_over_max=(top.real.amin(-1) / top.abs().amax(-1)).min().item(),
                                 fa_negative_fraction=(top.real.amin(-1) < -NEG_BOUND * top.abs().amax(-1)).double().mean().item()))
            # C2f: a 1e-10 displacement, lr = MULTI_STEP / max|lambda| (the step uses the moduli only, not the signs)
            lr = MULTI_STEP / lam.abs().amax(-1)
            kw = dict(rule=rule, activation=act, feedback=fb, lr=lr, steps=MULTI_STEPS, scale=MULTI_SCALE, seeds=seeds)
            growth, linear = perturbation_growth(w, x, y, **kw), linearised_growth(w, x, y, **kw)
            cases.append(dict(network=name, stable=(lam.real[:, 0] > 0).cpu().numpy(), growth=growth.cpu().numpy(),
                              linear=linear.cpu().numpy(), resolution=(MULTI_STEPS * lr * lam.real[:, 0].abs()).cpu().numpy(),
                              cosine=update_alignment(w, x, rule=rule, activation=act, feedback=fb).cpu().numpy()))
    return reduced_rows, psd_rows, cases


def _joined(cases: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.concatenate([c[key] for c in cases])


def toy_weights(ws: Sequence[Tensor]) -> dict[str, Tensor]:
    """``extra_metrics`` of the scalar model's runs: its two weights ``w1``, ``w2`` (``(S,)`` each)."""
    return {"w1": ws[0][:, 0, 0], "w2": ws[1][:, 0, 0]}


def toy_runs(seed: int, n_toy: int, device: str = "cpu") -> dict[str, Any]:
    """C2d: FA on ``f = w2 w1 x`` (``b = x = y = 1``, ``lr = TOY_LR``, ``TOY_STEPS`` steps, recorded every 10) from
    ``n_toy`` uniform starts in ``[-2.5, 2.5]^2`` (``seed``'s "toy-starts" stream) and from the ``TOY_NEAR`` points
    0.05 above and below the unstable branch.

    Returns ``w1``, ``w2``, ``b`` (the starts, ``(n_toy + 6,)`` float64), ``history`` (metrics ``w1``, ``w2``,
    ``loss``), ``land_w1``, ``land_w2`` (:func:`toy_landing_point`) and ``n_toy``.
    """
    gen = seeded_generator(seed, "toy-starts")
    near = torch.tensor(TOY_NEAR, dtype=DT)
    w1 = torch.cat([torch.rand(n_toy, generator=gen, dtype=DT) * 5 - 2.5, near, near])
    w2 = torch.cat([torch.rand(n_toy, generator=gen, dtype=DT) * 5 - 2.5, 1 / near + 0.05, 1 / near - 0.05])
    b = torch.ones_like(w1)
    n_all = len(w1)
    one = torch.ones(1, 1, dtype=DT, device=device)
    history = train([w1.reshape(n_all, 1, 1).to(device), w2.reshape(n_all, 1, 1).to(device)], one, one,
                    rule="fa", activation="linear", lr=TOY_LR, steps=TOY_STEPS, feedback=[None, b.reshape(n_all, 1, 1).to(device)],
                    record_every=10, extra_metrics=toy_weights, progress=False)
    land_w1, land_w2 = toy_landing_point(w1, w2, b, 1.0, 1.0)
    return dict(w1=w1, w2=w2, b=b, history=history, land_w1=land_w1, land_w2=land_w2, n_toy=n_toy)


def sweep_names() -> list[str]:
    """The settings of the C3b sweep, in ``L2_SWEEP`` order."""
    return [f"weight decay {l2:g}" for l2 in L2_SWEEP]


def decay_sweep(data, seeds: Sequence[int], *, seed: int, epochs: int, records_per_epoch: int, device: str = "cpu") -> dict[str, History]:
    """C3b: FA on the ``WIDTHS`` ReLU network, one batched run over ``L2_SWEEP`` x ``seeds`` (mean cross-entropy,
    SGD, ``lr = LR``, mini-batches of ``BATCH`` shuffled by ``seed``, ``epochs`` epochs, test accuracy recorded
    ``records_per_epoch`` times an epoch). A given seed has the same initial weights, feedback and mini-batches
    at every decay. Returns one :class:`History` per setting, keyed as :func:`sweep_names`."""
    per_epoch = steps_per_epoch(len(data.y_train), BATCH)
    runs = list(seeds) * len(L2_SWEEP)  # setting-major: run i is setting i // n, seed i % n
    history = train(
        init_weights(WIDTHS, runs, device=device), data.x_train, data.y_train, rule="fa", activation="relu", loss="ce",
        feedback=init_feedback(WIDTHS, runs, rule="fa", device=device), lr=LR,
        l2=torch.tensor([l2 for l2 in L2_SWEEP for _ in seeds], device=device),
        steps=epochs * per_epoch, batch_size=BATCH, record_every=per_epoch // records_per_epoch,
        test=(data.x_test, data.y_test), shuffle_seed=seed, desc="C3 sweep (FA)",
    )
    return history.split(sweep_names())


def sweep_rows(sweep: Mapping[str, History]) -> list[dict[str, Any]]:
    """Per decay setting: mean and sd over the seeds that did not diverge of the final hidden-layer gradient
    alignment, weight alignment and test accuracy (%), the seed count and the diverged count."""
    rows = []
    for (name, h), l2 in zip(sweep.items(), L2_SWEEP):
        acc = summarize_seeds(100 * h.final("test_accuracy"), h.diverged)
        grad = summarize_seeds(h.final("grad_alignment")[:, 0], h.diverged)
        weight = summarize_seeds(h.final("weight_alignment")[:, 0], h.diverged)
        rows.append(dict(setting=name, l2=l2, alignment=grad["mean"], alignment_sd=grad["sd"],
                         weight_alignment=weight["mean"], weight_alignment_sd=weight["sd"],
                         accuracy=acc["mean"], accuracy_sd=acc["sd"], n=acc["n"], diverged=acc["diverged"]))
    return rows


def descent_tracker(probe: tuple[Tensor, Tensor], *, rule: str, feedback: Sequence[Tensor | None] | None = None) -> Callable[[list[Tensor]], dict[str, Tensor]]:
    """``extra_metrics`` for :func:`fa_lib.train`: ``descent``, each layer's first-order share of the loss decrease
    on the ``probe`` images (:func:`descent_contributions`, ReLU, cross-entropy), ``(S, L)``."""
    def descent(ws: list[Tensor]) -> dict[str, Tensor]:
        return {"descent": descent_contributions(ws, *probe, rule=rule, activation="relu", loss="ce", feedback=feedback)}

    return descent


def variant_runs(data, seeds: Sequence[int], *, seed: int, steps: int, early: bool, record_every: int = 1,
                 device: str = "cpu") -> dict[str, History]:
    """C4 (``early=True``) and C5 runs on the ``WIDTHS`` ReLU network from the same initial weights and
    mini-batches (shuffled by ``seed``): FA with full-rank feedback (``"fa"``), with :func:`rank_one_feedback`
    (``"rank1"``), with ``B = 0`` (``"frozen"``: only the readout learns), batched as one run, and BP (``"bp"``).

    ``early``: record every step on the first ``EARLY_PROBE`` training images, with the ``descent`` metric;
    otherwise record every ``record_every`` steps with the test accuracy. Prints the runs that diverged.
    """
    full = init_feedback(WIDTHS, seeds, rule="fa", device=device)
    feedback = stack_settings([full, rank_one_feedback(WIDTHS, seeds, device=device), [None, torch.zeros_like(full[1])]])
    start = stack_settings([init_weights(WIDTHS, seeds, device=device)] * len(GROUPS))
    kw = dict(activation="relu", loss="ce", lr=LR, batch_size=BATCH, shuffle_seed=seed, steps=steps)
    if early:
        probe = (data.x_train[:EARLY_PROBE], data.y_train[:EARLY_PROBE])
        fa_kw = dict(record_every=1, probe=probe, desc="C4 FA variants (early)", extra_metrics=descent_tracker(probe, rule="fa", feedback=feedback))
        bp_kw = dict(record_every=1, probe=probe, desc="C4 BP (early)", extra_metrics=descent_tracker(probe, rule="bp"))
    else:
        fa_kw = dict(record_every=record_every, test=(data.x_test, data.y_test), desc="C5 FA variants")
        bp_kw = dict(record_every=record_every, test=(data.x_test, data.y_test), desc="C5 BP")
    variants = train(start, data.x_train, data.y_train, rule="fa", feedback=feedback, **fa_kw, **kw)
    bp = train(init_weights(WIDTHS, seeds, device=device), data.x_train, data.y_train, rule="bp", **bp_kw, **kw)
    for name, h in (("FA variants", variants), ("BP", bp)):
        if not early and h.diverged.any():
            print(f"{name}: {h.diverged.sum()} runs diverged and are excluded from every statistic")
    return variants.split(list(GROUPS)) | {"bp": bp}


def early_descent(runs: Mapping[str, History]) -> dict[str, np.ndarray]:
    """C4 per seed (``(n,)`` arrays), over each seed's window: the records before FA's hidden-layer gradient
    alignment first reaches ``NEAR_ZERO`` (``window_end``: index of its last record).

    ``drop_fa``, ``drop_frozen``: fractional loss decrease over the window; ``hidden_share``: the hidden layer's
    share of FA's first-order descent ``sum_t <G_1^BP, G_1^FA> / sum_t sum_l <G_l^BP, G_l^FA>``; ``bp_share``: the
    same for BP over the same steps; ``readout_gain``: FA's readout term over the frozen baseline's;
    ``min_alignment``, ``max_alignment``: FA's alignment range inside the windows (scalars).
    """
    fa, frozen, bp = runs["fa"], runs["frozen"], runs["bp"]
    align = fa.metrics["grad_alignment"][..., 0]
    reached = align >= NEAR_ZERO
    window_end = np.where(reached.any(0), np.maximum(reached.argmax(0) - 1, 0), len(fa.steps) - 1)
    cols = np.arange(align.shape[1])
    loss_fa, loss_frozen = fa.metrics["loss"], frozen.metrics["loss"]
    # first-order descent per unit lr, <G_l^BP, G_l^FA>, summed over the window: hidden layer vs readout
    in_window = np.arange(len(fa.steps))[:, None] <= window_end[None, :]  # (R, n)
    descent_fa, descent_frozen, descent_bp = (h.metrics["descent"] for h in (fa, frozen, bp))  # (R, n, 2): hidden, readout
    return dict(
        window_end=window_end, window_steps=fa.steps[window_end],
        drop_fa=1 - loss_fa[window_end, cols] / loss_fa[0, cols],
        drop_frozen=1 - loss_frozen[window_end, cols] / loss_frozen[0, cols],
        min_alignment=min(align[: e + 1, s].min() for s, e in enumerate(window_end)),
        max_alignment=max(align[: e + 1, s].max() for s, e in enumerate(window_end)),
        hidden_share=(descent_fa[..., 0] * in_window).sum(0) / (descent_fa.sum(-1) * in_window).sum(0),
        readout_gain=(descent_fa[..., 1] * in_window).sum(0) / (descent_frozen[..., 1] * in_window).sum(0),
        bp_share=(descent_bp[..., 0] * in_window).sum(0) / (descent_bp.sum(-1) * in_window).sum(0),
    )
