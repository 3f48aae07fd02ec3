"""BadNets end to end (notebook 01): poison → train → clean accuracy and attack success;
and the thesis' simple detection scheme."""
from __future__ import annotations

import time

import torch

from labkit import config, data, models, train, triggers
from labkit.attacks import badnets as badnets_attack
from labkit.defenses import filtering
from labkit.experiments import DATASET, POISON_FRACTION, SEED, TARGET, Config, Param, register
from labkit.metrics import attack_success_classified, attack_success_labelled, clean_accuracy

COMMON = {
    "dataset": DATASET,
    "target": TARGET,
    "trigger": Param("badnets", str, choices=triggers.PRESETS, help="trigger preset"),
    "amplitude": Param(255.0, float, 0, 255, low_open=True, help="trigger amplitude, 0–255 pixel scale"),
    "seed": SEED,
}


def fit(model_arch: str, ds: data.Dataset, x: torch.Tensor, y: torch.Tensor, *, profile: config.Profile,
        seed: int, epochs: int | None = None, augment: bool = False, norm: str = "none", desc: str = "train",
        curve: bool = True):
    """A fresh model of `model_arch` trained on (x, y) with `profile`'s settings: (model, history, spec).
    `curve`: test accuracy after every epoch in the history (the learning curve a notebook plots); False when
    only the model is wanted — the same weights, without an evaluation pass over the test set each epoch."""
    arch = models.default_arch(ds.name) if model_arch == "auto" else model_arch
    model = models.build(arch, ds.image_shape, ds.num_classes, norm, seed=seed)
    history = train.train(model, x, y, epochs=epochs or profile.epochs_for(len(y)), batch_size=profile.batch_size,
                          lr=profile.learning_rate, augment=augment, seed=seed, desc=desc,
                          device=config.device(profile),
                          eval_sets={"test": (ds.x_test, ds.y_test)} if curve else None)
    return model.cpu(), history, models.spec(arch, ds.image_shape, ds.num_classes, norm)


@register("badnets", {
    **COMMON,
    "poison_fraction": POISON_FRACTION,
    "epochs": Param(None, int, 1, 1000, optional=True, help="training epochs (default: the profile's)"),
    "augment": Param(False, bool, help="random crop + horizontal flip while training"),
    "arch": Param("auto", str, choices=("auto",) + models.ARCHITECTURES, help="victim architecture"),
}, summary=("clean_accuracy", "attack_success_rate", "attack_success_rate_classified", "poisoned_count"))
def badnets(cfg: Config) -> dict:
    """Gu et al.'s attack: stamp + relabel a fraction of the training set, train, measure."""
    start = time.perf_counter()
    ds = data.load(cfg.dataset, profile=cfg.profile)
    trig = triggers.make(cfg.trigger, ds.image_shape, cfg.amplitude)
    x_poisoned, y_poisoned, idx = badnets_attack.poison(ds.x_train, ds.y_train, trigger=trig, target=cfg.target,
                                                        fraction=cfg.poison_fraction, seed=cfg.seed)
    model, history, model_spec = fit(cfg.arch, ds, x_poisoned, y_poisoned, profile=cfg.profile, seed=cfg.seed,
                                     epochs=cfg.epochs, augment=cfg.augment, desc=f"badnets {cfg.poison_fraction:g}")
    return {
        "clean_accuracy": clean_accuracy(model, ds.x_test, ds.y_test),
        "attack_success_rate": attack_success_labelled(model, ds.x_test, ds.y_test, trig, cfg.target),
        "attack_success_rate_classified": attack_success_classified(model, ds.x_test, ds.y_test, trig, cfg.target),
        "poisoned_count": len(idx),
        "poisoned_indices": idx,
        "history": history,
        "model_spec": model_spec,
        "model_state": model.state_dict(),
        "seconds": time.perf_counter() - start,
    }


def trusted_label_scores(ds: data.Dataset, x_train: torch.Tensor, y_train: torch.Tensor,
                         exclude: torch.Tensor, trusted_size: int, seed: int, profile: config.Profile) -> torch.Tensor:
    """The thesis' scheme: train on `trusted_size` clean training images (none of `exclude`),
    return (N,) the probability it gives each (possibly poisoned) training sample's label."""
    pick = data.untouched_sample(len(y_train), trusted_size, seed, exclude=exclude)
    model, _, _ = fit("auto", ds, ds.x_train[pick], ds.y_train[pick], profile=profile, seed=seed,
                      epochs=4 * profile.epochs, desc="trusted model", curve=False)  # a small set needs more passes
    return filtering.label_probability(model, x_train, y_train)


@register("detection", {
    **COMMON,
    "poison_fraction": POISON_FRACTION.but(default=0.05),
    "trusted_size": Param(None, int, 10, 100000, optional=True, help="trusted clean images (default: the profile's)"),
}, summary=("poisoned_count", "ks", "poisoned_found"))
def detection(cfg: Config) -> dict:
    """Rank BadNets-poisoned training samples by a trusted model's probability of their label."""
    ds = data.load(cfg.dataset, profile=cfg.profile)
    trig = triggers.make(cfg.trigger, ds.image_shape, cfg.amplitude)
    x_poisoned, y_poisoned, idx = badnets_attack.poison(ds.x_train, ds.y_train, trigger=trig, target=cfg.target,
                                                        fraction=cfg.poison_fraction, seed=cfg.seed)
    scores = trusted_label_scores(ds, x_poisoned, y_poisoned, idx, cfg.trusted_size or cfg.profile.trusted_size,
                                  cfg.seed, cfg.profile)
    ks = sorted({k for k in (10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if k <= len(scores)} | {len(scores)})
    return {
        "scores": scores,
        "poisoned_indices": idx,
        "poisoned_count": len(idx),
        "ks": ks,
        "poisoned_found": filtering.poisoned_among_lowest(scores, idx, ks),
        "expected_at_random": [k * len(idx) / len(scores) for k in ks],
    }
