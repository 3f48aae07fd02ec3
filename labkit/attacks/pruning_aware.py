"""The pruning-aware attack (Liu et al. 2018, section 4): hide the backdoor from pruning with decoys.

1. start from a model trained on clean data; 2. prune its last-conv channels that are dormant on
clean data; 3. train the pruned model on the poisoned training set, so the backdoor is written
into the channels that stay *active* on clean inputs; 4. restore the pruned channels with
their original weights and biases. The restored channels are decoys: still dormant on clean
data, they are what a defender's pruning removes first, leaving the backdoor untouched.
Images are (N, C, H, W) in [0, 1].
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from labkit import pruning
from labkit import train as training


def restore_channels(model: nn.Module, original: nn.Module, channels: torch.Tensor) -> nn.Module:
    """Step 4 (de-pruning): drop the masks and put `original`'s last-conv weights and biases back
    into `channels`. In place; returns `model`."""
    pruning.make_permanent(model)
    channels = torch.as_tensor(channels, dtype=torch.long)
    with torch.no_grad():
        for name in ("conv2", "norm2"):
            layer, source = getattr(model, name, None), getattr(original, name, None)
            for param in ("weight", "bias"):
                value = getattr(layer, param, None) if layer is not None else None
                if isinstance(value, torch.Tensor):
                    value[channels] = getattr(source, param)[channels].to(value.device)
    return model


def pruning_aware_backdoor(clean_model: nn.Module, x_reference: torch.Tensor, x_poisoned: torch.Tensor,
                           y_poisoned: torch.Tensor, prune_percent: float, *, epochs: int, lr: float,
                           batch_size: int = 64, seed: int = 0, device: torch.device | None = None,
                           progress: bool = False) -> tuple[nn.Module, torch.Tensor, list[dict]]:
    """Steps 2–4 on a copy of `clean_model` (step 1 is the caller's clean training).

    `x_reference`: clean images the attacker ranks channels on; (`x_poisoned`, `y_poisoned`): the
    poisoned training set. Returns (backdoored model with decoys restored, decoy channel indices,
    training history of step 3).
    """
    activations = pruning.channel_activations(clean_model, x_reference)
    decoys = pruning.channels_to_prune(activations, prune_percent)
    model = pruning.prune_channels(copy.deepcopy(clean_model), decoys)
    history = training.train(model, x_poisoned, y_poisoned, epochs=epochs, batch_size=batch_size, lr=lr,
                             seed=seed, device=device, progress=progress, desc="pruning-aware attack")
    model.cpu()
    restore_channels(model, clean_model, decoys)
    return model.eval(), decoys, history
