"""Notebook 03 (DP-SGD): the per-example clip and the noisy lot gradient, checked against Opacus itself
(the library labkit's DP-SGD trains with: `DPOptimizer.clip_and_accumulate`, then its noise and scaling)."""
from __future__ import annotations

import torch
from torch import nn

from labkit.exercises.core import Case, Exercise, Mistake

NOTEBOOK = "03_dp_sgd_defense"


def _opacus_clipped_sum(grads: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Σ_i clip(g_i) exactly as Opacus computes it: per-example factor min(1, C / (‖g_i‖ + 1e-6))."""
    from opacus.optimizers import DPOptimizer

    param = nn.Parameter(torch.zeros(grads.shape[1:], dtype=grads.dtype))
    optimizer = DPOptimizer(torch.optim.SGD([param], lr=1.0), noise_multiplier=0.0, max_grad_norm=max_norm,
                            expected_batch_size=max(1, len(grads)))
    param.grad_sample = grads.clone()
    optimizer.clip_and_accumulate()
    return param.summed_grad


def _clip_reference(grads, max_norm):
    """Each row clipped on its own: Opacus' clipped sum of that one example."""
    return torch.stack([_opacus_clipped_sum(row[None], max_norm) for row in grads])


def _clip_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(4)
    rows = torch.randn(6, 20, generator=gen, dtype=torch.float64)
    rows[:3] *= 3.0  # norms ≈ 13: clipped
    rows[3:] *= 0.1  # norms ≈ 0.45: left alone
    return [
        Case("6 per-example gradients (6, 20): three longer than C = 1, three shorter", (rows, 1.0)),
        Case("the same gradients, C = 0.1 (every one is clipped)", (rows, 0.1)),
        Case("a zero gradient among them (its norm is 0)", (torch.cat([rows[:2], torch.zeros(1, 20, dtype=torch.float64)]), 1.0)),
        Case("one example (1, 20), C = 5", (rows[:1], 5.0)),
    ]


def _norms(grads):
    return grads.norm(dim=1, keepdim=True)


CLIP = Exercise(
    name="clip_gradients", notebook=NOTEBOOK,
    summary="clip every example's gradient (a row) to ℓ2 norm ≤ C: g · min(1, C/‖g‖)",
    reference=_clip_reference, reference_name="Opacus' per-example clipping (DPOptimizer, as labkit trains)", cases=_clip_cases,
    mistakes=(
        Mistake("clip each example (row) on its own: DP bounds what ONE example can do, so the norm is per row, "
                "not of the whole batch", lambda g, c: g * min(1.0, c / float(g.norm()))),
        Mistake("leave gradients that are already short unchanged: scale by min(1, C/‖g‖), not C/‖g‖",
                lambda g, c: g * c / _norms(g)),
        Mistake("clip the row's ℓ2 norm, not each coordinate: clamping values to [−C, C] leaves the norm up to C·√P",
                lambda g, c: g.clamp(-c, c)),
        Mistake("‖g‖ is the ℓ2 norm, the square root of the sum of squares", lambda g, c: g * (c / (g ** 2).sum(1, keepdim=True)).clamp(max=1)),
    ),
)


def _privatize_reference(grads, max_norm, noise_multiplier, lot_size, noise):
    """Opacus: clipped sum + N(0, (σC)²) drawn once per lot (here: σC times the given standard normal draw),
    divided by the expected lot size (loss_reduction="mean")."""
    return (_opacus_clipped_sum(grads, max_norm) + noise_multiplier * max_norm * noise) / lot_size


def _privatize_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(5)
    grads = torch.randn(6, 12, generator=gen, dtype=torch.float64) * 2
    noise = torch.randn(12, generator=gen, dtype=torch.float64)
    return [
        Case("a lot of 6 gradients (6, 12), C = 1, σ = 1, expected lot size 8", (grads, 1.0, 1.0, 8, noise)),
        Case("σ = 0: clipping only", (grads, 1.0, 0.0, 8, noise)),
        Case("C = 0.5, σ = 2, expected lot size 4", (grads, 0.5, 2.0, 4, noise)),
        Case("a lot holding one zero gradient, σ = 1, expected lot size 8",
             (torch.zeros(1, 12, dtype=torch.float64), 1.0, 1.0, 8, noise)),
    ]


PRIVATIZE = Exercise(
    name="privatize", notebook=NOTEBOOK,
    summary="one DP-SGD step's gradient: (Σ clipped gradients + σ·C·noise) / expected lot size",
    reference=_privatize_reference, reference_name="Opacus' clipped sum + σ·C noise ÷ expected lot size",
    cases=_privatize_cases,
    mistakes=(
        Mistake("the noise's standard deviation is σ·C: it scales with the clipping norm (one example's largest "
                "possible contribution)", lambda g, c, s, n, z: (_opacus_clipped_sum(g, c) + s * z) / n),
        Mistake("clip every example first (clip_gradients), then sum: unclipped, one example could move the "
                "model arbitrarily far", lambda g, c, s, n, z: (g.sum(0) + s * c * z) / n),
        Mistake("divide by the expected lot size (Opacus' expected_batch_size), not by this lot's count: Poisson "
                "lots vary in size, and the privacy analysis assumes a fixed divisor",
                lambda g, c, s, n, z: (_opacus_clipped_sum(g, c) + s * c * z) / len(g)),
        Mistake("add the noise once, to the lot's sum, not to every example",
                lambda g, c, s, n, z: (_opacus_clipped_sum(g, c) + len(g) * s * c * z) / n),
        Mistake("add the noise to the summed gradient, then divide: noise/lot size, not noise alone",
                lambda g, c, s, n, z: _opacus_clipped_sum(g, c) / n + s * c * z),
    ),
)

EXERCISES = (CLIP, PRIVATIZE)
