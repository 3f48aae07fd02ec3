"""BadNets end to end (notebook 01): poison → train → clean accuracy and attack success;
and the thesis' simple detection scheme."""
from __future__ import annotations

import time

import torch

from labkit import config, data, models, train, triggers
from labkit.attacks import badnets as badnets_attack
from labkit.defenses import filtering
from labkit.experiments import Param, check_target, register
from labkit.metrics import attack_success_rate, clean_accuracy

COMMON = {
    "dataset": Param("digits", str, choices=tuple(data.DATASETS), help="dataset to poison"),
    "target": Param(0, int, 0, 42, help="the attacker's target label"),
    "trigger": Param("badnets", str, choices=triggers.PRESETS, help="trigger preset"),
    "amplitude": Param(255.0, float, 0, 255, low_open=True, help="trigger amplitude, 0–255 pixel scale"),
    "seed": Param(0, int, 0, 2**31 - 1, help="seed for poisoning, init and training order"),
}


def fit(model_arch: str, ds: data.Dataset, x: torch.Tensor, y: torch.Tensor, *, seed: int,
        epochs: int | None = None, augment: bool = False, norm: str = "none", desc: str = "train"):
    """A fresh model of `model_arch` trained on (x, y) with the profile's settings: (model, history)."""
    prof = config.profile()
    arch = models.default_arch(ds.name) if model_arch == "auto" else model_arch
    model = models.build(arch, ds.image_shape, ds.num_classes, norm, seed=seed)
    history = train.train(model, x, y, epochs=epochs or prof.epochs, batch_size=prof.batch_size,
                          lr=prof.learning_rate, augment=augment, seed=seed, desc=desc,
                          eval_sets={"test": (ds.x_test, ds.y_test)})
    return model.cpu(), history, models.spec(arch, ds.image_shape, ds.num_classes, norm)


@register("badnets", {
    **COMMON,
    "poison_fraction": Param(0.1, float, 0, 1, high_open=True, help="fraction of the training set poisoned"),
    "epochs": Param(None, int, 1, 1000, optional=True, help="training epochs (default: the profile's)"),
    "augment": Param(False, bool, help="random crop + horizontal flip while training"),
    "arch": Param("auto", str, choices=("auto",) + models.ARCHITECTURES, help="victim architecture"),
}, summary=("clean_accuracy", "attack_success_rate", "attack_success_rate_classified", "poisoned_count"),
    checks=(check_target,))
def badnets(dataset, poison_fraction, target, trigger, amplitude, seed, epochs, augment, arch):
    """Gu et al.'s attack: stamp + relabel a fraction of the training set, train, measure."""
    start = time.perf_counter()
    ds = data.load(dataset)
    trig = triggers.make(trigger, ds.image_shape, amplitude)
    x_poisoned, y_poisoned, idx = badnets_attack.poison(ds.x_train, ds.y_train, trigger=trig, target=target,
                                                        fraction=poison_fraction, seed=seed)
    model, history, model_spec = fit(arch, ds, x_poisoned, y_poisoned, seed=seed, epochs=epochs,
                                     augment=augment, desc=f"badnets {poison_fraction:g}")
    return {
        "clean_accuracy": clean_accuracy(model, ds.x_test, ds.y_test),
        "attack_success_rate": attack_success_rate(model, ds.x_test, ds.y_test, trig, target, "labelled"),
        "attack_success_rate_classified": attack_success_rate(model, ds.x_test, ds.y_test, trig, target, "classified"),
        "poisoned_count": len(idx),
        "poisoned_indices": idx,
        "history": history,
        "model_spec": model_spec,
        "model_state": model.state_dict(),
        "seconds": time.perf_counter() - start,
    }


def trusted_label_scores(ds: data.Dataset, x_train: torch.Tensor, y_train: torch.Tensor,
                         exclude: torch.Tensor, trusted_size: int, seed: int) -> torch.Tensor:
    """The thesis' scheme: train on `trusted_size` clean training images (none of `exclude`),
    return (N,) the probability it gives each (possibly poisoned) training sample's label."""
    pick = data.untouched_sample(len(y_train), trusted_size, seed, exclude=exclude)
    prof = config.profile()
    model, _, _ = fit("auto", ds, ds.x_train[pick], ds.y_train[pick], seed=seed,
                      epochs=4 * prof.epochs, desc="trusted model")  # a small set needs more passes
    return filtering.label_probability(model, x_train, y_train)


@register("detection", {
    **COMMON,
    "poison_fraction": Param(0.05, float, 0, 1, high_open=True, help="fraction of the training set poisoned"),
    "trusted_size": Param(None, int, 10, 100000, optional=True, help="trusted clean images (default: the profile's)"),
}, summary=("poisoned_count", "ks", "poisoned_found"), checks=(check_target,))
def detection(dataset, poison_fraction, target, trigger, amplitude, seed, trusted_size):
    """Rank BadNets-poisoned training samples by a trusted model's probability of their label."""
    ds = data.load(dataset)
    trig = triggers.make(trigger, ds.image_shape, amplitude)
    x_poisoned, y_poisoned, idx = badnets_attack.poison(ds.x_train, ds.y_train, trigger=trig, target=target,
                                                        fraction=poison_fraction, seed=seed)
    scores = trusted_label_scores(ds, x_poisoned, y_poisoned, idx, trusted_size or config.profile().trusted_size, seed)
    ks = sorted({k for k in (10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if k <= len(scores)} | {len(scores)})
    return {
        "scores": scores,
        "poisoned_indices": idx,
        "poisoned_count": len(idx),
        "ks": ks,
        "poisoned_found": filtering.poisoned_among_lowest(scores, idx, ks),
        "expected_at_random": [k * len(idx) / len(scores) for k in ks],
    }
