"""Notebook 02 (label-consistent backdoors): the thesis' ε in this lab's units, and PGD's projection step."""
from __future__ import annotations

import math

import torch

from labkit.attacks import label_consistent as lc
from labkit.exercises.core import Case, Exercise, Mistake

NOTEBOOK = "02_label_consistent_backdoors"
THESIS_DIM = 32 * 32 * 3


# --- scale_epsilon: thesis ε (0–255 scale, 32×32×3 images) → a radius on the 0–1 scale for these images ---

def _scale_cases() -> list[Case]:
    digits, mnist, cifar = (1, 16, 16), (1, 28, 28), (3, 32, 32)
    return [
        Case("ℓ2, ε = 300, digits (1, 16, 16)", (300.0, "l2", digits)),
        Case("ℓ∞, ε = 8, digits (1, 16, 16)", (8.0, "linf", digits)),
        Case("ℓ2, ε = 1200, MNIST (1, 28, 28)", (1200.0, "l2", mnist)),
        Case("ℓ2, ε = 600, the thesis' own CIFAR-10 shape (3, 32, 32)", (600.0, "l2", cifar)),
        Case("ℓ∞, ε = 32, MNIST (1, 28, 28)", (32.0, "linf", mnist)),
        Case("ℓ2, ε = 0", (0.0, "l2", digits)),
    ]


def _dims(shape):
    return math.prod(shape)


SCALE = Exercise(
    name="scale_epsilon", notebook=NOTEBOOK,
    summary="thesis ε → this lab's radius: ℓ∞ ε/255; ℓ2 ε/255·√(d/3072), the same RMS change per pixel",
    reference=lc.scale_epsilon, reference_name="labkit.attacks.label_consistent.scale_epsilon", cases=_scale_cases,
    mistakes=(
        Mistake("the thesis quotes ε on the 0–255 pixel scale; these images are on 0–1: divide by 255",
                lambda e, n, s: e if n == "linf" else e * math.sqrt(_dims(s) / THESIS_DIM)),
        Mistake("an ℓ2 ball over d values must shrink with √(d/3072) to allow the same RMS change per pixel as the "
                "thesis' 32×32×3 images", lambda e, n, s: e / 255),
        Mistake("ℓ∞ bounds every pixel on its own, whatever the image size: only divide by 255",
                lambda e, n, s: e / 255 * math.sqrt(_dims(s) / THESIS_DIM)),
        Mistake("the ℓ2 factor is √(d/3072), the square root of the ratio of value counts, not the ratio itself",
                lambda e, n, s: e / 255 if n == "linf" else e / 255 * _dims(s) / THESIS_DIM),
        Mistake("d counts every value of an image, channels too: d = C·H·W",
                lambda e, n, s: e / 255 if n == "linf" else e / 255 * math.sqrt(s[-1] * s[-2] / THESIS_DIM)),
    ),
)


# --- project: PGD's projection of each perturbation onto the ε-ball ---

def _project_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(3)
    big = torch.randn(5, 1, 16, 16, generator=gen)  # norms ≈ 16, far outside a 0.34-ball
    mixed = torch.cat([big[:2], big[2:] * 0.01])  # two outside, three inside
    return [
        Case("ℓ2, 5 perturbations (5, 1, 16, 16) outside the ball, ε = 0.34", (big, "l2", 0.34)),
        Case("ℓ2, 2 outside and 3 inside the ball, ε = 0.5", (mixed, "l2", 0.5)),
        Case("ℓ∞, 5 perturbations, ε = 8/255", (big, "linf", 8 / 255)),
        Case("ℓ2, an all-zero perturbation (its norm is 0)", (torch.zeros(2, 1, 16, 16), "l2", 0.34)),
        Case("ℓ2, colour perturbations (3, 3, 8, 8), ε = 1", (torch.randn(3, 3, 8, 8, generator=gen), "l2", 1.0)),
    ]


def _rows(delta):
    return delta.flatten(1).norm(dim=1).view(-1, *([1] * (delta.dim() - 1)))


PROJECT = Exercise(
    name="project", notebook=NOTEBOOK,
    summary="project each perturbation onto its ε-ball: ℓ∞ clamps each value, ℓ2 rescales rows longer than ε",
    reference=lc.project, reference_name="labkit.attacks.label_consistent.project", cases=_project_cases,
    mistakes=(
        Mistake("project each example on its own: the ℓ2 norm is taken over all axes but the first (one per image), "
                "not over the whole batch", lambda d, n, e: d * min(1.0, e / float(d.norm())) if n == "l2" else d.clamp(-e, e)),
        Mistake("leave perturbations already inside the ball unchanged: scale by min(1, ε/‖δ‖), not ε/‖δ‖",
                lambda d, n, e: d * e / _rows(d).clamp_min(1e-12) if n == "l2" else d.clamp(-e, e)),
        Mistake("the ℓ∞ ball is a box: clamp each value to [−ε, ε] (rescaling the whole perturbation is the ℓ2 rule)",
                lambda d, n, e: d * (e / d.flatten(1).abs().amax(1)).clamp(max=1).view(-1, *([1] * (d.dim() - 1)))
                if n == "linf" else lc.project(d, n, e)),
        Mistake("the ℓ∞ projection clamps to [−ε, ε]; sign(δ)·ε is PGD's ℓ∞ *step* direction, not its projection",
                lambda d, n, e: d.sign() * e if n == "linf" else lc.project(d, n, e)),
    ),
)

EXERCISES = (SCALE, PROJECT)
