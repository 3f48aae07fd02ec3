"""Notebook 05 (Neural Cleanse): the MAD anomaly index, and every image under every label's trigger."""
from __future__ import annotations

import torch

from labkit import metrics, triggers
from labkit.exercises.core import Case, Exercise, Mistake

NOTEBOOK = "05_neural_cleanse"
MAD = 1.4826


# --- anomaly_index: |v − median| / (1.4826 · median |v − median|) ---

def _index_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(9)
    ten = 20 + 4 * torch.rand(10, generator=gen, dtype=torch.float64)
    ten[0] = 3.0  # one small outlier: the target label
    return [
        Case("10 labels' mask norms, one of them small (an even count)", (ten,)),
        Case("43 labels (GTSRB's count, odd)", (10 + torch.rand(43, generator=gen, dtype=torch.float64),)),
        Case("4 norms", (torch.tensor([1.0, 2.0, 3.0, 10.0], dtype=torch.float64),)),
        Case("5 norms with ties", (torch.tensor([2.0, 2.0, 3.0, 3.0, 9.0], dtype=torch.float64),)),
    ]


def _lower_median(v):
    return v.median()  # torch.median: the lower of the two middle values


def _with(v, centre, spread, scale=MAD):
    return (v - centre(v)).abs() / (scale * spread(v))


INDEX = Exercise(
    name="anomaly_index", notebook=NOTEBOOK,
    summary="each label's distance from the median in robust standard deviations (MAD × 1.4826)",
    reference=metrics.anomaly_index, reference_name="labkit.metrics.anomaly_index", cases=_index_cases,
    mistakes=(
        Mistake("scale the MAD by 1.4826: that makes it estimate a normal distribution's standard deviation, so "
                "'index > 2' means two standard deviations",
                lambda v: _with(v, lambda u: u.quantile(0.5), lambda u: (u - u.quantile(0.5)).abs().quantile(0.5), 1.0)),
        Mistake("for an even number of labels the median is the mean of the two middle values; torch.median returns "
                "the lower one — use torch.quantile(v, 0.5) (numpy's np.median)",
                lambda v: _with(v, _lower_median, lambda u: (u - _lower_median(u)).abs().median())),
        Mistake("use the median, not the mean: one outlier drags the mean (and the standard deviation) towards itself",
                lambda v: (v - v.mean()).abs() / (MAD * (v - v.mean()).abs().quantile(0.5))),
        Mistake("the spread is the median of the absolute deviations |v − median|, not the standard deviation",
                lambda v: (v - v.quantile(0.5)).abs() / v.std()),
        Mistake("take the absolute value |v − median|: the index is a distance, the same on both sides",
                lambda v: (v - v.quantile(0.5)) / (MAD * (v - v.quantile(0.5)).abs().quantile(0.5))),
    ),
)


# --- stamp_all: x' = (1 − m)⊙x + m⊙p for every label's trigger at once ---

def _stamp_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(10)
    return [
        Case("4 images (4, 1, 16, 16) under 10 labels' masks (10, 16, 16) and patterns (10, 1, 16, 16)",
             (torch.rand(4, 1, 16, 16, generator=gen), torch.rand(10, 16, 16, generator=gen),
              torch.rand(10, 1, 16, 16, generator=gen))),
        Case("3 colour images (3, 3, 8, 8), 2 labels", (torch.rand(3, 3, 8, 8, generator=gen),
                                                         torch.rand(2, 8, 8, generator=gen),
                                                         torch.rand(2, 3, 8, 8, generator=gen))),
        Case("binary masks: all zeros (image kept) and all ones (pattern pasted)",
             (torch.rand(2, 1, 6, 6, generator=gen), torch.stack([torch.zeros(6, 6), torch.ones(6, 6)]),
              torch.rand(2, 1, 6, 6, generator=gen))),
    ]


STAMP_ALL = Exercise(
    name="stamp_all", notebook=NOTEBOOK, pixels=True,
    summary="every image under every label's candidate trigger: (L, B, C, H, W) from x (B, ...), masks (L, H, W)",
    reference=triggers.stamp, reference_name="labkit.triggers.stamp", cases=_stamp_cases,
    mistakes=(
        Mistake("the mask says how much of the *pattern* replaces the image: (1 − m)⊙x + m⊙p, not m⊙x + (1 − m)⊙p",
                lambda x, m, p: m[:, None, None] * x[None] + (1 - m[:, None, None]) * p[:, None]),
        Mistake("blend, don't add: (1 − m)⊙x + m⊙p keeps each pixel in [0, 1]",
                lambda x, m, p: x[None] + m[:, None, None] * p[:, None]),
    ),
)

EXERCISES = (INDEX, STAMP_ALL)
