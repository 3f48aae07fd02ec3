"""Fine-Pruning's claims (notebook 06): Liu et al.'s channel fine-pruning, whether it needs spare capacity (the
last conv layer's width), the pruning-aware attack, and the student report's own weight-threshold procedure."""
from __future__ import annotations

from labkit.claims import Claim, Setting, all_of, at_least, at_most, close_to, mean, note, per_seed, register, spread
from labkit.experiments import fine_pruning as fpx
from labkit.experiments import run

REMOVED = 0.05  # "the backdoor is removed": attack success ≤ 5%

note("fine-pruning", """
BadNets victim (one-corner trigger, target 0, 10% poisoned, notebook 01's model); the defender owns clean
training images the attacker did not touch (400 in `lab`). Liu et al. prune the last conv layer's channels that
are most dormant on clean data (80% here) and fine-tune; the student report instead prunes *weights* of every
conv layer below min + (max − min)·5% of their signed values, fine-tunes, and repeats until validation accuracy
drops by 1 point — its Table 3's "pruned channels percent" is 5% × the round. The width rows train the victim
with 64, 128 and 256 last-layer channels.
""")


def victim(s: Setting) -> dict:
    return {"profile": s.profile, "dataset": s.dataset, "seed": s.seed}


def channel_fine_pruning(s: Setting) -> dict:
    r = run("fine-pruning", **victim(s))
    return {"attack_success": r["attack_success_rate"], "clean_accuracy": r["clean_accuracy"],
            "original_accuracy": r["original_clean_accuracy"], "pruning_only": r["pruned_attack_success_rate"]}


register(Claim(
    id="fp-liu", paper="fine-pruning", notebook="06",
    claim="fine-pruning (prune the dormant last-layer channels, fine-tune) removes the backdoor at a small accuracy cost",
    paper_value="attack success → ≈ 0% (e.g. face recognition 100% → 0%) with a few points of accuracy lost (Liu et al.)",
    measure=channel_fine_pruning,
    criterion=all_of(at_most("attack_success", REMOVED), close_to("clean_accuracy", "original_accuracy", 0.05)),
    why=lambda v: (
        f"80% of the 64 last-conv channels pruned leaves {per_seed(v['pruning_only'])} attack success on the seeds and "
        f"fine-tuning afterwards {per_seed(v['attack_success'])}: the backdoor shares channels that clean data also "
        f"uses, so ranking by clean activation does not isolate it. The width row shows whether more channels help"),
    show=lambda v: (f"80% pruned + fine-tuned: ASR {spread(v['attack_success'])}, accuracy "
                    f"{spread(v['original_accuracy'])} → {spread(v['clean_accuracy'])} (pruning alone: ASR {spread(v['pruning_only'])})"),
))


def width_sweep(s: Setting) -> dict:
    out = {}
    widths = fpx.SIZES.of(s.profile)["widths"]
    for width in widths:
        r = run("fine-pruning-width", **victim(s), width=width)
        for stage in ("pruned", "finetuned", "fine_pruned"):
            out[f"{stage}_{width}"] = r[f"{stage}_attack_success_rate"]
        out[f"accuracy_{width}"] = r["fine_pruned_clean_accuracy"]
        out[f"dormant_{width}"] = r["dormant_channels"]
        out[f"victim_accuracy_{width}"] = r["original_clean_accuracy"]
    out["widest"] = out[f"fine_pruned_{max(widths)}"]
    return out


def _widths(v) -> list[int]:
    """The swept `width` knobs (the last conv layer has 2 × width channels), from the row's keys."""
    return sorted({int(k.rsplit("_", 1)[1]) for k in v if k.startswith("fine_pruned_")})


COLLAPSED = 0.5  # a model below this clean accuracy is no defense (or no victim), whatever its attack success


def _widths_why(v) -> str:
    widths = _widths(v)

    def learned(w) -> list[bool]:  # seeds whose victim and fine-pruned model both classify (a defense to judge)
        return [min(a, b) >= COLLAPSED for a, b in zip(v[f"victim_accuracy_{w}"], v[f"accuracy_{w}"])]

    def after(w) -> str:
        notes = [f"a victim that never learned: {a:.1%} accuracy before pruning" if a < COLLAPSED else
                 f"a fine-pruned model at {b:.1%} accuracy: no removal"
                 for a, b, ok in zip(v[f"victim_accuracy_{w}"], v[f"accuracy_{w}"], learned(w)) if not ok]
        return per_seed(v[f"fine_pruned_{w}"]) + "".join(f" ({note})" for note in notes)

    def judged(w) -> float:
        kept = [asr for asr, ok in zip(v[f"fine_pruned_{w}"], learned(w)) if ok]
        return mean(kept) if kept else float("nan")
    gain = judged(widths[0]) - judged(widths[-1])  # attack success the widest victim's fine-pruning removes in addition
    trend = "worse" if gain < -0.05 else "no better" if gain <= 0.05 else "better, but not enough,"
    floor = min(a for w in widths for a in v[f"pruned_{w}"])
    dormant = ", ".join(f"{mean(v[f'dormant_{w}']):.0f} of {2 * w}" for w in widths)
    return (f"fine-pruning works {trend} with more channels — attack success after pruning + fine-tuning: "
            + "; ".join(f"{2 * w} channels {after(w)}" for w in widths)
            + f". Pruning alone leaves ≥ {floor:.0%} at every width; dormant channels on clean data: {dormant}. The "
            f"paper's premise is a backdoor in channels that clean inputs leave dormant: where width adds dormant "
            f"channels and pruning them leaves the backdoor, it is not in them")


def _show_widths(v) -> str:
    widths = _widths(v)
    return "; ".join(f"{2 * w} channels: prune {spread(v[f'pruned_{w}'])}, tune {spread(v[f'finetuned_{w}'])}, "
                     f"both {spread(v[f'fine_pruned_{w}'])}" for w in widths)


register(Claim(
    id="fp-spare-capacity", paper="fine-pruning", notebook="06",
    claim="with spare capacity in the last conv layer (the widest victim) fine-pruning removes the backdoor",
    paper_value="pruning works because backdoors live in channels dormant on clean data, in networks with spare capacity (Liu et al. §4)",
    measure=width_sweep,
    criterion=at_most("widest", REMOVED),
    why=_widths_why,
    show=_show_widths,
))


def pruning_aware(s: Setting) -> dict:
    r = run("fine-pruning", **victim(s), attack="pruning-aware")
    return {"pruning_only": r["pruned_attack_success_rate"], "fine_pruning": r["attack_success_rate"]}


register(Claim(
    id="fp-pruning-aware", paper="fine-pruning", notebook="06",
    claim="against the pruning-aware attack, pruning alone fails and fine-pruning still removes the backdoor",
    paper_value="pruning removes only decoys; fine-tuning afterwards removes the backdoor (Liu et al. §5; report §3)",
    measure=pruning_aware,
    criterion=all_of(at_least("pruning_only", 0.5), at_most("fine_pruning", REMOVED)),
    why=lambda v: (
        f"pruning alone fails as the paper says (ASR {per_seed(v['pruning_only'])} on the seeds), but the fine-tuning "
        f"after it (the defender's 400 clean images, 20 epochs of Adam at 3e-3) leaves "
        f"{per_seed(v['fine_pruning'])}: it does not move the decoy-protected weights far enough — compare the same "
        f"step on the plain BadNets victim (the fp-liu row)"),
    show=lambda v: f"80% pruned: ASR {spread(v['pruning_only'])}; + fine-tuning: {spread(v['fine_pruning'])}",
))


def weight_threshold(s: Setting) -> dict:
    r = run("fine-pruning-weights", **victim(s))
    return {"attack_success": r["attack_success_rate"], "clean_accuracy": r["clean_accuracy"],
            "weights_pruned": r["weights_pruned"], "rounds": r["rounds_kept"]}


register(Claim(
    id="fp-report-table3", paper="fine-pruning", notebook="06",
    claim="the report's weight-threshold fine-pruning drives poison accuracy below 1%",
    paper_value="rounds 0/1/2/3 ('0/5/10/15% pruned'): poison 99.99/30.78/4.51/0.05%, clean 97.77 → 86.16% (report Table 3)",
    measure=weight_threshold,
    criterion=at_most("attack_success", 0.01),
    why=lambda v: (
        f"the report stopped on poison accuracy (its code: < 1%, with a 30-point accuracy allowance); a defender "
        f"without the trigger must stop on clean accuracy, and at a 1-point budget the loop stops after a few rounds: "
        f"here {per_seed(v['rounds'], 'g')} rounds kept on the seeds, the signed threshold min + (max − min)·p "
        f"reaching only {per_seed(v['weights_pruned'], '.1%')} of the conv weights (the most negative ones), ASR "
        f"{per_seed(v['attack_success'])}"),
    show=lambda v: (f"{spread(v['rounds'], False, 1)} rounds kept, {spread(v['weights_pruned'])} of conv weights pruned: "
                    f"ASR {spread(v['attack_success'])}, accuracy {spread(v['clean_accuracy'])}"),
))

