"""The `label-consistent` benchmark: timings as ratios against a baseline measured in the same run."""
from __future__ import annotations

import time

import torch

from labkit import config, data
from labkit.attacks import label_consistent as lc
from labkit.bench import benchmark, seconds
from labkit.experiments import run
from labkit.experiments.label_consistent import EPSILONS, SETTING, SIZES, grid, surrogate


@benchmark("label-consistent")
def bench_label_consistent() -> dict:
    """Lab profile, digits. PGD poison generation in images/s and in forward+backward passes of the
    same surrogate (measured in the same run; ≈ the step count when PGD adds no overhead); the
    notebook's fraction sweep (baseline + PGD at every grid fraction, uncached, surrogate cached)
    in seconds, and the widget grid's time extrapolated from the sweep's seconds per run."""
    out = {}
    with config.keep_profile():
        config.use_profile("lab")
        ds = data.load("digits")
        model, _, _ = surrogate("digits", SETTING["surrogate"], "l2", 0)
        x, y = ds.x_train[:512], ds.y_train[:512]
        steps = SIZES.of()["pgd_steps"]

        def forward_backward():
            x_req = x.clone().requires_grad_(True)
            torch.nn.functional.cross_entropy(model(x_req), y).backward()
        base = seconds(forward_backward, repeat=3)
        for norm in ("l2", "linf"):
            t = seconds(lambda: lc.pgd(model, x, y, norm=norm, steps=steps,
                                       epsilon=lc.scale_epsilon(EPSILONS[norm][-1], norm, ds.image_shape)), repeat=2)
            out[f"pgd_{norm}_images_per_second"] = len(x) / t
            out[f"pgd_{norm}_cost_in_forward_backward_passes"] = t / base
        out["pgd_steps"] = steps
        configs = [{"method": m, "poison_fraction": f} for f in SIZES.of()["grid_fractions"] for m in ("none", "pgd-l2")]
        start = time.perf_counter()
        for cfg in configs:
            run("label-consistent", use_cache=False, **{**SETTING, **cfg})
        out["fraction_sweep_runs"] = len(configs)
        out["fraction_sweep_seconds_lab"] = time.perf_counter() - start
        per_run = out["fraction_sweep_seconds_lab"] / len(configs)
        out["seconds_per_run_lab"] = per_run
        g = grid()
        widget_runs = 2 * len(g["epsilon"]) * len(g["amplitude"]) * len(g["poison_fraction"])  # PGD + baseline
        out["widget_grid_runs"] = widget_runs
        out["widget_grid_seconds_lab_extrapolated"] = per_run * widget_runs
    return out
