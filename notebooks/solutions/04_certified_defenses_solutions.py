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
# # Solutions · 04 Certified defenses
# The completed functions of notebook 04's exercises. Try them yourself first: `exercises.check(fn)` in the
# notebook tells you what is off. Running this file checks every solution (each prints ✓).

# %%
import numpy as np

from labkit import exercises
from labkit.defenses import certified as cert


# %% [markdown]
# ## Exercise 1 · The sphere's support function
# By Cauchy–Schwarz ⟨c, x − o⟩ ≤ ‖c‖·‖x − o‖ ≤ r‖c‖, with equality at x = o + r·c/‖c‖. For c = 0 every point
# is a maximiser; the centre is the natural pick.

# %%
def sphere_support(c, centre, radius):
    norm = np.linalg.norm(c)
    step = radius * c / norm if norm > 0 else np.zeros_like(c)
    return float(c @ centre) + radius * norm, centre + step


exercises.check(sphere_support)


# %% [markdown]
# ## Exercise 2 · The worst-case point of F
# For label y, max_x 1 − y(⟨w, x⟩ + b) = 1 − y·b + max_x ⟨−y·w, x⟩ = 1 − y·b + support(−y·w) over that label's set.

# %%
def worst_point(theta, fset):
    w, b = theta[:-1], theta[-1]
    best = None
    for label in (1.0, -1.0):  # +1 first: it keeps a tie
        value, x = cert.support(-label * w, fset.sets[label])
        loss = 1.0 - label * b + value
        if best is None or loss > best[2]:
            best = (x, label, loss)
    x, label, loss = best
    return x, label, max(0.0, loss)


exercises.check(worst_point)
