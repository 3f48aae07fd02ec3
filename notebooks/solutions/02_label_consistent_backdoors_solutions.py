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
# # Solutions · 02 Label-consistent backdoors
# The completed functions of notebook 02's exercises. Try them yourself first: `exercises.check(fn)` in the
# notebook tells you what is off. Running this file checks every solution (each prints ✓).

# %%
import math

from labkit import exercises


# %% [markdown]
# ## Exercise 1 · The thesis' ε in this lab's units
# ℓ∞ bounds each pixel, so only the pixel scale changes (÷255). An ℓ2 radius ε over the thesis' d = 3072 values
# allows an RMS change of ε/√3072 per value; the same RMS change over d values needs radius ε·√(d/3072).

# %%
def scale_epsilon(epsilon, norm, image_shape):
    if norm == "linf":
        return epsilon / 255
    return epsilon / 255 * math.sqrt(math.prod(image_shape) / (32 * 32 * 3))


exercises.check(scale_epsilon)


# %% [markdown]
# ## Exercise 2 · PGD's projection step

# %%
def project(delta, norm, epsilon):
    if norm == "linf":
        return delta.clamp(-epsilon, epsilon)
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)  # one norm per example; 0 stays 0
    factor = (epsilon / norms).clamp(max=1.0)  # shrink only what lies outside the ball
    return delta * factor.view(-1, *([1] * (delta.dim() - 1)))


exercises.check(project)
