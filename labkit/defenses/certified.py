"""Certified defenses for data poisoning (Steinhardt, Koh & Liang, 2017): sphere/slab sanitizers for a
linear SVM, the worst-case attack point, Algorithm 1, the exact upper bound as one SOCP, and the lower bound.

Conventions (used everywhere below):
- Data: x (N, D) float64 (pixels 0–1), labels y ∈ {−1, +1}. n = number of *clean* training points.
- Model θ = (w, b) ∈ R^(D+1); the defender's SVM is norm-constrained: ‖θ‖₂² ≤ ρ (b included), so the
  paper's projection step reads λ ← max(λ, ‖z‖₂/√ρ) (the slides write ρ for the radius √ρ).
- Loss: hinge ℓ(θ; x, y) = max(0, 1 − y(⟨w, x⟩ + b)); L(θ; S) = Σ_{(x,y)∈S} ℓ(θ; x, y) (a *sum*).
- Normalisation (the paper's): every loss is divided by n, the clean count, never by n + εn:
      U(θ) = (1/n)·L(θ; D_c) + ε·max_{(x,y)∈F} ℓ(θ; x, y),
  and an attack D_p of εn points is scored by (1/n)·L(θ̃; D_c ∪ D_p) with θ̃ = argmin_{‖θ‖²≤ρ} of that
  same quantity. Hence achieved ≤ M ≤ min_θ U(θ) (the exact bound) ≤ U* (Algorithm 1).
- The SVM is trained exactly by cvxpy (its default solver; hinge sum + one second-order cone ‖θ‖ ≤ √ρ).

Feasible sets, per label y (`ClassSet`): a ball ‖x − o_y‖ ≤ r_y, optionally ∩ a slab |⟨x, a_y⟩ − m_y| ≤ s_y
with a unit normal a_y = (μ_y − μ_−y)/‖μ_y − μ_−y‖ and m_y = ⟨μ_y, a_y⟩. Defenses:
  none          the domain ball (every valid input; no sanitizer)
  sphere        ‖x − μ_y‖ ≤ r_y
  slab          domain ball ∩ |⟨x − μ_y, a_y⟩| ≤ s_y   (a slab alone is unbounded along the other directions)
  sphere+slab   ‖x − μ_y‖ ≤ r_y ∩ the slab
r_y, s_y are per-class percentiles (default the 70th) of the clean points' distances to their centroid.
Oracle centroids come from clean data; data-dependent ones from clean ∪ poison (radii stay at the clean
percentiles: the defender's thresholds, only the centroids are estimated from the data it receives).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from labkit.errors import LabkitError

DEFENSES = ("none", "sphere", "slab", "sphere+slab")
LABELS = (1.0, -1.0)  # the order both labels are tried in (ties go to +1)


# --------------------------------------------------------------------------------------------- feasible sets
@dataclass(frozen=True)
class ClassSet:
    """Feasible inputs for one label: ball(centre, radius) ∩ {|⟨x, direction⟩ − slab_centre| ≤ width}."""

    centre: np.ndarray  # (D,) ball centre
    radius: float
    direction: np.ndarray | None = None  # (D,) unit slab normal; None = no slab
    slab_centre: float = 0.0  # ⟨μ_y, a_y⟩
    width: float = math.inf  # s_y

    def slab_bounds(self) -> tuple[float, float]:
        """The slab as lo ≤ ⟨u, a⟩ ≤ hi for u = x − centre (relative to the ball's centre)."""
        if self.direction is None:
            return -math.inf, math.inf
        shift = self.slab_centre - float(self.direction @ self.centre)
        return shift - self.width, shift + self.width

    def contains(self, x: np.ndarray, tol: float = 1e-7) -> np.ndarray:
        """(N,) bool: which rows of x (N, D) lie in the set (up to `tol`)."""
        x = np.atleast_2d(x)
        inside = np.linalg.norm(x - self.centre, axis=1) <= self.radius * (1 + tol) + tol
        if self.direction is not None:
            inside &= np.abs(x @ self.direction - self.slab_centre) <= self.width * (1 + tol) + tol
        return inside


@dataclass(frozen=True)
class FeasibleSet:
    """F = {(x, y): x ∈ sets[y]} for y ∈ {−1, +1}, with how it was built."""

    defense: str
    sets: dict  # {+1.0: ClassSet, −1.0: ClassSet}
    centroids: dict  # {label: (D,) centroid used}

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x, y = np.atleast_2d(x), np.atleast_1d(y)
        out = np.zeros(len(y), dtype=bool)
        for label in LABELS:
            rows = y == label
            if rows.any():
                out[rows] = self.sets[label].contains(x[rows])
        return out


def check_defense(defense: str) -> None:
    if defense not in DEFENSES:
        raise LabkitError(f"defense must be one of {', '.join(DEFENSES)}, got {defense!r}")


def check_labels(y: np.ndarray) -> None:
    values = set(np.unique(y).tolist())
    if not values <= {-1.0, 1.0} or len(values) < 2:
        raise LabkitError(f"labels must be −1 and +1 with both present, got values {sorted(values)}")


def class_centroids(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> dict:
    """{label: (D,) weighted mean of that class's rows}."""
    weights = np.ones(len(y)) if weights is None else weights
    return {label: np.average(x[y == label], axis=0, weights=weights[y == label]) for label in LABELS}


def slab_direction(centroids: dict, label: float) -> np.ndarray:
    """Unit vector (μ_y − μ_−y)/‖μ_y − μ_−y‖."""
    gap = centroids[label] - centroids[-label]
    norm = np.linalg.norm(gap)
    if norm == 0:
        raise LabkitError("the two class centroids coincide; the slab defense needs distinct centroids")
    return gap / norm


def class_radii(x: np.ndarray, y: np.ndarray, centroids: dict, percentile: float = 70.0) -> dict:
    """{label: (r_y, s_y)}: the `percentile` of clean distances ‖x − μ_y‖ and |⟨x − μ_y, a_y⟩| per class."""
    if not 0 < percentile <= 100:
        raise LabkitError(f"percentile must be a float in (0, 100], got {percentile:g}")
    out = {}
    for label in LABELS:
        rows = x[y == label] - centroids[label]
        out[label] = (float(np.percentile(np.linalg.norm(rows, axis=1), percentile)),
                      float(np.percentile(np.abs(rows @ slab_direction(centroids, label)), percentile)))
    return out


def make_set(defense: str, centroids: dict, radii: dict, domain: tuple[np.ndarray, float]) -> FeasibleSet:
    """The feasible set of `defense` around `centroids` with per-class (r_y, s_y) `radii`.

    `domain` = (centre (D,), radius): the ball of valid inputs, used by `none` and `slab`.
    """
    check_defense(defense)
    sets = {}
    for label in LABELS:
        radius, width = radii[label]
        if defense in ("sphere", "sphere+slab"):
            ball = ClassSet(np.asarray(centroids[label], float), radius)
        else:
            ball = ClassSet(np.asarray(domain[0], float), float(domain[1]))
        if defense in ("slab", "sphere+slab"):
            a = slab_direction(centroids, label)
            ball = replace(ball, direction=a, slab_centre=float(a @ centroids[label]), width=width)
        sets[label] = ball
    return FeasibleSet(defense, sets, {k: np.asarray(v, float) for k, v in centroids.items()})


def feasible_set(x: np.ndarray, y: np.ndarray, defense: str, domain: tuple[np.ndarray, float],
                 percentile: float = 70.0) -> FeasibleSet:
    """The oracle feasible set: centroids and percentile radii from the clean data (x, y)."""
    check_labels(y)
    centroids = class_centroids(x, y)
    return make_set(defense, centroids, class_radii(x, y, centroids, percentile), domain)


# ----------------------------------------------------------------------------------- the worst-case point
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
        _check_status(problem, "worst-case point")
        if best is None or problem.value > best[2]:
            best = (np.asarray(x.value, float), label, float(problem.value))
    x, label, score = best
    return x, float(label), max(0.0, float(score))


def _check_status(problem, what: str) -> None:
    if problem.status not in ("optimal", "optimal_inaccurate"):
        raise LabkitError(f"cvxpy could not solve the {what} ({problem.status}); try other rho / percentile")


# ------------------------------------------------------------------------------------------- Algorithm 1
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


# --------------------------------------------------------------------------------- the exact upper bound
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
    _check_status(problem, "hinge-loss program")
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


# ------------------------------------------------------------------------------------ the lower bound
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
