"""Notebook 08's figures: the attack × defense matrix as annotated heatmaps, and one cell up close.

Rates are fractions in [0, 1], drawn as percentages; a cell that does not apply is drawn grey with "n/a"."""
from __future__ import annotations

import numpy as np

from labkit.plots import ACC_COLOUR, ASR_COLOUR, image_grid


def matrix(result: dict, key: str) -> np.ndarray:
    """(attacks, defenses) array of `key` from an `arena` result; NaN where the cell does not apply."""
    index = {(c["attack"], c["defense"]): c for c in result["cells"]}
    return np.array([[index[(a, d)].get(key, np.nan) for d in result["defenses"]] for a in result["attacks"]],
                    dtype=float)


def accuracy_cost(result: dict) -> np.ndarray:
    """(attacks, defenses) clean accuracy lost to each defense, in points of the undefended model's (≥ 0 = lost)."""
    acc = matrix(result, "clean_accuracy")
    return acc[:, :1] - acc


def heatmap(ax, result: dict, values: np.ndarray, title: str, cmap: str, vmin: float = 0.0, vmax: float = 1.0,
            std: np.ndarray | None = None):
    """One annotated heatmap of `values` (attacks × defenses, fractions), mean (± std) in each cell."""
    import seaborn as sns

    labels = np.empty(values.shape, dtype=object)
    for i, j in np.ndindex(values.shape):
        if np.isnan(values[i, j]):
            labels[i, j] = "n/a"
        elif std is not None and std[i, j] >= 0.005:
            labels[i, j] = f"{values[i, j]:.0%}\n±{std[i, j]:.0%}"
        else:
            labels[i, j] = f"{values[i, j]:.0%}"
    ax.set_facecolor("#dddddd")
    sns.heatmap(values, ax=ax, annot=labels, fmt="", cmap=cmap, vmin=vmin, vmax=vmax, cbar=False,
                linewidths=0.5, linecolor="white", annot_kws={"fontsize": 8},
                xticklabels=result["defenses"], yticklabels=result["attacks"])
    ax.set_title(title)
    ax.set_xlabel("defense")
    ax.set_ylabel("attack")
    ax.tick_params(axis="x", rotation=35)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    return ax


def cell_detail(axes, cell: dict, attacked: dict) -> None:
    """One cell up close: `axes` = (bar axis, 4 image axes). Bars: clean accuracy and attack success before and
    after the defense, and the clean model's rate (the floor a backdoor must beat); images: test inputs
    without and with the attack's trigger."""
    bars, *images = axes
    names = ["undefended", "after defense"]
    asr = [attacked["attack_success_rate"], cell.get("attack_success_rate", np.nan)]
    acc = [attacked["clean_accuracy"], cell.get("clean_accuracy", np.nan)]
    x = np.arange(2)
    bars.bar(x - 0.2, acc, 0.4, color=ACC_COLOUR, label="clean accuracy")
    bars.bar(x + 0.2, asr, 0.4, color=ASR_COLOUR, label="attack success")
    bars.axhline(attacked["clean_model_rate"], color="black", ls=":", lw=1, label="clean model's rate")
    bars.set_xticks(x, names)
    bars.set_ylim(0, 1.05)
    bars.yaxis.set_major_formatter("{x:.0%}")
    bars.legend(fontsize=7, loc="lower left")
    clean, triggered = attacked["examples_clean"][:2], attacked["examples_triggered"][:2]
    image_grid(images, list(clean) + list(triggered), ["clean", "clean", "triggered", "triggered"])


def caption(cell: dict) -> str:
    """What the defense saw and did in this cell, in one line (means over seeds)."""
    d = cell["defense"]
    if not cell.get("applicable", True):
        return f"n/a: {cell['why']}"
    if "removed_poison" in cell:
        return (f"{d} removed {cell['removed_poison']:.0%} of the poison; {cell['removed_clean_share']:.0%} of "
                f"what it removed was clean")
    if "rejected_triggered" in cell:
        return (f"STRIP rejected {cell['rejected_triggered']:.0%} of triggered and {cell['rejected_clean']:.0%} of "
                f"clean inputs (threshold at 1% FRR on the defender's clean images)")
    if "detected" in cell:
        return (f"Neural Cleanse flagged the target on {cell['detected']:.0%} of seeds (target's anomaly index "
                f"{cell['anomaly_index']:.1f}); unlearning ran only where it flagged a label")
    if "epsilon" in cell:
        return f"DP-SGD at σ = 1: ε = {cell['epsilon']:.1f} at δ = 1e-5"
    if d == "fine-pruning":
        return "pruned 80% of the last conv layer's channels (most dormant on clean data first), then fine-tuned"
    return "no defense: the backdoored model as trained"


# BackdoorBench's BadNets row (CIFAR-10, PreAct-ResNet18, 10% poisoned; attack success after each defense),
# the numbers issue 19 quotes: clean accuracy / ASR undefended, then ASR after each defense.
BACKDOORBENCH_BADNETS = {"clean_accuracy": 0.913, "none": 0.950, "fine-pruning": 0.571, "neural-cleanse": 0.013,
                         "activation-clustering": 0.862, "spectral": 0.924}


def backdoorbench_table(result: dict) -> str:
    """Markdown: BackdoorBench's BadNets row beside this lab's (mean ± std over the seeds)."""
    cells = {c["defense"]: c for c in result["cells"] if c["attack"] == "badnets"}

    def ours(defense: str, key: str = "attack_success_rate") -> str:
        c = cells[defense]
        return f"{c[key]:.1%} ± {c[key + '_std']:.1%}" if key in c else "n/a"
    rows = ["| BadNets | BackdoorBench (CIFAR-10, GPU-days) | this lab |", "|---|---|---|",
            f"| clean accuracy, undefended | {BACKDOORBENCH_BADNETS['clean_accuracy']:.1%} | "
            f"{ours('none', 'clean_accuracy')} |"]
    for defense in ("none", "fine-pruning", "neural-cleanse", "activation-clustering", "spectral"):
        rows.append(f"| attack success after {defense} | {BACKDOORBENCH_BADNETS[defense]:.1%} | {ours(defense)} |")
    return "\n".join(rows)


def reading(result: dict, planted_margin: float = 0.4, stopped: float = 0.2, max_cost: float = 0.05) -> str:
    """Markdown bullets read off the matrix: for each attack, whether it is planted (undefended success at least
    `planted_margin` above the clean model's rate), which defenses bring it below `stopped` while costing at most
    `max_cost` of clean accuracy, and which leave it at 50% or more."""
    lines = []
    for attack in result["attacks"]:
        row = {c["defense"]: c for c in result["cells"] if c["attack"] == attack}
        base = row["none"]
        planted = base["attack_success_rate"] - base["clean_model_rate"] >= planted_margin
        if not planted:
            lines.append(f"- **{attack}** is not planted here: {base['attack_success_rate']:.0%} attack success "
                         f"undefended (a clean model: {base['clean_model_rate']:.0%}), so its row says nothing about "
                         "the defenses.")
            continue
        stops = [d for d, c in row.items() if d != "none" and c.get("attack_success_rate", 1) < stopped
                 and base["clean_accuracy"] - c["clean_accuracy"] <= max_cost]
        fails = [d for d, c in row.items() if d != "none" and c.get("attack_success_rate", 0) >= 0.5]
        lines.append(f"- **{attack}** ({base['attack_success_rate']:.0%} undefended): stopped by "
                     f"{', '.join(stops) or 'no defense at ≤ 5 points of accuracy'}; survives "
                     f"{', '.join(fails) or 'none of them'}.")
    return "\n".join(lines)


def strength_curve(ax, result: dict, attack: str, planted_margin: float = 0.4) -> None:
    """Attack success (%) over the trigger's strength from a `trigger-strength` result: tested at the training
    strength (and amplified, for SIG), the clean model's rate dashed, the paper's setting and the arena's
    "planted" line (clean model's rate + `planted_margin`) marked."""
    strengths = result["strengths"]
    ax.plot(strengths, 100 * np.array(result["attack_success_rate"]), "o-", color=ASR_COLOUR,
            label="backdoored, test trigger as trained")
    if result["attack_success_rate_amplified"][0] is not None:
        ax.plot(strengths, 100 * np.array(result["attack_success_rate_amplified"]), "s--", color=ASR_COLOUR,
                alpha=0.6, label="backdoored, test amplitude 2×")
    ax.plot(strengths, 100 * np.array(result["clean_model_rate"]), ":", color="grey", label="clean model")
    floor = max(result["clean_model_rate"])
    ax.axhline(100 * (floor + planted_margin), color="black", lw=0.8, label="planted (arena's line)")
    ax.axvline(result["paper_strength"], color=ACC_COLOUR, lw=0.8, ls="--", label="the paper's setting")
    unit = "Δ (0–255 scale)" if attack == "sig" else "warp strength s"
    ax.set(xlabel=f"{attack}: {unit}", ylabel="attack success (%)", ylim=(-2, 102), title=attack)
    ax.legend(fontsize=7)
