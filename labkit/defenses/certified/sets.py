"""Sphere/slab feasible sets F (per label: a ball, optionally ∩ a slab) and how the defender builds them
from clean data (conventions: `labkit.defenses.certified`)."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from labkit.errors import LabkitError


DEFENSES = ("none", "sphere", "slab", "sphere+slab")
LABELS = (1.0, -1.0)  # the order both labels are tried in (ties go to +1)


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
