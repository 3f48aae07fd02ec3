"""Neural Cleanse end to end (notebook 05): take a BadNets model (or a clean one), reverse-engineer a
trigger for every label, run the MAD outlier test, then try the three mitigations with the reversed
trigger of the flagged label(s)."""
from __future__ import annotations

import time

import torch

from labkit import config, data, models, triggers
from labkit.attacks import badnets as badnets_attack
from labkit.defenses import nc_mitigation as mitigation
from labkit.defenses import neural_cleanse as nc
from labkit.experiments import DATASET, POISON_FRACTION, SEED, TARGET, Config, Param, register, run
from labkit.experiments.badnets import fit
from labkit.metrics import attack_success_labelled, clean_accuracy
from labkit.triggers import Trigger

MAX_INFECTED = 4  # one trigger per image corner

# The optimisation's sizes: `samples` clean images the defender uses, `epochs` the most epochs per label,
# `batch_size` (the reference: 1,000 images, batches of 32, up to 1,000 epochs); `trigger_sizes` the white
# squares of notebook 05's larger-trigger study.
SIZES = config.Sizes(
    ci=dict(samples=64, epochs=40, batch_size=32, trigger_sizes=(3, 6)),
    lab=dict(samples=128, epochs=120, batch_size=32, trigger_sizes=(3, 6)),
    paper=dict(samples=1000, epochs=1000, batch_size=32, trigger_sizes=(3, 5, 7, 9, 11)),
)


def corner_trigger(base: Trigger, corner: int) -> Trigger:
    """`base` rotated by 180° (corner 1), mirrored left-right (2) or up-down (3): the k-th infected
    label's own trigger in another corner. Corner 0 is `base` itself."""
    dims = {0: (), 1: (-2, -1), 2: (-1,), 3: (-2,)}[corner]
    if not dims:
        return base
    return Trigger(base.mask.flip(dims), base.pattern.flip(dims), base.amplitude, f"{base.name}-corner{corner}")


def attack_setup(dataset: str, trigger: str, trigger_size: int | None, target: int, infected_labels: int,
                 image_shape, num_classes: int) -> list[tuple[Trigger, int]]:
    """[(trigger, target label)] for each infected label: labels target, target+1, ... (mod classes),
    each with its own trigger in its own corner. `trigger_size` replaces the preset by a white square."""
    base = (triggers.white_square(image_shape, size=trigger_size) if trigger_size
            else triggers.make(trigger, image_shape))
    return [(corner_trigger(base, k), (target + k) % num_classes) for k in range(infected_labels)]


def poison_many(x, y, attacks, fraction: float, seed: int):
    """BadNets for several (trigger, target) pairs on disjoint images: `fraction` of the set for each."""
    x, y = x.clone(), y.clone()
    touched = torch.zeros(len(y), dtype=torch.bool)
    all_idx = []
    for k, (trig, target) in enumerate(attacks):
        eligible_y = torch.where(touched, torch.tensor(target), y)  # already-poisoned images are not eligible
        idx = badnets_attack.choose_victims(eligible_y, round(fraction * len(y)), seed + k, exclude_label=target)
        x[idx], y[idx] = trig.apply(x[idx]), target
        touched[idx] = True
        all_idx.append(idx)
    return x, y, all_idx


def victim_model(cfg: Config, ds: data.Dataset):
    """(model, model_spec, attacks) — notebook 01's cached BadNets model when it is the plain case."""
    attacks = attack_setup(cfg.dataset, cfg.trigger, cfg.trigger_size, cfg.target, cfg.infected_labels,
                           ds.image_shape, ds.num_classes)
    profile = cfg.profile.name
    if not cfg.infected:
        r = run("badnets", profile=profile, dataset=cfg.dataset, poison_fraction=0.0, seed=cfg.seed)
    elif cfg.trigger_size is None and cfg.infected_labels == 1:
        r = run("badnets", profile=profile, dataset=cfg.dataset, poison_fraction=cfg.poison_fraction,
                target=cfg.target, trigger=cfg.trigger, seed=cfg.seed)
    else:
        x, y, _ = poison_many(ds.x_train, ds.y_train, attacks, cfg.poison_fraction, cfg.seed)
        model, _, spec = fit("auto", ds, x, y, profile=cfg.profile, seed=cfg.seed,
                             desc=f"victim ({cfg.infected_labels} infected)", curve=False)
        return model, spec, attacks
    return models.from_result(r), r["model_spec"], attacks


def defender_sample(ds: data.Dataset, samples: int, seed: int) -> torch.Tensor:
    """`samples` clean training images (the defender's clean data), drawn with their own generator."""
    pick = data.untouched_sample(len(ds.y_train), samples, seed + 1)
    return ds.x_train[pick]


PARAMS = {
    "dataset": DATASET,
    "infected": Param(True, bool, help="reverse-engineer a BadNets model (true) or a clean one (false)"),
    "poison_fraction": POISON_FRACTION.but(low_open=True, help="fraction of the training set poisoned per infected label"),
    "target": TARGET.but(help="the (first) attacker's target label"),
    "trigger": Param("badnets", str, choices=triggers.PRESETS, help="trigger preset"),
    "trigger_size": Param(None, int, 1, 12, optional=True,
                          help="a white square of this side instead of the preset (the larger-trigger case)"),
    "infected_labels": Param(1, int, 1, MAX_INFECTED, help="labels target, target+1, ... each with its own trigger"),
    "seed": SEED.but(help="seed for the victim model and the optimisation"),
    "samples": Param(None, int, 16, 100000, optional=True, help="clean images the defender uses (default: profile's)"),
    "epochs": Param(None, int, 1, 5000, optional=True, help="maximum optimisation epochs (default: profile's)"),
    "mode": Param("batched", str, choices=nc.MODES, help="all labels at once, or the reference's label loop"),
    "mitigate": Param(True, bool, help="run the filter, pruning and unlearning"),
    "fpr": Param(0.05, float, 0, 1, low_open=True, high_open=True, help="input filter's false positive rate"),
}


@register("neural-cleanse", PARAMS,
          summary=("anomaly_index", "flagged_labels", "target_label", "l1_norms", "attack_success_rate",
                   "clean_accuracy", "attack_success_rate_before", "clean_accuracy_before"))
def neural_cleanse(cfg: Config) -> dict:
    """Wang et al.: reverse-engineer every label's trigger, flag small outliers, patch the model."""
    start = time.perf_counter()
    ds = data.load(cfg.dataset, profile=cfg.profile)
    sizes = cfg.sizes(SIZES)
    model, spec, attacks = victim_model(cfg, ds)
    x_clean = defender_sample(ds, cfg.samples or sizes["samples"], cfg.seed)
    started = time.perf_counter()
    found = nc.reverse_engineer(model, x_clean, ds.num_classes, epochs=cfg.epochs or sizes["epochs"],
                                batch_size=sizes["batch_size"], mode=cfg.mode, seed=cfg.seed, device=cfg.device,
                                progress=False)
    seconds_reverse = time.perf_counter() - started
    verdict = nc.detect(found["l1_norms"])
    true_targets = [t for _, t in attacks] if cfg.infected else []
    out = {
        "anomaly_index": verdict["suspect_index"],  # of the smallest-norm label (the paper's Fig. 3)
        "anomaly_indices": verdict["anomaly_index"].float(),
        "flagged_labels": verdict["flagged_labels"],
        "suspect_label": verdict["suspect_label"],
        "target_label": true_targets[0] if true_targets else None,
        "target_labels": true_targets,
        "target_anomaly_index": float(verdict["anomaly_index"][true_targets[0]]) if true_targets else None,
        "l1_norms": found["l1_norms"],
        "masks": found["masks"],
        "patterns": found["patterns"],
        "reversed_success": found["success"],
        "epochs_run": found["epochs_run"],
        "trace": found["trace"],
        "true_masks": torch.stack([t.mask for t, _ in attacks]),
        "true_patterns": torch.stack([t.pattern.expand(ds.image_shape) for t, _ in attacks]),
        "model_spec": spec,
        "model_state": model.state_dict(),
        "seconds_reverse": seconds_reverse,  # reverse engineering only, all labels
    }
    if cfg.mitigate:
        out.update(mitigate_model(model, ds, x_clean, found, verdict, attacks, cfg.fpr, cfg.seed, cfg.device))
    out["seconds"] = time.perf_counter() - start
    return out


def reversed_trigger(found: dict, label: int) -> Trigger:
    return Trigger(found["masks"][label], found["patterns"][label], 255.0, f"reversed {label}")


def mitigate_model(model, ds, x_clean, found, verdict, attacks, fpr, seed, device=None) -> dict:
    """The three mitigations with the flagged labels' reversed triggers (the smallest-norm label when
    none is flagged); attack success is measured with each infected label's real trigger."""
    labels = verdict["flagged_labels"] or [verdict["suspect_label"]]
    reversed_triggers = [reversed_trigger(found, label) for label in labels]
    original, main_target = attacks[0]
    others = ds.y_test != main_target

    def scores(m) -> tuple[float, float]:
        asr = [attack_success_labelled(m, ds.x_test, ds.y_test, trig, tgt) for trig, tgt in attacks]
        return clean_accuracy(m, ds.x_test, ds.y_test), sum(asr) / len(asr)

    acc0, asr0 = scores(model)
    filt = mitigation.input_filter(model, x_clean, ds.x_test, original.apply(ds.x_test[others]),
                                   reversed_triggers[0], fprs=sorted({0.01, 0.02, fpr, 0.1, 0.2}))
    pruning = mitigation.prune(model, x_clean, reversed_triggers[0], ds.x_test, ds.y_test, original, main_target)
    table = {"before": {"clean_accuracy": acc0, "attack_success_rate": asr0}}
    for name, stamps in (("reversed", reversed_triggers), ("original", [t for t, _ in attacks]), ("clean", [])):
        patched, _ = mitigation.unlearn(model, ds.x_train, ds.y_train, stamps, seed=seed, device=device)
        acc, asr = scores(patched)
        table[name] = {"clean_accuracy": acc, "attack_success_rate": asr}
    return {
        "mitigated_labels": labels,
        "attack_success_rate_before": asr0,
        "clean_accuracy_before": acc0,
        "attack_success_rate": table["reversed"]["attack_success_rate"],
        "clean_accuracy": table["reversed"]["clean_accuracy"],
        "unlearning": table,
        "filter": {k: filt[k] for k in ("fprs", "fnrs", "measured_fprs", "thresholds", "neurons")},
        "filter_fnr": filt["fnrs"][filt["fprs"].index(fpr)],
        "filter_scores": {"clean": filt["clean_scores"], "triggered": filt["triggered_scores"]},
        "pruning": {k: v for k, v in pruning.items() if k != "order"},
    }
