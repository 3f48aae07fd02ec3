"""The `certified` benchmark: timings as ratios against a baseline measured in the same run."""
from __future__ import annotations

import time

import numpy as np

from labkit import pairs
from labkit.bench import benchmark, seconds
from labkit.defenses import certified as cert


def _argmax_timings(pair: pairs.Pair, prefix: str, calls: int) -> dict:
    fset = cert.feasible_set(pair.x_train, pair.y_train, "sphere+slab", (pair.domain_centre, pair.domain_radius))
    thetas = np.random.default_rng(0).normal(size=(calls, pair.dim + 1))
    closed = seconds(lambda: [cert.worst_point(t, fset) for t in thetas], repeat=3) / calls
    solver = seconds(lambda: [cert.worst_point_cvxpy(t, fset) for t in thetas[:5]]) / 5
    return {f"{prefix}_argmax_closed_form_seconds": closed, f"{prefix}_argmax_cvxpy_seconds": solver,
            f"{prefix}_argmax_speedup": solver / closed}


def _timed(fn) -> tuple[object, float, float]:
    """(fn(), wall seconds, CPU seconds of this process — all threads; on a shared machine the honest
    estimate of the time on otherwise idle cores)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _bound_timings(pair: pairs.Pair, prefix: str, epsilon: float = 0.3) -> dict:
    x, y = pair.x_train, pair.y_train
    fset = cert.feasible_set(x, y, "sphere+slab", (pair.domain_centre, pair.domain_radius))
    (value, _, info), exact_wall, exact_cpu = _timed(lambda: cert.hinge_program(x, y, pair.rho, fset=fset, epsilon=epsilon))
    alg, alg_wall, alg_cpu = _timed(lambda: cert.algorithm1(x, y, fset, epsilon, pair.rho))
    return {f"{prefix}_points": len(y), f"{prefix}_dims": pair.dim,
            f"{prefix}_exact_bound_seconds": exact_wall, f"{prefix}_exact_bound_cpu_seconds": exact_cpu,
            f"{prefix}_alg1_seconds": alg_wall, f"{prefix}_alg1_cpu_seconds": alg_cpu,
            f"{prefix}_alg1_over_exact_time": alg_wall / exact_wall,
            f"{prefix}_exact_bound": value, f"{prefix}_alg1_bound": alg.upper_bound, f"{prefix}_alg1_iterations": len(alg.poison_y),
            f"{prefix}_working_set_rounds": info["rounds"], f"{prefix}_working_set_size": info["working_set_size"]}


@benchmark("certified")
def bench_certified() -> dict:
    """Closed-form vs cvxpy argmax per call (64-D and 784-D); exact-bound SOCP vs Algorithm 1 time at
    ε = 0.3 with sphere+slab on digits-1-7 and on a 13,000 × 784 problem (MNIST-1-7, else synthetic)."""
    from labkit import data

    digits = pairs.load("digits-1-7")
    if data.is_present("mnist"):
        big, source = pairs.load("mnist-1-7", full=True), "mnist-1-7"
    else:
        big, source = pairs.synthetic(13000, 784), "synthetic"
    out = {"large_problem": source}
    out.update(_argmax_timings(digits, "d64", calls=2000))
    out.update(_argmax_timings(big, "d784", calls=500))
    out.update(_bound_timings(digits, "digits"))
    out.update(_bound_timings(big, "large"))
    return out
