"""Neural Cleanse's claims (notebook 05; Wang et al., MNIST rows): detection, false positives on clean models,
whether the reversed trigger is the real one (pixels, Table III activations, Table V neuron overlap), and
unlearning (Table IV)."""
from __future__ import annotations

from labkit import config
from labkit.claims import (Claim, Setting, all_of, at_least, at_most, close_to, mean, note, per_seed, ratio_at_least,
                           register, spread)
from labkit.experiments import run

THRESHOLD = 2.0  # the paper's anomaly index threshold
NEURON_FRACTION = 0.05  # "backdoor neurons": the paper's top 1% of a wide layer; 5% of the lab's 128 (7 neurons)
CLEAN_MODELS = config.Sizes(ci=dict(per_seed=1), lab=dict(per_seed=3), paper=dict(per_seed=2))  # ≥ 5 in lab/paper

note("neural-cleanse", """
BadNets victims (one-corner trigger, target 0, 10% poisoned) and clean models; every label's trigger reversed
with the profile's epochs on 128 clean images (`lab`), the MAD test at index 2. The false-positive row reverses
triggers of clean models trained with several seeds per report seed (6 in `lab`). "Backdoor neurons" are the
top 5% of the 128-unit second-to-last layer by activation gain under a trigger (the paper's top 1% of a wider
layer would be 2 neurons here); activations are measured on test images of other classes.
""")


def infected(s: Setting) -> dict:
    return run("neural-cleanse", profile=s.profile, dataset=s.dataset, seed=s.seed)


def detection(s: Setting) -> dict:
    r = infected(s)
    return {"target_index": r["target_anomaly_index"], "target_flagged": float(r["target_label"] in r["flagged_labels"])}


register(Claim(
    id="nc-detects-badnets", paper="neural-cleanse", notebook="05",
    claim="the infected label is flagged: its anomaly index exceeds 2",
    paper_value="anomaly index > 3 for every infected model, MNIST included (Fig. 3)",
    measure=detection,
    criterion=all_of(at_least("target_index", THRESHOLD, percent=False), at_least("target_flagged", 1.0)),
    why=lambda v: (
        f"the target's anomaly index is {per_seed(v['target_index'], '.2f')} on the seeds, flagged on "
        f"{sum(v['target_flagged']):g} of {len(v['target_flagged'])}. The lab reverse-engineers on 128 clean images for "
        f"at most 120 epochs (`lab`; Wang et al.: 1,000 images, up to 1,000 epochs), and with 10 labels the MAD "
        f"test's spread is wide: compare the clean models' largest index in the false-positive row"),
    show=lambda v: f"index {spread(v['target_index'], False)}; flagged on {sum(v['target_flagged']):g} of {len(v['target_flagged'])} seeds",
))


def clean_seeds(s: Setting) -> list[int]:
    seeds = config.profile(s.profile).seeds
    return [s.seed + k * len(seeds) for k in range(CLEAN_MODELS.of(s.profile)["per_seed"])]


def false_positives(s: Setting) -> dict:
    indices = [run("neural-cleanse", profile=s.profile, dataset=s.dataset, infected=False, seed=seed)["anomaly_index"]
               for seed in clean_seeds(s)]
    return {"flagged_share": sum(i > THRESHOLD for i in indices) / len(indices), "largest_index": max(indices),
            "models": len(indices)}


register(Claim(
    id="nc-clean-false-positives", paper="neural-cleanse", notebook="05",
    claim="clean models are not flagged (their smallest label's anomaly index stays below 2)",
    paper_value="every clean model's index < 2 (Fig. 3)",
    measure=false_positives,
    criterion=at_most("flagged_share", 0.0),
    why="a 10-label MAD test has a wide null distribution: with 10 norms, one label sits beyond index 2 by chance "
        "often enough to be seen in a handful of clean models",
    show=lambda v: (f"{spread(v['flagged_share'])} of clean models flagged ({sum(v['models']):g} models; "
                    f"largest index {max(v['largest_index']):.2f})"),
))


def analysis(s: Setting) -> dict:
    return run("neural-cleanse-analysis", profile=s.profile, dataset=s.dataset, seed=s.seed,
               neuron_fraction=NEURON_FRACTION)


def reversed_vs_original(s: Setting) -> dict:
    r = analysis(s)
    return {key: r[key] for key in ("mask_iou", "l1_ratio", "clean_activation", "reversed_activation",
                                    "original_activation", "neuron_iou")}


register(Claim(
    id="nc-reversed-trigger-location", paper="neural-cleanse", notebook="05",
    claim="the reversed trigger sits on the real one (BadNets)",
    paper_value="reversed triggers of BadNets models are visually similar to the original, in the same place (Fig. 6)",
    measure=reversed_vs_original,
    criterion=at_least("mask_iou", 0.5, percent=False),
    why=lambda v: (
        f"the reversed mask has {per_seed(v['l1_ratio'], '.2f')}× the true 3×3 trigger's pixels and overlaps it with "
        f"IoU {per_seed(v['mask_iou'], '.2f')} on the seeds; the IoU equals that ratio when the reversed mask lies "
        f"entirely inside the real trigger, so the closer the two, the more the reversed trigger is a *part* of the "
        f"real one: a part of the pattern is enough to flip the model, and the smallest trigger Neural Cleanse looks "
        f"for is that part. Whether it drives the same neurons is the Table III and Table V rows'"),
    show=lambda v: (f"pixel IoU with the true trigger {spread(v['mask_iou'], False)}; reversed mask "
                    f"{spread(v['l1_ratio'], False)} × the true trigger's pixels"),
))

register(Claim(
    id="nc-table3-activations", paper="neural-cleanse", notebook="05",
    claim="the reversed trigger fires the backdoor neurons almost as strongly as the original trigger",
    paper_value="MNIST: clean 1.19, reversed trigger 4.20, original trigger 4.74 (Table III)",
    measure=reversed_vs_original,
    criterion=ratio_at_least("reversed_activation", "clean_activation", 2),
    show=lambda v: (f"clean {spread(v['clean_activation'], False)}, reversed {spread(v['reversed_activation'], False)}, "
                    f"original {spread(v['original_activation'], False)}"),
))

register(Claim(
    id="nc-table5-neuron-iou", paper="neural-cleanse", notebook="05",
    claim="the reversed and the original trigger use the same backdoor neurons",
    paper_value="intersection over union 0.807 on MNIST; > 0.58 for every BadNets model (Table V)",
    measure=reversed_vs_original,
    criterion=at_least("neuron_iou", 0.58, percent=False),
    show=lambda v: f"IoU of the top {NEURON_FRACTION:.0%} neurons {spread(v['neuron_iou'], False)}",
))


def unlearning(s: Setting) -> dict:
    table = infected(s)["unlearning"]
    return {"asr_before": table["before"]["attack_success_rate"], "accuracy_before": table["before"]["clean_accuracy"],
            "asr_reversed": table["reversed"]["attack_success_rate"],
            "accuracy_reversed": table["reversed"]["clean_accuracy"],
            "asr_original": table["original"]["attack_success_rate"], "asr_clean": table["clean"]["attack_success_rate"]}


register(Claim(
    id="nc-unlearning", paper="neural-cleanse", notebook="05",
    claim="unlearning with the reversed trigger removes the backdoor and keeps accuracy",
    paper_value="MNIST: ASR 99.90% → 0.57%, accuracy 98.54% → 97.69% (Table IV)",
    measure=unlearning,
    criterion=all_of(at_most("asr_reversed", 0.05), close_to("accuracy_reversed", "accuracy_before", 0.02)),
    show=lambda v: (f"ASR {spread(v['asr_before'])} → {spread(v['asr_reversed'])}; accuracy "
                    f"{spread(v['accuracy_before'])} → {spread(v['accuracy_reversed'])}"),
))

register(Claim(
    id="nc-unlearning-needs-trigger", paper="neural-cleanse", notebook="05",
    claim="fine-tuning on clean images alone leaves the backdoor in place",
    paper_value="MNIST: ASR 0.29% with the original trigger, 93.37% with clean images only (Table IV)",
    measure=unlearning,
    criterion=at_least("asr_clean", 0.5),
    show=lambda v: f"clean images only: ASR {spread(v['asr_clean'])}; original trigger: {spread(v['asr_original'])}",
))


def pruning(s: Setting) -> dict:
    """Pruning with the reversed trigger in the second-to-last layer (the experiment's run) and in the last conv
    layer (`neural-cleanse-analysis`): at the step where the reversed trigger stops working."""
    conv = analysis(s)["conv_pruning"]
    out = {}
    for layer, res in (("fc", infected(s)["pruning"]), ("conv", conv)):
        at = res["stopped_at"] if res["stopped_at"] is not None else len(res["pruned"]) - 1
        out[f"{layer}_asr"] = res["asr_original"][at]
        out[f"{layer}_drop"] = res["clean_accuracy"][0] - res["clean_accuracy"][at]
        out[f"{layer}_fraction"] = res["fraction"][at]
    return out


register(Claim(
    id="nc-pruning-layers", paper="neural-cleanse", notebook="05",
    claim="pruning the reversed trigger's neurons stops the real trigger at a small accuracy cost, in the "
          "second-to-last layer and in the last conv layer",
    paper_value="ASR falls to ≈ 0 before accuracy drops much, pruning either layer (Figs. 21, 22; MNIST panels)",
    measure=pruning,
    criterion=all_of(at_most("fc_asr", 0.1), at_most("conv_asr", 0.1), at_most("fc_drop", 0.05), at_most("conv_drop", 0.05)),
    why=lambda v: (
        f"pruning the neurons the reversed trigger excites most costs more accuracy than the paper's before the "
        f"backdoor goes — second-to-last layer: {mean(v['fc_fraction']):.0%} pruned, ASR {per_seed(v['fc_asr'])} on "
        f"the seeds, {mean(v['fc_drop']) * 100:.1f} points of accuracy; last conv layer: {mean(v['conv_fraction']):.0%} "
        f"of its channels pruned, ASR still {per_seed(v['conv_asr'])}, {mean(v['conv_drop']) * 100:.1f} points lost. "
        f"In this small CNN (64 conv channels, 128 hidden units) the backdoor shares units with the main task; the "
        f"fine-pruning rows find the same from clean-data activations"),
    show=lambda v: "; ".join(f"{name}: {spread(v[f'{key}_fraction'])} pruned → ASR {spread(v[f'{key}_asr'])}, accuracy "
                             f"−{spread(v[f'{key}_drop'])}" for key, name in (("fc", "second-to-last"), ("conv", "last conv"))),
))
