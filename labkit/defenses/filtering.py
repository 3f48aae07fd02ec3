"""The thesis' simple detection scheme (section 3.1 / 7.3).

Train a classifier on a small trusted clean set, score every training sample by the
probability that classifier gives to the sample's *label*, and inspect the lowest-scoring
ones: mislabelled poison sits there.
"""
from __future__ import annotations

import torch

from labkit.train import predict_proba


def label_probability(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,) probability `model` assigns to each sample's own label."""
    return predict_proba(model, x).gather(1, y.view(-1, 1)).flatten()


def poisoned_among_lowest(scores: torch.Tensor, poisoned_idx: torch.Tensor, ks) -> list[int]:
    """For each k in `ks`, how many of the k lowest-scoring samples are poisoned."""
    order = torch.argsort(scores, stable=True)
    is_poisoned = torch.zeros(len(scores), dtype=torch.bool)
    is_poisoned[poisoned_idx] = True
    hits = torch.cumsum(is_poisoned[order].int(), 0)
    return [int(hits[min(k, len(scores)) - 1]) if k > 0 else 0 for k in ks]
