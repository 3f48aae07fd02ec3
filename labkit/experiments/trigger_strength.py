"""How strong must a faint trigger be before the victim learns it? (notebook 08: the arena's unplanted rows)

SIG and WaNet were built to be imperceptible on 28×28 and 32×32 images. The arena poisons with their papers'
settings (SIG's Δ = 20 on half the target class; WaNet's s = 0.5 on 5% of the training set). This experiment
poisons exactly as the arena does and sweeps only the trigger's strength, to show where the backdoor starts to
take: SIG's amplitude Δ (0–255 pixel scale), measured with the test-time signal at Δ and at 2Δ (Barni et al.
raise the amplitude at test time), and WaNet's warp strength s (the paper's unit: roughly pixels of
displacement). Attack success as in the arena: test images not labelled the target, triggered, sent there;
`clean_model_rate` is the same for a model trained on clean data, the floor a backdoor has to beat.
"""
from __future__ import annotations

import time

from tqdm.auto import tqdm

from labkit import data, models, train
from labkit.experiments import DATASET, SEED, TARGET, Config, Param, register, run
from labkit.experiments import arena
from labkit.experiments.badnets import fit

STRENGTHS = {"sig": (20.0, 40.0, 60.0, 80.0),  # Δ, 0–255 scale; the paper's is the first
             "wanet": (0.5, 1.0, 2.0, 4.0)}    # s; the paper's is the first
AMPLIFY = 2.0  # SIG's test-time amplitude, as a multiple of the training amplitude


def poisoned_set(cfg: Config, ds: data.Dataset, strength: float):
    """(x', y', test-time trigger, amplified test-time trigger or None) at one strength: the arena's own
    poisoned set and trigger, with SIG tested at AMPLIFY × its amplitude too."""
    x_p, y_p, _ = arena.poisoned_training_set(cfg, ds, strength)
    loud = arena.trigger_of("sig", ds.image_shape, min(255.0, AMPLIFY * strength)) if cfg.attack == "sig" else None
    return x_p, y_p, arena.trigger_of(cfg.attack, ds.image_shape, strength), loud


def success(model, ds: data.Dataset, apply, target: int) -> float | None:
    """Share of the test images not labelled `target` that `apply` sends to `target` (None without a trigger)."""
    return None if apply is None else arena.evaluate(model, ds, apply, target)["attack_success_rate"]


@register("trigger-strength", {
    "dataset": DATASET,
    "attack": Param("sig", str, choices=tuple(STRENGTHS), help="the faint-trigger attack whose strength is swept"),
    "target": TARGET,
    "seed": SEED,
}, summary=("strengths", "attack_success_rate", "attack_success_rate_amplified", "clean_model_rate"))
def trigger_strength(cfg: Config) -> dict:
    """One victim per strength, poisoned as in the arena; attack success and the clean model's rate per strength."""
    start = time.perf_counter()
    ds = data.load(cfg.dataset, profile=cfg.profile)
    clean = models.from_result(run("badnets", profile=cfg.profile.name, dataset=cfg.dataset, target=cfg.target,
                                   seed=cfg.seed, poison_fraction=0.0))
    out = {key: [] for key in ("attack_success_rate", "attack_success_rate_amplified", "clean_accuracy",
                               "clean_model_rate", "clean_model_rate_amplified")}
    strengths = STRENGTHS[cfg.attack]
    for strength in tqdm(strengths, desc=f"{cfg.attack} strength", **train.progress_kwargs(True)):
        x_p, y_p, apply, loud = poisoned_set(cfg, ds, strength)
        model, _, _ = fit("auto", ds, x_p, y_p, profile=cfg.profile, seed=cfg.seed,
                          desc=f"{cfg.attack} at {strength:g}", curve=False)
        out["clean_accuracy"].append(train.accuracy(model, ds.x_test, ds.y_test))
        out["attack_success_rate"].append(success(model, ds, apply, cfg.target))
        out["attack_success_rate_amplified"].append(success(model, ds, loud, cfg.target))
        out["clean_model_rate"].append(success(clean, ds, apply, cfg.target))
        out["clean_model_rate_amplified"].append(success(clean, ds, loud, cfg.target))
    return {"strengths": list(strengths), "paper_strength": strengths[0], **out,
            "seconds": time.perf_counter() - start}
