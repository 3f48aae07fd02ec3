"""Metrics: clean accuracy, attack success rate (both thesis definitions), FRR/FAR, anomaly index.

The two attack-success definitions have one name each, in every experiment's results:
`attack_success_rate` is the "labelled" one (images labelled the target are left out) and
`attack_success_rate_classified` the "classified" one (images classified as the target before the
trigger are left out).

Pure functions on predictions are separated from the model-calling wrappers so that each
definition is tested on hand-made inputs.
"""
from __future__ import annotations

import torch

from labkit.errors import LabkitError
from labkit.train import accuracy, predict

EXCLUDE_CHOICES = ("labelled", "classified")
MAD_CONSISTENCY = 1.4826  # makes the MAD a consistent estimator of a normal distribution's std


def clean_accuracy(model, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy on unpoisoned test images (the thesis' natural accuracy)."""
    return accuracy(model, x, y)


def asr_from_predictions(y: torch.Tensor, pred_clean: torch.Tensor, pred_triggered: torch.Tensor,
                         target: int, exclude: str = "labelled") -> float:
    """Fraction of eligible test images classified as `target` once the trigger is applied.

    exclude="labelled" (the thesis' default) drops images *labelled* `target`;
    exclude="classified" (its DP-SGD chapter) drops images *classified* `target` before the trigger.
    """
    if exclude == "labelled":
        eligible = y != target
    elif exclude == "classified":
        eligible = pred_clean != target
    else:
        raise LabkitError(f"unknown ASR definition {exclude!r}; choose one of {', '.join(EXCLUDE_CHOICES)}")
    if not bool(eligible.any()):
        return float("nan")
    return float((pred_triggered[eligible] == target).float().mean())


def attack_success_rate(model, x: torch.Tensor, y: torch.Tensor, trigger, target: int,
                        exclude: str = "labelled") -> float:
    """`asr_from_predictions` for `model` on test images `x` stamped with `trigger`."""
    pred_clean = predict(model, x) if exclude == "classified" else None
    return asr_from_predictions(y, pred_clean, predict(model, trigger.apply(x)), target, exclude)


def attack_success_labelled(model, x: torch.Tensor, y: torch.Tensor, trigger, target: int) -> float:
    """The "labelled" attack success (result key `attack_success_rate` in every experiment): test images
    *labelled* `target` are left out."""
    return attack_success_rate(model, x, y, trigger, target, "labelled")


def attack_success_classified(model, x: torch.Tensor, y: torch.Tensor, trigger, target: int) -> float:
    """The "classified" attack success (result key `attack_success_rate_classified` everywhere): test
    images the model *classifies* as `target` before the trigger are left out (the thesis' DP chapter)."""
    return attack_success_rate(model, x, y, trigger, target, "classified")


def frr_far(benign_scores: torch.Tensor, trojan_scores: torch.Tensor, threshold: float) -> tuple[float, float]:
    """(false rejection rate, false acceptance rate) of the rule "flag when score < threshold".

    FRR: benign inputs flagged; FAR: trojaned inputs let through (STRIP's convention: low
    entropy is suspicious).
    """
    frr = float((benign_scores < threshold).float().mean())
    far = float((trojan_scores >= threshold).float().mean())
    return frr, far


def anomaly_index(values: torch.Tensor) -> torch.Tensor:
    """|v − median| / (1.4826 · median(|v − median|)) for each entry of a 1-D tensor."""
    values = torch.as_tensor(values, dtype=torch.float64)
    median = torch.quantile(values, 0.5)  # the middle two averaged for an even count, as numpy's median
    mad = MAD_CONSISTENCY * torch.quantile((values - median).abs(), 0.5)
    return (values - median).abs() / mad


def flag_small_outliers(values: torch.Tensor, threshold: float = 2.0) -> list[int]:
    """Indices whose value is below the median with anomaly index above `threshold` (Neural Cleanse)."""
    values = torch.as_tensor(values, dtype=torch.float64)
    index = anomaly_index(values)
    median = torch.quantile(values, 0.5)
    return [i for i in range(len(values)) if values[i] < median and index[i] > threshold]
