"""The `blind` benchmark: timings as ratios against a baseline measured in the same run."""
from __future__ import annotations


import torch

from labkit import config, data, models, triggers
from labkit.attacks import blind as blind_attack
from labkit.bench import benchmark, seconds


@benchmark("blind")
def bench_blind() -> dict:
    """Seconds per training step on ci digits: normal loss vs the blind loss with MGDA and fixed scales."""
    with config.keep_profile():
        config.use_profile("ci")
        prof = config.profile()
        ds = data.load("digits")
        synth = blind_attack.label_as(0, triggers.make("badnets", ds.image_shape), "pattern")
        x, y = ds.x_train[:prof.batch_size], ds.y_train[:prof.batch_size]
        loss_fns = {
            "normal": blind_attack.normal_loss(),
            "mgda": blind_attack.BlindLoss(synth, balance="mgda"),
            "fixed": blind_attack.BlindLoss(synth, balance="fixed"),
            "mgda_evasion": blind_attack.BlindLoss(synth, balance="mgda", evasion=True),
            "fixed_evasion": blind_attack.BlindLoss(synth, balance="fixed", evasion=True, fixed_scales=(0.6, 0.3, 0.1)),
        }
        out = {}
        for name, loss_fn in loss_fns.items():
            model = models.build("small-cnn", ds.image_shape, ds.num_classes, seed=0)
            opt = torch.optim.Adam(model.parameters(), lr=prof.learning_rate)

            def steps(count=20):
                for _ in range(count):
                    loss = loss_fn(model, x, y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            steps(3)  # warm-up
            out[f"step_seconds_{name}"] = seconds(steps, repeat=3) / 20
        for name in loss_fns:
            if name != "normal":
                out[f"ratio_{name}_to_normal"] = out[f"step_seconds_{name}"] / out["step_seconds_normal"]
        out["batch_size"] = prof.batch_size
    return out
