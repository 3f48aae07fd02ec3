"""Fine-Pruning (Liu, Dolan-Gavitt & Garg 2018): prune the last conv layer's dormant channels, then fine-tune.

Backdoors tend to live in channels that stay quiet on clean inputs. The defender ranks the
channels of the last convolutional layer (`SmallCNN.conv2`) by their mean activation on clean
validation images (ascending), prunes the lowest k% (their weights and bias masked to zero,
and kept at zero while training, with `torch.nn.utils.prune`), and fine-tunes on the clean
images at a small learning rate to recover accuracy. Images are (N, C, H, W) in [0, 1].

The student report (Table 3) prunes differently: every conv layer's *weights* below the threshold
min + (max − min)·5%, then fine-tunes, round after round (`weight_prune_loop`); its "pruned channels percent"
column is five times the round number.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import prune

from labkit import train as training
from labkit.errors import LabkitError
from labkit.pruning import (  # noqa: F401 — the channel-pruning primitives, re-exported for notebooks
    channel_activations,
    channels_to_prune,
    last_conv,
    make_permanent,
    prune_channels,
    pruned_channels,
    pruned_copy,
    pruning_order,
)

def fine_tune(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float,
              batch_size: int = 32, seed: int = 0, device: torch.device | None = None,
              progress: bool = False) -> list[dict]:
    """Fine-tune `model` in place on clean (x, y) with Adam at `lr`; masks stay. Returns the history."""
    if epochs == 0:
        return []
    history = training.train(model, x, y, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
                             progress=progress, desc="fine-tune")
    model.cpu()
    return history


def fine_prune(model: nn.Module, x_clean: torch.Tensor, y_clean: torch.Tensor, percent: float, *,
               epochs: int, lr: float, batch_size: int = 32, seed: int = 0,
               device: torch.device | None = None) -> tuple[nn.Module, torch.Tensor]:
    """Prune the `percent` most dormant channels (ranked on `x_clean`), fine-tune on (x_clean, y_clean).

    Returns (a new fine-pruned model with permanent zeros, the pruned channel indices).
    """
    activations = channel_activations(model, x_clean)
    pruned = pruned_copy(model, activations, percent)
    fine_tune(pruned, x_clean, y_clean, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, device=device)
    channels = pruned_channels(pruned)
    return make_permanent(pruned), channels


def prune_progressively(model: nn.Module, activations: torch.Tensor, percents, evaluate) -> list[dict]:
    """Prune cumulatively without fine-tuning: for each percent, `evaluate(model) -> dict` plus `percent`."""
    rows = []
    for percent in percents:
        rows.append({"percent": float(percent), **evaluate(pruned_copy(model, activations, percent))})
    return rows


def fine_prune_loop(model: nn.Module, x_clean: torch.Tensor, y_clean: torch.Tensor, x_val: torch.Tensor,
                    y_val: torch.Tensor, *, step_percent: float = 5.0, max_drop: float = 0.01, epochs: int,
                    lr: float, batch_size: int = 32, seed: int = 0, evaluate=None,
                    device: torch.device | None = None) -> tuple[nn.Module, list[dict]]:
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
        fine_tune(current, x_clean, y_clean, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed + len(rows),
                  device=device)
        val = training.accuracy(current, x_val, y_val)
        ok = val >= baseline - max_drop
        rows.append({"percent": 100.0 * len(pruned_channels(current)) / channels, "val_accuracy": val,
                     "accepted": ok, **(evaluate(current) if evaluate else {})})
        if not ok:
            break
        accepted = copy.deepcopy(current)
    return make_permanent(accepted), rows


# ---------------------------------------------------------------- the report's procedure: weight thresholds

def conv_layers(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def weight_threshold(weights: torch.Tensor, fraction: float, alive: torch.Tensor | None = None) -> float:
    """The report's threshold min + (max − min) · fraction over a layer's (signed) weights, counting only the
    `alive` ones (bool, same shape; None: all)."""
    if not 0 <= fraction <= 1:
        raise LabkitError(f"fraction must be in [0, 1], got {fraction}")
    values = weights.detach().flatten() if alive is None else weights.detach()[alive]
    if values.numel() == 0:
        raise LabkitError("every weight of this layer is pruned already")
    low, high = float(values.min()), float(values.max())
    return low + (high - low) * fraction


def prune_weights_below(model: nn.Module, fraction: float) -> None:
    """One round of the report's pruning, in place: in every conv layer, mask (`torch.nn.utils.prune`) each
    still-alive weight ≤ min + (max − min)·fraction of the alive weights; pruned weights stay zero in training."""
    for conv in conv_layers(model):
        mask = getattr(conv, "weight_mask", torch.ones_like(conv.weight))
        alive = mask.bool()
        threshold = weight_threshold(conv.weight, fraction, alive)
        prune.custom_from_mask(conv, "weight", alive & (conv.weight.detach() > threshold))


def pruned_weight_fraction(model: nn.Module) -> float:
    """Share of all conv weights that are masked to zero."""
    masks = [getattr(c, "weight_mask", torch.ones_like(c.weight)) for c in conv_layers(model)]
    return float(sum((m == 0).sum() for m in masks)) / sum(m.numel() for m in masks)


def weight_prune_loop(model: nn.Module, x_clean: torch.Tensor, y_clean: torch.Tensor, x_val: torch.Tensor,
                      y_val: torch.Tensor, *, step: float = 0.05, max_drop: float = 0.01, max_rounds: int = 20,
                      epochs: int, lr: float, batch_size: int = 32, seed: int = 0, evaluate=None,
                      device: torch.device | None = None) -> tuple[nn.Module, list[dict]]:
    """The report's fine-pruning (§3): each round prunes every conv layer's weights ≤ min + (max − min)·`step`
    (`prune_weights_below`), then fine-tunes on the clean images; it stops at the first round whose validation
    accuracy falls more than `max_drop` (0.01 = 1 point) below the unpruned model's, or after `max_rounds`.

    Returns (the last model within the budget, masks made permanent; one row per round with `round`,
    `weights_pruned` (share of conv weights at zero), `val_accuracy`, `accepted`, and `evaluate(model)`)."""
    if not 0 < step <= 1:
        raise LabkitError(f"step must be in (0, 1], got {step}")
    baseline = training.accuracy(model, x_val, y_val)
    current = copy.deepcopy(model)
    accepted = copy.deepcopy(current)
    rows = [{"round": 0, "weights_pruned": 0.0, "val_accuracy": baseline, "accepted": True,
             **(evaluate(current) if evaluate else {})}]
    for round_ in range(1, max_rounds + 1):
        prune_weights_below(current, step)
        fine_tune(current, x_clean, y_clean, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed + round_,
                  device=device)
        val = training.accuracy(current, x_val, y_val)
        ok = val >= baseline - max_drop
        rows.append({"round": round_, "weights_pruned": pruned_weight_fraction(current), "val_accuracy": val,
                     "accepted": ok, **(evaluate(current) if evaluate else {})})
        if not ok:
            break
        accepted = copy.deepcopy(current)
    return make_permanent(accepted), rows
