"""Content-addressed results on disk: `memoize(name, config, compute)`.

An entry lives at `<cache_dir>/<profile>/<name>-<key>.pt`, where the key hashes the
experiment name, its full config, the profile, labkit's version and a fingerprint of
labkit's source (so editing the code never serves a stale result). Entries are written
to a temporary file and renamed into place (atomic: an interrupted run leaves no half
entry) and read with `torch.load(weights_only=True)` only — tensors, numbers, strings,
lists and dicts. A corrupt entry is deleted and recomputed, never fatal.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import torch

import labkit
from labkit import config, paths


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of every labkit source file: results computed by other code never match."""
    digest = hashlib.sha256(labkit.__version__.encode())
    root = Path(labkit.__file__).parent
    for source in sorted(root.rglob("*.py")):
        digest.update(str(source.relative_to(root)).encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def key(name: str, cfg: dict, profile_name: str) -> str:
    """A stable hash of (name, config, profile, labkit version + source)."""
    blob = json.dumps({"name": name, "config": cfg, "profile": profile_name,
                       "version": labkit.__version__, "code": code_fingerprint()},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def entry_path(name: str, cfg: dict, profile_name: str | None = None) -> Path:
    profile_name = profile_name or config.profile_name()
    return paths.cache_dir() / profile_name / f"{name}-{key(name, cfg, profile_name)}.pt"


def atomic_torch_save(obj, path: Path) -> None:
    """`torch.save` to a temporary file in the same folder, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: Path) -> dict | None:
    """The entry at `path`, or None when absent; a corrupt entry is deleted and None returned."""
    if not path.exists():
        return None
    try:
        value = torch.load(path, weights_only=True, map_location="cpu")
        if not isinstance(value, dict):
            raise ValueError(f"expected a dict, found {type(value).__name__}")
        return value
    except Exception as error:  # noqa: BLE001 — any unreadable entry is recomputed
        warnings.warn(f"cache entry {path.name} is unreadable ({type(error).__name__}); recomputing", stacklevel=2)
        path.unlink(missing_ok=True)
        return None


def memoize(name: str, cfg: dict, compute: Callable[[], dict], *, enabled: bool = True) -> dict:
    """`compute()`'s result for (name, cfg) in the active profile, from disk when cached."""
    if not enabled:
        return compute()
    path = entry_path(name, cfg)
    cached = read(path)
    if cached is not None:
        return cached
    result = compute()
    atomic_torch_save(result, path)
    return result


def clear(profile_name: str | None = None) -> int:
    """Delete cached entries (of one profile, or all); returns how many were removed."""
    root = paths.cache_dir()
    folders = [root / profile_name] if profile_name else [p for p in root.glob("*") if p.is_dir()]
    removed = 0
    for folder in folders:
        for entry in folder.glob("*.pt"):
            entry.unlink()
            removed += 1
    return removed
