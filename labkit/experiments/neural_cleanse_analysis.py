"""Is Neural Cleanse's reversed trigger the real one? (notebook 05 and the report's rows; Wang et al. §V-C,
Tables III and V, Fig. 22.)

Reads the cached `neural-cleanse` run of a BadNets model (its reversed trigger for the flagged target) and
compares that trigger with the one the attacker planted: in pixels (mask overlap), in the network (the
"backdoor neurons" each trigger excites, Tables III and V), and by pruning the last conv layer's channels the
reversed trigger excites (Fig. 22; the experiment itself prunes the second-to-last layer). Cached on its own,
so a warm report reads these numbers instead of recomputing them (a conv-pruning pass on 2,000 MNIST test
images takes about a minute).
"""
from __future__ import annotations

from labkit import data, models
from labkit.defenses import nc_analysis
from labkit.experiments import DATASET, SEED, Config, Param, register, run
from labkit.experiments import neural_cleanse as ncx
from labkit.triggers import Trigger

TEST_IMAGES = 500  # test images of other classes on which activations are compared (Tables III and V)


@register("neural-cleanse-analysis", {
    "dataset": DATASET,
    "seed": SEED.but(help="seed of the BadNets victim and its `neural-cleanse` run"),
    "neuron_fraction": Param(0.05, float, 0, 1, low_open=True,
                             help="share of the second-to-last layer's neurons counted as 'backdoor neurons'"),
}, summary=("mask_iou", "l1_ratio", "clean_activation", "reversed_activation", "original_activation",
            "neuron_iou", "conv_pruning"))
def neural_cleanse_analysis(cfg: Config) -> dict:
    """The reversed trigger of the flagged target against the true one: pixel IoU and L1 ratio of the masks,
    mean activation of the reversed trigger's backdoor neurons (clean / reversed / original trigger), the IoU
    of the two triggers' backdoor neurons, and the last-conv-layer pruning curve (`conv_pruning`: the lists of
    `nc_analysis.prune_last_conv`, without its channel order)."""
    r = run("neural-cleanse", profile=cfg.profile.name, dataset=cfg.dataset, seed=cfg.seed)
    ds = data.load(cfg.dataset, profile=cfg.profile)
    model = models.from_result(r)
    target = r["target_label"]
    found = Trigger(r["masks"][target], r["patterns"][target], 255.0, "reversed")
    true = Trigger(r["true_masks"][0], r["true_patterns"][0], 255.0, "original")
    x = ds.x_test[ds.y_test != target][:TEST_IMAGES]
    neurons = nc_analysis.backdoor_neurons(model, x, found, cfg.neuron_fraction)
    x_defender = ncx.defender_sample(ds, ncx.SIZES.of(cfg.profile)["samples"], cfg.seed)  # the run's own sample
    conv = nc_analysis.prune_last_conv(model, x_defender, found, ds.x_test, ds.y_test, true, target)
    conv.pop("order")
    return {"mask_iou": nc_analysis.mask_iou(r["masks"][target], r["true_masks"][0]),
            "l1_ratio": float(r["masks"][target].sum() / r["true_masks"][0].sum()),
            "clean_activation": nc_analysis.mean_activation(model, x, neurons),
            "reversed_activation": nc_analysis.mean_activation(model, found.apply(x), neurons),
            "original_activation": nc_analysis.mean_activation(model, true.apply(x), neurons),
            "neuron_iou": nc_analysis.neuron_iou(model, x, found, true, cfg.neuron_fraction),
            "conv_pruning": conv, "target_label": target}
