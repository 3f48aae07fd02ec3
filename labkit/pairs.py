"""Binary datasets for the convex setting (Steinhardt, Koh & Liang): labels −1 / +1, float64 numpy.

`digits-1-7`  scikit-learn digits at the raw 8x8 (64-D), ones (−1) vs sevens (+1); offline.
`mnist-1-7`   MNIST 28x28 (784-D), ones vs sevens — the paper's dataset; needs `labkit data download mnist`
              (sizes follow the profile: all 13,007 training images in `paper`).
`toy-2d`      two Gaussians in the plane, for pictures.

Pixels are on the 0–1 scale. Every pair also carries its *domain ball* (centre, radius): a ball that holds
every valid input (for images the ball around the grey image 0.5 through the corners of [0, 1]^D). It is
what an attacker is held to when there is no defense (the "none" feasible set), and what bounds the slab.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from labkit import config, data
from labkit.errors import LabkitError
from labkit.seed import rng

PAIRS = ("digits-1-7", "mnist-1-7", "toy-2d")
NEGATIVE, POSITIVE = 1, 7  # digit classes mapped to −1 and +1


@dataclass(frozen=True)
class Pair:
    """x_* (N, D) float64, y_* (N,) float64 in {−1, +1}; the domain ball; the default norm budget ρ."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    domain_centre: np.ndarray  # (D,)
    domain_radius: float
    rho: float  # default ρ in ‖θ‖₂² ≤ ρ for θ = (w, b)

    @property
    def dim(self) -> int:
        return self.x_train.shape[1]

    @property
    def n(self) -> int:
        return self.x_train.shape[0]


def _image_domain(dim: int) -> tuple[np.ndarray, float]:
    """The smallest ball holding [0, 1]^dim: centre 0.5, radius √dim / 2."""
    return np.full(dim, 0.5), math.sqrt(dim) / 2


def _from_dataset(name: str, ds: data.Dataset, rho: float) -> Pair:
    x_train, y_train, x_test, y_test = data.binary_pair(ds, NEGATIVE, POSITIVE)
    centre, radius = _image_domain(x_train.shape[1])
    return Pair(name, x_train, y_train, x_test, y_test, centre, radius, rho)


TOY_PER_CLASS = config.Sizes(ci=dict(n=100), lab=dict(n=200), paper=dict(n=500))


def toy_2d(n_per_class: int | None = None, seed: int = 0, profile: "str | config.Profile | None" = None) -> Pair:
    """Two unit-variance Gaussians at (−1.5, −0.5) (label −1) and (1.5, 0.5) (label +1); 25% held out for
    test. `n_per_class` defaults to the profile's (None: the active profile)."""
    n_per_class = n_per_class or TOY_PER_CLASS.of(profile)["n"]
    gen = rng(seed)
    means = {-1.0: np.array([-1.5, -0.5]), 1.0: np.array([1.5, 0.5])}
    x = np.concatenate([gen.normal(means[label], 1.0, size=(n_per_class, 2)) for label in (-1.0, 1.0)])
    y = np.repeat([-1.0, 1.0], n_per_class)
    order = gen.permutation(len(y))
    x, y = x[order], y[order]
    cut = int(round(0.75 * len(y)))
    return Pair("toy-2d", x[:cut], y[:cut], x[cut:], y[cut:], np.zeros(2), 8.0, rho=4.0)


def synthetic(n: int = 13000, dim: int = 784, seed: int = 0, n_test: int = 2000) -> Pair:
    """An MNIST-1-7-sized stand-in (`n` × `dim`, pixels 0–1) for benchmarks when MNIST is absent.

    A shared random background image, shifted by ±1.5 along one random unit direction per class, plus
    Gaussian pixel noise (σ = 0.25), clipped to [0, 1]: at ρ = 1 its clean hinge loss (≈ 0.04) is close
    to MNIST-1-7's (≈ 0.02), so the working-set solver meets a similar number of margin points.
    """
    gen = rng(seed)
    background = gen.uniform(0, 1, dim) ** 3
    direction = gen.normal(0, 1, dim)
    direction /= np.linalg.norm(direction)

    def draw(count):
        y = np.where(gen.uniform(size=count) < 0.5, -1.0, 1.0)
        x = background + 1.5 * y[:, None] * direction + gen.normal(0, 0.25, size=(count, dim))
        return np.clip(x, 0, 1), y

    x_train, y_train = draw(n)
    x_test, y_test = draw(n_test)
    centre, radius = _image_domain(dim)
    return Pair(f"synthetic-{n}x{dim}", x_train, y_train, x_test, y_test, centre, radius, rho=1.0)


def load(name: str, seed: int = 0, full: bool = False, profile: "str | config.Profile | None" = None) -> Pair:
    """Pair `name` (one of PAIRS). `seed` draws the toy sample; the image pairs are fixed.

    MNIST is subsampled to `profile`'s sizes (None: the active profile; before keeping ones and
    sevens) unless `full`.

    `mnist-1-7` raises DataMissingError (naming `labkit data download mnist`) when MNIST is not on disk.
    """
    if name not in PAIRS:
        raise LabkitError(f"unknown dataset {name!r} for the convex setting; choose one of {', '.join(PAIRS)}")
    if name == "toy-2d":
        return toy_2d(seed=seed, profile=profile)
    if name == "digits-1-7":
        return _from_dataset(name, data.load("digits", profile=profile, image_size=8, train_size=None, test_size=None),
                             rho=4.0)
    sizes = {"train_size": None, "test_size": None} if full else {}
    return _from_dataset(name, data.load("mnist", profile=profile, **sizes), rho=1.0)
