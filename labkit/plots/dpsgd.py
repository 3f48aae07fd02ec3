"""Figures for notebook 03 (DP-SGD as a backdoor defense). Each helper takes and returns `ax`.

`grid` arguments are `labkit.experiments.dpsgd.sweep_grid(...)` results: rates are fractions
in [0, 1] shaped [poison fraction][sigma][seed] (baselines [poison fraction][seed]).
"""
from __future__ import annotations

import math

import numpy as np

from labkit.plots import ACC_COLOUR, ASR_COLOUR, _percent_axis, _spread, asr_vs_accuracy

BASELINE_X = -0.6  # where the SGD baseline sits, left of sigma = 0


def sigma_label(sigma: float) -> str:
    """0, 1/3, 2/3, 1, 2 … as short text."""
    for num, den in ((1, 3), (2, 3)):
        if abs(sigma - num / den) < 1e-9:
            return f"{num}/{den}"
    return f"{sigma:g}"


def epsilon_label(eps: float) -> str:
    return "∞" if not math.isfinite(eps) else (f"{eps:.0f}" if eps >= 10 else f"{eps:.2g}")


def sigma_panel(ax, sigmas, asr, accuracy, baseline_asr=None, baseline_accuracy=None, title: str | None = None):
    """One Figure 5-1 panel: attack success and clean accuracy (mean ± std over seeds) against
    the noise multiplier σ (evenly spaced), with the SGD baseline at the far left."""
    xs = np.arange(len(sigmas), dtype=float)
    for values, colour, name, marker in ((asr, ASR_COLOUR, "attack success", "o"),
                                         (accuracy, ACC_COLOUR, "clean accuracy", "s")):
        mean, std = _spread(values)
        ax.errorbar(xs, mean, yerr=std, fmt=f"-{marker}", color=colour, capsize=3, label=name)
    if baseline_asr is not None:
        for values, colour, marker in ((baseline_asr, ASR_COLOUR, "o"), (baseline_accuracy, ACC_COLOUR, "s")):
            mean, std = _spread(np.atleast_1d(values)[None, :])
            ax.errorbar([BASELINE_X], mean, yerr=std, fmt=marker, mfc="white", color=colour, capsize=3)
    ticks = ([BASELINE_X] if baseline_asr is not None else []) + list(xs)
    labels = (["SGD"] if baseline_asr is not None else []) + [sigma_label(s) for s in sigmas]
    ax.set_xticks(ticks, labels)
    ax.set_xlabel("noise multiplier σ")
    ax.set_ylim(-0.03, 1.03)
    _percent_axis(ax.yaxis)
    if title:
        ax.set_title(title)
    return ax


def figure_5_1(axes, grid: dict, dataset_size: int | None = None):
    """The thesis' Figure 5-1 layout: one `sigma_panel` per poisoned count, shared y axis."""
    axes = np.atleast_1d(axes).ravel()
    for i, (fraction, count) in enumerate(zip(grid["poison_fractions"], grid["poisoned_counts"])):
        sigma_panel(axes[i], grid["sigmas"], grid["asr"][i], grid["accuracy"][i],
                    grid["baseline_asr"][i], grid["baseline_accuracy"][i],
                    title=f"{count} poisoned ({fraction:.1%})")
        if i:
            axes[i].set_ylabel("")
    axes[0].set_ylabel("rate")
    axes[0].legend(loc="lower left", fontsize=8)
    return axes


def frontier(ax, grid: dict, highlight: tuple[int, int] | None = None):
    """Attack success vs clean accuracy, one line per poisoned count running through σ (labelled);
    hollow markers are the SGD baselines. `highlight` = (fraction index, sigma index) to ring."""
    colours = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"]
    for i, count in enumerate(grid["poisoned_counts"]):
        acc = np.asarray(grid["accuracy"][i], float).mean(axis=-1)
        asr = np.asarray(grid["asr"][i], float).mean(axis=-1)
        colour = colours[i % len(colours)]
        ax.plot(acc, asr, "-", color=colour, alpha=0.6)
        asr_vs_accuracy(ax, acc, asr, labels=[f"σ={sigma_label(s)}" for s in grid["sigmas"]],
                        color=colour, label=f"{count} poisoned")
        ax.scatter([np.mean(grid["baseline_accuracy"][i])], [np.mean(grid["baseline_asr"][i])], s=60,
                   facecolors="white", edgecolors=colour, linewidths=1.5, zorder=4)
    if highlight is not None:
        i, j = highlight
        ax.scatter([np.mean(grid["accuracy"][i][j])], [np.mean(grid["asr"][i][j])], s=260, facecolors="none",
                   edgecolors="black", linewidths=1.5, zorder=5)
    # outside the axes, so no point (σ = 1 sits where an inside legend would go) is ever covered
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, title="mean over seeds; ○ = SGD",
              title_fontsize=8)
    return ax


def rare_vs_common(ax, sigmas, rare, common, baseline_rare=None, baseline_common=None, rare_fraction: float = 0.2):
    """Accuracy on the test points the clean reference model found hardest ('rare') and on the rest,
    against σ (mean ± std over seeds): chapter 6's cost of ignoring features few samples share."""
    xs = np.arange(len(sigmas), dtype=float)
    for values, colour, name in ((common, ACC_COLOUR, f"easiest {1 - rare_fraction:.0%}"),
                                 (rare, "#8e44ad", f"hardest {rare_fraction:.0%} ('rare')")):
        mean, std = _spread(values)
        ax.errorbar(xs, mean, yerr=std, fmt="-o", color=colour, capsize=3, label=name)
    if baseline_rare is not None:
        for values, colour in ((baseline_common, ACC_COLOUR), (baseline_rare, "#8e44ad")):
            ax.scatter([BASELINE_X], [np.mean(values)], facecolors="white", edgecolors=colour, s=45, zorder=3)
    ticks = ([BASELINE_X] if baseline_rare is not None else []) + list(xs)
    ax.set_xticks(ticks, (["SGD"] if baseline_rare is not None else []) + [sigma_label(s) for s in sigmas])
    ax.set_xlabel("noise multiplier σ")
    ax.set_ylabel("test accuracy")
    _percent_axis(ax.yaxis)
    ax.legend(loc="lower left", fontsize=8)
    return ax


def epsilon_curve(ax, sigmas, epsilons, delta: float = 1e-5):
    """ε at δ against σ (log scale; σ = 0 has no privacy and is left out)."""
    pairs = [(s, e) for s, e in zip(sigmas, epsilons) if s > 0 and math.isfinite(e)]
    ax.plot([s for s, _ in pairs], [e for _, e in pairs], "-o", color="#34495e")
    for s, e in pairs:
        ax.annotate(f"ε={epsilon_label(e)}", (s, e), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("noise multiplier σ")
    ax.set_ylabel(f"ε at δ = {delta:g}")
    return ax
