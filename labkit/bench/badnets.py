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
