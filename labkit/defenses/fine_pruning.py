"""Fine-Pruning (Liu, Dolan-Gavitt & Garg 2018): prune the last conv layer's dormant channels, then fine-tune.

Backdoors tend to live in channels that stay quiet on clean inputs. The defender ranks the
channels of the last convolutional layer (`SmallCNN.conv2`) by their mean activation on clean
validation images (ascending), prunes the lowest k% (their weights and bias masked to zero,
and kept at zero while training, with `torch.nn.utils.prune`), and fine-tunes on the clean
images at a small learning rate to recover accuracy. Images are (N, C, H, W) in [0, 1].
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn.utils import prune

from labkit import train as training
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


def fine_tune(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float,
              batch_size: int = 32, seed: int = 0, progress: bool = False) -> list[dict]:
    """Fine-tune `model` in place on clean (x, y) with Adam at `lr`; masks stay. Returns the history."""
    if epochs == 0:
        return []
    return training.train(model, x, y, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                          progress=progress, desc="fine-tune")


def fine_prune(model: nn.Module, x_clean: torch.Tensor, y_clean: torch.Tensor, percent: float, *,
               epochs: int, lr: float, batch_size: int = 32, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """Prune the `percent` most dormant channels (ranked on `x_clean`), fine-tune on (x_clean, y_clean).

    Returns (a new fine-pruned model with permanent zeros, the pruned channel indices).
    """
    activations = channel_activations(model, x_clean)
    pruned = pruned_copy(model, activations, percent)
    fine_tune(pruned, x_clean, y_clean, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    channels = pruned_channels(pruned)
    return make_permanent(pruned), channels


def pruning_curve(model: nn.Module, activations: torch.Tensor, percents, evaluate) -> list[dict]:
    """Prune cumulatively without fine-tuning: for each percent, `evaluate(model) -> dict` plus `percent`."""
    rows = []
    for percent in percents:
        rows.append({"percent": float(percent), **evaluate(pruned_copy(model, activations, percent))})
    return rows


def fine_prune_loop(model: nn.Module, x_clean: torch.Tensor, y_clean: torch.Tensor, x_val: torch.Tensor,
                    y_val: torch.Tensor, *, step_percent: float = 5.0, max_drop: float = 0.01, epochs: int,
                    lr: float, batch_size: int = 32, seed: int = 0, evaluate=None) -> tuple[nn.Module, list[dict]]:
    """The report's loop: prune `step_percent` more channels, fine-tune, repeat while validation accuracy
    stays within `max_drop` (a fraction, 0.01 = 1 point) of the unpruned model's.

    Each round re-ranks the still-active channels on the current (fine-tuned) model. Returns (the last
    model that stayed within the budget, masks made permanent; one row per round with `percent`,
    `val_accuracy`, `accepted` and whatever `evaluate(model)` returns).
    """
    if not 0 < step_percent <= 100:
        raise LabkitError(f"step_percent must be in (0, 100], got {step_percent}")
    channels = last_conv(model).out_channels
    step = max(1, round(step_percent / 100 * channels))
    baseline = training.accuracy(model, x_val, y_val)
    current = copy.deepcopy(model)
    accepted = copy.deepcopy(current)
    rows = [{"percent": 0.0, "val_accuracy": baseline, "accepted": True, **(evaluate(current) if evaluate else {})}]
    while len(pruned_channels(current)) + step <= channels - 1:  # always keep one channel
        active = torch.ones(channels, dtype=torch.bool)
        active[pruned_channels(current)] = False
        scores = channel_activations(current, x_clean).masked_fill(~active, float("inf"))
        prune_channels(current, pruning_order(scores)[:step])
        fine_tune(current, x_clean, y_clean, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed + len(rows))
        val = training.accuracy(current, x_val, y_val)
        ok = val >= baseline - max_drop
        rows.append({"percent": 100.0 * len(pruned_channels(current)) / channels, "val_accuracy": val,
                     "accepted": ok, **(evaluate(current) if evaluate else {})})
        if not ok:
            break
        accepted = copy.deepcopy(current)
    return make_permanent(accepted), rows
