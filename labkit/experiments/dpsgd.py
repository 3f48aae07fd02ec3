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
from labkit.experiments import DATASET, POISON_FRACTION, SEED, TARGET, Config, Param, register, run
from labkit.metrics import attack_success_classified, attack_success_labelled, clean_accuracy
from labkit.seed import generator

DP_TRIGGERS = ("four-corner", "x")
PROCEDURES = ("scratch", "frozen")
TRAININGS = ("dp-sgd", "sgd")
TRAINABLE = {"fc2": ("fc2",), "fc1+fc2": ("fc1", "fc2"), "conv2+fc1+fc2": ("conv2", "fc1", "fc2")}
WIDTHS = (8, 16, 32)
REFERENCE_SEED = 1000  # the clean reference model's seed, apart from the runs' seeds


# This paper's sizes (lab: see the issue-5 report for the timing); the grids are Figure 5-1's.
SIZES = config.Sizes(
    ci=dict(epochs=6, lot_size=128, width=8, sigmas=(0.0, 1.0), poison_fractions=(0.01, 0.1),
            x_poison_fractions=(0.1,), x_sigmas=(0.0, 1.0), frozen_sigmas=(0.0, 1.0), seeds=(0,)),
    # The 'x' and frozen panels are second looks at the same curve: three σ (0, 1, 2) show its shape and
    # give the table's σ = 0 → 1 row; the full σ grid is spent on the main panel (issue 15: the notebook
    # cost 44 DP-SGD/SGD trainings, 12 of them for the 'x' panel).
    lab=dict(epochs=30, lot_size=128, width=32, sigmas=(0.0, 1 / 3, 2 / 3, 1.0, 2.0), poison_fractions=(0.01, 0.03),
             x_poison_fractions=(0.03,), x_sigmas=(0.0, 1.0, 2.0), frozen_sigmas=(0.0, 1.0, 2.0), seeds=(0, 1)),
    paper=dict(epochs=60, lot_size=256, width=32, sigmas=(0.0, 1 / 3, 2 / 3, 1.0, 1.5, 2.0),
               poison_fractions=(0.001, 0.003, 0.01, 0.03, 0.1), x_poison_fractions=(0.01, 0.03, 0.1),
               x_sigmas=(0.0, 1 / 3, 2 / 3, 1.0, 1.5, 2.0), frozen_sigmas=(0.0, 1 / 3, 2 / 3, 1.0, 2.0), seeds=(0, 1, 2)),
)


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


def default_epochs(profile: config.Profile, train_images: int, lot_size: int, epochs: int) -> int:
    """This paper's `epochs`, capped like a victim's at the profile's `max_steps` lots (digits: 11 lots an
    epoch, never capped in `lab`; 10,000 MNIST images: 79 lots an epoch, 8 epochs instead of 30)."""
    if profile.max_steps is None:
        return epochs
    return max(1, min(epochs, -(-profile.max_steps // dp.steps_for(train_images, lot_size, 1))))


def settings_from(cfg: Config, train_images: int) -> dp.DPSettings:
    sizes = cfg.sizes(SIZES)
    lot_size = cfg.lot_size or sizes["lot_size"]
    epochs = cfg.epochs or default_epochs(cfg.profile, train_images, lot_size, sizes["epochs"])
    return dp.DPSettings(noise_multiplier=cfg.noise_multiplier, max_grad_norm=cfg.clip, lot_size=lot_size,
                         epochs=epochs, lr=cfg.lr, grad_sample_mode=cfg.grad_sample_mode, accountant=cfg.accountant)


DATASET_KEYS = {
    "dataset": DATASET,
    "width": Param(None, int, choices=WIDTHS + (None,), optional=True,
                   help="small-CNN width (conv1 channels; default: the profile's)"),
}


@register("dpsgd-pretrain", {
    **DATASET_KEYS,
    "public_fraction": Param(0.3, float, 0, 1, low_open=True, high_open=True,
                             help="fraction of the training set that is public (clean) pretraining data"),
    "seed": SEED.but(help="seed for the pretrained model's init and order"),
}, summary=("public_size", "test_accuracy"))
def pretrain(cfg: Config) -> dict:
    """Procedure (b)'s first half: a non-private GroupNorm model on the clean public split."""
    ds = data.load(cfg.dataset, profile=cfg.profile)
    width = cfg.width or cfg.sizes(SIZES)["width"]
    public, _ = public_split(len(ds.y_train), cfg.public_fraction)
    model, model_spec = build_model(ds, width, cfg.seed)
    prof = cfg.profile
    history = train.train(model, ds.x_train[public], ds.y_train[public], epochs=2 * prof.epochs,
                          batch_size=prof.batch_size, lr=prof.learning_rate, seed=cfg.seed, device=cfg.device,
                          desc="public pretraining", eval_sets={"test": (ds.x_test, ds.y_test)})
    return {"public_size": len(public), "test_accuracy": clean_accuracy(model.cpu(), ds.x_test, ds.y_test),
            "history": history, "model_spec": model_spec, "model_state": model.state_dict()}


@register("dpsgd-reference", {**DATASET_KEYS}, summary=("clean_accuracy",))
def reference(cfg: Config) -> dict:
    """A clean, non-private model (the SGD baseline's settings, seed 1000): its per-example
    test loss ranks the test points from easy to hard (rare) for the chapter-6 analysis."""
    ds = data.load(cfg.dataset, profile=cfg.profile)
    sizes = cfg.sizes(SIZES)
    model, _ = build_model(ds, cfg.width or sizes["width"], REFERENCE_SEED)
    settings = dp.DPSettings(lot_size=sizes["lot_size"],
                             epochs=default_epochs(cfg.profile, len(ds.y_train), sizes["lot_size"], sizes["epochs"]))
    dp.train_sgd(model, ds.x_train, ds.y_train, settings, seed=REFERENCE_SEED, device=cfg.device,
                 desc="reference model")
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
    "target": TARGET,
    "trigger": Param("four-corner", str, choices=DP_TRIGGERS, help="trigger preset, full amplitude"),
    "poison_fraction": POISON_FRACTION.but(default=0.01, help="fraction of the (private) training set poisoned"),
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
    "seed": SEED.but(help="seed for poisoning, init, lot sampling and noise"),
}, summary=("attack_success_rate_classified", "attack_success_rate", "clean_accuracy", "epsilon", "delta",
            "poisoned_count", "rare_accuracy"))
def dpsgd(cfg: Config) -> dict:
    """BadNets (four-corner or 'x' trigger) against DP-SGD or the matched SGD baseline."""
    start = time.perf_counter()
    ds = data.load(cfg.dataset, profile=cfg.profile)
    width, seed, target = cfg.width or cfg.sizes(SIZES)["width"], cfg.seed, cfg.target
    trig = triggers.make(cfg.trigger, ds.image_shape)
    x_train, y_train, frozen_state = ds.x_train, ds.y_train, None
    if cfg.procedure == "frozen":
        _, private = public_split(len(ds.y_train), cfg.public_fraction)
        x_train, y_train = ds.x_train[private], ds.y_train[private]
        pre = run("dpsgd-pretrain", profile=cfg.profile.name, dataset=cfg.dataset, width=width,
                  public_fraction=cfg.public_fraction, seed=seed)
        model, model_spec = build_model(ds, width, seed)
        model.load_state_dict(pre["model_state"])
        frozen = dp.freeze_all_but(model, TRAINABLE[cfg.trainable])
        frozen_state = {name: model.state_dict()[name].clone() for name in frozen}
    else:
        model, model_spec = build_model(ds, width, seed)
    x_poisoned, y_poisoned, idx = badnets_attack.poison(x_train, y_train, trigger=trig, target=target,
                                                        fraction=cfg.poison_fraction, seed=seed)
    settings = settings_from(cfg, len(y_train))
    fit = dp.train_dp if cfg.training == "dp-sgd" else dp.train_sgd
    # No per-epoch test evaluation: no figure reads it (the history keeps the training loss), and across
    # the notebook's ~40 trainings it cost ~5% of the time; the final accuracies are computed below.
    info = fit(model, x_poisoned, y_poisoned, settings, seed=seed, device=cfg.device,
               desc=f"{cfg.training} sigma={cfg.noise_multiplier:.2g} poison={cfg.poison_fraction:g}")
    model.cpu().eval()
    frozen_unchanged = (None if frozen_state is None else
                        all(torch.equal(model.state_dict()[k], v) for k, v in frozen_state.items()))
    pred = train.predict(model, ds.x_test)
    reference_loss = run("dpsgd-reference", profile=cfg.profile.name, dataset=cfg.dataset, width=width)["test_loss"]
    rare = rare_mask(reference_loss, cfg.rare_fraction)
    correct = (pred == ds.y_test).float()
    return {
        "attack_success_rate_classified": attack_success_classified(model, ds.x_test, ds.y_test, trig, target),
        "attack_success_rate": attack_success_labelled(model, ds.x_test, ds.y_test, trig, target),
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
               seeds=None, profile: str | None = None, progress: bool = True, **fixed) -> dict:
    """The Figure 5-1 grid: every σ × poison fraction × seed with DP-SGD, plus the SGD baseline, in
    `profile` (None: the active one).

    Returns numpy-ready lists: `asr` (the "classified" attack success, as in the thesis' DP chapter),
    `accuracy`, `rare_accuracy`, `common_accuracy` as [fraction][sigma][seed]; `baseline_*` as
    [fraction][seed]; `epsilon` per sigma (seed 0).
    """
    from tqdm.auto import tqdm

    from labkit.train import progress_kwargs

    profile = config.profile(profile).name
    sizes = SIZES.of(profile)
    sigmas = list(sizes["sigmas"] if sigmas is None else sigmas)
    fractions = list(sizes["poison_fractions"] if poison_fractions is None else poison_fractions)
    seeds = list(sizes["seeds"] if seeds is None else seeds)
    keys = ("attack_success_rate_classified", "clean_accuracy", "rare_accuracy", "common_accuracy")
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
                cells.append(run("dpsgd", profile=profile, trigger=trigger, procedure=procedure, poison_fraction=fraction,
                                 noise_multiplier=sigma, seed=seed, **fixed))
                bar.update()
            for k in keys:
                rows[k].append([c[k] for c in cells])
            if fraction == fractions[0]:
                epsilons.append(cells[0]["epsilon"])
        baseline = []
        for seed in seeds:
            baseline.append(run("dpsgd", profile=profile, trigger=trigger, procedure=procedure, poison_fraction=fraction,
                                training="sgd", seed=seed, **fixed))
            bar.update()
        for k in keys:
            out[k].append(rows[k])
            base[k].append([b[k] for b in baseline])
        counts.append(baseline[0]["poisoned_count"])
    bar.close()
    return {"sigmas": sigmas, "poison_fractions": fractions, "poisoned_counts": counts, "seeds": seeds,
            "asr": out["attack_success_rate_classified"], "accuracy": out["clean_accuracy"],
            "rare_accuracy": out["rare_accuracy"], "common_accuracy": out["common_accuracy"],
            "baseline_asr": base["attack_success_rate_classified"], "baseline_accuracy": base["clean_accuracy"],
            "baseline_rare_accuracy": base["rare_accuracy"], "baseline_common_accuracy": base["common_accuracy"],
            "epsilon": epsilons, "trigger": trigger, "procedure": procedure}
