"""Figures for notebook 02 (label-consistent backdoors); every helper takes and returns `ax`.

Rates are fractions in [0, 1] drawn as percentages; images are (N, C, H, W) in [0, 1].
"""
from __future__ import annotations

import numpy as np
from matplotlib.patches import Rectangle
from matplotlib.ticker import PercentFormatter

from labkit.plots import ACC_COLOUR, ASR_COLOUR, _show_image, detection_curve

GROUP_STYLE = {"clean": ("#2c7fb8", "clean samples"), "poisoned": ("#c0392b", "poisoned samples"),
               "poisoned_no_trigger": ("#7f7f7f", "poisoned, trigger removed")}


def loss_dynamics(ax, history: list[dict], title: str | None = None):
    """Thesis Figure 4-1: median and interquartile range of the per-sample training loss of
    clean samples, poisoned samples, and poisoned samples without their trigger, per epoch."""
    epochs = [row["epoch"] for row in history]
    for group, (colour, label) in GROUP_STYLE.items():
        q = np.array([row[f"loss_{group}"] for row in history], dtype=float)
        if np.isnan(q).all():
            continue
        ax.plot(epochs, q[:, 1], "-o", ms=3, color=colour, label=label)
        ax.fill_between(epochs, q[:, 0], q[:, 2], color=colour, alpha=0.15)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (median, IQR)")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def asr_over_training(ax, histories: dict[str, list[dict]]):
    """Attack success after each epoch, one line per labelled run."""
    for label, history in histories.items():
        ax.plot([r["epoch"] for r in history], [r["attack_success_rate"] for r in history], "-o", ms=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("attack success rate")
    ax.set_ylim(-0.03, 1.03)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.legend(fontsize=8)
    return ax


def method_bars(ax, labels, attack_success, clean_accuracy, reference_accuracy: float | None = None):
    """Attack success (bars) and clean accuracy (diamonds) per method or setting."""
    x = np.arange(len(labels))
    ax.bar(x, attack_success, color=ASR_COLOUR, alpha=0.85, label="attack success")
    ax.plot(x, clean_accuracy, "D", color=ACC_COLOUR, label="clean accuracy")
    if reference_accuracy is not None:
        ax.axhline(reference_accuracy, ls=":", color=ACC_COLOUR, lw=1, label="unpoisoned model")
    ax.set_xticks(x, labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.03)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=3, frameon=False)
    return ax


def gallery_rows(axes, rows: dict, names=None):
    """One row of images per setting (`rows`: name → (K, C, H, W)); `axes` is (len(names), K)."""
    names = list(names or rows)
    axes = np.asarray(axes).reshape(len(names), -1)
    for r, name in enumerate(names):
        for c in range(axes.shape[1]):
            _show_image(axes[r, c], rows[name][c])
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    return axes


def detection_comparison(ax, ks, found: dict[str, list[int]], expected=None):
    """Poisoned samples among the k lowest-probability training samples, one line per attack."""
    colours = [ASR_COLOUR, ACC_COLOUR, "#27ae60", "#8e44ad"]
    for i, (label, values) in enumerate(found.items()):
        detection_curve(ax, ks, values, expected if i == 0 else None, label=label, color=colours[i % len(colours)])
    return ax


def flagged_gallery(axes, images, labels, poisoned, class_names=None):
    """The lowest-scoring training samples with their labels; poisoned ones framed in black."""
    for i, ax in enumerate(np.asarray(axes).ravel()):
        if i >= len(images):
            ax.axis("off")
            continue
        _show_image(ax, images[i])
        label = int(labels[i])
        ax.set_title(class_names[label] if class_names else str(label), fontsize=8)
        if bool(poisoned[i]):
            h, w = images[i].shape[-2:]
            ax.add_patch(Rectangle((-0.5, -0.5), w, h, fill=False, lw=4, ec="black", clip_on=False))
            ax.set_title(f"{ax.get_title()} ☠", fontsize=8)
    return axes


def asr_vs_target_fraction(ax, fractions, series: dict, accuracy: dict | None = None):
    """Attack success (solid) and clean accuracy (dashed, optional) against the poisoned fraction of
    the target class, one colour per labelled attack."""
    colours = [ASR_COLOUR, "black", "#27ae60", "#8e44ad"]
    for i, (label, values) in enumerate(series.items()):
        colour = colours[i % len(colours)]
        ax.plot(fractions, values, "-o", color=colour, label=f"{label} · attack success")
        if accuracy and label in accuracy:
            ax.plot(fractions, accuracy[label], "--s", ms=4, color=colour, alpha=0.6, label=f"{label} · clean accuracy")
    ax.set_xlabel("poisoned fraction of the target class")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.03, 1.03)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.legend(fontsize=8)
    return ax


SETTING_STYLE = {"unpoisoned": ("o", "#7f8c8d", 60), "baseline": ("s", ACC_COLOUR, 60), "attack": ("*", ASR_COLOUR, 200)}


def setting_points(ax, points: dict[str, tuple[float, float]], kinds: dict[str, str]):
    """A few runs as points on attack success vs clean accuracy, each with its own marker and a legend
    entry (points that coincide stay readable; annotations would pile up). `points`: {label: (accuracy,
    success)}; `kinds`: {label: "unpoisoned" | "baseline" | "attack"} chooses the marker."""
    for label, (accuracy, success) in points.items():
        marker, colour, size = SETTING_STYLE[kinds[label]]
        ax.scatter([accuracy], [success], marker=marker, s=size, color=colour, edgecolors="black",
                   linewidths=0.5, zorder=3, label=label)
    ax.set_xlabel("clean accuracy")
    ax.set_ylabel("attack success rate")
    ax.set_ylim(-0.03, 1.03)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    return ax
