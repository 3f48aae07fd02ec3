"""Datasets as tensors: `load(name)` → `Dataset` with NCHW float images in [0, 1] (0–1 pixel scale).

`digits` (scikit-learn's bundled 8x8 handwritten digits, upsampled so triggers fit; offline;
the default) · `mnist` · `fashion-mnist` · `cifar10` · `gtsrb` (torchvision, on disk under
`paths.data_dir()`). labkit never downloads during `load`: missing files raise one error
naming `labkit data download NAME` and the directory.
"""
from __future__ import annotations

import functools
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from labkit import config, paths
from labkit.errors import DataCorruptError, DataMissingError, LabkitError
from labkit.files import atomic_torch_save


@dataclass(frozen=True)
class Dataset:
    """Train/test images `x_*` (N, C, H, W) float32 in [0, 1] and labels `y_*` (N,) int64."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return tuple(self.x_train.shape[1:])


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    folder: str  # sub-folder of the data directory that torchvision uses
    description: str
    offline: bool  # ships with an installed package; never needs a download
    num_classes: int = 10


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", "", "scikit-learn 8x8 digits, 1,797 images, upsampled to 16x16", True),
    "mnist": DatasetInfo("mnist", "MNIST", "MNIST handwritten digits, 70,000 28x28 grey images (~12 MB)", False),
    "fashion-mnist": DatasetInfo("fashion-mnist", "FashionMNIST", "Fashion-MNIST, 70,000 28x28 grey images (~30 MB)", False),
    "cifar10": DatasetInfo("cifar10", "cifar-10-batches-py", "CIFAR-10, 60,000 32x32 colour images (~170 MB)", False),
    "gtsrb": DatasetInfo("gtsrb", "gtsrb", "German traffic signs, ~39,000 images resized to 32x32 (~350 MB)", False,
                         num_classes=43),
}


def check_name(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise LabkitError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def load(name: str = "digits", *, profile: "str | config.Profile | None" = None,
         train_size: int | None | str = "profile", test_size: int | None | str = "profile",
         image_size: int = 16) -> Dataset:
    """Load `name` as tensors, subsampled to `profile`'s sizes (None: the active profile) unless sizes
    are given (None keeps all).

    `image_size` applies to `digits` only (8 = the original resolution). Subsets are drawn
    with a fixed seed, so every experiment in a profile sees the same images.
    """
    check_name(name)
    prof = config.profile(profile)
    n_train = prof.train_size if train_size == "profile" else train_size
    n_test = prof.test_size if test_size == "profile" else test_size
    full = _load_full(name, image_size if name == "digits" else 0, str(paths.data_dir()))
    return subsample(full, n_train, n_test)


def subsample(ds: Dataset, n_train: int | None, n_test: int | None, seed: int = 0) -> Dataset:
    """A random subset of at most `n_train` / `n_test` images (None keeps all)."""
    gen = torch.Generator().manual_seed(seed)

    def take(x, y, n):
        if n is None or n >= len(y):
            return x, y
        idx = torch.randperm(len(y), generator=gen)[:n].sort().values
        return x[idx], y[idx]

    x_train, y_train = take(ds.x_train, ds.y_train, n_train)
    x_test, y_test = take(ds.x_test, ds.y_test, n_test)
    return replace(ds, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def untouched_sample(count: int, size: int, seed: int, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """`size` random indices of a set of `count` images, none of `exclude` (e.g. the poisoned ones), drawn with
    a generator of their own seeded `seed`: how a defender's trusted clean images are picked."""
    keep = torch.ones(count, dtype=torch.bool)
    if exclude is not None:
        keep[exclude] = False
    pool = torch.nonzero(keep).flatten()
    return pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(int(seed)))[:size]]


def binary_pair(ds: Dataset, negative: int, positive: int):
    """Two classes as flat float64 features with labels -1 / +1 (for the convex setting).

    Returns numpy arrays (x_train (N, D), y_train (N,), x_test, y_test), pixels 0–1.
    """
    out = []
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        keep = (y == negative) | (y == positive)
        out.append(x[keep].reshape(int(keep.sum()), -1).double().numpy())
        out.append(np.where(y[keep].numpy() == positive, 1.0, -1.0))
    return tuple(out)


@functools.lru_cache(maxsize=8)
def _load_full(name: str, image_size: int, folder: str) -> Dataset:
    """The whole dataset (`folder`, the data directory, is part of the memo's key)."""
    if name == "digits":
        return _digits(image_size)
    return _torchvision(name)


def _digits(image_size: int) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # 0–16 → 0–1
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False).clamp(0, 1)
    y = torch.tensor(bunch.target, dtype=torch.int64)
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=0.25, random_state=0, stratify=y.numpy())
    idx_train, idx_test = torch.as_tensor(np.sort(idx_train)), torch.as_tensor(np.sort(idx_test))
    return Dataset("digits", x[idx_train], y[idx_train], x[idx_test], y[idx_test], tuple(str(d) for d in range(10)))


def _torchvision_class(name: str):
    from labkit.compat import import_torchvision

    datasets = import_torchvision().datasets
    return {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST,
            "cifar10": datasets.CIFAR10, "gtsrb": datasets.GTSRB}[name]


def missing_message(name: str) -> str:
    where = paths.data_dir()
    return (f"{name} is not in {where}: run `labkit data download {name}` (needs internet), "
            f"or set LABKIT_DATA_DIR to a folder that holds it")


MNIST_FAMILY = ("mnist", "fashion-mnist")


def archive_checksums(name: str) -> list[tuple[str, str]]:
    """[(archive file name, md5)] that torchvision publishes for an MNIST-family dataset."""
    return list(_torchvision_class(name).resources)


def raw_folder(name: str) -> Path:
    """Where torchvision keeps an MNIST-family dataset's archives and unpacked files."""
    return paths.data_dir() / DATASETS[name].folder / "raw"


def _unpack_verified_archives(name: str) -> None:
    """Unpack each MNIST-family `.gz` whose unpacked file is missing, after checking its md5 against
    torchvision's list — on disk only, never the network (torchvision's `download=True` would fetch a
    damaged archive again). A missing archive raises `DataMissingError`; a damaged one `DataCorruptError`
    naming the file, its expected md5 and the command that fetches it again."""
    from labkit.compat import import_torchvision

    utils = import_torchvision().datasets.utils
    folder = raw_folder(name)
    for archive_name, md5 in archive_checksums(name):
        archive, unpacked = folder / archive_name, folder / Path(archive_name).stem
        if unpacked.is_file():
            continue
        if not archive.is_file():
            raise DataMissingError(missing_message(name))
        if not utils.check_integrity(str(archive), md5):
            raise DataCorruptError(f"{archive} is damaged (md5 {utils.calculate_md5(str(archive))}, expected {md5}): "
                                   f"run `labkit data download {name}` to fetch it again")
        staging = Path(tempfile.mkdtemp(dir=folder, prefix=".unpack-"))  # unpack beside, then rename: atomic
        try:
            os.replace(utils.extract_archive(str(archive), str(staging)), unpacked)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _open(name: str, train: bool, **kwargs):
    """The torchvision dataset object, opening only files already on disk (never `download=True`).

    MNIST-family archives (.gz) on disk are verified and unpacked first. Missing files raise
    `DataMissingError`, damaged ones `DataCorruptError`: one line naming the file and the fix.
    """
    cls, root = _torchvision_class(name), paths.data_dir()
    split = {"split": "train" if train else "test"} if name == "gtsrb" else {"train": train}
    if name in MNIST_FAMILY and raw_folder(name).is_dir():
        try:
            _unpack_verified_archives(name)
        except OSError as error:
            raise DataCorruptError(f"could not unpack {name} in {raw_folder(name)} ({error.strerror or error}); "
                                   f"copy the folder somewhere writable and point LABKIT_DATA_DIR there") from None
    try:
        return cls(str(root), download=False, **split, **kwargs)
    except Exception as error:  # noqa: BLE001 — torchvision's "not found or corrupted", or a garbled file
        unpacked = name in MNIST_FAMILY and all((raw_folder(name) / Path(a).stem).is_file()
                                                for a, _ in archive_checksums(name))
        if isinstance(error, RuntimeError) and not unpacked:
            raise DataMissingError(missing_message(name)) from None
        raise DataCorruptError(f"{name} in {root / DATASETS[name].folder} is damaged ({_first_line(error)}): "
                               f"delete its files and run `labkit data download {name}`") from None


def _first_line(error: BaseException) -> str:
    """`Type: first line of the message` — library errors can run over many lines."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _uint8_images(data) -> torch.Tensor:
    """(N, H, W) or (N, H, W, C) uint8 → (N, C, H, W) float32 in [0, 1]."""
    x = torch.as_tensor(np.asarray(data))
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return x.float().div(255.0).contiguous()


def _torchvision(name: str) -> Dataset:
    if name == "gtsrb":
        return _gtsrb()
    parts = []
    for train in (True, False):
        raw = _open(name, train)
        parts += [_uint8_images(raw.data), torch.as_tensor(np.asarray(raw.targets), dtype=torch.int64)]
        classes = tuple(raw.classes)
    return Dataset(name, *parts, classes=classes)


def _gtsrb(size: int = 32) -> Dataset:
    """GTSRB resized to `size`x`size`; the converted tensors are kept beside the raw files."""
    converted = paths.data_dir() / "gtsrb" / f"labkit-{size}x{size}.pt"
    if converted.exists():
        try:
            blob = torch.load(converted, weights_only=True)
            return Dataset("gtsrb", *blob["tensors"], classes=tuple(str(i) for i in range(DATASETS["gtsrb"].num_classes)))
        except Exception:  # noqa: BLE001 — a damaged conversion is made again from the raw files
            converted.unlink(missing_ok=True)
    v2 = _transforms()
    to_tensor = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Resize((size, size), antialias=True)])
    tensors = []
    for train in (True, False):
        raw = _open("gtsrb", train, transform=to_tensor)
        images, labels = zip(*(raw[i] for i in range(len(raw))))
        tensors += [torch.stack(images).clamp(0, 1), torch.tensor(labels, dtype=torch.int64)]
    atomic_torch_save({"tensors": tensors}, converted)
    return Dataset("gtsrb", *tensors, classes=tuple(str(i) for i in range(DATASETS["gtsrb"].num_classes)))


def _transforms():
    from labkit.compat import transforms_v2

    return transforms_v2()


def status(name: str) -> tuple[str, str]:
    """(state, detail) of a dataset on disk, offline: state is `bundled`, `present`, `missing` or `damaged`;
    detail is the one-line message that names the fix ('' when usable)."""
    check_name(name)
    if DATASETS[name].offline:
        return "bundled", ""
    try:
        _open(name, True)
        _open(name, False)
        return "present", ""
    except DataCorruptError as error:
        return "damaged", str(error)
    except DataMissingError as error:
        return "missing", str(error)


def is_present(name: str) -> bool:
    """True when `load(name)` can work offline."""
    return status(name)[0] in ("bundled", "present")


def download(name: str) -> Path:
    """Download `name` into the data directory through torchvision (needs internet)."""
    info = check_name(name)
    if info.offline:
        return paths.data_dir()
    cls, root = _torchvision_class(name), paths.data_dir()
    root.mkdir(parents=True, exist_ok=True)
    try:
        for train in (True, False):
            split = {"split": "train" if train else "test"} if name == "gtsrb" else {"train": train}
            cls(str(root), download=True, **split)
    except (OSError, RuntimeError) as error:
        raise DataMissingError(f"could not download {name} into {root} ({_first_line(error)}); "
                               f"check the internet connection, or copy the files there by hand") from None
    _load_full.cache_clear()
    return root / info.folder
