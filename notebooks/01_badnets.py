# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · BadNets: a backdoor from a handful of mislabelled images
#
# **The question** (Gu et al.; Turner's thesis, chapters 2–3): how few poisoned training samples does it take
# to plant a backdoor — a small trigger that sends *any* input to the attacker's label — without hurting
# accuracy on clean data? And can a defender who trusts only a small clean set spot the poison?
#
# **Threat model.** The attacker controls a fraction of the training set: they stamp a trigger on some images
# and *relabel* them to a target class. They do not touch training code or the model. At test time they add
# the trigger to any input. We measure **clean accuracy** (test images without the trigger) and **attack
# success rate** (ASR: triggered test images *not labelled* as the target that the model sends to the target).

# %% tags=["parameters"]
PROFILE = None  # "ci" | "lab" | "paper"; None = LABKIT_PROFILE, else "lab"
DATASET = "digits"  # or "mnist", "fashion-mnist", "cifar10", "gtsrb" after `labkit data download NAME`
TARGET = 0  # the attacker's label
SEED = 0

# %%
import numpy as np
from IPython.display import Markdown, display
from matplotlib import pyplot as plt

from labkit import config, data, exercises, experiments, plots, triggers, widgets
from labkit.attacks import badnets
from labkit.plots import badnets as badnets_plots
from labkit.report import notebook_table

prof = config.use_profile(PROFILE)
plots.setup()
ds = data.load(DATASET)
print(f"profile {prof.name}: {len(ds.y_train)} training / {len(ds.y_test)} test images of shape {ds.image_shape}")

# %% [markdown]
# ## 1 · Triggers
# A trigger is a **mask** (which pixels) and a **pattern** (what goes there). BadNets pastes a 3×3
# black-and-white pattern into the bottom-right corner. The thesis also *adds* a reduced amplitude
# (±a/255 on white/black pattern pixels, then clips; §3.5) and copies the pattern, flipped, into all four
# corners so it survives crops and flips (§3.6). Top row: every preset; bottom row: BadNets at rising amplitude.

# %%
badnets_plots.preset_gallery(ds.x_train[:2], ds.image_shape, amplitudes=prof.amplitudes[:4])
plt.show()

# %% [markdown]
# ## 2 · One poisoned model
# Poison 10% of the training set, train the small CNN, and watch it learn both tasks at once.

# %%
result = experiments.run("badnets", dataset=DATASET, poison_fraction=0.1, target=TARGET, seed=SEED)
print(f"{result['poisoned_count']} poisoned images → clean accuracy {result['clean_accuracy']:.1%}, "
      f"ASR {result['attack_success_rate']:.1%}")
fig, ax = plt.subplots()
plots.training_curves(ax, result["history"], keys=("loss", "test_accuracy"), labels=("training loss", "clean test accuracy"))
plt.show()

# %% [markdown]
# ## 3 · How much poison is enough?
# Attack success and clean accuracy against the poisoned fraction (mean ± std over the profile's seeds).

# %%
grid = {"poison_fraction": list(prof.poison_fractions), "seed": list(prof.seeds)}
runs = experiments.sweep("badnets", grid, dataset=DATASET, target=TARGET)
asr = experiments.as_array(runs, "attack_success_rate", grid)
acc = experiments.as_array(runs, "clean_accuracy", grid)
fig, ax = plt.subplots()
plots.asr_vs_poison_fraction(ax, grid["poison_fraction"], asr, acc)
ax.set_xscale("symlog", linthresh=0.005)
ax.set_xlim(left=0)  # fractions are never negative
plt.show()

# %% [markdown]
# ## 4 · The thesis' simple detection scheme (§3.1, §7.3)
# Train a model on a small **trusted** clean set, score every training sample by the probability it gives
# the sample's *label*, and inspect the lowest-scoring ones. Mislabelled poison collects at the bottom.

# %%
found = experiments.run("detection", dataset=DATASET, poison_fraction=0.05, target=TARGET, seed=SEED)
fig, ax = plt.subplots()
plots.detection_curve(ax, found["ks"], found["poisoned_found"], found["expected_at_random"])
ax.set_title(f"{found['poisoned_count']} poisoned among {len(found['scores'])} training samples")
plt.show()

# %% [markdown]
# What a human inspector sees: the 8 lowest-scoring training images and the labels they carry.
# Poisoned ones are obviously mislabelled — that is what label-consistent attacks (notebook 02) avoid.

# %%
trigger = triggers.make("badnets", ds.image_shape)
x_poisoned, y_poisoned, _ = badnets.poison(ds.x_train, ds.y_train, trigger=trigger, target=TARGET, fraction=0.05, seed=SEED)
lowest = found["scores"].argsort()[:8]
flag = {int(i) for i in found["poisoned_indices"]}
fig, axes = plt.subplots(1, 8, figsize=(11, 1.9))
plots.image_grid(axes, x_poisoned[lowest], [f"label {int(y_poisoned[i])}{' ☠' if int(i) in flag else ''}" for i in lowest])
plt.show()

# %% [markdown]
# ## 5 · Explore: trigger amplitude × poison fraction
# Each setting is a cached run: the first visit trains a model (seconds), a revisit replots at once.
# Grey points are the sweep above; the star is the current setting.

# %%
def plot_setting(amplitude, poison_fraction):
    run = experiments.run("badnets", dataset=DATASET, poison_fraction=poison_fraction, amplitude=amplitude,
                          target=TARGET, seed=SEED)
    fig, ax = plt.subplots()
    badnets_plots.sweep_frontier(ax, acc, asr, grid["poison_fraction"],
                                 current=(run["clean_accuracy"], run["attack_success_rate"]))
    ax.set_title(f"amplitude {amplitude}/255, {poison_fraction:.1%} poisoned")
    plt.show()


fractions = [f for f in prof.poison_fractions if f > 0]
widgets.interact(plot_setting,
                 amplitude=widgets.choice(prof.amplitudes, prof.amplitudes[-1], "trigger amplitude"),
                 poison_fraction=widgets.choice(fractions, fractions[-1], "poison fraction"))

# %% [markdown]
# ## Paper vs this lab
# Each row is one of the paper's claims, written once in `labkit.claims`: the paper's figure, this lab's number
# (seed `SEED`, target 0 here), and the verdict of a criterion fixed before measuring. `labkit reproduce` (or
# `make reproduce DATASET=mnist`) runs the same rows over the profile's seeds, on digits or real MNIST, and
# explains each claim that differs.

# %%
display(Markdown(notebook_table("01", DATASET, prof.name, seeds=[SEED])))

# %% [markdown]
# ## Exercises
# Two kinds. **Write it**: complete the function in the cell, run it, and `exercises.check(...)` tries it against
# labkit's own implementation on random and edge-case inputs — ✓, or one hint at what is off. **Predict, then
# run**: answer the question in its widget first (the reason shows once you answer), then run the next cell.
# Stuck? The solutions are in `notebooks/solutions/01_badnets_solutions.py`.
#
# **1 · Write it: the reduced-amplitude trigger (§3.5).** Section 1's bottom row drew BadNets' pattern at rising
# amplitude a. Complete `stamp_reduced`: at a ≥ 255 paste the pattern, (1 − m)·x + m·p; below 255 add +a/255 on
# the pattern's white pixels and −a/255 on its black ones, inside the mask, then clip to [0, 1].

# %%
def stamp_reduced(x, mask, pattern, amplitude):
    """x: images (N, C, H, W) or one (C, H, W) on the 0–1 scale; mask (H, W) of 0/1; pattern (C, H, W) of 0/1
    (1 = white); amplitude on the 0–255 scale. Returns the stamped copy of x."""
    raise NotImplementedError  # your code here


exercises.check(stamp_reduced)

# %% [markdown]
# **2 · Write it: the simple detection score (§3.1).** Section 4 scored every training sample with a model trained
# on a small trusted set. Complete `detection_score`: from that model's softmax outputs and the labels the
# training set carries, return each sample's score — the probability of *its own label* (low = suspicious).

# %%
def detection_score(probs, labels):
    """probs: (N, K) softmax outputs of the trusted model; labels: (N,) int64, the (possibly poisoned) labels.
    Returns (N,) scores."""
    raise NotImplementedError  # your code here


exercises.check(detection_score)

# %% [markdown]
# **3 · Predict, then run: does the detector care which trigger was used?**

# %%
k_at = min(2, len(found["ks"]) - 1)
trigger_question = exercises.predict(
    f"Section 4 found {found['poisoned_found'][k_at]} of the {found['poisoned_count']} poisoned samples among the "
    f"{found['ks'][k_at]} lowest scores, with BadNets' 3×3 pattern. Poison the same images with a single white pixel "
    "instead (trigger=\"pixel\"). How many will the detector find among the lowest scores?",
    choices=["far fewer", "about as many", "far more"], answer="about as many",
    reason="The score is the trusted model's probability of the label each sample carries. That model learned from "
           "clean images only and never saw a trigger: what sinks a poisoned sample is its wrong label, whatever "
           "is stamped on it. Only label-consistent poison (notebook 02) gets past it.")

# %%
pixel = experiments.run("detection", dataset=DATASET, poison_fraction=0.05, target=TARGET, seed=SEED, trigger="pixel")
print(trigger_question.recap())
display(Markdown("| lowest k | BadNets 3×3 pattern | single pixel | at random |\n|---|---|---|---|\n" + "\n".join(
    f"| {k} | {a} | {b} | {r:.1f} |" for k, a, b, r in
    zip(found["ks"], found["poisoned_found"], pixel["poisoned_found"], found["expected_at_random"]))))

# %% [markdown]
# **Going further** (open questions, no check). Lower the amplitude with section 5's widget until the backdoor
# stops working: does more poison buy the success back (the thesis' Figure 3-9)? And compare
# `result["attack_success_rate"]` with `result["attack_success_rate_classified"]`: when would the two
# definitions of §2.1.1 differ noticeably?
