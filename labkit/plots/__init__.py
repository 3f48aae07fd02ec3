"""Plot helpers shared by every notebook: call `setup()` once; every helper takes an `ax` and returns it.

A paper's own figures live in `labkit/plots/<paper>.py` beside this file.

Rates are fractions in [0, 1] and are drawn as percentages.
"""
from __future__ import annotations

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.ticker import MaxNLocator, PercentFormatter

ASR_COLOUR, ACC_COLOUR = "#c0392b", "#2c7fb8"


def setup() -> None:
    """A readable default style for every notebook figure."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid")
    plt.rcParams.update({"figure.figsize": (6.4, 4.0), "figure.dpi": 100, "axes.titlesize": "medium"})


def _percent_axis(axis) -> None:
    """Fractions shown as percentages, with at most ~6 ticks so a narrow range never runs its labels together."""
    axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    axis.set_major_formatter(PercentFormatter(1.0))


def _spread(values) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over the last axis (seeds); a 1-D input has zero spread."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        return arr, np.zeros_like(arr)
    return arr.mean(axis=-1), arr.std(axis=-1)


def band(ax, x, values, fmt: str = "-o", **style):
    """The mean over seeds of `values` ((points,) or (points, seeds)) as a line, with a ±1 std band where the
    seeds disagree; returns the line."""
    mean, std = _spread(values)
    line, = ax.plot(x, mean, fmt, **style)
    if np.any(std > 0):
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    return line


def asr_vs_accuracy(ax, clean_accuracy, attack_success, labels=None, highlight=None, **scatter_kw):
    """Attack success (y) against clean accuracy (x): the lab's common currency.

    The ideal attack sits top-right; the ideal defense moves points down without moving left.
    `highlight` = index of a point to ring (e.g. the widget's current setting).
    """
    x, y = np.asarray(clean_accuracy, float), np.asarray(attack_success, float)
    ax.scatter(x, y, s=45, zorder=3, **scatter_kw)
    for i, label in enumerate(labels or []):
        ax.annotate(str(label), (x[i], y[i]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    if highlight is not None:
        ax.scatter([x[highlight]], [y[highlight]], s=220, facecolors="none", edgecolors="black", linewidths=1.5, zorder=4)
    ax.set_xlabel("clean accuracy")
    ax.set_ylabel("attack success rate")
    ax.set_ylim(-0.03, 1.03)
    _percent_axis(ax.xaxis)
    _percent_axis(ax.yaxis)
    return ax


def asr_vs_poison_fraction(ax, fractions, attack_success, clean_accuracy=None, label: str | None = None):
    """Attack success (and clean accuracy, dashed) against the poisoned fraction.

    Values may be (F,) or (F, seeds): the mean is drawn with a ±1 std band.
    """
    fractions = np.asarray(fractions, float)
    for values, colour, name, style in ((attack_success, ASR_COLOUR, "attack success", "-o"),
                                        (clean_accuracy, ACC_COLOUR, "clean accuracy", "--s")):
        if values is None:
            continue
        band(ax, fractions, values, style, color=colour, label=f"{label} · {name}" if label else name)
    ax.set_xlabel("poisoned fraction of the training set")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.03, 1.03)
    _percent_axis(ax.xaxis)
    _percent_axis(ax.yaxis)
    ax.legend(loc="center right", fontsize=8)
    return ax


def _show_image(ax, image: torch.Tensor) -> None:
    image = image.detach().cpu()
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1))
    ax.set_xticks([])
    ax.set_yticks([])


def trigger_gallery(axes, clean: torch.Tensor, poisoned: torch.Tensor, titles=None):
    """Clean images (top row) above their poisoned versions (bottom row); `axes` is (2, K)."""
    axes = np.asarray(axes).reshape(2, -1)
    for col in range(axes.shape[1]):
        _show_image(axes[0, col], clean[col])
        _show_image(axes[1, col], poisoned[col])
        if titles is not None:
            axes[0, col].set_title(str(titles[col]), fontsize=9)
    axes[0, 0].set_ylabel("clean")
    axes[1, 0].set_ylabel("poisoned")
    return axes


def image_grid(axes, images: torch.Tensor, titles=None):
    """One image per axis (images (K, C, H, W) in [0, 1])."""
    for i, ax in enumerate(np.asarray(axes).ravel()):
        if i < len(images):
            _show_image(ax, images[i])
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=9)
        else:
            ax.axis("off")
    return axes


def training_curves(ax, history: list[dict], keys=("loss",), labels=None):
    """Per-epoch values from `train.train`'s history (e.g. "loss", "test_accuracy")."""
    epochs = [row["epoch"] for row in history]
    for i, key in enumerate(keys):
        ax.plot(epochs, [row[key] for row in history], marker=".", label=labels[i] if labels else key)
    ax.set_xlabel("epoch")
    ax.legend(fontsize=8)
    return ax


def detection_curve(ax, ks, found, expected=None, label: str = "poisoned among the k lowest",
                    color: str = ASR_COLOUR):
    """How many poisoned samples sit among the k lowest-scoring training samples (log k)."""
    ax.plot(ks, found, "-o", ms=3, color=color, label=label)
    if expected is not None:
        ax.plot(ks, expected, ":", color="gray", label="expected if chosen at random")
    ax.set_xscale("log")
    ax.set_xlabel("k (lowest-probability training samples inspected)")
    ax.set_ylabel("poisoned samples found")
    ax.legend(fontsize=8)
    return ax


def markdown_table(rows: list[list], columns: list[str]) -> str:
    """A Markdown table (Jupyter renders it as HTML: cells never clip), e.g. "paper vs this lab";
    show it with `display(Markdown(...))`. `|` inside a cell is escaped."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
