"""WaNet (Nguyen & Tran 2021, "WaNet — imperceptible warping-based backdoor attack"): the trigger is a small,
smooth warp of the image rather than a pattern.

The warp: draw a k×k×2 grid of random offsets in [−1, 1], divide by its mean absolute value, upsample it
(bicubic) to H×W, scale it by the strength s / H, add it to the identity sampling grid and clip to [−1, 1]
(grid_sample's coordinates). Poisoned training images are warped and relabelled; "noise-mode" images are
warped by the same field plus a fresh random jitter and keep their labels, so the model learns the *exact*
warp rather than "any warp". Images (N, C, H, W) in [0, 1]; warping interpolates, so they stay in [0, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from labkit.attacks.badnets import check_fraction, choose_victims
from labkit.errors import LabkitError
from labkit.seed import generator

GRID = 4        # k: control points per side (the paper's MNIST setting)
STRENGTH = 0.5  # s (the paper's setting)
NOISE_RATIO = 2.0  # noise-mode samples per attack sample (the paper's cross ratio)


def identity_grid(height: int, width: int) -> torch.Tensor:
    """(H, W, 2) grid_sample coordinates (x, y) in [−1, 1] that reproduce the image (align_corners=True)."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    return torch.stack([xs, ys], dim=-1)


def warping_field(image_shape: tuple[int, int, int], seed: int, grid: int = GRID,
                  strength: float = STRENGTH) -> torch.Tensor:
    """(H, W, 2) sampling grid in [−1, 1]: the identity plus the attacker's smooth random offsets."""
    _, height, width = image_shape
    if not 2 <= grid <= min(height, width):
        raise LabkitError(f"WaNet grid must be in [2, {min(height, width)}] control points, got {grid}")
    if not 0 < strength <= height:
        raise LabkitError(f"WaNet strength must be in (0, {height}] (pixels of displacement scale), got {strength}")
    offsets = torch.rand(1, 2, grid, grid, generator=generator(seed)) * 2 - 1
    offsets = offsets / offsets.abs().mean()
    flow = F.interpolate(offsets, size=(height, width), mode="bicubic", align_corners=True)
    flow = flow[0].permute(1, 2, 0) * (strength / height)
    return (identity_grid(height, width) + flow).clamp(-1, 1)


def warp(x: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W) in [0, 1] resampled at `field` ((H, W, 2) or (N, H, W, 2)), bilinear; stays in [0, 1]."""
    fields = field.expand(len(x), *field.shape[-3:]) if field.dim() == 3 else field
    return F.grid_sample(x, fields.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=True)


def noisy_fields(field: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """(count, H, W, 2): the field plus uniform jitter of up to one pixel per axis, clipped to [−1, 1]."""
    height, width = field.shape[:2]
    jitter = (torch.rand(count, height, width, 2, generator=generator(seed)) * 2 - 1) / height
    return (field + jitter).clamp(-1, 1)


def poison(x: torch.Tensor, y: torch.Tensor, *, field: torch.Tensor, target: int, fraction: float, seed: int,
           noise_ratio: float = NOISE_RATIO) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Warp + relabel round(fraction · N) images not labelled `target`; warp + jitter another
    round(noise_ratio · fraction · N) (labels kept). Returns (x', y', attack indices, noise-mode indices).

    The paper re-draws both sets each batch; the lab poisons once, like every other attack here."""
    check_fraction(fraction)
    attack = choose_victims(y, round(fraction * len(y)), seed, exclude_label=target)
    rest = torch.ones(len(y), dtype=torch.bool)
    rest[attack] = False
    pool = torch.nonzero(rest).flatten()
    count = min(len(pool), round(noise_ratio * len(attack)))
    noise = pool[torch.randperm(len(pool), generator=generator(seed + 1))[:count]].sort().values
    x_poisoned, y_poisoned = x.clone(), y.clone()
    x_poisoned[attack] = warp(x[attack], field)
    y_poisoned[attack] = target
    x_poisoned[noise] = warp(x[noise], noisy_fields(field, len(noise), seed + 2))
    return x_poisoned, y_poisoned, attack, noise
