"""The `badnets` benchmark: timings as ratios against a baseline measured in the same run."""
from __future__ import annotations



from labkit import config, data, models, train
from labkit.bench import benchmark, seconds
from labkit.experiments import run


@benchmark("badnets")
def bench_badnets() -> dict:
    """Seconds for one BadNets run per profile; cached re-run + replot latency; run/epoch ratio."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from labkit import plots

    out = {}
    with config.keep_profile():
        for name in ("ci", "lab", "paper"):
            config.use_profile(name)
            out[f"run_seconds_{name}"] = seconds(lambda: run("badnets", use_cache=False, poison_fraction=0.1) and None)
        config.use_profile("ci")
        prof = config.profile()
        ds = data.load("digits")
        model = models.build("small-cnn", ds.image_shape, ds.num_classes, seed=0)
        epoch = seconds(lambda: train.train(model, ds.x_train, ds.y_train, epochs=1, batch_size=prof.batch_size,
                                            lr=prof.learning_rate, progress=False))
        full = seconds(lambda: run("badnets", use_cache=False, poison_fraction=0.1))
        run("badnets", poison_fraction=0.1)  # populate the cache

        def replot():
            result = run("badnets", poison_fraction=0.1)
            fig, ax = plt.subplots()
            plots.asr_vs_accuracy(ax, [result["clean_accuracy"]], [result["attack_success_rate"]])
            plt.close(fig)
        out["cached_replot_seconds"] = seconds(replot, repeat=3)
        out["plain_epoch_seconds_ci"] = epoch
        out["run_to_epoch_ratio_ci"] = full / epoch
        out["epochs_per_run_ci"] = prof.epochs
    return out


@benchmark("max-pool")
def bench_max_pool() -> dict:
    """One MNIST-sized training step (batch 64, 28x28, the lab CNN) with `nn.MaxPool2d(2)` and with
    `models.MaxPool2x2` (the same numbers through the channels-last kernel): seconds and their ratio."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 1, 28, 28, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    steps = {}
    for name, layer in (("max_pool2d", nn.MaxPool2d(2)), ("max_pool_2x2", models.MaxPool2x2())):
        model = models.SmallCNN(image_size=28)
        model.pool = layer
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)

        def step(model=model, opt=opt):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        step()
        steps[name] = step
    out = {f"step_seconds_{name}": seconds(lambda s=s: [s() for _ in range(20)], repeat=5) / 20
           for name, s in steps.items()}
    out["max_pool_2x2_speedup"] = out["step_seconds_max_pool2d"] / out["step_seconds_max_pool_2x2"]
    return out


@benchmark("eval-batch")
def bench_eval_batch() -> dict:
    """Logits of 2,000 MNIST-sized images (the lab CNN, eval mode) in chunks of 1,024 (the old EVAL_BATCH) and
    of `train.EVAL_BATCH`: seconds and their ratio (the logits are the same bits either way)."""
    import torch

    model = models.SmallCNN(image_size=28).eval()
    x = torch.rand(2000, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    out = {f"logits_seconds_batch_{size}": seconds(lambda size=size: train.logits(model, x, batch_size=size), repeat=5)
           for size in (1024, train.EVAL_BATCH)}
    out["eval_batch_speedup"] = out["logits_seconds_batch_1024"] / out[f"logits_seconds_batch_{train.EVAL_BATCH}"]
    return out
