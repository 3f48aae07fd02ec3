"""Seeding: one call seeds python, numpy and torch; explicit generators for sampling."""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def generator(seed: int) -> torch.Generator:
    """A CPU torch generator of its own, for sampling that must not disturb global state."""
    return torch.Generator().manual_seed(int(seed))


def rng(seed: int) -> np.random.Generator:
    """A numpy generator of its own."""
    return np.random.default_rng(int(seed))
