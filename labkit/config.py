"""Profiles: one switch that chooses every size in the lab.

`LABKIT_PROFILE` = `ci` (seconds; tests and CI) | `lab` (default; about a minute a
notebook on 2 CPU cores) | `paper` (full datasets, GPU when present). `CI=true` implies
`ci` unless `LABKIT_PROFILE` is set. A notebook's parameter cell may call `use_profile`.

Sizes shared by every notebook live in `Profile`; a paper's own sizes are chosen with
`pick(ci=..., lab=..., paper=...)` in that paper's module, so notebooks never hard-code sizes.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TypeVar

from labkit.errors import LabkitError

PROFILE_NAMES = ("ci", "lab", "paper")
T = TypeVar("T")


@dataclass(frozen=True)
class Profile:
    """Sizes for one profile. Counts are images; `epochs` are passes over the training set."""

    name: str
    train_size: int | None  # real datasets are subsampled to this many training images (None: all)
    test_size: int | None  # ... and this many test images
    epochs: int  # victim-model training epochs
    batch_size: int
    learning_rate: float  # Adam step size for the small CNN
    seeds: tuple[int, ...]  # seeds averaged over where a notebook shows spread
    poison_fractions: tuple[float, ...]  # sweep grid for BadNets-style poisoning (fraction of training set)
    amplitudes: tuple[int, ...]  # trigger amplitudes offered by widgets (0-255 pixel scale)
    trusted_size: int  # clean images the defender trusts (the thesis' simple detection scheme)
    use_gpu: bool  # use CUDA when it is present
    threads: int = 2  # torch CPU threads every experiment runs with (part of its cache key)


PROFILES: dict[str, Profile] = {
    "ci": Profile(
        name="ci", train_size=2000, test_size=500, epochs=8, batch_size=64, learning_rate=3e-3,
        seeds=(0,), poison_fractions=(0.0, 0.02, 0.1), amplitudes=(32, 255),
        trusted_size=150, use_gpu=False,
    ),
    "lab": Profile(
        name="lab", train_size=10000, test_size=2000, epochs=15, batch_size=64, learning_rate=3e-3,
        seeds=(0, 1), poison_fractions=(0.0, 0.005, 0.01, 0.02, 0.05, 0.1),
        amplitudes=(16, 32, 64, 128, 255), trusted_size=200, use_gpu=False,
    ),
    "paper": Profile(
        name="paper", train_size=None, test_size=None, epochs=30, batch_size=128, learning_rate=1e-3,
        seeds=(0, 1, 2), poison_fractions=(0.0, 0.001, 0.003, 0.01, 0.03, 0.1),
        amplitudes=(16, 32, 64, 128, 255), trusted_size=1024, use_gpu=True,
    ),
}


def profile_name() -> str:
    """The active profile's name, from `LABKIT_PROFILE`, else `ci` when `CI=true`, else `lab`."""
    name = os.environ.get("LABKIT_PROFILE", "").strip().lower()
    if not name:
        name = "ci" if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes") else "lab"
    if name not in PROFILES:
        raise LabkitError(f"unknown profile {name!r} in LABKIT_PROFILE; choose one of {', '.join(PROFILE_NAMES)}")
    return name


def profile() -> Profile:
    """The active profile's sizes."""
    return PROFILES[profile_name()]


def use_profile(name: str | None) -> Profile:
    """Switch this process to profile `name` (None keeps the environment's choice)."""
    if name is not None:
        if name not in PROFILES:
            raise LabkitError(f"unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)}")
        os.environ["LABKIT_PROFILE"] = name
    return profile()


@contextlib.contextmanager
def keep_profile():
    """Restore the environment's profile choice when the block ends (for code that switches profiles)."""
    previous = os.environ.get("LABKIT_PROFILE")
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("LABKIT_PROFILE", None)
        else:
            os.environ["LABKIT_PROFILE"] = previous


def pick(*, ci: T, lab: T, paper: T) -> T:
    """The value for the active profile: how a paper's module declares its own sizes."""
    return {"ci": ci, "lab": lab, "paper": paper}[profile_name()]


def threads() -> int:
    """Torch CPU threads an experiment computes with: `LABKIT_THREADS`, else the profile's (2).

    Fixed rather than "all cores", because CPU kernels split their sums by thread, so the same seed
    gives bit-wise different weights under another thread count; the count is part of the cache key."""
    text = os.environ.get("LABKIT_THREADS", "").strip()
    if not text:
        return profile().threads
    if not text.isdigit() or not 1 <= int(text) <= 1024:
        raise LabkitError(f"LABKIT_THREADS must be an int in [1, 1024], got {text!r}")
    return int(text)


@contextlib.contextmanager
def fixed_threads():
    """Run the block with `threads()` torch threads (yielded), restoring the previous count after."""
    import torch

    wanted, previous = threads(), torch.get_num_threads()
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(previous)


def device():
    """`torch.device('cuda')` when the profile allows a GPU and one is present, else CPU."""
    import torch

    return torch.device("cuda" if profile().use_gpu and torch.cuda.is_available() else "cpu")
