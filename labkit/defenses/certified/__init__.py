"""Certified defenses for data poisoning (Steinhardt, Koh & Liang, 2017): sphere/slab sanitizers for a
linear SVM, the worst-case attack point, Algorithm 1, the exact upper bound as one SOCP, and the lower bound.

One module per concept: `sets` (feasible sets), `worst_point`, `algorithm1`, `bounds` (exact upper bound,
lower bound); their public names are re-exported here (`from labkit.defenses import certified as cert`).

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

from labkit.defenses.certified.algorithm1 import (
    Alg1Result,
    algorithm1,
    data_dependent_sets,
    default_eta,
    default_iterations,
)
from labkit.defenses.certified.bounds import (
    DIRECT_LIMIT,
    Attack,
    exact_bound,
    hinge_program,
    retrain,
    test_scores,
    train_svm,
    upper_bound_at,
)
from labkit.defenses.certified.sets import (
    DEFENSES,
    LABELS,
    ClassSet,
    FeasibleSet,
    check_defense,
    check_labels,
    class_centroids,
    class_radii,
    feasible_set,
    make_set,
    slab_direction,
)
from labkit.defenses.certified.worst_point import hinge, support, worst_point, worst_point_cvxpy

__all__ = [
    "Alg1Result", "algorithm1", "data_dependent_sets", "default_eta", "default_iterations",
    "DIRECT_LIMIT", "Attack", "exact_bound", "hinge_program", "retrain", "test_scores", "train_svm", "upper_bound_at",
    "DEFENSES", "LABELS", "ClassSet", "FeasibleSet", "check_defense", "check_labels", "class_centroids", "class_radii",
    "feasible_set", "make_set", "slab_direction", "hinge", "support", "worst_point", "worst_point_cvxpy",
]
