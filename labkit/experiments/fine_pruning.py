"""Fine-Pruning and STRIP (notebook 06): repair the backdoored model, then screen its inputs.

Experiments: `pruning-aware` (the attack), `pruning-curve` (pruning alone, 0–95%),
`fine-pruning` (prune k% + fine-tune), `fine-pruning-loop` (the report's loop), `strip`
(entropies, threshold at a preset FRR, FRR/FAR) and `defense-pipeline` (fine-pruned model
answers, STRIP rejects). Benchmark: `strip` (inputs/s at N = 10 and 100 vs plain inference).

The defender's clean data are `clean_size` training images the attacker did not poison (the
defender's own data in the outsourced-training threat model); everything is measured on the
test set.
"""
from __future__ import annotations

import torch

from labkit import config, data, models, train, triggers
from labkit.attacks import badnets as badnets_attack
from labkit.attacks import pruning_aware
from labkit.defenses import fine_pruning as fp
from labkit.defenses import strip
from labkit.experiments import POISON_FRACTION, Config, Param, register, run
from labkit.experiments.badnets import COMMON
from labkit.metrics import asr_from_predictions
from labkit.seed import generator

ATTACKS = ("badnets", "pruning-aware")
CURVE_PERCENTS = tuple(range(0, 100, 5))


# This paper's sizes: `clean_size` clean images the defender owns (ranking, fine-tuning, STRIP's overlays
# and calibration); `finetune_epochs`; `strip_n` STRIP's perturbed copies per input (the paper's 100);
# `eval_size` clean test inputs STRIP screens (and as many triggered ones; None = all); `prune_grid` the
# pruned percentages the notebook sweeps with fine-tuning (and its widget offers); `finetune_budgets` the
# fine-tuning budgets the notebook compares, as `fine-pruning` overrides (clean images, Adam lr); `widths` the
# victims' SmallCNN widths of the spare-capacity sweep (`fine-pruning-width`).
SIZES = config.Sizes(
    ci=dict(clean_size=200, finetune_epochs=10, strip_n=20, eval_size=100, prune_grid=(0.0, 50.0, 80.0), widths=(32, 64),
            finetune_budgets=({"clean_size": 100, "finetune_lr": 5e-4}, {"finetune_lr": 3e-3})),
    lab=dict(clean_size=400, finetune_epochs=20, strip_n=100, eval_size=300, widths=(32, 64, 128),
             prune_grid=(0.0, 20.0, 40.0, 60.0, 80.0, 90.0),
             finetune_budgets=({"clean_size": 200, "finetune_lr": 5e-4}, {"finetune_lr": 1e-3}, {"finetune_lr": 3e-3})),
    paper=dict(clean_size=1000, finetune_epochs=20, strip_n=100, eval_size=2000, widths=(32, 64, 128),
               prune_grid=tuple(float(p) for p in range(0, 100, 10)),
               finetune_budgets=({"clean_size": 200, "finetune_lr": 5e-4}, {"finetune_lr": 1e-3}, {"finetune_lr": 3e-3})),
)


FRR_GRID = (0.01, 0.02, 0.05, 0.1, 0.2)  # target FRRs the notebook's widget offers

ATTACK = {
    **COMMON,
    "attack": Param("badnets", str, choices=ATTACKS, help="how the victim was backdoored"),
    "poison_fraction": POISON_FRACTION.but(low_open=True),
    "attacker_prune_percent": Param(60.0, float, 0, 95, help="pruning-aware attack: % of last-conv channels the attacker prunes then restores as decoys"),
}
DEFENDER = {
    "clean_size": Param(None, int, 10, 100000, optional=True, help="clean images the defender owns (default: the profile's)"),
}
FINETUNE = {
    "finetune": Param(True, bool, help="fine-tune on the clean images after pruning"),
    "finetune_lr": Param(3e-3, float, 0, 1, low_open=True, help="Adam step size for fine-tuning"),
    "finetune_epochs": Param(None, int, 0, 1000, optional=True, help="fine-tuning epochs (default: the profile's)"),
}


def attacked(cfg: Config):
    """(backdoored model, dataset, trigger, poisoned indices) for the attack settings in `cfg`."""
    keys = ("dataset", "poison_fraction", "target", "trigger", "amplitude", "seed")
    attack = {k: cfg[k] for k in keys}
    if cfg.attack == "badnets":
        result = run("badnets", profile=cfg.profile.name, **attack)
    else:
        result = run("pruning-aware", profile=cfg.profile.name, **attack, prune_percent=cfg.attacker_prune_percent)
    ds = data.load(cfg.dataset, profile=cfg.profile)
    trig = triggers.make(cfg.trigger, ds.image_shape, cfg.amplitude)
    return models.from_result(result), ds, trig, result["poisoned_indices"]


def defender_data(cfg: Config, ds: data.Dataset, poisoned: torch.Tensor):
    """`cfg.clean_size` (default: the profile's) random training images the attacker did not touch,
    with their true labels."""
    size, seed = cfg.clean_size or cfg.sizes(SIZES)["clean_size"], cfg.seed
    pick = data.untouched_sample(len(ds.y_train), size, seed + 1, exclude=poisoned)
    return ds.x_train[pick], ds.y_train[pick]


def evaluator(ds: data.Dataset, trig, target: int):
    """`evaluate(model) -> {clean_accuracy, attack_success_rate}` on the test set."""
    x_triggered = trig.apply(ds.x_test)

    def evaluate(model) -> dict:
        pred = train.predict(model, ds.x_test)
        return {"clean_accuracy": float((pred == ds.y_test).float().mean()),
                "attack_success_rate": asr_from_predictions(ds.y_test, pred, train.predict(model, x_triggered), target)}
    return evaluate


@register("pruning-aware", {
    **COMMON,
    "poison_fraction": POISON_FRACTION.but(low_open=True),
    "prune_percent": Param(60.0, float, 0, 95, help="% of last-conv channels pruned in step 2 and restored as decoys"),
}, summary=("clean_accuracy", "attack_success_rate", "decoy_count"))
def pruning_aware_attack(cfg: Config) -> dict:
    """Liu et al.'s pruning-aware attack: clean model → prune dormant channels → train on poison → restore decoys."""
    prof = cfg.profile
    clean = run("badnets", profile=prof.name, dataset=cfg.dataset, poison_fraction=0.0, target=cfg.target,
                trigger=cfg.trigger, amplitude=cfg.amplitude, seed=cfg.seed)  # step 1: the cached clean model
    ds = data.load(cfg.dataset, profile=prof)
    trig = triggers.make(cfg.trigger, ds.image_shape, cfg.amplitude)
    x_poisoned, y_poisoned, idx = badnets_attack.poison(ds.x_train, ds.y_train, trigger=trig, target=cfg.target,
                                                        fraction=cfg.poison_fraction, seed=cfg.seed)
    clean_model = models.from_result(clean)
    model, decoys, history = pruning_aware.pruning_aware_backdoor(
        clean_model, ds.x_train, x_poisoned, y_poisoned, cfg.prune_percent, epochs=prof.epochs,
        lr=prof.learning_rate, batch_size=prof.batch_size, seed=cfg.seed, device=cfg.device)
    return {**evaluator(ds, trig, cfg.target)(model), "decoy_count": len(decoys), "decoys": decoys,
            "poisoned_indices": idx, "history": history, "model_spec": clean["model_spec"],
            "model_state": model.state_dict()}


@register("pruning-curve", {**ATTACK, **DEFENDER},
          summary=("percents", "clean_accuracy", "attack_success_rate"))
def pruning_curve(cfg: Config) -> dict:
    """Pruning alone: clean accuracy and attack success after pruning 0, 5, …, 95% of the channels."""
    model, ds, trig, poisoned = attacked(cfg)
    target = cfg.target
    x_clean, _ = defender_data(cfg, ds, poisoned)
    activations = fp.channel_activations(model, x_clean)
    rows = fp.prune_progressively(model, activations, CURVE_PERCENTS, evaluator(ds, trig, target))
    return {"percents": [r["percent"] for r in rows],
            "clean_accuracy": [r["clean_accuracy"] for r in rows],
            "attack_success_rate": [r["attack_success_rate"] for r in rows],
            "clean_activations": activations,
            "triggered_activations": fp.channel_activations(model, trig.apply(ds.x_test[ds.y_test != target]))}


@register("fine-pruning", {
    **ATTACK, **DEFENDER,
    "prune_percent": Param(80.0, float, 0, 100, help="% of last-conv channels pruned (most dormant on clean data first)"),
    **FINETUNE,
}, summary=("clean_accuracy", "attack_success_rate", "pruned_clean_accuracy", "pruned_attack_success_rate",
            "original_clean_accuracy", "original_attack_success_rate"))
def fine_pruning(cfg: Config) -> dict:
    """Prune the `prune_percent` most dormant channels, then (finetune=true) fine-tune on clean data."""
    model, ds, trig, poisoned = attacked(cfg)
    x_clean, y_clean = defender_data(cfg, ds, poisoned)
    evaluate = evaluator(ds, trig, cfg.target)
    activations = fp.channel_activations(model, x_clean)
    pruned = fp.pruned_copy(model, activations, cfg.prune_percent)
    after_pruning = evaluate(pruned)
    history = []
    if cfg.finetune:
        epochs = cfg.sizes(SIZES)["finetune_epochs"] if cfg.finetune_epochs is None else cfg.finetune_epochs
        history = fp.fine_tune(pruned, x_clean, y_clean, epochs=epochs, lr=cfg.finetune_lr, seed=cfg.seed,
                               device=cfg.device)
    channels = fp.pruned_channels(pruned)
    fp.make_permanent(pruned)
    final = evaluate(pruned)
    original = evaluate(model)
    return {**final,
            "pruned_clean_accuracy": after_pruning["clean_accuracy"],
            "pruned_attack_success_rate": after_pruning["attack_success_rate"],
            "original_clean_accuracy": original["clean_accuracy"],
            "original_attack_success_rate": original["attack_success_rate"],
            "pruned_channels": channels, "clean_activations": activations, "history": history,
            "model_spec": models.spec("small-cnn", ds.image_shape, ds.num_classes),
            "model_state": pruned.state_dict()}


@register("fine-pruning-loop", {
    **ATTACK, **DEFENDER,
    "step_percent": Param(5.0, float, 1, 50, help="% of channels pruned more in each round"),
    "max_drop": Param(0.01, float, 0, 1, help="stop once validation accuracy falls this much (fraction) below the unpruned model's"),
    "finetune_lr": FINETUNE["finetune_lr"],
    "finetune_epochs": Param(None, int, 1, 1000, optional=True, help="fine-tuning epochs per round (default: a quarter of the profile's)"),
}, summary=("clean_accuracy", "attack_success_rate", "final_percent", "rounds"))
def fine_pruning_loop(cfg: Config) -> dict:
    """The report's loop: prune 5% more, fine-tune, until validation accuracy drops by `max_drop`.

    A quarter of the defender's clean images is kept aside as the validation set that decides when to stop.
    """
    model, ds, trig, poisoned = attacked(cfg)
    x_clean, y_clean = defender_data(cfg, ds, poisoned)
    split = len(y_clean) * 3 // 4
    epochs = cfg.finetune_epochs or max(1, cfg.sizes(SIZES)["finetune_epochs"] // 4)
    evaluate = evaluator(ds, trig, cfg.target)
    final_model, rows = fp.fine_prune_loop(model, x_clean[:split], y_clean[:split], x_clean[split:], y_clean[split:],
                                           step_percent=cfg.step_percent, max_drop=cfg.max_drop, epochs=epochs,
                                           lr=cfg.finetune_lr, seed=cfg.seed, evaluate=evaluate, device=cfg.device)
    accepted = [r for r in rows if r["accepted"]]
    return {**evaluate(final_model), "final_percent": accepted[-1]["percent"],
            "rounds": rows, "epochs_per_round": epochs}


def strip_inputs(cfg: Config, ds: data.Dataset, trig):
    """(clean test inputs, their labels, triggered test inputs not labelled `target`, their true labels):
    `cfg.eval_size` of each (default: the profile's)."""
    target = cfg.target
    order = torch.randperm(len(ds.y_test), generator=generator(cfg.seed + 2))
    size = cfg.eval_size if cfg.eval_size is not None else cfg.sizes(SIZES)["eval_size"]
    pick = order[:size] if size is not None else order
    x, y = ds.x_test[pick], ds.y_test[pick]
    eligible = y != target
    return x, y, trig.apply(x[eligible]), y[eligible]


STRIP_INPUTS = {
    "n": Param(None, int, 1, 100000, optional=True, help="perturbed copies per input (default: the profile's; the paper's 100)"),
    "eval_size": Param(None, int, 10, 100000, optional=True, help="clean test inputs screened (default: the profile's)"),
}


@register("strip-entropies", {**ATTACK, **DEFENDER, **STRIP_INPUTS},
          summary=("n_copies", "benign_mean_entropy", "trojan_mean_entropy"))
def strip_entropies(cfg: Config) -> dict:
    """STRIP entropies on the backdoored model: of the defender's clean images (calibration), of clean test
    inputs and of triggered test inputs. Cached apart from the threshold, which is cheap."""
    model, ds, trig, poisoned = attacked(cfg)
    seed = cfg.seed
    x_holdout, _ = defender_data(cfg, ds, poisoned)
    copies = cfg.n or cfg.sizes(SIZES)["strip_n"]
    x_clean, y_clean, x_trojan, y_trojan = strip_inputs(cfg, ds, trig)
    benign = strip.entropy_scores(model, x_clean, x_holdout, copies, seed=seed + 1)
    trojan = strip.entropy_scores(model, x_trojan, x_holdout, copies, seed=seed + 2)
    return {"n_copies": copies, "benign_mean_entropy": float(benign.mean()), "trojan_mean_entropy": float(trojan.mean()),
            "calibration_entropies": strip.entropy_scores(model, x_holdout, x_holdout, copies, seed=seed),
            "benign_entropies": benign, "trojan_entropies": trojan, "benign_labels": y_clean, "trojan_labels": y_trojan}


@register("strip", {
    **ATTACK, **DEFENDER,
    "frr": Param(0.05, float, 0, 1, low_open=True, high_open=True, help="target false rejection rate (fraction)"),
    "method": Param("normal", str, choices=strip.METHODS, help="threshold from a normal fit (the paper) or the empirical quantile"),
    **STRIP_INPUTS,
}, summary=("frr", "far", "threshold", "target_frr", "benign_mean_entropy", "trojan_mean_entropy"))
def strip_experiment(cfg: Config) -> dict:
    """STRIP on the backdoored model: calibrate the threshold on the defender's clean images at the target
    FRR, then measure FRR on clean test inputs and FAR on triggered ones."""
    frr = cfg.frr
    scores = run("strip-entropies", profile=cfg.profile.name, **{k: cfg[k] for k in cfg if k not in ("frr", "method")})
    threshold = strip.threshold_at_frr(scores["calibration_entropies"], frr, cfg.method)
    measured_frr, far = strip.detection_rates(scores["benign_entropies"], scores["trojan_entropies"], threshold)
    return {**{k: v for k, v in scores.items() if k != "config"},
            "frr": measured_frr, "far": far, "threshold": threshold, "target_frr": frr}


@register("defense-pipeline", {
    **ATTACK, **DEFENDER,
    "prune_percent": Param(80.0, float, 0, 100, help="% of last-conv channels the defender prunes"),
    **FINETUNE,
    "frr": Param(0.05, float, 0, 1, low_open=True, high_open=True, help="STRIP's target false rejection rate"),
    "n": Param(None, int, 1, 100000, optional=True, help="STRIP copies per input (default: the profile's)"),
    "method": Param("normal", str, choices=strip.METHODS, help="STRIP threshold method"),
    "eval_size": Param(None, int, 10, 100000, optional=True, help="clean test inputs in the stream (default: the profile's)"),
}, summary=("clean_correct", "clean_rejected", "trojan_rejected", "trojan_to_target", "trojan_correct"))
def defense_pipeline(cfg: Config) -> dict:
    """The report's combination on a mixed stream of clean and triggered test inputs: the fine-pruned model
    answers; STRIP (on the received, backdoored model) rejects low-entropy inputs as an extra class."""
    shared = {k: cfg[k] for k in ATTACK | DEFENDER}
    repaired = run("fine-pruning", profile=cfg.profile.name, **shared, prune_percent=cfg.prune_percent,
                   finetune=cfg.finetune, finetune_lr=cfg.finetune_lr, finetune_epochs=cfg.finetune_epochs)
    screened = run("strip", profile=cfg.profile.name, **shared, frr=cfg.frr, n=cfg.n, method=cfg.method,
                   eval_size=cfg.eval_size)
    model = models.from_result(repaired)
    target = cfg.target
    ds = data.load(cfg.dataset, profile=cfg.profile)
    trig = triggers.make(cfg.trigger, ds.image_shape, cfg.amplitude)
    x_clean, y_clean, x_trojan, y_trojan = strip_inputs(cfg, ds, trig)
    stream = torch.cat([x_clean, x_trojan])
    entropies = torch.cat([screened["benign_entropies"], screened["trojan_entropies"]])
    answers = strip.guarded_predictions(train.predict(model, stream), entropies, screened["threshold"], ds.num_classes)
    expected = torch.cat([y_clean, torch.full_like(y_trojan, ds.num_classes)])  # triggered inputs should be rejected
    clean_answers, trojan_answers = answers[:len(y_clean)], answers[len(y_clean):]
    return {"confusion": strip.confusion(expected, answers, ds.num_classes),
            "clean_correct": float((clean_answers == y_clean).float().mean()),
            "clean_rejected": float((clean_answers == ds.num_classes).float().mean()),
            "trojan_rejected": float((trojan_answers == ds.num_classes).float().mean()),
            "trojan_to_target": float((trojan_answers == target).float().mean()),
            "trojan_correct": float((trojan_answers == y_trojan).float().mean()),
            "clean_count": len(y_clean), "trojan_count": len(y_trojan), "threshold": screened["threshold"]}


@register("fine-pruning-weights", {
    **ATTACK, **DEFENDER,
    "step": Param(0.05, float, 0, 1, low_open=True, help="each round prunes weights ≤ min + (max − min)·step"),
    "max_drop": Param(0.01, float, -1, 1, help="stop once validation accuracy falls this much (fraction) below the unpruned model's"),
    "max_rounds": Param(20, int, 1, 200, help="most pruning rounds"),
    "finetune_lr": FINETUNE["finetune_lr"],
    "finetune_epochs": Param(None, int, 1, 1000, optional=True, help="fine-tuning epochs per round (default: a quarter of the profile's)"),
}, summary=("clean_accuracy", "attack_success_rate", "weights_pruned", "rounds_kept"))
def fine_pruning_weights(cfg: Config) -> dict:
    """The student report's own procedure (its Table 3): prune every conv layer's weights below
    min + (max − min)·5%, fine-tune, repeat until validation accuracy drops by `max_drop`.

    As in `fine-pruning-loop`, a quarter of the defender's clean images decides when to stop."""
    model, ds, trig, poisoned = attacked(cfg)
    x_clean, y_clean = defender_data(cfg, ds, poisoned)
    split = len(y_clean) * 3 // 4
    epochs = cfg.finetune_epochs or max(1, cfg.sizes(SIZES)["finetune_epochs"] // 4)
    evaluate = evaluator(ds, trig, cfg.target)
    final_model, rows = fp.weight_prune_loop(model, x_clean[:split], y_clean[:split], x_clean[split:],
                                             y_clean[split:], step=cfg.step, max_drop=cfg.max_drop,
                                             max_rounds=cfg.max_rounds, epochs=epochs, lr=cfg.finetune_lr,
                                             seed=cfg.seed, evaluate=evaluate, device=cfg.device)
    kept = [r for r in rows if r["accepted"]][-1]
    return {**evaluate(final_model), "weights_pruned": kept["weights_pruned"], "rounds_kept": kept["round"],
            "rounds": rows, "epochs_per_round": epochs}


WIDTHS = (32, 64, 128)  # SmallCNN widths: the last conv layer has 2 × width channels (64, 128, 256)


def wide_victim(cfg: Config, ds: data.Dataset, trig):
    """(BadNets model with last conv layer 2·`cfg.width` channels, poisoned indices): notebook 01's cached model
    at the default width, else trained here with the same poisoning, profile epochs and seed."""
    if cfg.width == WIDTHS[0]:
        model, _, _, poisoned = attacked(cfg)
        return model, poisoned
    x_p, y_p, idx = badnets_attack.poison(ds.x_train, ds.y_train, trigger=trig, target=cfg.target,
                                          fraction=cfg.poison_fraction, seed=cfg.seed)
    torch.manual_seed(cfg.seed)
    model = models.SmallCNN(ds.image_shape[0], ds.num_classes, ds.image_shape[1], width=cfg.width)
    prof = cfg.profile
    train.train(model, x_p, y_p, epochs=prof.epochs_for(len(y_p)), batch_size=prof.batch_size, lr=prof.learning_rate,
                seed=cfg.seed, device=cfg.device, desc=f"badnets width {cfg.width}")
    return model.cpu().eval(), idx


@register("fine-pruning-width", {
    **{k: v for k, v in ATTACK.items() if k not in ("attack", "attacker_prune_percent")},
    "attack": Param("badnets", str, choices=("badnets",), help="how the victim was backdoored"),
    "attacker_prune_percent": ATTACK["attacker_prune_percent"],
    "width": Param(32, int, choices=WIDTHS, help="SmallCNN width: the last conv layer has 2 × width channels"),
    **DEFENDER,
    "prune_percent": Param(80.0, float, 0, 100, help="% of last-conv channels pruned (most dormant on clean data first)"),
    "finetune_lr": FINETUNE["finetune_lr"],
    "finetune_epochs": FINETUNE["finetune_epochs"],
}, summary=("width", "original_attack_success_rate", "pruned_attack_success_rate", "finetuned_attack_success_rate",
            "attack_success_rate", "clean_accuracy"))
def fine_pruning_width(cfg: Config) -> dict:
    """Does fine-pruning need spare capacity? A BadNets victim at `width`, then pruning alone, fine-tuning
    alone and fine-pruning (prune `prune_percent`% + fine-tune), each from the same victim."""
    ds = data.load(cfg.dataset, profile=cfg.profile)
    trig = triggers.make(cfg.trigger, ds.image_shape, cfg.amplitude)
    model, poisoned = wide_victim(cfg, ds, trig)
    x_clean, y_clean = defender_data(cfg, ds, poisoned)
    evaluate = evaluator(ds, trig, cfg.target)
    epochs = cfg.sizes(SIZES)["finetune_epochs"] if cfg.finetune_epochs is None else cfg.finetune_epochs
    activations = fp.channel_activations(model, x_clean)
    pruned = fp.pruned_copy(model, activations, cfg.prune_percent)
    out = {"width": cfg.width, "channels": fp.last_conv(model).out_channels}
    for name, candidate in (("original", model), ("pruned", pruned)):
        scores = evaluate(candidate)
        out[f"{name}_attack_success_rate"], out[f"{name}_clean_accuracy"] = (scores["attack_success_rate"],
                                                                             scores["clean_accuracy"])
    for name, candidate in (("finetuned", fp.pruned_copy(model, activations, 0.0)), ("fine_pruned", pruned)):
        fp.fine_tune(candidate, x_clean, y_clean, epochs=epochs, lr=cfg.finetune_lr, seed=cfg.seed, device=cfg.device)
        scores = evaluate(candidate)
        out[f"{name}_attack_success_rate"], out[f"{name}_clean_accuracy"] = (scores["attack_success_rate"],
                                                                             scores["clean_accuracy"])
    dormant = activations <= 1e-6
    return {**out, "attack_success_rate": out["fine_pruned_attack_success_rate"],
            "clean_accuracy": out["fine_pruned_clean_accuracy"], "dormant_channels": int(dormant.sum()),
            "clean_activations": activations}
