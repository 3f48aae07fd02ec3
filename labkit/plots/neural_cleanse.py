"""Figures for notebook 05 (Neural Cleanse). Every helper takes and returns `ax` (or an axes array)."""
from __future__ import annotations

import numpy as np
import torch

from labkit.plots import ACC_COLOUR, ASR_COLOUR, _percent_axis, _show_image, image_grid

FLAG_COLOUR, NORMAL_COLOUR = ASR_COLOUR, "#95a5a6"


def trigger_row(axes, masks: torch.Tensor, patterns: torch.Tensor, titles=None):
    """m ⊙ p (what the trigger paints) for each trigger: masks (K, H, W), patterns (K, C, H, W) in [0, 1]."""
    return image_grid(axes, masks[:, None] * patterns, titles)


def reversed_grid(axes, result: dict, classes=None):
    """Axes (2, L + 1): top row the masks, bottom row m ⊙ p; column 0 the real trigger, then one column per
    label titled with its ‖m‖₁ (flagged labels in red)."""
    axes = np.asarray(axes).reshape(2, -1)
    masks, patterns, norms = result["masks"], result["patterns"], result["l1_norms"]
    flagged = set(result["flagged_labels"])
    if result.get("target_labels"):
        true_mask, true_pattern = result["true_masks"][0], result["true_patterns"][0]
        _show_image(axes[0, 0], true_mask[None])
        _show_image(axes[1, 0], true_mask[None] * true_pattern)
        axes[0, 0].set_title("real trigger", fontsize=9)
    else:  # a clean model has no real trigger
        _show_image(axes[0, 0], torch.zeros_like(masks[0])[None])
        _show_image(axes[1, 0], torch.zeros_like(patterns[0]))
        axes[0, 0].set_title("(no trigger)", fontsize=9)
    for label in range(len(masks)):
        name = classes[label] if classes is not None else label
        _show_image(axes[0, label + 1], masks[label][None])
        _show_image(axes[1, label + 1], masks[label][None] * patterns[label])
        axes[0, label + 1].set_title(f"{name}: {float(norms[label]):.1f}", fontsize=9,
                                     color=FLAG_COLOUR if label in flagged else "black")
    axes[0, 0].set_ylabel("mask m")
    axes[1, 0].set_ylabel("m ⊙ p")
    return axes


def l1_bars(ax, l1_norms, flagged=(), target=None, title: str | None = None):
    """‖m‖₁ per label (pixels) with the median dashed; flagged labels red, the real target starred."""
    norms = np.asarray(l1_norms, dtype=float)
    colours = [FLAG_COLOUR if i in set(flagged) else NORMAL_COLOUR for i in range(len(norms))]
    ax.bar(np.arange(len(norms)), norms, color=colours)
    ax.axhline(np.median(norms), ls="--", color="black", lw=1, label="median")
    for t in ([target] if isinstance(target, int) else list(target or [])):
        ax.annotate("★ target", (t, norms[t]), ha="center", xytext=(0, 4), textcoords="offset points", fontsize=8)
    ax.set_xticks(np.arange(len(norms)))
    ax.set_xlabel("label")
    ax.set_ylabel("‖m‖₁ of reversed trigger (pixels)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    return ax


def anomaly_bars(ax, names, indices, threshold: float = 2.0, colours=None):
    """Anomaly index of the smallest-norm label per model (the paper's Fig. 3), with the threshold."""
    values = np.asarray(indices, dtype=float)
    ax.bar(range(len(values)), values, color=colours or [FLAG_COLOUR if v > threshold else NORMAL_COLOUR
                                                        for v in values])
    ax.axhline(threshold, ls="--", color="black", lw=1, label=f"threshold {threshold:g}")
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("anomaly index")
    ax.legend(fontsize=8)
    return ax


def schedule_trace(ax, trace: dict, label: int, title: str | None = None):
    """One label's optimisation: ‖m‖₁ (left axis) and λ (right axis, log) per epoch, failing epochs marked."""
    l1 = np.asarray(trace["l1"][:, label], float)
    cost = np.asarray(trace["cost"][:, label], float)
    success = np.asarray(trace["success"][:, label], float)
    epochs = np.arange(1, len(l1) + 1)
    ax.plot(epochs, l1, color=ACC_COLOUR, label="‖m‖₁")
    failing = success < 0.99
    ax.scatter(epochs[failing], l1[failing], s=8, color=ASR_COLOUR, zorder=3, label="epoch below 99% success")
    ax.set_xlabel("epoch")
    ax.set_ylabel("‖m‖₁ (pixels)", color=ACC_COLOUR)
    twin = ax.twinx()
    twin.step(epochs, np.where(cost > 0, cost, np.nan), where="post", color="black", lw=1)
    twin.set_yscale("log")
    twin.set_ylabel("λ (black)")
    twin.grid(False)
    ax.legend(fontsize=8, loc="upper right")
    if title:
        ax.set_title(title)
    return ax


def filter_curve(ax, fprs, fnrs, label: str | None = None):
    """False negative rate of the input filter at each false positive rate (the paper's Fig. 8)."""
    ax.plot(fprs, fnrs, "-o", color=ASR_COLOUR, label=label)
    ax.set_xlabel("false positive rate (clean inputs flagged)")
    ax.set_ylabel("false negative rate (triggered inputs missed)")
    _percent_axis(ax.xaxis)
    _percent_axis(ax.yaxis)
    ax.set_ylim(0, max(0.1, max(fnrs) * 1.15))  # a rate: no negative tick
    ax.margins(y=0)
    if label:
        ax.legend(fontsize=8)
    return ax


def neuron_pruning_panel(ax, pruning: dict):
    """Clean accuracy and attack success (original and reversed trigger) vs the fraction of
    second-to-last-layer neurons pruned (the paper's Fig. 21)."""
    frac = pruning["fraction"]
    ax.plot(frac, pruning["clean_accuracy"], "--s", color=ACC_COLOUR, ms=3, label="clean accuracy")
    ax.plot(frac, pruning["asr_original"], "-o", color=ASR_COLOUR, ms=3, label="ASR, original trigger")
    ax.plot(frac, pruning["asr_reversed"], ":^", color="#e67e22", ms=3, label="ASR, reversed trigger")
    ax.set_xlabel("neurons pruned (fraction of the second-to-last layer)")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.03, 1.03)
    _percent_axis(ax.xaxis)
    _percent_axis(ax.yaxis)
    ax.legend(fontsize=8)
    return ax


def unlearning_bars(ax, table: dict):
    """Table IV as bars: clean accuracy and attack success before patching and after unlearning with
    the reversed trigger, the original trigger and clean images only."""
    names = [n for n in ("before", "reversed", "original", "clean") if n in table]
    titles = {"before": "before", "reversed": "reversed trigger", "original": "original trigger",
              "clean": "clean images"}
    x = np.arange(len(names))
    acc = [table[n]["clean_accuracy"] for n in names]
    asr = [table[n]["attack_success_rate"] for n in names]
    ax.bar(x - 0.2, acc, 0.4, color=ACC_COLOUR, label="clean accuracy")
    ax.bar(x + 0.2, asr, 0.4, color=ASR_COLOUR, label="attack success")
    for xi, a, s in zip(x, acc, asr):
        ax.text(xi - 0.2, a + 0.01, f"{a:.0%}", ha="center", fontsize=8)
        ax.text(xi + 0.2, s + 0.01, f"{s:.0%}", ha="center", fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels([titles[n] for n in names], fontsize=9)
    ax.set_ylim(0, 1.12)
    _percent_axis(ax.yaxis)
    ax.legend(fontsize=8, loc="upper right")
    return ax


def anomaly_vs(ax, xs, indices, xlabel: str, label: str | None = None, threshold: float = 2.0):
    """Anomaly index of the (first) infected label against a setting (e.g. trigger size)."""
    ax.plot(xs, indices, "-o", color=ASR_COLOUR, label=label)
    ax.axhline(threshold, ls="--", color="black", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("anomaly index of the infected label")
    if label:
        ax.legend(fontsize=8)
    return ax
