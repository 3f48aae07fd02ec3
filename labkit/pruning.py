"""Channel pruning of a model's last convolutional layer: rank channels by their mean activation on clean
images, mask the most dormant ones to zero (`torch.nn.utils.prune`), fold the masks in.

Shared by Fine-Pruning (a defense: prune what clean data leaves dormant) and the pruning-aware attack (prune
first, train the backdoor into what stays active, then restore decoys). Images are (N, C, H, W) in [0, 1].
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn.utils import prune

from labkit.errors import LabkitError

PRUNED_PARAMS = ("weight", "bias")


def last_conv(model: nn.Module) -> nn.Conv2d:
    """The layer fine-pruning acts on (`model.conv2` for the SmallCNN)."""
    if not isinstance(getattr(model, "conv2", None), nn.Conv2d) or not hasattr(model, "conv_features"):
        raise LabkitError("fine-pruning needs a SmallCNN-like model with `conv2` and `conv_features(x)`")
    return model.conv2


@torch.no_grad()
def channel_activations(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """(C,) mean activation of each last-conv channel (after ReLU) over images and positions."""
    model.eval()
    device = next(model.parameters()).device
    total = None
    for xb in x.split(batch_size):
        sums = model.conv_features(xb.to(device)).sum(dim=(0, 2, 3)).double().cpu()
        total = sums if total is None else total + sums
    positions = len(x) * math.prod(model.conv_features(x[:1].to(device)).shape[2:])
    return (total / positions).float()


def pruning_order(activations: torch.Tensor) -> torch.Tensor:
    """Channel indices sorted by mean clean activation, most dormant first (stable on ties)."""
    return torch.argsort(torch.as_tensor(activations), stable=True)


def channels_to_prune(activations: torch.Tensor, percent: float) -> torch.Tensor:
    """The round(percent/100 · C) most dormant channels, sorted."""
    if not 0 <= percent <= 100:
        raise LabkitError(f"prune_percent must be in [0, 100] (a percent of channels), got {percent}")
    count = round(percent / 100 * len(activations))
    return pruning_order(activations)[:count].sort().values


def pruned_channels(model: nn.Module) -> torch.Tensor:
    """Sorted indices of the last-conv channels currently masked."""
    conv = last_conv(model)
    if not prune.is_pruned(conv):
        return torch.empty(0, dtype=torch.long)
    return torch.nonzero(conv.weight_mask.flatten(1).sum(1) == 0).flatten()


def prune_channels(model: nn.Module, channels) -> nn.Module:
    """Mask last-conv `channels` (weights, bias, and the following norm's affine terms if any) to zero.

    The masks stay in place while training (pruned entries stay exactly zero) and combine with
    any earlier masks. Modifies `model` in place and returns it. `make_permanent` removes them.
    """
    conv = last_conv(model)
    channels = torch.as_tensor(channels, dtype=torch.long).flatten()
    if len(channels) and (int(channels.min()) < 0 or int(channels.max()) >= conv.out_channels):
        raise LabkitError(f"channel indices must be in [0, {conv.out_channels - 1}]")
    layers = [conv]
    norm = getattr(model, "norm2", None)
    if norm is not None and getattr(norm, "weight", None) is not None:
        layers.append(norm)  # a norm's bias would otherwise switch the channel back on
    for layer in layers:
        for name in PRUNED_PARAMS:
            if getattr(layer, name, None) is None:
                continue
            mask = torch.ones_like(getattr(layer, name))
            mask[channels] = 0
            prune.custom_from_mask(layer, name, mask)
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold the pruning masks into plain parameters (a normal state dict again); in place."""
    for layer in model.modules():
        for name in PRUNED_PARAMS:
            if prune.is_pruned(layer) and hasattr(layer, f"{name}_mask"):
                prune.remove(layer, name)
    return model


def pruned_copy(model: nn.Module, activations: torch.Tensor, percent: float) -> nn.Module:
    """A deep copy of `model` with the `percent` most dormant channels masked."""
    return prune_channels(copy.deepcopy(model), channels_to_prune(activations, percent))
