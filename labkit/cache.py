"""Content-addressed results on disk: `memoize(name, config, compute)`.

An entry lives at `<cache_dir>/<profile>/<name>-<key>.pt`, where the key hashes the
experiment name, its full config, the profile, the device type (cpu / cuda), the thread count it is
computed with, labkit's version and the code its result depends on: the module that computes it and every
labkit module that one imports, transitively, docstrings and comments left out
(`labkit.dependencies`). Editing `train.py` recomputes every model; restyling a plot, a
notebook or a docstring keeps them all. The folder is checked for writing *before* computing (no result is lost
after the work is done). Entries are written to a temporary file and renamed into place
(atomic: an interrupted run leaves no half entry) and read with
`torch.load(weights_only=True)` only — tensors, numbers, strings, lists and dicts. Each entry
carries a header (format version, experiment name, key, its keys); an entry that is
unreadable, of another format, of another experiment or missing promised keys is treated
as corrupt: a warning, then it is deleted and recomputed, never fatal.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Iterable

import torch

import labkit
from labkit import config, dependencies, paths
from labkit.errors import LabkitError
from labkit.files import atomic_torch_save

FORMAT = 2  # bump when the entry layout changes: older entries are then recomputed
HEADER = "_labkit_entry"  # {"format", "experiment", "key", "keys"}


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of every labkit source file: the conservative key for results whose module is not named."""
    digest = hashlib.sha256(labkit.__version__.encode())
    root = Path(labkit.__file__).parent
    for source in sorted(root.rglob("*.py")):
        digest.update(str(source.relative_to(root)).encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def key(name: str, cfg: dict, profile_name: str, threads: int | None = None, module: str | None = None) -> str:
    """A stable hash of (name, config, profile, device type, threads, labkit version, code): the code of
    `module` and what it imports (`dependencies.fingerprint`), or all of labkit's source when no module is named."""
    code = dependencies.fingerprint(module) if module else code_fingerprint()
    blob = json.dumps({"name": name, "config": dict(cfg), "profile": profile_name,
                       "device": config.device(profile_name).type,  # a GPU's numbers differ from a CPU's
                       "threads": threads or config.threads(profile_name), "version": labkit.__version__, "code": code},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def entry_path(name: str, cfg: dict, profile_name: str | None = None, module: str | None = None) -> Path:
    """Where the entry of (name, cfg) computed by `module`'s code lives in the profile's cache folder."""
    profile_name = profile_name or config.profile_name()
    return paths.cache_dir() / profile_name / f"{name}-{key(name, cfg, profile_name, module=module)}.pt"


def not_writable(folder: Path, error: OSError) -> LabkitError:
    reason = error.strerror or type(error).__name__
    return LabkitError(f"cache folder {folder} is not writable ({reason}): "
                       f"set LABKIT_CACHE_DIR to a folder you can write to")


def ensure_writable(folder: Path) -> None:
    """Create `folder` and write a scratch file in it, or raise one `LabkitError` naming the fix."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".probe-", suffix=".tmp")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise not_writable(folder, error) from None


def _problem(value, name: str | None, required: Iterable[str]) -> str | None:
    """Why `value` is not a valid entry of experiment `name`, or None when it is."""
    if not isinstance(value, dict):
        return f"not a dict but {type(value).__name__}"
    header = value.get(HEADER)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        return "no labkit header of this format"
    if name is not None and header.get("experiment") != name:
        return f"an entry of {header.get('experiment')!r}"
    keys = header.get("keys")
    present = set(value) - {HEADER}
    if not isinstance(keys, list) or set(keys) != present:
        return "its keys differ from its header's"
    missing = [k for k in required if k not in present]
    return f"missing {missing[0]!r}" if missing else None


def read(path: Path, name: str | None = None, required: Iterable[str] = ()) -> dict | None:
    """The entry at `path` (without its header), or None when absent; an unreadable or invalid entry
    (see `_problem`) is deleted with a warning and None returned."""
    if not path.exists():
        return None
    try:
        value = torch.load(path, weights_only=True, map_location="cpu")
        problem = _problem(value, name, required)
    except Exception as error:  # noqa: BLE001 — any unreadable entry is recomputed
        problem = f"unreadable: {type(error).__name__}"
    if problem is None and value[HEADER].get("key") not in (None, path.stem.rpartition("-")[2]):
        problem = "filed under another key"
    if problem is not None:
        warnings.warn(f"cache entry {path.name} is corrupt ({problem}); recomputing", stacklevel=2)
        path.unlink(missing_ok=True)
        return None
    return {k: v for k, v in value.items() if k != HEADER}


def write(path: Path, name: str, result: dict) -> None:
    """Store `result` atomically at `path` with its header."""
    header = {"format": FORMAT, "experiment": name, "key": path.stem.rpartition("-")[2], "keys": sorted(result)}
    atomic_torch_save({**result, HEADER: header}, path)


def memoize(name: str, cfg: dict, compute: Callable[[], dict], *, profile: "str | config.Profile | None" = None,
            enabled: bool = True, required: Iterable[str] = (), module: str | None = None) -> dict:
    """`compute()`'s result for (name, cfg) in `profile` (None: the active one), from disk when cached.

    `compute` runs with `config.threads(profile)` torch threads (a part of the key), so an entry never
    depends on how it was scheduled; `required` are keys every valid entry holds; `module` is the module
    whose code computes the result (`__name__` of the caller; None keys it by all of labkit's source)."""
    prof = config.profile(profile)
    if not enabled:
        with config.fixed_threads(prof):
            return compute()
    path = entry_path(name, cfg, prof.name, module=module)
    cached = read(path, name, required)
    if cached is not None:
        return cached
    ensure_writable(path.parent)  # before the work, not after it
    with computing(path):
        cached = read(path, name, required)  # another process may have computed it while we waited
        if cached is not None:
            return cached
        with config.fixed_threads(prof):
            result = compute()
        try:
            write(path, name, result)
        except OSError as error:
            raise not_writable(path.parent, error) from None
    return result


@contextlib.contextmanager
def computing(path: Path):
    """Hold an exclusive lock on `<entry>.lock` while the entry at `path` is computed: a second process that
    wants the same entry (a `reproduce --jobs 2` worker, a sweep) waits, then reads it instead of computing it
    again. Where file locks are unavailable (no `fcntl`, a file system without `flock`), no lock: both compute,
    and the atomic write still leaves one whole entry."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path.with_suffix(".lock"), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            locked = True
        except OSError:
            locked = False
        try:
            yield
        finally:
            if locked:
                fcntl.flock(handle, fcntl.LOCK_UN)


def clear(profile_name: str | None = None) -> int:
    """Delete cached entries (of one profile, or all), the temporary files of interrupted writes and the
    entries' lock files; returns how many entries were removed."""
    root = paths.cache_dir()
    folders = [root / profile_name] if profile_name else [p for p in root.glob("*") if p.is_dir()]
    removed = 0
    for folder in folders:
        if not folder.is_dir():
            continue
        for item in folder.iterdir():
            if item.suffix in (".tmp", ".lock") and item.is_file():
                item.unlink(missing_ok=True)
            elif item.suffix == ".pt" and item.is_file():
                item.unlink(missing_ok=True)
                removed += 1
    return removed
