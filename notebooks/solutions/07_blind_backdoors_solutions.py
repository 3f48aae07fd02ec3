# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Solutions · 07 Blind backdoors
# The completed functions of notebook 07's exercises. Try them yourself first: `exercises.check(fn)` in the
# notebook tells you what is off. Running this file checks every solution (each prints ✓).

# %%
import torch

from labkit import exercises


# %% [markdown]
# ## Exercise 1 · MGDA's two-task weight
# ‖γ·g1 + (1 − γ)·g2‖² is a parabola in γ with its minimum at ((g2 − g1)·g2) / ‖g1 − g2‖²; clip it to [0, 1].
# Identical gradients make the denominator 0 and every γ equally good.

# %%
def two_task_gamma(g1, g2):
    g1, g2 = g1.flatten().double(), g2.flatten().double()
    gap = float((g1 - g2) @ (g1 - g2))
    if gap == 0:
        return 0.5
    return min(1.0, max(0.0, float((g2 - g1) @ g2) / gap))


exercises.check(two_task_gamma)


# %% [markdown]
# ## Exercise 2 · The blind loss' weights (`loss+` normalisation)

# %%
def mgda_weights(g_main, g_backdoor, loss_main, loss_backdoor):
    normalised = [g.flatten().double() / (min(loss * float(g.norm()), 10.0) + 1e-5)
                  for g, loss in ((g_main, loss_main), (g_backdoor, loss_backdoor))]
    gamma = two_task_gamma(*normalised)
    return torch.tensor([gamma, 1 - gamma], dtype=torch.float64)


exercises.check(mgda_weights)
