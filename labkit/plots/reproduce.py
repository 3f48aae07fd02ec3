"""Figures of the reproduction report (`labkit reproduce`); every helper takes and returns `ax`.

Rates are fractions in [0, 1] drawn as percentages; each curve is the mean over the profile's seeds with a
band of ± one standard deviation where there is more than one seed.
"""
from __future__ import annotations

import numpy as np
from matplotlib.ticker import PercentFormatter

from labkit.plots import ACC_COLOUR, ASR_COLOUR, _percent_axis, _spread, band

VERDICT_COLOUR = {"holds": "#2ca25f", "differs": "#de2d26", "not run": "#bdbdbd"}


def epsilon_curve(ax, relative_size, attack_success, thesis_marks: dict[str, float], dimension_marks: dict[str, float]):
    """Attack success (mean ± std over seeds: `attack_success` (points, seeds)) against the perturbation's size
    as a fraction of the mean image norm (`relative_size` (points,)); vertical lines where the thesis' ε sit
    relative to a CIFAR-10 image (solid) and where the per-pixel (dimension) conversion would put them here
    (dotted)."""
    band(ax, relative_size, attack_success, color=ASR_COLOUR, label="PGD ℓ2 (adversarial surrogate)")
    for name, x in thesis_marks.items():
        ax.axvline(x, color="black", lw=0.8, alpha=0.6)
        ax.annotate(name, (x, 0.98), textcoords="offset points", xytext=(2, 0), fontsize=7, rotation=90, va="top")
    for name, x in dimension_marks.items():
        ax.axvline(x, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("‖δ‖₂ / mean ‖x‖₂ (perturbation as a fraction of the image)")
    ax.set_ylabel("attack success rate")
    ax.set_ylim(-0.03, 1.03)
    _percent_axis(ax.xaxis)
    _percent_axis(ax.yaxis)
    ax.legend(fontsize=8, loc="lower right")
    return ax


def tau_curves(ax, taus, curves: dict[str, np.ndarray], points: dict[str, np.ndarray] | None = None):
    """Attack success against τ, one line per generator / pixel interpolation (`curves[name]`: (taus, seeds)),
    plus single reference values (`points[name]`: (seeds,)) as horizontal lines."""
    for name, values in curves.items():
        band(ax, taus, values, label=name)
    for name, values in (points or {}).items():
        ax.axhline(float(np.mean(values)), ls="--", lw=1, color="grey" if "baseline" in name else "black", label=name)
    ax.set_xlabel("τ (interpolation towards the source class)")
    ax.set_ylabel("attack success rate")
    ax.set_ylim(-0.03, 1.03)
    _percent_axis(ax.yaxis)
    ax.legend(fontsize=8)
    return ax


def amplitude_boundary(ax, fractions, at_amplitude: dict[str, np.ndarray], at_full: dict[str, np.ndarray]):
    """Attack success against the fraction of the target class poisoned, one colour per amplitude: solid with
    the test trigger at the poisoning amplitude, dashed with the full-amplitude trigger at test time."""
    for name, values in at_amplitude.items():
        line = band(ax, fractions, values, label=f"{name} (test at {name})")
        mean, _ = _spread(at_full[name])
        ax.plot(fractions, mean, "--", color=line.get_color(), lw=1, label=f"{name} (test at 255)")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xticks(fractions, [f"{f:.0%}" for f in fractions])
    ax.minorticks_off()
    ax.set_xlabel("fraction of the target class poisoned")
    ax.set_ylabel("attack success rate")
    ax.set_ylim(-0.03, 1.03)
    _percent_axis(ax.yaxis)
    ax.legend(fontsize=7, ncol=2)
    return ax


def task_bars(ax, labels, main_before, main_after, backdoor):
    """Blind backdoors: main accuracy of θ and θ* and θ*'s backdoor accuracy per run (means over seeds)."""
    x = np.arange(len(labels))
    ax.bar(x - 0.27, main_before, 0.27, color="#9ecae1", label="main, θ (normal loss)")
    ax.bar(x, main_after, 0.27, color=ACC_COLOUR, label="main, θ* (blind loss)")
    ax.bar(x + 0.27, backdoor, 0.27, color=ASR_COLOUR, label="backdoor, θ*")
    ax.set_xticks(x, labels, rotation=15, ha="right", fontsize=8)
    ax.set_ylim(0, 1.03)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, frameon=False)
    return ax


def verdict_strip(ax, rows: list[dict]):
    """One coloured cell per claim (holds green, differs red, not run grey), labelled with its id."""
    for i, row in enumerate(rows):
        ax.barh(i, 1, color=VERDICT_COLOUR[row["verdict"]])
        ax.text(0.02, i, f"{row['id']} — {row['verdict']}", va="center", fontsize=8)
    ax.set_yticks([])
    ax.set_xticks([])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    return ax
