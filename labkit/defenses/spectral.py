"""Spectral signatures (Tran, Li & Madry 2018): poison leaves a trace along the top singular direction of a
class's centred representations.

For each label c: R_c (n_c, D) the representations of the samples labelled c, centred; v the top right
singular vector of R_c; score_i = ((R_i − mean R_c) · v)². Remove the 1.5·ε·n_c highest scores of each class,
ε the poison's share of that class (the paper's rule: an upper bound on it), then retrain on the rest.
"""
from __future__ import annotations

import torch

from labkit.defenses.representations import by_class
from labkit.errors import LabkitError

REMOVE_FACTOR = 1.5  # the paper removes 1.5 × the expected poison count


def class_scores(reps: torch.Tensor) -> torch.Tensor:
    """(n,) outlier score of each row of `reps` (n, D): squared projection on the top singular vector of
    the centred rows."""
    centred = reps - reps.mean(dim=0, keepdim=True)
    if len(reps) < 2:
        return torch.zeros(len(reps))
    _, _, vh = torch.linalg.svd(centred.double(), full_matrices=False)
    return ((centred.double() @ vh[0]) ** 2).float()


def scores(reps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N,) each sample's score within its own label's samples; reps (N, D), labels (N,)."""
    out = torch.zeros(len(labels))
    for _, idx in by_class(labels).items():
        out[idx] = class_scores(reps[idx])
    return out


def flag(reps: torch.Tensor, labels: torch.Tensor, epsilon: float, factor: float = REMOVE_FACTOR) -> torch.Tensor:
    """bool (N,): in every label, the round(factor · ε · n_c) highest-scoring samples.

    `epsilon` is the defender's bound on the poison's share of a class (a fraction, not a percent)."""
    if not 0 <= epsilon <= 1:
        raise LabkitError(f"epsilon must be a fraction of each class in [0, 1], got {epsilon}")
    flagged = torch.zeros(len(labels), dtype=torch.bool)
    s = scores(reps, labels)
    for _, idx in by_class(labels).items():
        count = min(len(idx), round(factor * epsilon * len(idx)))
        if count:
            flagged[idx[torch.argsort(s[idx], descending=True, stable=True)[:count]]] = True
    return flagged
