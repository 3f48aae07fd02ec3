"""Notebook 04 (certified defenses): the sphere's support function and Algorithm 1's worst-case point."""
from __future__ import annotations

import numpy as np

from labkit.defenses import certified as cert
from labkit.exercises.core import Case, Exercise, Mistake, as_array

NOTEBOOK = "04_certified_defenses"


# --- sphere_support: max ⟨c, x⟩ over the ball ‖x − centre‖ ≤ radius, and where it is reached ---

def _support_reference(c, centre, radius):
    return cert.support(np.asarray(c, float), cert.ClassSet(np.asarray(centre, float), float(radius)))


def _support_cases() -> list[Case]:
    rng = np.random.default_rng(6)
    c, centre = rng.normal(size=5), rng.normal(size=5)
    return [
        Case("c and the centre random in 5-D, radius 2", (c, centre, 2.0)),
        Case("the ball around the origin, radius 0.5", (c, np.zeros(5), 0.5)),
        Case("c = 0 (every point of the ball is a maximiser)", (np.zeros(5), centre, 1.0)),
        Case("radius 0 (the ball is its centre)", (c, centre, 0.0)),
        Case("784-D, like an MNIST image", (rng.normal(size=784), rng.uniform(size=784), 3.0)),
    ]


def _support_accept(got, expected, case) -> bool:
    """Right when the value matches and the point lies in the ball and reaches that value (c = 0: any point)."""
    c, centre, radius = case.args
    value, x = as_array(got[0]), as_array(got[1])
    if value is None or x is None or x.shape != np.shape(centre):
        return False
    inside = np.linalg.norm(x - centre) <= radius * (1 + 1e-6) + 1e-9
    return bool(inside and np.isclose(float(value), expected[0], rtol=1e-6, atol=1e-9)
                and np.isclose(float(c @ x), expected[0], rtol=1e-6, atol=1e-9))


SUPPORT = Exercise(
    name="sphere_support", notebook=NOTEBOOK, outputs=("value", "maximiser"),
    summary="max ⟨c, x⟩ over a ball: ⟨c, centre⟩ + r‖c‖, reached at centre + r·c/‖c‖",
    reference=_support_reference, reference_name="labkit.defenses.certified.support", cases=_support_cases,
    accept=_support_accept,
    mistakes=(
        Mistake("the ball is centred at `centre`, not at the origin: the value is ⟨c, centre⟩ + r‖c‖",
                lambda c, o, r: (r * float(np.linalg.norm(c)), o + r * c / np.linalg.norm(c))),
        Mistake("the maximiser is centre + r·c/‖c‖: the *unit* vector along c, scaled by the radius",
                lambda c, o, r: (float(c @ o) + r * float(np.linalg.norm(c)), o + r * c)),
        Mistake("r‖c‖ uses the ℓ2 norm of c (Cauchy–Schwarz), not the squared norm",
                lambda c, o, r: (float(c @ o) + r * float(c @ c), o + r * c / np.linalg.norm(c))),
    ),
)


# --- worst_point: argmax over F of the hinge loss, both labels tried (Algorithm 1's inner step) ---

def _sets(defense: str, seed: int, gap: float = 2.0) -> cert.FeasibleSet:
    rng = np.random.default_rng(seed)
    dim = 6
    x = np.concatenate([rng.normal(size=(40, dim)) + gap, rng.normal(size=(40, dim)) - gap])
    y = np.concatenate([np.ones(40), -np.ones(40)])
    return cert.feasible_set(x, y, defense, (np.zeros(dim), 10.0))


def _worst_cases() -> list[Case]:
    rng = np.random.default_rng(7)
    theta = rng.normal(size=7) / 2
    far = _sets("sphere", 8, gap=6.0)
    safe = np.concatenate([np.full(6, 1.0), [0.0]])  # classifies both far-apart balls with margin > 1
    return [
        Case("θ random in 6-D (+ bias), sphere+slab sets of two Gaussian classes", (theta, _sets("sphere+slab", 1))),
        Case("the same θ, spheres only", (theta, _sets("sphere", 1))),
        Case("the same θ, slabs inside the domain ball", (theta, _sets("slab", 1))),
        Case("no sanitizer (the domain ball for both labels), a large bias", (theta + np.eye(7)[6] * 3, _sets("none", 1))),
        Case("θ = 0 (both labels lose exactly 1: a tie, +1 is kept)", (np.zeros(7), _sets("sphere+slab", 2))),
        Case("θ that classifies every feasible point with margin > 1 (the hinge is 0)", (safe, far)),
    ]


def _labels_loss(theta, fset, label_order=cert.LABELS, sign=-1.0, bias=True, clamp=True, ties_first=True):
    """A configurable copy of the worst-point loop, for the mistakes."""
    w, b = theta[:-1], theta[-1] if bias else 0.0
    best = None
    for label in label_order:
        value, x = cert.support(sign * label * w, fset.sets[label])
        score = 1.0 - label * b + value
        if best is None or score > best[2] or (not ties_first and score == best[2]):
            best = (x, label, score)
    x, label, score = best
    return x, float(label), max(0.0, float(score)) if clamp else float(score)


WORST = Exercise(
    name="worst_point", notebook=NOTEBOOK, outputs=("x", "y", "loss"),
    summary="the feasible point with the largest hinge loss: for each label 1 − y·b + support(−y·w), keep the larger",
    reference=cert.worst_point, reference_name="labkit.defenses.certified.worst_point", cases=_worst_cases,
    mistakes=(
        Mistake("the hinge loss of (x, y) is 1 − y(⟨w, x⟩ + b): maximising it means maximising ⟨−y·w, x⟩, so ask "
                "for support(−y·w), not support(y·w)", lambda t, f: _labels_loss(t, f, sign=1.0)),
        Mistake("include the bias: the loss is 1 − y·b + support(−y·w)", lambda t, f: _labels_loss(t, f, bias=False)),
        Mistake("the hinge is max(0, 1 − y(⟨w, x⟩ + b)): a point classified with margin > 1 costs 0, not less",
                lambda t, f: _labels_loss(t, f, clamp=False)),
        Mistake("try both labels (+1 and −1) and keep the one with the larger loss",
                lambda t, f: _labels_loss(t, f, label_order=(1.0,))),
        Mistake("on a tie keep +1, the label tried first (use >, not ≥, when comparing losses)",
                lambda t, f: _labels_loss(t, f, ties_first=False)),
    ),
)

EXERCISES = (SUPPORT, WORST)
