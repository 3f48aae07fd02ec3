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
# # Solutions · 05 Neural Cleanse
# The completed functions of notebook 05's exercises. Try them yourself first: `exercises.check(fn)` in the
# notebook tells you what is off. Running this file checks every solution (each prints ✓).

# %%
import torch

from labkit import exercises


# %% [markdown]
# ## Exercise 1 · The MAD anomaly index
# `torch.quantile(v, 0.5)` averages the two middle values of an even count, like `np.median`; `torch.median`
# would return the lower one.

# %%
def anomaly_index(norms):
    v = torch.as_tensor(norms, dtype=torch.float64)
    median = torch.quantile(v, 0.5)
    mad = 1.4826 * torch.quantile((v - median).abs(), 0.5)
    return (v - median).abs() / mad


exercises.check(anomaly_index)


# %% [markdown]
# ## Exercise 2 · Every image under every label's trigger

# %%
def stamp_all(x, masks, patterns):
    m = masks[:, None, None]  # (L, 1, 1, H, W): broadcast over images and channels
    return (1 - m) * x[None] + m * patterns[:, None]


exercises.check(stamp_all)
