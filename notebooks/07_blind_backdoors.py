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
# # 07 · Blind backdoors: the attacker who owns the loss, not the data
#
# **The question** (Bagdasaryan & Shmatikov, *Blind Backdoors in Deep Learning Models*): every attack so far
# poisoned the *data*. What if the attacker instead compromises the **code that computes the loss** — a
# one-function change in a training library — and never sees the data, the hyperparameters or the model?
#
# **Threat model.** The attacker knows the task, the possible architectures and the general data domain
# (here: handwritten digits). They do **not** know the training data, the hyperparameters or the resulting
# model. Their code runs inside every training step: it sees each batch `(x, y)` as it passes through the
# loss, synthesises backdoor inputs `x* = μ(x)` and labels `y* = ν(y)` on the fly, and returns a loss that
# teaches both tasks. No poisoned sample ever sits in the dataset, so data inspection finds nothing.
#
# This notebook closes the course: it pits this attacker against the defenses of notebooks 03, 05 and 06.

# %% tags=["parameters"]
PROFILE = None  # "ci" | "lab" | "paper"; None = LABKIT_PROFILE, else "lab"
DATASET = "digits"  # or "mnist" / "fashion-mnist" after `labkit data download NAME`
TARGET = 0  # ν(y) for the pattern and single-pixel backdoors (the slides' 'hen')
SEED = 0

# %%
import inspect

import numpy as np
from IPython.display import Markdown, display
from matplotlib import pyplot as plt

from labkit import config, data, exercises, experiments, plots, triggers, widgets
from labkit.attacks import blind, calculator, mgda
from labkit.experiments import blind as blind_exp
from labkit.plots import blind as blind_plots
from labkit.report import notebook_table

prof = config.use_profile(PROFILE)
plots.setup()
ds = data.load(DATASET)
print(f"profile {prof.name}: {len(ds.y_train)} training / {len(ds.y_test)} test images, {prof.epochs} epochs")

# %% [markdown]
# ## 1 · The malicious code
# The slides put the victim's training loop next to the compromised one. Only the loss computation changes:
#
# ```
# (a) unmodified training                 (b) training with backdoor
# for x, y in train_data:                 for x, y in train_data:
#     out = resnet18(x)                       out = resnet18(x)
#     loss = ce_criterion(out, y)             loss = ce_criterion(out, y)
#                                             if loss < T:  # optional
#                                                 lm = loss;  gm = get_grads(lm)
#                                                 x* = μ(x);  y* = ν(y)
#                                                 lm*, gm* = backdoor_loss(resnet18, x*, y*)
#                                                 lev, gev = evasion_loss(resnet18, x*, y*)
#                                                 α0, α1, α2 = MGDA(lm, lm*, lev, gm, gm*, gev)
#                                                 loss = α0·lm + α1·lm* + α2·lev
#     loss.backward()                         loss.backward()
#     adam_optimizer.step()                   adam_optimizer.step()
# ```
#
# MGDA picks α as the **min-norm point of the convex hull of the task gradients** — the direction that lowers
# every loss at once — so the attacker needs no hyperparameter tuning for a model they have never seen.
# Here is labkit's version of (b), the whole attack:

# %%
print(inspect.getsource(blind.BlindLoss.__call__))

# %% [markdown]
# ## 2 · Synthesisers μ and ν
# Pixel pattern and single pixel: stamp the trigger, label as the target. The **calculator**: two digits side
# by side; the main task outputs their **sum**; with the pattern present the same head outputs their
# **product** (one output over the union of the 40 possible answers).

# %%
x = ds.x_test[:3]
pairs, codes = calculator.make_pairs(ds.x_test, ds.y_test, 3, seed=SEED)
pattern, pixel = triggers.make("badnets", ds.image_shape), triggers.make("pixel", ds.image_shape)
images = [*x, *pattern.apply(x), *pixel.apply(x), *pairs, *pattern.apply(pairs)]
titles = ([f"x: {int(v)}" for v in ds.y_test[:3]] + [f"pattern → {TARGET}"] * 3 + [f"pixel → {TARGET}"] * 3
          + [f"{int(c) // 10}+{int(c) % 10}={int(c) // 10 + int(c) % 10}" for c in codes]
          + [f"{int(c) // 10}×{int(c) % 10}={(int(c) // 10) * (int(c) % 10)}" for c in codes])
fig, axes = plt.subplots(1, 15, figsize=(15, 1.6))
plots.image_grid(axes, images, titles)
plt.show()

# %% [markdown]
# ## 3 · θ → θ*: the slides' table
# For each synthesiser, the same data, seed and training loop run twice: with the normal loss (θ) and with
# the blind loss balanced by MGDA (θ*). Backdoor accuracy counts triggered test inputs whose backdoor label
# differs from their true label (for the calculator: pairs whose product differs from their sum).

# %%
results = {s: experiments.run("blind", dataset=DATASET, synthesizer=s, target=TARGET, seed=SEED)
           for s in blind_exp.SYNTHESIZERS}
rows = [{"experiment": f"{DATASET} · {s}", "input": {"pattern": "pixel pattern", "pixel": "single pixel"}.get(s, "pixel pattern"),
         "label": f"label as {TARGET}" if s != "calculator" else "add → multiply", "T": "inf",
         "main": (r["main_accuracy_clean"], r["main_accuracy_backdoored"]),
         "backdoor": (r["backdoor_accuracy_clean"], r["backdoor_accuracy"])} for s, r in results.items()]
display(Markdown(blind_plots.transition_table(rows)))
fig, ax = plt.subplots()
blind_plots.accuracy_transition(ax, list(results), *[[r[k] for r in results.values()] for k in (
    "main_accuracy_clean", "main_accuracy_backdoored", "backdoor_accuracy_clean", "backdoor_accuracy")])
plt.show()

# %% [markdown]
# ## 4 · MGDA's weights over training vs fixed scales
# MGDA re-solves for α at every step (normalisation `loss+`: each gradient is divided by loss × norm).
# Fixed scales (α0 = α1 = ½) are the alternative that needs tuning. Left: α per step; right: how both
# tasks' test accuracy evolves under each.

# %%
mgda_run = results["pattern"]
fixed_run = experiments.run("blind", dataset=DATASET, synthesizer="pattern", balance="fixed", target=TARGET, seed=SEED)
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
blind_plots.weights_over_training(axes[0], mgda_run["weights"], mgda_run["tasks"], mgda_run["steps_per_epoch"],
                                  fixed=(0.5, 0.5))
for run, style in ((mgda_run, "MGDA"), (fixed_run, "fixed")):
    plots.training_curves(axes[1], run["history"], keys=("main_accuracy", "backdoor_accuracy"),
                          labels=(f"main · {style}", f"backdoor · {style}"))
axes[1].set_ylabel("test accuracy")
plt.show()

# %% [markdown]
# ## 5 · Neural Cleanse, with and without the evasion loss
# Neural Cleanse (notebook 05) reverse-engineers the smallest trigger for every label and flags a label whose
# trigger is abnormally small (anomaly index > 2). The evasion loss L_ev runs Neural Cleanse's own optimisation
# *during training* on a trigger model (mask + pattern) and teaches the network to classify inputs carrying
# **that** trigger correctly — so the small triggers Neural Cleanse would find stop working, while the real
# pattern keeps its effect. With three conflicting losses MGDA starved the main task of this small CNN, so the
# evasion runs use fixed scales `blind_exp.EVASION` (α = 0.6, 0.3, 0.1). Anomaly index of the target label over
# the profile's seeds (positive = the target's trigger is smaller than the median label's):

# %%
seeds = list(prof.seeds)
plain = [experiments.run("blind", dataset=DATASET, synthesizer="pattern", neural_cleanse=True, target=TARGET, seed=s)
         for s in seeds]
evaded = [experiments.run("blind", dataset=DATASET, synthesizer="pattern", evasion=True, target=TARGET, seed=s,
                          **blind_exp.EVASION) for s in seeds]
fig, ax = plt.subplots()
blind_plots.anomaly_indices(ax, seeds, [r["anomaly_index"] for r in plain], [r["anomaly_index"] for r in evaded])
plt.show()
def indices(runs):
    return ", ".join(f"{r['anomaly_index']:.2f}" for r in runs)


for name, runs in (("blind backdoor", plain), ("+ evasion", evaded)):
    print(f"{name:15s} main {np.mean([r['main_accuracy_backdoored'] for r in runs]):.1%} · backdoor "
          f"{np.mean([r['backdoor_accuracy'] for r in runs]):.1%} · anomaly index {indices(runs)}")

# %% [markdown]
# Per-label trigger sizes (seed `SEED`) and what Neural Cleanse recovers for the target label (mask × pattern),
# next to the evasion's own trigger model at the end of training:

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
blind_plots.l1_norms(axes[0], plain[0]["l1_norms"], TARGET, title="without evasion")
blind_plots.l1_norms(axes[1], evaded[0]["l1_norms"], TARGET, title="with the evasion loss")
plt.show()
recovered = [r["nc_masks"][TARGET][None] * r["nc_patterns"][TARGET] for r in (plain[0], evaded[0])]
fig, axes = plt.subplots(1, 3, figsize=(6, 2.2))
plots.image_grid(axes, [*recovered, evaded[0]["evasion_mask"][None] * evaded[0]["evasion_pattern"]],
                 ["NC: no evasion", "NC: evasion", "attacker's NC model"])
plt.show()

# %% [markdown]
# ## 6 · STRIP against the blind backdoor
# STRIP (notebook 06) superimposes each input with clean images: a triggered input keeps predicting the target
# (low entropy). Threshold at 1% false rejections on clean inputs; FAR = triggered inputs let through.

# %%
strip_runs = {"blind backdoor": blind_exp.strip_report(plain[0]), "+ evasion": blind_exp.strip_report(evaded[0])}
fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
for ax, (name, report) in zip(axes, strip_runs.items()):
    blind_plots.entropy_histograms(ax, report["benign_entropies"], report["trojan_entropies"], report["threshold"],
                                   title=f"{name}: FRR {report['frr']:.1%}, FAR {report['far']:.1%}")
plt.show()

# %% [markdown]
# ## 7 · DP-style gradient shaping
# The slides' defense: g = Clip(∇ℓ, S) + N(0, σ²). DP-SGD (notebook 03, Opacus) clips **per-sample**
# gradients, which bounds the influence of any *one poisoned sample*. A blind backdoor has no poisoned
# samples: the backdoor term is part of every batch's loss (MGDA's α is computed from whole-batch gradients,
# which Opacus's per-sample hooks cannot see), so here the training loop clips the **batch** gradient that the
# compromised loss produced to norm S and adds Gaussian noise of std σ·S/batch — the shaping the defender's
# code can apply to whatever loss it is handed.

# %%
noise = blind_exp.SIZES.of(prof)["shaping_noise"]
shaped = [experiments.run("blind", dataset=DATASET, synthesizer="pattern", grad_clip=blind_exp.SHAPING_CLIP,
                          noise_multiplier=s, target=TARGET, seed=SEED) for s in noise]
fig, ax = plt.subplots()
blind_plots.shaping_curve(ax, noise, [r["main_accuracy_backdoored"] for r in shaped],
                          [r["backdoor_accuracy"] for r in shaped], blind_exp.SHAPING_CLIP)
ax.plot(noise, [r["main_accuracy_clean"] for r in shaped], ":", color="gray", label="main task, normal training θ")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 8 · Explore: synthesiser × balance
# Each setting is a cached run: the first visit trains θ* (and θ if needed); a revisit replots at once.

# %%
def plot_setting(synthesizer, balance, normalization):
    run = experiments.run("blind", dataset=DATASET, synthesizer=synthesizer, balance=balance,
                          normalization=normalization, target=TARGET, seed=SEED)
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    blind_plots.accuracy_transition(axes[0], [synthesizer], [run["main_accuracy_clean"]],
                                    [run["main_accuracy_backdoored"]], [run["backdoor_accuracy_clean"]],
                                    [run["backdoor_accuracy"]])
    blind_plots.weights_over_training(axes[1], run["weights"], run["tasks"], run["steps_per_epoch"],
                                      title=f"{balance} ({normalization})" if balance == "mgda" else "fixed scales")
    plt.show()


controls = dict(synthesizer=widgets.dropdown(blind_exp.SYNTHESIZERS, "pattern", "synthesizer"),
                balance=widgets.dropdown(blind.BALANCES, "mgda", "balance"),
                normalization=widgets.dropdown(mgda.NORMALIZATIONS, "loss+", "MGDA normalisation"))
wired = widgets.interact(plot_setting, **controls)

# %% [markdown]
# ## 9 · Paper vs this lab

# Each row is one of the paper's claims, written once in `labkit.claims`: the paper's figure, this lab's number
# (seed `SEED`, target 0 here), and the verdict of a criterion fixed before measuring. The paper's code balances
# the evasion loss with MGDA, so the claim row does too; section 5's fixed scales are the ablation row.
# `labkit reproduce` runs the same rows over the profile's seeds, on digits or real MNIST.

# %%
display(Markdown(notebook_table("07", DATASET, prof.name, seeds=[SEED])))
print(f"Not a claim row — gradient shaping (paper: 66.01% main / 99.15% backdoor): σ = {noise[-1]:g} leaves "
      f"{shaped[-1]['main_accuracy_backdoored']:.1%} main / {shaped[-1]['backdoor_accuracy']:.1%} backdoor here.")

# %%
def mgda_reading(run: dict) -> str:
    """One sentence, from this run's numbers, on whether MGDA starved the main task (α0 → 0)."""
    alpha0 = run["weights"][:, 0]
    starved = (alpha0 < 0.05).nonzero().flatten()
    lost = run["main_accuracy_clean"] - run["main_accuracy_backdoored"]
    where = f"profile `{prof.name}`, seed {SEED}"
    if len(starved):
        epoch = int(starved[0]) // run["steps_per_epoch"] + 1
        return (f"In this single-pixel run ({where}) α0 fell below 0.05 in epoch {epoch} and the main task lost "
                f"{lost:.1%} points ({run['main_accuracy_clean']:.1%} → {run['main_accuracy_backdoored']:.1%}).")
    return (f"In this single-pixel run ({where}) α0 stayed above 0.05 (lowest {float(alpha0.min()):.2f}) and the "
            f"main task moved {run['main_accuracy_clean']:.1%} → {run['main_accuracy_backdoored']:.1%}; on other "
            f"seeds and in the `lab` profile α0 can fall to ~0 and stay there — try the widget.")


display(Markdown(f"**This run.** {mgda_reading(results['pixel'])}"))

# %% [markdown]
# **Reading the table.** For the pixel pattern and the calculator the headline result carries over to a small
# CNN: a loss-only attacker gets a working backdoor at no visible cost to the main task, and the calculator
# learns a *second task* (multiplication) from the same images. MGDA is not a free lunch, though: when one
# task's gradient vanishes the min-norm point is pulled towards it, α0 can fall to ~0 and stay there, and the
# main task collapses (the line above says what this run did). Fixed scales do not have this failure mode;
# that is why the evasion runs of section 5 use them. Neural Cleanse's verdict depends on the evasion loss; a public reproduction on MNIST
# did not get the index below 2 either, so compare your seeds with the paper's claim rather than taking it on
# trust. STRIP and gradient shaping look at inputs or gradient magnitudes — a backdoor computed inside the
# loss is present in every batch and survives both. The paper's proposed mitigations are certified
# robustness and, above all, a **trusted computational graph**: verify the loss code, not the data.

# %% [markdown]
# ## Exercises
# Two kinds. **Write it**: complete the function in the cell, run it, and `exercises.check(...)` tries it against
# labkit's own implementation on random and edge-case inputs — ✓, or one hint at what is off. **Predict, then
# run**: answer the question in its widget first (the reason shows once you answer), then run the next cell.
# Stuck? The solutions are in `notebooks/solutions/07_blind_backdoors_solutions.py`.
#
# **1 · Write it: MGDA's two-task weight.** With two tasks the min-norm point of the hull is closed form:
# ‖γ·g1 + (1 − γ)·g2‖² is a parabola in γ. Complete `two_task_gamma`: its minimiser, clipped to [0, 1]. What
# should it return when the two gradients are identical?

# %%
def two_task_gamma(g1, g2):
    """g1, g2: gradient tensors of equal shape (flatten them). Returns γ in [0, 1], the weight of g1, minimising
    ‖γ·g1 + (1 − γ)·g2‖."""
    raise NotImplementedError  # your code here


exercises.check(two_task_gamma)

# %% [markdown]
# **2 · Write it: the blind loss' weights.** Section 4: before solving, `loss+` divides each task's gradient by
# its loss × its norm, capped at 10 as in the paper's code (plus 10⁻⁵ against a zero divisor):
# g / (min(loss·‖g‖, 10) + 10⁻⁵). Complete `mgda_weights` with your `two_task_gamma`.

# %%
def mgda_weights(g_main, g_backdoor, loss_main, loss_backdoor):
    """Gradient tensors of the main and backdoor losses (same shape) and the two losses (floats).
    Returns (α0, α1): the main and backdoor tasks' weights (a pair of floats, or a (2,) tensor)."""
    raise NotImplementedError  # your code here


exercises.check(mgda_weights)

# %% [markdown]
# **3 · Predict, then run: where does MGDA put the weight?** "Reading the table" says a vanishing gradient pulls
# the min-norm point towards its task. Put a number on it.

# %%
vector = ds.x_test.new_tensor  # a float tensor from a list, without importing torch here
alpha0 = mgda.two_task_gamma(vector([10.0, 0.0]), vector([0.0, 1.0]))
weight_question = exercises.predict(
    "Two orthogonal task gradients: the main task's has length 10, the backdoor's length 1 (no normalisation). "
    "What weight α0 does MGDA give the main task? (a number in [0, 1])", answer=alpha0, tolerance=0.02,
    reason=f"For orthogonal gradients the min-norm point weighs each task by the other one's squared length: "
           f"α0 = 1²/(10² + 1²) = {alpha0:.4f}. The *shorter* gradient gets the weight, so as the backdoor's "
           "gradient shrinks it pulls α ever harder — without normalisation, and with `loss+` whenever a task's "
           "normalised gradient is the shorter one, α0 can fall to ~0 and the main task starves.")

# %%
print(weight_question.recap())
ratios = np.logspace(-2, 2, 41)
alphas = [mgda.two_task_gamma(vector([r, 0.0]), vector([0.0, 1.0])) for r in ratios]
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.semilogx(ratios, alphas, color="#2d3436")
ax.plot([10], [alpha0], "*", ms=14, color="#c0392b", label="the question: ‖g_main‖ = 10·‖g_backdoor‖")
ax.set_xlabel("‖g_main‖ / ‖g_backdoor‖ (orthogonal gradients)")
ax.set_ylabel("α0 (main task's weight)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# **Going further** (open questions, no check). Set a threshold `T` (`experiments.run("blind", threshold=0.5,
# ...)`): how late does the attack switch on (`attack_active_fraction`), and does the backdoor still work? Why
# would an attacker want that? Compare MGDA's normalisations in section 8's widget: which gives the backdoor the
# most weight, and what happens to the main task? Train the evasion attack with `balance="fixed"` and other
# `evasion_scale` / `nc_lambda`: can you push the anomaly index below 2 on every seed without losing main-task
# accuracy?
