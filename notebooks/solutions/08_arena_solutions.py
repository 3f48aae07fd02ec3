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
# # Solutions · 08 The arena
# The completed functions of notebook 08's exercises. Try them yourself first: `exercises.check(fn)` in the
# notebook tells you what is off. Running this file checks every solution (each prints ✓).

# %%
import torch

from labkit import exercises


# %% [markdown]
# ## Exercise 1 · Blended's trigger

# %%
def blend_trigger(x, pattern, alpha):
    return alpha * pattern + (1 - alpha) * x


exercises.check(blend_trigger)


# %% [markdown]
# ## Exercise 2 · Spectral signatures' score

# %%
def spectral_scores(reps):
    centred = reps - reps.mean(dim=0, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    return (centred @ vh[0]) ** 2


exercises.check(spectral_scores)
