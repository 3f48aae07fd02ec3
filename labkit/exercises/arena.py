"""Notebook 08 (the arena): Blended's trigger, and spectral signatures' outlier score."""
from __future__ import annotations

import torch

from labkit.attacks import blended
from labkit.defenses import spectral
from labkit.exercises.core import Case, Exercise, Mistake

NOTEBOOK = "08_arena"


# --- blend_trigger: α·pattern + (1 − α)·x ---

def _blend_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(21)
    x = torch.rand(6, 1, 16, 16, generator=gen)
    pattern = torch.rand(1, 16, 16, generator=gen)
    return [
        Case("6 images (6, 1, 16, 16), a (1, 16, 16) noise pattern, α = 0.2", (x, pattern, 0.2)),
        Case("α = 0.05 (a faint blend)", (x, pattern, 0.05)),
        Case("α = 1 (the pattern alone)", (x, pattern, 1.0)),
        Case("one image (1, 16, 16)", (x[0], pattern, 0.2)),
        Case("3-channel images (2, 3, 8, 8)", (torch.rand(2, 3, 8, 8, generator=gen),
                                               torch.rand(3, 8, 8, generator=gen), 0.3)),
    ]


BLEND = Exercise(
    name="blend_trigger", notebook=NOTEBOOK,
    summary="Blended's trigger: the key pattern mixed into the whole image with weight α",
    reference=lambda x, pattern, alpha: blended.blend(x, pattern, alpha),
    reference_name="labkit.attacks.blended.blend", cases=_blend_cases, pixels=True,
    mistakes=(
        Mistake("α weighs the *pattern*: α·pattern + (1 − α)·x (α = 0.2 keeps 80% of the image)",
                lambda x, p, a: a * x + (1 - a) * p),
        Mistake("a blend replaces part of the image: multiply x by (1 − α), do not just add α·pattern",
                lambda x, p, a: (x + a * p).clamp(0, 1)),
    ),
)


# --- spectral_scores: squared projection on the top singular vector of the centred representations ---

def _spectral_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(22)
    clean = torch.randn(80, 12, generator=gen, dtype=torch.float64)
    shift = torch.zeros(12, dtype=torch.float64)
    shift[3] = 6.0
    planted = torch.cat([clean, torch.randn(10, 12, generator=gen, dtype=torch.float64) + shift])
    return [
        Case("90 representations (90, 12): 80 clean, 10 shifted along one axis", (planted,)),
        Case("clean representations only (80, 12)", (clean,)),
        Case("representations far from the origin (mean 50): centre them first", (planted + 50,)),
        Case("two representations (2, 12)", (clean[:2],)),
    ]


def _spectral_reference(reps):
    return spectral.class_scores(reps).double()


def _top_direction(reps):
    return torch.linalg.svd(reps, full_matrices=False)[2][0]


SPECTRAL = Exercise(
    name="spectral_scores", notebook=NOTEBOOK,
    summary="spectral signatures' score: ((R_i − mean R) · v)², v the top right singular vector of the centred R",
    reference=_spectral_reference, reference_name="labkit.defenses.spectral.class_scores", cases=_spectral_cases,
    rtol=1e-3, atol=1e-4,
    mistakes=(
        Mistake("centre the representations (subtract their mean) before the SVD and before projecting: "
                "otherwise v points at the mean, not at the poison's direction",
                lambda r: (r @ _top_direction(r)) ** 2),
        Mistake("square the projection: v's sign is arbitrary, and a large projection either way is the outlier",
                lambda r: (r - r.mean(0)) @ _top_direction(r - r.mean(0))),
        Mistake("project on the top *right* singular vector (a direction in representation space, length D), "
                "the first row of Vᴴ",
                lambda r: ((r - r.mean(0)) @ torch.linalg.svd(r - r.mean(0), full_matrices=False)[2][-1]) ** 2),
    ),
)

EXERCISES = (BLEND, SPECTRAL)
