"""Blind backdoors' claims (notebook 07; Bagdasaryan & Shmatikov's slides).

Every run is a `blind` experiment: θ (normal loss) and θ* (blind loss) trained on the same data, seed and
code. The paper's code balances every loss with MGDA, the Neural Cleanse evasion loss included, so the claims
use MGDA; the fixed scales (0.6, 0.3, 0.1) that notebook 07's evasion runs use are measured as the ablation.
"""
from __future__ import annotations

from labkit.claims import Claim, Criterion, Setting, all_of, at_least, below, mean, note, register, spread
from labkit.experiments import blind as blind_experiment
from labkit.experiments import run

note("blind", """
θ (normal loss) and θ* (blind loss) are small CNNs trained from scratch with the same data, seed and code (the
paper: ResNet-18 on ImageNet, fine-tuned or trained with SGD). Every loss is balanced by MGDA as in the paper's
code (loss+ normalisation), including the Neural Cleanse evasion loss; the fixed scales (0.6, 0.3, 0.1) that
notebook 07's evasion section uses are measured as an ablation row. The anomaly index is Neural Cleanse's on θ*,
signed so that a positive value means the target's trigger is smaller than the median label's.
""")

UNCHANGED = 0.02  # "main accuracy unchanged": at most 2 points lower
WORKS = 0.9


def blind_run(s: Setting, **knobs) -> dict:
    return run("blind", profile=s.profile, dataset=s.dataset, seed=s.seed, **knobs)


def task_numbers(r: dict) -> dict:
    """Main and backdoor accuracy of θ and θ*, and the lowest weight MGDA gave the main task."""
    return {"main_clean": r["main_accuracy_clean"], "main_backdoored": r["main_accuracy_backdoored"],
            "backdoor_clean": r["backdoor_accuracy_clean"], "backdoor": r["backdoor_accuracy"],
            "lowest_alpha0": float(r["weights"][:, 0].min())}


def tasks(synthesizer: str):
    return lambda s: task_numbers(blind_run(s, synthesizer=synthesizer))


def main_kept() -> Criterion:
    return Criterion(f"mean main accuracy of θ* ≥ that of θ − {UNCHANGED * 100:g} points",
                     lambda v: mean(v["main_backdoored"]) >= mean(v["main_clean"]) - UNCHANGED)


def _tasks_text(v) -> str:
    return (f"main {spread(v['main_clean'])} → {spread(v['main_backdoored'])}, "
            f"backdoor {spread(v['backdoor_clean'])} → {spread(v['backdoor'])}")


register(Claim(
    id="blind-pattern", paper="blind", notebook="07",
    claim="a loss-only attacker installs a pixel-pattern backdoor without hurting the main task",
    paper_value="ImageNet, pixel pattern → 'hen': main 65.3% → 65.3%, backdoor 0% → 99% (MGDA)",
    measure=tasks("pattern"), criterion=all_of(main_kept(), at_least("backdoor", WORKS)), show=_tasks_text,
))

register(Claim(
    id="blind-calculator", paper="blind", notebook="07",
    claim="the same images learn a second task: the calculator's sum becomes a product under the trigger",
    paper_value="calculator add → multiply: main 95.8% → 96.0%, backdoor 1% → 95%",
    measure=tasks("calculator"), criterion=all_of(main_kept(), at_least("backdoor", WORKS)), show=_tasks_text,
    why="both calculator tasks are under-trained at this profile's size (the sum is a 19-way task on pairs of "
        "small digits): the row shows the main task and the backdoor at the same budget",
))


def single_pixel(s: Setting) -> dict:
    r = blind_run(s, synthesizer="pixel")
    return {**task_numbers(r), "steps_alpha0_below_5pct": float((r["weights"][:, 0] < 0.05).float().mean())}


register(Claim(
    id="blind-single-pixel", paper="blind", notebook="07",
    claim="a single-pixel backdoor, balanced by MGDA, keeps the main task",
    paper_value="ImageNet fine-tune, single pixel → 'hen': main 69.1% → 68.9%, backdoor 0% → 99%",
    measure=single_pixel, criterion=all_of(main_kept(), at_least("backdoor", WORKS)),
    show=lambda v: (_tasks_text(v) + f"; lowest α0 {spread(v['lowest_alpha0'], False)}, steps with α0 < 0.05: "
                    f"{spread(v['steps_alpha0_below_5pct'])}"),
    why="MGDA's min-norm point leans towards the task with the smallest gradient: once the one-pixel backdoor "
        "is learned its loss gradient nearly vanishes and α0 (the main task's weight) can fall to ~0 and stay "
        "there, which starves the main task; the row shows the lowest α0 and how long it stayed below 0.05",
))


def evasion(balance: str):
    def measure(s: Setting) -> dict:
        knobs = dict(blind_experiment.EVASION, balance=balance) if balance == "fixed" else \
            dict(balance="mgda", nc_lambda=blind_experiment.EVASION["nc_lambda"])
        r = blind_run(s, synthesizer="pattern", evasion=True, **knobs)
        plain = blind_run(s, synthesizer="pattern", neural_cleanse=True)
        return {"anomaly_index": r["anomaly_index"], "anomaly_index_without_evasion": plain["anomaly_index"],
                "main_clean": r["main_accuracy_clean"], "main_backdoored": r["main_accuracy_backdoored"],
                "backdoor": r["backdoor_accuracy"]}
    return measure


def _evasion_text(v) -> str:
    return (f"anomaly index {spread(v['anomaly_index'], False)} (without L_ev {spread(v['anomaly_index_without_evasion'], False)}); "
            f"main {spread(v['main_clean'])} → {spread(v['main_backdoored'])}, backdoor {spread(v['backdoor'])}")


register(Claim(
    id="blind-nc-evasion", paper="blind", notebook="07",
    claim="with the evasion loss balanced by MGDA, Neural Cleanse no longer flags the backdoor, which still works",
    paper_value="Neural Cleanse evaded: main 68.20% (−0.9%), backdoor 99.94%; anomaly index below 2",
    measure=evasion("mgda"), criterion=all_of(below("anomaly_index", 2.0, percent=False), at_least("backdoor", WORKS)),
    show=_evasion_text,
    why="on a small CNN trained from scratch MGDA over three conflicting losses can starve the main task or "
        "the backdoor; the fixed-scale ablation (blind-nc-evasion-fixed) shows what a hand-set balance does",
))

register(Claim(
    id="blind-nc-evasion-fixed", paper="blind", notebook="07",
    claim="ablation: the evasion loss with fixed scales α = (0.6, 0.3, 0.1) instead of MGDA",
    paper_value="(not in the paper: its code uses MGDA)",
    measure=evasion("fixed"), criterion=all_of(below("anomaly_index", 2.0, percent=False), at_least("backdoor", WORKS)),
    show=_evasion_text,
))
