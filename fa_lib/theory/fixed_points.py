"""Chu & Bacho (2024): fixed points of the FA and DFA updates and their stability (``shared/papers/chu_bacho_2024.md``).

Conventions (the book's notation page): ``weights[i]`` is ``(S, n_{i+1}, n_i)`` with
one leading seed dimension ``S``; ``x`` is ``(S, N, n_0)`` or ``(N, n_0)``; targets ``y``
are ``(S, N, n_L)``. The loss is ``"mse"``, ``L = (1/N) sum_n 1/2 ||f_n - y_n||^2``.

A parameter vector ``w`` (``(S, P)``) stacks the layers' entries, row-major, in layer
order. The *update direction* of a rule is ``G(w)``, the flattened weight "gradients" of
:func:`fa_lib.networks.backward_pass`; one step is ``w <- w - lr G(w)``. Writing the
error of sample n as ``e_n = f_n - y_n``,

    G(w) = (1/N) sum_n  G~_n^T e_n ,

where ``G_n = df_n/dw`` (``(n_L, P)``) for BP and ``G~_n`` is the rule's "pseudo-Jacobian"
(``W^T`` replaced by the fixed feedback in the chain rule). At a zero-error point
(``e = 0``) the update vanishes for every rule, and its Jacobian is

    J = dG/dw = (1/N) sum_n G~_n^T G_n            (``(P, P)``, rank <= K = N n_L);

the map ``w -> w - lr G(w)`` has Jacobian ``I - lr J``. The non-zero eigenvalues of ``J``
are those of the reduced ``(K, K)`` matrix ``M[(m,i),(n,j)] = (1/N) G_{m,i} . G~_{n,j}``
(:func:`reduced_matrix`); for one sample and a scalar output ``M = g~ . g``.

The scalar toy ``f = w2 w1 x`` with feedback ``b`` (``toy_*``) has closed forms for the
conserved quantity, the fixed-point hyperbola, the stability condition and the point
where the FA flow lands.
"""


from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.func import jacfwd, jacrev

from ..alignment import cosine
from ..data import gaussian_inputs
from ..networks import RULES, backward_pass, forward, init_weights, seeded_normal
from ..validation import check_choice, check_int, check_positive

Tensor = torch.Tensor


def flatten_weights(weights: Sequence[Tensor]) -> Tensor:
    """Stack per-layer ``(S, n_out, n_in)`` tensors into one ``(S, P)`` parameter vector."""
    _check_seed_dim(weights)
    return torch.cat([w.flatten(-2) for w in weights], dim=-1)


def unflatten_weights(flat: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Inverse of :func:`flatten_weights`: split ``(S, P)`` into tensors shaped like ``like``."""
    sizes = [w.shape[-2] * w.shape[-1] for w in like]
    if flat.dim() != 2 or flat.shape[-1] != sum(sizes):
        raise ValueError(f"flat has shape {tuple(flat.shape)}; expected (S, {sum(sizes)})")
    parts = torch.split(flat, sizes, dim=-1)
    return [p.reshape(flat.shape[0], *w.shape[-2:]) for p, w in zip(parts, like)]


def _check_seed_dim(weights: Sequence[Tensor]) -> None:
    if len(weights) == 0 or any(w.dim() != 3 for w in weights):
        shapes = [tuple(w.shape) for w in weights]
        raise ValueError(f"weights have shapes {shapes}; expected a non-empty list of (S, n_out, n_in) tensors")


def update_direction(
    weights: Sequence[Tensor],
    x: Tensor,
    y: Tensor,
    *,
    rule: str,
    activation: str,
    feedback: Sequence[Tensor | None] | None = None,
    layer_scales: Sequence[float] | None = None,
) -> Tensor:
    """The rule's flattened update direction ``G(w)`` (``(S, P)``) for the MSE loss."""
    _check_seed_dim(weights)
    grads = backward_pass(weights, x, y, rule=rule, activation=activation, loss="mse", feedback=feedback, layer_scales=layer_scales).grads
    return flatten_weights(grads)


def update_jacobian(
    weights: Sequence[Tensor],
    x: Tensor,
    y: Tensor,
    *,
    rule: str,
    activation: str,
    feedback: Sequence[Tensor | None] | None = None,
    layer_scales: Sequence[float] | None = None,
) -> Tensor:
    """``J = dG/dw`` of the rule's update direction, by reverse-mode autodiff: ``(S, P, P)``.

    ``J[s, p, q] = dG_p / dw_q`` for seed s. For ``rule="bp"`` it is the Hessian of the loss.
    Seeds are independent, so one Jacobian of the seed-summed map gives all of them.
    """
    shapes = list(weights)

    def summed(flat: Tensor) -> Tensor:
        w = unflatten_weights(flat, shapes)
        return update_direction(w, x, y, rule=rule, activation=activation, feedback=feedback, layer_scales=layer_scales).sum(0)

    return jacrev(summed)(flatten_weights(weights)).permute(1, 0, 2)


def output_jacobian(
    weights: Sequence[Tensor],
    x: Tensor,
    *,
    rule: str,
    activation: str,
    feedback: Sequence[Tensor | None] | None = None,
    layer_scales: Sequence[float] | None = None,
) -> Tensor:
    """``G_n = df_n/dw`` (``rule="bp"``) or the rule's pseudo-Jacobian ``G~_n``: ``(S, N, n_L, P)``.

    Row ``[s, n, k]`` is the update direction produced by a unit error in output k of
    sample n alone, times N. ``G(w)`` is affine in the targets,
    ``G = (1/N) sum_n G~_n^T (f_n - y_n)``, so ``G~ = -N dG/dy`` (forward-mode autodiff).
    """
    _check_seed_dim(weights)
    check_choice("rule", rule, RULES)
    n_samples, n_out = x.shape[-2], weights[-1].shape[-2]
    with torch.no_grad():
        y = forward(weights, x, activation, layer_scales=layer_scales).output.detach()

    def direction(shift: Tensor) -> Tensor:
        return update_direction(weights, x, y + shift, rule=rule, activation=activation, feedback=feedback, layer_scales=layer_scales)

    shift = torch.zeros(n_samples, n_out, dtype=y.dtype, device=y.device)
    jac = jacfwd(direction)(shift)  # (S, P, N, n_L)
    return -n_samples * jac.permute(0, 2, 3, 1)


def reduced_matrix(
    weights: Sequence[Tensor],
    x: Tensor,
    *,
    rule: str,
    activation: str,
    feedback: Sequence[Tensor | None] | None = None,
    layer_scales: Sequence[float] | None = None,
) -> Tensor:
    """``M[(m,i),(n,j)] = (1/N) G_{m,i} . G~_{n,j}``: ``(S, K, K)`` with ``K = N n_L``.

    Its eigenvalues are the non-zero eigenvalues of :func:`update_jacobian` at a
    zero-error point; for one sample and a scalar output ``M = g~ . g``.
    """
    exact = output_jacobian(weights, x, rule="bp", activation=activation, layer_scales=layer_scales)
    pseudo = output_jacobian(weights, x, rule=rule, activation=activation, feedback=feedback, layer_scales=layer_scales)
    n_samples = x.shape[-2]
    flat_exact, flat_pseudo = exact.flatten(1, 2), pseudo.flatten(1, 2)
    return flat_exact @ flat_pseudo.transpose(-1, -2) / n_samples


def stability_eigenvalues(
    weights: Sequence[Tensor],
    x: Tensor,
    *,
    rule: str,
    activation: str,
    feedback: Sequence[Tensor | None] | None = None,
    layer_scales: Sequence[float] | None = None,
) -> Tensor:
    """Eigenvalues of :func:`reduced_matrix` (complex, ``(S, K)``, sorted by real part).

    Small-step criterion: the zero-error point is stable iff every real part is > 0;
    for a step ``lr`` iff every ``|1 - lr * lambda| < 1``.
    """
    eig = torch.linalg.eigvals(reduced_matrix(weights, x, rule=rule, activation=activation, feedback=feedback, layer_scales=layer_scales))
    return torch.gather(eig, -1, eig.real.argsort(dim=-1))


def largest_eigenvalues(matrices: Tensor, k: int) -> Tensor:
    """The ``k`` eigenvalues of largest modulus of each ``(S, P, P)`` matrix, sorted by real part."""
    check_int("k", k, minimum=1)
    eig = torch.linalg.eigvals(matrices)
    top = torch.gather(eig, -1, eig.abs().argsort(dim=-1, descending=True)[..., :k])
    return torch.gather(top, -1, top.real.argsort(dim=-1))


def eigenvalue_mismatch(predicted: Tensor, measured: Tensor) -> Tensor:
    """Largest relative distance between two eigenvalue sets, ``(S, K)`` each -> ``(S,)``.

    Each predicted eigenvalue is paired with the nearest measured one not yet paired
    (largest modulus first); distances are divided by the largest predicted modulus.
    """
    if predicted.shape != measured.shape:
        raise ValueError(f"predicted {tuple(predicted.shape)} and measured {tuple(measured.shape)} differ in shape")
    worst = torch.zeros(predicted.shape[0], dtype=predicted.abs().dtype, device=predicted.device)
    for s in range(predicted.shape[0]):
        free = list(range(measured.shape[1]))
        for value in predicted[s][predicted[s].abs().argsort(descending=True)]:
            dist = (measured[s, free] - value).abs()
            j = int(dist.argmin())
            worst[s] = torch.maximum(worst[s], dist[j])
            free.pop(j)
        worst[s] = worst[s] / predicted[s].abs().max().clamp_min(torch.finfo(worst.dtype).tiny)
    return worst


def update_alignment(
    weights: Sequence[Tensor],
    x: Tensor,
    *,
    rule: str,
    activation: str,
    feedback: Sequence[Tensor | None] | None = None,
    layer_scales: Sequence[float] | None = None,
) -> Tensor:
    """``cos(G~, G)`` over all samples, outputs and parameters (whole network, output layer included): ``(S,)``.

    For one sample and a scalar output it is the cosine between the rule's update and the
    gradient for any error, and has the sign of the eigenvalue ``g~ . g``.
    """
    exact = output_jacobian(weights, x, rule="bp", activation=activation, layer_scales=layer_scales)
    pseudo = output_jacobian(weights, x, rule=rule, activation=activation, feedback=feedback, layer_scales=layer_scales)
    return cosine(pseudo, exact, dims=3)


def zero_error_readout(
    weights: Sequence[Tensor],
    x: Tensor,
    y: Tensor,
    *,
    activation: str,
    layer_scales: Sequence[float] | None = None,
) -> list[Tensor]:
    """A zero-error point: the readout closest (Frobenius) to ``weights[-1]`` that fits ``y`` exactly.

    Keeps the hidden layers; adds the minimum-norm correction ``D`` with ``c_L H D^T = y - f``
    (``H``: last hidden activations, ``(S, N, n_{L-1})``). Needs ``n_{L-1} >= N``.
    """
    _check_seed_dim(weights)
    n_samples, n_hidden = x.shape[-2], weights[-1].shape[-1]
    if n_hidden < n_samples:
        raise ValueError(f"the last hidden layer has {n_hidden} units < N={n_samples} samples: no zero-error readout in general")
    scale = 1.0 if layer_scales is None else float(layer_scales[-1])
    fwd = forward(weights, x, activation, layer_scales=layer_scales)
    hidden = scale * fwd.inputs[-1]
    residual = y - fwd.output
    correction = torch.linalg.pinv(hidden) @ residual  # (S, n_{L-1}, n_L)
    unfitted = (hidden @ correction - residual).abs().amax() / residual.abs().amax().clamp_min(1.0)
    if unfitted > torch.finfo(residual.dtype).eps ** 0.5:
        raise ValueError(f"the last hidden layer's activations have rank < N={n_samples} (relative residual {float(unfitted):.1e}); use a wider layer")
    return [*weights[:-1], weights[-1] + correction.transpose(-1, -2)]


def perturb(weights: Sequence[Tensor], seeds: Sequence[int], *, scale: float, stream: str = "perturbation") -> list[Tensor]:
    """``w + scale * u`` with ``u`` a random unit vector in parameter space per seed."""
    _check_seed_dim(weights)
    check_positive("scale", scale)
    flat = flatten_weights(weights)
    if len(seeds) != flat.shape[0]:
        raise ValueError(f"{len(seeds)} seeds for {flat.shape[0]} networks")
    u = seeded_normal([(flat.shape[1],)], seeds, [1.0], stream=stream, dtype=flat.dtype, device=flat.device)[0]
    return unflatten_weights(flat + scale * u / u.norm(dim=-1, keepdim=True), weights)


def random_zero_error_point(
    widths: Sequence[int],
    seeds: Sequence[int],
    n_samples: int,
    *,
    activation: str,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> tuple[list[Tensor], Tensor, Tensor]:
    """Random weights, inputs ``x ~ N(0, I)`` and targets ``y ~ N(0, I)`` per seed, with the
    readout moved to the nearest zero-error point (:func:`zero_error_readout`).

    Returns ``(weights, x, y)``: ``x`` is ``(S, N, n_0)``, ``y`` is ``(S, N, n_L)`` (each
    seed's "targets" stream).
    """
    check_int("n_samples", n_samples, minimum=1)
    weights = init_weights(widths, seeds, dtype=dtype, device=device)
    x = gaussian_inputs(n_samples, widths[0], seeds, dtype=dtype, device=device)
    y = seeded_normal([(n_samples, widths[-1])], seeds, [1.0], stream="targets", dtype=dtype, device=device)[0]
    return zero_error_readout(weights, x, y, activation=activation), x, y


def linear_bottleneck_minimum(x: Tensor, y: Tensor, hidden: int) -> list[Tensor]:
    """The global minimum of the MSE of a two-layer linear network ``f = W2 W1 x`` of width ``hidden``.

    ``x``: ``(S, N, d)`` with ``x^T x`` invertible; ``y``: ``(S, N, k)``. With
    ``Sxx = x^T x / N`` and the least-squares map ``T = (y^T x / N) Sxx^{-1}``, the best
    rank-``hidden`` product is the truncated SVD ``U_h s_h V_h^T`` of ``T Sxx^{1/2}`` times
    ``Sxx^{-1/2}`` (Eckart-Young); returns ``[W1, W2] = [s_h^{1/2} V_h^T Sxx^{-1/2}, U_h s_h^{1/2}]``.
    The BP gradient vanishes there; the error does not when ``hidden < rank T``.
    """
    check_int("hidden", hidden, minimum=1)
    if x.dim() != 3 or y.dim() != 3 or x.shape[:2] != y.shape[:2]:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must be (S, N, d) and (S, N, k) with the same S and N")
    n_samples = x.shape[1]
    evals, evecs = torch.linalg.eigh(x.transpose(-1, -2) @ x / n_samples)
    root = evecs @ torch.diag_embed(evals.sqrt()) @ evecs.transpose(-1, -2)
    inv_root = evecs @ torch.diag_embed(evals.rsqrt()) @ evecs.transpose(-1, -2)
    target_map = y.transpose(-1, -2) @ x / n_samples @ inv_root @ inv_root  # T, (S, k, d)
    u, s, vh = torch.linalg.svd(target_map @ root, full_matrices=False)
    scale = s[..., :hidden].sqrt()
    w1 = scale.unsqueeze(-1) * vh[..., :hidden, :] @ inv_root
    w2 = u[..., :hidden] * scale.unsqueeze(-2)
    return [w1, w2]


def linearised_growth(
    weights: Sequence[Tensor],
    x: Tensor,
    y: Tensor,
    *,
    rule: str,
    activation: str,
    feedback: Sequence[Tensor | None] | None,
    lr: float | Tensor,
    steps: int,
    scale: float,
    seeds: Sequence[int],
    layer_scales: Sequence[float] | None = None,
) -> Tensor:
    """What the linearisation predicts for :func:`~fa_lib.training.stability.perturbation_growth` with the same arguments: ``(S,)``.

    From the same displaced start (:func:`perturb`), the errors ``e`` (``(S, K)``, ``K = N n_L``)
    follow ``e_{t+1} = (I - lr M) e_t`` with ``M`` the :func:`reduced_matrix` of the zero-error
    point; returns ``log(||e_T||^2 / ||e_{T/2}||^2)`` with ``T = steps`` and ``T/2 = steps // 2``
    (the loss is ``||e||^2 / 2N``). Unlike the sign of the eigenvalues, it includes the transients
    of every mode from the actual start.
    """
    check_int("steps", steps, minimum=2)
    start = perturb(weights, seeds, scale=scale)
    with torch.no_grad():
        error = (forward(start, x, activation, layer_scales=layer_scales).output - y).flatten(1)
    matrix = reduced_matrix(weights, x, rule=rule, activation=activation, feedback=feedback, layer_scales=layer_scales)
    rate = lr.to(matrix).reshape(-1, 1, 1) if isinstance(lr, Tensor) else lr
    step = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device) - rate * matrix
    middle = torch.linalg.matrix_power(step, steps // 2) @ error.unsqueeze(-1)
    end = torch.linalg.matrix_power(step, steps - steps // 2) @ middle
    return 2 * (torch.log(end.flatten(1).norm(dim=-1)) - torch.log(middle.flatten(1).norm(dim=-1)))


def descent_contributions(
    weights: Sequence[Tensor],
    x: Tensor,
    y: Tensor,
    *,
    rule: str,
    activation: str,
    loss: str = "mse",
    feedback: Sequence[Tensor | None] | None = None,
    layer_scales: Sequence[float] | None = None,
) -> Tensor:
    """Each layer's share of the first-order loss decrease of one step: ``<G_l^BP, G_l^rule>``, ``(S, L)``.

    A step ``W_l <- W_l - lr G_l^rule`` changes the loss by ``-lr sum_l <G_l^BP, G_l^rule> + O(lr^2)``;
    column l is layer l's term per unit ``lr`` (``||G_l||^2`` for BP and for FA's output layer).
    """
    kw = dict(activation=activation, loss=loss, layer_scales=layer_scales)
    exact = backward_pass(weights, x, y, rule="bp", **kw).grads
    used = exact if rule == "bp" else backward_pass(weights, x, y, rule=rule, feedback=feedback, **kw).grads
    return torch.stack([(g * h).sum(dim=(-1, -2)) for g, h in zip(exact, used)], dim=-1)


def rank_one_feedback(
    widths: Sequence[int],
    seeds: Sequence[int],
    *,
    std: float | str = "lecun",
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> list[Tensor | None]:
    """Degenerate FA feedback ``B_l = std_l * u_l v_l^T`` (rank 1), shaped like :func:`init_feedback`'s.

    ``u_l, v_l ~ N(0, I)`` from each seed's "feedback-rank1" stream, so every entry has the
    variance ``std_l^2`` of a full-rank draw (``"lecun"``: ``std_l = 1/sqrt(n_l)``).
    """
    n_layers = len(widths) - 1
    if n_layers < 2:
        raise ValueError(f"widths={list(widths)!r} has no hidden layer, so no feedback matrix")
    stds = [1.0 / float(widths[i]) ** 0.5 if std == "lecun" else check_positive("std", std) for i in range(1, n_layers)]
    shapes = [s for i in range(1, n_layers) for s in ((widths[i + 1],), (widths[i],))]
    draws = seeded_normal(shapes, seeds, [1.0] * len(shapes), stream="feedback-rank1", dtype=dtype, device=device)
    pairs = zip(draws[0::2], draws[1::2], stds)
    return [None, *[c * u.unsqueeze(-1) * v.unsqueeze(-2) for u, v, c in pairs]]


def toy_conserved(w1: Tensor, w2: Tensor, b: Tensor) -> Tensor:
    """``C = b w2 - w1^2 / 2``, constant along the FA flow of ``f = w2 w1 x``."""
    return b * w2 - w1**2 / 2


def toy_fixed_w2(w1: Tensor, x: float, y: float) -> Tensor:
    """The fixed-point hyperbola ``w1 w2 = y / x`` as ``w2(w1)``."""
    return y / (x * w1)


def toy_eigenvalue(w1: Tensor, w2: Tensor, b: Tensor, x: float) -> Tensor:
    """``g~ . g = x^2 (b w2 + w1^2)``: the non-zero eigenvalue of J at a fixed point (stable iff > 0)."""
    return x**2 * (b * w2 + w1**2)


def toy_landing_point(w1: Tensor, w2: Tensor, b: Tensor, x: float, y: float) -> tuple[Tensor, Tensor]:
    """Where the FA flow started at ``(w1, w2)`` lands on the hyperbola (batched over entries).

    On the level set ``b w2 = C + w1^2/2`` the flow is ``dw1/dt = -(x^2/2) q(w1)`` with
    ``q(w1) = w1^3 + 2 C w1 - 2 b y/x``; ``w1`` moves to the nearest real root of ``q`` in
    the direction of ``-q(w1)`` (a root with ``q' > 0``, i.e. a stable fixed point).
    """
    w1, w2, b = torch.broadcast_tensors(*(torch.as_tensor(v, dtype=torch.float64) for v in (w1, w2, b)))
    c = toy_conserved(w1, w2, b)
    k = y / x
    companion = torch.zeros(*w1.shape, 3, 3, dtype=torch.float64, device=w1.device)
    companion[..., 0, 1] = -2 * c
    companion[..., 0, 2] = 2 * b * k
    companion[..., 1, 0] = 1.0
    companion[..., 2, 1] = 1.0
    roots = torch.linalg.eigvals(companion)
    real = roots.real.masked_fill(roots.imag.abs() > 1e-9 * (1 + roots.abs()), float("nan"))
    q = w1**3 + 2 * c * w1 - 2 * b * k
    start = w1.unsqueeze(-1)
    below = torch.where(real < start, real, torch.full_like(real, float("-inf"))).amax(-1)
    above = torch.where(real > start, real, torch.full_like(real, float("inf"))).amin(-1)
    landing = torch.where(q > 0, below, torch.where(q < 0, above, w1))
    return landing, toy_fixed_w2(landing, x, y)
