"""The `fine-pruning` benchmarks: timings as ratios against a baseline measured in the same run."""
from __future__ import annotations

from labkit import config, data, models, train
from labkit.bench import benchmark, seconds
from labkit.defenses import strip


@benchmark("strip")
def bench_strip() -> dict:
    """STRIP throughput (inputs/s) at N = 10 and N = 100, its overhead vs plain inference, and that overhead as a
    ratio to its floor of N plain forward passes per input (same run)."""
    ds = data.load("digits", train_size=None, test_size=None)
    model = models.build("small-cnn", ds.image_shape, ds.num_classes, seed=0).to(config.device()).eval()
    x, holdout = ds.x_test[:256], ds.x_train[:200]
    plain = seconds(lambda: train.predict(model, x), repeat=5)
    out = {"device": str(config.device()), "inputs": len(x), "plain_inputs_per_s": len(x) / plain}
    for n in (10, 100):
        took = seconds(lambda: strip.entropy_scores(model, x, holdout, n=n), repeat=3 if n == 10 else 1)
        out[f"strip_n{n}_inputs_per_s"] = len(x) / took
        out[f"strip_n{n}_overhead_ratio"] = took / plain
        out[f"strip_n{n}_vs_floor"] = took / (n * plain)  # 1.0 = exactly the N forward passes STRIP cannot avoid
    return out
