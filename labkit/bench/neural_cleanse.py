"""The `neural-cleanse` benchmark: timings as ratios against a baseline measured in the same run."""
from __future__ import annotations

import os

import torch

from labkit import config, data, models
from labkit.bench import benchmark, seconds
from labkit.defenses import neural_cleanse as nc
from labkit.experiments import run
from labkit.experiments.neural_cleanse import defender_sample
from labkit.seed import generator


def input_gradient_seconds_per_image(model, image_shape, batch_size: int, repeat: int = 20,
                                     device: torch.device = torch.device("cpu")) -> float:
    """Seconds per image of one forward + input-gradient pass of `model` at `batch_size` (channels-last,
    frozen weights, on `device`): what one reverse-engineering step costs apart from its bookkeeping."""
    net = nc.optimisation_copy(model, device)
    x = torch.rand(batch_size, *image_shape, generator=generator(0)).to(device).requires_grad_(True)

    def step():
        for _ in range(repeat):
            net(x).sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()  # warm-up
    return seconds(step, repeat=3) / (repeat * batch_size)


@benchmark("neural-cleanse")
def bench_neural_cleanse() -> dict:
    """Batched all-label reverse engineering vs the per-label loop, same epochs, same model and data
    (ci-sized digits model, 10 labels, early stopping off so both do identical work), on the GPU when one
    is present, else on the CPU.

    Also the per-image cost of a forward + input-gradient pass at the loop's batch (32 images) and at the
    batched one (32 images x 10 labels): batching only pays where per-call overhead, not arithmetic and
    memory traffic, dominates a step (a GPU); on a CPU the two per-image costs are close.
    """
    with config.keep_profile():
        config.use_profile("ci")
        ds = data.load("digits")
        r = run("badnets", poison_fraction=0.1, seed=0)
        model = models.from_result(r)
        x = defender_sample(ds, 128, 0)
        never_stop = nc.Schedule(early_stop_patience=10**9)
        settings = dict(epochs=10, batch_size=32, seed=0, schedule=never_stop, progress=False,
                        device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
        batched = seconds(lambda: nc.reverse_engineer(model, x, ds.num_classes, mode="batched", **settings), repeat=2)
        looped = seconds(lambda: nc.reverse_engineer(model, x, ds.num_classes, mode="per-label", **settings), repeat=2)
        small = input_gradient_seconds_per_image(model, ds.image_shape, settings["batch_size"],
                                                 device=settings["device"])
        large = input_gradient_seconds_per_image(model, ds.image_shape, settings["batch_size"] * ds.num_classes,
                                                 device=settings["device"])
    labels, steps = ds.num_classes, settings["epochs"] * -(-len(x) // settings["batch_size"])
    return {
        "device": settings["device"].type, "labels": labels, "epochs": settings["epochs"],
        "optimiser_steps_per_label": steps,
        "batched_seconds": batched, "per_label_loop_seconds": looped, "speedup": looped / batched,
        "batched_seconds_per_label": batched / labels, "per_label_loop_seconds_per_label": looped / labels,
        "pass_us_per_image_batch_32": small * 1e6, "pass_us_per_image_batch_320": large * 1e6,
        "allocator_tuned": "MALLOC_MMAP_THRESHOLD_" in os.environ,  # the Makefile's glibc settings
    }
