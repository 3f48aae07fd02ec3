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
# # Solutions · 03 DP-SGD as a backdoor defense
# The completed functions of notebook 03's exercises. Try them yourself first: `exercises.check(fn)` in the
# notebook tells you what is off. Running this file checks every solution (each prints ✓).

# %%
from labkit import exercises


# %% [markdown]
# ## Exercise 1 · The per-example clip
# Opacus' factor is min(1, C / (‖g‖ + 10⁻⁶)): the small constant keeps a zero gradient at zero instead of 0/0.

# %%
def clip_gradients(grads, max_norm):
    norms = grads.norm(dim=1, keepdim=True)  # one ℓ2 norm per example (row)
    return grads * (max_norm / (norms + 1e-6)).clamp(max=1.0)


exercises.check(clip_gradients)


# %% [markdown]
# ## Exercise 2 · One noisy lot gradient

# %%
def privatize(grads, max_norm, noise_multiplier, lot_size, noise):
    summed = clip_gradients(grads, max_norm).sum(dim=0)
    return (summed + noise_multiplier * max_norm * noise) / lot_size


exercises.check(privatize)
