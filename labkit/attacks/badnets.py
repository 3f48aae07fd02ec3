"""BadNets (Gu et al.): stamp the trigger on a fraction of the training set and relabel it."""
from __future__ import annotations

import torch

from labkit.errors import LabkitError
from labkit.seed import generator
from labkit.triggers import Trigger


def check_fraction(fraction: float, name: str = "poison_fraction") -> None:
    if not 0 <= fraction <= 1:
        raise LabkitError(f"{name} must be in [0, 1] (a fraction, not a percent), got {fraction}")


def choose_victims(y: torch.Tensor, count: int, seed: int, exclude_label: int | None = None) -> torch.Tensor:
    """`count` distinct training indices, sorted, drawn with their own generator."""
    pool = torch.arange(len(y)) if exclude_label is None else torch.nonzero(y != exclude_label).flatten()
    if count > len(pool):
        raise LabkitError(f"cannot poison {count} images: only {len(pool)} are eligible")
    return pool[torch.randperm(len(pool), generator=generator(seed))[:count]].sort().values


def poison(x: torch.Tensor, y: torch.Tensor, *, trigger: Trigger, target: int, fraction: float,
           seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Poison round(fraction · N) images not labelled `target`: stamp `trigger`, relabel to `target`.

    `x` (N, C, H, W) in [0, 1], `y` (N,). Returns copies (x_poisoned, y_poisoned) and the
    sorted indices of the poisoned samples.
    """
    check_fraction(fraction)
    idx = choose_victims(y, round(fraction * len(y)), seed, exclude_label=target)
    x_poisoned, y_poisoned = x.clone(), y.clone()
    x_poisoned[idx] = trigger.apply(x[idx])
    y_poisoned[idx] = target
    return x_poisoned, y_poisoned, idx
