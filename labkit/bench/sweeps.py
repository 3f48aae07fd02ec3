"""The `sweeps` benchmark: one grid swept sequentially, by a pool of 2 local processes (`labkit sweep
--jobs 2`) and by a 2-worker Dask LocalCluster (`--scheduler local:2`), each from an empty cache, in one
run; throughput ratios and Dask's overhead per task against the process pool."""
from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

from labkit import config, distributed, experiments
from labkit.bench import benchmark

GRID = {"seed": [0, 1, 2, 3], "poison_fraction": [0.05, 0.1]}
FIXED = {"epochs": 2}


def _point(job):
    name, profile, cfg = job
    return experiments.public(experiments.run(name, profile=profile, **cfg))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@benchmark("sweeps")
def bench_sweeps() -> dict:
    """ci-profile BadNets, 8 points of 2 epochs. Points per second for each way of running the grid."""
    profile = "ci"
    configs = [{**FIXED, **point} for point in experiments.grid_configs(GRID)]
    previous = os.environ.get("LABKIT_CACHE_DIR")
    out = {"points": len(configs), "threads_per_point": config.threads(profile)}
    try:
        for way in ("sequential", "processes_2", "dask_local_2"):
            with tempfile.TemporaryDirectory(prefix="labkit-sweep-") as folder:
                os.environ["LABKIT_CACHE_DIR"] = folder  # every way starts cold; children inherit it
                if way == "sequential":
                    seconds = _timed(lambda: [experiments.run("badnets", profile=profile, **c) for c in configs])
                elif way == "processes_2":
                    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
                        pool.submit(int).result()  # start-up outside the timing, as Dask's below
                        seconds = _timed(lambda: list(pool.map(_point, [("badnets", profile, c) for c in configs])))
                else:
                    with distributed.connect("local:2") as client:
                        seconds = _timed(lambda: experiments.sweep("badnets", GRID, profile=profile, client=client,
                                                                   progress=False, **FIXED))
                out[f"{way}_seconds"] = seconds
                out[f"{way}_points_per_second"] = len(configs) / seconds
    finally:
        if previous is None:
            os.environ.pop("LABKIT_CACHE_DIR", None)
        else:
            os.environ["LABKIT_CACHE_DIR"] = previous
    out["processes_2_vs_sequential"] = out["sequential_seconds"] / out["processes_2_seconds"]
    out["dask_local_2_vs_sequential"] = out["sequential_seconds"] / out["dask_local_2_seconds"]
    out["dask_overhead_per_task_seconds"] = (out["dask_local_2_seconds"] - out["processes_2_seconds"]) / len(configs)
    return out
