"""Atomic writes: a file is either its old self or completely new, never half written (core: no labkit deps)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch


def atomic_torch_save(obj, path: Path) -> None:
    """`torch.save` to a temporary file in the same folder, then rename over `path`."""
    atomic_write(path, lambda stream: torch.save(obj, stream))


def atomic_write_bytes(data: bytes, path: Path) -> None:
    """`data` written to a temporary file in the same folder, then renamed over `path`."""
    atomic_write(path, lambda stream: stream.write(data))


def atomic_write(path: Path, write) -> None:
    """`write(binary stream)` into a temporary file beside `path`, flushed to disk, renamed over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
