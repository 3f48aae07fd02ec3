"""Algorithm 1 (Steinhardt, Koh & Liang): online gradient descent on U(θ) with lazy norm projection, giving
the heuristic upper bound U* and a candidate attack; and its data-dependent-centroid variant."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from labkit.defenses.certified.bounds import hinge, train_svm
from labkit.defenses.certified.sets import LABELS, FeasibleSet, check_labels, class_centroids, class_radii, make_set
from labkit.defenses.certified.worst_point import worst_point
from labkit.errors import LabkitError


def default_eta(x: np.ndarray, fset: FeasibleSet, epsilon: float, rho: float, iterations: int) -> float:
    """η = √ρ / (G·√T), the online-gradient step that balances the regret's two terms, with
    G = mean_i ‖(x_i, 1)‖ + ε·max_{x∈F} ‖(x, 1)‖ bounding ‖g‖."""
    clean = float(np.mean(np.sqrt((x ** 2).sum(1) + 1.0)))
    far = max(float(np.linalg.norm(s.centre)) + s.radius for s in fset.sets.values())
    return math.sqrt(rho) / ((clean + epsilon * math.sqrt(far ** 2 + 1.0)) * math.sqrt(iterations))


def default_iterations(n: int, epsilon: float) -> int:
    """The paper's T = εn (rounded up; at least 1)."""
    return max(1, math.ceil(epsilon * n - 1e-9))


@dataclass
class Alg1Result:
    """Algorithm 1's output. The candidate attack is the T points, each of weight εn/T (=1 when T = εn)."""

    upper_bound: float  # U* = min_t U(θ^(t−1))
    poison_x: np.ndarray  # (T, D)
    poison_y: np.ndarray  # (T,)
    poison_weight: float  # εn/T
    u_history: np.ndarray  # (T,) U(θ^(t−1)) at each step
    best_theta: np.ndarray  # (D+1,) the θ attaining U*
    eta: float
    centroids: list | None = None  # data-dependent variant: centroids used at each step


def algorithm1(x: np.ndarray, y: np.ndarray, fset: FeasibleSet | Callable, epsilon: float, rho: float,
               eta: float | None = None, iterations: int | None = None) -> Alg1Result:
    """Algorithm 1 of the paper: online (sub)gradient descent on U with lazy norm projection.

        z⁰ = 0, λ⁰ = 1/η, θ⁰ = 0, U* = ∞; for t = 1..T:
          (x_t, y_t) = argmax_{F} ℓ(θ^(t−1); ·)             (closed form)
          U* ← min(U*, (1/n)L(θ^(t−1); D_c) + ε·ℓ(θ^(t−1); x_t, y_t))
          g_t = (1/n)∇L(θ^(t−1); D_c) + ε∇ℓ(θ^(t−1); x_t, y_t)
          z ← z − g_t,  λ ← max(λ, ‖z‖/√ρ),  θ^(t) = z/λ

    x (n, D) clean points, y (n,) ∈ {−1, +1}; T defaults to εn. `fset` may be a function
    (poison_x (t, D), poison_y (t,)) → FeasibleSet: the data-dependent variant re-derives F every step.
    """
    n, d = x.shape
    if epsilon < 0:
        raise LabkitError(f"epsilon must be >= 0, got {epsilon:g}")
    if rho <= 0:
        raise LabkitError(f"rho must be > 0, got {rho:g}")
    if epsilon == 0:
        return no_attacker(x, y, rho)
    iterations = iterations or default_iterations(n, epsilon)
    set_at = fset if callable(fset) else (lambda px, py: fset)
    eta = eta or default_eta(x, set_at(x[:0], y[:0]), epsilon, rho, iterations)
    signed = y[:, None] * np.hstack([x, np.ones((n, 1))])  # rows y_i·(x_i, 1)
    z, lam, theta = np.zeros(d + 1), 1.0 / eta, np.zeros(d + 1)
    best, best_theta = math.inf, theta.copy()
    px, py, history, centroids = np.zeros((iterations, d)), np.zeros(iterations), np.zeros(iterations), []
    for t in range(iterations):
        current = set_at(px[:t], py[:t])
        centroids.append({k: v.copy() for k, v in current.centroids.items()})
        xt, yt, loss_t = worst_point(theta, current)
        margins = 1.0 - signed @ theta
        active = margins > 0
        u = float(margins[active].sum()) / n + epsilon * loss_t
        history[t] = u
        if u < best:
            best, best_theta = u, theta.copy()
        g = -(active.astype(float) @ signed) / n
        if loss_t > 0:
            g = g - epsilon * yt * np.append(xt, 1.0)
        z = z - g
        lam = max(lam, float(np.linalg.norm(z)) / math.sqrt(rho))
        theta = z / lam
        px[t], py[t] = xt, yt
    return Alg1Result(float(best), px, py, epsilon * n / iterations, history, best_theta, eta,
                      centroids if callable(fset) else None)


def no_attacker(x: np.ndarray, y: np.ndarray, rho: float) -> Alg1Result:
    """ε = 0: no poison, so U(θ) is the clean loss and U* = min_{‖θ‖²≤ρ} (1/n)L(θ; D_c), solved exactly
    (T = εn = 0 steps of Algorithm 1 would leave θ⁰ = 0 and report the hinge loss at 0, i.e. 1)."""
    theta = train_svm(x, y, rho)
    loss = float(hinge(theta, x, y).mean())
    d = x.shape[1]
    return Alg1Result(loss, np.zeros((0, d)), np.zeros(0), 0.0, np.array([loss]), theta, float("nan"), None)


def data_dependent_sets(x: np.ndarray, y: np.ndarray, defense: str, domain, epsilon: float,
                        percentile: float = 70.0) -> Callable:
    """F(π_p) for the data-dependent variant: centroids from D_c ∪ (the poison so far, rescaled to mass εn);
    radii fixed at the clean percentiles. Returns (poison_x, poison_y) → FeasibleSet."""
    check_labels(y)
    n = len(y)
    clean = class_centroids(x, y)
    radii = class_radii(x, y, clean, percentile)
    sums = {label: x[y == label].sum(0) for label in LABELS}
    counts = {label: float((y == label).sum()) for label in LABELS}
    seen = {"t": 0, "sums": {label: np.zeros(x.shape[1]) for label in LABELS}, "counts": dict.fromkeys(LABELS, 0.0)}

    def at(px: np.ndarray, py: np.ndarray) -> FeasibleSet:
        t = len(py)
        if t == 0:
            return make_set(defense, clean, radii, domain)
        if t < seen["t"]:  # a new sequence: start the running sums again
            seen.update(t=0, sums={label: np.zeros(x.shape[1]) for label in LABELS}, counts=dict.fromkeys(LABELS, 0.0))
        for row, label in zip(px[seen["t"]:t], py[seen["t"]:t]):
            seen["sums"][label] += row
            seen["counts"][label] += 1
        seen["t"] = t
        scale = epsilon * n / t  # the poison so far, rescaled to its full mass εn
        centroids = {label: (sums[label] + scale * seen["sums"][label]) / (counts[label] + scale * seen["counts"][label])
                     for label in LABELS}
        return make_set(defense, centroids, radii, domain)

    return at
