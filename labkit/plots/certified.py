"""Figures for notebook 04 (certified defenses): the 2-D feasible-set picture, bounds against ε, the regret
gap against Algorithm 1's iterations. Every helper takes an `ax` and returns it.

Feasible sets come as the `feasible_set` / `oracle_set` dicts of a `certified` result (rows = labels +1, −1).
Losses are hinge losses divided by the clean count n (the paper's normalisation).
"""
from __future__ import annotations

import numpy as np
from matplotlib.patches import Circle
from matplotlib.ticker import PercentFormatter

from labkit.plots import _percent_axis

COLOURS = {1.0: "#c0392b", -1.0: "#2c7fb8"}
BOUND_STYLE = {
    "exact": dict(color="#2d3436", ls="-", marker="o", label="exact bound min U (SOCP)"),
    "alg1": dict(color="#8e44ad", ls="--", marker="s", label="Algorithm 1's U*"),
    "achieved": dict(color="#e67e22", ls="-", marker="^", label="achieved: attack train loss"),
}


def _np(value) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def _boundary(ax, theta, style: str, label: str, limits) -> None:
    """The line ⟨w, x⟩ + b = 0 across the axes' x-range."""
    w, b = _np(theta)[:2], float(_np(theta)[2])
    xs = np.linspace(*limits[0], 50)
    if abs(w[1]) > 1e-12:
        ax.plot(xs, -(w[0] * xs + b) / w[1], style, color="black", lw=1.4, label=label)
    else:
        ax.axvline(-b / w[0], ls=style, color="black", lw=1.4, label=label)


def feasible_picture(ax, x, y, fset: dict, poison_x=None, poison_y=None, theta_before=None, theta_after=None,
                     kept=None, limits=((-6, 6), (-5, 5))):
    """2-D data (x (N, 2), y ∈ {−1, +1}), both classes' sphere and slab, the centroids, the attack points
    (marker size ∝ how often Algorithm 1 picked them; hollow = removed by the sanitizer) and the decision
    boundary before (dashed) and after (solid) retraining on the poisoned set."""
    x, y = _np(x), _np(y)
    labels = _np(fset["labels"])
    for row, label in enumerate(labels):
        colour = COLOURS[float(label)]
        mine = x[y == label]
        ax.scatter(mine[:, 0], mine[:, 1], s=12, color=colour, alpha=0.45, label=f"clean y = {label:+.0f}")
        centre, radius = _np(fset["centres"])[row], float(_np(fset["radii"])[row])
        ax.add_patch(Circle(centre, radius, fill=False, color=colour, lw=1.4, ls="-" if fset["defense"] in
                            ("sphere", "sphere+slab") else ":"))
        width = float(_np(fset["widths"])[row])
        if width >= 0:
            a, m = _np(fset["directions"])[row], float(_np(fset["slab_centres"])[row])
            along = np.array([-a[1], a[0]])
            for level in (m - width, m + width):
                base = level * a
                ends = np.array([base - 20 * along, base + 20 * along])
                ax.plot(ends[:, 0], ends[:, 1], color=colour, lw=1.0, ls="--")
        centroid = _np(fset["centroids"])[row]
        ax.scatter(*centroid, marker="X", s=110, color=colour, edgecolor="black", zorder=5)
    if poison_x is not None and len(poison_x):
        px, py = _np(poison_x), _np(poison_y)
        kept = np.ones(len(py), bool) if kept is None else _np(kept).astype(bool)
        points, inverse, counts = np.unique(np.round(np.column_stack([px, py]), 6), axis=0,
                                            return_inverse=True, return_counts=True)
        point_kept = np.zeros(len(points), bool)
        point_kept[inverse.ravel()[kept]] = True
        for (p0, p1, label), count, ok in zip(points, counts, point_kept):
            ax.scatter(p0, p1, s=40 + 25 * count, marker="*", zorder=6, edgecolor="black",
                       color=COLOURS[float(label)] if ok else "none")
        ax.scatter([], [], s=90, marker="*", color="grey", edgecolor="black", label="attack points (size ∝ picks)")
    if theta_before is not None:
        _boundary(ax, theta_before, "--", "boundary, clean", limits)
    if theta_after is not None:
        _boundary(ax, theta_after, "-", "boundary, poisoned", limits)
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="lower right")
    return ax


def _without_zero(epsilons, values):
    """U* at ε = 0 is not drawn: Algorithm 1 runs εn steps, none at ε = 0 (labkit runs one, at θ = 0)."""
    values = np.asarray(values, float).copy()
    values[epsilons == 0] = np.nan
    return values


def bounds_vs_epsilon(ax, epsilons, exact=None, alg1=None, achieved=None, test_error=None, title=None):
    """Exact bound, U* (ε > 0), achieved train loss (left axis) and the attack's test error (right, %) vs ε."""
    epsilons = np.asarray(epsilons, float)
    for key, values in (("exact", exact), ("alg1", alg1), ("achieved", achieved)):
        if values is not None:
            values = _without_zero(epsilons, values) if key == "alg1" else np.asarray(values, float)
            ax.plot(epsilons, values, ms=4, **BOUND_STYLE[key])
    ax.set_xlabel("poisoned fraction ε")
    ax.set_ylabel("loss (hinge, ÷ n)")
    ax.set_ylim(bottom=0)
    handles, names = ax.get_legend_handles_labels()
    if test_error is not None:
        twin = ax.twinx()
        twin.plot(epsilons, np.asarray(test_error, float), ":", color="#16a085", marker="d", ms=4,
                  label="achieved: test 0-1 error")
        twin.set_ylabel("test error")
        twin.yaxis.set_major_formatter(PercentFormatter(1.0))
        twin.set_ylim(0, max(0.05, 1.2 * float(np.max(test_error))))
        twin.grid(False)
        more, more_names = twin.get_legend_handles_labels()
        handles, names = handles + more, names + more_names
    ax.legend(handles, names, fontsize=7, loc="upper left")
    if title:
        ax.set_title(title)
    return ax


def oracle_vs_data_dependent(ax, epsilons, oracle_exact, oracle_achieved, dd_achieved, dd_alg1=None):
    """The oracle defense's certificate and attack vs the attack on the data-dependent defense."""
    epsilons = np.asarray(epsilons, float)
    ax.plot(epsilons, oracle_exact, **BOUND_STYLE["exact"] | {"label": "oracle: exact bound"})
    ax.plot(epsilons, oracle_achieved, **BOUND_STYLE["achieved"] | {"label": "oracle: achieved"})
    ax.plot(epsilons, dd_achieved, color="#c0392b", marker="v", label="data-dependent: achieved")
    if dd_alg1 is not None:
        ax.plot(epsilons, _without_zero(epsilons, dd_alg1), color="#c0392b", ls="--", marker="s", alpha=0.6, label="data-dependent: U* (heuristic)")
    ax.set_xlabel("poisoned fraction ε")
    ax.set_ylabel("loss (hinge, ÷ n)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    return ax


def regret_gap(ax, iterations, gaps, bounds=None):
    """U* − achieved against Algorithm 1's iterations T (log–log), with a c/√T guide through the first point.
    `bounds` (optional) = U* per T, drawn on the same axes for scale."""
    iterations, gaps = np.asarray(iterations, float), np.maximum(np.asarray(gaps, float), 1e-6)
    ax.loglog(iterations, gaps, "-o", color="#8e44ad", label="U* − achieved (regret gap)")
    ax.loglog(iterations, gaps[0] * np.sqrt(iterations[0] / iterations), ":", color="grey", label="∝ 1/√T")
    if bounds is not None:
        ax.loglog(iterations, bounds, "--s", color="#7f8c8d", alpha=0.7, label="U*")
    ax.set_xlabel("Algorithm 1 iterations T (attack points, each of mass εn/T)")
    ax.set_ylabel("loss gap")
    ax.legend(fontsize=8)
    return ax


def error_vs_epsilon(ax, epsilons, errors: dict, clean_error: float | None = None):
    """Test error (fraction) of the attacked model against ε, one line per defense (`errors`: name → values)."""
    for name, values in errors.items():
        ax.plot(epsilons, values, "-o", ms=4, label=name)
    if clean_error is not None:
        ax.axhline(clean_error, color="gray", ls=":", lw=1, label="clean model")
    ax.set_xlabel("ε (poisoned fraction of n)")
    ax.set_ylabel("test error")
    _percent_axis(ax.yaxis)
    ax.legend(fontsize=8)
    return ax
