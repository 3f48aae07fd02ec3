"""The `course` benchmark: every notebook executed headlessly, cold (an empty temporary cache) and then
warm, in the active profile (`labkit bench course --profile lab`).

Seconds depend on the machine; the figure that does not is each notebook's cost in *units*: one plain
BadNets training (the profile's default `badnets` run, uncached) measured in the same process.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from labkit import config, course
from labkit.bench import benchmark
from labkit.experiments import run


def unit_seconds(profile: str) -> float:
    """Seconds of one plain BadNets training in `profile` (uncached), the benchmark's unit."""
    start = time.perf_counter()
    run("badnets", profile=profile, use_cache=False)
    return time.perf_counter() - start


@benchmark("course")
def bench_course(names: list[str] | None = None) -> dict:
    """{"profile", "unit_seconds", "notebooks": {stem: {cold_seconds, cold_units, trainings, warm_seconds}},
    "total": {...}} for every notebook (or those named), cold then warm."""
    profile = config.profile().name
    unit = unit_seconds(profile)
    chosen = course.select(names)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="labkit-course-") as folder:
        cache = Path(folder)
        for path in chosen:
            cold = course.execute(path, profile, cache_dir=cache)
            rows[path.stem] = {"cold_seconds": cold["seconds"], "cold_units": cold["seconds"] / unit,
                               "trainings": cold["trainings"]}
        for path in chosen:
            rows[path.stem]["warm_seconds"] = course.execute(path, profile, cache_dir=cache)["seconds"]
    total = {key: sum(row[key] or 0 for row in rows.values())
             for key in ("cold_seconds", "cold_units", "trainings", "warm_seconds")}
    return {"profile": profile, "unit_seconds": unit, "notebooks": rows, "total": total}
