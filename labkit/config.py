"""Profiles: one switch that chooses every size in the lab.

`LABKIT_PROFILE` = `ci` (seconds; tests and CI) | `lab` (default; about a minute a
notebook on 2 CPU cores) | `paper` (full datasets, GPU when present). `CI=true` implies
`ci` unless `LABKIT_PROFILE` is set. A notebook's parameter cell may call `use_profile`.

Sizes shared by every notebook live in `Profile`; a paper's own sizes are declared once, in
that paper's experiment module, as `SIZES = Sizes(ci={...}, lab={...}, paper={...})` (the same
keys in each), so notebooks never hard-code sizes.

The environment is read in one place, `profile_name()`: an experiment receives its profile in its
config (`cfg.profile`) and everything it calls is handed sizes, device and threads from there; inside
`experiments.run` a stray `profile()` call raises (`reading_forbidden`), so a result can never depend
on the environment instead of its config.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from labkit.errors import LabkitError

PROFILE_NAMES = ("ci", "lab", "paper")


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
    max_steps: int | None = None  # cap on a victim's optimiser steps (None: `epochs` full passes always)

    def epochs_for(self, train_images: int, epochs: int | None = None) -> int:
        """The default number of passes over `train_images` for a victim: `epochs` (None: the profile's), but
        no more than `max_steps` mini-batch steps need (a knob that sets epochs explicitly is not capped).
        The profile's epochs are sized for the bundled digits (≈ 1,350 training images, 22 steps an epoch);
        on 10,000 MNIST images 15 epochs would be 2,350 steps at ≈ 5 s an epoch on 2 cores. `lab` caps the
        default at 600 steps (4 epochs of 10,000 images): about twice the steps a digits victim takes."""
        wanted = epochs or self.epochs
        if self.max_steps is None:
            return wanted
        steps_per_epoch = -(-train_images // self.batch_size)
        return max(1, min(wanted, -(-self.max_steps // steps_per_epoch)))


PROFILES: dict[str, Profile] = {
    "ci": Profile(
        name="ci", train_size=2000, test_size=500, epochs=8, batch_size=64, learning_rate=3e-3,
        seeds=(0,), poison_fractions=(0.0, 0.02, 0.1), amplitudes=(32, 255),
        trusted_size=150, use_gpu=False,
    ),
    "lab": Profile(
        name="lab", train_size=10000, test_size=2000, epochs=15, batch_size=64, learning_rate=3e-3,
        seeds=(0, 1), poison_fractions=(0.0, 0.005, 0.01, 0.02, 0.05, 0.1),
        amplitudes=(16, 32, 64, 128, 255), trusted_size=200, use_gpu=False, max_steps=600,
    ),
    "paper": Profile(
        name="paper", train_size=None, test_size=None, epochs=30, batch_size=128, learning_rate=1e-3,
        seeds=(0, 1, 2), poison_fractions=(0.0, 0.001, 0.003, 0.01, 0.03, 0.1),
        amplitudes=(16, 32, 64, 128, 255), trusted_size=1024, use_gpu=True,
    ),
}


# Set while an experiment computes: the profile must come from its config, not the environment.
_FORBIDDEN = contextvars.ContextVar("labkit_profile_reading_forbidden", default=None)


@contextlib.contextmanager
def reading_forbidden(experiment: str):
    """Within the block, `profile_name()` raises: `experiment` must use the profile in its config."""
    token = _FORBIDDEN.set(experiment)
    try:
        yield
    finally:
        _FORBIDDEN.reset(token)


def profile_name() -> str:
    """The active profile's name, from `LABKIT_PROFILE`, else `ci` when `CI=true`, else `lab`."""
    inside = _FORBIDDEN.get()
    if inside is not None:
        raise LabkitError(f"experiment {inside!r} read the profile from the environment; "
                          f"use cfg.profile (labkit bug: pass sizes, device and threads down explicitly)")
    name = os.environ.get("LABKIT_PROFILE", "").strip().lower()
    if not name:
        name = "ci" if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes") else "lab"
    if name not in PROFILES:
        raise LabkitError(f"unknown profile {name!r} in LABKIT_PROFILE; choose one of {', '.join(PROFILE_NAMES)}")
    return name


def profile(name: "str | Profile | None" = None) -> Profile:
    """The sizes of profile `name` (a Profile is returned as is); None: the active profile's."""
    if isinstance(name, Profile):
        return name
    if name is None:
        return PROFILES[profile_name()]
    if name not in PROFILES:
        raise LabkitError(f"unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)}")
    return PROFILES[name]


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


class Sizes:
    """A paper's own sizes, one mapping per profile, declared once in its experiment module:

        SIZES = Sizes(ci=dict(epochs=6), lab=dict(epochs=30), paper=dict(epochs=60))
        SIZES.of(cfg.profile)["epochs"]

    Every profile must name the same keys (a size missing from one profile is a bug caught at import)."""

    def __init__(self, *, ci: Mapping[str, Any], lab: Mapping[str, Any], paper: Mapping[str, Any]):
        tables = {"ci": ci, "lab": lab, "paper": paper}
        keys = set(ci)
        for name, table in tables.items():
            if set(table) != keys:
                odd = sorted(set(table) ^ keys)[0]
                raise LabkitError(f"Sizes: profile {name!r} and 'ci' differ in key {odd!r}")
        self._tables = {name: MappingProxyType(dict(table)) for name, table in tables.items()}

    def keys(self) -> list[str]:
        return list(self._tables["ci"])

    def of(self, which: "str | Profile | None" = None) -> Mapping[str, Any]:
        """The read-only sizes of profile `which` (a name or a Profile; None: the active profile)."""
        return self._tables[profile(which).name]


def threads(which: "str | Profile | None" = None) -> int:
    """Torch CPU threads an experiment computes with: `LABKIT_THREADS`, else the profile's (2).

    Fixed rather than "all cores", because CPU kernels split their sums by thread, so the same seed
    gives bit-wise different weights under another thread count; the count is part of the cache key."""
    text = os.environ.get("LABKIT_THREADS", "").strip()
    if not text:
        return profile(which).threads
    if not text.isdigit() or not 1 <= int(text) <= 1024:
        raise LabkitError(f"LABKIT_THREADS must be an int in [1, 1024], got {text!r}")
    return int(text)


@contextlib.contextmanager
def fixed_threads(which: "str | Profile | None" = None):
    """Run the block with `threads(which)` torch threads (yielded), restoring the previous count after."""
    import torch

    wanted, previous = threads(which), torch.get_num_threads()
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(previous)


def device(which: "str | Profile | None" = None):
    """`torch.device('cuda')` when profile `which` (None: the active one) allows a GPU and one is present,
    else CPU."""
    import torch

    return torch.device("cuda" if profile(which).use_gpu and torch.cuda.is_available() else "cpu")
