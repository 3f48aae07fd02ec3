"""Is Neural Cleanse's reversed trigger the real one? (Wang et al. §V-C, Tables III and V.)

Two views of the same question, each a small pure function:
- in pixel space, `mask_iou`: the reversed mask's `k` strongest pixels (k = the true trigger's pixel count)
  against the true trigger's pixels, as intersection over union (1 = the same pixels, 0 = disjoint);
- in the network, `backdoor_neurons` and `neuron_iou`: the second-to-last-layer neurons (`model.embed`) whose
  mean activation rises most when inputs are stamped, for the reversed trigger and for the original one, and
  the overlap of the two sets (the paper's Table V); `mean_activation` gives Table III's averages.

Masks are (H, W) in [0, 1]; images (N, C, H, W) on the 0–1 scale; a trigger is anything with `.apply(x)`.
"""
from __future__ import annotations

import copy
import math

import torch

from labkit import train
from labkit.defenses.nc_mitigation import embeddings, rank_neurons
from labkit.pruning import channel_activations, prune_channels
from labkit.errors import LabkitError


def top_pixels(mask: torch.Tensor, k: int) -> torch.Tensor:
    """(H, W) bool: the `k` largest entries of `mask` (ties broken by position)."""
    if not 1 <= k <= mask.numel():
        raise LabkitError(f"k must be between 1 and the mask's {mask.numel()} pixels, got {k}")
    flat = torch.zeros(mask.numel(), dtype=torch.bool)
    flat[torch.argsort(mask.flatten(), descending=True, stable=True)[:k]] = True
    return flat.view_as(mask)


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """|a ∩ b| / |a ∪ b| of two bool tensors of one shape (0 when both are empty)."""
    union = int((a | b).sum())
    return float((a & b).sum()) / union if union else 0.0


def mask_iou(reversed_mask: torch.Tensor, true_mask: torch.Tensor) -> float:
    """Pixel overlap of a reversed mask (H, W) with the true trigger's mask (H, W): the reversed mask's
    k strongest pixels, k = the true trigger's pixel count (mask > 0.5), against those pixels."""
    truth = true_mask > 0.5
    k = int(truth.sum())
    if k == 0:
        raise LabkitError("the true mask is empty: nothing to compare the reversed trigger with")
    return iou(top_pixels(reversed_mask, k), truth)


def backdoor_neurons(model, x_clean: torch.Tensor, trigger, fraction: float) -> torch.Tensor:
    """Indices of the top ceil(fraction · D) second-to-last-layer neurons by mean activation gain (stamped −
    clean) on `x_clean`: the paper's "backdoor neurons" of `trigger`."""
    if not 0 < fraction <= 1:
        raise LabkitError(f"fraction must be in (0, 1], got {fraction}")
    order, _ = rank_neurons(model, x_clean, trigger)
    return order[:max(1, math.ceil(fraction * len(order)))]


def neuron_iou(model, x_clean: torch.Tensor, reversed_trigger, original_trigger, fraction: float) -> float:
    """Table V: intersection over union of the backdoor neurons of the reversed and the original trigger."""
    d = embeddings(model, x_clean[:1]).shape[1]
    a, b = torch.zeros(d, dtype=torch.bool), torch.zeros(d, dtype=torch.bool)
    a[backdoor_neurons(model, x_clean, reversed_trigger, fraction)] = True
    b[backdoor_neurons(model, x_clean, original_trigger, fraction)] = True
    return iou(a, b)


def mean_activation(model, x: torch.Tensor, neurons: torch.Tensor) -> float:
    """Table III: the mean activation of `neurons` of the second-to-last layer over the images `x`."""
    return float(embeddings(model, x)[:, neurons].mean())


@torch.no_grad()
def prune_last_conv(model, x_clean_ref: torch.Tensor, reversed_trigger, x_test: torch.Tensor, y_test: torch.Tensor,
                    original_trigger, target: int, *, stop_asr: float = 0.05, max_fraction: float = 0.5) -> dict:
    """Neural Cleanse's pruning in the last convolutional layer (the paper's Fig. 22) instead of the
    second-to-last layer (`nc_mitigation.prune`): channels of `model.conv2` ranked by how much more they fire
    (mean over positions) on `x_clean_ref` stamped with the reversed trigger, masked one at a time. After each
    step: clean accuracy on (x_test, y_test) and the success of the reversed and the original trigger on test
    images not labelled `target`; stops after the first step where the reversed trigger's success is below
    `stop_asr`, or at `max_fraction` of the channels. Returns the same lists as `nc_mitigation.prune`."""
    gain = channel_activations(model, reversed_trigger.apply(x_clean_ref)) - channel_activations(model, x_clean_ref)
    order = torch.argsort(gain, descending=True, stable=True)
    others = y_test != target
    x_rev, x_orig = reversed_trigger.apply(x_test[others]), original_trigger.apply(x_test[others])
    out = {key: [] for key in ("pruned", "fraction", "clean_accuracy", "asr_reversed", "asr_original")}
    stopped_at = None
    for k in range(int(max_fraction * len(order)) + 1):
        pruned = prune_channels(copy.deepcopy(model), order[:k])
        out["pruned"].append(k)
        out["fraction"].append(k / len(order))
        out["clean_accuracy"].append(float((train.predict(pruned, x_test) == y_test).float().mean()))
        out["asr_reversed"].append(float((train.predict(pruned, x_rev) == target).float().mean()))
        out["asr_original"].append(float((train.predict(pruned, x_orig) == target).float().mean()))
        if out["asr_reversed"][-1] < stop_asr:
            stopped_at = k
            break
    return {**out, "order": order, "stopped_at": stopped_at}
