"""MGDA (Désidéri; Sener & Koltun): the min-norm point of the convex hull of task gradients.

Given K task gradients g_1..g_K (flattened, one row each), find weights α on the simplex
(α_k ≥ 0, Σα_k = 1) minimising ‖Σ α_k g_k‖. The minimiser is a common descent direction:
a step along −Σα_k g_k lowers every task's loss (or α certifies a Pareto-stationary point).

- two tasks: closed form γ* = clip(((g2 − g1)·g2) / ‖g1 − g2‖², 0, 1), α = (γ*, 1 − γ*);
- K ≥ 3: Frank–Wolfe on the simplex with exact line search (each line search is the two-task
  closed form) plus away steps, so it converges linearly; `max_iter` is a hard cap and the
  number of iterations actually used is returned.

Everything works on the K×K Gram matrix M = G Gᵀ, since ‖Σα_k g_k‖² = αᵀ M α.
`normalize` rescales each gradient before solving, as the blind-backdoors code does:
`l2` (by its norm), `loss` (by its loss, capped at 10), `loss+` (loss · norm, capped at 10),
`none`. The weights then multiply the *unnormalised* losses.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from labkit.errors import LabkitError

NORMALIZATIONS = ("loss", "loss+", "l2", "none")
NORMALIZER_CAP = 10.0  # the reference code caps loss-based normalisers at 10
EPS = 1e-12


def two_task_gamma(g1: torch.Tensor, g2: torch.Tensor) -> float:
    """γ in [0, 1] minimising ‖γ g1 + (1 − γ) g2‖ (g1, g2 any equal shapes)."""
    g1, g2 = g1.flatten().double(), g2.flatten().double()
    return _gamma_from_gram(float(g1 @ g1), float(g1 @ g2), float(g2 @ g2))


def _gamma_from_gram(m11: float, m12: float, m22: float) -> float:
    """The same minimiser from the Gram entries: ‖γa + (1−γ)b‖² is a parabola in γ."""
    denom = m11 - 2 * m12 + m22  # ‖g1 − g2‖²
    if denom <= EPS:
        return 0.5  # identical gradients: every γ gives the same norm
    return min(1.0, max(0.0, (m22 - m12) / denom))


@dataclass(frozen=True)
class MinNorm:
    """weights (K,) on the simplex; norm = ‖Σ α_k g_k‖; iterations used (0 for the closed form)."""

    weights: torch.Tensor
    norm: float
    iterations: int
    converged: bool


def min_norm_gram(gram: torch.Tensor, max_iter: int = 250, tol: float = 1e-13) -> MinNorm:
    """Min-norm point of the hull of K gradients given their Gram matrix `gram` (K, K).

    K = 1 → weight 1; K = 2 → closed form; K ≥ 3 → away-step Frank–Wolfe, started at the
    best pair's closed-form point, stopped when the Frank–Wolfe duality gap (an upper bound on
    αᵀMα − min) falls below `tol` or after exactly `max_iter` iterations, whichever is first.
    """
    if max_iter < 0:
        raise LabkitError(f"max_iter must be an int >= 0, got {max_iter}")
    m = gram.double()
    k = m.shape[0]
    if m.shape != (k, k) or k == 0:
        raise LabkitError(f"gram must be a square (K, K) matrix with K >= 1, got {tuple(gram.shape)}")
    if k == 1:
        return MinNorm(torch.ones(1, dtype=torch.float64), float(m[0, 0].clamp_min(0).sqrt()), 0, True)
    if k == 2:
        gamma = _gamma_from_gram(float(m[0, 0]), float(m[0, 1]), float(m[1, 1]))
        alpha = torch.tensor([gamma, 1 - gamma], dtype=torch.float64)
        return MinNorm(alpha, _norm(m, alpha), 0, True)
    alpha = _best_pair_start(m)
    iterations, converged = 0, False
    while iterations < max_iter:
        grad = m @ alpha  # half the gradient of αᵀMα
        value = float(alpha @ grad)
        toward = int(torch.argmin(grad))  # Frank–Wolfe vertex
        gap = value - float(grad[toward])
        if gap <= tol:
            converged = True
            break
        support = torch.nonzero(alpha > 0).flatten()
        away = int(support[torch.argmax(grad[support])])  # worst vertex in use
        away_gap = float(grad[away]) - value
        iterations += 1
        if gap >= away_gap:  # move from α toward vertex e_t: α' = (1−s)α + s e_t
            direction = -alpha.clone()
            direction[toward] += 1
            max_step = 1.0
        else:  # move away from vertex e_a: α' = α + s(α − e_a), keeping α_a ≥ 0
            direction = alpha.clone()
            direction[away] -= 1
            max_step = float(alpha[away] / (1 - alpha[away])) if alpha[away] < 1 else 0.0
        step = _line_search(m, alpha, direction, max_step)
        alpha = (alpha + step * direction).clamp_min(0)
        alpha = alpha / alpha.sum()
    if not converged:  # report whether the last iterate happens to satisfy the criterion
        grad = m @ alpha
        converged = float(alpha @ grad - grad.min()) <= tol
    return MinNorm(alpha, _norm(m, alpha), iterations, converged)


def _norm(m: torch.Tensor, alpha: torch.Tensor) -> float:
    return float((alpha @ m @ alpha).clamp_min(0).sqrt())


def _line_search(m: torch.Tensor, alpha: torch.Tensor, direction: torch.Tensor, max_step: float) -> float:
    """argmin over s in [0, max_step] of (α + s d)ᵀ M (α + s d): a parabola in s."""
    curvature = float(direction @ m @ direction)
    slope = float(alpha @ m @ direction)
    if curvature <= EPS:
        return max_step if slope < 0 else 0.0
    return min(max_step, max(0.0, -slope / curvature))


def _best_pair_start(m: torch.Tensor) -> torch.Tensor:
    """The two-task closed-form solution of the best pair (Sener & Koltun's initialisation)."""
    k = m.shape[0]
    best, best_value = None, float("inf")
    for i in range(k):
        for j in range(i + 1, k):
            gamma = _gamma_from_gram(float(m[i, i]), float(m[i, j]), float(m[j, j]))
            value = gamma ** 2 * float(m[i, i]) + 2 * gamma * (1 - gamma) * float(m[i, j]) + (1 - gamma) ** 2 * float(m[j, j])
            if value < best_value:
                best, best_value = (i, j, gamma), value
    alpha = torch.zeros(k, dtype=torch.float64)
    i, j, gamma = best
    alpha[i], alpha[j] = gamma, 1 - gamma
    return alpha


def min_norm(grads: torch.Tensor, max_iter: int = 250, tol: float = 1e-13) -> MinNorm:
    """`min_norm_gram` for gradients stacked as rows: grads (K, P)."""
    g = grads.reshape(grads.shape[0], -1).double()
    return min_norm_gram(g @ g.T, max_iter, tol)


def normalizers(grads: torch.Tensor, losses: torch.Tensor, normalization: str) -> torch.Tensor:
    """(K,) divisors for the K gradient rows: see the module docstring."""
    if normalization not in NORMALIZATIONS:
        raise LabkitError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
    norms = grads.reshape(grads.shape[0], -1).double().norm(dim=1)
    losses = losses.detach().double().flatten()
    if normalization == "l2":
        return norms
    if normalization == "loss":
        return losses.clamp(max=NORMALIZER_CAP)
    if normalization == "loss+":
        return (losses * norms).clamp(max=NORMALIZER_CAP)
    return torch.ones_like(norms)


def scales(grads: torch.Tensor, losses: torch.Tensor, normalization: str = "loss+",
           max_iter: int = 250, tol: float = 1e-13) -> MinNorm:
    """MGDA weights for tasks with gradients (K, P) and losses (K,), after normalisation."""
    divisors = normalizers(grads, losses, normalization)
    g = grads.reshape(grads.shape[0], -1).double() / (divisors.unsqueeze(1) + 1e-5)
    return min_norm(g, max_iter, tol)


def check_fixed_scales(values) -> torch.Tensor:
    """Fixed weights as a (K,) tensor: non-negative, summing to 1 (up to 1e-6)."""
    alpha = torch.as_tensor(values, dtype=torch.float64).flatten()
    if bool((alpha < 0).any()) or abs(float(alpha.sum()) - 1) > 1e-6:
        raise LabkitError(f"fixed scales must be >= 0 and sum to 1, got {alpha.tolist()}")
    return alpha
