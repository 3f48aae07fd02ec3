"""Figures for notebook 01 (BadNets)."""
from __future__ import annotations

import numpy as np
import torch
from matplotlib import pyplot as plt

from labkit import triggers
from labkit.plots import asr_vs_accuracy, image_grid


def preset_gallery(images: torch.Tensor, image_shape, amplitudes=(16, 32, 64, 255)):
    """Rows: one image per trigger preset at full amplitude, then the BadNets trigger at each amplitude."""
    fig, axes = plt.subplots(2, max(len(triggers.PRESETS), len(amplitudes)) + 1, figsize=(11, 4.2))
    image_grid(axes[0, :1], images[:1], ["clean"])
    stamped = torch.stack([triggers.make(name, image_shape).apply(images[0]) for name in triggers.PRESETS])
    image_grid(axes[0, 1:], stamped, list(triggers.PRESETS))
    image_grid(axes[1, :1], images[1:2], ["clean"])
    reduced = torch.stack([triggers.make("badnets", image_shape, a).apply(images[1]) for a in amplitudes])
    image_grid(axes[1, 1:], reduced, [f"amplitude {a}" for a in amplitudes])
    fig.tight_layout()
    return fig


def sweep_frontier(ax, accuracy: np.ndarray, success: np.ndarray, fractions, current=None):
    """Every fraction's run (mean over seeds) as a grey point on attack success vs clean accuracy, labelled by
    fraction; `current` = (accuracy, success) of the widget's setting, a red star."""
    acc, asr = np.asarray(accuracy).mean(axis=-1), np.asarray(success).mean(axis=-1)
    asr_vs_accuracy(ax, acc, asr, labels=[f"{f:.1%}" for f in fractions], color="#7f8c8d", alpha=0.8)
    if current is not None:  # named next to the star, not in a legend that could cover it
        ax.scatter([current[0]], [current[1]], s=160, marker="*", color="#c0392b", zorder=5)
        ax.annotate("widget setting", current, textcoords="offset points", xytext=(9, -12), fontsize=8,
                    color="#c0392b")
    return ax
