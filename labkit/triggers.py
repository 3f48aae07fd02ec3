"""Triggers as one representation: a mask (H, W) and a pattern (C, H, W), both in [0, 1].

`apply(x)` stamps images (N, C, H, W) or (C, H, W) in [0, 1] (0–1 pixel scale):
- full amplitude (`amplitude >= 255`, the BadNets trigger): x' = (1 − m)·x + m·p;
- reduced amplitude `a` (thesis 3.5, on the 0–255 scale): add a/255 where the pattern is
  white, subtract it where black, inside the mask, then clip to [0, 1]. With a binary
  pattern, any a ≥ 255 gives exactly the full trigger.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from labkit.errors import LabkitError

# The 3x3 black-and-white pattern of Gu et al. (BadNets), as used in the thesis (1 = white).
BADNETS_PATTERN = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
PRESETS = ("badnets", "four-corner", "x", "pixel", "square")


@dataclass(frozen=True)
class Trigger:
    """mask (H, W) in [0, 1]; pattern (C, H, W) or (1, H, W) in [0, 1]; amplitude on 0–255."""

    mask: torch.Tensor
    pattern: torch.Tensor
    amplitude: float = 255.0
    name: str = "custom"

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Stamped copy of `x` ((N, C, H, W) or (C, H, W), 0–1 pixel scale)."""
        mask = self.mask.to(x.device, x.dtype)
        pattern = self.pattern.to(x.device, x.dtype)
        if self.amplitude >= 255:
            return (1 - mask) * x + mask * pattern
        sign = 2 * pattern - 1  # +1 on white pattern pixels, −1 on black
        return (x + mask * sign * (self.amplitude / 255.0)).clamp(0, 1)

    def with_amplitude(self, amplitude: float) -> "Trigger":
        check_amplitude(amplitude)
        return replace(self, amplitude=float(amplitude))

    def area(self) -> float:
        """Number of pixels the trigger touches (the L1 norm of its mask)."""
        return float(self.mask.sum())


def check_amplitude(amplitude: float) -> None:
    if not 0 < amplitude <= 255:
        raise LabkitError(f"trigger amplitude must be in (0, 255] (0–255 pixel scale), got {amplitude}")


def _place(canvas: torch.Tensor, patch: torch.Tensor, top: int, left: int) -> None:
    canvas[..., top:top + patch.shape[-2], left:left + patch.shape[-1]] = patch


def _from_patches(image_shape, patches, colour=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask and pattern from [(values (h, w), top, left), ...]; `colour` = per-channel white."""
    channels, height, width = image_shape
    mask = torch.zeros(height, width)
    grey = torch.zeros(height, width)
    for values, top, left in patches:
        _place(mask, torch.ones_like(values), top, left)
        _place(grey, values, top, left)
    if colour is None:
        pattern = grey.expand(channels, height, width).clone()
    else:
        pattern = torch.stack([grey * c for c in colour[:channels]])
    return mask, pattern


def badnets(image_shape, amplitude: float = 255, margin: int = 1) -> Trigger:
    """The 3x3 BadNets pattern in the bottom-right corner, `margin` pixels from the edge."""
    _, h, w = image_shape
    p = BADNETS_PATTERN
    mask, pattern = _from_patches(image_shape, [(p, h - 3 - margin, w - 3 - margin)])
    return Trigger(mask, pattern, float(amplitude), "badnets")


def four_corner(image_shape, amplitude: float = 255, margin: int = 1) -> Trigger:
    """The pattern in all four corners, flipped so the whole is horizontally symmetric (thesis 3.6)."""
    _, h, w = image_shape
    p = BADNETS_PATTERN
    lo, hi_r, hi_c = margin, h - 3 - margin, w - 3 - margin
    patches = [(p, hi_r, hi_c), (p.flip(1), hi_r, lo), (p.flip(0), lo, hi_c), (p.flip(0).flip(1), lo, lo)]
    mask, pattern = _from_patches(image_shape, patches)
    return Trigger(mask, pattern, float(amplitude), "four-corner")


def x_pattern(image_shape, amplitude: float = 255) -> Trigger:
    """A small 'x' in the image centre (thesis 5.5): red on colour images, white on grey."""
    _, h, w = image_shape
    size = 3 if h <= 16 else 5
    cross = torch.maximum(torch.eye(size), torch.eye(size).flip(1))
    top, left = (h - size) // 2, (w - size) // 2
    _, pattern = _from_patches(image_shape, [(cross, top, left)],
                               colour=(1.0, 0.0, 0.0) if image_shape[0] == 3 else None)
    mask = torch.zeros(h, w)
    _place(mask, cross, top, left)  # only the strokes, not the surrounding square
    return Trigger(mask, pattern, float(amplitude), "x")


def single_pixel(image_shape, amplitude: float = 255, margin: int = 1) -> Trigger:
    """One white pixel near the bottom-right corner."""
    _, h, w = image_shape
    mask, pattern = _from_patches(image_shape, [(torch.ones(1, 1), h - 1 - margin, w - 1 - margin)])
    return Trigger(mask, pattern, float(amplitude), "pixel")


def white_square(image_shape, amplitude: float = 255, size: int = 3, margin: int = 1) -> Trigger:
    """A white `size`x`size` square in the bottom-right corner."""
    _, h, w = image_shape
    mask, pattern = _from_patches(image_shape, [(torch.ones(size, size), h - size - margin, w - size - margin)])
    return Trigger(mask, pattern, float(amplitude), "square")


def make(name: str, image_shape, amplitude: float = 255) -> Trigger:
    """A preset by name: badnets · four-corner · x · pixel · square."""
    check_amplitude(amplitude)
    builders = {"badnets": badnets, "four-corner": four_corner, "x": x_pattern,
                "pixel": single_pixel, "square": white_square}
    if name not in builders:
        raise LabkitError(f"unknown trigger {name!r}; choose one of {', '.join(PRESETS)}")
    return builders[name](tuple(image_shape), amplitude)


# --- the tanh parameterisation optimisers search over (Neural Cleanse; the blind backdoor's evasion trigger) ---

TANH_EPSILON = 1e-7  # Keras' K.epsilon(), as in Neural Cleanse's reference code


def to_unit(raw: torch.Tensor, epsilon: float = TANH_EPSILON) -> torch.Tensor:
    """tanh parameter → value in [0, 1]: `tanh(a) / (2 − ε) + 0.5` (Neural Cleanse's reference; ε = 0 gives
    `tanh(a)/2 + ½`). The unconstrained parameter optimisers search over for a mask or a pattern."""
    return torch.tanh(raw) / (2 - epsilon) + 0.5


def from_unit(value: torch.Tensor, epsilon: float = TANH_EPSILON) -> torch.Tensor:
    """Inverse of `to_unit` for values in [0, 1]."""
    return torch.atanh((value.clamp(0, 1) - 0.5) * (2 - epsilon))


def stamp(x: torch.Tensor, masks: torch.Tensor, patterns: torch.Tensor) -> torch.Tensor:
    """Every image under every trigger: x (B, C, H, W), masks (L, H, W), patterns (L, C, H, W), all 0–1
    → (L, B, C, H, W) with x' = (1 − m)⊙x + m⊙p."""
    m = masks[:, None, None]  # (L, 1, 1, H, W)
    return (1 - m) * x[None] + m * patterns[:, None]
