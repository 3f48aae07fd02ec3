"""DP-SGD against BadNets (notebook 03; Turner, chapters 5–6 and 7.10): poison → train with
DP-SGD (Opacus) or the matched SGD baseline → attack success ("classified" definition, as in
the thesis' DP chapter), clean accuracy, ε at δ = 1e-5, and accuracy on rare test points.

Experiments: `dpsgd` (one run), `dpsgd-pretrain` (the public model of procedure "frozen"),
`dpsgd-reference` (the clean model whose hardest test points define "rare"). `sweep_grid`
runs the Figure 5-1 grid. Benchmark: `dpsgd` (DP step / non-private step per grad-sample mode).
"""
from __future__ import annotations

import time

import torch
from torch import nn

from labkit import config, data, models, train, triggers
from labkit.attacks import badnets as badnets_attack
from labkit.defenses import dpsgd as dp
from labkit.experiments import Param, check_target, register, run
from labkit.metrics import attack_success_rate, clean_accuracy
from labkit.seed import generator

DP_TRIGGERS = ("four-corner", "x")
PROCEDURES = ("scratch", "frozen")
TRAININGS = ("dp-sgd", "sgd")
TRAINABLE = {"fc2": ("fc2",), "fc1+fc2": ("fc1", "fc2"), "conv2+fc1+fc2": ("conv2", "fc1", "fc2")}
WIDTHS = (8, 16, 32)
REFERENCE_SEED = 1000  # the clean reference model's seed, apart from the runs' seeds


def profile_sizes() -> dict:
    """This paper's sizes for the active profile (lab: see the issue-5 report for the timing)."""
    return {
        "epochs": config.pick(ci=6, lab=30, paper=60),
        "lot_size": config.pick(ci=128, lab=128, paper=256),
        "width": config.pick(ci=8, lab=32, paper=32),
        "sigmas": config.pick(ci=(0.0, 1.0), lab=(0.0, 1 / 3, 2 / 3, 1.0, 2.0),
                              paper=(0.0, 1 / 3, 2 / 3, 1.0, 1.5, 2.0)),
        "poison_fractions": config.pick(ci=(0.01, 0.1), lab=(0.01, 0.03),
                                        paper=(0.001, 0.003, 0.01, 0.03, 0.1)),
        "x_poison_fractions": config.pick(ci=(0.1,), lab=(0.03,), paper=(0.01, 0.03, 0.1)),
        "frozen_sigmas": config.pick(ci=(0.0, 1.0), lab=(0.0, 1.0, 2.0), paper=(0.0, 1 / 3, 2 / 3, 1.0, 2.0)),
        "seeds": config.pick(ci=(0,), lab=(0, 1), paper=(0, 1, 2)),
    }


def build_model(ds: data.Dataset, width: int, seed: int) -> tuple[nn.Module, dict]:
    """A GroupNorm model for `ds` (the small CNN at `width` for digit-like data) and its spec."""
    arch = models.default_arch(ds.name)
    if arch == "small-cnn":
        torch.manual_seed(seed)
        model = models.SmallCNN(ds.image_shape[0], ds.num_classes, ds.image_shape[1], width=width,
                                hidden=4 * width, norm="group")
    else:
        model = models.build(arch, ds.image_shape, ds.num_classes, "group", seed=seed)
    return model, {**models.spec(arch, ds.image_shape, ds.num_classes, "group"), "width": width}


def rebuild(model_spec: dict, state: dict) -> nn.Module:
    """A model from this module's spec (it carries the CNN's `width`) and state, in eval mode."""
    if model_spec["arch"] != "small-cnn":
        return models.rebuild(model_spec, state)
    channels, size = model_spec["image_shape"][0], model_spec["image_shape"][1]
    model = models.SmallCNN(channels, model_spec["num_classes"], size, width=model_spec["width"],
                            hidden=4 * model_spec["width"], norm="group")
    model.load_state_dict(state)
    return model.eval()


def public_split(n: int, public_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(public, private) training indices: a fixed random split, the same for every seed."""
    order = torch.randperm(n, generator=generator(12345))
    cut = int(round(public_fraction * n))
    return order[:cut].sort().values, order[cut:].sort().values


def settings_from(cfg: dict) -> dp.DPSettings:
    sizes = profile_sizes()
    return dp.DPSettings(noise_multiplier=cfg["noise_multiplier"], max_grad_norm=cfg["clip"],
                         lot_size=cfg["lot_size"] or sizes["lot_size"], epochs=cfg["epochs"] or sizes["epochs"],
                         lr=cfg["lr"], grad_sample_mode=cfg["grad_sample_mode"], accountant=cfg["accountant"])


DATASET_KEYS = {
    "dataset": Param("digits", str, choices=tuple(data.DATASETS), help="dataset to poison"),
    "width": Param(None, int, choices=WIDTHS + (None,), optional=True,
                   help="small-CNN width (conv1 channels; default: the profile's)"),
}


@register("dpsgd-pretrain", {
    **DATASET_KEYS,
    "public_fraction": Param(0.3, float, 0, 1, low_open=True, high_open=True,
                             help="fraction of the training set that is public (clean) pretraining data"),
    "seed": Param(0, int, 0, 2**31 - 1, help="seed for the pretrained model's init and order"),
}, summary=("public_size", "test_accuracy"))
def pretrain(dataset, width, public_fraction, seed):
    """Procedure (b)'s first half: a non-private GroupNorm model on the clean public split."""
    ds = data.load(dataset)
    width = width or profile_sizes()["width"]
    public, _ = public_split(len(ds.y_train), public_fraction)
    model, model_spec = build_model(ds, width, seed)
    prof = config.profile()
    history = train.train(model, ds.x_train[public], ds.y_train[public], epochs=2 * prof.epochs,
                          batch_size=prof.batch_size, lr=prof.learning_rate, seed=seed,
                          desc="public pretraining", eval_sets={"test": (ds.x_test, ds.y_test)})
    return {"public_size": len(public), "test_accuracy": clean_accuracy(model.cpu(), ds.x_test, ds.y_test),
            "history": history, "model_spec": model_spec, "model_state": model.state_dict()}


@register("dpsgd-reference", {**DATASET_KEYS}, summary=("clean_accuracy",))
def reference(dataset, width):
    """A clean, non-private model (the SGD baseline's settings, seed 1000): its per-example
    test loss ranks the test points from easy to hard (rare) for the chapter-6 analysis."""
    ds = data.load(dataset)
    width = width or profile_sizes()["width"]
    model, _ = build_model(ds, width, REFERENCE_SEED)
    settings = dp.DPSettings(lot_size=profile_sizes()["lot_size"], epochs=profile_sizes()["epochs"])
    dp.train_sgd(model, ds.x_train, ds.y_train, settings, seed=REFERENCE_SEED, desc="reference model")
    model.cpu()
    return {"clean_accuracy": clean_accuracy(model, ds.x_test, ds.y_test),
            "test_loss": train.per_sample_loss(model, ds.x_test, ds.y_test)}


def rare_mask(test_loss: torch.Tensor, rare_fraction: float) -> torch.Tensor:
    """(N,) bool: the `rare_fraction` of test points with the highest reference loss."""
    count = max(1, int(round(rare_fraction * len(test_loss))))
    mask = torch.zeros(len(test_loss), dtype=torch.bool)
    mask[test_loss.argsort(descending=True)[:count]] = True
    return mask


@register("dpsgd", {
    **DATASET_KEYS,
    "target": Param(0, int, 0, 42, help="the attacker's target label"),
    "trigger": Param("four-corner", str, choices=DP_TRIGGERS, help="trigger preset, full amplitude"),
    "poison_fraction": Param(0.01, float, 0, 1, high_open=True,
                             help="fraction of the (private) training set poisoned"),
    "noise_multiplier": Param(1.0, float, 0, 100, help="DP-SGD noise multiplier sigma (0: clipping only)"),
    "clip": Param(1.0, float, 0, 1e6, low_open=True, help="per-example gradient L2 clipping norm C"),
    "lot_size": Param(None, int, 1, 100000, optional=True, help="expected lot size (default: the profile's)"),
    "epochs": Param(None, int, 1, 1000, optional=True, help="passes over the private set (default: the profile's)"),
    "lr": Param(0.5, float, 0, 100, low_open=True, help="SGD step size (momentum 0.9); the baseline's is matched"),
    "procedure": Param("scratch", str, choices=PROCEDURES,
                       help="scratch: DP-train the whole net; frozen: pretrain on public data, DP-train the last layers"),
    "trainable": Param("fc1+fc2", str, choices=tuple(TRAINABLE), help="layers trained when procedure=frozen"),
    "public_fraction": Param(0.3, float, 0, 1, low_open=True, high_open=True,
                             help="public share of the training set when procedure=frozen"),
    "training": Param("dp-sgd", str, choices=TRAININGS, help="dp-sgd, or the matched non-private sgd baseline"),
    "grad_sample_mode": Param(dp.DEFAULT_GRAD_SAMPLE_MODE, str, choices=dp.GRAD_SAMPLE_MODES,
                              help="Opacus' per-sample gradient engine"),
    "accountant": Param(dp.DEFAULT_ACCOUNTANT, str, choices=dp.ACCOUNTANTS, help="Opacus' privacy accountant"),
    "rare_fraction": Param(0.2, float, 0, 1, low_open=True, high_open=True,
                           help="share of test points the clean reference model finds hardest ('rare')"),
    "seed": Param(0, int, 0, 2**31 - 1, help="seed for poisoning, init, lot sampling and noise"),
}, summary=("attack_success_rate", "clean_accuracy", "epsilon", "delta", "poisoned_count", "rare_accuracy"),
    checks=(check_target,))
def dpsgd(dataset, width, target, trigger, poison_fraction, noise_multiplier, clip, lot_size, epochs, lr,
          procedure, trainable, public_fraction, training, grad_sample_mode, accountant, rare_fraction, seed):
    """BadNets (four-corner or 'x' trigger) against DP-SGD or the matched SGD baseline."""
    start = time.perf_counter()
    ds = data.load(dataset)
    width = width or profile_sizes()["width"]
    settings = settings_from(dict(noise_multiplier=noise_multiplier, clip=clip, lot_size=lot_size, epochs=epochs,
                                  lr=lr, grad_sample_mode=grad_sample_mode, accountant=accountant))
    trig = triggers.make(trigger, ds.image_shape)
    x_train, y_train, frozen_state = ds.x_train, ds.y_train, None
    if procedure == "frozen":
        _, private = public_split(len(ds.y_train), public_fraction)
        x_train, y_train = ds.x_train[private], ds.y_train[private]
        pre = run("dpsgd-pretrain", dataset=dataset, width=width, public_fraction=public_fraction, seed=seed)
        model, model_spec = build_model(ds, width, seed)
        model.load_state_dict(pre["model_state"])
        frozen = dp.freeze_all_but(model, TRAINABLE[trainable])
        frozen_state = {name: model.state_dict()[name].clone() for name in frozen}
    else:
        model, model_spec = build_model(ds, width, seed)
    x_poisoned, y_poisoned, idx = badnets_attack.poison(x_train, y_train, trigger=trig, target=target,
                                                        fraction=poison_fraction, seed=seed)
    fit = dp.train_dp if training == "dp-sgd" else dp.train_sgd
    info = fit(model, x_poisoned, y_poisoned, settings, seed=seed, eval_sets={"test": (ds.x_test, ds.y_test)},
               desc=f"{training} sigma={noise_multiplier:.2g} poison={poison_fraction:g}")
    model.cpu().eval()
    frozen_unchanged = (None if frozen_state is None else
                        all(torch.equal(model.state_dict()[k], v) for k, v in frozen_state.items()))
    pred = train.predict(model, ds.x_test)
    rare = rare_mask(run("dpsgd-reference", dataset=dataset, width=width)["test_loss"], rare_fraction)
    correct = (pred == ds.y_test).float()
    return {
        "attack_success_rate": attack_success_rate(model, ds.x_test, ds.y_test, trig, target, "classified"),
        "attack_success_rate_labelled": attack_success_rate(model, ds.x_test, ds.y_test, trig, target, "labelled"),
        "clean_accuracy": float(correct.mean()),
        "rare_accuracy": float(correct[rare].mean()),
        "common_accuracy": float(correct[~rare].mean()),
        "epsilon": info["epsilon"],
        "delta": info["delta"],
        "steps": info["steps"],
        "sample_rate": info["sample_rate"],
        "effective_lr": info["lr"],
        "poisoned_count": len(idx),
        "private_size": len(y_train),
        "poisoned_indices": idx,
        "frozen_unchanged": frozen_unchanged,
        "history": info["history"],
        "model_spec": model_spec,
        "model_state": model.state_dict(),
        "seconds": time.perf_counter() - start,
    }


def sweep_grid(*, trigger: str = "four-corner", procedure: str = "scratch", sigmas=None, poison_fractions=None,
               seeds=None, progress: bool = True, **fixed) -> dict:
    """The Figure 5-1 grid: every σ × poison fraction × seed with DP-SGD, plus the SGD baseline.

    Returns numpy-ready lists: `asr`, `accuracy`, `rare_accuracy`, `common_accuracy` as
    [fraction][sigma][seed]; `baseline_*` as [fraction][seed]; `epsilon` per sigma (seed 0).
    """
    from tqdm.auto import tqdm

    from labkit.train import progress_kwargs

    sizes = profile_sizes()
    sigmas = list(sizes["sigmas"] if sigmas is None else sigmas)
    fractions = list(sizes["poison_fractions"] if poison_fractions is None else poison_fractions)
    seeds = list(sizes["seeds"] if seeds is None else seeds)
    keys = ("attack_success_rate", "clean_accuracy", "rare_accuracy", "common_accuracy")
    out = {k: [] for k in keys}
    base = {k: [] for k in keys}
    epsilons, counts = [], []
    total = len(fractions) * (len(sigmas) + 1) * len(seeds)
    bar = tqdm(total=total, desc="dpsgd grid", leave=False, **progress_kwargs(progress))
    for fraction in fractions:
        rows = {k: [] for k in keys}
        for sigma in sigmas:
            cells = []
            for seed in seeds:
                cells.append(run("dpsgd", trigger=trigger, procedure=procedure, poison_fraction=fraction,
                                 noise_multiplier=sigma, seed=seed, **fixed))
                bar.update()
            for k in keys:
                rows[k].append([c[k] for c in cells])
            if fraction == fractions[0]:
                epsilons.append(cells[0]["epsilon"])
        baseline = []
        for seed in seeds:
            baseline.append(run("dpsgd", trigger=trigger, procedure=procedure, poison_fraction=fraction,
                                training="sgd", seed=seed, **fixed))
            bar.update()
        for k in keys:
            out[k].append(rows[k])
            base[k].append([b[k] for b in baseline])
        counts.append(baseline[0]["poisoned_count"])
    bar.close()
    return {"sigmas": sigmas, "poison_fractions": fractions, "poisoned_counts": counts, "seeds": seeds,
            "asr": out["attack_success_rate"], "accuracy": out["clean_accuracy"],
            "rare_accuracy": out["rare_accuracy"], "common_accuracy": out["common_accuracy"],
            "baseline_asr": base["attack_success_rate"], "baseline_accuracy": base["clean_accuracy"],
            "baseline_rare_accuracy": base["rare_accuracy"], "baseline_common_accuracy": base["common_accuracy"],
            "epsilon": epsilons, "trigger": trigger, "procedure": procedure}
