"""Where labkit keeps datasets and cached results, found from labkit's own location.

Never from the working directory: nbmake runs each notebook from its own folder, and the
installed `labkit` command uses the checkout it was installed from (editable install).
- datasets: `LABKIT_DATA_DIR`, else `<project>/data`;
- results:  `LABKIT_CACHE_DIR`, else `<data dir>/cache` — so `LABKIT_DATA_DIR` moves both,
  and `LABKIT_CACHE_DIR` alone moves the cache (e.g. when the data folder is read-only).
`labkit info` prints both.
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _from_env(variable: str) -> Path | None:
    text = os.environ.get(variable, "").strip()
    return Path(text).expanduser().resolve() if text else None


def data_dir() -> Path:
    """Folder holding torchvision-format datasets (default: `<project>/data`)."""
    return _from_env("LABKIT_DATA_DIR") or PROJECT_ROOT / "data"


def cache_dir() -> Path:
    """Folder holding cached experiment results (default: `<data dir>/cache`)."""
    return _from_env("LABKIT_CACHE_DIR") or data_dir() / "cache"
