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
# # 06 · Fine-Pruning and STRIP: repair the model, then screen its inputs
#
# **The question** (Liu et al. 2018, *Fine-Pruning*; Gao et al. 2019, *STRIP*; combined in Kashyap,
# Maheshwari & Gahalot's report): we received a model that may carry a backdoor. Can we (1) cut the backdoor
# out of the model — prune the channels that stay **dormant on clean data**, where backdoors like to hide,
# then fine-tune on a little clean data — and (2) catch trojaned inputs at run time, because an image that
# carries the trigger keeps its prediction even when blended with other images (**low entropy**)?
#
# **Threat model.** The attacker trained the model (BadNets: 10% of the training set stamped and relabelled,
# or the *pruning-aware* variant built to survive pruning). The defender owns a small set of clean labelled
# images, can run and fine-tune the model, but cannot retrain from scratch and does not know the trigger.
# We measure **clean accuracy** and **attack success rate** (ASR: triggered test images not labelled as the
# target that the model sends to the target); for STRIP the **FRR** (clean inputs rejected) and the **FAR**
# (triggered inputs let through).

# %% tags=["parameters"]
PROFILE = None  # "ci" | "lab" | "paper"; None = LABKIT_PROFILE, else "lab"
DATASET = "digits"  # or "mnist", "fashion-mnist" after `labkit data download NAME`
TARGET = 0  # the attacker's label
SEED = 0

# %%
from IPython.display import Markdown, display
from matplotlib import pyplot as plt

from labkit import config, data, exercises, experiments, plots, widgets
from labkit.defenses import strip
from labkit.experiments import fine_pruning as fpx
from labkit.plots import fine_pruning as fplots
from labkit.report import notebook_table

prof = config.use_profile(PROFILE)
plots.setup()
ds = data.load(DATASET)
sizes = fpx.SIZES.of(prof)  # this paper's sizes in the chosen profile
victim = dict(dataset=DATASET, target=TARGET, seed=SEED)  # BadNets, 10% poison: notebook 01's model
print(f"profile {prof.name}: {len(ds.y_train)} training / {len(ds.y_test)} test images; "
      f"the defender owns {sizes['clean_size']} clean images")

# %% [markdown]
# ## 1 · Dormant channels: where a backdoor can hide
# Mean activation of each of the 64 channels of the last convolutional layer (after ReLU), on clean test
# images and on the same images with the trigger. Channels are sorted by their clean activation: the ones
# at the left barely fire on clean data. Fine-pruning's bet is that the trigger's channels sit there. Check
# the bet: does the trigger's extra activation (red above blue) concentrate at the left, or is it spread
# over channels the clean task also uses?

# %%
curve = experiments.run("pruning-curve", **victim)
fig, ax = plt.subplots(figsize=(9, 3.6))
fplots.channel_activations(ax, curve["clean_activations"], curve["triggered_activations"], pruned_percent=50)
plt.show()
extra = (curve["triggered_activations"] - curve["clean_activations"]).clamp_min(0)
dormant_half = curve["clean_activations"].argsort()[:32]
print(f"share of the trigger's extra activation in the 50% most dormant channels: "
      f"{float(extra[dormant_half].sum() / extra.sum()):.0%} (50% if it were spread evenly)")

# %% [markdown]
# ## 2 · Pruning alone (the report's Table 3 layout)
# Prune the most dormant k% of the channels (weights and bias masked to zero) and measure, with no
# fine-tuning. Hollow markers: the report's face model (1,283 classes, 601k parameters), where 15% pruned
# already sent the poison accuracy to 0.05%. Our 64-channel network is far narrower and the trigger's
# extra activation is spread over channels the clean task uses (section 1): see how far you must prune before
# attack success falls at all, and what clean accuracy has cost by then.

# %%
fig, ax = plt.subplots()
fplots.pruning_panel(ax, curve["percents"], curve["clean_accuracy"], curve["attack_success_rate"], report=True)
plt.show()

# %% [markdown]
# ## 3 · Fine-pruning vs fine-tuning alone
# Prune k%, then fine-tune on the defender's clean images (masks kept at zero). Each arrow goes from
# "pruned only" (×) to "pruned + fine-tuned" (●); the 0% arrow is fine-tuning alone with the same budget.

# %%
grid = {"prune_percent": list(sizes["prune_grid"])}
runs = experiments.sweep("fine-pruning", grid, finetune=True, **victim)
rows = [{"percent": p, **r} for p, r in zip(grid["prune_percent"], runs)]
fig, ax = plt.subplots()
fplots.defense_paths(ax, rows)
plt.show()

# %% [markdown]
# **The fine-tuning budget matters a lot.** The same sweep's ends (0% and the largest cut below 90%) under
# each budget of the profile: few images at a small learning rate barely touch the backdoor.

# %%
deep = max(p for p in grid["prune_percent"] if p < 90)
budget_rows = {}
for budget in sizes["finetune_budgets"]:
    name = f"{budget.get('clean_size', sizes['clean_size'])} imgs, lr {budget['finetune_lr']:g}"
    tuned, pruned = (experiments.run("fine-pruning", prune_percent=p, **budget, **victim) for p in (0.0, deep))
    budget_rows[name] = {"fine-tuning alone": tuned["attack_success_rate"],
                         f"{deep:g}% pruned + fine-tuning": pruned["attack_success_rate"]}
fig, ax = plt.subplots(figsize=(8, 3.6))
fplots.defense_bars(ax, budget_rows, title="attack success after each defense, per fine-tuning budget")
plt.show()

# %% [markdown]
# ## 4 · Explore: the pruning percent
# The widget replots attack success against clean accuracy; the ringed arrow is the chosen percent, and the
# right panel shows that setting on the pruning-alone curve.

# %%
def plot_percent(prune_percent):
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    fplots.defense_paths(left, rows, highlight=prune_percent)
    fplots.pruning_panel(right, curve["percents"], curve["clean_accuracy"], curve["attack_success_rate"],
                         current=prune_percent)
    run = experiments.run("fine-pruning", prune_percent=prune_percent, **victim)
    left.set_title(f"{prune_percent:g}% pruned + fine-tuned: accuracy {run['clean_accuracy']:.1%}, "
                   f"ASR {run['attack_success_rate']:.1%}")
    plt.show()


percent_widget = widgets.interact(plot_percent, prune_percent=widgets.choice(grid["prune_percent"], deep, "pruning percent"))

# %% [markdown]
# ## 5 · The pruning-aware attack
# The attacker anticipates pruning: train clean, prune the dormant channels, train the backdoor into the
# channels that remain, then **restore** the pruned channels as decoys. The defender's pruning now removes
# the decoys first. Compare the two curves: pruning alone now leaves the backdoor in place, or even
# strengthens it (the decoys partly masked it). Fine-tuning is what still bites; whether pruning first
# still helps against this attack is read off the bars below, not assumed.

# %%
aware = dict(victim, attack="pruning-aware")
aware_curve = experiments.run("pruning-curve", **aware)
fig, ax = plt.subplots()
fplots.pruning_panels(ax, {"BadNets": curve, "pruning-aware": aware_curve})
plt.show()

# %%
summary = {}
for name, settings in (("BadNets", victim), ("pruning-aware", aware)):
    cut = experiments.run("fine-pruning", prune_percent=deep, **settings)
    alone = experiments.run("fine-pruning", prune_percent=0.0, **settings)
    summary[name] = {"none": cut["original_attack_success_rate"], f"pruning {deep:g}%": cut["pruned_attack_success_rate"],
                     "fine-tuning": alone["attack_success_rate"], f"fine-pruning {deep:g}%": cut["attack_success_rate"]}
fig, ax = plt.subplots(figsize=(8, 3.6))
fplots.defense_bars(ax, summary, title="attack success left by each defense")
plt.show()

# %% [markdown]
# ## 6 · The report's loop
# Prune 5% more, fine-tune briefly, repeat until accuracy on a validation quarter of the defender's images
# drops by more than a set amount; keep the last model within budget. Left: the report's 1 point (with a
# small validation set that is one or two images); right: Liu et al.'s 4 points.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
loops = {}
for ax, drop in zip(axes, (0.01, 0.04)):
    loop = loops[drop] = experiments.run("fine-pruning-loop", max_drop=drop, **victim)
    fplots.loop_rounds(ax, loop["rounds"], max_drop=drop)
    ax.set_title(f"stop at −{drop:.0%}: kept {loop['final_percent']:.0f}% pruned, accuracy "
                 f"{loop['clean_accuracy']:.1%}, ASR {loop['attack_success_rate']:.1%}", fontsize=9)
plt.show()

# %% [markdown]
# ### The report's own procedure: weight thresholds
# The loop above prunes *channels*. The student report prunes *weights*: in every conv layer, each weight
# ≤ min + (max − min)·5% of the layer's signed values, then fine-tunes, round after round, stopping when
# accuracy drops by 1 point. Its Table 3 (dotted crosses) labels round k as "5k% pruned channels"; the grey
# numbers say how much of the network each round actually removes.

# %%
weights_loop = experiments.run("fine-pruning-weights", **victim)
fig, ax = plt.subplots(figsize=(8, 3.8))
fplots.weight_rounds(ax, weights_loop["rounds"], max_drop=0.01)
ax.set_title(f"kept {weights_loop['rounds_kept']} round(s), {weights_loop['weights_pruned']:.1%} of conv weights "
             f"pruned: ASR {weights_loop['attack_success_rate']:.1%}", fontsize=9)
plt.show()

# %% [markdown]
# ### Does fine-pruning need spare capacity?
# Pruning removes channels that are *dormant on clean data*; it can only reach the backdoor if the backdoor
# lives there. The same BadNets attack against wider victims (more last-layer channels), then pruning alone,
# fine-tuning alone and both (80% pruned):

# %%
widths = [experiments.run("fine-pruning-width", width=w, **victim) for w in sizes["widths"]]
fig, ax = plt.subplots(figsize=(8, 3.8))
fplots.width_sweep(ax, widths)
plt.show()

# %% [markdown]
# ## 7 · STRIP: entropy of superimposed copies
# Each input is added to N random clean images from the defender's set (clipped to [0, 1]); the entropy
# (bits, over the classes) of each copy's prediction is averaged over the N copies. The threshold comes from
# a normal fitted to the entropies of the defender's own clean images, at the target FRR.

# %%
screen = experiments.run("strip", frr=0.05, **victim)
fig, ax = plt.subplots()
fplots.entropy_histograms(ax, screen["benign_entropies"], screen["trojan_entropies"], screen["threshold"],
                          calibration=screen["calibration_entropies"])
ax.set_title(f"N = {screen['n_copies']}: FRR {screen['frr']:.1%}, FAR {screen['far']:.1%} (target FRR 5%)")
plt.show()

# %% [markdown]
# FRR and FAR as the threshold moves. With the trigger this dominant, the two distributions barely overlap.

# %%
fig, ax = plt.subplots()
fplots.frr_far_curve(ax, strip.rate_curve(screen["benign_entropies"], screen["trojan_entropies"]), screen["threshold"])
plt.show()

# %% [markdown]
# ## 8 · Explore: the target FRR
# The threshold is recomputed from the cached calibration entropies (normal fit or empirical quantile).

# %%
def plot_frr(target_frr, method):
    threshold = strip.threshold_at_frr(screen["calibration_entropies"], target_frr, method)
    frr, far = strip.detection_rates(screen["benign_entropies"], screen["trojan_entropies"], threshold)
    fig, ax = plt.subplots()
    fplots.entropy_histograms(ax, screen["benign_entropies"], screen["trojan_entropies"], threshold,
                              calibration=screen["calibration_entropies"] if method == "normal" else None)
    ax.set_title(f"target FRR {target_frr:.0%} ({method}): measured FRR {frr:.1%}, FAR {far:.1%}")
    plt.show()


frr_widget = widgets.interact(plot_frr, target_frr=widgets.choice(fpx.FRR_GRID, 0.05, "target FRR"),
                 method=widgets.dropdown(strip.METHODS, "normal", "threshold"))

# %% [markdown]
# ## 9 · The combined pipeline
# The fine-pruned model answers; STRIP (run on the received model, whose backdoor is what makes triggered
# inputs stand out) turns suspected inputs into an extra class, "reject". A mixed stream of clean and
# triggered test inputs; a triggered input's right answer is "reject".

# %%
pipe = experiments.run("defense-pipeline", prune_percent=deep, frr=0.05, **victim)
fig, ax = plt.subplots(figsize=(6.5, 5.5))
fplots.confusion_matrix(ax, pipe["confusion"], ds.classes)
ax.set_title(f"clean answered right {pipe['clean_correct']:.1%}, rejected {pipe['clean_rejected']:.1%}; "
             f"triggered rejected {pipe['trojan_rejected']:.1%}, sent to target {pipe['trojan_to_target']:.1%}",
             fontsize=9)
plt.show()

# %% [markdown]
# ## Paper vs this lab

# %%
display(Markdown(notebook_table("06", DATASET, prof.name, seeds=[SEED])))

# %% [markdown]
# ## Exercises
# Two kinds. **Write it**: complete the function in the cell, run it, and `exercises.check(...)` tries it against
# labkit's own implementation on random and edge-case inputs — ✓, or one hint at what is off. **Predict, then
# run**: answer the question in its widget first (the reason shows once you answer), then run the next cell.
# Stuck? The solutions are in `notebooks/solutions/06_fine_pruning_and_strip_solutions.py`.
#
# **1 · Write it: which channels fine-pruning removes.** Section 2 pruned "the most dormant k%". Complete
# `dormant_channels`: from each last-conv channel's mean activation on clean images, return the indices of the
# round(k/100 · C) least active channels.

# %%
def dormant_channels(activations, percent):
    """activations: (C,) mean activation of each channel on clean data; percent: k in [0, 100].
    Returns the indices (a 1-D int tensor) of the channels to prune."""
    raise NotImplementedError  # your code here


exercises.check(dormant_channels)

# %% [markdown]
# **2 · Write it: STRIP's entropy.** Section 7: each input is blended with N clean images and the model predicts
# every copy. Complete `strip_entropy`: the Shannon entropy in bits, over the classes, of each copy's prediction,
# averaged over the input's copies (0·log 0 counts as 0).

# %%
def strip_entropy(probs):
    """probs: (B, N, M) softmax outputs for B inputs × N blended copies × M classes.
    Returns (B,): each input's STRIP score (low = suspicious)."""
    raise NotImplementedError  # your code here


exercises.check(strip_entropy)

# %% [markdown]
# **3 · Predict, then run: STRIP against a faint trigger.** STRIP assumes the trigger dominates the prediction
# whatever it is blended with. Take the same BadNets attack with the trigger at amplitude 32/255 instead of 255.

# %%
faint = experiments.run("strip", frr=0.05, amplitude=32.0, **victim)
change = faint["far"] - screen["far"]
more, same, fewer = "more get through (FAR rises)", "about as many (FAR within 5 points)", "fewer get through (FAR falls)"
faint_answer = more if change > 0.05 else fewer if change < -0.05 else same
faint_question = exercises.predict(
    f"At full amplitude STRIP let {screen['far']:.0%} of the triggered inputs through (target FRR 5%). With the "
    "faint trigger, how many triggered inputs get through?", choices=[more, same, fewer], answer=faint_answer,
    reason=f"Blending adds a whole clean image to the input and clips: a faint ±32/255 pattern drowns in it, so the "
           f"blended copies stop agreeing on the target and their entropy rises towards clean inputs'. Here the "
           f"triggered inputs' mean entropy went {screen['trojan_mean_entropy']:.2f} → {faint['trojan_mean_entropy']:.2f} "
           f"bits (clean: {faint['benign_mean_entropy']:.2f}) and the FAR {screen['far']:.1%} → {faint['far']:.1%}.")

# %%
print(faint_question.recap())
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), sharex=True)
for ax, (name, run) in zip(axes, (("amplitude 255", screen), ("amplitude 32", faint))):
    fplots.entropy_histograms(ax, run["benign_entropies"], run["trojan_entropies"], run["threshold"])
    ax.set_title(f"{name}: FRR {run['frr']:.1%}, FAR {run['far']:.1%}")
plt.show()

# %% [markdown]
# **Going further** (open questions, no check). Move the pruning percent with section 4's widget and find where
# fine-pruning starts to cost accuracy; then pass `finetune_lr=5e-4` to `experiments.run("fine-pruning", ...)`:
# what does a smaller budget leave behind? Rerun section 5 with `attacker_prune_percent=30` and `80`: how many
# decoys does the attacker need before the defender's pruning stops hurting the backdoor?
