"""Certified defenses (notebook 04, Steinhardt, Koh & Liang): the exact sphere/slab upper bound, Algorithm 1's
U* and candidate attack, and the attack's lower bound, for a norm-constrained linear SVM.
Losses follow labkit.defenses.certified: hinge, summed and divided by the clean count n.
"""
from __future__ import annotations

import functools
import time

import numpy as np
import torch

from labkit import config, pairs
from labkit.defenses import certified as cert
from labkit.errors import LabkitError
from labkit.experiments import SEED, Config, Param, register

STORE_POINTS_LIMIT = 1_000_000  # poison points are kept in the result when T·D is at most this
PERCENTILES = (50.0, 60.0, 70.0, 80.0, 90.0)  # the widget's radius percentiles

# Notebook 04's grids: `epsilons` for the bound-vs-ε curves (the paper goes up to 0.3), `iterations`
# (Algorithm 1's T) for the regret-gap figure.
SIZES = config.Sizes(
    ci=dict(epsilons=(0.0, 0.1, 0.3), iterations=(10, 40, 160)),
    lab=dict(epsilons=(0.0, 0.05, 0.1, 0.15, 0.2, 0.3), iterations=(10, 30, 100, 300, 1000)),
    paper=dict(epsilons=(0.0, 0.03, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3),
               iterations=(10, 30, 100, 300, 1000, 3000, 10000)),
)


def _tensor(array) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.float64))


def set_summary(fset: cert.FeasibleSet) -> dict:
    """The feasible set as tensors (for the cache and the plots); rows are the labels (+1, −1).

    centres / directions / centroids (2, D); radii, widths, slab_centres (2,) (width −1: no slab).
    """
    sets = [fset.sets[label] for label in cert.LABELS]
    return {
        "defense": fset.defense,
        "labels": _tensor(cert.LABELS),
        "centres": _tensor([s.centre for s in sets]),
        "radii": _tensor([s.radius for s in sets]),
        "directions": _tensor([s.direction if s.direction is not None else np.zeros_like(s.centre) for s in sets]),
        "slab_centres": _tensor([s.slab_centre for s in sets]),
        "widths": _tensor([s.width if s.direction is not None else -1.0 for s in sets]),
        "centroids": _tensor([fset.centroids[label] for label in cert.LABELS]),
    }


@functools.lru_cache(maxsize=16)
def _clean_svm(dataset: str, seed: int, rho: float, profile_name: str) -> np.ndarray:
    """The clean SVM θ (D+1,), shared by every ε / defense of one dataset within a process."""
    pair = pairs.load(dataset, seed, profile=profile_name)
    return cert.train_svm(pair.x_train, pair.y_train, rho)


def check_dataset(cfg: dict) -> None:
    if cfg["centroids"] == "data-dependent" and cfg["defense"] == "none":
        raise LabkitError("centroids=data-dependent needs a defense (sphere, slab or sphere+slab); "
                          "defense=none has no centroids")


@register("certified", {
    "dataset": Param("digits-1-7", str, choices=pairs.PAIRS, help="binary dataset (labels −1/+1)"),
    "epsilon": Param(0.1, float, 0, 1, help="poisoned fraction ε: the attacker adds εn points"),
    "defense": Param("sphere+slab", str, choices=cert.DEFENSES, help="the sanitizer's feasible set"),
    "percentile": Param(70.0, float, 0, 100, low_open=True, help="per-class percentile of clean distances for r_y, s_y"),
    "centroids": Param("oracle", str, choices=("oracle", "data-dependent"),
                       help="centroids from clean data, or from clean ∪ poison"),
    "rho": Param(None, float, 0, 1e4, low_open=True, optional=True,
                 help="norm budget ‖(w, b)‖² ≤ ρ (default: the dataset's)"),
    "iterations": Param(None, int, 1, 100000, optional=True, help="Algorithm 1 steps T (default εn)"),
    "eta": Param(None, float, 0, 1e6, low_open=True, optional=True,
                 help="Algorithm 1 step size η (default √ρ/(G√T))"),
    "seed": SEED.but(help="seed of the toy-2d sample (the image pairs are fixed)"),
}, summary=("upper_bound_exact", "upper_bound_alg1", "attack_train_loss", "attack_test_loss",
            "attack_test_error", "clean_train_loss", "clean_test_error"), checks=(check_dataset,))
def certified(cfg: Config) -> dict:
    """Upper and lower bounds on the loss an ε-fraction attacker can cause behind a sphere/slab sanitizer.

    upper_bound_exact: min_θ U(θ) by one SOCP (oracle centroids; NaN for data-dependent centroids, which
    have no convex certificate). upper_bound_alg1: Algorithm 1's U* (for data-dependent centroids, the
    modified algorithm's heuristic U*). attack_*: the SVM retrained on D_c ∪ (D_p ∩ F); train loss is
    (1/n)·L(θ̃; D_c ∪ D_p). oracle_upper_bound_exact: the oracle bound at the same ε and defense.
    """
    start = time.perf_counter()
    dataset, epsilon, defense, percentile = cfg.dataset, cfg.epsilon, cfg.defense, cfg.percentile
    eta, iterations = cfg.eta, cfg.iterations
    pair = pairs.load(dataset, cfg.seed, profile=cfg.profile)
    x, y = pair.x_train, pair.y_train
    rho = cfg.rho or pair.rho
    domain = (pair.domain_centre, pair.domain_radius)
    oracle = cert.feasible_set(x, y, defense, domain, percentile)

    theta_clean = _clean_svm(dataset, cfg.seed, float(rho), cfg.profile.name).copy()
    clean_test_loss, clean_test_error = cert.test_scores(theta_clean, pair.x_test, pair.y_test)

    tick = time.perf_counter()
    exact, theta_exact = cert.exact_bound(x, y, oracle, epsilon, rho)
    seconds_exact = time.perf_counter() - tick

    tick = time.perf_counter()
    if cfg.centroids == "oracle":
        alg = cert.algorithm1(x, y, oracle, epsilon, rho, eta=eta, iterations=iterations)
        final = oracle
    else:
        sets = cert.data_dependent_sets(x, y, defense, domain, epsilon, percentile)
        alg = cert.algorithm1(x, y, sets, epsilon, rho, eta=eta, iterations=iterations)
        final = sets(alg.poison_x, alg.poison_y)  # the defender's centroids from everything it received
    seconds_alg1 = time.perf_counter() - tick
    keep = final.contains(alg.poison_x, alg.poison_y)
    attack = cert.retrain(x, y, alg.poison_x, alg.poison_y, alg.poison_weight, rho, pair.x_test, pair.y_test, keep)

    iterations_run = len(alg.poison_y)
    result = {
        "upper_bound_exact": exact if cfg.centroids == "oracle" else float("nan"),
        "oracle_upper_bound_exact": exact,
        "upper_bound_alg1": alg.upper_bound,
        "attack_train_loss": attack.train_loss,
        "attack_test_loss": attack.test_loss,
        "attack_test_error": attack.test_error,
        "clean_train_loss": float(cert.hinge(theta_clean, x, y).mean()),
        "clean_test_loss": clean_test_loss,
        "clean_test_error": clean_test_error,
        "regret_gap": alg.upper_bound - attack.train_loss,
        "n_clean": int(len(y)), "dim": int(x.shape[1]), "rho": float(rho), "eta": float(alg.eta),
        "iterations": iterations_run, "poison_weight": float(alg.poison_weight),
        "poison_kept_fraction": float(keep.mean()) if iterations_run else float("nan"),
        "poison_positive_fraction": float(np.mean(alg.poison_y > 0)) if iterations_run else float("nan"),
        "u_history": _tensor(alg.u_history),
        "theta_clean": _tensor(theta_clean), "theta_attack": _tensor(attack.theta), "theta_exact": _tensor(theta_exact),
        "feasible_set": set_summary(final), "oracle_set": set_summary(oracle),
        "seconds_exact": seconds_exact, "seconds_alg1": seconds_alg1,
    }
    if iterations_run * x.shape[1] <= STORE_POINTS_LIMIT:
        result["poison_x"] = _tensor(alg.poison_x)
        result["poison_y"] = _tensor(alg.poison_y)
        result["poison_kept"] = torch.as_tensor(keep)
        if alg.centroids is not None:  # data-dependent: the centroids each step saw, (T, 2, D) as (+1, −1)
            result["centroid_path"] = _tensor([[c[1.0], c[-1.0]] for c in alg.centroids])
    result["seconds"] = time.perf_counter() - start
    return result

