"""Blended injection (Chen et al. 2017, "Targeted backdoor attacks on deep learning systems using data
poisoning"): the trigger is a whole image, a fixed random pattern, blended into the input with weight α.

x' = α·pattern + (1 − α)·x. Poisoned training images are blended and relabelled to the target, as in BadNets;
at test time the same blend (same α) is the trigger. All images (N, C, H, W) in [0, 1] (0–1 pixel scale).
"""
from __future__ import annotations

import torch

from labkit.attacks.badnets import check_fraction, choose_victims
from labkit.errors import LabkitError
from labkit.seed import generator

ALPHA = 0.2  # the blend weight of the lab's Blended rows (the paper studies 0.05–0.2 on faces)


def check_alpha(alpha: float) -> None:
    if not 0 < alpha <= 1:
        raise LabkitError(f"blend weight alpha must be in (0, 1] (0 = no trigger, 1 = the pattern alone), got {alpha}")


def random_pattern(image_shape: tuple[int, int, int], seed: int) -> torch.Tensor:
    """(C, H, W) uniform noise in [0, 1]: the attacker's fixed key pattern."""
    return torch.rand(image_shape, generator=generator(seed))


def blend(x: torch.Tensor, pattern: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:
    """α·pattern + (1 − α)·x for x (N, C, H, W) or (C, H, W) in [0, 1]; stays in [0, 1]."""
    check_alpha(alpha)
    return alpha * pattern.to(x.dtype) + (1 - alpha) * x


def poison(x: torch.Tensor, y: torch.Tensor, *, pattern: torch.Tensor, alpha: float, target: int, fraction: float,
           seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Blend round(fraction · N) images not labelled `target` and relabel them: (x', y', sorted indices)."""
    check_fraction(fraction)
    idx = choose_victims(y, round(fraction * len(y)), seed, exclude_label=target)
    x_poisoned, y_poisoned = x.clone(), y.clone()
    x_poisoned[idx] = blend(x[idx], pattern, alpha)
    y_poisoned[idx] = target
    return x_poisoned, y_poisoned, idx
