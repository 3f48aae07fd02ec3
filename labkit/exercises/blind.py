"""Notebook 07 (blind backdoors): MGDA's two-task weight, and the weights the compromised loss uses."""
from __future__ import annotations

import torch

from labkit.attacks import mgda
from labkit.exercises.core import Case, Exercise, Mistake, as_array

NOTEBOOK = "07_blind_backdoors"


# --- two_task_gamma: γ in [0, 1] minimising ‖γ·g1 + (1 − γ)·g2‖ ---

def _gamma_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(13)
    g1, g2 = torch.randn(50, generator=gen, dtype=torch.float64), torch.randn(50, generator=gen, dtype=torch.float64)
    e1, e2 = torch.eye(2, dtype=torch.float64)
    return [
        Case("two random gradients in 50-D", (g1, g2)),
        Case("orthogonal gradients, g1 ten times longer than g2", (10 * e1, e2)),
        Case("g2 = 3·g1 (the same direction: all weight on the shorter g1, γ = 1 after clipping)", (g1, 3 * g1)),
        Case("opposite gradients of equal length (their midpoint is 0)", (g1, -g1)),
        Case("identical gradients (every γ gives the same norm)", (g1, g1.clone())),
        Case("gradients shaped like a weight matrix (4, 5)", (g1[:20].view(4, 5), g2[:20].view(4, 5))),
    ]


def _norm(g1, g2, gamma):
    return float((gamma * g1.flatten() + (1 - gamma) * g2.flatten()).norm())


def _gamma_accept(got, expected, case) -> bool:
    """Right when γ is in [0, 1] and reaches the smallest norm (identical gradients: any γ)."""
    gamma = as_array(got)
    if gamma is None or gamma.size != 1:
        return False
    gamma = float(gamma.reshape(()))
    g1, g2 = case.args
    best = _norm(g1, g2, expected)
    return -1e-9 <= gamma <= 1 + 1e-9 and abs(_norm(g1, g2, gamma) - best) <= 1e-7 * (1 + best)


def _unclipped(g1, g2):
    g1, g2 = g1.flatten(), g2.flatten()
    return float((g2 - g1) @ g2 / ((g1 - g2) @ (g1 - g2)))


GAMMA = Exercise(
    name="two_task_gamma", notebook=NOTEBOOK,
    summary="MGDA for two tasks: γ* = clip(((g2 − g1)·g2) / ‖g1 − g2‖², 0, 1)",
    reference=mgda.two_task_gamma, reference_name="labkit.attacks.mgda.two_task_gamma", cases=_gamma_cases,
    accept=_gamma_accept,
    mistakes=(
        Mistake("clip γ to [0, 1]: the weights (γ, 1 − γ) must stay on the simplex, so past an end the best "
                "feasible point is that end", _unclipped),
        Mistake("γ is the weight of g1: you returned g2's weight, 1 − γ", lambda g1, g2: 1 - mgda.two_task_gamma(g1, g2)),
    ),
)


# --- mgda_weights: (α0, α1) for the main and backdoor tasks, with the `loss+` normalisation ---

def _weights_reference(g_main, g_backdoor, loss_main, loss_backdoor):
    grads = torch.stack([g_main.flatten(), g_backdoor.flatten()])
    return mgda.scales(grads, torch.tensor([loss_main, loss_backdoor], dtype=torch.float64), "loss+").weights


def _weights_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(14)
    g1, g2 = torch.randn(30, generator=gen, dtype=torch.float64), torch.randn(30, generator=gen, dtype=torch.float64)
    return [
        Case("random gradients (30,), losses 2.3 (main) and 0.7 (backdoor)", (g1, g2, 2.3, 0.7)),
        Case("a long main gradient: loss × norm above the cap of 10", (40 * g1, g2, 1.5, 0.9)),
        Case("a backdoor loss near 0 (the backdoor is learned)", (g1, 0.01 * g2, 0.8, 0.02)),
        Case("equal losses, g2 = −2·g1", (g1, -2 * g1, 1.0, 1.0)),
    ]


def _divided(g_main, g_backdoor, l_main, l_backdoor, divisor):
    grads = torch.stack([g_main.flatten(), g_backdoor.flatten()])
    d = torch.stack([divisor(grads[0], l_main), divisor(grads[1], l_backdoor)])
    return mgda.min_norm(grads / (d[:, None] + 1e-5)).weights


WEIGHTS = Exercise(
    name="mgda_weights", notebook=NOTEBOOK, rtol=1e-4, atol=1e-6,
    summary="the blind loss' (α0, α1): divide each gradient by min(loss·‖g‖, 10) + 1e-5, then two-task MGDA",
    reference=_weights_reference, reference_name="labkit.attacks.mgda.scales(..., 'loss+')", cases=_weights_cases,
    mistakes=(
        Mistake("normalise first (`loss+`): divide each task's gradient by its loss × its norm, capped at 10 — "
                "raw gradients let the task with the smaller gradient take all the weight",
                lambda g1, g2, l1, l2: _divided(g1, g2, l1, l2, lambda g, l: torch.tensor(1.0, dtype=torch.float64))),
        Mistake("cap each divisor at 10, as the blind-backdoors code does: min(loss · ‖g‖, 10)",
                lambda g1, g2, l1, l2: _divided(g1, g2, l1, l2, lambda g, l: l * g.norm())),
        Mistake("`loss+` divides by the loss times the norm; dividing by the norm alone is the `l2` normalisation",
                lambda g1, g2, l1, l2: _divided(g1, g2, l1, l2, lambda g, l: g.norm())),
        Mistake("`loss+` divides by the loss times the norm; dividing by the loss alone is the `loss` normalisation",
                lambda g1, g2, l1, l2: _divided(g1, g2, l1, l2, lambda g, l: torch.tensor(min(l, 10.0), dtype=torch.float64))),
        Mistake("return (α0, α1) = (main, backdoor): γ of the first gradient, then 1 − γ",
                lambda g1, g2, l1, l2: _weights_reference(g1, g2, l1, l2).flip(0)),
    ),
)

EXERCISES = (GAMMA, WEIGHTS)
