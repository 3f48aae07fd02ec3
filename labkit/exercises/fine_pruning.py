"""Notebook 06 (Fine-Pruning and STRIP): which channels pruning removes, and STRIP's entropy score."""
from __future__ import annotations

import numpy as np
import torch

from labkit import pruning
from labkit.defenses import strip
from labkit.exercises.core import Case, Exercise, Mistake, as_array

NOTEBOOK = "06_fine_pruning_and_strip"


# --- dormant_channels: the round(percent/100 · C) channels with the lowest mean clean activation ---

def _dormant_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(11)
    acts = torch.rand(64, generator=gen)
    ties = torch.tensor([0.0, 0.0, 0.0, 0.5, 0.5, 1.0, 2.0, 3.0])
    return [
        Case("64 channels' mean activations, prune 50%", (acts, 50.0)),
        Case("64 channels, prune 15% (9.6 channels: round to 10)", (acts, 15.0)),
        Case("8 channels, three of them dead (activation 0), prune 25%", (ties, 25.0)),
        Case("prune 0%", (acts, 0.0)),
        Case("prune 100%", (acts[:8], 100.0)),
    ]


def _dormant_accept(got, expected, case) -> bool:
    """Right when the count is right and no pruned channel is more active than a kept one (ties: any pick)."""
    acts, percent = case.args
    chosen = as_array(got)
    if chosen is None or chosen.ndim != 1 or len(chosen) != len(expected):
        return False
    picked = chosen.astype(int)
    if len(set(picked.tolist())) != len(picked) or (len(picked) and (picked.min() < 0 or picked.max() >= len(acts))):
        return False
    kept = np.setdiff1d(np.arange(len(acts)), picked)
    a = acts.numpy()
    return not len(picked) or not len(kept) or a[picked].max() <= a[kept].min()


DORMANT = Exercise(
    name="dormant_channels", notebook=NOTEBOOK,
    summary="the channels fine-pruning removes: the round(percent/100 · C) least active on clean data",
    reference=pruning.channels_to_prune, reference_name="labkit.pruning.channels_to_prune", cases=_dormant_cases,
    accept=_dormant_accept, canonical=lambda out: np.sort(as_array(out).reshape(-1)),
    mistakes=(
        Mistake("prune the most *dormant* channels, those with the LOWEST mean activation on clean data: the "
                "backdoor hides where clean inputs do not look",
                lambda a, p: torch.argsort(a, descending=True)[:round(p / 100 * len(a))].sort().values),
        Mistake("percent is on the 0–100 scale: prune round(percent / 100 · C) channels",
                lambda a, p: torch.argsort(a)[:min(len(a), round(p * len(a)))].sort().values),
        Mistake("round to the nearest count (round(9.6) = 10), do not truncate",
                lambda a, p: torch.argsort(a)[:int(p / 100 * len(a))].sort().values),
        Mistake("return the channels' indices, not their activations",
                lambda a, p: torch.sort(a).values[:round(p / 100 * len(a))]),
    ),
)


# --- strip_entropy: mean over an input's n blended copies of the prediction's entropy in bits ---

def _entropy_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(12)
    probs = torch.softmax(2 * torch.randn(5, 7, 10, generator=gen, dtype=torch.float64), dim=-1)
    certain = torch.zeros(2, 3, 10, dtype=torch.float64)
    certain[..., 0] = 1.0  # a trojaned input: every copy predicts the target
    return [
        Case("5 inputs × 7 copies × 10 classes, random softmax outputs", (probs,)),
        Case("one-hot predictions (every copy sure of one class: entropy 0, with 0·log 0 = 0)", (certain,)),
        Case("uniform predictions over 10 classes (entropy log2 10 ≈ 3.32 bits)",
             (torch.full((2, 4, 10), 0.1, dtype=torch.float64),)),
        Case("one input, one copy", (probs[:1, :1],)),
    ]


def _entropy(p, log=torch.log2):
    return -(p * log(p.clamp_min(1e-300))).sum(-1)


ENTROPY = Exercise(
    name="strip_entropy", notebook=NOTEBOOK,
    summary="STRIP's score: Shannon entropy (bits) over classes of each copy's prediction, averaged over copies",
    reference=strip.mean_entropy, reference_name="labkit.defenses.strip.mean_entropy", cases=_entropy_cases,
    mistakes=(
        Mistake("STRIP's entropy is in bits: use log2 (the natural log is off by a factor ln 2 ≈ 0.69)",
                lambda p: _entropy(p, torch.log).mean(1)),
        Mistake("average the entropies of the n copies, not the entropy of their averaged prediction (blended "
                "copies of a clean input disagree: each is uncertain on its own)", lambda p: _entropy(p.mean(1))),
        Mistake("entropy is −Σ p·log2 p: the minus sign makes it ≥ 0", lambda p: -_entropy(p).mean(1)),
        Mistake("sum over the classes (the last axis) and average over the copies (axis 1), not the other way round",
                lambda p: -(p * torch.log2(p.clamp_min(1e-300))).mean(-1).sum(1)),
        Mistake("average over the copies: the score is a mean, so it does not grow with n",
                lambda p: _entropy(p).sum(1)),
    ),
)

EXERCISES = (DORMANT, ENTROPY)
