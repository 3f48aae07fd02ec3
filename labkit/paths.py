"""Where labkit keeps datasets and cached results, found from labkit's own location.

Never from the working directory: nbmake runs each notebook from its own folder.
`LABKIT_DATA_DIR` moves the datasets; `LABKIT_CACHE_DIR` moves the result cache
(useful when the data directory is read-only, e.g. a shared copy of MNIST).
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Folder holding torchvision-format datasets (default: `<project>/data`)."""
    override = os.environ.get("LABKIT_DATA_DIR")
    return Path(override).expanduser().resolve() if override else PROJECT_ROOT / "data"


def cache_dir() -> Path:
    """Folder holding cached experiment results (default: `<project>/data/cache`)."""
    override = os.environ.get("LABKIT_CACHE_DIR")
    return Path(override).expanduser().resolve() if override else PROJECT_ROOT / "data" / "cache"
