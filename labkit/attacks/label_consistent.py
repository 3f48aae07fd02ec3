"""Label-consistent backdoors (Turner et al.; thesis chapters 3, 4 and 7).

Only training images of the *target* class are touched and their labels are kept. Each
attack makes the chosen images harder to classify from their own features, then stamps the
trigger: `poison(x, y, target, fraction, seed, trigger, perturb)` → (x', y, indices).

Perturbations (`perturb(x_chosen) -> x_hard`, all images (N, C, H, W) on the 0–1 pixel scale):
- none: the label-consistent baseline (thesis 3.2, trigger only);
- `pgd(...)`: ℓ2 / ℓ∞ projected gradient ascent on a frozen surrogate's loss (3.3.2, 7.5);
- `pixel_interpolation`: x' = (1 − τ)·x + τ·z towards another class's image z (4.5);
- `gaussian_noise`: x + N(0, σ²) (4.4);
- latent interpolation lives in `labkit.attacks.latent` (3.3.1, 7.4).

Units. The thesis states ε on the 0–255 pixel scale for 32×32×3 images (ℓ2: 300/600/1200,
ℓ∞: 8/16/32). `scale_epsilon` turns that into the 0–1 scale of *these* images honestly:
ℓ∞ bounds each pixel, so it is only divided by 255; an ℓ2 ball of radius ε over d = 3072 values
allows a root-mean-square change of ε/√3072 per value, so for d values the radius becomes
ε/255·√(d/3072) (same RMS change per pixel). For 16×16×1 digits √(256/3072) ≈ 0.289: thesis
ℓ2 ε = 300 → 0.340 on the 0–1 scale.

That keeps the per-pixel RMS change, but digits and MNIST are mostly black background, so the same RMS
change is a larger part of the image than on CIFAR-10. `scale_epsilon(..., image_norm=‖x‖)` keeps
instead the perturbation *as a fraction of the image*: ε / ‖x̄_CIFAR‖ · ‖x̄‖, with ‖x̄_CIFAR‖ the mean
ℓ2 norm of a CIFAR-10 image (`REFERENCE_IMAGE_NORM`); thesis ε = 300 is then 3.96% of the image on
every dataset (0.277 on digits, 0.365 on MNIST, against 0.340 / 0.594 by dimension).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from labkit.errors import LabkitError
from labkit.models import VGGStyle  # noqa: F401 — the surrogate lives with the other models
from labkit.seed import generator
from labkit.train import forward_in_chunks, train
from labkit.triggers import Trigger

NORMS = ("l2", "linf")
REFERENCE_DIM = 32 * 32 * 3  # the thesis' CIFAR-10 images
# Mean ℓ2 norm of a CIFAR-10 training image on the 0–255 scale, from its published per-channel means
# (0.4914, 0.4822, 0.4465) and stds (0.2470, 0.2435, 0.2616) on the 0–1 scale: E[x²] = μ² + σ² averages
# 0.2874 over channels, so ‖x‖ ≈ √(0.2874 · 3072) · 255 ≈ 7,577 (an estimate: √E‖x‖² ≥ E‖x‖; CIFAR-10 is
# not bundled here).
REFERENCE_IMAGE_NORM = 7577.0
EPSILON_SCALES = ("dimension", "image-norm")
PGD_BATCH = 256


def scale_epsilon(epsilon: float, norm: str, image_shape, image_norm: float | None = None) -> float:
    """Thesis ε (0–255 scale, 32×32×3) → radius on the 0–1 scale for images of `image_shape` (C, H, W).

    ℓ2 with `image_norm` (the mean ℓ2 norm of these images, 0–1 scale): the same fraction of the image as
    the thesis' ε of a CIFAR-10 image; without it: the same RMS change per pixel."""
    check_norm(norm)
    if epsilon < 0:
        raise LabkitError(f"epsilon must be >= 0 (0–255 pixel scale), got {epsilon}")
    if norm == "linf":
        return epsilon / 255.0
    if image_norm is not None:
        return epsilon / REFERENCE_IMAGE_NORM * image_norm
    return epsilon / 255.0 * math.sqrt(math.prod(image_shape) / REFERENCE_DIM)


def check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise LabkitError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")


def project(delta: torch.Tensor, norm: str, epsilon: float) -> torch.Tensor:
    """Euclidean projection of each perturbation in `delta` (N, ...) onto the ε-ball of `norm`."""
    check_norm(norm)
    if norm == "linf":
        return delta.clamp(-epsilon, epsilon)
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    factor = (epsilon / norms).clamp(max=1.0)
    return delta * factor.view(-1, *([1] * (delta.dim() - 1)))


def _ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """Steepest-ascent direction of unit `norm`: sign(g) for ℓ∞, g/‖g‖₂ for ℓ2."""
    if norm == "linf":
        return grad.sign()
    norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
    return grad / norms.view(-1, *([1] * (grad.dim() - 1)))


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, norm: str, epsilon: float, steps: int = 10,
        step_size: float | None = None, random_start: bool = False, seed: int = 0) -> torch.Tensor:
    """x_adv ≈ argmax_{‖x' − x‖ ≤ ε, x' ∈ [0, 1]} CE(model(x'), y) by projected gradient ascent.

    `x` (N, C, H, W) on the 0–1 scale; `epsilon` on the same scale (see `scale_epsilon`);
    `step_size` defaults to 2.5·ε/steps (Madry et al.). The model is only read, never updated.
    Each step projects onto the ε-ball, then clips to [0, 1]; clipping only shrinks every
    coordinate of the perturbation, so the result stays inside both sets.
    """
    check_norm(norm)
    if epsilon == 0 or steps == 0:
        return x.clone()
    alpha = step_size if step_size is not None else 2.5 * epsilon / steps
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = generator(seed)
    out = []
    for xb, yb in zip(x.split(PGD_BATCH), y.split(PGD_BATCH)):
        xb, yb = xb.to(device), yb.to(device)
        delta = torch.zeros_like(xb)
        if random_start:
            start = torch.rand(xb.shape, generator=gen).to(device) * 2 - 1
            delta = project(start * epsilon, norm, epsilon)
            delta = (xb + delta).clamp(0, 1) - xb
        for _ in range(steps):
            delta.requires_grad_(True)
            loss = F.cross_entropy(forward_in_chunks(model, xb + delta), yb, reduction="sum")
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta = project(delta + alpha * _ascent_direction(grad, norm), norm, epsilon)
                delta = (xb + delta).clamp(0, 1) - xb
        out.append((xb + delta).detach().cpu())
    model.train(was_training)
    return torch.cat(out)


def adversarial_train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, norm: str, epsilon: float,
                      epochs: int, steps: int = 3, batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
                      device: torch.device | None = None) -> list[float]:
    """PGD adversarial training (Madry et al.): each batch is replaced by its PGD examples
    (random start, `steps` steps, radius `epsilon` on the 0–1 scale), in `labkit.train.train`.
    Returns per-epoch mean loss."""
    def adversarial(model, xb, yb, epoch, idx):  # epoch counts from 1 in train(); the PGD seed from 0
        return pgd(model, xb, yb, norm=norm, epsilon=epsilon, steps=steps, random_start=True,
                   seed=seed * 100003 + (epoch - 1) * 1009 + int(idx[0]))

    history = train(model, x, y, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                    batch_transform=adversarial, progress=False, desc="adversarial training")
    return [row["loss"] for row in history]


def disjoint_split(n: int, seed: int, fraction: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted indices (attacker's, rest): a random `fraction` of range(n) and its complement."""
    perm = torch.randperm(n, generator=generator(seed))
    cut = int(round(fraction * n))
    return perm[:cut].sort().values, perm[cut:].sort().values


def choose_target_images(y: torch.Tensor, target: int, fraction: float, seed: int,
                         allowed: torch.Tensor | None = None) -> torch.Tensor:
    """round(fraction · #target images) sorted indices of images labelled `target` (from `allowed` if given)."""
    if not 0 <= fraction <= 1:
        raise LabkitError(f"poison_fraction must be in [0, 1] (a fraction of the target class), got {fraction}")
    pool = torch.nonzero(y == target).flatten()
    count = round(fraction * len(pool))
    if allowed is not None:
        keep = torch.zeros(len(y), dtype=torch.bool)
        keep[allowed] = True
        pool = pool[keep[pool]]
        if count > len(pool):
            raise LabkitError(f"cannot poison {count} target images: only {len(pool)} are eligible")
    return pool[torch.randperm(len(pool), generator=generator(seed))[:count]].sort().values


def source_class(target: int, num_classes: int) -> int:
    """The class the interpolation attacks pull target images towards: the next label, (target + 1) mod C.
    The thesis trains its GAN on "only images of the two classes between which we interpolate"; a fixed
    rule (chosen before any measurement) keeps the pair the same for every attack and seed."""
    return (target + 1) % num_classes


def class_partners(y: torch.Tensor, idx: torch.Tensor, source: int, seed: int) -> torch.Tensor:
    """For each index in `idx`, a random training index labelled `source` (seeded)."""
    pool = torch.nonzero(y == source).flatten()
    if len(pool) == 0:
        raise LabkitError(f"no training image is labelled {source}: nothing to interpolate towards")
    return pool[torch.randint(len(pool), (len(idx),), generator=generator(seed + 1))]


def other_class_partners(y: torch.Tensor, idx: torch.Tensor, seed: int) -> torch.Tensor:
    """For each index in `idx`, a random training index with a *different* label (seeded)."""
    gen = generator(seed + 1)
    partners = []
    for i in idx.tolist():
        others = torch.nonzero(y != y[i]).flatten()
        partners.append(int(others[torch.randint(len(others), (1,), generator=gen)]))
    return torch.tensor(partners, dtype=torch.int64)


def pixel_interpolation(x: torch.Tensor, others: torch.Tensor, tau: float) -> torch.Tensor:
    """x' = (1 − τ)·x + τ·z, pixel-wise towards other-class images `others` (thesis 4.5). Shapes (N, C, H, W)."""
    if not 0 <= tau <= 1:
        raise LabkitError(f"tau must be in [0, 1], got {tau}")
    return (1 - tau) * x + tau * others


def gaussian_noise(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """x + N(0, σ²) clipped to [0, 1]; `sigma` on the 0–255 pixel scale (thesis 4.4)."""
    if sigma < 0:
        raise LabkitError(f"sigma must be >= 0 (0–255 pixel scale), got {sigma}")
    noise = torch.randn(x.shape, generator=generator(seed)) * (sigma / 255.0)
    return (x + noise).clamp(0, 1)


def poison(x: torch.Tensor, y: torch.Tensor, *, trigger: Trigger, target: int, fraction: float, seed: int,
           perturb: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
           allowed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Label-consistent poisoning of a `fraction` of the target class.

    Chooses round(fraction · #target) images labelled `target` (optionally only among
    `allowed` indices), replaces each by `perturb(images, indices)` (None: unchanged, the
    baseline), stamps `trigger`, and keeps every label. `x` (N, C, H, W) in [0, 1], `y` (N,).
    Returns (x_poisoned copy, y unchanged copy, sorted poisoned indices).
    """
    idx = choose_target_images(y, target, fraction, seed, allowed)
    x_poisoned = x.clone()
    if len(idx):
        hard = x[idx] if perturb is None else perturb(x[idx], idx)
        x_poisoned[idx] = trigger.apply(hard.clamp(0, 1))
    return x_poisoned, y.clone(), idx
