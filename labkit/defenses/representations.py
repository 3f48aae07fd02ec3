"""What the training-data filters look at: a trained model's penultimate-layer representation of each sample.

Spectral signatures and activation clustering both train on the (possibly poisoned) data, read each
sample's representation, and look for a structure that only poison produces."""
from __future__ import annotations

import torch
from torch import nn

from labkit.train import EVAL_BATCH, chunks


@torch.no_grad()
def embeddings(model: nn.Module, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """(N, D) `model.embed(x)` (the input to its last linear layer), on CPU, in eval mode; x (N, C, H, W) in [0, 1]."""
    model.eval()
    device = next(model.parameters()).device
    if not len(x):
        return torch.empty(0)
    return torch.cat([model.embed(xb.to(device)).flatten(1).cpu() for xb in chunks(x, batch_size)])


def by_class(labels: torch.Tensor) -> dict[int, torch.Tensor]:
    """label → (n_c,) the indices of the samples with that label, for every label present."""
    return {int(c): torch.nonzero(labels == c).flatten() for c in labels.unique()}


def removed_share(flagged: torch.Tensor, poisoned_idx: torch.Tensor) -> tuple[float, float]:
    """(fraction of the poison that `flagged` (bool (N,)) removes, fraction of the flagged that is clean)."""
    poisoned = torch.zeros_like(flagged)
    poisoned[poisoned_idx] = True
    caught = float((flagged & poisoned).sum() / max(1, int(poisoned.sum())))
    clean_flagged = float((flagged & ~poisoned).sum() / max(1, int(flagged.sum())))
    return caught, clean_flagged
