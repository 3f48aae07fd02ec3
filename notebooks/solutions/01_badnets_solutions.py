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
# # Solutions · 01 BadNets
# The completed functions of notebook 01's exercises. Try them yourself first: `exercises.check(fn)` in the
# notebook tells you what is off. Running this file checks every solution (each prints ✓).

# %%
import torch

from labkit import exercises


# %% [markdown]
# ## Exercise 1 · The reduced-amplitude trigger (thesis §3.5)
# At a ≥ 255 the pattern is pasted; below, ±a/255 is added on the pattern's white/black pixels inside the mask
# and the result clipped. With a binary pattern the additive rule at a = 255 gives the paste, so one formula
# covers both — the explicit branch mirrors `labkit.triggers.Trigger.apply`.

# %%
def stamp_reduced(x, mask, pattern, amplitude):
    if amplitude >= 255:
        return (1 - mask) * x + mask * pattern
    sign = 2 * pattern - 1  # +1 on white pattern pixels, −1 on black ones
    return (x + mask * sign * (amplitude / 255)).clamp(0, 1)


exercises.check(stamp_reduced)


# %% [markdown]
# ## Exercise 2 · The simple detection score (thesis §3.1, §7.3)

# %%
def detection_score(probs, labels):
    return probs[torch.arange(len(labels)), labels]  # = probs.gather(1, labels[:, None]).flatten()


exercises.check(detection_score)
