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
# # 04 · Certified defenses: how much can *any* poisoning attack hurt a sanitized SVM?
#
# **The question** (Steinhardt, Koh & Liang, 2017): a defender trains a linear SVM after throwing away
# training points that look like outliers. An attacker adds an ε fraction of points. Instead of testing one
# attack, can we **bound the damage of every attack** — and find an attack that comes close to the bound?
#
# **Threat model.** Indiscriminate availability attack (raise the test loss), white box (the attacker knows
# the clean data D_c and the sanitizer), and the attacker may only **add** εn points D_p. The defender
# trains on (D_c ∪ D_p) ∩ F, where the *feasible set* F keeps points near their class centroid:
#
# * **sphere** ‖x − μ_y‖ ≤ r_y, **slab** |⟨x − μ_y, μ_y − μ_−y⟩| ≤ s_y (normalised direction), or both;
#   r_y, s_y are per-class percentiles of the clean data (the 70th by default, as in the authors' code);
# * **oracle** centroids come from clean data; **data-dependent** ones from everything the defender received.
#
# The model is θ = (w, b) with ‖θ‖² ≤ ρ, the loss is the hinge. The paper bounds the worst attack by
# **U(θ) = (1/n)·L(θ; D_c) + ε·max_{(x,y)∈F} ℓ(θ; x, y)** (losses summed, divided by the clean count n):
# for every attack, (1/n)·L(θ̃; D_c ∪ D_p) ≤ M ≤ min_θ U(θ).

# %% tags=["parameters"]
PROFILE = None  # "ci" | "lab" | "paper"; None = LABKIT_PROFILE, else "lab"
DATASET = "digits-1-7"  # or "mnist-1-7" (the paper's) after `labkit data download mnist`
DEFENSE = "sphere+slab"  # the defense studied in sections 4-6: none | sphere | slab | sphere+slab
SEED = 0

# %%
import numpy as np
from IPython.display import Markdown, display
from matplotlib import pyplot as plt

from labkit import config, exercises, experiments, pairs, plots, widgets
from labkit.bench import seconds
from labkit.defenses import certified as cert
from labkit.experiments import certified as certified_exp
from labkit.plots import certified as cplots
from labkit.report import notebook_table

prof = config.use_profile(PROFILE)
plots.setup()
EPSILONS, ITERATIONS = certified_exp.SIZES.of(prof)["epsilons"], certified_exp.SIZES.of(prof)["iterations"]
pair = pairs.load(DATASET, SEED)
print(f"profile {prof.name}: {DATASET} has n = {pair.n} clean training points in {pair.dim}-D, "
      f"{len(pair.y_test)} test points; ρ = {pair.rho:g}; ε grid {EPSILONS}")

# %% [markdown]
# ## 1 · The picture in 2-D
# Two Gaussian classes. Solid circles are the spheres, dashed lines the slabs, crosses the centroids.
# Stars are the points Algorithm 1 adds (bigger = picked more often): it always picks the **feasible point
# with the largest loss** for the current model — on the far side of the sphere, pushed against the slab.
# Left: oracle centroids. Right: data-dependent centroids, which the poison drags towards itself (hollow stars
# are the attack points the final sanitizer still removes).

# %%
toy = pairs.load("toy-2d", SEED)
fig, axes = plt.subplots(1, 2, figsize=(12, 5))
for ax, centroids in zip(axes, ("oracle", "data-dependent")):
    r = experiments.run("certified", dataset="toy-2d", epsilon=0.2, defense="sphere+slab", centroids=centroids, seed=SEED)
    cplots.feasible_picture(ax, toy.x_train, toy.y_train, r["feasible_set"], r["poison_x"], r["poison_y"],
                            r["theta_clean"], r["theta_attack"], kept=r["poison_kept"])
    ax.set_title(f"{centroids}: achieved {r['attack_train_loss']:.3f}, test error "
                 f"{r['clean_test_error']:.0%} → {r['attack_test_error']:.0%}")
plt.show()

# %% [markdown]
# ## 2 · The worst-case point: closed form vs a convex solver
# Algorithm 1 needs argmax_{(x,y)∈F} ℓ(θ; x, y) at every step. For one label it is a linear objective over
# ball ∩ slab: the ball's maximiser if it lies in the slab, otherwise the maximiser on the violated slab face
# (`cert.support`). The same answer from cvxpy costs a solver call:

# %%
fset = cert.feasible_set(pair.x_train, pair.y_train, DEFENSE, (pair.domain_centre, pair.domain_radius))
theta = np.random.default_rng(SEED).normal(size=pair.dim + 1) / np.sqrt(pair.dim)
(_, y_closed, closed), (_, y_cvx, solved) = cert.worst_point(theta, fset), cert.worst_point_cvxpy(theta, fset)
t_closed = seconds(lambda: cert.worst_point(theta, fset), repeat=20)
t_cvx = seconds(lambda: cert.worst_point_cvxpy(theta, fset))
print(f"closed form: loss {closed:.8f} (y = {y_closed:+.0f}) in {t_closed * 1e6:.0f} µs; "
      f"cvxpy: {solved:.8f} (y = {y_cvx:+.0f}) in {t_cvx * 1e3:.0f} ms — {t_cvx / t_closed:.0f}× slower")

# %% [markdown]
# ## 3 · Bounds against ε, for each defense
# For each ε: the **exact bound** min_θ U(θ) — one SOCP, because the inner max over ball ∩ slab has a closed
# dual (the support function min_λ r‖c − λa‖ + s|λ|) — **Algorithm 1's U*** after εn steps, and the
# **achieved** loss of its candidate attack (the SVM retrained on D_c ∪ D_p), with that model's test error.
# Achieved ≤ exact ≤ U* always; a small exact bound *certifies* the defense against every attack.

# %%
grid = {"defense": list(cert.DEFENSES), "epsilon": list(EPSILONS)}
runs = experiments.sweep("certified", grid, dataset=DATASET, seed=SEED)
table = {key: experiments.as_array(runs, key, grid) for key in
         ("upper_bound_exact", "upper_bound_alg1", "attack_train_loss", "attack_test_error")}
fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True)
for i, (ax, defense) in enumerate(zip(axes.ravel(), grid["defense"])):
    cplots.bounds_vs_epsilon(ax, EPSILONS, table["upper_bound_exact"][i], table["upper_bound_alg1"][i],
                             table["attack_train_loss"][i], table["attack_test_error"][i], title=f"defense: {defense}")
fig.tight_layout()
plt.show()

# %% [markdown]
# Without a sanitizer the attacker only has to submit valid images (we hold it to the ball around mid-grey
# that holds every image), and the bound grows with ε until the defender's best answer is θ = 0. The sphere
# alone lets points sit far *along* the class direction; the slab closes that off. With a slab the exact bound
# goes **flat**: past some ε the best θ classifies the whole feasible set with margin ≥ 1, so more poison
# adds no loss — a **certificate** for every attack, not just the one we found.
#
# **Test error, not only loss.** The right-hand axes above also show the attacked model's test error. On
# `digits-1-7` the ones and sevens are separable with room to spare: the clean test error is 0 and stays 0 under
# every attack and defense here, so only the loss moves. Test error moves on the paper's `mnist-1-7` (set
# `DATASET` above) and on the 2-D toy, whose classes overlap:

# %%
print(f"{DATASET}: largest test error under any attack above: {np.nanmax(table['attack_test_error']):.1%}")
toy_runs = experiments.sweep("certified", grid, dataset="toy-2d", seed=SEED)
toy_error = experiments.as_array(toy_runs, "attack_test_error", grid)
fig, ax = plt.subplots(figsize=(6.4, 3.6))
cplots.error_vs_epsilon(ax, EPSILONS, dict(zip(grid["defense"], toy_error)), toy_runs[0]["clean_test_error"])
ax.set_title("toy-2d: test error of the attacked SVM against ε")
plt.show()

# %% [markdown]
# ## 4 · Oracle vs data-dependent centroids
# The same attack, but now the defender estimates the centroids from D_c ∪ D_p (the modified Algorithm 1
# re-derives F from the centroids that include the poison so far). The oracle's exact bound no longer applies.

# %%
dd_grid = {"centroids": ["oracle", "data-dependent"], "epsilon": list(EPSILONS)}
dd_runs = experiments.sweep("certified", dd_grid, dataset=DATASET, defense=DEFENSE if DEFENSE != "none" else "sphere+slab", seed=SEED)
dd = {key: experiments.as_array(dd_runs, key, dd_grid) for key in
      ("oracle_upper_bound_exact", "attack_train_loss", "upper_bound_alg1", "attack_test_error", "poison_kept_fraction")}
fig, ax = plt.subplots()
cplots.oracle_vs_data_dependent(ax, EPSILONS, dd["oracle_upper_bound_exact"][0], dd["attack_train_loss"][0],
                                dd["attack_train_loss"][1], dd["upper_bound_alg1"][1])
plt.show()
print("data-dependent attack: share of poison points the final sanitizer keeps:",
      ", ".join(f"ε={e:g}: {k:.0%}" for e, k in zip(EPSILONS, dd["poison_kept_fraction"][1])))

# %% [markdown]
# ## 5 · The regret gap
# Proposition 1: U* − achieved ≤ Regret(T)/T. Algorithm 1 is online gradient descent with a lazy norm
# projection (z ← z − g, λ ← max(λ, ‖z‖/√ρ), θ = z/λ), whose regret grows like √T — so the gap between the
# certificate and the attack it finds shrinks like 1/√T. Here T runs past εn; each of the T points then
# carries mass εn/T.

# %%
eps_gap = max(EPSILONS)
gap_runs = [experiments.run("certified", dataset=DATASET, epsilon=eps_gap, defense=DEFENSE, iterations=t, seed=SEED)
            for t in ITERATIONS]
fig, ax = plt.subplots()
cplots.regret_gap(ax, ITERATIONS, [r["regret_gap"] for r in gap_runs], [r["upper_bound_alg1"] for r in gap_runs])
ax.axhline(gap_runs[0]["upper_bound_exact"], color="#2d3436", lw=1, label="exact bound")
ax.legend(fontsize=8)
ax.set_title(f"{DATASET}, {DEFENSE}, ε = {eps_gap:g} (εn = {eps_gap * pair.n:.0f})")
plt.show()

# %% [markdown]
# ## 6 · Explore: ε and the radius percentile
# A smaller percentile is a stricter sanitizer (it also throws away more clean data — the paper's Assumption 2
# ignores that). Left: the 2-D picture; right: the bounds on the chosen dataset. Every stop is a cached run.

# %%
def plot_setting(epsilon, percentile):
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    r = experiments.run("certified", dataset="toy-2d", epsilon=epsilon, defense=DEFENSE, percentile=percentile, seed=SEED)
    cplots.feasible_picture(left, toy.x_train, toy.y_train, r["feasible_set"], r["poison_x"], r["poison_y"],
                            r["theta_clean"], r["theta_attack"])
    left.set_title(f"toy-2d, {DEFENSE}, ε = {epsilon:g}, {percentile:g}th percentile")
    d = experiments.run("certified", dataset=DATASET, epsilon=epsilon, defense=DEFENSE, percentile=percentile, seed=SEED)
    names = ["clean train loss", "achieved", "exact bound", "U* (Alg. 1)"]
    values = [d["clean_train_loss"], d["attack_train_loss"], d["upper_bound_exact"], d["upper_bound_alg1"]]
    right.bar(names, values, color=["#7f8c8d", "#e67e22", "#2d3436", "#8e44ad"])
    right.set_ylabel("loss (hinge, ÷ n)")
    right.set_title(f"{DATASET}: test error {d['clean_test_error']:.1%} → {d['attack_test_error']:.1%}")
    fig.tight_layout()
    plt.show()


widgets.interact(plot_setting,
                 epsilon=widgets.choice([e for e in EPSILONS if e > 0], max(EPSILONS), "ε"),
                 percentile=widgets.choice(certified_exp.PERCENTILES, 70.0, "radius percentile"))

# %% [markdown]
# ## Paper vs this lab

# %%
display(Markdown(notebook_table("04", DATASET.removesuffix("-1-7"), prof.name, seeds=[SEED])))

# %% [markdown]
# **Limitations (from the paper's discussion).** The certificate needs the *clean* training data, so it
# certifies a dataset + defense pair, not a deployed system. It rests on two approximations (clean training
# loss ≈ test loss; training on D_c rather than D_c ∩ F changes little) — where they fail, the "certificate"
# only describes the attack we found. The loss must be convex (a non-convex learner can be pushed into a bad
# local minimum), so only the linear SVM is covered; and the argmax over F must be tractable, which is why
# the feasible sets are spheres, slabs and simple integrity constraints. Data-dependent sanitizers have no
# convex certificate at all, and section 4 shows why that matters.

# %% [markdown]
# ## Exercises
# Two kinds. **Write it**: complete the function in the cell, run it, and `exercises.check(...)` tries it against
# labkit's own implementation on random and edge-case inputs — ✓, or one hint at what is off. **Predict, then
# run**: answer the question in its widget first (the reason shows once you answer), then run the next cell.
# Stuck? The solutions are in `notebooks/solutions/04_certified_defenses_solutions.py`.
#
# **1 · Write it: the sphere's support function.** Section 2's closed form starts from the ball alone:
# max ⟨c, x⟩ over ‖x − o‖ ≤ r. Complete `sphere_support`: return the maximum and a point of the ball that reaches
# it (Cauchy–Schwarz tells you both).

# %%
def sphere_support(c, centre, radius):
    """c, centre: (D,) numpy arrays; radius ≥ 0. Returns (value, x): the largest ⟨c, x⟩ over the ball and an
    x (D,) in the ball that reaches it."""
    raise NotImplementedError  # your code here


exercises.check(sphere_support)

# %% [markdown]
# **2 · Write it: the worst-case point (Algorithm 1's inner step).** For one label y the hinge loss
# 1 − y(⟨w, x⟩ + b) is largest over that label's set where ⟨−y·w, x⟩ is: 1 − y·b + support(−y·w). Complete
# `worst_point`: try both labels with `cert.support(c, fset.sets[label])` (it handles sphere ∩ slab), keep the
# larger loss (on a tie, +1, tried first) and return (x, y, loss) with the loss clipped at 0 like the hinge.

# %%
def worst_point(theta, fset):
    """theta: (D + 1,) numpy array, w then the bias b; fset: a cert.FeasibleSet, `fset.sets[+1.0]` and
    `fset.sets[-1.0]` the two labels' sets. Returns (x (D,), y (+1.0 or -1.0), loss ≥ 0)."""
    raise NotImplementedError  # your code here


exercises.check(worst_point)

# %% [markdown]
# **3 · Predict, then run: what happens past the grid?**

# %%
i_def, beyond = grid["defense"].index(DEFENSE), min(1.0, 2 * max(EPSILONS))
at_max = float(table["upper_bound_exact"][i_def, -1])
past = experiments.run("certified", dataset=DATASET, epsilon=beyond, defense=DEFENSE, seed=SEED)["upper_bound_exact"]
trend = "rises" if past > at_max * (1 + 1e-3) + 1e-6 else "stays the same"
bound_question = exercises.predict(
    f"Section 3's exact bound for {DEFENSE} reached {at_max:.4f} at ε = {max(EPSILONS):g}. Allow the attacker "
    f"ε = {beyond:g}. The exact bound then...", choices=["falls", "stays the same", "rises"], answer=trend,
    reason=f"For every θ, U(θ) = (1/n)·L(θ; D_c) + ε·max_F ℓ(θ) grows with ε (the max loss is ≥ 0), so its minimum "
           f"can never fall. It stays flat once the best θ gives every feasible point margin ≥ 1: then ε multiplies "
           f"0. Here it went {at_max:.4f} → {past:.4f}.")

# %%
print(bound_question.recap())
fig, ax = plt.subplots(figsize=(6, 3.4))
ax.plot(EPSILONS, table["upper_bound_exact"][i_def], "o-", color="#2d3436", label="exact bound (section 3)")
ax.plot([beyond], [past], "*", ms=14, color="#c0392b", label=f"ε = {beyond:g}")
ax.set_xlabel("ε (poisoned fraction)")
ax.set_ylabel("loss (hinge, ÷ n)")
ax.set_title(f"{DATASET}, {DEFENSE}")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# **Going further** (open questions, no check). Add a **box** constraint x ∈ [0, 1]^D (valid pixels) to
# `sphere+slab`: is the argmax over ball ∩ slab ∩ box still closed form? Write the support function of the box
# and add it to the SOCP. With the widget, find the radius percentile at which sphere+slab stops certifying the
# largest ε (exact bound more than double the clean loss): how much clean data does that sanitizer discard?
# After `labkit data download mnist`, run `labkit run certified --set dataset=mnist-1-7 epsilon=0.3
# defense=sphere+slab` and compare its bound with the paper's MNIST-1-7 figure: why is Algorithm 1's U* much
# closer to the exact bound there than on digits-1-7? (Hint: Proposition 1 and εn.)
