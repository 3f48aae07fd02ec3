"""The exact upper bound min_θ U(θ) as one SOCP (cvxpy, working sets for large problems), and the lower bound:
the SVM retrained on clean ∪ kept poison."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from labkit.defenses.certified.sets import LABELS, FeasibleSet
from labkit.defenses.certified.worst_point import check_status, hinge, worst_point
from labkit.errors import LabkitError


DIRECT_LIMIT = 400_000  # n·D above which the hinge programs are solved by working sets (see `hinge_program`)


def hinge_program(x: np.ndarray, y: np.ndarray, rho: float, *, weights: np.ndarray | None = None,
                  normaliser: float | None = None, fset: FeasibleSet | None = None, epsilon: float = 0.0,
                  working_set: bool | None = None, seed: int = 0) -> tuple[float, np.ndarray, dict]:
    """min_{‖θ‖²≤ρ} (1/normaliser)·Σ_i weights_i·ℓ(θ; x_i, y_i) [+ ε·max_{(x,y)∈F} ℓ(θ; x, y)] in cvxpy.

    One SOCP in (θ, t, λ₊_y, λ₋_y). The inner max over ball ∩ slab is replaced by its dual (the
    support function of the intersection), with c = −y·w:
        max_{‖u‖≤r, lo≤⟨u,a⟩≤hi} ⟨c, u⟩ = min_{λ₊,λ₋≥0} r‖c − (λ₊ − λ₋)a‖ + λ₊·hi − λ₋·lo
    (for a slab centred on the ball, hi = −lo = s: min_λ r‖c − λa‖ + s|λ|).

    Working sets (default when n·D > DIRECT_LIMIT, e.g. MNIST-1-7): the same SOCP over a subset W of the
    points, grown by every point with margin < 1 at its solution until none is left outside. Dropping
    non-negative hinge terms can only lower the optimum, and at the last θ_W the dropped terms are all 0,
    so θ_W is optimal for the full program (exact, not an approximation); info["rounds"] counts solves.
    Returns (objective at θ evaluated on *all* points in numpy, θ (D+1,), info).
    """
    n = len(y)
    weights = np.ones(n) if weights is None else np.asarray(weights, float)
    normaliser = normaliser or n
    if working_set is None:
        working_set = n * x.shape[1] > DIRECT_LIMIT
    chosen = np.arange(n)
    if working_set:
        chosen = np.sort(np.random.default_rng(seed).permutation(n)[:min(1000, max(100, n // 10))])
    rounds = 0
    while True:
        theta, restricted = _solve_hinge_socp(x[chosen], y[chosen], weights[chosen], normaliser, rho, fset, epsilon)
        rounds += 1
        margins = y * (x @ theta[:-1] + theta[-1])
        outside = np.ones(n, bool)
        outside[chosen] = False
        violators = np.flatnonzero(outside & (margins < 1 - 1e-9))
        if len(violators) == 0:
            break
        near = np.flatnonzero(outside & (margins < 1.05))  # the margin band, to need fewer rounds
        chosen = np.union1d(chosen, near)
    value = float(weights @ hinge(theta, x, y)) / normaliser
    if fset is not None:
        value += epsilon * worst_point(theta, fset)[2]
    return value, theta, {"rounds": rounds, "working_set_size": len(chosen), "socp_value": restricted}


def _solve_hinge_socp(x, y, weights, normaliser, rho, fset, epsilon) -> tuple[np.ndarray, float]:
    import cvxpy as cp

    x, y, weights = _merge_duplicates(x, y, weights)
    d = x.shape[1]
    theta = cp.Variable(d + 1)
    w, b = theta[:d], theta[d]
    objective = weights @ cp.pos(1 - cp.multiply(y, x @ w + b)) / normaliser
    constraints = [cp.norm(theta, 2) <= math.sqrt(rho)]
    if fset is not None and epsilon > 0:
        worst = cp.Variable(nonneg=True)  # t ≥ max(0, the worst-case margin violation over both labels)
        for label in LABELS:
            cset = fset.sets[label]
            c = -label * w
            if cset.direction is None:
                sup = c @ cset.centre + cset.radius * cp.norm(c, 2)
            else:
                lo, hi = cset.slab_bounds()
                lam_up, lam_down = cp.Variable(nonneg=True), cp.Variable(nonneg=True)
                sup = (c @ cset.centre + cset.radius * cp.norm(c - (lam_up - lam_down) * cset.direction, 2)
                       + hi * lam_up - lo * lam_down)
            constraints.append(worst >= 1 - label * b + sup)
        objective = objective + epsilon * worst
    problem = cp.Problem(cp.Minimize(objective), constraints)
    problem.solve()
    check_status(problem, "hinge-loss program")
    return np.asarray(theta.value, float), float(problem.value)


def exact_bound(x: np.ndarray, y: np.ndarray, fset: FeasibleSet, epsilon: float, rho: float,
                working_set: bool | None = None) -> tuple[float, np.ndarray]:
    """The exact upper bound min_{‖θ‖²≤ρ} U(θ), U(θ) = (1/n)·L(θ; D_c) + ε·max_F ℓ(θ; ·): (value, θ).

    One SOCP (see `hinge_program`); the value returned is U(θ) at the solver's θ, computed exactly with
    the closed-form argmax, so it is a valid upper bound on M whatever the solver's tolerance.
    """
    if epsilon < 0:
        raise LabkitError(f"epsilon must be >= 0, got {epsilon:g}")
    value, theta, _ = hinge_program(x, y, rho, fset=fset, epsilon=epsilon, working_set=working_set)
    return value, theta


def upper_bound_at(theta: np.ndarray, x: np.ndarray, y: np.ndarray, fset: FeasibleSet, epsilon: float) -> float:
    """U(θ) = (1/n)·L(θ; D_c) + ε·max_F ℓ(θ; ·), evaluated with the closed form."""
    return float(hinge(theta, x, y).mean()) + epsilon * worst_point(theta, fset)[2]


def train_svm(x: np.ndarray, y: np.ndarray, rho: float, weights: np.ndarray | None = None,
              normaliser: float | None = None, working_set: bool | None = None) -> np.ndarray:
    """argmin_{‖θ‖²≤ρ} (1/normaliser)·Σ_i weights_i·ℓ(θ; x_i, y_i), solved exactly by cvxpy (default
    solver; working sets for large problems, see `hinge_program`): θ (D+1,).

    normaliser defaults to len(y); weights to ones. Identical rows are merged first (their weights add).
    """
    return hinge_program(x, y, rho, weights=weights, normaliser=normaliser, working_set=working_set)[1]


def _merge_duplicates(x, y, weights):
    rows = np.hstack([x, y[:, None]])
    unique, inverse = np.unique(rows, axis=0, return_inverse=True)
    if len(unique) == len(rows):
        return x, y, weights
    merged = np.zeros(len(unique))
    np.add.at(merged, inverse.ravel(), weights)
    return unique[:, :-1], unique[:, -1], merged


@dataclass
class Attack:
    """The lower bound: the SVM retrained on D_c ∪ D_p and its losses (train loss normalised by n)."""

    theta: np.ndarray
    train_loss: float  # (1/n)·L(θ̃; D_c ∪ D_p)
    test_loss: float  # mean hinge on the test set
    test_error: float  # 0-1 error on the test set
    kept_weight: float  # poison mass that passed the sanitizer (in points)


def retrain(x: np.ndarray, y: np.ndarray, px: np.ndarray, py: np.ndarray, weight: float, rho: float,
            x_test: np.ndarray, y_test: np.ndarray, keep: np.ndarray | None = None) -> Attack:
    """Retrain on D_c ∪ D_p (poison rows `keep` only, each of weight `weight`) and score it."""
    keep = np.ones(len(py), bool) if keep is None else keep
    px, py = px[keep], py[keep]
    n = len(y)
    all_x, all_y = np.vstack([x, px]), np.concatenate([y, py])
    weights = np.concatenate([np.ones(n), np.full(len(py), weight)])
    theta = train_svm(all_x, all_y, rho, weights, normaliser=n)
    train_loss = float(weights @ hinge(theta, all_x, all_y)) / n
    return Attack(theta, train_loss, *test_scores(theta, x_test, y_test), kept_weight=weight * len(py))


def test_scores(theta: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> tuple[float, float]:
    """(mean hinge loss, 0-1 error) of θ on the test set (a score of exactly 0 counts as an error)."""
    scores = x_test @ theta[:-1] + theta[-1]
    return float(hinge(theta, x_test, y_test).mean()), float(np.mean(y_test * scores <= 0))
