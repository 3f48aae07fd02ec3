"""Activation clustering (Chen et al. 2018): in a poisoned class, the representations split into two clusters —
the real members and the poison, which the model maps there for a different reason (the trigger).

For each label: reduce the representations to 10 dimensions (ICA, as the paper), split them with 2-means, and
call the smaller cluster poison when it holds at most `max_share` of the class (the paper's "relative size"
test; a clean class splits roughly in half or into a large and a not-so-small part). Remove it and retrain.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import FastICA

from labkit.defenses.representations import by_class

COMPONENTS = 10
MAX_SHARE = 0.35  # the lab's relative-size threshold: a cluster this small (or smaller) is flagged


def reduce(reps: torch.Tensor, components: int = COMPONENTS, seed: int = 0) -> np.ndarray:
    """(n, k) ICA projection of `reps` (n, D), k = min(components, rank): ReLU units that never fire in this
    class (constant columns) are dropped first, since whitening cannot divide by their zero variance."""
    array = reps.double().numpy()
    array = array[:, array.std(axis=0) > 1e-8]
    rank = np.linalg.matrix_rank(array - array.mean(axis=0)) if array.size else 0
    k = min(components, rank)
    if k < 1:
        return np.zeros((len(array), 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FastICA's convergence warnings on near-degenerate classes
        return FastICA(n_components=k, random_state=seed, whiten="unit-variance", max_iter=400).fit_transform(array)


def split(reps: torch.Tensor, seed: int = 0) -> np.ndarray:
    """(n,) 0/1 cluster of each row of `reps` (n, D): 2-means on the reduced representations."""
    if len(reps) < 4:
        return np.zeros(len(reps), dtype=int)
    return KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(reduce(reps, seed=seed))


def flag(reps: torch.Tensor, labels: torch.Tensor, max_share: float = MAX_SHARE, seed: int = 0) -> torch.Tensor:
    """bool (N,): in every label, the smaller 2-means cluster when it holds ≤ `max_share` of the label."""
    flagged = torch.zeros(len(labels), dtype=torch.bool)
    for _, idx in by_class(labels).items():
        clusters = split(reps[idx], seed)
        small = int(np.argmin(np.bincount(clusters, minlength=2)))
        members = torch.from_numpy(clusters == small)
        if 0 < int(members.sum()) <= max_share * len(idx):
            flagged[idx[members]] = True
    return flagged
