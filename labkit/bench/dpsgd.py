"""The `dpsgd` benchmark: timings as ratios against a baseline measured in the same run."""
from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from labkit import data, train
from labkit.bench import benchmark, seconds
from labkit.defenses import dpsgd as dp
from labkit.experiments.dpsgd import SIZES, build_model


def mode_step_times(modes=dp.GRAD_SAMPLE_MODES, width: int | None = None, lot_size: int | None = None,
                    rounds: int = 3, steps: int = 5) -> dict:
    """`_mode_step_times` with Opacus' benign hook warning (the images need no gradient) silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        return _mode_step_times(modes, width, lot_size, rounds, steps)


def _mode_step_times(modes, width, lot_size, rounds, steps) -> dict:
    """Seconds per optimizer step on one fixed lot: non-private SGD ("plain") and each Opacus mode
    (σ = 1, C = 1), timed in interleaved rounds (best round kept) so load changes hit all alike;
    plus whether each mode's clipped gradient (σ = 0) matches "hooks" (`<mode>_correct`)."""
    ds = data.load("digits")
    sizes = SIZES.of()
    width, lot = width or sizes["width"], lot_size or sizes["lot_size"]
    xb, yb = ds.x_train[:lot], ds.y_train[:lot]
    out, steppers, reference_grad = {}, {}, None
    model, _ = build_model(ds, width, 0)
    opt = train.make_optimizer(model, "sgd", 0.01)

    def plain_step(model=model, opt=opt):
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
    steppers["plain"] = plain_step
    for mode in modes:
        try:
            model, _ = build_model(ds, width, 0)
            settings = dp.DPSettings(noise_multiplier=0.0, lot_size=lot, lr=0.01, grad_sample_mode=mode)
            _, private, optimizer, criterion, _ = dp.make_private(model, xb, yb, settings, seed=0,
                                                                  device=torch.device("cpu"))
            optimizer.zero_grad(set_to_none=True)
            criterion(private(xb), yb).backward()
            optimizer.pre_step()  # clipped, noise-free lot gradient in p.grad; no update
            grad = torch.cat([p.grad.flatten() for p in model.parameters()]).clone()
            reference_grad = grad if reference_grad is None else reference_grad
            out[f"{mode}_correct"] = bool(torch.allclose(grad, reference_grad, rtol=1e-3, atol=1e-6))
            optimizer.noise_multiplier = 1.0

            def dp_step(private=private, optimizer=optimizer, criterion=criterion):
                optimizer.zero_grad(set_to_none=True)
                criterion(private(xb), yb).backward()
                optimizer.step()
            dp_step()  # warm-up
            steppers[mode] = dp_step
        except Exception as error:  # noqa: BLE001 — a mode this model does not support is reported
            out[mode] = float("nan")
            out[f"{mode}_error"] = f"{type(error).__name__}: {str(error)[:120]}"
    best = {name: float("inf") for name in steppers}
    for _ in range(rounds):
        for name, step in steppers.items():
            best[name] = min(best[name], seconds(lambda: [step() for _ in range(steps)]) / steps)
    out.update(best)
    return out


@benchmark("dpsgd")
def bench_dpsgd() -> dict:
    """DP-SGD step / non-private step (same lot, same process) for each Opacus grad-sample mode;
    the fastest correct mode; and the ε-accounting cost of one run."""
    times = mode_step_times()
    out = {"plain_step_seconds": times["plain"]}
    ratios = {}
    for mode in dp.GRAD_SAMPLE_MODES:
        out[f"{mode}_step_seconds"] = times[mode]
        out[f"{mode}_ratio"] = times[mode] / times["plain"]
        if f"{mode}_error" in times:
            out[f"{mode}_error"] = times[f"{mode}_error"]
        elif times.get(f"{mode}_correct"):
            ratios[mode] = out[f"{mode}_ratio"]
        out[f"{mode}_correct"] = times.get(f"{mode}_correct", False)
    out["fastest_correct_mode"] = min(ratios, key=ratios.get) if ratios else "none"
    out["default_mode"] = dp.DEFAULT_GRAD_SAMPLE_MODE
    sizes = SIZES.of()
    n = len(data.load("digits").y_train)
    q = dp.sample_rate(n, sizes["lot_size"])
    steps = dp.steps_for(n, sizes["lot_size"], sizes["epochs"])
    out["accountant_seconds"] = seconds(lambda: dp.epsilon(1.0, q, steps), repeat=3)
    out["lot_size"], out["width"] = sizes["lot_size"], sizes["width"]
    assert math.isfinite(out["plain_step_seconds"])
    return out
