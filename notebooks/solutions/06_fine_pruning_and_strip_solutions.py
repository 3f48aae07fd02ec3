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
# # Solutions · 06 Fine-Pruning and STRIP
# The completed functions of notebook 06's exercises. Try them yourself first: `exercises.check(fn)` in the
# notebook tells you what is off. Running this file checks every solution (each prints ✓).

# %%
import torch

from labkit import exercises


# %% [markdown]
# ## Exercise 1 · Which channels fine-pruning removes

# %%
def dormant_channels(activations, percent):
    count = round(percent / 100 * len(activations))
    return torch.argsort(activations, stable=True)[:count].sort().values


exercises.check(dormant_channels)


# %% [markdown]
# ## Exercise 2 · STRIP's entropy
# Clamping before the log makes 0·log 0 = 0 (a one-hot prediction has entropy 0, not NaN).

# %%
def strip_entropy(probs):
    per_copy = -(probs * torch.log2(probs.clamp_min(1e-300))).sum(dim=-1)  # (inputs, copies): over classes
    return per_copy.mean(dim=1)  # averaged over each input's copies


exercises.check(strip_entropy)
