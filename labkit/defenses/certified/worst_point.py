"""The worst-case point of a feasible set for θ: max_{(x,y)∈F} ℓ(θ; x, y) in closed form (and by cvxpy, the
reference it is tested against); the hinge loss."""
from __future__ import annotations

import math

import numpy as np

from labkit.defenses.certified.sets import LABELS, ClassSet, FeasibleSet
from labkit.errors import LabkitError


def support(c: np.ndarray, cset: ClassSet) -> tuple[float, np.ndarray]:
    """max_{x ∈ cset} ⟨c, x⟩ in closed form: (value, maximiser (D,)).

    With x = o + u: the ball's maximiser u = r·c/‖c‖ if it lies in the slab lo ≤ ⟨u, a⟩ ≤ hi; otherwise
    the maximiser lies on the violated face ⟨u, a⟩ = h: u = h·a + √(r² − h²)·c⊥/‖c⊥‖ with c⊥ = c − ⟨c, a⟩a.
    """
    o, r = cset.centre, cset.radius
    lo, hi = cset.slab_bounds()
    if lo > r or hi < -r or lo > hi:
        raise LabkitError("the feasible set is empty (the slab misses the ball); raise the percentile")
    norm_c = float(np.linalg.norm(c))
    if cset.direction is None:
        u = r * c / norm_c if norm_c > 0 else np.zeros_like(c)
        return float(c @ o) + r * norm_c, o + u
    a = cset.direction
    along = float(c @ a)
    if norm_c > 0 and lo <= r * along / norm_c <= hi:
        u = r * c / norm_c
    else:
        if norm_c == 0:
            h = min(max(0.0, lo), hi)
        else:
            h = hi if r * along / norm_c > hi else lo
        c_perp = c - along * a
        norm_perp = float(np.linalg.norm(c_perp))
        side = math.sqrt(max(r * r - h * h, 0.0))
        u = h * a + (side * c_perp / norm_perp if norm_perp > 1e-15 * max(norm_c, 1.0) else 0.0)
    return float(c @ (o + u)), o + u


def hinge(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N,) hinge losses max(0, 1 − y(⟨w, x⟩ + b)) for θ = (w, b) (D+1,)."""
    return np.maximum(0.0, 1.0 - y * (np.atleast_2d(x) @ theta[:-1] + theta[-1]))


def worst_point(theta: np.ndarray, fset: FeasibleSet) -> tuple[np.ndarray, float, float]:
    """argmax_{(x,y)∈F} ℓ(θ; x, y) in closed form, both labels tried: (x (D,), y, loss).

    For label y: max_x 1 − y(⟨w, x⟩ + b) = 1 − y·b + support(−y·w). Ties (e.g. both losses 0) go to the
    larger margin violation, then to +1.
    """
    w, b = theta[:-1], theta[-1]
    best = None
    for label in LABELS:
        value, x = support(-label * w, fset.sets[label])
        score = 1.0 - label * b + value
        if best is None or score > best[2]:
            best = (x, label, score)
    x, label, score = best
    return x, float(label), max(0.0, float(score))


def worst_point_cvxpy(theta: np.ndarray, fset: FeasibleSet) -> tuple[np.ndarray, float, float]:
    """The same argmax as `worst_point`, as one small SOCP per label (cvxpy, default solver)."""
    import cvxpy as cp

    w, b = theta[:-1], theta[-1]
    best = None
    for label in LABELS:
        cset = fset.sets[label]
        x = cp.Variable(len(w))
        constraints = [cp.norm(x - cset.centre, 2) <= cset.radius]
        if cset.direction is not None:
            constraints.append(cp.abs(cset.direction @ x - cset.slab_centre) <= cset.width)
        problem = cp.Problem(cp.Maximize(1.0 - label * b - label * (w @ x)), constraints)
        problem.solve()
        check_status(problem, "worst-case point")
        if best is None or problem.value > best[2]:
            best = (np.asarray(x.value, float), label, float(problem.value))
    x, label, score = best
    return x, float(label), max(0.0, float(score))


def check_status(problem, what: str) -> None:
    if problem.status not in ("optimal", "optimal_inaccurate"):
        raise LabkitError(f"cvxpy could not solve the {what} ({problem.status}); try other rho / percentile")
