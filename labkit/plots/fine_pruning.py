"""Figures for notebook 06 (Fine-Pruning and STRIP). Every helper takes an `ax` and returns it.

Rates are fractions in [0, 1], drawn as percentages; entropies are in bits.
"""
from __future__ import annotations

import numpy as np
import torch

from labkit.plots import ACC_COLOUR, ASR_COLOUR, _percent_axis

# The report's Table 3 (faces, 1,283 classes): % of channels pruned → clean / poison accuracy.
REPORT_TABLE3 = {"percents": [0, 5, 10, 15], "clean_accuracy": [0.9777, 0.8865, 0.8641, 0.8616],
                 "attack_success_rate": [0.9999, 0.3078, 0.0451, 0.0005]}
BENIGN_COLOUR, TROJAN_COLOUR = "#2c7fb8", "#c0392b"


def channel_activations(ax, clean, triggered, pruned_percent: float | None = None):
    """Mean activation of each last-conv channel on clean (bars) and triggered (dots) images,
    channels sorted from most dormant on clean data; the channels a `pruned_percent` cut removes are shaded."""
    clean, triggered = np.asarray(clean, float), np.asarray(triggered, float)
    order = np.argsort(clean, kind="stable")
    ranks = np.arange(len(clean))
    ax.bar(ranks, clean[order], color=BENIGN_COLOUR, alpha=0.7, label="clean images")
    ax.plot(ranks, triggered[order], ".", color=TROJAN_COLOUR, label="triggered images")
    if pruned_percent:
        cut = round(pruned_percent / 100 * len(clean))
        ax.axvspan(-0.5, cut - 0.5, color="gray", alpha=0.15, label=f"pruned at {pruned_percent:g}%")
    ax.set_xlabel("last-conv channel, sorted by mean activation on clean images")
    ax.set_ylabel("mean activation")
    ax.legend(fontsize=8)
    return ax


def pruning_panel(ax, percents, clean_accuracy, attack_success, label: str = "this lab", style: str = "-",
                  current: float | None = None, report: bool = False):
    """Clean accuracy and attack success against the % of channels pruned (no fine-tuning).
    `report=True` adds the report's Table 3 (faces) as hollow markers; `current` draws a vertical line."""
    ax.plot(percents, clean_accuracy, style, marker="s", ms=4, color=ACC_COLOUR, label=f"{label} · clean accuracy")
    ax.plot(percents, attack_success, style, marker="o", ms=4, color=ASR_COLOUR, label=f"{label} · attack success")
    if report:
        ax.plot(REPORT_TABLE3["percents"], REPORT_TABLE3["clean_accuracy"], "s", mfc="none", color=ACC_COLOUR,
                ms=8, label="report (faces) · clean")
        ax.plot(REPORT_TABLE3["percents"], REPORT_TABLE3["attack_success_rate"], "o", mfc="none",
                color=ASR_COLOUR, ms=8, label="report (faces) · poison")
    if current is not None:
        ax.axvline(current, color="black", lw=1, ls=":")
    ax.set_xlabel("channels pruned (%)")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.03, 1.03)
    _percent_axis(ax.yaxis)
    ax.legend(fontsize=7, loc="lower left")
    return ax


def pruning_panels(ax, curves: dict[str, dict]):
    """Several `pruning-curve` results ({name: result}): attack success solid, clean accuracy dashed."""
    for i, (name, curve) in enumerate(curves.items()):
        colour = f"C{i}"
        ax.plot(curve["percents"], curve["attack_success_rate"], "-o", ms=4, color=colour, label=f"{name} · attack success")
        ax.plot(curve["percents"], curve["clean_accuracy"], "--s", ms=3, color=colour, label=f"{name} · clean accuracy")
    ax.set_xlabel("channels pruned (%), no fine-tuning")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.03, 1.03)
    _percent_axis(ax.yaxis)
    ax.legend(fontsize=7, loc="lower left")
    return ax


def defense_paths(ax, rows: list[dict], highlight: float | None = None):
    """Each row {percent, pruned_clean_accuracy, pruned_attack_success_rate, clean_accuracy,
    attack_success_rate}: an arrow from "pruned only" to "pruned + fine-tuned" on attack success vs
    clean accuracy, labelled by the pruned %. `highlight` rings that percent's fine-pruned point."""
    for row in rows:
        start = (row["pruned_clean_accuracy"], row["pruned_attack_success_rate"])
        end = (row["clean_accuracy"], row["attack_success_rate"])
        strong = highlight is not None and row["percent"] == highlight
        ax.annotate("", xy=end, xytext=start,
                    arrowprops={"arrowstyle": "->", "color": "black" if strong else "gray", "lw": 1.6 if strong else 0.8})
        ax.scatter(*start, marker="x", color="gray", zorder=3)
        ax.scatter(*end, s=70 if strong else 35, color=ASR_COLOUR, zorder=4,
                   edgecolors="black" if strong else "none")
        ax.annotate(f"{row['percent']:g}%", end, textcoords="offset points", xytext=(5, 3), fontsize=8)
    ax.scatter([], [], marker="x", color="gray", label="pruned only")
    ax.scatter([], [], color=ASR_COLOUR, label="pruned + fine-tuned")
    ax.set_xlabel("clean accuracy")
    ax.set_ylabel("attack success rate")
    ax.set_ylim(-0.03, 1.03)
    _percent_axis(ax.xaxis)
    _percent_axis(ax.yaxis)
    ax.legend(fontsize=8, loc="center left")
    return ax


def defense_bars(ax, results: dict[str, dict[str, float]], key: str = "attack_success_rate", title: str | None = None):
    """Grouped bars: {attack: {defense: value}} (e.g. attack success per defense against each attack)."""
    attacks = list(results)
    defenses = list(next(iter(results.values())))
    width = 0.8 / len(defenses)
    for i, defense in enumerate(defenses):
        values = [results[a][defense] for a in attacks]
        xs = np.arange(len(attacks)) + (i - (len(defenses) - 1) / 2) * width
        bars = ax.bar(xs, values, width, label=defense)
        ax.bar_label(bars, labels=[f"{v:.0%}" for v in values], fontsize=7)
    ax.set_xticks(np.arange(len(attacks)), attacks)
    ax.set_ylabel(key.replace("_", " "))
    ax.set_ylim(0, 1.3)
    ax.set_yticks(np.linspace(0, 1, 6))
    _percent_axis(ax.yaxis)
    ax.legend(fontsize=8, ncols=len(defenses), loc="upper center")
    if title:
        ax.set_title(title)
    return ax


def loop_rounds(ax, rounds: list[dict], max_drop: float | None = None):
    """The report's loop: validation and test accuracy and attack success after each round."""
    pct = [r["percent"] for r in rounds]
    ax.plot(pct, [r["val_accuracy"] for r in rounds], "--s", color=ACC_COLOUR, ms=4, label="validation accuracy")
    ax.plot(pct, [r["clean_accuracy"] for r in rounds], "-s", color=ACC_COLOUR, ms=4, alpha=0.6, label="test accuracy")
    ax.plot(pct, [r["attack_success_rate"] for r in rounds], "-o", color=ASR_COLOUR, ms=4, label="attack success")
    if max_drop is not None:
        ax.axhline(rounds[0]["val_accuracy"] - max_drop, color="gray", ls=":", lw=1, label="stop below this")
    rejected = [r for r in rounds if not r["accepted"]]
    for r in rejected:
        ax.axvline(r["percent"], color="gray", lw=0.8)
    ax.set_xlabel("channels pruned (%): prune more, fine-tune, repeat")
    ax.set_ylim(-0.03, 1.03)
    _percent_axis(ax.yaxis)
    ax.legend(fontsize=8, loc="center left")
    return ax


def weight_rounds(ax, rounds: list[dict], max_drop: float | None = None, report: bool = True):
    """The report's own procedure: accuracy and attack success after each weight-threshold round (x = round,
    labelled as the report's "5% × round"), with the share of conv weights pruned on top, and Table 3's rows."""
    steps = [5 * r["round"] for r in rounds]
    ax.plot(steps, [r["val_accuracy"] for r in rounds], "--s", color=ACC_COLOUR, ms=4, label="validation accuracy")
    ax.plot(steps, [r["clean_accuracy"] for r in rounds], "-s", color=ACC_COLOUR, ms=4, alpha=0.6, label="test accuracy")
    ax.plot(steps, [r["attack_success_rate"] for r in rounds], "-o", color=ASR_COLOUR, ms=4, label="attack success")
    if report:
        ax.plot(REPORT_TABLE3["percents"], REPORT_TABLE3["attack_success_rate"], "x:", color=ASR_COLOUR, ms=7,
                label="report Table 3: poison accuracy")
    if max_drop is not None:
        ax.axhline(rounds[0]["val_accuracy"] - max_drop, color="gray", ls=":", lw=1, label="stop below this")
    for r, x in zip(rounds, steps):
        ax.annotate(f"{r['weights_pruned']:.0%}", (x, 1.0), fontsize=7, ha="center", va="bottom", color="gray")
    ax.set_xlabel("5% × round (the report's 'pruned channels percent'); grey: conv weights at zero")
    ax.set_ylim(-0.03, 1.1)
    _percent_axis(ax.yaxis)
    ax.legend(fontsize=8, loc="center right")
    return ax


def width_sweep(ax, runs: list[dict]):
    """Attack success after pruning alone, fine-tuning alone and fine-pruning, per last-conv width (channels)."""
    channels = [r["channels"] for r in runs]
    x = np.arange(len(runs))
    stages = (("original", "victim", 0.25), ("pruned", "pruning alone", 0.45), ("finetuned", "fine-tuning alone", 0.65),
              ("fine_pruned", "fine-pruning", 1.0))
    for i, (key, label, alpha) in enumerate(stages):
        ax.bar(x + (i - 1.5) * 0.2, [r[f"{key}_attack_success_rate"] for r in runs], 0.2, color=ASR_COLOUR,
               alpha=alpha, label=label)
    ax.plot(x, [r["fine_pruned_clean_accuracy"] for r in runs], "s--", color=ACC_COLOUR, label="accuracy after fine-pruning")
    ax.set_xticks(x, [f"{c} channels\n({r['dormant_channels']} dormant)" for c, r in zip(channels, runs)])
    ax.set_ylabel("attack success")
    ax.set_ylim(0, 1.05)
    _percent_axis(ax.yaxis)
    ax.legend(fontsize=8, loc="lower left", ncol=2)
    return ax


def entropy_histograms(ax, benign, trojan, threshold: float | None = None, bins: int = 30, calibration=None):
    """STRIP entropies (bits) of clean vs triggered inputs, the threshold, and (if `calibration` entropies
    are given) the normal fitted to them, from which the paper's threshold comes."""
    benign, trojan = np.asarray(benign, float), np.asarray(trojan, float)
    edges = np.linspace(min(benign.min(), trojan.min()), max(benign.max(), trojan.max()), bins + 1)
    ax.hist(benign, edges, density=True, alpha=0.6, color=BENIGN_COLOUR, label="clean inputs")
    ax.hist(trojan, edges, density=True, alpha=0.6, color=TROJAN_COLOUR, label="triggered inputs")
    if calibration is not None:
        from labkit.defenses.strip import entropy_normal_pdf

        grid = torch.linspace(float(edges[0]), float(edges[-1]), 200)
        ax.plot(grid, entropy_normal_pdf(torch.as_tensor(calibration), grid), color="black", lw=1,
                label="normal fit (defender's clean images)")
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", lw=1.2, label=f"threshold {threshold:.3f}")
    ax.set_xlabel("STRIP entropy (bits, mean over the N copies)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return ax


def frr_far_curve(ax, curve: dict, threshold: float | None = None):
    """FRR and FAR as the entropy threshold moves (`strip.rate_curve`'s output)."""
    t = np.asarray(curve["thresholds"], float)
    ax.plot(t, np.asarray(curve["frr"], float), color=BENIGN_COLOUR, label="FRR (clean rejected)")
    ax.plot(t, np.asarray(curve["far"], float), color=TROJAN_COLOUR, label="FAR (triggered accepted)")
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", lw=1)
    ax.set_xlabel("entropy threshold (bits): flag below it")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.03, 1.03)
    _percent_axis(ax.yaxis)
    ax.legend(fontsize=8)
    return ax


def confusion_matrix(ax, table, class_names):
    """The combined pipeline's confusion counts; rows = expected answer (last: "reject"), columns = given."""
    import seaborn as sns

    names = list(class_names) + ["reject"]
    sns.heatmap(np.asarray(table), annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax,
                xticklabels=names, yticklabels=names, annot_kws={"fontsize": 7})
    ax.set_xlabel("pipeline's answer")
    ax.set_ylabel("expected answer (triggered → reject)")
    return ax
