"""SIG (Barni, Kallas & Tondi 2019, "A new backdoor attack in CNNs by training set corruption without label
poisoning"): a clean-label attack. A horizontal sinusoid v(i, j) = Δ·sin(2π·j·f / W) is added to a fraction of
the *target class's* training images, whose labels stay correct; at test time adding the same signal to any
image sends it to the target class.

Δ is on the 0–255 scale (the paper's), images (N, C, H, W) in [0, 1]; the signal is added and clipped to [0, 1].
"""
from __future__ import annotations

import math

import torch

from labkit.attacks.badnets import check_fraction
from labkit.errors import LabkitError
from labkit.seed import generator

DELTA = 20.0     # amplitude, 0–255 scale (the paper's MNIST setting)
FREQUENCY = 6    # cycles across the image width (the paper's MNIST setting; 2.7 px per cycle at 16 px wide)


def signal(image_shape: tuple[int, int, int], delta: float = DELTA, frequency: int = FREQUENCY) -> torch.Tensor:
    """(C, H, W) signal on the 0–1 scale: Δ/255 · sin(2π·j·f / W), the same on every row and channel."""
    channels, height, width = image_shape
    if not 0 < delta <= 255:
        raise LabkitError(f"SIG amplitude delta must be in (0, 255] (0–255 pixel scale), got {delta}")
    if not 0 < frequency < width / 2:
        raise LabkitError(f"SIG frequency must be in (0, {width / 2:g}) cycles per width (below Nyquist for "
                          f"{width} px), got {frequency}")
    columns = torch.arange(width, dtype=torch.float32)
    row = (delta / 255.0) * torch.sin(2 * math.pi * columns * frequency / width)
    return row.expand(channels, height, width).clone()


def add(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """x + v clipped to [0, 1]; x (N, C, H, W) or (C, H, W)."""
    return (x + v.to(x.dtype)).clamp(0, 1)


def poison(x: torch.Tensor, y: torch.Tensor, *, signal_image: torch.Tensor, target: int, fraction: float,
           seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Add the signal to round(fraction · |target class|) images *of* the target class; labels unchanged.

    Returns (x', y (a copy, identical), sorted indices of the corrupted samples)."""
    check_fraction(fraction)
    pool = torch.nonzero(y == target).flatten()
    count = round(fraction * len(pool))
    idx = pool[torch.randperm(len(pool), generator=generator(seed))[:count]].sort().values
    x_poisoned = x.clone()
    x_poisoned[idx] = add(x[idx], signal_image)
    return x_poisoned, y.clone(), idx
