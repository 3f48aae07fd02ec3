"""The blind-backdoors "calculator": two digits side by side; the main task outputs their sum,
the backdoor task (pattern present) their product. One output head over the union of answers.

Images: each digit (C, H, W) is shrunk to (C, H/2, W/2) and the two are placed side by side,
vertically centred, on a black (C, H, W) canvas (0–1 pixel scale), so the bottom-right corner
stays free for the trigger. Labels are pair codes 10·a + b (a left digit, b right digit);
`sum_class` and `product_class` map codes to indices into `ANSWERS`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from labkit.errors import LabkitError
from labkit.seed import generator

ANSWERS: tuple[int, ...] = tuple(sorted({a + b for a in range(10) for b in range(10)}
                                        | {a * b for a in range(10) for b in range(10)}))
_INDEX = torch.full((82,), -1, dtype=torch.int64)
_INDEX[list(ANSWERS)] = torch.arange(len(ANSWERS))


@dataclass(frozen=True)
class PairData:
    """Pair images (N, C, H, W) in [0, 1] and pair codes (N,) = 10·left + right."""

    x_train: torch.Tensor
    codes_train: torch.Tensor
    x_test: torch.Tensor
    codes_test: torch.Tensor

    @property
    def num_classes(self) -> int:
        return len(ANSWERS)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])


def answer_class(values: torch.Tensor) -> torch.Tensor:
    """Class indices (into ANSWERS) of integer answers 0..81 that are sums or products of digits."""
    idx = _INDEX[values]
    if bool((idx < 0).any()):
        raise LabkitError("answer is neither a sum nor a product of two digits")
    return idx


def sum_class(codes: torch.Tensor) -> torch.Tensor:
    """(N,) class of left + right for pair codes (N,)."""
    return answer_class(codes // 10 + codes % 10)


def product_class(codes: torch.Tensor) -> torch.Tensor:
    """(N,) class of left · right for pair codes (N,)."""
    return answer_class((codes // 10) * (codes % 10))


def side_by_side(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Two digit batches (N, C, H, W) → one batch of pair images (N, C, H, W)."""
    n, c, h, w = left.shape
    if h % 2 or w % 2:
        raise LabkitError(f"the calculator needs even image sizes, got {h}x{w}")
    small = F.interpolate(torch.cat([left, right]), size=(h // 2, w // 2), mode="area")
    canvas = torch.zeros(n, c, h, w, dtype=left.dtype)
    top = h // 4
    canvas[:, :, top:top + h // 2, : w // 2] = small[:n]
    canvas[:, :, top:top + h // 2, w // 2:] = small[n:]
    return canvas


def make_pairs(x: torch.Tensor, y: torch.Tensor, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` random pairs of the digit images x (N, C, H, W) with labels y (N,): (images, codes)."""
    if y.min() < 0 or y.max() > 9:
        raise LabkitError("the calculator needs digit labels 0..9")
    gen = generator(seed)
    left = torch.randint(len(y), (count,), generator=gen)
    right = torch.randint(len(y), (count,), generator=gen)
    return side_by_side(x[left], x[right]), y[left] * 10 + y[right]


def load(ds, train_pairs: int, test_pairs: int, seed: int = 0) -> PairData:
    """Pairs drawn from a digit dataset's train and test splits (test digits never in training)."""
    x_train, c_train = make_pairs(ds.x_train, ds.y_train, train_pairs, seed)
    x_test, c_test = make_pairs(ds.x_test, ds.y_test, test_pairs, seed + 1)
    return PairData(x_train, c_train, x_test, c_test)
