"""Benchmarks, one module per paper: each registers one with `@benchmark(name)`; `labkit bench` runs them.

Performance is reported as seconds and, above all, as ratios against a baseline measured in the same
process — never asserted against a wall-clock limit in a test. Benchmarks sit beside the experiments
(they import experiments; no experiment imports them).
"""
from __future__ import annotations

import functools
import time
from typing import Callable

from labkit.errors import LabkitError

_BENCHMARKS: dict[str, Callable[[], dict]] = {}


def benchmark(name: str):
    """Decorator: register `fn() -> dict` (JSON-able numbers) as benchmark `name`."""
    def wrap(fn):
        _BENCHMARKS[name] = fn
        return fn
    return wrap


@functools.cache
def discover() -> None:
    """Import every benchmark module of this package once (each registers its benchmark)."""
    from labkit.experiments import import_submodules

    import_submodules(__name__, __path__)


def names() -> list[str]:
    discover()
    return sorted(_BENCHMARKS)


def run(selected: list[str] | None = None) -> dict[str, dict]:
    """{benchmark name: its measurements} for `selected` (default: all)."""
    available = names()
    for name in selected or []:
        if name not in available:
            raise LabkitError(f"unknown benchmark {name!r}; choose one of {', '.join(available)}")
    return {name: _BENCHMARKS[name]() for name in (selected or available)}


def seconds(fn: Callable[[], object], repeat: int = 1) -> float:
    """Best wall-clock seconds of `repeat` calls of `fn`."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
