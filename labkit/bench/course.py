"""The `course` benchmark: every notebook executed headlessly, cold (an empty temporary cache) and then
warm, in the active profile (`labkit bench course --profile lab`).

Seconds depend on the machine; the figure that does not is each notebook's cost in *units*: one plain
BadNets training (the profile's default `badnets` run, uncached, data already loaded: the median of three
after a first run that loads the dataset) measured in the same process. Each notebook's row also says where
its cold time went: the experiments it computed, with their count, own seconds and units.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from labkit import config, course
from labkit.bench import benchmark
from labkit.experiments import run


def unit_seconds(profile: str, repeat: int = 3) -> float:
    """Seconds of one plain BadNets training in `profile` (uncached), the benchmark's unit: the median of
    `repeat` runs after one that loads the dataset and warms torch up (that one is not a training's cost)."""
    run("badnets", profile=profile, use_cache=False)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run("badnets", profile=profile, use_cache=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
            where = {name: {**cost, "units": round(cost["seconds"] / unit, 1)}
                     for name, cost in sorted(cold.get("computed", {}).items(), key=lambda kv: -kv[1]["seconds"])}
            rows[path.stem] = {"cold_seconds": cold["seconds"], "cold_units": cold["seconds"] / unit,
                               "trainings": cold["trainings"], "computed": where}
        for path in chosen:
            rows[path.stem]["warm_seconds"] = course.execute(path, profile, cache_dir=cache)["seconds"]
    total = {key: sum(row[key] or 0 for row in rows.values())
             for key in ("cold_seconds", "cold_units", "trainings", "warm_seconds")}
    return {"profile": profile, "unit_seconds": unit, "notebooks": rows, "total": total}
