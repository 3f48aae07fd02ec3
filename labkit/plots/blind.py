"""Figures for notebook 07 (blind backdoors). Every helper takes an `ax` and returns it; rates are
fractions drawn as percentages."""
from __future__ import annotations

import numpy as np

from labkit.plots import ACC_COLOUR, ASR_COLOUR, _percent_axis, markdown_table

TASK_COLOURS = {"main": ACC_COLOUR, "backdoor": ASR_COLOUR, "evasion": "#7b3294"}


def transition_table(rows: list[dict]) -> str:
    """The slides' table as Markdown: experiment · μ · ν · T · main θ → θ* · backdoor θ → θ*.

    Each row: {experiment, input, label, T, main: (before, after), backdoor: (before, after)} (fractions).
    """
    def arrow(pair):
        return f"{pair[0]:.1%} → {pair[1]:.1%}"
    cells = [[r["experiment"], r["input"], r["label"], str(r["T"]), arrow(r["main"]), arrow(r["backdoor"])] for r in rows]
    return markdown_table(cells, ["experiment", "input μ", "label ν", "T", "main θ → θ*", "backdoor θ → θ*"])


def accuracy_transition(ax, names, main_before, main_after, backdoor_before, backdoor_after):
    """Arrows from θ to θ* for each experiment: main-task accuracy (blue) and backdoor accuracy (red)."""
    x = np.arange(len(names))
    for offset, before, after, colour, label in ((-0.12, main_before, main_after, ACC_COLOUR, "main task"),
                                                 (0.12, backdoor_before, backdoor_after, ASR_COLOUR, "backdoor task")):
        ax.scatter(x + offset, before, marker="o", facecolors="none", edgecolors=colour, s=45, zorder=3)
        ax.scatter(x + offset, after, marker="o", color=colour, s=45, zorder=3, label=f"{label} (○ θ → ● θ*)")
        for xi, b, a in zip(x + offset, before, after):
            ax.annotate("", (xi, a), (xi, b), arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.2})
    ax.set_xticks(x, names)
    ax.set_ylim(-0.03, 1.05)
    ax.set_ylabel("accuracy")
    _percent_axis(ax.yaxis)
    ax.legend(fontsize=8, loc="center right")
    return ax


def weights_over_training(ax, weights, tasks, steps_per_epoch: int, fixed=None, smooth: int = 10, title=None):
    """MGDA's α per task at every training step (running mean over `smooth` steps), x in epochs;
    `fixed` = fixed scales drawn as dashed lines for comparison."""
    w = np.asarray(weights, dtype=float)
    steps = np.arange(1, len(w) + 1) / steps_per_epoch
    kernel = np.ones(max(1, smooth)) / max(1, smooth)
    for k, task in enumerate(tasks):
        colour = TASK_COLOURS.get(task, None)
        ax.plot(steps, w[:, k], color=colour, alpha=0.2, lw=0.8)
        if len(w) >= len(kernel):
            ax.plot(steps[len(kernel) - 1:], np.convolve(w[:, k], kernel, mode="valid"), color=colour, lw=2,
                    label=f"α ({task}) MGDA")
        if fixed is not None:
            ax.axhline(fixed[k], color=colour, ls="--", lw=1.2, label=f"α ({task}) fixed")
    ax.set_xlabel("epoch")
    ax.set_ylabel("weight α")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=8, ncol=2)
    if title:
        ax.set_title(title)
    return ax


def l1_norms(ax, norms, target: int, title=None):
    """Neural Cleanse's reverse-engineered trigger size ‖m‖₁ (pixels) per label; the target in red."""
    norms = np.asarray(norms, dtype=float)
    colours = [ASR_COLOUR if i == target else "#999999" for i in range(len(norms))]
    ax.bar(np.arange(len(norms)), norms, color=colours)
    ax.axhline(np.median(norms), color="black", ls=":", lw=1, label="median")
    ax.set_xticks(np.arange(len(norms)))
    ax.set_xlabel("label")
    ax.set_ylabel("trigger L1 norm (pixels)")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def anomaly_indices(ax, seeds, without, with_evasion, threshold: float = 2.0):
    """The target label's anomaly index per seed without and with the evasion loss (positive = smaller
    trigger than the median label's); Neural Cleanse flags the label above `threshold`."""
    x = np.arange(len(seeds))
    ax.bar(x - 0.18, without, width=0.36, color=ASR_COLOUR, label="blind backdoor")
    ax.bar(x + 0.18, with_evasion, width=0.36, color=TASK_COLOURS["evasion"], label="+ evasion loss L_ev")
    ax.axhline(threshold, color="black", ls="--", lw=1, label=f"detection threshold {threshold:g}")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(x, [f"seed {s}" for s in seeds])
    ax.set_ylabel("anomaly index of the target label")
    ax.legend(fontsize=8)
    return ax


def entropy_histograms(ax, benign, trojan, threshold: float, title=None):
    """STRIP entropies (bits) of clean and triggered inputs, with the threshold at the chosen FRR."""
    benign, trojan = np.asarray(benign, float), np.asarray(trojan, float)
    bins = np.linspace(min(benign.min(), trojan.min()), max(benign.max(), trojan.max()), 30)
    ax.hist(benign, bins=bins, alpha=0.6, color=ACC_COLOUR, label="clean inputs", density=True)
    ax.hist(trojan, bins=bins, alpha=0.6, color=ASR_COLOUR, label="triggered inputs", density=True)
    ax.axvline(threshold, color="black", ls="--", lw=1, label="threshold")
    ax.set_xlabel("STRIP entropy (bits)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def shaping_curve(ax, noise, main, backdoor, clip: float):
    """Main and backdoor accuracy of θ* against the noise multiplier of DP-style gradient shaping."""
    ax.plot(noise, main, "--s", color=ACC_COLOUR, label="main task")
    ax.plot(noise, backdoor, "-o", color=ASR_COLOUR, label="backdoor task")
    ax.set_xlabel(f"noise multiplier σ (batch gradient clipped to {clip:g})")
    ax.set_ylabel("accuracy of θ*")
    ax.set_ylim(-0.03, 1.03)
    _percent_axis(ax.yaxis)
    ax.legend(fontsize=8)
    return ax
