"""Models: a small CNN (digits / MNIST), the thesis' 3-group ResNet (CIFAR-10, section 7.1),
a linear model, the VGG-style surrogate (label-consistent attacks), the generative models behind
latent interpolation (the thesis' WGAN-GP `Generator` and `Critic`, and the VAE)
and Neural Cleanse's trigger as a learnable module (the blind backdoor's evasion). `norm="group"` swaps BatchNorm for GroupNorm (Opacus rejects BatchNorm).

Every model maps (N, C, H, W) images in [0, 1] to (N, num_classes) logits and exposes
`embed(x)`: the penultimate-layer activations (N, D) that defenses inspect.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from labkit.errors import LabkitError
from labkit.seed import generator
from labkit.triggers import to_unit

NORMS = ("none", "batch", "group")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """BatchNorm, GroupNorm (groups of up to 8 channels' worth, at most 8 groups) or identity."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "none":
        return nn.Identity()
    raise LabkitError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


class _MaxPool2x2ViaChannelsLast(torch.autograd.Function):
    """2x2 max pooling (stride 2) of an NCHW tensor, computed by the channels-last CPU kernel.

    PyTorch's NCHW max-pool kernel is slow on CPU: a lab CNN spends about a third of its MNIST training step
    in it. On a (64, 32, 28, 28) batch, forward and backward take 3.5 ms there and 1.4–1.9 ms through the
    channels-last kernel, both layout conversions included (2 threads). The
    two kernels pick the same index in every window (the first maximum in scan order), so this layer returns
    the same values and indices as `max_pool2d`, and its backward (the NCHW kernel, fed those indices) the
    same gradients, bit for bit (`tests/test_models.py`).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out, indices = torch.ops.aten.max_pool2d_with_indices(x.contiguous(memory_format=torch.channels_last),
                                                               [2, 2], [2, 2])
        indices = indices.contiguous()
        ctx.save_for_backward(x, indices)
        return out.contiguous()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        x, indices = ctx.saved_tensors
        return torch.ops.aten.max_pool2d_with_indices_backward(grad.contiguous(), x, [2, 2], [2, 2], [0, 0],
                                                               [1, 1], False, indices)


class MaxPool2x2(nn.Module):
    """`nn.MaxPool2d(2)`, the same numbers, faster on CPU: (N, C, H, W) → (N, C, H/2, W/2), H and W even.

    NCHW tensors on the CPU go through the channels-last kernel (`_MaxPool2x2ViaChannelsLast` when a gradient
    is wanted, the kernel alone when not); anything else (channels-last input, a GPU, odd sizes) through
    `max_pool2d` itself.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (x.device.type == "cpu" and x.dim() == 4 and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0
                and x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)):
            return nn.functional.max_pool2d(x, 2)
        if torch.is_grad_enabled() and x.requires_grad:
            return _MaxPool2x2ViaChannelsLast.apply(x)
        return nn.functional.max_pool2d(x.contiguous(memory_format=torch.channels_last), 2).contiguous()


class SmallCNN(nn.Module):
    """conv(w) → pool → conv(2w) → pool → fc(hidden) → fc(classes); 3x3 kernels, ReLU.

    `conv2` is the last convolutional layer (fine-pruning), `fc1` the penultimate layer.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 16,
                 width: int = 32, hidden: int = 128, norm: str = "none"):
        super().__init__()
        if image_size % 4:
            raise LabkitError(f"SmallCNN needs an image size divisible by 4, got {image_size}")
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.norm1 = norm_layer(norm, width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.norm2 = norm_layer(norm, 2 * width)
        self.pool = MaxPool2x2()
        self.fc1 = nn.Linear(2 * width * (image_size // 4) ** 2, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def conv_features(self, x: torch.Tensor) -> torch.Tensor:
        """Activations of the last conv layer after ReLU, before pooling: (N, 2w, H/2, W/2)."""
        x = self.pool(torch.relu(self.norm1(self.conv1(x))))
        return torch.relu(self.norm2(self.conv2(x)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc1(self.pool(self.conv_features(x)).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.embed(x))


class ResidualUnit(nn.Module):
    """Pre-activation residual unit (norm → ReLU → conv, twice), as in the thesis' ResNet."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str):
        super().__init__()
        self.norm1 = norm_layer(norm, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm2 = norm_layer(norm, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.shortcut = (nn.Identity() if stride == 1 and in_channels == out_channels
                         else nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(torch.relu(self.norm1(x)))
        out = self.conv2(torch.relu(self.norm2(out)))
        return out + self.shortcut(x)


class ResNet(nn.Module):
    """The thesis' ResNet (section 7.1): a 16-filter stem, then three groups of 16, 32 and 64
    filters with `units` residual units each (5 in the thesis), global average pooling, linear."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, widths=(16, 32, 64),
                 units: int = 5, norm: str = "batch"):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        layers, channels = [], 16
        for group, width in enumerate(widths):
            for unit in range(units):
                layers.append(ResidualUnit(channels, width, 2 if group > 0 and unit == 0 else 1, norm))
                channels = width
        self.groups = nn.Sequential(*layers)
        self.final_norm = norm_layer(norm, channels)
        self.fc = nn.Linear(channels, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.final_norm(self.groups(self.stem(x))))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(x))


class LinearModel(nn.Module):
    """Flatten → linear: (N, C, H, W) → (N, num_classes)."""

    def __init__(self, in_features: int, num_classes: int = 10):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(x))


ARCHITECTURES = ("small-cnn", "resnet", "linear")


def build(arch: str, image_shape: tuple[int, int, int], num_classes: int, norm: str = "none",
          seed: int | None = None) -> nn.Module:
    """A freshly initialised model for images of `image_shape` (C, H, W); `seed` fixes the init."""
    if seed is not None:
        torch.manual_seed(seed)
    channels, height, _ = image_shape
    if arch == "small-cnn":
        return SmallCNN(channels, num_classes, height, norm=norm)
    if arch == "resnet":
        return ResNet(channels, num_classes, norm="batch" if norm == "none" else norm)
    if arch == "linear":
        return LinearModel(channels * height * height, num_classes)
    raise LabkitError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def default_arch(dataset: str) -> str:
    """The small CNN for digit-like data, the thesis' ResNet for colour images."""
    return "resnet" if dataset in ("cifar10", "gtsrb") else "small-cnn"


def spec(model_arch: str, image_shape, num_classes: int, norm: str = "none") -> dict:
    """What `rebuild` needs, as plain JSON-able values (stored beside cached weights)."""
    return {"arch": model_arch, "image_shape": list(image_shape), "num_classes": int(num_classes), "norm": norm}


def rebuild(model_spec: dict, state: dict) -> nn.Module:
    """A model from `spec(...)` and a state dict (e.g. from a cached experiment result), in eval mode."""
    model = build(model_spec["arch"], tuple(model_spec["image_shape"]), model_spec["num_classes"], model_spec["norm"])
    model.load_state_dict(state)
    return model.eval()


def from_result(result: dict, state_key: str = "model_state") -> nn.Module:
    """The model a cached experiment result holds: `rebuild(result["model_spec"], result[state_key])`."""
    return rebuild(result["model_spec"], result[state_key])


class VGGStyle(nn.Module):
    """A small VGG-style network (conv-conv-pool twice, then two linear layers) used as the
    black-box surrogate: a different architecture from the victim's `SmallCNN` (thesis 4.6)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 16, width: int = 16):
        super().__init__()
        if image_size % 4:
            raise LabkitError(f"VGGStyle needs an image size divisible by 4, got {image_size}")
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1), nn.ReLU(), nn.Conv2d(w, w, 3, padding=1), nn.ReLU(),
            MaxPool2x2(),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(),
            MaxPool2x2())
        self.fc1 = nn.Linear(2 * w * (image_size // 4) ** 2, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc1(self.features(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.embed(x))


class VAE(nn.Module):
    """MLP VAE: image (C·H·W) → hidden → (μ, log σ²) in R^latent → hidden → sigmoid image."""

    def __init__(self, image_shape, latent: int = 16, hidden: int = 256):
        super().__init__()
        self.image_shape = tuple(image_shape)
        dim = math.prod(self.image_shape)
        self.latent = latent
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, dim))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x.flatten(1))
        return self.mu(h), self.logvar(h)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(len(z), *self.image_shape)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """G(z): (N, latent) → (N, C, H, W) in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z))


class TriggerModel(nn.Module):
    """Neural Cleanse's trigger: mask m = tanh(a)/2 + ½ (H, W), pattern p = tanh(b)/2 + ½ (C, H, W)."""

    def __init__(self, image_shape, seed: int = 0):
        super().__init__()
        c, h, w = image_shape
        gen = generator(seed)
        self.mask_logit = nn.Parameter(torch.full((h, w), -2.0))  # starts almost transparent
        self.pattern_logit = nn.Parameter(torch.randn(c, h, w, generator=gen) * 0.5)

    def mask(self) -> torch.Tensor:
        return to_unit(self.mask_logit, epsilon=0.0)

    def pattern(self) -> torch.Tensor:
        return to_unit(self.pattern_logit, epsilon=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.mask()
        return (1 - m) * x + m * self.pattern()


class Generator(nn.Module):
    """WGAN-GP generator, an MLP: z (N, latent) → hidden → hidden → sigmoid image (N, C, H, W) in [0, 1].

    Same `generate(z)` / `latent` interface as the `VAE`, so latent embedding and interpolation take either."""

    def __init__(self, image_shape, latent: int = 32, hidden: int = 256):
        super().__init__()
        self.image_shape = tuple(image_shape)
        dim = math.prod(self.image_shape)
        self.latent = latent
        self.net = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, dim))

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """G(z): (N, latent) → (N, C, H, W) in [0, 1]."""
        return torch.sigmoid(self.net(z)).view(len(z), *self.image_shape)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generate(z)


class Critic(nn.Module):
    """WGAN-GP critic, an MLP: image (N, C, H, W) in [0, 1] → hidden → hidden → (N,) unbounded scores.

    LeakyReLU(0.2) and no batch norm: the gradient penalty is taken per image, which batch statistics would mix."""

    def __init__(self, image_shape, hidden: int = 256):
        super().__init__()
        dim = math.prod(image_shape)
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)
