"""The arena (notebook 08): every attack against every defense, one matrix.

`arena-attack` trains (or takes from the seeds' own experiments' cache) one backdoored model per (attack,
seed); every post-training defense (Neural Cleanse, fine-pruning, STRIP) starts from that model, and every
training-time defense (the thesis' detection filter, spectral signatures, activation clustering, DP-SGD)
starts from that attack's poisoned training set. `arena-cell` is one (attack, defense, seed), cached on its
own; `arena` gathers the matrix: mean ± std over the profile's seeds.

Attack success everywhere: the share of test images *not labelled* the target that end up classified as the
target once triggered (for STRIP: classified as the target *and* let through by the filter). Clean accuracy:
on the clean test set (for STRIP: correct *and* let through, so false rejections count as a cost).
"""
from __future__ import annotations

import functools
import math
import time

import torch

from labkit import cache, config, data, models, train, triggers
from labkit.attacks import badnets as badnets_attack
from labkit.attacks import blended, sig, wanet
from labkit.defenses import activation_clustering, filtering, representations, spectral, strip
from labkit.defenses import dpsgd as dp
from labkit.defenses import fine_pruning as fp
from labkit.defenses import nc_mitigation as mitigation
from labkit.defenses import neural_cleanse as nc
from labkit.errors import LabkitError
from labkit.experiments import DATASET, SEED, TARGET, Config, Param, get, register, run
from labkit.experiments import dpsgd as dpsgd_experiment
from labkit.experiments import fine_pruning as fp_experiment
from labkit.experiments import label_consistent as lc_experiment
from labkit.experiments import neural_cleanse as nc_experiment
from labkit.experiments.badnets import fit

ATTACKS = ("badnets", "label-consistent", "blind", "pruning-aware", "blended", "sig", "wanet")
DEFENSES = ("none", "detection-filter", "spectral", "activation-clustering", "dp-sgd", "neural-cleanse",
            "fine-pruning", "strip")
FILTERS = ("detection-filter", "spectral", "activation-clustering")  # drop training samples, retrain
TRAINING_TIME = FILTERS + ("dp-sgd",)  # need the poisoned training set

POISON_FRACTION = 0.05  # dirty-label attacks: 5% of the training set (a third of the target class)
CLEAN_LABEL_FRACTION = 0.5  # label-consistent and SIG: half of the target class (the thesis' headline)
KEY_SEED = 7  # the attacker's fixed key: Blended's pattern and WaNet's warp are the same for every run seed
STRIP_FRR = 0.01  # STRIP's threshold: 1% of the defender's clean images rejected
FILTER_BOUND = 0.05  # the defenders' bound on the poisoned share of the training set (the filter drops 1.5×)
SPECTRAL_EPSILON = 1 / 3  # spectral signatures' bound on the poisoned share of a class (removes 1.5× per class)
PRUNE_PERCENT = 80.0  # fine-pruning: share of last-conv channels pruned (Liu et al. prune until accuracy drops)
DP_NOISE = 1.0  # DP-SGD's σ (the thesis' headline)

NOT_APPLICABLE = {
    ("blind", d): "the blind attack poisons the training code's loss, not the data: there is no poisoned "
                  "sample to drop, and retraining runs the compromised code again" for d in TRAINING_TIME
}

# This experiment's sizes: `nc_samples` and `nc_epochs` for Neural Cleanse's reverse engineering (notebook 05
# gives it 120 epochs; the arena 40, with the same early stop), `strip_n` STRIP's overlays per input (the
# report's Table 5 uses 10, Gao et al. 100), `eval_size` the clean test inputs STRIP screens, `strip_holdout` the
# defender's clean images STRIP overlays and calibrates on. DP-SGD trains for the victims' own epoch budget
# (the profile's `epochs`, capped at `max_steps` lots), half of notebook 03's 30 epochs on digits.
SIZES = config.Sizes(
    ci=dict(nc_samples=64, nc_epochs=30, strip_n=10, eval_size=100, strip_holdout=200),
    lab=dict(nc_samples=128, nc_epochs=40, strip_n=20, eval_size=300, strip_holdout=200),
    paper=dict(nc_samples=1000, nc_epochs=300, strip_n=100, eval_size=2000, strip_holdout=1000),
)

ATTACK_KNOBS = {
    "dataset": DATASET,
    "attack": Param("badnets", str, choices=ATTACKS, help="the attack (a row of the matrix)"),
    "target": TARGET,
    "seed": SEED,
}


def sig_signal(image_shape, strength: float | None = None) -> torch.Tensor:
    """SIG's (C, H, W) signal at amplitude `strength` (Δ, 0–255 scale; None: the paper's Δ = 20)."""
    return sig.signal(image_shape, sig.DELTA if strength is None else strength)


def wanet_field(image_shape, strength: float | None = None) -> torch.Tensor:
    """WaNet's (H, W, 2) warp from the attacker's key at strength s (None: the paper's s = 0.5)."""
    return wanet.warping_field(image_shape, KEY_SEED, strength=wanet.STRENGTH if strength is None else strength)


def trigger_of(attack: str, image_shape, strength: float | None = None) -> callable:
    """The attack's test-time trigger: x (N, C, H, W) in [0, 1] → triggered copies. `strength` sets SIG's Δ or
    WaNet's s (None: the paper's; the other attacks have none)."""
    if attack in ("badnets", "pruning-aware", "blind", "label-consistent"):
        return triggers.make("badnets", image_shape).apply
    if attack == "blended":
        return functools.partial(blended.blend, pattern=blended.random_pattern(image_shape, KEY_SEED),
                                 alpha=blended.ALPHA)
    if attack == "sig":
        return functools.partial(sig.add, v=sig_signal(image_shape, strength))
    if attack == "wanet":
        return functools.partial(wanet.warp, field=wanet_field(image_shape, strength))
    raise LabkitError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACKS)}")


def lc_config(cfg: Config) -> Config:
    """The label-consistent experiment's headline setting for this dataset, target and seed."""
    return get("label-consistent").resolve({"dataset": cfg.dataset, "target": cfg.target, "seed": cfg.seed,
                                            "poison_fraction": CLEAN_LABEL_FRACTION}, cfg.profile.name)


def poisoned_training_set(cfg: Config, ds: data.Dataset, strength: float | None = None):
    """(x', y', poisoned indices) the attack hands the victim's training; None for the blind attack.
    `strength`: SIG's Δ or WaNet's s (None: the paper's)."""
    x, y, target, seed = ds.x_train, ds.y_train, cfg.target, cfg.seed
    shape = ds.image_shape
    if cfg.attack in ("badnets", "pruning-aware"):
        return badnets_attack.poison(x, y, trigger=triggers.make("badnets", shape), target=target,
                                     fraction=POISON_FRACTION, seed=seed)
    if cfg.attack == "label-consistent":
        x_p, y_p, idx, *_ = lc_experiment.poisoned_set(ds, lc_config(cfg))
        return x_p, y_p, idx
    if cfg.attack == "blended":
        return blended.poison(x, y, pattern=blended.random_pattern(shape, KEY_SEED), alpha=blended.ALPHA,
                              target=target, fraction=POISON_FRACTION, seed=seed)
    if cfg.attack == "sig":
        return sig.poison(x, y, signal_image=sig_signal(shape, strength), target=target,
                          fraction=CLEAN_LABEL_FRACTION, seed=seed)
    if cfg.attack == "wanet":
        x_p, y_p, idx, _ = wanet.poison(x, y, field=wanet_field(shape, strength), target=target,
                                        fraction=POISON_FRACTION, seed=seed)
        return x_p, y_p, idx
    return None


def evaluate(model, ds: data.Dataset, apply, target: int) -> dict:
    """Clean accuracy on the test set and attack success on its triggered images not labelled `target`."""
    others = ds.y_test != target
    return {"clean_accuracy": train.accuracy(model, ds.x_test, ds.y_test),
            "attack_success_rate": float((train.predict(model, apply(ds.x_test[others])) == target).float().mean())}


@register("arena-attack", ATTACK_KNOBS,
          summary=("clean_accuracy", "attack_success_rate", "clean_model_rate", "poisoned_count"))
def arena_attack(cfg: Config) -> dict:
    """One backdoored model per (attack, seed), through the seeds' own experiments where they have one."""
    start = time.perf_counter()
    ds = data.load(cfg.dataset, profile=cfg.profile)
    profile, common = cfg.profile.name, {"dataset": cfg.dataset, "target": cfg.target, "seed": cfg.seed}
    if cfg.attack == "badnets":
        result = run("badnets", profile=profile, **common, poison_fraction=POISON_FRACTION)
    elif cfg.attack == "pruning-aware":
        result = run("pruning-aware", profile=profile, **common, poison_fraction=POISON_FRACTION)
    elif cfg.attack == "label-consistent":
        result = run("label-consistent", profile=profile, **dict(lc_config(cfg)))
    elif cfg.attack == "blind":
        result = run("blind", profile=profile, **common)
    else:
        x_p, y_p, idx = poisoned_training_set(cfg, ds)
        model, _, spec = fit("auto", ds, x_p, y_p, profile=cfg.profile, seed=cfg.seed, desc=f"arena {cfg.attack}",
                                curve=False)
        result = {"model_state": model.state_dict(), "model_spec": spec, "poisoned_indices": idx}
    model = models.from_result(result)
    apply = trigger_of(cfg.attack, ds.image_shape)
    clean = models.from_result(run("badnets", profile=profile, **common, poison_fraction=0.0))
    others = ds.x_test[ds.y_test != cfg.target][:8]
    poisoned = result.get("poisoned_indices", torch.empty(0, dtype=torch.long))
    return {**evaluate(model, ds, apply, cfg.target),
            # how often a clean model already sends triggered inputs to the target: the floor a backdoor beats
            "clean_model_rate": evaluate(clean, ds, apply, cfg.target)["attack_success_rate"],
            "poisoned_count": len(poisoned), "poisoned_indices": poisoned,
            "examples_clean": others, "examples_triggered": apply(others),
            "model_spec": result["model_spec"], "model_state": result["model_state"],
            "seconds": time.perf_counter() - start}


def defender_clean(ds: data.Dataset, size: int, seed: int, poisoned: torch.Tensor):
    """`size` training images the attacker did not touch, with their true labels (the defender's own)."""
    pick = data.untouched_sample(len(ds.y_train), size, seed + 1, exclude=poisoned)
    return ds.x_train[pick], ds.y_train[pick]


def trusted_model(cfg: Config, ds: data.Dataset):
    """The thesis' trusted model: trained on the profile's `trusted_size` clean training images (the defender's
    own clean copies), four times the victims' epochs. One per (dataset, seed), shared by every attack's cell."""
    size, seed, profile = cfg.profile.trusted_size, cfg.seed, cfg.profile

    def train_trusted() -> dict:
        pick = data.untouched_sample(len(ds.y_train), size, seed)
        model, _, spec = fit("auto", ds, ds.x_train[pick], ds.y_train[pick], profile=profile, seed=seed,
                             epochs=4 * profile.epochs, desc="trusted model", curve=False)
        return {"model_state": model.state_dict(), "model_spec": spec}
    key = {"dataset": cfg.dataset, "seed": seed, "trusted_size": size}
    return models.from_result(cache.memoize("arena-trusted", key, train_trusted, profile=profile, module=__name__))


def filtered_retrain(cfg: Config, ds: data.Dataset, attacked: dict) -> dict:
    """Drop what the filter flags from the poisoned training set, retrain from scratch, measure."""
    x_p, y_p, idx = poisoned_training_set(cfg, ds)
    if cfg.defense == "detection-filter":
        scores = filtering.label_probability(trusted_model(cfg, ds), x_p, y_p)
        flagged = torch.zeros(len(y_p), dtype=torch.bool)
        flagged[torch.argsort(scores, stable=True)[:round(1.5 * FILTER_BOUND * len(y_p))]] = True
    else:
        reps = representations.embeddings(models.from_result(attacked), x_p)
        flagged = (spectral.flag(reps, y_p, SPECTRAL_EPSILON) if cfg.defense == "spectral"
                   else activation_clustering.flag(reps, y_p, seed=cfg.seed))
    removed, clean_share = representations.removed_share(flagged, idx)
    model, _, _ = fit("auto", ds, x_p[~flagged], y_p[~flagged], profile=cfg.profile, seed=cfg.seed,
                      desc=f"arena {cfg.attack} after {cfg.defense}", curve=False)
    return {**evaluate(model, ds, trigger_of(cfg.attack, ds.image_shape), cfg.target),
            "removed_poison": removed, "removed_count": int(flagged.sum()), "removed_clean_share": clean_share}


def dp_retrain(cfg: Config, ds: data.Dataset) -> dict:
    """DP-SGD at σ = 1 on the poisoned training set: notebook 03's model and lot, the victims' epochs."""
    x_p, y_p, _ = poisoned_training_set(cfg, ds)
    sizes = dpsgd_experiment.SIZES.of(cfg.profile)
    model, _ = dpsgd_experiment.build_model(ds, sizes["width"], cfg.seed)
    epochs = dpsgd_experiment.default_epochs(cfg.profile, len(y_p), sizes["lot_size"], cfg.profile.epochs)
    settings = dp.DPSettings(noise_multiplier=DP_NOISE, lot_size=sizes["lot_size"], epochs=epochs)
    info = dp.train_dp(model, x_p, y_p, settings, seed=cfg.seed, device=cfg.device, progress=False)
    return {**evaluate(model.cpu().eval(), ds, trigger_of(cfg.attack, ds.image_shape), cfg.target),
            "epsilon": info["epsilon"]}


def neural_cleanse_then_unlearn(cfg: Config, ds: data.Dataset, model, poisoned: torch.Tensor) -> dict:
    """Reverse-engineer every label's trigger; if the MAD test flags labels, unlearn their reversed
    triggers (Wang et al.'s patch); if it flags none, the model ships as it is."""
    sizes = cfg.sizes(SIZES)
    x_clean = nc_experiment.defender_sample(ds, sizes["nc_samples"], cfg.seed)
    found = nc.reverse_engineer(model, x_clean, ds.num_classes, epochs=sizes["nc_epochs"], seed=cfg.seed,
                                device=cfg.device, progress=False)
    verdict = nc.detect(found["l1_norms"])
    patched = model
    if verdict["flagged_labels"]:
        stamps = [nc_experiment.reversed_trigger(found, label) for label in verdict["flagged_labels"]]
        patched, _ = mitigation.unlearn(model, ds.x_train, ds.y_train, stamps, seed=cfg.seed, device=cfg.device)
    return {**evaluate(patched, ds, trigger_of(cfg.attack, ds.image_shape), cfg.target),
            "flagged_labels": verdict["flagged_labels"], "detected": cfg.target in verdict["flagged_labels"],
            "anomaly_index": float(verdict["anomaly_index"][cfg.target])}


def fine_prune(cfg: Config, ds: data.Dataset, model, poisoned: torch.Tensor) -> dict:
    """Prune the 80% most dormant last-conv channels on the defender's clean images, fine-tune on them."""
    sizes = fp_experiment.SIZES.of(cfg.profile)
    x_clean, y_clean = defender_clean(ds, sizes["clean_size"], cfg.seed, poisoned)
    pruned, _ = fp.fine_prune(model, x_clean, y_clean, PRUNE_PERCENT, epochs=sizes["finetune_epochs"], lr=3e-3,
                              seed=cfg.seed, device=cfg.device)
    return evaluate(pruned, ds, trigger_of(cfg.attack, ds.image_shape), cfg.target)


def strip_filter(cfg: Config, ds: data.Dataset, model, poisoned: torch.Tensor) -> dict:
    """STRIP as an input filter: threshold at 1% FRR on the defender's clean images; a triggered input counts
    as a success only if it passes the filter *and* lands on the target."""
    sizes = cfg.sizes(SIZES)
    x_holdout, _ = defender_clean(ds, sizes["strip_holdout"], cfg.seed, poisoned)
    order = torch.randperm(len(ds.y_test), generator=torch.Generator().manual_seed(cfg.seed + 2))
    pick = order[:sizes["eval_size"]]
    x, y = ds.x_test[pick], ds.y_test[pick]
    x_trig = trigger_of(cfg.attack, ds.image_shape)(x[y != cfg.target])
    n = sizes["strip_n"]
    threshold = strip.threshold_at_frr(strip.entropy_scores(model, x_holdout, x_holdout, n, seed=cfg.seed), STRIP_FRR)
    passed_clean = ~strip.is_trojaned(strip.entropy_scores(model, x, x_holdout, n, seed=cfg.seed + 1), threshold)
    passed_trig = ~strip.is_trojaned(strip.entropy_scores(model, x_trig, x_holdout, n, seed=cfg.seed + 2), threshold)
    return {"clean_accuracy": float(((train.predict(model, x) == y) & passed_clean).float().mean()),
            "attack_success_rate": float(((train.predict(model, x_trig) == cfg.target) & passed_trig).float().mean()),
            "rejected_triggered": float((~passed_trig).float().mean()),
            "rejected_clean": float((~passed_clean).float().mean())}


@register("arena-cell", {**ATTACK_KNOBS,
                         "defense": Param("none", str, choices=DEFENSES, help="the defense (a column of the matrix)")},
          summary=("clean_accuracy", "attack_success_rate", "applicable"))
def arena_cell(cfg: Config) -> dict:
    """One cell: the attack's model (or poisoned data) through one defense."""
    start = time.perf_counter()
    reason = NOT_APPLICABLE.get((cfg.attack, cfg.defense))
    if reason:
        return {"applicable": False, "why": reason, "clean_accuracy": None, "attack_success_rate": None}
    ds = data.load(cfg.dataset, profile=cfg.profile)
    attacked = run("arena-attack", profile=cfg.profile.name,
                   **{k: cfg[k] for k in ("dataset", "attack", "target", "seed")})
    model, poisoned = models.from_result(attacked), attacked["poisoned_indices"]
    if cfg.defense == "none":
        out = {k: attacked[k] for k in ("clean_accuracy", "attack_success_rate")}
    elif cfg.defense in FILTERS:
        out = filtered_retrain(cfg, ds, attacked)
    elif cfg.defense == "dp-sgd":
        out = dp_retrain(cfg, ds)
    else:
        step = {"neural-cleanse": neural_cleanse_then_unlearn, "fine-pruning": fine_prune, "strip": strip_filter}
        out = step[cfg.defense](cfg, ds, model, poisoned)
    return {**out, "applicable": True, "undefended_attack_success_rate": attacked["attack_success_rate"],
            "clean_model_rate": attacked["clean_model_rate"], "seconds": time.perf_counter() - start}


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None, None
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False))


STATS = ("attack_success_rate", "clean_accuracy", "removed_poison", "removed_clean_share", "rejected_triggered",
         "rejected_clean", "clean_model_rate", "undefended_attack_success_rate", "anomaly_index", "epsilon")


@register("arena", {"dataset": DATASET, "target": TARGET},
          summary=("attacks", "defenses", "seeds"))
def arena(cfg: Config) -> dict:
    """The matrix: every (attack, defense) cell, mean ± std over the profile's seeds."""
    from tqdm.auto import tqdm

    seeds = cfg.profile.seeds
    cells = []
    grid = [(a, d) for a in ATTACKS for d in DEFENSES]
    for attack, defense in tqdm(grid, desc="arena", **train.progress_kwargs(True)):
        runs = [run("arena-cell", profile=cfg.profile.name, dataset=cfg.dataset, target=cfg.target, attack=attack,
                    defense=defense, seed=seed) for seed in seeds]
        cell = {"attack": attack, "defense": defense, "applicable": runs[0]["applicable"]}
        if not cell["applicable"]:
            cell["why"] = runs[0]["why"]
        for key in STATS:
            mean, std = _mean_std([r.get(key) for r in runs])
            if mean is not None:
                cell[key], cell[f"{key}_std"] = mean, std
        if defense == "neural-cleanse":
            cell["detected"] = sum(bool(r.get("detected")) for r in runs) / len(runs)
        cells.append(cell)
    return {"attacks": list(ATTACKS), "defenses": list(DEFENSES), "seeds": list(seeds), "cells": cells}
