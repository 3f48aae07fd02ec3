"""Benchmarks: each paper registers one; `labkit bench` runs them.

Performance is reported as seconds and, above all, as ratios against a baseline measured
in the same process — never asserted against a wall-clock limit in a test.
"""
from __future__ import annotations

import time
from typing import Callable

_BENCHMARKS: dict[str, Callable[[], dict]] = {}


def benchmark(name: str):
    """Decorator: register `fn() -> dict` (JSON-able numbers) as benchmark `name`."""
    def wrap(fn):
        _BENCHMARKS[name] = fn
        return fn
    return wrap


def names() -> list[str]:
    from labkit import experiments

    experiments.discover()
    return sorted(_BENCHMARKS)


def run(selected: list[str] | None = None) -> dict[str, dict]:
    """{benchmark name: its measurements} for `selected` (default: all)."""
    from labkit.errors import LabkitError

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
